"""Property billing through the operators' API: roles, batches, the tenant's view of the
apportionment arithmetic, bills moved along and audited, exports that open in openpyxl
with the right totals, and the printable bill in a real browser."""

from __future__ import annotations

import csv
import io
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import psycopg
import pytest

from contracts.money import yuan_text
from meterflow.settings import Settings
from meterflow.stack.process import terminate
from tests.integration.billing_support import SH, account, floor_with_rooms, previous_month, tag

from .conftest import API_PORT, ApiSession, start_api, wait_for

pytestmark = pytest.mark.integration


def ok(response: Any, *statuses: int) -> Any:
    assert response.status_code in statuses, (response.request.url, response.status_code,
                                              response.text)
    return response


def postpaid_floor(db: psycopg.Connection, t: str) -> tuple[str, list[str]]:
    """Three postpaid offices with a month of debts in the ledger (as the wallet posts
    them) and one earlier payment."""
    site, rooms = floor_with_rooms(db, t, ["120", "80", "60.5"])
    offices = [account(db, f"{t}-O{i}", room, postpaid=True) for i, room in enumerate(rooms)]
    start, _ = previous_month(datetime.now(SH).date())
    at = datetime(start.year, start.month, 10, 12, tzinfo=SH)
    for i, office in enumerate(offices):
        debt = 12345 * (i + 1)
        db.execute("INSERT INTO ledger (entry_id, account_id, seq, at, kind, amount_fen, "
                   "balance_fen, meter_id, ref, detail) VALUES (%s, %s, 1, %s, 'charge', %s, "
                   "%s, NULL, %s, 'meter')", (f"{t}-e{i}", office, at, -debt, -debt,
                                              f"{t}-c{i}"))
    return site, offices


def test_finance_runs_billing_operators_read_and_exports_add_up(
        api: ApiSession, db: psycopg.Connection) -> None:
    t = tag("AB")
    site, offices = postpaid_floor(db, t)
    start, end = previous_month(datetime.now(SH).date())
    period = {"start": start.isoformat(), "end": end.isoformat()}
    with api.client("operator") as operator:
        refused = operator.post("/bills/runs", json={**period, "site_id": site})
        assert refused.status_code == 403
        assert refused.json()["errors"][0]["field"] == "role"
    with api.client("finance") as fin:
        made = ok(fin.post("/bills/runs", json={**period, "site_id": site, "due_days": 10}),
                  201).json()
        assert len(made["bills"]) == 3 and made["already"] == 0
        assert ok(fin.post("/bills/runs", json={**period, "site_id": site}), 201).json()[
            "already"] == 3
        first = ok(fin.get("/bills", params={"account_id": offices[0]}), 200).json()["items"]
        [bill] = first
        assert (bill["charges_fen"], bill["amount_due"], bill["state"]) == (
            12345, "123.45", "draft")
        bad = fin.post(f"/bills/{bill['bill_id']}/issue")
        assert bad.status_code == 409 and bad.json()["errors"][0]["field"] == "state"
        confirmed = ok(fin.post(f"/bills/{bill['bill_id']}/confirm", json={
            "adjustments": [{"amount": "-0.45", "reason": "rounding goodwill"}]}), 200).json()
        assert (confirmed["state"], confirmed["charges_fen"]) == ("confirmed", 12300)
        issued = ok(fin.post(f"/bills/{bill['bill_id']}/issue"), 200).json()
        assert issued["state"] == "issued"
        shown = ok(fin.get(f"/bills/{bill['bill_id']}"), 200).json()
        assert sum(ln["amount_fen"] for ln in shown["lines"]) == shown["charges_fen"] == 12300
        assert [ln["kind"] for ln in shown["lines"]] == ["electricity", "adjustment"]
        no_reason = fin.post(f"/bills/{made['bills'][1]}/void", json={"reason": ""})
        assert no_reason.status_code == 422
        ok(fin.post(f"/bills/{made['bills'][1]}/void", json={"reason": "wrong tenant"}), 200)
        for bill_id in made["bills"][2:]:
            ok(fin.post(f"/bills/{bill_id}/confirm", json={}), 200)
            ok(fin.post(f"/bills/{bill_id}/issue"), 200)
        audited = db.execute("SELECT action FROM audit_log WHERE target = %s ORDER BY audit_id",
                             (f"bill:{bill['bill_id']}",)).fetchall()
        assert [a for (a,) in audited] == ["bill.confirm", "bill.issue"]
        # exports: every bill of the floor, and a TOTAL row that adds up
        xlsx = ok(fin.get("/bills", params={"format": "xlsx", "from": start.isoformat(),
                                            "to": start.isoformat()}), 200)
        sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
        assert sheet is not None
        table = list(sheet.iter_rows(values_only=True))
        header, body = table[0], table[1:]
        col = {name: i for i, name in enumerate(header)}
        mine = [r for r in body if str(r[col["account_id"]]).startswith(t)]
        assert sorted(r[col["charges_fen"]] for r in mine) == [12300, 24690, 37035]
        total = [r for r in body if r[col["bill_id"]] == "TOTAL"]
        assert len(total) == 1
        assert total[0][col["charges_fen"]] == sum(
            r[col["charges_fen"]] for r in body if r[col["bill_id"]] != "TOTAL")
        assert isinstance(total[0][col["charges_fen"]], int)
        assert total[0][col["charges"]] == yuan_text(total[0][col["charges_fen"]])
        arrears = ok(fin.get("/finance/arrears", params={"format": "xlsx"}), 200)
        rows = list(openpyxl.load_workbook(io.BytesIO(arrears.content)).active
                    .iter_rows(values_only=True))
        acol = {name: i for i, name in enumerate(rows[0])}
        owed = {r[acol["account_id"]]: r[acol["outstanding_fen"]] for r in rows[1:]
                if str(r[acol["account_id"]]).startswith(t)}
        assert owed == {offices[0]: 12300, offices[2]: 37035}
        [arrears_total] = [r for r in rows[1:] if r[acol["bill_id"]] == "TOTAL"]
        assert arrears_total[acol["outstanding_fen"]] == sum(
            r[acol["outstanding_fen"]] for r in rows[1:] if r[acol["bill_id"]] != "TOTAL")
        listed = ok(fin.get("/finance/arrears"), 200).json()
        assert listed["total_fen"] == arrears_total[acol["outstanding_fen"]]
        text = ok(fin.get("/finance/arrears", params={"format": "csv",
                                                      "account_id": offices[2]}), 200).text
        parsed = list(csv.DictReader(io.StringIO(text)))
        assert [(r["bill_id"], r["outstanding"]) for r in parsed][-1] == ("TOTAL", "370.35")
    with api.client("operator") as operator:  # operators read bills
        ok(operator.get(f"/bills/{bill['bill_id']}"), 200)
    with api.client("maintenance") as maintenance:  # no money for maintenance
        assert maintenance.get(f"/bills/{bill['bill_id']}").status_code == 403


