"""The exact sums of one rated interval, kept as integers until the lines are made.

Every quantity added is a whole number of the interval's fine unit ``1 / den`` (see
:mod:`pipeline.billing.rating`); a line split by register shares counts in
``1 / (den * share_den)``. Lines and surcharges keep first-seen order, as the rating shows
them (docs/tariffs.md, "How consumption is rated", 6). :meth:`LineSums.results` reduces
each sum to a Fraction once and adds up the exact amount on the way.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import TypeVar

from pipeline.billing.shares import Weights
from pipeline.billing.tariff_plan import TariffPlan

LineKey = tuple[date | None, str | None, int | None, Decimal]
SurchargeKey = tuple[str, Decimal]
#: Units so far, their denominator, the unit price as a ratio, the price in ``1 / price_den``.
_Sum = list[int]
K = TypeVar("K")
#: A made line: its key, exact units and exact amount.
Line = tuple[LineKey, Fraction, Fraction]
Extra = tuple[SurchargeKey, Fraction, Fraction]


class LineSums:
    """Units per line key and per surcharge key of one interval, in its fine unit."""

    __slots__ = ("den", "extras", "lines", "plan", "share_den")

    def __init__(self, plan: TariffPlan, den: int) -> None:
        self.plan = plan
        self.den = den
        self.share_den = 1
        self.lines: dict[LineKey, _Sum] = {}
        self.extras: dict[SurchargeKey, _Sum] = {}

    def add(
        self, index: int, band: str | None, step: int | None, units: int, split: Weights | None
    ) -> None:
        """``units`` (fine unit) in a band and step of a version, or split by shares."""
        lines = self.lines
        if split is None:
            key, price_num, price_den, price_fine = self.plan.price(index, band, step)
            if key in lines:
                lines[key][0] += units
            else:
                lines[key] = [units, self.den, price_num, price_den, price_fine]
            return
        scale, parts = split
        self.share_den = scale
        for name, weight in parts:
            key, price_num, price_den, price_fine = self.plan.price(index, name, step)
            if key in lines:
                lines[key][0] += units * weight
            else:
                lines[key] = [units * weight, self.den * scale, price_num, price_den, price_fine]

    def surcharge(self, index: int, units: int) -> None:
        """``units`` (fine unit) under every surcharge of a version."""
        extras = self.extras
        for key, price_num, price_den, price_fine in self.plan.surcharges[index]:
            if key in extras:
                extras[key][0] += units
            else:
                extras[key] = [units, self.den, price_num, price_den, price_fine]

    def results(self, total: Fraction) -> tuple[list[Line], list[Extra], Fraction]:
        """Each line's and surcharge's exact units and amount, and the exact amount of all."""
        fine = self.den * self.share_den
        lines, on_lines = _reduce(self.lines, total, fine)
        if not self.extras:
            if len(lines) == 1:
                return lines, [], lines[0][2]
            return lines, [], Fraction(on_lines, fine * self.plan.price_den)
        extras, on_extras = _reduce(self.extras, total, fine)
        return lines, extras, Fraction(on_lines + on_extras, fine * self.plan.price_den)


def _reduce(
    sums: dict[K, _Sum], total: Fraction, fine: int
) -> tuple[list[tuple[K, Fraction, Fraction]], int]:
    """Units and amount per key as Fractions, and their amount in ``1 / (fine * price_den)``.

    A sum equal to ``total`` (one stretch, one step: the usual case) reuses that Fraction.
    """
    num_total, den_total = total.numerator, total.denominator
    made: list[tuple[K, Fraction, Fraction]] = []
    amount = 0
    for key, (num, den, price_num, price_den, price_fine) in sums.items():
        if num * den_total == den * num_total:
            made.append((key, total, Fraction(num_total * price_num, den_total * price_den)))
        else:
            made.append((key, Fraction(num, den), Fraction(num * price_num, den * price_den)))
        amount += num * price_fine * (fine // den)
    return made, amount
