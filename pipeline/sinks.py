"""Sink agents: each pipeline topic lands in its TimescaleDB table, in batches.

A batch is acknowledged to Kafka only after its transaction committed; writes are
idempotent on event ids, so a replayed batch changes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import faust
import psycopg
from faust.types import EventT

from pipeline import metrics, store, topics
from pipeline.agents import Outputs, dead_letter
from pipeline.database import Database, Writer
from pipeline.dead_letter import DeadLetter

#: Errors of the record itself (a retry cannot help), as opposed to an unreachable database.
UNWRITABLE = (KeyError, TypeError, ValueError, ArithmeticError, psycopg.DataError,
              psycopg.IntegrityError, psycopg.ProgrammingError)
BATCH_MAX = 500
BATCH_WITHIN_S = 0.5

#: topic -> the writer of its table
SINKS: dict[str, Writer] = {
    topics.ACCEPTED_READINGS: store.write_accepted,
    topics.REJECTED_READINGS: store.write_rejected,
    topics.RATED_INTERVALS: store.write_rated,
    topics.LEDGER: store.write_ledger,
    topics.BALANCES: store.write_balances,
    topics.ALARMS: store.write_alarms,
    topics.COMMANDS: store.write_commands,
    topics.COMMAND_ACKS: store.write_acks,
    topics.METER_EVENTS: store.write_meter_events,
}


def batches(stream: faust.StreamT) -> AsyncIterator[Sequence[EventT]]:
    """Events in batches; the batch is acknowledged only after the loop body returns."""
    return cast(faust.Stream, stream).take_events(BATCH_MAX, within=BATCH_WITHIN_S)


def register(app: faust.App, dsn: str) -> None:
    out = Outputs(app)
    for name, writer in SINKS.items():
        _sink(app, out, name, writer, Database(dsn))
    letters = app.topic(topics.DEAD_LETTERS, key_serializer="raw", value_serializer="raw")
    db = Database(dsn)

    @app.agent(letters, name="sink-deadletter", concurrency=1)
    async def dead_letter_sink(stream: faust.StreamT) -> None:
        async for events in batches(stream):
            rows = []
            for event in events:
                message = event.message
                try:
                    rows.append(DeadLetter.from_json(message.value or b""))
                except (ValueError, KeyError, TypeError) as exc:
                    # Not written by us: keep it whole as a dead letter of its own.
                    rows.append(DeadLetter.from_kafka(
                        stage="dead-letter-sink", reason=f"unreadable dead letter: {exc}",
                        topic=message.topic, partition=message.partition,
                        offset=message.offset, timestamp_s=message.timestamp,
                        key=message.key, raw=message.value))
            started = time.monotonic()
            await db.write(store.write_dead_letters, rows)
            metrics.STATS.observe(topics.DEAD_LETTERS, len(rows), time.monotonic() - started)


def _sink(app: faust.App, out: Outputs, name: str, writer: Writer, db: Database) -> None:
    topic = app.topic(name, key_serializer="raw", value_serializer="raw")

    async def sink(stream: faust.StreamT) -> None:
        async for events in batches(stream):
            rows: list[tuple[Any, dict[str, Any]]] = []
            bad = []
            for event in events:
                try:
                    value = json.loads(event.message.value or b"")
                    if not isinstance(value, dict):
                        raise ValueError("not a JSON object")
                    rows.append((event.message, value))
                except ValueError as exc:
                    bad.append(dead_letter(f"sink:{name}", f"unreadable: {exc}", event.message))
            started = time.monotonic()
            try:
                await db.write(writer, [value for _, value in rows])
            except UNWRITABLE:
                # One bad record must not block the others: write one by one, and send
                # what the database refuses to the dead letters with the reason.
                for message, value in rows:
                    try:
                        await db.write(writer, [value])
                    except UNWRITABLE as exc:
                        reason = f"not writable: {exc.__class__.__name__}: {exc}"
                        bad.append(dead_letter(f"sink:{name}", reason, message))
            metrics.STATS.observe(name, len(rows), time.monotonic() - started)
            await out.send(bad)

    app.agent(topic, name=f"sink-{name}", concurrency=1)(sink)
