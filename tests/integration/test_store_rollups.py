"""Rated intervals land once in rated_lines and once in the rollups, even written twice."""

from __future__ import annotations

import uuid
from decimal import Decimal

import psycopg
import pytest

from contracts.messages import RatedInterval, RatedLineBody, SurchargeBody
from meterflow.settings import Settings
from pipeline.store import prepare, write_rated

pytestmark = pytest.mark.integration


def rated(meter: str, n: int, end: str) -> RatedInterval:
    return RatedInterval(
        interval_id=f"{meter}-{n}", meter_id=meter, account_id="A", tariff_id="tou",
        start="2026-07-01T15:30:00+00:00", end=end, units="2", cost="0.863",
        lines=[RatedLineBody(band="valley", step=None, price="0.3", units="1.25",
                             amount="0.375"),
               RatedLineBody(band="flat", step=None, price="0.6", units="0.75",
                             amount="0.45")],
        surcharges=[SurchargeBody(name="fund", price="0.019", units="2", amount="0.038")])


def test_rollups_add_each_line_once(stack: Settings, db: psycopg.Connection) -> None:
    meter = f"RU-{uuid.uuid4().hex[:8]}"
    batch = [rated(meter, 1, "2026-07-01T15:45:00+00:00"),
             rated(meter, 2, "2026-07-01T16:00:00+00:00")]

    def write() -> None:
        with psycopg.connect(stack.dsn, autocommit=True) as conn:
            prepare(conn)
            write_rated(conn, batch)
            write_rated(conn, batch[1:])  # a replayed interval adds nothing

    write()
    write()
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
