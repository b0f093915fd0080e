"""DL/T 645-2007 frames as JSON-ready dictionaries (the ``meterflow frame`` contract).

Field names: ``address`` (12 characters as on the nameplate), ``control`` (two hex
digits), ``direction``, ``kind``, ``di`` (DI3..DI0, eight hex digits), ``value``
(decimal string) and ``unit`` for data replies, ``values`` for data blocks,
``relay_action`` and ``expires`` (ISO 8601 or null) for relay commands, ``error``
(null, or ``{"code": n, "flags": [...]}``) for every frame.
"""

from __future__ import annotations

from datetime import time

from connectors.codec_bcd import fmt_decimal
from connectors.dlt645.codec import Frame
from connectors.dlt645.frame import Function
from connectors.dlt645.identifiers import REGISTRY, MeterDate, Value, di_text
from connectors.dlt645.messages import (
    ErrorResponse,
    OtherMessage,
    ReadRequest,
    ReadResponse,
    RelayCommand,
    RelayResponse,
    TimeSync,
)

JsonValue = str | int | bool | list[str] | dict[str, object] | None


def _value_fields(di: int, value: Value) -> dict[str, JsonValue]:
    item = REGISTRY[di]
    fields: dict[str, JsonValue] = {"name": item.name, "unit": item.unit}
    if isinstance(value, tuple):
        fields["value"] = None
        fields["values"] = [fmt_decimal(v) for v in value]
    elif isinstance(value, MeterDate):
        fields["value"] = value.day.isoformat()
        fields["weekday"] = value.weekday
    elif isinstance(value, time):
        fields["value"] = value.replace(tzinfo=None).isoformat()
    else:
        fields["value"] = fmt_decimal(value)
    return fields


def describe(frame: Frame) -> dict[str, object]:
    """The frame's fields as plain JSON types."""
    out: dict[str, object] = {
        "protocol": "dlt645",
        "address": frame.address,
        "control": f"{frame.control:02X}",
        "direction": frame.direction,
        "follow_up": frame.follow_up,
        "error": None,
    }
    body = frame.body
    if isinstance(body, ReadRequest):
        out |= {"kind": "read-request", "di": di_text(body.di)}
        if body.params:
            out["params"] = body.params.hex().upper()
    elif isinstance(body, ReadResponse):
        out |= {"kind": "read-response", "di": di_text(body.di)}
        out |= _value_fields(body.di, body.value)
    elif isinstance(body, ErrorResponse):
        kind = "relay-error" if body.function == Function.RELAY else "error-response"
        if body.function == Function.READ:
            kind = "read-error"
        out |= {"kind": kind, "error": {"code": body.code, "flags": body.flags}}
    elif isinstance(body, RelayCommand):
        out |= {
            "kind": "relay-command",
            "relay_action": str(body.action),
            "expires": body.expires.isoformat() if body.expires else None,
            "password_level": f"{body.password_level:02X}",
            "password": body.password,
            "operator": body.operator,
        }
    elif isinstance(body, RelayResponse):
        out["kind"] = "relay-response"
    elif isinstance(body, TimeSync):
        out |= {"kind": "time-sync", "time": body.when.isoformat()}
    elif isinstance(body, OtherMessage):
        out |= {"kind": f"function-{frame.control & 0x1F:02X}", "data": body.data.hex().upper()}
    return out
