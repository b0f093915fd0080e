"""``meterflow account open | show``, ``meterflow topup`` and ``meterflow refund``.

The operator's surface on the server itself (direct to the database); the HTTP API and
``meterflow ops`` (docs/api.md) offer the same and more to remote operators. Every command
exits non-zero with a message naming the field on bad input or a conflict.
``topup``/``refund`` print only after the payment is committed together with its outbox
row (durable before acknowledgement).
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import typer

from meterflow.subcommands import settings_of
from services.accounts.spec import InvalidAccount, account_spec, parse_wallet
from services.accounts.store import AccountConflict, open_account, show_account
from services.payments.request import InvalidPayment, parse_yuan
from services.payments.store import IdempotencyConflict, UnknownAccount, record_payment

account_app = typer.Typer(help="Accounts: open one with meters and a tariff, show it.",
                          no_args_is_help=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _dsn(ctx: typer.Context) -> str:
    return settings_of(ctx).dsn


@account_app.command("open")
def open_cmd(
    ctx: typer.Context,
    account: str = typer.Argument(..., help="Account id (1-64 of A-Z a-z 0-9 . _ : -)"),
    name: str = typer.Option(..., "--name", help="Name shown to operators"),
    meter: list[str] = typer.Option(
        [], "--meter", help="METER_ID:COMMODITY:PROTOCOL[:ADDRESS], repeatable"),
    tariff: list[Path] = typer.Option(
        [], "--tariff", help="Tariff file (YAML), one per commodity, repeatable"),
    thresholds: str = typer.Option("50,20,10", help="Alarm levels 1-3 in yuan, highest first"),
    overdraft: str = typer.Option("0", help="Yuan the balance may go below zero before cut-off"),
    postpaid: bool = typer.Option(False, "--postpaid", help="Bill in arrears: never cut off"),
) -> None:
    """Open an account with its meters and tariff (the same request again changes nothing)."""
    try:
        texts = [(str(path), path.read_text(encoding="utf-8")) for path in tariff]
    except OSError as exc:
        raise _fail(f"--tariff: {exc}") from None
    try:
        spec = account_spec(account, name, meter, texts,
                            parse_wallet(thresholds, overdraft, postpaid))
        with psycopg.connect(_dsn(ctx), autocommit=True) as conn:
            result = open_account(conn, spec)
    except (InvalidAccount, AccountConflict) as exc:
        raise _fail(str(exc)) from None
    except psycopg.OperationalError as exc:
        raise _fail(f"database unreachable, nothing stored: {exc}") from None
    state = "opened" if result.created else "already open"
    typer.echo(f"account {account} {state}; meters added: "
               f"{', '.join(result.meters_added) or 'none'}; tariff versions added: "
               f"{', '.join(result.tariffs_added) or 'none'}")


@account_app.command("show")
def show_cmd(
    ctx: typer.Context,
    account: str = typer.Argument(..., help="Account id"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object"),
) -> None:
    """Balance in yuan, alarm level, supply state, meters and payments not yet relayed."""
    try:
        with psycopg.connect(_dsn(ctx), autocommit=True) as conn:
            shown = show_account(conn, account)
    except UnknownAccount as exc:
        raise _fail(str(exc)) from None
    except psycopg.OperationalError as exc:
        raise _fail(f"database unreachable: {exc}") from None
    if as_json:
        typer.echo(json.dumps(shown, ensure_ascii=False))
        return
    typer.echo(f"account {shown['account_id']}: balance {shown['balance']} yuan, "
               f"alarm level {shown['alarm_level']}, supply {shown['supply']}, "
               f"{shown['pending_payments']} payment(s) not yet relayed"
               + ("" if shown["as_of"] else " (opening state: nothing landed yet)"))
    for m in shown["meters"]:
        typer.echo(f"  {m['meter_id']}  {m['commodity']}  {m['protocol']}  "
                   f"tariff {m['tariff_id'] or '-'}")


def _payment(ctx: typer.Context, kind: str, account: str, amount: str, key: str,
             operator: str, note: str) -> None:
    try:
        fen = parse_yuan(amount, "AMOUNT")
        with psycopg.connect(_dsn(ctx), autocommit=True) as conn:
            result = record_payment(conn, account, kind, fen, key, operator, note)
    except (InvalidPayment, UnknownAccount) as exc:
        raise _fail(str(exc)) from None
    except IdempotencyConflict as exc:
        raise _fail(str(exc), code=3) from None
    except psycopg.OperationalError as exc:
        # Not acknowledged: the operator retries with the same key, which is safe.
        raise _fail(f"database unreachable, payment not acknowledged: retry with the same "
                    f"--key (a payment already recorded is returned, never repeated): {exc}"
                    ) from None
    replay = "replayed: recorded before, nothing new written" if result.replayed else "recorded"
    typer.echo(f"payment {result.payment_id} {replay} ({kind} {amount} yuan, account "
               f"{account}, key {key})")


KEY_HELP = "Idempotency key: the same key and request again returns the first payment"


def topup(
    ctx: typer.Context,
    account: str = typer.Argument(..., help="Account id"),
    amount: str = typer.Argument(..., help="Yuan, at most 2 decimal places, e.g. 100.50"),
    key: str = typer.Option(..., "--key", help=KEY_HELP),
    operator: str = typer.Option("cli", help="Who asked for it"),
    note: str = typer.Option("", help="Free text kept with the payment"),
) -> None:
    """Credit an account (durable before this returns; relayed by `meterflow relay`)."""
    _payment(ctx, "topup", account, amount, key, operator, note)


def refund(
    ctx: typer.Context,
    account: str = typer.Argument(..., help="Account id"),
    amount: str = typer.Argument(..., help="Yuan, at most 2 decimal places"),
    key: str = typer.Option(..., "--key", help=KEY_HELP),
    operator: str = typer.Option("cli", help="Who asked for it"),
    note: str = typer.Option("", help="Free text kept with the payment"),
) -> None:
    """Pay credit back (the wallet refuses a refund above the balance, as an event)."""
    _payment(ctx, "refund", account, amount, key, operator, note)
