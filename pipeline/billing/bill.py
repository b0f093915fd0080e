"""Offline billing of a batch of readings: validation then rating, per meter, in file order.

This is what ``meterflow bill`` shows and what the stream layer does reading by reading.
Each meter starts with no tier usage in its first period. The amount is the exact
cumulative cost of the meter's intervals rounded half-up to the fen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from contracts.money import round_fen
from pipeline.billing.rating import Rating, Usage, rate
from pipeline.billing.reading import MeterConfig, Reading
from pipeline.billing.tariff import TariffBook
from pipeline.billing.tier_state import TierState
from pipeline.billing.validation import Accepted, MeterState, Rejected, validate


@dataclass
class MeterBill:
    """One meter's result: accepted span, ratings and rejected readings."""

    meter_id: str
    start: datetime | None = None
    end: datetime | None = None
    ratings: list[Rating] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def units(self) -> Fraction:
        return sum((r.units for r in self.ratings), Fraction(0))

    @property
    def cost(self) -> Decimal:
        """Sum of the interval costs, each as a charge carries it."""
        return sum((r.cost for r in self.ratings), Decimal(0))

    @property
    def amount_fen(self) -> int:
        return round_fen(self.cost)

    def units_by_band(self) -> dict[str, Fraction]:
        totals: dict[str, Fraction] = {}
        for rating in self.ratings:
            for band, units in rating.units_by_band().items():
                totals[band] = totals.get(band, Fraction(0)) + units
        return totals


def scaled_usage(
    start: datetime,
    end: datetime,
    units: Decimal,
    band_units: Mapping[str, Decimal] | None,
    multiplier: Decimal,
) -> Usage:
    """The usage to rate: register deltas times the meter's multiplier."""
    bands = None if band_units is None else {b: u * multiplier for b, u in band_units.items()}
    return Usage(start, end, units * multiplier, bands)


def bill_readings(
    book: TariffBook,
    readings: Iterable[Reading],
    config: MeterConfig,
    now: datetime,
    multiplier: Decimal = Decimal(1),
) -> list[MeterBill]:
    """Validate and rate every meter's readings; meters in order of first appearance.

    ``multiplier`` (a current-transformer ratio) scales register deltas into units.
    """
    bills: dict[str, MeterBill] = {}
    meters: dict[str, MeterState] = {}
    tiers: dict[str, TierState] = {}
    for reading in readings:
        bill = bills.setdefault(reading.meter_id, MeterBill(reading.meter_id))
        state = meters.get(reading.meter_id, MeterState(reading.meter_id))
        meters[reading.meter_id], outcome = validate(state, reading, config, now)
        if isinstance(outcome, Rejected):
            bill.rejected.append(outcome)
            continue
        if not isinstance(outcome, Accepted):
            continue
        bill.start = bill.start or reading.ts
        bill.end = reading.ts
        interval = outcome.interval
        if interval is None:
            continue
        usage = scaled_usage(interval.start, interval.end, interval.units,
                             interval.band_units, multiplier)
        tiers[reading.meter_id], rating = rate(book, tiers.get(reading.meter_id), usage)
        bill.ratings.append(rating)
    return list(bills.values())
