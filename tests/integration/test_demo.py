"""The demo (the README's first command, after setup) on the test stack: every protocol
delivers, the nearly empty rooms are warned and cut off, and the meters acknowledge it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest

from meterflow.settings import Settings

from .conftest import PORT_BASE, REPO, env_of, wait_for

pytestmark = pytest.mark.integration


def sign_in_to_the_console(output: Path) -> None:
    """While the demo runs: the console address and sign-in it printed work."""
    found = wait_for(lambda: re.search(r"web console: (\S+) \(sign in as (\S+), password "
                                       r"(\S+)\)", output.read_text()), 120,
                     "the demo to print the console's address")
    url, user, password = found.groups()
    with httpx.Client(timeout=30) as http:
        def up() -> bool:
            try:
                return http.get(f"{url}/login").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, 60, "the demo's API")
        form = http.get(f"{url}/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        answer = http.post(f"{url}/login", data={"username": user, "password": password,
                                                 "csrf": token.group(1)})
        assert answer.status_code == 303 and answer.headers["location"] == "/console/rooms"
        rooms = http.get(url.replace("/console", "/api/v1/monitor/rooms"),
                         params={"site_id": "demo-park"})
        assert rooms.status_code == 200 and rooms.json()["total"] >= 16


def test_demo_bills_a_mixed_fleet_and_cuts_off_the_empty_rooms(
    stack: Settings, db: psycopg.Connection, tmp_path: Path
) -> None:
    output = tmp_path / "demo.out"
    with open(output, "w") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "meterflow.cli", "demo", "--meters", "16", "--speed", "900",
             "--seconds", "70"],
            env={**env_of(stack), "COLUMNS": "160", "METERFLOW_API_PORT": str(PORT_BASE + 86)},
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        sign_in_to_the_console(output)
        assert demo.wait(timeout=300) == 0, output.read_text()[-3000:]
    finally:
        if demo.poll() is None:  # Ctrl-C: the demo stops the processes it started
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(timeout=90)
            except subprocess.TimeoutExpired:
                demo.kill()
    assert "16 meters registered, 16 rooms opened" in output.read_text()
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
