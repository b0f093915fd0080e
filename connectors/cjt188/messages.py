"""CJ/T 188-2004 application layer: requests and responses carried by a frame.

DATA is ``DI0 DI1 SER payload`` (§5.2; SER is the master's sequence number, echoed).

* §6.2.1 read data (C=01H): request DI + SER (L=03H). Normal reply C=81H; for
  DI 901F on water and gas meters (L=16H): current cumulative volume (4) + unit,
  settlement-day cumulative volume (4) + unit, real time (7), status ST (2).
* §6.2.2 write data (C=04H): valve control DI A017 + SER + 55H (open) / 99H
  (close), L=04H. Normal reply C=84H: DI + SER + ST (L=05H).
* Abnormal replies (D6 = 1, C=C1H / C4H): SER + ST (L=03H). Meters that put the DI
  first (L=05H) are decoded as well (see ``CodecQuirks.cjt188_abnormal_with_di``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import Decimal
from enum import StrEnum

from connectors.cjt188.frame import Function, LinkFrame
from connectors.cjt188.identifiers import (
    DI_METERING,
    DI_VALVE,
    VALVE_CLOSE,
    VALVE_OPEN,
    Status,
    decode_time,
    decode_volume,
    di_from_wire,
    di_to_wire,
    encode_time,
    encode_volume,
    meter_family,
    unit_code,
    unit_name,
)
from connectors.codec_envelope import ABNORMAL_BIT, DIRECTION_BIT
from connectors.codec_errors import Cjt188Error, ErrorKind
from connectors.codec_quirks import CodecQuirks

METERING_DATA_LEN = 0x16


class ValveAction(StrEnum):
    OPEN = "open"
    CLOSE = "close"


_VALVE_CODES = {ValveAction.OPEN: VALVE_OPEN, ValveAction.CLOSE: VALVE_CLOSE}
_VALVE_BY_CODE = {code: action for action, code in _VALVE_CODES.items()}


@dataclass(frozen=True)
class ReadRequest:
    di: int = DI_METERING
    ser: int = 0


@dataclass(frozen=True)
class MeteringData:
    """Reply to DI 901F from a water or gas meter."""

    volume: Decimal
    volume_unit: str = "m3"
    settlement_volume: Decimal = Decimal("0.00")
    settlement_unit: str = "m3"
    meter_time: datetime | None = None
    status: Status = field(default_factory=Status)
    ser: int = 0


@dataclass(frozen=True)
class ValveCommand:
    action: ValveAction
    ser: int = 0


@dataclass(frozen=True)
class WriteRequest:
    """A write (C=04H) of a DI other than the valve control, payload kept raw."""

    di: int
    payload: bytes
    ser: int = 0


@dataclass(frozen=True)
class WriteResponse:
    """Normal reply to a write (C=84H): DI + SER + ST."""

    di: int
    status: Status
    ser: int = 0


@dataclass(frozen=True)
class ErrorResponse:
    """Abnormal reply (D6 = 1): SER + ST, with the DI when the meter sends it."""

    function: int
    status: Status
    ser: int = 0
    di: int | None = None


@dataclass(frozen=True)
class OtherMessage:
    """A valid frame of a function this codec does not interpret (data kept raw)."""

    data: bytes


Body = (
    ReadRequest
    | MeteringData
    | ValveCommand
    | WriteRequest
    | WriteResponse
    | ErrorResponse
    | OtherMessage
)


def _ser(ser: int) -> bytes:
    if not 0 <= ser <= 0xFF:
        raise Cjt188Error(ErrorKind.VALUE, f"SER {ser} is not one byte")
    return bytes([ser])


def encode_body(body: Body, tz: tzinfo, quirks: CodecQuirks) -> tuple[int, bytes]:
    """The control code and DATA of ``body``."""
    if isinstance(body, ReadRequest):
        return Function.READ, di_to_wire(body.di) + _ser(body.ser)
    if isinstance(body, MeteringData):
        data = di_to_wire(DI_METERING) + _ser(body.ser)
        data += encode_volume(body.volume, "current cumulative volume")
        data += bytes([unit_code(body.volume_unit)])
        data += encode_volume(body.settlement_volume, "settlement-day cumulative volume")
        data += bytes([unit_code(body.settlement_unit)])
        data += encode_time(body.meter_time, tz) if body.meter_time else bytes(7)
        return DIRECTION_BIT | Function.READ, data + body.status.to_bytes()
    if isinstance(body, ValveCommand):
        payload = bytes([_VALVE_CODES[ValveAction(body.action)]])
        return Function.WRITE, di_to_wire(DI_VALVE) + _ser(body.ser) + payload
    if isinstance(body, WriteRequest):
        return Function.WRITE, di_to_wire(body.di) + _ser(body.ser) + body.payload
    if isinstance(body, WriteResponse):
        data = di_to_wire(body.di) + _ser(body.ser) + body.status.to_bytes()
        return DIRECTION_BIT | Function.WRITE, data
    if isinstance(body, ErrorResponse):
        di = body.di if body.di is not None else (DI_VALVE if body.function == 4 else DI_METERING)
        prefix = di_to_wire(di) if (quirks.cjt188_abnormal_with_di or body.di is not None) else b""
        control = DIRECTION_BIT | ABNORMAL_BIT | (body.function & 0x3F)
        return control, prefix + _ser(body.ser) + body.status.to_bytes()
    raise Cjt188Error(ErrorKind.UNSUPPORTED, f"cannot encode {type(body).__name__}")


def _need(link: LinkFrame, size: int, what: str, *, exact: bool = True) -> None:
    got = len(link.data)
    if got < size or (exact and got != size):
        raise Cjt188Error(
            ErrorKind.LENGTH,
            f"bad length for {what} (C=0x{link.control:02X}): "
            f"need {'' if exact else 'at least '}{size} data bytes, got {got}",
        )


def _metering(link: LinkFrame, tz: tzinfo) -> MeteringData:
    family = meter_family(link.meter_type)
    if family not in ("water", "gas"):
        raise Cjt188Error(
            ErrorKind.UNSUPPORTED,
            f"DI 901F reply of meter type 0x{link.meter_type:02X} ({family}) is not supported",
        )
    _need(link, METERING_DATA_LEN, "DI 901F metering data")
    d = link.data
    return MeteringData(
        volume=decode_volume(d[3:7], "current cumulative volume"),
        volume_unit=unit_name(d[7], "current cumulative volume"),
        settlement_volume=decode_volume(d[8:12], "settlement-day cumulative volume"),
        settlement_unit=unit_name(d[12], "settlement-day cumulative volume"),
        meter_time=decode_time(d[13:20], tz),
        status=Status.from_bytes(d[20:22]),
        ser=d[2],
    )


def decode_body(link: LinkFrame, tz: tzinfo) -> Body:
    """Interpret the data of a valid link frame according to its control code."""
    function, data = link.function, link.data
    if link.from_meter and link.abnormal:
        if len(data) == 3:
            return ErrorResponse(function, Status.from_bytes(data[1:3]), data[0])
        _need(link, 5, "abnormal reply (SER + ST, or DI + SER + ST)")
        return ErrorResponse(function, Status.from_bytes(data[3:5]), data[2], di_from_wire(data))
    if function not in (Function.READ, Function.WRITE):
        return OtherMessage(data)
    _need(link, 3, "DI + SER", exact=False)
    di, ser = di_from_wire(data), data[2]
    if function == Function.READ:
        if not link.from_meter:
            _need(link, 3, "read request")
            return ReadRequest(di, ser)
        if di != DI_METERING:
            raise Cjt188Error(ErrorKind.UNKNOWN_DI, f"unknown DI {di:04X} in read reply")
        return _metering(link, tz)
    if link.from_meter:
        _need(link, 5, "write reply (DI + SER + ST)")
        return WriteResponse(di, Status.from_bytes(data[3:5]), ser)
    if di != DI_VALVE:
        return WriteRequest(di, data[3:], ser)
    _need(link, 4, "valve control")
    action = _VALVE_BY_CODE.get(data[3])
    if action is None:
        raise Cjt188Error(
            ErrorKind.VALUE, f"unknown valve command 0x{data[3]:02X} (55H open, 99H close)"
        )
    return ValveCommand(action, ser)
