"""MQTT gateways and device credentials over HTTP (the same as `meterflow device ...`).

Changing them needs ``devices.write`` (admin, maintenance): a credential lets a device
publish readings that bill an account. A credential's password is in the answer that makes
it and nowhere else. ``?wait=true`` answers once every running broker sync applied the
change (``applied_after_s``), i.e. a revoked device is already cut off. A restricted
operator manages the devices of their scope only (a gateway is where its building is, a
meter where its room or account is).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field

from meterflow.api import audit
from meterflow.api.auth import Ctx, require
from meterflow.api.errors import ApiError
from meterflow.api.places import check, check_place, place_of
from meterflow.api.routers.common import Limit, Model, Offset, PathId, out, page, rows
from meterflow.api.scope import in_scope_sql
from meterflow.api.types import Id, Name
from meterflow.broker.platform import reserved_names as reserved
from meterflow.broker.sync import wait_applied
from meterflow.settings import Settings
from services.devices import credentials as creds
from services.devices import gateways

router = APIRouter(tags=["devices"])
READ = Depends(require("read"))
WRITE = Depends(require("devices.write"))
KindQ = Annotated[Literal["meter", "gateway"] | None,
                  Query(description="meter or gateway, when an id is both")]
WaitQ = Annotated[bool, Query(description="Answer once the broker applied the change")]


class GatewayIn(Model):
    name: Name = ""
    building_id: Id | None = Field(None, description="Where the gateway is (scope)")


class MetersIn(Model):
    meter_ids: list[Id] = Field(min_length=1, max_length=1000)


def _device(ctx: Ctx, device_id: str, kind: str | None) -> creds.Device:
    device = creds.resolve(ctx.conn, device_id, kind)  # type: ignore[arg-type]
    check(ctx.conn, ctx.actor, device.kind, device.device_id)
    return device


def _applied(ctx: Ctx, wait: bool) -> dict[str, Any]:
    if not wait:
        return {}
    try:
        took = wait_applied(ctx.conn, timeout_s=20)
    except TimeoutError as exc:
        raise ApiError(504, "wait", f"{exc}; the change is stored and takes effect when the "
                                    "broker sync catches up") from None
    return {"applied_after_s": None if took is None else round(took, 3)}


@router.put("/gateways/{gateway_id}", status_code=200)
def put_gateway(gateway_id: PathId, body: GatewayIn, response: Response,
                ctx: Ctx = WRITE) -> dict[str, Any]:
    """Register a gateway (201) or change its name or building (200)."""
    conn = ctx.conn
    check(conn, ctx.actor, "gateway", gateway_id)
    if ctx.actor.scope.restricted and body.building_id is not None:
        check_place(ctx.actor, f"building:{body.building_id}",
                    place_of(conn, "building", body.building_id), f"building {body.building_id}")
    with conn.transaction():
        before, after = gateways.put_gateway(conn, gateway_id, body.name, body.building_id)
        check(conn, ctx.actor, "gateway", gateway_id)
        if before != after:
            audit.record(conn, ctx.actor, ctx.request_id, "gateway.put",
                         f"gateway:{gateway_id}", before, after)
    response.status_code = 201 if before is None else 200
    return {**out(after), "meters": gateways.meters_of(conn, gateway_id)}


@router.get("/gateways")
def list_gateways(ctx: Ctx = READ, limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
    found = rows(ctx.conn, f"""
        SELECT g.gateway_id, g.name, g.building_id, g.created_at,
               (SELECT count(*) FROM meters m WHERE m.gateway_id = g.gateway_id) AS meters,
               EXISTS (SELECT 1 FROM device_credentials c WHERE c.gateway_id = g.gateway_id
                       AND c.revoked_at IS NULL) AS credential
        FROM mqtt_gateways g WHERE {in_scope_sql("gateway", "g.gateway_id")}
        ORDER BY g.gateway_id LIMIT %(limit)s OFFSET %(offset)s""",
                 {"limit": limit, "offset": offset, **ctx.actor.scope.params()})
    return page(found, limit, offset)


@router.get("/gateways/{gateway_id}")
def get_gateway(gateway_id: PathId, ctx: Ctx = READ) -> dict[str, Any]:
    """The gateway, the meters behind it and its live credential (never a password)."""
    check(ctx.conn, ctx.actor, "gateway", gateway_id)
    row = gateways.gateway(ctx.conn, gateway_id)
    if row is None:
        raise ApiError(404, "gateway_id", f"no gateway {gateway_id!r}")
    live = creds.live(ctx.conn, creds.Device("gateway", gateway_id))
    return {**out(row), "meters": gateways.meters_of(ctx.conn, gateway_id),
            "credential": live.as_dict() if live else None}


@router.post("/gateways/{gateway_id}/meters")
def attach_meters(gateway_id: PathId, body: MetersIn, ctx: Ctx = WRITE,
                  wait: WaitQ = False) -> dict[str, Any]:
    """Register MQTT meters behind the gateway: it may then speak for them."""
    conn = ctx.conn
    check(conn, ctx.actor, "gateway", gateway_id)
    for meter_id in body.meter_ids:
        check(conn, ctx.actor, "meter", meter_id)
    with conn.transaction():
        changed = gateways.attach(conn, gateway_id, body.meter_ids)
        if changed:
            audit.record(conn, ctx.actor, ctx.request_id, "gateway.attach",
                         f"gateway:{gateway_id}", None, {"meter_ids": changed})
    return {"gateway_id": gateway_id, "attached": changed,
            "meters": gateways.meters_of(conn, gateway_id), **_applied(ctx, wait)}


@router.post("/gateways/{gateway_id}/detach")
def detach_meters(gateway_id: PathId, body: MetersIn, ctx: Ctx = WRITE,
                  wait: WaitQ = False) -> dict[str, Any]:
    """Take meters from behind the gateway: it may no longer speak for them."""
    conn = ctx.conn
    check(conn, ctx.actor, "gateway", gateway_id)
    with conn.transaction():
        if gateways.gateway(conn, gateway_id, lock=True) is None:
            raise ApiError(404, "gateway_id", f"no gateway {gateway_id!r}")
        changed = gateways.detach(conn, gateway_id, body.meter_ids)
        if changed:
            audit.record(conn, ctx.actor, ctx.request_id, "gateway.detach",
                         f"gateway:{gateway_id}", {"meter_ids": changed}, None)
    return {"gateway_id": gateway_id, "detached": changed,
            "meters": gateways.meters_of(conn, gateway_id), **_applied(ctx, wait)}


@router.get("/devices/{device_id}/credentials")
def list_credentials(device_id: PathId, kind: KindQ = None, ctx: Ctx = READ
                     ) -> dict[str, Any]:
    """Every credential the meter or gateway has had (never a password)."""
    device = _device(ctx, device_id, kind)
    return {"kind": device.kind, "device_id": device.device_id,
            "items": [c.as_dict() for c in creds.history(ctx.conn, device)]}


@router.post("/devices/{device_id}/credentials", status_code=201)
def create_credential(device_id: PathId, request: Request, kind: KindQ = None,
                      wait: WaitQ = False, ctx: Ctx = WRITE) -> dict[str, Any]:
    """The device's first MQTT credential; ``password`` is shown now and never again."""
    settings: Settings = request.app.state.settings
    with ctx.conn.transaction():
        device = _device(ctx, device_id, kind)
        issued = creds.create(ctx.conn, device, ctx.actor.name, reserved(settings))
        audit.record(ctx.conn, ctx.actor, ctx.request_id, "device.credential.create",
                     f"{device.kind}:{device.device_id}", None, issued.credential.as_dict())
    return {**issued.as_dict(), **_applied(ctx, wait)}


