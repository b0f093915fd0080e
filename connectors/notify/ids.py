"""Deterministic ids of notifications and meta-alarms (UUIDv5, like every pipeline id).

A notification is one event to one recipient over one channel: the same alarm read twice
gives the same id, and the table keeps it once.
"""

from __future__ import annotations

from contracts.ids import derive_id


def notification_id(source_id: str, channel: str, recipient: str) -> str:
    return derive_id("notification", source_id, channel, recipient)


def meta_alarm_id(notification: str) -> str:
    """The ``notification_failed`` alarm raised when ``notification`` failed for good."""
    return derive_id("notification_failed", notification)
