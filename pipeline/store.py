"""Batched, idempotent writes of the pipeline's topics to TimescaleDB.

Each writer takes the decoded JSON values of one topic and writes them in one transaction
with pipelined ``executemany``. Every statement is idempotent on the event's id (or, for
the latest-state ``balances``, only moves forward by ``seq``), so a batch written again
after a crash or a redelivery changes nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from pipeline import board_rollups
from pipeline.dead_letter import DeadLetter

Row = dict[str, Any]


def _ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


async def _many(conn: psycopg.AsyncConnection, sql: str, params: list[tuple[Any, ...]]) -> None:
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(sql, params)


async def write_dead_letters(conn: psycopg.AsyncConnection, rows: Sequence[DeadLetter]) -> None:
    await _many(conn, """
        INSERT INTO dead_letters (id, at, stage, reason, source, key, raw)
        VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id, at) DO NOTHING""",
        [(d.id, d.at, d.stage, d.reason, d.source, d.key, d.raw) for d in rows])


async def write_accepted(conn: psycopg.AsyncConnection, rows: Sequence[Row]) -> None:
    """Readings, and the board rollups of the new ones (pipeline/board_rollups.py)."""
    async with conn.transaction(), conn.cursor() as cur:
        fresh = await board_rollups.inserted(cur, """
            INSERT INTO readings (meter_id, ts, value, unit, sharp, peak, flat, valley, source)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (meter_id, ts) DO NOTHING
            RETURNING meter_id, ts""",
            [(r["meter_id"], _ts(r["ts"]), Decimal(r["value"]), r["unit"],
              *(_opt(r["registers"].get(b)) for b in ("sharp", "peak", "flat", "valley")),
              r.get("source", "")) for r in rows])
        starts = {(r["meter_id"], _ts(r["ts"])): _ts((r.get("interval") or {}).get("start"))
                  for r in rows}
        await board_rollups.add_accepted(cur, [(m, ts, starts.get((m, ts))) for m, ts in fresh])


def _opt(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


async def write_rejected(conn: psycopg.AsyncConnection, rows: Sequence[Row]) -> None:
    """Rejections, and the board rollups of the new ones (pipeline/board_rollups.py)."""
    async with conn.transaction(), conn.cursor() as cur:
        fresh = await board_rollups.inserted(cur, """
            INSERT INTO rejected_readings (meter_id, ts, reason, value, raw)
            VALUES (%s, %s, %s, %s, %s) ON CONFLICT (meter_id, ts, reason) DO NOTHING
            RETURNING meter_id, ts, reason""",
            [(r["meter_id"], _ts(r["ts"]), r["reason"], _opt(r.get("value")),
              base64.b64decode(r["raw_b64"])) for r in rows])
        await board_rollups.add_rejected(cur, fresh)


INSERT_LINE = """
INSERT INTO rated_lines (interval_id, line, meter_id, account_id, tariff_id, start_ts, end_ts,
                         band, step, units, amount_yuan)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (interval_id, line, end_ts) DO NOTHING
RETURNING meter_id, end_ts, coalesce(band, ''), units, amount_yuan
"""

ROLLUP = """
INSERT INTO {table} (meter_id, bucket, band, units, amount_yuan)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (meter_id, bucket, band) DO UPDATE
SET units = {table}.units + excluded.units, amount_yuan = {table}.amount_yuan + excluded.amount_yuan
"""
HOURLY = ROLLUP.format(table="usage_hourly")
DAILY = ROLLUP.format(table="usage_daily")
#: The day of a rollup is the local day of the sites (the default site time zone, 0004).
REPORT_ZONE = ZoneInfo("Asia/Shanghai")


def _lines(r: Row) -> list[tuple[Any, ...]]:
    """One row per band/step line; surcharges are lines with band '+name'."""
    common = (r["meter_id"], r["account_id"], r["tariff_id"], _ts(r["start"]), _ts(r["end"]))
    rows = [(line["band"], line["step"], line["units"], line["amount"]) for line in r["lines"]]
    rows += [(f"+{s['name']}", None, s["units"], s["amount"]) for s in r["surcharges"]]
    return [(r["interval_id"], n, *common, band, step, Decimal(units), Decimal(amount))
            for n, (band, step, units, amount) in enumerate(rows)]


def rollups(fresh: Sequence[tuple[str, datetime, str, Decimal, Decimal]]
            ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Hourly and daily rollup increments of newly inserted lines, summed per bucket.

    A rated interval counts in the hour (UTC) and the day (``REPORT_ZONE``) in which it
    ends. Surcharges are money only in rated_lines, not band units, so they are left out.
    """
    hourly: dict[tuple[str, datetime, str], tuple[Decimal, Decimal]] = {}
    daily: dict[tuple[str, date, str], tuple[Decimal, Decimal]] = {}
    zero = (Decimal(0), Decimal(0))
    for meter, end, band, units, amount in fresh:
        if band.startswith("+"):
            continue
        hour = (meter, end.astimezone(UTC).replace(minute=0, second=0, microsecond=0), band)
        day = (meter, end.astimezone(REPORT_ZONE).date(), band)
        hourly[hour] = (hourly.get(hour, zero)[0] + units, hourly.get(hour, zero)[1] + amount)
        daily[day] = (daily.get(day, zero)[0] + units, daily.get(day, zero)[1] + amount)
    return ([(*key, *sums) for key, sums in sorted(hourly.items())],
            [(*key, *sums) for key, sums in sorted(daily.items())])


