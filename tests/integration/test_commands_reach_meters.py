"""Readings two days late exhaust a balance: the disconnect is made now, reaches the meter
(MQTT and a polled protocol) and is confirmed; one that expires is issued again."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaProducer

from connectors.dispatch.policy import RetryPolicy
from connectors.registry import Registry, load_db, upsert_db
from connectors.simulator.fleet import FleetThread
from contracts import topics
from meterflow.settings import Settings
from meterflow.stack.process import terminate

from .conftest import start_worker, wait_for
from .connectors_support import DispatcherThread, provisioned_fleet, run_id

pytestmark = pytest.mark.integration
FAST = RetryPolicy(base_s=0.2, factor=2.0, cap_s=1.0, attempt_timeout_s=1.0, max_refusals=2)
FLAT = "id: {id}\ncommodity: {commodity}\nunit: {unit}\ncurrency: CNY\n" \
       "timezone: Asia/Shanghai\nprice: 1\n"


@pytest.fixture()
def rig(stack: Settings, db: psycopg.Connection, tmp_path: Path
        ) -> Iterator[tuple[FleetThread, DispatcherThread, subprocess.Popen[bytes], Path]]:
    prefix = run_id()
    spec = {"seed": 7, "speed": 60, "prefix": prefix, "groups": [
        {"protocol": "dlt645", "count": 1}, {"protocol": "mqtt", "count": 1,
                                             "profile": ["residential"]}]}
    fleet = FleetThread(provisioned_fleet(stack, db, spec, f"{prefix}gateway",
                                          mqtt_interval=30.0)).start()
    assert fleet.fleet.gateway is not None and fleet.fleet.gateway.connected.wait(15)
    upsert_db(db, fleet.fleet.entries())

    def registry() -> Registry:
        with psycopg.connect(stack.dsn) as conn:
            return load_db(conn)

    dispatcher = DispatcherThread(stack, registry, FAST, f"{prefix}dispatcher").start()
    log = tmp_path / "worker.log"
    # Commands expire after 10 s here and are issued again 1 s after their expiry.
    worker = start_worker(stack, log, env={"METERFLOW_COMMAND_TTL_S": "10",
                                           "METERFLOW_COMMAND_RETRY_BASE_S": "1",
                                           "METERFLOW_OFFLINE_CHECK_S": "1"})
    yield fleet, dispatcher, worker, log
    terminate(worker.pid, grace_s=20)
    dispatcher.stop()
    fleet.stop()
    print("\n".join(log.read_text(errors="replace").splitlines()[-40:]))


def open_account(db: psycopg.Connection, meter: str, commodity: str) -> str:
    account = f"{meter}-acct"
    tariff = f"flat-{meter}".replace(":", "")
    db.execute("INSERT INTO accounts (account_id, thresholds_fen) VALUES (%s, ARRAY[30, 20, 10])",
               (account,))
    db.execute("INSERT INTO tariffs (tariff_id, body) VALUES (%s, %s)", (tariff, FLAT.format(
        id=tariff, commodity=commodity, unit="kWh" if commodity == "electricity" else "m3")))
    db.execute("UPDATE meters SET account_id = %s, tariff_id = %s WHERE meter_id = %s",
               (account, tariff, meter))
    return account


def late_readings(meter: str, unit: str) -> list[bytes]:
    """Two readings of intervals that ended two days ago: 1.00 then 5.00 units used."""
    start = datetime.now(UTC) - timedelta(days=2, hours=1)
    return [json.dumps({"meter_id": meter, "ts": (start + timedelta(minutes=15 * n)).isoformat(),
                        "value": value, "unit": unit, "source": "concentrator"}).encode()
            for n, value in enumerate(("100", "101", "105"))]


def account_row(db: psycopg.Connection, account: str) -> tuple[Any, ...] | None:
    return db.execute("SELECT balance_fen, supply, supply_state FROM balances "
                      "WHERE account_id = %s", (account,)).fetchone()


def test_late_data_cuts_off_and_the_command_reaches_the_meter_and_is_confirmed(
    stack: Settings, db: psycopg.Connection,
    rig: tuple[FleetThread, DispatcherThread, subprocess.Popen[bytes], Path],
) -> None:
    fleet, _dispatcher, _worker, _log = rig
    sim = fleet.fleet
    polled, mqtt = (m.meter_id for m in sim.meters)
    offline_meter = sim.meter(polled)
    offline_meter.online = False  # the first disconnect to it will expire unanswered
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all")
    accounts = {meter: open_account(db, meter, "electricity") for meter in (polled, mqtt)}
    for meter, account in accounts.items():
        producer.send(topics.PAYMENTS, key=account.encode(), value=json.dumps({
            "payment_id": account, "idempotency_key": f"{account}-pay", "account_id": account,
            "kind": "topup", "amount_fen": 300, "at": datetime.now(UTC).isoformat()}).encode())
        for value in late_readings(meter, "kWh"):
            producer.send(topics.RAW_READINGS, key=meter.encode(), value=value)
    producer.flush()
    started = datetime.now(UTC)

    # 1 + 4 yuan against 3 yuan: both accounts are exhausted by data two days old.
    for account in accounts.values():
        wait_for(lambda a=account: (account_row(db, a) or (0, "", ""))[1] == "disconnected",
                 60, f"the disconnect of {account}")
    commands = db.execute("SELECT meter_id, issued_at, deadline FROM commands "
                          "WHERE meter_id = ANY(%s) ORDER BY issued_at",
                          (list(accounts),)).fetchall()
    for _meter, issued_at, deadline in commands:
        assert issued_at >= started - timedelta(seconds=5), "made when decided, not 2 days ago"
        assert deadline - issued_at == timedelta(seconds=10)

    # The MQTT meter confirms at once; the account's cut is confirmed.
    wait_for(lambda: (account_row(db, accounts[mqtt]) or ())[2:] == ("cut_confirmed",), 60,
             "the MQTT meter's cut confirmed")
    assert not sim.meter(mqtt).supply_on
    acks = db.execute("SELECT status FROM command_acks WHERE meter_id = %s", (mqtt,)).fetchall()
    assert acks == [("applied",)]

    # The polled meter does not answer: its disconnect expires and is issued again.
    wait_for(lambda: db.execute("SELECT 1 FROM alarms WHERE account_id = %s AND "
                                "kind = 'command_retry'", (accounts[polled],)).fetchone(),
             60, "the retry announced to operators")
    assert account_row(db, accounts[polled])[2] == "cut_requested"  # type: ignore[index]
    offline_meter.online = True  # back on its bus: the next attempt reaches it
    wait_for(lambda: (account_row(db, accounts[polled]) or ())[2:] == ("cut_confirmed",), 90,
             "the polled meter's cut confirmed after a retry")
    assert not offline_meter.supply_on
    statuses = [s for (s,) in db.execute(
        "SELECT a.status FROM command_acks a JOIN commands c USING (command_id) "
        "WHERE c.meter_id = %s ORDER BY a.at", (polled,)).fetchall()]
    assert statuses[0] == "expired" and statuses[-1] == "applied"
    issued = db.execute("SELECT count(DISTINCT command_id) FROM commands WHERE meter_id = %s",
                        (polled,)).fetchone()
    assert issued is not None and issued[0] >= 2
    producer.close()
