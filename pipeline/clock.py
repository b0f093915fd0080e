"""The clock: ticks into the keyed topics for the keys that need one.

A stream stage only runs when a message for its key arrives, and a silent meter sends
none. Every ``clock_period_s`` the clock asks the database which keys are due and
produces one tick for each into that key's own topic, so the tick reaches the stage that
owns the key's state (same key, same partition):

* ``meterflow.meter.ticks``: meters whose newest reading is older than their expected
  interval and that were not yet announced offline since (table ``meter_seen``);
* ``meterflow.wallet.signals`` (kind ``tick``): accounts whose ``wake_at`` has come (a
  deferred disconnect's window ended, a command is due to be issued again) or whose
  deferred cut is no longer held by the operator's manual keep-supply flag.

The database holds what the sinks landed, so a tick may come a little early or twice;
the stages decide from their own state, and a tick that finds nothing due changes
nothing. One clock runs at a time: each processor process tries a PostgreSQL advisory
lock, and the holder ticks (docs/architecture.md, timers).
"""

from __future__ import annotations

import logging
import threading

import psycopg
from confluent_kafka import Producer

from contracts import messages, topics
from contracts.clock import Clock as Now
from contracts.clock import utc_now

log = logging.getLogger("meterflow.clock")
LOCK_KEY = 0x6D66636C6F636B  # "mfclock"

SILENT_METERS = """
SELECT s.meter_id FROM meter_seen s JOIN meters m USING (meter_id)
WHERE (m.removed_at IS NULL OR m.removed_at > %(now)s) AND s.last_reading_at IS NOT NULL
  AND s.last_reading_at + make_interval(secs => m.expected_interval_s) < %(now)s
  AND NOT (s.last_event IS NOT DISTINCT FROM 'offline'
           AND s.last_event_at > s.last_reading_at)
"""
DUE_ACCOUNTS = """
SELECT b.account_id FROM balances b JOIN accounts a USING (account_id)
WHERE b.wake_at <= %(now)s
   OR (b.disconnect_pending
       AND NOT coalesce((a.keep_supply ->> 'manual')::boolean, false)
       AND (b.deferred_until IS NULL OR b.deferred_until <= %(now)s))
"""



def producer(bootstrap: str) -> Producer:
    """Keys are hashed as the Java client and kafka-python do (murmur2), so a tick lands
    in the partition of its key's readings and payments."""
    return Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random",
                     "acks": "all", "linger.ms": 5})


class Clock:
    """Ticks due keys every ``period_s`` while holding the clock's advisory lock."""

    def __init__(self, dsn: str, bootstrap: str, period_s: float, now: Now = utc_now) -> None:
        self.dsn = dsn
        self.period_s = period_s
        self.now = now
        self.out = producer(bootstrap)
        self.leader = False
        self.ticks = 0
        self.last_error: str | None = None
        self._conn: psycopg.Connection | None = None
        self._stop = threading.Event()

    def tick_once(self) -> int:
        """One round: become the leader if nobody is, then tick what is due."""
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, autocommit=True)
            self.leader = False
        conn = self._conn
        if not self.leader:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
            self.leader = bool(row and row[0])
            if not self.leader:
                return 0
        now = self.now()
        at = now.isoformat()
        meters = [m for (m,) in conn.execute(SILENT_METERS, {"now": now}).fetchall()]
        accounts = [a for (a,) in conn.execute(DUE_ACCOUNTS, {"now": now}).fetchall()]
        tick = messages.encode(messages.MeterTick(at=at))
        for meter in meters:
            self.out.produce(topics.METER_TICKS, key=meter.encode(), value=tick)
        signal = messages.encode(messages.WalletSignal(kind="tick", at=at))
        for account in accounts:
            self.out.produce(topics.WALLET_SIGNALS, key=account.encode(), value=signal)
        if self.out.flush(30) > 0:
            raise RuntimeError("ticks not confirmed by Kafka within 30 s")
        self.ticks += len(meters) + len(accounts)
        return len(meters) + len(accounts)

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick_once()
                self.last_error = None
            except Exception as exc:  # the clock must outlive a database or broker outage
                self.last_error = str(exc)
                log.warning("clock round failed: %s", exc)
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                self.leader = False
            self._stop.wait(self.period_s)
        if self._conn is not None:
            self._conn.close()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="clock", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
