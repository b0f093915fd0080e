"""The health endpoint of a long-running service that is not the Faust worker.

``GET /health`` answers 200 with the probe's JSON when the probe says ``ok``, 503 otherwise
(Kubernetes liveness and readiness probes, ``meterflow stack status``). The port comes from
``METERFLOW_HEALTH_PORT``; 0 (the default) serves nothing. The server runs in a daemon
thread so the service's own loop needs no change; a probe reads state the service keeps.
"""

from __future__ import annotations

import json
import logging
import threading
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
