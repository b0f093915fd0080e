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
from pathlib import Path
from typing import Literal

import psycopg
import typer

from meterflow.broker.platform import reserved_names as reserved
from meterflow.broker.sync import wait_applied
from meterflow.subcommands import settings_of
from meterflow.subcommands.api import SERVER, audit_as_server, database
from services.devices import credentials as creds
from services.devices import gateways
from services.devices.credentials import DeviceError

device_app = typer.Typer(help="MQTT identities of meters and gateways (on the server).",
                         no_args_is_help=True)
credentials_app = typer.Typer(help="Create, rotate, revoke and list device credentials.",
                              no_args_is_help=True)
gateway_app = typer.Typer(help="Gateways and the meters registered behind them.",
                          no_args_is_help=True)
device_app.add_typer(credentials_app, name="credentials")
device_app.add_typer(gateway_app, name="gateway")
KindOpt = typer.Option(None, "--kind", help="meter or gateway, when an id is both")
DeviceArg = typer.Argument(..., help="Meter or gateway")
PasswordJsonOpt = typer.Option(False, "--json", help="Print JSON with the password")
OutputOpt = typer.Option(None, "--output", help="Write the JSON there (0600)")
WaitOpt = typer.Option(False, "--wait", help="Until the broker applied it")


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
def create(ctx: typer.Context, device_id: str = DeviceArg, kind: str = KindOpt,
           as_json: bool = PasswordJsonOpt, output: Path = OutputOpt, wait: bool = WaitOpt
           ) -> None:
    """Make a device's first MQTT credential and print its password once."""
    _issue(ctx, device_id, kind, "create", as_json, output, wait)


@credentials_app.command("rotate")
def rotate(ctx: typer.Context, device_id: str = DeviceArg, kind: str = KindOpt,
           as_json: bool = PasswordJsonOpt, output: Path = OutputOpt, wait: bool = WaitOpt
           ) -> None:
    """Replace a device's credential: the old password stops working at the broker."""
    _issue(ctx, device_id, kind, "rotate", as_json, output, wait)


def _issue(ctx: typer.Context, device_id: str, kind: str, action: Literal["create", "rotate"],
           as_json: bool, output: Path, wait: bool) -> None:
    """A new credential (the first, or one replacing the live one), audited; its password
    printed once."""
    settings = settings_of(ctx)
    with database(ctx) as conn:
        with conn.transaction():
            device = creds.resolve(conn, device_id, _kind(kind))
            if action == "create":
                old, issued = None, creds.create(conn, device, SERVER.name, reserved(settings))
            else:
                old, issued = creds.rotate(conn, device, SERVER.name, reserved(settings))
            audit_as_server(conn, f"device.credential.{action}",
                            f"{device.kind}:{device.device_id}",
                            old.as_dict() if old else None, issued.credential.as_dict())
        note = _wait(conn, wait)
    _issued(issued, as_json, output, note)


@credentials_app.command("revoke")
def revoke(ctx: typer.Context, device_id: str = DeviceArg, kind: str = KindOpt,
           wait: bool = WaitOpt,
           as_json: bool = typer.Option(False, "--json", help="Print JSON")) -> None:
    """Cut a device off: its credential is revoked and the broker drops it on reload."""
    with database(ctx) as conn:
        with conn.transaction():
            device = creds.resolve(conn, device_id, _kind(kind))
            before = creds.live(conn, device)
            revoked = creds.revoke(conn, device, SERVER.name)
            audit_as_server(conn, "device.credential.revoke",
                            f"{device.kind}:{device.device_id}",
                            before.as_dict() if before else None, revoked.as_dict())
        note = _wait(conn, wait)
    typer.echo(json.dumps(revoked.as_dict()) if as_json else
               f"credential {revoked.credential_id} of {device.kind} {device.device_id} revoked")
    if note:
        typer.echo(note, err=True)


@credentials_app.command("list")
def list_(ctx: typer.Context, device_id: str = DeviceArg,
          kind: str = KindOpt,
          as_json: bool = typer.Option(False, "--json", help="Print JSON")) -> None:
    """Every credential the device has had (never a password)."""
    with database(ctx) as conn:
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
    with database(ctx) as conn, conn.transaction():
        before, after = gateways.put_gateway(conn, gateway_id, name, building)
        if before != after:
            audit_as_server(conn, "gateway.put", f"gateway:{gateway_id}", before, after)
    typer.echo(f"gateway {gateway_id} {'registered' if before is None else 'updated'}")


@gateway_app.command("attach")
def gateway_attach(ctx: typer.Context, gateway_id: str = typer.Argument(...),
                   meters: list[str] = typer.Argument(..., help="Meter ids")) -> None:
    """Register MQTT meters behind the gateway (it may then speak for them)."""
    with database(ctx) as conn, conn.transaction():
        changed = gateways.attach(conn, gateway_id, meters)
        if changed:
            audit_as_server(conn, "gateway.attach", f"gateway:{gateway_id}", None,
                            {"meter_ids": changed})
    typer.echo(f"{len(changed)} meter(s) now behind {gateway_id}")


@gateway_app.command("detach")
def gateway_detach(ctx: typer.Context, gateway_id: str = typer.Argument(...),
                   meters: list[str] = typer.Argument(..., help="Meter ids")) -> None:
    """Take meters from behind the gateway."""
    with database(ctx) as conn, conn.transaction():
        changed = gateways.detach(conn, gateway_id, meters)
        if changed:
            audit_as_server(conn, "gateway.detach", f"gateway:{gateway_id}",
                            {"meter_ids": changed}, None)
    typer.echo(f"{len(changed)} meter(s) taken from {gateway_id}")


@gateway_app.command("show")
def gateway_show(ctx: typer.Context, gateway_id: str = typer.Argument(...)) -> None:
    """The gateway, its meters and its live credential (JSON)."""
    with database(ctx) as conn:
        row = gateways.gateway(conn, gateway_id)
        if row is None:
            raise DeviceError("gateway_id", f"no gateway {gateway_id!r}", 404)
        live = creds.live(conn, creds.Device("gateway", gateway_id))
        meters = gateways.meters_of(conn, gateway_id)
    typer.echo(json.dumps({**{k: (v.isoformat() if hasattr(v, "isoformat") else v)
                              for k, v in row.items()}, "meters": meters,
                           "credential": live.as_dict() if live else None}))
