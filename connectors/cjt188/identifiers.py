"""CJ/T 188-2004 meter types, data identifiers, units, status word and value codecs.

* Table 3 meter types: 10H cold water, 11H domestic hot water, 12H drinking water,
  13H reclaimed water, 20H heat (heat metering), 21H heat (cooling metering),
  30H gas, 40H electricity.
* §5.2 data identifiers are two bytes written ``DI1 DI0`` (``901F``) and sent DI0
  first (``1F 90``), like every multi-byte field (§6.1 transmission order).
  901F: metering data; A017: valve control (write, 1 byte: 55H open, 99H close).
* Unit codes (table of "单位代号"): 01H J, 02H Wh, 05H kWh, 08H MWh,
  0AH MWh x 100, 0BH kJ, 0EH MJ, 11H GJ, 13H GJ x 100, 14H W, 17H kW, 1AH MW,
  29H L, 2CH m3, 32H L/h, 35H m3/h.
* Volume XXXXXX.XX: 4 bytes BCD, low byte first.
* Real time YYYYMMDDhhmmss: 7 bytes BCD sent low byte first, i.e.
  ss mm hh DD MM YYlow YYhigh (2015-05-11 22:01:31 -> 31 01 22 11 05 15 20).
* Status ST, 2 bytes, ST0 first: ST0 D1 D0 valve (00 open, 01 closed, 11 abnormal),
  D2 battery (1 = low), D3..D7 and ST1 manufacturer-defined.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from enum import StrEnum

from connectors.codec_bcd import (
    bcd_byte,
    bcd_value,
    le_to_digits,
    scaled,
    unscaled,
    unsigned_to_le,
)
from connectors.codec_errors import Cjt188Error, ErrorKind

DI_METERING = 0x901F
DI_VALVE = 0xA017
VALVE_OPEN = 0x55
VALVE_CLOSE = 0x99

METER_TYPES: dict[int, str] = {
    0x10: "cold water meter",
    0x11: "domestic hot water meter",
    0x12: "drinking water meter",
    0x13: "reclaimed water meter",
    0x20: "heat meter (heat)",
    0x21: "heat meter (cooling)",
    0x30: "gas meter",
    0x40: "electricity meter",
}

UNITS: dict[int, str] = {
    0x01: "J",
    0x02: "Wh",
    0x05: "kWh",
    0x08: "MWh",
    0x0A: "MWh*100",
    0x0B: "kJ",
    0x0E: "MJ",
    0x11: "GJ",
    0x13: "GJ*100",
    0x14: "W",
    0x17: "kW",
    0x1A: "MW",
    0x29: "L",
    0x2C: "m3",
    0x32: "L/h",
    0x35: "m3/h",
}
UNIT_CODES: dict[str, int] = {name: code for code, name in UNITS.items()}


def meter_family(meter_type: int) -> str:
    """water / heat / gas / other, from the high nibble of T (table 3 ranges)."""
    return {0x10: "water", 0x20: "heat", 0x30: "gas"}.get(meter_type & 0xF0, "other")


def di_text(di: int) -> str:
    return f"{di:04X}"


def parse_di(text: str) -> int:
    cleaned = text.strip().replace(" ", "")
    if len(cleaned) != 4:
        raise Cjt188Error(ErrorKind.VALUE, f"DI must be 4 hex digits (DI1 DI0): {text!r}")
    try:
        return int(cleaned, 16)
    except ValueError:
        raise Cjt188Error(ErrorKind.VALUE, f"DI must be 4 hex digits (DI1 DI0): {text!r}") from None


def di_to_wire(di: int) -> bytes:
    return di.to_bytes(2, "little")


def di_from_wire(raw: bytes) -> int:
    return int.from_bytes(raw[:2], "little")


class ValveState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    ABNORMAL = "abnormal"
    RESERVED = "reserved"


_VALVE_BITS = {0b00: ValveState.OPEN, 0b01: ValveState.CLOSED, 0b11: ValveState.ABNORMAL}
_VALVE_BITS[0b10] = ValveState.RESERVED


@dataclass(frozen=True)
class Status:
    """The two status bytes ST0 ST1 (in transmission order)."""

    st0: int = 0
    st1: int = 0

    @property
    def valve(self) -> ValveState:
        return _VALVE_BITS[self.st0 & 0b11]

    @property
    def battery_low(self) -> bool:
        return bool(self.st0 & 0b100)

    @classmethod
    def of(cls, valve: ValveState, *, battery_low: bool = False) -> Status:
        bits = {state: bits for bits, state in _VALVE_BITS.items()}[valve]
        return cls(bits | (0b100 if battery_low else 0), 0)

    def to_bytes(self) -> bytes:
        return bytes([self.st0, self.st1])

    @classmethod
    def from_bytes(cls, raw: bytes) -> Status:
        return cls(raw[0], raw[1])


def encode_volume(value: Decimal, what: str) -> bytes:
    """XXXXXX.XX as 4 BCD bytes, low byte first."""
    count = unscaled(Decimal(value), 2, error=Cjt188Error, what=what)
    return unsigned_to_le(count, 4, error=Cjt188Error, what=what)


def decode_volume(raw: bytes, what: str) -> Decimal:
    return scaled(int(le_to_digits(raw, error=Cjt188Error, what=what)), 2)


def unit_name(code: int, what: str) -> str:
    name = UNITS.get(code)
    if name is None:
        raise Cjt188Error(ErrorKind.VALUE, f"unknown unit code 0x{code:02X} for {what}")
    return name


def unit_code(name: str) -> int:
    code = UNIT_CODES.get(name)
    if code is None:
        raise Cjt188Error(ErrorKind.VALUE, f"unknown unit {name!r}; known: {sorted(UNIT_CODES)}")
    return code


def encode_time(when: datetime, tz: tzinfo) -> bytes:
    """Aware datetime -> ss mm hh DD MM YYlow YYhigh in the meter's zone."""
    if when.tzinfo is None:
        raise Cjt188Error(ErrorKind.VALUE, f"datetime {when} has no time zone")
    local = when.astimezone(tz)
    year_low, year_high = local.year % 100, local.year // 100
    fields = (local.second, local.minute, local.hour, local.day, local.month, year_low, year_high)
    return bytes(bcd_byte(v) for v in fields)


def decode_time(raw: bytes, tz: tzinfo) -> datetime | None:
    """ss mm hh DD MM YYlow YYhigh -> aware datetime in ``tz``; all zeros -> ``None``."""
    if not any(raw):
        return None
    names = ("ss", "mm", "hh", "DD", "MM", "YY(low)", "YY(high)")
    ss, mi, hh, dd, mo, ylo, yhi = (
        bcd_value(b, error=Cjt188Error, what=f"real time {n}")
        for b, n in zip(raw, names, strict=True)
    )
    try:
        return datetime(yhi * 100 + ylo, mo, dd, hh, mi, ss, tzinfo=tz)
    except ValueError as exc:
        raise Cjt188Error(ErrorKind.VALUE, f"invalid real time {raw.hex(' ')}: {exc}") from exc