def test_charge_items_batches_and_the_tenants_view_of_apportionment(
        api: ApiSession, db: psycopg.Connection) -> None:
    t = tag("CI")
    site, rooms = floor_with_rooms(db, t, ["50", "30", "20"])
    tenants = [account(db, f"{t}-T{i}", room) for i, room in enumerate(rooms)]
    master = account(db, f"{t}-common", None, postpaid=True, meter=f"{t}-LIFT")
    start, _ = previous_month(datetime.now(SH).date())
    item = {"site_id": site, "name": "Sanitation", "basis": "area", "amount": "0.35",
            "frequency": "monthly", "day": 1, "start_date": start.isoformat(),
            "end_date": start.isoformat(), "may_cut": False}
    with api.client("operator") as operator:
        assert operator.put(f"/charge-items/{t}-san", json=item).status_code == 403
    with api.client("finance") as fin:
        ok(fin.put(f"/charge-items/{t}-san", json=item), 201)
        bad = fin.put(f"/charge-items/{t}-bad", json={**item, "amount": 0.35})
        assert bad.status_code == 422 and "amount" in bad.text
        batch = ok(fin.post("/batches", json={"operation": "charge_item", "item_id": f"{t}-san",
                                              "account_ids": tenants}), 201).json()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = fin.get(f"/batches/{batch['batch_id']}").json()
            if state["status"] == "done":
                break
            time.sleep(0.2)
        assert state["status"] == "done", state
        ran = ok(fin.post(f"/charge-items/{t}-san/run"), 200).json()
        # (recorded now, or a moment ago by the API's own scheduler round)
        assert ran["recorded"] + ran["already"] == 3
        assert ok(fin.post(f"/charge-items/{t}-san/run"), 200).json()["recorded"] == 0
        shown = ok(fin.get(f"/charge-items/{t}-san"), 200).json()
        assert sorted(p["amount_fen"] for p in shown["postings"]) == [700, 1050, 1750]
        db.execute("INSERT INTO rated_lines (interval_id, line, meter_id, account_id, "
                   "tariff_id, start_ts, end_ts, band, step, units, amount_yuan) VALUES "
                   "(%s, 0, %s, %s, 'flat', %s, %s, NULL, 1, 100, 66.67)",
                   (f"{t}-i", f"{t}-LIFT", master, datetime(start.year, start.month, 2,
                                                             tzinfo=SH),
                    datetime(start.year, start.month, 20, tzinfo=SH)))
        group = {"site_id": site, "name": "Lift", "master_meter_id": f"{t}-LIFT",
                 "method": "equal", "start_date": start.isoformat(),
                 "members": [{"account_id": a} for a in tenants]}
        ok(fin.put(f"/apportionments/{t}-lift", json=group), 201)
        split = ok(fin.post(f"/apportionments/{t}-lift/runs",
                            json={"period": f"{start:%Y-%m}"}), 200).json()
        assert (split["total_fen"], split["shares"]) == (6667, 3)
        again = ok(fin.post(f"/apportionments/{t}-lift/runs",
                            json={"period": f"{start:%Y-%m}"}), 200).json()
        assert (again["total_fen"], again["new"]) == (6667, False)
    with api.client("viewer") as viewer:
        view = ok(viewer.get(f"/accounts/{tenants[0]}/apportionment"), 200).json()["items"]
        [mine] = view
        assert (mine["method"], mine["master_units"], mine["total_fen"], mine["amount_fen"]) \
            == ("equal", "100.000000", 6667, 2223)
        assert mine["arithmetic"] == "6667 fen x 1 / 3 ≈ 2222.3333 fen -> 2222 + 1 = 2223 fen"


