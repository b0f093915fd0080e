"""DL/T 645-2007 application layer: requests and responses carried by a frame.

* §7.2 / Fig. 11-13 read data: request C=0x11 with DI (4 bytes, optionally
  followed by load-record parameters); normal reply C=0x91 (0xB1 when D5 says a
  follow-up frame comes) with DI + value; abnormal reply C=0xD1 with ERR.
* §7.7 broadcast time sync: C=0x08 to 999999999999, data ssmmhhDDMMYY, no reply.
* Relay control ("trip/close, alarm, keep supply", C=0x1C), 16 data bytes:
  PA (password level), P0 P1 P2 (password, low byte first), C0..C3 (operator
  code, low byte first), N1 (control type), N2 (reserved), N3..N8 expiry
  ssmmhhDDMMYY (all zero: no expiry). Normal reply C=0x9C without data,
  abnormal reply C=0xDC with ERR.

Passwords and operator codes are written by humans most significant byte first
(``P2P1P0`` = ``"123456"``, ``C3C2C1C0``) and sent reversed, as meters expect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import StrEnum

from connectors.codec_bcd import bcd_byte, bcd_value
from connectors.codec_envelope import ABNORMAL_BIT, DIRECTION_BIT
from connectors.codec_errors import Dlt645Error, ErrorKind
from connectors.dlt645.errcodes import error_flags
from connectors.dlt645.frame import FOLLOW_UP_BIT, Function, LinkFrame
from connectors.dlt645.identifiers import (
    Value,
    decode_value,
    di_from_wire,
    di_to_wire,
    encode_value,
    lookup,
)


class RelayAction(StrEnum):
    """N1 control types of the relay command (C=0x1C)."""

    TRIP = "trip"
    CLOSE_ALLOWED = "close-allowed"
    CLOSE = "close"
    ALARM = "alarm"
    ALARM_RELEASE = "alarm-release"
    KEEP_SUPPLY = "keep-supply"
    KEEP_SUPPLY_RELEASE = "keep-supply-release"


RELAY_CODES: dict[RelayAction, int] = {
    RelayAction.TRIP: 0x1A,
    RelayAction.CLOSE_ALLOWED: 0x1B,
    RelayAction.CLOSE: 0x1C,
    RelayAction.ALARM: 0x2A,
    RelayAction.ALARM_RELEASE: 0x2B,
    RelayAction.KEEP_SUPPLY: 0x3A,
    RelayAction.KEEP_SUPPLY_RELEASE: 0x3B,
}
_RELAY_BY_CODE = {code: action for action, code in RELAY_CODES.items()}
RELAY_DATA_LEN = 16


@dataclass(frozen=True)
class ReadRequest:
    di: int
    #: load-record parameters after the DI (N, or N + mmhhDDMMYY), usually empty
    params: bytes = b""


@dataclass(frozen=True)
class ReadResponse:
    di: int
    value: Value
    follow_up: bool = False


@dataclass(frozen=True)
class ErrorResponse:
    """An abnormal reply (D6 = 1): the function it answers and the ERR byte."""

    function: int
    code: int

    @property
    def flags(self) -> list[str]:
        return error_flags(self.code)


@dataclass(frozen=True)
class RelayCommand:
    action: RelayAction
    password_level: int = 0x02
    password: str = "000000"  # P2P1P0, hex
    operator: str = "00000000"  # C3C2C1C0, hex
    expires: datetime | None = None


@dataclass(frozen=True)
class RelayResponse:
    """Normal reply 0x9C to a relay command: no data."""


@dataclass(frozen=True)
class TimeSync:
    when: datetime


@dataclass(frozen=True)
class OtherMessage:
    """A valid frame of a function this codec does not interpret (data kept raw)."""

    data: bytes


Body = (
    ReadRequest
    | ReadResponse
    | ErrorResponse
    | RelayCommand
    | RelayResponse
    | TimeSync
    | OtherMessage
)


# -- date-time fields ssmmhhDDMMYY ---------------------------------------------------------


def encode_stamp(when: datetime | None, tz: tzinfo) -> bytes:
    """ssmmhhDDMMYY in the meter's zone; ``None`` -> six zero bytes."""
    if when is None:
        return bytes(6)
    if when.tzinfo is None:
        raise Dlt645Error(ErrorKind.VALUE, f"datetime {when} has no time zone")
    local = when.astimezone(tz)
    if not 2000 <= local.year <= 2099:
        raise Dlt645Error(ErrorKind.VALUE, f"datetime {when} is outside 2000..2099")
    fields = (local.second, local.minute, local.hour, local.day, local.month, local.year - 2000)
    return bytes(bcd_byte(v) for v in fields)


