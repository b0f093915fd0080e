"""``meterflow device credentials | gateway``: MQTT identities of meters and gateways, on
the server (directly in the database; the API has the same under ``/devices``).

    meterflow device gateway put GW-1 --building B1 --name "floor 3 concentrator"
    meterflow device gateway attach GW-1 M-301-E M-302-E
    meterflow device credentials create GW-1 --output gw-1.json --wait
    meterflow device credentials rotate M-9 --json
    meterflow device credentials revoke M-9 --wait     # cut off within seconds
    meterflow device credentials list M-9

Every change is written to the audit log as ``server-cli``. A password is printed (or
written to ``--output``, mode 0600) once and never stored.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import psycopg
import typer

from meterflow.api import audit
from meterflow.api.cli import SERVER
from meterflow.broker.platform import reserved_names as reserved
from meterflow.broker.sync import wait_applied
from meterflow.devices import credentials as creds
from meterflow.devices import gateways
from meterflow.devices.credentials import DeviceError
from meterflow.settings import Settings

device_app = typer.Typer(help="MQTT identities of meters and gateways (on the server).",
                         no_args_is_help=True)
credentials_app = typer.Typer(help="Create, rotate, revoke and list device credentials.",
                              no_args_is_help=True)
gateway_app = typer.Typer(help="Gateways and the meters registered behind them.",
                          no_args_is_help=True)
device_app.add_typer(credentials_app, name="credentials")
device_app.add_typer(gateway_app, name="gateway")
KindOpt = typer.Option(None, "--kind", help="meter or gateway, when an id is both")


def _settings(ctx: typer.Context) -> Settings:
    from meterflow.cli import settings_of

    return settings_of(ctx)


@contextmanager
def _db(ctx: typer.Context) -> Iterator[psycopg.Connection]:
    try:
        with psycopg.connect(_settings(ctx).dsn, autocommit=True, connect_timeout=10) as conn:
            yield conn
    except DeviceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except psycopg.OperationalError as exc:
        typer.echo(f"error: database unreachable: {str(exc).strip()}", err=True)
        raise typer.Exit(1) from None


def _audit(conn: psycopg.Connection, action: str, target: str, before: Any,
           after: Any) -> None:
    audit.record(conn, SERVER, f"cli:{uuid.uuid4()}", action, target, before, after)


def _wait(conn: psycopg.Connection, wanted: bool) -> str:
    if not wanted:
        return ""
    try:
        took = wait_applied(conn)
    except TimeoutError as exc:
        typer.echo(f"warning: {exc}", err=True)
        raise typer.Exit(3) from None
    return "no broker sync is running: nothing applied it yet" if took is None else \
        f"in force at the broker after {took:.2f}s"


def _issued(issued: creds.Issued, as_json: bool, output: Path | None, note: str) -> None:
    body = issued.as_dict()
    if output is not None:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(body) + "\n")
        os.chmod(output, 0o600)
        shown = {k: v for k, v in body.items() if k != "password"}
        typer.echo(json.dumps(shown) if as_json else
                   f"credential {issued.credential.credential_id} for "
                   f"{issued.credential.kind} {issued.credential.device_id}: written to "
                   f"{output}")
    elif as_json:
        typer.echo(json.dumps(body))
    else:
        typer.echo(f"MQTT user {issued.credential.username} (shown once, keep it secret):\n"
                   f"{issued.password}")
    if note:
        typer.echo(note, err=True)


@credentials_app.command("create")
def create(ctx: typer.Context, device_id: str = typer.Argument(..., help="Meter or gateway"),
           kind: str = KindOpt,
           as_json: bool = typer.Option(False, "--json", help="Print JSON with the password"),
           output: Path = typer.Option(None, "--output", help="Write the JSON there (0600)"),
           wait: bool = typer.Option(False, "--wait", help="Until the broker applied it")
           ) -> None:
    """Make a device's first MQTT credential and print its password once."""
    settings = _settings(ctx)
    with _db(ctx) as conn:
        with conn.transaction():
            device = creds.resolve(conn, device_id, _kind(kind))
            issued = creds.create(conn, device, SERVER.name, reserved(settings))
            _audit(conn, "device.credential.create", f"{device.kind}:{device.device_id}",
                   None, issued.credential.as_dict())
        note = _wait(conn, wait)
    _issued(issued, as_json, output, note)


@credentials_app.command("rotate")
def rotate(ctx: typer.Context, device_id: str = typer.Argument(..., help="Meter or gateway"),
           kind: str = KindOpt,
           as_json: bool = typer.Option(False, "--json", help="Print JSON with the password"),
           output: Path = typer.Option(None, "--output", help="Write the JSON there (0600)"),
           wait: bool = typer.Option(False, "--wait", help="Until the broker applied it")
           ) -> None:
    """Replace a device's credential: the old password stops working at the broker."""
    settings = _settings(ctx)
    with _db(ctx) as conn:
        with conn.transaction():
            device = creds.resolve(conn, device_id, _kind(kind))
            old, issued = creds.rotate(conn, device, SERVER.name, reserved(settings))
            _audit(conn, "device.credential.rotate", f"{device.kind}:{device.device_id}",
                   old.as_dict(), issued.credential.as_dict())
        note = _wait(conn, wait)
    _issued(issued, as_json, output, note)


