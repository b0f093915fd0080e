"""The MQTT contract: readings, commands and acks, and the refusal of bad input."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.mqtt.bridge import handle_message
from connectors.mqtt.contract import (
    MeterAck,
    MeterCommand,
    meter_of,
    parse_ack,
    parse_command,
    parse_reading,
    reading_payload,
    topic,
)
from contracts.errors import PayloadError

T = "meters/M-1/readings"


def test_energy_reading_with_bands_numbers_and_strings() -> None:
    r = parse_reading(T, b'{"ts": "2026-07-01T10:00:00+08:00", "energy_kwh": 1234.56, '
                         b'"sharp": "1.10", "peak": 2, "flat": "3", "valley": 4.125}')
    assert (r.meter_id, r.unit, r.value, r.source) == ("M-1", "kWh", Decimal("1234.56"), "mqtt")
    assert (r.sharp, r.peak, r.valley) == (Decimal("1.10"), Decimal("2"), Decimal("4.125"))


def test_water_reading() -> None:
    r = parse_reading("meters/W.2/readings",
                      b'{"ts": "2026-07-01T10:00:00Z", "volume_m3": "12.345"}')
    assert (r.meter_id, r.unit, r.value) == ("W.2", "m3", Decimal("12.345"))


@pytest.mark.parametrize(("payload", "reason"), [
    (b"", "empty message"),
    (b"\xff", "not UTF-8 at byte 0"),
    (b"[1]", "expected a JSON object, got list"),
    (b'{"ts": "2026-07-01T10:00:00+08:00"}', "field energy_kwh/volume_m3: exactly one is required"),
    (b'{"ts": "2026-07-01T10:00:00+08:00", "energy_kwh": 1, "volume_m3": 1}',
     "field energy_kwh/volume_m3: exactly one is required (both given)"),
    (b'{"ts": "2026-07-01T10:00:00", "energy_kwh": 1}', "field ts: timestamp has no UTC offset"),
    (b'{"ts": 5, "energy_kwh": 1}', "field ts: Invalid isoformat string: '5'"),
    (b'{"energy_kwh": 1}', "field ts: missing"),
    (b'{"ts": "2026-07-01T10:00:00Z", "energy_kwh": -1}',
     "field energy_kwh: Input should be greater than or equal to 0"),
    (b'{"ts": "2026-07-01T10:00:00Z", "energy_kwh": true}',
     "field energy_kwh: expected a string or number, got bool"),
    (b'{"ts": "2026-07-01T10:00:00Z", "energy_kwh": NaN}', "not valid JSON: NaN is not a number"),
    (b'{"ts": "2026-07-01T10:00:00Z", "volume_m3": 1, "peak": 1}',
     "field peak: band registers go with energy_kwh only"),
    (b'{"ts": "2026-07-01T10:00:00Z", "energy_kwh": 1, "kw": 1}', "field kw: unknown field"),
])
def test_bad_readings_name_the_field(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as err:
        parse_reading(T, payload)
    assert err.value.reason == reason


@pytest.mark.parametrize("bad", ["meters/a/b/readings", "meter/M1/readings", "meters/M1/acks",
                                 "meters/" + "x" * 65 + "/readings", "meters/a b/readings"])
def test_bad_topics(bad: str) -> None:
    with pytest.raises(PayloadError):
        meter_of(bad, "readings")


@given(st.decimals(min_value=0, max_value=10**10, places=3, allow_nan=False),
       st.booleans())
def test_what_a_meter_publishes_parses_back(value: Decimal, water: bool) -> None:
    ts = datetime(2026, 7, 1, tzinfo=UTC)
    r = parse_reading(topic("M1", "readings"), reading_payload(ts, value, water=water))
    assert r.value == value and r.ts == ts and r.unit == ("m3" if water else "kWh")


def test_command_and_ack_round_trip() -> None:
    now = datetime(2026, 7, 1, 2, tzinfo=UTC)
    cmd = MeterCommand("c1", "disconnect", now, now)
    assert parse_command(cmd.to_json()) == cmd
    ack = MeterAck("c1", "applied", "relay tripped")
    assert parse_ack(ack.to_json()) == ack
    with pytest.raises(PayloadError, match="field action"):
        parse_command(b'{"command_id": "c", "action": "explode", "issued_at": "2026-07-01T00:00Z"}')
    with pytest.raises(PayloadError, match="field status"):
        parse_ack(b'{"command_id": "c", "status": "ok"}')


class _Out:
    def __init__(self) -> None:
        self.readings: list = []
        self.letters: list = []

    def reading(self, r: object) -> None:
        self.readings.append(r)

    def dead_letter(self, d: object) -> None:
        self.letters.append(d)


def test_bridge_sends_bad_messages_to_dead_letters_with_raw_bytes() -> None:
    out = _Out()
    at = datetime(2026, 7, 1, tzinfo=UTC)
    handle_message(out, T, b'{"ts": "2026-07-01T10:00:00Z", "energy_kwh": "1"}', at)  # type: ignore[arg-type]
    handle_message(out, T, b"garbage", at)  # type: ignore[arg-type]
    handle_message(out, T, b"garbage", at)  # type: ignore[arg-type]
    assert len(out.readings) == 1
    first, again = out.letters
    assert first.id == again.id and first.id.startswith(f"mqtt:{T}:") and len(first.id) == len(
        f"mqtt:{T}:") + 16
    assert first.raw == b"garbage" and first.stage == "mqtt-bridge" and first.at == at
    assert first.reason.startswith("not valid JSON")
