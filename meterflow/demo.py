"""`meterflow demo`: simulated readings flowing through Kafka and the pipeline into TimescaleDB.

Expects the stack to be up and the schema migrated (scripts/demo.sh does both). Starts a
worker in the background (log: ``<state>/logs/worker.log``), produces readings from a few
simulated meters plus one malformed message, and shows what lands in the database.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
from kafka import KafkaProducer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from meterflow.settings import Settings
from meterflow.stack.process import spawn, terminate
from pipeline.raw_reading import RawReading
from pipeline.topics import RAW_READINGS

METERS = [
    ("DEMO-E1", "kWh", Decimal("0.42")),
    ("DEMO-E2", "kWh", Decimal("1.37")),
    ("DEMO-E3", "kWh", Decimal("0.08")),
    ("DEMO-W1", "m3", Decimal("0.012")),
    ("DEMO-W2", "m3", Decimal("0.031")),
]


def _worker(settings: Settings) -> int:
    log = settings.state_dir.resolve() / "logs" / "worker.log"
    pid_file = settings.state_dir.resolve() / "run" / "worker.pid"
    argv = [sys.executable, "-m", "meterflow.cli", "worker"]
    return spawn(argv, log_file=log, pid_file=pid_file, cwd=settings.state_dir.resolve().parent,
                 env={"METERFLOW_STATE_DIR": str(settings.state_dir.resolve())})


def _view(conn: psycopg.Connection) -> Table:
    table = Table(title="Readings landed in TimescaleDB")
    for column in ("meter", "readings", "latest reading", "unit", "at"):
        table.add_column(column)
    rows = conn.execute(
        "SELECT meter_id, count(*), (array_agg(value ORDER BY ts DESC))[1], max(unit), max(ts) "
        "FROM readings WHERE meter_id LIKE 'DEMO-%' GROUP BY meter_id ORDER BY meter_id"
    ).fetchall()
    for meter, count, value, unit, ts in rows:
        table.add_row(meter, str(count), str(value), unit, ts.isoformat(timespec="seconds"))
    dead = conn.execute(
        "SELECT count(*), max(reason) FROM dead_letters WHERE stage = 'ingest'"
    ).fetchone()
    count, reason = dead if dead else (0, None)
    table.caption = f"dead letters: {count} (latest reason: {reason or '-'})"
    return table


def _last_registers(conn: psycopg.Connection) -> dict[str, Decimal]:
    """Continue each simulated register from where the previous demo left it."""
    last: dict[str, Decimal] = dict(
        conn.execute(
            "SELECT meter_id, max(value) FROM readings WHERE meter_id = ANY(%s) GROUP BY meter_id",
            ([meter for meter, _, _ in METERS],),
        ).fetchall()
    )
    return {meter: last.get(meter, Decimal("100")) for meter, _, _ in METERS}


def run_demo(settings: Settings, seconds: float, console: Console) -> None:
    pid = _worker(settings)
    console.print(f"worker started (pid {pid}); log: {settings.state_dir / 'logs' / 'worker.log'}")
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all",
                             linger_ms=20)
    try:
        with psycopg.connect(settings.dsn, autocommit=True) as conn, Live(
            _view(conn), console=console, refresh_per_second=2
        ) as live:
            registers = _last_registers(conn)
            producer.send(RAW_READINGS, key=b"DEMO-BAD", value=b'{"meter_id": "DEMO-BAD", "ts": 5}')
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                now = datetime.now(UTC).replace(microsecond=0)
                for meter, unit, step in METERS:
                    registers[meter] += step
                    reading = RawReading.model_validate(
                        {"meter_id": meter, "ts": now, "value": registers[meter], "unit": unit,
                         "source": "demo"}
                    )
                    producer.send(RAW_READINGS, key=meter.encode(), value=reading.to_json())
                producer.flush()
                time.sleep(1)
                live.update(_view(conn))
            time.sleep(2)
            live.update(_view(conn))
    finally:
        producer.close()
        terminate(pid, grace_s=15)
        console.print("\nworker stopped; the stack keeps running (`meterflow stack down` stops it)")
