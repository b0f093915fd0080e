"""Dead letters: input that could not be processed, kept with its raw bytes and the reason.

The record is JSON on the ``meterflow.deadletter`` topic; its id is deterministic so that a
redelivered bad message lands in the ``dead_letters`` table once.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class DeadLetter:
    id: str
    at: datetime
    stage: str
    reason: str
    source: str
    key: bytes | None
    raw: bytes

    @classmethod
    def from_kafka(
        cls, *, stage: str, reason: str, topic: str, partition: int, offset: int,
        timestamp_s: float, key: bytes | None, raw: bytes | None,
    ) -> DeadLetter:
        """A dead letter for a Kafka message, identified by where it was read."""
        at = datetime.fromtimestamp(timestamp_s, tz=UTC)
        return cls(
            id=f"{topic}:{partition}:{offset}", at=at, stage=stage, reason=reason,
            source=topic, key=key, raw=raw or b"",
        )

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "id": self.id,
                "at": self.at.isoformat(),
                "stage": self.stage,
                "reason": self.reason,
                "source": self.source,
                "key_b64": base64.b64encode(self.key).decode() if self.key is not None else None,
                "raw_b64": base64.b64encode(self.raw).decode(),
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> DeadLetter:
        body: dict[str, Any] = json.loads(data)
        at = datetime.fromisoformat(body["at"])
        if at.tzinfo is None:
            raise ValueError("dead letter 'at' has no UTC offset")
        key = body.get("key_b64")
        return cls(
            id=str(body["id"]), at=at, stage=str(body["stage"]), reason=str(body["reason"]),
            source=str(body.get("source", "")),
            key=base64.b64decode(key) if key is not None else None,
            raw=base64.b64decode(body["raw_b64"]),
        )
