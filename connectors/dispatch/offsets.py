"""Which commands-topic offset is safe to commit (pure).

A command stays unfinished while its meter is offline, possibly for hours, while later
commands for other meters finish. The committed offset of a partition is therefore its
low watermark: the smallest offset not yet finished, or one past the last offset seen.
Everything below it has its final acknowledgement on the acks topic; a restart resumes
there and skips what the acks topic already lists as finished.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PartitionOffsets:
    pending: set[int] = field(default_factory=set)
    next_offset: int | None = None

    def seen(self, offset: int) -> None:
        self.pending.add(offset)
        if self.next_offset is None or offset + 1 > self.next_offset:
            self.next_offset = offset + 1

    def done(self, offset: int) -> None:
        self.pending.discard(offset)

    def watermark(self) -> int | None:
        if self.pending:
            return min(self.pending)
        return self.next_offset


class OffsetTracker:
    def __init__(self) -> None:
        self._parts: dict[int, PartitionOffsets] = {}

    def seen(self, partition: int, offset: int) -> None:
        self._parts.setdefault(partition, PartitionOffsets()).seen(offset)

    def done(self, partition: int, offset: int) -> None:
        self._parts.setdefault(partition, PartitionOffsets()).done(offset)

    def watermarks(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for partition, offsets in self._parts.items():
            mark = offsets.watermark()
            if mark is not None:
                out[partition] = mark
        return out
