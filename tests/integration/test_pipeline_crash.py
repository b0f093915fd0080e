"""A worker killed with SIGKILL in the middle of a stream loses nothing and doubles nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from kafka import KafkaProducer

from contracts import topics
from meterflow.settings import Settings
from meterflow.stack.process import terminate
from services.outbox import RelayConfig, drain, kafka_producer
from services.payments.store import record_payment
from services.reconcile import reconcile

from .conftest import start_worker, wait_for

pytestmark = pytest.mark.integration

TOU = (Path(__file__).resolve().parents[2] / "pipeline" / "billing" / "examples"
       / "gd-commercial-tou.yaml").read_text()
METERS, READINGS = 12, 60
T0 = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)


def test_sigkill_mid_stream_then_restart_reconciles_to_the_fen(
    stack: Settings, db: psycopg.Connection, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:6]
    tariff = f"tou-{run}"
    db.execute("INSERT INTO tariffs (tariff_id, valid_from, body) VALUES (%s, '2021-10-01', %s)",
               (tariff, TOU.replace("id: gd-commercial-tou", f"id: {tariff}")))
    meters = [f"K{run}-{i:02d}" for i in range(METERS)]
    for i, meter in enumerate(meters):
        account = f"KA{run}-{i // 2}"  # two meters per account
        db.execute("INSERT INTO accounts (account_id) VALUES (%s) ON CONFLICT DO NOTHING",
                   (account,))
        db.execute("INSERT INTO meters (meter_id, commodity, protocol, account_id, tariff_id) "
                   "VALUES (%s, 'electricity', 'modbus', %s, %s)", (meter, account, tariff))
    for i in range(METERS // 2):
        record_payment(db, f"KA{run}-{i}", "topup", 5000, f"K{run}-pay-{i}")
    drain(db, kafka_producer(stack.bootstrap_servers), RelayConfig())

    log = tmp_path / "worker.log"
    workers = [start_worker(stack, log)]
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all",
                             linger_ms=5)
    try:
        crash_and_recover(stack, db, run, meters, producer, workers, log)
    finally:
        for proc in workers:
            terminate(proc.pid, grace_s=20)
        producer.close()
        print("\n".join(log.read_text(errors="replace").splitlines()[-60:]))


def crash_and_recover(stack: Settings, db: psycopg.Connection, run: str, meters: list[str],
                      producer: KafkaProducer, workers: list[subprocess.Popen[bytes]],
                      log: Path) -> None:
    sent = threading.Event()

    def stream() -> None:
        # 13 minutes of consumption per reading, 1.7 kWh each, spread over 3 seconds.
        for n in range(READINGS):
            for meter in meters:
                body = {"meter_id": meter, "ts": (T0 + timedelta(minutes=13 * n)).isoformat(),
                        "value": f"{100 + n * 1.7:.2f}", "unit": "kWh",
                        "peak": f"{50 + n * 1.1:.2f}", "valley": f"{50 + n * 0.6:.2f}"}
                producer.send(topics.RAW_READINGS, key=meter.encode(),
                              value=json.dumps(body).encode())
            producer.flush()
            time.sleep(0.05)
        sent.set()

    feeder = threading.Thread(target=stream)
    feeder.start()
    wait_for(lambda: db.execute("SELECT count(*) FROM ledger WHERE account_id LIKE %s",
                                (f"KA{run}-%",)).fetchone()[0] > 40, 60, "charges to flow")
    os.kill(workers[0].pid, signal.SIGKILL)  # no shutdown, no flush, no commit
    workers[0].wait()
    feeder.join()
    assert sent.is_set()
    workers.append(start_worker(stack, log))
    expected = METERS * READINGS
    seen: dict[str, int] = {}

    def settled() -> bool:
        [(landed,)] = db.execute("SELECT count(*) FROM readings WHERE meter_id LIKE %s",
                                 (f"K{run}-%",)).fetchall()
        [(charges,)] = db.execute(
            "SELECT count(*) FROM ledger WHERE account_id LIKE %s AND kind = 'charge'",
            (f"KA{run}-%",)).fetchall()
        [(behind,)] = db.execute(
            "SELECT count(*) FROM (SELECT account_id, max(seq) AS seq FROM ledger "
            "WHERE account_id LIKE %s GROUP BY 1) l LEFT JOIN balances b USING (account_id) "
            "WHERE b.seq IS DISTINCT FROM l.seq", (f"KA{run}-%",)).fetchall()
        seen.update(landed=landed, charges=charges, balances_behind=behind)
        return landed == expected and charges == METERS * (READINGS - 1) and behind == 0

    try:
        wait_for(settled, 120, "every reading landed and every interval charged once")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: expected {expected} readings and "
                             f"{METERS * (READINGS - 1)} charges, last seen {seen}") from None
    seqs = db.execute("SELECT account_id, array_agg(seq ORDER BY seq) FROM ledger "
                      "WHERE account_id LIKE %s GROUP BY 1", (f"KA{run}-%",)).fetchall()
    for account, numbers in seqs:
        assert numbers == list(range(1, len(numbers) + 1)), account
    mismatches = [m for m in reconcile(db) if m.account_id.startswith(f"KA{run}-")]
    assert mismatches == []
    # Readings read again after the restart are replays, not out-of-order readings.
    assert db.execute("SELECT reason, count(*) FROM rejected_readings WHERE meter_id LIKE %s "
                      "GROUP BY 1", (f"K{run}-%",)).fetchall() == []
    balances = db.execute("SELECT count(*) FROM balances WHERE account_id LIKE %s",
                          (f"KA{run}-%",)).fetchone()
    assert balances == (METERS // 2,)