def decode_stamp(raw: bytes, tz: tzinfo, what: str) -> datetime | None:
    """ssmmhhDDMMYY -> aware datetime in ``tz``; all zeros -> ``None``."""
    if not any(raw):
        return None
    names = ("ss", "mm", "hh", "DD", "MM", "YY")
    ss, mi, hh, dd, mo, yy = (
        bcd_value(b, error=Dlt645Error, what=f"{what} {n}") for b, n in zip(raw, names, strict=True)
    )
    try:
        return datetime(2000 + yy, mo, dd, hh, mi, ss, tzinfo=tz)
    except ValueError as exc:
        raise Dlt645Error(ErrorKind.VALUE, f"invalid {what} {raw.hex(' ')}: {exc}") from exc


def _hex_field(text: str, nbytes: int, what: str) -> bytes:
    cleaned = text.strip().replace(" ", "")
    try:
        raw = bytes.fromhex(cleaned)
    except ValueError:
        raw = b""
    if len(raw) != nbytes:
        raise Dlt645Error(ErrorKind.VALUE, f"{what} must be {2 * nbytes} hex digits: {text!r}")
    return raw


# -- body <-> (control, data) ---------------------------------------------------------------


def encode_body(body: Body, tz: tzinfo) -> tuple[int, bytes]:
    """The control code and DATA (without 0x33 offset) of ``body``."""
    if isinstance(body, ReadRequest):
        return Function.READ, di_to_wire(body.di) + body.params
    if isinstance(body, ReadResponse):
        control = DIRECTION_BIT | Function.READ | (FOLLOW_UP_BIT if body.follow_up else 0)
        return control, di_to_wire(body.di) + encode_value(lookup(body.di), body.value)
    if isinstance(body, ErrorResponse):
        if not 0 <= body.code <= 0xFF:
            raise Dlt645Error(ErrorKind.VALUE, f"ERR {body.code} is not one byte")
        control = DIRECTION_BIT | ABNORMAL_BIT | (body.function & 0x1F)
        return control, bytes([body.code])
    if isinstance(body, RelayCommand):
        if not 0 <= body.password_level <= 0xFF:
            raise Dlt645Error(ErrorKind.VALUE, f"password level {body.password_level} invalid")
        data = bytes([body.password_level])
        data += _hex_field(body.password, 3, "password")[::-1]
        data += _hex_field(body.operator, 4, "operator code")[::-1]
        data += bytes([RELAY_CODES[RelayAction(body.action)], 0x00])
        data += encode_stamp(body.expires, tz)
        return Function.RELAY, data
    if isinstance(body, RelayResponse):
        return DIRECTION_BIT | Function.RELAY, b""
    if isinstance(body, TimeSync):
        stamp = encode_stamp(body.when, tz)
        return Function.BROADCAST_TIME, stamp
    raise Dlt645Error(ErrorKind.UNSUPPORTED, f"cannot encode {type(body).__name__}")


def _need(link: LinkFrame, size: int, what: str, *, exact: bool = True) -> None:
    got = len(link.data)
    if got < size or (exact and got != size):
        raise Dlt645Error(
            ErrorKind.LENGTH,
            f"bad length for {what} (C=0x{link.control:02X}): "
            f"need {'' if exact else 'at least '}{size} data bytes, got {got}",
        )


def decode_body(link: LinkFrame, tz: tzinfo) -> Body:
    """Interpret the data of a valid link frame according to its control code."""
    function, data = link.function, link.data
    if link.from_meter and link.abnormal:
        _need(link, 1, "abnormal reply", exact=False)
        return ErrorResponse(function=function, code=data[0])
    if function == Function.READ:
        _need(link, 4, "read frame", exact=False)
        di = di_from_wire(data)
        if not link.from_meter:
            return ReadRequest(di=di, params=data[4:])
        value = decode_value(lookup(di), data[4:], tz)
        return ReadResponse(di=di, value=value, follow_up=link.follow_up)
    if function == Function.RELAY:
        if link.from_meter:
            return RelayResponse()
        _need(link, RELAY_DATA_LEN, "relay command")
        action = _RELAY_BY_CODE.get(data[8])
        if action is None:
            raise Dlt645Error(ErrorKind.VALUE, f"unknown relay control type N1=0x{data[8]:02X}")
        return RelayCommand(
            action=action,
            password_level=data[0],
            password=data[1:4][::-1].hex().upper(),
            operator=data[4:8][::-1].hex().upper(),
            expires=decode_stamp(data[10:16], tz, "expiry time"),
        )
    if function == Function.BROADCAST_TIME and not link.from_meter:
        _need(link, 6, "broadcast time sync")
        when = decode_stamp(data, tz, "time sync")
        if when is None:
            raise Dlt645Error(ErrorKind.VALUE, "broadcast time sync carries an all-zero time")
        return TimeSync(when=when)
    return OtherMessage(data=data)
