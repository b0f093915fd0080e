"""Meters: register, change, list, show (with the tariff in force and the scheduled ones),
and replace one by another with the old meter's final and the new meter's first reading.

Replacement (docs/tariffs.md, Readings): the final reading goes to the old meter and the
first reading to the new one, both as raw readings through the outbox, so the pipeline
rates the old meter up to its final reading and takes the new one's first as its baseline.
The old meter stays configured for ``REMOVAL_GRACE`` after the replacement so its final
reading is still rated, then counts as removed.

A restricted operator registers meters only into a room or an account of their scope and
sees and changes only meters there (a meter is where its room is, else its account).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from psycopg.types.json import Jsonb
from pydantic import Field

from contracts.raw_reading import RawReading
from contracts.topics import RAW_READINGS
from meterflow.api import audit
from meterflow.api.auth import Ctx, require
from meterflow.api.errors import ApiError
from meterflow.api.places import check
from meterflow.api.routers.common import Limit, Model, Offset, PathId, one, out, page, rows
from meterflow.api.scope import in_scope_sql
from meterflow.api.types import Id, TariffId

router = APIRouter(tags=["meters"])
READ = Depends(require("read"))
WRITE = Depends(require("meters.write"))
REMOVAL_GRACE = timedelta(minutes=5)
MULTIPLIER_RE = r"^[0-9]{1,8}(\.[0-9]{1,4})?$"
READING_RE = r"^[0-9]{1,11}(\.[0-9]{1,3})?$"
ENDPOINT_RE = r"^((tcp|rtu\+tcp|mqtt)://[A-Za-z0-9.-]+:[0-9]{1,5})?$"
OptId = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
COLUMNS = ("meter_id, commodity, protocol, model, address, endpoint, multiplier, account_id, "
           "room_id, tariff_id, expected_interval_s, removed_at, created_at")


class MeterIn(Model):
    meter_id: Id
    commodity: Literal["electricity", "water"]
    protocol: Literal["modbus", "dlt645", "cjt188", "mqtt"]
    model: str = Field("", max_length=64, pattern=r"^[A-Za-z0-9._-]*$")
    address: str = Field("", pattern=r"^[A-Za-z0-9]{0,32}$")
    endpoint: str = Field("", pattern=ENDPOINT_RE, max_length=100)
    multiplier: str = Field("1", pattern=MULTIPLIER_RE, description="CT/PT ratio as text")
    expected_interval_s: int = Field(900, ge=1, le=86400 * 31)
    room_id: Id | None = None
    account_id: Id | None = None
    tariff_id: TariffId | None = None


class MeterPatch(Model):
    model: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9._-]*$")
    address: str | None = Field(None, pattern=r"^[A-Za-z0-9]{0,32}$")
    endpoint: str | None = Field(None, pattern=ENDPOINT_RE, max_length=100)
    multiplier: str | None = Field(None, pattern=MULTIPLIER_RE)
    expected_interval_s: int | None = Field(None, ge=1, le=86400 * 31)
    room_id: Id | None = None
    account_id: Id | None = None


def meter_row(ctx: Ctx, meter_id: str, *, lock: bool = False) -> dict[str, Any]:
    row = one(ctx.conn, f"SELECT {COLUMNS} FROM meters WHERE meter_id = %s"
              + (" FOR UPDATE" if lock else ""), (meter_id,))
    if row is None:
        raise ApiError(404, "meter_id", f"no meter {meter_id!r}")
    return row


def _check_refs(ctx: Ctx, values: dict[str, Any], commodity: str) -> None:
    for table, column in (("rooms", "room_id"), ("accounts", "account_id")):
        value = values.get(column)
        if value is not None and one(ctx.conn, f"SELECT 1 AS x FROM {table} WHERE {column} = %s",
                                     (value,)) is None:
            raise ApiError(404, column, f"no {column.removesuffix('_id')} {value!r}")
    # the room and the account a meter is given must both be in scope: a meter in one's own
    # room must not bill another site's account
    check(ctx.conn, ctx.actor, "room", values.get("room_id"))
    check(ctx.conn, ctx.actor, "account", values.get("account_id"))
    tariff = values.get("tariff_id")
    if tariff is not None:
        check_tariff(ctx, tariff, commodity, "tariff_id")
    if values.get("multiplier") is not None and Decimal(values["multiplier"]) == 0:
        raise ApiError(400, "multiplier", "must be greater than zero")


def check_tariff(ctx: Ctx, tariff_id: str, commodity: str, field: str) -> None:
    """The tariff exists and prices the meter's commodity."""
    from services.accounts.changes import Missing, stored_tariff

    try:
        spec = stored_tariff(ctx.conn, tariff_id)
    except Missing:
        raise ApiError(404, field, f"no tariff {tariff_id!r}") from None
    if spec.commodity != commodity:
        raise ApiError(400, field, f"tariff {tariff_id} prices {spec.commodity}, "
                                   f"not {commodity}")


