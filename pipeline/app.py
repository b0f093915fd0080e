"""The Faust application: topics, agents and their wiring (agents stay thin).

``create_app(settings)`` builds the app from settings read once at the entry point. Agents
only move records: parsing, validation and rating live in pure modules they call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, cast

import faust
import psycopg
from faust.types import EventT

from meterflow.settings import Settings
from pipeline import topics
from pipeline.dead_letter import DeadLetter
from pipeline.raw_reading import PayloadError, RawReading, parse_raw_reading
from pipeline.store import write_dead_letters, write_readings

log = logging.getLogger("meterflow.pipeline")

BATCH_MAX = 500
BATCH_WITHIN_S = 0.5


class Database:
    """One lazily opened async connection per worker, reopened after a failure."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: psycopg.AsyncConnection | None = None

    async def connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        return self._conn

    async def write(
        self, writer: Callable[[psycopg.AsyncConnection, Sequence[Any]], Awaitable[None]],
        rows: Sequence[Any],
    ) -> None:
        """Write a batch, retrying with backoff until it lands (batches are idempotent).

        The batch's messages are acknowledged only after this returns, so a worker that dies
        here re-reads them; it never skips them.
        """
        delay = 0.5
        while True:
            try:
                await writer(await self.connection(), rows)
                return
            except psycopg.OperationalError as exc:
                log.warning("database write failed (%s); retrying in %.1fs", exc, delay)
                if self._conn is not None:
                    await self._conn.close()
                self._conn = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)


def batches(stream: faust.StreamT) -> AsyncIterator[Sequence[EventT]]:
    """Events in batches; the batch is acknowledged only after the loop body returns."""
    return cast(faust.Stream, stream).take_events(BATCH_MAX, within=BATCH_WITHIN_S)


def create_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.worker_id,
        broker=f"kafka://{settings.bootstrap_servers}",
        store="memory://",
        datadir=str(settings.state_dir / "faust"),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        web_host="127.0.0.1",
        web_port=settings.worker_web_port,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        autodiscover=False,
    )
    raw_readings = app.topic(
        topics.RAW_READINGS, key_type=bytes, value_type=bytes,
        key_serializer="raw", value_serializer="raw",
    )
    dead_letters = app.topic(
        topics.DEAD_LETTERS, key_type=bytes, value_type=bytes,
        key_serializer="raw", value_serializer="raw",
    )
    db = Database(settings.dsn)

    @app.agent(raw_readings, concurrency=1)
    async def ingest(stream: faust.StreamT) -> None:
        """Raw readings -> ``readings`` table; unparseable messages -> dead-letter topic."""
        async for events in batches(stream):
            accepted: list[RawReading] = []
            for event in events:
                message = event.message
                try:
                    accepted.append(parse_raw_reading(message.value))
                except PayloadError as exc:
                    letter = DeadLetter.from_kafka(
                        stage="ingest", reason=exc.reason, topic=message.topic,
                        partition=message.partition, offset=message.offset,
                        timestamp_s=message.timestamp, key=message.key, raw=message.value,
                    )
                    await dead_letters.send(key=letter.id.encode(), value=letter.to_json())
            await db.write(write_readings, accepted)

    @app.agent(dead_letters, concurrency=1)
    async def dead_letter_sink(stream: faust.StreamT) -> None:
        """Dead-letter topic -> ``dead_letters`` table (raw bytes kept)."""
        async for events in batches(stream):
            letters = []
            for event in events:
                message = event.message
                try:
                    letters.append(DeadLetter.from_json(message.value or b""))
                except (ValueError, KeyError, TypeError) as exc:
                    # Not written by us: keep it whole as a dead letter of its own.
                    letters.append(DeadLetter.from_kafka(
                        stage="dead-letter-sink", reason=f"unreadable dead letter: {exc}",
                        topic=message.topic, partition=message.partition,
                        offset=message.offset, timestamp_s=message.timestamp,
                        key=message.key, raw=message.value,
                    ))
            await db.write(write_dead_letters, letters)

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "ok", "app": settings.worker_id})

    return app
