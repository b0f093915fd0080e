"""`meterflow dashboards push` against a local HTTP server that plays Grafana's HTTP API.

The server keeps data sources, folders and dashboards by uid, answers as Grafana's API
documentation says (404 for a missing uid, 409 for a duplicate, 412 for an existing board
without overwrite, 401 without the bearer token) and records every call, so the test sees
the endpoints, methods, headers and payloads, and that a second push updates in place.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from meterflow.dashboards import BOARDS
from meterflow.dashboards.provision import DatabaseTarget, datasource
from meterflow.dashboards.push import PushError, push

REPO = Path(__file__).resolve().parents[2]
TOKEN = "glsa_test_token"
# Below the ephemeral range, beside the test stack's ports (tests/integration/conftest.py).
PORT = int(os.environ.get("METERFLOW_TEST_PORT_BASE", "29000")) + 530


class FakeGrafana(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", PORT), Handler)
        self.calls: list[dict[str, Any]] = []
        self.datasources: dict[str, dict[str, Any]] = {}
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}


class Handler(BaseHTTPRequestHandler):
    server: FakeGrafana

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        self.server.calls.append({"method": self.command, "path": self.path, "body": body,
                                  "auth": self.headers.get("Authorization"),
                                  "type": self.headers.get("Content-Type")})
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._answer(401, {"message": "Unauthorized"})
        if body is not None and not (self.headers.get("Content-Type") or "").startswith(
                "application/json"):
            return self._answer(415, {"message": "not JSON"})
        route = (self.command, self.path)
        s = self.server
        if route[0] == "GET" and self.path.startswith("/api/datasources/uid/"):
            uid = self.path.rsplit("/", 1)[1]
            if uid not in s.datasources:
                return self._answer(404, {"message": "Data source not found"})
            return self._answer(200, s.datasources[uid])
        if route == ("POST", "/api/datasources"):
            assert body is not None
            if any(d["name"] == body["name"] for d in s.datasources.values()):
                return self._answer(409, {"message": "data source with the same name exists"})
            s.datasources[body["uid"]] = {**body, "id": len(s.datasources) + 1}
            return self._answer(200, {"datasource": s.datasources[body["uid"]],
                                      "id": s.datasources[body["uid"]]["id"],
                                      "message": "Datasource added", "name": body["name"]})
        if route[0] == "PUT" and self.path.startswith("/api/datasources/uid/"):
            uid = self.path.rsplit("/", 1)[1]
            if uid not in s.datasources or body is None:
                return self._answer(404, {"message": "Data source not found"})
            s.datasources[uid] = {**body, "id": s.datasources[uid]["id"]}
            return self._answer(200, {"datasource": s.datasources[uid], "id": 1,
                                      "message": "Datasource updated", "name": body["name"]})
        if route[0] == "GET" and self.path.startswith("/api/folders/"):
            uid = self.path.rsplit("/", 1)[1]
            if uid not in s.folders:
                return self._answer(404, {"message": "folder not found"})
            return self._answer(200, s.folders[uid])
        if route == ("POST", "/api/folders"):
            assert body is not None
            if body.get("uid") in s.folders:
                return self._answer(409, {"message": "a folder with the same uid exists"})
            s.folders[body["uid"]] = {"id": len(s.folders) + 1, **body}
            return self._answer(200, s.folders[body["uid"]])
        if route == ("POST", "/api/dashboards/db"):
            assert body is not None
            board = body["dashboard"]
            old = s.dashboards.get(board["uid"])
            if old is not None and not body.get("overwrite"):
                return self._answer(412, {"status": "name-exists", "message": "exists"})
            if body.get("folderUid") not in s.folders:
                return self._answer(400, {"message": "folder not found"})
            version = (old["version"] + 1) if old else 1
            s.dashboards[board["uid"]] = {"dashboard": board, "version": version,
                                          "folderUid": body["folderUid"]}
            return self._answer(200, {"id": 1, "uid": board["uid"], "status": "success",
                                      "version": version, "url": f"/d/{board['uid']}"})
        return self._answer(404, {"message": "Not found"})

    do_GET = do_POST = do_PUT = _handle


@pytest.fixture()
def grafana() -> Iterator[FakeGrafana]:
    server = FakeGrafana()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "METERFLOW_PG_PASSWORD": "secret"}
    return subprocess.run([sys.executable, "-m", "meterflow.cli", "dashboards", *args],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=60)


def test_push_creates_then_updates_in_place(grafana: FakeGrafana) -> None:
    url = f"http://127.0.0.1:{PORT}"
    first = cli("push", "--url", url, "--token", TOKEN, "--db-host", "db.internal",
                "--db-port", "5432")
    assert first.returncode == 0, first.stderr
    calls = [(c["method"], c["path"]) for c in grafana.calls]
    assert calls == [("GET", "/api/datasources/uid/meterflow-timescaledb"),
                     ("POST", "/api/datasources"), ("GET", "/api/folders/meterflow"),
                     ("POST", "/api/folders"),
                     *[("POST", "/api/dashboards/db")] * len(BOARDS)]
    assert all(c["auth"] == f"Bearer {TOKEN}" for c in grafana.calls)
    ds = grafana.calls[1]["body"]
    assert ds["type"] == "grafana-postgresql-datasource" and ds["access"] == "proxy"
    assert ds["url"] == "db.internal:5432" and ds["jsonData"]["timescaledb"] is True
    assert ds["secureJsonData"] == {"password": "secret"}
    assert grafana.calls[3]["body"] == {"title": "MeterFlow", "uid": "meterflow"}
    for call, board in zip(grafana.calls[4:], BOARDS, strict=True):
        body = call["body"]
        assert body["overwrite"] is True and body["folderUid"] == "meterflow"
        assert body["dashboard"]["uid"] == board.uid and body["dashboard"]["id"] is None
        assert body["dashboard"]["panels"] and body["dashboard"]["templating"]["list"]

    grafana.calls.clear()
    second = cli("push", "--url", url, "--token", TOKEN)
    assert second.returncode == 0, second.stderr
    assert [(c["method"], c["path"]) for c in grafana.calls[:3]] == [
        ("GET", "/api/datasources/uid/meterflow-timescaledb"),
        ("PUT", "/api/datasources/uid/meterflow-timescaledb"),
        ("GET", "/api/folders/meterflow")]
    assert len(grafana.datasources) == 1 and len(grafana.folders) == 1
    assert sorted(grafana.dashboards) == sorted(b.uid for b in BOARDS)
    assert {d["version"] for d in grafana.dashboards.values()} == {2}
    assert "board meterflow-energy: version 2" in second.stdout


def test_a_refused_token_is_a_clear_error(grafana: FakeGrafana) -> None:
    result = cli("push", "--url", f"http://127.0.0.1:{PORT}", "--token", "wrong")
    assert result.returncode == 1
    assert "refused the token (401)" in result.stderr
    assert not grafana.datasources and not grafana.dashboards


def test_an_unreachable_grafana_is_a_clear_error() -> None:
    result = cli("push", "--url", f"http://127.0.0.1:{PORT + 1}", "--token", TOKEN)
    assert result.returncode == 1
    assert "unreachable" in result.stderr
    with pytest.raises(PushError, match="unreachable"):
        push(f"http://127.0.0.1:{PORT + 1}", TOKEN, datasource(DatabaseTarget()),
             timeout_s=2)
