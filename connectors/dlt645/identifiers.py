"""DL/T 645-2007 data identifiers (DI) and their value codecs.

DL/T 645-2007 §6 and Appendix A: a DI is four bytes DI3 DI2 DI1 DI0, written by
humans in that order (``00010000``) and sent DI0 first. The items supported here:

* Appendix A.1 energy (DI3 = 00), format XXXXXX.XX kWh, 4 bytes BCD:
  DI2 = 00 combined active (the highest bit is the sign), 01 forward active,
  02 reverse active; DI1 = 00 total, 01..04 rates T1..T4 (conventionally sharp,
  peak, flat, valley), FF the block "total + every rate" (4 bytes per register).
* Appendix A.3 variables (DI3 = 02): voltage XXX.X V (2 bytes), current XXX.XXX A
  (3 bytes, sign bit), active power XX.XXXX kW (3 bytes, sign bit), power factor
  X.XXX (2 bytes, sign bit), grid frequency XX.XX Hz; FF in DI1 is the block.
* Appendix A.5 parameters (DI3 = 04): 04000101 date and week YYMMDDWW (WW 0 =
  Sunday), 04000102 time hhmmss.

Multi-byte values are BCD, low byte first. "Sign bit" means the most significant
bit of the highest byte is 1 for negative values (Appendix A, notes to A.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time, tzinfo
from decimal import Decimal
from enum import StrEnum

from connectors.codec_bcd import bcd_byte, bcd_value, le_to_digits, scaled, unscaled
from connectors.codec_errors import Dlt645Error, ErrorKind


class ValueKind(StrEnum):
    NUMBER = "number"
    DATE = "date"
    TIME = "time"


@dataclass(frozen=True)
class MeterDate:
    """04000101: the meter's calendar date and its day of week (0 = Sunday)."""

    day: date
    weekday: int


Value = Decimal | tuple[Decimal, ...] | MeterDate | time


@dataclass(frozen=True)
class DataItem:
    """One data identifier: how its value is laid out (Appendix A)."""

    di: int
    name: str
    unit: str
    size: int  # bytes per register
    decimals: int = 0
    signed: bool = False
    kind: ValueKind = ValueKind.NUMBER
    #: registers in a block; 0 for "any number >= 1" (energy blocks, one per rate)
    count: int = 1

    @property
    def is_block(self) -> bool:
        return self.count != 1

    @property
    def text(self) -> str:
        return di_text(self.di)


def di_text(di: int) -> str:
    """The DI as humans write it: DI3 DI2 DI1 DI0, eight hex digits."""
    return f"{di:08X}"


def parse_di(text: str) -> int:
    """``"00010000"`` -> 0x00010000 (eight hex digits, DI3 first)."""
    cleaned = text.strip().replace(" ", "")
    if len(cleaned) != 8:
        raise Dlt645Error(ErrorKind.VALUE, f"DI must be 8 hex digits (DI3..DI0): {text!r}")
    try:
        return int(cleaned, 16)
    except ValueError:
        raise Dlt645Error(ErrorKind.VALUE, f"DI must be 8 hex digits: {text!r}") from None


def di_to_wire(di: int) -> bytes:
    """DI0 DI1 DI2 DI3 (§6: transmitted low byte first)."""
    return di.to_bytes(4, "little")


def di_from_wire(raw: bytes) -> int:
    return int.from_bytes(raw[:4], "little")


_ENERGY = {0x00: ("combined active energy", True), 0x01: ("forward active energy", False)}
_ENERGY[0x02] = ("reverse active energy", False)
_RATES = {0x00: "total", 0x01: "rate 1 (sharp)", 0x02: "rate 2 (peak)"}
_RATES |= {0x03: "rate 3 (flat)", 0x04: "rate 4 (valley)"}
_PHASES = {0x01: "phase A", 0x02: "phase B", 0x03: "phase C"}


def _build_registry() -> dict[int, DataItem]:
    items: list[DataItem] = []
    for di2, (label, signed) in _ENERGY.items():
        for di1, rate in _RATES.items():
            di = 0x00 << 24 | di2 << 16 | di1 << 8
            items.append(DataItem(di, f"{label}, {rate}", "kWh", 4, 2, signed))
        items.append(
            DataItem(di2 << 16 | 0xFF00, f"{label}, block", "kWh", 4, 2, signed, count=0)
        )
    for phase_di, phase in _PHASES.items():
        items.append(DataItem(0x02010000 | phase_di << 8, f"voltage, {phase}", "V", 2, 1))
        items.append(DataItem(0x02020000 | phase_di << 8, f"current, {phase}", "A", 3, 3, True))
    items.append(DataItem(0x0201FF00, "voltage, block A/B/C", "V", 2, 1, count=3))
    items.append(DataItem(0x0202FF00, "current, block A/B/C", "A", 3, 3, True, count=3))
    for di1, part in {0x00: "total", **_PHASES}.items():
        items.append(DataItem(0x02030000 | di1 << 8, f"active power, {part}", "kW", 3, 4, True))
        items.append(DataItem(0x02060000 | di1 << 8, f"power factor, {part}", "", 2, 3, True))
    items.append(DataItem(0x0203FF00, "active power, block", "kW", 3, 4, True, count=4))
    items.append(DataItem(0x0206FF00, "power factor, block", "", 2, 3, True, count=4))
    items.append(DataItem(0x02800002, "grid frequency", "Hz", 2, 2))
    items.append(DataItem(0x04000101, "date and week", "", 4, kind=ValueKind.DATE))
    items.append(DataItem(0x04000102, "time", "", 3, kind=ValueKind.TIME))
    return {item.di: item for item in items}


REGISTRY: dict[int, DataItem] = _build_registry()


