"""`meterflow db migrate | status`."""

from __future__ import annotations

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from meterflow.db.migrate import HISTORY, MigrationError, applied, discover, migrate

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


@db_app.command("migrate")
def migrate_cmd(ctx: typer.Context) -> None:
    """Apply the pending migrations of sql/ in order."""
    from meterflow.cli import settings_of

    try:
        done = migrate(settings_of(ctx).dsn)
    except (MigrationError, psycopg.OperationalError) as exc:
        err.print(f"[red]migrate failed:[/] {exc}")
        raise typer.Exit(1) from exc
    if done:
        for m in done:
            console.print(f"applied {m.path.name}")
    else:
        console.print("schema up to date")


@db_app.command("status")
def status_cmd(ctx: typer.Context) -> None:
    """List migrations and whether each is applied."""
    from meterflow.cli import settings_of

    try:
        with psycopg.connect(settings_of(ctx).dsn, autocommit=True) as conn:
            conn.execute(HISTORY)
            done = applied(conn)
    except psycopg.OperationalError as exc:
        err.print(f"[red]cannot reach the database:[/] {exc}")
        raise typer.Exit(1) from exc
    table = Table("version", "file", "state")
    for m in discover():
        state = "applied" if m.version in done else "pending"
        if m.version in done and done[m.version][1] != m.checksum:
            state = "[red]changed after apply[/]"
        table.add_row(f"{m.version:04d}", m.path.name, state)
    console.print(table)
