"""The Grafana expansion of panel SQL, against the examples of Grafana's documentation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from meterflow.dashboards.macros import (
    MacroError,
    Selection,
    TimeRange,
    expand,
    expand_macros,
    format_interval,
    interpolate,
    interval_for,
    rfc3339,
    used_variables,
)

RANGE = TimeRange(datetime(2025, 7, 1, tzinfo=UTC), datetime(2026, 7, 1, 0, 0, 0, 500000,
                                                                tzinfo=UTC))
HOUR = timedelta(hours=1)


def test_time_filter_and_bounds_are_rfc3339_in_utc() -> None:
    shanghai = timezone(timedelta(hours=8))
    rng = TimeRange(datetime(2026, 1, 1, 8, tzinfo=shanghai), datetime(2026, 1, 2, tzinfo=UTC))
    assert expand_macros("WHERE $__timeFilter(l.at)", rng, HOUR) == \
        "WHERE l.at BETWEEN '2026-01-01T00:00:00Z' AND '2026-01-02T00:00:00Z'"
    assert expand_macros("$__timeFrom() $__timeTo()", RANGE, HOUR) == \
        "'2025-07-01T00:00:00Z' '2026-07-01T00:00:00.5Z'"
    assert rfc3339(datetime(2026, 1, 1, 0, 0, 0, 120000, tzinfo=UTC)) == \
        "2026-01-01T00:00:00.12Z"


def test_time_group_is_time_bucket_on_timescaledb_and_floor_otherwise() -> None:
    assert expand_macros("SELECT $__timeGroupAlias(bucket, 1d), 1", RANGE, HOUR) == \
        "SELECT time_bucket('86400.000s',bucket) AS \"time\", 1"
    assert expand_macros("GROUP BY $__timeGroup(at, '5m')", RANGE, HOUR, timescaledb=False) \
        == "GROUP BY floor(extract(epoch from at)/300)*300"
    # the pre-5.3 form: a comma right after the call adds the alias
    assert expand_macros("SELECT $__timeGroup(at, 1h), x", RANGE, HOUR) == \
        "SELECT time_bucket('3600.000s',at) AS \"time\", x"
    assert expand_macros("SELECT $__timeGroup(at, $__interval, 0) AS t", RANGE, HOUR) == \
        "SELECT time_bucket('3600.000s',at) AS t"


def test_epoch_macros_and_interval() -> None:
    sql = ("$__unixEpochFilter(ts) $__unixEpochFrom() $__unixEpochTo() $__interval_ms "
           "$__interval $__unixEpochGroupAlias(ts, 1h)")
    assert expand_macros(sql, RANGE, timedelta(hours=12)) == (
        "ts >= 1751328000 AND ts <= 1782864000 1751328000 1782864000 43200000 12h "
        "floor((ts)/3600)*3600 AS \"time\"")


def test_unknown_macro_and_missing_arguments_are_refused() -> None:
    with pytest.raises(MacroError, match="unknown macro"):
        expand_macros("$__nope(x)", RANGE, HOUR)
    with pytest.raises(MacroError, match="missing time column"):
        expand_macros("$__timeFilter()", RANGE, HOUR)
    with pytest.raises(MacroError, match="needs time column and interval"):
        expand_macros("$__timeGroup(at)", RANGE, HOUR)


def test_interval_follows_the_range_and_the_minimum() -> None:
    assert interval_for(RANGE) == timedelta(hours=12)  # a year over 1000 points
    day = TimeRange(RANGE.start, RANGE.start + timedelta(days=1))
    assert interval_for(day) == timedelta(minutes=1)  # 86 s rounds to 1m, the minimum
    six_hours = TimeRange(RANGE.start, RANGE.start + timedelta(hours=6))
    assert interval_for(six_hours, min_interval=timedelta(0)) == timedelta(seconds=20)
    assert [format_interval(timedelta(seconds=s)) for s in (0.25, 30, 90, 7200, 86400 * 8)] \
        == ["250ms", "30s", "1m", "2h", "8d"]


SITE = Selection(("S1", "O'Brien"), multi=True, include_all=True)
ALL_SITES = Selection(("S1", "S2"), multi=True, include_all=True, all=True,
                      all_value="'__all'")


def test_variables_are_quoted_as_the_sql_data_sources_do() -> None:
    values = {"site": SITE, "commodity": Selection(("it's",)), "top": Selection(("20",)),
              "all": ALL_SITES,
              "noall": Selection(("a", "b"), multi=True, include_all=True, all=True)}
    sql = ("$site | ${site} | [[site]] | ${site:csv} | ${site:sqlstring} | '$commodity' | "
           "LIMIT $top | $all | ${all:sqlstring} | $noall | $unknown | $__timeFilter(x)")
    assert interpolate(sql, values, RANGE, HOUR) == (
        "'S1','O''Brien' | 'S1','O''Brien' | 'S1','O''Brien' | S1,O'Brien | 'S1','O''Brien' | "
        "'it''s' | LIMIT 20 | '__all' | '__all' | 'a','b' | $unknown | $__timeFilter(x)")


def test_expand_runs_both_steps() -> None:
    sql = "SELECT $__timeGroupAlias(at, $__interval) FROM t WHERE site_id IN ($site)"
    assert expand(sql, RANGE, {"site": ALL_SITES}) == (
        "SELECT time_bucket('43200.000s',at) AS \"time\" FROM t WHERE site_id IN ('__all')")


def test_used_variables_leave_macros_and_builtins_out() -> None:
    assert used_variables("$site ${building:csv} [[floor]] $__timeFilter(x) $__interval "
                          "${__from}") == {"site", "building", "floor"}


def test_a_time_range_needs_aware_instants() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        TimeRange(datetime(2026, 1, 1), datetime(2026, 1, 2))  # noqa: DTZ001
