"""The two gateways as MeterFlow calls them, through their maintained SDKs: ``wechatpayv3``
(WeChat Pay API v3: signs each request, verifies each answer with the platform key) and
``python-alipay-sdk`` (Alipay: signs requests RSA2, verifies answers and notifications with
Alipay's public key). Notifications of WeChat Pay are verified by :mod:`wechat_protocol`
(the SDK checks neither the timestamp's age nor answers with a reason).

Both SDKs hard-code the production host; the host is set after construction so the same
code talks to a stand-in (docs/decisions/payment-gateways.md). Every method raises
GatewayError when the gateway cannot be reached or answers with an error.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from connectors.gateways import alipay_protocol, wechat_protocol
from connectors.gateways.model import (
    PAID,
    BillRow,
    GatewayError,
    GatewayRefusal,
    RefundResult,
    Trade,
    fen_to_yuan_text,
)


@dataclass(frozen=True, slots=True)
class PayStart:
    """How the tenant's browser pays: go to ``url`` (H5, wap), or call WeChat's JSAPI with
    ``jsapi`` (appId, timeStamp, nonceStr, package, signType, paySign)."""

    url: str = ""
    jsapi: dict[str, str] | None = None


class Gateway(Protocol):
    """What the money path asks of a gateway."""

    name: str
    merchant_id: str
    app_id: str

    def start(self, order_no: str, amount_fen: int, subject: str, channel: str,
              return_url: str, client_ip: str, openid: str = "") -> PayStart: ...
    def verify_notification(self, headers: Mapping[str, str], body: bytes,
                            now: datetime) -> Trade | None: ...
    def query(self, order_no: str) -> Trade | None: ...
    def close(self, order_no: str) -> None: ...
    def refund(self, order_no: str, refund_no: str, amount_fen: int, total_fen: int,
               reason: str) -> RefundResult: ...
    def query_refund(self, order_no: str, refund_no: str) -> RefundResult: ...
    def bill(self, day: date) -> list[BillRow]: ...


@dataclass(frozen=True, slots=True)
class WeChatConfig:
    """A merchant's WeChat Pay keys and names (meterflow.settings reads them from files)."""

    mchid: str
    appid: str
    cert_serial_no: str
    private_key_pem: str
    apiv3_key: str
    platform_public_key_pem: str
    platform_public_key_id: str
    notify_url: str
    api_url: str = "https://api.mch.weixin.qq.com"
    platform_certificates: tuple[str, ...] = ()


def _platform_keys(config: WeChatConfig) -> dict[str, RSAPublicKey]:
    keys: dict[str, RSAPublicKey] = {}
    if config.platform_public_key_pem:
        key = load_pem_public_key(config.platform_public_key_pem.encode())
        assert isinstance(key, RSAPublicKey)
        keys[config.platform_public_key_id] = key
    for pem in config.platform_certificates:
        cert = x509.load_pem_x509_certificate(pem.encode())
        public = cert.public_key()
        assert isinstance(public, RSAPublicKey)
        keys[format(cert.serial_number, "X")] = public
    return keys


def _json(code: int, message: Any, what: str) -> dict[str, Any]:
    if not 200 <= code < 300:
        raise GatewayError(f"{what}: HTTP {code}: {message!r}"[:500])
    try:
        data: dict[str, Any] = json.loads(message) if message else {}
    except (TypeError, ValueError):
        raise GatewayError(f"{what}: not JSON: {message!r}"[:300]) from None
    return data


