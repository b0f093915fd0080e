"""The outbox relay: committed ``outbox`` rows to Kafka, at least once, in id order.

Rule: a row is marked published only after the broker acknowledged it (``acks="all"``,
every send future resolved). One batch is one transaction: claim pending rows with
``FOR UPDATE SKIP LOCKED`` (so concurrent relays never hold the same row), produce them,
wait for every acknowledgement, mark them, commit. Any failure rolls the transaction back
and the rows are claimed again after a backoff. A crash between the acknowledgement and the
commit republishes the batch: consumers deduplicate on the payload's own ids (payments: the
idempotency key and payment id), so a duplicate changes nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg

from runtime.health import Heartbeat
from runtime.retry import Doubling
from services.payments.request import encode_payload

log = logging.getLogger("meterflow.relay")

CLAIM = """
SELECT id, topic, key, payload FROM outbox
WHERE published_at IS NULL
ORDER BY id
LIMIT %s
FOR UPDATE SKIP LOCKED
"""
MARK = "UPDATE outbox SET published_at = %s WHERE id = ANY(%s)"
STATUS = """
SELECT count(*), min(created_at) FROM outbox WHERE published_at IS NULL
"""
ID_HEADER = "meterflow-outbox-id"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    topic: str
    key: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """Batch size, idle poll and backoff of the relay loop, and the wait for the broker."""

    batch_size: int = 200
    idle_s: float = 0.5
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    ack_timeout_s: float = 30.0


class Producer(Protocol):
    """The part of kafka-python's KafkaProducer the relay uses."""

    def send(self, topic: str, value: bytes | None = ..., key: bytes | None = ...,
             headers: list[tuple[str, bytes]] | None = ...) -> Any: ...
    def flush(self, timeout: float | None = ...) -> None: ...
    def close(self, timeout: float | None = ...) -> None: ...


def kafka_producer(bootstrap_servers: str, timeout_s: float = 30.0) -> Producer:
    """An idempotent producer waiting for all in-sync replicas; ordered per partition."""
    from kafka import KafkaProducer

    timeout_ms = int(timeout_s * 1000)
    producer: Producer = KafkaProducer(
        bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True,
        linger_ms=5, request_timeout_ms=min(10_000, timeout_ms - 5),
        delivery_timeout_ms=timeout_ms, client_id="meterflow-relay")
    return producer


#: Called with the acknowledged batch before it is marked: tests inject a crash there.
BeforeMark = Callable[[Sequence[OutboxRow]], None]


def relay_batch(conn: psycopg.Connection, producer: Producer, config: RelayConfig,
                before_mark: BeforeMark | None = None) -> list[OutboxRow]:
    """Claim, produce, await acknowledgements, mark, commit one batch; return it.

    Raises whatever failed (the transaction is then rolled back, nothing is marked).
    """
    with conn.transaction():
        rows = [OutboxRow(int(i), str(t), str(k), p) for i, t, k, p in
                conn.execute(CLAIM, (config.batch_size,)).fetchall()]
        if not rows:
            return []
        futures = [producer.send(row.topic, key=row.key.encode(),
                                 value=encode_payload(row.payload),
                                 headers=[(ID_HEADER, str(row.id).encode())])
                   for row in rows]
        producer.flush(timeout=config.ack_timeout_s)
        for future in futures:
            future.get(timeout=config.ack_timeout_s)  # raises unless the broker acknowledged
        if before_mark is not None:
            before_mark(rows)
        conn.execute(MARK, (datetime.now(UTC), [row.id for row in rows]))
    return rows


def drain(conn: psycopg.Connection, producer: Producer, config: RelayConfig,
          before_mark: BeforeMark | None = None) -> list[OutboxRow]:
    """Relay batches until none is pending (``--once``); return every row relayed."""
    done: list[OutboxRow] = []
    while batch := relay_batch(conn, producer, config, before_mark):
        done.extend(batch)
    return done


class Relay:
    """The long-running loop: batches while rows are pending, backoff on failure."""

    def __init__(self, dsn: str, producer_factory: Callable[[], Producer],
                 config: RelayConfig | None = None,
                 before_mark: BeforeMark | None = None) -> None:
        self.dsn = dsn
        self.producer_factory = producer_factory
        self.config = config or RelayConfig()
        self.before_mark = before_mark
        self.stop = threading.Event()
        self.published = 0
        # progress for GET /health: a round counts when a batch (even empty) went through
        self.heartbeat = Heartbeat(max_age_s=4 * self.config.backoff_max_s)

    def run(self) -> None:
        """Until :attr:`stop` is set; the batch in hand is finished or rolled back first."""
        conn: psycopg.Connection | None = None
        producer: Producer | None = None
        backoff = Doubling(self.config.backoff_s, self.config.backoff_max_s)
        try:
            while not self.stop.is_set():
                try:
                    if conn is None or conn.closed:
                        conn = psycopg.connect(self.dsn, autocommit=True)
                    if producer is None:
                        producer = self.producer_factory()
                    batch = relay_batch(conn, producer, self.config, self.before_mark)
                except Exception as exc:  # Kafka or database down: nothing was marked
                    wait = backoff.failed()
                    log.warning("relay batch failed, retrying in %.1fs: %s", wait, exc)
                    self.heartbeat.fail(exc)
                    conn, producer = _reset(conn, producer)
                    self.stop.wait(wait)
                    continue
                backoff.succeeded()
                self.published += len(batch)
                self.heartbeat.beat()
                if batch:
                    log.info("published %d outbox row(s) up to id %d", len(batch), batch[-1].id)
                else:
                    self.stop.wait(self.config.idle_s)
        finally:
            _reset(conn, producer)


def _reset(conn: psycopg.Connection | None, producer: Producer | None) -> tuple[None, None]:
    """Drop both clients after a failure: the next attempt starts from fresh connections."""
    if producer is not None:
        try:
            producer.close(timeout=5)
        except Exception:  # closing a broken producer may fail too
            log.debug("closing the producer failed", exc_info=True)
    if conn is not None:
        conn.close()
    return None, None


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    pending: int
    oldest_pending_age_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"pending": self.pending, "oldest_pending_age_s": self.oldest_pending_age_s}


def status(conn: psycopg.Connection, now: datetime | None = None) -> OutboxStatus:
    """How many rows wait for the relay and how long the oldest has waited."""
    row = conn.execute(STATUS).fetchone()
    count, oldest = (0, None) if row is None else row
    if oldest is None:
        return OutboxStatus(int(count), None)
    age = ((now or datetime.now(UTC)) - oldest).total_seconds()
    return OutboxStatus(int(count), round(max(age, 0.0), 3))



def relay_probe(runner: Relay, dsn: str) -> Callable[[], dict[str, Any]]:
    """``GET /health`` of the relay: its progress, what it published, and the backlog.

    503 when the loop made no progress for a while (Kafka or the database down) or the
    database cannot be asked for the backlog.
    """
    def probe() -> dict[str, Any]:
        body = {**runner.heartbeat.report(), "published": runner.published}
        with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as conn:
            body.update(status(conn).to_dict())
        return body

    return probe
