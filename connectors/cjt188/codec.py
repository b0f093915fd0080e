"""CJ/T 188-2004 codec: whole frames to messages and back (the public entry points).

``decode`` checks the link layer (CJ/T 188-2004 §5.1) and interprets the data
(§6.2 read data 901F, write data A017 valve control, abnormal replies); the
``encode_*`` helpers build master requests and the meter-side replies used by
simulators.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import Decimal

from connectors.cjt188.frame import LinkFrame, decode_link, encode_link, strip_preamble
from connectors.cjt188.identifiers import DI_METERING, Status, parse_di
from connectors.cjt188.messages import (
    Body,
    ErrorResponse,
    MeteringData,
    ReadRequest,
    ValveAction,
    ValveCommand,
    WriteResponse,
    decode_body,
    encode_body,
)
from connectors.codec_envelope import ControlCode
from connectors.codec_quirks import DEFAULT_QUIRKS, CodecQuirks


@dataclass(frozen=True)
class Frame(ControlCode):
    """A decoded CJ/T 188 frame: meter type, address, control code and body."""

    meter_type: int
    address: str
    control: int
    body: Body
    #: the frame bytes as received (from 0x68 to 0x16), empty when built locally
    raw: bytes = field(default=b"", compare=False, repr=False)


def decode(
    raw: bytes, *, tz: tzinfo | None = None, quirks: CodecQuirks = DEFAULT_QUIRKS
) -> Frame:
    """One frame (FE preamble optional) -> :class:`Frame`; raises ``Cjt188Error``.

    ``tz`` is the zone of the meter clock (default ``quirks.meter_tz``).
    """
    link = decode_link(raw, quirks=quirks)
    body = decode_body(link, quirks.clock_zone(tz))
    return Frame(link.meter_type, link.address, link.control, body, strip_preamble(bytes(raw)))


def encode(
    frame: Frame,
    *,
    preamble: bool = True,
    tz: tzinfo | None = None,
    quirks: CodecQuirks = DEFAULT_QUIRKS,
) -> bytes:
    """:class:`Frame` -> bytes. The control code is derived from the body."""
    return _encode(frame.meter_type, frame.address, frame.body, preamble, tz, quirks)


def _encode(
    meter_type: int,
    address: str,
    body: Body,
    preamble: bool,
    tz: tzinfo | None,
    quirks: CodecQuirks,
) -> bytes:
    control, data = encode_body(body, quirks.clock_zone(tz), quirks)
    link = LinkFrame(meter_type, address, control, data)
    return encode_link(link, preamble=preamble, quirks=quirks)


# -- master side -----------------------------------------------------------------------------


def encode_read(
    meter_type: int,
    address: str,
    di: int | str = DI_METERING,
    *,
    ser: int = 0,
    preamble: bool = True,
    quirks: CodecQuirks = DEFAULT_QUIRKS,
) -> bytes:
    """§6.2.1 read data request (C=01H, L=03H), by default DI 901F (metering data)."""
    di_value = parse_di(di) if isinstance(di, str) else di
    return _encode(meter_type, address, ReadRequest(di_value, ser), preamble, None, quirks)


def encode_valve(
    meter_type: int,
    address: str,
    action: ValveAction | str,
    *,
    ser: int = 0,
    preamble: bool = True,
    quirks: CodecQuirks = DEFAULT_QUIRKS,
) -> bytes:
    """§6.2.2 valve control (C=04H, DI A017, 55H open / 99H close)."""
    body = ValveCommand(ValveAction(action), ser)
    return _encode(meter_type, address, body, preamble, None, quirks)


# -- meter side (simulators) ---------------------------------------------------------------


def encode_read_response(
    meter_type: int,
    address: str,
    volume: Decimal,
    *,
    volume_unit: str = "m3",
    settlement_volume: Decimal | None = None,
    settlement_unit: str | None = None,
    meter_time: datetime | None = None,
    status: Status | None = None,
    ser: int = 0,
    preamble: bool = True,
    tz: tzinfo | None = None,
    quirks: CodecQuirks = DEFAULT_QUIRKS,
) -> bytes:
    """Normal reply to DI 901F (C=81H, L=16H) of a water or gas meter."""
    body = MeteringData(
        volume=volume,
        volume_unit=volume_unit,
        settlement_volume=volume if settlement_volume is None else settlement_volume,
        settlement_unit=settlement_unit or volume_unit,
        meter_time=meter_time,
        status=status or Status(),
        ser=ser,
    )
    return _encode(meter_type, address, body, preamble, tz, quirks)


def encode_valve_response(
    meter_type: int,
    address: str,
    status: Status,
    *,
    ser: int = 0,
    preamble: bool = True,
    quirks: CodecQuirks = DEFAULT_QUIRKS,
) -> bytes:
    """Normal reply to a valve command (C=84H): DI A017 + SER + ST."""
    body = WriteResponse(0xA017, status, ser)
    return _encode(meter_type, address, body, preamble, None, quirks)


def encode_error_response(
    meter_type: int,
    address: str,
    function: int,
    status: Status,
    *,
    ser: int = 0,
    di: int | None = None,
    preamble: bool = True,
    quirks: CodecQuirks = DEFAULT_QUIRKS,
) -> bytes:
    """Abnormal reply (C = C0H | function, e.g. C1H, C4H): SER + ST (DI first if given)."""
    body = ErrorResponse(function, status, ser, di)
    return _encode(meter_type, address, body, preamble, None, quirks)


def looks_like(raw: bytes) -> bool:
    """Whether ``raw`` starts (after any FE bytes) with 0x68 and is long enough."""
    frame = strip_preamble(raw)
    return len(frame) >= 13 and frame[0] == 0x68
