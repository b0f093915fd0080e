"""A payment already waiting on any partition when a processor starts is applied."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from kafka import KafkaProducer
from kafka.partitioner.default import murmur2

from contracts import topics
from meterflow.settings import Settings
from meterflow.stack.process import terminate

from .conftest import start_worker, wait_for

pytestmark = pytest.mark.integration
STARTS = 20


def partition_of(key: str, partitions: int) -> int:
    """The partition the Java client and kafka-python choose for a key (murmur2)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def test_payments_waiting_on_every_partition_are_applied_at_each_of_20_starts(
        stack: Settings, db: psycopg.Connection, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:6]
    partitions = stack.topic_partitions
    accounts: dict[int, str] = {}
    n = 0
    while len(accounts) < partitions:  # one account on each partition of the payments topic
        candidate = f"S{run}-{n}"
        accounts.setdefault(partition_of(candidate, partitions), candidate)
        n += 1
    for account in accounts.values():
        db.execute("INSERT INTO accounts (account_id) VALUES (%s)", (account,))
    log = tmp_path / "workers.log"
    sink = start_worker(stack, log, role="sink")
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all")
    try:
        for start in range(1, STARTS + 1):
            for account in accounts.values():  # waiting before the processor starts
                producer.send(topics.PAYMENTS, key=account.encode(), value=json.dumps({
                    "payment_id": f"{account}-{start}", "idempotency_key": f"{account}-{start}",
                    "account_id": account, "kind": "topup", "amount_fen": start,
                    "at": datetime.now(UTC).isoformat()}).encode())
            producer.flush()
            began = time.monotonic()
            processor = start_worker(stack, log, role="processor")
            print(f"start {start}: ready after {time.monotonic() - began:.1f} s")
            try:
                wait_for(lambda s=start: db.execute(
                    "SELECT count(*) FROM ledger WHERE account_id = ANY(%s) AND ref LIKE %s",
                    (list(accounts.values()), f"%-{s}")).fetchone() == (partitions,),
                    60, f"the {partitions} payments waiting at start {start}")
                print(f"start {start}: applied after {time.monotonic() - began:.1f} s")
            finally:
                terminate(processor.pid, grace_s=30)
    finally:
        terminate(sink.pid, grace_s=30)
        producer.close()
        print("\n".join(log.read_text(errors="replace").splitlines()[-80:]))
    expected = sum(range(1, STARTS + 1))
    balances = db.execute("SELECT account_id, balance_fen, seq FROM balances "
                          "WHERE account_id = ANY(%s)", (list(accounts.values()),)).fetchall()
    assert sorted(b[1:] for b in balances) == [(expected, STARTS)] * partitions
