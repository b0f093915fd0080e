"""Property billing on the real stack: deductions through the wallet, apportionment,
postpaid bills with a late payment and an overdue notice, restarts, reconciliation.

A real worker (both stages and the sinks), the relay (``meterflow relay --once``) and the
session's PostgreSQL and Kafka; consumption reaches the wallet as rated intervals on
``meterflow.intervals.rated``, exactly as the meter stage sends them.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import psycopg
import pytest

from contracts.money import round_fen
from meterflow.settings import Settings
from meterflow.stack.process import terminate
from services.payments.store import record_payment
from services.property import apportionment, bills, charges
from services.property.scheduler import SchedulerConfig, tick
from services.reconcile import reconcile
from tests.integration.billing_support import (
    SH,
    account,
    floor_with_rooms,
    previous_month,
    produce_rated,
    tag,
    tou_month,
)
from tests.integration.conftest import REPO, env_of, start_worker, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def running(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    log = tmp_path_factory.mktemp("billing") / "worker.log"
    proc = start_worker(stack, log)
    try:
        yield stack
    finally:
        terminate(proc.pid, grace_s=20)
        proc.wait()
        print("\n".join(log.read_text(errors="replace").splitlines()[-60:]))


def relay(stack: Settings) -> None:
    done = subprocess.run([sys.executable, "-m", "meterflow.cli", "relay", "--once"], cwd=REPO,
                          env=env_of(stack), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout


def one(db: psycopg.Connection, query: str, *params: object) -> Any:
    row = db.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def kinds(db: psycopg.Connection, account_id: str) -> list[tuple[str, int | None]]:
    return [(str(k), lv) for k, lv in db.execute(
        "SELECT kind, level FROM alarms WHERE account_id = %s ORDER BY at, level NULLS LAST",
        (account_id,)).fetchall()]


def landed(db: psycopg.Connection, account_id: str, entries: int) -> bool:
    return one(db, "SELECT count(*) FROM ledger WHERE account_id = %s", account_id) >= entries


def test_deductions_reach_balances_trigger_alarms_and_cut_only_when_the_item_may(
        running: Settings, db: psycopg.Connection) -> None:
    t = tag("CD")
    _, rooms = floor_with_rooms(db, t, ["20", "20"])
    keep, cut = account(db, f"{t}-keep", rooms[0]), account(db, f"{t}-cut", rooms[1])
    today = datetime.now(SH).date()
    start, _ = previous_month(today)
    for acct in (keep, cut):
        record_payment(db, acct, "topup", 10000, f"{acct}-pay")
        db.execute("INSERT INTO charge_items (item_id, site_id, name, basis, amount_yuan, "
                   "frequency, day, start_date, may_cut) VALUES (%s, %s, 'Property fee', "
                   "'area', 2.5, 'monthly', 1, %s, %s)",
                   (f"{acct}-fee", f"{t}-site", start, acct == cut))
        db.execute("INSERT INTO charge_item_targets VALUES (%s, 'account', %s)",
                   (f"{acct}-fee", acct))
    config = SchedulerConfig(period_s=1)
    now = datetime.now(UTC)
    tick(db, now, config)  # two months of 50 yuan (20 m2 x 2.5) for each account
    # again, and from two more connections at once: nothing new
    rounds = []

    def again() -> None:
        with psycopg.connect(running.dsn, autocommit=True) as conn:
            rounds.append(tick(conn, now, config))

    threads = [threading.Thread(target=again) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tick(db, now + timedelta(minutes=1), config).charges == 0
    assert all(r.charges == 0 for r in rounds)
    for acct in (keep, cut):
        assert one(db, "SELECT count(*) FROM deductions WHERE account_id = %s", acct) == 2
    relay(running)
    for acct in (keep, cut):
        wait_for(lambda a=acct: landed(db, a, 3), 60, f"{acct}'s deductions in the ledger")
        assert db.execute("SELECT kind, amount_fen, balance_fen FROM ledger WHERE "
                          "account_id = %s ORDER BY seq", (acct,)).fetchall() == [
            ("topup", 10000, 10000), ("charge_item", -5000, 5000), ("charge_item", -5000, 0)]
        wait_for(lambda a=acct: one(db, "SELECT count(*) FROM balances WHERE account_id = %s "
                                    "AND balance_fen = 0", a) == 1, 60, "the balance row")
    wait_for(lambda: ("disconnect", None) in kinds(db, cut), 60, "the cut account's cut-off")
    wait_for(lambda: ("low_balance", 3) in kinds(db, keep), 60, "the low-balance alarms")
    assert [k for k in kinds(db, keep) if k[0] == "low_balance"] == [
        ("low_balance", 1), ("low_balance", 2), ("low_balance", 3)]
    assert "disconnect" not in [k for k, _ in kinds(db, keep)]
    assert one(db, "SELECT supply FROM balances WHERE account_id = %s", keep) == "connected"
    assert one(db, "SELECT supply FROM balances WHERE account_id = %s", cut) == "disconnected"
    assert [m for m in reconcile(db) if m.account_id in (keep, cut)] == []


def test_reconcile_reports_a_deduction_missing_from_the_ledger(
        running: Settings, db: psycopg.Connection) -> None:
    t = tag("RC")
    _, rooms = floor_with_rooms(db, t, ["10"])
    acct = account(db, f"{t}-a", rooms[0])
    db.execute("INSERT INTO deductions (deduction_id, idempotency_key, kind, source_id, "
               "account_id, period, period_start, period_end, amount_fen, may_cut) VALUES "
               "(%s, %s, 'charge_item', 'fee', %s, '2026-01', '2026-01-01', '2026-02-01', "
               "100, false)", (f"{t}-d", f"ci:fee:{acct}:2026-01", acct))
    found = [m for m in reconcile(db) if m.account_id == acct]
    assert [(m.check, m.found) for m in found] == [
        (f"deduction ci:fee:{acct}:2026-01", "not in the ledger")]


def test_a_12_room_floor_splits_its_corridor_meter_by_area_to_the_fen(
        running: Settings, db: psycopg.Connection) -> None:
    """Corridor lighting: the master's rated month (its own tariff) split over 10 occupied
    rooms by area, two vacant rooms left out; shares reach the wallets exactly once."""
    t = tag("AP")
    areas = ["32.5", "32.5", "45", "38", "30", "41.5", "36", "32.5", "44", "35.5", "38", "30"]
    site, rooms = floor_with_rooms(db, t, areas)
    tenants = [account(db, f"{t}-T{i + 1:02d}", room) for i, room in enumerate(rooms)]
    common = account(db, f"{t}-common", None, postpaid=True, meter=f"{t}-CORR")
    start, end = previous_month(datetime.now(SH).date())
    # the master meter's month, as the sink landed it from the meter stage: 412.6 kWh
    db.execute("INSERT INTO rated_lines (interval_id, line, meter_id, account_id, tariff_id, "
               "start_ts, end_ts, band, step, units, amount_yuan) VALUES "
               "(%s, 0, %s, %s, 'flat', %s, %s, NULL, 1, 212.6, 103.81258), "
               "(%s, 0, %s, %s, 'flat', %s, %s, NULL, 1, 200, 97.66)",
               (f"{t}-i1", f"{t}-CORR", common, datetime(start.year, start.month, 3, tzinfo=SH),
                datetime(start.year, start.month, 15, tzinfo=SH), f"{t}-i2", f"{t}-CORR", common,
                datetime(start.year, start.month, 15, tzinfo=SH),
                datetime(end.year, end.month, 1, tzinfo=SH)))
    db.execute("INSERT INTO apportion_groups (group_id, site_id, name, master_meter_id, method, "
               "start_date) VALUES (%s, %s, 'Corridor F3', %s, 'area', %s)",
               (f"{t}-corr", site, f"{t}-CORR", start))
    for i, tenant in enumerate(tenants):
        db.execute("INSERT INTO apportion_members (group_id, account_id, vacant) VALUES "
                   "(%s, %s, %s)", (f"{t}-corr", tenant, i in (4, 10)))
    period = apportionment.month(f"{start:%Y-%m}")
    # (the API's scheduler may split the closed month first: the same split, once)
    done = apportionment.run_period(db, f"{t}-corr", period)
    assert (done.total_fen, done.shares) == (20147, 10)
    assert not apportionment.run_period(db, f"{t}-corr", period).new  # once
    shares = dict(db.execute("SELECT account_id, amount_fen FROM apportion_shares WHERE "
                             "group_id = %s", (f"{t}-corr",)).fetchall())
    assert sum(shares.values()) == 20147 == round_fen(Decimal("201.47258"))
    assert shares[tenants[2]] == 2467
    arithmetic = one(db, "SELECT arithmetic FROM apportion_shares WHERE account_id = %s",
                     tenants[2])
    assert arithmetic == "20147 fen x 45.00 / 367.50 ≈ 2466.9796 fen -> 2466 + 1 = 2467 fen"
    assert one(db, "SELECT count(*) FROM deductions WHERE source_id = %s", f"{t}-corr") == 10
    for tenant in tenants:
        record_payment(db, tenant, "topup", 5000, f"{tenant}-pay")
    relay(running)
    wait_for(lambda: one(db, "SELECT count(*) FROM ledger WHERE kind = 'apportionment' AND "
                         "account_id LIKE %s", f"{t}-T%") == 10, 60, "the shares in the ledger")
    charged = one(db, "SELECT -sum(amount_fen) FROM ledger WHERE kind = 'apportionment' AND "
                  "account_id LIKE %s", f"{t}-T%")
    assert charged == 20147
    wait_for(lambda: one(db, "SELECT count(*) FROM ledger WHERE account_id LIKE %s",
                         f"{t}-T%") == 22, 60, "every top-up")
    assert [m for m in reconcile(db) if m.account_id.startswith(t)] == []


def test_a_postpaid_office_month_late_payment_overdue_notice_and_restarted_runs(
        running: Settings, db: psycopg.Connection) -> None:
    """Office 1208 on the commercial TOU tariff: a month of consumption, a property fee, a
    bill drafted by a run that dies after the first account and is started again, confirmed
    with an adjustment, issued, overdue (notice), then paid late."""
    t = tag("PO")
    site, rooms = floor_with_rooms(db, t, ["120", "80", "60"])
    office = account(db, f"{t}-1208", rooms[0], postpaid=True, meter=f"{t}-E1208")
    others = [account(db, f"{t}-12{i}", rooms[i], postpaid=True) for i in (1, 2)]
    start, end = previous_month(datetime.now(SH).date())
    month = tou_month(f"{t}-E1208", office, start, end)
    produce_rated(running, month)
    # the property fee of the month, charged on its day (then: inside the period); made
    # and charged in one transaction, so no other scheduler sees it before it is charged
    in_month = datetime(start.year, start.month, 2, 9, tzinfo=SH)
    with db.transaction():
        db.execute("INSERT INTO charge_items (item_id, site_id, name, basis, amount_yuan, "
                   "frequency, day, start_date, end_date) VALUES (%s, %s, 'Property fee', "
                   "'area', 0.5, 'monthly', 1, %s, %s)",
                   (f"{t}-fee", site, start, end - timedelta(days=1)))
        db.execute("INSERT INTO charge_item_targets VALUES (%s, 'site', %s)",
                   (f"{t}-fee", site))
        charges.run_charges(db, in_month, f"{t}-fee")
    assert one(db, "SELECT count(*) FROM deductions WHERE source_id = %s", f"{t}-fee") == 3
    relay(running)
    exact = sum(Decimal(i.cost) for i in month)
    wait_for(lambda: one(db, "SELECT count(*) FROM ledger WHERE account_id = %s", office)
             == len(month) + 1, 120, "a month of charges in the ledger")
    wait_for(lambda: one(db, "SELECT count(*) FROM rated_lines WHERE account_id = %s", office)
             == len(month), 60, "the rated lines")
    for other in others:
        wait_for(lambda o=other: landed(db, o, 1), 60, "the fee of the other offices")

    def crash(account_id: str) -> None:
        raise RuntimeError(f"killed after billing {account_id}")

    with pytest.raises(RuntimeError, match="killed after billing"):
        bills.run_bills(db, start, end, site_id=site, due_days=10, after_account=crash)
    assert one(db, "SELECT count(*) FROM bills WHERE account_id LIKE %s", f"{t}-%") == 1
    again = bills.run_bills(db, start, end, site_id=site, due_days=10)
    assert (len(again.made), again.already, again.waiting) == (2, 1, [])
    assert bills.run_bills(db, start, end, site_id=site).already == 3
    assert one(db, "SELECT count(*) FROM bills WHERE account_id LIKE %s", f"{t}-%") == 3
    bill_id = one(db, "SELECT bill_id FROM bills WHERE account_id = %s", office)
    bill = bills.get_bill(db, bill_id)
    assert bill is not None
    lines = db.execute("SELECT kind, label, amount_fen FROM bill_lines WHERE bill_id = %s "
                       "ORDER BY line", (bill_id,)).fetchall()
    energy = sum(f for k, _, f in lines if k == "electricity")
    assert energy == round_fen(exact)  # one rounding of the month's exact cost
    assert {label for k, label, _ in lines if k == "electricity"} == {
        "electricity sharp", "electricity peak", "electricity flat", "electricity valley"}
    assert ("charge_item", f"Property fee {start:%Y-%m}", 6000) in lines
    # the bill equals its lines and the ledger
    assert bill["charges_fen"] == sum(f for _, _, f in lines)
    t0, t1 = bills.local_bounds(start, end, "Asia/Shanghai")
    assert bill["closing_fen"] == one(db, f"SELECT sum(amount_fen) FROM ledger WHERE "
                                      f"account_id = %s AND {bills.WHEN} < %s", office, t1)
    assert -bill["charges_fen"] == one(db, f"SELECT sum(amount_fen) FROM ledger WHERE "
                                       f"account_id = %s AND {bills.WHEN} >= %s AND "
                                       f"{bills.WHEN} < %s", office, t0, t1)
    # confirm with a goodwill adjustment of -20 yuan, then issue
    adjustment = bills.Adjustment(-2000, "lift out of service 2 days")
    bills.post_adjustments(db, bill_id, [adjustment], "finance-li")
    with db.transaction():
        bills.apply_adjustments(db, bill_id, [adjustment])
        bills.transition(db, bill_id, "confirm")
    with db.transaction():
        bills.transition(db, bill_id, "issue")
    with pytest.raises(bills.BillError, match="state"), db.transaction():
        bills.transition(db, bill_id, "issue")
    relay(running)
    wait_for(lambda: one(db, "SELECT count(*) FROM ledger WHERE account_id = %s AND ref = %s",
                         office, f"billadj:{bill_id}:0") == 1, 60, "the adjustment")
    issued = bills.get_bill(db, bill_id)
    assert issued is not None and issued["charges_fen"] == bill["charges_fen"] - 2000
    assert issued["closing_fen"] == one(db, f"SELECT sum(amount_fen) FROM ledger WHERE "
                                        f"account_id = %s AND {bills.WHEN} < %s", office, t1)
    # past the due day, unpaid: overdue, one notice however often the round runs
    late = datetime.combine(issued["due_date"] + timedelta(days=3), datetime.min.time(), SH)
    bills.refresh(db, late)
    bills.refresh(db, late + timedelta(hours=1))
    assert one(db, "SELECT state FROM bills WHERE bill_id = %s", bill_id) == "overdue"
    assert one(db, "SELECT count(*) FROM bill_notices WHERE bill_id = %s", bill_id) == 2
    relay(running)
    wait_for(lambda: {k for k, _ in kinds(db, office)} >= {"bill_issued", "bill_overdue"}, 60,
             "the bill notices on meterflow.alarms")
    # a late payment: part first, then the rest; the oldest bill is settled first
    owed = issued["charges_fen"]
    record_payment(db, office, "topup", owed // 2, f"{office}-late-1")
    relay(running)
    wait_for(lambda: one(db, "SELECT count(*) FROM ledger WHERE ref = %s",
                         f"{office}-late-1") == 1, 60, "the first late payment")
    bills.refresh(db, late + timedelta(days=1))
    assert db.execute("SELECT state, paid_fen FROM bills WHERE bill_id = %s",
                      (bill_id,)).fetchone() == ("overdue", owed // 2)
    record_payment(db, office, "topup", owed - owed // 2, f"{office}-late-2")
    relay(running)
    wait_for(lambda: one(db, "SELECT count(*) FROM ledger WHERE ref = %s",
                         f"{office}-late-2") == 1, 60, "the second late payment")
    bills.refresh(db, late + timedelta(days=2))
    assert db.execute("SELECT state, paid_fen FROM bills WHERE bill_id = %s",
                      (bill_id,)).fetchone() == ("paid", owed)
    # every move settlement made is audited as the scheduler's
    moves = db.execute("SELECT before->>'state', after->>'state' FROM audit_log WHERE "
                       "target = %s AND action = 'bill.settle' ORDER BY audit_id",
                       (f"bill:{bill_id}",)).fetchall()
    assert moves == [("issued", "overdue"), ("overdue", "overdue"), ("overdue", "paid")]
    assert one(db, "SELECT count(*) FROM bill_arrears WHERE account_id = %s", office) == 0
    wait_for(lambda: one(db, "SELECT count(*) FROM balances WHERE account_id = %s AND "
                         "balance_fen = 0", office) == 1, 60, "the settled balance")
    assert [m for m in reconcile(db) if m.account_id.startswith(t)] == []


def cli(stack: Settings, *args: str, **settings: str) -> str:
    env = {**env_of(stack), **{f"METERFLOW_{k.upper()}": v for k, v in settings.items()}}
    done = subprocess.run([sys.executable, "-m", "meterflow.cli", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def test_the_command_line_ticks_once_per_period_drafts_on_the_billing_day_and_exports(
        stack: Settings, db: psycopg.Connection, tmp_path: Path) -> None:
    t = tag("CL")
    site, rooms = floor_with_rooms(db, t, ["40"])
    office = account(db, f"{t}-o", rooms[0], postpaid=True)
    start, end = previous_month(datetime.now(SH).date())
    db.execute("INSERT INTO charge_items (item_id, site_id, name, basis, amount_yuan, "
               "frequency, day, start_date) VALUES (%s, %s, 'Parking', 'fixed', 300, "
               "'yearly', 1, %s)", (f"{t}-park", site, start))
    db.execute("INSERT INTO charge_item_targets VALUES (%s, 'account', %s)",
               (f"{t}-park", office))
    at = datetime(start.year, start.month, 5, tzinfo=SH).isoformat()
    json.loads(cli(stack, "billing", "tick", "--at", at))
    again = json.loads(cli(stack, "billing", "tick", "--at", at))
    assert again["skipped"] is False
    assert one(db, "SELECT count(*) FROM deductions WHERE source_id = %s", f"{t}-park") == 1
    # the ledger as the wallet would post the deduction (no worker in this test)
    db.execute("INSERT INTO ledger (entry_id, account_id, seq, at, kind, amount_fen, "
               "balance_fen, ref, detail) SELECT %s, account_id, 1, %s, 'charge_item', "
               "-amount_fen, -amount_fen, idempotency_key, detail FROM deductions WHERE "
               "source_id = %s", (f"{t}-e", at, f"{t}-park"))
    # on the billing day (the 1st, so any day of the month is on or after it) a round
    # drafts last month's bills; a run for the same period then adds nothing
    cycle = json.loads(cli(stack, "billing", "tick", billing_day="1", billing_due_days="5"))
    assert cycle["bills"] >= 1
    bill_id, due = db.execute("SELECT bill_id, due_date FROM bills WHERE account_id = %s "
                              "AND period_start = %s", (office, start)).fetchone()
    assert due == end + timedelta(days=5)
    again = json.loads(cli(stack, "billing", "run", "--start", start.isoformat(), "--end",
                           end.isoformat(), "--site", site))
    assert (again["bills"], again["already"]) == ([], 1)
    db.execute("UPDATE bills SET state = 'issued' WHERE bill_id = %s", (bill_id,))
    out = tmp_path / "arrears.xlsx"
    assert "TOTAL row" in cli(stack, "billing", "arrears", "--format", "xlsx", "--output",
                              str(out))
    table = list(openpyxl.load_workbook(out).active.iter_rows(values_only=True))
    col = {name: i for i, name in enumerate(table[0])}
    [mine] = [r for r in table[1:] if r[col["bill_id"]] == bill_id]
    assert (mine[col["outstanding_fen"]], mine[col["outstanding"]]) == (30000, "300.00")
    [total] = [r for r in table[1:] if r[col["bill_id"]] == "TOTAL"]
    assert total[col["outstanding_fen"]] == sum(
        r[col["outstanding_fen"]] for r in table[1:] if r[col["bill_id"]] != "TOTAL")


def test_a_billing_run_killed_midway_and_started_again_bills_each_account_once(
        stack: Settings, db: psycopg.Connection) -> None:
    """A real `meterflow billing run` process is held on the fifth account (a row lock
    another connection holds), killed there (SIGKILL), and started again."""
    t = tag("KR")
    site, rooms = floor_with_rooms(db, t, ["30"] * 8)
    offices = [account(db, f"{t}-{i}", room, postpaid=True) for i, room in enumerate(rooms)]
    start, end = previous_month(datetime.now(SH).date())
    at = datetime(start.year, start.month, 9, tzinfo=SH)
    for i, office in enumerate(offices):
        db.execute("INSERT INTO ledger (entry_id, account_id, seq, at, kind, amount_fen, "
                   "balance_fen, meter_id, ref, detail) VALUES (%s, %s, 1, %s, 'charge', %s, "
                   "%s, NULL, %s, 'meter')", (f"{t}-e{i}", office, at, -(1000 + i),
                                              -(1000 + i), f"{t}-c{i}"))
    args = [sys.executable, "-m", "meterflow.cli", "billing", "run", "--start",
            start.isoformat(), "--end", end.isoformat(), "--site", site]
    with psycopg.connect(stack.dsn) as holder:
        holder.execute("SELECT 1 FROM accounts WHERE account_id = %s FOR UPDATE", (offices[4],))
        proc = subprocess.Popen(args, cwd=REPO, env=env_of(stack), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for(lambda: one(db, "SELECT count(*) FROM bills WHERE account_id LIKE %s",
                                 f"{t}-%") == 4, 60, "the run to reach the locked account")
            assert proc.poll() is None  # held on the fifth account
        finally:
            terminate(proc.pid, sig=signal.SIGKILL, grace_s=5)
            proc.wait()
        holder.rollback()
    assert one(db, "SELECT count(*) FROM bills WHERE account_id LIKE %s", f"{t}-%") == 4
    again = json.loads(cli(stack, *args[3:]))
    assert (len(again["bills"]), again["already"]) == (4, 4)
    billed = dict(db.execute("SELECT account_id, charges_fen FROM bills WHERE account_id "
                             "LIKE %s", (f"{t}-%",)).fetchall())
    assert billed == {office: 1000 + i for i, office in enumerate(offices)}
