from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.errors import PayloadError
from contracts.raw_reading import RawReading, parse_raw_reading


def body(**fields: object) -> bytes:
    base: dict[str, object] = {"meter_id": "M1", "ts": "2026-07-01T10:00:00+08:00",
                               "value": "1234.56", "unit": "kWh"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


def test_parses_strings_and_numbers_as_exact_decimals() -> None:
    r = parse_raw_reading(b'{"meter_id":"M1","ts":"2026-07-01T10:00:00+08:00",'
                          b'"value":0.1,"unit":"kWh","peak":"0.2"}')
    assert r.value == Decimal("0.1") and isinstance(r.value, Decimal)
    assert r.peak == Decimal("0.2")
    assert r.ts == datetime(2026, 7, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "empty message"),
        (b"", "empty message"),
        (b"\xff\xfe", "not UTF-8 at byte 0"),
        (b"{", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (body(ts="2026-07-01T10:00:00"), "field ts: timestamp has no UTC offset"),
        (body(ts="yesterday"), "field ts:"),
        (body(value="-1"), "field value:"),
        (body(value="abc"), "field value:"),
        (body(value=True), "field value: a boolean is not a register value"),
        (body(unit="MWh"), "field unit:"),
        (body(meter_id="a b"), "field meter_id:"),
        (body(value="1.2345"), "field value:"),
        (body(extra=1), "field extra:"),
        (body(meter_id=None), "field meter_id: Field required"),
        (b'{"meter_id":"M1","ts":"2026-07-01T10:00:00Z","value":NaN,"unit":"kWh"}',
         "not valid JSON: NaN is not a number"),
    ],
)
def test_bad_payloads_name_the_problem(raw: bytes | None, reason: str) -> None:
    with pytest.raises(PayloadError) as info:
        parse_raw_reading(raw)
    assert info.value.reason.startswith(reason)


def test_several_errors_are_counted() -> None:
    with pytest.raises(PayloadError, match=r"and 1 more"):
        parse_raw_reading(body(value="x", unit="J"))


@given(
    value=st.decimals(min_value=0, max_value=Decimal("99999999999.999"), places=3),
    offset_min=st.integers(min_value=-12 * 60, max_value=14 * 60),
    band=st.one_of(st.none(), st.decimals(min_value=0, max_value=10**6, places=2)),
)
def test_to_json_round_trips(value: Decimal, offset_min: int, band: Decimal | None) -> None:
    ts = datetime(2026, 3, 1, 12, tzinfo=timezone(timedelta(minutes=offset_min)))
    reading = RawReading(meter_id="M-1", ts=ts, value=value, unit="m3", peak=band, source="x")
    assert parse_raw_reading(reading.to_json()) == reading
