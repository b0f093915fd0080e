"""The agents' pure steps: validation, rating, wallet, replays re-emit the same outputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pipeline import topics
from pipeline.billing import WalletConfig, load_tariff_text
from pipeline.raw_reading import RawReading
from pipeline.setup import AccountSetup, MeterSetup, TariffVersions
from pipeline.steps import (
    charge_step,
    disconnect_due,
    payment_step,
    rate_step,
    silence_step,
    tick_step,
    validate_step,
)

T0 = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)
FLAT = """
id: flat
commodity: electricity
unit: kWh
currency: CNY
timezone: Asia/Shanghai
price: 0.5
"""
METER = MeterSetup("M1", "electricity", "A1", "flat", expected_interval_s=900)
ACCOUNT = AccountSetup("A1", WalletConfig(thresholds_fen=(5000, 2000, 1000)), ("M1", "M2"))


def reading(minutes: int, value: str, **extra: Any) -> RawReading:
    return RawReading.model_validate({"meter_id": "M1", "ts": T0 + timedelta(minutes=minutes),
                                      "value": value, "unit": "kWh", **extra})


def test_first_reading_is_a_baseline_then_intervals_follow() -> None:
    record, outs = validate_step(None, reading(0, "100"), b"r0", METER, T0)
    [(topic, key, body)] = outs
    assert (topic, key, body["interval"]) == (topics.ACCEPTED_READINGS, "M1", None)
    record, outs = validate_step(record, reading(15, "101.5"), b"r1", METER, T0)
    interval = outs[0][2]["interval"]
    assert interval["units"] == "1.5"
    assert interval["start"] == T0.isoformat()


def test_a_replayed_reading_re_emits_its_outputs_and_changes_nothing() -> None:
    record, _ = validate_step(None, reading(0, "100"), b"r0", METER, T0)
    record, first = validate_step(record, reading(15, "101"), b"r1", METER, T0)
    record2, _ = validate_step(record, reading(30, "102"), b"r2", METER, T0)
    again_record, again = validate_step(record2, reading(15, "101"), b"r1", METER, T0)
    assert again == first
    assert again_record == record2


def test_a_rejection_read_again_after_later_readings_is_the_same_rejection() -> None:
    record, _ = validate_step(None, reading(0, "100"), b"r0", METER, T0)
    record, first = validate_step(record, reading(15, "99"), b"low", METER, T0)
    record, _ = validate_step(record, reading(30, "101"), b"r2", METER, T0)
    _, again = validate_step(record, reading(15, "99"), b"low", METER, T0)
    assert again == first and first[0][2]["reason"] == "register_decreased"


def test_bad_readings_are_rejected_with_reason_and_raw_bytes() -> None:
    record, _ = validate_step(None, reading(0, "100"), b"r0", METER, T0)
    _, outs = validate_step(record, reading(15, "99"), b"raw-bytes", METER, T0)
    [(topic, _, body)] = outs
    assert topic == topics.REJECTED_READINGS
    assert body["reason"] == "register_decreased"
    assert body["raw_b64"] == "cmF3LWJ5dGVz"
    _, outs = validate_step(None, reading(0, "1"), b"x", None, T0)
    assert outs[0][2]["reason"] == "unknown_meter"


def test_silence_means_offline_and_the_next_reading_online() -> None:
    record, _ = validate_step(None, reading(0, "100"), b"r0", METER, T0)
    assert silence_step(record, METER, T0 + timedelta(minutes=15)) == []
    first = silence_step(record, METER, T0 + timedelta(minutes=16))
    assert [(t, o["kind"]) for t, _, o in first] == [(topics.METER_EVENTS, "offline")]
    later = silence_step(record, METER, T0 + timedelta(hours=2))
    assert later[0][2]["event_id"] == first[0][2]["event_id"], "same silence, same id"
    _, outs = validate_step(record, reading(60, "101"), b"r", METER, T0, offline=True)
    assert [o[2]["kind"] for o in outs if o[0] == topics.METER_EVENTS] == ["online"]


def test_rating_applies_the_multiplier_and_rekeys_to_the_account() -> None:
    book = TariffVersions("flat", (FLAT,)).book()
    ct = MeterSetup("M1", "electricity", "A1", "flat", multiplier=Decimal(40))
    accepted = {"meter_id": "M1", "interval": {"start": T0.isoformat(),
                "end": (T0 + timedelta(minutes=15)).isoformat(), "units": "0.25",
                "band_units": None, "rollover": False}}
    record, outs = rate_step(None, accepted, ct, book)
    [(topic, key, body)] = outs
    assert (topic, key) == (topics.RATED_INTERVALS, "A1")
    assert body["units"] == "10" and Decimal(body["cost"]) == Decimal("5")
    assert rate_step(record, accepted, ct, book) == (record, outs)


def test_unrated_when_no_tariff() -> None:
    accepted = {"meter_id": "M1", "interval": {"start": T0.isoformat(),
                "end": (T0 + timedelta(minutes=15)).isoformat(), "units": "1",
                "band_units": None, "rollover": False}}
    _, outs = rate_step(None, accepted, METER, None)
    assert outs[0][2]["kind"] == "unrated"


def rated(minute: int, cost: str) -> dict[str, Any]:
    return {"interval_id": f"charge-{minute}", "meter_id": "M1", "cost": cost,
            "end": (T0 + timedelta(minutes=minute)).isoformat()}


def payment(key: str, fen: int, kind: str = "topup") -> dict[str, Any]:
    return {"idempotency_key": key, "amount_fen": fen, "kind": kind,
            "at": T0.isoformat()}


def kinds(outs: list[Any]) -> list[str]:
    return [o[2].get("kind", o[0]) if o[0] == topics.ALARMS else o[0] for o in outs]


def test_wallet_alarms_once_each_disconnects_at_zero_and_reconnects_on_topup() -> None:
    record, outs = payment_step(None, payment("k1", 6000), ACCOUNT)
    assert kinds(outs) == [topics.LEDGER, topics.BALANCES]
    fired: list[str] = []
    commands: list[dict[str, Any]] = []
    for minute, cost in enumerate(["15.00", "25.00", "10.00", "5.00", "5.00"], 1):
        record, outs = charge_step(record, rated(minute, cost), ACCOUNT)
        fired += [f"{o['kind']}:{o['level']}" for t, _, o in outs if t == topics.ALARMS]
        commands += [o for t, _, o in outs if t == topics.COMMANDS]
    assert fired == ["low_balance:1", "low_balance:2", "low_balance:3", "disconnect:None"]
    assert sorted((c["meter_id"], c["action"]) for c in commands) == [
        ("M1", "disconnect"), ("M2", "disconnect")]
    assert record["wallet"]["balance_fen"] == 0
    record, outs = payment_step(record, payment("k2", 100), ACCOUNT)
    assert sorted(o["action"] for t, _, o in outs if t == topics.COMMANDS) == [
        "reconnect", "reconnect"]


def test_a_replayed_payment_re_emits_the_same_ledger_entry() -> None:
    record, first = payment_step(None, payment("k1", 500), ACCOUNT)
    record, _ = payment_step(record, payment("k2", 700), ACCOUNT)
    again_record, again = payment_step(record, payment("k1", 500), ACCOUNT)
    assert again == first and again_record == record
    assert record["wallet"]["balance_fen"] == 1200


def test_fractional_costs_carry_the_sub_fen_remainder() -> None:
    record, _ = payment_step(None, payment("k", 10000), ACCOUNT)
    for minute in range(1, 4):
        record, _ = charge_step(record, rated(minute, "0.0033333333"), ACCOUNT)
    # 3 x 0.0033333333 = 0.0099999999 yuan -> 1 fen charged in total, not 0 and not 3
    assert record["wallet"]["balance_fen"] == 9999


@pytest.mark.parametrize("hours", [0, 5])
def test_tick_without_pending_disconnect_does_nothing(hours: int) -> None:
    record, _ = payment_step(None, payment("k", 100), ACCOUNT)
    assert not disconnect_due(record, T0 + timedelta(hours=hours))
    after, outs = tick_step(record, T0 + timedelta(hours=hours), ACCOUNT)
    assert outs == [] and after["wallet"] == record["wallet"]


def test_deferred_disconnect_happens_on_the_tick_after_the_night_window() -> None:
    from pipeline.billing.keep_supply import KeepSupplyPolicy

    night = AccountSetup("A1", WalletConfig(keep_supply=KeepSupplyPolicy(
        "Asia/Shanghai", "22:00-06:00")), ("M1",))
    evening = datetime(2026, 7, 1, 23, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    record, _ = payment_step(None, {**payment("k", 100), "at": evening.isoformat()}, night)
    record, outs = charge_step(record, {**rated(1, "2.00"), "end": evening.isoformat()}, night)
    assert [o["kind"] for t, _, o in outs if t == topics.ALARMS][-1] == "disconnect_deferred"
    assert not any(t == topics.COMMANDS for t, _, _ in outs)
    assert not disconnect_due(record, evening + timedelta(hours=1))
    morning = datetime(2026, 7, 2, 6, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert disconnect_due(record, morning)
    record, outs = tick_step(record, morning, night)
    assert [(t, o["action"]) for t, _, o in outs if t == topics.COMMANDS] == [
        (topics.COMMANDS, "disconnect")]


def test_tariff_versions_parse_once_per_change() -> None:
    from pipeline.setup import TariffCache

    cache = TariffCache()
    versions = TariffVersions("flat", (FLAT,))
    assert cache.book(versions) is cache.book(versions)
    assert load_tariff_text(FLAT, "x").id == "flat"


def test_a_replay_beyond_the_memory_changes_nothing_and_emits_nothing() -> None:
    """After a restart far behind the last commit: old inputs are neither rejected as out of
    order nor rated into the tiers again."""
    record, _ = validate_step(None, reading(0, "100"), b"r0", METER, T0)
    for n in range(1, 60):  # far more readings than the replay memory holds
        record, _ = validate_step(record, reading(15 * n, str(100 + n)), f"r{n}".encode(),
                                  METER, T0)
    assert validate_step(record, reading(15, "101"), b"r1", METER, T0, replay=True) == (
        record, [])
    # Not a replay: the same old reading from a producer is out of order.
    _, outs = validate_step(record, reading(15, "101"), b"r1", METER, T0)
    assert outs[0][2]["reason"] == "out_of_order"

    book = TariffVersions("flat", (FLAT,)).book()
    tiers: dict[str, Any] | None = None
    for n in range(1, 40):
        accepted = {"meter_id": "M1", "interval": {
            "start": (T0 + timedelta(minutes=15 * (n - 1))).isoformat(),
            "end": (T0 + timedelta(minutes=15 * n)).isoformat(), "units": "1",
            "band_units": None, "rollover": False}}
        if n == 1:
            first = accepted
        tiers, _ = rate_step(tiers, accepted, METER, book)
    assert rate_step(tiers, first, METER, book, replay=True) == (tiers, [])

    wallet, _ = payment_step(None, payment("k", 10000), ACCOUNT)
    for minute in range(1, 40):
        wallet, _ = charge_step(wallet, rated(minute, "1.00"), ACCOUNT)
    assert charge_step(wallet, rated(1, "1.00"), ACCOUNT, replay=True) == (wallet, [])
    assert payment_step(wallet, payment("k", 10000), ACCOUNT, replay=True)[1] == []
    assert tick_step(wallet, T0, ACCOUNT, replay=True) == (wallet, [])


def test_a_replay_still_re_emits_what_the_memory_holds() -> None:
    record, _ = validate_step(None, reading(0, "100"), b"r0", METER, T0)
    record, first = validate_step(record, reading(15, "101"), b"r1", METER, T0)
    assert validate_step(record, reading(15, "101"), b"r1", METER, T0, replay=True) == (
        record, first)
