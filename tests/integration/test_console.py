"""The web console in a real headless Chromium against the real stack: `meterflow api`
(which serves the console), `meterflow worker`, `meterflow relay`, `meterflow dispatch`,
and a meter on MQTT that applies every command it receives and acknowledges it.

Screenshots of the main pages are written to docs/console/ by these tests (docs/console.md
shows them)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest
from kafka import KafkaProducer
from openpyxl import load_workbook
from playwright.sync_api import expect

from contracts import topics
from meterflow.api import sessions
from meterflow.api.tokens import Actor
from meterflow.broker.sync import wait_applied
from meterflow.settings import Settings
from meterflow.stack.process import terminate
from services.devices import credentials

from .api_support import tariff_text, uid
from .conftest import REPO, ApiSession, env_of, start_worker, wait_for
from .console_support import PASSWORD, Site, accessible, build_site, open_account, sign_in

pytestmark = pytest.mark.integration
SHOTS = REPO / "docs" / "console"
TOU = REPO / "pipeline" / "billing" / "examples" / "gd-commercial-tou.yaml"
TIMEOUT_MS = 90_000


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


@pytest.fixture(scope="module")
def site(api: ApiSession, stack: Settings) -> Site:
    return build_site(api, stack)


@pytest.fixture(scope="module")
def pipeline(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The worker, the payment relay and the command dispatcher."""
    logs = tmp_path_factory.mktemp("console-pipeline")
    worker = start_worker(stack, logs / "worker.log")
    procs = []
    for name in ("relay", "dispatch"):
        with open(logs / f"{name}.log", "wb") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "meterflow.cli", name], env=env_of(stack), stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO))
    yield
    for proc in [*procs, worker]:
        terminate(proc.pid, grace_s=15)
    print("\n".join((logs / "worker.log").read_text(errors="replace").splitlines()[-40:]))


class Meter:
    """An MQTT meter: applies every command and acknowledges it."""

    def __init__(self, stack: Settings, db: psycopg.Connection, meter_id: str) -> None:
        db.execute("INSERT INTO meters (meter_id, commodity, protocol) VALUES "
                   "(%s, 'electricity', 'mqtt') ON CONFLICT DO NOTHING", (meter_id,))
        with db.transaction():
            password = credentials.create(db, credentials.Device("meter", meter_id),
                                          "tests").password
        assert wait_applied(db) is not None
        self.meter_id = meter_id
        self.applied: list[str] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=meter_id,
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(meter_id, password)
        self.client.on_message = self._command
        self.client.on_connect = lambda c, *_: c.subscribe(f"meters/{meter_id}/commands", qos=1)
        self.client.connect(stack.mqtt_host, stack.mqtt_port)
        self.client.loop_start()

    def _command(self, _c: Any, _u: Any, message: Any) -> None:
        command = json.loads(message.payload)
        self.applied.append(command["action"])
        self.client.publish(f"meters/{self.meter_id}/acks", json.dumps({
            "command_id": command["command_id"], "status": "applied",
            "detail": f"{command['action']} done"}), qos=1)

    def read(self, stack: Settings, values: list[str]) -> None:
        """Readings a quarter of an hour apart, ending now."""
        producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all")
        end = datetime.now(UTC) - timedelta(minutes=1)
        for n, value in enumerate(values):
            at = end - timedelta(minutes=15 * (len(values) - 1 - n))
            producer.send(topics.RAW_READINGS, key=self.meter_id.encode(), value=json.dumps({
                "meter_id": self.meter_id, "ts": at.isoformat(), "value": value,
                "unit": "kWh", "source": "tests"}).encode())
        producer.flush()
        producer.close()

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture(scope="module")
def cut_room(api: ApiSession, stack: Settings, db: psycopg.Connection, site: Site,
             pipeline: None) -> Iterator[tuple[str, Meter]]:
    """Room 101: 3 yuan, then 5 kWh at 1 yuan: the wallet cuts it and the meter confirms."""
    meter = Meter(stack, db, uid("M101").replace("-", ""))
    account = open_account(api, site, "101", meter.meter_id, topup="3")
    wait_for(lambda: db.execute("SELECT balance_fen FROM balances WHERE account_id = %s",
                                (account,)).fetchone() == (300,), 90, "the first top-up")
    meter.read(stack, ["100", "101", "105"])
    wait_for(lambda: db.execute("SELECT supply_state FROM balances WHERE account_id = %s",
                                (account,)).fetchone() == ("cut_confirmed",), 90,
             "the cut confirmed by the meter")
    yield account, meter
    meter.stop()


