"""The MQTT contract of meters and gateways that push (pure: no I/O).

Topics (``{meter_id}`` as in the raw-readings contract: 1-64 of ``A-Z a-z 0-9 . _ : -``)::

    meters/{meter_id}/readings   meter -> MeterFlow   {"ts", "energy_kwh" | "volume_m3", bands}
    meters/{meter_id}/commands   MeterFlow -> meter   {"command_id", "action", "issued_at",
                                                       "expires_at"}
    meters/{meter_id}/acks       meter -> MeterFlow   {"command_id", "status", "detail"}

Readings: ``ts`` is ISO 8601 with a UTC offset; exactly one of ``energy_kwh`` (kWh) or
``volume_m3`` (m3); the time-of-use registers ``sharp``, ``peak``, ``flat``, ``valley`` only
with ``energy_kwh``. Numbers may be JSON numbers or decimal strings and are read from their
text as Decimal. Unknown fields are refused; every refusal names the field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from contracts.errors import PayloadError, json_object
from contracts.raw_reading import BANDS, RawReading, parse_raw_reading

TOPIC_ROOT = "meters"
READINGS_FILTER = f"{TOPIC_ROOT}/+/readings"
COMMANDS_FILTER = f"{TOPIC_ROOT}/+/commands"
ACKS_FILTER = f"{TOPIC_ROOT}/+/acks"
METER_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
Kind = Literal["readings", "commands", "acks"]
MeterAckStatus = Literal["applied", "failed"]
READING_FIELDS = frozenset({"ts", "energy_kwh", "volume_m3", *BANDS})


def topic(meter_id: str, kind: Kind) -> str:
    if not METER_ID.match(meter_id):
        raise ValueError(f"meter id {meter_id!r} is not 1-64 of A-Z a-z 0-9 . _ : -")
    return f"{TOPIC_ROOT}/{meter_id}/{kind}"


def meter_of(mqtt_topic: str, kind: Kind) -> str:
    """The meter id of ``meters/{id}/{kind}``; PayloadError for any other topic."""
    parts = mqtt_topic.split("/")
    if len(parts) != 3 or parts[0] != TOPIC_ROOT or parts[2] != kind:
        raise PayloadError(f"topic {mqtt_topic!r}: expected {TOPIC_ROOT}/{{meter_id}}/{kind}")
    if not METER_ID.match(parts[1]):
        raise PayloadError(f"topic {mqtt_topic!r}: meter id is not 1-64 of A-Z a-z 0-9 . _ : -")
    return parts[1]


def _json_object(payload: bytes) -> dict[str, Any]:
    """Numbers stay their text, to be read as Decimal."""
    return json_object(payload, parse_float=str, parse_int=str)


def parse_reading(mqtt_topic: str, payload: bytes, *, source: str = "mqtt") -> RawReading:
    """``meters/{id}/readings`` message -> RawReading; PayloadError naming the field."""
    meter_id = meter_of(mqtt_topic, "readings")
    body = _json_object(payload)
    unknown = sorted(set(body) - READING_FIELDS)
    if unknown:
        raise PayloadError(f"field {unknown[0]}: unknown field")
    if "ts" not in body:
        raise PayloadError("field ts: missing")
    has_energy, has_volume = "energy_kwh" in body, "volume_m3" in body
    if has_energy == has_volume:
        raise PayloadError(
            "field energy_kwh/volume_m3: exactly one is required"
            + (" (both given)" if has_energy else "")
        )
    if has_volume:
        bands = [b for b in BANDS if b in body]
        if bands:
            raise PayloadError(f"field {bands[0]}: band registers go with energy_kwh only")
    value_field = "energy_kwh" if has_energy else "volume_m3"
    ts = _aware(body["ts"], "ts").isoformat()
    normalised: dict[str, Any] = {
        "meter_id": meter_id,
        "ts": ts,
        "value": body[value_field],
        "unit": "kWh" if has_energy else "m3",
        "source": source,
    }
    for band in BANDS:
        if band in body:
            normalised[band] = body[band]
    for name, value in normalised.items():
        if name in ("meter_id", "source"):
            continue
        if not isinstance(value, str):
            shown = value_field if name == "value" else name
            raise PayloadError(f"field {shown}: expected a string or number, got "
                               f"{type(value).__name__}")
    try:
        return parse_raw_reading(json.dumps(normalised).encode())
    except PayloadError as exc:
        reason = exc.reason.replace("field value:", f"field {value_field}:", 1)
        raise PayloadError(reason) from None


def reading_payload(ts: datetime, value: Decimal, *, water: bool,
                    bands: dict[str, Decimal] | None = None) -> bytes:
    """What a meter publishes (used by the simulators and tests)."""
    name = "volume_m3" if water else "energy_kwh"
    body: dict[str, str] = {"ts": ts.isoformat(), name: str(value)}
    for band, register in (bands or {}).items():
        body[band] = str(register)
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class MeterCommand:
    command_id: str
    action: Literal["disconnect", "reconnect"]
    issued_at: datetime
    expires_at: datetime | None = None

    def to_json(self) -> bytes:
        body = {"command_id": self.command_id, "action": self.action,
                "issued_at": self.issued_at.isoformat()}
        if self.expires_at is not None:
            body["expires_at"] = self.expires_at.isoformat()
        return json.dumps(body, separators=(",", ":")).encode()


def _aware(text: Any, name: str) -> datetime:
    if not isinstance(text, str):
        raise PayloadError(f"field {name}: expected an ISO 8601 string")
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PayloadError(f"field {name}: {exc}") from exc
    if when.tzinfo is None or when.utcoffset() is None:
        raise PayloadError(f"field {name}: timestamp has no UTC offset")
    return when


def parse_command(payload: bytes) -> MeterCommand:
    """What a meter receives on ``meters/{id}/commands`` (meter side)."""
    body = _json_object(payload)
    command_id = body.get("command_id")
    if not isinstance(command_id, str) or not command_id:
        raise PayloadError("field command_id: missing or not a string")
    action = body.get("action")
    if action not in ("disconnect", "reconnect"):
        raise PayloadError(f"field action: must be disconnect or reconnect, not {action!r}")
    expires = body.get("expires_at")
    return MeterCommand(
        command_id, action, _aware(body.get("issued_at"), "issued_at"),
        _aware(expires, "expires_at") if expires is not None else None,
    )


@dataclass(frozen=True)
class MeterAck:
    command_id: str
    status: MeterAckStatus
    detail: str = ""

    def to_json(self) -> bytes:
        return json.dumps({"command_id": self.command_id, "status": self.status,
                           "detail": self.detail}, separators=(",", ":")).encode()


def parse_ack(payload: bytes) -> MeterAck:
    body = _json_object(payload)
    command_id = body.get("command_id")
    if not isinstance(command_id, str) or not command_id:
        raise PayloadError("field command_id: missing or not a string")
    status = body.get("status")
    if status not in ("applied", "failed"):
        raise PayloadError(f"field status: must be applied or failed, not {status!r}")
    detail = body.get("detail", "")
    if not isinstance(detail, str):
        raise PayloadError("field detail: expected a string")
    return MeterAck(command_id, status, detail)
