"""A loopback WeChat Pay (API v3) for local use and tests: it checks each merchant request's
signature with the merchant's key, answers signed with its platform key, serves the
platform certificate download, a cashier page for H5 orders, the OAuth endpoints of the
official account, refunds and the trade bill, and sends signed, encrypted notifications,
retrying those not answered with 2xx (docs/tenant.md, stand-in gateways)."""

from __future__ import annotations

import hashlib
import html
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from connectors.gateways import wechat_protocol
from connectors.gateways.model import GatewayRefusal
from connectors.gateways.standin_keys import WeChatKeys
from contracts.zones import zone

log = logging.getLogger("meterflow.standin.wechat")
CHINA = zone("Asia/Shanghai")
BILL_SUMMARY = ("总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,"
                "申请退款总金额")


@dataclass
class WeChatOrder:
    out_trade_no: str
    appid: str
    amount_fen: int
    description: str
    notify_url: str
    kind: str
    created_at: datetime
    payer: str = ""
    state: str = "NOTPAY"
    transaction_id: str = ""
    success_time: str = ""
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)


class WeChatStandin:
    """State and protocol of the stand-in; ``router`` serves it."""

    def __init__(self, keys: WeChatKeys | None = None, base_url: str = "",
                 retry_s: tuple[float, ...] = (1.0, 2.0, 4.0)) -> None:
        self.keys = keys or WeChatKeys.generate()
        self.base_url = base_url
        self.retry_s = retry_s
        self.orders: dict[str, WeChatOrder] = {}
        self.codes: dict[str, str] = {}
        self.deliveries: list[tuple[str, int]] = []
        self.refused_requests: list[str] = []
        self.lock = threading.Lock()
        self.router = self._routes()

    # --- the gateway's own actions ----------------------------------------------------

    def transaction(self, order: WeChatOrder) -> dict[str, Any]:
        body: dict[str, Any] = {
            "appid": order.appid, "mchid": self.keys.mchid, "out_trade_no": order.out_trade_no,
            "trade_state": order.state, "trade_state_desc": order.state,
            "trade_type": order.kind.upper(), "amount": {
                "total": order.amount_fen, "payer_total": order.amount_fen,
                "currency": "CNY", "payer_currency": "CNY"}}
        if order.transaction_id:
            body |= {"transaction_id": order.transaction_id,
                     "success_time": order.success_time, "bank_type": "OTHERS",
                     "payer": {"openid": order.payer or "o-standin-payer"}}
        return body

    def pay(self, out_trade_no: str, notify: bool = True) -> WeChatOrder:
        """The payer pays (the cashier page's button); the notification follows."""
        with self.lock:
            order = self.orders[out_trade_no]
            if order.state == "NOTPAY":
                order.state = "SUCCESS"
                order.transaction_id = "4200" + str(secrets.randbelow(10**24)).zfill(24)
                order.success_time = datetime.now(CHINA).replace(microsecond=0).isoformat()
        if notify:
            threading.Thread(target=self.deliver, args=(out_trade_no,), daemon=True).start()
        return order

    def notification(self, out_trade_no: str, *, resource: dict[str, Any] | None = None,
                     at: datetime | None = None) -> tuple[dict[str, str], bytes]:
        """A signed notification of an order's transaction, as the platform sends it."""
        plain = json.dumps(resource or self.transaction(self.orders[out_trade_no]),
                           ensure_ascii=False).encode()
        nonce = secrets.token_hex(6)
        body = json.dumps({
            "id": secrets.token_hex(18), "create_time": datetime.now(CHINA).isoformat(),
            "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS",
            "summary": "支付成功", "resource": wechat_protocol.encrypt_resource(
                self.keys.apiv3_key.encode(), plain, "transaction", nonce)},
            ensure_ascii=False).encode()
        when = int((at or datetime.now(UTC)).timestamp())
        headers = wechat_protocol.signed_headers(
            self.keys.platform_key, self.keys.platform_key_id, when, secrets.token_hex(16),
            body).as_dict()
        return {**headers, "Content-Type": "application/json"}, body

    def deliver(self, out_trade_no: str) -> None:
        """POST the notification, again after each wait while not answered with 2xx."""
        notify_url = self.orders[out_trade_no].notify_url
        for wait in (0.0, *self.retry_s):
            time.sleep(wait)
            headers, body = self.notification(out_trade_no)
            try:
                status = httpx.post(notify_url, content=body, headers=headers,
                                    timeout=10).status_code
            except httpx.HTTPError:
                status = 0
            self.deliveries.append((out_trade_no, status))
            if 200 <= status < 300:
                return

    # --- HTTP ----------------------------------------------------------------------------

    def _signed(self, status: int, payload: dict[str, Any] | None) -> Response:
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        headers = wechat_protocol.signed_headers(
            self.keys.platform_key, self.keys.platform_key_id, int(time.time()),
            secrets.token_hex(16), body).as_dict()
        return Response(body, status_code=status, headers=headers,
                        media_type="application/json" if payload is not None else None)

    async def _checked(self, request: Request) -> bytes | Response:
        """The request's body once its signature verified, else the gateway's 401."""
        body = await request.body()
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            wechat_protocol.check_request(
                request.headers.get("authorization", ""), request.method, path, body,
                self.keys.merchant_key.public_key(), self.keys.mchid,
                self.keys.merchant_serial, datetime.now(UTC))
        except GatewayRefusal as exc:
            self.refused_requests.append(exc.reason)
            return JSONResponse({"code": "SIGN_ERROR", "message": exc.reason}, 401)
        return body

    def _routes(self) -> APIRouter:
        router = APIRouter()
        me = self

        @router.post("/v3/pay/transactions/{kind}")
        async def create(kind: str, request: Request) -> Response:
            body = await me._checked(request)
            if isinstance(body, Response):
                return body
            data = json.loads(body)
            if kind not in ("h5", "jsapi") or data.get("mchid") != me.keys.mchid \
                    or data.get("appid") != me.keys.appid:
                return JSONResponse({"code": "PARAM_ERROR", "message": "mchid/appid"}, 400)
            no = str(data["out_trade_no"])
            with me.lock:
                if no in me.orders:
                    return JSONResponse({"code": "ORDER_NO_REPEAT", "message": no}, 400)
                me.orders[no] = WeChatOrder(
                    no, data["appid"], int(data["amount"]["total"]), data["description"],
                    data["notify_url"], kind, datetime.now(UTC),
                    payer=(data.get("payer") or {}).get("openid", ""))
            prepay = "wx" + secrets.token_hex(14)
            me.codes[prepay] = no
            if kind == "jsapi":
                return me._signed(200, {"prepay_id": prepay})
            return me._signed(200, {"h5_url": f"{me.base_url}/standin/wechat/h5?"
                                              f"prepay_id={prepay}"})

        @router.get("/v3/pay/transactions/out-trade-no/{no}")
        async def query(no: str, request: Request) -> Response:
            refused = await me._checked(request)
            if isinstance(refused, Response):
                return refused
            order = me.orders.get(no)
            if order is None:
                return JSONResponse({"code": "ORDER_NOT_EXIST", "message": "no order"}, 404)
            return me._signed(200, me.transaction(order))

        @router.post("/v3/pay/transactions/out-trade-no/{no}/close")
        async def close(no: str, request: Request) -> Response:
            refused = await me._checked(request)
            if isinstance(refused, Response):
                return refused
            with me.lock:
                order = me.orders.get(no)
                if order is not None and order.state == "NOTPAY":
                    order.state = "CLOSED"
            return me._signed(204, None)

        @router.post("/v3/refund/domestic/refunds")
        async def refund(request: Request) -> Response:
            body = await me._checked(request)
            if isinstance(body, Response):
                return body
            data = json.loads(body)
            order = me.orders.get(str(data.get("out_trade_no")))
            amount = int(data["amount"]["refund"])
            with me.lock:
                if order is None or order.state not in ("SUCCESS", "REFUND"):
                    return JSONResponse({"code": "RESOURCE_NOT_EXISTS", "message": "order"}, 404)
                done = sum(r["amount"]["refund"] for r in order.refunds.values())
                if data["out_refund_no"] not in order.refunds:
                    if amount + done > order.amount_fen:
                        return JSONResponse({"code": "NOT_ENOUGH", "message": "amount"}, 403)
                    order.refunds[data["out_refund_no"]] = {
                        "refund_id": "5030" + str(secrets.randbelow(10**24)).zfill(24),
                        "out_refund_no": data["out_refund_no"], "out_trade_no": order.out_trade_no,
                        "transaction_id": order.transaction_id, "status": "SUCCESS",
                        "success_time": datetime.now(CHINA).replace(microsecond=0).isoformat(),
                        "amount": {"refund": amount, "total": order.amount_fen,
                                   "currency": "CNY"}}
                    order.state = "REFUND"
            return me._signed(200, order.refunds[data["out_refund_no"]])

        @router.get("/v3/refund/domestic/refunds/{no}")
        async def refund_query(no: str, request: Request) -> Response:
            refused = await me._checked(request)
            if isinstance(refused, Response):
                return refused
            for order in me.orders.values():
                if no in order.refunds:
                    return me._signed(200, order.refunds[no])
            return JSONResponse({"code": "RESOURCE_NOT_EXISTS", "message": "refund"}, 404)

        @router.get("/v3/bill/tradebill")
        async def trade_bill(bill_date: str, request: Request) -> Response:
            refused = await me._checked(request)
            if isinstance(refused, Response):
                return refused
            text = me.bill_text(bill_date)
            token = secrets.token_hex(8)
            me.codes["bill:" + token] = text
            return me._signed(200, {"hash_type": "SHA1",
                                    "hash_value": hashlib.sha1(text.encode()).hexdigest(),
                                    "download_url": f"{me.base_url}/v3/billdownload/file?"
                                                    f"token={token}"})

        @router.get("/v3/billdownload/file")
        async def bill_file(token: str, request: Request) -> Response:
            refused = await me._checked(request)
            if isinstance(refused, Response):
                return refused
            return Response(me.codes.get("bill:" + token, "").encode(),
                            media_type="text/plain; charset=utf-8")

        @router.get("/v3/certificates")
        async def certificates(request: Request) -> Response:
            refused = await me._checked(request)
            if isinstance(refused, Response):
                return refused
            pem = me.keys.platform_cert.public_bytes(serialization.Encoding.PEM)
            nonce = secrets.token_hex(6)
            cert = me.keys.platform_cert
            return me._signed(200, {"data": [{
                "serial_no": me.keys.platform_serial,
                "effective_time": cert.not_valid_before_utc.isoformat(),
                "expire_time": cert.not_valid_after_utc.isoformat(),
                "encrypt_certificate": wechat_protocol.encrypt_resource(
                    me.keys.apiv3_key.encode(), pem, "certificate", nonce)}]})

        @router.get("/standin/wechat/h5", response_class=HTMLResponse)
        def cashier(prepay_id: str, redirect_url: str = "") -> Response:
            order = me.orders.get(me.codes.get(prepay_id, ""))
            if order is None:
                return HTMLResponse("<p>订单不存在</p>", 404)
            return HTMLResponse(cashier_page(
                "微信支付 (stand-in)", order.description, order.amount_fen,
                "/standin/wechat/h5/pay?" + urlencode({"prepay_id": prepay_id,
                                                       "redirect_url": redirect_url})))

        @router.post("/standin/wechat/h5/pay")
        def cashier_pay(prepay_id: str, redirect_url: str = "") -> Response:
            me.pay(me.codes[prepay_id])
            return RedirectResponse(redirect_url or "/", 303)

        @router.get("/connect/oauth2/authorize")
        def authorize(appid: str, redirect_uri: str, state: str = "",
                      user: str = "standin-user") -> Response:
            if appid != me.keys.appid:
                return HTMLResponse("<p>appid 参数错误</p>", 400)
            code = secrets.token_hex(16)
            me.codes["oauth:" + code] = "o" + hashlib.sha256(
                f"{appid}:{user}".encode()).hexdigest()[:27]
            sep = "&" if "?" in redirect_uri else "?"
            return RedirectResponse(f"{redirect_uri}{sep}code={code}&state={quote(state)}", 302)

        @router.get("/sns/oauth2/access_token")
        def access_token(appid: str, secret: str, code: str, grant_type: str) -> Response:
            openid = me.codes.pop("oauth:" + code, None)
            if appid != me.keys.appid or secret != me.keys.app_secret or openid is None \
                    or grant_type != "authorization_code":
                return JSONResponse({"errcode": 40029, "errmsg": "invalid code"})
            return JSONResponse({"access_token": secrets.token_hex(16), "expires_in": 7200,
                                 "refresh_token": secrets.token_hex(16), "openid": openid,
                                 "scope": "snsapi_base"})

        return router

    def bill_text(self, bill_date: str) -> str:
        """The trade bill of a day (Beijing time): payments and refunds."""
        lines = [wechat_protocol.BILL_HEADER]
        day = datetime.fromisoformat(bill_date).date()
        count = 0
        for order in list(self.orders.values()):
            if not order.success_time or datetime.fromisoformat(order.success_time).date() != day:
                continue
            base = {"交易时间": order.success_time.replace("T", " ")[:19],
                    "公众账号ID": order.appid, "商户号": self.keys.mchid,
                    "微信订单号": order.transaction_id, "商户订单号": order.out_trade_no,
                    "用户标识": order.payer, "交易类型": order.kind.upper(),
                    "货币种类": "CNY", "商品名称": order.description,
                    "订单金额": _yuan(order.amount_fen)}
            lines.append(wechat_protocol.bill_line({
                **base, "交易状态": "SUCCESS", "应结订单总金额": _yuan(order.amount_fen),
                "退款金额": "0.00"}))
            count += 1
            for refund in order.refunds.values():
                lines.append(wechat_protocol.bill_line({
                    **base, "交易状态": "REFUND", "应结订单总金额": "0.00",
                    "微信退款单号": refund["refund_id"], "商户退款单号": refund["out_refund_no"],
                    "退款金额": _yuan(refund["amount"]["refund"]), "退款状态": "SUCCESS"}))
                count += 1
        lines += [BILL_SUMMARY,
                  f"`{count},`0.00,`0.00,`0.00,`0.00,`0.00,`0.00"]
        return "\r\n".join(lines) + "\r\n"


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def cashier_page(title: str, description: str, amount_fen: int, action: str) -> str:
    """The stand-in's cashier: the amount and one button that pays."""
    return (f"<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{html.escape(title)}</title></head><body style='font-family:sans-serif'>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(description)}</p>"
            f"<p id='amount'>¥{_yuan(amount_fen)}</p>"
            f"<form method='post' action='{html.escape(action)}'>"
            f"<button id='pay' type='submit'>确认支付 Pay</button></form></body></html>")
