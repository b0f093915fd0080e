"""Payments over the real stack: durable intake, idempotency, the outbox relay, accounts.

Everything runs against the session's real PostgreSQL and Kafka; the only fault injected
is the relay's own ``before_mark`` hook, which stands for a crash after the broker
acknowledged a batch and before it was marked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from contracts.topics import PAYMENTS
from meterflow.settings import Settings
from services.outbox import ID_HEADER, OutboxRow, RelayConfig, drain, kafka_producer
from services.payments.store import record_payment
from tests.integration.conftest import REPO, env_of, wait_for
from tests.integration.connectors_support import TopicTail

TARIFF = REPO / "pipeline" / "billing" / "examples" / "bj-residential-electricity.yaml"


def cli(stack: Settings, *args: str, check: bool = True,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "meterflow.cli", *args], cwd=REPO,
                          env=env or env_of(stack), capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode == 0, done.stderr + done.stdout
    return done


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def account(stack: Settings) -> str:
    account_id = new_id("PAY")
    cli(stack, "account", "open", account_id, "--name", "Room 101",
        "--meter", f"{account_id}-E:electricity:mqtt", "--tariff", str(TARIFF))
    return account_id


def count(db: psycopg.Connection, sql: str, *params: object) -> int:
    row = db.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


def outbox_of(db: psycopg.Connection, payment_id: str) -> list[tuple[Any, ...]]:
    return db.execute("SELECT id, topic, key, payload, published_at FROM outbox "
                      "WHERE payload->>'payment_id' = %s", (payment_id,)).fetchall()


def payment_records(tail: TopicTail, ids: set[str], expect: int, timeout_s: float = 30
                    ) -> list[Any]:
    """Records of the tail carrying one of ``ids``, once ``expect`` of them arrived."""
    def mine() -> list[Any]:
        return [r for r in tail.poll() if json.loads(r.value)["payment_id"] in ids]
    tail.until(lambda _: len(mine()) >= expect, timeout_s, f"{expect} payment record(s)")
    return mine()


# --- intake and accounts ----------------------------------------------------------------


def test_a_topup_is_durable_before_the_cli_returns(stack: Settings, account: str) -> None:
    key = new_id("key")
    done = cli(stack, "topup", account, "100.50", "--key", key, "--operator", "desk 1",
               "--note", "cash")
    payment_id = done.stdout.split()[1]
    assert "recorded" in done.stdout and "replayed" not in done.stdout
    # A connection opened after the process ended sees the committed rows.
    with psycopg.connect(stack.dsn, autocommit=True) as fresh:
        row = fresh.execute("SELECT payment_id, account_id, kind, amount_fen, operator, note "
                            "FROM payments WHERE idempotency_key = %s", (key,)).fetchone()
        assert row == (payment_id, account, "topup", 10050, "desk 1", "cash")
        [(_, topic, msg_key, payload, published_at)] = outbox_of(fresh, payment_id)
    assert (topic, msg_key, published_at) == (PAYMENTS, account, None)
    assert set(payload) == {"payment_id", "idempotency_key", "account_id", "kind",
                            "amount_fen", "at", "operator", "note"}
    assert payload["amount_fen"] == 10050 and payload["idempotency_key"] == key
    assert payload["at"].endswith("+00:00")


def test_the_same_key_replays_and_another_request_under_it_is_refused(
        stack: Settings, db: psycopg.Connection, account: str) -> None:
    key = new_id("key")
    first = cli(stack, "topup", account, "20", "--key", key).stdout.split()[1]
    again = cli(stack, "topup", account, "20.00", "--key", key, "--operator", "other desk")
    assert again.stdout.split()[1] == first and "replayed" in again.stdout
    for args in (("topup", account, "21", "--key", key), ("refund", account, "20", "--key", key)):
        refused = cli(stack, *args, check=False)
        assert refused.returncode == 3, refused.stdout
        assert "idempotency_key" in refused.stderr and first in refused.stderr
    assert count(db, "SELECT count(*) FROM payments WHERE idempotency_key = %s", key) == 1
    assert len(outbox_of(db, first)) == 1


def test_concurrent_repeats_of_one_key_record_one_payment(stack: Settings, account: str) -> None:
    key = new_id("key")
    results: list[Any] = []
    start = threading.Barrier(4)

    def pay() -> None:
        with psycopg.connect(stack.dsn, autocommit=True) as conn:
            start.wait()
            results.append(record_payment(conn, account, "topup", 500, key, "t", ""))

    threads = [threading.Thread(target=pay) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.payment_id for r in results}) == 1
    assert sorted(r.replayed for r in results) == [False, True, True, True]


def test_bad_input_and_unknown_accounts_are_refused_clearly(stack: Settings, account: str
                                                            ) -> None:
    for args, message in [
        (("topup", account, "10.001", "--key", "k"), "AMOUNT"),
        (("topup", account, "0", "--key", "k"), "greater than zero"),
        (("topup", account, "5", "--key", "a b"), "idempotency_key"),
        (("topup", "NOPE-404", "5", "--key", new_id("k")), "no account 'NOPE-404'"),
        (("account", "show", "NOPE-404"), "no account"),
    ]:
        done = cli(stack, *args, check=False)
        assert done.returncode == 1 and message in done.stderr, (args, done.stderr)


def test_account_open_is_idempotent_and_refuses_conflicts(stack: Settings,
                                                          db: psycopg.Connection) -> None:
    account_id = new_id("OPEN")
    args = ("account", "open", account_id, "--name", "Shop 7", "--meter",
            f"{account_id}-E:electricity:dlt645:000000000001", "--tariff", str(TARIFF),
            "--thresholds", "30,10,5", "--overdraft", "2.50")
    assert "opened" in cli(stack, *args).stdout
    assert "already open; meters added: none" in cli(stack, *args).stdout
    assert db.execute("SELECT name, billing_mode, thresholds_fen, overdraft_fen FROM accounts "
                      "WHERE account_id = %s", (account_id,)).fetchone() == (
        "Shop 7", "prepaid", [3000, 1000, 500], 250)
    assert db.execute("SELECT commodity, protocol, address, account_id, tariff_id FROM meters "
                      "WHERE meter_id = %s", (f"{account_id}-E",)).fetchone() == (
        "electricity", "dlt645", "000000000001", account_id, "bj-residential")
    bodies = db.execute("SELECT body FROM tariffs WHERE tariff_id = 'bj-residential'").fetchall()
    assert bodies == [(TARIFF.read_text(encoding="utf-8"),)]
    changed = [a if a != "Shop 7" else "Shop 8" for a in args]
    done = cli(stack, *changed, check=False)
    assert done.returncode == 1 and "--name" in done.stderr
    other = new_id("OTHER")
    done = cli(stack, "account", "open", other, "--name", "x", "--meter",
               f"{account_id}-E:electricity:dlt645", check=False)
    assert done.returncode == 1 and f"belongs to account {account_id}" in done.stderr
    assert count(db, "SELECT count(*) FROM accounts WHERE account_id = %s", other) == 0


def test_account_show_json(stack: Settings, db: psycopg.Connection, account: str) -> None:
    shown = json.loads(cli(stack, "account", "show", account, "--json").stdout)
    # Before the pipeline lands a balance: the billing core's opening state of the wallet
    # (at 0.00 every default threshold, 50/20/10 yuan, is already reached: level 3).
    assert shown == {
        "account_id": account, "balance": "0.00", "balance_fen": 0, "alarm_level": 3,
        "supply": "connected", "pending_payments": 0, "as_of": None,
        "meters": [{"meter_id": f"{account}-E", "commodity": "electricity",
                    "protocol": "mqtt", "tariff_id": "bj-residential"}],
    }
    cli(stack, "topup", account, "1", "--key", new_id("key"))
    db.execute("INSERT INTO balances (account_id, balance_fen, alarm_level, supply, seq, "
               "updated_at) VALUES (%s, -1205, 3, 'disconnected', 4, now())", (account,))
    shown = json.loads(cli(stack, "account", "show", account, "--json").stdout)
    assert (shown["balance"], shown["balance_fen"], shown["alarm_level"], shown["supply"],
            shown["pending_payments"]) == ("-12.05", -1205, 3, "disconnected", 1)
    assert shown["as_of"] is not None


# --- the relay --------------------------------------------------------------------------


def test_the_relay_publishes_each_pending_row_once(stack: Settings, db: psycopg.Connection,
                                                   account: str) -> None:
    tail = TopicTail(stack, PAYMENTS)
    try:
        ids = {cli(stack, "topup", account, f"{n}.25", "--key", new_id("key")).stdout.split()[1]
               for n in range(1, 6)}
        assert "published" in cli(stack, "relay", "--once").stdout
        records = payment_records(tail, ids, 5)
        assert cli(stack, "relay", "--once").stdout.startswith("published 0")
        time.sleep(2)
        records = payment_records(tail, ids, 5)
    finally:
        tail.close()
    assert Counter(json.loads(r.value)["payment_id"] for r in records) == dict.fromkeys(ids, 1)
    for record in records:
        payload = json.loads(record.value)
        [(_, _, _, stored, published_at)] = outbox_of(db, payload["payment_id"])
        assert payload == stored and published_at is not None
        assert record.key == account.encode()
        assert isinstance(payload["amount_fen"], int) and payload["amount_fen"] % 100 == 25
    status = json.loads(cli(stack, "relay", "--status").stdout)
    assert status == {"pending": 0, "oldest_pending_age_s": None}


def test_a_crash_between_produce_and_mark_republishes_the_same_payment(
        stack: Settings, db: psycopg.Connection, account: str) -> None:
    with psycopg.connect(stack.dsn, autocommit=True) as conn:
        payment = record_payment(conn, account, "topup", 777, new_id("key"), "t", "")
    crashes: list[int] = []

    def crash_once(rows: Sequence[OutboxRow]) -> None:
        if not crashes:
            crashes.append(len(rows))
            raise RuntimeError("relay killed after the broker acknowledged")

    tail = TopicTail(stack, PAYMENTS)
    producer = kafka_producer(stack.bootstrap_servers)
    try:
        with psycopg.connect(stack.dsn, autocommit=True) as conn:
            with pytest.raises(RuntimeError, match="relay killed"):
                drain(conn, producer, RelayConfig(), before_mark=crash_once)
            [(_, _, _, _, published_at)] = outbox_of(db, payment.payment_id)
            assert published_at is None  # not marked: the transaction rolled back
            drain(conn, producer, RelayConfig(), before_mark=crash_once)
        records = payment_records(tail, {payment.payment_id}, 2)
    finally:
        producer.close()
        tail.close()
    [(outbox_id, _, _, _, published_at)] = outbox_of(db, payment.payment_id)
    assert published_at is not None and len(records) == 2
    assert records[0].value == records[1].value  # same payment id and idempotency key
    assert {dict(r.headers)[ID_HEADER] for r in records} == {str(outbox_id).encode()}


def test_two_concurrent_relays_never_publish_a_row_twice(stack: Settings, account: str
                                                         ) -> None:
    with psycopg.connect(stack.dsn, autocommit=True) as conn:
        ids = {record_payment(conn, account, "topup", 100 + n, new_id("key"), "t", "").payment_id
               for n in range(120)}
    relayed: dict[str, list[OutboxRow]] = {}
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            producer = kafka_producer(stack.bootstrap_servers)
            with psycopg.connect(stack.dsn, autocommit=True) as conn:
                start.wait()
                # Hold each batch's row locks a little, so the two relays overlap.
                relayed[name] = drain(conn, producer, RelayConfig(batch_size=10),
                                      before_mark=lambda _rows: time.sleep(0.05))
            producer.close()
        except BaseException as exc:
            errors.append(exc)

    tail = TopicTail(stack, PAYMENTS)
    try:
        threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        records = payment_records(tail, ids, 120)
        time.sleep(1)
        records = payment_records(tail, ids, 120)
    finally:
        tail.close()
    a, b = ({r.id for r in relayed[n]} for n in ("a", "b"))
    assert a and b and not a & b  # both worked, on disjoint rows
    assert Counter(json.loads(r.value)["payment_id"] for r in records) == dict.fromkeys(ids, 1)


def test_the_relay_process_keeps_rows_pending_without_kafka_and_stops_on_sigterm(
        stack: Settings, db: psycopg.Connection, account: str, tmp_path: Path) -> None:
    with psycopg.connect(stack.dsn, autocommit=True) as conn:
        payment = record_payment(conn, account, "refund", 99999, new_id("key"), "t", "")
    no_kafka = {**env_of(stack), "METERFLOW_KAFKA_PORT": "1"}
    failed = cli(stack, "relay", "--once", check=False, env=no_kafka)
    assert failed.returncode == 1 and "pending rows stay pending" in failed.stderr
    assert outbox_of(db, payment.payment_id)[0][4] is None
    status = json.loads(cli(stack, "relay", "--status").stdout)
    assert status["pending"] >= 1 and status["oldest_pending_age_s"] >= 0

    log = tmp_path / "relay.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "meterflow.cli", "relay"], cwd=REPO,
                                env=env_of(stack), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_for(lambda: outbox_of(db, payment.payment_id)[0][4] is not None, 60,
                 "the running relay to publish")
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "relay stopped" in log.read_text()


# --- the ledger ---------------------------------------------------------------------------


def test_ledger_entries_cannot_be_updated_deleted_or_truncated(db: psycopg.Connection) -> None:
    entry = new_id("entry")
    db.execute("INSERT INTO ledger (entry_id, account_id, seq, at, kind, amount_fen, "
               "balance_fen) VALUES (%s, 'L1', 1, now(), 'topup', 100, 100)", (entry,))
    for sql in ("UPDATE ledger SET amount_fen = 1 WHERE entry_id = %s",
                "DELETE FROM ledger WHERE entry_id = %s"):
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            db.execute(sql, (entry,))
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        db.execute("TRUNCATE ledger")
    assert count(db, "SELECT count(*) FROM ledger WHERE entry_id = %s AND amount_fen = 100",
                 entry) == 1
