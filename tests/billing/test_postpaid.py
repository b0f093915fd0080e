"""Postpaid bills: lines, totals, moves and settlement (docs/tariffs.md, "Postpaid bills")."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.money import round_fen
from pipeline.billing.postpaid import (
    BillError,
    BillLine,
    OpenBill,
    UsageLine,
    move,
    settle,
    status,
    totals,
    usage_lines,
)

usage = st.lists(st.builds(
    UsageLine, commodity=st.sampled_from(["electricity", "water"]),
    band=st.sampled_from([None, "sharp", "peak", "flat", "valley"]),
    step=st.sampled_from([None, 1, 2, 3]),
    units=st.decimals(min_value=0, max_value=10_000, places=3),
    exact_yuan=st.decimals(min_value=0, max_value=10_000, places=6)), max_size=12)


@given(usage, st.integers(min_value=0, max_value=10**8), st.integers(min_value=0, max_value=10**8),
       st.integers(min_value=-10**8, max_value=10**8),
       st.lists(st.integers(min_value=-10**6, max_value=10**7), max_size=6),
       st.integers(min_value=0, max_value=10**8))
def test_bill_totals_equal_the_sum_of_their_lines_and_of_the_ledger(
        found: list[UsageLine], power_fen: int, water_fen: int, opening: int,
        others: list[int], paid: int) -> None:
    """The ledger of the period: charges per commodity, deductions and adjustments, and
    payments; the bill's lines add up to its debits and its closing balance is the
    ledger's balance after the period."""
    lines = usage_lines("electricity", power_fen, found) + usage_lines("water", water_fen, found)
    assert sum(ln.amount_fen for ln in lines if ln.kind == "electricity") == power_fen
    assert sum(ln.amount_fen for ln in lines if ln.kind == "water") == water_fen
    lines += [BillLine("charge_item", f"item {i}", fen) for i, fen in enumerate(others)]
    ledger = [opening, -power_fen, -water_fen, *(-fen for fen in others), paid]
    bill = totals(opening, lines, paid)
    assert bill.charges_fen == sum(ln.amount_fen for ln in lines)
    assert bill.closing_fen == sum(ledger)
    assert bill.amount_due_fen == max(-sum(ledger), 0)
    assert bill.previous_arrears_fen == max(-opening, 0)


def test_worked_example_a_postpaid_office_with_a_month_of_tou_consumption() -> None:
    """Office 1208 in May: 3,412.5 kWh under the commercial TOU tariff; the ledger
    charged 3,170.13 yuan (the exact interval costs rounded once); a 0.5 yuan/m2 property
    fee on 120 m2; April left 200 yuan unpaid; 1,000 yuan paid in May."""
    found = [
        UsageLine("electricity", "sharp", None, Decimal("412.5"), Decimal("548.21625")),
        UsageLine("electricity", "peak", None, Decimal("1450"), Decimal("1612.8350")),
        UsageLine("electricity", "flat", None, Decimal("1050"), Decimal("756.4200")),
        UsageLine("electricity", "valley", None, Decimal("500"), Decimal("252.65")),
    ]
    exact = sum((u.exact_yuan for u in found), Decimal(0))
    charged = round_fen(exact)
    assert charged == 317012  # 3,170.12125 yuan
    lines = usage_lines("electricity", charged, found)
    assert [(ln.label, ln.amount_fen) for ln in lines] == [
        ("electricity sharp", 54822), ("electricity peak", 161283),
        ("electricity flat", 75642), ("electricity valley", 25265)]
    lines.append(BillLine("charge_item", "Property fee 2026-05", 6000))
    bill = totals(-20000, lines, 100000)
    assert bill.charges_fen == 323012
    assert bill.previous_arrears_fen == 20000
    assert bill.closing_fen == -20000 + 100000 - 323012
    assert bill.amount_due_fen == 243012


def test_moves_and_refusals() -> None:
    assert move("draft", "confirm") == "confirmed"
    assert move("confirmed", "issue") == "issued"
    assert move("overdue", "void") == "void"
    with pytest.raises(BillError, match="state: a issued bill cannot be confirmed"):
        move("issued", "confirm")
    with pytest.raises(BillError, match="state"):
        move("paid", "void")
    with pytest.raises(BillError, match="action"):
        move("draft", "shred")


def test_payments_settle_the_oldest_bills_first_and_late_ones_turn_overdue() -> None:
    march = OpenBill("B3", date(2026, 3, 1), 30000, date(2026, 4, 15))
    april = OpenBill("B4", date(2026, 4, 1), 20000, date(2026, 5, 15))
    paid = settle([april, march], 35000)
    assert paid == {"B3": 30000, "B4": 5000}
    assert status(march, paid["B3"], date(2026, 5, 20)) == "paid"
    assert status(april, paid["B4"], date(2026, 5, 10)) == "partly_paid"
    assert status(april, paid["B4"], date(2026, 5, 16)) == "overdue"
    assert status(april, 0, date(2026, 5, 1)) == "issued"
    # overdue stays overdue until paid, whatever day a later round thinks it is
    assert status(april, paid["B4"], date(2026, 5, 10), "overdue") == "overdue"
    assert status(april, 20000, date(2026, 5, 10), "overdue") == "paid"
    assert settle([march], -500) == {"B3": 0}


@given(st.lists(st.integers(min_value=0, max_value=10**6), max_size=10),
       st.integers(min_value=-10**6, max_value=10**7))
def test_settlement_never_pays_more_than_received_or_asked(asks: list[int], pool: int) -> None:
    bills = [OpenBill(f"B{i:02d}", date(2026, 1 + i % 12, 1), fen, date(2027, 1, 1))
             for i, fen in enumerate(asks)]
    paid = settle(bills, pool)
    assert sum(paid.values()) == min(max(pool, 0), sum(asks))
    ordered = sorted(bills, key=lambda b: (b.start, b.bill_id))
    for earlier, later in pairwise(ordered):
        if paid[later.bill_id] > 0:
            assert paid[earlier.bill_id] == earlier.charges_fen  # oldest first
