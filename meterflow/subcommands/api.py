"""``meterflow api`` (serve the HTTP API) and the server-side bootstrap of users and tokens:
``meterflow user add NAME --role ROLE [--site S] [--building B]``, ``meterflow user scope``,
``meterflow user password NAME`` (the web console's sign-in),
``meterflow token create | list | rotate | revoke`` work on the database directly (no API
needed), so the first admin can be made on the server. Each change is written to the audit
log as the actor ``server-cli``.

The API serves HTTPS itself with ``METERFLOW_API_TLS_CERT_FILE``/``_KEY_FILE``, or sits
behind a TLS-terminating proxy named in ``METERFLOW_API_FORWARDED_ALLOW_IPS`` (whose
X-Forwarded-For then gives the client's address to the throttle and the audit log).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import typer

from contracts.errors import RefusedRequest
from meterflow.api import audit, sessions
from meterflow.api.tokens import (
    ROLES,
    Actor,
    UserError,
    add_user,
    create_token,
    rotate_token,
    scope_of,
    set_scope,
    user_row,
)
from meterflow.settings import Settings
from meterflow.subcommands import settings_of

SERVER = Actor(None, "server-cli", "admin", None)
user_app = typer.Typer(help="API users (on the server, directly in the database).",
                       no_args_is_help=True)
token_app = typer.Typer(help="API tokens (on the server, directly in the database).",
                        no_args_is_help=True)
SitesOpt = typer.Option(None, "--site", help="Limit the user to this site (repeatable)")
BuildingsOpt = typer.Option(None, "--building", help="Limit the user to this building "
                            "(repeatable)")


@contextmanager
def database(ctx: typer.Context) -> Iterator[psycopg.Connection]:
    """A connection for one command run by the server's operator; a refused request or an
    unreachable database ends the command with exit 1 and the reason."""
    try:
        with psycopg.connect(settings_of(ctx).dsn, autocommit=True, connect_timeout=10) as conn:
            yield conn
    except RefusedRequest as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except psycopg.OperationalError as exc:
        typer.echo(f"error: database unreachable: {str(exc).strip()}", err=True)
        raise typer.Exit(1) from None


def audit_as_server(conn: psycopg.Connection, action: str, target: str, before: Any,
                    after: Any) -> None:
    """The audit row of a change made on the server's command line (actor ``SERVER``)."""
    audit.record(conn, SERVER, f"cli:{uuid.uuid4()}", action, target, before, after)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """TLS and proxy options of uvicorn from the settings."""
    options: dict[str, Any] = {"proxy_headers": bool(settings.api_forwarded_allow_ips),
                               "forwarded_allow_ips": settings.api_forwarded_allow_ips or None}
    cert, key = settings.api_tls_cert_file, settings.api_tls_key_file
    if (cert is None) != (key is None):
        raise typer.BadParameter("METERFLOW_API_TLS_CERT_FILE and METERFLOW_API_TLS_KEY_FILE "
                                 "go together")
    if cert is not None:
        options |= {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    return options


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

    settings = settings_of(ctx)
    logging.basicConfig(level=loglevel.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = uvicorn_options(settings)
    app = create_app(settings, run_batches=batches)
    uvicorn.run(app, host=host or settings.api_host, port=port or settings.api_port,
                log_level=loglevel.lower(), server_header=False, **options)


@user_app.command("add")
def user_add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="User name (1-64 of A-Z a-z 0-9 . _ @ -)"),
    role: str = typer.Option(..., "--role", help=f"One of {', '.join(ROLES)}"),
    sites: list[str] = SitesOpt,
    buildings: list[str] = BuildingsOpt,
) -> None:
    """Create a user (the same name and role again changes nothing), optionally limited
    to sites or buildings."""
    with database(ctx) as conn, conn.transaction():
        user_id, created = add_user(conn, name, role)
        if created:
            scope = set_scope(conn, user_id, role, sites or [], buildings or [])
            audit_as_server(conn, "user.create", f"user:{name}", None,
                            {"user_id": user_id, "name": name, "role": role,
                             "scope": scope.as_dict()})
    typer.echo(f"user {name} ({role}) {'created' if created else 'already exists'}")


@user_app.command("scope")
def user_scope(ctx: typer.Context, name: str = typer.Argument(..., help="User name"),
               sites: list[str] = SitesOpt, buildings: list[str] = BuildingsOpt) -> None:
    """Replace a user's sites and buildings (none given: no limit). At once."""
    with database(ctx) as conn, conn.transaction():
        user = user_row(conn, name)
        if user is None:
            raise UserError("name", f"no user {name!r}", 404)
        before = scope_of(conn, user[0])
        after = set_scope(conn, user[0], user[2], sites or [], buildings or [])
        audit_as_server(conn, "user.scope", f"user:{name}", before.as_dict(), after.as_dict())
    typer.echo(f"user {name}: {after.describe()}")


