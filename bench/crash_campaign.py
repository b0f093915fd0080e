"""Crash campaign: kill worker processes at random moments of a steady stream; prove money.

A steady stream of readings flows over N accounts (one meter each, half flat, half
time-of-use with tiers) while top-ups arrive through the real payment path (payments table
and outbox, relayed to Kafka) and some accounts run out and are cut off. At random moments
a random worker process (a processor or the sink) is killed with SIGKILL and started
again. Afterwards the campaign waits until everything landed and checks:

* `meterflow reconcile` finds no difference for any account of the campaign;
* every account's ledger ``seq`` runs 1..n without a gap;
* no charge, top-up or command is applied twice, and every interval is charged once;
* every top-up recorded is in the ledger.

Usage (a stack of its own on separate ports):
    .venv/bin/python bench/crash_campaign.py [--accounts 2000] [--minutes 5] [--kills 30]
The integration tests run a short version (tests/integration/test_crash_campaign.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from kafka import KafkaProducer

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from contracts import topics  # noqa: E402
from meterflow.settings import Settings  # noqa: E402
from meterflow.stack.process import terminate  # noqa: E402
from services.outbox import RelayConfig, drain, kafka_producer  # noqa: E402
from services.payments.store import record_payment  # noqa: E402
from services.reconcile import reconcile  # noqa: E402

HEAD = "id: {id}\ncommodity: electricity\nunit: kWh\ncurrency: CNY\ntimezone: Asia/Shanghai\n"
FLAT = HEAD + "price: 0.5\n"
TOU_TIERED = HEAD + (
    'bands: {peak: ["08:00-22:00"], valley: ["22:00-08:00"]}\n'
    "tiers: {period: month, steps: [{upto: 50, prices: {peak: 0.5583, valley: 0.3583}},"
    " {prices: {peak: 0.8583, valley: 0.6583}}]}\n")
T0 = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)  # the readings cross a month: tiers reset
STEP = timedelta(minutes=15)


@dataclass
class Report:
    readings: int = 0
    topups: int = 0
    kills: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class Campaign:
    """One campaign over an existing stack (``settings``), with its own accounts."""

    def __init__(self, settings: Settings, env: dict[str, str], log: Path, accounts: int,
                 processors: int = 1, say: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.env = env
        self.log = log
        self.run = uuid.uuid4().hex[:6]
        self.meters = [f"C{self.run}-{i:05d}" for i in range(accounts)]
        self.processors = processors
        self.say = say
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.port_base = int(env.get("METERFLOW_WORKER_WEB_PORT", "0"))
        self.starts = 0
        self.sent: dict[str, int] = {}
        self.report = Report()
        self.stop = threading.Event()

    # -- setup ---------------------------------------------------------------------------

    def open_accounts(self, conn: psycopg.Connection) -> None:
        """One meter per account; one account in ten starts nearly empty (it is cut off)."""
        flat, tou = f"cflat-{self.run}", f"ctou-{self.run}"
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("INSERT INTO tariffs (tariff_id, body) VALUES (%s, %s), (%s, %s)",
                        (flat, FLAT.replace("{id}", flat), tou, TOU_TIERED.replace("{id}", tou)))
            cur.executemany("INSERT INTO accounts (account_id, thresholds_fen) "
                            "VALUES (%s, ARRAY[300, 200, 100])", [(m,) for m in self.meters])
            cur.executemany(
                "INSERT INTO meters (meter_id, commodity, protocol, account_id, tariff_id) "
                "VALUES (%s, 'electricity', 'mqtt', %s, %s)",
                [(m, m, tou if i % 2 else flat) for i, m in enumerate(self.meters)])
        for i, meter in enumerate(self.meters):
            record_payment(conn, meter, "topup", 150 if i % 10 == 0 else 100_000,
                           f"{meter}-open")
            self.report.topups += 1
        drain(conn, kafka_producer(self.settings.bootstrap_servers), RelayConfig())

    # -- workers -------------------------------------------------------------------------

    def start(self, name: str) -> None:
        role = name.split("-")[0]
        port = self.port_base + 3 * (self.starts % 10) if self.port_base else 0
        self.starts += 1
        env = {**self.env, "METERFLOW_WORKER_WEB_PORT": str(port)}
        with open(self.log, "ab") as out:
            self.workers[name] = subprocess.Popen(
                [sys.executable, "-m", "meterflow.cli", "worker", "--role", role,
                 "--loglevel", "warning"], env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=REPO)

    def start_all(self) -> None:
        for n in range(self.processors):
            self.start(f"processor-{n}")
        self.start("sink-0")

    def stop_all(self) -> None:
        for proc in self.workers.values():
            terminate(proc.pid, grace_s=30)

    # -- traffic -------------------------------------------------------------------------

    def reading(self, meter: str) -> bytes:
        n = self.sent.get(meter, 0)
        self.sent[meter] = n + 1
        value = f"{100 + n * 0.7 + (len(meter) % 3) * 0.01 * n:.2f}"
        return json.dumps({"meter_id": meter, "ts": (T0 + STEP * n).isoformat(),
                           "value": value, "unit": "kWh", "source": "campaign"}).encode()

    def stream(self, rate: float, seconds: float) -> None:
        producer = KafkaProducer(bootstrap_servers=self.settings.bootstrap_servers,
                                 acks="all", linger_ms=5)
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < seconds and not self.stop.is_set():
            meter = self.meters[sent % len(self.meters)]
            producer.send(topics.RAW_READINGS, key=meter.encode(), value=self.reading(meter))
            sent += 1
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        producer.flush()
        producer.close()
        self.report.readings = sent

    def topups(self, every_s: float) -> None:
        """Top-ups recorded as an operator would, relayed to Kafka, all along the stream."""
        rng = random.Random(self.run)
        producer = kafka_producer(self.settings.bootstrap_servers)
        with psycopg.connect(self.settings.dsn, autocommit=True) as conn:
            n = 0
            while not self.stop.wait(every_s):
                meter = rng.choice(self.meters)
                record_payment(conn, meter, "topup", rng.randint(100, 5000),
                               f"{meter}-t{n}")
                n += 1
                self.report.topups += 1
                drain(conn, producer, RelayConfig())

    def kill_at_random(self, kills: int, seconds: float, how: int = signal.SIGKILL,
                       grace_s: float = 30.0) -> None:
        """``kills`` times at random moments: signal a random worker (SIGKILL: no shutdown
        at all; SIGTERM: it must end within ``grace_s``) and start it again."""
        rng = random.Random(f"{self.run}-kills")
        moments = sorted(rng.uniform(2, seconds) for _ in range(kills))
        started = time.monotonic()
        for moment in moments:
            if self.stop.wait(max(0.0, moment - (time.monotonic() - started))):
                return
            name = rng.choice(sorted(self.workers))
            proc = self.workers[name]
            signalled = time.monotonic()
            os.kill(proc.pid, how)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.report.problems.append(f"{name} still running {grace_s:.0f} s after "
                                            f"{signal.Signals(how).name}")
                terminate(proc.pid, grace_s=1)
            took = time.monotonic() - signalled
            self.report.kills.append(f"{signalled - started:6.1f}s {name} "
                                     f"{signal.Signals(how).name}, ended in {took:.1f} s")
            self.say(f"{signal.Signals(how).name} to {name} at {signalled - started:.1f} s: "
                     f"ended in {took:.1f} s; started again")
            self.start(name)

    # -- the campaign --------------------------------------------------------------------

    def run_campaign(self, rate: float, seconds: float, kills: int,
                     how: int = signal.SIGKILL) -> Report:
        with psycopg.connect(self.settings.dsn, autocommit=True) as conn:
            self.open_accounts(conn)
            self.start_all()
            threads = [threading.Thread(target=self.topups, args=(1.0,), daemon=True),
                       threading.Thread(target=self.kill_at_random,
                                        args=(kills, seconds, how), daemon=True)]
            for thread in threads:
                thread.start()
            try:
                self.stream(rate, seconds)
            finally:
                self.stop.set()
                for thread in threads:
                    thread.join()
            self.wait_settled(conn)
            self.check(conn)
        return self.report

    def settled(self, conn: psycopg.Connection) -> tuple[int, int, int, int]:
        pattern = f"C{self.run}-%"
        [(landed, charges, applied, behind)] = conn.execute("""
            SELECT (SELECT count(*) FROM readings WHERE meter_id LIKE %(p)s),
                   (SELECT count(*) FROM ledger WHERE account_id LIKE %(p)s AND kind = 'charge'),
                   (SELECT count(*) FROM ledger WHERE account_id LIKE %(p)s
                                                  AND kind = 'topup'),
                   (SELECT count(*) FROM (SELECT account_id, max(seq) AS seq FROM ledger
                                          WHERE account_id LIKE %(p)s GROUP BY 1) l
                    LEFT JOIN balances b USING (account_id)
                    WHERE b.seq IS DISTINCT FROM l.seq)""", {"p": pattern}).fetchall()
        return landed, charges, applied, behind

    def wait_settled(self, conn: psycopg.Connection, timeout_s: float = 900) -> None:
        readings = sum(self.sent.values())
        charges = sum(max(n - 1, 0) for n in self.sent.values())
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            landed, charged, applied, behind = self.settled(conn)
            if (landed, charged, applied, behind) == (readings, charges, self.report.topups, 0):
                return
            time.sleep(1)
        self.report.problems.append(
            f"not settled after {timeout_s:.0f} s: {landed}/{readings} readings, "
            f"{charged}/{charges} charges, {applied}/{self.report.topups} top-ups, "
            f"{behind} balances behind")

    def check(self, conn: psycopg.Connection) -> None:
        pattern = f"C{self.run}-%"
        problems = self.report.problems
        mismatches = [m for m in reconcile(conn) if m.account_id.startswith(f"C{self.run}-")]
        problems += [f"reconcile: {m.account_id} {m.check}: expected {m.expected}, "
                     f"found {m.found}" for m in mismatches]
        for account, seqs in conn.execute(
                "SELECT account_id, array_agg(seq ORDER BY seq) FROM ledger "
                "WHERE account_id LIKE %s GROUP BY 1", (pattern,)).fetchall():
            if seqs != list(range(1, len(seqs) + 1)):
                problems.append(f"ledger of {account}: seq {seqs[:5]}... has a gap or repeat")
        twice = conn.execute("SELECT account_id, ref, count(*) FROM ledger "
                             "WHERE account_id LIKE %s GROUP BY 1, 2 HAVING count(*) > 1",
                             (pattern,)).fetchall()
        problems += [f"{ref} applied {n} times to {account}" for account, ref, n in twice]
        doubled = conn.execute("SELECT command_id, count(*) FROM commands "
                               "WHERE meter_id LIKE %s GROUP BY 1 HAVING count(*) > 1",
                               (pattern,)).fetchall()
        problems += [f"command {cid} issued {n} times" for cid, n in doubled]
        [(cut,)] = conn.execute("SELECT count(DISTINCT meter_id) FROM commands WHERE "
                                "meter_id LIKE %s AND action = 'disconnect'", (pattern,)
                                ).fetchall()
        if cut == 0:
            problems.append("no account was cut off: the campaign did not exercise commands")

    def figures(self) -> dict[str, Any]:
        return {"readings": self.report.readings, "topups": self.report.topups,
                "kills": len(self.report.kills), "problems": len(self.report.problems)}


def main() -> None:
    from rich.console import Console

    from meterflow.db.migrate import migrate
    from meterflow.stack import local

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--rate", type=float, default=400, help="readings per second")
    parser.add_argument("--processors", type=int, default=1)
    args = parser.parse_args()
    console = Console(highlight=False)
    ports = {"kafka_port": 24092, "kafka_controller_port": 24093, "pg_port": 24432,
             "mqtt_port": 24883, "worker_web_port": 24500}
    state = Path(os.environ.get("METERFLOW_STATE_DIR", REPO / ".stack")) / "campaign"
    settings = Settings.model_validate({"state_dir": state, "worker_id": "campaign",
                                        "worker_session_timeout_s": 10, **ports})
    env = {**os.environ, "METERFLOW_STATE_DIR": str(state), "METERFLOW_WORKER_ID": "campaign",
           "METERFLOW_WORKER_SESSION_TIMEOUT_S": "10",
           **{f"METERFLOW_{k.upper()}": str(v) for k, v in ports.items()}}
    local.down(settings)
    shutil.rmtree(state, ignore_errors=True)
    with console.status("starting the campaign's stack"):
        local.up(settings)
        migrate(settings.dsn)
    (state / "logs").mkdir(parents=True, exist_ok=True)
    campaign = Campaign(settings, env, state / "logs" / "campaign-workers.log", args.accounts,
                        args.processors, say=console.print)
    try:
        console.print(f"{args.accounts} accounts, {args.rate:.0f} readings/s for "
                      f"{args.minutes:g} min, {args.kills} SIGKILLs of a random worker")
        report = campaign.run_campaign(args.rate, args.minutes * 60, args.kills)
    finally:
        campaign.stop_all()
        local.down(settings)
    console.print(f"readings {report.readings:,}, top-ups {report.topups:,}, "
                  f"kills {len(report.kills)}")
    for problem in report.problems:
        console.print(f"[red]problem:[/] {problem}")
    if report.problems:
        raise SystemExit(1)
    console.print("[green]reconcile: 0 fen difference; ledgers without gaps; nothing applied "
                  "twice; every top-up applied[/]")


if __name__ == "__main__":
    main()
