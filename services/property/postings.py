"""Deductions (custom charges, apportionment shares): recorded durably, then to the wallet.

Like a payment (services/payments/store.py): the ``deductions`` row, unique on its
idempotency key and on (kind, item or group, account, period), and the outbox row that
carries it to ``meterflow.payments`` commit in one transaction; the wallet applies it once
per key and its ledger entry's ref is that key. Recording the same period again writes
nothing, however often a run is repeated or restarted.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

import psycopg
from psycopg.types.json import Jsonb

from contracts.messages import PaymentMessage, as_dict
from contracts.topics import PAYMENTS
from pipeline.billing.charges import posting_key

PREFIX = {"charge_item": "ci", "apportionment": "ap"}


@dataclass(frozen=True, slots=True)
class DeductionSpec:
    """What to take: ``kind`` charge_item or apportionment, from which item or group."""

    kind: str
    source_id: str
    account_id: str
    period: str
    period_start: date
    period_end: date
    amount_fen: int
    may_cut: bool
    detail: str = ""

    @property
    def key(self) -> str:
        return posting_key(PREFIX[self.kind], self.source_id, self.account_id, self.period)


INSERT = """
INSERT INTO deductions (deduction_id, idempotency_key, kind, source_id, account_id, period,
                        period_start, period_end, amount_fen, may_cut, detail, created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
RETURNING deduction_id
"""


def record_deduction(conn: psycopg.Connection, spec: DeductionSpec,
                     now: datetime | None = None) -> bool:
    """Record one deduction and its outbox row (in the caller's transaction); False when
    the period was recorded before (nothing written)."""
    if spec.amount_fen <= 0:
        raise ValueError(f"amount_fen: {spec.amount_fen} must be positive")
    at = (now or datetime.now(UTC)).astimezone(UTC)
    deduction_id = str(uuid.uuid4())
    inserted = conn.execute(INSERT, (
        deduction_id, spec.key, spec.kind, spec.source_id, spec.account_id, spec.period,
        spec.period_start, spec.period_end, spec.amount_fen, spec.may_cut, spec.detail[:500],
        at)).fetchone()
    if inserted is None:
        return False
    payload = as_dict(PaymentMessage(
        payment_id=deduction_id, idempotency_key=spec.key, account_id=spec.account_id,
        kind=spec.kind, amount_fen=spec.amount_fen, at=at.isoformat(), operator="",
        note=spec.detail[:500], may_cut=spec.may_cut))
    conn.execute("INSERT INTO outbox (topic, key, payload) VALUES (%s, %s, %s)",
                 (PAYMENTS, spec.account_id, Jsonb(payload)))
    return True
