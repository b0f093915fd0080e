"""Board rollups and pipeline metrics, the pure parts: periods, sums, gaps, lag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from contracts.zones import DEFAULT_REPORT_ZONE as REPORT_TZ
from contracts.zones import zone
from pipeline.board_rollups import (
    Place,
    Quality,
    gap_figures,
    local_day,
    local_month,
    quality_sums,
    usage_sums,
    utc_hour,
)
from pipeline.metrics import SinkStats, lag_by_topic, metric_rows

# 16:30 UTC on 30 June is 00:30 on 1 July in Shanghai: July's day and month.
LATE = datetime(2026, 6, 30, 16, 30, tzinfo=UTC)
EARLY = datetime(2026, 6, 30, 15, 45, tzinfo=UTC)


def test_periods_are_local_days_and_months_and_utc_hours() -> None:
    assert local_day(LATE) == datetime(2026, 7, 1, tzinfo=REPORT_TZ)
    assert local_month(LATE) == datetime(2026, 7, 1, tzinfo=REPORT_TZ)
    assert local_day(EARLY) == datetime(2026, 6, 30, tzinfo=REPORT_TZ)
    assert local_month(EARLY) == datetime(2026, 6, 1, tzinfo=REPORT_TZ)
    assert utc_hour(LATE) == datetime(2026, 6, 30, 16, tzinfo=UTC)
    assert local_day(LATE).utcoffset() == timedelta(hours=8)


def test_usage_is_summed_per_key_in_decimal_and_surcharges_are_left_out() -> None:
    places = {"M1": Place("S1", "B1", "electricity")}
    lines = [("M1", LATE, "peak", Decimal("1.5"), Decimal("0.1234567891")),
             ("M1", LATE + timedelta(minutes=15), "peak", Decimal("2.25"), Decimal("0.2")),
             ("M1", LATE, "+sewage", Decimal("3"), Decimal("9")),
             ("M1", EARLY, "peak", Decimal("1"), Decimal("1")),
             ("M9", LATE, "", Decimal("4"), Decimal("2"))]
    sums = usage_sums(lines, places)
    july = datetime(2026, 7, 1, tzinfo=REPORT_TZ)
    assert sums["usage_monthly"][("M1", july, "peak")] == [Decimal("3.75"),
                                                           Decimal("0.3234567891")]
    assert sums["usage_monthly"][("M1", datetime(2026, 6, 1, tzinfo=REPORT_TZ), "peak")] == \
        [Decimal(1), Decimal(1)]
    assert sums["usage_daily_building"][(july, "S1", "B1", "electricity", "peak")][0] == \
        Decimal("3.75")
    # an unknown meter still counts, in no building
    assert sums["usage_daily_building"][(july, "", "", "", "")] == [Decimal(4), Decimal(2)]
    assert sums["usage_hourly_building"][
        (datetime(2026, 6, 30, 16, tzinfo=UTC), "S1", "B1", "electricity")][0] == \
        Decimal("3.75")
    assert not any("+sewage" in key for table in sums.values() for key in table)


def test_gaps_count_missed_readings_rounded_half_up() -> None:
    assert gap_figures(None, LATE, 900) == (0, 0)
    assert gap_figures(LATE - timedelta(seconds=900), LATE, 900) == (0, 900)
    assert gap_figures(LATE - timedelta(seconds=1350), LATE, 900) == (1, 1350)  # 1.5 -> 2
    assert gap_figures(LATE - timedelta(seconds=1349), LATE, 900) == (0, 1349)
    assert gap_figures(LATE - timedelta(hours=5, microseconds=500000), LATE, 900) == \
        (19, 18001)


def test_each_meter_counts_in_its_sites_zone() -> None:
    """16:30 UTC on 30 June is still 30 June in London (17:30 BST) but 1 July in Shanghai."""
    london = zone("Europe/London")
    places = {"M1": Place("S1", "B1", "electricity", zone=london), "M2": Place()}
    lines = [("M1", LATE, "peak", Decimal("1"), Decimal("0.5")),
             ("M2", LATE, "peak", Decimal("2"), Decimal("1"))]
    sums = usage_sums(lines, places)
    assert set(sums["usage_monthly"]) == {("M1", datetime(2026, 6, 1, tzinfo=london), "peak"),
                                          ("M2", datetime(2026, 7, 1, tzinfo=REPORT_TZ), "peak")}
    assert ("M1", datetime(2026, 6, 30, tzinfo=london)) in quality_sums(
        [("M1", LATE, Quality(readings=1))], places)["quality_daily"]
    assert local_day(LATE, london) == datetime(2026, 6, 29, 23, tzinfo=UTC)


def test_quality_sums_keep_the_longest_gap() -> None:
    items = [("M1", LATE, Quality(readings=1, missed=2, max_gap_s=2700)),
             ("M1", LATE + timedelta(hours=1), Quality(readings=1, max_gap_s=900)),
             ("M1", LATE, Quality(rejected=1))]
    sums = quality_sums(items, {"M1": Place("S1", "B1")})
    day = sums["quality_daily"][("M1", datetime(2026, 7, 1, tzinfo=REPORT_TZ))]
    assert (day.readings, day.missed, day.max_gap_s, day.rejected) == (2, 2, 2700, 1)
    building = sums["quality_daily_building"][(datetime(2026, 7, 1, tzinfo=REPORT_TZ),
                                               "S1", "B1")]
    assert (building.readings, building.rejected) == (2, 1)


def test_lag_counts_from_the_commit_or_the_beginning() -> None:
    assigned = [("t.a", 0), ("t.a", 1), ("t.b", 0), ("t.c", 0)]
    committed = {("t.a", 0): 90, ("t.b", 0): 5}
    earliest = {("t.a", 0): 0, ("t.a", 1): 40, ("t.b", 0): 0}
    latest = {("t.a", 0): 100, ("t.a", 1): 50, ("t.b", 0): 5}
    assert lag_by_topic(assigned, committed, earliest, latest) == {"t.a": 20, "t.b": 0}


def test_sink_stats_are_taken_once_per_period() -> None:
    stats = SinkStats()
    stats.observe("t.a", 10, 0.02)
    stats.observe("t.a", 30, 0.05)
    stats.observe("t.b", 0, 1.0)  # an empty batch is not a batch
    taken = stats.take()
    assert stats.take() == {}
    a = taken["t.a"]
    assert (a.landed, a.batches, a.batch_max) == (40, 2, 30)
    assert abs(a.latency_ms_sum - 70.0) < 1e-9 and abs(a.latency_ms_max - 50.0) < 1e-9
    rows = metric_rows(LATE, "w", 30.0, taken, {"t.a": 3, "t.c": 7})
    assert [(r[2], r[4], r[9]) for r in rows] == [("t.a", 40, 3), ("t.c", 0, 7)]
