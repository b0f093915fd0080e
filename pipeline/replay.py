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


#: Where an input was read: topic, partition, offset.
Position = tuple[str, int, int]


def behind(record: Mapping[str, Any] | None, position: Position) -> bool:
    """Whether the input at ``position`` was already applied to ``record``.

    After a restart a worker reads again everything after its last offset commit, which can
    be far more than the replay memory holds (Faust commits rarely under load). The record
    keeps the highest offset it applied per topic (in the same table value as the state,
    so both reach the changelog together); an input at or below it is a replay and changes
    nothing. Content-based recall still answers producer-side duplicates, which arrive at
    new offsets. A partition that changed (topic re-partitioned) compares nothing.
    """
    if not record:
        return False
    topic, partition, offset = position
    mark = record.get("positions", {}).get(topic)
    return mark is not None and mark[0] == partition and offset <= mark[1]


def note(record: Mapping[str, Any], position: Position) -> dict[str, Any]:
    """The record with ``position`` noted as applied (the highest offset per topic)."""
    topic, partition, offset = position
    positions = dict(record.get("positions", {}))
    mark = positions.get(topic)
    if mark is None or mark[0] != partition or offset > mark[1]:
        positions[topic] = [partition, offset]
    return {**record, "positions": positions}
