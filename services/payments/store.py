"""Durable payment intake: a payment and its outbox row in one PostgreSQL transaction.

Invariant (docs/architecture.md, invariants): a top-up or refund acknowledged to an operator
is never lost and never applied twice. So :func:`record_payment` returns only after the
``payments`` row (unique on its idempotency key) and the ``outbox`` row that will carry it
to ``meterflow.payments`` are committed together; the relay (:mod:`services.outbox`)
publishes it later, and the wallet applies it once per idempotency key, so a republished
message changes nothing.

A refund is accepted here whatever the balance: the balance lives in the wallet, which
refuses a refund above it with the reason ``insufficient_balance`` (an event on
``meterflow.alarms``, kind ``refused``), not at this door.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from contracts.topics import PAYMENTS
from services.payments.request import PaymentRequest, payment_payload


class UnknownAccount(LookupError):
    """The account named by a request does not exist."""

    def __init__(self, account_id: str) -> None:
        super().__init__(f"account_id: no account {account_id!r} (open it with "
                         "`meterflow account open`)")
        self.account_id = account_id


class IdempotencyConflict(Exception):
    """The idempotency key was used before for a different request."""

    def __init__(self, key: str, first: PaymentResult) -> None:
        super().__init__(
            f"idempotency_key: {key!r} was already used for a different request "
            f"({first.kind} of {first.amount_fen} fen on account {first.account_id}, "
            f"payment {first.payment_id}); use a new key for a new payment")
        self.key = key
        self.first = first


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """The stored payment; ``replayed`` is True when the key had been recorded before."""

    payment_id: str
    idempotency_key: str
    account_id: str
    kind: str
    amount_fen: int
    at: datetime
    replayed: bool


INSERT_PAYMENT = """
INSERT INTO payments (payment_id, idempotency_key, request_hash, account_id, kind, amount_fen,
                      operator, note, created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING payment_id
"""
SELECT_BY_KEY = """
SELECT payment_id, request_hash, account_id, kind, amount_fen, created_at
FROM payments WHERE idempotency_key = %s
"""
INSERT_OUTBOX = "INSERT INTO outbox (topic, key, payload) VALUES (%s, %s, %s)"


#: Called inside the payment's transaction, after its rows are written and only for a new
#: payment (not a replay): the API checks a refund against the balance and writes its audit
#: row there. Raising rolls the payment back: nothing is stored, nothing acknowledged.
OnInsert = Callable[[psycopg.Connection, "PaymentResult"], None]


def record_payment(conn: psycopg.Connection, account_id: str, kind: str, amount_fen: int,
                   idempotency_key: str, operator: str = "", note: str = "", *,
                   now: datetime | None = None,
                   on_insert: OnInsert | None = None) -> PaymentResult:
    """Record a payment and its outbox row in one transaction; return the stored payment.

    Raises InvalidPayment (a rule broken), UnknownAccount, or IdempotencyConflict (the key
    was used for another request). A repeat of the same request returns the first result
    with ``replayed=True`` and writes nothing. Safe under concurrent repeats: the unique
    key makes the second insert wait for the first and then see it.
    """
    request = PaymentRequest(account_id, kind, amount_fen, idempotency_key, operator, note)
    at = (now or datetime.now(UTC)).astimezone(UTC)
    payment_id = str(uuid.uuid4())
    if conn.info.transaction_status != TransactionStatus.IDLE:
        # Inside a caller's transaction ours would be a savepoint, committed (or not) later:
        # the payment would be acknowledged before it is durable.
        raise RuntimeError("record_payment needs a connection outside any transaction")
    with conn.transaction():
        inserted = None
        if conn.execute("SELECT 1 FROM accounts WHERE account_id = %s",
                        (account_id,)).fetchone() is not None:
            inserted = conn.execute(INSERT_PAYMENT, (
                payment_id, idempotency_key, request.request_hash, account_id, kind,
                amount_fen, operator, note, at)).fetchone()
        if inserted is not None:
            conn.execute(INSERT_OUTBOX, (PAYMENTS, account_id,
                                         Jsonb(payment_payload(payment_id, request, at))))
            result = PaymentResult(payment_id, idempotency_key, account_id, kind, amount_fen,
                                   at, replayed=False)
            if on_insert is not None:
                on_insert(conn, result)
            return result
        row = conn.execute(SELECT_BY_KEY, (idempotency_key,)).fetchone()
    if row is None:
        raise UnknownAccount(account_id)
    first_id, first_hash, first_account, first_kind, first_amount, first_at = row
    first = PaymentResult(first_id, idempotency_key, first_account, first_kind,
                          int(first_amount), first_at, replayed=True)
    if first_hash != request.request_hash:
        raise IdempotencyConflict(idempotency_key, first)
    return first


def pending_payments(conn: psycopg.Connection, account_id: str) -> int:
    """Payments of an account accepted but not yet published to Kafka by the relay."""
    row = conn.execute(
        "SELECT count(*) FROM outbox WHERE topic = %s AND key = %s AND published_at IS NULL",
        (PAYMENTS, account_id)).fetchone()
    return int(row[0]) if row else 0


def available_fen(conn: psycopg.Connection, account_id: str) -> int:
    """What a refund may take: the landed balance less refunds not yet in the ledger.

    Top-ups not yet applied do not count (they may still be refused or pending), so this
    errs on the safe side. It is a check at the door, not a guarantee: a charge can land
    between this check and the wallet applying the refund. The wallet is the authority and
    refuses a refund above the balance it holds (``insufficient_balance``, an alarm of kind
    ``refused``), so money is never paid out twice, only the operator learns it later.
    """
    row = conn.execute("""
        SELECT coalesce((SELECT balance_fen FROM balances WHERE account_id = %(a)s), 0)
             - coalesce((SELECT sum(p.amount_fen) FROM payments p
                         WHERE p.account_id = %(a)s AND p.kind = 'refund'
                           AND NOT EXISTS (SELECT 1 FROM ledger l WHERE l.account_id = %(a)s
                                           AND l.ref = p.idempotency_key)), 0)""",
                       {"a": account_id}).fetchone()
    return int(row[0]) if row else 0
