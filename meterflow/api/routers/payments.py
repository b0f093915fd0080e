"""Top-ups and refunds through the durable outbox path, with an ``Idempotency-Key``.

The header is required. The same key with the same body returns the first payment (200,
``Idempotent-Replayed: true``, the same payment id); the same key with another body is
refused (409 naming ``Idempotency-Key``). A new payment is 201, returned only after the
payment, its outbox row and its audit row committed together (services/payments/store.py). A
restricted operator pays into, refunds from and sees the accounts of their scope only.
"""

from __future__ import annotations

from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Header, Path, Response

from contracts.topics import PAYMENTS
from meterflow.api import audit
from meterflow.api.auth import Ctx, require
from meterflow.api.errors import ApiError
from meterflow.api.places import check
from meterflow.api.routers.common import Limit, Model, Offset, QueryId, one, out, rows, yuan
from meterflow.api.scope import in_scope_sql
from meterflow.api.types import KEY_RE, Fen, Id, Note
from services.payments.store import PaymentResult, available_fen, record_payment

router = APIRouter(tags=["payments"])
Key = Annotated[str, Header(alias="Idempotency-Key", pattern=KEY_RE,
                            description="1-128 of A-Z a-z 0-9 . _ : -; the same key and body "
                                        "again returns the first payment")]


class PaymentIn(Model):
    account_id: Id
    amount: Fen
    note: Note = ""


def pay(ctx: Ctx, kind: str, account_id: str, amount_fen: int, key: str,
        note: str) -> PaymentResult:
    """Record a payment with its audit row (and a refund's balance check) in its
    transaction; used by the endpoints and by batch top-ups."""
    check(ctx.conn, ctx.actor, "account", account_id)

    def checks(conn: psycopg.Connection, result: PaymentResult) -> None:
        if kind == "refund":
            # One refund at a time per account: the row lock orders concurrent refunds,
            # and each sees those committed before it.
            conn.execute("SELECT 1 FROM accounts WHERE account_id = %s FOR UPDATE",
                         (account_id,))
            left = available_fen(conn, account_id)
            if left < 0:
                raise ApiError(409, "amount", f"{yuan(amount_fen)} exceeds what can be refunded "
                                              f"now ({yuan(left + amount_fen)})")
        audit.record(conn, ctx.actor, ctx.request_id, f"payment.{kind}",
                     f"account:{account_id}", None, _payment(result))

    return record_payment(ctx.conn, account_id, kind, amount_fen, key, ctx.actor.name[:64],
                          note, on_insert=checks)


def _payment(result: PaymentResult) -> dict[str, Any]:
    return {"payment_id": result.payment_id, "idempotency_key": result.idempotency_key,
            "account_id": result.account_id, "kind": result.kind,
            "amount": yuan(result.amount_fen), "amount_fen": result.amount_fen,
            "at": result.at.isoformat(), "replayed": result.replayed}


def _answer(result: PaymentResult, response: Response) -> dict[str, Any]:
    if result.replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return _payment(result)


@router.post("/topups", status_code=201)
def topup(body: PaymentIn, response: Response, idempotency_key: Key,
          ctx: Ctx = Depends(require("topup"))) -> dict[str, Any]:
    """Credit an account (durable before the answer; applied by the wallet once)."""
    return _answer(pay(ctx, "topup", body.account_id, body.amount, idempotency_key,
                       body.note), response)


@router.post("/refunds", status_code=201)
def refund(body: PaymentIn, response: Response, idempotency_key: Key,
           ctx: Ctx = Depends(require("refund"))) -> dict[str, Any]:
    """Pay credit back; refused (409) above the balance less pending refunds."""
    return _answer(pay(ctx, "refund", body.account_id, body.amount, idempotency_key,
                       body.note), response)


PAYMENT_SQL = """
SELECT p.payment_id, p.idempotency_key, p.account_id, p.kind, p.amount_fen, p.operator,
       p.note, p.created_at AS at,
       CASE WHEN l.entry_id IS NOT NULL THEN 'applied'
            WHEN r.alarm_id IS NOT NULL THEN 'refused'
            WHEN o.published_at IS NOT NULL THEN 'published' ELSE 'pending' END AS status
FROM payments p
LEFT JOIN LATERAL (SELECT entry_id FROM ledger WHERE account_id = p.account_id
                   AND ref = p.idempotency_key LIMIT 1) l ON true
LEFT JOIN LATERAL (SELECT alarm_id FROM alarms WHERE account_id = p.account_id
                   AND kind = 'refused' AND detail LIKE '%%' || p.idempotency_key || '%%'
                   LIMIT 1) r ON true
LEFT JOIN LATERAL (SELECT published_at FROM outbox WHERE topic = %(topic)s
                   AND key = p.account_id AND payload->>'payment_id' = p.payment_id
                   LIMIT 1) o ON true
"""


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    return {**out(row), "amount": yuan(row["amount_fen"])}


@router.get("/payments/{payment_id}")
def get_payment(payment_id: Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")],
                ctx: Ctx = Depends(require("read"))) -> dict[str, Any]:
    """One payment and how far it got: pending, published, applied or refused."""
    row = one(ctx.conn, PAYMENT_SQL + " WHERE p.payment_id = %(id)s",
              {"topic": PAYMENTS, "id": payment_id})
    if row is None:
        raise ApiError(404, "payment_id", f"no payment {payment_id!r}")
    check(ctx.conn, ctx.actor, "account", row["account_id"])
    return _shown(row)


@router.get("/payments")
def list_payments(ctx: Ctx = Depends(require("read")), account_id: QueryId = None,
                  limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
    """Payments, newest first, with their status."""
    check(ctx.conn, ctx.actor, "account", account_id)
    found = rows(ctx.conn, PAYMENT_SQL + f"""
        WHERE (%(a)s::text IS NULL OR p.account_id = %(a)s)
          AND {in_scope_sql("account", "p.account_id")}
        ORDER BY p.created_at DESC LIMIT %(limit)s OFFSET %(offset)s""",
        {"topic": PAYMENTS, "a": account_id, "limit": limit, "offset": offset,
         **ctx.actor.scope.params()})
    return {"items": [_shown(r) for r in found], "limit": limit, "offset": offset}
