"""Batched, idempotent writes of the pipeline's topics to TimescaleDB.

Each writer lands one batch of one topic in one transaction: the rows are copied
(``COPY``) into a temporary staging table, then moved into the hypertable with one
``INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING``, so a batch written again after
a crash or a redelivery changes nothing, and the board rollups (pipeline/board_rollups.py)
count only the rows that were new. ``balances`` only moves forward (by ``seq``, then
``updated_at``). ``meter_seen`` keeps each meter's newest reading and online/offline event
for the clock (pipeline/clock.py) and the monitoring views.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg

from contracts.bands import BANDS
from contracts.commands import Ack, Command
from contracts.dead_letter import DeadLetter
from contracts.messages import (
    AcceptedReading,
    AlarmMessage,
    BalanceMessage,
    LedgerMessage,
    MeterEvent,
    RatedInterval,
    RejectedReading,
)
from pipeline import board_rollups

#: The staging tables, created once per connection, emptied at every commit.
STAGING = {
    "stage_readings": "meter_id text, ts timestamptz, value numeric, unit text, sharp numeric, "
                      "peak numeric, flat numeric, valley numeric, source text, "
                      "interval_start timestamptz",
    "stage_rejected": "meter_id text, ts timestamptz, reason text, value numeric, raw bytea",
    "stage_lines": "interval_id text, line smallint, meter_id text, account_id text, "
                   "tariff_id text, start_ts timestamptz, end_ts timestamptz, band text, "
                   "step smallint, units numeric, amount_yuan numeric",
    "stage_ledger": "entry_id text, account_id text, seq bigint, at timestamptz, kind text, "
                    "amount_fen bigint, balance_fen bigint, meter_id text, ref text, "
                    "detail text",
    "stage_balances": "account_id text, balance_fen bigint, alarm_level smallint, supply text, "
                      "supply_state text, seq bigint, updated_at timestamptz, "
                      "disconnect_pending boolean, deferred_until timestamptz, "
                      "wake_at timestamptz",
    "stage_alarms": "alarm_id text, at timestamptz, account_id text, kind text, "
                    "level smallint, balance_fen bigint, detail text, threshold_fen bigint",
    "stage_commands": "command_id text, issued_at timestamptz, meter_id text, action text, "
                      "deadline timestamptz, reason text",
    "stage_acks": "command_id text, at timestamptz, meter_id text, status text, detail text, "
                  "attempts integer",
    "stage_events": "event_id text, at timestamptz, meter_id text, kind text, detail text",
    "stage_letters": "id text, at timestamptz, stage text, reason text, source text, key bytea, "
                     "raw bytea",
}


def prepare(conn: psycopg.Connection) -> None:
    """Create the staging tables of this connection (temporary: dropped with it)."""
    with conn.transaction():
        for name, columns in STAGING.items():
            conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns}) "
                         "ON COMMIT DELETE ROWS")


def _copy(cur: psycopg.Cursor[Any], table: str, rows: Iterable[Sequence[Any]]) -> None:
    columns = ", ".join(c.split()[0] for c in STAGING[table].split(", "))
    with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _fetch_all(cur: psycopg.Cursor[Any]) -> list[tuple[Any, ...]]:
    return cur.fetchall() if cur.description else []


def write_dead_letters(conn: psycopg.Connection, rows: Sequence[DeadLetter]) -> None:
    with conn.transaction(), conn.cursor() as cur:
        _copy(cur, "stage_letters", ((d.id, d.at, d.stage, d.reason, d.source, d.key, d.raw)
                                     for d in rows))
        cur.execute("INSERT INTO dead_letters (id, at, stage, reason, source, key, raw) "
                    "SELECT * FROM stage_letters ON CONFLICT (id, at) DO NOTHING")


def write_accepted(conn: psycopg.Connection, rows: Sequence[AcceptedReading]) -> None:
    """Readings, the board rollups of the new ones, and each meter's newest reading."""
    with conn.transaction(), conn.cursor() as cur:
        _copy(cur, "stage_readings", (
            (r.meter_id, r.ts, r.value, r.unit, *(r.registers.get(b) for b in BANDS),
             r.source, None if r.interval is None else r.interval.start) for r in rows))
        cur.execute("""
            WITH fresh AS (
                INSERT INTO readings (meter_id, ts, value, unit, sharp, peak, flat, valley,
                                      source)
                SELECT meter_id, ts, value, unit, sharp, peak, flat, valley, source
                FROM stage_readings ON CONFLICT (meter_id, ts) DO NOTHING
                RETURNING meter_id, ts)
            SELECT DISTINCT f.meter_id, f.ts, s.interval_start
            FROM fresh f JOIN stage_readings s USING (meter_id, ts)""")
        fresh = _fetch_all(cur)
        cur.execute("""
            INSERT INTO meter_seen (meter_id, last_reading_at)
            SELECT meter_id, max(ts) FROM stage_readings GROUP BY meter_id
            ON CONFLICT (meter_id) DO UPDATE
            SET last_reading_at = GREATEST(meter_seen.last_reading_at,
                                           excluded.last_reading_at)""")
        board_rollups.add_accepted(cur, [(m, ts, start) for m, ts, start in fresh])


