"""The wait between attempts of a long-running loop that lost its database, broker or
Kafka: it doubles after each failure up to a cap and starts again after a success
(docs/operations.md, what each service does when a dependency is down)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Doubling:
    """``failed()`` gives the wait before the next attempt (first ``first_s``, then twice
    the last, at most ``cap_s``); ``succeeded()`` starts again from ``first_s``."""

    def __init__(self, first_s: float = 0.5, cap_s: float = 30.0) -> None:
        self.first_s = first_s
        self.cap_s = cap_s
        self._next = first_s

    def failed(self) -> float:
        wait = self._next
        self._next = min(self._next * 2, self.cap_s)
        return wait

    def succeeded(self) -> None:
        self._next = self.first_s


def keep_trying(action: Callable[[], T], unreachable: type[Exception] | tuple[type[Exception], ...],
                wait_s: float, report: Callable[[Exception], None]) -> T:
    """``action()`` again every few seconds while it raises ``unreachable`` (a dependency
    still starting), for at most ``wait_s``; then the last error is raised. ``report``
    hears of each failed attempt that will be tried again."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return action()
        except unreachable as exc:
            if time.monotonic() >= deadline:
                raise
            report(exc)
            time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
