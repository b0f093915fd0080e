"""Every board panel against the real database, filled through the real pipeline.

A fleet of simulated meters in two buildings reports every 30 minutes over the last three
days into Kafka; a real `meterflow worker` validates, rates, bills and lands it (with gaps,
a rejected reading, a stopped meter, a meter gone offline, unparseable input, accounts cut
off and restored, a refused refund, acknowledgements from the field). Then the rollups the
sinks kept must equal what `rebuild_board_rollups()` computes from the base tables, a year
(400 days) of history for 500 more meters is generated, and every panel query of every
board is expanded the way Grafana expands it and run on the one-year range: it must
succeed, return rows with the columns the panel expects, and finish within a second.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaProducer

from contracts import topics
from meterflow.dashboards.checks import Run, run_board
from meterflow.dashboards.macros import Selection, TimeRange
from meterflow.settings import Settings
from meterflow.stack.process import terminate
from pipeline.billing import WalletConfig, load_tariff_text
from services.accounts.spec import AccountSpec, MeterSpec, TariffSpec
from services.accounts.store import open_account
from services.payments.store import record_payment

from .boards_support import ROLLUPS, generate_history
from .conftest import REPO, env_of, start_worker, wait_for

pytestmark = pytest.mark.integration
DASHBOARDS = REPO / "dashboards"
EXAMPLES = REPO / "pipeline" / "billing" / "examples"
STEP = timedelta(minutes=30)
BUDGET_S = 1.0


def rows(db: psycopg.Connection, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    return db.execute(sql.encode(), args).fetchall()


class Fleet:
    """The run's property, accounts, meters and their readings."""

    def __init__(self, db: psycopg.Connection, run: str) -> None:
        self.db, self.p = db, run
        self.site = f"{run}S"
        self.meters: dict[str, str] = {}  # meter -> account
        self.low = (f"{run}A-low1", f"{run}A-low2")

    def build(self) -> None:
        p, db = self.p, self.db
        db.execute("INSERT INTO sites (site_id, name) VALUES (%s, 'Pipeline site')",
                   (self.site,))
        for b in (1, 2):
            db.execute("INSERT INTO buildings (building_id, site_id, name) VALUES (%s, %s, %s)",
                       (f"{p}B{b}", self.site, f"Tower {b}"))
            db.execute("INSERT INTO floors (floor_id, building_id, level) VALUES (%s, %s, 1)",
                       (f"{p}B{b}-F1", f"{p}B{b}"))
        tou = (EXAMPLES / "gd-commercial-tou.yaml").read_text().replace(
            "id: gd-commercial-tou", f"id: {p}tou")
        water = (EXAMPLES / "bj-residential-water.yaml").read_text().replace(
            "id: bj-water-residential", f"id: {p}water")
        rooms = [(f"{p}R{i}", f"{p}B{1 + i % 2}-F1") for i in range(1, 7)]
        for room, floor in rooms:
            self.db.execute("INSERT INTO rooms (room_id, floor_id, name) VALUES (%s, %s, %s)",
                            (room, floor, room))
        plan = [("low1", "E1", False), ("low2", "E2", False), ("n3", "E3", True),
                ("n4", "E4", False), ("n5", "E5", False), ("n6", "E6", True)]
        for (name, meter, with_water), (room, _) in zip(plan, rooms, strict=True):
            account = f"{p}A-{name}"
            meters = [MeterSpec(f"{p}{meter}", "electricity", "mqtt")]
            tariffs = [TariffSpec(f"{p}tou", "electricity", None, tou)]
            if with_water:
                meters.append(MeterSpec(f"{p}W{meter}", "water", "mqtt"))
                tariffs.append(TariffSpec(f"{p}water", "water", None, water))
            for body in {t.body for t in tariffs}:
                load_tariff_text(body, "tariff")  # the examples stay valid tariffs
            open_account(db, AccountSpec(account, f"Tenant {name}", tuple(meters),
                                         tuple(tariffs),
                                         WalletConfig(thresholds_fen=(600, 400, 200))))
            db.execute("UPDATE accounts SET room_id = %s WHERE account_id = %s",
                       (room, account))
            for m in meters:
                db.execute("UPDATE meters SET room_id = %s, expected_interval_s = 1800 "
                           "WHERE meter_id = %s", (room, m.meter_id))
                self.meters[m.meter_id] = account

    def readings(self, now: datetime) -> list[tuple[str, bytes]]:
        """Three days every 30 minutes, the last one a minute ago; E1 has a four-hour
        gap, E2 one register that went back, E3 never moves, E4 stops six hours early."""
        p = self.p
        last = now - timedelta(minutes=1)
        count = 3 * 48
        out: list[tuple[str, bytes]] = []
        for meter in self.meters:
            register = Decimal("1000")
            for k in range(count):
                ts = last - (count - 1 - k) * STEP
                water = meter.startswith(f"{p}W")
                if meter != f"{p}E3":
                    register += Decimal("0.02") if water else Decimal("0.5")
                value = register
                if meter == f"{p}E1" and 60 <= k < 68:
                    continue
                if meter == f"{p}E4" and k >= count - 12:
                    continue
                if meter == f"{p}E2" and k == 100:
                    value = register - 5  # refused: register_decreased
                out.append((meter, json.dumps({
                    "meter_id": meter, "ts": ts.isoformat(), "value": str(value),
                    "unit": "m3" if water else "kWh", "source": "mqtt"}).encode()))
        out.append((f"{p}X9", json.dumps({"meter_id": f"{p}X9", "ts": last.isoformat(),
                                          "value": "1", "unit": "kWh"}).encode()))
        out.append((f"{p}E5", b"{not json"))
        return out


