"""Replay memory: the outputs an agent produced for its most recent inputs.

A worker that dies after its state was saved (the table changelog) but before its outputs
reached Kafka reads those inputs again after restart. The billing core recognises them
(duplicate reading, replayed idempotency key) and changes nothing; the agent then re-emits
the outputs it remembered for that input, with the same deterministic ids, so nothing is
lost and consumers deduplicate. The memory is bounded: older inputs were committed long ago.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Inputs remembered per key (meter or account). Far more than can be in flight between two
#: offset commits for one key.
DEPTH = 32

Out = tuple[str, str, dict[str, Any]]  # topic, key, JSON-safe value


def remember(record: Mapping[str, Any], input_id: str, outs: list[Out]) -> dict[str, Any]:
    """The record with ``outs`` remembered under ``input_id`` (oldest forgotten first)."""
    recent = dict(record.get("recent", {}))
    recent.pop(input_id, None)
    recent[input_id] = [list(out) for out in outs]
    while len(recent) > DEPTH:
        del recent[next(iter(recent))]
    return {**record, "recent": recent}


def recall(record: Mapping[str, Any] | None, input_id: str) -> list[Out] | None:
    """The outputs remembered for ``input_id``, or None when it is not (or no longer) known."""
    if not record:
        return None
    found = record.get("recent", {}).get(input_id)
    if found is None:
        return None
    return [(str(topic), str(key), dict(value)) for topic, key, value in found]
