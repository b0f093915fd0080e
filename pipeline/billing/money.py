"""Money and exact quantities: integer fen outside, Decimal/Fraction inside, one rounding rule.

Rule (issue 3, section 1): every amount stored or sent is an integer number of fen
(0.01 CNY); the amount charged up to any moment is the exact cumulative cost rounded
half-up to the fen. :func:`round_half_up` is the only rounding in the billing domain.
"""

from __future__ import annotations

from decimal import MAX_PREC, ROUND_HALF_UP, Context, Decimal, InvalidOperation
from fractions import Fraction

#: The rounding mode of the whole domain: ties go away from zero (decimal.ROUND_HALF_UP).
ROUNDING = ROUND_HALF_UP
#: Places (of a yuan) at which a rating's exact rational cost becomes a Decimal cost.
COST_PLACES = 10
FEN_PER_YUAN = 100
_EXACT = Context(prec=MAX_PREC)  # scaling by powers of ten must never round

Number = Decimal | Fraction | int


def round_half_up(value: Number, places: int) -> Decimal:
    """Round ``value`` to ``places`` decimals, ties away from zero (``ROUNDING``).

    Works on the exact rational value, so no intermediate precision can shift a tie.
    """
    exact = Fraction(value) * 10**places
    sign = -1 if exact < 0 else 1
    whole, rest = divmod(abs(exact.numerator), exact.denominator)
    if 2 * rest >= exact.denominator:
        whole += 1
    return Decimal(f"{sign * whole}E-{places}")


def round_fen(yuan: Number) -> int:
    """Yuan to integer fen by the one rounding rule."""
    return int(round_half_up(yuan, 2).scaleb(2, context=_EXACT))


def fen_to_yuan(fen: int) -> Decimal:
    """Integer fen as an exact two-place Decimal of yuan."""
    return Decimal(f"{fen}E-2")


def yuan_text(fen: int) -> str:
    """Integer fen as a decimal string with two places, e.g. ``-0.05``."""
    return f"{fen_to_yuan(fen):f}"


def parse_decimal(value: object) -> Decimal:
    """A finite Decimal from its text (str, int or Decimal); binary floats are refused.

    Raises ValueError with the reason; callers prefix the field name.
    """
    if isinstance(value, bool | float):
        raise ValueError(f"{value!r} is not a decimal number (write it as text)")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip().replace("_", ""))
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a decimal number") from None
    else:
        raise ValueError(f"{value!r} is not a decimal number")
    if not result.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return result


def decimal_text(value: Decimal) -> str:
    """A Decimal as plain positional text (never exponent notation)."""
    return f"{value:f}"


def fraction_text(value: Fraction) -> str:
    """An exact rational as JSON-safe text: ``"12.5"`` when finite in decimal, else ``"p/q"``."""
    den = value.denominator
    for prime in (2, 5):
        while den % prime == 0:
            den //= prime
    if den == 1:
        places = 0
        while (value * 10**places).denominator != 1:
            places += 1
        return decimal_text(round_half_up(value, places))
    return f"{value.numerator}/{value.denominator}"


def parse_fraction(text: str) -> Fraction:
    """Inverse of :func:`fraction_text`."""
    if "/" in text:
        return Fraction(text)
    return Fraction(parse_decimal(text))
