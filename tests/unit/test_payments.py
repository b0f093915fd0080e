"""Pure parts of the payment intake: amounts, validation, request hash, payload shape."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.money import yuan_text
from services.payments.request import (
    InvalidPayment,
    PaymentRequest,
    encode_payload,
    parse_yuan,
    payment_payload,
)


@pytest.mark.parametrize(("text", "fen"), [
    ("1", 100), ("0.01", 1), ("12.5", 1250), ("12.34", 1234), (" 100.00 ", 10000),
    ("007.10", 710), ("9999999999999.99", 999999999999999),
])
def test_yuan_text_becomes_integer_fen(text: str, fen: int) -> None:
    assert parse_yuan(text) == fen


@pytest.mark.parametrize(("value", "reason"), [
    ("12.345", "at most 2 decimal places"), ("1e3", "at most 2"), ("-5", "at most 2"),
    ("+5", "at most 2"), ("5.", "at most 2"), (".5", "at most 2"), ("", "at most 2"),
    ("NaN", "at most 2"), ("1,5", "at most 2"), ("12 yuan", "at most 2"),
    ("0", "greater than zero"), ("0.00", "greater than zero"),
    ("10000000000000", "at most 2"), (12.5, "must be given as text"), (12, "as text"),
])
def test_bad_amounts_are_refused_naming_the_field(value: object, reason: str) -> None:
    with pytest.raises(InvalidPayment, match=rf"^AMOUNT: .*{reason}") as info:
        parse_yuan(value, "AMOUNT")
    assert info.value.field == "AMOUNT"


def test_zero_is_allowed_where_asked() -> None:
    assert parse_yuan("0", allow_zero=True) == 0


@given(st.integers(min_value=1, max_value=10**15 - 1))
def test_two_place_yuan_text_round_trips_to_the_same_fen(fen: int) -> None:
    assert parse_yuan(yuan_text(fen)) == fen


@given(st.integers(min_value=1, max_value=10**9), st.integers(min_value=1, max_value=9))
def test_a_third_place_is_always_refused(fen: int, digit: int) -> None:
    with pytest.raises(InvalidPayment):
        parse_yuan(f"{yuan_text(fen)}{digit}")


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_floats_are_never_accepted(value: float) -> None:
    with pytest.raises(InvalidPayment, match="as text"):
        parse_yuan(value)


def request(**changes: object) -> PaymentRequest:
    fields: dict[str, object] = {"account_id": "A1", "kind": "topup", "amount_fen": 10000,
                                 "idempotency_key": "k-1", "operator": "ops", "note": ""}
    fields.update(changes)
    return PaymentRequest(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("changes", "field"), [
    ({"account_id": "A 1"}, "account_id"), ({"account_id": ""}, "account_id"),
    ({"kind": "gift"}, "kind"), ({"amount_fen": 0}, "amount_fen"),
    ({"amount_fen": -1}, "amount_fen"), ({"kind": "refund", "amount_fen": -5}, "amount_fen"),
    ({"kind": "adjustment", "amount_fen": 0}, "amount_fen"), ({"amount_fen": 1.5}, "amount_fen"),
    ({"amount_fen": True}, "amount_fen"), ({"amount_fen": 10**15}, "amount_fen"),
    ({"idempotency_key": ""}, "idempotency_key"), ({"idempotency_key": "a b"}, "idempotency_key"),
    ({"idempotency_key": "k" * 129}, "idempotency_key"), ({"operator": "o" * 65}, "operator"),
    ({"note": "n" * 501}, "note"),
])
def test_invalid_requests_name_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidPayment, match=f"^{field}: ") as info:
        request(**changes)
    assert info.value.field == field


def test_negative_adjustments_are_allowed() -> None:
    assert request(kind="adjustment", amount_fen=-250, note="meter misread").amount_fen == -250


def test_request_hash_is_sha256_of_the_sorted_compact_canonical_json() -> None:
    req = request(note="第一次")
    canonical = '{"account_id":"A1","amount_fen":10000,"kind":"topup","note":"第一次"}'
    assert req.canonical() == canonical.encode()
    assert req.request_hash == hashlib.sha256(canonical.encode()).hexdigest()


def test_request_hash_ignores_the_key_and_the_operator_but_not_what_is_applied() -> None:
    base = request()
    assert request(idempotency_key="other", operator="desk 2").request_hash == base.request_hash
    for changes in ({"amount_fen": 10001}, {"kind": "refund"}, {"account_id": "A2"},
                    {"note": "x"}):
        assert request(**changes).request_hash != base.request_hash, changes


@given(st.text(max_size=50), st.integers(min_value=1, max_value=10**12))
def test_canonical_form_is_valid_json_that_reads_back(note: str, fen: int) -> None:
    req = request(note=note, amount_fen=fen)
    assert json.loads(req.canonical()) == {"account_id": "A1", "kind": "topup",
                                           "amount_fen": fen, "note": note}


def test_payload_has_exactly_the_contract_fields() -> None:
    at = datetime(2026, 7, 1, 10, 0, tzinfo=timezone(timedelta(hours=8)))
    payload = payment_payload("6f1d3c2e-0000-4000-8000-000000000001",
                              request(note="cash at desk"), at)
    assert payload == {
        "payment_id": "6f1d3c2e-0000-4000-8000-000000000001", "idempotency_key": "k-1",
        "account_id": "A1", "kind": "topup", "amount_fen": 10000,
        "at": "2026-07-01T10:00:00+08:00", "operator": "ops", "note": "cash at desk",
    }
    assert isinstance(payload["amount_fen"], int)
    encoded = encode_payload(payload)
    assert json.loads(encoded) == payload
    assert encode_payload(dict(reversed(list(payload.items())))) == encoded  # deterministic


def test_payload_refuses_a_naive_instant() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        payment_payload("p", request(), datetime(2026, 7, 1))  # noqa: DTZ001
    assert payment_payload("p", request(), datetime(2026, 7, 1, tzinfo=UTC))["at"].endswith(
        "+00:00")