def test_the_printable_bill_opens_in_a_real_browser(api: ApiSession, db: psycopg.Connection,
                                                    browser: Any) -> None:
    t = tag("PB")
    _, offices = postpaid_floor(db, t)
    start, end = previous_month(datetime.now(SH).date())
    with api.client("finance") as fin:
        made = ok(fin.post("/bills/runs", json={"start": start.isoformat(),
                                                "end": end.isoformat(),
                                                "account_ids": [offices[1]]}), 201).json()
    [bill_id] = made["bills"]
    page = browser.new_page(extra_http_headers={
        "Authorization": f"Bearer {api.tokens['finance']}"})
    try:
        page.goto(f"{api.url}/api/v1/bills/{bill_id}/print?lang=en")
        assert page.locator("#bill-id").inner_text() == bill_id
        assert page.locator("#amount-due").inner_text() == "246.90"
        assert page.locator("#lines tbody tr").count() == 1
        page.goto(f"{api.url}/api/v1/bills/{bill_id}/print")
        assert "应缴金额" in page.content()
        assert page.pdf().startswith(b"%PDF")  # the page prints
    finally:
        page.close()


def test_two_api_processes_run_the_scheduler_and_charge_each_period_once(
        stack: Settings, db: psycopg.Connection, tmp_path: Path) -> None:
    """Two `meterflow api` processes, each with its scheduler round every half second,
    and a monthly fee due for two months: each period is charged once, and stays so."""
    t = tag("TW")
    site, rooms = floor_with_rooms(db, t, ["25"] * 4)
    tenants = [account(db, f"{t}-{i}", room) for i, room in enumerate(rooms)]
    start, _ = previous_month(datetime.now(SH).date())
    db.execute("INSERT INTO charge_items (item_id, site_id, name, basis, amount_yuan, "
               "frequency, day, start_date) VALUES (%s, %s, 'Service fee', 'area', 1.2, "
               "'monthly', 1, %s)", (f"{t}-svc", site, start))
    db.execute("INSERT INTO charge_item_targets VALUES (%s, 'site', %s)", (f"{t}-svc", site))
    ports = (API_PORT + 1, API_PORT + 2)
    procs = [start_api(stack, tmp_path / f"api{i}.log", port=p, billing_period_s="0.5")
             for i, p in enumerate(ports)]
    try:
        def rounds() -> list[int]:
            found = []
            for port in ports:
                body = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5).json()
                assert body["status"] == "ok" and "last_error" not in body["billing"], body
                found.append(int(body["billing"]["rounds"]))
            return found

        def charged() -> int:
            return int(db.execute("SELECT count(*) FROM deductions WHERE source_id = %s",
                                  (f"{t}-svc",)).fetchone()[0])

        wait_for(lambda: charged() == 2 * len(tenants), 60, "both months charged")
        before = rounds()
        wait_for(lambda: all(a >= b + 3 for a, b in zip(rounds(), before, strict=True)), 60,
                 "three more rounds of each scheduler")
        assert charged() == 2 * len(tenants)
        amounts = db.execute("SELECT account_id, period, amount_fen FROM deductions WHERE "
                             "source_id = %s ORDER BY 1, 2", (f"{t}-svc",)).fetchall()
        assert {a for a, _, _ in amounts} == set(tenants)
        assert {f for _, _, f in amounts} == {3000}  # 25 m2 x 1.2 yuan
        assert len({(a, p) for a, p, _ in amounts}) == len(amounts)
    finally:
        for proc in procs:
            terminate(proc.pid, grace_s=20)
            proc.wait()
