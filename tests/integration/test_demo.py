"""The demo (the README's first command, after setup) on the test stack: every protocol
delivers, the nearly empty rooms are warned and cut off, and the meters acknowledge it."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from meterflow.settings import Settings

from .conftest import REPO, env_of

pytestmark = pytest.mark.integration


def test_demo_bills_a_mixed_fleet_and_cuts_off_the_empty_rooms(
    stack: Settings, db: psycopg.Connection
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "meterflow.cli", "demo", "--meters", "16", "--speed", "900",
         "--seconds", "70"],
        env={**env_of(stack), "COLUMNS": "160"}, cwd=REPO, capture_output=True, text=True,
        timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "16 meters registered, 16 rooms opened" in done.stdout
    [(prefix,)] = db.execute(
        "SELECT DISTINCT split_part(account_id, '-', 1) FROM meter_status "
        "WHERE site_id = 'demo-park'").fetchall()
    run = f"{prefix}-%"
    delivered = dict(db.execute(
        "SELECT protocol, count(*) FILTER (WHERE last_reading_at IS NOT NULL) "
        "FROM meter_status WHERE account_id LIKE %s GROUP BY 1", (run,)).fetchall())
    assert set(delivered) == {"modbus", "dlt645", "cjt188", "mqtt"}
    assert all(count > 0 for count in delivered.values()), delivered
    # Rooms 0 and 8 open with 0.60 yuan: warned at once (three levels), then cut off at zero.
    low = [f"{prefix}-A-1-0101-", f"{prefix}-A-1-0109-"]
    for room in low:
        levels = db.execute("SELECT level FROM alarms WHERE account_id LIKE %s "
                            "AND kind = 'low_balance' ORDER BY level", (f"{room}%",)).fetchall()
        assert levels == [(1,), (2,), (3,)], room
    acks = db.execute(
        "SELECT c.action, a.status FROM commands c JOIN command_acks a USING (command_id) "
        "WHERE c.account_id LIKE %s OR c.meter_id IN (SELECT meter_id FROM meters "
        "WHERE account_id LIKE %s)", (f"{low[0]}%", f"{low[0]}%")).fetchall()
    assert ("disconnect", "applied") in acks, acks
    rooms = db.execute("SELECT count(*) FROM room_status WHERE site_id = 'demo-park' "
                       "AND meters > 0").fetchone()
    assert rooms == (16,)
