"""Deterministic ids: the same inputs, the same id; the text of a standard UUIDv5."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from contracts.ids import _NAMESPACE, command_id, derive_id

names = st.text(min_size=1, max_size=40)


@given(st.from_regex(r"[a-z][a-z_]{0,15}", fullmatch=True), st.lists(names, max_size=4))
def test_derived_ids_are_uuid5_of_the_kind_and_parts(kind: str, parts: list[str]) -> None:
    expected = f"{kind}-{uuid.uuid5(_NAMESPACE, chr(0x1F).join((kind, *parts)))}"
    assert derive_id(kind, *parts) == expected


def test_command_ids_depend_on_meter_action_and_origin() -> None:
    first = command_id("M1", "disconnect", "supply-1")
    assert first == command_id("M1", "disconnect", "supply-1")
    assert first.startswith("disconnect:M1:") and len(first.rsplit(":", 1)[1]) == 20
    assert len({first, command_id("M2", "disconnect", "supply-1"),
                command_id("M1", "reconnect", "supply-1"),
                command_id("M1", "disconnect", "supply-2")}) == 4
