"""Custom charge items: schedules, catch-up, exactly once per period, amounts."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.billing.charges import (
    ChargeError,
    Schedule,
    amount_fen,
    closed_periods,
    periods_due,
    posting_key,
)

schedules = st.builds(
    Schedule,
    frequency=st.sampled_from(["once", "monthly", "quarterly", "yearly"]),
    start=st.dates(min_value=date(2024, 1, 1), max_value=date(2026, 12, 31)),
    end=st.none() | st.dates(min_value=date(2027, 1, 1), max_value=date(2029, 12, 31)),
    day=st.integers(min_value=1, max_value=28), month=st.integers(min_value=1, max_value=12))


@given(schedules, st.lists(st.integers(min_value=0, max_value=2000), min_size=1, max_size=30))
def test_each_period_is_charged_once_however_often_the_scheduler_runs_or_restarts(
        schedule: Schedule, offsets: list[int]) -> None:
    """Runs on arbitrary days, repeated and in any order (a clock stepped back after a
    restart): the scheduler keeps nothing in memory, each run records every due period
    under its key, and the store keeps a key once (the database's unique index). The keys
    stored are exactly the periods due by the latest day: none missed, none twice."""
    store: dict[str, int] = {}
    base = date(2024, 1, 1)
    last = base
    for offset in offsets:
        today = base + timedelta(days=offset)
        last = max(last, today)
        for period in periods_due(schedule, today):
            key = posting_key("ci", "fee", "A1", period.label)
            store[key] = store.get(key, 0) + 1
    recorded = len(store)
    expected = {posting_key("ci", "fee", "A1", p.label) for p in periods_due(schedule, last)}
    assert set(store) == expected  # nothing missed (caught up), nothing twice
    assert recorded == len(expected)


@given(schedules, st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31)))
def test_periods_are_disjoint_ordered_and_overlap_the_item(schedule: Schedule,
                                                           today: date) -> None:
    periods = periods_due(schedule, today)
    labels = [p.label for p in periods]
    assert len(set(labels)) == len(labels)
    for before, after in pairwise(periods):
        assert before.end <= after.start
    for period in periods:
        assert period.due <= today and period.due >= schedule.start
        assert period.end > schedule.start
        assert schedule.end is None or period.start <= schedule.end


def test_monthly_on_the_15th_catches_up_missed_months() -> None:
    fee = Schedule("monthly", date(2026, 1, 1), None, day=15)
    assert [p.label for p in periods_due(fee, date(2026, 1, 14))] == []
    assert [p.label for p in periods_due(fee, date(2026, 1, 15))] == ["2026-01"]
    # the service was down from February to April: all three months are due
    assert [p.label for p in periods_due(fee, date(2026, 4, 20))] == [
        "2026-01", "2026-02", "2026-03", "2026-04"]


def test_quarterly_yearly_once_and_end_dates() -> None:
    rent = Schedule("quarterly", date(2026, 2, 10), None, day=5, month=1)
    found = periods_due(rent, date(2026, 7, 5))
    assert [(p.label, p.start, p.end, p.due) for p in found] == [
        ("2026-01.Q", date(2026, 1, 1), date(2026, 4, 1), date(2026, 2, 10)),
        ("2026-04.Q", date(2026, 4, 1), date(2026, 7, 1), date(2026, 4, 5)),
        ("2026-07.Q", date(2026, 7, 1), date(2026, 10, 1), date(2026, 7, 5))]
    parking = Schedule("yearly", date(2025, 6, 1), date(2026, 12, 31), day=1, month=1)
    assert [p.label for p in periods_due(parking, date(2030, 1, 1))] == [
        "2025-01.Y", "2026-01.Y"]
    once = Schedule("once", date(2026, 3, 3))
    assert periods_due(once, date(2026, 3, 2)) == []
    assert [p.label for p in periods_due(once, date(2027, 1, 1))] == ["2026-03-03"]


def test_closed_periods_wait_for_the_month_to_end_and_the_run_day() -> None:
    assert closed_periods(date(2026, 1, 20), 3, date(2026, 2, 2)) == []
    assert [p.label for p in closed_periods(date(2026, 1, 20), 3, date(2026, 2, 3))] == [
        "2026-01"]
    assert [p.label for p in closed_periods(date(2026, 1, 1), 1, date(2026, 3, 31))] == [
        "2026-01", "2026-02"]


def test_worked_example_a_shop_paying_rent_and_property_fee_by_area() -> None:
    """Shop G-07, 86.35 m2: rent 120 yuan/m2 a quarter, property fee 3.8 yuan/m2 a month."""
    area = Decimal("86.35")
    assert amount_fen("area", Decimal("120"), area) == 1036200  # 10,362.00 yuan a quarter
    assert amount_fen("area", Decimal("3.8"), area) == 32813  # 328.13 yuan (328.13 exactly)
    # half up at the fen, once: 2.345 yuan/m2 x 86.35 = 202.49075 -> 202.49
    assert amount_fen("area", Decimal("2.345"), area) == 20249
    assert amount_fen("area", Decimal("0.0025"), Decimal(2)) == 1  # 0.005 -> 0.01 (half up)
    assert amount_fen("fixed", Decimal("150"), None) == 15000
    year = [p.label for p in periods_due(Schedule("monthly", date(2026, 1, 1), None, 1),
                                         date(2026, 12, 31))]
    assert len(year) == 12
    assert 12 * amount_fen("area", Decimal("3.8"), area) == 393756


def test_bad_items_name_the_field() -> None:
    with pytest.raises(ChargeError, match="area_m2"):
        amount_fen("area", Decimal(1), None)
    with pytest.raises(ChargeError, match="basis"):
        amount_fen("per_head", Decimal(1), None)
    with pytest.raises(ChargeError, match="amount"):
        amount_fen("fixed", Decimal(-1), None)
    with pytest.raises(ChargeError, match="frequency"):
        Schedule("weekly", date(2026, 1, 1))
    with pytest.raises(ChargeError, match="day"):
        Schedule("monthly", date(2026, 1, 1), day=31)
    with pytest.raises(ChargeError, match="end"):
        Schedule("monthly", date(2026, 1, 1), date(2025, 1, 1))
    with pytest.raises(ChargeError, match="item_id"):
        posting_key("ci", "x" * 120, "A1", "2026-01")
