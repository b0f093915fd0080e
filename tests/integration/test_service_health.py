"""Every long-running command answers GET /health on METERFLOW_HEALTH_PORT (Kubernetes
probes), with what it knows of its own state; and the setup commands a deployment runs
before the services start (topics, schema) do their work on the real stack.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts.topics import TOPICS
from meterflow.settings import Settings
from tests.integration.conftest import PORT_BASE, REPO, env_of, wait_for

pytestmark = pytest.mark.integration
HEALTH_PORT = PORT_BASE + 71  # below the ephemeral range, apart from the stack's ports


def get_health(port: int) -> tuple[int, dict[str, Any]] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return None


def env_with_health(stack: Settings, port: int) -> dict[str, str]:
    return {**env_of(stack), "METERFLOW_HEALTH_PORT": str(port),
            "METERFLOW_HEALTH_HOST": "127.0.0.1"}


@pytest.fixture()
def service(stack: Settings, tmp_path: Path) -> Iterator[Any]:
    """Start ``meterflow ARGS...`` with a health port; stopped with SIGTERM after the test."""
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(*args: str, port: int = HEALTH_PORT) -> subprocess.Popen[bytes]:
        log = tmp_path / f"{args[0]}-{len(procs)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "meterflow.cli", *args], cwd=tmp_path,
                                    env=env_with_health(stack, port), stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        procs.append((proc, log))
        return proc

    yield start
    for proc, log in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        print(log.read_text(errors="replace")[-3000:])


def healthy(proc: subprocess.Popen[bytes], port: int = HEALTH_PORT,
            timeout_s: float = 60) -> dict[str, Any]:
    """The first 200 answer of the service (it fails the test if the process ended)."""
    def ready() -> dict[str, Any] | None:
        assert proc.poll() is None, f"the service exited with {proc.returncode}"
        answer = get_health(port)
        return answer[1] if answer and answer[0] == 200 else None

    body: dict[str, Any] = wait_for(ready, timeout_s, "a healthy answer on /health")
    return body


def test_relay_reports_its_progress_and_the_backlog(stack: Settings, service: Any) -> None:
    body = healthy(service("relay"))
    assert body["service"] == "relay" and body["status"] == "ok"
    # The page answers from the start; the relay's first round follows.
    body = wait_for(lambda: (b := get_health(HEALTH_PORT)) and b[1]["rounds"] >= 1 and b[1],
                    30, "the relay's first round")
    assert body["pending"] == 0 and body["rounds"] >= 1 and "published" in body


def test_mqtt_bridge_reports_its_broker_connection(stack: Settings, service: Any) -> None:
    body = healthy(service("connect", "mqtt", "--client-id", f"health-{PORT_BASE}"))
    assert body["service"] == "connect-mqtt"
    assert body["mqtt_connected"] is True and body["failed_deliveries"] == 0


def test_poller_reports_finished_cycles(stack: Settings, service: Any, tmp_path: Path) -> None:
    fleet = tmp_path / "empty-fleet.yaml"
    fleet.write_text("fleet: 1\nmeters: []\n")
    proc = service("connect", "modbus", "--fleet-file", str(fleet), "--interval", "0.5")
    body = healthy(proc)
    assert (body["service"], body["protocol"], body["meters"]) == ("poll-modbus", "modbus", 0)
    later = wait_for(lambda: (b := get_health(HEALTH_PORT)) and b[1]["rounds"] >= 3 and b[1],
                     30, "three poll cycles")
    assert later["last_progress_age_s"] < 5


def test_dispatcher_reports_feed_and_broker(stack: Settings, service: Any,
                                            tmp_path: Path) -> None:
    fleet = tmp_path / "empty-fleet.yaml"
    fleet.write_text("fleet: 1\nmeters: []\n")
    proc = service("dispatch", "--fleet-file", str(fleet), "--group", f"health-{PORT_BASE}",
                   "--client-id", f"health-dispatch-{PORT_BASE}")
    body = healthy(proc, timeout_s=120)
    assert body["service"] == "dispatch"
    assert body["mqtt_connected"] is True and body["command_feed"] is True


def test_a_second_service_on_the_same_port_does_not_hide_the_first(
        stack: Settings, service: Any) -> None:
    """Health answers come from the process asked: two relays, two ports, two answers."""
    first = healthy(service("relay"))
    second = healthy(service("relay", port=HEALTH_PORT + 1), port=HEALTH_PORT + 1)
    assert first["service"] == second["service"] == "relay"


def cli(stack: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meterflow.cli", *args], cwd=REPO,
                          env=env_of(stack), capture_output=True, text=True, timeout=120)


def test_topics_create_is_idempotent_on_a_cluster_that_has_them(stack: Settings) -> None:
    done = cli(stack, "topics", "create", "--wait", "30")
    assert done.returncode == 0, done.stderr
    assert "0 topic(s) created" in done.stdout  # the stack created them all already
    listed = cli(stack, "topics", "list", "--json")
    names = [json.loads(line)["name"] for line in listed.stdout.splitlines()]
    assert names == [t.name for t in TOPICS]


def test_topics_create_gives_up_on_an_unreachable_cluster(stack: Settings) -> None:
    env = {**env_of(stack), "METERFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{PORT_BASE + 79}"}
    done = subprocess.run([sys.executable, "-m", "meterflow.cli", "topics", "create",
                           "--wait", "1"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1 and "cannot create topics" in done.stderr


def test_db_wait_returns_at_once_when_the_schema_is_current(stack: Settings) -> None:
    done = cli(stack, "db", "wait", "--timeout", "10")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "schema up to date" in done.stdout


def test_db_wait_gives_up_while_migrations_are_pending(stack: Settings, tmp_path: Path) -> None:
    sql = tmp_path / "sql"
    sql.mkdir()
    for path in sorted((REPO / "sql").glob("*.sql")):
        (sql / path.name).write_text(path.read_text())
    (sql / "9999_not_yet_applied.sql").write_text("SELECT 1;\n")
    env = {**env_of(stack), "METERFLOW_SQL_DIR": str(sql)}
    done = subprocess.run([sys.executable, "-m", "meterflow.cli", "db", "wait", "--timeout",
                           "1", "--interval", "0.2"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert "1 migration(s) pending" in done.stdout + done.stderr


def test_db_migrate_waits_for_an_unreachable_database_then_gives_up(stack: Settings) -> None:
    env = {**env_of(stack), "METERFLOW_PG_DSN":
           f"host=127.0.0.1 port={PORT_BASE + 78} user=x dbname=x connect_timeout=1"}
    done = subprocess.run([sys.executable, "-m", "meterflow.cli", "db", "migrate", "--wait",
                           "2"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "trying again" in done.stderr and "migrate failed" in done.stderr
    again = cli(stack, "db", "migrate", "--wait", "5")  # reachable: applies nothing new
    assert again.returncode == 0 and "schema up to date" in again.stdout
