"""The board files: valid JSON in one stable formatting, in step with the definitions,
unique uids, no hard-coded data source, every variable used defined."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from meterflow.dashboards import BOARDS
from meterflow.dashboards.checks import problems
from meterflow.dashboards.provision import DatabaseTarget, files
from meterflow.dashboards.spec import DATASOURCE_REF, DATASOURCE_TYPE, DATASOURCE_UID

DIR = Path(__file__).resolve().parents[2] / "dashboards"
BOARD_FILES = sorted(DIR.glob("*.json"))


def load() -> tuple[dict[str, Any], dict[str, Any]]:
    boards = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in BOARD_FILES}
    return boards, json.loads((DIR / "checks" / "columns.json").read_text(encoding="utf-8"))


def test_one_file_per_board_each_in_the_stable_formatting() -> None:
    assert len(BOARD_FILES) == len(BOARDS) == 6
    for path in [*BOARD_FILES, DIR / "checks" / "columns.json"]:
        text = path.read_text(encoding="utf-8")
        again = json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False)
        assert text == again + "\n", f"{path.name} is not sorted-key, two-space JSON"


def test_the_files_are_what_the_definitions_render() -> None:
    rendered = files(DatabaseTarget())
    on_disk = {str(p.relative_to(DIR)): p.read_text(encoding="utf-8")
               for p in DIR.rglob("*") if p.is_file()}
    assert sorted(on_disk) == sorted(rendered)
    for name, text in rendered.items():
        assert on_disk[name] == text, f"{name} differs: run `meterflow dashboards export " \
                                      "dashboards` with the default settings"


def test_boards_pass_every_check() -> None:
    boards, columns = load()
    assert problems(boards, columns) == []
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == len(uids)
    for board in boards.values():
        ids = [p["id"] for p in board["panels"]]
        assert len(set(ids)) == len(ids)
        names = [v["name"] for v in board["templating"]["list"]]
        assert names[0] == "datasource"
        for panel in board["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"] == DATASOURCE_REF
                assert all(t["datasource"] == DATASOURCE_REF for t in panel["targets"])


def test_the_checks_catch_what_they_are_for() -> None:
    boards, columns = load()
    broken = copy.deepcopy(boards)
    energy = broken["energy.json"]
    energy["panels"][1]["datasource"] = {"type": DATASOURCE_TYPE, "uid": "prod-db"}
    energy["panels"][2]["targets"][0]["rawSql"] += " AND $nowhere = 1"
    broken["finance.json"]["uid"] = energy["uid"]
    broken["alarms.json"]["panels"][1]["id"] = broken["alarms.json"]["panels"][2]["id"]
    found = "\n".join(problems(broken, columns))
    assert "data source {'type': 'grafana-postgresql-datasource', 'uid': 'prod-db'}" in found
    assert "uses $nowhere, which is not defined" in found
    assert "uid meterflow-energy also used by energy.json" in found
    assert "missing or repeated" in found


def test_provisioning_files_declare_timescaledb_and_the_provider() -> None:
    ds = yaml.safe_load((DIR / "provisioning/datasources/meterflow.yaml").read_text())
    [source] = ds["datasources"]
    assert source["uid"] == DATASOURCE_UID and source["type"] == DATASOURCE_TYPE
    assert source["jsonData"]["timescaledb"] is True
    assert source["secureJsonData"]["password"] == "${METERFLOW_PG_PASSWORD}"
    provider = yaml.safe_load((DIR / "provisioning/dashboards/meterflow.yaml").read_text())
    [entry] = provider["providers"]
    assert entry["type"] == "file" and entry["folderUid"] == "meterflow"


@pytest.mark.parametrize("board", BOARDS, ids=lambda b: b.uid)
def test_time_series_queries_return_time(board: Any) -> None:
    _, columns = load()
    rendered = json.loads((DIR / f"{board.uid.removeprefix('meterflow-')}.json").read_text())
    for panel in rendered["panels"]:
        for target in panel.get("targets", []):
            cols = columns[board.uid][str(panel["id"])][target["refId"]]
            if target["format"] == "time_series":
                assert cols[0] == "time", panel["title"]
