"""Load the stages' configuration from PostgreSQL into an in-memory snapshot.

Each worker refreshes its snapshot in a background thread every
``METERFLOW_CONFIG_REFRESH_S`` seconds; the snapshot is replaced whole, so a stage always
sees one consistent version. A record naming a meter or account that a snapshot older than
the record does not know triggers a reload first (at most one every ``RELOAD_GAP_S``), so
a meter opened a moment before its first reading is never refused.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pipeline.billing import TariffBook
from pipeline.billing.errors import TariffError
from pipeline.configuration import (
    AccountSetup,
    MeterSetup,
    TariffCache,
    TariffVersions,
    wallet_config,
)

log = logging.getLogger("meterflow.config")
#: How far a producer's clock may run ahead of this worker's.
CLOCK_SKEW_S = 2.0
RELOAD_GAP_S = 0.5

#: The tariff in force is the newest due assignment (sql/0007, view meter_tariffs), else the
#: meter's own; a meter replaced by another stays configured until its removal time, so
#: its final reading is still rated.
METERS = """
SELECT m.meter_id, m.commodity, m.account_id, t.tariff_id, m.multiplier, m.register_max,
       m.max_rate, m.expected_interval_s, m.removed_at IS NOT NULL AND m.removed_at <= now()
FROM meters m JOIN meter_tariffs t USING (meter_id)
"""
ACCOUNTS = """
SELECT a.account_id, a.billing_mode, a.thresholds_fen, a.overdraft_fen, a.reconnect_above_fen,
       a.keep_supply,
       coalesce(array_agg(m.meter_id ORDER BY m.meter_id)
                FILTER (WHERE m.meter_id IS NOT NULL
                        AND (m.removed_at IS NULL OR m.removed_at > now())), '{}')
FROM accounts a LEFT JOIN meters m ON m.account_id = a.account_id
GROUP BY a.account_id
"""
TARIFFS = "SELECT tariff_id, body FROM tariffs ORDER BY tariff_id, valid_from"


@dataclass
class Snapshot:
    meters: dict[str, MeterSetup] = field(default_factory=dict)
    accounts: dict[str, AccountSetup] = field(default_factory=dict)
    tariffs: dict[str, TariffVersions] = field(default_factory=dict)
    #: The rows each entry was built from: a reload rebuilds only the rows that changed.
    rows: dict[str, tuple[Any, ...]] = field(default_factory=dict, repr=False)


def _meter(row: tuple[Any, ...]) -> MeterSetup:
    meter_id, commodity, account, tariff, mult, reg_max, max_rate, every, removed = row
    return MeterSetup(meter_id, commodity, account, tariff, mult, reg_max, max_rate, every,
                      removed)


def _account(row: tuple[Any, ...]) -> AccountSetup:
    account_id, mode, thresholds, overdraft, reconnect, keep, meters = row
    return AccountSetup(account_id, wallet_config(mode, thresholds, overdraft, reconnect, keep),
                        tuple(meters))


def load(conn: psycopg.Connection, previous: Snapshot | None = None) -> Snapshot:
    """One consistent snapshot (one repeatable-read transaction); entries whose rows did
    not change since ``previous`` are taken over as they are."""
    old = previous or Snapshot()
    snap = Snapshot()

    def built(kind: str, key: str, row: tuple[Any, ...], made: Any, build: Any) -> Any:
        snap.rows[f"{kind}:{key}"] = row
        return made if made is not None and old.rows.get(f"{kind}:{key}") == row \
            else build(row)

    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        for row in cur.execute(METERS).fetchall():
            snap.meters[row[0]] = built("m", row[0], row, old.meters.get(row[0]), _meter)
        for row in cur.execute(ACCOUNTS).fetchall():
            snap.accounts[row[0]] = built("a", row[0], row, old.accounts.get(row[0]), _account)
        bodies: dict[str, list[str]] = {}
        for tariff_id, body in cur.execute(TARIFFS).fetchall():
            bodies.setdefault(tariff_id, []).append(body)
        snap.tariffs = {t: TariffVersions(t, tuple(b)) for t, b in bodies.items()}
    return snap


class ConfigSource:
    """The latest snapshot of one worker and its parsed tariff books."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.snapshot = Snapshot()
        self._books = TariffCache()
        self._loaded_at = 0.0
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None
        self._stop = threading.Event()

    def meter(self, meter_id: str) -> MeterSetup | None:
        return self.snapshot.meters.get(meter_id)

    def account(self, account_id: str) -> AccountSetup | None:
        return self.snapshot.accounts.get(account_id)

    def book(self, tariff_id: str | None) -> TariffBook | None:
        versions = self.snapshot.tariffs.get(tariff_id or "")
        if versions is None:
            return None
        try:
            return self._books.book(versions)
        except TariffError as exc:  # refused at write time; keep the worker going
            log.error("tariff %s cannot be used: %s", tariff_id, exc)
            return None

    def refresh(self) -> None:
        """Load a new snapshot (reconnecting after a failure); raises when it cannot."""
        with self._lock:
            started = time.time()
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.dsn, autocommit=True)
                self.snapshot = load(self._conn, self.snapshot)
            except psycopg.Error:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                raise
            self._loaded_at = started

    def meter_or_reload(self, meter_id: str, seen_at_s: float) -> MeterSetup | None:
        """The meter's setup, reloading first when a snapshot older than the record
        (``seen_at_s``: its Kafka timestamp in seconds) does not know it."""
        if self.meter(meter_id) is None:
            self._reload_if_older(seen_at_s)
        return self.meter(meter_id)

    def account_or_reload(self, account_id: str, seen_at_s: float) -> AccountSetup | None:
        if self.account(account_id) is None:
            self._reload_if_older(seen_at_s)
        return self.account(account_id)

    def _reload_if_older(self, seen_at_s: float) -> None:
        if self._loaded_at > seen_at_s + CLOCK_SKEW_S:
            return
        # At most one reload per RELOAD_GAP_S: a flood of records from an unknown meter
        # costs two queries a second, not one per record.
        wait = self._loaded_at + RELOAD_GAP_S - time.time()
        if wait > 0:
            time.sleep(wait)
        if self._loaded_at <= seen_at_s + CLOCK_SKEW_S:
            try:
                self.refresh()
            except psycopg.Error as exc:
                log.error("configuration reload failed, keeping the previous one: %s", exc)

    def start(self, period_s: float) -> threading.Thread:
        """Load now (raises when the database cannot be read), then every ``period_s``."""
        self.refresh()

        def loop() -> None:
            while not self._stop.wait(period_s):
                try:
                    self.refresh()
                except Exception as exc:  # keep the last good snapshot; say why
                    log.error("configuration refresh failed, keeping the previous one: %s",
                              exc)

        thread = threading.Thread(target=loop, name="config-refresh", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
