"""The product end to end: meters on MQTT and Modbus, a time-of-use account, money, supply.

Real processes on the real stack: the simulated meters, `meterflow connect mqtt`,
`meterflow connect poll modbus`, `meterflow relay`, `meterflow worker` and
`meterflow dispatch`. The balance must fall by exactly what `meterflow bill` computes for
the same readings, the three alarms fire once each, the supply is cut at zero (the command
reaches the simulated meters and is acknowledged) and a top-up restores it.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from connectors.registry import upsert_db
from connectors.simulator.fleet import FleetThread
from meterflow.settings import Settings
from meterflow.stack.process import terminate
from pipeline.billing import WalletConfig, load_tariff_text
from services.accounts.spec import AccountSpec, MeterSpec, TariffSpec
from services.accounts.store import open_account
from services.payments.store import record_payment

from .conftest import REPO, env_of, wait_for
from .connectors_support import provisioned_fleet, run_id

pytestmark = pytest.mark.integration
TOU = REPO / "pipeline" / "billing" / "examples" / "gd-commercial-tou.yaml"


@pytest.fixture()
def services(stack: Settings, worker: subprocess.Popen[bytes], tmp_path: Path
             ) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The connectors, relay and dispatcher as real `meterflow` processes."""
    procs = []
    for name, args in (("bridge", ["connect", "mqtt"]),
                       ("poller", ["connect", "poll", "modbus", "--interval", "0.5"]),
                       ("relay", ["relay"]), ("dispatch", ["dispatch"])):
        with open(tmp_path / f"{name}.log", "wb") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "meterflow.cli", *args], env=env_of(stack),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO))
    yield procs
    for proc in procs:
        terminate(proc.pid, grace_s=15)
    for name in ("bridge", "poller", "relay", "dispatch"):
        print(f"--- {name}\n" + "\n".join(
            (tmp_path / f"{name}.log").read_text(errors="replace").splitlines()[-15:]))


