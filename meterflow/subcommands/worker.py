"""`meterflow worker`: run the stream processors, the sinks, or both."""

from __future__ import annotations

import logging
import sys
from datetime import timedelta

import typer

from meterflow.settings import Settings
from meterflow.subcommands import settings_of
from pipeline.billing.supply import CommandPolicy
from pipeline.worker_settings import WorkerSettings


def worker_settings(settings: Settings) -> WorkerSettings:
    """The worker's settings from the process's settings (read once by the CLI)."""
    return WorkerSettings(
        bootstrap_servers=settings.bootstrap_servers, dsn=settings.dsn,
        group=settings.worker_id, state_dir=settings.state_dir,
        topic_partitions=settings.topic_partitions,
        topic_replication=settings.topic_replication,
        commit_interval_s=settings.commit_interval_s,
        sink_commit_interval_s=settings.sink_commit_interval_s,
        session_timeout_s=settings.worker_session_timeout_s,
        config_refresh_s=settings.config_refresh_s,
        clock_period_s=settings.offline_check_s,
        metrics_period_s=settings.metrics_period_s,
        health_host=settings.worker_web_host, health_port=settings.worker_web_port,
        command_policy=CommandPolicy(
            ttl=timedelta(seconds=settings.command_ttl_s),
            retry_base=timedelta(seconds=settings.command_retry_base_s),
            retry_cap=timedelta(seconds=max(settings.command_retry_cap_s,
                                            settings.command_retry_base_s)),
            max_attempts=settings.command_max_attempts),
    )


def worker(
    ctx: typer.Context,
    loglevel: str = typer.Option("info", help="Log level of the worker"),
    role: str = typer.Option("all", help="all, processor (the stateful stages and the clock) "
                             "or sink (TimescaleDB writers, consumer group <worker_id>-sink)"),
) -> None:
    """Run the stream processors and the sinks until interrupted (SIGTERM or Ctrl-C)."""
    from pipeline.worker import ROLES, main_argv, run_all, run_processor, run_sink
    from runtime.health import serve_health

    if role not in ROLES:
        raise typer.BadParameter(f"must be one of {', '.join(ROLES)}", param_hint="--role")
    level = getattr(logging, loglevel.upper(), None)
    if not isinstance(level, int):
        raise typer.BadParameter("must be debug, info, warning or error",
                                 param_hint="--loglevel")
    logging.basicConfig(level=level, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s [{role}] %(name)s: %(message)s")
    settings = worker_settings(settings_of(ctx))
    if role == "processor":
        run_processor(settings, serve_health)
    elif role == "sink":
        run_sink(settings, serve_health)
    else:
        raise typer.Exit(run_all(settings, serve_health, [*main_argv(), "--loglevel", loglevel]))
