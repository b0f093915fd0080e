"""What a tariff book answers during rating, derived once from its immutable versions.

Rating asks the same questions of a book for every interval: which version is in force,
which band a local minute is in, where the cuts of a local day fall (docs/tariffs.md,
"How consumption is rated", 2) and what a band and step cost. A :class:`TariffPlan`
answers them from tables built once per book. It keeps each local day's judged cuts and
each short run of days in bounded LRU caches (``DAY_CACHE_SIZE`` days, ``SPAN_CACHE_SIZE``
runs) and the interval bounds it has seen in a bounded map (``INSTANT_CACHE_SIZE``).
Versions are immutable and the plan belongs to its book, so nothing cached can leak into
another tariff, even one with the same id.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from math import lcm
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from pipeline.billing.bands import MINUTES_PER_DAY, BandSet
from pipeline.billing.errors import RatingError
from pipeline.billing.instants import epoch_micros, from_epoch_micros, utc
from pipeline.billing.lru import Lru
from pipeline.billing.timeline import boundary_minutes, day_cuts, period_key

if TYPE_CHECKING:
    from pipeline.billing.tariff import Tariff

#: Local days whose judged cuts a book keeps (about a year).
DAY_CACHE_SIZE = 366
#: Runs of local days (an interval's first to last day) whose merged cuts a book keeps.
SPAN_CACHE_SIZE = 366
#: Only runs of at most this many local days are kept; longer intervals are rare.
SPAN_CACHE_DAYS = 4
#: Instants (interval bounds) whose local day and judgement a book keeps: meters share
#: their reading times, and one interval's end is the next one's start. When full, the
#: cache starts again empty (cheaper per look-up than an LRU, and as good for this use).
INSTANT_CACHE_SIZE = 1024

#: How a stretch is judged: version index (-1: none in force), band, tier period.
Judged = tuple[int, str | None, str]
#: A merged run of cuts: instants (epoch microseconds, ascending) and their judgements.
Timeline = tuple[tuple[int, ...], tuple[Judged, ...]]
#: A line's key (version start, band, 1-based step, unit price), the price as a ratio
#: (numerator, denominator) and as a whole number of ``1 / price_den``.
PriceInfo = tuple[tuple[date | None, str | None, int | None, Decimal], int, int, int]
#: A surcharge's key (name, price) and its price in the same three forms.
SurchargeInfo = tuple[tuple[str, Decimal], int, int, int]


def _minute_table(bands: BandSet) -> tuple[str, ...]:
    """The band of every minute of the local day, by index."""
    table = tuple(band for start, end, band in bands.spans for _ in range(start, end))
    assert len(table) == MINUTES_PER_DAY
    return table


class TariffPlan:
    """Tables and caches of one book (its versions in order, its zone)."""

    def __init__(self, tariff_id: str, versions: tuple[Tariff, ...], zone: ZoneInfo) -> None:
        self.tariff_id = tariff_id
        self.versions = versions
        self.zone = zone
        self._starts = tuple(
            None if (start := v.starts_at()) is None else epoch_micros(start) for v in versions
        )
        tables: dict[BandSet, tuple[str, ...]] = {}
        self._tables = tuple(
            (None, *(_table(v.bands_for_month(month), tables) for month in range(1, 13)))
            for v in versions
        )
        self._periods = tuple(v.tier_period for v in versions)
        self._minutes = (
            frozenset(),
            *(boundary_minutes(versions, month) for month in range(1, 13)),
        )
        self.band_names = tuple(v.band_names() for v in versions)
        self.tiered = any(v.steps for v in versions)
        #: Every step limit of every version is a whole number of ``1 / upto_den``.
        self.upto_den = lcm(
            *(Fraction(s.upto).denominator for v in versions for s in v.steps if s.upto is not None)
        )
        #: Per version: its step limits in ``1 / upto_den`` (None: no limit); None: no steps.
        self.uptos = tuple(
            tuple(
                None if s.upto is None else int(Fraction(s.upto) * self.upto_den) for s in v.steps
            )
            if v.steps
            else None
            for v in versions
        )
        #: Every price of every version is a whole number of ``1 / price_den``.
        self.price_den = lcm(
            *(price.as_integer_ratio()[1] for v in versions for price in _prices(v))
        )
        #: Per version: each surcharge's key (name, price) and price.
        self.surcharges: tuple[tuple[SurchargeInfo, ...], ...] = tuple(
            tuple(((s.name, s.price), *self._ratio(s.price)) for s in v.surcharges)
            for v in versions
        )
        self._prices: dict[tuple[int, str | None, int | None], PriceInfo] = {}
        self._days: Lru[int, tuple[tuple[int, Judged], ...]] = Lru(DAY_CACHE_SIZE)
        self._spans: Lru[tuple[int, int], Timeline] = Lru(SPAN_CACHE_SIZE)
        self._instants: dict[int, tuple[int, Judged]] = {}
        self._last: tuple[tuple[int, int], Timeline] = ((0, 0), ((), ()))
        self._period_keys: dict[tuple[int, int, int], str] = {}

    def version_index(self, instant: int) -> int:
        """The version in force at an instant (the last one started), -1 if none is."""
        chosen = -1
        for index, start in enumerate(self._starts):
            if start is None or start <= instant:
                chosen = index
        return chosen

    def judge(self, instant: int, local: datetime) -> Judged:
        """Version, band and tier period at an instant; ``local`` is it in the tariff zone."""
        index = self.version_index(instant)
        if index < 0:
            return (-1, None, "")
        month = local.month
        table = self._tables[index][month]
        band = None if table is None else table[local.hour * 60 + local.minute]
        if self._periods[index] is None:
            return (index, band, "")
        where = (index, local.year, month)
        period = self._period_keys.get(where)
        if period is None:  # a few keys a year
            period = self._period_keys[where] = period_key(self.versions[index], local)
        return (index, band, period)

    def price(self, index: int, band: str | None, step: int | None) -> PriceInfo:
        """Line key and unit price of a band and step (0-based) under a version."""
        info = self._prices.get((index, band, step))
        if info is None:
            version = self.versions[index]
            price = version.unit_price(band, step)
            key = (version.valid_from, band, None if step is None else step + 1, price)
            info = (key, *self._ratio(price))
            self._prices[(index, band, step)] = info
        return info

    def _ratio(self, price: Decimal) -> tuple[int, int, int]:
        num, den = price.as_integer_ratio()
        assert self.price_den % den == 0, "every price of the book is in price_den"
        return num, den, num * (self.price_den // den)

    def stretches(
        self, start: datetime, end: datetime, low: int, high: int
    ) -> list[tuple[int, Judged]]:
        """``[start, end)`` as merged stretches: (length in microseconds, judgement).

        ``low`` and ``high`` are ``start`` and ``end`` in epoch microseconds. Consecutive
        stretches differ in version, band or period. RatingError when no version is in
        force at ``start``.
        """
        first_day, current = self._at(low, start)
        if current[0] < 0:
            at = utc(start).isoformat()
            raise RatingError(f"tariff {self.tariff_id} is not in force at {at}")
        cuts, judged = self.timeline(first_day, self._at(high, end)[0])
        first = bisect_right(cuts, low)
        last = bisect_left(cuts, high, first)
        result: list[tuple[int, Judged]] = []
        for index in range(first, last):
            here = judged[index]
            if here != current:
                cut = cuts[index]
                result.append((cut - low, current))
                low, current = cut, here
        result.append((high - low, current))
        return result

    def _at(self, instant: int, when: datetime) -> tuple[int, Judged]:
        """The local day (date ordinal) of an instant and its judgement."""
        found = self._instants.get(instant)
        if found is None:
            local = when.astimezone(self.zone)
            found = (local.toordinal(), self.judge(instant, local))
            if len(self._instants) >= INSTANT_CACHE_SIZE:
                self._instants.clear()
            self._instants[instant] = found
        return found

    def timeline(self, first: int, last: int) -> Timeline:
        """The judged cuts of the local days ``first - 1 .. last + 1`` (date ordinals)."""
        key = (first, last)
        if self._last[0] == key:  # consecutive intervals mostly share their days
            return self._last[1]
        found = self._spans.get(key)
        if found is not None:
            self._last = (key, found)
            return found
        merged: dict[int, Judged] = {}
        for ordinal in range(first - 1, last + 2):
            merged.update(self._day(ordinal))
        cuts = tuple(sorted(merged))
        timeline = (cuts, tuple(merged[cut] for cut in cuts))
        if last - first < SPAN_CACHE_DAYS:
            self._spans.put(key, timeline)
            self._last = (key, timeline)
        return timeline

    def _day(self, ordinal: int) -> tuple[tuple[int, Judged], ...]:
        found = self._days.get(ordinal)
        if found is None:
            day = date.fromordinal(ordinal)
            zone = self.zone
            found = tuple(
                (cut, self.judge(cut, from_epoch_micros(cut).astimezone(zone)))
                for cut in day_cuts(day, self._minutes[day.month], zone)
            )
            self._days.put(ordinal, found)
        return found


def _prices(version: Tariff) -> list[Decimal]:
    """Every price a version names: flat, per band, per step and band, per surcharge."""
    found = [] if version.price is None else [version.price]
    tables = [version.prices, *(step.prices for step in version.steps)]
    found += [price for table in tables if table is not None for price in table.values()]
    found += [step.price for step in version.steps if step.price is not None]
    return found + [extra.price for extra in version.surcharges]


def _table(bands: BandSet | None, tables: dict[BandSet, tuple[str, ...]]) -> tuple[str, ...] | None:
    if bands is None:
        return None
    if bands not in tables:
        tables[bands] = _minute_table(bands)
    return tables[bands]