def write_rejected(conn: psycopg.Connection, rows: Sequence[RejectedReading]) -> None:
    """Rejections, and the board rollups of the new ones."""
    with conn.transaction(), conn.cursor() as cur:
        _copy(cur, "stage_rejected", ((r.meter_id, r.ts, r.reason, r.value,
                                       base64.b64decode(r.raw_b64)) for r in rows))
        cur.execute("""
            INSERT INTO rejected_readings (meter_id, ts, reason, value, raw)
            SELECT meter_id, ts, reason, value, raw FROM stage_rejected
            ON CONFLICT (meter_id, ts, reason) DO NOTHING
            RETURNING meter_id, ts, reason""")
        board_rollups.add_rejected(cur, _fetch_all(cur))


ROLLUP = """
INSERT INTO {table} (meter_id, bucket, band, units, amount_yuan)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (meter_id, bucket, band) DO UPDATE
SET units = {table}.units + excluded.units, amount_yuan = {table}.amount_yuan + excluded.amount_yuan
"""
HOURLY = ROLLUP.format(table="usage_hourly")
DAILY = ROLLUP.format(table="usage_daily")


def _lines(r: RatedInterval) -> list[tuple[Any, ...]]:
    """One row per band/step line; surcharges are lines with band '+name'."""
    common = (r.meter_id, r.account_id, r.tariff_id, r.start, r.end)
    rows: list[tuple[Any, ...]] = [(line.band, line.step, line.units, line.amount)
                                   for line in r.lines]
    rows += [(f"+{s.name}", None, s.units, s.amount) for s in r.surcharges]
    return [(r.interval_id, n, *common, band, step, units, amount)
            for n, (band, step, units, amount) in enumerate(rows)]


