"""Authentication (bearer tokens) and authorisation (roles), stated once as data.

``PERMISSIONS`` is the whole matrix: an action name to the roles that may do it. Reading
operational data is open to every role; finance reports and exports are for ``admin``,
``finance``, ``operator`` and ``viewer`` (read-only) but not ``maintenance`` (no money).
A request without a valid token gets 401, a role without the permission 403.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from meterflow.api.db import connection
from meterflow.api.errors import ApiError
from meterflow.api.tokens import ROLES, Actor, authenticate

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
    "tariffs.write": frozenset({"admin"}),
    "users": frozenset({"admin"}),
    "audit.read": frozenset({"admin"}),
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


def require(permission: str) -> Callable[..., Iterator[Ctx]]:
    """Dependency: 401 without a valid token, 403 when the role lacks ``permission``."""
    if permission not in PERMISSIONS:
        raise KeyError(permission)

    def dependency(request: Request,
                   credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                   conn: psycopg.Connection = Depends(connection)) -> Iterator[Ctx]:
        challenge = {"WWW-Authenticate": "Bearer"}
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise ApiError(401, "Authorization", "a bearer token is required", challenge)
        actor = authenticate(conn, credentials.credentials)
        if actor is None:
            raise ApiError(401, "Authorization", "unknown, revoked or malformed token",
                           challenge)
        if not allowed(actor.role, permission):
            roles = ", ".join(sorted(PERMISSIONS[permission]))
            raise ApiError(403, "role", f"{actor.role} may not do this ({permission}: {roles})")
        yield Ctx(conn, actor, request_id(request))

    return dependency
