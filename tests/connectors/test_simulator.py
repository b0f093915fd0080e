"""Load profiles, TOU bands, simulated meters and fleet specs (pure, clock-driven)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.simulator.clock import ManualClock, SpeedClock
from connectors.simulator.meter import SimMeter
from connectors.simulator.profiles import LOCAL_TZ, band_of, level, load
from connectors.simulator.spec import SpecError, build_meters, mix_spec, parse_spec

LOCAL = datetime(2026, 7, 1, 0, 0, tzinfo=LOCAL_TZ)  # a Wednesday


def at(hour: int, day: int = 1) -> datetime:
    return LOCAL.replace(day=day, hour=hour)


def test_tou_bands() -> None:
    assert [band_of(at(h)) for h in (0, 7, 8, 10, 11, 12, 17, 19, 20, 21, 22, 23)] == [
        "valley", "valley", "peak", "sharp", "peak", "flat", "peak", "sharp", "sharp", "peak",
        "flat", "valley"]
    assert band_of(at(10).astimezone(UTC)) == "sharp"  # evaluated in Shanghai local time


def test_profile_shapes() -> None:
    assert level("residential", at(19)) > level("residential", at(3)) * 5  # evening peak
    assert level("shop", at(12)) > level("shop", at(2)) * 5  # trading hours
    assert level("office", at(10)) == 1 and level("office", at(10, day=4)) < Decimal("0.1")
    assert level("water", at(7)) > level("water", at(3)) * 10  # morning peak
    assert level("water", at(19)) > level("water", at(14))  # evening peak


def test_load_is_deterministic_with_the_seed() -> None:
    assert load("shop", Decimal(5), at(12), 7, "M1") == load("shop", Decimal(5), at(12), 7, "M1")
    assert load("shop", Decimal(5), at(12), 7, "M1") != load("shop", Decimal(5), at(12), 8, "M1")


def meter(profile: str = "residential", water: bool = False) -> SimMeter:
    return SimMeter("M1", "dlt645", "water" if water else "electricity", profile,  # type: ignore[arg-type]
                    "000000000001", seed=3, last=LOCAL)


@settings(max_examples=30)
@given(st.lists(st.integers(1, 600), min_size=1, max_size=10))
def test_registers_only_grow_and_bands_add_up(steps: list[int]) -> None:
    m = meter()
    start_total = m.total
    now = LOCAL
    last = m.registers(now)
    for minutes in steps:
        now += timedelta(minutes=minutes)
        total, bands = m.registers(now)
        assert total >= last[0] and all(bands[b] >= last[1][b] for b in bands)
        last = (total, bands)
    assert abs(sum(m.bands.values()) - m.total) < Decimal("1e-20") * (1 + m.total)
    assert m.total > start_total


def test_a_day_of_residential_use_lands_in_the_right_bands() -> None:
    m = meter()
    before = dict(m.bands)
    m.advance(LOCAL + timedelta(days=1))
    used = {b: m.bands[b] - before[b] for b in before}
    assert used["sharp"] > 0 and used["valley"] > 0
    # 3 sharp hours (incl. the 19-21 h evening peak) outweigh one hour of the night
    assert used["sharp"] > used["valley"] / 9


def test_consumption_stops_while_the_relay_is_open() -> None:
    m = meter()
    m.set_supply(False, at(18))
    frozen = m.registers(at(18))
    assert m.registers(at(23)) == frozen and m.load_now(at(20)) == 0
    assert m.apply("c1", "reconnect", at(23)) == ("applied", "relay closed")
    assert m.registers(at(23, day=2))[0] > frozen[0]


def test_commands_are_applied_once_per_id() -> None:
    w = meter("water", water=True)
    assert w.apply("c1", "disconnect", at(8)) == ("applied", "valve closed")
    w.set_supply(True, at(9))
    assert w.apply("c1", "disconnect", at(10)) == ("applied", "valve closed")
    assert w.supply_on  # the repeat did not act again
    assert w.registers(at(9))[1] == {}


def test_clocks() -> None:
    ticks = iter([0.0, 2.0])
    clock = SpeedClock(LOCAL, speed=3600, monotonic=lambda: next(ticks))
    assert clock() == LOCAL + timedelta(hours=2)
    manual = ManualClock(LOCAL)
    assert manual.advance(minutes=5) == LOCAL + timedelta(minutes=5) == manual()
    with pytest.raises(ValueError):
        SpeedClock(datetime(2026, 1, 1), 1)  # noqa: DTZ001 - refused on purpose


def test_specs() -> None:
    spec = mix_spec(10, "modbus=1,dlt645=1,cjt188=1,mqtt=1", seed=4)
    assert sum(g["count"] for g in spec["groups"]) == 10
    meters = build_meters({**spec, "prefix": "X-"}, LOCAL)
    assert len({m.meter_id for m in meters}) == 10 and meters[0].meter_id == "X-SIM-MB-0001"
    assert all(m.commodity == "water" for m in meters if m.protocol == "cjt188")
    dl = [m for m in meters if m.protocol == "dlt645"]
    assert [m.address for m in dl] == ["000000000001", "000000000002", "000000000003"][: len(dl)]
    again = build_meters({**spec, "prefix": "X-"}, LOCAL)
    assert [m.total for m in again] == [m.total for m in meters]
    with pytest.raises(SpecError, match="CJ/T 188 meters are water meters"):
        parse_spec({"groups": [{"protocol": "cjt188", "count": 1, "profile": "shop"}]})
    with pytest.raises(SpecError, match="--mix"):
        mix_spec(3, "zigbee=1")


@given(seed=st.integers(0, 10_000), hour=st.integers(0, 23))
@settings(max_examples=60, deadline=None)
def test_modbus_registers_fit_the_meter_whatever_the_load(seed: int, hour: int) -> None:
    """The simulated single-phase meter shows at most its 60 A rating: a shop's peak load
    no longer overflows the 16-bit power register, and the energy registers still count
    everything consumed."""
    from connectors.modbus import load_map
    from connectors.simulator.modbus_server import MAX_AMPS, MODEL, meter_values

    regmap = load_map(MODEL)
    at = datetime(2026, 7, 15, hour, 30, tzinfo=LOCAL_TZ)
    meter = SimMeter("M1", "modbus", "electricity", "shop", "1", seed,
                     at - timedelta(hours=1))
    meter.peak = Decimal(80)  # far above what one phase of 60 A carries
    values = meter_values(meter, at)
    assert values["current_a"] <= MAX_AMPS
    assert values["power_kw"] <= MAX_AMPS * Decimal("229.5") / 1000
    for name, value in values.items():
        from connectors.modbus import encode_quantity
        assert encode_quantity(regmap.quantity(name), value), name
