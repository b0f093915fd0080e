"""Reading topics with a plain consumer: the record a feed hands on, and a consumer that
owns every partition of its topics and starts from the group's committed offsets (the
dispatcher's commands, the notifier's alarms and events; docs/architecture.md, layers)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kafka import TopicPartition


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed message, whatever client read it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


def topic_partitions(consumer: Any, topic: str, timeout_s: float = 30.0
                     ) -> list[TopicPartition]:
    """Every partition of ``topic``, waiting up to ``timeout_s`` for it to exist."""
    deadline = time.monotonic() + timeout_s
    parts = consumer.partitions_for_topic(topic)
    while not parts and time.monotonic() < deadline:
        time.sleep(0.5)
        parts = consumer.partitions_for_topic(topic)
    if not parts:
        raise RuntimeError(f"topic {topic} not found (is the stack up and are topics created?)")
    return [TopicPartition(topic, p) for p in sorted(parts)]


def assign_from_committed(consumer: Any, parts: Iterable[TopicPartition], *,
                          from_beginning: bool) -> list[TopicPartition]:
    """Assign ``parts`` and put each at the group's committed offset; a partition without
    one starts at its beginning or (``from_beginning`` false) at its end."""
    assigned = list(parts)
    consumer.assign(assigned)
    for tp in assigned:
        committed = consumer.committed(tp)
        if committed is not None:
            consumer.seek(tp, committed)
        elif from_beginning:
            consumer.seek_to_beginning(tp)
        else:
            consumer.seek_to_end(tp)
        consumer.position(tp)
    return assigned
