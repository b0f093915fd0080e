"""Processors and sinks as separate workers: each does only its part, together all of it."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from kafka import KafkaConsumer, KafkaProducer

from contracts import topics
from meterflow.settings import Settings
from meterflow.stack.process import terminate

from .conftest import start_worker, wait_for
from .test_pipeline import open_account, payment, reading, rows, send

pytestmark = pytest.mark.integration


def test_a_processor_and_a_sink_worker_share_the_work(
    stack: Settings, db: psycopg.Connection, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    account, meter, tariff = f"R-{run}", f"RM-{run}", f"flat-{run}"
    open_account(db, account, meter, tariff)
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all")
    workers: list[subprocess.Popen[bytes]] = []
    log = tmp_path / "workers.log"
    try:
        workers.append(start_worker(stack, log, role="processor"))
        send(producer, topics.PAYMENTS, account, [payment(account, f"pay-{run}", 1000)])
        send(producer, topics.RAW_READINGS, meter,
             [reading(meter, 0, "100"), reading(meter, 15, "104")])  # 4 kWh at 0.5: 2.00
        # The processor rates and charges, but writes nothing to the database.
        wait_for(lambda: ledger_entries_in_kafka(stack, account) >= 2, 60,
                 "the processor's ledger entries on the ledger topic")
        assert rows(db, "SELECT 1 FROM ledger WHERE account_id = %s", account) == []
        assert rows(db, "SELECT 1 FROM readings WHERE meter_id = %s", meter) == []

        workers.append(start_worker(stack, log, role="sink"))
        wait_for(lambda: rows(db, "SELECT balance_fen FROM balances WHERE account_id = %s",
                              account) == [(800,)], 60, "the sink to land the balance")
        # Each topic has its own sink agent: they land independently.
        wait_for(lambda: rows(db, "SELECT count(*) FROM readings WHERE meter_id = %s",
                              meter) == [(2,)], 60, "the sink to land the readings")
        wait_for(lambda: rows(db, "SELECT seq, kind, amount_fen FROM ledger "
                              "WHERE account_id = %s ORDER BY seq", account)
                 == [(1, "topup", 1000), (2, "charge", -200)], 60, "the ledger")
    finally:
        for proc in workers:
            terminate(proc.pid, grace_s=20)
        producer.close()
        print("\n".join(log.read_text(errors="replace").splitlines()[-60:]))


def ledger_entries_in_kafka(stack: Settings, account: str) -> int:
    """Ledger entries of ``account`` on the ledger topic, read from the beginning."""
    consumer = KafkaConsumer(topics.LEDGER, bootstrap_servers=stack.bootstrap_servers,
                             auto_offset_reset="earliest", consumer_timeout_ms=1500,
                             enable_auto_commit=False)
    try:
        return sum(1 for message in consumer if message.key == account.encode())
    finally:
        consumer.close()
