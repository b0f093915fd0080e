"""Apportionment by the largest-remainder method (docs/tariffs.md, "Apportionment")."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.money import round_fen
from pipeline.billing.apportion import (
    ApportionError,
    Member,
    Share,
    allot,
    common_cost,
    common_units,
    split,
)

weights = st.lists(st.decimals(min_value=0, max_value=10_000, places=2), min_size=1,
                   max_size=40)


@given(st.integers(min_value=0, max_value=10**9), weights)
def test_shares_always_add_up_to_the_total(total: int, ws: list[Decimal]) -> None:
    shares = allot(total, [(f"A{i:02d}", w) for i, w in enumerate(ws)])
    assert sum(s.amount_fen for s in shares) == total
    for share in shares:
        # never further than one fen from the exact quota, never negative
        assert share.floor_fen <= share.quota < share.floor_fen + 1
        assert share.bonus_fen in (0, 1)
        assert share.amount_fen >= 0


@given(st.integers(min_value=0, max_value=10**7), weights)
def test_the_split_does_not_depend_on_the_order_given(total: int, ws: list[Decimal]) -> None:
    pairs = [(f"A{i:02d}", w) for i, w in enumerate(ws)]
    forward = {s.account_id: s.amount_fen for s in allot(total, pairs)}
    backward = {s.account_id: s.amount_fen for s in allot(total, pairs[::-1])}
    assert forward == backward


@given(st.integers(min_value=1, max_value=10**6), weights)
def test_a_larger_weight_never_gets_less(total: int, ws: list[Decimal]) -> None:
    shares = allot(total, [(f"A{i:02d}", w) for i, w in enumerate(ws)])
    for a in shares:
        for b in shares:
            if a.weight > b.weight:
                assert a.amount_fen >= b.amount_fen


def test_rounding_each_share_alone_loses_fen_where_largest_remainder_does_not() -> None:
    three = [("A", Decimal(1)), ("B", Decimal(1)), ("C", Decimal(1))]
    alone = [round_fen(Fraction(100, 3) / 100) for _ in three]  # 0.33 yuan each
    assert sum(alone) == 99  # one fen lost
    shares = allot(100, three)
    assert [s.amount_fen for s in shares] == [34, 33, 33]  # ties: larger weight, then id
    two_thirds = allot(200, three)
    assert [s.amount_fen for s in two_thirds] == [67, 67, 66]  # rounding alone: 67 x 3 = 201


def test_ties_go_to_the_larger_weight_then_the_smaller_account_id() -> None:
    shares = allot(1, [("B", Decimal(1)), ("A", Decimal(1))])
    assert {s.account_id: s.amount_fen for s in shares} == {"A": 1, "B": 0}
    shares = allot(3, [("A", Decimal(1)), ("B", Decimal(2)), ("C", Decimal(2))])
    # quotas 0.6, 1.2, 1.2: floors 0, 1, 1; one fen left goes to the largest remainder (A)
    assert [s.amount_fen for s in shares] == [1, 1, 1]


def test_worked_example_a_12_room_floor_corridor_split_by_area() -> None:
    """Corridor lighting of floor 3: 12 rooms, 30-45 m2; two vacant rooms are left out.

    The master meter used 412.6 kWh in March at 0.4883 yuan/kWh: 201.47 yuan (exact cost
    201.47258), 20,147 fen to split over the 10 occupied rooms' 367.5 m2.
    """
    areas = ["32.5", "32.5", "45", "38", "30", "41.5", "36", "32.5", "44", "35.5", "38", "30"]
    vacant = {"R305", "R311"}
    members = [Member(f"R3{i + 1:02d}", Decimal(a), f"R3{i + 1:02d}" in vacant)
               for i, a in enumerate(areas)]
    total = round_fen(Decimal("412.6") * Decimal("0.4883"))
    assert total == 20147
    shares = split(total, "area", members)
    assert [s.account_id for s in shares] == [m.account_id for m in members
                                              if m.account_id not in vacant]
    weight_sum = sum((s.weight for s in shares), Decimal(0))
    assert weight_sum == Decimal("367.5")
    assert sum(s.amount_fen for s in shares) == total
    assert {s.account_id: s.amount_fen for s in shares} == {
        "R301": 1782, "R302": 1782, "R303": 2467, "R304": 2083, "R306": 2275, "R307": 1973,
        "R308": 1782, "R309": 2412, "R310": 1946, "R312": 1645}
    # 20147 x 45 / 367.5 = 2466.9796...: floor 2466, and the remainder .98 earns a fen;
    # the five largest of the ten remainders get the 5 fen left over from the floors
    assert by_room(shares)["R303"].arithmetic(total, weight_sum) == (
        "20147 fen x 45 / 367.5 ≈ 2466.9796 fen -> 2466 + 1 = 2467 fen")
    assert sum(s.bonus_fen for s in shares) == 5
    with_vacant = split(total, "area", members, include_vacant=True)
    assert len(with_vacant) == 12 and sum(s.amount_fen for s in with_vacant) == total


def by_room(shares: list[Share]) -> dict[str, Share]:
    return {s.account_id: s for s in shares}


def test_methods_equal_usage_ratio_and_all_zero_weights() -> None:
    members = [Member("A", Decimal("10")), Member("B", Decimal("30")), Member("C", Decimal(0))]
    assert [s.amount_fen for s in split(1000, "equal", members)] == [334, 333, 333]
    assert [s.amount_fen for s in split(1000, "usage", members)] == [250, 750, 0]
    nobody_used = [Member("A", Decimal(0)), Member("B", Decimal(0))]
    assert [s.amount_fen for s in split(101, "usage", nobody_used)] == [51, 50]


def test_master_minus_sub_meters() -> None:
    assert common_units(Decimal(500), Decimal(420), True) == Decimal(80)
    assert common_units(Decimal(500), Decimal(520), True) == Decimal(0)  # never below zero
    assert common_units(Decimal(500), Decimal(420), False) == Decimal(500)
    assert common_cost(Decimal("250.00"), Decimal(500), Decimal(80)) == Fraction(40)
    assert common_cost(Decimal(0), Decimal(0), Decimal(0)) == 0


def test_bad_splits_name_the_field() -> None:
    with pytest.raises(ApportionError, match="total_fen"):
        allot(-1, [("A", Decimal(1))])
    with pytest.raises(ApportionError, match="members"):
        allot(5, [])
    assert allot(0, []) == []
    with pytest.raises(ApportionError, match="members"):
        allot(5, [("A", Decimal(1)), ("A", Decimal(2))])
    with pytest.raises(ApportionError, match="weight"):
        allot(5, [("A", Decimal(-1))])
    with pytest.raises(ApportionError, match="method"):
        split(5, "by_mood", [Member("A", Decimal(1))])
