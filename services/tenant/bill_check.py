"""The daily check of what MeterFlow applied against a gateway's trade bill
(docs/tenant.md, reconciliation). Gateways cut their bills by Beijing day.

Findings per order (or refund): ``paid_not_applied`` (in the bill, not a paid order here),
``applied_not_paid`` (a paid order here, not in the bill), ``amount_differs``, and the
same two for refunds. Each run is stored with its findings, and each finding raises a
``payment_mismatch`` alarm on ``meterflow.alarms`` through the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import psycopg
from psycopg.types.json import Jsonb

from connectors.gateways.clients import Gateway
from connectors.gateways.model import BillRow
from contracts.ids import derive_id
from contracts.messages import AlarmMessage, as_dict
from contracts.topics import ALARMS
from contracts.zones import zone

BILL_ZONE = zone("Asia/Shanghai")


@dataclass(frozen=True, slots=True)
class Finding:
    order_no: str
    finding: str
    detail: str
    account_id: str = ""


def compare(bill: list[BillRow], paid: dict[str, int], refunded: dict[str, tuple[str, int]],
            known: dict[str, tuple[str, int]]) -> list[Finding]:
    """Pure: the bill's rows against the orders applied that day (``paid``: order -> fen),
    the refunds applied (refund -> (order, fen)) and every stored order (order ->
    (state, fen)), as findings."""
    found: list[Finding] = []
    billed = {r.order_no: r.amount_fen for r in bill if r.kind == "paid"}
    billed_refunds = {r.refund_no: r for r in bill if r.kind == "refund"}
    for order_no, amount in sorted(billed.items()):
        state, ours = known.get(order_no, ("unknown", 0))
        if order_no not in paid and state != "paid":
            found.append(Finding(order_no, "paid_not_applied",
                                 f"the bill has {amount} fen paid; the order is {state} here"))
        elif state == "paid" and ours != amount:
            found.append(Finding(order_no, "amount_differs",
                                 f"the bill has {amount} fen; applied {ours} fen"))
    for order_no, amount in sorted(paid.items()):
        if order_no not in billed:
            found.append(Finding(order_no, "applied_not_paid",
                                 f"applied {amount} fen; not paid in the gateway's bill"))
    for refund_no, row in sorted(billed_refunds.items()):
        if refund_no not in refunded:
            found.append(Finding(row.order_no, "refund_not_applied",
                                 f"refund {refund_no} of {row.amount_fen} fen in the bill is "
                                 "not applied here"))
    for refund_no, (order_no, amount) in sorted(refunded.items()):
        if refund_no not in billed_refunds:
            found.append(Finding(order_no, "refund_applied_not_paid",
                                 f"refund {refund_no} of {amount} fen applied; not in the bill"))
    return found


def check_bill(conn: psycopg.Connection, gateway: Gateway, day: date,
               now: datetime | None = None) -> list[Finding]:
    """Download the bill of ``day``, compare, store the run and its findings, alarm."""
    bill = gateway.bill(day)
    start = datetime.combine(day, time(0), BILL_ZONE)
    span = (start, start + timedelta(days=1), gateway.name)
    paid: dict[str, int] = dict(conn.execute(
        "SELECT order_no, amount_fen FROM payment_orders WHERE state = 'paid' AND paid_at >= %s "
        "AND paid_at < %s AND gateway = %s", span).fetchall())
    refunded = {r: (o, a) for r, o, a in conn.execute(
        "SELECT r.refund_no, r.order_no, r.amount_fen FROM payment_refunds r JOIN "
        "payment_orders o USING (order_no) WHERE r.state = 'succeeded' AND r.settled_at >= %s "
        "AND r.settled_at < %s AND o.gateway = %s", span).fetchall()}
    names = sorted({r.order_no for r in bill} | {o for o, _ in refunded.values()})
    known = {o: (s, a) for o, s, a in conn.execute(
        "SELECT order_no, state, amount_fen FROM payment_orders WHERE order_no = ANY(%s)",
        (names,)).fetchall()}
    accounts: dict[str, str] = dict(conn.execute(
        "SELECT order_no, account_id FROM payment_orders WHERE order_no = ANY(%s)",
        (sorted(set(names) | set(paid)),)).fetchall())
    found = [Finding(f.order_no, f.finding, f.detail, accounts.get(f.order_no, ""))
             for f in compare(bill, paid, refunded, known)]
    at = (now or datetime.now(UTC)).astimezone(UTC)
    with conn.transaction():
        conn.execute("INSERT INTO gateway_bill_checks (gateway, bill_date, checked_at, "
                     "bill_rows, differences) VALUES (%s, %s, %s, %s, %s)",
                     (gateway.name, day, at, len(bill), len(found)))
        for f in found:
            conn.execute(
                "INSERT INTO gateway_bill_differences (gateway, bill_date, checked_at, order_no, "
                "finding, detail) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (gateway.name, day, at, f.order_no, f.finding, f.detail))
            account = f.account_id or "unknown"
            alarm = AlarmMessage(
                alarm_id=derive_id("payment_mismatch", gateway.name, day.isoformat(),
                                   f.order_no, f.finding),
                account_id=account, kind="payment_mismatch", level=None, threshold_fen=None,
                balance_fen=None, at=at.isoformat(),
                detail=f"{gateway.name} bill {day}: order {f.order_no} {f.finding}: {f.detail}")
            conn.execute("INSERT INTO outbox (topic, key, payload) VALUES (%s, %s, %s)",
                         (ALARMS, account, Jsonb(as_dict(alarm))))
    return found
