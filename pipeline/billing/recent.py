"""The readings a meter sent most recently, and what became of each.

A reading can come again: an MQTT device redelivers what it was not sure was received, a
concentrator uploads its buffer a second time, a connector retries a batch. After newer
readings, a repeat would look out of order; it is the same reading, and it is answered
as it was the first time: nothing new is emitted. The memory is bounded (``DEPTH``
readings per meter, eight hours at a 15-minute interval) and compact: each entry is the
reading's instant, a digest of its values and the verdict, in 17 bytes.
"""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC, datetime, timedelta

from pipeline.billing.instants import utc
from pipeline.billing.reading import Reading

DEPTH = 32
ACCEPTED = "accepted"
_ENTRY = struct.Struct(">q8sB")  # instant in microseconds, value digest, verdict code
_VERDICTS = (ACCEPTED, "out_of_order", "conflicting_duplicate", "out_of_range",
             "future_timestamp", "register_decreased", "implausible_increase", "unknown_meter")
_CODES = {v: n for n, v in enumerate(_VERDICTS)}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def _key(reading: Reading) -> tuple[int, bytes]:
    micros = (utc(reading.ts) - _EPOCH) // _MICRO
    values = f"{reading.value}|" + "|".join(
        f"{band}={value}" for band, value in sorted(reading.registers.items()))
    return micros, hashlib.blake2b(values.encode(), digest_size=8).digest()


def verdict(recent: bytes, reading: Reading) -> str | None:
    """What this very reading (same instant, same values) got before, if it is known."""
    micros, digest = _key(reading)
    for offset in range(0, len(recent), _ENTRY.size):
        at, seen, code = _ENTRY.unpack_from(recent, offset)
        if at == micros and seen == digest:
            return _VERDICTS[code] if code < len(_VERDICTS) else None
    return None


def remember(recent: bytes, reading: Reading, outcome: str) -> bytes:
    """``recent`` with this reading's verdict added (the oldest forgotten first)."""
    micros, digest = _key(reading)
    entry = _ENTRY.pack(micros, digest, _CODES.get(outcome, 255))
    kept = recent[-(DEPTH - 1) * _ENTRY.size:] if DEPTH > 1 else b""
    return kept + entry
