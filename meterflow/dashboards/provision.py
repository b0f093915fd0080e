"""The files a Grafana that reads provisioning needs: one JSON per board, the data source
and the dashboard provider, plus the expected columns of every panel query.

Layout of an export (the repository's ``dashboards/`` is one, with the defaults):

    <dir>/<board>.json                               one per board, sorted keys
    <dir>/checks/columns.json                        expected columns per panel query (not a board)
    <dir>/provisioning/datasources/meterflow.yaml    copy to Grafana's provisioning/datasources
    <dir>/provisioning/dashboards/meterflow.yaml     copy to Grafana's provisioning/dashboards

The data source password is never written: Grafana reads it from its own environment
(``METERFLOW_PG_PASSWORD``), as its provisioning files allow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from meterflow.dashboards import BOARDS, file_name
from meterflow.dashboards.spec import (
    DATASOURCE_TYPE,
    DATASOURCE_UID,
    Board,
    columns,
    dumps,
    render,
)

DATASOURCE_NAME = "MeterFlow TimescaleDB"
FOLDER_UID = "meterflow"
FOLDER_TITLE = "MeterFlow"
BOARDS_PATH = "/var/lib/grafana/dashboards/meterflow"
PASSWORD_ENV = "METERFLOW_PG_PASSWORD"


@dataclass(frozen=True)
class DatabaseTarget:
    """The database as Grafana reaches it (which may differ from how MeterFlow does)."""

    host: str = "127.0.0.1"
    port: int = 15432
    database: str = "meterflow"
    user: str = "meterflow"
    sslmode: str = "disable"

    @classmethod
    def from_dsn(cls, dsn: str) -> DatabaseTarget:
        from psycopg.conninfo import conninfo_to_dict

        d = conninfo_to_dict(dsn)
        return cls(str(d.get("host", cls.host)), int(d.get("port", cls.port) or cls.port),
                   str(d.get("dbname", cls.database)), str(d.get("user", cls.user)),
                   str(d.get("sslmode", cls.sslmode)))


def datasource(target: DatabaseTarget, password: str | None = None) -> dict[str, Any]:
    """The data source as Grafana's HTTP API and provisioning files describe it."""
    ds: dict[str, Any] = {
        "access": "proxy", "isDefault": False, "name": DATASOURCE_NAME,
        "type": DATASOURCE_TYPE, "uid": DATASOURCE_UID, "url": f"{target.host}:{target.port}",
        "user": target.user,
        "jsonData": {"database": target.database, "maxOpenConns": 10,
                     "postgresVersion": 1500, "sslmode": target.sslmode,
                     "timeInterval": "1m", "timescaledb": True}}
    if password is not None:
        ds["secureJsonData"] = {"password": password}
    return ds


def datasource_yaml(target: DatabaseTarget) -> str:
    ds = datasource(target, "${" + PASSWORD_ENV + "}")
    ds["editable"] = False
    header = ("# The MeterFlow data source (meterflow dashboards export). Boards refer to it\n"
              "# through their datasource variable; the password comes from Grafana's\n"
              f"# environment ({PASSWORD_ENV}).\n")
    return header + yaml.safe_dump({"apiVersion": 1, "datasources": [ds]}, sort_keys=True)


def provider_yaml(boards_path: str = BOARDS_PATH) -> str:
    provider = {"name": "meterflow", "orgId": 1, "folder": FOLDER_TITLE,
                "folderUid": FOLDER_UID, "type": "file", "disableDeletion": False,
                "allowUiUpdates": False, "updateIntervalSeconds": 60,
                "options": {"path": boards_path, "foldersFromFilesStructure": False}}
    header = ("# MeterFlow's boards (meterflow dashboards export): copy the board JSON files\n"
              "# to options.path.\n")
    return header + yaml.safe_dump({"apiVersion": 1, "providers": [provider]}, sort_keys=True)


def files(target: DatabaseTarget = DatabaseTarget(), boards_path: str = BOARDS_PATH,
          boards: tuple[Board, ...] = BOARDS) -> dict[str, str]:
    """Relative path -> content of every file of an export."""
    out = {file_name(b): dumps(render(b)) for b in boards}
    out["checks/columns.json"] = dumps({b.uid: columns(b) for b in boards})
    out["provisioning/datasources/meterflow.yaml"] = datasource_yaml(target)
    out["provisioning/dashboards/meterflow.yaml"] = provider_yaml(boards_path)
    return out


def export(directory: Path, target: DatabaseTarget = DatabaseTarget(),
           boards_path: str = BOARDS_PATH) -> list[Path]:
    written = []
    for rel, content in files(target, boards_path).items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written
