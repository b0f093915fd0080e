"""`meterflow db migrate | status`."""

from __future__ import annotations

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from meterflow.db.migrate import (
    HISTORY,
    SQL_DIR,
    MigrationError,
    applied,
    check,
    discover,
    migrate,
)
from meterflow.subcommands import settings_of
from runtime.retry import keep_trying

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


@db_app.command("migrate")
def migrate_cmd(
    ctx: typer.Context,
    wait: float = typer.Option(0.0, "--wait", min=0.0,
                               help="Seconds to keep trying while the database is unreachable"),
) -> None:
    """Apply the pending migrations of sql/ in order."""
    settings = settings_of(ctx)
    try:
        done = keep_trying(
            lambda: migrate(settings.dsn, settings.sql_dir or SQL_DIR, settings.report_timezone),
            psycopg.OperationalError, wait,
            lambda exc: err.print(f"database not reachable yet ({str(exc).strip()}); "
                                  "trying again"))
    except (psycopg.OperationalError, MigrationError) as exc:  # nothing applied if unreachable
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
    settings = settings_of(ctx)
    try:
        with psycopg.connect(settings.dsn, autocommit=True) as conn:
            conn.execute(HISTORY)
            done = applied(conn)
    except psycopg.OperationalError as exc:
        err.print(f"[red]cannot reach the database:[/] {exc}")
        raise typer.Exit(1) from exc
    table = Table("version", "file", "state")
    for m in discover(settings.sql_dir or SQL_DIR):
        state = "applied" if m.version in done else "pending"
        if m.version in done and done[m.version][1] != m.checksum:
            state = "[red]changed after apply[/]"
        table.add_row(f"{m.version:04d}", m.path.name, state)
    console.print(table)


@db_app.command("wait")
def wait_cmd(
    ctx: typer.Context,
    timeout: float = typer.Option(600.0, "--timeout", min=0.0, help="Give up after N seconds"),
    interval: float = typer.Option(2.0, "--interval", min=0.1, help="Seconds between checks"),
) -> None:
    """Wait until every migration of sql/ is applied (exit 1 on timeout or a changed file).

    For a service that must not start against an older schema: in Kubernetes an init
    container runs this while the migration job does its work.
    """
    import time

    settings = settings_of(ctx)
    try:
        migrations = discover(settings.sql_dir or SQL_DIR)
    except MigrationError as exc:
        err.print(f"[red]cannot read the migrations:[/] {exc}")
        raise typer.Exit(1) from exc
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(settings.dsn, autocommit=True, connect_timeout=5) as conn:
                exists = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
                pending = check(migrations, applied(conn)) if exists and exists[0] else migrations
            state = f"{len(pending)} migration(s) pending"
        except MigrationError as exc:
            err.print(f"[red]schema does not match this version:[/] {exc}")
            raise typer.Exit(1) from exc
        except psycopg.OperationalError as exc:
            pending, state = migrations, f"database unreachable: {str(exc).strip()}"
        if not pending:
            console.print(f"schema up to date ({len(migrations)} migrations)")
            return
        if time.monotonic() >= deadline:
            err.print(f"[red]gave up waiting for the schema:[/] {state}")
            raise typer.Exit(1)
        console.print(f"waiting for the schema: {state}")
        time.sleep(interval)
