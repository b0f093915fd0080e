"""The tenant page over the real stack: the access link opens one account and nothing
else (tampered, expired, revoked, guessed), a phone browser pays through the stand-in
gateway and sees the new balance, and a paid order reconnects a cut-off room."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaProducer

from connectors.dispatch.policy import RetryPolicy
from connectors.simulator.fleet import FleetThread
from contracts import topics
from meterflow.settings import Settings
from services.payments.store import record_payment
from services.tenant.links import create_link

from .conftest import wait_for
from .connectors_support import DispatcherThread, fleet_and_dispatcher, run_id
from .tenant_support import (
    Tenant,
    balance,
    count,
    link_for,
    new_account,
    pipeline,
    tenant,
    wait_balance,
)

pytestmark = pytest.mark.integration
__all__ = ["pipeline", "tenant"]  # module fixtures
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2, "locale": "zh-CN",
         "user_agent": "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 "
                       "(KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36"}


def test_a_link_opens_its_own_account_and_nothing_else(
        stack: Settings, db: psycopg.Connection, tenant: Tenant, tmp_path: Path) -> None:
    mine, other = new_account(db), new_account(db)
    made = tenant.cli(stack, "tenant", "link", "create", mine, "--label", "room 301",
                      "--json", "--qr", str(tmp_path / "qr.svg"))
    link = json.loads(made.stdout)
    assert link["url"] == f"{tenant.url}/t/{link['token']}"
    assert (tmp_path / "qr.svg").read_text().startswith("<?xml")
    other_token = link_for(db, other)
    token = link["token"]
    with tenant.http() as c:
        page = c.get(f"/t/{token}")
        assert page.status_code == 200 and mine in page.text and other not in page.text
        assert page.headers["cache-control"] == "no-store"
        assert other in c.get(f"/t/{other_token}").text
        expired = create_link(db, mine, timedelta(days=1), "tests",
                              now=datetime.now(UTC) - timedelta(days=2))[1]
        tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
        guesses = [tampered, expired, mine, other, link["link_id"], token.upper(),
                   token + "x", "t_" + "A" * 43]
        for guess in guesses:
            refused = c.get(f"/t/{guess}")
            assert refused.status_code == 404, guess
            assert mine not in refused.text and other not in refused.text
            assert 'id="invalid"' in refused.text
            paid = c.post(f"/t/{guess}/orders", data={"amount": "50", "gateway": "wechat"})
            assert paid.status_code == 404, guess
        # A form that names another account still pays into the link's own.
        c.post(f"/t/{token}/orders", data={"amount": "5", "gateway": "wechat",
                                           "account_id": other})
    assert count(db, "SELECT count(*) FROM payment_orders WHERE account_id = %s", other) == 0
    assert count(db, "SELECT count(*) FROM payment_orders WHERE account_id = %s", mine) == 1
    # Revoked by staff: refused from the next request on.
    tenant.cli(stack, "tenant", "link", "revoke", link["link_id"], "--by", "desk")
    with tenant.http() as c:
        assert c.get(f"/t/{token}").status_code == 404
    listed = tenant.cli(stack, "tenant", "link", "list", mine).stdout
    assert link["link_id"] in listed and "revoked" in listed
    assert token not in listed


def test_bad_amounts_are_refused_naming_the_field(
        stack: Settings, db: psycopg.Connection, tenant: Tenant) -> None:
    token = link_for(db, new_account(db))
    with tenant.http() as c:
        for amount in ("0", "-5", "1.234", "abc", "1e3", "50001"):
            answer = c.post(f"/t/{token}/orders", data={"amount": amount, "gateway": "wechat"})
            assert answer.status_code == 400, amount
            assert answer.json()["errors"][0]["field"] == "amount", amount
        answer = c.post(f"/t/{token}/orders", data={"amount": "5", "gateway": "paypal"})
        assert answer.status_code == 400 and answer.json()["errors"][0]["field"] == "gateway"


@pytest.mark.parametrize("gateway,lang", [("wechat", "zh"), ("alipay", "en")])
def test_a_phone_browser_pays_and_sees_the_new_balance(
        stack: Settings, db: psycopg.Connection, tenant: Tenant,
        pipeline: subprocess.Popen[bytes], browser: Any, gateway: str, lang: str) -> None:
    account = new_account(db)
    with psycopg.connect(stack.dsn, autocommit=True) as conn:
        record_payment(conn, account, "topup", 1000, f"{account}-first")
    wait_balance(db, account, 1000)
    token = link_for(db, account)
    context = browser.new_context(**PHONE)
    try:
        page = context.new_page()
        page.goto(f"{tenant.url}/t/{token}?lang={lang}")
        assert page.locator("#balance").inner_text() == "¥10.00"
        assert page.locator("#supply").inner_text() == ("正常供应" if lang == "zh" else "on")
        page.get_by_text("¥50", exact=True).click()
        page.get_by_text({"wechat": "微信支付", "alipay": "Alipay"}[gateway],
                         exact=True).click()
        page.locator("#pay").click()
        page.wait_for_url(f"{tenant.standins.url}/**")
        assert page.locator("#amount").inner_text() == "¥50.00"
        page.locator("#pay").click()  # the stand-in cashier's button
        page.wait_for_url(f"{tenant.url}/t/{token}**")
        page.locator("#balance").filter(has_text="¥60.00").wait_for(timeout=60_000)
        assert page.locator("#pending").count() == 0
        orders = page.locator("#orders").inner_text()
        assert "50.00" in orders and ("已支付" if lang == "zh" else "paid") in orders
    finally:
        context.close()
    assert count(db, "SELECT count(*) FROM payments WHERE account_id = %s AND kind = 'topup'",
                 account) == 2


# --- a cut-off room reconnected by a payment ---------------------------------------------

FAST = RetryPolicy(base_s=0.2, factor=2.0, cap_s=1.0, attempt_timeout_s=1.0, max_refusals=2)


@pytest.fixture()
def room(stack: Settings, db: psycopg.Connection
         ) -> Iterator[tuple[FleetThread, DispatcherThread]]:
    """One simulated MQTT meter behind its gateway, and the command dispatcher."""
    prefix = run_id()
    spec = {"seed": 11, "speed": 60, "prefix": prefix, "groups": [
        {"protocol": "mqtt", "count": 1, "profile": ["residential"]}]}
    fleet, dispatcher = fleet_and_dispatcher(stack, db, spec, prefix, FAST, 30.0)
    yield fleet, dispatcher
    dispatcher.stop()
    fleet.stop()


def late_readings(meter: str) -> list[bytes]:
    """Readings of two days ago: 5 kWh used."""
    start = datetime.now(UTC) - timedelta(days=2, hours=1)
    return [json.dumps({"meter_id": meter, "ts": (start + timedelta(minutes=15 * n)).isoformat(),
                        "value": value, "unit": "kWh", "source": "concentrator"}).encode()
            for n, value in enumerate(("100", "101", "105"))]


def test_a_paid_order_is_one_topup_and_reconnects_a_cut_off_room(
        stack: Settings, db: psycopg.Connection, tenant: Tenant,
        pipeline: subprocess.Popen[bytes], room: tuple[FleetThread, DispatcherThread]) -> None:
    sim = room[0].fleet
    [meter] = [m.meter_id for m in sim.meters]
    account = new_account(db, meter)
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all")
    with psycopg.connect(stack.dsn, autocommit=True) as conn:
        record_payment(conn, account, "topup", 300, f"{account}-first")
    wait_balance(db, account, 300)
    for value in late_readings(meter):
        producer.send(topics.RAW_READINGS, key=meter.encode(), value=value)
    producer.flush()
    producer.close()
    # 5 yuan used against 3: cut off, and the meter confirms.
    wait_for(lambda: (balance(db, account) or ())[1:] == ("disconnected", "cut_confirmed"), 90,
             "the room cut off and confirmed")
    assert not sim.meter(meter).supply_on

    order_no, _ = tenant.order(link_for(db, account), "50", "wechat")
    tenant.standins.wechat.pay(order_no)  # the gateway notifies MeterFlow
    wait_for(lambda: (balance(db, account) or ())[:3] == (4800, "connected", "connected"), 90,
             "the payment applied and the room reconnected")
    wait_for(lambda: sim.meter(meter).supply_on, 60, "the meter's relay closed")
    # The gateway's duplicates, five at once, change nothing.
    headers, body = tenant.standins.wechat.notification(order_no)
    answers: list[int] = []
    gate = threading.Barrier(5)

    def again() -> None:
        gate.wait()
        with tenant.http() as c:
            answers.append(c.post("/t/notify/wechat", content=body,
                                  headers=headers).status_code)

    threads = [threading.Thread(target=again) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert answers == [204] * 5
    wait_for(lambda: count(db, "SELECT count(*) FROM ledger WHERE account_id = %s AND ref = %s",
                           account, order_no) == 1, 30, "the top-up in the ledger")
    assert count(db, "SELECT count(*) FROM payments WHERE idempotency_key = %s", order_no) == 1
    assert balance(db, account)[0] == 4800  # type: ignore[index]
    [(entries,)] = db.execute("SELECT count(*) FROM ledger WHERE account_id = %s AND "
                              "ref = %s", (account, order_no)).fetchall()
    assert entries == 1


def test_staff_create_list_and_revoke_links_through_the_api(
        api: Any, db: psycopg.Connection, tenant: Tenant) -> None:
    account = new_account(db)
    with api.client("operator") as c:
        made = c.post(f"/accounts/{account}/tenant-links", json={"label": "room 301"})
        assert made.status_code == 201, made.text
        link = made.json()
        token = link["url"].rsplit("/", 1)[1]
        listed = c.get(f"/accounts/{account}/tenant-links").json()["items"]
        assert [i["link_id"] for i in listed] == [link["link_id"]]
        assert token not in json.dumps(listed)
    with api.client("viewer") as viewer:
        refused = viewer.post(f"/accounts/{account}/tenant-links", json={})
        assert refused.status_code == 403
    with tenant.http() as t:
        assert t.get(f"/t/{token}").status_code == 200
    with api.client("operator") as c:
        revoke = f"/accounts/{account}/tenant-links/{link['link_id']}/revoke"
        assert c.post(revoke).status_code == 204
        assert c.post(revoke).status_code == 404
    with tenant.http() as t:
        assert t.get(f"/t/{token}").status_code == 404
    actions = [a for (a,) in db.execute(
        "SELECT action FROM audit_log WHERE target IN (%s, %s) ORDER BY at",
        (f"account:{account}", f"tenant_link:{link['link_id']}")).fetchall()]
    assert actions == ["tenant_link.create", "tenant_link.revoke"]


def test_wechat_sign_in_binds_the_openid_and_wechat_pays_by_jsapi(
        stack: Settings, db: psycopg.Connection, tenant: Tenant) -> None:
    from connectors.gateways import wechat_protocol

    account = new_account(db)
    customer = f"C-{account}"
    db.execute("INSERT INTO customers (customer_id, name) VALUES (%s, 'Li')", (customer,))
    db.execute("UPDATE accounts SET customer_id = %s WHERE account_id = %s", (customer, account))
    token = link_for(db, account)
    in_wechat = {"User-Agent": "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 MicroMessenger/8.0.50"}
    with tenant.http() as c:
        page = c.get(f"/t/{token}", headers=in_wechat).text
        assert f"/t/{token}/wechat" in page and "支付宝" not in page  # WeChat only, in WeChat
        # Paying inside WeChat before signing in leads to the sign-in (H5 does not open there).
        first = c.post(f"/t/{token}/orders", data={"amount": "20", "gateway": "wechat"},
                       headers=in_wechat)
        assert first.status_code == 303 and first.headers["location"] == f"/t/{token}/wechat"
        back = c.get(f"/t/{token}/wechat", headers=in_wechat, follow_redirects=True)
        assert back.status_code == 200 and back.url.path == f"/t/{token}"
        assert "已绑定微信" in back.text
    [(openid, bound_account)] = db.execute(
        "SELECT openid, account_id FROM tenant_openids WHERE appid = %s AND account_id = %s",
        (tenant.standins.wechat.keys.appid, account)).fetchall()
    assert bound_account == account and openid.startswith("o")
    assert db.execute("SELECT wechat_openid FROM customers WHERE customer_id = %s",
                      (customer,)).fetchone() == (openid,)
    with tenant.http() as c:
        answer = c.post(f"/t/{token}/orders", data={"amount": "20", "gateway": "wechat"},
                        headers=in_wechat)
    assert answer.status_code == 200 and "getBrandWCPayRequest" in answer.text
    params = json.loads(answer.text.split('type="application/json">', 1)[1].split("</script>")[0])
    keys = tenant.standins.wechat.keys
    assert params["appId"] == keys.appid and params["package"].startswith("prepay_id=")
    assert wechat_protocol.verifies(keys.merchant_key.public_key(), params["paySign"],
                                    params["appId"], params["timeStamp"], params["nonceStr"],
                                    params["package"])
    [(order_no, channel, payer)] = db.execute(
        "SELECT order_no, channel, payer_openid FROM payment_orders WHERE account_id = %s",
        (account,)).fetchall()
    assert (channel, payer) == ("jsapi", openid)
    assert tenant.standins.wechat.keys.app_secret not in tenant.api_log.read_text()
    assert tenant.standins.wechat.orders[order_no].payer == openid


def test_the_page_lists_the_bills_still_owed_and_nothing_else(
        stack: Settings, db: psycopg.Connection, tenant: Tenant) -> None:
    account = new_account(db)
    db.execute("UPDATE accounts SET billing_mode = 'postpaid' WHERE account_id = %s", (account,))
    bills = [  # (id suffix, period start, period end, state, charges fen, paid fen)
        ("aug", "2026-08-01", "2026-09-01", "paid", 12000, 12000),
        ("sep", "2026-09-01", "2026-10-01", "overdue", 23456, 10000),
        ("oct", "2026-10-01", "2026-11-01", "void", 5000, 0),
        ("nov", "2026-11-01", "2026-12-01", "issued", 34500, 0),
        ("dec", "2026-12-01", "2027-01-01", "draft", 9900, 0),
    ]
    for suffix, start, end, state, charges, paid in bills:
        db.execute(
            "INSERT INTO bills (bill_id, account_id, period_start, period_end, zone, due_date, "
            "state, opening_fen, charges_fen, payments_fen, closing_fen, paid_fen, void_reason) "
            "VALUES (%s, %s, %s, %s, 'Asia/Shanghai', %s::date + 14, %s, 0, %s, 0, -%s, %s, %s)",
            (f"{account}-{suffix}", account, start, end, end, state, charges, charges, paid,
             "entered twice" if state == "void" else ""))
    token = link_for(db, account)
    with tenant.http() as c:
        zh = c.get(f"/t/{token}").text
        en = c.get(f"/t/{token}", params={"lang": "en"}).text
    owed = zh[zh.index('id="bills"'):]
    owed = owed[:owed.index("</section>")]
    assert f'data-bill="{account}-sep"' in owed and f'data-bill="{account}-nov"' in owed
    for settled in ("aug", "oct", "dec"):
        assert f'data-bill="{account}-{settled}"' not in owed, settled
    # Oldest first; what is still owed (134.56 of 234.56), the last day, the due date.
    assert owed.index(f"{account}-sep") < owed.index(f"{account}-nov")
    assert "2026-09-01 – 2026-09-30 · ¥134.56 · 缴费截止 2026-10-15 · <strong>已逾期" in owed
    assert "2026-11-01 – 2026-11-30 · ¥345.00 · 缴费截止 2026-12-15</li>" in owed
    assert "· due 2026-10-15 · <strong>overdue</strong>" in en
