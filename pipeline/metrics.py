"""The worker's own figures for the pipeline-health board, written to ``pipeline_metrics``.

Sinks report each batch they wrote (``STATS.observe``); every period a timer takes the
counters, measures this worker's consumer lag on its assigned partitions (end offset minus
committed offset, or minus the earliest offset when nothing was committed yet: such a
partition is read from its beginning), and writes one row per topic to
``pipeline_metrics`` and adds it to ``pipeline_metrics_hourly`` in one transaction.
Kafka's client is blocking, so the lag is read in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import faust
import psycopg

from pipeline import topics
from pipeline.database import Database

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


#: The process's sink counters (one Faust app per worker process).
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


async def write_metrics(conn: psycopg.AsyncConnection, rows: Sequence[Row]) -> None:
    """One transaction: the period's rows, then the same added to their hour (only the
    rows inserted now, so a retried write adds nothing twice)."""
    async with conn.transaction(), conn.cursor() as cur:
        fresh: list[tuple[Any, ...]] = []
        for row in rows:
            await cur.execute(INSERT, row)
            fresh.extend(await cur.fetchall())
        await cur.executemany(HOURLY, fresh)


def worker_name(group: str) -> str:
    return f"{group}@{socket.gethostname()}:{os.getpid()}"


def register(app: faust.App, dsn: str, bootstrap: str, period_s: float) -> None:
    """Write this worker's figures every ``period_s`` seconds (0: not at all)."""
    if period_s <= 0:
        return
    db = Database(dsn)
    group = str(app.conf.id)
    reader = LagReader(bootstrap, group)
    worker = worker_name(group)
    last = [time.monotonic()]

    @app.timer(interval=period_s)
    async def pipeline_metrics() -> None:
        now = time.monotonic()
        period, last[0] = max(now - last[0], 1e-3), now
        stats = STATS.take()
        assigned = sorted((tp.topic, tp.partition) for tp in app.consumer.assignment()
                          if tp.topic in PROJECT_TOPICS)
        try:
            lags = await asyncio.get_running_loop().run_in_executor(None, reader.read, assigned)
        except Exception as exc:  # the figures must never stop the worker
            log.warning("consumer lag not measured: %s", exc)
            reader.close()
            lags = {}
        rows = metric_rows(datetime.now(UTC), worker, period, stats, lags)
        await db.write(write_metrics, rows)
