"""WeChat Pay API v3, sans I/O: request and notification signatures, the encrypted
resource, the trade bill (pay.weixin.qq.com/doc/v3/merchant: "签名生成", "签名验证",
"回调通知", "证书和回调报文解密", "申请交易账单").

- A message is signed with SHA256-RSA (PKCS#1 v1.5) over lines ending in ``\\n``: a request
  over ``method, path, timestamp, nonce, body``; a response or notification over
  ``timestamp, nonce, body``. The header ``Wechatpay-Serial`` names the platform key
  (a platform public key id ``PUB_KEY_ID_...`` or a platform certificate's serial).
- A notification is refused when its signature does not verify with the key its serial
  names, when its timestamp is more than 5 minutes away from now (a replayed message), or
  when its resource does not decrypt with the APIv3 key (AEAD_AES_256_GCM).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256

from connectors.gateways.model import (
    CLOSED,
    PAID,
    REFUNDED,
    WAITING,
    BillRow,
    GatewayRefusal,
    Trade,
    yuan_text_to_fen,
)

SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
MAX_SKEW_S = 300
TRADE_STATES = {"SUCCESS": PAID, "NOTPAY": WAITING, "USERPAYING": WAITING, "CLOSED": CLOSED,
                "REVOKED": CLOSED, "PAYERROR": CLOSED, "REFUND": REFUNDED}
_AUTH_FIELD = re.compile(r'(\w+)="([^"]*)"')


def sign(key: RSAPrivateKey, *lines: str) -> str:
    """Base64 SHA256-RSA signature over each line followed by ``\\n``."""
    message = "".join(f"{line}\n" for line in lines).encode()
    return base64.b64encode(key.sign(message, PKCS1v15(), SHA256())).decode()


def verifies(key: RSAPublicKey, signature: str, *lines: str) -> bool:
    """True when ``signature`` is ``sign`` of the same lines by the key's private half."""
    message = "".join(f"{line}\n" for line in lines).encode()
    try:
        key.verify(base64.b64decode(signature, validate=True), message, PKCS1v15(), SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def encrypt_resource(apiv3_key: bytes, plaintext: bytes, associated_data: str,
                     nonce: str) -> dict[str, str]:
    """The ``resource`` object of a notification (the gateway's side; stand-in)."""
    ciphertext = AESGCM(apiv3_key).encrypt(nonce.encode(), plaintext, associated_data.encode())
    return {"algorithm": "AEAD_AES_256_GCM", "ciphertext": base64.b64encode(ciphertext).decode(),
            "associated_data": associated_data, "nonce": nonce}


def decrypt_resource(apiv3_key: bytes, resource: Mapping[str, object]) -> bytes:
    """The plaintext of a ``resource`` object; GatewayRefusal when it does not decrypt."""
    if resource.get("algorithm") != "AEAD_AES_256_GCM":
        raise GatewayRefusal(f"resource.algorithm: {resource.get('algorithm')!r} is not "
                             "AEAD_AES_256_GCM")
    try:
        nonce = str(resource["nonce"]).encode()
        data = base64.b64decode(str(resource["ciphertext"]), validate=True)
        aad = str(resource.get("associated_data") or "").encode()
        return AESGCM(apiv3_key).decrypt(nonce, data, aad)
    except (KeyError, ValueError, InvalidTag) as exc:
        raise GatewayRefusal(f"resource: does not decrypt with the APIv3 key "
                             f"({type(exc).__name__})") from None


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    """The ``Wechatpay-*`` headers of a response or notification."""

    serial: str
    signature: str
    timestamp: str
    nonce: str
    signature_type: str = SIGNATURE_TYPE

    def as_dict(self) -> dict[str, str]:
        return {"Wechatpay-Serial": self.serial, "Wechatpay-Signature": self.signature,
                "Wechatpay-Timestamp": self.timestamp, "Wechatpay-Nonce": self.nonce,
                "Wechatpay-Signature-Type": self.signature_type}


def signed_headers(key: RSAPrivateKey, serial: str, timestamp: int, nonce: str,
                   body: bytes) -> SignedHeaders:
    """Headers signing ``body`` as the platform signs (stand-in; tests)."""
    return SignedHeaders(serial, sign(key, str(timestamp), nonce, body.decode()),
                         str(timestamp), nonce)


def check_signed(headers: Mapping[str, str], body: bytes, platform_keys: Mapping[str, RSAPublicKey],
                 now: datetime, max_skew_s: int = MAX_SKEW_S) -> None:
    """Refuse (GatewayRefusal) a response or notification whose signature, serial or
    timestamp is wrong; ``headers`` with lower-case names."""
    serial = headers.get("wechatpay-serial", "")
    kind = headers.get("wechatpay-signature-type", SIGNATURE_TYPE)
    if kind != SIGNATURE_TYPE:
        raise GatewayRefusal(f"Wechatpay-Signature-Type: {kind!r} is not {SIGNATURE_TYPE}")
    key = platform_keys.get(serial)
    if key is None:
        raise GatewayRefusal(f"Wechatpay-Serial: {serial!r} names no platform key or "
                             "certificate MeterFlow holds")
    stamp = headers.get("wechatpay-timestamp", "")
    if not stamp.isdigit():
        raise GatewayRefusal(f"Wechatpay-Timestamp: {stamp!r} is not seconds since the epoch")
    skew = abs(now.timestamp() - int(stamp))
    if skew > max_skew_s:
        raise GatewayRefusal(f"Wechatpay-Timestamp: {skew:.0f} s away from now (at most "
                             f"{max_skew_s} s)")
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise GatewayRefusal("body: not UTF-8") from None
    if not verifies(key, headers.get("wechatpay-signature", ""), stamp,
                    headers.get("wechatpay-nonce", ""), text):
        raise GatewayRefusal("Wechatpay-Signature: does not verify over timestamp, nonce and "
                             "body with the platform key")


def parse_transaction(plain: bytes) -> Trade:
    """A decrypted transaction resource (or a query answer) as a Trade."""
    try:
        data = json.loads(plain)
        amount = data["amount"]
        total = amount["total"]
        if amount.get("currency", "CNY") != "CNY" or type(total) is not int:
            raise GatewayRefusal(f"amount: {amount!r} is not a whole number of CNY fen")
        state = TRADE_STATES.get(data["trade_state"])
        if state is None:
            raise GatewayRefusal(f"trade_state: {data['trade_state']!r} is unknown")
        paid_at = datetime.fromisoformat(data["success_time"]) if data.get("success_time") \
            else None
        return Trade("wechat", str(data["out_trade_no"]), state, total, str(data["mchid"]),
                     str(data["appid"]), str(data.get("transaction_id", "")), paid_at,
                     str((data.get("payer") or {}).get("openid", "")))
    except GatewayRefusal:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise GatewayRefusal(f"resource: not a transaction ({type(exc).__name__}: {exc})") \
            from None


def verify_notification(headers: Mapping[str, str], body: bytes,
                        platform_keys: Mapping[str, RSAPublicKey], apiv3_key: bytes,
                        now: datetime) -> Trade | None:
    """A payment notification's trade; None for an event of another type (a refund's);
    GatewayRefusal when it must not be trusted."""
    check_signed(headers, body, platform_keys, now)
    try:
        envelope = json.loads(body)
        event, resource = envelope["event_type"], envelope["resource"]
    except (ValueError, KeyError, TypeError):
        raise GatewayRefusal("body: not a notification (event_type and resource)") from None
    if not str(event).startswith("TRANSACTION."):
        return None
    if envelope.get("resource_type") != "encrypt-resource" or not isinstance(resource, dict):
        raise GatewayRefusal("resource_type: not encrypt-resource")
    return parse_transaction(decrypt_resource(apiv3_key, resource))


@dataclass(frozen=True, slots=True)
class Authorization:
    """The ``Authorization`` header of a merchant's request."""

    mchid: str
    serial_no: str
    nonce: str
    timestamp: str
    signature: str


def parse_authorization(header: str) -> Authorization:
    """``WECHATPAY2-SHA256-RSA2048 mchid="..",nonce_str="..",...``; GatewayRefusal."""
    scheme, _, rest = header.partition(" ")
    if scheme != SIGNATURE_TYPE:
        raise GatewayRefusal(f"Authorization: scheme {scheme!r} is not {SIGNATURE_TYPE}")
    fields = dict(_AUTH_FIELD.findall(rest))
    try:
        return Authorization(fields["mchid"], fields["serial_no"], fields["nonce_str"],
                             fields["timestamp"], fields["signature"])
    except KeyError as exc:
        raise GatewayRefusal(f"Authorization: {exc.args[0]} is missing") from None


def check_request(header: str, method: str, path: str, body: bytes, merchant_key: RSAPublicKey,
                  mchid: str, serial_no: str, now: datetime) -> None:
    """The gateway's check of a merchant request (stand-in): merchant, serial, time, signature."""
    auth = parse_authorization(header)
    if auth.mchid != mchid or auth.serial_no != serial_no:
        raise GatewayRefusal(f"Authorization: merchant {auth.mchid!r} with certificate "
                             f"{auth.serial_no!r} is not known")
    if not auth.timestamp.isdigit() or abs(now.timestamp() - int(auth.timestamp)) > MAX_SKEW_S:
        raise GatewayRefusal("Authorization: timestamp expired")
    if not verifies(merchant_key, auth.signature, method, path, auth.timestamp, auth.nonce,
                    body.decode()):
        raise GatewayRefusal("Authorization: signature does not verify")


# --- the trade bill (申请交易账单 / 下载账单): CSV, every value behind a backquote --------

BILL_HEADER = ("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,"
               "交易类型,交易状态,付款银行,货币种类,应结订单总金额,代金券金额,微信退款单号,"
               "商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,"
               "手续费,费率,订单金额,申请退款金额,费率备注")
_BILL_COLUMNS = BILL_HEADER.split(",")


def bill_line(values: Mapping[str, str]) -> str:
    """One bill row from its named columns (stand-in)."""
    return ",".join(f"`{values.get(c, '')}" for c in _BILL_COLUMNS)


def parse_bill(text: str) -> list[BillRow]:
    """The rows of a trade bill of type ALL: SUCCESS rows are payments, REFUND rows refunds;
    the summary after the rows is skipped. GatewayRefusal when the header is not a bill's."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != BILL_HEADER:
        raise GatewayRefusal("bill: the first line is not the trade bill header")
    rows: list[BillRow] = []
    for record in csv.reader(io.StringIO("\n".join(lines[1:]))):
        if not record or not record[0].startswith("`"):
            break  # the summary: 总交易单数,...
        row = dict(zip(_BILL_COLUMNS, (v.lstrip("`") for v in record), strict=False))
        state = row.get("交易状态", "")
        if state == "SUCCESS":
            rows.append(BillRow(row["商户订单号"], "paid", _yuan(row["应结订单总金额"]),
                                row["微信订单号"]))
        elif state == "REFUND":
            rows.append(BillRow(row["商户订单号"], "refund", _yuan(row["退款金额"]),
                                row["微信订单号"], row["商户退款单号"]))
    return rows


def _yuan(text: str) -> int:
    return yuan_text_to_fen(text, "bill amount")
