from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline import records
from pipeline.billing.reading import MeterConfig, Reading
from pipeline.billing.validation import (
    Accepted,
    Duplicate,
    MeterReplacement,
    MeterState,
    Rejected,
    check_stopped,
    replace_meter,
    validate,
)

T0 = datetime(2024, 7, 1, tzinfo=UTC)
NOW = datetime(2024, 8, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
CFG = MeterConfig(max_rate=Decimal(20))


def kept(state: MeterState) -> MeterState:
    """The state as the meter stage keeps it (pipeline/records.py), read back."""
    record = records.meter_record(records.encode(records.MeterRecord(state)))
    assert record is not None
    return record.validation


def r(hours: float, value: str, **registers: str) -> Reading:
    regs = {k: Decimal(v) for k, v in registers.items()}
    return Reading("M1", T0 + timedelta(hours=hours), Decimal(value), regs)


def feed(*readings: Reading, config: MeterConfig = CFG) -> tuple[MeterState, list[object]]:
    state = MeterState("M1")
    outcomes: list[object] = []
    for reading in readings:
        state, outcome = validate(state, reading, config, NOW)
        outcomes.append(outcome)
    return state, outcomes


def reason(outcome: object) -> str:
    assert isinstance(outcome, Rejected)
    return outcome.reason


def test_first_reading_is_baseline_then_interval() -> None:
    state, (first, second) = feed(r(0, "100.00"), r(2, "110.50"))
    assert isinstance(first, Accepted) and first.interval is None
    assert isinstance(second, Accepted) and second.interval is not None
    assert second.interval.units == Decimal("10.50")
    assert state.last == r(2, "110.50")


def test_duplicates_and_conflicts() -> None:
    state, outs = feed(r(0, "100"), r(1, "101"), r(1, "101"), r(1, "102"))
    assert isinstance(outs[2], Duplicate)
    assert reason(outs[3]) == "conflicting_duplicate"
    assert state.last == r(1, "101")


def test_out_of_order_and_rejections_keep_baseline() -> None:
    _, outs = feed(r(0, "100"), r(5, "110"), r(3, "105"), r(6, "100"), r(7, "500"), r(8, "112"))
    assert [reason(o) for o in outs[2:5]] == [
        "out_of_order",
        "register_decreased",
        "implausible_increase",
    ]
    last = outs[5]
    assert isinstance(last, Accepted) and last.interval is not None
    assert last.interval.units == 2 and last.interval.start == T0 + 5 * HOUR


def test_rollover_counts_the_wrap_step() -> None:
    # 999999.99 -> 0.00 is one register step: 0.01 kWh.
    _, outs = feed(r(0, "999999.99"), r(1, "0.00"))
    assert isinstance(outs[1], Accepted) and outs[1].interval is not None
    assert outs[1].interval.units == Decimal("0.01") and outs[1].interval.rollover
    _, outs = feed(r(0, "999990.00"), r(1, "5.00"))
    assert outs[1].interval.units == Decimal("15.00")  # type: ignore[union-attr]


def test_wrap_that_is_implausible_is_a_decrease() -> None:
    _, outs = feed(r(0, "999000.00"), r(1, "500.00"))  # 1500 in an hour > 20/h
    assert reason(outs[1]) == "register_decreased"
    # Without a rate limit no wrap can be shown plausible.
    _, outs = feed(r(0, "999999.99"), r(1, "0.00"), config=MeterConfig())
    assert reason(outs[1]) == "register_decreased"


def test_configurable_register_max() -> None:
    config = MeterConfig(register_max=Decimal("9999.999"), max_rate=Decimal(5))
    assert config.resolution == Decimal("0.001") and config.modulus == Decimal("10000.000")
    _, outs = feed(r(0, "9999.999"), r(1, "0.001"), config=config)
    assert outs[1].interval.units == Decimal("0.002")  # type: ignore[union-attr]
    _, outs = feed(r(0, "10000.5"), config=config)
    assert reason(outs[0]) == "out_of_range"


def test_out_of_range_and_future() -> None:
    config = MeterConfig(max_future=timedelta(minutes=5))
    _, outs = feed(r(0, "-1"), r(0, "1", peak="1000000"), config=config)
    assert [reason(o) for o in outs] == ["out_of_range", "out_of_range"]
    late = Reading("M1", NOW + HOUR, Decimal(1))
    _, outcome = validate(MeterState("M1"), late, config, NOW)
    assert reason(outcome) == "future_timestamp"
    assert isinstance(outcome, Rejected) and outcome.id.startswith("rejected-")


def test_band_register_deltas() -> None:
    _, outs = feed(
        r(0, "10", peak="6", valley="4"),
        r(1, "15", peak="9", valley="6"),
        r(2, "16", peak="9"),
        r(3, "17", peak="10"),
    )
    assert outs[1].interval.band_units == {"peak": 3, "valley": 2}  # type: ignore[union-attr]
    assert outs[2].interval.band_units is None  # type: ignore[union-attr]
    assert outs[3].interval.band_units == {"peak": 1}  # type: ignore[union-attr]
    _, outs = feed(r(0, "999999.99", peak="999999.99"), r(1, "0.01", peak="0.01"))
    assert outs[1].interval.band_units == {"peak": Decimal("0.02")}  # type: ignore[union-attr]


def test_meter_stopped_fires_once_and_rearms() -> None:
    config = MeterConfig(stopped_after=timedelta(hours=24))
    state, _ = feed(r(0, "50"), r(12, "50"), r(30, "50"), config=config)
    assert state.unchanged_since == T0
    same, alarm = check_stopped(state, config, NOW, supply_on=False)
    assert alarm is None and same == state
    state, alarm = check_stopped(state, config, NOW, supply_on=True)
    assert alarm is not None and alarm.reason == "meter_stopped" and alarm.detected_at == NOW
    assert alarm.unchanged_since == T0 and alarm.last_reading == T0 + 30 * HOUR
    assert (
        alarm.id
        == check_stopped(
            replace(state, stopped_alarmed=False),
            config,
            NOW,
            supply_on=True,
        )[1].id
    )  # type: ignore[union-attr]
    assert check_stopped(state, config, NOW, supply_on=True)[1] is None
    state, _ = validate(state, r(31, "51"), config, NOW)
    assert not state.stopped_alarmed and state.unchanged_since == T0 + 31 * HOUR


def test_not_stopped_before_threshold_or_without_config() -> None:
    state, _ = feed(r(0, "50"), r(10, "50"))
    assert check_stopped(state, CFG, NOW, supply_on=True)[1] is None
    config = MeterConfig(stopped_after=timedelta(hours=24))
    assert check_stopped(state, config, NOW, supply_on=True)[1] is None


def test_meter_replacement() -> None:
    state, _ = feed(r(0, "1000.00"))
    event = MeterReplacement("M1", "M2", T0 + 2 * HOUR, Decimal("1012.50"), Decimal("0.30"))
    old, new, outcome = replace_meter(state, event, CFG, NOW)
    assert isinstance(outcome, Accepted) and outcome.interval is not None
    assert outcome.interval.units == Decimal("12.50")
    assert old.last is not None and old.last.value == Decimal("1012.50")
    assert new is not None and new.meter_id == "M2" and new.last is not None
    new, following = validate(new, Reading("M2", T0 + 3 * HOUR, Decimal("2.30")), CFG, NOW)
    assert isinstance(following, Accepted) and following.interval is not None
    assert following.interval.units == 2  # from the new meter's first reading


def test_meter_replacement_refused_when_final_is_bad() -> None:
    state, _ = feed(r(0, "1000.00"))
    event = MeterReplacement("M1", "M1", T0 + HOUR, Decimal("900"), Decimal("0"))
    old, new, outcome = replace_meter(state, event, CFG, NOW)
    assert new is None and old == state and reason(outcome) == "register_decreased"


def test_config_refuses_bad_values() -> None:
    with pytest.raises(ValueError):
        MeterConfig(register_max=Decimal(0))
    with pytest.raises(ValueError):
        MeterConfig(max_rate=Decimal(0))
    with pytest.raises(ValueError):
        Reading("M1", datetime(2024, 1, 1), Decimal(1))  # noqa: DTZ001


@given(st.lists(st.tuples(st.integers(-5, 30), st.decimals(0, 2000, places=2)), max_size=30))
def test_state_round_trip_and_baseline_never_moves_on_rejection(
    steps: list[tuple[int, Decimal]],
) -> None:
    state = MeterState("M1")
    for hours, value in steps:
        before = state
        state, outcome = validate(state, r(hours, str(value), peak=str(value)), CFG, NOW)
        if isinstance(outcome, Rejected | Duplicate):
            assert state == before
        assert kept(state) == state
