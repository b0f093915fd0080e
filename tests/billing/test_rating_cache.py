"""The rating caches: bounded, per book, and never a reason for a different answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest

from contracts.money import round_half_up
from pipeline.billing import tariff_plan
from pipeline.billing.lru import Lru
from pipeline.billing.rating import Rating, SurchargeLine, Usage, rate
from pipeline.billing.tariff import TariffBook
from pipeline.billing.timeline import period_key

from . import reference_rating as reference
from .conftest import book_of, example

HEAD = "id: t\ncommodity: electricity\nunit: kWh\ncurrency: CNY\ntimezone: Europe/London\n"
TOU = 'bands: {peak: ["07:00-23:00"], valley: ["23:00-07:00"]}\nprices: {peak: 1, valley: 0.5}\n'


def test_lru_forgets_the_least_recently_used() -> None:
    cache: Lru[str, int] = Lru(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "b" is now the oldest
    cache.put("c", 3)
    assert (cache.get("b"), cache.get("a"), cache.get("c"), len(cache)) == (None, 1, 3, 2)
    with pytest.raises(ValueError, match="at least one"):
        Lru(0)


def test_caches_stay_bounded_over_months(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tariff_plan, "DAY_CACHE_SIZE", 5)
    monkeypatch.setattr(tariff_plan, "SPAN_CACHE_SIZE", 3)
    monkeypatch.setattr(tariff_plan, "INSTANT_CACHE_SIZE", 7)
    book = book_of(HEAD + TOU)
    start = datetime(2024, 3, 1, tzinfo=UTC)
    for hour in range(0, 24 * 70, 5):  # 70 days, across the spring DST change
        at = start + timedelta(hours=hour)
        usage = Usage(at, at + timedelta(hours=5), Decimal("1.5"))
        assert rate(book, None, usage)[1].amount == reference.rate(book, None, usage)[1].amount
    plan = book.plan
    assert (len(plan._days), len(plan._spans)) == (5, 3) and len(plan._instants) <= 7


def test_books_with_the_same_id_share_nothing() -> None:
    cheap, dear = book_of(HEAD + TOU), book_of(HEAD + TOU.replace("peak: 1,", "peak: 3,"))
    usage = Usage(
        datetime(2024, 7, 1, 8, tzinfo=UTC), datetime(2024, 7, 1, 9, tzinfo=UTC), Decimal(2)
    )
    assert rate(cheap, None, usage)[1].amount == 2
    assert rate(dear, None, usage)[1].amount == 6
    assert rate(cheap, None, usage)[1].amount == 2
    assert cheap.plan is not dear.plan and cheap.plan is cheap.plan


def test_a_rating_made_by_hand_sums_its_own_amount() -> None:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    extras = (
        SurchargeLine("fund", Decimal("0.1"), Fraction(1), Fraction(1, 10)),
        SurchargeLine("sewage", Decimal("0.03"), Fraction(1), Fraction(3, 100)),
    )
    rating = Rating("t", at, at, Fraction(1), (), extras)
    assert rating.amount == Fraction(13, 100) and rating.cost == Decimal("0.13")


def test_rounding_refuses_negative_places_and_takes_any_exact_number() -> None:
    with pytest.raises(ValueError, match="negative"):
        round_half_up(Decimal(1), -1)
    assert round_half_up(0.125, 2) == Decimal("0.13")  # a binary float is exact too


def test_period_key_of_a_tariff_without_tiers() -> None:
    water = TariffBook([example("bj-residential-water.yaml")]).versions[0]
    local = datetime(2024, 7, 1, tzinfo=UTC)
    assert period_key(water, local) == "year:2024"
    assert period_key(book_of(HEAD + TOU).versions[0], local) == ""
