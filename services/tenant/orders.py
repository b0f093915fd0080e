"""Gateway orders and their one payment each (docs/tenant.md, money path).

1. :func:`create_order` stores the order (account, amount, merchant, app) before the
   tenant is sent to the gateway.
2. A trade the gateway reports, by a verified notification or a query answer, goes
   through :func:`apply_trade`: it must be the stored order (amount, merchant, app id;
   ``connectors.gateways.model.trade_differences``) and paid; then it becomes one top-up
   by :func:`services.payments.store.record_payment` with the order number as the
   idempotency key, and the order is marked paid in the same transaction. A repeat (the
   gateway's retries, duplicates, concurrent deliveries, the query after a notification)
   finds the key and changes nothing.
3. Every notification is kept with its raw bytes and outcome (:func:`log_notification`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from connectors.gateways.model import PAID, OrderFacts, Trade, trade_differences
from contracts.errors import RefusedRequest
from services.payments.store import PaymentResult, record_payment

CHANNELS = {"wechat": ("jsapi", "h5"), "alipay": ("wap",)}
MIN_FEN, MAX_FEN = 1, 5_000_000


class OrderRefused(RefusedRequest):
    """A request for an order, or a reported trade, that breaks a rule; names the field."""


@dataclass(frozen=True, slots=True)
class Order:
    order_no: str
    gateway: str
    channel: str
    account_id: str
    amount_fen: int
    merchant_id: str
    app_id: str
    state: str
    created_at: datetime
    payment_id: str | None = None

    @property
    def facts(self) -> OrderFacts:
        return OrderFacts(self.order_no, self.gateway, self.amount_fen, self.merchant_id,
                          self.app_id)


@dataclass(frozen=True, slots=True)
class Applied:
    """What became of a reported trade: ``applied`` (a new payment), ``replayed`` (the
    payment existed) or ``ignored`` (the trade is not paid)."""

    outcome: str
    order: Order
    payment_id: str | None = None


COLUMNS = ("order_no, gateway, channel, account_id, amount_fen, merchant_id, app_id, state, "
           "created_at, payment_id")


def new_order_no(now: datetime) -> str:
    """``MF`` + UTC time to the second + 12 random hex digits: unique, 28 characters, legal
    as WeChat's and Alipay's out_trade_no and as an idempotency key."""
    return "MF" + now.astimezone(UTC).strftime("%Y%m%d%H%M%S") + secrets.token_hex(6)


def create_order(conn: psycopg.Connection, gateway: str, channel: str, account_id: str,
                 amount_fen: int, merchant_id: str, app_id: str, *, link_id: str | None = None,
                 openid: str = "", query_after: timedelta = timedelta(minutes=2),
                 expires_after: timedelta = timedelta(minutes=30),
                 now: datetime | None = None) -> Order:
    """Store a new order (committed before the caller starts the payment)."""
    if channel not in CHANNELS.get(gateway, ()):
        raise OrderRefused("channel", f"{channel!r} is not a channel of {gateway!r}")
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or \
            not MIN_FEN <= amount_fen <= MAX_FEN:
        raise OrderRefused("amount", f"{amount_fen!r} fen is not between {MIN_FEN} and {MAX_FEN}")
    at = (now or datetime.now(UTC)).astimezone(UTC)
    order_no = new_order_no(at)
    with conn.transaction():
        if conn.execute("SELECT 1 FROM accounts WHERE account_id = %s",
                        (account_id,)).fetchone() is None:
            raise OrderRefused("account_id", f"no account {account_id!r}")
        conn.execute(
            "INSERT INTO payment_orders (order_no, gateway, channel, account_id, amount_fen, "
            "merchant_id, app_id, link_id, payer_openid, created_at, query_at, expires_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (order_no, gateway, channel, account_id, amount_fen, merchant_id, app_id, link_id,
             openid, at, at + query_after, at + expires_after))
    return Order(order_no, gateway, channel, account_id, amount_fen, merchant_id, app_id,
                 "created", at)


def load_order(conn: psycopg.Connection, order_no: str) -> Order | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM payment_orders WHERE order_no = %s",
                       (order_no,)).fetchone()
    return Order(*row) if row else None


MARK_PAID = """
UPDATE payment_orders SET state = 'paid', payment_id = %s, paid_at = %s, gateway_trade_no = %s,
       settled_by = %s
WHERE order_no = %s AND state <> 'paid'
"""


def apply_trade(conn: psycopg.Connection, trade: Trade, settled_by: str) -> Applied:
    """Apply a verified trade to its stored order: one payment, ever (module doc).
    OrderRefused when there is no such order or the trade is not the order."""
    order = load_order(conn, trade.order_no)
    if order is None:
        raise OrderRefused("out_trade_no", f"no order {trade.order_no!r}")
    differences = trade_differences(order.facts, trade)
    if differences:
        raise OrderRefused("order", "; ".join(differences))
    if trade.state != PAID:
        return Applied("ignored", order)

    def mark(conn: psycopg.Connection, result: PaymentResult) -> None:
        conn.execute(MARK_PAID, (result.payment_id, trade.paid_at or result.at, trade.trade_no,
                                 settled_by, order.order_no))

    result = record_payment(conn, order.account_id, "topup", order.amount_fen, order.order_no,
                            operator=order.gateway, note=f"{order.gateway} order {order.order_no}",
                            on_insert=mark)
    return Applied("replayed" if result.replayed else "applied", order, result.payment_id)


def log_notification(conn: psycopg.Connection, gateway: str, order_no: str, outcome: str,
                     reason: str, headers: dict[str, Any], raw: bytes) -> None:
    """Keep a notification as it came, with what became of it."""
    conn.execute(
        "INSERT INTO gateway_notifications (gateway, order_no, outcome, reason, headers, raw) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (gateway, order_no[:64], outcome, reason[:2000], Jsonb(headers), raw))


def close_order(conn: psycopg.Connection, order_no: str) -> bool:
    """Mark an unpaid order closed (after the gateway closed it); False if it was paid."""
    row = conn.execute("UPDATE payment_orders SET state = 'closed' WHERE order_no = %s "
                       "AND state = 'created' RETURNING 1", (order_no,)).fetchone()
    return row is not None
