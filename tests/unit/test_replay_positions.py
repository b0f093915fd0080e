"""Offsets already applied to a record are told apart from new input (pipeline.replay)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.replay import behind, note


def test_nothing_is_behind_an_empty_record() -> None:
    assert not behind(None, ("t", 0, 0))
    assert not behind({}, ("t", 0, 5))


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=50), st.integers(0, 10_000))
def test_behind_means_at_or_below_the_highest_offset_applied(applied: list[int],
                                                             probe: int) -> None:
    record: dict[str, object] = {}
    for offset in applied:
        record = note(record, ("raw", 3, offset))
    assert behind(record, ("raw", 3, probe)) == (probe <= max(applied))
    assert not behind(record, ("other", 3, probe)), "topics are apart"
    assert not behind(record, ("raw", 4, probe)), "another partition compares nothing"


def test_note_keeps_other_fields() -> None:
    assert note({"wallet": 1}, ("t", 0, 7)) == {"wallet": 1, "positions": {"t": [0, 7]}}
