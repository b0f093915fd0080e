from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.dead_letter import DeadLetter


def test_kafka_dead_letter_id_and_time_are_deterministic() -> None:
    a = DeadLetter.from_kafka(stage="ingest", reason="r", topic="t", partition=2, offset=7,
                              timestamp_s=1_700_000_000.5, key=b"k", raw=b"\x00")
    b = DeadLetter.from_kafka(stage="ingest", reason="r", topic="t", partition=2, offset=7,
                              timestamp_s=1_700_000_000.5, key=b"k", raw=b"\x00")
    assert a == b
    assert a.id == "t:2:7"
    assert a.at == datetime.fromtimestamp(1_700_000_000.5, tz=UTC)


def test_missing_value_is_kept_as_empty_bytes() -> None:
    letter = DeadLetter.from_kafka(stage="s", reason="empty message", topic="t", partition=0,
                                   offset=0, timestamp_s=0, key=None, raw=None)
    assert letter.raw == b"" and letter.key is None


@given(raw=st.binary(), key=st.one_of(st.none(), st.binary()), reason=st.text())
def test_json_round_trip_keeps_raw_bytes(raw: bytes, key: bytes | None, reason: str) -> None:
    letter = DeadLetter(id="x", at=datetime(2026, 1, 1, tzinfo=UTC), stage="s", reason=reason,
                        source="src", key=key, raw=raw)
    assert DeadLetter.from_json(letter.to_json()) == letter


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        DeadLetter.from_json(b'{"id":"x","at":"2026-01-01T00:00:00","stage":"s",'
                             b'"reason":"r","raw_b64":""}')
