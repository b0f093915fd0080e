"""The real local stack for integration tests: started once per session, stopped after.

It runs on its own ports and state folder so it never disturbs a demo stack.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from meterflow.db.migrate import migrate
from meterflow.settings import Settings
from meterflow.stack import local
from meterflow.stack.process import terminate

REPO = Path(__file__).resolve().parents[2]



def ports(base: int) -> dict[str, int]:
    """The stack's ports from one base, so two checkouts can test side by side
    (``METERFLOW_TEST_PORT_BASE``). Keep them below the kernel's ephemeral range (32768 on
    Linux): a probe of a free port in that range can connect to itself and hold the port."""
    return {
        "kafka_port": base + 92,
        "kafka_controller_port": base + 93,
        "pg_port": base + 432,
        "mqtt_port": base + 883,
        "mqtt_tls_port": base + 884,
        "worker_web_port": base + 66,
    }


PORT_BASE = int(os.environ.get("METERFLOW_TEST_PORT_BASE", "29000"))
TEST_PORTS = ports(PORT_BASE)


def state_root() -> Path:
    """A state folder the postgres user can reach (see scripts/env.sh)."""
    base = os.environ.get("METERFLOW_STATE_DIR")
    return Path(base) if base else REPO / ".stack"


def env_of(settings: Settings) -> dict[str, str]:
    """Environment for a child process that must use the same stack: the settings the test
    stack sets itself (its ports, state, TLS); anything else comes from the environment, so
    a test may set one (monkeypatch.setenv) for the processes it starts."""
    own = settings.as_env()
    env = {**os.environ, "METERFLOW_STATE_DIR": str(settings.state_dir)}
    for name in (*TEST_PORTS, "worker_id", "worker_session_timeout_s", "mqtt_tls"):
        key = f"METERFLOW_{name.upper()}"
        env[key] = own[key]
    return env


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    # One state folder per port base; each test session starts from empty services and a
    # consumer group of its own, so no earlier run's records or state leak in.
    return Settings.model_validate({
        "state_dir": state_root() / f"test-{PORT_BASE}",
        "worker_id": f"meterflow-test-{uuid.uuid4().hex[:8]}",
        # A killed worker's partitions move after this; keeps crash tests short.
        "worker_session_timeout_s": 10,
        # Plain and TLS listeners: every MeterFlow client of the tests verifies the broker's
        # certificate (the stack's own CA); mosquitto_pub/sub may use either.
        "mqtt_tls": "on",
        **TEST_PORTS,
    })


@pytest.fixture(scope="session")
def stack(stack_settings: Settings) -> Iterator[Settings]:
    local.down(stack_settings)  # a session that died may have left its services running
    shutil.rmtree(stack_settings.state_dir, ignore_errors=True)
    try:
        local.up(stack_settings)
        migrate(stack_settings.dsn, report_timezone=stack_settings.report_timezone)
        with psycopg.connect(stack_settings.dsn, autocommit=True) as conn:
            wait_for(lambda: conn.execute("SELECT 1 FROM mqtt_auth_syncs").fetchone(), 30,
                     "the broker sync to apply the migrated schema")
        yield stack_settings
    finally:
        local.down(stack_settings)


@pytest.fixture(scope="session")
def db(stack: Settings) -> Iterator[psycopg.Connection]:
    with psycopg.connect(stack.dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture()
def fresh_db(stack: Settings, db: psycopg.Connection) -> Iterator[str]:
    """An empty database of its own on the test stack's server (dropped after the test)."""
    name = f"mig_{uuid.uuid4().hex[:8]}"
    db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield stack.dsn.replace(f"dbname={stack.pg_database}", f"dbname={name}")
    db.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def wait_for(probe: Callable[[], Any], timeout_s: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def worker_health(port: int) -> dict[str, Any]:
    """The worker's health page (an error as a dict when it does not answer)."""
    import httpx

    try:
        answer: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
        return answer
    except (httpx.HTTPError, ValueError) as exc:
        return {"status": "error", "detail": str(exc)}


#: Each worker started by a test serves its health page on a port of its own, taken in turn
#: from 30 slots of three (role ``all`` also uses the two after its own), apart from the
#: stack's other ports; a slot still held by a running worker is skipped.
_worker_ports = itertools.cycle(range(PORT_BASE + 500, PORT_BASE + 590, 3))


def _free_slot() -> int:
    import socket

    for _ in range(30):
        port = next(_worker_ports)
        try:
            for candidate in (port, port + 1, port + 2):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise AssertionError("no free port slot for another worker")


def start_worker(stack: Settings, log: Path, role: str = "all",
                 env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A real `meterflow worker` process on the test stack, ready to consume: its health
    page says so once its consumer holds its partitions and restored their state."""
    port = _free_slot()
    child_env = {**env_of(stack), "METERFLOW_WORKER_WEB_PORT": str(port), **(env or {})}
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "meterflow.cli", "worker", "--role", role], env=child_env,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO,
        )
    try:
        wait_for(lambda: worker_health(port).get("ready") is True or proc.poll() is not None,
                 150, "the worker to be ready")
        assert proc.poll() is None, log.read_text()
    except BaseException:
        terminate(proc.pid, grace_s=5)
        raise
    proc.health_port = port  # type: ignore[attr-defined]
    return proc


@pytest.fixture()
def worker(stack: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = tmp_path / "worker.log"
    proc = start_worker(stack, log)
    try:
        yield proc
    finally:
        terminate(proc.pid, grace_s=20)
        proc.wait()
        # Shown by pytest when the test failed: the end of the worker's own log.
        print("\n".join(log.read_text(errors="replace").splitlines()[-80:]))


# --- the operators' API -------------------------------------------------------------------

API_PORT = PORT_BASE + 80


class ApiSession:
    """A running `meterflow api` process and a token per role."""

    def __init__(self, url: str, tokens: dict[str, str]) -> None:
        self.url = url
        self.tokens = tokens

    def client(self, role: str | None = "admin", **headers: str) -> Any:
        import httpx

        auth = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=f"{self.url}/api/v1", headers={**auth, **headers},
                            timeout=60.0)


def start_api(stack: Settings, log: Path, port: int = API_PORT,
              **settings: str) -> subprocess.Popen[bytes]:
    """A real `meterflow api` process on the test stack, answering its health check. It
    trusts X-Forwarded-For from 127.0.0.1 (the tests' proxy), so a test can speak for a
    client address of its own (the throttle counts per address)."""
    import httpx

    env = {**env_of(stack), "METERFLOW_API_PORT": str(port),
           "METERFLOW_API_FORWARDED_ALLOW_IPS": "127.0.0.1",
           **{f"METERFLOW_{k.upper()}": v for k, v in settings.items()}}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "meterflow.cli", "api"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=REPO)

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(log.read_text())
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, 60, "the API to answer its health check")
    except BaseException:
        terminate(proc.pid, grace_s=5)
        raise
    return proc


def bootstrap_admin(stack: Settings, name: str) -> str:
    """`meterflow user add` and `meterflow token create` on the server: the first token."""
    import json

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "meterflow.cli", *args], cwd=REPO,
                              env=env_of(stack), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout

    cli("user", "add", name, "--role", "admin")
    return str(json.loads(cli("token", "create", name, "--json"))["token"])


@pytest.fixture(scope="session")
def api(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiSession]:
    log = tmp_path_factory.mktemp("api") / "api.log"
    proc = start_api(stack, log)
    try:
        run = uuid.uuid4().hex[:6]
        tokens = {"admin": bootstrap_admin(stack, f"admin-{run}")}
        session = ApiSession(f"http://127.0.0.1:{API_PORT}", tokens)
        with session.client() as admin:
            for role in ("operator", "finance", "maintenance", "viewer"):
                name = f"{role}-{run}"
                assert admin.post("/users", json={"name": name, "role": role}).status_code == 201
                made = admin.post(f"/users/{name}/tokens", json={"label": "tests"})
                assert made.status_code == 201, made.text
                tokens[role] = made.json()["token"]
        yield session
    finally:
        terminate(proc.pid, grace_s=20)
        proc.wait()
        print("\n".join(log.read_text(errors="replace").splitlines()[-60:]))


@pytest.fixture()
def property_ids(api: ApiSession) -> dict[str, str]:
    from .api_support import uid

    ids = {k: uid(k) for k in ("site", "building", "floor", "room")}
    with api.client("operator") as c:
        assert c.put(f"/sites/{ids['site']}", json={"name": "Park"}).status_code == 201
        assert c.put(f"/buildings/{ids['building']}",
                     json={"site_id": ids["site"], "name": "A"}).status_code == 201
        assert c.put(f"/floors/{ids['floor']}",
                     json={"building_id": ids["building"], "level": 3}).status_code == 201
        assert c.put(f"/rooms/{ids['room']}", json={"floor_id": ids["floor"], "name": "301",
                                                    "area_m2": "35.50"}).status_code == 201
    return ids


@pytest.fixture()
def tariff_id(api: ApiSession) -> str:
    from .api_support import tariff_text, uid

    tid = uid("tar").replace(":", "")
    with api.client() as c:
        made = c.post("/tariffs", content=tariff_text(tid),
                      headers={"Content-Type": "application/yaml"})
        assert made.status_code == 201, made.text
    return tid


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (tests/integration/browser_support.py), one per test module:
    Playwright's sync API keeps an asyncio loop running in the main thread while it is
    open, so it is closed after the module that used it (later tests call asyncio.run)."""
    from tests.integration.browser_support import headless_chromium

    with headless_chromium() as launched:
        yield launched
