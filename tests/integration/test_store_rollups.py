"""Rated intervals land once in rated_lines and once in the rollups, even written twice."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import psycopg
import pytest

from meterflow.settings import Settings
from pipeline.store import write_rated

pytestmark = pytest.mark.integration


def rated(meter: str, n: int, end: str) -> dict[str, object]:
    return {"interval_id": f"{meter}-{n}", "meter_id": meter, "account_id": "A",
            "tariff_id": "tou", "start": "2026-07-01T15:30:00+00:00", "end": end,
            "lines": [{"band": "valley", "step": None, "units": "1.25", "amount": "0.375"},
                      {"band": "flat", "step": None, "units": "0.75", "amount": "0.45"}],
            "surcharges": [{"name": "fund", "units": "2", "amount": "0.038"}]}


def test_rollups_add_each_line_once(stack: Settings, db: psycopg.Connection) -> None:
    meter = f"RU-{uuid.uuid4().hex[:8]}"
    batch = [rated(meter, 1, "2026-07-01T15:45:00+00:00"),
             rated(meter, 2, "2026-07-01T16:00:00+00:00")]

    async def write() -> None:
        async with await psycopg.AsyncConnection.connect(stack.dsn) as conn:
            await write_rated(conn, batch)
            await write_rated(conn, batch[1:])  # a replayed interval adds nothing

    asyncio.run(write())
    asyncio.run(write())
    assert db.execute("SELECT count(*) FROM rated_lines WHERE meter_id = %s",
                      (meter,)).fetchone() == (6,)
    hourly = db.execute("SELECT to_char(bucket AT TIME ZONE 'UTC', 'HH24'), band, units, "
                        "amount_yuan FROM usage_hourly WHERE meter_id = %s ORDER BY 1, 2",
                        (meter,)).fetchall()
    assert hourly == [("15", "flat", Decimal("0.75"), Decimal("0.45")),
                      ("15", "valley", Decimal("1.25"), Decimal("0.375")),
                      ("16", "flat", Decimal("0.75"), Decimal("0.45")),
                      ("16", "valley", Decimal("1.25"), Decimal("0.375"))]
    daily = db.execute("SELECT bucket::text, band, units FROM usage_daily WHERE meter_id = %s "
                       "ORDER BY 1, 2", (meter,)).fetchall()
    assert daily == [("2026-07-01", "flat", Decimal("0.75")),
                     ("2026-07-01", "valley", Decimal("1.25")),
                     ("2026-07-02", "flat", Decimal("0.75")),
                     ("2026-07-02", "valley", Decimal("1.25"))]
