"""The health endpoint of a long-running service other than the stream worker.

``GET /health`` answers 200 with the probe's JSON when the probe says ``ok``, 503 otherwise
(Kubernetes liveness and readiness probes, ``meterflow stack status``). The port comes from
``METERFLOW_HEALTH_PORT``; 0 (the default) serves nothing. The server runs in a daemon
thread so the service's own loop needs no change; a probe reads state the service keeps.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("meterflow.health")
Probe = Callable[[], dict[str, Any]]


def serve_health(port: int, service: str, probe: Probe | None = None,
                 host: str = "0.0.0.0") -> ThreadingHTTPServer | None:  # probes come from outside
    """Start answering ``GET /health`` on ``port`` (None when ``port`` is 0)."""
    if port == 0:
        return None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/health":
                self._answer(404, {"error": f"no such path {self.path!r}; try /health"})
                return
            try:
                body = {"status": "ok", **(probe() if probe else {})}
            except Exception as exc:  # a failing probe is an unhealthy service, not a crash
                body = {"status": "error", "detail": str(exc)}
            body["service"] = service
            self._answer(200 if body["status"] == "ok" else 503, body)

        def _answer(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, default=str).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"health-{service}", daemon=True).start()
    log.info("%s health endpoint on http://%s:%d/health", service, host, port)
    return server


class Heartbeat:
    """When a service's loop last made progress; ``stale`` once that is ``max_age_s`` ago.

    The loop calls :meth:`beat` after each round that worked and :meth:`fail` when one
    failed; a probe adds :meth:`report` to its answer. The clock starts at creation, so a
    service gets ``max_age_s`` to make its first progress.
    """

    def __init__(self, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self._clock = clock
        self._last = clock()
        self.beats = 0
        self.last_error: str | None = None

    def beat(self) -> None:
        self._last = self._clock()
        self.beats += 1
        self.last_error = None

    def fail(self, exc: BaseException) -> None:
        self.last_error = str(exc) or type(exc).__name__

    def report(self) -> dict[str, Any]:
        age = self._clock() - self._last
        body: dict[str, Any] = {"last_progress_age_s": round(age, 3), "rounds": self.beats}
        if self.last_error is not None:
            body["last_error"] = self.last_error
        if age > self.max_age_s:
            body["status"] = "stale"
        return body
