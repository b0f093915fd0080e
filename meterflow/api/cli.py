"""``meterflow api`` (serve the HTTP API) and the server-side bootstrap of users and tokens:
``meterflow user add NAME --role ROLE`` and ``meterflow token create USER`` work on the
database directly (no API needed), so the first admin can be made on the server.
Each change is written to the audit log as the actor ``server-cli``.
"""

from __future__ import annotations

import json
import logging
import uuid

import psycopg
import typer

from meterflow.api import audit
from meterflow.api.tokens import ROLES, Actor, UserError, add_user, create_token

SERVER = Actor(None, "server-cli", "admin", None)
user_app = typer.Typer(help="API users (on the server, directly in the database).",
                       no_args_is_help=True)
token_app = typer.Typer(help="API tokens (on the server, directly in the database).",
                        no_args_is_help=True)


def _dsn(ctx: typer.Context) -> str:
    from meterflow.cli import settings_of

    return settings_of(ctx).dsn


def api(
    ctx: typer.Context,
    host: str = typer.Option(None, help="Listen address (default: METERFLOW_API_HOST)"),
    port: int = typer.Option(None, help="Port (default: METERFLOW_API_PORT)"),
    loglevel: str = typer.Option("info", help="Log level"),
    batches: bool = typer.Option(True, help="Run due batches in this process"),
) -> None:
    """Serve the operators' HTTP API (/api/v1, OpenAPI at /api/v1/openapi.json)."""
    import uvicorn

    from meterflow.api.app import create_app
    from meterflow.cli import settings_of

    settings = settings_of(ctx)
    logging.basicConfig(level=loglevel.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings, run_batches=batches)
    uvicorn.run(app, host=host or settings.api_host, port=port or settings.api_port,
                log_level=loglevel.lower(), proxy_headers=False, server_header=False)


@user_app.command("add")
def user_add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="User name (1-64 of A-Z a-z 0-9 . _ @ -)"),
    role: str = typer.Option(..., "--role", help=f"One of {', '.join(ROLES)}"),
) -> None:
    """Create a user (the same name and role again changes nothing)."""
    try:
        with psycopg.connect(_dsn(ctx), autocommit=True) as conn, conn.transaction():
            user_id, created = add_user(conn, name, role)
            if created:
                audit.record(conn, SERVER, f"cli:{uuid.uuid4()}", "user.create",
                             f"user:{name}", None, {"user_id": user_id, "name": name,
                                                    "role": role})
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except psycopg.OperationalError as exc:
        typer.echo(f"error: database unreachable: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"user {name} ({role}) {'created' if created else 'already exists'}")


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    user: str = typer.Argument(..., help="User name"),
    label: str = typer.Option("", help="What the token is for"),
    as_json: bool = typer.Option(False, "--json", help="Print {token_id, token} as JSON"),
) -> None:
    """Make a token for a user and print it once (only its SHA-256 is stored)."""
    try:
        with psycopg.connect(_dsn(ctx), autocommit=True) as conn, conn.transaction():
            token_id, token = create_token(conn, user, label)
            audit.record(conn, SERVER, f"cli:{uuid.uuid4()}", "token.create", f"user:{user}",
                         None, {"token_id": token_id, "label": label})
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except psycopg.OperationalError as exc:
        typer.echo(f"error: database unreachable: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps({"token_id": token_id, "user": user, "token": token}))
    else:
        typer.echo(f"token {token_id} for {user} (shown once, keep it secret):\n{token}")