def rollups(fresh: Sequence[tuple[str, datetime, str, Decimal, Decimal]],
            places: Mapping[str, board_rollups.Place] | None = None
            ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Hourly and daily rollup increments of newly inserted lines, summed per bucket.

    A rated interval counts in the hour (UTC) and the day in which it ends, local to the
    zone its meter reports in (``places``; a meter not there: the default report zone).
    Surcharges are money only in rated_lines, not band units, so they are left out.
    """
    places = places or {}
    hourly: dict[tuple[str, datetime, str], tuple[Decimal, Decimal]] = {}
    daily: dict[tuple[str, date, str], tuple[Decimal, Decimal]] = {}
    zero = (Decimal(0), Decimal(0))
    for meter, end, band, units, amount in fresh:
        if band.startswith("+"):
            continue
        hour = (meter, end.astimezone(UTC).replace(minute=0, second=0, microsecond=0), band)
        tz = places.get(meter, board_rollups.NOWHERE).zone
        day = (meter, end.astimezone(tz).date(), band)
        hourly[hour] = (hourly.get(hour, zero)[0] + units, hourly.get(hour, zero)[1] + amount)
        daily[day] = (daily.get(day, zero)[0] + units, daily.get(day, zero)[1] + amount)
    return ([(*key, *sums) for key, sums in sorted(hourly.items())],
            [(*key, *sums) for key, sums in sorted(daily.items())])


def write_rated(conn: psycopg.Connection, rows: Sequence[RatedInterval]) -> None:
    """Rated lines, and the rollups for the lines that were new (each added once)."""
    lines = [params for row in rows for params in _lines(row)]
    if not lines:
        return
    with conn.transaction(), conn.cursor() as cur:
        _copy(cur, "stage_lines", lines)
        cur.execute("""
            INSERT INTO rated_lines (interval_id, line, meter_id, account_id, tariff_id,
                                     start_ts, end_ts, band, step, units, amount_yuan)
            SELECT * FROM stage_lines ON CONFLICT (interval_id, line, end_ts) DO NOTHING
            RETURNING meter_id, end_ts, coalesce(band, ''), units, amount_yuan""")
        fresh = _fetch_all(cur)
        if not fresh:
            return
        places = board_rollups.meter_places(cur, {line[0] for line in fresh})
        hourly, daily = rollups(fresh, places)
        if hourly:
            cur.executemany(HOURLY, hourly)
            cur.executemany(DAILY, daily)
        board_rollups.add_usage(cur, fresh, places)  # the board rollups (sql/0006, 0010)


def write_ledger(conn: psycopg.Connection, rows: Sequence[LedgerMessage]) -> None:
    """Ledger entries, and ledger_daily for the new ones."""
    with conn.transaction(), conn.cursor() as cur:
        _copy(cur, "stage_ledger", ((r.entry_id, r.account_id, r.seq, r.at, r.kind,
                                     r.amount_fen, r.balance_fen, r.meter_id, r.key, r.detail)
                                    for r in rows))
        cur.execute("""
            INSERT INTO ledger (entry_id, account_id, seq, at, kind, amount_fen, balance_fen,
                                meter_id, ref, detail)
            SELECT * FROM stage_ledger ON CONFLICT (entry_id, at) DO NOTHING
            RETURNING account_id, at, kind, amount_fen""")
        board_rollups.add_ledger(cur, _fetch_all(cur))


def write_balances(conn: psycopg.Connection, rows: Sequence[BalanceMessage]) -> None:
    """The newest state per account; an older message never overwrites a newer one."""
    with conn.transaction(), conn.cursor() as cur:
        _copy(cur, "stage_balances", (
            (r.account_id, r.balance_fen, r.alarm_level, r.supply, r.supply_state, r.seq,
             r.updated_at, r.disconnect_pending, r.deferred_until, r.wake_at) for r in rows))
        cur.execute("""
            INSERT INTO balances (account_id, balance_fen, alarm_level, supply, supply_state,
                                  seq, updated_at, disconnect_pending, deferred_until, wake_at)
            SELECT DISTINCT ON (account_id) * FROM stage_balances
            ORDER BY account_id, seq DESC, updated_at DESC
            ON CONFLICT (account_id) DO UPDATE SET
                balance_fen = excluded.balance_fen, alarm_level = excluded.alarm_level,
                supply = excluded.supply, supply_state = excluded.supply_state,
                seq = excluded.seq, updated_at = excluded.updated_at,
                disconnect_pending = excluded.disconnect_pending,
                deferred_until = excluded.deferred_until, wake_at = excluded.wake_at
            WHERE (excluded.seq, excluded.updated_at) >= (balances.seq, balances.updated_at)""")


def write_alarms(conn: psycopg.Connection, rows: Sequence[AlarmMessage]) -> None:
    with conn.transaction(), conn.cursor() as cur:
        _copy(cur, "stage_alarms", ((r.alarm_id, r.at, r.account_id, r.kind, r.level,
                                     r.balance_fen, r.detail, r.threshold_fen) for r in rows))
        cur.execute("INSERT INTO alarms (alarm_id, at, account_id, kind, level, balance_fen, "
                    "detail, threshold_fen) SELECT * FROM stage_alarms "
                    "ON CONFLICT (alarm_id, at) DO NOTHING")


def write_commands(conn: psycopg.Connection, rows: Sequence[Command]) -> None:
    with conn.transaction(), conn.cursor() as cur:
        _copy(cur, "stage_commands", ((r.command_id, r.issued_at, r.meter_id, r.action,
                                       r.deadline, r.reason) for r in rows))
        cur.execute("""
            INSERT INTO commands (command_id, issued_at, meter_id, account_id, action,
                                  deadline, reason)
            SELECT s.command_id, s.issued_at, s.meter_id, m.account_id, s.action, s.deadline,
                   s.reason
            FROM stage_commands s LEFT JOIN meters m USING (meter_id)
            ON CONFLICT (command_id, issued_at) DO NOTHING""")


def write_acks(conn: psycopg.Connection, rows: Sequence[Ack]) -> None:
    with conn.transaction(), conn.cursor() as cur:
        _copy(cur, "stage_acks", ((r.command_id, r.at, r.meter_id, r.status, r.detail,
                                   r.attempts) for r in rows))
        cur.execute("INSERT INTO command_acks (command_id, at, meter_id, status, detail, "
                    "attempts) SELECT * FROM stage_acks ON CONFLICT (command_id, at) DO NOTHING")


def write_meter_events(conn: psycopg.Connection, rows: Sequence[MeterEvent]) -> None:
    """Meter events, and each meter's newest online/offline event in ``meter_seen``."""
    with conn.transaction(), conn.cursor() as cur:
        _copy(cur, "stage_events", ((r.event_id, r.at, r.meter_id, r.kind, r.detail)
                                    for r in rows))
        cur.execute("INSERT INTO meter_events (event_id, at, meter_id, kind, detail) "
                    "SELECT * FROM stage_events ON CONFLICT (event_id, at) DO NOTHING")
        cur.execute("""
            INSERT INTO meter_seen (meter_id, last_event, last_event_at)
            SELECT DISTINCT ON (meter_id) meter_id, kind, at FROM stage_events
            WHERE kind IN ('online', 'offline') ORDER BY meter_id, at DESC
            ON CONFLICT (meter_id) DO UPDATE
            SET last_event = excluded.last_event, last_event_at = excluded.last_event_at
            WHERE meter_seen.last_event_at IS NULL
               OR excluded.last_event_at >= meter_seen.last_event_at""")
