"""``meterflow broker sync | status``: the broker's files from the database, and their state.

    meterflow broker sync                  # the local stack's broker (stack up runs it)
    meterflow broker sync --dir /mosquitto/auth --pid-file /run/mosquitto.pid
    meterflow broker sync --once           # render and reload once, then exit (before the
                                           # schema exists: the platform's users only)
    meterflow broker status [--json]       # what each sync applied, and when
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path

import psycopg
import typer

from meterflow.broker.platform import MissingSecret
from meterflow.broker.sync import BrokerSync, Target
from meterflow.settings import Settings
from meterflow.subcommands import settings_of
from runtime.health import serve_health

broker_app = typer.Typer(help="The MQTT broker's users and ACL, generated from the database.",
                         no_args_is_help=True)


def _settings(ctx: typer.Context) -> Settings:
    return settings_of(ctx)


@broker_app.command("sync")
def sync(
    ctx: typer.Context,
    directory: Path = typer.Option(None, "--dir", help="Where passwd and acl go (default: "
                                   "METERFLOW_MQTT_AUTH_DIR, else the local stack's)"),
    pid_file: Path = typer.Option(None, "--pid-file", help="Mosquitto's pid file, for SIGHUP "
                                  "(default: the local stack's)"),
    owner: str = typer.Option(None, "--owner", help="System user the files belong to "
                              "(default: mosquitto when run as root)"),
    name: str = typer.Option(None, "--name", help="This sync's name in mqtt_auth_syncs "
                             "(default: the host name)"),
    once: bool = typer.Option(False, "--once", help="Render and reload once, then exit"),
) -> None:
    """Keep Mosquitto's password and ACL files equal to the database; reload it on change."""
    from meterflow.stack.mosquitto import auth_target

    settings = _settings(ctx)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    local = auth_target(settings)
    target = Target((directory or local.directory).resolve(),
                    pid_file if pid_file is not None else local.pid_file,
                    owner if owner is not None else local.owner)
    runner = BrokerSync(settings, target, name)
    try:
        if once:
            try:
                with psycopg.connect(settings.dsn, autocommit=True, connect_timeout=5) as conn:
                    outcome = runner.once(conn)
            except psycopg.errors.UndefinedTable:
                outcome = runner.initial()
            typer.echo(json.dumps({"users": outcome.users, "rules": outcome.rules,
                                   "changed": outcome.changed, "reloaded": outcome.reloaded,
                                   "skipped": list(outcome.skipped),
                                   "error": outcome.error}))
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        typer.echo(f"broker sync: {target.directory} (reload: {target.pid_file or 'none'})")
        health = serve_health(settings.health_port, "broker-sync", lambda: probe(runner),
                              host=settings.health_host)
        try:
            runner.run(stop)
        finally:
            if health is not None:
                health.shutdown()
    except MissingSecret as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except psycopg.Error as exc:
        typer.echo(f"error: {str(exc).strip()}", err=True)
        raise typer.Exit(1) from None


def probe(runner: BrokerSync) -> dict[str, object]:
    """GET /health: 200 once the files were rendered (or the schema is awaited), 503 while
    the database cannot be read."""
    last = runner.last
    if last is None:
        return {"status": "starting"}
    body: dict[str, object] = {"users": last.users, "rules": last.rules,
                               "snapshot_at": last.snapshot_at, "error": last.error}
    if last.error and not last.error.startswith("waiting for the schema"):
        body["status"] = "error"
    return body


@broker_app.command("status")
def status(ctx: typer.Context,
           as_json: bool = typer.Option(False, "--json", help="Print JSON")) -> None:
    """What each broker sync last applied; exit 1 when one reports an error."""
    settings = _settings(ctx)
    with psycopg.connect(settings.dsn, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT name, snapshot_at, applied_at, users, rules, skipped, error, "
            "extract(epoch FROM now() - applied_at)::float AS age_s FROM mqtt_auth_syncs "
            "ORDER BY name").fetchall()
    items = [{"name": r[0], "snapshot_at": r[1].isoformat(), "applied_at": r[2].isoformat(),
              "users": r[3], "rules": r[4], "skipped": r[5], "error": r[6],
              "age_s": round(float(r[7]), 1)} for r in rows]
    if as_json:
        typer.echo(json.dumps(items))
    else:
        for item in items:
            typer.echo(f"{item['name']}: {item['users']} user(s), {item['rules']} rule(s), "
                       f"applied {item['age_s']}s ago"
                       + (f"; ERROR {item['error']}" if item["error"] else "")
                       + (f"; skipped {len(item['skipped'])}" if item["skipped"] else ""))
        if not items:
            typer.echo("no broker sync has reported yet")
    if any(item["error"] for item in items):
        raise typer.Exit(1)