def relay(stack: Settings) -> None:
    subprocess.run([sys.executable, "-m", "meterflow.cli", "relay", "--once"],
                   env=env_of(stack), cwd=REPO, check=True, capture_output=True, timeout=60)


def produce(stack: Settings, topic: str, items: list[tuple[str, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all",
                             linger_ms=20)
    for key, value in items:
        producer.send(topic, key=key.encode(), value=value)
    producer.flush()
    producer.close()


def ack(command_id: str, meter: str, status: str) -> tuple[str, bytes]:
    return meter, json.dumps({"command_id": command_id, "meter_id": meter, "status": status,
                              "detail": f"field said {status}",
                              "at": datetime.now(UTC).isoformat(),
                              "attempts": 0 if status == "expired" else 1}).encode()


def settled(db: psycopg.Connection, fleet: Fleet) -> Callable[[], bool]:
    """Nothing moved since the last look and every balance row has its last entry."""
    last: list[Any] = [None]

    def probe() -> bool:
        state = rows(db, """
            SELECT (SELECT count(*) FROM readings WHERE meter_id LIKE %s),
                   (SELECT count(*) FROM ledger WHERE account_id LIKE %s),
                   (SELECT count(*) FROM balances b WHERE b.account_id LIKE %s
                      AND b.seq = (SELECT max(seq) FROM ledger l
                                   WHERE l.account_id = b.account_id))""",
                     f"{fleet.p}%", f"{fleet.p}%", f"{fleet.p}%")[0]
        done = state == last[0] and state[2] == len(set(fleet.meters.values()))
        last[0] = state
        if not done:
            time.sleep(1.5)
        return done
    return probe


def drive_pipeline(stack: Settings, db: psycopg.Connection, fleet: Fleet) -> None:
    p = fleet.p
    for account in set(fleet.meters.values()):
        fen = 1000 if account in fleet.low else 20000
        record_payment(db, account, "topup", fen, f"{account}-opening", "desk")
    relay(stack)
    produce(stack, topics.RAW_READINGS, fleet.readings(datetime.now(UTC)))
    wait_for(lambda: len(rows(db, "SELECT 1 FROM commands WHERE account_id IN (%s, %s) AND "
                                  "action = 'disconnect'", *fleet.low)) == 2, 180,
             "both low accounts cut off")
    wait_for(settled(db, fleet), 240, "the pipeline to settle")
    # the field answers: one disconnect applied, one expired
    [(low1_cmd, low1_meter)] = rows(db, "SELECT command_id, meter_id FROM commands WHERE "
                                        "account_id = %s AND action = 'disconnect'", fleet.low[0])
    [(low2_cmd, low2_meter)] = rows(db, "SELECT command_id, meter_id FROM commands WHERE "
                                        "account_id = %s AND action = 'disconnect'", fleet.low[1])
    produce(stack, topics.COMMAND_ACKS, [ack(low1_cmd, low1_meter, "applied"),
                                         ack(low2_cmd, low2_meter, "expired")])
    # a top-up restores low1 (its reconnect fails in the field); a refund above the
    # balance is refused by the wallet
    record_payment(db, fleet.low[0], "topup", 50000, f"{fleet.low[0]}-again", "desk")
    record_payment(db, f"{p}A-n4", "refund", 9_000_000, f"{p}A-n4-refund", "desk")
    relay(stack)
    [(cmd, meter)] = wait_for(lambda: rows(
        db, "SELECT command_id, meter_id FROM commands WHERE account_id = %s AND "
            "action = 'reconnect'", fleet.low[0]), 60, "the reconnect command")
    produce(stack, topics.COMMAND_ACKS, [ack(cmd, meter, "failed")])
    wait_for(lambda: rows(db, "SELECT 1 FROM alarms WHERE account_id = %s AND kind = "
                              "'refused'", f"{p}A-n4"), 60, "the refused refund")
    wait_for(lambda: len(rows(db, "SELECT 1 FROM command_acks WHERE meter_id LIKE %s",
                              f"{p}%")) == 3, 60, "three acknowledgements")
    wait_for(lambda: rows(db, "SELECT 1 FROM meter_events WHERE meter_id = %s AND kind = "
                              "'offline'", f"{p}E4"), 90, "E4 offline")
    wait_for(lambda: rows(db, "SELECT 1 FROM dead_letters WHERE stage = 'validate' AND "
                              "raw = %s", b"{not json"), 60, "the dead letter")
    wait_for(lambda: rows(db, "SELECT 1 FROM pipeline_metrics WHERE topic = %s AND landed > 0 "
                              "AND worker LIKE %s", topics.ACCEPTED_READINGS,
                          f"{stack.worker_id}-sink@%")
             and rows(db, "SELECT 1 FROM pipeline_metrics WHERE lag IS NOT NULL AND "
                          "worker LIKE %s", f"{stack.worker_id}@%"), 60, "pipeline metrics")
    wait_for(settled(db, fleet), 120, "the pipeline to settle again")
    # notifications as the notifier records them (this test does not run the notifier)
    db.execute("""
        INSERT INTO notifications (notification_id, created_at, source_id, event_kind, level,
                                   account_id, site_id, channel, recipient, status, attempts)
        SELECT 'n-' || alarm_id, at, alarm_id, kind, level, account_id, %s, 'sms',
               '13800000000', CASE WHEN level = 3 THEN 'failed' ELSE 'delivered' END, 1
        FROM alarms WHERE account_id LIKE %s""", (fleet.site, f"{p}%"))
    db.execute("""
        INSERT INTO notification_attempts (notification_id, attempt, at, channel, outcome,
                                           latency_ms)
        SELECT notification_id, 1, created_at, channel,
               CASE status WHEN 'delivered' THEN 'delivered' ELSE 'failed' END, 350
        FROM notifications WHERE notification_id LIKE 'n-%%' AND account_id LIKE %s""",
               (f"{p}%",))


def run_rollups(db: psycopg.Connection, p: str) -> dict[str, list[tuple[Any, ...]]]:
    """The run's rows of every board rollup, in a stable order."""
    where = {"usage_monthly": "meter_id", "quality_daily": "meter_id",
             "quality_monthly": "meter_id"}
    out = {}
    for table in ROLLUPS:
        column = where.get(table, "building_id")
        out[table] = sorted(rows(db, f"SELECT * FROM {table} WHERE {column} LIKE %s",
                                 f"{p}%"))
    return out


def check_rollups(db: psycopg.Connection, fleet: Fleet) -> None:
    p = fleet.p
    kept = run_rollups(db, p)
    assert all(kept.values()), {t: len(r) for t, r in kept.items()}
    db.execute("SELECT rebuild_board_rollups()")
    assert run_rollups(db, p) == kept, "the sinks' rollups differ from a rebuild"
    # and they say what happened
    [(missed, gap)] = rows(db, "SELECT sum(missed), max(max_gap_s) FROM quality_daily "
                               "WHERE meter_id = %s", f"{p}E1")
    assert (missed, gap) == (8, 9 * 1800)
    assert rows(db, "SELECT reason, sum(rejected) FROM rejections_daily WHERE site_id = %s "
                    "GROUP BY 1", fleet.site) == [("register_decreased", 1)]
    [(daily, monthly)] = rows(db, """
        SELECT (SELECT sum(units) FROM usage_daily WHERE meter_id LIKE %s),
               (SELECT sum(units) FROM usage_monthly WHERE meter_id LIKE %s)""",
                              f"{p}%", f"{p}%")
    assert daily == monthly and daily > 0
    [(ledger, by_day)] = rows(db, """
        SELECT (SELECT sum(amount_fen) FROM ledger WHERE account_id LIKE %s),
               (SELECT sum(amount_fen) FROM ledger_daily WHERE building_id LIKE %s)""",
                              f"{p}%", f"{p}%")
    assert ledger == by_day


def board_files() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    boards = [json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))]
    return boards, json.loads((DASHBOARDS / "checks" / "columns.json").read_text())