def lookup(di: int) -> DataItem:
    """The :class:`DataItem` of ``di``; raises an unknown-DI error otherwise."""
    item = REGISTRY.get(di)
    if item is None:
        raise Dlt645Error(ErrorKind.UNKNOWN_DI, f"unknown DI {di_text(di)}")
    return item


# -- numbers ---------------------------------------------------------------------------


def _encode_number(item: DataItem, value: Decimal) -> bytes:
    what = f"DI {item.text} value"
    count = unscaled(Decimal(value), item.decimals, error=Dlt645Error, what=what)
    negative = count < 0
    if negative and not item.signed:
        raise Dlt645Error(ErrorKind.VALUE, f"{what} {value} cannot be negative")
    magnitude = abs(count)
    limit = 8 * 10 ** (2 * item.size - 1) if item.signed else 10 ** (2 * item.size)
    if magnitude >= limit:
        raise Dlt645Error(ErrorKind.VALUE, f"{what} {value} is out of range")
    digits = f"{magnitude:0{2 * item.size}d}"
    raw = bytearray(bcd_byte(int(digits[i : i + 2])) for i in range(0, len(digits), 2))
    raw.reverse()
    if negative:
        raw[-1] |= 0x80
    return bytes(raw)


def _decode_number(item: DataItem, raw: bytes, index: int) -> Decimal:
    data = bytearray(raw)
    negative = item.signed and bool(data[-1] & 0x80)
    if negative:
        data[-1] &= 0x7F
    where = f"DI {item.text} value" + (f" {index}" if item.is_block else "")
    digits = le_to_digits(bytes(data), error=Dlt645Error, what=where)
    value = scaled(int(digits), item.decimals)
    return -value if negative else value


# -- date and time ----------------------------------------------------------------------


def _encode_date(value: MeterDate) -> bytes:
    day = value.day
    if not 2000 <= day.year <= 2099:
        raise Dlt645Error(ErrorKind.VALUE, f"date {day} is outside 2000..2099")
    if not 0 <= value.weekday <= 6:
        raise Dlt645Error(ErrorKind.VALUE, f"weekday {value.weekday} is outside 0..6")
    return bytes(bcd_byte(v) for v in (value.weekday, day.day, day.month, day.year - 2000))


def _decode_date(raw: bytes) -> MeterDate:
    names = ("WW", "DD", "MM", "YY")
    week, dd, mm, yy = (
        bcd_value(b, error=Dlt645Error, what=n) for b, n in zip(raw, names, strict=True)
    )
    try:
        day = date(2000 + yy, mm, dd)
    except ValueError as exc:
        raise Dlt645Error(ErrorKind.VALUE, f"invalid date {yy:02d}-{mm:02d}-{dd:02d}") from exc
    if week > 6:
        raise Dlt645Error(ErrorKind.VALUE, f"invalid day of week {week}")
    return MeterDate(day, week)


def _encode_time(value: time) -> bytes:
    return bytes(bcd_byte(v) for v in (value.second, value.minute, value.hour))


def _decode_time(raw: bytes, tz: tzinfo) -> time:
    ss, mm, hh = (bcd_value(b, error=Dlt645Error, what=n) for b, n in zip(raw, "smh", strict=True))
    try:
        return time(hh, mm, ss, tzinfo=tz)
    except ValueError as exc:
        raise Dlt645Error(ErrorKind.VALUE, f"invalid time {hh:02d}:{mm:02d}:{ss:02d}") from exc


# -- public codecs ----------------------------------------------------------------------


def encode_value(item: DataItem, value: Value) -> bytes:
    """The data bytes (without the 0x33 offset) of ``value`` for ``item``."""
    if item.kind is ValueKind.DATE:
        if not isinstance(value, MeterDate):
            raise Dlt645Error(ErrorKind.VALUE, f"DI {item.text} needs a MeterDate")
        return _encode_date(value)
    if item.kind is ValueKind.TIME:
        if not isinstance(value, time):
            raise Dlt645Error(ErrorKind.VALUE, f"DI {item.text} needs a time")
        return _encode_time(value)
    if item.is_block:
        if not isinstance(value, tuple) or not value:
            raise Dlt645Error(ErrorKind.VALUE, f"DI {item.text} is a block: needs a tuple")
        if item.count and len(value) != item.count:
            raise Dlt645Error(
                ErrorKind.VALUE, f"DI {item.text} block needs {item.count} values, got {len(value)}"
            )
        return b"".join(_encode_number(item, v) for v in value)
    if not isinstance(value, Decimal | int):
        raise Dlt645Error(ErrorKind.VALUE, f"DI {item.text} needs a Decimal, got {value!r}")
    return _encode_number(item, Decimal(value))


def decode_value(item: DataItem, raw: bytes, tz: tzinfo) -> Value:
    """The value in ``raw`` (data after the DI, offset removed) for ``item``."""
    size = len(raw)
    if item.is_block:
        expected_ok = size % item.size == 0 and size > 0
        if item.count:
            expected_ok = size == item.size * item.count
        if not expected_ok:
            need = f"{item.size * item.count}" if item.count else f"a multiple of {item.size}"
            raise Dlt645Error(
                ErrorKind.LENGTH, f"bad length for DI {item.text}: need {need} bytes, got {size}"
            )
        chunks = [raw[i : i + item.size] for i in range(0, size, item.size)]
        return tuple(_decode_number(item, c, i) for i, c in enumerate(chunks))
    if size != item.size:
        raise Dlt645Error(
            ErrorKind.LENGTH, f"bad length for DI {item.text}: need {item.size} bytes, got {size}"
        )
    if item.kind is ValueKind.DATE:
        return _decode_date(raw)
    if item.kind is ValueKind.TIME:
        return _decode_time(raw, tz)
    return _decode_number(item, raw, 0)
