"""The dispatcher's Kafka edges: finished command ids from the acks topic, the command feed.

Finished commands are persisted by the acks topic itself: an ack is produced (and
confirmed, ``acks=all``) before its command counts as finished, and on start the whole
acks topic (30 days, the commands topic's retention too) is read back into the set of
finished ids. One record is both the outcome and the dedupe state, so they cannot
disagree, and no other store is needed.

The command feed reads every partition of ``meterflow.commands`` in one consumer thread
(kafka-python consumers are not thread-safe) and commits, under the group
``meterflow-dispatcher``, each partition's low watermark (see
:mod:`connectors.dispatch.offsets`); a start resumes from there.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from contracts.commands import parse_ack
from contracts.errors import PayloadError
from contracts.topics import COMMAND_ACKS, COMMANDS
from runtime.consumer import Record, assign_from_committed, topic_partitions

log = logging.getLogger(__name__)
GROUP = "meterflow-dispatcher"


def load_finished(bootstrap: str, *, timeout_s: float = 60.0) -> set[str]:
    """Every command id that has a final ack on the acks topic."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             group_id=None, consumer_timeout_ms=1000)
    try:
        parts = topic_partitions(consumer, COMMAND_ACKS, timeout_s)
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        finished: set[str] = set()
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    try:
                        finished.add(parse_ack(record.value).command_id)
                    except PayloadError as exc:
                        log.warning("unreadable ack at %s:%s: %s", record.partition,
                                    record.offset, exc.reason)
        return finished
    finally:
        consumer.close()


class CommandFeed:
    """Commands from Kafka onto an asyncio queue; watermark commits back to Kafka."""

    def __init__(self, bootstrap: str, *, group: str = GROUP, from_beginning: bool = True
                 ) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self.from_beginning = from_beginning
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._commit: dict[int, int] = {}
        self._commit_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Record]) -> None:
        self._thread = threading.Thread(target=self._run, args=(loop, queue), daemon=True,
                                        name="command-feed")
        self._thread.start()

    @property
    def alive(self) -> bool:
        """The consumer thread runs (False before start and after it stopped or failed)."""
        return self._thread is not None and self._thread.is_alive()

    def commit(self, watermarks: dict[int, int]) -> None:
        with self._commit_lock:
            self._commit.update(watermarks)

    def _flush_commits(self, consumer: KafkaConsumer) -> None:
        with self._commit_lock:
            todo, self._commit = self._commit, {}
        if todo:
            consumer.commit({TopicPartition(COMMANDS, p): OffsetAndMetadata(o, "", -1)
                             for p, o in todo.items()})

    def _run(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Record]) -> None:
        # The processors write commands in Kafka transactions: read only committed ones.
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.group,
                                 enable_auto_commit=False, auto_offset_reset="earliest",
                                 isolation_level="read_committed")
        try:
            assign_from_committed(consumer, topic_partitions(consumer, COMMANDS),
                                  from_beginning=self.from_beginning)
            self.ready.set()
            while not self._stop.is_set():
                for records in consumer.poll(timeout_ms=200).values():
                    for r in records:
                        rec = Record(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp)
                        loop.call_soon_threadsafe(queue.put_nowait, rec)
                try:
                    self._flush_commits(consumer)
                except Exception:  # a failed commit is retried with the next watermark
                    log.exception("offset commit failed")
            self._flush_commits(consumer)
        except Exception:
            log.exception("command feed stopped")
            raise
        finally:
            consumer.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


