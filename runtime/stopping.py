"""A service loop's graceful stop: SIGTERM (Kubernetes, ``meterflow stack``) and SIGINT
(Ctrl-C) set the loop's stop event; the loop finishes the round in hand."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from runtime.health import Probe, serve_health


def stop_on_signals(stop: threading.Event, service: str) -> None:
    """Set ``stop`` on SIGTERM or SIGINT (call from the main thread)."""

    def _stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(f"meterflow.{service}").info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


def serve_until_stopped(service: str, run: Callable[[], None], stop: threading.Event,
                        probe: Probe, port: int, host: str) -> None:
    """Run a service loop in this thread with its health endpoint beside it; SIGTERM and
    SIGINT stop it after the round in hand."""
    stop_on_signals(stop, service)
    health = serve_health(port, service, probe, host=host)
    try:
        run()
    finally:
        if health is not None:
            health.shutdown()
