"""End-to-end benchmark of the MeterFlow pipeline on this machine; prints figures.

It starts a local stack of its own (separate ports, emptied first), opens N accounts with
one meter each (half on a flat tariff, half on time-of-use with monthly tiers), tops them
up, starts real `meterflow worker` processes (processors and sinks apart) and measures, as
a user would from outside:

1. depth: every meter first gets ``--depth`` readings, so state is as deep as after months
   (the records do not grow with history, but tier periods, carried remainders and the
   RocksDB stores are all in use);
2. sustained rate: a backlog of ``accounts x per-meter`` readings waits on the raw topic,
   the workers start, and the clock runs until every reading landed in `readings` AND every
   account's balance reached its last charge; the kafka-python consume rate of the same
   backlog is measured in the same run (the ceiling); once with one processor process and
   once with two;
3. latency at a steady offered load of half the sustained rate: reading -> balance update
   (the ledger entry on Kafka, committed with the balance) and reading -> disconnect
   command (some accounts get a reading that exhausts them), p50 and p99;
4. a burst of ``--burst`` readings produced at once while the workers run: time until every
   balance reflects it.

Usage: .venv/bin/python bench/pipeline_bench.py [--accounts 2000] [--depth 30] ...
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from rich.console import Console

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from contracts import topics  # noqa: E402
from contracts.ids import charge_id  # noqa: E402
from meterflow.db.migrate import migrate  # noqa: E402
from meterflow.settings import Settings  # noqa: E402
from meterflow.stack import local  # noqa: E402
from meterflow.stack.process import terminate  # noqa: E402

# Below the kernel's ephemeral port range, like every default port of the project, and
# apart from the test stacks' bases (METERFLOW_TEST_PORT_BASE, 25000-31999 in practice).
PORTS = {"kafka_port": 23092, "kafka_controller_port": 23093, "pg_port": 23432,
         "mqtt_port": 23883, "worker_web_port": 23066}
HEAD = "id: {id}\ncommodity: electricity\nunit: kWh\ncurrency: CNY\ntimezone: Asia/Shanghai\n"
FLAT = HEAD + "price: 0.5\n"
TOU_TIERED = HEAD + (
    'bands: {peak: ["08:00-22:00"], valley: ["22:00-08:00"]}\n'
    "tiers: {period: month, steps: [{upto: 200, prices: {peak: 0.5583, valley: 0.3583}},"
    " {upto: 400, prices: {peak: 0.6083, valley: 0.4083}},"
    " {prices: {peak: 0.8583, valley: 0.6583}}]}\n")
T0 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)  # the readings cross a month: tiers reset
STEP = timedelta(minutes=15)
TOPUP_FEN = 5_000_000  # 50,000 yuan: no account runs out unless the latency phase makes it
console = Console(highlight=False)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Fleet:
    """The bench's meters (one per account) and what was sent to each."""

    run: str
    meters: list[str]
    sent: dict[str, int] = field(default_factory=dict)  # readings sent per meter
    register: dict[str, int] = field(default_factory=dict)  # in 0.01 kWh

    def reading(self, meter: str, jump: int = 0) -> tuple[bytes, datetime]:
        n = self.sent.get(meter, 0)
        ts = T0 + STEP * n
        self.register[meter] = self.register.get(meter, 10_000) + 25 + (n * 7 + len(meter)) % 100 \
            + jump
        self.sent[meter] = n + 1
        value = f"{self.register[meter] // 100}.{self.register[meter] % 100:02d}"
        body = {"meter_id": meter, "ts": ts.isoformat(), "value": value, "unit": "kWh",
                "source": "bench"}
        return json.dumps(body, separators=(",", ":")).encode(), ts

    def expected_seq(self, meter: str) -> int:
        """One top-up, then one charge per reading after the first."""
        return 1 + max(self.sent.get(meter, 0) - 1, 0)

    def last_ts(self, meter: str) -> datetime:
        return T0 + STEP * (self.sent[meter] - 1)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run = uuid.uuid4().hex[:6]
        self.state = Path(os.environ.get("METERFLOW_STATE_DIR", REPO / ".stack")) / "bench"
        self.settings = Settings.model_validate({
            "state_dir": self.state, "worker_id": f"bench-{self.run}", **PORTS,
            "metrics_period_s": 0, "offline_check_s": 3600})
        self.env = {**os.environ, "METERFLOW_STATE_DIR": str(self.state),
                    "METERFLOW_WORKER_ID": self.settings.worker_id, "METERFLOW_METRICS_PERIOD_S":
                    "0", "METERFLOW_OFFLINE_CHECK_S": "3600",
                    **{f"METERFLOW_{k.upper()}": str(v) for k, v in PORTS.items()}}
        self.workers: list[subprocess.Popen[bytes]] = []
        self.fleet = Fleet(self.run, [f"B{self.run}-{i:05d}" for i in range(args.accounts)])
        self.producer: KafkaProducer | None = None
        self.conn: psycopg.Connection | None = None

    # -- setup ---------------------------------------------------------------------------

    def start_stack(self) -> None:
        local.down(self.settings)
        shutil.rmtree(self.state, ignore_errors=True)  # every run starts from empty services
        with console.status("starting the bench stack"):
            local.up(self.settings)
            migrate(self.settings.dsn)
        self.conn = psycopg.connect(self.settings.dsn, autocommit=True)
        self.producer = KafkaProducer(bootstrap_servers=self.settings.bootstrap_servers,
                                      acks="all", linger_ms=20, batch_size=512 * 1024)

    def open_accounts(self) -> None:
        assert self.conn is not None and self.producer is not None
        meters = self.fleet.meters
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute("INSERT INTO tariffs (tariff_id, body) VALUES (%s, %s), (%s, %s)",
                        ("bench-flat", FLAT.replace("{id}", "bench-flat"),
                         "bench-tou", TOU_TIERED.replace("{id}", "bench-tou")))
            cur.executemany("INSERT INTO accounts (account_id, thresholds_fen) "
                            "VALUES (%s, ARRAY[3000, 2000, 1000])", [(m,) for m in meters])
            cur.executemany(
                "INSERT INTO meters (meter_id, commodity, protocol, account_id, tariff_id) "
                "VALUES (%s, 'electricity', 'mqtt', %s, %s)",
                [(m, m, "bench-flat" if i % 2 else "bench-tou") for i, m in enumerate(meters)])
        for meter in meters:
            self.producer.send(topics.PAYMENTS, key=meter.encode(), value=json.dumps({
                "payment_id": meter, "idempotency_key": f"{meter}-topup", "account_id": meter,
                "kind": "topup", "amount_fen": TOPUP_FEN, "at": T0.isoformat()}).encode())
        self.producer.flush()

    # -- workers -------------------------------------------------------------------------

    def start_workers(self, processors: int, sink: bool = True) -> float:
        """Processors and one sink process (none: ``sink=False``); returns the start time."""
        log = open(self.state / "logs" / "bench-workers.log", "ab")  # noqa: SIM115
        roles = ["processor"] * processors + (["sink"] if sink else [])
        started = time.perf_counter()
        for n, role in enumerate(roles):
            env = {**self.env, "METERFLOW_WORKER_WEB_PORT": str(PORTS["worker_web_port"] + n)}
            self.workers.append(subprocess.Popen(
                [sys.executable, "-m", "meterflow.cli", "worker", "--role", role,
                 "--loglevel", "warning"], env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=REPO))
        return started

    def stop_workers(self) -> None:
        for proc in self.workers:
            terminate(proc.pid, grace_s=30)
        self.workers = []

    # -- traffic -------------------------------------------------------------------------

    def send(self, per_meter: int, rate: float | None = None,
             stamps: dict[str, float] | None = None) -> float:
        """``per_meter`` readings for every meter, round robin, at ``rate`` per second
        (None: as fast as the producer goes); returns the seconds it took."""
        assert self.producer is not None
        started = time.perf_counter()
        sent = 0
        for _ in range(per_meter):
            for meter in self.fleet.meters:
                value, ts = self.fleet.reading(meter)
                if stamps is not None:
                    stamps[charge_id(meter, ts)] = time.time()
                self.producer.send(topics.RAW_READINGS, key=meter.encode(), value=value)
                sent += 1
                if rate is not None and sent % 50 == 0:
                    ahead = sent / rate - (time.perf_counter() - started)
                    if ahead > 0:
                        time.sleep(ahead)
        self.producer.flush()
        return time.perf_counter() - started

    def progress(self) -> tuple[int, int, int]:
        """(meters whose last reading landed, accounts whose balance is up to date, the sum
        of the balances' sequence numbers)."""
        assert self.conn is not None
        landed = sum(1 for meter, last in self.conn.execute(
            "SELECT meter_id, last_reading_at FROM meter_seen WHERE meter_id LIKE %s",
            (f"B{self.run}-%",)).fetchall() if last == self.fleet.last_ts(meter))
        seqs = self.conn.execute("SELECT account_id, seq FROM balances WHERE account_id "
                                 "LIKE %s", (f"B{self.run}-%",)).fetchall()
        balanced = sum(1 for account, seq in seqs if seq >= self.fleet.expected_seq(account))
        return landed, balanced, sum(seq for _, seq in seqs)

    def wait_caught_up(self, what: str, timeout_s: float = 1800) -> tuple[float, float | None]:
        """Seconds until every reading landed and every balance is current; and until the
        first balance moved in the database (None when it was already current)."""
        n = len(self.fleet.meters)
        started = time.perf_counter()
        _, _, before = self.progress()
        first: float | None = None
        with console.status(what) as status:
            while time.perf_counter() - started < timeout_s:
                landed, balanced, moved = self.progress()
                if first is None and moved > before:
                    first = time.perf_counter() - started
                status.update(f"{what}: {landed}/{n} meters landed, {balanced}/{n} balances")
                if landed == n and balanced == n:
                    return time.perf_counter() - started, first
                time.sleep(0.25)
        raise SystemExit(f"{what}: not caught up within {timeout_s:.0f} s")

    def end_offsets(self) -> dict[int, int]:
        consumer = KafkaConsumer(bootstrap_servers=self.settings.bootstrap_servers)
        tps = [TopicPartition(topics.RAW_READINGS, p)
               for p in consumer.partitions_for_topic(topics.RAW_READINGS) or ()]
        ends = {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
        consumer.close()
        return ends

    def consume_ceiling(self, start: dict[int, int], end: dict[int, int]) -> float:
        """kafka-python reading the same backlog (from its first record to its last)."""
        consumer = KafkaConsumer(bootstrap_servers=self.settings.bootstrap_servers,
                                 group_id=None, enable_auto_commit=False)
        tps = [TopicPartition(topics.RAW_READINGS, p) for p in start]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, start[tp.partition])
        expected = sum(end[p] - start[p] for p in start)
        seen, first = 0, None
        deadline = time.perf_counter() + 300
        while seen < expected and time.perf_counter() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                if first is None:
                    first = time.perf_counter()
                seen += len(records)
        elapsed = time.perf_counter() - (first or time.perf_counter())
        consumer.close()
        return seen / elapsed if elapsed > 0 else 0.0

    # -- phases --------------------------------------------------------------------------

    def sustained(self, processors: int, per_meter: int) -> dict[str, float]:
        """A backlog waits; workers start; time until everything landed and is charged."""
        self.stop_workers()
        before = self.end_offsets()
        offered = self.send(per_meter)
        after = self.end_offsets()
        total = sum(after[p] - before[p] for p in before)
        ceiling = self.consume_ceiling(before, after)
        counter = LedgerCounter(self.settings.bootstrap_servers, f"B{self.run}-", total)
        counter.start()
        started = self.start_workers(processors)
        counter.started = started
        elapsed, first = self.wait_caught_up(f"{processors} processor(s), backlog of {total:,}")
        wall = time.perf_counter() - started
        counter.stop.set()
        return {"readings": total, "offered_per_s": total / offered, "seconds": wall,
                "rate": total / wall, "ceiling": ceiling, "first_balance_s": first or 0.0,
                "first_on_kafka_s": counter.first_s(), "steady": counter.steady(),
                "caught_up_after_wait_s": elapsed}

    def processors_only(self, processors: int, per_meter: int) -> dict[str, float]:
        """The processors alone (no sink competing for the cores) through a backlog:
        done when the ledger topic holds a charge for every reading."""
        self.stop_workers()
        expected = per_meter * len(self.fleet.meters)
        counter = LedgerCounter(self.settings.bootstrap_servers, f"B{self.run}-", expected)
        counter.start()
        self.send(per_meter)
        started = counter.started = self.start_workers(processors, sink=False)
        with console.status(f"{processors} processor(s) alone, backlog of {expected:,}"):
            while counter.charges < expected and time.perf_counter() - started < 1800:
                time.sleep(0.2)
        wall = time.perf_counter() - started
        counter.stop.set()
        self.stop_workers()
        return {"readings": expected, "seconds": wall, "rate": expected / wall,
                "steady": counter.steady(), "first_on_kafka_s": counter.first_s()}

    def latency(self, rate: float, seconds: float) -> dict[str, list[float]]:
        """A steady load of ``rate`` readings/s; some accounts are exhausted on the way."""
        assert self.producer is not None
        stamps: dict[str, float] = {}
        watcher = Watcher(self.settings.bootstrap_servers, stamps)
        watcher.start()
        per_meter = max(1, round(rate * seconds / len(self.fleet.meters)))
        victims = self.fleet.meters[:: max(1, len(self.fleet.meters) // 100)]
        with console.status(f"steady load {rate:,.0f} readings/s for {seconds:.0f} s"):
            self.send(per_meter, rate=rate, stamps=stamps)
            cut: dict[str, float] = {}
            for meter in victims:  # one reading that costs far more than the balance
                value, _ = self.fleet.reading(meter, jump=30_000_000)
                cut[meter] = time.time()
                self.producer.send(topics.RAW_READINGS, key=meter.encode(), value=value)
                time.sleep(1 / rate)
            self.producer.flush()
            watcher.commands_from = cut
            deadline = time.time() + 120
            while time.time() < deadline and (len(watcher.balance) < len(stamps)
                                              or len(watcher.cut) < len(victims)):
                time.sleep(0.2)
        watcher.stop.set()
        return {"balance": watcher.balance, "disconnect": watcher.cut}

    def burst(self, readings: int) -> dict[str, float]:
        per_meter = max(1, readings // len(self.fleet.meters))
        started = time.perf_counter()
        produced = self.send(per_meter)
        self.wait_caught_up(f"burst of {per_meter * len(self.fleet.meters):,}")
        return {"readings": per_meter * len(self.fleet.meters), "produce_s": produced,
                "seconds": time.perf_counter() - started}


class Watcher(threading.Thread):
    """Sees ledger entries and disconnect commands as a read-committed consumer would."""

    def __init__(self, bootstrap: str, stamps: dict[str, float]) -> None:
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                      enable_auto_commit=False,
                                      isolation_level="read_committed")
        self.consumer.assign([TopicPartition(t, p) for t in (topics.LEDGER, topics.COMMANDS)
                              for p in self.consumer.partitions_for_topic(t) or ()])
        self.consumer.seek_to_end()
        self.stamps = stamps
        self.commands_from: dict[str, float] = {}
        self.balance: list[float] = []
        self.cut: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for records in self.consumer.poll(timeout_ms=100).values():
                now = time.time()
                for record in records:
                    value = json.loads(record.value)
                    if record.topic == topics.LEDGER and value["kind"] == "charge":
                        sent = self.stamps.get(value["key"])
                        if sent is not None:
                            self.balance.append(now - sent)
                    elif record.topic == topics.COMMANDS and value["action"] == "disconnect":
                        sent = self.commands_from.get(value["meter_id"])
                        if sent is not None:
                            self.cut.append(now - sent)


class LedgerCounter(threading.Thread):
    """Counts the charges of the bench's accounts on the ledger topic (read committed): when
    the first came, and the steady rate between 10 % and 90 % of ``expected``."""

    def __init__(self, bootstrap: str, prefix: str, expected: int) -> None:
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                      enable_auto_commit=False,
                                      isolation_level="read_committed")
        self.consumer.assign([TopicPartition(topics.LEDGER, p)
                              for p in self.consumer.partitions_for_topic(topics.LEDGER) or ()])
        self.consumer.seek_to_end()
        self.prefix = prefix.encode()
        self.expected = expected
        self.charges = 0
        self.started = time.perf_counter()
        self.marks: dict[float, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for records in self.consumer.poll(timeout_ms=100).values():
                self.charges += sum(1 for r in records if r.key.startswith(self.prefix)
                                    and b'"kind":"charge"' in r.value)
                now = time.perf_counter()
                for q in (0.0, 0.1, 0.9):
                    if q not in self.marks and self.charges > q * self.expected:
                        self.marks[q] = now

    def first_s(self) -> float:
        return self.marks.get(0.0, float("nan")) - self.started

    def steady(self) -> float:
        """Charges per second between 10 % and 90 % of the expected ones."""
        if 0.1 not in self.marks or 0.9 not in self.marks:
            return float("nan")
        return 0.8 * self.expected / (self.marks[0.9] - self.marks[0.1])


def machine() -> Iterator[str]:
    yield f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    try:
        with open("/proc/meminfo") as info:
            yield info.readline().split(":")[1].strip() + " memory"
    except OSError:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--depth", type=int, default=30, help="readings per meter first")
    parser.add_argument("--backlog", type=int, default=50,
                        help="readings per meter in each sustained backlog")
    parser.add_argument("--latency-seconds", type=float, default=30)
    parser.add_argument("--burst", type=int, default=100_000)
    parser.add_argument("--processors", type=int, nargs="+", default=[1, 2],
                        help="processor counts of the sustained runs; the last one is kept "
                             "for the latency and burst phases")
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args()
    bench = Bench(args)
    console.print(f"machine: {', '.join(machine())}")
    console.print(f"{args.accounts} accounts (one meter each, half flat, half time-of-use "
                  f"with monthly tiers), {args.depth} readings per meter first")
    try:
        bench.start_stack()
        bench.open_accounts()
        bench.start_workers(args.processors[-1])
        bench.send(args.depth)
        depth_s, _ = bench.wait_caught_up(f"depth: {args.depth} readings per meter")
        console.print(f"depth reached: {args.accounts * args.depth:,} readings "
                      f"(caught up {depth_s:.1f} s after the last was sent)")
        results = {}
        for n in args.processors:
            r = bench.sustained(n, args.backlog)
            results[n] = r
            console.print(
                f"sustained, {n} processor(s) + 1 sink: {r['readings']:,} readings in "
                f"{r['seconds']:.1f} s = [bold]{r['rate']:,.0f} readings/s[/] to `readings` "
                f"and balances (steady, 10-90 % of the charges: {r['steady']:,.0f}/s); first "
                f"balance update {r['first_on_kafka_s']:.1f} s after start on Kafka, "
                f"{r['first_balance_s']:.1f} s in the database; ceiling (kafka-python "
                f"consume, same backlog) {r['ceiling']:,.0f} msg/s: "
                f"{r['rate'] / r['ceiling']:.0%} of it")
        if len(results) > 1:
            one, best = results[args.processors[0]], results[args.processors[-1]]
            console.print(f"scaling, sinks included: {args.processors[-1]} processors vs "
                          f"{args.processors[0]}: {best['rate'] / one['rate'] - 1:+.0%}")
            alone = {n: bench.processors_only(n, args.backlog) for n in args.processors}
            for n, r in alone.items():
                console.print(f"processors alone, {n}: {r['readings']:,} readings charged in "
                              f"{r['seconds']:.1f} s = [bold]{r['rate']:,.0f} readings/s[/] "
                              f"(steady {r['steady']:,.0f}/s; first charge "
                              f"{r['first_on_kafka_s']:.1f} s after start)")
            first, last = alone[args.processors[0]], alone[args.processors[-1]]
            console.print(f"scaling, processors alone: {args.processors[-1]} vs "
                          f"{args.processors[0]}: {last['rate'] / first['rate'] - 1:+.0%} "
                          f"(steady: {last['steady'] / first['steady'] - 1:+.0%})")
        bench.start_workers(args.processors[-1])
        bench.wait_caught_up("workers ready")
        rate = results[args.processors[-1]]["rate"] / 2
        lat = bench.latency(rate, args.latency_seconds)
        for name, values in (("reading -> balance update", lat["balance"]),
                             ("reading -> disconnect command", lat["disconnect"])):
            if values:
                console.print(f"{name} at {rate:,.0f} readings/s: p50 "
                              f"{pct(values, .5) * 1000:,.0f} ms, p99 "
                              f"{pct(values, .99) * 1000:,.0f} ms (n={len(values):,})")
        bench.wait_caught_up("after the steady load")
        b = bench.burst(args.burst)
        console.print(f"burst: {b['readings']:,} readings produced in {b['produce_s']:.1f} s "
                      f"reached every balance {b['seconds']:.1f} s after the first was sent")
    finally:
        bench.stop_workers()
        if not args.keep:
            local.down(bench.settings)


if __name__ == "__main__":
    main()
