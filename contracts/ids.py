"""Deterministic ids of output events: the same inputs always give the same id.

A stream processor that replays its input after a crash emits the same ids again, so
consumers can deduplicate. Ids are UUIDv5 over a kind and the identifying parts.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

_NAMESPACE = uuid.UUID("6f1d3c2e-9a4b-5c7d-8e9f-0a1b2c3d4e5f")


_NAMESPACE_BYTES = _NAMESPACE.bytes


def derive_id(kind: str, *parts: str) -> str:
    """``kind`` plus a UUIDv5 (RFC 9562, section 5.5) of ``kind`` and ``parts`` (joined
    unambiguously); the same text as ``uuid.uuid5``, built without its object."""
    key = "\x1f".join((kind, *parts))
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + key.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{kind}-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def instant_key(ts: datetime) -> str:
    """One text per instant, whatever the offset it was written with."""
    return ts.astimezone(UTC).isoformat()


def charge_id(meter_id: str, interval_end: datetime) -> str:
    """A charge is identified by its meter and the end of the rated interval."""
    return derive_id("charge", meter_id, instant_key(interval_end))


def ledger_entry_id(account_id: str, seq: int) -> str:
    return derive_id("entry", account_id, str(seq))


def alarm_id(account_id: str, threshold_fen: int, seq: int) -> str:
    """A low-balance alarm: account, threshold and the ledger sequence that crossed it."""
    return derive_id("alarm", account_id, str(threshold_fen), str(seq))


def supply_decision_id(account_id: str, action: str, seq: int, at: datetime) -> str:
    """A disconnect/reconnect decision: account, action, ledger sequence and instant."""
    return derive_id("supply", account_id, action, str(seq), instant_key(at))


def rejection_id(meter_id: str, ts: datetime, reason: str) -> str:
    return derive_id("rejected", meter_id, instant_key(ts), reason)


def meter_stopped_id(meter_id: str, unchanged_since: datetime) -> str:
    return derive_id("stopped", meter_id, instant_key(unchanged_since))


def command_id(meter_id: str, action: str, origin: str) -> str:
    """A relay or valve command: the same producer event (``origin``, e.g. a supply
    decision or an operator's request key) always yields the same command id, so a
    producer that retries cannot issue two."""
    digest = hashlib.sha256(f"{meter_id}\x00{action}\x00{origin}".encode()).hexdigest()[:20]
    return f"{action}:{meter_id}:{digest}"
