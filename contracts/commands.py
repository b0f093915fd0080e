"""Commands and acknowledgements on Kafka: the one model of each topic's payload, used by
every producer (the wallet stage, the API, the dispatcher) and consumer (the dispatcher,
the meter stage, the sinks); docs/contracts.md, commands and acknowledgements.

``meterflow.commands`` (key: meter id)::

    {"command_id": "disconnect:M1:9f2c...", "meter_id": "M1", "action": "disconnect",
     "issued_at": "2026-07-01T10:00:00+08:00", "deadline": "2026-07-01T10:15:00+08:00",
     "reason": "balance exhausted"}

``meterflow.commands.acks`` (key: meter id), exactly one per ``command_id``::

    {"command_id": "...", "meter_id": "M1", "status": "applied", "detail": "relay tripped",
     "at": "2026-07-01T02:00:03.120000+00:00", "attempts": 1}

``status`` is ``applied`` (the meter confirmed), ``failed`` (the meter refused, or the command
cannot be delivered: unknown meter, no relay) or ``expired`` (not confirmed by the deadline).
A value is encoded as compact JSON, fields in this order, instants as written by
``datetime.isoformat``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contracts.errors import PayloadError, json_object
from contracts.ids import command_id as derive_command_id

Action = Literal["disconnect", "reconnect"]
Status = Literal["applied", "failed", "expired"]
ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
METER_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"




def _check_aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp has no UTC offset")
    return value


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    command_id: str = Field(pattern=ID_PATTERN)
    meter_id: str = Field(pattern=METER_PATTERN)
    action: Action
    issued_at: datetime
    deadline: datetime
    reason: str = Field("", max_length=500)

    _aware = field_validator("issued_at", "deadline")(_check_aware)

    @model_validator(mode="after")
    def _order(self) -> Command:
        if self.deadline <= self.issued_at:
            raise ValueError("deadline must be after issued_at")
        return self

    @classmethod
    def create(cls, meter_id: str, action: Action, *, origin: str, issued_at: datetime,
               ttl: timedelta, reason: str = "") -> Command:
        return cls(command_id=derive_command_id(meter_id, action, origin), meter_id=meter_id,
                   action=action, issued_at=issued_at, deadline=issued_at + ttl, reason=reason)

    def as_dict(self) -> dict[str, Any]:
        """The payload as JSON-ready values, in the topic's field order."""
        return {"command_id": self.command_id, "meter_id": self.meter_id, "action": self.action,
                "issued_at": self.issued_at.isoformat(), "deadline": self.deadline.isoformat(),
                "reason": self.reason}

    def to_json(self) -> bytes:
        return msgspec.json.encode(self.as_dict())


class Ack(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    command_id: str = Field(pattern=ID_PATTERN)
    meter_id: str = Field(pattern=METER_PATTERN)
    status: Status
    detail: str = ""
    at: datetime
    attempts: int = Field(0, ge=0)

    _aware = field_validator("at")(_check_aware)

    def as_dict(self) -> dict[str, Any]:
        """The payload as JSON-ready values, in the topic's field order."""
        return {"command_id": self.command_id, "meter_id": self.meter_id, "status": self.status,
                "detail": self.detail, "at": self.at.isoformat(), "attempts": self.attempts}

    def to_json(self) -> bytes:
        return msgspec.json.encode(self.as_dict())


def _first_error(exc: ValidationError) -> PayloadError:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(body)"
    return PayloadError(f"field {field}: {first['msg'].removeprefix('Value error, ')}")


def parse_command(raw: bytes | None) -> Command:
    """A commands-topic value -> Command; PayloadError naming the field."""
    body = json_object(raw)
    try:
        return Command.model_validate(body)
    except ValidationError as exc:
        raise _first_error(exc) from None


def identify(raw: bytes | None) -> tuple[str, str] | None:
    """``(command_id, meter_id)`` of a refused command when both are readable, so that it
    can still be acknowledged ``failed``; ``None`` when the command cannot be identified."""
    try:
        body = json_object(raw)
    except PayloadError:
        return None
    cid, meter = body.get("command_id"), body.get("meter_id")
    if isinstance(cid, str) and isinstance(meter, str):
        try:
            Ack.model_validate({"command_id": cid, "meter_id": meter, "status": "failed",
                                "at": "2000-01-01T00:00:00+00:00", "attempts": 0})
        except ValidationError:
            return None
        return cid, meter
    return None


def parse_ack(raw: bytes | None) -> Ack:
    body = json_object(raw)
    try:
        return Ack.model_validate(body)
    except ValidationError as exc:
        raise _first_error(exc) from None
