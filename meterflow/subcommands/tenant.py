"""``meterflow tenant link ...`` (tenant access links) and ``meterflow pay ...`` (the settle
service, refunds, the daily bill check, the stand-in gateways); docs/tenant.md."""

from __future__ import annotations

import json
import logging
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import psycopg
import typer

from connectors.gateways.clients import Gateway
from meterflow.settings import Settings
from meterflow.subcommands import settings_of
from runtime.stopping import serve_until_stopped

tenant_app = typer.Typer(help="Tenant access links (the tenant page under /t)",
                         no_args_is_help=True)
link_app = typer.Typer(help="Create, list and revoke tenant access links", no_args_is_help=True)
tenant_app.add_typer(link_app, name="link")
pay_app = typer.Typer(help="Online payment: settle service, refunds, bill check, stand-ins",
                      no_args_is_help=True)


def _connect(settings: Settings) -> psycopg.Connection:
    try:
        return psycopg.connect(settings.dsn, autocommit=True)
    except psycopg.OperationalError as exc:
        typer.echo(f"error: database unreachable: {exc}", err=True)
        raise typer.Exit(2) from None


def link_url(settings: Settings, token: str) -> str:
    return f"{settings.tenant_base_url.rstrip('/')}/t/{token}"


@link_app.command("create")
def link_create(ctx: typer.Context, account_id: str,
                days: int = typer.Option(0, min=0, help="Lifetime in days (0: the setting "
                                                        "METERFLOW_TENANT_LINK_TTL_DAYS)"),
                label: str = typer.Option("", help="What the link is for (room, tenant)"),
                by: str = typer.Option("cli", help="Who creates it (kept with the link)"),
                qr: Path | None = typer.Option(None, help="Also write the link as a QR code "
                                                          "(SVG) to this file"),
                as_json: bool = typer.Option(False, "--json")) -> None:
    """A new access link to one account; the URL is shown once (only its hash is kept)."""
    from services.tenant.links import create_link

    settings = settings_of(ctx)
    with _connect(settings) as conn:
        try:
            link, token = create_link(conn, account_id, timedelta(
                days=days or settings.tenant_link_ttl_days), by, label)
        except (LookupError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(3) from None
    url = link_url(settings, token)
    if qr is not None:
        import segno

        segno.make(url, error="m").save(str(qr), scale=4)
    if as_json:
        typer.echo(json.dumps({"link_id": link.link_id, "account_id": account_id, "url": url,
                               "token": token, "expires_at": link.expires_at.isoformat()}))
    else:
        typer.echo(f"link {link.link_id} to {account_id}, expires {link.expires_at:%Y-%m-%d}")
        typer.echo(url)


@link_app.command("list")
def link_list(ctx: typer.Context, account_id: str) -> None:
    """The links of an account (never their tokens)."""
    from services.tenant.links import links_of

    with _connect(settings_of(ctx)) as conn:
        for link in links_of(conn, account_id):
            state = f"revoked {link.revoked_at:%Y-%m-%d %H:%M}" if link.revoked_at else \
                f"expires {link.expires_at:%Y-%m-%d}"
            typer.echo(f"{link.link_id}\t{state}\t{link.label}")


@link_app.command("revoke")
def link_revoke(ctx: typer.Context, link_id: str,
                by: str = typer.Option("cli", help="Who revokes it")) -> None:
    """Revoke a link at once: its next request gets the 'link not valid' page."""
    from services.tenant.links import revoke

    with _connect(settings_of(ctx)) as conn:
        if not revoke(conn, link_id, by):
            typer.echo(f"error: link_id: no live link {link_id!r}", err=True)
            raise typer.Exit(3)
    typer.echo(f"revoked {link_id}")


def _gateways(settings: Settings) -> dict[str, Gateway]:
    from meterflow.tenant.gateways import configured_gateways

    try:
        return configured_gateways(settings)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@pay_app.command("settle")
def settle(ctx: typer.Context, once: bool = typer.Option(False, "--once",
                                                         help="One round, then exit")) -> None:
    """Ask the gateways about orders with no notification and refunds not finished; apply
    what was paid, close what expired. Safe to run twice (row leases)."""
    from services.tenant.settle import SettleConfig, Settler, settle_round

    settings = settings_of(ctx)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    gateways = _gateways(settings)
    config = SettleConfig(period_s=settings.settle_period_s)
    if once:
        with _connect(settings) as conn:
            typer.echo(json.dumps(settle_round(conn, gateways, config)))
        return
    runner = Settler(lambda: psycopg.connect(settings.dsn, autocommit=True), gateways, config)
    serve_until_stopped("settle", runner.run, runner.stop, runner.probe,
                        settings.health_port, settings.health_host)


@pay_app.command("refund")
def refund(ctx: typer.Context, order_no: str, amount: str,
           by: str = typer.Option("cli", help="Who asks (kept with the refund)"),
           reason: str = typer.Option("", help="Shown to the payer by the gateway")) -> None:
    """Refund (part of) a paid order through its gateway; the wallet is debited once the
    gateway says the money left."""
    from services.payments.request import InvalidPayment, parse_yuan
    from services.tenant.orders import OrderRefused
    from services.tenant.refunds import send_refund, store_refund

    settings = settings_of(ctx)
    gateways = _gateways(settings)
    with _connect(settings) as conn:
        try:
            stored = store_refund(conn, order_no, parse_yuan(amount), by, reason)
        except (InvalidPayment, OrderRefused) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(3) from None
        gateway = gateways.get(stored.gateway)
        if gateway is None:
            typer.echo(f"error: gateway: {stored.gateway} is not configured", err=True)
            raise typer.Exit(2)
        done = send_refund(conn, gateway, stored)
    typer.echo(f"refund {done.refund_no} {done.state} {done.detail}".rstrip())


@pay_app.command("bill-check")
def bill_check(ctx: typer.Context,
               day: str = typer.Option("", "--date", help="Bill day YYYY-MM-DD (default: "
                                                          "yesterday, Beijing time)"),
               gateway: list[str] = typer.Option([], help="Only these gateways")) -> None:
    """Compare a day's trade bill of each gateway with what was applied; store and alarm
    the differences; exit 1 when there is one."""
    from services.tenant.bill_check import BILL_ZONE, check_bill

    settings = settings_of(ctx)
    when = date.fromisoformat(day) if day else \
        (datetime.now(BILL_ZONE) - timedelta(days=1)).date()
    found_any = False
    with _connect(settings) as conn:
        for name, gw in sorted(_gateways(settings).items()):
            if gateway and name not in gateway:
                continue
            found = check_bill(conn, gw, when)
            found_any = found_any or bool(found)
            typer.echo(f"{name} {when}: {len(found)} difference(s)")
            for f in found:
                typer.echo(f"  {f.order_no} {f.finding}: {f.detail}")
    if found_any:
        raise typer.Exit(1)


@pay_app.command("standin")
def standin(ctx: typer.Context,
            port: int = typer.Option(18090, help="Port of both stand-in gateways"),
            keys_dir: Path = typer.Option(Path(".stack/standin-keys"),
                                          help="Where the merchant's generated keys go"),
            env_file: Path | None = typer.Option(None, help="Also write the settings here")
            ) -> None:
    """Loopback WeChat Pay and Alipay with freshly generated keys, for local use: prints
    the METERFLOW_* settings that point MeterFlow at them. Never for real money."""
    from connectors.gateways.standin_server import Standins, standin_settings

    standins = Standins(port=port).start()
    env = {**standins.wechat.keys.write(keys_dir), **standins.alipay.keys.write(keys_dir),
           **standin_settings(standins)}
    text = "".join(f"{k}={v}\n" for k, v in env.items())
    if env_file is not None:
        env_file.write_text(text)
    typer.echo(text, nl=False)
    typer.echo(f"stand-in gateways on {standins.url} (Ctrl-C stops)", err=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        standins.stop()

