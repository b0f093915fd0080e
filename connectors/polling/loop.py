"""Run a poll cycle every ``interval`` seconds until stopped (thin)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from connectors.polling.framed import CycleStats

log = logging.getLogger(__name__)


async def run_periodic(cycle: Callable[[], Awaitable[CycleStats]], interval: float,
                       stop: asyncio.Event, *, cycles: int = 0) -> CycleStats:
    """Call ``cycle`` every ``interval`` s (``cycles`` > 0: that many times); totals back."""
    total = CycleStats()
    done = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            stats = await cycle()
        except Exception:  # a broken cycle must not end the loop
            log.exception("poll cycle failed")
            stats = CycleStats()
        total.add(stats)
        done += 1
        log.info("poll cycle: %d readings, %d unreachable, %d dead letters",
                 stats.readings, stats.unreachable, stats.dead_letters)
        if cycles and done >= cycles:
            break
        left = interval - (time.monotonic() - started)
        if left > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), left)
    return total
