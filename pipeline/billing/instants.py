"""Instants: aware datetimes compared and subtracted in UTC.

Python subtracts and compares two datetimes that share a tzinfo object on the wall
clock, ignoring a DST change between them; every duration here goes through UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_MICRO = timedelta(microseconds=1)


def utc(ts: datetime) -> datetime:
    """The same instant in UTC; refuses a naive datetime."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"{ts.isoformat()} has no UTC offset")
    return ts.astimezone(UTC)


def elapsed(start: datetime, end: datetime) -> timedelta:
    """Real time from ``start`` to ``end``."""
    return utc(end) - utc(start)


def micros(start: datetime, end: datetime) -> int:
    """Real time from ``start`` to ``end`` in whole microseconds, exactly."""
    return elapsed(start, end) // _MICRO
