from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from contracts.money import fraction_text
from pipeline import records
from pipeline.billing.errors import RatingError
from pipeline.billing.instants import elapsed
from pipeline.billing.rating import Usage, band_shares, rate
from pipeline.billing.tariff import TariffBook
from pipeline.billing.tariff_parse import load_tariff_text
from pipeline.billing.tier_state import TierState
from pipeline.billing.timeline import pieces
from pipeline.billing.validation import MeterState

from .conftest import book_of

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")


def head(zone: str = "Asia/Shanghai", valid_from: str = "") -> str:
    extra = f"valid_from: {valid_from}\n" if valid_from else ""
    return f"id: t\ncommodity: electricity\nunit: kWh\ncurrency: CNY\ntimezone: {zone}\n" + extra


TOU = 'bands: {peak: ["06:00-22:00"], valley: ["22:00-06:00"]}\nprices: {peak: 1, valley: 0.5}\n'


def test_flat_price() -> None:
    book = book_of(head() + "price: 0.5\n")
    state, rating = rate(
        book,
        None,
        Usage(datetime(2024, 1, 1, tzinfo=SH), datetime(2024, 1, 2, tzinfo=SH), Decimal("10")),
    )
    assert rating.amount == 5 and rating.units_by_band() == {} and rating.cost == Decimal("5")
    assert state.used == 0


def test_tou_split_over_midnight() -> None:
    book = book_of(head() + TOU)
    # 20:00 -> 08:00 is 12 h: 2 h peak, 8 h valley, 2 h peak; 12 units, one per hour.
    _, rating = rate(
        book,
        None,
        Usage(
            datetime(2024, 3, 1, 20, tzinfo=SH), datetime(2024, 3, 2, 8, tzinfo=SH), Decimal("12")
        ),
    )
    assert rating.units_by_band() == {"peak": 4, "valley": 8}
    assert rating.amount == 4 * 1 + 8 * Fraction(1, 2)
    assert rating.amount_by_band() == {"peak": 4, "valley": 4}


def test_interval_in_other_offset_is_judged_in_tariff_zone() -> None:
    book = book_of(head() + TOU)
    # 22:00-23:00 UTC is 06:00-07:00 in Shanghai: all peak.
    _, rating = rate(
        book,
        None,
        Usage(
            datetime(2024, 3, 1, 22, tzinfo=UTC), datetime(2024, 3, 1, 23, tzinfo=UTC), Decimal("1")
        ),
    )
    assert rating.units_by_band() == {"peak": 1}


def test_tier_crossing_and_monthly_reset() -> None:
    book = book_of(head() + "tiers: {period: month, steps: [{upto: 10, price: 1}, {price: 2}]}\n")
    # 30 July 00:00 -> 2 August 00:00, 30 units: 20 in July (10 at 1, 10 at 2), 10 in August.
    state, rating = rate(
        book,
        None,
        Usage(datetime(2024, 7, 30, tzinfo=SH), datetime(2024, 8, 2, tzinfo=SH), Decimal("30")),
    )
    assert rating.units_by_step() == {1: 20, 2: 10}
    assert rating.amount == 10 + 20 + 10
    assert state == TierState("t", "month:2024-08", Fraction(10))
    # August already used all of step 1: the next 5 units are all at step 2.
    state, rating = rate(
        book,
        state,
        Usage(datetime(2024, 8, 2, tzinfo=SH), datetime(2024, 8, 3, tzinfo=SH), Decimal("5")),
    )
    assert rating.units_by_step() == {2: 5} and rating.amount_by_step() == {2: 10}
    assert state.used == 15


def test_tier_state_carried_between_calls() -> None:
    book = book_of(head() + "tiers: {period: year, steps: [{upto: 10, price: 1}, {price: 2}]}\n")
    state = TierState("t", "year:2024", Fraction(8))
    state, rating = rate(
        book,
        state,
        Usage(datetime(2024, 5, 1, tzinfo=SH), datetime(2024, 5, 2, tzinfo=SH), Decimal("4")),
    )
    assert rating.units_by_step() == {1: 2, 2: 2} and rating.amount == 6
    assert state.used == 12
    # A state of another tariff id or period starts from zero.
    _, rating = rate(
        book,
        TierState("other", "year:2024", Fraction(100)),
        Usage(datetime(2024, 5, 1, tzinfo=SH), datetime(2024, 5, 2, tzinfo=SH), Decimal("4")),
    )
    assert rating.units_by_step() == {1: 4}


