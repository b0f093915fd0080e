"""Refunds of a paid order back through its gateway (docs/tenant.md, refunds).

The refund is stored (``requested``) before the gateway is asked, checked against what the
order paid less its earlier refunds and against what the wallet holds. The wallet is debited
only once the gateway says the money left (``succeeded``): then one refund payment goes
through :func:`services.payments.store.record_payment` with the refund number as its
idempotency key. A gateway that could not be reached, or that is still processing, is asked
again by the settle service (:mod:`services.tenant.settle`); the gateway itself is
idempotent on the refund number, so asking twice refunds once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from connectors.gateways.clients import Gateway
from connectors.gateways.model import GatewayError, RefundResult
from services.payments.store import PaymentResult, available_fen, record_payment
from services.tenant.orders import OrderRefused, load_order


@dataclass(frozen=True, slots=True)
class Refund:
    refund_no: str
    order_no: str
    account_id: str
    gateway: str
    amount_fen: int
    state: str
    detail: str = ""


SELECT = """
SELECT r.refund_no, r.order_no, o.account_id, o.gateway, r.amount_fen, r.state, r.detail
FROM payment_refunds r JOIN payment_orders o USING (order_no) WHERE r.refund_no = %s
"""


def load_refund(conn: psycopg.Connection, refund_no: str) -> Refund | None:
    row = conn.execute(SELECT, (refund_no,)).fetchone()
    return Refund(*row) if row else None


def store_refund(conn: psycopg.Connection, order_no: str, amount_fen: int,
                 requested_by: str = "", reason: str = "") -> Refund:
    """Store a refund of a paid order; OrderRefused when the order or amount does not allow
    it. The order's row lock orders concurrent refunds of one order."""
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen <= 0:
        raise OrderRefused("amount", f"{amount_fen!r} fen must be a positive integer")
    refund_no = "RF" + datetime.now(UTC).strftime("%Y%m%d%H%M%S") + secrets.token_hex(6)
    with conn.transaction():
        order = load_order(conn, order_no)
        if order is None:
            raise OrderRefused("order_no", f"no order {order_no!r}")
        if order.state != "paid":
            raise OrderRefused("order_no", f"order {order_no} is {order.state}, not paid")
        conn.execute("SELECT 1 FROM payment_orders WHERE order_no = %s FOR UPDATE", (order_no,))
        [(taken,)] = conn.execute(
            "SELECT coalesce(sum(amount_fen), 0) FROM payment_refunds WHERE order_no = %s "
            "AND state <> 'failed'", (order_no,)).fetchall()
        if int(taken) + amount_fen > order.amount_fen:
            raise OrderRefused("amount", f"{amount_fen} fen exceeds what the order can still "
                                         f"refund ({order.amount_fen - int(taken)} fen)")
        left = available_fen(conn, order.account_id)
        if amount_fen > left:
            raise OrderRefused("amount", f"{amount_fen} fen exceeds the account's balance "
                                         f"that can be refunded ({left} fen)")
        conn.execute(
            "INSERT INTO payment_refunds (refund_no, order_no, amount_fen, reason, requested_by)"
            " VALUES (%s, %s, %s, %s, %s)",
            (refund_no, order_no, amount_fen, reason[:80], requested_by[:64]))
    return Refund(refund_no, order_no, order.account_id, order.gateway, amount_fen, "requested")


def send_refund(conn: psycopg.Connection, gateway: Gateway, refund: Refund) -> Refund:
    """Ask the gateway to refund (again: it is idempotent on the refund number) and record
    its answer; a gateway error leaves the refund for the settle service."""
    order = load_order(conn, refund.order_no)
    assert order is not None
    try:
        result = gateway.refund(refund.order_no, refund.refund_no, refund.amount_fen,
                                order.amount_fen, "MeterFlow")
    except GatewayError as exc:
        conn.execute("UPDATE payment_refunds SET detail = %s WHERE refund_no = %s",
                     (str(exc)[:500], refund.refund_no))
        return refund
    return finish_refund(conn, refund, result)


def finish_refund(conn: psycopg.Connection, refund: Refund, result: RefundResult) -> Refund:
    """Record the gateway's answer: a succeeded refund becomes one refund payment."""
    if result.state == "succeeded":
        def mark(conn: psycopg.Connection, payment: PaymentResult) -> None:
            conn.execute(
                "UPDATE payment_refunds SET state = 'succeeded', payment_id = %s, "
                "settled_at = now(), gateway_refund_no = %s, detail = %s "
                "WHERE refund_no = %s AND state <> 'succeeded'",
                (payment.payment_id, result.gateway_refund_no, result.detail,
                 refund.refund_no))

        record_payment(conn, refund.account_id, "refund", refund.amount_fen, refund.refund_no,
                       operator=refund.gateway,
                       note=f"{refund.gateway} refund {refund.refund_no} of {refund.order_no}",
                       on_insert=mark)
    else:
        conn.execute(
            "UPDATE payment_refunds SET state = %s, gateway_refund_no = %s, detail = %s "
            "WHERE refund_no = %s AND state IN ('requested', 'processing')",
            (result.state, result.gateway_refund_no, result.detail[:500], refund.refund_no))
    found = load_refund(conn, refund.refund_no)
    assert found is not None
    return found
