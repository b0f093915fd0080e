"""Load the agents' configuration from PostgreSQL into an in-memory snapshot.

Each worker refreshes its snapshot on a timer (``METERFLOW_CONFIG_REFRESH_S``); the
snapshot is replaced whole, so an agent always sees one consistent version.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import psycopg

from pipeline.billing import TariffBook, WalletConfig
from pipeline.billing.errors import TariffError
from pipeline.billing.keep_supply import KeepSupplyPolicy
from pipeline.database import Database
from pipeline.setup import AccountSetup, MeterSetup, TariffCache, TariffVersions

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


class ConfigTable:
    """The latest snapshot and parsed tariff books of one worker."""

    def __init__(self, db: Database) -> None:
        self.snapshot = Snapshot()
        self._books = TariffCache()
        self._db = db
        self._loaded_at = 0.0
        self._reload_lock = asyncio.Lock()
        self.ready = asyncio.Event()

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

    async def refresh(self) -> None:
        started = time.time()
        self.snapshot = await load(await self._db.connection())
        self._loaded_at = started
        self.ready.set()

    async def meter_or_reload(self, meter_id: str, seen_at: float) -> MeterSetup | None:
        """The meter's setup. When it is unknown to a snapshot older than the record
        (``seen_at``: its Kafka timestamp), the snapshot is reloaded first, so a meter
        opened a moment before its first reading is never refused."""
        if self.meter(meter_id) is None:
            await self._reload_if_older(seen_at)
        return self.meter(meter_id)

    async def account_or_reload(self, account_id: str, seen_at: float) -> AccountSetup | None:
        if self.account(account_id) is None:
            await self._reload_if_older(seen_at)
        return self.account(account_id)

    async def _reload_if_older(self, seen_at: float) -> None:
        if self._loaded_at > seen_at + CLOCK_SKEW_S:
            return
        async with self._reload_lock:
            # At most one reload per RELOAD_GAP_S: a flood of records from an unknown
            # meter costs two queries a second, not one per record.
            wait = self._loaded_at + RELOAD_GAP_S - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if self._loaded_at <= seen_at + CLOCK_SKEW_S:
                await self.refresh()


def _wallet(mode: str, thresholds: list[int], overdraft: int, reconnect: int,
            keep: dict[str, object]) -> WalletConfig:
    a, b, c = (int(x) for x in thresholds)
    policy = KeepSupplyPolicy.from_dict(keep) if keep else KeepSupplyPolicy()
    return WalletConfig((a, b, c), int(overdraft), int(reconnect), mode == "postpaid", policy)


async def load(conn: psycopg.AsyncConnection) -> Snapshot:
    snap = Snapshot()
    async with conn.cursor() as cur:
        await cur.execute(METERS)
        for row in await cur.fetchall():
            meter_id, commodity, account, tariff, mult, reg_max, max_rate, every, removed = row
            snap.meters[meter_id] = MeterSetup(meter_id, commodity, account, tariff, mult,
                                               reg_max, max_rate, every, removed)
        await cur.execute(ACCOUNTS)
        for account_id, mode, thresholds, overdraft, reconnect, keep, meters in (
            await cur.fetchall()
        ):
            snap.accounts[account_id] = AccountSetup(
                account_id, _wallet(mode, thresholds, overdraft, reconnect, keep), tuple(meters))
        await cur.execute(TARIFFS)
        bodies: dict[str, list[str]] = {}
        for tariff_id, body in await cur.fetchall():
            bodies.setdefault(tariff_id, []).append(body)
        snap.tariffs = {t: TariffVersions(t, tuple(b)) for t, b in bodies.items()}
    return snap