def test_sign_in_find_the_room_in_alarm_top_it_up_and_see_it_reconnect(
        browser: Any, api: ApiSession, site: Site, cut_room: tuple[str, Meter],
        db: psycopg.Connection) -> None:
    account, meter = cut_room
    page = sign_in(browser, api, site.users["operator"])
    page.set_default_timeout(TIMEOUT_MS)
    page.select_option("#f-site", site.site)
    tile = page.locator(f"a.tile[data-room='{site.rooms['101']}']")
    tile.wait_for()
    assert "disconnected" in (tile.get_attribute("class") or "")
    page.select_option("#f-state", "alarm")  # the filter keeps it, drops the funded rooms
    assert page.locator("a.tile").count() == 1
    accessible(page)
    shot(page, "rooms")
    tile.click()
    page.wait_for_url(f"**/console/rooms/{site.rooms['101']}")
    expect(page.locator("#f-balance")).to_have_text("¥-2.00", timeout=TIMEOUT_MS)
    page.evaluate("window.notReloaded = true")
    accessible(page)

    # Keyboard only: type the amount, Enter submits, Enter confirms in the dialog.
    page.focus("#topup-amount")
    page.keyboard.type("50")
    page.keyboard.press("Enter")
    dialog = page.locator("#confirm")
    dialog.wait_for(state="visible")
    assert page.evaluate("document.activeElement.id") == "confirm-ok"
    page.keyboard.press("Enter")

    page.locator("#outcomes li[data-status='applied']").wait_for()
    expect(page.locator("#f-balance")).to_have_text("¥48.00", timeout=TIMEOUT_MS)
    reconnect = page.locator("#commands tr", has_text="Reconnect").locator(
        "span.status.applied")
    reconnect.wait_for()
    assert page.evaluate("window.notReloaded") is True  # it all came without a reload
    assert meter.applied == ["disconnect", "reconnect"]
    shot(page, "room")

    # An operator's own disconnect: its outcome goes pending, sent, applied on the page.
    page.click("#disconnect")
    page.click("#confirm-ok")
    page.locator("#outcomes li[data-status='applied']", has_text="Disconnect").wait_for()
    operator_cut = page.locator("#commands tr", has_text="operator").filter(
        has_text="Disconnect").locator("span.status.applied")
    operator_cut.wait_for()  # the commands table shows it too, with its acknowledgement
    page.click("#reconnect")
    page.click("#confirm-ok")
    page.locator("#outcomes li[data-status='applied']", has_text="Reconnect").wait_for()
    assert meter.applied == ["disconnect", "reconnect", "disconnect", "reconnect"]
    assert page.evaluate("window.notReloaded") is True
    paid = db.execute("SELECT operator, amount_fen FROM payments WHERE account_id = %s "
                      "AND kind = 'topup' ORDER BY created_at", (account,)).fetchall()
    assert paid[-1] == (site.users["operator"], 5000)
    audited = db.execute("SELECT user_name, role FROM audit_log WHERE action = "
                         "'payment.topup' AND target = %s ORDER BY audit_id DESC LIMIT 1",
                         (f"account:{account}",)).fetchone()
    assert audited == (site.users["operator"], "operator")
    page.context.close()