class WeChatGateway:
    """WeChat Pay API v3 through ``wechatpayv3`` (JSAPI in WeChat, H5 elsewhere)."""

    name = "wechat"

    def __init__(self, config: WeChatConfig) -> None:
        from wechatpayv3 import WeChatPay, WeChatPayType

        self.config = config
        self.merchant_id = config.mchid
        self.app_id = config.appid
        self.platform_keys = _platform_keys(config)
        self._apiv3_key = config.apiv3_key.encode()
        self._types = WeChatPayType
        try:
            self._sdk = WeChatPay(
                wechatpay_type=WeChatPayType.H5, mchid=config.mchid,
                private_key=config.private_key_pem, cert_serial_no=config.cert_serial_no,
                appid=config.appid, apiv3_key=config.apiv3_key, notify_url=config.notify_url,
                public_key=config.platform_public_key_pem,
                public_key_id=config.platform_public_key_id, timeout=(5, 15))
        except Exception as exc:  # the SDK raises bare Exception on bad keys
            raise GatewayError(f"wechat: the merchant keys do not load: {exc}") from None
        self._sdk._core._gate_way = config.api_url.rstrip("/")

    def _call(self, what: str, call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            code, message = call(*args, **kwargs)
        except GatewayError:
            raise
        except Exception as exc:  # requests' errors, the SDK's signature check
            raise GatewayError(f"wechat {what}: {exc}") from None
        return _json(code, message, f"wechat {what}")

    def start(self, order_no: str, amount_fen: int, subject: str, channel: str,
              return_url: str, client_ip: str, openid: str = "") -> PayStart:
        amount = {"total": amount_fen, "currency": "CNY"}
        if channel == "jsapi":
            answer = self._call("jsapi order", self._sdk.pay, description=subject,
                                out_trade_no=order_no, amount=amount, payer={"openid": openid},
                                pay_type=self._types.JSAPI)
            stamp, nonce = str(int(time.time())), secrets.token_hex(16)
            package = f"prepay_id={answer['prepay_id']}"
            return PayStart(jsapi={
                "appId": self.app_id, "timeStamp": stamp, "nonceStr": nonce,
                "package": package, "signType": "RSA",
                "paySign": self._sdk.sign([self.app_id, stamp, nonce, package])})
        answer = self._call("h5 order", self._sdk.pay, description=subject,
                            out_trade_no=order_no, amount=amount, pay_type=self._types.H5,
                            scene_info={"payer_client_ip": client_ip or "127.0.0.1",
                                        "h5_info": {"type": "Wap"}})
        url = str(answer["h5_url"])
        sep = "&" if "?" in url else "?"
        from urllib.parse import quote

        return PayStart(url=f"{url}{sep}redirect_url={quote(return_url, safe='')}")

    def verify_notification(self, headers: Mapping[str, str], body: bytes,
                            now: datetime) -> Trade | None:
        return wechat_protocol.verify_notification(
            {k.lower(): v for k, v in headers.items()}, body, self.platform_keys,
            self._apiv3_key, now)

    def query(self, order_no: str) -> Trade | None:
        try:
            code, message = self._sdk.query(out_trade_no=order_no)
        except Exception as exc:
            raise GatewayError(f"wechat query: {exc}") from None
        if code == 404:
            return None
        return wechat_protocol.parse_transaction(
            json.dumps(_json(code, message, "wechat query")).encode())

    def close(self, order_no: str) -> None:
        try:
            code, message = self._sdk.close(out_trade_no=order_no)
        except Exception as exc:
            raise GatewayError(f"wechat close: {exc}") from None
        if code not in (200, 204):
            raise GatewayError(f"wechat close: HTTP {code}: {message!r}"[:300])

    def refund(self, order_no: str, refund_no: str, amount_fen: int, total_fen: int,
               reason: str) -> RefundResult:
        answer = self._call("refund", self._sdk.refund, out_refund_no=refund_no,
                            out_trade_no=order_no, reason=reason or None,
                            amount={"refund": amount_fen, "total": total_fen,
                                    "currency": "CNY"})
        return _wechat_refund(refund_no, answer)

    def query_refund(self, order_no: str, refund_no: str) -> RefundResult:
        return _wechat_refund(refund_no, self._call("refund query", self._sdk.query_refund,
                                                    out_refund_no=refund_no))

    def bill(self, day: date) -> list[BillRow]:
        answer = self._call("trade bill", self._sdk.trade_bill, bill_date=day.isoformat(),
                            tar_type=None)
        try:
            code, content = self._sdk.download_bill(answer["download_url"])
        except Exception as exc:
            raise GatewayError(f"wechat bill download: {exc}") from None
        if code != 200:
            raise GatewayError(f"wechat bill download: HTTP {code}")
        text = content.decode() if isinstance(content, bytes) else str(content)
        import hashlib

        if answer.get("hash_type") == "SHA1" and \
                hashlib.sha1(text.encode()).hexdigest() != answer.get("hash_value"):
            raise GatewayError("wechat bill download: the file's SHA1 is not the announced one")
        return wechat_protocol.parse_bill(text)


def _wechat_refund(refund_no: str, answer: Mapping[str, Any]) -> RefundResult:
    status = str(answer.get("status", ""))
    state = {"SUCCESS": "succeeded", "PROCESSING": "processing"}.get(status, "failed")
    return RefundResult(refund_no, state, str(answer.get("refund_id", "")), status)


@dataclass(frozen=True, slots=True)
class AlipayConfig:
    """An Alipay application's keys and names."""

    app_id: str
    seller_id: str
    private_key_pem: str
    alipay_public_key_pem: str
    notify_url: str
    gateway_url: str = "https://openapi.alipay.com/gateway.do"


class AlipayGateway:
    """Alipay wap pay through ``python-alipay-sdk``."""

    name = "alipay"

    def __init__(self, config: AlipayConfig) -> None:
        from alipay import AliPay

        self.config = config
        self.merchant_id = config.seller_id
        self.app_id = config.app_id
        try:
            self._sdk = AliPay(appid=config.app_id, app_notify_url=config.notify_url,
                               app_private_key_string=config.private_key_pem,
                               alipay_public_key_string=config.alipay_public_key_pem,
                               sign_type="RSA2")
        except Exception as exc:
            raise GatewayError(f"alipay: the application keys do not load: {exc}") from None
        self._sdk._gateway = config.gateway_url

    def _call(self, what: str, call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = call(*args, **kwargs)
        except Exception as exc:  # urllib's errors, AliPayException, a bad signature
            raise GatewayError(f"alipay {what}: {exc}"[:500]) from None
        return answer

    def start(self, order_no: str, amount_fen: int, subject: str, channel: str,
              return_url: str, client_ip: str, openid: str = "") -> PayStart:
        signed = self._sdk.api_alipay_trade_wap_pay(
            subject=subject, out_trade_no=order_no, total_amount=fen_to_yuan_text(amount_fen),
            return_url=return_url, quit_url=return_url)
        return PayStart(url=f"{self.config.gateway_url}?{signed}")

    def verify_notification(self, headers: Mapping[str, str], body: bytes,
                            now: datetime) -> Trade | None:
        from urllib.parse import parse_qsl

        try:
            params = dict(parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True))
        except (UnicodeDecodeError, ValueError):
            raise GatewayRefusal("body: not a form of notification fields") from None
        signature = params.pop("sign", "")
        if params.get("sign_type") != "RSA2":
            raise GatewayRefusal(f"sign_type: {params.get('sign_type')!r} is not RSA2")
        try:
            good = self._sdk.verify(dict(params), signature)
        except Exception:
            good = False
        if not good:
            raise GatewayRefusal("sign: does not verify with Alipay's public key")
        if params.get("notify_type", "trade_status_sync") != "trade_status_sync":
            return None
        return alipay_protocol.notice_trade(params)

    def query(self, order_no: str) -> Trade | None:
        answer = self._call("query", self._sdk.api_alipay_trade_query, out_trade_no=order_no)
        if answer.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
            return None
        if answer.get("code") != "10000":
            raise GatewayError(f"alipay query: {answer.get('code')} {answer.get('sub_msg')}")
        return alipay_protocol.notice_trade({
            **answer, "app_id": self.app_id, "seller_id": self.merchant_id})

    def close(self, order_no: str) -> None:
        answer = self._call("close", self._sdk.api_alipay_trade_close, out_trade_no=order_no)
        if answer.get("code") != "10000" and answer.get("sub_code") != "ACQ.TRADE_NOT_EXIST":
            raise GatewayError(f"alipay close: {answer.get('code')} {answer.get('sub_msg')}")

    def refund(self, order_no: str, refund_no: str, amount_fen: int, total_fen: int,
               reason: str) -> RefundResult:
        answer = self._call("refund", self._sdk.api_alipay_trade_refund,
                            refund_amount=fen_to_yuan_text(amount_fen), out_trade_no=order_no,
                            out_request_no=refund_no, refund_reason=reason)
        if answer.get("code") != "10000":
            return RefundResult(refund_no, "failed", "", str(answer.get("sub_msg", "")))
        return RefundResult(refund_no, "succeeded" if answer.get("fund_change") == "Y"
                            else "processing", str(answer.get("trade_no", "")))

    def query_refund(self, order_no: str, refund_no: str) -> RefundResult:
        answer = self._call("refund query", self._sdk.api_alipay_trade_fastpay_refund_query,
                            out_request_no=refund_no, out_trade_no=order_no)
        if answer.get("refund_status") == "REFUND_SUCCESS":
            return RefundResult(refund_no, "succeeded", str(answer.get("trade_no", "")))
        return RefundResult(refund_no, "processing" if answer.get("code") == "10000"
                            else "failed", "", str(answer.get("sub_msg", "")))

    def bill(self, day: date) -> list[BillRow]:
        import httpx

        answer = self._call("bill", self._sdk.server_api,
                            "alipay.data.dataservice.bill.downloadurl.query",
                            {"bill_type": "trade", "bill_date": day.isoformat()})
        if answer.get("code") != "10000":
            raise GatewayError(f"alipay bill: {answer.get('code')} {answer.get('sub_msg')}")
        try:
            got = httpx.get(answer["bill_download_url"], timeout=30)
            got.raise_for_status()
        except httpx.HTTPError as exc:
            raise GatewayError(f"alipay bill download: {exc}") from None
        return alipay_protocol.parse_bill(got.content)


def load_private_key(pem: str) -> RSAPrivateKey:
    key = load_pem_private_key(pem.encode(), None)
    assert isinstance(key, RSAPrivateKey)
    return key


__all__ = ["PAID", "AlipayConfig", "AlipayGateway", "Gateway", "PayStart", "WeChatConfig",
           "WeChatGateway", "load_private_key"]
