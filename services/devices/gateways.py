"""MQTT gateways: one connection, one identity, for the meters registered behind it.

A gateway publishes and receives on the topics of its meters only (the broker's ACL,
docs/contracts.md#mqtt-users-and-rights). Only MQTT meters can be behind a gateway; a meter
is behind one gateway at most. Functions run in the caller's transaction.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg.rows import dict_row

from services.devices.credentials import DeviceError

GATEWAY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
COLUMNS = "gateway_id, name, building_id, created_at"


def gateway(conn: psycopg.Connection, gateway_id: str, *, lock: bool = False
            ) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT {COLUMNS} FROM mqtt_gateways WHERE gateway_id = %s"
                           + (" FOR UPDATE" if lock else ""), (gateway_id,)).fetchone()


def put_gateway(conn: psycopg.Connection, gateway_id: str, name: str,
                building_id: str | None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Create or change a gateway: (before, after)."""
    if not GATEWAY_ID.match(gateway_id):
        raise DeviceError("gateway_id", f"{gateway_id!r} is not 1-64 of A-Z a-z 0-9 . _ - "
                                        "(it is the gateway's MQTT user name)")
    if building_id is not None and conn.execute(
            "SELECT 1 FROM buildings WHERE building_id = %s", (building_id,)).fetchone() is None:
        raise DeviceError("building_id", f"no building {building_id!r}", 404)
    before = gateway(conn, gateway_id, lock=True)
    conn.execute("INSERT INTO mqtt_gateways (gateway_id, name, building_id) VALUES (%s, %s, %s) "
                 "ON CONFLICT (gateway_id) DO UPDATE SET name = excluded.name, "
                 "building_id = excluded.building_id", (gateway_id, name, building_id))
    after = gateway(conn, gateway_id)
    assert after is not None
    return before, after


def meters_of(conn: psycopg.Connection, gateway_id: str) -> list[str]:
    return [str(r[0]) for r in conn.execute(
        "SELECT meter_id FROM meters WHERE gateway_id = %s ORDER BY meter_id",
        (gateway_id,)).fetchall()]


def attach(conn: psycopg.Connection, gateway_id: str, meter_ids: list[str]) -> list[str]:
    """Register meters behind a gateway (moving them from another one); returns those
    whose gateway changed."""
    if gateway(conn, gateway_id, lock=True) is None:
        raise DeviceError("gateway_id", f"no gateway {gateway_id!r}", 404)
    changed = []
    for meter_id in dict.fromkeys(meter_ids):
        row = conn.execute("SELECT protocol, gateway_id FROM meters WHERE meter_id = %s "
                           "FOR UPDATE", (meter_id,)).fetchone()
        if row is None:
            raise DeviceError("meter_ids", f"no meter {meter_id!r}", 404)
        if row[0] != "mqtt":
            raise DeviceError("meter_ids", f"meter {meter_id} is read over {row[0]}, not "
                                           "MQTT: it cannot be behind an MQTT gateway")
        if row[1] != gateway_id:
            conn.execute("UPDATE meters SET gateway_id = %s WHERE meter_id = %s",
                         (gateway_id, meter_id))
            changed.append(meter_id)
    return changed


def detach(conn: psycopg.Connection, gateway_id: str, meter_ids: list[str]) -> list[str]:
    """Take meters from behind a gateway; returns those that were behind it."""
    return [str(r[0]) for r in conn.execute(
        "UPDATE meters SET gateway_id = NULL WHERE gateway_id = %s AND meter_id = ANY(%s) "
        "RETURNING meter_id", (gateway_id, list(meter_ids))).fetchall()]