def run_all(db: psycopg.Connection, rng: TimeRange, chosen: dict[str, Selection]
            ) -> list[Run]:
    boards, columns = board_files()
    return [r for board in boards for r in run_board(db, board, columns[board["uid"]], rng,
                                                     chosen)]


def test_every_panel_answers_on_pipeline_data_and_a_year_of_history(
    stack: Settings, db: psycopg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = f"G{uuid.uuid4().hex[:5]}-"
    fleet = Fleet(db, run)
    fleet.build()
    monkeypatch.setenv("METERFLOW_METRICS_PERIOD_S", "2")
    log = tmp_path / "worker.log"
    worker = start_worker(stack, log)
    try:
        drive_pipeline(stack, db, fleet)
    except BaseException:
        print("\n".join(log.read_text(errors="replace").splitlines()[-60:]))
        raise
    finally:
        terminate(worker.pid, grace_s=20)
        worker.wait()
    check_rollups(db, fleet)

    history = f"H{uuid.uuid4().hex[:5]}-"
    started = time.monotonic()
    generate_history(db, history)
    print(f"\nhistory of 500 meters generated in {time.monotonic() - started:.1f}s")

    end = datetime.now(UTC)
    year = TimeRange(end - timedelta(days=365), end)
    meter = Selection((f"{history}M1",))
    runs = run_all(db, year, {"meter": meter})
    failures = [f"{r.board} {r.panel} {r.title!r}: {r.error or r.columns} rows={r.rows} "
                f"{r.seconds * 1000:.0f}ms" for r in runs
                if not r.ok or r.rows == 0 or r.seconds >= BUDGET_S]
    slowest = sorted(runs, key=lambda r: r.seconds, reverse=True)[:5]
    print(f"{len(runs)} panel queries on one year; slowest: " + ", ".join(
        f"{r.board} {r.panel} {r.title!r} {r.seconds * 1000:.0f}ms" for r in slowest))
    assert len(runs) >= 50
    assert not failures, "\n".join(failures)

    # one site chosen: the filters select, the figures are the run's own
    site = Selection((fleet.site,), multi=True, include_all=True)
    chosen = {"site": site, "meter": Selection((f"{run}E1",))}
    by_panel = {(r.board, r.title): r for r in run_all(db, year, chosen)}
    assert all(r.ok for r in by_panel.values()), [r for r in by_panel.values() if not r.ok]
    totals = db.execute(by_panel[("meterflow-finance", "Totals in range")].sql.encode()
                        ).fetchone()
    [(topups, refunds)] = rows(db, """
        SELECT sum(amount_fen) FILTER (WHERE kind = 'topup') / 100.0,
               -COALESCE(sum(amount_fen) FILTER (WHERE kind = 'refund'), 0) / 100.0
        FROM ledger WHERE account_id LIKE %s""", f"{run}%")
    assert totals is not None and (totals[0], totals[1]) == (topups, refunds)
    assert topups == Decimal("1320.00")  # 4 x 200 + 2 x 10 + 500 (the refund was refused)
    buildings = db.execute(by_panel[("meterflow-energy", "By building")].sql.encode()
                           ).fetchall()
    assert sorted(b[1] for b in buildings) == [f"{run}B1", f"{run}B2"]
    stopped = db.execute(by_panel[("meterflow-quality", "Stopped meters")].sql.encode()
                         ).fetchall()
    assert [s[0] for s in stopped] == [f"{run}E3"]
    offline = [r[0] for r in db.execute(
        by_panel[("meterflow-quality", "Offline meters")].sql.encode()).fetchall()]
    assert f"{run}E4" in offline
    gaps = db.execute(by_panel[("meterflow-quality", "Meters with the most missed readings")]
                      .sql.encode()).fetchall()
    assert gaps[0][0] == f"{run}E1" and gaps[0][4] == 8

    # a short range reads the per-period pipeline rows, and sees this worker's
    hour = TimeRange(end - timedelta(hours=1), end)
    health = [r for r in run_all(db, hour, {"meter": meter})
              if r.board == "meterflow-pipeline"]
    assert health and all(r.ok and r.rows > 0 for r in health), health