def test_version_change_inside_interval() -> None:
    old = load_tariff_text(head(valid_from="2024-01-01") + "price: 1\n")
    new = load_tariff_text(head(valid_from="2024-06-01") + "price: 2\n")
    book = TariffBook([old, new])
    # 31 May 12:00 -> 1 June 12:00 local: half the day at each price.
    _, rating = rate(
        book,
        None,
        Usage(
            datetime(2024, 5, 31, 12, tzinfo=SH), datetime(2024, 6, 1, 12, tzinfo=SH), Decimal("10")
        ),
    )
    assert [
        (line.valid_from.isoformat() if line.valid_from else None, line.units)
        for line in rating.lines
    ] == [("2024-01-01", 5), ("2024-06-01", 5)]
    assert rating.amount == 15
    with pytest.raises(RatingError, match="not in force"):
        rate(
            book,
            None,
            Usage(
                datetime(2023, 12, 31, tzinfo=SH), datetime(2024, 1, 1, 1, tzinfo=SH), Decimal("1")
            ),
        )


def test_season_replaces_bands_from_month_start(gd_tou: TariffBook) -> None:
    # 30 June 11:00 -> 1 July 12:00 is 25 h; 11:00-12:00 is peak in June, sharp in July.
    _, rating = rate(
        gd_tou,
        None,
        Usage(
            datetime(2024, 6, 30, 11, tzinfo=SH), datetime(2024, 7, 1, 12, tzinfo=SH), Decimal("25")
        ),
    )
    by_band = rating.units_by_band()
    # June 30 11-24: peak 11-12, 14-19 (6 h), flat 12-14, 19-24 (7 h);
    # July 1 0-12: valley 0-8, flat 8-10, peak 10-11, sharp 11-12.
    assert by_band == {"peak": 7, "flat": 9, "valley": 8, "sharp": 1}


def test_dst_zone_band_boundaries() -> None:
    # New York: 10 March 2024 clocks jump 02:00 -> 03:00; band boundary at 02:30 (skipped).
    book = book_of(
        head("America/New_York")
        + 'bands: {a: ["02:30-12:00"], b: ["12:00-02:30"]}\nprices: {a: 1, b: 2}\n'
    )
    start = datetime(2024, 3, 10, 0, 0, tzinfo=NY)
    end = datetime(2024, 3, 10, 12, 0, tzinfo=NY)
    assert elapsed(start, end) == timedelta(hours=11)  # a short day
    _, rating = rate(book, None, Usage(start, end, Decimal("11")))
    # b until the jump (2 real hours), then a from 03:00 to 12:00 (9 hours).
    assert rating.units_by_band() == {"b": 2, "a": 9}


def test_dst_fall_back_repeated_hour() -> None:
    # 3 November 2024: 01:00-02:00 happens twice; boundary at 01:30 is crossed twice.
    book = book_of(
        head("America/New_York")
        + 'bands: {a: ["01:30-12:00"], b: ["12:00-01:30"]}\nprices: {a: 1, b: 2}\n'
    )
    start = datetime(2024, 11, 3, 0, 0, tzinfo=NY)
    end = datetime(2024, 11, 3, 3, 0, tzinfo=NY)
    assert elapsed(start, end) == timedelta(hours=4)
    _, rating = rate(book, None, Usage(start, end, Decimal("240")))
    # b 00:00-01:30 EDT (90 min), a 01:30-02:00 EDT (30), b 01:00-01:30 EST (30),
    # a 01:30-03:00 EST (90): 120 minutes each.
    assert rating.units_by_band() == {"b": 120, "a": 120}
    assert len(pieces(book, start.astimezone(UTC), end.astimezone(UTC))) == 4


