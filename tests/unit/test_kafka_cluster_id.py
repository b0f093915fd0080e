"""KRaft cluster ids never start with '-' (the storage tool would read it as an option)."""

from __future__ import annotations

import base64
import uuid

import pytest

from meterflow.stack import kafka


def test_an_id_that_would_look_like_an_option_is_drawn_again(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    dashed = uuid.UUID(bytes=b"\xf8" + bytes(15))  # base64 of 0xF8... begins with '-'
    assert base64.urlsafe_b64encode(dashed.bytes).decode().startswith("-")
    draws = iter([dashed, uuid.UUID(bytes=bytes(16))])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(draws))
    assert kafka.new_cluster_id() == "A" * 22


def test_ids_are_22_url_safe_characters() -> None:
    for _ in range(500):
        cluster_id = kafka.new_cluster_id()
        assert len(cluster_id) == 22 and not cluster_id.startswith("-")
        assert base64.urlsafe_b64decode(cluster_id + "==") is not None
