"""What a DL/T 645 or CJ/T 188 meter is asked, and what its reply means (pure).

One :class:`FrameProtocol` per standard tells the pollers and the dispatcher how to build
the read and control requests of a meter, which decoded frame answers them, and how to
turn the answer into a reading or a command outcome. No sockets here.

* DL/T 645-2007: reading = DI ``0001FF00`` (forward active energy, the block of the total
  and rates T1..T4 = sharp, peak, flat, valley); ``disconnect`` = relay trip (N1=1AH),
  ``reconnect`` = relay close (1CH; ``control.close_action: close-allowed`` sends 1BH,
  "close allowed", for meters that need the customer to press the button).
* CJ/T 188-2004: reading = DI ``901F`` (current cumulative volume); ``disconnect`` = valve
  close (99H), ``reconnect`` = valve open (55H); the reply's status must show the valve in
  the asked position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

from pydantic import ValidationError

from connectors import cjt188, dlt645
from connectors.codec_stream import Corrupt
from connectors.dispatch.policy import Outcome
from connectors.registry import MeterEntry
from contracts.errors import PayloadError
from contracts.raw_reading import BANDS, RawReading

DLT645_ENERGY_BLOCK = 0x0001FF00
CJT188_COLD_WATER = 0x10


@dataclass(frozen=True)
class FrameProtocol:
    name: str
    stage: str
    scanner: Callable[[], Any]
    read_request: Callable[[MeterEntry], bytes]
    control_request: Callable[[MeterEntry, str], bytes]
    is_reply: Callable[[MeterEntry, Any], bool]
    to_reading: Callable[[MeterEntry, Any, datetime], RawReading]
    control_outcome: Callable[[MeterEntry, str, Any], tuple[Outcome, str]]


def is_corrupt(item: Any) -> bool:
    return isinstance(item, Corrupt)


def _reading(entry: MeterEntry, ts: datetime, value: Decimal, bands: dict[str, Decimal],
             source: str) -> RawReading:
    body: dict[str, Any] = {"meter_id": entry.meter_id, "ts": ts, "value": value,
                            "unit": entry.unit, "source": source, **bands}
    try:
        return RawReading.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise PayloadError(f"field {field}: {first['msg']}") from None


# -- DL/T 645-2007 ---------------------------------------------------------------------------


def _dl_read(entry: MeterEntry) -> bytes:
    return dlt645.encode_read(entry.address, DLT645_ENERGY_BLOCK)


def _dl_control(entry: MeterEntry, action: str) -> bytes:
    control = entry.control
    if action == "disconnect":
        relay = dlt645.RelayAction.TRIP
    else:
        relay = dlt645.RelayAction(str(control.get("close_action", "close")))
    return dlt645.encode_relay(
        entry.address, relay, password_level=int(control.get("password_level", 2)),
        password=str(control.get("password", "000000")),
        operator=str(control.get("operator", "00000000")),
    )


def _dl_is_reply(entry: MeterEntry, frame: Any) -> bool:
    return (isinstance(frame, dlt645.Frame) and frame.direction == "response"
            and frame.address == entry.address)


def _dl_reading(entry: MeterEntry, frame: Any, ts: datetime) -> RawReading:
    body = frame.body
    if isinstance(body, dlt645.ErrorResponse):
        raise PayloadError(f"meter refused the read: {', '.join(body.flags) or hex(body.code)}")
    if not isinstance(body, dlt645.ReadResponse) or body.di != DLT645_ENERGY_BLOCK:
        raise PayloadError(f"unexpected reply {type(body).__name__} to the energy read")
    raw_values = body.value if isinstance(body.value, tuple) else (body.value,)
    values = [v for v in raw_values if isinstance(v, Decimal)]
    if not values or len(values) != len(raw_values):
        raise PayloadError("energy block carries no register")
    bands: dict[str, Decimal] = dict(zip(BANDS, values[1:5], strict=False))
    return _reading(entry, ts, values[0], bands, "dlt645")


def _dl_outcome(entry: MeterEntry, action: str, frame: Any) -> tuple[Outcome, str]:
    body = frame.body
    if isinstance(body, dlt645.RelayResponse):
        return Outcome.APPLIED, "relay tripped" if action == "disconnect" else "relay closed"
    if isinstance(body, dlt645.ErrorResponse):
        flags = ", ".join(body.flags) or f"ERR 0x{body.code:02X}"
        return Outcome.REFUSED, f"meter refused the relay command: {flags}"
    return Outcome.REFUSED, f"unexpected reply {type(body).__name__} to the relay command"


DLT645 = FrameProtocol("dlt645", "dlt645-poller", dlt645.StreamParser, _dl_read, _dl_control,
                       _dl_is_reply, _dl_reading, _dl_outcome)


# -- CJ/T 188-2004 ---------------------------------------------------------------------------


def _meter_type(entry: MeterEntry) -> int:
    return int(entry.control.get("meter_type", CJT188_COLD_WATER))


def _cj_read(entry: MeterEntry) -> bytes:
    return cjt188.encode_read(_meter_type(entry), entry.address)


def _cj_control(entry: MeterEntry, action: str) -> bytes:
    valve = cjt188.ValveAction.CLOSE if action == "disconnect" else cjt188.ValveAction.OPEN
    return cjt188.encode_valve(_meter_type(entry), entry.address, valve)


def _cj_is_reply(entry: MeterEntry, frame: Any) -> bool:
    return (isinstance(frame, cjt188.Frame) and bool(frame.control & 0x80)
            and frame.address == entry.address)


def _cj_reading(entry: MeterEntry, frame: Any, ts: datetime) -> RawReading:
    body = frame.body
    if isinstance(body, cjt188.ErrorResponse):
        raise PayloadError(f"meter refused the read (status {body.status.to_bytes().hex()})")
    if not isinstance(body, cjt188.MeteringData):
        raise PayloadError(f"unexpected reply {type(body).__name__} to the volume read")
    volume = body.volume
    if body.volume_unit == "L":  # to m3, truncated to the contract's 3 decimals (1 L)
        volume = (volume / 1000).quantize(Decimal("0.001"), rounding=ROUND_DOWN)
    elif body.volume_unit != "m3":
        raise PayloadError(f"volume unit {body.volume_unit!r} is not m3 or L")
    return _reading(entry, ts, volume, {}, "cjt188")


def _cj_outcome(entry: MeterEntry, action: str, frame: Any) -> tuple[Outcome, str]:
    body = frame.body
    wanted = cjt188.ValveState.CLOSED if action == "disconnect" else cjt188.ValveState.OPEN
    if isinstance(body, cjt188.WriteResponse):
        state = body.status.valve
        if state == wanted:
            return Outcome.APPLIED, f"valve {state.value}"
        return Outcome.REFUSED, f"valve reports {state.value}, expected {wanted.value}"
    if isinstance(body, cjt188.ErrorResponse):
        return Outcome.REFUSED, (
            f"meter refused the valve command (status {body.status.to_bytes().hex()})")
    return Outcome.REFUSED, f"unexpected reply {type(body).__name__} to the valve command"


CJT188 = FrameProtocol("cjt188", "cjt188-poller", cjt188.StreamParser, _cj_read, _cj_control,
                       _cj_is_reply, _cj_reading, _cj_outcome)

FRAME_PROTOCOLS = {"dlt645": DLT645, "cjt188": CJT188}
