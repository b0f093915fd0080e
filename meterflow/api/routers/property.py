"""Sites, buildings, floors, rooms (with area in m2) and customers.

``PUT /{kind}/{id}`` creates or replaces one (audited with before/after); ``GET`` lists
with the parent as a filter; ``DELETE`` refuses (409) while anything still refers to it.
A restricted operator (:mod:`meterflow.api.scope`) sees and changes only what is in their
scope, before and after the change; a site changes only for a user of that site.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import Field

from meterflow.api.auth import Ctx, require
from meterflow.api.errors import ApiError, not_found
from meterflow.api.places import Kind, check, check_site_write
from meterflow.api.routers.common import (
    Limit,
    Model,
    Offset,
    PathId,
    Zone,
    delete,
    one,
    out,
    page,
    rows,
    upsert,
)
from meterflow.api.scope import in_scope_sql
from meterflow.api.types import Id, Name

router = APIRouter(tags=["property"])
READ = Depends(require("read"))
WRITE = Depends(require("property.write"))
AREA_RE = r"^[0-9]{1,8}(\.[0-9]{1,2})?$"


class SiteIn(Model):
    name: Name = ""
    timezone: Zone = "Asia/Shanghai"


class BuildingIn(Model):
    site_id: Id
    name: Name = ""


class FloorIn(Model):
    building_id: Id
    level: int = Field(ge=-20, le=300)
    name: Name = ""


class RoomIn(Model):
    floor_id: Id
    name: Name = ""
    area_m2: str | None = Field(None, pattern=AREA_RE, description="m2 as text, e.g. \"35.50\"")


class CustomerIn(Model):
    name: Name = ""
    phone: str = Field("", pattern=r"^(\+?[0-9]{5,20})?$")
    email: str = Field("", max_length=200, pattern=r"^([^@\s\x00]+@[^@\s\x00]+)?$")
    wechat_openid: str = Field("", max_length=64, pattern=r"^[A-Za-z0-9_-]*$")
    language: Literal["zh", "en"] = "zh"


KINDS: dict[Kind, tuple[str, str, str | None]] = {
    # kind: (table, key column, parent column)
    "site": ("sites", "site_id", None),
    "building": ("buildings", "building_id", "site_id"),
    "floor": ("floors", "floor_id", "building_id"),
    "room": ("rooms", "room_id", "floor_id"),
    "customer": ("customers", "customer_id", None),
}


PARENT_KIND: dict[str, Kind] = {"site_id": "site", "building_id": "building",
                                 "floor_id": "floor"}


def _scoped(ctx: Ctx, kind: Kind, key: str) -> None:
    if kind == "site":
        check_site_write(ctx.actor, key)
    else:
        check(ctx.conn, ctx.actor, kind, key)


def _put(ctx: Ctx, kind: Kind, key: str, body: Model, response: Response) -> dict[str, Any]:
    table, column, parent = KINDS[kind]
    values = body.model_dump()
    if values.get("area_m2") is not None and Decimal(values["area_m2"]) == 0:
        raise ApiError(400, "area_m2", "must be greater than zero (or null: unknown)")
    if parent is not None:
        parent_table = {"site_id": "sites", "building_id": "buildings",
                        "floor_id": "floors"}[parent]
        if one(ctx.conn, f"SELECT 1 AS x FROM {parent_table} WHERE {parent} = %s",
               (values[parent],)) is None:
            raise not_found(parent, f"{parent.removesuffix('_id')} {values[parent]!r}")
    _scoped(ctx, kind, key)
    if kind == "building" and ctx.actor.scope.restricted:
        stored = one(ctx.conn, "SELECT site_id FROM buildings WHERE building_id = %s", (key,))
        if stored is None or stored["site_id"] != values["site_id"]:
            # making a building, or moving one, changes a site: a user of the site only
            check_site_write(ctx.actor, values["site_id"])
    with ctx.conn.transaction():
        row, created = upsert(ctx, kind, table, column, key, values)
        if kind != "customer":  # where it is now must be in scope too (rolls back if not)
            _scoped(ctx, kind, key)
    response.status_code = 201 if created else 200
    return dict(out(row))


def _get(ctx: Ctx, kind: Kind, key: str) -> dict[str, Any]:
    check(ctx.conn, ctx.actor, kind, key)
    table, column, _ = KINDS[kind]
    row = one(ctx.conn, f"SELECT * FROM {table} WHERE {column} = %s", (key,))
    if row is None:
        raise not_found(column, f"{kind} {key!r}")
    return dict(out(row))


def _list(ctx: Ctx, kind: Kind, parent_value: str | None, limit: int,
          offset: int) -> dict[str, Any]:
    table, column, parent = KINDS[kind]
    where = in_scope_sql(kind, column)
    params: dict[str, Any] = {**ctx.actor.scope.params(), "limit": limit, "offset": offset}
    if parent is not None and parent_value is not None:
        check(ctx.conn, ctx.actor, PARENT_KIND[parent], parent_value)
        where += f" AND {parent} = %(parent)s"
        params["parent"] = parent_value
    found = rows(ctx.conn, f"SELECT * FROM {table} WHERE {where} ORDER BY {column} "
                 "LIMIT %(limit)s OFFSET %(offset)s", params)
    return page(found, limit, offset)


def _delete(ctx: Ctx, kind: Kind, key: str) -> dict[str, Any]:
    _scoped(ctx, kind, key)
    table, column, _ = KINDS[kind]
    return dict(out(delete(ctx, kind, table, column, key)))


ParentId = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]


@router.put("/sites/{site_id}", status_code=200)
def put_site(site_id: PathId, body: SiteIn, response: Response, ctx: Ctx = WRITE
             ) -> dict[str, Any]:
    """Create or update a site (its time zone decides local days in reports)."""
    return _put(ctx, "site", site_id, body, response)


@router.get("/sites")
def list_sites(ctx: Ctx = READ, limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
    return _list(ctx, "site", None, limit, offset)


@router.get("/sites/{site_id}")
def get_site(site_id: PathId, ctx: Ctx = READ) -> dict[str, Any]:
    return _get(ctx, "site", site_id)


@router.delete("/sites/{site_id}")
def delete_site(site_id: PathId, ctx: Ctx = WRITE) -> dict[str, Any]:
    return _delete(ctx, "site", site_id)


@router.put("/buildings/{building_id}", status_code=200)
def put_building(building_id: PathId, body: BuildingIn, response: Response,
                 ctx: Ctx = WRITE) -> dict[str, Any]:
    return _put(ctx, "building", building_id, body, response)


@router.get("/buildings")
def list_buildings(ctx: Ctx = READ, site_id: ParentId = None, limit: Limit = 100,
                   offset: Offset = 0) -> dict[str, Any]:
    return _list(ctx, "building", site_id, limit, offset)


@router.get("/buildings/{building_id}")
def get_building(building_id: PathId, ctx: Ctx = READ) -> dict[str, Any]:
    return _get(ctx, "building", building_id)


@router.delete("/buildings/{building_id}")
def delete_building(building_id: PathId, ctx: Ctx = WRITE) -> dict[str, Any]:
    return _delete(ctx, "building", building_id)


@router.put("/floors/{floor_id}", status_code=200)
def put_floor(floor_id: PathId, body: FloorIn, response: Response, ctx: Ctx = WRITE
              ) -> dict[str, Any]:
    return _put(ctx, "floor", floor_id, body, response)


@router.get("/floors")
def list_floors(ctx: Ctx = READ, building_id: ParentId = None, limit: Limit = 100,
                offset: Offset = 0) -> dict[str, Any]:
    return _list(ctx, "floor", building_id, limit, offset)


@router.get("/floors/{floor_id}")
def get_floor(floor_id: PathId, ctx: Ctx = READ) -> dict[str, Any]:
    return _get(ctx, "floor", floor_id)


@router.delete("/floors/{floor_id}")
def delete_floor(floor_id: PathId, ctx: Ctx = WRITE) -> dict[str, Any]:
    return _delete(ctx, "floor", floor_id)


@router.put("/rooms/{room_id}", status_code=200)
def put_room(room_id: PathId, body: RoomIn, response: Response, ctx: Ctx = WRITE
             ) -> dict[str, Any]:
    """Create or update a room; ``area_m2`` is text with at most 2 places (or null)."""
    return _put(ctx, "room", room_id, body, response)


@router.get("/rooms")
def list_rooms(ctx: Ctx = READ, floor_id: ParentId = None, limit: Limit = 100,
               offset: Offset = 0) -> dict[str, Any]:
    return _list(ctx, "room", floor_id, limit, offset)


@router.get("/rooms/{room_id}")
def get_room(room_id: PathId, ctx: Ctx = READ) -> dict[str, Any]:
    return _get(ctx, "room", room_id)


@router.delete("/rooms/{room_id}")
def delete_room(room_id: PathId, ctx: Ctx = WRITE) -> dict[str, Any]:
    return _delete(ctx, "room", room_id)


@router.put("/customers/{customer_id}", status_code=200)
def put_customer(customer_id: PathId, body: CustomerIn, response: Response,
                 ctx: Ctx = WRITE) -> dict[str, Any]:
    return _put(ctx, "customer", customer_id, body, response)


@router.get("/customers")
def list_customers(ctx: Ctx = READ, limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
    return _list(ctx, "customer", None, limit, offset)


@router.get("/customers/{customer_id}")
def get_customer(customer_id: PathId, ctx: Ctx = READ) -> dict[str, Any]:
    return _get(ctx, "customer", customer_id)


@router.delete("/customers/{customer_id}")
def delete_customer(customer_id: PathId, ctx: Ctx = WRITE) -> dict[str, Any]:
    return _delete(ctx, "customer", customer_id)
