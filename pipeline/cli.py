"""`meterflow worker`: run the Faust stream processors."""

from __future__ import annotations

import typer


def worker(
    ctx: typer.Context,
    loglevel: str = typer.Option("info", help="Log level of the worker"),
) -> None:
    """Run the stream processors (Faust worker) until interrupted."""
    from faust import Worker

    from meterflow.cli import settings_of
    from pipeline.app import create_app

    app = create_app(settings_of(ctx))
    Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
