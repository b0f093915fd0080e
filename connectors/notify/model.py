"""What the notifier reads: alarms and meter events, parsed strictly (pure, no I/O).

Schemas: docs/contracts.md (``meterflow.alarms``, ``meterflow.meter.events``). Types are
checked field by field and a refusal names the field (``field at: timestamp has no UTC
offset``); fields added by a producer are ignored, so extending a payload never stops the
notifier. The billing core decides alarm levels and thresholds; they are read, not judged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.errors import PayloadError, json_object
from contracts.topics import ALARMS, METER_EVENTS

ALARM_KINDS = ("low_balance", "disconnect", "reconnect", "disconnect_deferred",
               "disconnect_cancelled", "refused", "command_retry", "command_abandoned",
               "notification_failed", "bill_issued", "bill_overdue",
               "payment_mismatch")
METER_KINDS = ("offline", "online", "unrated", "meter_stopped")
EVENT_KINDS = ALARM_KINDS + METER_KINDS
#: The notifier's own alarm: a notification that could not be delivered.
META_KIND = "notification_failed"

_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Event:
    """One alarm or meter event, whatever topic it came from."""

    source_id: str
    kind: str
    at: datetime
    account_id: str | None = None
    meter_id: str | None = None
    level: int | None = None
    balance_fen: int | None = None
    threshold_fen: int | None = None
    detail: str = ""
    notification_id: str | None = None  # notification_failed: the notification it is about

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, for webhooks and the stored message."""
        return {
            "source_id": self.source_id, "kind": self.kind, "at": self.at.isoformat(),
            "account_id": self.account_id, "meter_id": self.meter_id, "level": self.level,
            "balance_fen": self.balance_fen, "threshold_fen": self.threshold_fen,
            "detail": self.detail, "notification_id": self.notification_id,
        }


def _id(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise PayloadError(f"field {name}: missing")
        return None
    if not isinstance(value, str) or not _ID.match(value):
        raise PayloadError(f"field {name}: {value!r} is not 1-128 of A-Z a-z 0-9 . _ : -")
    return value


def _kind(body: dict[str, Any]) -> str:
    value = body.get("kind")
    if not isinstance(value, str) or not _KIND.match(value):
        raise PayloadError(f"field kind: {value!r} is not a kind name")
    return value


def _fen(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError(f"field {name}: {value!r} is not an integer number of fen")
    return value


def _instant(body: dict[str, Any], name: str) -> datetime:
    value = body.get(name)
    if not isinstance(value, str):
        raise PayloadError(f"field {name}: missing or not an ISO 8601 timestamp")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError(f"field {name}: {value!r} is not an ISO 8601 timestamp") from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise PayloadError(f"field {name}: timestamp has no UTC offset")
    return at


def _detail(body: dict[str, Any]) -> str:
    value = body.get("detail", "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"field detail: {value!r} is not text")
    return value[:500]


def parse_alarm(raw: bytes | None) -> Event:
    """A ``meterflow.alarms`` record (low-balance, supply decisions, refusals, meta-alarms)."""
    body = json_object(raw)
    source_id = _id(body, "alarm_id")
    kind = _kind(body)
    # a meta-alarm about a meter's event may have no account
    account_id = _id(body, "account_id", required=kind != META_KIND)
    level = body.get("level")
    if kind == "low_balance":
        if isinstance(level, bool) or level not in (1, 2, 3):
            raise PayloadError(f"field level: {level!r} is not an alarm level 1, 2 or 3")
        if _fen(body, "threshold_fen") is None or _fen(body, "balance_fen") is None:
            raise PayloadError("field threshold_fen/balance_fen: a low_balance alarm needs both")
    elif level is not None:
        raise PayloadError(f"field level: {level!r} given for a {kind} alarm (only low_balance)")
    assert source_id is not None
    return Event(
        source_id=source_id, kind=kind, at=_instant(body, "at"), account_id=account_id,
        meter_id=_id(body, "meter_id", required=False), level=level,
        balance_fen=_fen(body, "balance_fen"),
        threshold_fen=_fen(body, "threshold_fen"), detail=_detail(body),
        notification_id=_id(body, "notification_id", required=kind == META_KIND),
    )


def parse_meter_event(raw: bytes | None) -> Event:
    """A ``meterflow.meter.events`` record (online, offline, unrated, meter_stopped)."""
    body = json_object(raw)
    source_id = _id(body, "event_id")
    meter_id = _id(body, "meter_id")
    assert source_id is not None
    return Event(source_id=source_id, kind=_kind(body), at=_instant(body, "at"),
                 meter_id=meter_id, detail=_detail(body))


def parse(topic: str, raw: bytes | None) -> Event:
    if topic == ALARMS:
        return parse_alarm(raw)
    if topic == METER_EVENTS:
        return parse_meter_event(raw)
    raise PayloadError(f"topic {topic} is not read by the notifier")
