"""Clocks: real, sped up (``speed`` simulated seconds per real second), or set by hand."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


class SpeedClock:
    """Simulated time starting at ``start`` and running ``speed`` times faster than real.

    ``speed=3600``: one simulated hour per real second (a day in 24 s)."""

    def __init__(self, start: datetime | None = None, speed: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.start = start or datetime.now(UTC)
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.speed = speed
        self._monotonic = monotonic
        self._t0 = monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=(self._monotonic() - self._t0) * self.speed)


class ManualClock:
    """A clock for tests: ``advance`` moves it."""

    def __init__(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now
