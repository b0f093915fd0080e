"""A worker process: the processors or the sinks, with their health page and helpers.

* ``processor``: the two stateful stages (pipeline/processor.py), the configuration
  snapshot refreshed in a thread (pipeline/config_source.py), the clock
  (pipeline/clock.py) and the metrics writer;
* ``sink``: the TimescaleDB sinks (pipeline/sinks.py) and the metrics writer;
* ``all``: both, as two child processes of this one, which watches them and stops both
  when either ends or when it is asked to stop.

Each process answers ``GET /health`` (runtime/health.py): ``ready`` once its consumer
holds partitions and has restored their state. SIGTERM stops the engine at its next
message: it commits what it processed and leaves the consumer group, so its partitions
move at once (docs/operations.md, stopping).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from quixstreams import Application

from pipeline import clock, metrics, processor, sinks
from pipeline.config_source import ConfigSource
from pipeline.worker_settings import WorkerSettings

log = logging.getLogger("meterflow.worker")
ROLES = ("all", "processor", "sink")
Serve = Callable[[int, str, Callable[[], dict[str, Any]], str], Any]


class EngineWatch:
    """What the health page says of a running application (read from its consumer)."""

    def __init__(self) -> None:
        self.app: Application | None = None
        self.processed = 0
        self.last_processed: float | None = None
        self.started = time.monotonic()
        self.assignments = 0

    def watch(self, app: Application) -> Application:
        """Follow ``app``'s partition assignments: the engine calls its own ``_on_assign``
        when the group gives it partitions; it returns once their stores are open."""
        self.app = app
        on_assign = getattr(app, "_on_assign", None)
        if on_assign is not None:
            def assigned(consumer: Any, partitions: Any) -> None:
                on_assign(consumer, partitions)
                self.assignments += 1

            setattr(app, "_on_assign", assigned)  # noqa: B010 - the engine looks it up
        return app

    def on_message(self, topic: str, partition: int, offset: int) -> None:
        self.processed += 1
        self.last_processed = time.monotonic()

    def assigned(self) -> list[tuple[str, int]]:
        consumer = getattr(self.app, "_consumer", None)
        try:
            return [(tp.topic, tp.partition) for tp in consumer.assignment()] if consumer else []
        except Exception:  # not subscribed yet, or closing
            return []

    def report(self) -> dict[str, Any]:
        state = getattr(self.app, "_state_manager", None)
        recovering = bool(state is not None and state.recovery_required)
        assigned = [tp for tp in self.assigned() if not tp[0].startswith("changelog__")]
        idle = None if self.last_processed is None else round(
            time.monotonic() - self.last_processed, 1)
        return {"ready": bool(assigned) and self.assignments > 0 and not recovering,
                "recovering": recovering,
                "partitions": len(assigned), "processed": self.processed,
                "seconds_since_last_message": idle}


def run_processor(settings: WorkerSettings, serve: Serve) -> None:
    config = ConfigSource(settings.dsn)
    config.start(settings.config_refresh_s)
    watch = EngineWatch()
    app = watch.watch(processor.build(settings, config, on_message=watch.on_message))
    ticker = clock.Clock(settings.dsn, settings.bootstrap_servers, settings.clock_period_s)
    ticker.start()
    writer = metrics.MetricsWriter(settings.dsn, settings.bootstrap_servers, settings.group,
                                   settings.metrics_period_s, watch.assigned)
    writer.start()

    def probe() -> dict[str, Any]:
        return {"role": "processor", "group": settings.group, **watch.report(),
                "meters": len(config.snapshot.meters), "clock_leader": ticker.leader,
                "clock_error": ticker.last_error}

    serve(settings.health_port, "worker", probe, settings.health_host)
    try:
        app.run()
    finally:
        ticker.stop()
        writer.stop()
        config.stop()


def run_sink(settings: WorkerSettings, serve: Serve) -> None:
    watch = EngineWatch()
    app = watch.watch(sinks.build(settings, on_message=watch.on_message))
    writer = metrics.MetricsWriter(settings.dsn, settings.bootstrap_servers,
                                   settings.sink_group, settings.metrics_period_s,
                                   watch.assigned)
    writer.start()
    serve(settings.health_port, "worker",
          lambda: {"role": "sink", "group": settings.sink_group, **watch.report()},
          settings.health_host)
    try:
        app.run()
    finally:
        writer.stop()


def _child_health(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            body: dict[str, Any] = json.loads(answer.read())
            return body
    except Exception as exc:
        return {"status": "error", "ready": False, "detail": str(exc)}


def _stop_with_parent() -> None:
    """In a child: have the kernel send SIGTERM when this parent dies (Linux prctl), so a
    killed ``all`` worker never leaves a processor or a sink behind."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the parent's SIGTERM handler still runs
        pass


PR_SET_PDEATHSIG = 1


def run_all(settings: WorkerSettings, serve: Serve, argv: list[str]) -> int:
    """Start ``processor`` and ``sink`` children; end (and end both) when either ends.

    The children serve their health pages on the next two ports; this process answers
    on its own port for both.
    """
    base = settings.health_port
    ports = {"processor": base + 1 if base else 0, "sink": base + 2 if base else 0}
    children: dict[str, subprocess.Popen[bytes]] = {}
    for role, port in ports.items():
        env = {**os.environ, "METERFLOW_WORKER_WEB_PORT": str(port)}
        children[role] = subprocess.Popen([*argv, "--role", role], env=env,
                                          preexec_fn=_stop_with_parent)

    def probe() -> dict[str, Any]:
        parts = {role: _child_health(port) if port else {"ready": None}
                 for role, port in ports.items()}
        alive = all(child.poll() is None for child in children.values())
        ready = alive and all(p.get("ready") for p in parts.values())
        return {"status": "ok" if alive else "error", "role": "all", "ready": ready, **parts}

    serve(base, "worker", probe, settings.health_host)
    stopping = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        stopping.set()
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while all(child.poll() is None for child in children.values()):
        time.sleep(0.2)
    stop(signal.SIGTERM, None)
    codes = {role: child.wait() for role, child in children.items()}
    if not stopping.is_set() or any(codes.values()):
        failed = {r: c for r, c in codes.items() if c}
        log.error("worker child ended: %s", failed or codes)
        return 1 if failed or not stopping.is_set() else 0
    return 0


def main_argv() -> list[str]:
    """This process's own command line, to start its children with the same options."""
    return [sys.executable, "-m", "meterflow.cli", "worker"]
