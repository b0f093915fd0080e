"""The worker's own figures for the pipeline-health board, written to ``pipeline_metrics``.

Sinks report each batch they wrote (``STATS.observe``); every period a thread takes the
counters, measures this worker's consumer lag on its assigned partitions (end offset minus
committed offset, or minus the earliest offset when nothing was committed yet: such a
partition is read from its beginning), and writes one row per topic to
``pipeline_metrics`` and adds it to ``pipeline_metrics_hourly`` in one transaction.
Kafka's client is blocking, so the lag is read in a thread.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from contracts import topics

log = logging.getLogger("meterflow.pipeline")
PROJECT_TOPICS = frozenset(spec.name for spec in topics.TOPICS)


@dataclass
class TopicStats:
    landed: int = 0
    batches: int = 0
    batch_max: int = 0
    latency_ms_sum: float = 0.0
    latency_ms_max: float = 0.0


class SinkStats:
    """Counters per topic since the last ``take`` (sinks run on one event loop; the lock
    only guards against a writer thread of a future sink)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[str, TopicStats] = {}

    def observe(self, topic: str, size: int, seconds: float) -> None:
        if size <= 0:
            return
        with self._lock:
            s = self._stats.setdefault(topic, TopicStats())
            s.landed += size
            s.batches += 1
            s.batch_max = max(s.batch_max, size)
            s.latency_ms_sum += seconds * 1000.0
            s.latency_ms_max = max(s.latency_ms_max, seconds * 1000.0)

    def take(self) -> dict[str, TopicStats]:
        with self._lock:
            stats, self._stats = self._stats, {}
        return stats


#: The process's sink counters (one sink application per worker process).
STATS = SinkStats()


def lag_by_topic(assigned: Iterable[tuple[str, int]], committed: dict[tuple[str, int], int],
                 earliest: dict[tuple[str, int], int], latest: dict[tuple[str, int], int]
                 ) -> dict[str, int]:
    """Lag per topic summed over partitions; an uncommitted partition counts from its
    earliest offset (the worker reads it from the beginning)."""
    out: dict[str, int] = {}
    for tp in assigned:
        if tp not in latest:
            continue
        start = committed.get(tp, earliest.get(tp, 0))
        out[tp[0]] = out.get(tp[0], 0) + max(latest[tp] - start, 0)
    return out


class LagReader:
    """Committed and end offsets of one consumer group, with kafka-python (blocking)."""

    def __init__(self, bootstrap: str, group: str) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self._admin: Any = None
        self._consumer: Any = None

    def read(self, assigned: Sequence[tuple[str, int]]) -> dict[str, int]:
        from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

        if not assigned:
            return {}
        if self._admin is None:
            self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap,
                                           client_id=f"{self.group}-metrics")
            self._consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                           enable_auto_commit=False)
        tps = [TopicPartition(t, p) for t, p in assigned]
        if hasattr(self._admin, "list_group_offsets"):  # kafka-python 3.x: {group: {tp: om}}
            offsets = self._admin.list_group_offsets(self.group).get(self.group, {})
        else:  # 2.x: {tp: om}
            offsets = self._admin.list_consumer_group_offsets(self.group)
        committed = {(tp.topic, tp.partition): om.offset for tp, om in offsets.items()
                     if om is not None and om.offset is not None and om.offset >= 0}
        latest = {(tp.topic, tp.partition): o for tp, o in self._consumer.end_offsets(tps).items()}
        earliest = {(tp.topic, tp.partition): o
                    for tp, o in self._consumer.beginning_offsets(tps).items()}
        return lag_by_topic(assigned, committed, earliest, latest)

    def close(self) -> None:
        for client in (self._admin, self._consumer):
            if client is not None:
                client.close()
        self._admin = self._consumer = None


Row = tuple[datetime, str, str, float, int, int, int, float, float, int | None]

