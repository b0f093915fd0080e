"""Pollers' and dispatcher's view of DL/T 645 and CJ/T 188, against the simulators' replies."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from connectors import cjt188, dlt645
from connectors.dispatch.policy import Outcome
from connectors.polling.protocols import CJT188, DLT645
from connectors.publisher import connector_dead_letter
from connectors.registry import (
    MeterEntry,
    RegistryError,
    load_fleet,
    parse_endpoint,
    write_fleet,
)
from connectors.simulator.frame_server import FrameBus
from connectors.simulator.meter import SimMeter
from connectors.simulator.profiles import LOCAL_TZ
from contracts.errors import PayloadError

NOW = datetime(2026, 7, 1, 19, 30, tzinfo=LOCAL_TZ)


def sim(protocol: str, address: str, water: bool = False) -> SimMeter:
    return SimMeter("M1", protocol, "water" if water else "electricity",
                    "water" if water else "residential", address, seed=1, last=NOW)


def entry(protocol: str, address: str, **control: object) -> MeterEntry:
    water = protocol == "cjt188"
    return MeterEntry("M1", "water" if water else "electricity", protocol,  # type: ignore[arg-type]
                      "tcp://127.0.0.1:9", address, control=dict(control))


def answer(bus: FrameBus, proto: object, request: bytes) -> object:
    scanner = proto.scanner()  # type: ignore[attr-defined]
    (frame,) = scanner.feed(request)
    reply = bus.reply_to(frame)
    assert reply is not None
    (decoded,) = proto.scanner().feed(reply)  # type: ignore[attr-defined]
    return decoded


def test_dlt645_read_and_relay_through_the_simulated_bus() -> None:
    meter = sim("dlt645", "000000000042")
    bus = FrameBus("dlt645", [meter], lambda: NOW)
    e = entry("dlt645", "000000000042")
    reply = answer(bus, DLT645, DLT645.read_request(e))
    assert DLT645.is_reply(e, reply)
    reading = DLT645.to_reading(e, reply, NOW)
    total, bands = meter.registers(NOW)
    assert (reading.value, reading.sharp, reading.valley) == (total, bands["sharp"],
                                                              bands["valley"])
    assert reading.source == "dlt645" and reading.unit == "kWh"
    reply = answer(bus, DLT645, DLT645.control_request(e, "disconnect"))
    assert DLT645.control_outcome(e, "disconnect", reply) == (Outcome.APPLIED, "relay tripped")
    assert not meter.supply_on
    wrong = entry("dlt645", "000000000042", password="123456")
    reply = answer(bus, DLT645, DLT645.control_request(wrong, "reconnect"))
    outcome, detail = DLT645.control_outcome(wrong, "reconnect", reply)
    assert outcome is Outcome.REFUSED and "refused" in detail and not meter.supply_on


def test_dlt645_silent_for_other_addresses_and_offline_meters() -> None:
    meter = sim("dlt645", "000000000042")
    bus = FrameBus("dlt645", [meter], lambda: NOW)
    (frame,) = dlt645.StreamParser().feed(dlt645.encode_read("000000000043", "0001FF00"))
    assert bus.reply_to(frame) is None
    meter.online = False
    (frame,) = dlt645.StreamParser().feed(dlt645.encode_read("000000000042", "0001FF00"))
    assert bus.reply_to(frame) is None


def test_dlt645_error_reply_is_not_a_reading() -> None:
    e = entry("dlt645", "000000000042")
    (frame,) = dlt645.StreamParser().feed(dlt645.encode_read_error("000000000042", 0x02))
    with pytest.raises(PayloadError, match="meter refused the read"):
        DLT645.to_reading(e, frame, NOW)


def test_cjt188_read_and_valve_through_the_simulated_bus() -> None:
    meter = sim("cjt188", "00000000000007", water=True)
    bus = FrameBus("cjt188", [meter], lambda: NOW)
    e = entry("cjt188", "00000000000007")
    reading = CJT188.to_reading(e, answer(bus, CJT188, CJT188.read_request(e)), NOW)
    assert reading.value == meter.registers(NOW)[0] and reading.unit == "m3"
    assert reading.sharp is None
    reply = answer(bus, CJT188, CJT188.control_request(e, "disconnect"))
    assert CJT188.control_outcome(e, "disconnect", reply) == (Outcome.APPLIED, "valve closed")
    assert not meter.supply_on
    reply = answer(bus, CJT188, CJT188.control_request(e, "reconnect"))
    assert CJT188.control_outcome(e, "reconnect", reply) == (Outcome.APPLIED, "valve open")
    # a valve that reports the wrong position is a refusal
    (stuck,) = cjt188.StreamParser().feed(cjt188.encode_valve_response(
        0x10, "00000000000007", cjt188.Status.of(cjt188.ValveState.OPEN)))
    assert CJT188.control_outcome(e, "disconnect", stuck)[0] is Outcome.REFUSED


def test_cjt188_litres_become_m3() -> None:
    e = entry("cjt188", "00000000000007")
    (frame,) = cjt188.StreamParser().feed(cjt188.encode_read_response(
        0x10, "00000000000007", Decimal("1234.50"), volume_unit="L"))
    assert CJT188.to_reading(e, frame, NOW).value == Decimal("1.234")


def test_registry_entries_and_fleet_file(tmp_path: Path) -> None:
    assert str(parse_endpoint("rtu+tcp://10.0.0.5:4001")) == "rtu+tcp://10.0.0.5:4001"
    for bad in ("http://x:1", "tcp://x", "tcp://:5"):
        with pytest.raises(RegistryError):
            parse_endpoint(bad)
    with pytest.raises(RegistryError, match="field endpoint missing"):
        MeterEntry.from_dict({"meter_id": "M1", "protocol": "dlt645"})
    with pytest.raises(RegistryError, match="field protocol"):
        MeterEntry.from_dict({"meter_id": "M1", "protocol": "zigbee"})
    entries = [entry("dlt645", "000000000042", password="000000"),
               MeterEntry("M2", "water", "mqtt")]
    path = tmp_path / "fleet.yaml"
    write_fleet(path, entries, seed=1)
    loaded = load_fleet(path)
    assert [e.to_dict() for e in loaded] == [e.to_dict() for e in entries]


def test_connector_dead_letter_ids_are_deterministic() -> None:
    a = connector_dead_letter(kind="dlt645", where="h:1/000000000042", stage="dlt645-poller",
                              reason="bad checksum", raw=b"\x68\x01", at=NOW)
    b = connector_dead_letter(kind="dlt645", where="h:1/000000000042", stage="dlt645-poller",
                              reason="bad checksum", raw=b"\x68\x01", at=NOW)
    assert a.id == b.id == "dlt645:h:1/000000000042:" + a.id.rsplit(":", 1)[1]
    with pytest.raises(ValueError):
        connector_dead_letter(kind="k", where="w", stage="s", reason="r", raw=b"",
                              at=datetime(2026, 1, 1))  # noqa: DTZ001 - refused on purpose