def test_thresholds_keep_supply_refund_and_tariff_from_a_room(
        browser: Any, api: ApiSession, site: Site, db: psycopg.Connection,
        pipeline: None) -> None:
    account = open_account(api, site, "103", uid("M103"), topup="10")
    wait_for(lambda: db.execute("SELECT balance_fen FROM balances WHERE account_id = %s",
                                (account,)).fetchone() == (1000,), 90, "the top-up applied")
    page = sign_in(browser, api, site.users["admin"])
    page.goto(f"{api.url}/console/rooms/{site.rooms['103']}")
    expect(page.locator("#f-balance")).to_have_text("¥10.00", timeout=TIMEOUT_MS)

    page.fill("#th-1", "40")
    page.fill("#th-2", "25")
    page.fill("#th-3", "12")
    page.click("#thresholds-submit")
    page.click("#confirm-ok")
    expect(page.locator("#f-thresholds")).to_have_text("¥40.00 / ¥25.00 / ¥12.00",
                                                        timeout=TIMEOUT_MS)
    page.click("#keep-on")
    page.click("#confirm-ok")
    expect(page.locator("#f-supply")).to_have_text("Connected · Keep supply", timeout=TIMEOUT_MS)
    page.click("#keep-off")
    page.click("#confirm-ok")
    expect(page.locator("#f-supply")).to_have_text("Connected", timeout=TIMEOUT_MS)

    page.fill("#refund-amount", "1.5")
    page.click("#refund-submit")
    page.click("#confirm-ok")
    page.locator("#outcomes li[data-status='applied']", has_text="Refund ¥1.50").wait_for()
    expect(page.locator("#f-balance")).to_have_text("¥8.50", timeout=TIMEOUT_MS)
    page.fill("#refund-amount", "100")  # more than there is: the API says why
    page.click("#refund-submit")
    page.click("#confirm-ok")
    page.locator("#outcomes li[role=alert]", has_text="amount").wait_for()

    page.select_option("#tariff-id", site.tariff)
    page.click("#tariff-submit")
    page.click("#confirm-ok")
    page.locator("#outcomes li", has_text=f"Change tariff {site.tariff}: saved").wait_for()
    actions = [a for (a,) in db.execute(
        "SELECT action FROM audit_log WHERE user_name = %s AND target LIKE %s "
        "AND action NOT IN ('account.open', 'payment.topup') ORDER BY audit_id",
        (site.users["admin"], f"%{account}%")).fetchall()]
    assert actions == ["account.update", "control.keep_supply", "control.keep_supply",
                       "payment.refund"]
    page.context.close()


def test_open_an_account_from_a_saved_draft(browser: Any, api: ApiSession, site: Site) -> None:
    page = sign_in(browser, api, site.users["operator"])
    page.goto(f"{api.url}/console/open")
    accessible(page)
    account, meter = uid("DRAFT"), uid("DM")
    page.fill("#o-account", account)
    page.fill("#o-name", "Room 102")
    page.fill("#o-room", site.rooms["102"])
    page.fill("#m-id-1", meter)
    page.select_option("#o-tariff-electricity", site.tariff)
    page.fill("#o-topup", "20")
    page.fill("#o-draft-title", f"draft {account}")
    page.click("#save-draft")
    page.locator("#open-result", has_text="saved").wait_for()

    page.reload()  # later: the draft is one click away
    page.locator("button.open-draft", has_text=f"draft {account}").click()
    page.locator("#open-result", has_text="opened").wait_for()
    assert page.input_value("#o-account") == account
    assert page.input_value("#m-id-1") == meter
    assert page.input_value("#o-topup") == "20"
    shot(page, "open")
    page.click("#open-submit")
    page.locator("#open-result", has_text=f"{account} is open").wait_for()
    page.locator("#open-result", has_text="¥20.00").wait_for()
    with api.client("admin") as c:
        opened = c.get(f"/accounts/{account}").json()
        assert opened["room_id"] == site.rooms["102"]
        assert [m["meter_id"] for m in opened["meters"]] == [meter]
        drafts = c.get("/account-drafts").json()["items"]
        assert f"draft {account}" not in [d["title"] for d in drafts]  # used up
    page.context.close()


def test_csv_import_shows_the_bad_line_and_opens_nothing(browser: Any, api: ApiSession,
                                                         site: Site, tmp_path: Path) -> None:
    good, bad = uid("CSVA"), uid("CSVB")
    csv = tmp_path / "floor.csv"
    csv.write_text("account_id,name,room_id,meters,tariffs,level1,level2,level3\n"
                   f"{good},A,{site.rooms['201']},{good}-E:electricity:mqtt,{site.tariff},30,20,10\n"
                   f"{bad},B,{site.rooms['202']},{bad}-E:electricity:mqtt,{site.tariff},30,20,x\n")
    page = sign_in(browser, api, site.users["operator"], locale="zh-CN")
    page.goto(f"{api.url}/console/open")
    page.set_input_files("#import-file", str(csv))
    page.click("#import-submit")
    error = page.locator("#import-result ul.errors li")
    error.first.wait_for()
    assert error.count() == 1
    assert error.first.inner_text().startswith("row 3.thresholds")
    assert "未开户" in page.inner_text("#import-result")
    with api.client("admin") as c:
        assert c.get(f"/accounts/{good}").status_code == 404  # all or nothing
    page.context.close()