INSERT = """
INSERT INTO pipeline_metrics (at, worker, topic, period_s, landed, batches, batch_max,
                              latency_ms_sum, latency_ms_max, lag)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (worker, topic, at) DO NOTHING
RETURNING at, worker, topic, landed, batches, batch_max, latency_ms_sum, latency_ms_max, lag
"""
HOURLY = """
INSERT INTO pipeline_metrics_hourly (bucket, worker, topic, landed, batches, batch_max,
                                     latency_ms_sum, latency_ms_max, lag_max)
VALUES (date_trunc('hour', %s::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
        %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (worker, topic, bucket) DO UPDATE SET
    landed = pipeline_metrics_hourly.landed + excluded.landed,
    batches = pipeline_metrics_hourly.batches + excluded.batches,
    batch_max = GREATEST(pipeline_metrics_hourly.batch_max, excluded.batch_max),
    latency_ms_sum = pipeline_metrics_hourly.latency_ms_sum + excluded.latency_ms_sum,
    latency_ms_max = GREATEST(pipeline_metrics_hourly.latency_ms_max, excluded.latency_ms_max),
    lag_max = GREATEST(pipeline_metrics_hourly.lag_max, excluded.lag_max)
"""


def metric_rows(at: datetime, worker: str, period_s: float, stats: dict[str, TopicStats],
                lags: dict[str, int]) -> list[Row]:
    rows: list[Row] = []
    for topic in sorted(set(stats) | set(lags)):
        s = stats.get(topic, TopicStats())
        rows.append((at, worker, topic, period_s, s.landed, s.batches, s.batch_max,
                     s.latency_ms_sum, s.latency_ms_max, lags.get(topic)))
    return rows


def write_metrics(conn: psycopg.Connection, rows: Sequence[Row]) -> None:
    """One transaction: the period's rows, then the same added to their hour (only the
    rows inserted now, so a retried write adds nothing twice)."""
    with conn.transaction(), conn.cursor() as cur:
        fresh: list[tuple[Any, ...]] = []
        for row in rows:
            cur.execute(INSERT, row)
            fresh.extend(cur.fetchall())
        if fresh:
            cur.executemany(HOURLY, fresh)


def worker_name(group: str) -> str:
    return f"{group}@{socket.gethostname()}:{os.getpid()}"


class MetricsWriter:
    """Writes this worker's figures every ``period_s`` seconds in a thread of its own.

    ``assigned`` returns the (topic, partition) pairs the worker's consumer holds now.
    """

    def __init__(self, dsn: str, bootstrap: str, group: str, period_s: float,
                 assigned: Callable[[], Sequence[tuple[str, int]]]) -> None:
        self.dsn = dsn
        self.group = group
        self.period_s = period_s
        self.assigned = assigned
        self.reader = LagReader(bootstrap, group)
        self.worker = worker_name(group)
        self._stop = threading.Event()
        self._conn: psycopg.Connection | None = None

    def write_once(self, period: float) -> None:
        stats = STATS.take()
        assigned = sorted(tp for tp in self.assigned() if tp[0] in PROJECT_TOPICS)
        try:
            lags = self.reader.read(assigned)
        except Exception as exc:  # the figures must never stop the worker
            log.warning("consumer lag not measured: %s", exc)
            self.reader.close()
            lags = {}
        rows = metric_rows(datetime.now(UTC), self.worker, period, stats, lags)
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, autocommit=True)
        write_metrics(self._conn, rows)

    def run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.period_s):
            now = time.monotonic()
            period, last = max(now - last, 1e-3), now
            try:
                self.write_once(period)
            except Exception as exc:
                log.warning("pipeline metrics not written: %s", exc)
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
        self.reader.close()

    def start(self) -> threading.Thread | None:
        """Start writing (nothing when ``period_s`` is 0)."""
        if self.period_s <= 0:
            return None
        thread = threading.Thread(target=self.run, name="metrics", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
