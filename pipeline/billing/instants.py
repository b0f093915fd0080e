"""Instants: aware datetimes compared and subtracted in UTC.

Python subtracts and compares two datetimes that share a tzinfo object on the wall
clock, ignoring a DST change between them; every duration here goes through UTC.
Rating works on instants as whole microseconds since the Unix epoch, which is exact.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_MICRO = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def epoch_micros(ts: datetime) -> int:
    """An aware instant as whole microseconds since 1970-01-01T00:00Z."""
    return (ts - _EPOCH) // _MICRO


def from_epoch_micros(value: int) -> datetime:
    """Inverse of :func:`epoch_micros`: the instant in UTC."""
    return _EPOCH + timedelta(microseconds=value)
