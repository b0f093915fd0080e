"""Payment requests as values: amount parsing, validation, the request hash, the payload.

Pure (no I/O) so every rule is tested without services; :mod:`services.payments.store` does
the database work. Money rule (docs/architecture.md, invariants): amounts are typed by
operators as yuan with at most two places, parsed from their text as Decimal, never through
a binary float, and stored and sent as integer fen. """

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from contracts.messages import PaymentMessage, as_dict

KINDS = ("topup", "refund", "adjustment")
ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
KEY_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: Yuan as typed: digits, optionally a point and one or two places; no sign, no exponent.
#: Thirteen integer digits keep every sum of amounts far inside a signed 64-bit fen.
YUAN_PATTERN = re.compile(r"([0-9]{1,13})(?:\.([0-9]{1,2}))?")
MAX_OPERATOR = 64
MAX_NOTE = 500


class InvalidPayment(ValueError):
    """A request that breaks a rule; the message names the field and the reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def parse_yuan(text: object, field: str = "amount", *, allow_zero: bool = False) -> int:
    """Yuan typed as text (``"12"``, ``"12.5"``, ``"12.34"``) to integer fen.

    Floats are refused (their binary value is not what was typed); so are more than two
    places, signs, exponents and, unless ``allow_zero``, zero. Raises InvalidPayment.
    """
    if not isinstance(text, str):
        raise InvalidPayment(field, f"{text!r} must be given as text such as \"12.50\"")
    match = YUAN_PATTERN.fullmatch(text.strip())
    if match is None:
        raise InvalidPayment(
            field, f"{text!r} is not an amount in yuan with at most 2 decimal places "
                   "(digits, optionally '.' and one or two digits)")
    fen = int(Decimal(match.group(0)).scaleb(2))
    if fen == 0 and not allow_zero:
        raise InvalidPayment(field, f"{text!r} must be greater than zero")
    return fen


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """What an operator asked for; ``amount_fen`` is signed only for adjustments."""

    account_id: str
    kind: str
    amount_fen: int
    idempotency_key: str
    operator: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.account_id, str) or not ID_PATTERN.fullmatch(self.account_id):
            raise InvalidPayment("account_id", f"{self.account_id!r} is not 1-64 of "
                                               "A-Z a-z 0-9 . _ : -")
        if self.kind not in KINDS:
            raise InvalidPayment("kind", f"{self.kind!r} is not one of {', '.join(KINDS)}")
        if isinstance(self.amount_fen, bool) or not isinstance(self.amount_fen, int):
            raise InvalidPayment("amount_fen", f"{self.amount_fen!r} is not an integer of fen")
        if self.kind == "adjustment":
            if self.amount_fen == 0:
                raise InvalidPayment("amount_fen", "an adjustment must not be zero")
        elif self.amount_fen <= 0:
            raise InvalidPayment("amount_fen", f"a {self.kind} must be greater than zero")
        if abs(self.amount_fen) >= 10**15:
            raise InvalidPayment("amount_fen", f"{self.amount_fen} is out of range")
        if not isinstance(self.idempotency_key, str) or not KEY_PATTERN.fullmatch(
            self.idempotency_key
        ):
            raise InvalidPayment("idempotency_key", f"{self.idempotency_key!r} is not 1-128 of "
                                                    "A-Z a-z 0-9 . _ : -")
        if len(self.operator) > MAX_OPERATOR:
            raise InvalidPayment("operator", f"longer than {MAX_OPERATOR} characters")
        if len(self.note) > MAX_NOTE:
            raise InvalidPayment("note", f"longer than {MAX_NOTE} characters")

    def canonical(self) -> bytes:
        """The fields that decide what the wallet does, as sorted compact UTF-8 JSON.

        The operator's name is left out on purpose: the same payment retried from another
        desk is still the same payment. The note stays in: an adjustment's note is its
        reason in the ledger.
        """
        body = {"account_id": self.account_id, "kind": self.kind,
                "amount_fen": self.amount_fen, "note": self.note}
        return json.dumps(body, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()

    @property
    def request_hash(self) -> str:
        """sha256 hex of :meth:`canonical`: a repeat under the same key must match it."""
        return hashlib.sha256(self.canonical()).hexdigest()


def payment_payload(payment_id: str, request: PaymentRequest, at: datetime) -> dict[str, Any]:
    """The ``meterflow.payments`` value (``contracts.messages.PaymentMessage``,
    docs/contracts.md, Payments) as the outbox row keeps it; key: the account id."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("at must be timezone-aware")
    body = as_dict(PaymentMessage(
        payment_id=payment_id, idempotency_key=request.idempotency_key,
        account_id=request.account_id, kind=request.kind, amount_fen=request.amount_fen,
        at=at.isoformat(), operator=request.operator, note=request.note))
    del body["may_cut"]  # deductions only (services/property/postings.py)
    return body


def encode_payload(payload: dict[str, Any]) -> bytes:
    """Deterministic bytes of a payload, so a republished row is byte-identical."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()
