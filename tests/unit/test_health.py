"""The health endpoint answers what the probe says, over a real socket."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any

import pytest

from runtime.health import serve_health


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_port_zero_serves_nothing() -> None:
    assert serve_health(0, "relay") is None


@pytest.mark.parametrize(("probe", "code", "status"), [
    (lambda: {"backlog": 3}, 200, "ok"),
    (lambda: {"status": "degraded"}, 503, "degraded"),
    (lambda: 1 / 0, 503, "error"),
])
def test_health_reports_the_probe(probe: Any, code: int, status: str) -> None:
    port = free_port()
    server = serve_health(port, "relay", probe, host="127.0.0.1")
    assert server is not None
    try:
        got_code, body = get(port, "/health")
        assert (got_code, body["status"], body["service"]) == (code, status, "relay")
        if status == "ok":
            assert body["backlog"] == 3
        assert get(port, "/nope")[0] == 404
    finally:
        server.shutdown()
        server.server_close()
