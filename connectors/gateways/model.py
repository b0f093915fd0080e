"""Gateway-neutral records: a trade as a gateway reports it, a refund, a bill row; and the
check of a reported trade against the order MeterFlow stored (docs/tenant.md, money path).

Pure: no I/O. Amounts are integer fen; a gateway's yuan text is parsed exactly
(:func:`yuan_text_to_fen`), never through a float.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

GATEWAYS = ("wechat", "alipay")
#: What a trade can be at the gateway, whatever the gateway's own words for it.
PAID, WAITING, CLOSED, REFUNDED = "paid", "waiting", "closed", "refunded"
_YUAN = re.compile(r"[0-9]{1,13}(?:\.[0-9]{1,2})?")


class GatewayRefusal(ValueError):
    """A gateway message that must not be acted on; ``reason`` names the field and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GatewayError(RuntimeError):
    """A gateway that could not be reached or answered with an error."""


def yuan_text_to_fen(text: str, field: str) -> int:
    """``"50.00"`` to 5000; anything else than digits with at most two places is refused."""
    if not isinstance(text, str) or not _YUAN.fullmatch(text):
        raise GatewayRefusal(f"{field}: {text!r} is not an amount in yuan")
    return int(Decimal(text).scaleb(2))


def fen_to_yuan_text(fen: int) -> str:
    """5000 to ``"50.00"``: how Alipay wants amounts."""
    return f"{fen // 100}.{fen % 100:02d}"


@dataclass(frozen=True, slots=True)
class Trade:
    """A trade as the gateway reports it (a notification or a query answer)."""

    gateway: str
    order_no: str
    state: str
    amount_fen: int
    merchant_id: str
    app_id: str
    trade_no: str = ""
    paid_at: datetime | None = None
    payer: str = ""


@dataclass(frozen=True, slots=True)
class RefundResult:
    """A refund as the gateway reports it: ``state`` is processing, succeeded or failed."""

    refund_no: str
    state: str
    gateway_refund_no: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class BillRow:
    """One line of a gateway's trade bill: a payment (``kind`` paid) or a refund."""

    order_no: str
    kind: str
    amount_fen: int
    trade_no: str
    refund_no: str = ""


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What MeterFlow stored for an order before the payment started."""

    order_no: str
    gateway: str
    amount_fen: int
    merchant_id: str
    app_id: str


def trade_differences(order: OrderFacts, trade: Trade) -> list[str]:
    """Each field of a reported trade that differs from the stored order, named; empty when
    the trade is the order (WeChat Pay v3 and Alipay notification docs: check amount,
    merchant and app before fulfilling)."""
    found: list[str] = []
    if trade.gateway != order.gateway:
        found.append(f"gateway: {trade.gateway!r}, the order is a {order.gateway} order")
    if trade.order_no != order.order_no:
        found.append(f"out_trade_no: {trade.order_no!r} is not {order.order_no!r}")
    if trade.amount_fen != order.amount_fen:
        found.append(f"amount: {trade.amount_fen} fen, the order is {order.amount_fen} fen")
    if trade.merchant_id != order.merchant_id:
        found.append(f"merchant: {trade.merchant_id!r}, the order's is {order.merchant_id!r}")
    if trade.app_id != order.app_id:
        found.append(f"app_id: {trade.app_id!r}, the order's is {order.app_id!r}")
    return found
