"""The tariff as people read it: its outline, where an error is in its file, and what a
sample consumption would cost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.money import round_fen
from pipeline.billing import RatingError, TariffBook, TariffError, load_tariff_text
from pipeline.billing.tariff_view import outline, path_segments, preview, source_line

EXAMPLES = Path(__file__).resolve().parents[2] / "pipeline" / "billing" / "examples"
TOU = (EXAMPLES / "gd-commercial-tou.yaml").read_text()
TIERED = (EXAMPLES / "bj-residential-electricity.yaml").read_text()
FLAT = ("id: flat\nname: Flat\ncommodity: electricity\nunit: kWh\ncurrency: CNY\n"
        "timezone: Asia/Shanghai\nprice: 0.53\n")
BEIJING = timedelta(hours=8)


def test_path_segments_split_names_and_indexes() -> None:
    assert path_segments("tiers.steps[1].upto") == ["tiers", "steps", 1, "upto"]
    assert path_segments("seasons[0].bands.peak") == ["seasons", 0, "bands", "peak"]
    assert path_segments("") == []


def test_source_line_finds_the_deepest_part_of_the_path() -> None:
    lines = TOU.splitlines()
    at = source_line(TOU, "seasons[0].bands.sharp")
    assert at is not None and lines[at - 1].strip().startswith("sharp:")
    price = source_line(TOU, "prices.peak")
    assert price is not None and lines[price - 1].startswith("prices:")
    # A part that is not there: the line of the deepest part found.
    assert source_line(TOU, "seasons[7].bands") == source_line(TOU, "seasons")
    first = next(n for n, line in enumerate(lines, 1) if line.startswith("id:"))
    assert source_line(TOU, "no_such_field") == first  # the document's first line
    assert source_line(TOU, "") is None


def test_source_line_of_a_tier_step() -> None:
    lines = TIERED.splitlines()
    at = source_line(TIERED, "tiers.steps[1].upto")
    assert at is not None and "upto" in lines[at - 1]


def test_source_line_of_text_that_is_not_yaml_is_the_syntax_error() -> None:
    assert source_line("id: x\nbands: [1, 2\nprice: 1\n", "") == 3
    assert source_line("", "price") is None


def test_a_validator_error_points_at_its_line() -> None:
    bad = FLAT.replace("price: 0.53", "price: -1")
    with pytest.raises(TariffError) as refused:
        load_tariff_text(bad)
    line = source_line(bad, refused.value.path)
    assert line is not None and bad.splitlines()[line - 1] == "price: -1"


def test_outline_of_a_time_of_use_tariff() -> None:
    shown = outline(load_tariff_text(TOU))
    assert shown["kind"] == "tou" and shown["price"] is None
    assert shown["prices"] == {"sharp": "1.275", "peak": "1.02", "flat": "0.6",
                               "valley": "0.228"}
    spans = shown["bands"]
    assert spans[0] == {"start_min": 0, "end_min": 480, "band": "valley"}
    assert sum(s["end_min"] - s["start_min"] for s in spans) == 1440
    assert shown["seasons"][0]["months"] == [7, 8, 9]
    assert {s["band"] for s in shown["seasons"][0]["bands"]} == {"valley", "flat", "peak",
                                                                 "sharp"}


def test_outline_of_tiered_and_flat_tariffs() -> None:
    tiered = outline(load_tariff_text(TIERED))
    assert tiered["kind"] == "tiered" and tiered["steps"]
    assert tiered["steps"][-1]["upto"] is None  # the last step has no limit
    assert all(isinstance(s["upto"], str) for s in tiered["steps"][:-1])
    flat = outline(load_tariff_text(FLAT))
    assert (flat["kind"], flat["price"], flat["bands"], flat["steps"]) == ("flat", "0.53",
                                                                          None, [])


@given(units=st.decimals(min_value=0, max_value=100_000, places=3))
def test_a_flat_preview_is_units_times_price_rounded_half_up(units: Decimal) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    shown = preview(TariffBook([load_tariff_text(FLAT)]), start, start + timedelta(hours=1),
                    units)
    assert shown.amount_fen == round_fen(units * Decimal("0.53"))
    assert shown.units == units


def test_a_time_of_use_preview_splits_the_interval_by_band() -> None:
    # 09:00-11:00 Beijing time in March: an hour flat (0.6), an hour peak (1.02).
    start = datetime(2026, 3, 2, 1, tzinfo=UTC)
    shown = preview(TariffBook([load_tariff_text(TOU)]), start, start + timedelta(hours=2),
                    Decimal("10"))
    assert shown.amount_fen == 810
    assert shown.by_band == {"flat": ("5", "3"), "peak": ("5", "5.1")}
    assert shown.by_step == {}


def test_a_tiered_preview_fills_the_steps_from_an_empty_period() -> None:
    start = datetime(2026, 3, 2, tzinfo=UTC) - BEIJING
    shown = preview(TariffBook([load_tariff_text(TIERED)]), start, start + timedelta(days=1),
                    Decimal("100"))
    assert list(shown.by_step) == [1]
    assert shown.amount_fen > 0


def test_a_preview_before_the_tariff_starts_is_refused() -> None:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    with pytest.raises(RatingError):
        preview(TariffBook([load_tariff_text(TOU)]), start, start + timedelta(hours=1),
                Decimal("1"))
