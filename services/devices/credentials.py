"""Per-device MQTT credentials: create, rotate, revoke, list (database work only).

Each MQTT meter or gateway has at most one live credential; its user name is the device
id and its password 192 random bits, shown once when it is made (only the PBKDF2 hash is
stored, :mod:`services.devices.passwords`). Rotating revokes the live one and makes a new
one in the same transaction: the old password stops working when the broker reloads, so
give the device its new password first. Revoking leaves the device without credentials;
the broker drops it on its next reload, within a second or two of the commit when the
broker sync runs. Functions run in the caller's transaction (the API audits in it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import psycopg

from contracts.errors import RefusedRequest
from services.devices.passwords import hash_password, new_secret

Kind = Literal["meter", "gateway"]
USER_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
COLUMNS = ("credential_id, CASE WHEN meter_id IS NOT NULL THEN 'meter' ELSE 'gateway' END, "
           "coalesce(meter_id, gateway_id), username, created_at, created_by, revoked_at, "
           "revoked_by, revoke_reason")


class DeviceError(RefusedRequest):
    """A device request that cannot be done; ``field`` names the culprit."""


@dataclass(frozen=True, slots=True)
class Device:
    kind: Kind
    device_id: str


@dataclass(frozen=True, slots=True)
class Credential:
    credential_id: int
    kind: Kind
    device_id: str
    username: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None

    def as_dict(self) -> dict[str, object]:
        return {"credential_id": self.credential_id, "kind": self.kind,
                "device_id": self.device_id, "username": self.username,
                "created_at": self.created_at.isoformat(), "created_by": self.created_by,
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
                "revoked_by": self.revoked_by, "revoke_reason": self.revoke_reason}


@dataclass(frozen=True, slots=True)
class Issued:
    """A credential just made: the password is here and nowhere else."""

    credential: Credential
    password: str

    def as_dict(self) -> dict[str, object]:
        return {**self.credential.as_dict(), "password": self.password}


def _credential(row: tuple[Any, ...]) -> Credential:
    return Credential(int(row[0]), row[1], str(row[2]), str(row[3]), row[4], str(row[5]),
                      row[6], row[7], row[8])


def resolve(conn: psycopg.Connection, device_id: str, kind: Kind | None = None) -> Device:
    """The meter or gateway of that id (``kind`` decides when both exist)."""
    meter = None if kind == "gateway" else conn.execute(
        "SELECT protocol, removed_at FROM meters WHERE meter_id = %s", (device_id,)).fetchone()
    gateway = None if kind == "meter" else conn.execute(
        "SELECT 1 FROM mqtt_gateways WHERE gateway_id = %s", (device_id,)).fetchone()
    if meter is not None and gateway is not None:
        raise DeviceError("kind", f"{device_id} is both a meter and a gateway: say which")
    if gateway is not None:
        return Device("gateway", device_id)
    if meter is None:
        what = {"meter": "meter", "gateway": "gateway"}.get(kind or "", "meter or gateway")
        raise DeviceError("device_id", f"no {what} {device_id!r}", 404)
    if meter[0] != "mqtt":
        raise DeviceError("device_id", f"meter {device_id} is read over {meter[0]}, not MQTT: "
                                       "only MQTT meters and gateways get MQTT credentials")
    return Device("meter", device_id)


def live(conn: psycopg.Connection, device: Device) -> Credential | None:
    column = "meter_id" if device.kind == "meter" else "gateway_id"
    row = conn.execute(f"SELECT {COLUMNS} FROM device_credentials WHERE {column} = %s "
                       "AND revoked_at IS NULL FOR UPDATE", (device.device_id,)).fetchone()
    return None if row is None else _credential(row)


def _issue(conn: psycopg.Connection, device: Device, by: str,
           reserved: frozenset[str]) -> Issued:
    username = device.device_id
    if not USER_NAME.match(username):
        raise DeviceError("device_id", f"{username!r} cannot be an MQTT user name (only A-Z "
                                       "a-z 0-9 . _ -; Mosquitto's password file separates "
                                       "with ':'): put the meter behind a gateway")
    if username in reserved:
        raise DeviceError("device_id", f"{username} is the name of a platform MQTT user", 409)
    taken = conn.execute("SELECT coalesce(meter_id, gateway_id) FROM device_credentials "
                         "WHERE username = %s AND revoked_at IS NULL", (username,)).fetchone()
    if taken is not None:
        raise DeviceError("device_id", f"the MQTT user name {username} is in use by another "
                                       "device's live credential", 409)
    password = new_secret()
    digest = hash_password(password)
    row = conn.execute(
        "INSERT INTO device_credentials (meter_id, gateway_id, username, salt, iterations, "
        f"password_hash, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {COLUMNS}",
        (device.device_id if device.kind == "meter" else None,
         device.device_id if device.kind == "gateway" else None, username, digest.salt,
         digest.iterations, digest.hash_hex, by[:200])).fetchone()
    assert row is not None
    return Issued(_credential(row), password)


def create(conn: psycopg.Connection, device: Device, by: str,
           reserved: frozenset[str] = frozenset()) -> Issued:
    """A first credential (409 when the device has a live one: rotate it instead)."""
    if live(conn, device) is not None:
        raise DeviceError("device_id", f"{device.kind} {device.device_id} already has a live "
                                       "credential: rotate it, or revoke it first", 409)
    return _issue(conn, device, by, reserved)


def _revoke(conn: psycopg.Connection, credential: Credential, by: str,
            reason: str) -> Credential:
    row = conn.execute(f"UPDATE device_credentials SET revoked_at = now(), revoked_by = %s, "
                       f"revoke_reason = %s WHERE credential_id = %s RETURNING {COLUMNS}",
                       (by[:200], reason, credential.credential_id)).fetchone()
    assert row is not None
    return _credential(row)


def rotate(conn: psycopg.Connection, device: Device, by: str,
           reserved: frozenset[str] = frozenset()) -> tuple[Credential, Issued]:
    """Revoke the live credential and make a new one: (the old one, the new one)."""
    current = live(conn, device)
    if current is None:
        raise DeviceError("device_id", f"{device.kind} {device.device_id} has no live "
                                       "credential to rotate: create one", 409)
    old = _revoke(conn, current, by, "rotated")
    return old, _issue(conn, device, by, reserved)


def revoke(conn: psycopg.Connection, device: Device, by: str) -> Credential:
    current = live(conn, device)
    if current is None:
        raise DeviceError("device_id", f"{device.kind} {device.device_id} has no live "
                                       "credential", 404)
    return _revoke(conn, current, by, "revoked")


def history(conn: psycopg.Connection, device: Device) -> list[Credential]:
    column = "meter_id" if device.kind == "meter" else "gateway_id"
    return [_credential(r) for r in conn.execute(
        f"SELECT {COLUMNS} FROM device_credentials WHERE {column} = %s ORDER BY credential_id",
        (device.device_id,)).fetchall()]
