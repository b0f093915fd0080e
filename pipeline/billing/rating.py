"""Rating: the money for the units consumed between two accepted readings.

The rules are docs/tariffs.md, "How consumption is rated". The book's plan cuts the
interval into stretches (:meth:`TariffPlan.stretches`, cut as
:mod:`pipeline.billing.timeline` says) and :mod:`pipeline.billing.spread` spreads the
units over them, through tier steps and register shares, in exact integer arithmetic.
Lines and amounts are exact rationals (Fraction); :attr:`Rating.cost` turns the exact
amount into a Decimal at ``COST_PLACES`` by the one rounding rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction

from contracts.money import COST_PLACES, exact_sum, round_half_up
from pipeline.billing.errors import RatingError
from pipeline.billing.instants import epoch_micros, utc
from pipeline.billing.shares import band_shares
from pipeline.billing.spread import spread
from pipeline.billing.tariff import TariffBook
from pipeline.billing.tier_state import TierState

__all__ = ["RatedLine", "Rating", "SurchargeLine", "Usage", "band_shares", "rate"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Units consumed over ``[start, end)``; ``band_units`` from band registers, if any."""

    start: datetime
    end: datetime
    units: Decimal
    band_units: Mapping[str, Decimal] | None = None


@dataclass(frozen=True, slots=True)
class RatedLine:
    """Units and money of one band and one step (1-based) under one tariff version."""

    valid_from: date | None
    band: str | None
    step: int | None
    price: Decimal
    units: Fraction
    amount: Fraction


@dataclass(frozen=True, slots=True)
class SurchargeLine:
    name: str
    price: Decimal
    units: Fraction
    amount: Fraction


@dataclass(frozen=True)
class Rating:
    """The rated interval: lines per band/step, surcharge lines, exact amounts."""

    tariff_id: str
    start: datetime
    end: datetime
    units: Fraction
    lines: tuple[RatedLine, ...]
    surcharges: tuple[SurchargeLine, ...] = field(default=())

    @property
    def amount(self) -> Fraction:
        """Exact cost in yuan: every line plus every surcharge (summed once, then kept)."""
        memo = self.__dict__
        amount: Fraction | None = memo.get("_amount")
        if amount is None:
            amount = memo["_amount"] = exact_sum(
                [*(x.amount for x in self.lines), *(s.amount for s in self.surcharges)]
            )
        return amount

    @property
    def cost(self) -> Decimal:
        """The exact amount at ``COST_PLACES`` decimals: what a charge carries."""
        memo = self.__dict__
        cost: Decimal | None = memo.get("_cost")
        if cost is None:
            cost = memo["_cost"] = round_half_up(self.amount, COST_PLACES)
        return cost

    def units_by_band(self) -> dict[str, Fraction]:
        return _by_band(self.lines, amounts=False)

    def amount_by_band(self) -> dict[str, Fraction]:
        return _by_band(self.lines, amounts=True)

    def units_by_step(self) -> dict[int, Fraction]:
        return _by_step(self.lines, amounts=False)

    def amount_by_step(self) -> dict[int, Fraction]:
        return _by_step(self.lines, amounts=True)


def _by_band(lines: tuple[RatedLine, ...], *, amounts: bool) -> dict[str, Fraction]:
    totals: dict[str, Fraction] = {}
    for line in lines:
        if line.band is not None:
            add = line.amount if amounts else line.units
            totals[line.band] = totals.get(line.band, Fraction(0)) + add
    return totals


def _by_step(lines: tuple[RatedLine, ...], *, amounts: bool) -> dict[int, Fraction]:
    totals: dict[int, Fraction] = {}
    for line in lines:
        if line.step is not None:
            add = line.amount if amounts else line.units
            totals[line.step] = totals.get(line.step, Fraction(0)) + add
    return totals


def rate(book: TariffBook, tiers: TierState | None, usage: Usage) -> tuple[TierState, Rating]:
    """Rate one interval; returns the tier state after it and the rating.

    ``tiers`` is the meter's state for this tariff id (None: nothing used yet).
    """
    start, end = usage.start, usage.end
    if start.tzinfo is None or end.tzinfo is None:
        raise RatingError("interval bounds must carry a UTC offset")
    try:
        low, high = epoch_micros(start), epoch_micros(end)  # compared in UTC, not on the wall
    except TypeError:  # a tzinfo without an offset: refused as every such instant is
        utc(start), utc(end)
        raise
    if high <= low:
        raise RatingError("an interval must end after it starts")
    if usage.units < 0:
        raise RatingError("units must not be negative")
    state = tiers if tiers is not None else TierState(book.id)
    total = Fraction(*usage.units.as_integer_ratio())
    plan = book.plan
    state, lines, extras, amount = spread(
        plan, state, total, plan.stretches(start, end, low, high), usage.band_units
    )
    rating = Rating(
        book.id,
        usage.start,
        usage.end,
        total,
        tuple([RatedLine(*key, units, cost) for key, units, cost in lines]),
        tuple([SurchargeLine(*key, units, cost) for key, units, cost in extras]),
    )
    rating.__dict__["_amount"] = amount  # what Rating.amount would sum, already known exactly
    return state, rating

