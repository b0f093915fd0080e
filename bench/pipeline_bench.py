"""End-to-end benchmark of the MeterFlow pipeline on this machine; prints figures.

It starts a local stack of its own (separate ports and state), opens N accounts with one
meter each on a flat tariff, starts a real `meterflow worker`, produces readings with
kafka-python and measures:
- sustained readings per second end to end (first produced to last landed in `readings`);
- latency from a reading to its balance update, and to a disconnect command (p50, p99),
  taken from the moment each reading was produced to the moment its output was consumed;
- the ceilings in the same run: raw kafka-python consume rate of the same topic, and a raw
  binary COPY rate into the same hypertable.

Usage: .venv/bin/python bench/pipeline_bench.py [--meters 200] [--readings 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from meterflow.db.migrate import migrate  # noqa: E402
from meterflow.settings import Settings  # noqa: E402
from meterflow.stack import local  # noqa: E402
from meterflow.stack.process import terminate  # noqa: E402
from pipeline import topics  # noqa: E402

# Below the kernel's ephemeral port range, like every default port of the project, and
# apart from the test stacks' bases (METERFLOW_TEST_PORT_BASE, 25000-31999 in practice).
PORTS = {"kafka_port": 23092, "kafka_controller_port": 23093, "pg_port": 23432,
         "mqtt_port": 23883, "worker_web_port": 23066}
TARIFF = "id: bench\ncommodity: electricity\nunit: kWh\ncurrency: CNY\n" \
         "timezone: Asia/Shanghai\nprice: 0.5\n"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def open_accounts(conn: psycopg.Connection, run: str, meters: int, readings: int) -> list[str]:
    """One account and meter each; the balance covers all but the last reading, so each
    account is disconnected by its last reading (0.5 yuan per reading)."""
    conn.execute("INSERT INTO tariffs (tariff_id, body) VALUES ('bench', %s) "
                 "ON CONFLICT DO NOTHING", (TARIFF,))
    ids = [f"B{run}-{i:05d}" for i in range(meters)]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO accounts (account_id, thresholds_fen) "
                        "VALUES (%s, ARRAY[30, 20, 10])", [(m,) for m in ids])
        cur.executemany("INSERT INTO meters (meter_id, commodity, protocol, account_id, "
                        "tariff_id) VALUES (%s, 'electricity', 'mqtt', %s, 'bench')",
                        [(m, m) for m in ids])
    return ids


class Watcher(threading.Thread):
    """Records when each balance update and disconnect command is seen."""

    def __init__(self, bootstrap: str, run: str) -> None:
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                      enable_auto_commit=False)
        self.consumer.assign([TopicPartition(topic, p) for topic in (topics.BALANCES,
                              topics.COMMANDS)
                              for p in self.consumer.partitions_for_topic(topic) or ()])
        self.consumer.seek_to_end()
        self.balance_latency: list[float] = []
        self.seen: set[str] = set()
        self.repeats = 0
        self.command_latency: list[float] = []
        self.stop = threading.Event()
        self.run_id = run

    def run(self) -> None:
        while not self.stop.is_set():
            for records in self.consumer.poll(timeout_ms=200).values():
                now = time.time()
                for record in records:
                    value = json.loads(record.value)
                    ident = ":".join(str(value.get(field))
                                     for field in ("account_id", "seq", "command_id"))
                    if ident in self.seen:
                        self.repeats += 1  # a re-emission after a redelivery: counted once
                        continue
                    self.seen.add(ident)
                    if record.topic == topics.BALANCES:
                        sent = datetime.fromisoformat(value["updated_at"]).timestamp()
                        self.balance_latency.append(now - sent)
                    elif value["action"] == "disconnect":
                        sent = datetime.fromisoformat(value["issued_at"]).timestamp()
                        self.command_latency.append(now - sent)


def kafka_ceiling(bootstrap: str, expected: int) -> float:
    consumer = KafkaConsumer(topics.RAW_READINGS, bootstrap_servers=bootstrap,
                             group_id=f"ceiling-{uuid.uuid4().hex[:6]}",
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             max_poll_records=5000, fetch_max_bytes=50 * 1024 * 1024)
    seen, start = 0, time.perf_counter()
    while seen < expected and time.perf_counter() - start < 120:
        for records in consumer.poll(timeout_ms=500).values():
            seen += len(records)
    elapsed = time.perf_counter() - start
    consumer.close()
    return seen / elapsed


def copy_ceiling(conn: psycopg.Connection, rows: int) -> float:
    base = datetime(2020, 1, 1, tzinfo=UTC)
    start = time.perf_counter()
    with conn.transaction():
        with conn.cursor() as cur, cur.copy(
            "COPY readings (meter_id, ts, value, unit, source) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text", "timestamptz", "numeric", "text", "text"])
            for i in range(rows):
                copy.write_row((f"COPY-{i % 1000}", base + timedelta(minutes=i // 1000),
                                Decimal(i), "kWh", "bench"))
        elapsed = time.perf_counter() - start
        conn.execute("DELETE FROM readings WHERE meter_id LIKE 'COPY-%%'")
    return rows / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=200)
    parser.add_argument("--readings", type=int, default=50, help="per meter")
    args = parser.parse_args()
    state = Path(os.environ.get("METERFLOW_STATE_DIR", REPO / ".stack")) / "bench"
    run = uuid.uuid4().hex[:6]
    settings = Settings.model_validate({"state_dir": state, "worker_id": f"bench-{run}",
                                        **PORTS})
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; {args.meters} meters x {args.readings} readings")
    local.down(settings)
    shutil.rmtree(state, ignore_errors=True)  # every run starts from empty services
    local.up(settings)
    migrate(settings.dsn)
    env = {**os.environ, "METERFLOW_STATE_DIR": str(state), "METERFLOW_WORKER_ID":
           settings.worker_id, **{f"METERFLOW_{k.upper()}": str(v) for k, v in PORTS.items()}}
    log = open(state / "logs" / "bench-worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen([sys.executable, "-m", "meterflow.cli", "worker"], env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with psycopg.connect(settings.dsn, autocommit=True) as conn:
            meters = open_accounts(conn, run, args.meters, args.readings)
            producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all",
                                     linger_ms=20, batch_size=256 * 1024)
            topup = (args.readings - 2) * 50  # fen: the last reading exhausts the balance
            for meter in meters:
                producer.send(topics.PAYMENTS, key=meter.encode(), value=json.dumps(
                    {"payment_id": meter, "idempotency_key": f"{meter}-p", "account_id": meter,
                     "kind": "topup", "amount_fen": topup,
                     "at": datetime.now(UTC).isoformat()}).encode())
            producer.flush()
            time.sleep(8)  # the worker joins its group and loads the configuration
            watcher = Watcher(settings.bootstrap_servers, run)
            watcher.start()
            total = len(meters) * args.readings
            start = time.perf_counter()
            register = {m: Decimal(100) for m in meters}
            for _ in range(args.readings):
                for meter in meters:
                    register[meter] += 1
                    body = {"meter_id": meter, "ts": datetime.now(UTC).isoformat(),
                            "value": str(register[meter]), "unit": "kWh"}
                    producer.send(topics.RAW_READINGS, key=meter.encode(),
                                  value=json.dumps(body).encode())
            producer.flush()
            produced = time.perf_counter() - start
            landed = 0
            while landed < total and time.perf_counter() - start < 600:
                time.sleep(0.5)
                [(landed,)] = conn.execute("SELECT count(*) FROM readings WHERE meter_id "
                                           "LIKE %s", (f"B{run}-%",)).fetchall()
            elapsed = time.perf_counter() - start
            charges = len(meters) * (args.readings - 1)
            while len(watcher.balance_latency) < charges and time.perf_counter() - start < 900:
                time.sleep(0.5)  # the money path runs behind the readings sink
            balanced = time.perf_counter() - start
            watcher.stop.set()
            print(f"produced {total} readings in {produced:.1f}s "
                  f"({total / produced:,.0f}/s offered)")
            print(f"end to end: {landed} landed in {elapsed:.1f}s = "
                  f"{landed / elapsed:,.0f} readings/s sustained into `readings`")
            print(f"money path: {len(watcher.balance_latency)} of {charges} balance updates "
                  f"in {balanced:.1f}s = {len(watcher.balance_latency) / balanced:,.0f} "
                  "charges/s sustained")
            for name, values in (("reading -> balance update", watcher.balance_latency),
                                 ("reading -> disconnect command", watcher.command_latency)):
                if values:
                    print(f"{name}: p50 {pct(values, .5) * 1000:,.0f} ms, "
                          f"p99 {pct(values, .99) * 1000:,.0f} ms (n={len(values)})")
            print(f"ceiling, kafka-python consume: {kafka_ceiling(settings.bootstrap_servers, total):,.0f} msg/s")  # noqa: E501
            print(f"ceiling, binary COPY into readings: {copy_ceiling(conn, 100_000):,.0f} rows/s")
            print(f"re-emitted outputs seen (deduplicated downstream): {watcher.repeats}")
            print(f"mean balance latency {statistics.mean(watcher.balance_latency or [0]):.2f}s")
    finally:
        terminate(worker.pid, grace_s=20)
        local.down(settings)


if __name__ == "__main__":
    main()