def test_a_batch_on_a_floor_runs_to_the_end(browser: Any, api: ApiSession, site: Site) -> None:
    accounts = [open_account(api, site, room, uid("BM")) for room in ("201", "202")]
    page = sign_in(browser, api, site.users["operator"])
    page.goto(f"{api.url}/console/batches")
    accessible(page)
    page.select_option("#b-operation", "topup")
    page.select_option("#b-site", site.site)
    page.select_option("#b-building", site.building)
    page.select_option("#b-floor", site.floors[2])
    page.locator("#b-count", has_text="2 rooms picked, 2 accounts").wait_for()
    page.fill("#b-amount", "5")
    page.click("#batch-submit")
    page.click("#confirm-ok")
    page.locator("#batch-status[data-status='done']").wait_for(timeout=TIMEOUT_MS)
    assert "2 done, 0 failed" in page.inner_text("#batch-status")
    assert page.evaluate("document.querySelector('#batch-progress').value") == 2
    shot(page, "batches")
    with api.client("admin") as c:
        for account in accounts:
            paid = c.get(f"/payments?account_id={account}").json()["items"]
            assert [p["amount"] for p in paid] == ["5.00"]

    # The same floor tomorrow: scheduled, then cancelled before it runs.
    page.select_option("#b-operation", "disconnect")
    page.fill("#b-reason", "maintenance tomorrow")
    page.fill("#b-run-at", (datetime.now(UTC) + timedelta(days=1, hours=8)).strftime(
        "%Y-%m-%dT%H:%M"))
    page.click("#batch-submit")
    page.click("#confirm-ok")
    page.locator("#batch-status[data-status='scheduled']").wait_for()
    page.click("#batch-cancel")
    page.click("#confirm-ok")
    page.locator("#batch-status[data-status='cancelled']").wait_for()
    assert "0 done, 0 failed, 2 pending of 2" in page.inner_text("#batch-status")
    page.context.close()


def test_export_the_income_report_and_open_it(browser: Any, api: ApiSession, site: Site,
                                              tmp_path: Path) -> None:
    account = open_account(api, site, "103", uid("MF"), topup="12.34")
    page = sign_in(browser, api, site.users["finance"])
    page.goto(f"{api.url}/console/finance")
    page.select_option("#i-period", "month")
    page.fill("#i-account", account)
    page.click("#income-show")
    page.locator("#income-table table").wait_for()
    accessible(page)
    shot(page, "finance")
    with page.expect_download() as download:
        page.click("#income-exports a.export-xlsx")
    path = tmp_path / "income.xlsx"
    download.value.save_as(path)
    sheet = load_workbook(path).active
    assert sheet is not None
    header = [cell.value for cell in sheet[1]]
    assert header[:4] == ["bucket", "payments", "topups", "topups_fen"]
    month = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")  # the default zone
    assert all(not isinstance(v, float) for row in sheet.iter_rows(values_only=True)
               for v in row)
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert [(r[0], r[2], r[3]) for r in rows] == [(month, "12.34", 1234)]  # text and fen
    page.context.close()


def test_maintenance_sees_no_top_up_and_the_api_refuses_it(browser: Any, api: ApiSession,
                                                           site: Site) -> None:
    account = open_account(api, site, "102", uid("MM"))
    page = sign_in(browser, api, site.users["maintenance"])
    page.goto(f"{api.url}/console/rooms/{site.rooms['102']}")
    page.locator("#f-account").wait_for()
    assert page.locator("#topup-form").count() == 0
    assert page.locator("#refund-form").count() == 0
    assert page.locator("#disconnect").count() == 1  # control is theirs
    assert page.locator("nav a[href='/console/finance']").count() == 0
    answer = page.evaluate("""async (account) => {
        const csrf = JSON.parse(document.getElementById('mf-context').textContent).csrf;
        const r = await fetch('/api/v1/topups', {method: 'POST', headers: {
            'Content-Type': 'application/json', 'X-CSRF-Token': csrf,
            'Idempotency-Key': 'maintenance-tries'},
            body: JSON.stringify({account_id: account, amount: '10'})});
        return [r.status, await r.json()];
    }""", account)
    assert answer[0] == 403
    assert answer[1]["errors"][0]["field"] == "role"
    page.goto(f"{api.url}/console/finance")
    assert page.locator("main [role=alert]").count() == 1  # the page says no, shows nothing
    page.context.close()


