"""Report days in the zone of each meter's and account's site, the default report zone for
those in no site (sql/0010_site_time_zones.sql, docs/operations.md#report-time-zones): the
sinks and SQL's own rebuild agree, and `meterflow db migrate` hands the setting to SQL."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import psycopg
import pytest

from contracts.messages import LedgerMessage, RatedInterval, RatedLineBody
from meterflow.db.migrate import MigrationError, migrate, set_report_zone
from pipeline.store import prepare, write_ledger, write_rated

pytestmark = pytest.mark.integration

#: 20:00 UTC on 1 July: 21:00 on 1 July in London, 04:00 on 2 July in Shanghai.
END = "2026-07-01T20:00:00+00:00"
ROLLUPS = """
SELECT 'daily', meter_id, bucket::text FROM usage_daily WHERE meter_id = ANY(%(m)s)
UNION ALL SELECT 'monthly', meter_id, bucket::text FROM usage_monthly WHERE meter_id = ANY(%(m)s)
UNION ALL SELECT 'building', building_id, bucket::text FROM usage_daily_building
    WHERE building_id IN ('B-LON', '') AND commodity = 'electricity'
UNION ALL SELECT 'ledger', building_id, bucket::text FROM ledger_daily
    WHERE building_id IN ('B-LON', '')
ORDER BY 1, 2, 3"""


def rated(meter: str) -> RatedInterval:
    return RatedInterval(
        interval_id=f"{meter}-1", meter_id=meter, account_id=None, tariff_id="flat",
        start="2026-07-01T19:45:00+00:00", end=END, units="2", cost="1.2",
        lines=[RatedLineBody(band=None, step=None, price="0.6", units="2", amount="1.2")],
        surcharges=[])


def entry(account: str) -> LedgerMessage:
    return LedgerMessage(entry_id=f"{account}-1", account_id=account, seq=1, at=END,
                         kind="topup", key="k", amount_fen=100, balance_fen=100, meter_id=None,
                         detail="")


def place(conn: psycopg.Connection) -> None:
    """A site in London with one room, its meter and account; a meter and an account in
    no site."""
    conn.execute("INSERT INTO sites (site_id, timezone) VALUES ('S-LON', 'Europe/London')")
    conn.execute("INSERT INTO buildings (building_id, site_id) VALUES ('B-LON', 'S-LON')")
    conn.execute("INSERT INTO floors (floor_id, building_id, level) VALUES ('F-LON', 'B-LON', 1)")
    conn.execute("INSERT INTO rooms (room_id, floor_id) VALUES ('R-LON', 'F-LON')")
    conn.execute("INSERT INTO accounts (account_id, room_id) VALUES ('A-LON', 'R-LON'), "
                 "('A-NONE', NULL)")
    conn.execute("INSERT INTO meters (meter_id, commodity, protocol, room_id) VALUES "
                 "('M-LON', 'electricity', 'mqtt', 'R-LON'), "
                 "('M-NONE', 'electricity', 'mqtt', NULL)")


def land(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        prepare(conn)
        write_rated(conn, [rated("M-LON"), rated("M-NONE")])
        write_ledger(conn, [entry("A-LON"), entry("A-NONE")])


def rollups(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    return [(kind, who, bucket[:16]) for kind, who, bucket in
            conn.execute(ROLLUPS, {"m": ["M-LON", "M-NONE"]}).fetchall()]


def test_days_are_the_sites_and_sql_rebuilds_the_same(fresh_db: str) -> None:
    migrate(fresh_db, report_timezone="Asia/Shanghai")
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        place(conn)
        assert conn.execute("SELECT meter_id, report_zone FROM meter_places ORDER BY 1"
                            ).fetchall() == [("M-LON", "Europe/London"),
                                             ("M-NONE", "Asia/Shanghai")]
    land(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        landed = rollups(conn)
        assert landed == [
            ("building", "", "2026-07-01 16:00"),       # Shanghai's 2 July
            ("building", "B-LON", "2026-06-30 23:00"),  # London's 1 July (BST)
            ("daily", "M-LON", "2026-07-01"),
            ("daily", "M-NONE", "2026-07-02"),
            ("ledger", "", "2026-07-01 16:00"),
            ("ledger", "B-LON", "2026-06-30 23:00"),
            ("monthly", "M-LON", "2026-06-30 23:00"),
            ("monthly", "M-NONE", "2026-06-30 16:00"),
        ]
        conn.execute("SELECT rebuild_board_rollups()")
        assert rollups(conn) == landed
        today = conn.execute(
            "SELECT meter_id, units FROM usage_span(%s, %s) ORDER BY 1",
            (datetime.fromisoformat("2026-07-01T12:00:00+00:00"),
             datetime.fromisoformat("2026-07-01T12:00:00+00:00"))).fetchall()
        assert today == [("M-LON", Decimal("2.000000"))], "1 July is London's, not Shanghai's"


def test_the_default_zone_comes_from_the_settings(fresh_db: str) -> None:
    migrate(fresh_db, report_timezone="Asia/Shanghai")
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        place(conn)
    land(fresh_db)
    migrate(fresh_db, report_timezone="Europe/Berlin")  # the setting changed: days follow
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        assert conn.execute("SELECT default_report_zone(), site_report_zone(''), "
                            "meter_report_zone('M-NONE'), meter_report_zone('M-LON')"
                            ).fetchone() == ("Europe/Berlin", "Europe/Berlin", "Europe/Berlin",
                                             "Europe/London")
        assert [r for r in rollups(conn) if r[1] in ("M-NONE", "")] == [
            ("building", "", "2026-06-30 22:00"),
            ("daily", "M-NONE", "2026-07-01"),
            ("ledger", "", "2026-06-30 22:00"),
            ("monthly", "M-NONE", "2026-06-30 22:00"),
        ]
        assert not set_report_zone(conn, "Europe/Berlin"), "unchanged: nothing recomputed"
        with pytest.raises(MigrationError, match="Mars/Olympus"):
            set_report_zone(conn, "Mars/Olympus")
