"""Rating: the money for the units consumed between two accepted readings.

Units are spread uniformly over ``[start, end)`` and walked in time order through the
pieces of :mod:`pipeline.billing.timeline`; each piece's units are split at tier
thresholds. With band registers, the register deltas fix each band's share of every
piece instead of the clock (so a tier crossed inside the interval splits each band's
units in proportion). Arithmetic is exact (Fraction); :attr:`Rating.cost` turns the exact
amount into a Decimal at ``COST_PLACES`` by the one rounding rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction

from pipeline.billing.errors import RatingError
from pipeline.billing.instants import micros, utc
from pipeline.billing.money import COST_PLACES, round_half_up
from pipeline.billing.tariff import Tariff, TariffBook
from pipeline.billing.tier_state import TierState
from pipeline.billing.timeline import pieces


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
        """Exact cost in yuan: every line plus every surcharge."""
        return sum((x.amount for x in self.lines), Fraction(0)) + sum(
            (s.amount for s in self.surcharges), Fraction(0)
        )

    @property
    def cost(self) -> Decimal:
        """The exact amount at ``COST_PLACES`` decimals: what a charge carries."""
        return round_half_up(self.amount, COST_PLACES)

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


def band_shares(
    tariff_bands: frozenset[str],
    band_units: Mapping[str, Decimal] | None,
) -> dict[str, Fraction] | None:
    """Each band's share of the units, from register deltas (None: split by the clock).

    The total register is authoritative: band deltas only set proportions, so a sum that
    differs from the total delta (meters round each register) is scaled to the total.
    Registers that moved not at all give no proportions, and the clock decides.
    """
    if not band_units or not tariff_bands:
        return None
    moved = {band: Fraction(units) for band, units in band_units.items() if units}
    for band, units in moved.items():
        if units < 0:
            raise RatingError(f"band register {band!r} went back by {-units}")
        if band not in tariff_bands:
            raise RatingError(f"band register {band!r} has units but the tariff has no such band")
    total = sum(moved.values(), Fraction(0))
    if not total:
        return None
    return {band: units / total for band, units in sorted(moved.items())}


class _Lines:
    """Accumulates units per (version, band, step) and per surcharge, in first-seen order."""

    def __init__(self) -> None:
        self.lines: dict[tuple[date | None, str | None, int | None, Decimal], list[Fraction]] = {}
        self.surcharges: dict[tuple[str, Decimal], Fraction] = {}

    def add(self, version: Tariff, band: str | None, step: int | None, units: Fraction) -> None:
        price = version.unit_price(band, step)
        key = (version.valid_from, band, None if step is None else step + 1, price)
        self.lines.setdefault(key, [Fraction(0)])[0] += units

    def surcharge(self, version: Tariff, units: Fraction) -> None:
        for extra in version.surcharges:
            key = (extra.name, extra.price)
            self.surcharges[key] = self.surcharges.get(key, Fraction(0)) + units


def rate(book: TariffBook, tiers: TierState | None, usage: Usage) -> tuple[TierState, Rating]:
    """Rate one interval; returns the tier state after it and the rating.

    ``tiers`` is the meter's state for this tariff id (None: nothing used yet).
    """
    if usage.start.tzinfo is None or usage.end.tzinfo is None:
        raise RatingError("interval bounds must carry a UTC offset")
    start, end = utc(usage.start), utc(usage.end)
    if end <= start:
        raise RatingError("an interval must end after it starts")
    if usage.units < 0:
        raise RatingError("units must not be negative")
    state = tiers if tiers is not None else TierState(book.id)
    total_time = micros(start, end)
    total = Fraction(usage.units)
    out = _Lines()
    for piece in pieces(book, start, end):
        version = piece.version
        shares = band_shares(version.band_names(), usage.band_units)
        units = total * micros(piece.start, piece.end) / total_time
        out.surcharge(version, units)
        if not version.steps:
            _spread(out, version, piece.band, None, units, shares)
            continue
        state = state.in_period(book.id, piece.period)
        while units > 0:
            step = version.step_index(state.used)
            upto = version.steps[step].upto
            take = units if upto is None else min(units, Fraction(upto) - state.used)
            _spread(out, version, piece.band, step, take, shares)
            state = TierState(state.tariff_id, state.period, state.used + take)
            units -= take
    lines = tuple(
        RatedLine(valid_from, band, step, price, acc[0], acc[0] * Fraction(price))
        for (valid_from, band, step, price), acc in out.lines.items()
    )
    extras = tuple(
        SurchargeLine(name, price, units, units * Fraction(price))
        for (name, price), units in out.surcharges.items()
    )
    return state, Rating(book.id, usage.start, usage.end, total, lines, extras)


def _spread(
    out: _Lines,
    version: Tariff,
    band: str | None,
    step: int | None,
    units: Fraction,
    shares: dict[str, Fraction] | None,
) -> None:
    if shares is None:
        out.add(version, band, step, units)
        return
    for name, share in shares.items():
        out.add(version, name, step, units * share)
