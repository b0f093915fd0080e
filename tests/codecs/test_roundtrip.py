"""Property tests: encode then decode gives the same frame (both protocols)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors import cjt188, dlt645

SH = ZoneInfo("Asia/Shanghai")

dlt_addresses = st.text("0123456789", min_size=12, max_size=12)
cjt_addresses = st.text("0123456789", min_size=14, max_size=14)
stamps = st.datetimes(
    datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive; the zone is added below
    datetime(2099, 12, 31),  # noqa: DTZ001
).map(lambda d: d.replace(microsecond=0, tzinfo=SH))


@st.composite
def dlt_values(draw: st.DrawFn) -> tuple[int, dlt645.Value]:
    item = draw(st.sampled_from([i for i in dlt645.REGISTRY.values() if i.kind == "number"]))
    top = 8 * 10 ** (2 * item.size - 1) if item.signed else 10 ** (2 * item.size)
    low = -top + 1 if item.signed else 0

    def one() -> Decimal:
        return Decimal(draw(st.integers(low, top - 1))).scaleb(-item.decimals)

    if item.is_block:
        return item.di, tuple(one() for _ in range(item.count or draw(st.integers(1, 8))))
    return item.di, one()


@settings(max_examples=150, deadline=None)
@given(dlt_addresses, st.integers(0, 0xFFFFFFFF), st.booleans())
def test_dlt645_read_request(address: str, di: int, preamble: bool) -> None:
    frame = dlt645.decode(dlt645.encode_read(address, di, preamble=preamble))
    assert frame == dlt645.Frame(address, 0x11, dlt645.ReadRequest(di))


@settings(max_examples=200, deadline=None)
@given(dlt_addresses, dlt_values(), st.booleans())
def test_dlt645_read_response(address: str, di_value: tuple[int, dlt645.Value], more: bool) -> None:
    di, value = di_value
    raw = dlt645.encode_read_response(address, di, value, follow_up=more)
    frame = dlt645.decode(raw)
    assert frame.body == dlt645.ReadResponse(di, value, more)
    assert dlt645.encode(frame) == raw


@settings(max_examples=150, deadline=None)
@given(
    dlt_addresses,
    st.sampled_from(list(dlt645.RelayAction)),
    st.integers(0, 255),
    st.binary(min_size=3, max_size=3),
    st.binary(min_size=4, max_size=4),
    st.none() | stamps,
)
def test_dlt645_relay(
    address: str,
    action: dlt645.RelayAction,
    level: int,
    password: bytes,
    operator: bytes,
    expires: datetime | None,
) -> None:
    command = dlt645.RelayCommand(
        action, level, password.hex().upper(), operator.hex().upper(), expires
    )
    raw = dlt645.encode(dlt645.Frame(address, 0x1C, command))
    assert dlt645.decode(raw) == dlt645.Frame(address, 0x1C, command)


@settings(max_examples=100, deadline=None)
@given(dlt_addresses, st.integers(0, 255), st.sampled_from([0x11, 0x1C]))
def test_dlt645_error_reply(address: str, code: int, function: int) -> None:
    raw = dlt645.encode_error_response(address, code, function=function)
    frame = dlt645.decode(raw)
    assert frame.control == 0xC0 | function
    assert frame.body == dlt645.ErrorResponse(function, code)


volumes = st.integers(0, 99_999_999).map(lambda v: Decimal(v).scaleb(-2))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([0x10, 0x11, 0x12, 0x13, 0x30]),
    cjt_addresses,
    volumes,
    volumes,
    st.sampled_from(sorted(cjt188.UNITS.values())),
    st.none() | stamps,
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
)
def test_cjt188_metering_reply(
    meter_type: int,
    address: str,
    volume: Decimal,
    settlement: Decimal,
    unit: str,
    when: datetime | None,
    st0: int,
    st1: int,
    ser: int,
) -> None:
    data = cjt188.MeteringData(volume, unit, settlement, unit, when, cjt188.Status(st0, st1), ser)
    raw = cjt188.encode(cjt188.Frame(meter_type, address, 0x81, data))
    assert cjt188.decode(raw) == cjt188.Frame(meter_type, address, 0x81, data)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 255),
    cjt_addresses | st.just(cjt188.BROADCAST),
    st.sampled_from(list(cjt188.ValveAction)),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
)
def test_cjt188_requests(
    meter_type: int, address: str, action: cjt188.ValveAction, ser: int, di: int
) -> None:
    valve = cjt188.decode(cjt188.encode_valve(meter_type, address, action, ser=ser))
    assert valve == cjt188.Frame(meter_type, address, 0x04, cjt188.ValveCommand(action, ser))
    read = cjt188.decode(cjt188.encode_read(meter_type, address, di, ser=ser))
    assert read == cjt188.Frame(meter_type, address, 0x01, cjt188.ReadRequest(di, ser))
