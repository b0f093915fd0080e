"""Batched, idempotent writes to TimescaleDB (psycopg 3, pipelined executemany).

Every statement is idempotent on its natural key, so a batch that is written again after a
crash or a redelivery changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from pipeline.dead_letter import DeadLetter
from pipeline.raw_reading import RawReading

INSERT_READING = """
INSERT INTO readings (meter_id, ts, value, unit, sharp, peak, flat, valley, source)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (meter_id, ts) DO NOTHING
"""

INSERT_DEAD_LETTER = """
INSERT INTO dead_letters (id, at, stage, reason, source, key, raw)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (id, at) DO NOTHING
"""


async def write_readings(conn: psycopg.AsyncConnection, rows: Sequence[RawReading]) -> None:
    if not rows:
        return
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(
            INSERT_READING,
            [
                (r.meter_id, r.ts, r.value, r.unit, r.sharp, r.peak, r.flat, r.valley, r.source)
                for r in rows
            ],
        )


async def write_dead_letters(
    conn: psycopg.AsyncConnection, rows: Sequence[DeadLetter]
) -> None:
    if not rows:
        return
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(
            INSERT_DEAD_LETTER,
            [(d.id, d.at, d.stage, d.reason, d.source, d.key, d.raw) for d in rows],
        )
