"""CJ/T 188-2004 frames as JSON-ready dictionaries (the ``meterflow frame`` contract).

Field names: ``meter_type`` (two hex digits), ``address`` (14 digits), ``control``
(two hex digits), ``direction``, ``kind``, ``di`` (four hex digits, DI1 DI0),
``ser``; ``volume``/``unit``, ``settlement_volume``/``settlement_unit``,
``meter_time`` and ``status`` for metering data; ``valve_action`` for valve
commands; ``error`` (null, or ``{"status": {...}}``) for every frame.
"""

from __future__ import annotations

from connectors.cjt188.codec import Frame
from connectors.cjt188.identifiers import DI_VALVE, METER_TYPES, Status, di_text
from connectors.cjt188.messages import (
    ErrorResponse,
    MeteringData,
    OtherMessage,
    ReadRequest,
    ValveCommand,
    WriteRequest,
    WriteResponse,
)
from connectors.codec_bcd import fmt_decimal


def status_fields(status: Status) -> dict[str, object]:
    return {
        "st0": f"{status.st0:02X}",
        "st1": f"{status.st1:02X}",
        "valve": str(status.valve),
        "battery_low": status.battery_low,
    }


def describe(frame: Frame) -> dict[str, object]:
    """The frame's fields as plain JSON types."""
    out: dict[str, object] = {
        "protocol": "cjt188",
        "meter_type": f"{frame.meter_type:02X}",
        "meter_type_name": METER_TYPES.get(frame.meter_type, "unknown"),
        "address": frame.address,
        "control": f"{frame.control:02X}",
        "direction": frame.direction,
        "error": None,
    }
    body = frame.body
    if isinstance(body, ReadRequest):
        out |= {"kind": "read-request", "di": di_text(body.di), "ser": body.ser}
    elif isinstance(body, MeteringData):
        out |= {
            "kind": "metering-data",
            "di": "901F",
            "ser": body.ser,
            "volume": fmt_decimal(body.volume),
            "unit": body.volume_unit,
            "settlement_volume": fmt_decimal(body.settlement_volume),
            "settlement_unit": body.settlement_unit,
            "meter_time": body.meter_time.isoformat() if body.meter_time else None,
            "status": status_fields(body.status),
        }
    elif isinstance(body, ValveCommand):
        out |= {
            "kind": "valve-command",
            "di": di_text(DI_VALVE),
            "ser": body.ser,
            "valve_action": str(body.action),
        }
    elif isinstance(body, WriteRequest):
        out |= {"kind": "write-request", "di": di_text(body.di), "ser": body.ser}
        out["payload"] = body.payload.hex().upper()
    elif isinstance(body, WriteResponse):
        kind = "valve-response" if body.di == DI_VALVE else "write-response"
        out |= {"kind": kind, "di": di_text(body.di), "ser": body.ser}
        out["status"] = status_fields(body.status)
    elif isinstance(body, ErrorResponse):
        out |= {"kind": "error-response", "ser": body.ser}
        if body.di is not None:
            out["di"] = di_text(body.di)
        out["error"] = {"status": status_fields(body.status)}
    elif isinstance(body, OtherMessage):
        out |= {"kind": f"function-{frame.control & 0x3F:02X}", "data": body.data.hex().upper()}
    return out