@credentials_app.command("revoke")
def revoke(ctx: typer.Context, device_id: str = typer.Argument(..., help="Meter or gateway"),
           kind: str = KindOpt,
           wait: bool = typer.Option(False, "--wait", help="Until the broker applied it"),
           as_json: bool = typer.Option(False, "--json", help="Print JSON")) -> None:
    """Cut a device off: its credential is revoked and the broker drops it on reload."""
    with _db(ctx) as conn:
        with conn.transaction():
            device = creds.resolve(conn, device_id, _kind(kind))
            before = creds.live(conn, device)
            revoked = creds.revoke(conn, device, SERVER.name)
            _audit(conn, "device.credential.revoke", f"{device.kind}:{device.device_id}",
                   before.as_dict() if before else None, revoked.as_dict())
        note = _wait(conn, wait)
    typer.echo(json.dumps(revoked.as_dict()) if as_json else
               f"credential {revoked.credential_id} of {device.kind} {device.device_id} revoked")
    if note:
        typer.echo(note, err=True)


@credentials_app.command("list")
def list_(ctx: typer.Context, device_id: str = typer.Argument(..., help="Meter or gateway"),
          kind: str = KindOpt,
          as_json: bool = typer.Option(False, "--json", help="Print JSON")) -> None:
    """Every credential the device has had (never a password)."""
    with _db(ctx) as conn:
        device = creds.resolve(conn, device_id, _kind(kind))
        found = creds.history(conn, device)
    if as_json:
        typer.echo(json.dumps([c.as_dict() for c in found]))
        return
    for c in found:
        state = f"revoked ({c.revoke_reason}) {c.revoked_at:%Y-%m-%d %H:%M}" if c.revoked_at \
            else "live"
        typer.echo(f"{c.credential_id}  {c.username}  made {c.created_at:%Y-%m-%d %H:%M} "
                   f"by {c.created_by}  {state}")


def _kind(kind: str | None) -> Literal["meter", "gateway"] | None:
    if kind not in (None, "meter", "gateway"):
        raise typer.BadParameter("--kind: meter or gateway")
    return kind  # type: ignore[return-value]


@gateway_app.command("put")
def gateway_put(ctx: typer.Context, gateway_id: str = typer.Argument(...),
                name: str = typer.Option("", "--name"),
                building: str = typer.Option(None, "--building", help="Where it is (scope)")
                ) -> None:
    """Register a gateway, or change its name or building."""
    with _db(ctx) as conn, conn.transaction():
        before, after = gateways.put_gateway(conn, gateway_id, name, building)
        if before != after:
            _audit(conn, "gateway.put", f"gateway:{gateway_id}", before, after)
    typer.echo(f"gateway {gateway_id} {'registered' if before is None else 'updated'}")


@gateway_app.command("attach")
def gateway_attach(ctx: typer.Context, gateway_id: str = typer.Argument(...),
                   meters: list[str] = typer.Argument(..., help="Meter ids")) -> None:
    """Register MQTT meters behind the gateway (it may then speak for them)."""
    with _db(ctx) as conn, conn.transaction():
        changed = gateways.attach(conn, gateway_id, meters)
        if changed:
            _audit(conn, "gateway.attach", f"gateway:{gateway_id}", None,
                   {"meter_ids": changed})
    typer.echo(f"{len(changed)} meter(s) now behind {gateway_id}")


@gateway_app.command("detach")
def gateway_detach(ctx: typer.Context, gateway_id: str = typer.Argument(...),
                   meters: list[str] = typer.Argument(..., help="Meter ids")) -> None:
    """Take meters from behind the gateway."""
    with _db(ctx) as conn, conn.transaction():
        changed = gateways.detach(conn, gateway_id, meters)
        if changed:
            _audit(conn, "gateway.detach", f"gateway:{gateway_id}", {"meter_ids": changed},
                   None)
    typer.echo(f"{len(changed)} meter(s) taken from {gateway_id}")


@gateway_app.command("show")
def gateway_show(ctx: typer.Context, gateway_id: str = typer.Argument(...)) -> None:
    """The gateway, its meters and its live credential (JSON)."""
    with _db(ctx) as conn:
        row = gateways.gateway(conn, gateway_id)
        if row is None:
            raise DeviceError("gateway_id", f"no gateway {gateway_id!r}", 404)
        live = creds.live(conn, creds.Device("gateway", gateway_id))
        meters = gateways.meters_of(conn, gateway_id)
    typer.echo(json.dumps({**{k: (v.isoformat() if hasattr(v, "isoformat") else v)
                              for k, v in row.items()}, "meters": meters,
                           "credential": live.as_dict() if live else None}))
