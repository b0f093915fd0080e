"""`meterflow worker`: run the Faust stream processors."""

from __future__ import annotations

import typer


def worker(
    ctx: typer.Context,
    loglevel: str = typer.Option("info", help="Log level of the worker"),
    role: str = typer.Option("all", help="all, processor (agents and tables) or sink "
                             "(TimescaleDB writers, consumer group <worker_id>-sink)"),
) -> None:
    """Run the stream processors (Faust worker) until interrupted."""
    from faust import Worker

    from meterflow.cli import settings_of
    from pipeline.app import ROLES, create_app

    if role not in ROLES:
        raise typer.BadParameter(f"must be one of {', '.join(ROLES)}", param_hint="--role")
    app = create_app(settings_of(ctx), role=role)
    Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
