"""A service loop's graceful stop: SIGTERM (Kubernetes, ``meterflow stack``) and SIGINT
(Ctrl-C) set the loop's stop event; the loop finishes the round in hand."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType


def stop_on_signals(stop: threading.Event, service: str) -> None:
    """Set ``stop`` on SIGTERM or SIGINT (call from the main thread)."""

    def _stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(f"meterflow.{service}").info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
