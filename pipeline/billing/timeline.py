"""Where the tariff's answer may change: the cuts of docs/tariffs.md, "How consumption is rated", 2.

Cuts fall on band boundaries, local midnights (so month starts, season and tier period
resets, and version starts), and UTC-offset changes, all in the tariff's own zone. A wall
time that a DST change makes ambiguous is cut at both of its instants, and one that it
skips is cut where the clock jumps over it; each stretch between cuts is then judged by
the local time at its start, which is correct on both sides of every cut.

The cuts of one local day do not depend on any interval, so :class:`TariffPlan` computes
them once per day (:func:`day_cuts`) and keeps them; :func:`pieces` is the readable view
of an interval's stretches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from pipeline.billing.instants import epoch_micros, from_epoch_micros

if TYPE_CHECKING:
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
    """The tier period a local time falls in: ``month:2024-07`` (month), ``year:2024`` (year)."""
    if version.tier_period == "month":
        return f"month:{local.year:04d}-{local.month:02d}"
    if version.tier_period == "year":
        return f"year:{local.year:04d}"
    return ""


def boundary_minutes(versions: Iterable[Tariff], month: int) -> frozenset[int]:
    """Local midnight and every band boundary of any version's band set in that month."""
    minutes = {0}
    for version in versions:
        band_set = version.bands_for_month(month)
        if band_set is not None:
            minutes.update(band_set.boundaries())
    return frozenset(minutes)


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


def day_cuts(day: date, minutes: Iterable[int], zone: ZoneInfo) -> list[int]:
    """The cuts a local day contributes, as epoch microseconds, ascending.

    Both instants of each wall minute in ``minutes`` (see :func:`boundary_minutes`) and
    the offset change of the day, if any. An interval is cut by the cuts of every local
    day from the one before its start to the one after its end.
    """
    cuts: set[datetime] = set()
    for minute in minutes:
        cuts.update(_wall(day, minute, zone))
    change = _offset_change(day, zone)
    if change is not None:
        cuts.add(change)
    return sorted(epoch_micros(cut) for cut in cuts)


def pieces(book: TariffBook, start: datetime, end: datetime) -> list[Piece]:
    """The pieces of ``[start, end)`` in time order (``start < end``, both UTC)."""
    plan = book.plan
    at = epoch_micros(start)
    stretches = plan.stretches(start, end, at, epoch_micros(end))
    result: list[Piece] = []
    low = start
    for number, (length, (index, band, period)) in enumerate(stretches, 1):
        at += length
        high = end if number == len(stretches) else from_epoch_micros(at)
        result.append(Piece(low, high, plan.versions[index], band, period))
        low = high
    return result
