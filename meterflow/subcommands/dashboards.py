"""``meterflow dashboards export | push | check``: the Grafana boards."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from meterflow.dashboards.provision import BOARDS_PATH, DatabaseTarget
from meterflow.subcommands import settings_of

dashboards_app = typer.Typer(help="Grafana boards: export files, push through the API, check.",
                             no_args_is_help=True)
err = Console(stderr=True)


def _target(ctx: typer.Context, host: str | None, port: int | None, database: str | None,
            user: str | None, sslmode: str | None) -> DatabaseTarget:
    """The database as Grafana reaches it: the options, else MeterFlow's own settings."""
    base = DatabaseTarget.from_dsn(settings_of(ctx).dsn)
    return DatabaseTarget(host or base.host, port or base.port, database or base.database,
                          user or base.user, sslmode or base.sslmode)


DB_HOST = typer.Option(None, "--db-host", help="Database host as Grafana reaches it")
DB_PORT = typer.Option(None, "--db-port", help="Database port as Grafana reaches it")
DB_NAME = typer.Option(None, "--db-name", help="Database name")
DB_USER = typer.Option(None, "--db-user", help="Database user of Grafana (read-only is enough)")
SSLMODE = typer.Option(None, "--sslmode", help="disable, require, verify-ca, verify-full")


@dashboards_app.command("export")
def export_cmd(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="Folder to write the files to"),
    db_host: str | None = DB_HOST, db_port: int | None = DB_PORT,
    db_name: str | None = DB_NAME, db_user: str | None = DB_USER,
    sslmode: str | None = SSLMODE,
    boards_path: str = typer.Option(BOARDS_PATH, help="Where Grafana will read the boards"),
) -> None:
    """Board JSON files and provisioning YAML for a Grafana that reads files."""
    from meterflow.dashboards.provision import export

    written = export(directory, _target(ctx, db_host, db_port, db_name, db_user, sslmode),
                     boards_path)
    for path in written:
        typer.echo(str(path))


@dashboards_app.command("push")
def push_cmd(
    ctx: typer.Context,
    url: str = typer.Option(..., "--url", help="Grafana's base URL, e.g. http://grafana:3000"),
    token: str = typer.Option(..., "--token", envvar="METERFLOW_GRAFANA_TOKEN",
                              help="Service account token (Editor, or Admin for the data "
                                   "source)"),
    db_host: str | None = DB_HOST, db_port: int | None = DB_PORT,
    db_name: str | None = DB_NAME, db_user: str | None = DB_USER,
    sslmode: str | None = SSLMODE,
) -> None:
    """Create or update the data source, the MeterFlow folder and every board (by uid)."""
    from psycopg.conninfo import conninfo_to_dict
    from rich.progress import Progress

    from meterflow.dashboards import BOARDS
    from meterflow.dashboards.provision import datasource
    from meterflow.dashboards.push import PushError, push

    settings = settings_of(ctx)
    password = conninfo_to_dict(settings.dsn).get("password")
    ds = datasource(_target(ctx, db_host, db_port, db_name, db_user, sslmode),
                    None if password is None else str(password))
    with Progress(transient=True, console=err) as progress:
        task = progress.add_task("pushing", total=2 + len(BOARDS))

        def step(what: str) -> None:
            progress.update(task, description=what, advance=0)

        def advance(what: str) -> None:
            step(what)
            progress.advance(task)

        try:
            report = push(url, token, ds, step=advance)
        except PushError as exc:
            err.print(f"[red]push failed:[/] {exc}")
            raise typer.Exit(1) from exc
    typer.echo(f"data source {ds['uid']}: {report.datasource}; folder: {report.folder}")
    for uid, version in report.boards:
        typer.echo(f"board {uid}: version {version}")


def _load(directory: Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    from meterflow.dashboards.provision import files

    if directory is None:
        rendered = files()
        boards = {k: json.loads(v) for k, v in rendered.items()
                  if k.endswith(".json") and "/" not in k}
        return boards, json.loads(rendered["checks/columns.json"])
    boards = {p.name: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}
    return boards, json.loads((directory / "checks" / "columns.json").read_text())


@dashboards_app.command("check")
def check_cmd(
    ctx: typer.Context,
    directory: Path | None = typer.Option(None, "--dir", help="Check exported files here "
                                          "(default: the boards as this version renders them)"),
    run: bool = typer.Option(False, "--run", help="Also run every panel's SQL on the database"),
    days: int = typer.Option(365, min=1, help="Range of the run, ending now"),
    budget_s: float = typer.Option(1.0, help="Slowest acceptable query, seconds"),
) -> None:
    """Check the boards; with --run, run each panel query as Grafana would and time it."""
    from meterflow.dashboards.checks import problems

    boards, columns = _load(directory)
    found = problems(boards, columns)
    for problem in found:
        err.print(f"[red]{problem}[/]")
    if run:
        found += _run(ctx, boards, columns, days, budget_s)
    if found:
        raise typer.Exit(1)
    typer.echo(f"{len(boards)} boards ok")


def _run(ctx: typer.Context, boards: dict[str, Any], columns: dict[str, Any], days: int,
         budget_s: float) -> list[str]:
    import psycopg

    from meterflow.dashboards.checks import run_board
    from meterflow.dashboards.macros import TimeRange

    end = datetime.now(UTC)
    rng = TimeRange(end - timedelta(days=days), end)
    table = Table("board", "panel", "rows", "ms", "result")
    failed: list[str] = []
    with psycopg.connect(settings_of(ctx).dsn, autocommit=True) as conn:
        for board in boards.values():
            for r in run_board(conn, board, columns.get(board["uid"], {}), rng):
                bad = r.error or ("columns " + ",".join(r.columns) if not r.ok else "")
                if not bad and r.seconds > budget_s:
                    bad = f"slower than {budget_s}s"
                table.add_row(r.board, f"{r.panel} {r.title}", str(r.rows),
                              f"{r.seconds * 1000:.1f}", bad or "ok")
                if bad:
                    failed.append(f"{r.board} panel {r.panel}: {bad}")
    Console().print(table)
    return failed