@router.post("/meters", status_code=201)
def register_meter(body: MeterIn, response: Response, ctx: Ctx = WRITE) -> dict[str, Any]:
    """Register a meter (201); the same again is 200, a disagreeing one 409 naming the field."""
    values = body.model_dump()
    conn = ctx.conn
    check(conn, ctx.actor, "meter", body.meter_id)
    with conn.transaction():
        existing = one(conn, f"SELECT {COLUMNS} FROM meters WHERE meter_id = %s FOR UPDATE",
                       (body.meter_id,))
        if existing is not None:
            for name, asked in values.items():
                stored = existing[name]
                if name == "multiplier":
                    stored, asked = Decimal(stored), Decimal(asked)
                if stored != asked:
                    raise ApiError(409, name, f"meter {body.meter_id} already has {stored!r}, "
                                              f"not {asked!r} (PATCH it to change it)")
            response.status_code = 200
            return dict(out(existing))
        _check_refs(ctx, values, body.commodity)
        cols = list(values)
        row = one(conn, f"INSERT INTO meters ({', '.join(cols)}) VALUES "
                  f"({', '.join(['%s'] * len(cols))}) RETURNING {COLUMNS}",
                  [Decimal(v) if k == "multiplier" else v for k, v in values.items()])
        check(conn, ctx.actor, "meter", body.meter_id)  # registered where the scope reaches
        audit.record(conn, ctx.actor, ctx.request_id, "meter.register",
                     f"meter:{body.meter_id}", None, row)
    return dict(out(row))


@router.get("/meters")
def list_meters(ctx: Ctx = READ, account_id: OptId = None, room_id: OptId = None,
                protocol: Literal["modbus", "dlt645", "cjt188", "mqtt"] | None = None,
                limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
    check(ctx.conn, ctx.actor, "account", account_id)
    check(ctx.conn, ctx.actor, "room", room_id)
    found = rows(ctx.conn, f"""
        SELECT {COLUMNS} FROM meters
        WHERE (%(a)s::text IS NULL OR account_id = %(a)s)
          AND (%(r)s::text IS NULL OR room_id = %(r)s)
          AND (%(p)s::text IS NULL OR protocol = %(p)s)
          AND {in_scope_sql("meter", "meter_id")}
        ORDER BY meter_id LIMIT %(limit)s OFFSET %(offset)s""",
        {"a": account_id, "r": room_id, "p": protocol, "limit": limit, "offset": offset,
         **ctx.actor.scope.params()})
    return page(found, limit, offset)


@router.get("/meters/{meter_id}")
def get_meter(meter_id: PathId, ctx: Ctx = READ) -> dict[str, Any]:
    """The meter, the tariff in force now and every assignment (past and scheduled)."""
    check(ctx.conn, ctx.actor, "meter", meter_id)
    row = meter_row(ctx, meter_id)
    in_force = one(ctx.conn, "SELECT tariff_id FROM meter_tariffs WHERE meter_id = %s",
                   (meter_id,))
    row["tariff_in_force"] = in_force["tariff_id"] if in_force else None
    row["assignments"] = rows(ctx.conn, """
        SELECT assignment_id, tariff_id, effective_from, created_by,
               effective_from > now() AS scheduled
        FROM tariff_assignments WHERE meter_id = %s ORDER BY effective_from, assignment_id""",
        (meter_id,))
    row["replacement"] = one(ctx.conn, "SELECT * FROM meter_replacements WHERE "
                             "old_meter_id = %s OR new_meter_id = %s", (meter_id, meter_id))
    return dict(out(row))


@router.patch("/meters/{meter_id}")
def patch_meter(meter_id: PathId, body: MeterPatch, ctx: Ctx = WRITE) -> dict[str, Any]:
    """Change a meter's model, address, endpoint, multiplier, interval, room or account."""
    patch = body.model_dump(exclude_unset=True)
    conn = ctx.conn
    check(conn, ctx.actor, "meter", meter_id)
    with conn.transaction():
        before = meter_row(ctx, meter_id, lock=True)
        _check_refs(ctx, patch, before["commodity"])
        if patch:
            sets = ", ".join(f"{name} = %s" for name in patch)
            conn.execute(f"UPDATE meters SET {sets} WHERE meter_id = %s",
                         [*(Decimal(v) if k == "multiplier" and v is not None else v
                            for k, v in patch.items()), meter_id])
        after = meter_row(ctx, meter_id)
        check(conn, ctx.actor, "meter", meter_id)  # still in scope where it is now
        audit.record(conn, ctx.actor, ctx.request_id, "meter.update", f"meter:{meter_id}",
                     before, after)
    return dict(out(after))


class Replacement(Model):
    new_meter_id: Id
    at: datetime = Field(description="When the meter was swapped (ISO 8601 with offset)")
    final_reading: str = Field(pattern=READING_RE, description="Old meter's last register")
    initial_reading: str = Field(pattern=READING_RE, description="New meter's first register")
    protocol: Literal["modbus", "dlt645", "cjt188", "mqtt"] | None = None
    address: str | None = Field(None, pattern=r"^[A-Za-z0-9]{0,32}$")
    model: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9._-]*$")


