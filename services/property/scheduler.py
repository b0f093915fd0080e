"""The property-billing scheduler: charges, apportionment, the billing cycle, settlement.

One round (``tick``) records every charge period due, splits every closed apportionment
period, drafts the month's bills on the billing day (when one is set) and settles issued
bills (payments, overdue notices). Every step is idempotent on its database key, so a
round repeated, restarted or run by two instances at once charges nothing twice; a
PostgreSQL advisory lock still lets one instance work at a time, so two do not repeat
each other's work. ``Scheduler`` runs rounds every ``period_s`` with a heartbeat for its
``GET /health``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from runtime.health import Heartbeat
from runtime.retry import Doubling
from services.property import apportionment, bills, charges

log = logging.getLogger("meterflow.billing")
#: Advisory lock key of the scheduler (apart from the batches' and the clock's).
LOCK = 0x6D66_6269_6C6C  # "mfbill"


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    period_s: float = 60.0
    billing_day: int = 0  # 0: bills are drafted on demand only
    due_days: int = 15
    backoff_max_s: float = 300.0


@dataclass
class Round:
    """What one round did."""

    charges: int = 0
    splits: int = 0
    bills: int = 0
    settled: int = 0
    problems: list[str] = field(default_factory=list)
    skipped: bool = False


def previous_month(today: date) -> tuple[date, date]:
    first = date(today.year, today.month, 1)
    start = date(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 1)
    return start, first


def billing_cycle(conn: psycopg.Connection, now: datetime, config: SchedulerConfig) -> int:
    """On the billing day (local to each account's site) draft last month's bills."""
    if config.billing_day == 0:
        return 0
    made = 0
    zones = conn.execute("SELECT DISTINCT p.report_zone FROM accounts a JOIN account_places p "
                         "USING (account_id) WHERE a.billing_mode = 'postpaid'").fetchall()
    for (zone,) in zones:
        today = now.astimezone(ZoneInfo(str(zone))).date()
        if today.day < config.billing_day:
            continue
        start, end = previous_month(today)
        accounts = [str(a) for (a,) in conn.execute(
            "SELECT a.account_id FROM accounts a JOIN account_places p USING (account_id) "
            "WHERE a.billing_mode = 'postpaid' AND p.report_zone = %s", (zone,)).fetchall()]
        made += len(bills.run_bills(conn, start, end, due_days=config.due_days,
                                    account_ids=accounts, now=now).made)
    return made


def tick(conn: psycopg.Connection, now: datetime, config: SchedulerConfig) -> Round:
    """One round under the scheduler's advisory lock (skipped while another holds it)."""
    got = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK,)).fetchone()
    if not got or not got[0]:
        return Round(skipped=True)
    try:
        done = Round()
        charged = charges.run_charges(conn, now)
        done.charges = charged.recorded
        done.problems += charged.skipped
        splits, problems = apportionment.run_due(conn, now)
        done.splits = sum(1 for s in splits if s.new)
        done.problems += problems
        done.bills = billing_cycle(conn, now, config)
        done.settled = bills.refresh(conn, now)
        return done
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK,))


class Scheduler:
    """Rounds every ``period_s`` until :attr:`stop` is set; backoff while the database is
    unreachable."""

    def __init__(self, dsn: str, config: SchedulerConfig,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.dsn = dsn
        self.config = config
        self.clock = clock
        self.stop = threading.Event()
        self.rounds = 0
        self.last: Round | None = None
        self.heartbeat = Heartbeat(max_age_s=3 * config.period_s + config.backoff_max_s)

    def run(self) -> None:
        backoff = Doubling(1.0, self.config.backoff_max_s)
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True) as conn:
                    while not self.stop.is_set():
                        self.last = tick(conn, self.clock(), self.config)
                        self.rounds += 1
                        self.heartbeat.beat()
                        backoff.succeeded()
                        if self.last.problems:
                            log.warning("billing round: %s", "; ".join(self.last.problems[:5]))
                        self.stop.wait(self.config.period_s)
            except psycopg.Error as exc:
                wait = backoff.failed()
                log.warning("billing round failed, retrying in %.0fs: %s", wait, exc)
                self.heartbeat.fail(exc)
                self.stop.wait(wait)

    def probe(self) -> dict[str, Any]:
        body: dict[str, Any] = {**self.heartbeat.report(), "rounds": self.rounds}
        if self.last is not None:
            body["last_round"] = {"charges": self.last.charges, "splits": self.last.splits,
                                  "bills": self.last.bills, "settled": self.last.settled,
                                  "problems": self.last.problems[:10],
                                  "skipped": self.last.skipped}
        return body
