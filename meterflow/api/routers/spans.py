"""Local-day spans and periods for finance and energy reports (pure)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from meterflow.api.errors import ApiError

Period = Literal["day", "month", "year", "span"]
#: to_char formats of a bucket's label per period.
LABELS = {"day": "YYYY-MM-DD", "month": "YYYY-MM", "year": "YYYY"}


def span(start: date | None, end: date | None, zone: str,
         default_days: int = 31) -> tuple[date, date, datetime, datetime]:
    """Inclusive local days -> (first day, last day, start instant, end instant exclusive)."""
    tz = ZoneInfo(zone)
    today = datetime.now(tz).date()
    last = end or today
    first = start or last - timedelta(days=default_days - 1)
    if first > last:
        raise ApiError(400, "from", f"{first} is after to {last}")
    if (last - first).days > 366 * 20:
        raise ApiError(400, "from", "a span of at most 20 years")
    begin = datetime.combine(first, time(), tzinfo=tz)
    stop = datetime.combine(last + timedelta(days=1), time(), tzinfo=tz)
    return first, last, begin, stop


def year_before(day: date) -> date:
    """The same day a year earlier (29 February becomes the 28th)."""
    try:
        return day.replace(year=day.year - 1)
    except ValueError:
        return day.replace(year=day.year - 1, day=28)
