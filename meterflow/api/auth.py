"""Authentication (bearer tokens) and authorisation (roles), stated once as data.

``PERMISSIONS`` is the whole matrix: an action name to the roles that may do it. Reading
operational data is open to every role; finance reports and exports are for ``admin``,
``finance``, ``operator`` and ``viewer`` (read-only) but not ``maintenance`` (no money).
A request without a valid token gets 401, a role without the permission 403. Where a user
is limited to sites or buildings, the handlers check each thing they touch
(:mod:`meterflow.api.places`).

A signed-in browser of the web console (:mod:`meterflow.api.sessions`) may call the same
endpoints with its session cookie instead of a token; every request of it but GET, HEAD and
OPTIONS must carry the session's CSRF token in ``X-CSRF-Token`` (403 without it).

Every refused token is written to the audit log (``auth.failed``: the client's address,
the reason, the user the token claimed) and counted by the throttle
(:mod:`meterflow.api.throttle`); an address with too many failures is answered 429 until
its block ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from meterflow.api import audit, sessions, throttle
from meterflow.api.db import connection
from meterflow.api.errors import ApiError
from meterflow.api.tokens import ROLES, Actor, AuthFailure, authenticate

ALL = frozenset(ROLES)
PERMISSIONS: dict[str, frozenset[str]] = {
    "read": ALL,
    "finance.read": frozenset({"admin", "finance", "operator", "viewer"}),
    "property.write": frozenset({"admin", "operator"}),
    "accounts.write": frozenset({"admin", "operator"}),
    "meters.write": frozenset({"admin", "operator", "maintenance"}),
    "control": frozenset({"admin", "operator", "maintenance"}),
    "topup": frozenset({"admin", "operator", "finance"}),
    "refund": frozenset({"admin", "finance"}),
    "billing.write": frozenset({"admin", "finance"}),
    "tariffs.write": frozenset({"admin"}),
    "users": frozenset({"admin"}),
    "audit.read": frozenset({"admin"}),
    "devices.write": frozenset({"admin", "maintenance"}),
}

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer mf_<id>_<secret>")


def allowed(role: str, permission: str) -> bool:
    return role in PERMISSIONS[permission]


@dataclass(frozen=True)
class Ctx:
    """What a handler needs: the connection, who asks, and the request id (audit)."""

    conn: psycopg.Connection
    actor: Actor
    request_id: str


def request_id(request: Request) -> str:
    rid = getattr(request.state, "request_id", None)
    return rid if isinstance(rid, str) else str(uuid.uuid4())


def client_address(request: Request) -> str | None:
    """The client's address (a trusted proxy's X-Forwarded-For when one is configured:
    METERFLOW_API_FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client is not None else None


def _policy(request: Request) -> throttle.ThrottlePolicy:
    policy = getattr(request.app.state, "throttle", None)
    return policy if isinstance(policy, throttle.ThrottlePolicy) else throttle.ThrottlePolicy()


def refuse_token(conn: psycopg.Connection, request: Request, failure: AuthFailure) -> None:
    """Audit and count a refused token; the caller answers 401."""
    address = client_address(request)
    who = Actor(None, failure.user or "", "", failure.token_id)
    detail = {"reason": failure.reason, "method": request.method,
              "path": request.url.path[:300]}
    with conn.transaction():
        started = throttle.failed(conn, _policy(request), throttle.keys(address, failure.user))
        audit.record(conn, who, request_id(request), "auth.failed",
                     f"address:{address or 'unknown'}", None, detail)
        for block in started:
            audit.record(conn, who, request_id(request), "auth.throttled",
                         f"{block.key.kind}:{block.key.value}", None,
                         {"until": block.until.isoformat(), **detail})


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def session_policy(request: Request) -> sessions.SessionPolicy:
    policy = getattr(request.app.state, "sessions", None)
    return policy if isinstance(policy, sessions.SessionPolicy) else sessions.SessionPolicy()


def session_of(request: Request, conn: psycopg.Connection) -> sessions.Session | None:
    """The console session of the request's cookie, or None."""
    cookie = request.cookies.get(sessions.COOKIE)
    return sessions.resume(conn, cookie, session_policy(request)) if cookie else None


def _session_actor(request: Request, conn: psycopg.Connection) -> Actor:
    """The actor of a console session cookie: 401 when it ended, 403 without its CSRF token
    on a state-changing request."""
    session = session_of(request, conn)
    if session is None:
        raise ApiError(401, "session", "signed out or idle too long: sign in again")
    if request.method not in SAFE_METHODS and not sessions.csrf_matches(
            session, request.headers.get(sessions.CSRF_HEADER)):
        raise ApiError(403, sessions.CSRF_HEADER, "missing or wrong CSRF token: reload the page")
    return session.actor


def require(permission: str) -> Callable[..., Iterator[Ctx]]:
    """Dependency: 401 without a valid token (or console session), 403 when the role lacks
    ``permission``."""
    if permission not in PERMISSIONS:
        raise KeyError(permission)

    def dependency(request: Request,
                   credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                   conn: psycopg.Connection = Depends(connection)) -> Iterator[Ctx]:
        challenge = {"WWW-Authenticate": "Bearer"}
        if credentials is None and sessions.COOKIE in request.cookies:
            yield _checked(_session_actor(request, conn), permission, conn, request)
            return
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise ApiError(401, "Authorization", "a bearer token is required", challenge)
        address = client_address(request)
        block = throttle.blocked(conn, throttle.keys(address))
        if block is not None:
            raise ApiError(429, "Authorization", "too many failed authentications from "
                           f"this address; retry after {block.retry_after_s}s",
                           {"Retry-After": str(block.retry_after_s)})
        actor = authenticate(conn, credentials.credentials, address)
        if isinstance(actor, AuthFailure):
            refuse_token(conn, request, actor)
            raise ApiError(401, "Authorization", actor.answer, challenge)
        yield _checked(actor, permission, conn, request)

    return dependency


def _checked(actor: Actor, permission: str, conn: psycopg.Connection, request: Request) -> Ctx:
    if not allowed(actor.role, permission):
        roles = ", ".join(sorted(PERMISSIONS[permission]))
        raise ApiError(403, "role", f"{actor.role} may not do this ({permission}: {roles})")
    return Ctx(conn, actor, request_id(request))
