"""``meterflow topics create | list``: the project's Kafka topics (``contracts/topics.py``).

``create`` makes every missing topic with its partitions and configuration and leaves
existing ones alone (idempotent), so it can run at every install and upgrade; it waits for
a cluster that is still starting. ``list`` prints what would be created.
"""

from __future__ import annotations

import json

import typer

from meterflow.subcommands import settings_of
from runtime.retry import keep_trying

topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)


@topics_app.command("create")
def create(
    ctx: typer.Context,
    wait: float = typer.Option(0.0, "--wait", min=0.0,
                               help="Seconds to keep trying while Kafka is unreachable"),
) -> None:
    """Create the missing project topics (partitions: METERFLOW_TOPIC_PARTITIONS)."""
    from kafka.errors import KafkaError

    from meterflow.stack.topics import create_topics

    settings = settings_of(ctx)
    try:
        created = keep_trying(
            lambda: create_topics(settings), KafkaError, wait,
            lambda exc: typer.echo(f"Kafka not reachable yet ({exc}); trying again", err=True))
    except KafkaError as exc:
        typer.echo(f"error: cannot create topics on {settings.bootstrap_servers}: {exc}",
                   err=True)
        raise typer.Exit(1) from None
    for name in created:
        typer.echo(f"created {name}")
    typer.echo(f"{len(created)} topic(s) created, partitions {settings.topic_partitions}, "
               f"replication {settings.topic_replication}")


@topics_app.command("list")
def list_topics(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per topic"),
) -> None:
    """The project's topics with the partitions and configuration they are created with."""
    from contracts.topics import TOPICS

    settings = settings_of(ctx)
    for spec in TOPICS:
        partitions = spec.partitions or settings.topic_partitions
        if as_json:
            typer.echo(json.dumps({"name": spec.name, "partitions": partitions,
                                   "replication": settings.topic_replication,
                                   "configs": spec.configs()}))
        else:
            typer.echo(f"{spec.name}  partitions={partitions}  key={spec.key}")
