"""`meterflow stack up | down | status | logs`."""

from __future__ import annotations

import time

import typer
from rich.console import Console
from rich.table import Table

from meterflow.settings import Settings
from meterflow.stack import local
from meterflow.stack.process import StackError, tail
from meterflow.stack.service import Status
from meterflow.subcommands import settings_of

stack_app = typer.Typer(help="Run the local stack: Kafka, PostgreSQL/TimescaleDB, Mosquitto.",
                        no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _settings(ctx: typer.Context) -> Settings:
    return settings_of(ctx)


def _table(rows: list[Status]) -> Table:
    table = Table(title="MeterFlow local stack")
    for column in ("service", "health", "port", "pid", "detail"):
        table.add_column(column)
    table.add_column("log", overflow="fold")
    for row in rows:
        mark = "[green]healthy[/]" if row.health.healthy else "[red]down[/]"
        table.add_row(row.name, mark, str(row.port), str(row.pid or "-"), row.health.detail,
                      str(row.log))
    return table


@stack_app.command()
def up(ctx: typer.Context) -> None:
    """Start every service (idempotent) and wait until all are healthy."""
    settings = _settings(ctx)
    started = time.monotonic()
    try:
        with console.status("starting the stack") as spinner:
            rows = local.up(settings, progress=lambda msg: spinner.update(msg))
    except StackError as exc:
        err.print(f"[red]stack up failed:[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(_table(rows))
    console.print(f"stack healthy in {time.monotonic() - started:.1f}s")


@stack_app.command()
def down(ctx: typer.Context) -> None:
    """Stop every service; no process is left behind."""
    local.down(_settings(ctx))
    console.print("stack stopped")


@stack_app.command()
def status(ctx: typer.Context) -> None:
    """Health, port and pid of each service; exits 1 when one is not healthy."""
    rows = local.status(_settings(ctx))
    console.print(_table(rows))
    if not all(row.health.healthy for row in rows):
        raise typer.Exit(1)


@stack_app.command()
def logs(
    ctx: typer.Context,
    service: str = typer.Argument(None, help="kafka, postgres or mosquitto; all when omitted"),
    lines: int = typer.Option(50, "--lines", "-n", help="How many of the last lines"),
) -> None:
    """Print the end of a service's log (where every log lives is shown by `status`)."""
    settings = _settings(ctx)
    try:
        chosen = [local.service_named(settings, service)] if service else local.services(settings)
    except StackError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    for svc in chosen:
        console.rule(f"{svc.name}: {svc.log_file}")
        console.print(tail(svc.log_file, lines) or "(empty)", markup=False, highlight=False)
