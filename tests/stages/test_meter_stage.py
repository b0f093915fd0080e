"""The per-meter stage: validation and rating in one step, silence, acks forwarded."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from contracts import topics
from contracts.commands import Ack
from contracts.ids import charge_id
from contracts.raw_reading import RawReading
from pipeline import records
from pipeline.configuration import MeterSetup, TariffVersions
from pipeline.meter_stage import Out, on_ack, on_reading, on_tick

T0 = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)
FLAT = "id: flat\ncommodity: electricity\nunit: kWh\ncurrency: CNY\n" \
       "timezone: Asia/Shanghai\nprice: 0.5\n"
TIERED = FLAT.replace("price: 0.5\n", "tiers: {period: month, steps: [{upto: 10, price: 0.5},"
                      " {price: 0.8}]}\n")
METER = MeterSetup("M1", "electricity", "A1", "flat", expected_interval_s=900)
BOOK = TariffVersions("flat", (FLAT,)).book()


def reading(minutes: int, value: str, **extra: Any) -> RawReading:
    return RawReading.model_validate({"meter_id": "M1", "ts": T0 + timedelta(minutes=minutes),
                                      "value": value, "unit": "kWh", **extra})


def bodies(outs: list[Out], topic: str) -> list[dict[str, Any]]:
    return [json.loads(o.value) for o in outs if o.topic == topic]


def test_first_reading_is_a_baseline_then_each_interval_is_rated_for_the_account() -> None:
    record, outs = on_reading(None, reading(0, "100"), b"r0", METER, BOOK, T0)
    assert [(o.topic, o.key) for o in outs] == [(topics.ACCEPTED_READINGS, "M1")]
    assert bodies(outs, topics.ACCEPTED_READINGS)[0]["interval"] is None
    record, outs = on_reading(record, reading(15, "101.5"), b"r1", METER, BOOK, T0)
    [accepted] = bodies(outs, topics.ACCEPTED_READINGS)
    assert accepted["interval"]["units"] == "1.5" and accepted["interval"]["start"] == \
        T0.isoformat()
    [rated] = [o for o in outs if o.topic == topics.RATED_INTERVALS]
    assert rated.key == "A1"
    body = json.loads(rated.value)
    end = T0 + timedelta(minutes=15)
    assert body["interval_id"] == charge_id("M1", end)
    assert Decimal(body["cost"]) == Decimal("0.75") and Decimal(body["units"]) == Decimal("1.5")


def test_the_multiplier_scales_units_before_rating() -> None:
    ct = MeterSetup("M1", "electricity", "A1", "flat", multiplier=Decimal(40))
    record, _ = on_reading(None, reading(0, "100"), b"r0", ct, BOOK, T0)
    _, outs = on_reading(record, reading(15, "100.25"), b"r1", ct, BOOK, T0)
    [rated] = bodies(outs, topics.RATED_INTERVALS)
    assert rated["units"] == "10" and Decimal(rated["cost"]) == Decimal("5")


def test_tiers_carry_from_one_interval_to_the_next_in_the_record() -> None:
    book = TariffVersions("flat", (TIERED,)).book()
    record, _ = on_reading(None, reading(0, "0"), b"r0", METER, book, T0)
    record, outs = on_reading(record, reading(15, "8"), b"r1", METER, book, T0)
    assert Decimal(bodies(outs, topics.RATED_INTERVALS)[0]["cost"]) == Decimal("4")
    record, outs = on_reading(record, reading(30, "12"), b"r2", METER, book, T0)
    # 2 units left in step 1 at 0.5, then 2 at 0.8
    assert Decimal(bodies(outs, topics.RATED_INTERVALS)[0]["cost"]) == Decimal("2.6")
    again = records.meter_record(records.encode(record))
    assert again == record


def test_a_reading_sent_again_after_newer_ones_is_answered_as_the_first_time() -> None:
    """A device or concentrator that sends readings again (MQTT redelivery, a buffer
    uploaded twice) gets no out-of-order rejections and no second rejection."""
    record, _ = on_reading(None, reading(0, "100"), b"r0", METER, BOOK, T0)
    record, _ = on_reading(record, reading(15, "101"), b"r1", METER, BOOK, T0)
    record, rejected = on_reading(record, reading(30, "99"), b"r2", METER, BOOK, T0)
    assert bodies(rejected, topics.REJECTED_READINGS)[0]["reason"] == "register_decreased"
    record, _ = on_reading(record, reading(45, "102"), b"r3", METER, BOOK, T0)
    for again in (reading(15, "101"), reading(30, "99"), reading(0, "100")):
        after, outs = on_reading(record, again, b"again", METER, BOOK, T0)
        assert outs == [] and after == record
    # Another value at an old instant is still out of order.
    _, outs = on_reading(record, reading(15, "101.5"), b"x", METER, BOOK, T0)
    assert bodies(outs, topics.REJECTED_READINGS)[0]["reason"] == "out_of_order"


def test_the_memory_of_recent_readings_is_bounded() -> None:
    from pipeline.billing.recent import DEPTH

    record, _ = on_reading(None, reading(0, "0"), b"r", METER, BOOK, T0)
    for n in range(1, 3 * DEPTH):
        record, _ = on_reading(record, reading(15 * n, str(n)), b"r", METER, BOOK, T0)
    assert record is not None and len(record.recent) == DEPTH * 17
    _, outs = on_reading(record, reading(15, "1"), b"r", METER, BOOK, T0)
    assert bodies(outs, topics.REJECTED_READINGS)[0]["reason"] == "out_of_order", \
        "beyond the memory an old reading is out of order"


def test_a_duplicate_changes_nothing_and_emits_nothing() -> None:
    record, _ = on_reading(None, reading(0, "100"), b"r0", METER, BOOK, T0)
    record, _ = on_reading(record, reading(15, "101"), b"r1", METER, BOOK, T0)
    same, outs = on_reading(record, reading(15, "101"), b"r1", METER, BOOK, T0)
    assert same is record and outs == []


def test_bad_readings_are_rejected_with_the_reason_and_raw_bytes() -> None:
    record, _ = on_reading(None, reading(0, "100"), b"r0", METER, BOOK, T0)
    after, outs = on_reading(record, reading(15, "99"), b"raw-bytes", METER, BOOK, T0)
    assert after is not None and record is not None
    assert after.validation == record.validation, "a rejection never moves the baseline"
    [body] = bodies(outs, topics.REJECTED_READINGS)
    assert body["reason"] == "register_decreased"
    assert base64.b64decode(body["raw_b64"]) == b"raw-bytes"
    _, outs = on_reading(None, reading(0, "1"), b"x", None, None, T0)
    assert bodies(outs, topics.REJECTED_READINGS)[0]["reason"] == "unknown_meter"
    removed = MeterSetup("M1", "electricity", "A1", "flat", removed=True)
    _, outs = on_reading(None, reading(0, "1"), b"x", removed, BOOK, T0)
    assert bodies(outs, topics.REJECTED_READINGS)[0]["reason"] == "unknown_meter"


def test_unrated_when_there_is_no_tariff_no_account_or_the_tariff_is_not_in_force() -> None:
    record, _ = on_reading(None, reading(0, "100"), b"r0", METER, None, T0)
    _, outs = on_reading(record, reading(15, "101"), b"r1", METER, None, T0)
    assert [(e["kind"], e["detail"]) for e in bodies(outs, topics.METER_EVENTS)] == [
        ("unrated", "no tariff")]
    orphan = MeterSetup("M1", "electricity", None, "flat")
    _, outs = on_reading(record, reading(15, "101"), b"r1", orphan, BOOK, T0)
    assert bodies(outs, topics.METER_EVENTS)[0]["detail"] == "no account"
    later = TariffVersions("flat", (FLAT + "valid_from: 2027-01-01\n",)).book()
    after, outs = on_reading(record, reading(15, "101"), b"r1", METER, later, T0)
    [event] = bodies(outs, topics.METER_EVENTS)
    assert event["kind"] == "unrated" and "not in force" in event["detail"]
    assert bodies(outs, topics.ACCEPTED_READINGS), "the reading itself is still accepted"
    assert after is not None and after.tiers is None


def test_silence_means_offline_once_and_the_next_reading_online() -> None:
    record, _ = on_reading(None, reading(0, "100"), b"r0", METER, BOOK, T0)
    assert on_tick(record, T0 + timedelta(minutes=15), METER) == (record, [])
    silent, outs = on_tick(record, T0 + timedelta(minutes=16), METER)
    [event] = bodies(outs, topics.METER_EVENTS)
    assert event["kind"] == "offline" and event["at"] == (T0 + timedelta(minutes=15)).isoformat()
    assert silent is not None and silent.offline
    assert on_tick(silent, T0 + timedelta(hours=2), METER) == (silent, []), "announced once"
    back, outs = on_reading(silent, reading(60, "101"), b"r", METER, BOOK, T0)
    assert [e["kind"] for e in bodies(outs, topics.METER_EVENTS)] == ["online"]
    assert back is not None and not back.offline
    assert on_tick(None, T0 + timedelta(days=1), METER) == (None, [])


def test_an_acknowledgement_is_forwarded_to_the_meters_account() -> None:
    ack = Ack(command_id="disconnect:M1:abc", meter_id="M1", status="expired", at=T0,
              detail="not confirmed", attempts=0)
    [signal] = on_ack(ack, METER)
    assert (signal.topic, signal.key) == (topics.WALLET_SIGNALS, "A1")
    body = json.loads(signal.value)
    assert (body["kind"], body["command_id"], body["status"]) == (
        "command_outcome", "disconnect:M1:abc", "expired")
    assert on_ack(ack, None) == []
    assert on_ack(ack, MeterSetup("M1", "electricity", None, None)) == []
