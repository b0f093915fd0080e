"""Pure decoding: register words computed by hand, no I/O."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.modbus import (
    DecodeError,
    decode_block,
    decode_quantity,
    encode_quantity,
    load_map,
    parse_map,
    plan_blocks,
)
from connectors.modbus.registermap import Quantity


def q(**kw: object) -> Quantity:
    base: dict[str, object] = {"name": "x", "address": 0, "type": "uint16"}
    base.update(kw)
    return Quantity.model_validate(base)


def test_uint32_energy_high_word_first() -> None:
    # 12345.67 kWh in 0.01 kWh = 1234567 = 0x0012D687 -> words [0x0012, 0xD687]
    energy = q(type="uint32", scale="0.01")
    assert decode_quantity(energy, [0x0012, 0xD687]) == Decimal("12345.67")
    assert str(decode_quantity(energy, [0x0012, 0xD687])) == "12345.67"


def test_uint32_low_word_first() -> None:
    energy = q(type="uint32", scale="0.01", word_order="low_first")
    assert str(decode_quantity(energy, [0xD687, 0x0012])) == "12345.67"


def test_byte_swapped_words() -> None:
    # 0x1234 sent by a meter that swaps bytes arrives as 0x3412
    assert decode_quantity(q(byte_order="little"), [0x3412]) == 0x1234


def test_negative_int16_power() -> None:
    # -1.500 kW in 0.001 kW = -1500 = 0xFA24 (two's complement)
    power = q(type="int16", scale="0.001")
    assert str(decode_quantity(power, [0xFA24])) == "-1.500"
    # the same word read as uint16 is 64036
    assert decode_quantity(q(), [0xFA24]) == 64036


def test_negative_int32() -> None:
    # -2 = 0xFFFFFFFE
    assert decode_quantity(q(type="int32"), [0xFFFF, 0xFFFE]) == -2


def test_uint16_voltage_and_current() -> None:
    assert str(decode_quantity(q(scale="0.1"), [2301])) == "230.1"  # 0x08FD
    assert str(decode_quantity(q(scale="0.01"), [0x04D2])) == "12.34"


def test_float32_voltage_230() -> None:
    # 230.0 = sign 0, exponent 134 (0x86), mantissa 0x660000 -> 0x43660000
    volts = q(type="float32", decimals=1)
    assert str(decode_quantity(volts, [0x4366, 0x0000])) == "230.0"


def test_float32_rounds_to_declared_decimals() -> None:
    # 230.1 is not exact in float32: 0x43661999 = 230.09999084472656
    volts = q(type="float32", decimals=2)
    assert str(decode_quantity(volts, [0x4366, 0x1999])) == "230.10"
    # 1.5 kW reported in W: 1500.0 = 0x44BB8000, scaled by 0.001 to kW
    power = q(type="float32", scale="0.001", decimals=3)
    assert str(decode_quantity(power, [0x44BB, 0x8000])) == "1.500"


def test_float32_negative_zero_is_zero() -> None:
    assert str(decode_quantity(q(type="float32", decimals=2), [0x8000, 0x0000])) == "0.00"


def test_float32_nan_refused() -> None:
    with pytest.raises(DecodeError, match=r"0x0000 \(x\): float32 value is nan"):
        decode_quantity(q(type="float32", decimals=1), [0x7FC0, 0x0000])


def test_out_of_range_value_names_register() -> None:
    pf = q(name="pf", address=0x10, type="int16", scale="0.001", valid_min="-1", valid_max="1")
    # 1500 -> 1.500 > 1
    with pytest.raises(DecodeError, match=r"register 0x0010 \(pf\): value 1.500 outside \[-1, 1\]"):
        decode_quantity(pf, [1500])


def test_wrong_word_count() -> None:
    with pytest.raises(DecodeError, match="expected 2 word"):
        decode_quantity(q(type="uint32"), [1])


def test_plan_blocks_ddsy1352_three_requests() -> None:
    blocks = plan_blocks(load_map("acrel-ddsy1352"))
    assert [(b.start, b.count) for b in blocks] == [(0x0000, 10), (0x000B, 3), (0x000F, 2)]


def test_plan_blocks_bridges_gaps_and_respects_max_block() -> None:
    base = {
        "name": "t",
        "manufacturer": "m",
        "model": "m",
        "source": "s",
        "relay": {"kind": "none"},
        "quantities": [
            {"name": "a", "address": 0, "type": "uint32"},
            {"name": "b", "address": 4, "type": "uint16"},
            {"name": "c", "address": 130, "type": "uint16"},
            {"name": "d", "address": 5, "type": "uint16", "table": "input"},
        ],
    }
    strict = plan_blocks(parse_map(base, "t"))
    assert [(b.table, b.start, b.count) for b in strict] == [
        ("holding", 0, 2),
        ("holding", 4, 1),
        ("holding", 130, 1),
        ("input", 5, 1),
    ]
    gappy = plan_blocks(parse_map({**base, "max_gap": 2}, "t"))
    assert [(b.start, b.count) for b in gappy][:2] == [(0, 5), (130, 1)]
    # everything within 125 registers with a big gap allowance, but 0..130 is 131
    wide = plan_blocks(parse_map({**base, "max_gap": 32, "max_block": 125}, "t"))
    assert all(b.count <= 125 for b in wide)


def test_decode_block_from_one_read() -> None:
    regmap = load_map("acrel-ddsy1352")
    first = plan_blocks(regmap)[0]
    words = [0x0012, 0xD687, 0, 100, 0, 200, 0, 300, 0, 400]
    assert decode_block(first, words) == {
        "energy_kwh": Decimal("12345.67"),
        "sharp": Decimal("1.00"),
        "peak": Decimal("2.00"),
        "flat": Decimal("3.00"),
        "valley": Decimal("4.00"),
    }
    with pytest.raises(DecodeError, match="read returned 3 words, expected 10"):
        decode_block(first, words[:3])


@given(
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
    st.sampled_from(["high_first", "low_first"]),
)
def test_int32_round_trip(raw: int, order: str) -> None:
    quantity = q(type="int32", scale="0.01", word_order=order)
    value = Decimal(raw) * Decimal("0.01")
    assert decode_quantity(quantity, encode_quantity(quantity, value)) == value


@given(st.floats(width=32, allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6))
def test_float32_decodes_ieee_value(value: float) -> None:
    quantity = q(type="float32", decimals=3)
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    expected = Decimal(str(value)).quantize(Decimal("0.001"))
    assert decode_quantity(quantity, [hi, lo]) == expected
