"""Cut an interval into pieces over which the tariff's answer is constant.

Cuts fall on band boundaries, local midnights (so month starts, season and tier period
resets, and version starts), and UTC-offset changes, all in the tariff's own zone. A wall
time that a DST change makes ambiguous is cut at both of its instants, and one that it
skips is cut where the clock jumps over it; each piece is then judged by the local time
at its start, which is correct on both sides of every cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from pipeline.billing.tariff import Tariff, TariffBook

_RESOLUTION = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Piece:
    """A stretch ``[start, end)`` with one version, one band (time-of-use) and one period."""

    start: datetime
    end: datetime
    version: Tariff
    band: str | None
    period: str


def period_key(version: Tariff, local: datetime) -> str:
    """The tier period a local time falls in: ``2024-07`` (month), ``2024`` (year)."""
    if version.tier_period == "month":
        return f"month:{local.year:04d}-{local.month:02d}"
    if version.tier_period == "year":
        return f"year:{local.year:04d}"
    return ""


def _wall(day: date, minute: int, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Both instants (fold 0 and 1) of a wall time; equal unless DST makes it ambiguous."""
    wall = datetime.combine(day, time(), tzinfo=zone) + timedelta(minutes=minute)
    return wall.astimezone(UTC), wall.replace(fold=1).astimezone(UTC)


def _offset_change(day: date, zone: ZoneInfo) -> datetime | None:
    """The instant the zone's UTC offset changes during a local day, if it does."""
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
    """The pieces of ``[start, end)`` in time order (``start < end``, both UTC)."""
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
