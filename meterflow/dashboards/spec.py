"""Boards as data: panels with their SQL and the columns each query returns, laid out and
rendered to Grafana's dashboard JSON.

Written once here and rendered to ``dashboards/*.json`` (``meterflow dashboards export``),
so every board shares the same data-source reference, variables and layout rules, and the
columns each panel expects travel with it (``dashboards/checks/columns.json``) for the checks that
run every panel's SQL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

DATASOURCE_TYPE = "grafana-postgresql-datasource"
DATASOURCE_UID = "meterflow-timescaledb"
#: Every panel and target names its data source through the ``datasource`` variable.
DATASOURCE_REF = {"type": DATASOURCE_TYPE, "uid": "${datasource}"}
#: The "All" value of multi-value place variables: filters read
#: ``('__all' IN ($site) OR site_id IN ($site))``, which the planner folds to true.
ALL = "'__all'"
GRID_WIDTH = 24
SCHEMA_VERSION = 39


@dataclass(frozen=True)
class Query:
    sql: str
    columns: tuple[str, ...]
    format: str = "table"  # or "time_series": needs a column named "time"
    ref: str = "A"


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str
    queries: tuple[Query, ...]
    width: int = 12
    height: int = 8
    description: str = ""
    unit: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    title: str


@dataclass(frozen=True)
class Board:
    uid: str
    title: str
    description: str
    variables: tuple[dict[str, Any], ...]
    items: tuple[Panel | Row, ...]
    time_from: str = "now-30d"
    refresh: str = ""
    tags: tuple[str, ...] = ()


def q(sql: str, *columns: str, series: bool = False, ref: str = "A") -> Query:
    return Query(_dedent(sql), columns, "time_series" if series else "table", ref)


def _dedent(sql: str) -> str:
    lines = [line.rstrip() for line in sql.strip("\n").splitlines()]
    indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
    return "\n".join(x[indent:] for x in lines)


# -- variables ---------------------------------------------------------------------------

def datasource_variable() -> dict[str, Any]:
    return {"current": {"text": "MeterFlow TimescaleDB", "value": DATASOURCE_UID},
            "hide": 0, "includeAll": False, "label": "Data source", "multi": False,
            "name": "datasource", "options": [], "query": DATASOURCE_TYPE, "refresh": 1,
            "regex": "", "type": "datasource"}


def query_variable(name: str, label: str, sql: str, *, multi: bool = True,
                   include_all: bool = True) -> dict[str, Any]:
    """A variable filled by SQL (``__value``/``__text`` columns); multi-value with the
    "All" value ``'__all'`` by default."""
    current = ({"selected": True, "text": ["All"], "value": ["$__all"]} if include_all
               else {})
    var: dict[str, Any] = {
        "current": current, "datasource": DATASOURCE_REF, "definition": _dedent(sql),
        "hide": 0, "includeAll": include_all, "label": label, "multi": multi,
        "name": name, "options": [], "query": _dedent(sql), "refresh": 1, "regex": "",
        "skipUrlSync": False, "sort": 1, "type": "query"}
    if include_all:
        var["allValue"] = ALL
    return var


def custom_variable(name: str, label: str, values: tuple[str, ...]) -> dict[str, Any]:
    """A single-value list; the first value is the default."""
    return {"current": {"selected": True, "text": values[0], "value": values[0]},
            "hide": 0, "includeAll": False, "label": label, "multi": False, "name": name,
            "options": [{"selected": i == 0, "text": v, "value": v}
                        for i, v in enumerate(values)],
            "query": ",".join(values), "skipUrlSync": False, "type": "custom"}


# -- rendering ---------------------------------------------------------------------------

def _panel_json(panel: Panel, pid: int, pos: dict[str, int]) -> dict[str, Any]:
    targets = [{"datasource": DATASOURCE_REF, "editorMode": "code", "format": qr.format,
                "rawQuery": True, "rawSql": qr.sql, "refId": qr.ref} for qr in panel.queries]
    defaults: dict[str, Any] = {"custom": dict(panel.custom)}
    if panel.unit:
        defaults["unit"] = panel.unit
    return {"datasource": DATASOURCE_REF, "description": panel.description,
            "fieldConfig": {"defaults": defaults, "overrides": []}, "gridPos": pos,
            "id": pid, "options": dict(panel.options), "targets": targets,
            "title": panel.title, "type": panel.kind}


def render(board: Board) -> dict[str, Any]:
    """Grafana dashboard JSON: panels packed left to right in rows of 24 columns."""
    panels: list[dict[str, Any]] = []
    x = y = line_height = 0
    for pid, item in enumerate(board.items, start=1):
        if isinstance(item, Row):
            if x:
                x, y = 0, y + line_height
            panels.append({"collapsed": False, "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0,
                                                           "y": y},
                           "id": pid, "panels": [], "title": item.title, "type": "row"})
            y, line_height = y + 1, 0
            continue
        if x + item.width > GRID_WIDTH:
            x, y, line_height = 0, y + line_height, 0
        panels.append(_panel_json(item, pid, {"h": item.height, "w": item.width, "x": x,
                                              "y": y}))
        x += item.width
        line_height = max(line_height, item.height)
    return {
        "annotations": {"list": []}, "description": board.description, "editable": True,
        "fiscalYearStartMonth": 0, "graphTooltip": 1, "links": [], "panels": panels,
        "refresh": board.refresh, "schemaVersion": SCHEMA_VERSION,
        "tags": ["meterflow", *board.tags], "templating": {"list": list(board.variables)},
        "time": {"from": board.time_from, "to": "now"}, "timepicker": {},
        "timezone": "Asia/Shanghai", "title": board.title, "uid": board.uid, "version": 1,
        "weekStart": "monday"}


def columns(board: Board) -> dict[str, dict[str, list[str]]]:
    """Expected columns per panel id and query refId (dashboards/checks/columns.json)."""
    out: dict[str, dict[str, list[str]]] = {}
    for pid, item in enumerate(board.items, start=1):
        if isinstance(item, Panel):
            out[str(pid)] = {qr.ref: list(qr.columns) for qr in item.queries}
    return out


def dumps(value: Any) -> str:
    """The one formatting of every generated file: sorted keys, two-space indent."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
