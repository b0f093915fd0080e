"""CJ/T 188-2004 golden frames, byte for byte, both directions.

Sources (public): the widely copied "CJ/T-188 水表协议解析" walkthrough (SC water
meter 78330011223344: read request and 901F reply, whose published checksum is
wrong, see below); an Android tool's command table for a CJ/T 188 gas meter
(type 30H, address 00000000000003: valve open/close and read, three FE bytes).
Every checksum is recomputed by hand in the comment next to the frame.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from connectors import cjt188
from connectors.codec_errors import ErrorKind
from connectors.codec_quirks import CodecQuirks

SH = ZoneInfo("Asia/Shanghai")
THREE_FE = CodecQuirks(cjt188_wakeup_bytes=3)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# 68+10+44+33+22+11+00+33+78 (=0x1CD) + 01+03+1F+90+00 (=0xB3) = 0x280 -> CS 80
WATER_READ = h("FE FE FE FE 68 10 44 33 22 11 00 33 78 01 03 1F 90 00 80 16")
_REPLY_BODY = (
    "68 10 44 33 22 11 00 33 78 81 16 1F 90 00 00 77 66 55 2C 00 77 66 55 2C "
    "31 01 22 11 05 15 20 21 84"
)
# Published with CS 08, but 68+10+44+33+22+11+00+33+78 (=0x1CD) + 81+16+1F+90+00 (=0x146)
# + 00+77+66+55+2C (=0x15E) twice + 31+01+22+11+05+15+20 (=0x9F) + 21+84 (=0xA5)
# = 0x713 -> CS 13.
WATER_REPLY_AS_PUBLISHED = h(f"FE FE FE FE {_REPLY_BODY} 08 16")
WATER_REPLY = h(f"FE FE FE FE {_REPLY_BODY} 13 16")
# 68+30+03+04+04+17+A0+01+55 = 0x1B0 -> CS B0
GAS_VALVE_OPEN = h("FE FE FE 68 30 03 00 00 00 00 00 00 04 04 17 A0 01 55 B0 16")
# 68+30+03+04+04+17+A0+01+99 = 0x1F4 -> CS F4
GAS_VALVE_CLOSE = h("FE FE FE 68 30 03 00 00 00 00 00 00 04 04 17 A0 01 99 F4 16")
# 68+30+03+01+03+1F+90+FF = 0x24D -> CS 4D
GAS_READ = h("FE FE FE 68 30 03 00 00 00 00 00 00 01 03 1F 90 FF 4D 16")


def test_water_read_request_both_ways() -> None:
    frame = cjt188.decode(WATER_READ)
    assert (frame.meter_type, frame.address, frame.control) == (0x10, "78330011223344", 0x01)
    assert frame.body == cjt188.ReadRequest(0x901F, 0)
    assert cjt188.encode_read(0x10, "78330011223344") == WATER_READ


def test_published_reply_checksum_is_wrong_and_refused() -> None:
    with pytest.raises(cjt188.Cjt188Error, match="expected 0x13, got 0x08") as err:
        cjt188.decode(WATER_REPLY_AS_PUBLISHED)
    assert err.value.kind is ErrorKind.CHECKSUM


def test_water_metering_reply_both_ways() -> None:
    frame = cjt188.decode(WATER_REPLY)
    when = datetime(2015, 5, 11, 22, 1, 31, tzinfo=SH)
    status = cjt188.Status(0x21, 0x84)
    assert frame.body == cjt188.MeteringData(
        Decimal("556677.00"), "m3", Decimal("556677.00"), "m3", when, status, 0
    )
    fields = cjt188.describe(frame)
    assert fields["di"] == "901F" and fields["volume"] == "556677.00" and fields["unit"] == "m3"
    assert fields["meter_time"] == "2015-05-11T22:01:31+08:00"
    assert fields["status"] == {"st0": "21", "st1": "84", "valve": "closed", "battery_low": False}
    built = cjt188.encode_read_response(
        0x10, "78330011223344", Decimal("556677.00"), meter_time=when, status=status
    )
    assert built == WATER_REPLY


@pytest.mark.parametrize(("raw", "action"), [(GAS_VALVE_OPEN, "open"), (GAS_VALVE_CLOSE, "close")])
def test_gas_valve_commands_both_ways(raw: bytes, action: str) -> None:
    frame = cjt188.decode(raw)
    assert frame.body == cjt188.ValveCommand(cjt188.ValveAction(action), 1)
    assert cjt188.describe(frame)["valve_action"] == action
    assert cjt188.encode_valve(0x30, "00000000000003", action, ser=1, quirks=THREE_FE) == raw


def test_gas_read_both_ways() -> None:
    assert cjt188.decode(GAS_READ).body == cjt188.ReadRequest(0x901F, 0xFF)
    assert cjt188.encode_read(0x30, "00000000000003", ser=0xFF, quirks=THREE_FE) == GAS_READ


def test_valve_reply_and_abnormal_replies() -> None:
    closed = cjt188.Status.of(cjt188.ValveState.CLOSED, battery_low=True)
    raw = cjt188.encode_valve_response(0x10, "78330011223344", closed, ser=7, preamble=False)
    # 68+10+44+33+22+11+00+33+78 (=0x1CD) + 84+05+17+A0+07+05+00 (=0x14C) = 0x319 -> CS 19
    assert raw == h("68 10 44 33 22 11 00 33 78 84 05 17 A0 07 05 00 19 16")
    fields = cjt188.describe(cjt188.decode(raw))
    assert fields["kind"] == "valve-response" and fields["status"]["valve"] == "closed"  # type: ignore[index]
    error = cjt188.encode_error_response(0x10, "78330011223344", 0x04, closed, ser=7)
    frame = cjt188.decode(error)
    assert frame.control == 0xC4 and frame.abnormal
    assert frame.body == cjt188.ErrorResponse(0x04, closed, 7, None)
    with_di = h("68 10 44 33 22 11 00 33 78 C1 05 1F 90 00 03 00")
    with_di += bytes([sum(with_di) & 0xFF, 0x16])
    body = cjt188.decode(with_di).body
    assert body == cjt188.ErrorResponse(0x01, cjt188.Status(0x03, 0), 0, 0x901F)
    assert cjt188.describe(cjt188.decode(with_di))["error"] == {
        "status": {"st0": "03", "st1": "00", "valve": "abnormal", "battery_low": False}
    }


def _with_cs(text: str) -> bytes:
    body = h(text)
    return body + bytes([sum(body) & 0xFF, 0x16])


@pytest.mark.parametrize(
    ("raw", "kind", "message"),
    [
        (WATER_READ[:-2] + h("81 16"), "checksum", "expected 0x80, got 0x81"),
        (WATER_READ[:-1] + h("17"), "delimiter", "end 0x16"),
        (WATER_READ[4:-4], "truncated", "4 more"),
        (WATER_READ + h("00"), "length", "got 17"),
        (_with_cs("68 10 4A 33 22 11 00 33 78 01 03 1F 90 00"), "bcd", "0x4A"),
        (_with_cs(_REPLY_BODY.replace("00 77 66 55 2C 31", "00 77 66 55 2D 31")), "value", "0x2D"),
        (_with_cs(_REPLY_BODY.replace("31 01 22 11 05", "31 01 22 1A 05")), "bcd", "DD"),
        (_with_cs(_REPLY_BODY.replace("1F 90", "2F 90")), "unknown-di", "902F"),
        (_with_cs("68 10 44 33 22 11 00 33 78 04 04 17 A0 00 33"), "value", "valve command"),
        (_with_cs("68 20 44 33 22 11 00 33 78 81 03 1F 90 00"), "unsupported", "heat"),
    ],
)
def test_precise_errors(raw: bytes, kind: str, message: str) -> None:
    with pytest.raises(cjt188.Cjt188Error, match=message) as err:
        cjt188.decode(raw)
    assert err.value.kind == kind
