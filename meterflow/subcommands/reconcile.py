"""`meterflow reconcile`: every balance recomputed (services/reconcile.py); exit 1 on any
mismatch."""

from __future__ import annotations

import json

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from meterflow.subcommands import settings_of
from services.reconcile import reconcile


def reconcile_command(ctx: typer.Context,
                      as_json: bool = typer.Option(False, "--json", help="Mismatches as JSON")
                      ) -> None:
    """Recompute every account's balance from the ledger and from the raw facts; exit 1
    when anything disagrees."""
    try:
        with psycopg.connect(settings_of(ctx).dsn, autocommit=True) as conn:
            mismatches = reconcile(conn)
            [(accounts,)] = conn.execute("SELECT count(*) FROM accounts").fetchall()
    except psycopg.OperationalError as exc:
        Console(stderr=True).print(f"[red]cannot reach the database:[/] {exc}")
        raise typer.Exit(2) from exc
    if as_json:
        print(json.dumps({"accounts": accounts,
                          "mismatches": [m.__dict__ for m in mismatches]}))
    else:
        console = Console()
        if mismatches:
            table = Table("account", "check", "expected", "found", title="Mismatches")
            for m in mismatches:
                table.add_row(m.account_id, m.check, m.expected, m.found)
            console.print(table)
        console.print(f"{accounts} accounts checked, {len(mismatches)} mismatches")
    if mismatches:
        raise typer.Exit(1)