def test_meters_to_money_to_relays_and_back(
    stack: Settings, db: psycopg.Connection, services: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    prefix = run_id()
    spec = {"seed": 11, "speed": 1800, "prefix": prefix, "groups": [
        {"protocol": "modbus", "count": 1, "profile": "shop"},
        {"protocol": "mqtt", "count": 1, "profile": "shop"}]}
    fleet = FleetThread(provisioned_fleet(stack, db, spec, f"{prefix}gateway",
                                          mqtt_interval=0.5)).start()
    try:
        entries = fleet.fleet.entries()
        upsert_db(db, entries)
        account = f"{prefix}room"
        tariff_id = f"{prefix}tou".replace("-", "")
        body = TOU.read_text().replace("id: gd-commercial-tou", f"id: {tariff_id}")
        tariff = load_tariff_text(body, "tariff")
        open_account(db, AccountSpec(
            account, "shop 1", tuple(MeterSpec(e.meter_id, e.commodity, e.protocol, e.address)
                                     for e in entries),
            (TariffSpec(tariff.id, tariff.commodity, tariff.valid_from, body),),
            WalletConfig(thresholds_fen=(300, 200, 100))))
        record_payment(db, account, "topup", 400, f"{prefix}opening")
        run_and_check(db, fleet, account, [e.meter_id for e in entries], tmp_path)
    finally:
        fleet.stop()


def rows(db: psycopg.Connection, sql: str, *args: object) -> list[tuple[object, ...]]:
    return db.execute(sql, args).fetchall()


def settled_balance(db: psycopg.Connection, account: str) -> int:
    """The account's balance once it has stopped moving for two seconds (fen)."""
    seen: list[int] = []

    def steady() -> bool:
        [(balance,)] = rows(db, "SELECT balance_fen FROM balances WHERE account_id = %s",
                            account)
        seen.append(int(balance))  # type: ignore[call-overload]
        return len(seen) > 10 and len(set(seen[-10:])) == 1

    wait_for(steady, 60, "the balance to stop moving once the relays tripped")
    return seen[-1]


def run_and_check(db: psycopg.Connection, fleet: FleetThread, account: str,
                  meters: list[str], tmp_path: Path) -> None:
    wait_for(lambda: rows(db, "SELECT 1 FROM balances WHERE account_id = %s AND "
                              "supply = 'disconnected'", account), 90, "the supply to be cut")
    applied = wait_for(lambda: (r := rows(
        db, "SELECT c.meter_id FROM commands c JOIN command_acks a USING (command_id) "
            "WHERE c.account_id = %s AND c.action = 'disconnect' AND a.status = 'applied'",
        account)) and len(r) == 2 and r, 60, "both disconnects acknowledged")
    assert sorted(m for (m,) in applied) == sorted(meters)
    for meter in meters:
        assert not fleet.fleet.meter(meter).supply_on, f"{meter}: relay still closed"
    # Once each (their `at` is the charging interval's end, which interleaves across meters).
    # The alarms sink is its own consumer: wait until it has landed what the balance shows.
    query = "SELECT kind, coalesce(level, 0) FROM alarms WHERE account_id = %s ORDER BY 1, 2"
    wait_for(lambda: any(kind == "disconnect" for kind, _ in rows(db, query, account)), 60,
             "the disconnect alarm to land")
    alarms = rows(db, query, account)
    assert alarms == [("disconnect", 0), ("low_balance", 1), ("low_balance", 2),
                      ("low_balance", 3)]

    # The meters kept consuming until their relays tripped (at 1,800x speed a loaded machine
    # lets that debt grow): wait until the charges stop, then top up enough to clear it and
    # leave 10 yuan, so the wallet must reconnect.
    debt = settled_balance(db, account)
    record_payment(db, account, "topup", 1000 - min(debt, 0), f"{account}-again")
    wait_for(lambda: (r := rows(
        db, "SELECT count(*) FROM commands c JOIN command_acks a USING (command_id) "
            "WHERE c.account_id = %s AND c.action = 'reconnect' AND a.status = 'applied'",
        account)) and r[0][0] == 2, 60,
        f"both reconnects acknowledged (balance before the top-up {debt} fen)")
    assert all(fleet.fleet.meter(m).supply_on for m in meters)

    # Stop the meters and let the pipeline finish what it has, then bill the same readings.
    fleet.stop()

    settle(db, meters, account)
    readings = tmp_path / "readings.csv"
    with open(readings, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["meter_id", "ts", "reading", "sharp", "peak", "flat", "valley"])
        for meter, ts, *values in db.execute(
                "SELECT meter_id, ts, value, sharp, peak, flat, valley FROM readings "
                "WHERE meter_id = ANY(%s) ORDER BY ts, meter_id", (meters,)):
            writer.writerow([meter, ts.isoformat(), *("" if v is None else v for v in values)])
    tariff_file = tmp_path / "tariff.yaml"
    tariff_file.write_text(db.execute("SELECT body FROM tariffs WHERE tariff_id = "
                                      "(SELECT tariff_id FROM meters WHERE meter_id = %s)",
                                      (meters[0],)).fetchone()[0])
    billed = subprocess.run(
        [sys.executable, "-m", "meterflow.cli", "bill", "--tariff", str(tariff_file), "--readings",
         str(readings), "--json"], capture_output=True, text=True, check=True, cwd=REPO)
    total = json.loads(billed.stdout)["total"]["amount"]
    [(charged,)] = db.execute("SELECT -sum(amount_fen)::bigint FROM ledger WHERE "
                              "account_id = %s AND kind = 'charge'", (account,)).fetchall()
    assert charged > 0 and f"{charged // 100}.{charged % 100:02d}" == total
    [(balance,)] = db.execute("SELECT balance_fen FROM balances WHERE account_id = %s",
                              (account,)).fetchall()
    [(paid,)] = db.execute("SELECT sum(amount_fen)::bigint FROM payments WHERE account_id = %s "
                           "AND kind = 'topup'", (account,)).fetchall()
    assert paid >= 1400 and balance == paid - charged


def settle(db: psycopg.Connection, meters: list[str], account: str) -> None:
    """Wait until nothing moves for two seconds and the balance row has the last entry."""
    query = ("SELECT (SELECT count(*) FROM readings WHERE meter_id = ANY(%s)), "
             "(SELECT max(seq) FROM ledger WHERE account_id = %s), "
             "(SELECT seq FROM balances WHERE account_id = %s)")
    last = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = db.execute(query, (meters, account, account)).fetchone()
        if state == last and state is not None and state[1] == state[2]:
            return
        last = state
        time.sleep(2)
    raise AssertionError(f"the pipeline did not settle in 60s (last: {last})")
