"""Room monitoring: every room with its building and floor, online state, balance, alarm
level, supply, the supply state the meters confirmed, keep-supply, its accounts and today's
units and money (the ``room_glance`` view over ``room_status``, sql/0004 and 0012), and the
same per meter (``meter_status``). Filters by site, building, floor and state; paged. A
restricted operator sees the rooms and meters of their scope only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from meterflow.api.auth import Ctx, require
from meterflow.api.places import check
from meterflow.api.routers.common import Limit, Offset, QueryId, out, rows, yuan, yuan_of
from meterflow.api.scope import Scope, in_scope_sql

router = APIRouter(tags=["monitor"])
READ = Depends(require("read"))
Level = Annotated[int | None, Query(ge=0, le=3, description="At least this alarm level")]


def _filters(ctx: Ctx, site_id: str | None, building_id: str | None, floor_id: str | None,
             online: bool | None, supply: str | None, alarm_level: int | None, scoped: str
             ) -> tuple[str, dict[str, Any]]:
    check(ctx.conn, ctx.actor, "site", site_id)
    check(ctx.conn, ctx.actor, "building", building_id)
    check(ctx.conn, ctx.actor, "floor", floor_id)
    where = f"""
        WHERE (%(site)s::text IS NULL OR site_id = %(site)s)
          AND (%(building)s::text IS NULL OR building_id = %(building)s)
          AND (%(floor)s::text IS NULL OR floor_id = %(floor)s)
          AND (%(online)s::boolean IS NULL OR online = %(online)s)
          AND (%(supply)s::text IS NULL OR supply = %(supply)s)
          AND (%(level)s::int IS NULL OR alarm_level >= %(level)s)
          AND {scoped}"""
    return where, {"site": site_id, "building": building_id, "floor": floor_id,
                   "online": online, "supply": supply, "level": alarm_level,
                   **ctx.actor.scope.params()}


def _status_page(found: list[dict[str, Any]], limit: int, offset: int) -> dict[str, Any]:
    """A page of status rows (each with the window's ``total``), money as yuan text."""
    total = found[0]["total"] if found else 0
    items = []
    for row in found:
        row.pop("total")
        row["balance"] = yuan(row["balance_fen"])
        row["today_yuan"] = yuan_of(row["today_yuan"])
        items.append(out(row))
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/monitor/rooms")
def rooms(ctx: Ctx = READ, site_id: QueryId = None, building_id: QueryId = None,
          floor_id: QueryId = None, online: bool | None = None,
          supply: Literal["connected", "disconnected"] | None = None,
          alarm_level: Level = None, limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
    """Rooms as they are now; ``balance`` is the lowest of the room's accounts."""
    where, params = _filters(ctx, site_id, building_id, floor_id, online, supply, alarm_level,
                             Scope.sql("site_id", "building_id"))
    found = rows(ctx.conn, f"""
        SELECT *, count(*) OVER () AS total FROM room_glance {where}
        ORDER BY site_id, building_id, floor_level, room_id
        LIMIT %(limit)s OFFSET %(offset)s""", {**params, "limit": limit, "offset": offset})
    return _status_page(found, limit, offset)


@router.get("/monitor/meters")
def meters(ctx: Ctx = READ, site_id: QueryId = None, building_id: QueryId = None,
           floor_id: QueryId = None, online: bool | None = None,
           supply: Literal["connected", "disconnected"] | None = None,
           alarm_level: Level = None, limit: Limit = 100, offset: Offset = 0
           ) -> dict[str, Any]:
    """Meters in service as they are now (the ``meter_status`` view)."""
    where, params = _filters(ctx, site_id, building_id, floor_id, online, supply, alarm_level,
                             in_scope_sql("meter", "meter_id"))
    found = rows(ctx.conn, f"""
        SELECT *, count(*) OVER () AS total FROM meter_status {where}
        ORDER BY meter_id LIMIT %(limit)s OFFSET %(offset)s""",
        {**params, "limit": limit, "offset": offset})
    return _status_page(found, limit, offset)
