"""Register maps: the shipped files load; bad files are refused naming file and field."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from connectors.modbus import MapError, load_map, shipped_maps
from connectors.modbus.registermap import NoRelay, RegisterRelay

GOOD = """\
name: test-meter
manufacturer: Test
model: T1
source: test
quantities:
  - {name: energy_kwh, address: 0x0000, type: uint32, scale: "0.01", unit: kWh}
  - {name: voltage_v, address: 0x000B, type: uint16, scale: 0.1, unit: V}
relay: {kind: none}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "meter.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_maps_load() -> None:
    names = shipped_maps()
    assert {"acrel-ddsy1352", "acrel-dtsy1352", "acrel-adm130", "eastron-sdm120"} <= set(names)
    for name in names:
        regmap = load_map(name)
        assert regmap.name == name
        assert all(isinstance(q.scale, Decimal) for q in regmap.quantities)


def test_ddsy1352_matches_manual_table() -> None:
    regmap = load_map("acrel-ddsy1352")
    expected = {
        "energy_kwh": (0x0000, "uint32", "0.01"),
        "sharp": (0x0002, "uint32", "0.01"),
        "peak": (0x0004, "uint32", "0.01"),
        "flat": (0x0006, "uint32", "0.01"),
        "valley": (0x0008, "uint32", "0.01"),
        "voltage_v": (0x000B, "uint16", "0.1"),
        "current_a": (0x000C, "uint16", "0.01"),
        "power_kw": (0x000D, "int16", "0.001"),
        "pf": (0x0010, "int16", "0.001"),
    }
    for name, (address, dtype, scale) in expected.items():
        quantity = regmap.quantity(name)
        assert (quantity.address, quantity.type.value, quantity.scale) == (
            address,
            dtype,
            Decimal(scale),
        )
    assert isinstance(regmap.relay, RegisterRelay) and not regmap.relay.verified


def test_sdm120_has_no_relay() -> None:
    regmap = load_map("eastron-sdm120")
    assert isinstance(regmap.relay, NoRelay)
    assert regmap.quantity("energy_kwh").address == 0x0156


def test_yaml_floats_become_exact_decimals(tmp_path: Path) -> None:
    regmap = load_map(write(tmp_path, GOOD))
    assert regmap.quantity("voltage_v").scale == Decimal("0.1")
    assert str(regmap.quantity("voltage_v").scale) == "0.1"


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ('scale: "0.01"', 'scale: "abc"', "quantities[0] (energy_kwh).scale", "not a decimal"),
        ("type: uint32", "type: uint64", "quantities[0] (energy_kwh).type", "uint16"),
        ("address: 0x000B", "address: 70000", "quantities[1] (voltage_v).address", "65535"),
        ("address: 0x000B", 'address: "0xZZ"', "quantities[1] (voltage_v).address", "hex"),
        ("address: 0x000B", "address: 0x0001", "quantities", "overlaps energy_kwh"),
        ("relay: {kind: none}", "relay: {kind: magic}", "relay", "kind"),
        (
            "relay: {kind: none}",
            "relay: {kind: register, address: 0x40, trip: 1, close: 1}",
            "relay",
            "must differ",
        ),
        ("unit: kWh}", "unit: kWh, colour: red}", "quantities[0] (energy_kwh).colour", "Extra"),
        ("type: uint32,", "type: uint32, count: 1,", "quantities[0] (energy_kwh)", "count 1"),
        ("source: test\n", "", "source", "required"),
    ],
)
def test_bad_map_names_file_and_field(
    tmp_path: Path, old: str, new: str, field: str, message: str
) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(MapError) as info:
        load_map(path)
    text = str(info.value)
    assert str(path) in text
    assert field in text
    assert message in text


def test_float32_needs_decimals(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("type: uint16, scale: 0.1", "type: float32"))
    with pytest.raises(MapError, match=r"voltage_v.*decimals is required for float32"):
        load_map(path)


def test_leading_zero_address_refused(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("address: 0x000B", "address: 0010"))
    with pytest.raises(MapError, match="leading zero"):
        load_map(path)


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MapError, match="not valid YAML"):
        load_map(write(tmp_path, "name: [unclosed"))
    with pytest.raises(MapError, match="cannot read file"):
        load_map(tmp_path / "absent.yaml")
    with pytest.raises(MapError, match="no shipped map of that name"):
        load_map("no-such-meter")
