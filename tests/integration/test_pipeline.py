"""The pipeline end to end over the real stack: readings and a top-up in, money out."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from kafka import KafkaProducer

from contracts import topics
from meterflow.settings import Settings

from .conftest import wait_for

pytestmark = pytest.mark.integration

FLAT = """\
id: {tariff}
commodity: electricity
unit: kWh
currency: CNY
timezone: Asia/Shanghai
price: 0.5
"""
T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


def open_account(db: psycopg.Connection, account: str, meter: str, tariff: str) -> None:
    db.execute("INSERT INTO accounts (account_id, name, thresholds_fen) "
               "VALUES (%s, 'test', ARRAY[500, 300, 100])", (account,))
    db.execute("INSERT INTO tariffs (tariff_id, body) VALUES (%s, %s)",
               (tariff, FLAT.format(tariff=tariff)))
    db.execute("INSERT INTO meters (meter_id, commodity, protocol, account_id, tariff_id) "
               "VALUES (%s, 'electricity', 'mqtt', %s, %s)", (meter, account, tariff))


def reading(meter: str, minutes: int, value: str) -> bytes:
    return json.dumps({"meter_id": meter, "ts": (T0 + timedelta(minutes=minutes)).isoformat(),
                       "value": value, "unit": "kWh", "source": "test"}).encode()


def payment(account: str, key: str, fen: int) -> bytes:
    return json.dumps({"payment_id": key, "idempotency_key": key, "account_id": account,
                       "kind": "topup", "amount_fen": fen, "at": T0.isoformat(),
                       "operator": "test", "note": ""}).encode()


def send(producer: KafkaProducer, topic: str, key: str, values: list[bytes]) -> None:
    for value in values:
        producer.send(topic, key=key.encode(), value=value)
    producer.flush()


def rows(db: psycopg.Connection, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return db.execute(sql, args).fetchall()


def test_readings_and_a_topup_become_ledger_alarms_and_commands(
    stack: Settings, db: psycopg.Connection, worker: subprocess.Popen[bytes]
) -> None:
    run = uuid.uuid4().hex[:8]
    account, meter, tariff = f"A-{run}", f"M-{run}", f"flat-{run}"
    open_account(db, account, meter, tariff)
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all")
    send(producer, topics.PAYMENTS, account, [payment(account, f"pay-{run}", 1000)])
    wait_for(lambda: rows(db, "SELECT 1 FROM ledger WHERE account_id = %s", account), 60,
             "the top-up in the ledger")
    # 10, 4, 4, 2 kWh at 0.5 yuan: 5.00, 2.00, 2.00, 1.00 -> balances 5.00, 3.00, 1.00, 0.00
    readings = [reading(meter, 0, "100"), reading(meter, 15, "110"), reading(meter, 30, "114"),
                reading(meter, 45, "99"),  # register decreased: rejected
                reading(meter, 60, "118"), reading(meter, 75, "120")]
    send(producer, topics.RAW_READINGS, meter, readings)
    wait_for(lambda: rows(db, "SELECT 1 FROM ledger WHERE account_id = %s AND balance_fen = 0",
                          account), 60, "the balance to reach zero")
    wait_for(lambda: rows(db, "SELECT 1 FROM commands WHERE meter_id = %s", meter), 30,
             "the disconnect command")

    def state() -> dict[str, Any]:
        return {
            "ledger": rows(db, "SELECT seq, kind, amount_fen, balance_fen FROM ledger "
                               "WHERE account_id = %s ORDER BY seq", account),
            "alarms": rows(db, "SELECT kind, level FROM alarms WHERE account_id = %s "
                               "ORDER BY at, level NULLS LAST", account),
            "commands": rows(db, "SELECT action FROM commands WHERE meter_id = %s", meter),
            "rejected": rows(db, "SELECT reason FROM rejected_readings WHERE meter_id = %s",
                             meter),
            "readings": rows(db, "SELECT count(*) FROM readings WHERE meter_id = %s", meter),
            "balance": rows(db, "SELECT balance_fen, alarm_level, supply FROM balances "
                                "WHERE account_id = %s", account),
        }

    wait_for(lambda: state()["balance"] == [(0, 3, "disconnected")], 30, "the balance row")
    # Each topic lands through its own sink: wait until the last alarm is there too.
    wait_for(lambda: len(state()["alarms"]) == 4, 30, "the four alarms")
    first = state()
    assert first["ledger"] == [(1, "topup", 1000, 1000), (2, "charge", -500, 500),
                               (3, "charge", -200, 300), (4, "charge", -200, 100),
                               (5, "charge", -100, 0)]
    assert first["alarms"] == [("low_balance", 1), ("low_balance", 2), ("low_balance", 3),
                               ("disconnect", None)]
    assert first["commands"] == [("disconnect",)]
    assert first["rejected"] == [("register_decreased",)]
    assert first["readings"] == [(5,)]

    # The same readings and the same top-up again change nothing.
    send(producer, topics.RAW_READINGS, meter, readings)
    send(producer, topics.PAYMENTS, account, [payment(account, f"pay-{run}", 1000)])
    marker = f"pay2-{run}"
    send(producer, topics.PAYMENTS, account, [payment(account, marker, 200)])
    wait_for(lambda: rows(db, "SELECT 1 FROM ledger WHERE ref = %s", marker), 60,
             "the second top-up")
    wait_for(lambda: ("reconnect",) in state()["commands"], 30, "the reconnect command")
    after = state()
    assert after["ledger"] == [*first["ledger"], (6, "topup", 200, 200)]
    assert after["readings"] == first["readings"]
    assert after["rejected"] == first["rejected"]
    assert sorted(after["commands"]) == [("disconnect",), ("reconnect",)]
    assert after["balance"] == [(200, 2, "connected")], "level 3 re-armed, level 2 still held"
    producer.close()