def _raw(meter_id: str, at: datetime, value: str, unit: Literal["kWh", "m3"]
         ) -> dict[str, Any]:
    """The replacement reading as the raw-readings topic's payload (checked by the route)."""
    return RawReading.model_construct(meter_id=meter_id, ts=at, value=Decimal(value),
                                      unit=unit, source="replacement").as_dict()


@router.post("/meters/{meter_id}/replace", status_code=201)
def replace_meter(meter_id: PathId, body: Replacement, ctx: Ctx = WRITE) -> dict[str, Any]:
    """Replace a meter: the new one takes over its account, room, tariff and commodity."""
    if body.at.tzinfo is None or body.at.utcoffset() is None:
        raise ApiError(422, "at", "timestamp has no UTC offset")
    now = datetime.now(UTC)
    if not now - timedelta(days=31) <= body.at <= now + timedelta(minutes=5):
        raise ApiError(400, "at", "must be within the last 31 days and not in the future")
    if body.new_meter_id == meter_id:
        raise ApiError(400, "new_meter_id", "must differ from the meter replaced")
    conn = ctx.conn
    check(conn, ctx.actor, "meter", meter_id)
    with conn.transaction():
        old = meter_row(ctx, meter_id, lock=True)
        if old["removed_at"] is not None:
            raise ApiError(409, "meter_id", f"meter {meter_id} was removed at "
                                            f"{old['removed_at'].isoformat()}")
        last = one(conn, "SELECT ts, value FROM readings WHERE meter_id = %s "
                   "ORDER BY ts DESC LIMIT 1", (meter_id,))
        if last is not None and (Decimal(body.final_reading) < last["value"]
                                 or body.at <= last["ts"]):
            raise ApiError(400, "final_reading", f"{body.final_reading} at {body.at.isoformat()} "
                           f"would be rejected: the last accepted reading is {last['value']} at "
                           f"{last['ts'].isoformat()}")
        if one(conn, "SELECT 1 AS x FROM meters WHERE meter_id = %s",
               (body.new_meter_id,)) is not None:
            raise ApiError(409, "new_meter_id", f"meter {body.new_meter_id} already exists")
        conn.execute(
            "INSERT INTO meters (meter_id, commodity, protocol, model, address, multiplier, "
            "account_id, room_id, tariff_id, expected_interval_s, endpoint) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, (SELECT tariff_id FROM meter_tariffs WHERE "
            "meter_id = %s), %s, %s)",
            (body.new_meter_id, old["commodity"], body.protocol or old["protocol"],
             body.model if body.model is not None else old["model"],
             body.address if body.address is not None else "", old["multiplier"],
             old["account_id"], old["room_id"], meter_id, old["expected_interval_s"],
             old["endpoint"] if body.protocol in (None, old["protocol"]) else ""))
        conn.execute("UPDATE meters SET removed_at = %s WHERE meter_id = %s",
                     (now + REMOVAL_GRACE, meter_id))
        conn.execute("INSERT INTO meter_replacements (old_meter_id, new_meter_id, at, "
                     "final_reading, initial_reading, created_by) VALUES (%s, %s, %s, %s, %s, %s)",
                     (meter_id, body.new_meter_id, body.at, Decimal(body.final_reading),
                      Decimal(body.initial_reading), ctx.actor.name))
        unit: Literal["kWh", "m3"] = "kWh" if old["commodity"] == "electricity" else "m3"
        for meter, value in ((meter_id, body.final_reading),
                             (body.new_meter_id, body.initial_reading)):
            conn.execute("INSERT INTO outbox (topic, key, payload) VALUES (%s, %s, %s)",
                         (RAW_READINGS, meter, Jsonb(_raw(meter, body.at, value, unit))))
        result = one(conn, "SELECT * FROM meter_replacements WHERE old_meter_id = %s",
                     (meter_id,))
        audit.record(conn, ctx.actor, ctx.request_id, "meter.replace", f"meter:{meter_id}",
                     old, result)
    return dict(out(result))