def test_session_cookie_csrf_sign_out_and_tokens(browser: Any, api: ApiSession,
                                                 site: Site) -> None:
    page = sign_in(browser, api, site.users["operator"])
    cookie = next(c for c in page.context.cookies() if c["name"] == "mf_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    jar = {"mf_session": cookie["value"]}
    with httpx.Client(base_url=f"{api.url}/api/v1", cookies=jar) as http:
        assert http.get("/me").json()["user"] == site.users["operator"]
        refused = http.post("/topups", json={"account_id": "x", "amount": "1"},
                            headers={"Idempotency-Key": "no-csrf"})
        assert refused.status_code == 403
        assert refused.json()["errors"][0]["field"] == "X-CSRF-Token"
    page.click("header button[type=submit]")  # sign out
    page.wait_for_url("**/console/login")
    with httpx.Client(base_url=f"{api.url}/api/v1", cookies=jar) as http:
        assert http.get("/me").status_code == 401  # the session ended on the server
    with api.client("operator") as c:
        assert c.get("/me").status_code == 200  # tokens keep working for scripts
    page.context.close()


def test_a_wrong_password_is_refused_and_audited(browser: Any, api: ApiSession, site: Site,
                                                 db: psycopg.Connection) -> None:
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.goto(f"{api.url}/console/login")
    accessible(page)
    # Keyboard only: the name field has focus, Tab moves to the password, Enter submits.
    assert page.evaluate("document.activeElement.id") == "username"
    page.keyboard.type(site.users["finance"])
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD + "!")
    page.keyboard.press("Enter")
    page.locator("#signin-error").wait_for()
    assert page.inner_text("#signin-error") == "Wrong user name or password."
    assert "/console/login" in page.url
    reason = db.execute("SELECT after->>'reason' FROM audit_log WHERE action = 'auth.failed' "
                        "AND user_name = %s ORDER BY audit_id DESC LIMIT 1",
                        (site.users["finance"],)).fetchone()
    assert reason == ("wrong password",)
    assert not any(c["name"] == "mf_session" for c in context.cookies())
    context.close()


@pytest.mark.parametrize("locale, heading", [("en-US", "Rooms"), ("zh-CN", "房间监控")])
def test_every_page_renders_in_both_languages(browser: Any, api: ApiSession, site: Site,
                                              locale: str, heading: str) -> None:
    page = sign_in(browser, api, site.users["admin"], locale=locale)
    assert page.inner_text("h1") == heading
    for screen in ("rooms", "open", "tariffs", "batches", "finance", "alarms", "users",
                   "audit"):
        page.goto(f"{api.url}/console/{screen}")
        page.wait_for_load_state("networkidle")
        assert page.locator("main [role=alert]").count() == 0, screen
        accessible(page)
        if locale == "zh-CN" and screen in ("alarms", "audit", "users"):
            shot(page, screen)
    page.click("a[hreflang='en']" if locale == "zh-CN" else "a[hreflang='zh-CN']")
    page.wait_for_load_state("networkidle")
    assert page.inner_text("h1") == ("Audit log" if locale == "zh-CN" else "审计日志")

    # A tablet held upright: the grid and a room's page fit without sideways scrolling.
    page.set_viewport_size({"width": 768, "height": 1024})
    for path in ("/console/rooms", f"/console/rooms/{site.rooms['102']}"):
        page.goto(f"{api.url}{path}")
        page.wait_for_load_state("networkidle")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
    page.context.close()


def test_a_tariff_upload_shows_the_error_at_its_line_and_previews_a_cost(
        browser: Any, api: ApiSession, site: Site) -> None:
    page = sign_in(browser, api, site.users["admin"])
    page.goto(f"{api.url}/console/tariffs")
    bad = ("id: broken\nname: Broken\ncommodity: electricity\nunit: kWh\ncurrency: CNY\n"
           "timezone: Asia/Shanghai\nbands:\n  peak: [\"08:00-20:00\"]\n"
           "  valley: [\"20:00-08:00\"]\nprices: {peak: 1.2, valley: abc}\n")
    page.fill("#tariff-text-in", bad)
    page.click("#upload-submit")
    page.locator("#upload-result .bad-line").wait_for()
    assert "prices: {peak: 1.2, valley: abc}" in page.inner_text("#upload-result .bad-line")
    assert "line 10" in page.inner_text("#upload-result ul.errors")

    tou = uid("tou")
    page.fill("#tariff-text-in", tariff_text(tou, TOU))
    page.click("#upload-submit")
    page.locator("#upload-result", has_text=f"Tariff {tou} valid from 2021-10-01 stored").wait_for()
    page.locator("#tariff-list button", has_text=tou).click()
    expect(page.locator("#clock path")).to_have_count(6)  # the six spans of the base bands
    assert "Peak: 10:00-12:00, 14:00-19:00" in page.inner_text("#clock-legend")
    # 10 kWh over 09:00-11:00 Beijing time: 5 flat at 0.6 and 5 peak at 1.02 = 8.10.
    page.fill("#pv-start", "2026-03-02T09:00")
    page.fill("#pv-end", "2026-03-02T11:00")
    page.fill("#pv-units", "10")
    page.click("#preview-submit")
    page.locator("#preview-result .cost", has_text="¥8.10").wait_for()
    accessible(page)
    shot(page, "tariffs")
    page.context.close()