@user_app.command("password")
def user_password(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="User name"),
    stdin: bool = typer.Option(False, "--stdin", help="Read the password from standard input "
                               "(one line) instead of asking"),
) -> None:
    """Set a user's password for the web console (argon2id); ends their console sessions."""
    import sys

    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with database(ctx) as conn, conn.transaction():
        sessions.set_password(conn, name, password)
        audit_as_server(conn, "user.password", f"user:{name}", None, {"name": name})
    typer.echo(f"user {name}: password set")


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    user: str = typer.Argument(..., help="User name"),
    label: str = typer.Option("", help="What the token is for"),
    ttl_days: int = typer.Option(None, "--ttl-days", help="Lifetime (default: "
                                 "METERFLOW_API_TOKEN_TTL_DAYS)"),
    as_json: bool = typer.Option(False, "--json", help="Print {token_id, token} as JSON"),
) -> None:
    """Make a token for a user and print it once (only its SHA-256 is stored)."""
    settings = settings_of(ctx)
    with database(ctx) as conn, conn.transaction():
        made = create_token(conn, user, label, ttl_days=ttl_days,
                            default_days=settings.api_token_ttl_days,
                            max_days=settings.api_token_max_ttl_days)
        audit_as_server(conn, "token.create", f"user:{user}", None,
                        {"token_id": made.token_id, "label": label,
                         "expires_at": made.expires_at.isoformat()})
    if as_json:
        typer.echo(json.dumps({"token_id": made.token_id, "user": user, "token": made.token,
                               "expires_at": made.expires_at.isoformat()}))
    else:
        typer.echo(f"token {made.token_id} for {user}, valid until "
                   f"{made.expires_at:%Y-%m-%d %H:%M %Z} (shown once, keep it secret):\n"
                   f"{made.token}")


@token_app.command("rotate")
def token_rotate(
    ctx: typer.Context,
    token_id: str = typer.Argument(..., help="The token's id (16 hex)"),
    grace_s: int = typer.Option(0, "--grace-s", min=0, max=7 * 86400,
                                help="Keep the old token valid this long (0: revoke now)"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """A new token for the same user and label; the old one ends now or after --grace-s."""
    settings = settings_of(ctx)
    with database(ctx) as conn, conn.transaction():
        old, made = rotate_token(conn, token_id, grace_s=grace_s,
                                 default_days=settings.api_token_ttl_days,
                                 max_days=settings.api_token_max_ttl_days)
        audit_as_server(conn, "token.rotate", f"token:{token_id}", old,
                        {"token_id": made.token_id, "expires_at": made.expires_at.isoformat()})
    if as_json:
        typer.echo(json.dumps({"token_id": made.token_id, "token": made.token,
                               "expires_at": made.expires_at.isoformat(),
                               "replaces": token_id}))
    else:
        typer.echo(f"token {made.token_id} replaces {token_id} (shown once):\n{made.token}")


@token_app.command("revoke")
def token_revoke(ctx: typer.Context,
                 token_id: str = typer.Argument(..., help="The token's id (16 hex)")) -> None:
    """Revoke a token: it is refused from the next request on."""
    with database(ctx) as conn, conn.transaction():
        row = conn.execute("UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) "
                           "WHERE token_id = %s RETURNING token_id, revoked_at",
                           (token_id,)).fetchone()
        if row is None:
            raise UserError("token_id", f"no token {token_id!r}", 404)
        audit_as_server(conn, "token.revoke", f"token:{token_id}", None,
                        {"token_id": row[0], "revoked_at": row[1].isoformat()})
    typer.echo(f"token {token_id} revoked")


@token_app.command("list")
def token_list(ctx: typer.Context, user: str = typer.Option(None, "--user"),
               as_json: bool = typer.Option(False, "--json", help="Print JSON")) -> None:
    """Tokens (never their secret): user, label, expiry, last use, state."""
    with database(ctx) as conn:
        rows = conn.execute(
            "SELECT t.token_id, u.name, t.label, t.created_at, t.expires_at, t.last_used_at, "
            "t.last_used_from, t.revoked_at, t.rotated_to FROM api_tokens t JOIN api_users u "
            "USING (user_id) WHERE %(u)s::text IS NULL OR u.name = %(u)s "
            "ORDER BY t.created_at", {"u": user}).fetchall()
    items = [{"token_id": r[0], "user": r[1], "label": r[2],
              **{k: (v.isoformat() if v is not None else None) for k, v in
                 (("created_at", r[3]), ("expires_at", r[4]), ("last_used_at", r[5]),
                  ("revoked_at", r[7]))},
              "last_used_from": r[6], "rotated_to": r[8]} for r in rows]
    if as_json:
        typer.echo(json.dumps(items))
        return
    for item in items:
        state = "revoked" if item["revoked_at"] else f"expires {item['expires_at']}"
        typer.echo(f"{item['token_id']}  {item['user']}  {item['label'] or '-'}  {state}  "
                   f"last used {item['last_used_at'] or 'never'}"
                   + (f" from {item['last_used_from']}" if item["last_used_from"] else ""))
