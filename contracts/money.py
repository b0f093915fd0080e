"""Money and exact quantities: integer fen outside, Decimal/Fraction inside, one rounding rule.

Rule (docs/tariffs.md, "Money"): every amount stored or sent is an integer number of fen
(0.01 CNY); the amount charged up to any moment is the exact cumulative cost rounded
half-up to the fen. :func:`round_half_up` is the only rounding in the billing domain.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_HALF_UP, Context, Decimal, InvalidOperation
from fractions import Fraction
from functools import lru_cache

#: The rounding mode of the whole domain: ties go away from zero (decimal.ROUND_HALF_UP).
ROUNDING = ROUND_HALF_UP
#: Places (of a yuan) at which a rating's exact rational cost becomes a Decimal cost.
COST_PLACES = 10
_EXACT = Context(prec=MAX_PREC)  # scaling by powers of ten must never round
_SHIFT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)  # nor any exponent clamp
_POWERS = {places: 10**places for places in range(40)}

Number = Decimal | Fraction | int


def round_half_up(value: Number, places: int) -> Decimal:
    """Round ``value`` to ``places`` decimals, ties away from zero (``ROUNDING``).

    Works on the exact rational value, so no intermediate precision can shift a tie.
    """
    kind = type(value)
    if kind is Fraction or kind is Decimal or kind is int:
        num, den = value.as_integer_ratio()
    else:
        exact = Fraction(value)
        num, den = exact.numerator, exact.denominator
    scale = _POWERS.get(places)
    if scale is None:
        if places < 0:
            raise ValueError("places must not be negative")
        scale = 10**places
    whole, rest = divmod(abs(num) * scale, den)
    if 2 * rest >= den:
        whole += 1
    return Decimal(-whole if num < 0 else whole).scaleb(-places, _SHIFT)


def exact_sum(values: Iterable[Fraction]) -> Fraction:
    """The exact sum of rationals, reduced once at the end."""
    num, den = 0, 1
    for value in values:
        if value.denominator == den:
            num += value.numerator
        else:
            num, den = num * value.denominator + value.numerator * den, den * value.denominator
    return Fraction(num, den)


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
    text = str(value)  # positional already unless it shows an exponent
    return f"{value:f}" if "E" in text else text


def fraction_text(value: Fraction) -> str:
    """An exact rational as JSON-safe text: ``"12.5"`` when finite in decimal, else ``"p/q"``."""
    num, den = value.as_integer_ratio()
    if den == 1:
        return str(num)
    places = _decimal_places(den)
    if places is None:
        return f"{num}/{den}"
    digits = num * (_POWERS.get(places) or 10**places) // den
    return decimal_text(Decimal(digits).scaleb(-places, _SHIFT))


@lru_cache(maxsize=1024)
def _decimal_places(den: int) -> int | None:
    """The fewest decimals that hold ``p / den`` exactly (None: none do)."""
    twos = (den & -den).bit_length() - 1
    rest, fives = den >> twos, 0
    while rest % 5 == 0:
        rest //= 5
        fives += 1
    return max(twos, fives) if rest == 1 else None


def parse_fraction(text: str) -> Fraction:
    """Inverse of :func:`fraction_text`."""
    if "/" in text:
        return Fraction(text)
    return Fraction(parse_decimal(text))
