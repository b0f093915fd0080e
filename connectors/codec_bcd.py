"""BCD helpers shared by the DL/T 645-2007 and CJ/T 188-2004 codecs.

Both standards transmit multi-byte BCD quantities low byte first (DL/T 645-2007
§5.1.3 / §7, CJ/T 188-2004 §5.3 "transmission order"). The helpers here work on
plain byte strings that already had any transport offset (the DL/T 645 +0x33)
removed. Errors are raised with the caller's error class so messages stay
protocol-specific.
"""

from __future__ import annotations

from decimal import Decimal

from connectors.codec_errors import ErrorKind, FrameError


def bcd_byte(value: int) -> int:
    """Two decimal digits (0..99) as one packed BCD byte."""
    if not 0 <= value <= 99:
        raise ValueError(f"{value} does not fit one BCD byte")
    return (value // 10) << 4 | value % 10


def bcd_value(byte: int, *, error: type[FrameError], what: str) -> int:
    """One packed BCD byte as 0..99; ``what`` names the byte in the error message."""
    high, low = byte >> 4, byte & 0x0F
    if high > 9 or low > 9:
        raise error(ErrorKind.BCD, f"non-BCD digit in {what}: 0x{byte:02X}")
    return high * 10 + low


def digits_to_le(digits: str, *, error: type[FrameError], what: str) -> bytes:
    """A decimal digit string (most significant first) as BCD bytes, low byte first."""
    if len(digits) % 2 or not digits.isdigit() or not digits.isascii():
        raise error(ErrorKind.BCD, f"{what} must be an even number of decimal digits: {digits!r}")
    pairs = [digits[i : i + 2] for i in range(0, len(digits), 2)]
    return bytes(int(p[0]) << 4 | int(p[1]) for p in reversed(pairs))


def le_to_digits(raw: bytes, *, error: type[FrameError], what: str) -> str:
    """BCD bytes, low byte first, as a decimal digit string (most significant first)."""
    out = []
    for index in range(len(raw) - 1, -1, -1):
        value = bcd_value(raw[index], error=error, what=f"{what} byte {index}")
        out.append(f"{value:02d}")
    return "".join(out)


def unsigned_to_le(value: int, nbytes: int, *, error: type[FrameError], what: str) -> bytes:
    """A non-negative integer as ``nbytes`` BCD bytes, low byte first."""
    if value < 0 or value >= 10 ** (2 * nbytes):
        raise error(ErrorKind.VALUE, f"{what} {value} does not fit {2 * nbytes} BCD digits")
    return digits_to_le(f"{value:0{2 * nbytes}d}", error=error, what=what)


def scaled(value: int, decimals: int) -> Decimal:
    """``value`` * 10**-decimals as a Decimal that keeps its decimal places."""
    return Decimal(value).scaleb(-decimals)


def unscaled(value: Decimal, decimals: int, *, error: type[FrameError], what: str) -> int:
    """The integer count of 10**-decimals units in ``value``; refuses hidden rounding."""
    if not value.is_finite():
        raise error(ErrorKind.VALUE, f"{what} {value} is not a finite number")
    raw = value.scaleb(decimals)
    if raw != raw.to_integral_value():
        raise error(ErrorKind.VALUE, f"{what} {value} has more than {decimals} decimal places")
    return int(raw)


def fmt_decimal(value: Decimal) -> str:
    """A Decimal in plain notation (never exponent), keeping its decimal places."""
    return format(value, "f")
