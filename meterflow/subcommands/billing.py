"""`meterflow billing`: property billing from the command line (docs/operations.md).

``tick`` runs one scheduler round (charges due, apportionment, settlement, notices; the
API process runs it every ``METERFLOW_BILLING_PERIOD_S``); ``run`` drafts the bills of a
period; ``apportion`` splits one month of a group; ``bills`` and ``arrears`` list or export
(CSV, XLSX). Moving a bill along (confirm, issue, void) is done through the API, where
every transition is audited with the user who made it.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
import typer
from psycopg.rows import dict_row
from rich.console import Console
from rich.table import Table

from contracts.money import yuan_text
from meterflow.exports import table_bytes, with_total
from meterflow.subcommands import settings_of
from pipeline.billing.apportion import ApportionError
from pipeline.billing.postpaid import BillError
from services.property import apportionment, bills
from services.property.scheduler import SchedulerConfig, tick

billing_app = typer.Typer(help="Custom charges, apportionment, postpaid bills and arrears",
                          no_args_is_help=True)
BILL_COLUMNS = ["bill_id", "account_id", "period_start", "period_end", "state", "due_date",
                "charges", "paid", "charges_fen", "paid_fen", "closing_fen"]
ARREARS_COLUMNS = ["bill_id", "account_id", "account_name", "period_start", "due_date",
                   "state", "outstanding", "outstanding_fen"]


def _connect(ctx: typer.Context) -> psycopg.Connection:
    try:
        return psycopg.connect(settings_of(ctx).dsn, autocommit=True)
    except psycopg.OperationalError as exc:
        Console(stderr=True).print(f"[red]cannot reach the database:[/] {exc}")
        raise typer.Exit(2) from exc


def _fail(message: str) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/] {message}")
    return typer.Exit(1)


@billing_app.command("tick")
def tick_cmd(ctx: typer.Context,
             at: str = typer.Option("", help="Run as of this ISO 8601 instant (default now)")
             ) -> None:
    """One scheduler round: every charge period due, every closed apportionment month,
    the billing day's bills, settlement and notices. Safe to repeat."""
    settings = settings_of(ctx)
    try:
        now = datetime.fromisoformat(at) if at else datetime.now(UTC)
    except ValueError:
        raise _fail(f"--at: {at!r} is not an ISO 8601 instant") from None
    if now.tzinfo is None:
        raise _fail(f"--at: {at!r} has no UTC offset")
    with _connect(ctx) as conn:
        done = tick(conn, now, SchedulerConfig(billing_day=settings.billing_day,
                                               due_days=settings.billing_due_days))
    typer.echo(json.dumps({"charges": done.charges, "splits": done.splits,
                           "bills": done.bills, "settled": done.settled,
                           "problems": done.problems, "skipped": done.skipped}))


@billing_app.command("run")
def run_cmd(ctx: typer.Context,
            start: str = typer.Option(..., help="First local day of the period (YYYY-MM-DD)"),
            end: str = typer.Option(..., help="The day after its last (YYYY-MM-DD)"),
            site: str = typer.Option("", help="Only the postpaid accounts of this site"),
            account: list[str] = typer.Option([], help="Only these accounts (repeatable)"),
            due_days: int = typer.Option(15, min=0, max=365, help="Due this many days after")
            ) -> None:
    """Draft the period's bills (once per account: a run started again adds nothing)."""
    try:
        first, after = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError as exc:
        raise _fail(f"--start/--end: {exc}") from None
    with _connect(ctx) as conn:
        try:
            done = bills.run_bills(conn, first, after, due_days=due_days, site_id=site or None,
                                   account_ids=account or None)
        except BillError as exc:
            raise _fail(str(exc)) from None
    typer.echo(json.dumps({"run_id": done.run_id, "bills": done.made,
                           "already": done.already, "waiting": done.waiting}))


@billing_app.command("apportion")
def apportion_cmd(ctx: typer.Context, group: str = typer.Argument(..., help="Group id"),
                  period: str = typer.Option(..., help="The month, YYYY-MM")) -> None:
    """Split one month of a group (once) and print the shares with their arithmetic."""
    try:
        month = apportionment.month(period)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    with _connect(ctx) as conn:
        try:
            done = apportionment.run_period(conn, group, month)
        except ApportionError as exc:
            raise _fail(str(exc)) from None
        shares = conn.execute("SELECT account_id, amount_fen, arithmetic FROM apportion_shares "
                              "WHERE group_id = %s AND period = %s ORDER BY account_id",
                              (group, done.period)).fetchall()
    table = Table("account", "share (yuan)", "arithmetic",
                  title=f"{group} {done.period}: {yuan_text(done.total_fen)} yuan"
                        f"{'' if done.new else ' (split before)'}")
    for account_id, fen, arithmetic in shares:
        table.add_row(str(account_id), yuan_text(int(fen)), str(arithmetic))
    Console().print(table)


def _write(items: list[dict[str, Any]], columns: list[str], fmt: str, output: Path | None,
           name: str) -> None:
    if fmt == "json":
        typer.echo(json.dumps(items, default=str))
        return
    if fmt in ("csv", "xlsx"):
        data = table_bytes(with_total(items, columns, columns[0]), columns, fmt, name)
        if output is None:
            if fmt == "xlsx":
                raise _fail("--output: an XLSX file needs a path")
            typer.echo(data.decode(), nl=False)
        else:
            output.write_bytes(data)
            typer.echo(f"wrote {len(items)} row(s) and a TOTAL row to {output}")
        return
    table = Table(*columns, title=name)
    for item in items:
        table.add_row(*(str(item.get(c, "")) for c in columns))
    Console().print(table)


FORMAT = typer.Option("table", "--format", help="table, json, csv or xlsx")
OUTPUT = typer.Option(None, "--output", help="File to write (csv, xlsx)")


@billing_app.command("bills")
def bills_cmd(ctx: typer.Context, account: str = typer.Option("", help="One account"),
              state: str = typer.Option("", help="One state"), fmt: str = FORMAT,
              output: Path | None = OUTPUT) -> None:
    """Bills, newest period first."""
    with _connect(ctx) as conn, conn.cursor(row_factory=dict_row) as cur:
        found = cur.execute("SELECT * FROM bills WHERE (%(a)s = '' OR account_id = %(a)s) "
                            "AND (%(s)s = '' OR state = %(s)s) ORDER BY period_start DESC, "
                            "account_id", {"a": account, "s": state}).fetchall()
    items = [{**b, "charges": yuan_text(b["charges_fen"]), "paid": yuan_text(b["paid_fen"])}
             for b in found]
    _write(items, BILL_COLUMNS, fmt, output, "bills")


@billing_app.command("arrears")
def arrears_cmd(ctx: typer.Context, fmt: str = FORMAT, output: Path | None = OUTPUT) -> None:
    """What every open bill still asks for, oldest first."""
    with _connect(ctx) as conn, conn.cursor(row_factory=dict_row) as cur:
        found = cur.execute("SELECT * FROM bill_arrears ORDER BY period_start, bill_id"
                            ).fetchall()
    items = [{**r, "outstanding": yuan_text(r["outstanding_fen"])} for r in found]
    _write(items, ARREARS_COLUMNS, fmt, output, "arrears")
