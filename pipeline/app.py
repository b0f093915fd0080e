"""The Faust application: topics, tables, agents and sinks, wired from settings.

``create_app(settings)`` builds the app from settings read once at the entry point. Agents
only move records: parsing, validation, rating and wallets live in pure modules they call.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from meterflow.settings import Settings
from pipeline import agents, metrics, sinks
from pipeline.agents import Clock, utc_now
from pipeline.config_source import ConfigTable
from pipeline.database import Database
from pipeline.kafka_transport import App

log = logging.getLogger("meterflow.pipeline")


#: What a worker runs: the processing agents (validate, rate, wallet and their tables), the
#: sinks into TimescaleDB, or both. A sink runs in a consumer group of its own
#: (``<worker_id>-sink``) so sinks and processors scale apart (see docs/operations.md).
ROLES = ("all", "processor", "sink")


def create_app(settings: Settings, clock: Clock = utc_now, role: str = "all") -> faust.App:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    app = App(
        settings.worker_id if role != "sink" else f"{settings.worker_id}-sink",
        broker=f"kafka://{settings.bootstrap_servers}",
        store="memory://",
        datadir=str(settings.state_dir / "faust"),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        web_host=settings.worker_web_host,
        web_bind=settings.worker_web_host,
        web_port=settings.worker_web_port,
        table_standby_replicas=settings.table_standby_replicas,
        producer_acks=-1,
        broker_session_timeout=settings.worker_session_timeout_s,
        consumer_auto_offset_reset="earliest",
        autodiscover=False,
    )
    config = ConfigTable(Database(settings.dsn))

    @app.task
    async def load_config() -> None:
        """Agents wait for this first load (``config.ready``) before their first record."""
        await config.refresh()

    @app.timer(interval=settings.config_refresh_s)
    async def refresh_config() -> None:
        try:
            await config.refresh()
        except Exception as exc:  # keep the last good snapshot; say why
            log.error("configuration refresh failed, keeping the previous one: %s", exc)

    if role != "sink":
        agents.register(app, config, clock, settings.offline_check_s)
    if role != "processor":
        sinks.register(app, settings.dsn)
    metrics.register(app, settings.dsn, settings.bootstrap_servers, settings.metrics_period_s)

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "ok", "app": app.conf.id, "role": role,
                         "meters": len(config.snapshot.meters)})

    return app
