"""Kafka output of every connector: normalised readings and dead letters.

One :class:`KafkaOut` per process wraps a kafka-python producer set for durability and
throughput: ``acks="all"``, idempotence (no duplicates from the producer's own retries),
``linger_ms`` 25 and 128 KiB batches, gzip. Readings are keyed by meter id (so one meter's
readings stay in order on one partition) and dead letters by their deterministic id.

A send whose delivery fails after the producer's own retries is logged and sent again
(up to ``resend`` times); what still fails is counted in :attr:`KafkaOut.failed` and logged
with the payload, so nothing disappears silently. :meth:`close` flushes before closing.

:func:`connector_dead_letter` builds the dead letter of input that never was on Kafka (an
MQTT message, a serial frame): its id is ``<kind>:<where>:<sha256 of the bytes, 16 hex>``.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kafka import KafkaProducer

from contracts.dead_letter import DeadLetter
from contracts.raw_reading import RawReading
from contracts.topics import DEAD_LETTERS, RAW_READINGS

log = logging.getLogger(__name__)

PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "linger_ms": 25,
    "batch_size": 128 * 1024,
    "compression_type": "gzip",
    "delivery_timeout_ms": 120_000,
    "request_timeout_ms": 30_000,
    "retry_backoff_ms": 200,
}


def make_producer(bootstrap_servers: str, **overrides: Any) -> KafkaProducer:
    """A kafka-python producer with :data:`PRODUCER_DEFAULTS` (``overrides`` win)."""
    return KafkaProducer(bootstrap_servers=bootstrap_servers, **{**PRODUCER_DEFAULTS, **overrides})


def payload_digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def connector_dead_letter(
    *, kind: str, where: str, stage: str, reason: str, raw: bytes, at: datetime,
    key: bytes | None = None,
) -> DeadLetter:
    """Dead letter for connector input: id ``kind:where:<digest>``, ``at`` = receive time.

    The same bytes from the same place give the same id, so a redelivered message is
    stored once (the table is unique on ``(id, at)``; ``at`` is the receive time).
    """
    if at.tzinfo is None:
        raise ValueError("dead letter time must be timezone-aware")
    return DeadLetter(
        id=f"{kind}:{where}:{payload_digest(raw)}", at=at, stage=stage, reason=reason,
        source=f"{kind}:{where}", key=key, raw=raw,
    )


@dataclass
class Counters:
    readings: int = 0
    dead_letters: int = 0
    resent: int = 0
    failed: int = 0


class KafkaOut:
    """Thread-safe: MQTT callbacks, pollers and the dispatcher may send concurrently."""

    def __init__(
        self, producer: Any, *, resend: int = 3,
        on_failure: Callable[[str, bytes, bytes, BaseException], None] | None = None,
    ) -> None:
        self._producer = producer
        self._resend = resend
        self._on_failure = on_failure
        self._lock = threading.Lock()
        self.counters = Counters()
        # failed deliveries are sent again from this thread, never from the producer's own
        # I/O thread (a send there could block on a full buffer and deadlock it)
        self._retry: queue.Queue[tuple[str, bytes, bytes, int] | None] = queue.Queue()
        self._retrier = threading.Thread(target=self._resend_loop, daemon=True,
                                         name="kafka-out-resend")
        self._retrier.start()

    @classmethod
    def connect(cls, bootstrap_servers: str, **overrides: Any) -> KafkaOut:
        return cls(make_producer(bootstrap_servers, **overrides))

    @property
    def failed(self) -> int:
        return self.counters.failed

    def send(self, topic: str, key: bytes, value: bytes, *, attempt: int = 0) -> Any:
        """Send one record; a failed delivery is logged and sent again, then counted."""

        def errback(exc: BaseException) -> None:
            if attempt < self._resend:
                log.warning("delivery to %s failed (%s); sending again", topic, exc)
                with self._lock:
                    self.counters.resent += 1
                self._retry.put((topic, key, value, attempt + 1))
                return
            with self._lock:
                self.counters.failed += 1
            log.error("delivery to %s failed for good: key=%r value=%r: %s",
                      topic, key, value, exc)
            if self._on_failure is not None:
                self._on_failure(topic, key, value, exc)

        future = self._producer.send(topic, key=key, value=value)
        future.add_errback(errback)
        return future

    def _resend_loop(self) -> None:
        while (item := self._retry.get()) is not None:
            topic, key, value, attempt = item
            time.sleep(min(5.0, 0.5 * 2**attempt))
            try:
                self.send(topic, key, value, attempt=attempt)
            except Exception as exc:  # producer closed or broken: count and log it
                with self._lock:
                    self.counters.failed += 1
                log.error("cannot send again to %s: key=%r value=%r: %s", topic, key, value, exc)

    def reading(self, reading: RawReading) -> Any:
        with self._lock:
            self.counters.readings += 1
        return self.send(RAW_READINGS, reading.meter_id.encode(), reading.to_json())

    def dead_letter(self, letter: DeadLetter) -> Any:
        with self._lock:
            self.counters.dead_letters += 1
        return self.send(DEAD_LETTERS, letter.id.encode(), letter.to_json())

    def flush(self, timeout: float | None = None) -> None:
        self._producer.flush(timeout=timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Flush what is buffered (and what is being sent again), then close."""
        try:
            self._producer.flush(timeout=timeout)
            end = time.monotonic() + timeout
            while not self._retry.empty() and time.monotonic() < end:
                time.sleep(0.1)
            self._producer.flush(timeout=max(0.1, end - time.monotonic()))
        finally:
            self._retry.put(None)
            self._producer.close(timeout=timeout)
