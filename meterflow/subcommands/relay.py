"""``meterflow relay``: publish committed outbox rows to Kafka (see services.outbox).

Stops gracefully on SIGTERM or Ctrl-C: the batch in hand is finished (marked) or rolled
back, never left half-marked. ``--once`` relays what is pending and exits (tests, cron);
``--status`` prints the pending count and the age of the oldest pending row.
"""

from __future__ import annotations

import json
import logging

import psycopg
import typer

from meterflow.subcommands import settings_of
from runtime.stopping import serve_until_stopped
from services.outbox import Relay, RelayConfig, drain, kafka_producer, relay_probe, status


def relay(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Relay what is pending, then exit"),
    show_status: bool = typer.Option(False, "--status", help="Print the backlog as JSON"),
    batch_size: int = typer.Option(200, min=1, help="Rows per transaction"),
    loglevel: str = typer.Option("info", help="Log level"),
) -> None:
    """Outbox -> Kafka, at least once; a row is marked only after the broker acknowledged it."""
    settings = settings_of(ctx)
    logging.basicConfig(level=loglevel.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = RelayConfig(batch_size=batch_size)
    if show_status:
        try:
            with psycopg.connect(settings.dsn, autocommit=True) as conn:
                typer.echo(json.dumps(status(conn).to_dict()))
        except psycopg.OperationalError as exc:
            typer.echo(f"error: database unreachable: {exc}", err=True)
            raise typer.Exit(1) from None
        return
    if once:
        try:
            with psycopg.connect(settings.dsn, autocommit=True) as conn:
                producer = kafka_producer(settings.bootstrap_servers, config.ack_timeout_s)
                try:
                    rows = drain(conn, producer, config)
                finally:
                    producer.close(timeout=5)
        except Exception as exc:  # nothing was marked for the failed batch
            typer.echo(f"error: relay failed, pending rows stay pending: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"published {len(rows)} outbox row(s)")
        return
    runner = Relay(settings.dsn, lambda: kafka_producer(settings.bootstrap_servers,
                                                       config.ack_timeout_s), config)
    serve_until_stopped("relay", runner.run, runner.stop, relay_probe(runner, settings.dsn),
                        settings.health_port, settings.health_host)
    typer.echo(f"relay stopped; published {runner.published} outbox row(s)")