def test_band_registers_decide_and_tier_splits_in_proportion() -> None:
    book = book_of(
        head() + 'bands: {peak: ["06:00-22:00"], valley: ["22:00-06:00"]}\n'
        "tiers: {period: month, steps: [{upto: 100, prices: {peak: 1, valley: 0.5}},"
        " {prices: {peak: 2, valley: 1}}]}\n"
    )
    # Registers say 150 peak, 50 valley of 200; tier 1 ends at 100: 75/25 then 75/25.
    _, rating = rate(
        book,
        None,
        Usage(
            datetime(2024, 7, 1, tzinfo=SH),
            datetime(2024, 7, 2, tzinfo=SH),
            Decimal("200"),
            {"peak": Decimal("150"), "valley": Decimal("50")},
        ),
    )
    assert rating.units_by_band() == {"peak": 150, "valley": 50}
    assert rating.units_by_step() == {1: 100, 2: 100}
    assert rating.amount == 75 * 1 + 25 * Fraction(1, 2) + 75 * 2 + 25 * 1


def test_band_register_sum_mismatch_is_scaled_to_total() -> None:
    book = book_of(head() + TOU)
    # Total register moved 10.00; bands moved 7.00 + 2.99 = 9.99 (meter rounding).
    _, rating = rate(
        book,
        None,
        Usage(
            datetime(2024, 7, 1, tzinfo=SH),
            datetime(2024, 7, 2, tzinfo=SH),
            Decimal("10.00"),
            {"peak": Decimal("7.00"), "valley": Decimal("2.99")},
        ),
    )
    assert sum(rating.units_by_band().values()) == 10
    assert rating.units_by_band()["peak"] == Fraction(700, 999) * 10


def test_band_shares_rules() -> None:
    assert band_shares(frozenset({"peak"}), None) is None
    assert band_shares(frozenset(), {"peak": Decimal(1)}) is None
    assert band_shares(frozenset({"peak"}), {"peak": Decimal(0)}) is None
    with pytest.raises(RatingError, match="no such band"):
        band_shares(frozenset({"peak"}), {"flat": Decimal(1)})
    with pytest.raises(RatingError, match="went back"):
        band_shares(frozenset({"peak"}), {"peak": Decimal(-1)})


def test_registers_ignored_for_tariff_without_bands() -> None:
    book = book_of(head() + "price: 1\n")
    _, rating = rate(
        book,
        None,
        Usage(
            datetime(2024, 7, 1, tzinfo=SH),
            datetime(2024, 7, 2, tzinfo=SH),
            Decimal("3"),
            {"flat": Decimal(3)},
        ),
    )
    assert rating.units_by_band() == {} and rating.amount == 3


@pytest.mark.parametrize(
    ("start", "end", "units", "message"),
    [
        (datetime(2024, 1, 2, tzinfo=SH), datetime(2024, 1, 1, tzinfo=SH), "1", "must end after"),
        (datetime(2024, 1, 1, tzinfo=SH), datetime(2024, 1, 2, tzinfo=SH), "-1", "negative"),
        (datetime(2024, 1, 1), datetime(2024, 1, 2), "1", "UTC offset"),  # noqa: DTZ001
    ],
)
def test_rate_refuses(start: datetime, end: datetime, units: str, message: str) -> None:
    with pytest.raises(RatingError, match=message):
        rate(book_of(head() + "price: 1\n"), None, Usage(start, end, Decimal(units)))


def test_surcharges_on_every_unit(bj_water: TariffBook) -> None:
    _, rating = rate(
        bj_water,
        None,
        Usage(datetime(2024, 1, 1, tzinfo=SH), datetime(2024, 2, 1, tzinfo=SH), Decimal("10")),
    )
    assert {s.name: s.units for s in rating.surcharges} == {"water_resource": 10, "sewage": 10}
    assert rating.amount == 10 * (Fraction("2.07") + Fraction("1.57") + Fraction("1.36"))


def test_tier_state_round_trip() -> None:
    state = TierState("t", "month:2024-07", Fraction(1, 3))
    stored = records.encode(records.MeterRecord(MeterState("M1"), tiers=state))
    record = records.meter_record(stored)
    assert record is not None and record.tiers == state
    assert fraction_text(state.used) == "1/3" and b'"1/3"' in stored
