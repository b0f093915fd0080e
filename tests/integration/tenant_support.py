"""Fixtures of the tenant payment tests: the stand-in gateways, an API that uses them, a
worker and a relay for the module, accounts with a tenant link."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from connectors.gateways.standin_server import Standins, standin_settings
from meterflow.settings import Settings
from meterflow.stack.process import terminate
from services.tenant.links import create_link

from .conftest import PORT_BASE, REPO, env_of, start_api, start_worker, wait_for

STANDIN_PORT = PORT_BASE + 151
TENANT_API_PORT = PORT_BASE + 152
SETTLE_HEALTH_PORTS = (PORT_BASE + 153, PORT_BASE + 154)
FLAT = ("id: {id}\ncommodity: electricity\nunit: kWh\ncurrency: CNY\n"
        "timezone: Asia/Shanghai\nprice: 1\n")


class Tenant:
    """The stand-ins, the API's URL and the settings a child process needs to pay."""

    def __init__(self, standins: Standins, url: str, env: dict[str, str], dsn: str,
                 api_log: Path) -> None:
        self.api_log = api_log
        self.standins = standins
        self.url = url
        self.env = env
        self.dsn = dsn

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def cli(self, stack: Settings, *args: str, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "meterflow.cli", *args], cwd=REPO,
                              env={**env_of(stack), **self.env}, capture_output=True,
                              text=True, timeout=120)
        if check:
            assert done.returncode == 0, done.stderr + done.stdout
        return done

    def order(self, token: str, amount: str, gateway: str) -> tuple[str, str]:
        """Start a payment from the tenant page; (order number, where the page sends the
        browser)."""
        with self.http() as c:
            answer = c.post(f"/t/{token}/orders", data={"amount": amount, "gateway": gateway})
        assert answer.status_code == 303, answer.text
        location = answer.headers["location"]
        if gateway == "alipay":  # the browser opens the cashier: Alipay makes the trade then
            assert httpx.get(location, timeout=30).status_code == 200
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute("SELECT order_no FROM payment_orders WHERE link_id = "
                               "(SELECT link_id FROM tenant_links WHERE token_hash = encode("
                               "sha256(%s::bytea), 'hex')) ORDER BY created_at DESC LIMIT 1",
                               (token,)).fetchone()
        assert row is not None
        return str(row[0]), location


@pytest.fixture(scope="module")
def tenant(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenant]:
    folder = tmp_path_factory.mktemp("tenant")
    standins = Standins(port=STANDIN_PORT, retry_s=(1.0, 2.0)).start()
    url = f"http://127.0.0.1:{TENANT_API_PORT}"
    env = {**standins.wechat.keys.write(folder / "keys"),
           **standins.alipay.keys.write(folder / "keys"), **standin_settings(standins),
           "METERFLOW_TENANT_BASE_URL": url, "METERFLOW_ORDER_QUERY_AFTER_S": "1"}
    settings = {k.removeprefix("METERFLOW_").lower(): v for k, v in env.items()}
    log = folder / "api.log"
    proc = start_api(stack, log, TENANT_API_PORT, **settings)
    try:
        yield Tenant(standins, url, env, stack.dsn, log)
    finally:
        terminate(proc.pid, grace_s=20)
        proc.wait()
        standins.stop()
        print("\n".join(log.read_text(errors="replace").splitlines()[-60:]))


@pytest.fixture(scope="module")
def pipeline(stack: Settings, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[subprocess.Popen[bytes]]:
    """A worker and a payment relay for the module."""
    folder = tmp_path_factory.mktemp("pipeline")
    worker = start_worker(stack, folder / "worker.log")
    with open(folder / "relay.log", "ab") as out:
        relay = subprocess.Popen([sys.executable, "-m", "meterflow.cli", "relay"], cwd=REPO,
                                 env=env_of(stack), stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    try:
        yield worker
    finally:
        for proc in (relay, worker):
            terminate(proc.pid, grace_s=20)
            proc.wait()
        print("\n".join((folder / "worker.log").read_text(errors="replace")
                        .splitlines()[-40:]))


def new_account(db: psycopg.Connection, meter: str | None = None) -> str:
    """A prepaid account with a flat tariff of 1 yuan/kWh (its meter too when given)."""
    account = f"TEN-{uuid.uuid4().hex[:8]}" if meter is None else f"{meter}-acct"
    tariff = f"flat-{account}".replace(":", "")
    db.execute("INSERT INTO accounts (account_id, name, thresholds_fen) "
               "VALUES (%s, %s, ARRAY[30, 20, 10])", (account, f"Room {account[-4:]}"))
    db.execute("INSERT INTO tariffs (tariff_id, body) VALUES (%s, %s)",
               (tariff, FLAT.format(id=tariff)))
    if meter is not None:
        db.execute("UPDATE meters SET account_id = %s, tariff_id = %s WHERE meter_id = %s",
                   (account, tariff, meter))
    return account


def link_for(db: psycopg.Connection, account: str) -> str:
    from datetime import timedelta

    return create_link(db, account, timedelta(days=1), "tests")[1]


def balance(db: psycopg.Connection, account: str) -> Any:
    row = db.execute("SELECT balance_fen, supply, supply_state FROM balances "
                     "WHERE account_id = %s", (account,)).fetchone()
    return tuple(row) if row else None


def wait_balance(db: psycopg.Connection, account: str, fen: int, timeout_s: float = 60) -> None:
    wait_for(lambda: (balance(db, account) or (None,))[0] == fen, timeout_s,
             f"{account}'s balance to be {fen} fen")


def count(db: psycopg.Connection, sql: str, *params: object) -> int:
    row = db.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])