@router.post("/devices/{device_id}/credentials/rotate", status_code=201)
def rotate_credential(device_id: PathId, request: Request, kind: KindQ = None,
                      wait: WaitQ = False, ctx: Ctx = WRITE) -> dict[str, Any]:
    """Replace the device's credential: the old password stops working at the broker."""
    settings: Settings = request.app.state.settings
    with ctx.conn.transaction():
        device = _device(ctx, device_id, kind)
        old, issued = creds.rotate(ctx.conn, device, ctx.actor.name, reserved(settings))
        audit.record(ctx.conn, ctx.actor, ctx.request_id, "device.credential.rotate",
                     f"{device.kind}:{device.device_id}", old.as_dict(),
                     issued.credential.as_dict())
    return {**issued.as_dict(), "replaces": old.credential_id, **_applied(ctx, wait)}


@router.delete("/devices/{device_id}/credentials")
def revoke_credential(device_id: PathId, kind: KindQ = None, wait: WaitQ = False,
                      ctx: Ctx = WRITE) -> dict[str, Any]:
    """Cut the device off: its credential is revoked and the broker drops it on reload."""
    with ctx.conn.transaction():
        device = _device(ctx, device_id, kind)
        before = creds.live(ctx.conn, device)
        revoked = creds.revoke(ctx.conn, device, ctx.actor.name)
        audit.record(ctx.conn, ctx.actor, ctx.request_id, "device.credential.revoke",
                     f"{device.kind}:{device.device_id}",
                     before.as_dict() if before else None, revoked.as_dict())
    return {**revoked.as_dict(), **_applied(ctx, wait)}
