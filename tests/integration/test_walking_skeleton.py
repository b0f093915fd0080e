"""A reading produced with kafka-python lands in `readings`; bad input lands as a dead letter."""

from __future__ import annotations

import json
import subprocess
import uuid

import psycopg
import pytest
from kafka import KafkaProducer

from contracts.topics import RAW_READINGS
from meterflow.settings import Settings

from .conftest import wait_for

pytestmark = pytest.mark.integration


def test_reading_lands_and_malformed_message_is_dead_lettered(
    stack: Settings, db: psycopg.Connection, worker: subprocess.Popen[bytes]
) -> None:
    meter = f"T-{uuid.uuid4().hex[:10]}"
    db.execute("INSERT INTO meters (meter_id, commodity, protocol) "
               "VALUES (%s, 'electricity', 'mqtt')", (meter,))
    good = reading(meter, "2026-07-01T10:00:00+08:00", 1234.56, peak="1000.01",
                   valley="234.55", source="test")
    bad_json = b'{"meter_id": "%s", "ts": ' % meter.encode()
    bad_field = reading(meter, "2026-07-01T10:05:00", "1")
    after = reading(meter, "2026-07-01T10:15:00+08:00", "1234.99")
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all")
    for value in (good, bad_json, bad_field, after, good):  # `good` twice: a redelivery
        producer.send(RAW_READINGS, key=meter.encode(), value=value)
    producer.flush()
    producer.close()

    rows = wait_for(
        lambda: db.execute(
            "SELECT ts, value::text, unit, peak::text, valley::text, sharp FROM readings "
            "WHERE meter_id = %s ORDER BY ts", (meter,)
        ).fetchall() if _count(db, meter) == 2 else None,
        60, "both good readings in the database",
    )
    assert [r[1:] for r in rows] == [
        ("1234.560", "kWh", "1000.010", "234.550", None),
        ("1234.990", "kWh", None, None, None),
    ]
    assert rows[0][0].isoformat() == "2026-07-01T02:00:00+00:00"

    letters = wait_for(
        lambda: (r := db.execute(
            "SELECT reason, raw FROM dead_letters WHERE key = %s ORDER BY id",
            (meter.encode(),),
        ).fetchall()) and len(r) == 2 and r,
        30, "two dead letters",
    )
    by_raw = {bytes(raw): reason for reason, raw in letters}
    assert by_raw[bad_json].startswith("not valid JSON")
    assert by_raw[bad_field] == "field ts: timestamp has no UTC offset"
    assert worker.poll() is None, "the worker keeps going after bad input"


def reading(meter: str, ts: str, value: object, **extra: object) -> bytes:
    return json.dumps({"meter_id": meter, "ts": ts, "value": value, "unit": "kWh", **extra}
                      ).encode()


def _count(db: psycopg.Connection, meter: str) -> int:
    row = db.execute("SELECT count(*) FROM readings WHERE meter_id = %s", (meter,)).fetchone()
    return int(row[0]) if row else 0
