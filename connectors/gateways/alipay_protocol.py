"""Alipay open platform, sans I/O: RSA2 signatures of requests, responses and asynchronous
notifications, notification fields, the trade bill (opendocs.alipay.com: "签名", "验签",
"异步通知", "查询对账单下载地址").

- A request is signed over its parameters except ``sign``, sorted by name, joined as
  ``k=v&k=v`` (raw values); an asynchronous notification the same way except ``sign`` and
  ``sign_type``. RSA2 is SHA256withRSA (PKCS#1 v1.5). A notification verifies with
  Alipay's public key, never the merchant's.
- A response is ``{"<method>_response": {...}, "sign": "..."}``, signed over the exact text
  of the response object.
- The trade bill is a zip of GBK CSV files; the detail file lists each trade between its
  header and the line ``#---...业务明细列表结束...``.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import zipfile
from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.hashes import SHA256

from connectors.gateways.model import (
    CLOSED,
    PAID,
    WAITING,
    BillRow,
    GatewayRefusal,
    Trade,
    yuan_text_to_fen,
)

#: Alipay's times are Beijing time without an offset.
ALIPAY_ZONE = ZoneInfo("Asia/Shanghai")
TRADE_STATES = {"TRADE_SUCCESS": PAID, "TRADE_FINISHED": PAID, "WAIT_BUYER_PAY": WAITING,
                "TRADE_CLOSED": CLOSED}
BILL_HEADER = ("支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,"
               "操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,"
               "支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,"
               "卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注")
BILL_END = "#" + "-" * 41 + "业务明细列表结束" + "-" * 36


def signing_string(params: Mapping[str, str], exclude: tuple[str, ...] = ("sign",)) -> str:
    """``k=v&...`` of the non-empty parameters but ``exclude``, sorted by name."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params)
                    if k not in exclude and params[k] != "")


def sign(key: RSAPrivateKey, text: str) -> str:
    return base64.b64encode(key.sign(text.encode(), PKCS1v15(), SHA256())).decode()


def verifies(key: RSAPublicKey, text: str, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), text.encode(), PKCS1v15(),
                   SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def sign_notification(key: RSAPrivateKey, params: Mapping[str, str]) -> dict[str, str]:
    """A notification's form fields with ``sign_type`` and ``sign`` (the gateway's side)."""
    fields = {**params, "sign_type": "RSA2"}
    return {**fields, "sign": sign(key, signing_string(fields, ("sign", "sign_type")))}


def signed_response(key: RSAPrivateKey, method: str, body: Mapping[str, object]) -> bytes:
    """A synchronous answer: the response object and its signature over its exact text."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    name = method.replace(".", "_") + "_response"
    return f'{{"{name}":{text},"sign":"{sign(key, text)}"}}'.encode()


def check_request(params: Mapping[str, str], app_key: RSAPublicKey) -> None:
    """The gateway's check of a merchant request (stand-in): RSA2 over all but ``sign``."""
    if params.get("sign_type") != "RSA2":
        raise GatewayRefusal(f"sign_type: {params.get('sign_type')!r} is not RSA2")
    if not verifies(app_key, signing_string(params), params.get("sign", "")):
        raise GatewayRefusal("sign: does not verify with the application's public key")


def notice_trade(params: Mapping[str, str]) -> Trade:
    """The trade of a verified notification (or query answer) as a Trade."""
    try:
        state = TRADE_STATES.get(params["trade_status"])
        if state is None:
            raise GatewayRefusal(f"trade_status: {params['trade_status']!r} is unknown")
        paid = params.get("gmt_payment") or params.get("send_pay_date") or ""
        paid_at = datetime.fromisoformat(paid).replace(tzinfo=ALIPAY_ZONE) if paid else None
        return Trade("alipay", params["out_trade_no"], state,
                     yuan_text_to_fen(params["total_amount"], "total_amount"),
                     params.get("seller_id", ""), params.get("app_id", ""),
                     params.get("trade_no", ""), paid_at, params.get("buyer_id", ""))
    except KeyError as exc:
        raise GatewayRefusal(f"{exc.args[0]}: missing") from None
    except ValueError as exc:
        if isinstance(exc, GatewayRefusal):
            raise
        raise GatewayRefusal(f"gmt_payment: {exc}") from None


def bill_zip(rows: list[dict[str, str]], account: str, day: str) -> bytes:
    """A trade bill as Alipay publishes it (stand-in): a zip with the GBK detail CSV."""
    columns = BILL_HEADER.split(",")
    lines = ["#支付宝业务明细查询", f"#账号：[{account}]", f"#起始日期：[{day} 00:00:00]",
             "#" + "-" * 41 + "业务明细列表" + "-" * 40,
             BILL_HEADER]
    lines += [",".join(row.get(c, "") for c in columns) for row in rows]
    lines += [BILL_END, f"#交易合计：{len(rows)}笔", "#导出时间：[" + day + " 23:59:59]"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{account}_{day}_业务明细.csv", "\r\n".join(lines).encode("gbk"))
        archive.writestr(f"{account}_{day}_业务明细(汇总).csv", "#汇总\r\n".encode("gbk"))
    return buffer.getvalue()


def parse_bill(data: bytes) -> list[BillRow]:
    """The trades of a bill zip: 交易 rows are payments, 退款 rows refunds."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        name = next(n for n in archive.namelist() if "汇总" not in n)
        text = archive.read(name).decode("gbk")
    except (zipfile.BadZipFile, StopIteration, UnicodeDecodeError) as exc:
        raise GatewayRefusal(f"bill: not an Alipay bill archive ({type(exc).__name__})") \
            from None
    lines = text.splitlines()
    try:
        start = lines.index(BILL_HEADER) + 1
        end = lines.index(BILL_END)
    except ValueError:
        raise GatewayRefusal("bill: no detail header or end line") from None
    columns = BILL_HEADER.split(",")
    rows: list[BillRow] = []
    for record in csv.reader(lines[start:end]):
        row = dict(zip(columns, (v.strip() for v in record), strict=False))
        amount = yuan_text_to_fen(row["订单金额（元）"].lstrip("-"), "bill amount")
        if row["业务类型"] == "交易":
            rows.append(BillRow(row["商户订单号"], "paid", amount, row["支付宝交易号"]))
        elif row["业务类型"] == "退款":
            rows.append(BillRow(row["商户订单号"], "refund", amount, row["支付宝交易号"],
                                row["退款批次号/请求号"]))
    return rows
