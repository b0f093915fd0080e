"""Checks of the rendered boards, and every panel's SQL run against a real database.

``problems`` looks at the JSON alone: unique board uids and panel ids, the data source
always the ``${datasource}`` variable, every variable used defined, expected columns known
for every query. ``run_board`` expands each query the way Grafana does
(``meterflow.dashboards.macros``) and runs it, timing the query alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from meterflow.dashboards.macros import (
    Selection,
    TimeRange,
    expand,
    interval_for,
    used_variables,
)
from meterflow.dashboards.spec import DATASOURCE_REF


def _texts(board: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """(where, text) of everything Grafana interpolates: titles, SQL, variable queries."""
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            yield f"variable {var['name']}", str(var.get("query", ""))
    for panel in board.get("panels", []):
        yield f"panel {panel.get('id')} title", str(panel.get("title", ""))
        for target in panel.get("targets", []):
            yield f"panel {panel.get('id')} {target.get('refId')}", str(target.get("rawSql", ""))


def problems(boards: Mapping[str, Mapping[str, Any]],
             columns: Mapping[str, Mapping[str, Mapping[str, list[str]]]]) -> list[str]:
    """Everything wrong with a set of boards (file name -> JSON); empty when all is well."""
    found: list[str] = []
    uids: dict[str, str] = {}
    for name, board in sorted(boards.items()):
        uid = board.get("uid")
        if not uid:
            found.append(f"{name}: no uid")
        elif uid in uids:
            found.append(f"{name}: uid {uid} also used by {uids[uid]}")
        else:
            uids[uid] = name
        variables = board.get("templating", {}).get("list", [])
        defined = [v.get("name") for v in variables]
        if len(set(defined)) != len(defined):
            found.append(f"{name}: a variable is defined twice")
        if "datasource" not in defined:
            found.append(f"{name}: no datasource variable")
        for var in variables:
            ref = var.get("datasource")
            if var.get("type") == "query" and ref != DATASOURCE_REF:
                found.append(f"{name}: variable {var.get('name')} data source {ref}")
        for where, text in _texts(board):
            for missing in sorted(used_variables(text) - set(defined)):
                found.append(f"{name}: {where} uses ${missing}, which is not defined")
        ids: set[int] = set()
        expected = columns.get(str(uid), {})
        for panel in board.get("panels", []):
            pid = panel.get("id")
            if not isinstance(pid, int) or pid in ids:
                found.append(f"{name}: panel id {pid!r} missing or repeated")
            ids.add(pid if isinstance(pid, int) else -1)
            if panel.get("type") == "row":
                continue
            if panel.get("datasource") != DATASOURCE_REF:
                found.append(f"{name}: panel {pid} data source {panel.get('datasource')}")
            for target in panel.get("targets", []):
                ref = target.get("refId")
                if target.get("datasource") != DATASOURCE_REF:
                    found.append(f"{name}: panel {pid} {ref} data source "
                                 f"{target.get('datasource')}")
                cols = expected.get(str(pid), {}).get(str(ref))
                if not cols:
                    found.append(f"{name}: panel {pid} {ref} has no expected columns")
                elif target.get("format") == "time_series" and "time" not in cols:
                    found.append(f"{name}: panel {pid} {ref} is a time series without time")
    return found


@dataclass
class Run:
    """One query of one panel, run."""

    board: str
    panel: int
    title: str
    ref: str
    sql: str
    expected: list[str]
    columns: list[str]
    rows: int
    seconds: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.columns == self.expected


def _timed(conn: psycopg.Connection, sql: str) -> tuple[list[str], int, float]:
    with conn.cursor() as cur:
        started = time.perf_counter()
        cur.execute(sql.encode())
        rows = cur.fetchall()
        elapsed = time.perf_counter() - started
        names = [d.name for d in cur.description or []]
    return names, len(rows), elapsed


def selections(conn: psycopg.Connection, board: Mapping[str, Any], rng: TimeRange,
               chosen: Mapping[str, Selection] | None = None) -> dict[str, Selection]:
    """Each variable's value: "All" where it has one, else its current or first value
    (query variables are run, in order, so later ones see earlier ones)."""
    out: dict[str, Selection] = {}
    for var in board.get("templating", {}).get("list", []):
        name = var["name"]
        if chosen and name in chosen:
            out[name] = chosen[name]
            continue
        multi, include_all = bool(var.get("multi")), bool(var.get("includeAll"))
        if var["type"] == "datasource":
            out[name] = Selection((str(var.get("current", {}).get("value", "")),))
            continue
        if var["type"] == "custom":
            out[name] = Selection((str(var["current"]["value"]),), multi, include_all)
            continue
        sql = expand(var["query"], rng, out)
        with conn.cursor() as cur:
            cur.execute(sql.encode())
            names = [d.name for d in cur.description or []]
            col = names.index("__value") if "__value" in names else 0
            values = tuple(str(r[col]) for r in cur.fetchall())
        if include_all:
            out[name] = Selection(values, multi, True, all=True, all_value=var.get("allValue"))
        else:
            out[name] = Selection(values[:1], multi, False)
    return out


def run_board(conn: psycopg.Connection, board: Mapping[str, Any],
              columns: Mapping[str, Mapping[str, list[str]]], rng: TimeRange,
              chosen: Mapping[str, Selection] | None = None) -> list[Run]:
    """Run every query of a board as Grafana would for this range and these values."""
    values = selections(conn, board, rng, chosen)
    runs = []
    for panel in board.get("panels", []):
        if panel.get("type") == "row":
            continue
        interval = interval_for(rng, int(panel.get("maxDataPoints") or 1000))
        for target in panel.get("targets", []):
            expected = list(columns.get(str(panel["id"]), {}).get(target["refId"], []))
            sql = expand(target["rawSql"], rng, values, interval)
            run = Run(board["uid"], panel["id"], panel["title"], target["refId"], sql,
                      expected, [], 0, 0.0)
            try:
                run.columns, run.rows, run.seconds = _timed(conn, sql)
            except psycopg.Error as exc:
                run.error = f"{exc.__class__.__name__}: {exc}".strip()
            runs.append(run)
    return runs
