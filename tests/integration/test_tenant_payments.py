"""Online payment over the real stack with the stand-in gateways: an order stored before
the payment, a verified notification applied once (also sent five times at once), bad
notifications refused and never applied, the query settling an order whose notification
never came, a refund round trip, the daily bill check (docs/tenant.md)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
import pytest

from connectors.gateways import wechat_protocol
from connectors.gateways.standin_keys import new_key
from meterflow.settings import Settings
from meterflow.stack.process import terminate

from .conftest import PORT_BASE, REPO, env_of, wait_for
from .tenant_support import (
    SETTLE_HEALTH_PORTS,
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


def payments_of(db: psycopg.Connection, key: str) -> int:
    return count(db, "SELECT count(*) FROM payments WHERE idempotency_key = %s", key)


def outcomes(db: psycopg.Connection, order_no: str) -> list[str]:
    return [o for (o,) in db.execute("SELECT outcome FROM gateway_notifications WHERE "
                                     "order_no = %s ORDER BY id", (order_no,)).fetchall()]


def send_wechat(tenant: Tenant, headers: dict[str, str], body: bytes) -> httpx.Response:
    with tenant.http() as c:
        return c.post("/t/notify/wechat", content=body, headers=headers)


def test_the_order_is_stored_before_the_payment_starts(
        stack: Settings, db: psycopg.Connection, tenant: Tenant) -> None:
    account = new_account(db)
    order_no, location = tenant.order(link_for(db, account), "50", "wechat")
    assert location.startswith(tenant.standins.url + "/standin/wechat/h5?prepay_id=")
    row = db.execute("SELECT account_id, amount_fen, gateway, channel, state, merchant_id, "
                     "app_id FROM payment_orders WHERE order_no = %s", (order_no,)).fetchone()
    keys = tenant.standins.wechat.keys
    assert row == (account, 5000, "wechat", "h5", "created", keys.mchid, keys.appid)
    assert tenant.standins.wechat.orders[order_no].amount_fen == 5000
    assert tenant.standins.wechat.refused_requests == []  # every request verified


def test_five_identical_notifications_sent_at_once_apply_once(
        stack: Settings, db: psycopg.Connection, tenant: Tenant) -> None:
    account = new_account(db)
    order_no, _ = tenant.order(link_for(db, account), "88.80", "wechat")
    tenant.standins.wechat.pay(order_no, notify=False)
    headers, body = tenant.standins.wechat.notification(order_no)
    start = threading.Barrier(5)
    answers: list[int] = []

    def deliver() -> None:
        start.wait()
        answers.append(send_wechat(tenant, headers, body).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert answers == [204] * 5
    assert payments_of(db, order_no) == 1
    [(payment_id, amount, kind)] = db.execute(
        "SELECT payment_id, amount_fen, kind FROM payments WHERE idempotency_key = %s",
        (order_no,)).fetchall()
    assert (amount, kind) == (8880, "topup")
    assert count(db, "SELECT count(*) FROM outbox WHERE payload->>'payment_id' = %s",
                 payment_id) == 1
    assert sorted(outcomes(db, order_no)) == ["applied"] + ["replayed"] * 4
    assert db.execute("SELECT state, payment_id, settled_by FROM payment_orders WHERE "
                      "order_no = %s", (order_no,)).fetchone() == (
        "paid", payment_id, "notification")


def _forged(tenant: Tenant, order_no: str) -> dict[str, tuple[dict[str, str], bytes]]:
    """Each way a WeChat notification must be refused, built from a real one."""
    standin = tenant.standins.wechat
    headers, body = standin.notification(order_no)
    tampered = body.replace("支付成功".encode(), "支付成功!".encode())
    assert tampered != body
    wrong = dict(headers)
    wrong["Wechatpay-Signature"] = wechat_protocol.sign(
        new_key(), headers["Wechatpay-Timestamp"], headers["Wechatpay-Nonce"], body.decode())
    old = standin.notification(order_no, at=datetime.now(UTC) - timedelta(minutes=6))
    resource = standin.transaction(standin.orders[order_no])
    resource["amount"] = {**resource["amount"], "total": resource["amount"]["total"] - 1}
    return {"tampered body": (headers, tampered), "wrong signature": (wrong, body),
            "old timestamp": old, "amount differs": standin.notification(
                order_no, resource=resource),
            "unknown serial": ({**headers, "Wechatpay-Serial": "PUB_KEY_ID_0000"}, body)}


def test_bad_wechat_notifications_are_refused_kept_and_never_applied(
        stack: Settings, db: psycopg.Connection, tenant: Tenant) -> None:
    account = new_account(db)
    order_no, _ = tenant.order(link_for(db, account), "20", "wechat")
    tenant.standins.wechat.pay(order_no, notify=False)
    for what, (headers, body) in _forged(tenant, order_no).items():
        answer = send_wechat(tenant, headers, body)
        assert answer.status_code == 400, what  # not 2xx: the gateway would retry
        assert answer.json()["code"] == "FAIL", what
        assert payments_of(db, order_no) == 0, what
        [(reason, raw)] = db.execute(
            "SELECT reason, raw FROM gateway_notifications WHERE outcome = 'refused' "
            "ORDER BY id DESC LIMIT 1").fetchall()
        assert bytes(raw) == body, what
        expected = {"tampered body": "Wechatpay-Signature", "wrong signature":
                    "Wechatpay-Signature", "old timestamp": "Wechatpay-Timestamp",
                    "amount differs": "amount: 1999 fen, the order is 2000 fen",
                    "unknown serial": "Wechatpay-Serial"}[what]
        assert expected in reason, (what, reason)
    assert db.execute("SELECT state FROM payment_orders WHERE order_no = %s",
                      (order_no,)).fetchone() == ("created",)
    # The real notification still applies afterwards.
    assert send_wechat(tenant, *tenant.standins.wechat.notification(order_no)).status_code == 204
    assert payments_of(db, order_no) == 1


def test_an_oversized_notification_is_refused_and_its_first_bytes_kept(
        stack: Settings, db: psycopg.Connection, tenant: Tenant) -> None:
    from meterflow.tenant.router import MAX_NOTIFICATION_BYTES

    body = b'{"id": "' + b"x" * (2 * MAX_NOTIFICATION_BYTES) + b'"}'
    with tenant.http() as c:
        wechat = c.post("/t/notify/wechat", content=body,
                        headers={"Content-Type": "application/json"})
        alipay = c.post("/t/notify/alipay", content=body,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert wechat.status_code == 400 and wechat.json()["code"] == "FAIL"
    assert alipay.text == "fail"
    kept = db.execute("SELECT gateway, reason, length(raw) FROM gateway_notifications "
                      "WHERE outcome = 'refused' ORDER BY id DESC LIMIT 2").fetchall()
    assert sorted(g for g, _, _ in kept) == ["alipay", "wechat"]
    for _, reason, size in kept:
        assert reason == f"body: more than {MAX_NOTIFICATION_BYTES} bytes"
        assert size == MAX_NOTIFICATION_BYTES


def test_alipay_notifications_verify_with_alipays_key_and_apply_once(
        stack: Settings, db: psycopg.Connection, tenant: Tenant) -> None:
    from connectors.gateways import alipay_protocol

    account = new_account(db)
    order_no, location = tenant.order(link_for(db, account), "30", "alipay")
    assert location.startswith(tenant.standins.url + "/gateway.do?")
    assert tenant.standins.alipay.refused_requests == []  # our RSA2 signature verified
    standin = tenant.standins.alipay
    standin.pay(order_no, notify=False)
    good = standin.notification(order_no)
    # Signed by the merchant's own key instead of Alipay's: refused.
    by_merchant = alipay_protocol.sign_notification(
        standin.keys.app_key, {k: v for k, v in good.items() if k not in ("sign", "sign_type")})
    more = standin.notification(order_no, total_amount="31.00")
    tampered = {**good, "total_amount": "31.00"}
    with tenant.http() as c:
        def post(form: dict[str, str]) -> str:
            return c.post("/t/notify/alipay", content=urlencode(form), headers={
                "Content-Type": "application/x-www-form-urlencoded"}).text
        assert post(by_merchant) == "fail"
        assert post(tampered) == "fail"
        assert post(more) == "fail"  # signed by Alipay, but not the order's amount
        assert payments_of(db, order_no) == 0
        assert [post(good) for _ in range(3)] == ["success"] * 3
    assert payments_of(db, order_no) == 1
    assert outcomes(db, order_no)[-3:] == ["applied", "replayed", "replayed"]


def test_an_order_whose_notification_never_comes_is_settled_by_the_query(
        stack: Settings, db: psycopg.Connection, tenant: Tenant, tmp_path: Any) -> None:
    account = new_account(db)
    token = link_for(db, account)
    wechat_order, _ = tenant.order(token, "12.34", "wechat")
    alipay_order, _ = tenant.order(token, "5", "alipay")
    tenant.standins.wechat.pay(wechat_order, notify=False)
    tenant.standins.alipay.pay(alipay_order, notify=False)
    # Two settle services at once: each order is still applied once.
    procs = []
    for port in SETTLE_HEALTH_PORTS:
        log = open(tmp_path / f"settle-{port}.log", "ab")  # noqa: SIM115 - closed below
        procs.append((subprocess.Popen(
            [sys.executable, "-m", "meterflow.cli", "pay", "settle"], cwd=REPO,
            env={**env_of(stack), **tenant.env, "METERFLOW_HEALTH_PORT": str(port),
                 "METERFLOW_SETTLE_PERIOD_S": "0.5"},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True), log))
    try:
        def health(port: int) -> dict[str, Any]:
            try:
                answer: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/health",
                                                   timeout=2).json()
                return answer
            except (httpx.HTTPError, ValueError):
                return {}
        for port in SETTLE_HEALTH_PORTS:
            wait_for(lambda p=port: health(p).get("rounds", 0) > 0, 60, "settle health")
            assert health(port)["gateways"] == ["alipay", "wechat"]
        wait_for(lambda: count(db, "SELECT count(*) FROM payment_orders WHERE order_no = "
                                   "ANY(%s) AND state = 'paid'", [wechat_order, alipay_order])
                 == 2, 60, "both orders settled by the query")
    finally:
        for proc, log in procs:
            terminate(proc.pid, grace_s=10)
            proc.wait()
            log.close()
    for order_no, fen in ((wechat_order, 1234), (alipay_order, 500)):
        assert payments_of(db, order_no) == 1
        assert db.execute("SELECT settled_by, amount_fen FROM payment_orders WHERE "
                          "order_no = %s", (order_no,)).fetchone() == ("query", fen)
    # The notification arriving late changes nothing.
    late = tenant.standins.wechat.notification(wechat_order)
    assert send_wechat(tenant, *late).status_code == 204
    assert payments_of(db, wechat_order) == 1


def test_an_unpaid_order_is_closed_after_it_expires(
        stack: Settings, db: psycopg.Connection, tenant: Tenant) -> None:
    account = new_account(db)
    order_no, _ = tenant.order(link_for(db, account), "9", "wechat")
    db.execute("UPDATE payment_orders SET expires_at = now() - interval '1 s', query_at = now()"
               " WHERE order_no = %s", (order_no,))
    done = tenant.cli(stack, "pay", "settle", "--once")
    assert json.loads(done.stdout.strip().splitlines()[-1])["closed"] >= 1
    assert db.execute("SELECT state FROM payment_orders WHERE order_no = %s",
                      (order_no,)).fetchone() == ("closed",)
    assert tenant.standins.wechat.orders[order_no].state == "CLOSED"
    assert payments_of(db, order_no) == 0


@pytest.mark.parametrize("gateway", ["wechat", "alipay"])
def test_a_refund_round_trip_and_the_bill_check(
        stack: Settings, db: psycopg.Connection, tenant: Tenant,
        pipeline: subprocess.Popen[bytes], gateway: str) -> None:
    account = new_account(db)
    token = link_for(db, account)
    order_no, _ = tenant.order(token, "50", gateway)
    standin = getattr(tenant.standins, gateway)
    standin.pay(order_no)  # notifies MeterFlow like the real gateway
    wait_balance(db, account, 5000)
    # More than the order paid is refused before the gateway is asked.
    refused = tenant.cli(stack, "pay", "refund", order_no, "50.01", check=False)
    assert refused.returncode == 3 and "amount" in refused.stderr
    done = tenant.cli(stack, "pay", "refund", order_no, "20")
    refund_no = done.stdout.split()[1]
    assert "succeeded" in done.stdout
    wait_balance(db, account, 3000)
    assert payments_of(db, refund_no) == 1
    assert db.execute("SELECT kind, amount_fen FROM payments WHERE idempotency_key = %s",
                      (refund_no,)).fetchone() == ("refund", 2000)
    wait_for(lambda: count(db, "SELECT count(*) FROM ledger WHERE account_id = %s AND "
                               "ref = ANY(%s)", account, [order_no, refund_no]) == 2, 30,
             "the top-up and the refund in the ledger")
    assert dict(db.execute("SELECT ref, amount_fen FROM ledger WHERE account_id = %s",
                           (account,)).fetchall()) == {order_no: 5000, refund_no: -2000}
    # The gateway refunded once, for 20 yuan.
    refunds = standin.orders[order_no].refunds
    assert len(refunds) == 1
    # The bill of the day agrees for these; an order paid at the gateway and never applied
    # here is listed and alarmed.
    lost, _ = tenant.order(token, "7", gateway)
    standin.pay(lost, notify=False)
    day = datetime.now(UTC).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Shanghai")).date()
    check = tenant.cli(stack, "pay", "bill-check", "--date", day.isoformat(), "--gateway",
                       gateway, check=False)
    assert check.returncode == 1, check.stdout + check.stderr
    findings = db.execute(
        "SELECT order_no, finding FROM gateway_bill_differences WHERE gateway = %s AND "
        "checked_at = (SELECT max(checked_at) FROM gateway_bill_checks WHERE gateway = %s)",
        (gateway, gateway)).fetchall()
    mine = {(o, f) for o, f in findings if o in (order_no, lost)}
    assert mine == {(lost, "paid_not_applied")}, findings
    wait_for(lambda: db.execute("SELECT 1 FROM alarms WHERE account_id = %s AND kind = "
                                "'payment_mismatch' AND detail LIKE %s",
                                (account, f"%{lost}%")).fetchone(), 60,
             "the payment_mismatch alarm")
    assert balance(db, account)[0] == 3000  # type: ignore[index]


def test_the_standin_command_serves_both_gateways_with_keys_written_for_meterflow(
        stack: Settings, tmp_path: Any) -> None:
    port = PORT_BASE + 155
    env_file = tmp_path / "standin.env"
    proc = subprocess.Popen(
        [sys.executable, "-m", "meterflow.cli", "pay", "standin", "--port", str(port),
         "--keys-dir", str(tmp_path / "keys"), "--env-file", str(env_file)],
        cwd=REPO, env=env_of(stack), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        wait_for(env_file.exists, 30, "the stand-ins' settings")
        settings = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        assert settings["METERFLOW_WECHAT_API_URL"] == f"http://127.0.0.1:{port}"
        key_file = Path(settings["METERFLOW_WECHAT_PRIVATE_KEY_FILE"])
        assert "PRIVATE KEY" in key_file.read_text() and key_file.stat().st_mode & 0o077 == 0
        # A request MeterFlow did not sign is refused, as the real gateway refuses it.
        unsigned = httpx.get(f"http://127.0.0.1:{port}/v3/certificates", timeout=10)
        assert unsigned.status_code == 401 and unsigned.json()["code"] == "SIGN_ERROR"
        answer = httpx.get(f"{settings['METERFLOW_ALIPAY_GATEWAY_URL']}?app_id="
                           f"{settings['METERFLOW_ALIPAY_APP_ID']}&method=alipay.trade.query"
                           "&sign_type=RSA2&sign=AAAA&biz_content=%7B%7D", timeout=10).json()
        assert answer["alipay_trade_query_response"]["sub_code"] == "isv.invalid-signature"
    finally:
        terminate(proc.pid, grace_s=5)
        proc.wait()
