"""The sinks: each pipeline topic lands in its TimescaleDB table, one batch per commit.

A Quix Streams application of its own (role ``sink``, consumer group ``<group>-sink``,
at least once, reading only committed records), so sinks and processors scale apart. Each
topic has one :class:`TableSink`: records collect between two commits and are written in
one transaction by pipeline/store.py when the engine commits; the offsets are committed
only after the write, so a crash re-reads and rewrites (idempotent), never skips.

A record that cannot be read, or that the database refuses, becomes a dead letter (with
its raw bytes and the reason) and the others are written; a database that cannot be
reached pauses the sink and retries (``SinkBackpressureError``), losing nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import msgspec
import psycopg
from confluent_kafka import Producer
from quixstreams import Application
from quixstreams.models import HeadersTuples
from quixstreams.sinks import BaseSink, SinkBackpressureError

from contracts import topics
from contracts.commands import parse_ack, parse_command
from contracts.dead_letter import DeadLetter
from contracts.errors import PayloadError
from contracts.messages import (
    AcceptedReading,
    AlarmMessage,
    BalanceMessage,
    LedgerMessage,
    MeterEvent,
    RatedInterval,
    RejectedReading,
    read,
)
from pipeline import metrics, store
from pipeline.worker_settings import WorkerSettings
from runtime.consumer import Record

log = logging.getLogger("meterflow.sinks")

#: Errors of the record itself (a retry cannot help), as opposed to an unreachable database.
UNWRITABLE = (KeyError, TypeError, ValueError, ArithmeticError, psycopg.DataError,
              psycopg.IntegrityError, psycopg.ProgrammingError)
RETRY_AFTER_S = 2.0


@dataclass(frozen=True)
class Table:
    """How one topic lands: the reader of its payload (contracts/) and its writer."""

    read: Callable[[bytes | None], Any]
    writer: Callable[[psycopg.Connection, Sequence[Any]], None]


def _dead_letter(raw: bytes | None) -> DeadLetter:
    return DeadLetter.from_json(raw or b"")


#: In the order they are written at each commit: the balance last, so that a balance seen
#: in the database comes with the ledger entries and alarms behind it.
TABLES: dict[str, Table] = {
    topics.ACCEPTED_READINGS: Table(partial(read, AcceptedReading), store.write_accepted),
    topics.REJECTED_READINGS: Table(partial(read, RejectedReading), store.write_rejected),
    topics.RATED_INTERVALS: Table(partial(read, RatedInterval), store.write_rated),
    topics.LEDGER: Table(partial(read, LedgerMessage), store.write_ledger),
    topics.ALARMS: Table(partial(read, AlarmMessage), store.write_alarms),
    topics.COMMANDS: Table(parse_command, store.write_commands),
    topics.COMMAND_ACKS: Table(parse_ack, store.write_acks),
    topics.METER_EVENTS: Table(partial(read, MeterEvent), store.write_meter_events),
    topics.DEAD_LETTERS: Table(_dead_letter, store.write_dead_letters),
    topics.BALANCES: Table(partial(read, BalanceMessage), store.write_balances),
}


class Connection:
    """One PostgreSQL connection with its staging tables, reopened after a failure."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: psycopg.Connection | None = None

    def get(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            conn = psycopg.connect(self.dsn, autocommit=True)
            store.prepare(conn)
            self._conn = conn
        return self._conn

    def reset(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None


class TableSink(BaseSink):
    """Lands one topic in its table at every commit (pipeline/store.py)."""

    def __init__(self, topic: str, table: Table, db: Connection, letters: Producer) -> None:
        super().__init__()
        self.topic = topic
        self.table = table
        self.db = db
        self.letters = letters
        self._records: list[Record] = []

    def add(self, value: Any, key: Any, timestamp: int, headers: HeadersTuples, topic: str,
            partition: int, offset: int) -> None:
        self._records.append(Record(topic, partition, offset, key, value, timestamp))

    def on_paused(self) -> None:
        self._records.clear()  # the engine seeks back to the last commit and reads again

    def flush(self) -> None:
        records, self._records = self._records, []
        if not records:
            return
        rows, bad = self._decode(records)
        started = time.monotonic()
        try:
            self._write(rows, bad)
        except psycopg.OperationalError as exc:
            log.warning("%s: database unreachable (%s); retrying in %.0fs", self.topic, exc,
                        RETRY_AFTER_S)
            self.db.reset()
            raise SinkBackpressureError(retry_after=RETRY_AFTER_S) from exc
        metrics.STATS.observe(self.topic, len(rows), time.monotonic() - started)
        if bad:
            self._dead_letters(bad)

    def _decode(self, records: list[Record]) -> tuple[list[tuple[Record, Any]],
                                                      list[tuple[Record, str]]]:
        rows: list[tuple[Record, Any]] = []
        bad: list[tuple[Record, str]] = []
        for record in records:
            try:
                rows.append((record, self.table.read(record.value)))
            except PayloadError as exc:
                bad.append((record, f"unreadable: {exc.reason}"))
            except (ValueError, KeyError, TypeError, msgspec.DecodeError) as exc:
                bad.append((record, f"unreadable: {exc}"))
        return rows, bad

    def _write(self, rows: list[tuple[Record, Any]], bad: list[tuple[Record, str]]) -> None:
        if not rows:
            return
        try:
            self.table.writer(self.db.get(), [value for _, value in rows])
        except UNWRITABLE:
            # One bad record must not block the others: write one by one, and send what
            # the database refuses to the dead letters with the reason.
            for record, value in rows:
                try:
                    self.table.writer(self.db.get(), [value])
                except UNWRITABLE as exc:
                    bad.append((record, f"not writable: {exc.__class__.__name__}: {exc}"))

    def _dead_letters(self, bad: list[tuple[Record, str]]) -> None:
        for record, reason in bad:
            if self.topic == topics.DEAD_LETTERS:  # a dead letter we cannot read: keep it whole
                letter = DeadLetter.from_kafka(
                    stage="dead-letter-sink", reason=reason, topic=record.topic,
                    partition=record.partition, offset=record.offset,
                    timestamp_s=record.timestamp_ms / 1000, key=record.key, raw=record.value)
                store.write_dead_letters(self.db.get(), [letter])
                continue
            letter = DeadLetter.from_kafka(
                stage=f"sink:{self.topic}", reason=reason, topic=record.topic,
                partition=record.partition, offset=record.offset,
                timestamp_s=record.timestamp_ms / 1000, key=record.key, raw=record.value)
            self.letters.produce(topics.DEAD_LETTERS, key=record.topic.encode(),
                                 value=letter.to_json())
        if self.letters.flush(30) > 0:
            raise SinkBackpressureError(retry_after=RETRY_AFTER_S)


def build(settings: WorkerSettings,
          on_message: Callable[[str, int, int], None] | None = None) -> Application:
    """The sink application from settings read once at the entry point."""
    app = Application(
        broker_address=settings.bootstrap_servers,
        consumer_group=settings.sink_group,
        processing_guarantee="at-least-once",
        auto_offset_reset="earliest",
        commit_interval=settings.sink_commit_interval_s,
        # Small fetches, taken in turn from every partition: with the client's defaults
        # (1 MB per partition, 64 MB queued) a backlog of readings fills the queue and the
        # balances produced meanwhile wait behind it for tens of seconds.
        consumer_extra_config=settings.consumer_config(**{
            "isolation.level": "read_committed", "fetch.wait.max.ms": 100,
            "max.partition.fetch.bytes": 65536, "queued.max.messages.kbytes": 2048}),
        use_changelog_topics=False,
        state_dir=str(settings.state_dir / "streams"),
        on_message_processed=on_message,
        loglevel=None,
    )
    letters = Producer({"bootstrap.servers": settings.bootstrap_servers, "acks": "all",
                        "enable.idempotence": True, "linger.ms": 5})
    for name, table in TABLES.items():
        topic = app.topic(name, key_deserializer="bytes", value_deserializer="bytes")
        app.dataframe(topic).sink(TableSink(name, table, Connection(settings.dsn), letters))
    return app