async def write_rated(conn: psycopg.AsyncConnection, rows: Sequence[Row]) -> None:
    """Rated lines, and the rollups for the lines that were new (each added once), all
    pipelined in one transaction (a replayed line inserts nothing, so adds nothing)."""
    lines = [params for row in rows for params in _lines(row)]
    if not lines:
        return
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(INSERT_LINE, lines, returning=True)
        fresh: list[tuple[Any, ...]] = []
        while True:
            fresh.extend(await cur.fetchall())
            if not cur.nextset():
                break
        hourly, daily = rollups(fresh)
        if hourly:
            await cur.executemany(HOURLY, hourly)
            await cur.executemany(DAILY, daily)
        await board_rollups.add_usage(cur, fresh)  # the board rollups (sql/0006_boards.sql)


async def write_ledger(conn: psycopg.AsyncConnection, rows: Sequence[Row]) -> None:
    """Ledger entries, and ledger_daily for the new ones (pipeline/board_rollups.py)."""
    async with conn.transaction(), conn.cursor() as cur:
        fresh = await board_rollups.inserted(cur, """
            INSERT INTO ledger (entry_id, account_id, seq, at, kind, amount_fen, balance_fen,
                                meter_id, ref, detail)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (entry_id, at) DO NOTHING
            RETURNING account_id, at, kind, amount_fen""",
            [(r["entry_id"], r["account_id"], r["seq"], _ts(r["at"]), r["kind"],
              r["amount_fen"], r["balance_fen"], r.get("meter_id"), r["key"],
              r.get("detail", "")) for r in rows])
        await board_rollups.add_ledger(cur, fresh)


async def write_balances(conn: psycopg.AsyncConnection, rows: Sequence[Row]) -> None:
    latest: dict[str, Row] = {}
    for r in rows:
        if r["account_id"] not in latest or r["seq"] >= latest[r["account_id"]]["seq"]:
            latest[r["account_id"]] = r
    await _many(conn, """
        INSERT INTO balances (account_id, balance_fen, alarm_level, supply, seq, updated_at,
                              disconnect_pending, deferred_until)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (account_id) DO UPDATE SET
            balance_fen = excluded.balance_fen, alarm_level = excluded.alarm_level,
            supply = excluded.supply, seq = excluded.seq, updated_at = excluded.updated_at,
            disconnect_pending = excluded.disconnect_pending,
            deferred_until = excluded.deferred_until
        WHERE (excluded.seq, excluded.updated_at) >= (balances.seq, balances.updated_at)""",
        [(r["account_id"], r["balance_fen"], r["alarm_level"], r["supply"], r["seq"],
          _ts(r["updated_at"]), r.get("disconnect_pending", False), _ts(r.get("deferred_until")))
         for r in latest.values()])


async def write_alarms(conn: psycopg.AsyncConnection, rows: Sequence[Row]) -> None:
    await _many(conn, """
        INSERT INTO alarms (alarm_id, at, account_id, kind, level, balance_fen, detail,
                            threshold_fen)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (alarm_id, at) DO NOTHING""",
        [(r["alarm_id"], _ts(r["at"]), r["account_id"], r["kind"], r.get("level"),
          r.get("balance_fen"), r.get("detail", ""), r.get("threshold_fen")) for r in rows])


async def write_commands(conn: psycopg.AsyncConnection, rows: Sequence[Row]) -> None:
    await _many(conn, """
        INSERT INTO commands (command_id, issued_at, meter_id, account_id, action, deadline,
                              reason)
        SELECT %s, %s, %s, (SELECT account_id FROM meters WHERE meter_id = %s), %s, %s, %s
        ON CONFLICT (command_id, issued_at) DO NOTHING""",
        [(r["command_id"], _ts(r["issued_at"]), r["meter_id"], r["meter_id"], r["action"],
          _ts(r["deadline"]), r.get("reason", "")) for r in rows])


async def write_acks(conn: psycopg.AsyncConnection, rows: Sequence[Row]) -> None:
    await _many(conn, """
        INSERT INTO command_acks (command_id, at, meter_id, status, detail, attempts)
        VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (command_id, at) DO NOTHING""",
        [(r["command_id"], _ts(r["at"]), r["meter_id"], r["status"], r.get("detail", ""),
          r.get("attempts", 0)) for r in rows])


async def write_meter_events(conn: psycopg.AsyncConnection, rows: Sequence[Row]) -> None:
    await _many(conn, """
        INSERT INTO meter_events (event_id, at, meter_id, kind, detail)
        VALUES (%s, %s, %s, %s, %s) ON CONFLICT (event_id, at) DO NOTHING""",
        [(r["event_id"], _ts(r["at"]), r["meter_id"], r["kind"], r.get("detail", ""))
         for r in rows])