def test_a_session_ends_after_its_idle_time(api: ApiSession, site: Site,
                                             db: psycopg.Connection) -> None:
    actor = sessions.check_password(db, site.users["finance"], PASSWORD)
    assert isinstance(actor, Actor)
    made = sessions.start(db, actor, "192.0.2.1")
    jar = {"mf_session": made.cookie}
    with httpx.Client(base_url=f"{api.url}/api/v1", cookies=jar) as http:
        assert http.get("/me").status_code == 200
        # Idle longer than METERFLOW_CONSOLE_IDLE_TIMEOUT_S (1800 s by default).
        db.execute("UPDATE console_sessions SET last_seen_at = now() - interval '31 minutes' "
                   "WHERE session_sha256 = %s", (sessions.session_hash(made.cookie),))
        answer = http.get("/me")
        assert answer.status_code == 401
        assert answer.json()["errors"][0]["field"] == "session"
    assert sessions.resume(db, made.cookie, sessions.SessionPolicy(idle_s=86_400)) is not None


def test_failed_sign_ins_are_throttled_per_address(api: ApiSession, site: Site,
                                                   db: psycopg.Connection) -> None:
    """The API's throttle counts password failures as it counts bad tokens; this client
    speaks for an address of its own (the test API trusts X-Forwarded-For from itself)."""
    address = f"198.51.100.{uuid.uuid4().int % 200 + 1}"
    with httpx.Client(base_url=api.url, headers={"X-Forwarded-For": address}) as http:
        statuses = []
        for _ in range(11):
            form = http.get("/console/login")
            token = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert token is not None
            answer = http.post("/console/login", data={
                "username": site.users["admin"], "password": "not the password",
                "csrf": token.group(1), "next": "/console/rooms"})
            statuses.append(answer.status_code)
    assert statuses == [401] * 10 + [429]
    blocked = db.execute("SELECT count(*) FROM audit_log WHERE action = 'auth.throttled' "
                         "AND target = %s", (f"address:{address}",)).fetchone()
    assert blocked == (1,)
    db.execute("DELETE FROM auth_throttle WHERE key = %s", (site.users["admin"],))


def test_a_sign_in_form_without_its_csrf_token_is_refused(api: ApiSession, site: Site) -> None:
    with httpx.Client(base_url=api.url) as http:
        answer = http.post("/console/login", data={
            "username": site.users["admin"], "password": PASSWORD, "csrf": "forged"})
    assert answer.status_code == 403
    assert "mf_session" not in answer.cookies


def test_an_admin_makes_a_user_and_disables_them(browser: Any, api: ApiSession,
                                                 site: Site) -> None:
    name = uid("clerk")
    page = sign_in(browser, api, site.users["admin"])
    page.goto(f"{api.url}/console/users")
    page.fill("#u-name", name)
    page.select_option("#u-role", "viewer")
    page.fill("#u-sites", site.site)
    page.click("#user-submit")
    page.locator("#user-result", has_text=f"User {name} created").wait_for()
    row = page.locator("#user-list tr", has_text=name)
    expect(row).to_contain_text(site.site)
    row.get_by_role("button", name=f"Disable {name}").click()
    page.click("#confirm-ok")
    expect(page.locator("#user-list tr", has_text=name)).to_contain_text("disabled")
    with api.client("admin") as c:
        user = next(u for u in c.get("/users").json()["items"] if u["name"] == name)
        assert user["disabled"] is True and user["role"] == "viewer"
    page.context.close()
