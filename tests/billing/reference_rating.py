"""The reference rating core: the straightforward implementation the fast core is held to.

This is the rating of docs/tariffs.md ("How consumption is rated") written the plain way:
every interval re-derives its cuts day by day (band boundaries, local midnights and
UTC-offset changes found by bisection) and all arithmetic is on Fraction. It is kept,
unchanged in behaviour, only so that the equivalence tests and the micro-benchmark can
compare the application's core with it; the application never imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise
from zoneinfo import ZoneInfo

from pipeline.billing.errors import RatingError
from pipeline.billing.instants import micros, utc
from pipeline.billing.rating import Usage
from pipeline.billing.tariff import Tariff, TariffBook
from pipeline.billing.tier_state import TierState

COST_PLACES = 10
_RESOLUTION = timedelta(microseconds=1)


# --- money -------------------------------------------------------------------------------


def round_half_up(value: Decimal | Fraction | int, places: int) -> Decimal:
    """Round ``value`` to ``places`` decimals, ties away from zero."""
    exact = Fraction(value) * 10**places
    sign = -1 if exact < 0 else 1
    whole, rest = divmod(abs(exact.numerator), exact.denominator)
    if 2 * rest >= exact.denominator:
        whole += 1
    return Decimal(f"{sign * whole}E-{places}")


def decimal_text(value: Decimal) -> str:
    """A Decimal as plain positional text."""
    return f"{value:f}"


def fraction_text(value: Fraction) -> str:
    """``"12.5"`` when finite in decimal, else ``"p/q"``."""
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


# --- results -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RatedLine:
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
    tariff_id: str
    start: datetime
    end: datetime
    units: Fraction
    lines: tuple[RatedLine, ...]
    surcharges: tuple[SurchargeLine, ...] = field(default=())

    @property
    def amount(self) -> Fraction:
        return sum((x.amount for x in self.lines), Fraction(0)) + sum(
            (s.amount for s in self.surcharges), Fraction(0)
        )

    @property
    def cost(self) -> Decimal:
        return round_half_up(self.amount, COST_PLACES)


# --- timeline ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Piece:
    start: datetime
    end: datetime
    version: Tariff
    band: str | None
    period: str


def period_key(version: Tariff, local: datetime) -> str:
    if version.tier_period == "month":
        return f"month:{local.year:04d}-{local.month:02d}"
    if version.tier_period == "year":
        return f"year:{local.year:04d}"
    return ""


def _wall(day: date, minute: int, zone: ZoneInfo) -> tuple[datetime, datetime]:
    wall = datetime.combine(day, time(), tzinfo=zone) + timedelta(minutes=minute)
    return wall.astimezone(UTC), wall.replace(fold=1).astimezone(UTC)


def _offset_change(day: date, zone: ZoneInfo) -> datetime | None:
    low = _wall(day, 0, zone)[0]
    high = _wall(day + timedelta(days=1), 0, zone)[0]
    if low.astimezone(zone).utcoffset() == high.astimezone(zone).utcoffset():
        return None
    before = low.astimezone(zone).utcoffset()
    while high - low > _RESOLUTION:
        middle = low + (high - low) // 2
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high


def _cuts(book: TariffBook, start: datetime, end: datetime) -> list[datetime]:
    zone = book.zone
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    cuts: set[datetime] = set()
    day = first
    while day <= last:
        minutes = {0}
        for version in book.versions:
            band_set = version.bands_for_month(day.month)
            if band_set is not None:
                minutes.update(band_set.boundaries())
        for minute in minutes:
            cuts.update(_wall(day, minute, zone))
        change = _offset_change(day, zone)
        if change is not None:
            cuts.add(change)
        day += timedelta(days=1)
    return sorted(c for c in cuts if start < c < end)


def pieces(book: TariffBook, start: datetime, end: datetime) -> list[Piece]:
    bounds = [start, *_cuts(book, start, end), end]
    result: list[Piece] = []
    for low, high in pairwise(bounds):
        version = book.version_at(low)
        local = low.astimezone(book.zone)
        band_set = version.bands_for_month(local.month)
        band = band_set.band_at(local.hour * 60 + local.minute) if band_set else None
        piece = Piece(low, high, version, band, period_key(version, local))
        previous = result[-1] if result else None
        if (
            previous is not None
            and previous.version is version
            and (previous.band, previous.period) == (band, piece.period)
        ):
            result[-1] = Piece(previous.start, high, version, band, piece.period)
        else:
            result.append(piece)
    return result


# --- rating ------------------------------------------------------------------------------


def band_shares(
    tariff_bands: frozenset[str],
    band_units: Mapping[str, Decimal] | None,
) -> dict[str, Fraction] | None:
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
