"""``meterflow notifier`` and ``meterflow notify rule add|list|remove``, ``notify list``.

    meterflow notifier --config notify.yaml
    meterflow notify rule add --scope account --id A-101 --events low_balance,disconnect \\
        --channel sms --to customer
    meterflow notify rule list --json
    meterflow notify rule remove RULE_ID
    meterflow notify list --account A-101 --status failed --json
"""

from __future__ import annotations

import json
import logging
import os
import signal
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import typer

from meterflow.settings import Settings
from meterflow.subcommands import settings_of

notify_app = typer.Typer(help="Notification rules and the notifications sent.",
                         no_args_is_help=True)
rule_app = typer.Typer(help="Who hears what: rules per site and per account.",
                       no_args_is_help=True)
notify_app.add_typer(rule_app, name="rule")


def _connect(settings: Settings) -> psycopg.Connection:
    try:
        return psycopg.connect(settings.dsn, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        typer.echo(f"database unreachable: {exc}", err=True)
        raise typer.Exit(1) from None


def notifier(
    ctx: typer.Context,
    config_file: Path | None = typer.Option(
        None, "--config", help="notifier YAML (default: METERFLOW_NOTIFY_CONFIG)"),
    group: str = typer.Option("meterflow-notifier", "--group", help="Kafka consumer group"),
    start: str = typer.Option("earliest", "--start",
                              help="where a group without committed offsets starts: "
                                   "earliest or latest"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Alarms and meter events to people: SMS, voice, e-mail, WeChat, webhooks."""
    from connectors.notify.config import ConfigError, load_config, read_secrets
    from connectors.notify.service import Notifier, build_channels
    from connectors.publisher import KafkaOut
    from runtime.health import serve_health

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # the HTTP client logs request URLs, and a WeChat token request carries the secret
    for noisy in ("kafka", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if start not in ("earliest", "latest"):
        raise typer.BadParameter("--start must be earliest or latest")
    settings = settings_of(ctx)
    path = config_file or settings.notify_config
    try:
        config = load_config(path)
        secrets = read_secrets(config, os.environ)
    except ConfigError as exc:
        typer.echo(f"notifier configuration: {exc}", err=True)
        raise typer.Exit(2) from None
    channels = build_channels(config, secrets)
    typer.echo(f"notifier: channels {', '.join(sorted(channels)) or 'none'}; "
               f"configuration {path or '(defaults)'}")
    out = KafkaOut.connect(settings.bootstrap_servers)
    service = Notifier(config, channels, settings.dsn, settings.bootstrap_servers, out,
                       group=group, start=start)
    server = serve_health(settings.health_port, "notifier", service.probe)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: service.stopping.set())
    service.start()
    try:
        while not service.stopping.wait(1.0):
            pass
    finally:
        service.stop()
        out.close()
        if server is not None:
            server.shutdown()


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@rule_app.command("add")
def rule_add(
    ctx: typer.Context,
    scope: str = typer.Option(..., "--scope", help="site or account"),
    scope_id: str = typer.Option(..., "--id", help="the site id or account id"),
    events: str = typer.Option(..., "--events", help="comma-separated event kinds"),
    channel: str = typer.Option(..., "--channel", help="sms, voice, email, wechat, webhook"),
    to: str = typer.Option(..., "--to", help="'customer' or an address / webhook name"),
    levels: str = typer.Option("1,2,3", "--levels", help="low_balance levels, e.g. 2,3"),
    language: str | None = typer.Option(None, "--language", help="zh or en"),
    timezone: str | None = typer.Option(None, "--timezone", help="IANA zone of the recipient"),
    quiet_hours: str | None = typer.Option(None, "--quiet-hours", help="e.g. 22:00-07:00"),
    rule_id: str | None = typer.Option(None, "--rule-id", help="default: derived"),
    disabled: bool = typer.Option(False, "--disabled"),
) -> None:
    """Add a rule (the same rule twice is stored once); prints its id."""
    from connectors.notify.rules import Rule, RuleError
    from connectors.notify.store import add_rule, default_rule_id

    try:
        level_list = tuple(int(x) for x in _split(levels))
    except ValueError:
        typer.echo(f"levels {levels!r}: write them as 1,2,3", err=True)
        raise typer.Exit(1) from None
    fields: dict[str, Any] = {"scope": scope, "scope_id": scope_id, "channel": channel,
                              "recipient": to, "events": tuple(_split(events))}
    try:
        rule = Rule(rule_id=rule_id or default_rule_id(fields), levels=level_list,
                    language=language, timezone=timezone, quiet_hours=quiet_hours,
                    enabled=not disabled, **fields)
        with _connect(settings_of(ctx)) as conn:
            added = add_rule(conn, rule)
    except RuleError as exc:
        typer.echo(f"rule refused: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{rule.rule_id} {'added' if added else 'already present'}")


@rule_app.command("list")
def rule_list(
    ctx: typer.Context,
    scope: str | None = typer.Option(None, "--scope"),
    scope_id: str | None = typer.Option(None, "--id"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The stored rules."""
    from dataclasses import asdict

    from connectors.notify.store import list_rules

    with _connect(settings_of(ctx)) as conn:
        rules = list_rules(conn, scope, scope_id)
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in rules], ensure_ascii=False, indent=1))
        return
    for r in rules:
        extra = [f"levels {','.join(map(str, r.levels))}" if "low_balance" in r.events else "",
                 f"lang {r.language}" if r.language else "",
                 f"tz {r.timezone}" if r.timezone else "",
                 f"quiet {r.quiet_hours}" if r.quiet_hours else "",
                 "" if r.enabled else "DISABLED"]
        typer.echo(f"{r.rule_id}  {r.scope}:{r.scope_id}  {','.join(r.events)} -> "
                   f"{r.channel}:{r.recipient}  {' '.join(e for e in extra if e)}".rstrip())


@rule_app.command("remove")
def rule_remove(ctx: typer.Context, rule_id: str = typer.Argument(...)) -> None:
    """Remove a rule (notifications already stored keep its id)."""
    from connectors.notify.store import remove_rule

    with _connect(settings_of(ctx)) as conn:
        removed = remove_rule(conn, rule_id)
    if not removed:
        typer.echo(f"no rule {rule_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{rule_id} removed")


@notify_app.command("list")
def notify_list(
    ctx: typer.Context,
    account: str | None = typer.Option(None, "--account"),
    status: str | None = typer.Option(None, "--status",
                                      help="pending, held, delivered or failed"),
    since: str | None = typer.Option(None, "--since", help="ISO 8601 time with offset"),
    limit: int = typer.Option(100, "--limit", min=1, max=10_000),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Notifications, newest first, with their attempts."""
    from connectors.notify.store import list_notifications

    try:
        when = None if since is None else datetime.fromisoformat(since)
        with _connect(settings_of(ctx)) as conn:
            rows = list_notifications(conn, account, status, when, limit)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    for n in rows:
        typer.echo(f"{n['created_at']}  {n['status']:<9} {n['event_kind']:<20} "
                   f"{n['channel']}:{n['recipient']}  attempts {n['attempts']}  "
                   f"{n['last_error']}".rstrip())
