"""WeChat Pay v3 and Alipay, sans I/O: signatures over the exact strings the gateways'
docs give, every way a notification is refused, the encrypted resource, the bill formats,
amounts (docs/tenant.md)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.hashes import SHA256
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.gateways import alipay_protocol, wechat_protocol
from connectors.gateways.clients import (
    AlipayConfig,
    AlipayGateway,
    WeChatConfig,
    WeChatGateway,
)
from connectors.gateways.model import (
    BillRow,
    GatewayRefusal,
    OrderFacts,
    Trade,
    fen_to_yuan_text,
    trade_differences,
    yuan_text_to_fen,
)
from connectors.gateways.standin_alipay import AlipayStandin
from connectors.gateways.standin_keys import new_key, private_pem, public_pem
from connectors.gateways.standin_wechat import WeChatOrder, WeChatStandin

WECHAT = WeChatStandin()
ALIPAY = AlipayStandin()
OTHER = new_key()
NOW = datetime.now(UTC)


def wechat_order(no: str = "MF20261129000000abcdef", fen: int = 5000) -> str:
    WECHAT.orders[no] = WeChatOrder(no, WECHAT.keys.appid, fen, "room 301", "http://x/n",
                                    "h5", NOW)
    WECHAT.pay(no, notify=False)
    return no


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def platform_keys() -> dict[str, object]:
    return {WECHAT.keys.platform_key_id: WECHAT.keys.platform_key.public_key()}


# --- WeChat Pay: signatures -----------------------------------------------------------


def test_the_signature_is_sha256_rsa_over_lines_each_ending_in_newline() -> None:
    signature = wechat_protocol.sign(OTHER, "1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242",
                                     '{"a":1}')
    message = b'1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n{"a":1}\n'
    OTHER.public_key().verify(base64.b64decode(signature), message, PKCS1v15(), SHA256())


@settings(max_examples=30, deadline=None)
@given(st.text(min_size=1, max_size=200), st.data())
def test_any_change_to_a_signed_body_fails_verification(body: str, data: st.DataObject) -> None:
    signature = wechat_protocol.sign(OTHER, "1", "n", body)
    assert wechat_protocol.verifies(OTHER.public_key(), signature, "1", "n", body)
    changed = data.draw(st.text(max_size=200).filter(lambda t: t != body))
    assert not wechat_protocol.verifies(OTHER.public_key(), signature, "1", "n", changed)


def test_a_notification_verifies_decrypts_and_reads_as_the_trade() -> None:
    no = wechat_order(fen=8880)
    headers, body = WECHAT.notification(no)
    trade = wechat_protocol.verify_notification(lower(headers), body, platform_keys(),
                                                WECHAT.keys.apiv3_key.encode(), NOW)
    assert trade is not None
    assert (trade.gateway, trade.order_no, trade.state, trade.amount_fen) == (
        "wechat", no, "paid", 8880)
    assert (trade.merchant_id, trade.app_id) == (WECHAT.keys.mchid, WECHAT.keys.appid)
    assert trade.paid_at is not None and trade.paid_at.utcoffset() == timedelta(hours=8)


def _refusal(headers: dict[str, str], body: bytes, now: datetime = NOW,
             apiv3: bytes | None = None) -> str:
    with pytest.raises(GatewayRefusal) as refused:
        wechat_protocol.verify_notification(
            lower(headers), body, platform_keys(),
            apiv3 or WECHAT.keys.apiv3_key.encode(), now)
    return refused.value.reason


def test_every_bad_notification_is_refused_naming_the_header_or_field() -> None:
    headers, body = WECHAT.notification(wechat_order())
    wrong = wechat_protocol.sign(OTHER, headers["Wechatpay-Timestamp"],
                                 headers["Wechatpay-Nonce"], body.decode())
    cases = {
        "Wechatpay-Signature": [({**headers, "Wechatpay-Signature": wrong}, body),
                                (headers, body + b" "),
                                ({**headers, "Wechatpay-Signature": "not base64!"}, body),
                                ({**headers, "Wechatpay-Nonce": "other"}, body)],
        "Wechatpay-Serial": [({**headers, "Wechatpay-Serial": "PUB_KEY_ID_X"}, body)],
        "Wechatpay-Signature-Type": [({**headers, "Wechatpay-Signature-Type": "SM2"}, body)],
        "Wechatpay-Timestamp": [({**headers, "Wechatpay-Timestamp": "soon"}, body)],
    }
    for field, variants in cases.items():
        for h, b in variants:
            assert _refusal(h, b).startswith(field), (field, h)
    assert _refusal(headers, body, apiv3=b"0" * 32).startswith("resource")


@pytest.mark.parametrize("skew_s,refused", [(299, False), (-299, False), (301, True),
                                            (-301, True), (3600, True)])
def test_the_timestamp_must_be_within_five_minutes_of_now(skew_s: int, refused: bool) -> None:
    no = wechat_order()
    headers, body = WECHAT.notification(no, at=NOW - timedelta(seconds=skew_s))
    if refused:
        assert _refusal(headers, body).startswith("Wechatpay-Timestamp")
    else:
        assert wechat_protocol.verify_notification(
            lower(headers), body, platform_keys(), WECHAT.keys.apiv3_key.encode(), NOW)


def test_a_refund_event_is_not_a_payment() -> None:
    _, body = WECHAT.notification(wechat_order())
    envelope = json.loads(body)
    envelope["event_type"] = "REFUND.SUCCESS"
    body = json.dumps(envelope).encode()
    signed = wechat_protocol.signed_headers(WECHAT.keys.platform_key, WECHAT.keys.platform_key_id,
                                            int(NOW.timestamp()), "n1", body).as_dict()
    assert wechat_protocol.verify_notification(lower(signed), body, platform_keys(),
                                               WECHAT.keys.apiv3_key.encode(), NOW) is None


@pytest.mark.parametrize("change,field", [
    ({"amount": {"total": 50.0, "currency": "CNY"}}, "amount"),
    ({"amount": {"total": 5000, "currency": "USD"}}, "amount"),
    ({"trade_state": "MAYBE"}, "trade_state"),
    ({"out_trade_no": None, "mchid": None}, "resource")])
def test_a_resource_that_is_not_a_cny_transaction_is_refused(change: dict[str, object],
                                                             field: str) -> None:
    resource = {**WECHAT.transaction(WECHAT.orders[wechat_order()]), **change}
    resource = {k: v for k, v in resource.items() if v is not None}
    with pytest.raises(GatewayRefusal) as refused:
        wechat_protocol.parse_transaction(json.dumps(resource).encode())
    assert refused.value.reason.startswith(field)


def test_the_client_verifies_with_the_platform_key_whatever_the_header_case() -> None:
    keys = WECHAT.keys
    gateway = WeChatGateway(WeChatConfig(
        keys.mchid, keys.appid, keys.merchant_serial, private_pem(keys.merchant_key),
        keys.apiv3_key, public_pem(keys.platform_key.public_key()), keys.platform_key_id,
        "http://127.0.0.1/notify", "http://127.0.0.1:9"))
    headers, body = WECHAT.notification(wechat_order(fen=1))
    trade = gateway.verify_notification({k.upper(): v for k, v in headers.items()}, body, NOW)
    assert trade is not None and trade.amount_fen == 1


def test_a_merchant_request_is_checked_as_the_gateway_checks_it() -> None:
    keys = WECHAT.keys
    body = b'{"mchid":"1"}'
    stamp = str(int(NOW.timestamp()))
    signature = wechat_protocol.sign(keys.merchant_key, "POST", "/v3/x?a=1", stamp, "N",
                                     body.decode())
    header = (f'{wechat_protocol.SIGNATURE_TYPE} mchid="{keys.mchid}",nonce_str="N",'
              f'signature="{signature}",timestamp="{stamp}",serial_no="{keys.merchant_serial}"')
    check = wechat_protocol.check_request
    pub = keys.merchant_key.public_key()
    check(header, "POST", "/v3/x?a=1", body, pub, keys.mchid, keys.merchant_serial, NOW)
    for args in (("GET", "/v3/x?a=1", body), ("POST", "/v3/y", body), ("POST", "/v3/x?a=1", b"{}")):
        with pytest.raises(GatewayRefusal):
            check(header, *args, pub, keys.mchid, keys.merchant_serial, NOW)
    with pytest.raises(GatewayRefusal):
        check(header, "POST", "/v3/x?a=1", body, pub, "other", keys.merchant_serial, NOW)
    with pytest.raises(GatewayRefusal):
        check(header.replace("WECHATPAY2", "BASIC"), "POST", "/v3/x?a=1", body, pub,
              keys.mchid, keys.merchant_serial, NOW)


def test_the_trade_bill_lists_payments_and_refunds() -> None:
    no = wechat_order("MFBILL0000000000000001", 5000)
    WECHAT.orders[no].refunds["RF1"] = {"refund_id": "5030", "out_refund_no": "RF1",
                                        "amount": {"refund": 1234}}
    day = WECHAT.orders[no].success_time[:10]
    rows = wechat_protocol.parse_bill(WECHAT.bill_text(day))
    mine = [r for r in rows if r.order_no == no]
    assert mine == [BillRow(no, "paid", 5000, WECHAT.orders[no].transaction_id),
                    BillRow(no, "refund", 1234, WECHAT.orders[no].transaction_id, "RF1")]
    with pytest.raises(GatewayRefusal):
        wechat_protocol.parse_bill("not,a,bill\n")


# --- Alipay -------------------------------------------------------------------------------


def test_the_signing_string_is_sorted_and_leaves_the_signature_out() -> None:
    params = {"b": "2", "a": "1", "sign": "s", "sign_type": "RSA2", "biz_content": '{"x":1}'}
    assert alipay_protocol.signing_string(params) == 'a=1&b=2&biz_content={"x":1}&sign_type=RSA2'
    assert alipay_protocol.signing_string(params, ("sign", "sign_type")) == \
        'a=1&b=2&biz_content={"x":1}'


def alipay_order(no: str = "MFALI000000000000001", fen: int = 3000) -> str:
    from connectors.gateways.standin_alipay import AlipayOrder

    ALIPAY.orders[no] = AlipayOrder(no, fen, "room", "http://x/n", "http://x/r")
    ALIPAY.pay(no, notify=False)
    return no


def alipay_gateway() -> AlipayGateway:
    keys = ALIPAY.keys
    return AlipayGateway(AlipayConfig(keys.app_id, keys.seller_id, private_pem(keys.app_key),
                                      public_pem(keys.alipay_key.public_key()),
                                      "http://127.0.0.1/n", "http://127.0.0.1:9/gateway.do"))


def test_an_alipay_notification_verifies_with_alipays_key_only() -> None:
    form = ALIPAY.notification(alipay_order(fen=3000))
    gateway = alipay_gateway()
    trade = gateway.verify_notification({}, urlencode(form).encode(), NOW)
    assert trade == Trade("alipay", form["out_trade_no"], "paid", 3000, ALIPAY.keys.seller_id,
                          ALIPAY.keys.app_id, form["trade_no"], trade.paid_at if trade else None,
                          form["buyer_id"])
    unsigned = {k: v for k, v in form.items() if k not in ("sign", "sign_type")}
    by_merchant = alipay_protocol.sign_notification(ALIPAY.keys.app_key, unsigned)
    for bad in (by_merchant, {**form, "total_amount": "30.01"}, {**form, "sign_type": "RSA"},
                {k: v for k, v in form.items() if k != "sign"}):
        with pytest.raises(GatewayRefusal):
            gateway.verify_notification({}, urlencode(bad).encode(), NOW)
    with pytest.raises(GatewayRefusal):
        gateway.verify_notification({}, b"\xff\xfe", NOW)


def test_alipay_fields_read_as_a_trade_or_refused_naming_the_field() -> None:
    fields = {"out_trade_no": "MF1", "trade_status": "TRADE_SUCCESS", "total_amount": "12.30",
              "seller_id": "2088", "app_id": "2021", "gmt_payment": "2026-11-30 08:00:01"}
    trade = alipay_protocol.notice_trade(fields)
    assert trade.amount_fen == 1230 and trade.paid_at == datetime(2026, 11, 30, 0, 0, 1,
                                                                  tzinfo=UTC)
    for change, field in (({"total_amount": "12.345"}, "total_amount"),
                          ({"trade_status": "X"}, "trade_status"),
                          ({"gmt_payment": "yesterday"}, "gmt_payment")):
        with pytest.raises(GatewayRefusal) as refused:
            alipay_protocol.notice_trade({**fields, **change})
        assert refused.value.reason.startswith(field)
    with pytest.raises(GatewayRefusal) as refused:
        alipay_protocol.notice_trade({k: v for k, v in fields.items() if k != "out_trade_no"})
    assert refused.value.reason.startswith("out_trade_no")


def test_the_alipay_bill_is_a_gbk_zip_read_back_row_for_row() -> None:
    no = alipay_order("MFALIBILL00000000001", 2000)
    ALIPAY.orders[no].refunds["RFA1"] = 500
    rows = alipay_protocol.parse_bill(ALIPAY.bill(ALIPAY.orders[no].paid_at[:10]))
    mine = [r for r in rows if r.order_no == no]
    trade_no = ALIPAY.orders[no].trade_no
    assert mine == [BillRow(no, "paid", 2000, trade_no), BillRow(no, "refund", 500, trade_no,
                                                                 "RFA1")]
    with pytest.raises(GatewayRefusal):
        alipay_protocol.parse_bill(b"PK not a zip")


def test_a_request_signed_by_another_key_is_refused_by_the_alipay_standin() -> None:
    params = {"app_id": "1", "method": "alipay.trade.query", "sign_type": "RSA2",
              "biz_content": "{}"}
    signed = {**params, "sign": alipay_protocol.sign(ALIPAY.keys.app_key,
                                                     alipay_protocol.signing_string(params))}
    alipay_protocol.check_request(signed, ALIPAY.keys.app_key.public_key())
    with pytest.raises(GatewayRefusal):
        alipay_protocol.check_request({**signed, "biz_content": '{"a":1}'},
                                      ALIPAY.keys.app_key.public_key())
    with pytest.raises(GatewayRefusal):
        alipay_protocol.check_request(signed, OTHER.public_key())


# --- amounts and the order check ----------------------------------------------------------


@given(st.integers(min_value=0, max_value=10**15 - 1))
def test_yuan_text_and_fen_round_trip_exactly(fen: int) -> None:
    text = fen_to_yuan_text(fen)
    assert Decimal(text) * 100 == fen
    assert yuan_text_to_fen(text, "x") == fen


@pytest.mark.parametrize("text", ["", "1.234", "-1", "1e3", " 1", "1,00", "０", "1."])
def test_amounts_that_are_not_yuan_are_refused(text: str) -> None:
    with pytest.raises(GatewayRefusal, match=r"^total_amount:"):
        yuan_text_to_fen(text, "total_amount")


def test_each_difference_from_the_stored_order_is_named() -> None:
    order = OrderFacts("MF1", "wechat", 5000, "m1", "a1")
    same = Trade("wechat", "MF1", "paid", 5000, "m1", "a1")
    assert trade_differences(order, same) == []
    changed = Trade("alipay", "MF2", "paid", 4999, "m2", "a2")
    assert [d.split(":")[0] for d in trade_differences(order, changed)] == [
        "gateway", "out_trade_no", "amount", "merchant", "app_id"]
