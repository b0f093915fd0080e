"""Pure parts of tenant self-service: the bill comparison, link tokens, order numbers,
the page's words (docs/tenant.md)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from connectors.gateways.model import BillRow
from meterflow.tenant.texts import TEXTS, texts
from services.tenant.bill_check import compare
from services.tenant.links import TOKEN, new_token, token_hash
from services.tenant.orders import new_order_no


def test_the_bill_check_names_each_kind_of_difference() -> None:
    bill = [BillRow("A", "paid", 100, "t1"), BillRow("B", "paid", 200, "t2"),
            BillRow("C", "paid", 300, "t3"), BillRow("A", "refund", 50, "t1", "R1"),
            BillRow("A", "refund", 10, "t1", "R9")]
    paid = {"A": 100, "C": 301, "D": 400}
    refunded = {"R1": ("A", 50), "R2": ("A", 20)}
    known = {"A": ("paid", 100), "B": ("created", 200), "C": ("paid", 301), "D": ("paid", 400)}
    found = {(f.order_no, f.finding) for f in compare(bill, paid, refunded, known)}
    assert found == {("B", "paid_not_applied"), ("C", "amount_differs"),
                     ("D", "applied_not_paid"), ("A", "refund_not_applied"),
                     ("A", "refund_applied_not_paid")}


def test_an_order_paid_on_another_day_is_not_a_difference() -> None:
    bill = [BillRow("A", "paid", 100, "t1")]
    assert compare(bill, {}, {}, {"A": ("paid", 100)}) == []


@given(st.lists(st.tuples(st.sampled_from("ABCDEF"), st.integers(1, 10**6)), max_size=12))
def test_a_bill_that_matches_what_was_applied_has_no_difference(
        rows: list[tuple[str, int]]) -> None:
    paid = dict(rows)
    bill = [BillRow(o, "paid", a, "t") for o, a in paid.items()]
    assert compare(bill, paid, {}, {o: ("paid", a) for o, a in paid.items()}) == []


def test_tokens_are_random_and_only_their_hash_is_kept() -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200 and all(TOKEN.fullmatch(t) for t in tokens)
    token = next(iter(tokens))
    assert len(token_hash(token)) == 64 and token not in token_hash(token)
    assert token_hash(token) != token_hash(token[:-1] + "x")


def test_order_numbers_suit_both_gateways_and_the_payment_key() -> None:
    numbers = {new_order_no(datetime(2026, 11, 29, 23, 0, tzinfo=UTC)) for _ in range(100)}
    assert len(numbers) == 100
    for number in numbers:
        assert number.startswith("MF20261129230000") and len(number) == 28
        assert number.isalnum()


def test_the_page_speaks_chinese_first_and_english() -> None:
    assert texts("zh")["balance"] == "余额" and texts("en")["balance"] == "Balance"
    assert texts("fr") == texts("zh")
    assert all(set(words) == {"zh", "en"} and all(words.values()) for words in TEXTS.values())
