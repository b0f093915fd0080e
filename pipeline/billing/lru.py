"""A bounded map that forgets its least recently used entry: the rating caches' memory bound."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    """At most ``size`` entries; reading an entry makes it the most recent.

    Values are never None (None means "not cached"). Each operation is one or two dict
    operations, so threads sharing a cache can at worst recompute an entry.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("an LRU cache needs room for at least one entry")
        self.size = size
        self._entries: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            try:  # noqa: SIM105 - suppress() costs more than the lookup it would guard
                self._entries.move_to_end(key)
            except KeyError:  # forgotten meanwhile by another thread: still a valid value
                pass
        return value

    def put(self, key: K, value: V) -> None:
        self._entries[key] = value
        if len(self._entries) > self.size:
            try:  # noqa: SIM105 - as above
                self._entries.popitem(last=False)
            except KeyError:  # emptied meanwhile by another thread
                pass
