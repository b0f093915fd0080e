"""Energy reports per meter, account, room or building: units and money by local day,
month or year, optionally by time-of-use band, and the same span a year before.

They read the ``usage_daily`` rollup (sql/0003), which counts a rated interval in the local
day in which it ends, in the zone of its meter's site (sql/0010_site_time_zones.sql); the
default span ends today in that zone. Money there is the band and step cost without
surcharges (those are in ``rated_lines`` only), rounded half-up to the fen here. A
restricted operator reports on what is in their scope only.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from contracts.money import decimal_text, round_half_up
from meterflow.api.auth import Ctx, require
from meterflow.api.errors import ApiError
from meterflow.api.places import check
from meterflow.api.routers.common import one, rows, yuan_of
from meterflow.api.routers.finance import Format, export
from meterflow.api.routers.spans import LABELS, span, year_before
from meterflow.api.types import ID_RE, Day

router = APIRouter(tags=["reports"])
Scope = Literal["meter", "account", "room", "building"]
SCOPES = {
    "meter": ("meters", "meter_id", "m.meter_id = %(id)s"),
    "account": ("accounts", "account_id", "m.account_id = %(id)s"),
    "room": ("rooms", "room_id", "m.room_id = %(id)s"),
    "building": ("buildings", "building_id",
                 "m.room_id IN (SELECT r.room_id FROM rooms r JOIN floors f USING (floor_id) "
                 "WHERE f.building_id = %(id)s)"),
}


def series(ctx: Ctx, scope: str, target: str, period: str, first: date, last: date,
           by_band: bool) -> list[dict[str, Any]]:
    where = SCOPES[scope][2]
    label = f"to_char(u.bucket, '{LABELS[period]}')" if period != "span" \
        else f"'{first}..{last}'::text"
    band = ", u.band" if by_band else ""
    found = rows(ctx.conn, f"""
        SELECT {label} AS bucket{band}, sum(u.units) AS units, sum(u.amount_yuan) AS amount
        FROM usage_daily u JOIN meters m USING (meter_id)
        WHERE {where} AND u.bucket BETWEEN %(first)s AND %(last)s
        GROUP BY 1{", 2" if by_band else ""} ORDER BY 1{", 2" if by_band else ""}""",
                 {"id": target, "first": first, "last": last})
    return [{"bucket": r["bucket"], **({"band": r["band"] or None} if by_band else {}),
             "units": decimal_text(round_half_up(r["units"], 3)),
             "amount": yuan_of(r["amount"])} for r in found]


def report_zone(ctx: Ctx, scope: str, target: str) -> str:
    """The zone whose days the report counts: its first meter's (sql/0010)."""
    found = one(ctx.conn, f"""
        SELECT COALESCE((SELECT meter_report_zone(m.meter_id) FROM meters m
                         WHERE {SCOPES[scope][2]} ORDER BY m.meter_id LIMIT 1),
                        default_report_zone()) AS zone""", {"id": target})
    assert found is not None
    return str(found["zone"])


def _total(items: list[dict[str, Any]]) -> tuple[Decimal, Decimal]:
    return (sum((Decimal(i["units"]) for i in items), Decimal(0)),
            sum((Decimal(i["amount"]) for i in items), Decimal(0)))


@router.get("/reports/energy", response_model=None)
def energy(ctx: Ctx = Depends(require("read")), scope: Scope = "account",
           id: Annotated[str, Query(pattern=ID_RE, description="The meter, account, room or "
                                                               "building id")] = "",
           period: Literal["day", "month", "year", "span"] = "day",
           start: Annotated[Day | None, Query(alias="from")] = None,
           end: Annotated[Day | None, Query(alias="to")] = None,
           by_band: bool = False, compare: Literal["none", "yoy"] = "none",
           format: Format = "json") -> dict[str, Any] | Response:
    """Units and money per bucket; ``compare=yoy`` adds the same span a year before and
    the change in units (percent, 1 place; null when last year had none). ``format=csv``
    or ``xlsx``: the rows (with yoy, last year's too, ``span`` telling them apart)."""
    table, column, _ = SCOPES[scope]
    check(ctx.conn, ctx.actor, scope, id)
    if one(ctx.conn, f"SELECT 1 AS x FROM {table} WHERE {column} = %s", (id,)) is None:
        raise ApiError(404, "id", f"no {scope} {id!r}")
    first, last, _, _ = span(start, end, report_zone(ctx, scope, id))
    items = series(ctx, scope, id, period, first, last, by_band)
    units, amount = _total(items)
    report: dict[str, Any] = {
        "scope": scope, "id": id, "period": period, "from": str(first), "to": str(last),
        "items": items, "total": {"units": decimal_text(units), "amount": f"{amount:.2f}"}}
    if compare == "yoy":
        before = series(ctx, scope, id, period, year_before(first), year_before(last), by_band)
        units_before, amount_before = _total(before)
        change = None if units_before == 0 else decimal_text(
            round_half_up((units - units_before) * 100 / units_before, 1))
        report["previous"] = {"from": str(year_before(first)), "to": str(year_before(last)),
                              "items": before,
                              "total": {"units": decimal_text(units_before),
                                        "amount": f"{amount_before:.2f}"},
                              "units_change_percent": change}
    if format != "json":
        columns = ["span", "bucket", *(["band"] if by_band else []), "units", "amount"]
        lines = [{"span": "current", **i} for i in items] + [
            {"span": "previous", **i} for i in report.get("previous", {}).get("items", [])]
        return export(lines, columns, format, f"energy-{scope}-{period}")
    return report
