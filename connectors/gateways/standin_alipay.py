"""A loopback Alipay open platform for local use and tests: ``/gateway.do`` checks each
request's RSA2 signature with the application's public key, answers signed with Alipay's
key (query, close, refund, refund query, bill download address), shows a cashier page for
wap pay and sends signed asynchronous notifications, again until answered ``success``
(docs/tenant.md, stand-in gateways)."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from connectors.gateways import alipay_protocol
from connectors.gateways.model import GatewayRefusal, fen_to_yuan_text, yuan_text_to_fen
from connectors.gateways.standin_keys import AlipayKeys
from connectors.gateways.standin_wechat import cashier_page

log = logging.getLogger("meterflow.standin.alipay")


@dataclass
class AlipayOrder:
    out_trade_no: str
    amount_fen: int
    subject: str
    notify_url: str
    return_url: str
    status: str = "WAIT_BUYER_PAY"
    trade_no: str = ""
    paid_at: str = ""
    refunds: dict[str, int] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(alipay_protocol.ALIPAY_ZONE).strftime("%Y-%m-%d %H:%M:%S")


class AlipayStandin:
    """State and protocol of the stand-in; ``router`` serves it."""

    def __init__(self, keys: AlipayKeys | None = None, base_url: str = "",
                 retry_s: tuple[float, ...] = (1.0, 2.0, 4.0)) -> None:
        self.keys = keys or AlipayKeys.generate()
        self.base_url = base_url
        self.retry_s = retry_s
        self.orders: dict[str, AlipayOrder] = {}
        self.bills: dict[str, bytes] = {}
        self.deliveries: list[tuple[str, str]] = []
        self.refused_requests: list[str] = []
        self.lock = threading.Lock()
        self.router = self._routes()

    def pay(self, out_trade_no: str, notify: bool = True) -> AlipayOrder:
        with self.lock:
            order = self.orders[out_trade_no]
            if order.status == "WAIT_BUYER_PAY":
                order.status = "TRADE_SUCCESS"
                order.trade_no = datetime.now(alipay_protocol.ALIPAY_ZONE).strftime("%Y%m%d") + \
                    str(secrets.randbelow(10**20)).zfill(20)
                order.paid_at = _now()
        if notify:
            threading.Thread(target=self.deliver, args=(out_trade_no,), daemon=True).start()
        return order

    def notification(self, out_trade_no: str, **overrides: str) -> dict[str, str]:
        """The signed form fields of a trade_status_sync notification."""
        order = self.orders[out_trade_no]
        fields = {
            "notify_time": _now(), "notify_type": "trade_status_sync",
            "notify_id": secrets.token_hex(16), "charset": "utf-8", "version": "1.0",
            "app_id": self.keys.app_id, "seller_id": self.keys.seller_id,
            "trade_no": order.trade_no, "out_trade_no": order.out_trade_no,
            "trade_status": order.status, "total_amount": fen_to_yuan_text(order.amount_fen),
            "receipt_amount": fen_to_yuan_text(order.amount_fen),
            "buyer_pay_amount": fen_to_yuan_text(order.amount_fen), "subject": order.subject,
            "gmt_create": order.paid_at, "gmt_payment": order.paid_at,
            "buyer_id": "2088102177846880", **overrides}
        return alipay_protocol.sign_notification(self.keys.alipay_key, fields)

    def deliver(self, out_trade_no: str) -> None:
        """POST the notification again after each wait until the answer is ``success``."""
        url = self.orders[out_trade_no].notify_url
        for wait in (0.0, *self.retry_s):
            time.sleep(wait)
            try:
                answer = httpx.post(url, data=self.notification(out_trade_no), timeout=10).text
            except httpx.HTTPError as exc:
                answer = f"error: {exc}"
            self.deliveries.append((out_trade_no, answer))
            if answer.strip() == "success":
                return

    def _answer(self, method: str, body: dict[str, Any]) -> Response:
        return Response(alipay_protocol.signed_response(self.keys.alipay_key, method, body),
                        media_type="application/json; charset=utf-8")

    def _routes(self) -> APIRouter:
        router = APIRouter()
        me = self
        ok = {"code": "10000", "msg": "Success"}
        missing = {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST",
                   "sub_msg": "交易不存在"}

        @router.api_route("/gateway.do", methods=["GET", "POST"])
        async def gateway(request: Request) -> Response:
            params = dict(request.query_params)
            if request.method == "POST":
                params |= {k: str(v) for k, v in (await request.form()).items()}
            method = params.get("method", "")
            try:
                if params.get("app_id") != me.keys.app_id:
                    raise GatewayRefusal(f"app_id: {params.get('app_id')!r} is not known")
                alipay_protocol.check_request(params, me.keys.app_key.public_key())
                biz = json.loads(params.get("biz_content") or "{}")
            except (GatewayRefusal, ValueError) as exc:
                me.refused_requests.append(str(exc))
                return me._answer(method or "error", {
                    "code": "40002", "msg": "Invalid Arguments",
                    "sub_code": "isv.invalid-signature", "sub_msg": str(exc)})
            no = str(biz.get("out_trade_no", ""))
            if method == "alipay.trade.wap.pay":
                with me.lock:
                    order = me.orders.setdefault(no, AlipayOrder(
                        no, yuan_text_to_fen(biz["total_amount"], "total_amount"),
                        biz["subject"], params.get("notify_url", ""),
                        params.get("return_url", "")))
                action = f"/standin/alipay/pay?{urlencode({'out_trade_no': no})}"
                return HTMLResponse(cashier_page("支付宝 (stand-in)", order.subject,
                                                 order.amount_fen, action))
            order_or_none = me.orders.get(no)
            if method == "alipay.data.dataservice.bill.downloadurl.query":
                token = secrets.token_hex(8)
                me.bills[token] = me.bill(str(biz.get("bill_date", "")))
                return me._answer(method, {**ok, "bill_download_url":
                                           f"{me.base_url}/standin/alipay/bill?token={token}"})
            if order_or_none is None:
                return me._answer(method, missing)
            order = order_or_none
            if method == "alipay.trade.query":
                return me._answer(method, {
                    **ok, "trade_no": order.trade_no, "out_trade_no": no,
                    "trade_status": order.status,
                    "total_amount": fen_to_yuan_text(order.amount_fen),
                    "send_pay_date": order.paid_at, "buyer_user_id": "2088102177846880"})
            if method == "alipay.trade.close":
                with me.lock:
                    if order.status == "WAIT_BUYER_PAY":
                        order.status = "TRADE_CLOSED"
                return me._answer(method, {**ok, "out_trade_no": no})
            if method == "alipay.trade.refund":
                amount = yuan_text_to_fen(biz["refund_amount"], "refund_amount")
                key = str(biz.get("out_request_no") or no)
                with me.lock:
                    if key not in order.refunds:
                        if order.status != "TRADE_SUCCESS" or \
                                sum(order.refunds.values()) + amount > order.amount_fen:
                            return me._answer(method, {
                                "code": "40004", "msg": "Business Failed",
                                "sub_code": "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
                                "sub_msg": "退款金额超限"})
                        order.refunds[key] = amount
                return me._answer(method, {
                    **ok, "trade_no": order.trade_no, "out_trade_no": no, "fund_change": "Y",
                    "refund_fee": fen_to_yuan_text(sum(order.refunds.values()))})
            if method == "alipay.trade.fastpay.refund.query":
                key = str(biz.get("out_request_no", ""))
                if key not in order.refunds:
                    return me._answer(method, {**ok, "out_trade_no": no})
                return me._answer(method, {
                    **ok, "trade_no": order.trade_no, "out_trade_no": no,
                    "out_request_no": key, "refund_status": "REFUND_SUCCESS",
                    "refund_amount": fen_to_yuan_text(order.refunds[key])})
            return me._answer(method, {"code": "40004", "msg": "Business Failed",
                                       "sub_code": "isv.invalid-method", "sub_msg": method})

        @router.post("/standin/alipay/pay")
        def pay(out_trade_no: str) -> Response:
            order = me.pay(out_trade_no)
            target = order.return_url or "/"
            sep = "&" if "?" in target else "?"
            return RedirectResponse(f"{target}{sep}out_trade_no={out_trade_no}", 303)

        @router.get("/standin/alipay/bill")
        def bill(token: str) -> Response:
            return Response(me.bills.get(token, b""), media_type="application/zip")

        return router

    def bill(self, day: str) -> bytes:
        rows: list[dict[str, str]] = []
        for order in list(self.orders.values()):
            if not order.paid_at.startswith(day):
                continue
            base = {"支付宝交易号": order.trade_no, "商户订单号": order.out_trade_no,
                    "商品名称": order.subject, "创建时间": order.paid_at,
                    "完成时间": order.paid_at, "对方账户": "tenant"}
            rows.append({**base, "业务类型": "交易",
                         "订单金额（元）": fen_to_yuan_text(order.amount_fen),
                         "商家实收（元）": fen_to_yuan_text(order.amount_fen)})
            for key, amount in order.refunds.items():
                rows.append({**base, "业务类型": "退款", "退款批次号/请求号": key,
                             "订单金额（元）": "-" + fen_to_yuan_text(amount),
                             "商家实收（元）": "-" + fen_to_yuan_text(amount)})
        return alipay_protocol.bill_zip(rows, self.keys.seller_id, day)
