"""DL/T 645-2007 golden frames, byte for byte, both directions.

Sources (public): the classic wildcard read of forward active energy printed in
many DL/T 645-2007 guides; a published capture "DLT645-2007 规约 电表 报文解析"
(meter 000000000161: energy, voltage, current reads); a remote-trip frame and its
0x9C reply from a meter vendor's (Holley) DL/T 645-2007 utility code; an infrared
reader log with an embedded read-address reply (meter 001500076004).
Every checksum is recomputed by hand in the comment next to the frame.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from connectors import dlt645
from connectors.codec_errors import ErrorKind, FrameError

SH = ZoneInfo("Asia/Shanghai")


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# 68+AA*6+68+11+04+33+33+34+33 = D0+3FC+15+CD = 0x5AE -> CS AE
WILDCARD_READ = h("FE FE FE FE 68 AA AA AA AA AA AA 68 11 04 33 33 34 33 AE 16")
# 68+61+01+68+11+04+33+33+34+33 = 0x214 -> CS 14
READ_ENERGY = h("FE FE FE FE 68 61 01 00 00 00 00 68 11 04 33 33 34 33 14 16")
# 68+61+01+68+91+08+(33+33+34+33)+(59+33+33+33) = 0x38A -> CS 8A
ENERGY_REPLY = h("68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33 33 33 8A 16")
# 68+61+01+68+11+04+33+34+34+35 = 0x217 -> CS 17
READ_VOLTAGE = h("FE FE FE FE 68 61 01 00 00 00 00 68 11 04 33 34 34 35 17 16")
# 68+61+01+68+91+06+33+34+34+35+34+43 = 0x310 -> CS 10
VOLTAGE_REPLY = h("68 61 01 00 00 00 00 68 91 06 33 34 34 35 34 43 10 16")
# 68+61+01+68+11+04+33+34+35+35 = 0x218 -> CS 18
READ_CURRENT = h("FE FE FE FE 68 61 01 00 00 00 00 68 11 04 33 34 35 35 18 16")
# 68+61+01+68+91+08+(33+33+35+33)+(59+34+33+33) = 0x38C -> CS 8C
REVERSE_REPLY = h("68 61 01 00 00 00 00 68 91 08 33 33 35 33 59 34 33 33 8C 16")
# 68+11*6+68+1C+10+33*8+4D+33+57+74+48+45+38+4B = 0x555 -> CS 55
RELAY_TRIP = h(
    "68 11 11 11 11 11 11 68 1C 10 33 33 33 33 33 33 33 33 4D 33 57 74 48 45 38 4B 55 16"
)
# 68+11*6+68+9C+00 = 0x1D2 -> CS D2
RELAY_OK = h("68 11 11 11 11 11 11 68 9C 00 D2 16")
# 68+04+60+07+15+68+93+06+37+93+3A+33+48+33 = 0x39B -> CS 9B
READ_ADDRESS_REPLY = h("68 04 60 07 00 15 00 68 93 06 37 93 3A 33 48 33 9B 16")


def test_wildcard_read_both_ways() -> None:
    frame = dlt645.decode(WILDCARD_READ)
    assert frame.address == "AAAAAAAAAAAA"
    assert frame.control == 0x11 and frame.direction == "request"
    assert frame.body == dlt645.ReadRequest(0x00010000)
    assert dlt645.encode_read("AAAAAAAAAAAA", "00010000") == WILDCARD_READ


def test_commonly_quoted_wildcard_frame_with_b3_has_a_wrong_checksum() -> None:
    with pytest.raises(dlt645.Dlt645Error, match="expected 0xAE, got 0xB3") as err:
        dlt645.decode(h("68 AA AA AA AA AA AA 68 11 04 33 33 34 33 B3 16"))
    assert err.value.kind is ErrorKind.CHECKSUM


@pytest.mark.parametrize(
    ("raw", "di"),
    [(READ_ENERGY, "00010000"), (READ_VOLTAGE, "02010100"), (READ_CURRENT, "02020100")],
)
def test_captured_read_requests(raw: bytes, di: str) -> None:
    frame = dlt645.decode(raw)
    assert frame.address == "000000000161"
    assert frame.body == dlt645.ReadRequest(int(di, 16))
    assert dlt645.encode_read("000000000161", di) == raw


@pytest.mark.parametrize(
    ("raw", "di", "value", "unit"),
    [
        (ENERGY_REPLY, 0x00010000, Decimal("0.26"), "kWh"),
        (VOLTAGE_REPLY, 0x02010100, Decimal("100.1"), "V"),
        (REVERSE_REPLY, 0x00020000, Decimal("1.26"), "kWh"),
    ],
)
def test_captured_read_replies(raw: bytes, di: int, value: Decimal, unit: str) -> None:
    frame = dlt645.decode(raw)
    assert frame.control == 0x91 and frame.direction == "response"
    assert frame.body == dlt645.ReadResponse(di, value)
    fields = dlt645.describe(frame)
    assert fields["value"] == str(value) and fields["unit"] == unit
    assert fields["di"] == f"{di:08X}" and fields["error"] is None
    assert dlt645.encode_read_response("000000000161", di, value, preamble=False) == raw


def test_vendor_trip_frame_both_ways() -> None:
    frame = dlt645.decode(RELAY_TRIP)
    expires = datetime(2018, 5, 12, 15, 41, 24, tzinfo=SH)
    assert frame.body == dlt645.RelayCommand(
        dlt645.RelayAction.TRIP, 0x00, "000000", "00000000", expires
    )
    fields = dlt645.describe(frame)
    assert fields["relay_action"] == "trip"
    assert fields["expires"] == "2018-05-12T15:41:24+08:00"
    built = dlt645.encode_relay(
        "111111111111", "trip", password_level=0, expires=expires, preamble=False
    )
    assert built == RELAY_TRIP


def test_vendor_relay_reply() -> None:
    frame = dlt645.decode(RELAY_OK)
    assert isinstance(frame.body, dlt645.RelayResponse)
    assert dlt645.encode_relay_response("111111111111", preamble=False) == RELAY_OK


def test_uninterpreted_function_is_kept_raw() -> None:
    frame = dlt645.decode(READ_ADDRESS_REPLY)
    assert frame.address == "001500076004" and frame.control == 0x93
    assert frame.body == dlt645.OtherMessage(h("04 60 07 00 15 00"))


def test_password_and_operator_are_sent_low_byte_first() -> None:
    raw = dlt645.encode_relay(
        "000000000001", "close-allowed", password="123456", operator="AABBCCDD", preamble=False
    )
    data = bytes((b - 0x33) & 0xFF for b in raw[10:-2])
    assert data[:8] == h("02 56 34 12 DD CC BB AA")
    assert data[8] == 0x1B and data[9:] == bytes(7)
    body = dlt645.decode(raw).body
    assert isinstance(body, dlt645.RelayCommand)
    assert (body.password, body.operator, body.expires) == ("123456", "AABBCCDD", None)


def test_abnormal_replies_carry_named_error_flags() -> None:
    raw = dlt645.encode_read_error("000000000161", 0x02, preamble=False)
    # 68+61+01+68+D1+01+(02+33) = 0x239 -> CS 39
    assert raw == h("68 61 01 00 00 00 00 68 D1 01 35 39 16")
    fields = dlt645.describe(dlt645.decode(raw))
    assert fields["error"] == {"code": 2, "flags": ["no-requested-data"]}
    relay = dlt645.decode(dlt645.encode_relay_error("111111111111", 0x04))
    assert relay.control == 0xDC
    assert dlt645.describe(relay)["error"] == {
        "code": 4,
        "flags": ["password-error-or-unauthorised"],
    }


def test_follow_up_flag() -> None:
    raw = dlt645.encode_read_response("000000000161", "00010000", Decimal("1.00"), follow_up=True)
    frame = dlt645.decode(raw)
    assert frame.control == 0xB1 and frame.follow_up
    assert frame.body == dlt645.ReadResponse(0x00010000, Decimal("1.00"), follow_up=True)


def test_signed_values_and_blocks() -> None:
    values = {
        "02020100": Decimal("-12.345"),
        "02030000": Decimal("-1.2345"),
        "02060000": Decimal("-0.987"),
        "00000000": Decimal("-12.34"),
    }
    for di, value in values.items():
        raw = dlt645.encode_read_response("000000000001", di, value)
        body = dlt645.decode(raw).body
        assert isinstance(body, dlt645.ReadResponse) and body.value == value
    current = dlt645.encode_read_response("000000000001", "02020100", Decimal("-12.345"))
    assert current[-5:-2] == bytes(b + 0x33 for b in h("45 23 81"))  # 0x80 sign bit on XXX
    block = (Decimal("10.00"), Decimal("1.00"), Decimal("2.00"), Decimal("3.00"), Decimal("4.00"))
    fields = dlt645.describe(
        dlt645.decode(dlt645.encode_read_response("000000000001", "0001FF00", block))
    )
    assert fields["value"] is None
    assert fields["values"] == ["10.00", "1.00", "2.00", "3.00", "4.00"]


def test_date_time_and_broadcast_time_sync() -> None:
    date_reply = dlt645.encode_read_response(
        "000000000001", "04000101", dlt645.MeterDate(date(2024, 5, 12), 0)
    )
    assert dlt645.describe(dlt645.decode(date_reply))["value"] == "2024-05-12"
    when = datetime(2024, 5, 12, 8, 30, 15, tzinfo=ZoneInfo("UTC"))
    raw = dlt645.encode_time_sync(when, preamble=False)
    # ssmmhhDDMMYY in Beijing time: 15 30 16 12 05 24, each +33
    assert raw[:10] == h("68 99 99 99 99 99 99 68 08 06")
    assert raw[10:16] == bytes(b + 0x33 for b in h("15 30 16 12 05 24"))
    body = dlt645.decode(raw).body
    assert body == dlt645.TimeSync(when.astimezone(SH))


@pytest.mark.parametrize(
    ("raw", "kind", "message"),
    [
        (h("68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33 33 33 8B 16"), "checksum", "0x8A"),
        (h("68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33 33 33 8A 17"), "delimiter", "0x16"),
        (h("68 61 01 00 00 00 00 67 11 04 33 33 34 33 14 16"), "delimiter", "second 0x68"),
        (h("69 61 01 00 00 00 00 68 11 04 33 33 34 33 14 16"), "delimiter", "start 0x68"),
        (h("68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33"), "truncated", "4 more"),
        (h("68 61 01 00 00 00 00 68 11 04 33 33 34 33 14 16 16"), "length", "got 17"),
        (h("68 6A 01 00 00 00 00 68 11 04 33 33 34 33 1D 16"), "bcd", "A0"),
        (h("68 61 01 00 00 00 00 68 91 08 33 33 34 33 5F 33 33 33 90 16"), "bcd", "byte 0"),
        (h("68 61 01 00 00 00 00 68 91 05 33 33 34 33 34 C9 16"), "length", "need 4"),
        (
            h("68 61 01 00 00 00 00 68 91 08 44 44 44 44 33 33 33 33 A7 16"),
            "unknown-di",
            "11111111",
        ),
    ],
)
def test_precise_errors(raw: bytes, kind: str, message: str) -> None:
    with pytest.raises(dlt645.Dlt645Error, match=message) as err:
        dlt645.decode(raw)
    assert err.value.kind == kind
    assert isinstance(err.value, FrameError) and isinstance(err.value, ValueError)


def test_truncated_error_says_how_many_bytes_are_needed() -> None:
    with pytest.raises(dlt645.Dlt645Error) as err:
        dlt645.decode(ENERGY_REPLY[:-3])
    assert err.value.needed == 3


@pytest.mark.parametrize("address", ["12345678901", "1234567890AB", "12AA34567890", "abc"])
def test_bad_addresses_are_refused(address: str) -> None:
    with pytest.raises(dlt645.Dlt645Error):
        dlt645.encode_read(address, "00010000")


def test_abbreviated_address_and_broadcast() -> None:
    assert dlt645.decode(dlt645.encode_read("AAAA12345678", "00010000")).address == "AAAA12345678"
    assert dlt645.encode_time_sync(datetime(2024, 1, 1, tzinfo=SH))[5:11] == bytes([0x99] * 6)
