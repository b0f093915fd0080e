"""The tariff model: one version of one tariff, and the book of all versions of an id.

A tariff is exactly one of flat (``price``), time-of-use (``bands`` + ``prices``) or tiered
(``tiers``, optionally with bands); surcharges add to every unit. Parsing and validation
live in :mod:`pipeline.billing.tariff_parse`; this module only answers questions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from zoneinfo import ZoneInfo

from pipeline.billing.bands import BandSet
from pipeline.billing.errors import RatingError, TariffError
from pipeline.billing.tariff_plan import TariffPlan


@dataclass(frozen=True, slots=True)
class Step:
    """One tier step: usage up to ``upto`` in the period (None: no limit) costs its price."""

    upto: Decimal | None
    price: Decimal | None = None
    prices: Mapping[str, Decimal] | None = None


@dataclass(frozen=True, slots=True)
class Season:
    """In these months these bands replace the base bands."""

    months: frozenset[int]
    bands: BandSet


@dataclass(frozen=True, slots=True)
class Surcharge:
    """A per-unit charge added to every unit whatever its band or step (e.g. sewage)."""

    name: str
    price: Decimal


@dataclass(frozen=True)
class Tariff:
    """One version of a tariff, valid from local midnight of ``valid_from``."""

    id: str
    name: str
    commodity: str
    unit: str
    currency: str
    timezone: str
    valid_from: date | None = None
    price: Decimal | None = None
    bands: BandSet | None = None
    prices: Mapping[str, Decimal] | None = None
    seasons: tuple[Season, ...] = ()
    tier_period: str | None = None
    steps: tuple[Step, ...] = ()
    surcharges: tuple[Surcharge, ...] = ()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def kind(self) -> str:
        """``flat``, ``tou`` or ``tiered``."""
        if self.steps:
            return "tiered"
        return "tou" if self.bands is not None else "flat"

    @property
    def has_bands(self) -> bool:
        return self.bands is not None

    def band_names(self) -> frozenset[str]:
        """Every band used in the base set or any season."""
        names: set[str] = set()
        for bands in self.all_band_sets():
            names |= bands.names
        return frozenset(names)

    def all_band_sets(self) -> tuple[BandSet, ...]:
        base = (self.bands,) if self.bands is not None else ()
        return base + tuple(season.bands for season in self.seasons)

    def bands_for_month(self, month: int) -> BandSet | None:
        """The band set in force in a local calendar month (a season replaces the base)."""
        for season in self.seasons:
            if month in season.months:
                return season.bands
        return self.bands

    def starts_at(self) -> datetime | None:
        """Local midnight of ``valid_from`` in the tariff's zone (None: always valid)."""
        if self.valid_from is None:
            return None
        return datetime.combine(self.valid_from, time(), tzinfo=self.zone)

    def step_index(self, used: Fraction) -> int:
        """The step (0-based) of the next unit after ``used`` units in the period."""
        for index, step in enumerate(self.steps):
            if step.upto is None or used < Fraction(step.upto):
                return index
        raise AssertionError("the last step has no upto")  # pragma: no cover

    def unit_price(self, band: str | None, step: int | None) -> Decimal:
        """Price of one unit in a band and step, surcharges excluded."""
        if step is not None:
            chosen = self.steps[step]
            if chosen.prices is None:
                assert chosen.price is not None
                return chosen.price
            table: Mapping[str, Decimal] = chosen.prices
        elif self.prices is not None:
            table = self.prices
        else:
            assert self.price is not None
            return self.price
        if band is None or band not in table:
            raise RatingError(f"tariff {self.id}: band {band!r} has no price")
        return table[band]


class TariffBook:
    """All versions of one tariff id, ordered by ``valid_from``; picks the one in force."""

    def __init__(self, versions: list[Tariff] | tuple[Tariff, ...]) -> None:
        if not versions:
            raise TariffError("", "no tariff given")
        ordered = sorted(versions, key=lambda t: t.valid_from or date.min)
        first = ordered[0]
        for version in ordered[1:]:
            if version.id != first.id:
                raise TariffError("id", f"versions of different tariffs: {first.id}, {version.id}")
            if version.timezone != first.timezone:
                raise TariffError("timezone", f"versions of {first.id} differ in timezone")
            if first.valid_from is None:
                raise TariffError("valid_from", f"several versions of {first.id}: each needs one")
        dates = [v.valid_from for v in ordered]
        if len(set(dates)) != len(dates):
            raise TariffError("valid_from", f"two versions of {first.id} start the same day")
        self.versions: tuple[Tariff, ...] = tuple(ordered)
        self.id = first.id
        self.zone = first.zone
        self.unit = first.unit
        self.currency = first.currency

    def version_at(self, instant: datetime) -> Tariff:
        """The version in force at an instant; RatingError before the first one starts."""
        chosen: Tariff | None = None
        for version in self.versions:
            start = version.starts_at()
            if start is None or start <= instant:
                chosen = version
        if chosen is None:
            raise RatingError(f"tariff {self.id} is not in force at {instant.isoformat()}")
        return chosen

    @cached_property
    def plan(self) -> TariffPlan:
        """The book's rating tables and day caches, built on first use (versions never change)."""
        return TariffPlan(self.id, self.versions, self.zone)

    def version_starts(self) -> tuple[datetime, ...]:
        return tuple(s for v in self.versions if (s := v.starts_at()) is not None)
