"""Custom charge items: their schedule (which periods are due by a local day) and amount.

Rules (docs/tariffs.md, "Custom charges"):

* an item is one-off (due on its start date) or periodic: monthly on a day (1-28),
  quarterly or yearly on a day of an anchor month; days are the site's local days;
* a period is charged when its due day (never before the start date) has come and it
  overlaps the item's start and end dates (charged in full); every period due so far is
  returned, so a run missed while the service was down is caught up; the database keeps
  each (item, account, period) once;
* the amount is fixed yuan per period, or yuan per m2 of the account's room per period,
  computed in Decimal and rounded half up to the fen once (``contracts.money.round_fen``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from contracts.money import round_fen

FREQUENCIES = ("once", "monthly", "quarterly", "yearly")
BASES = ("fixed", "area")
STEP_MONTHS = {"monthly": 1, "quarterly": 3, "yearly": 12}


class ChargeError(ValueError):
    """An item or an amount that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """When an item is due: ``frequency``, the ``day`` of the month, the ``month`` that
    anchors quarters and years (1-12), and the first and last local days it covers."""

    frequency: str
    start: date
    end: date | None = None
    day: int = 1
    month: int = 1

    def __post_init__(self) -> None:
        if self.frequency not in FREQUENCIES:
            raise ChargeError(f"frequency: {self.frequency!r} is not one of "
                              f"{', '.join(FREQUENCIES)}")
        if not 1 <= self.day <= 28:
            raise ChargeError(f"day: {self.day} must be 1-28 (every month has it)")
        if not 1 <= self.month <= 12:
            raise ChargeError(f"month: {self.month} must be 1-12")
        if self.end is not None and self.end < self.start:
            raise ChargeError(f"end: {self.end} is before start {self.start}")


@dataclass(frozen=True, slots=True)
class Period:
    """One charged period: its label (the idempotency key's last part) and local days
    ``[start, end)``; ``due`` is the local day it is charged on."""

    label: str
    start: date
    end: date
    due: date


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _label(frequency: str, start: date) -> str:
    if frequency == "monthly":
        return f"{start:%Y-%m}"
    return f"{start:%Y-%m}.{'Q' if frequency == 'quarterly' else 'Y'}"


def periods_due(schedule: Schedule, today: date) -> list[Period]:
    """Every period due on or before the local day ``today``, oldest first."""
    if schedule.frequency == "once":
        if schedule.start > today:
            return []
        after = date.fromordinal(schedule.start.toordinal() + 1)
        return [Period(schedule.start.isoformat(), schedule.start, after, schedule.start)]
    step = STEP_MONTHS[schedule.frequency]
    anchor = 1 if step == 1 else schedule.month
    first = date(schedule.start.year, schedule.start.month, 1)
    back = (first.month - anchor) % step
    start = _add_months(first, -back)
    found: list[Period] = []
    while True:
        end = _add_months(start, step)
        due = max(date(start.year, start.month, schedule.day), schedule.start)
        if due > today or (schedule.end is not None and start > schedule.end):
            return found
        if end > schedule.start:
            found.append(Period(_label(schedule.frequency, start), start, end, due))
        start = end


def amount_fen(basis: str, rate_yuan: Decimal, area_m2: Decimal | None) -> int:
    """The fen charged for one period: ``rate`` (fixed) or ``rate x area`` (area)."""
    if basis not in BASES:
        raise ChargeError(f"basis: {basis!r} is not one of {', '.join(BASES)}")
    if rate_yuan < 0:
        raise ChargeError(f"amount: {rate_yuan} must not be negative")
    if basis == "fixed":
        return round_fen(rate_yuan)
    if area_m2 is None or area_m2 <= 0:
        raise ChargeError("area_m2: the account's room has no area; set it on the room")
    return round_fen(rate_yuan * area_m2)


def posting_key(prefix: str, ident: str, account_id: str, period: str) -> str:
    """The idempotency key of a deduction: what, whose, which period (1-128 chars)."""
    key = f"{prefix}:{ident}:{account_id}:{period}"
    if len(key) > 128:
        raise ChargeError(f"item_id: {ident!r} makes a key longer than 128 characters")
    return key


def closed_periods(start: date, day: int, today: date) -> list[Period]:
    """Monthly periods from ``start`` that have ended and whose run day (``day`` of the next
    month) has come by ``today``: what an apportionment group still has to split."""
    back = _add_months(date(today.year, today.month, 1), -1)
    shifted = date(back.year, back.month, min(today.day, 28))
    return [Period(p.label, p.start, p.end, date(p.end.year, p.end.month, day))
            for p in periods_due(Schedule("monthly", date(start.year, start.month, 1), None,
                                          day), shifted)]
