"""Users, roles, scopes and API tokens (admin only), ``GET /me`` for every role, and token
rotation by an admin or by the token's own user.

A token is returned once, when it is made; only its SHA-256 is stored. Tokens expire
(``ttl_days``, default ``METERFLOW_API_TOKEN_TTL_DAYS``). Revoking is final; rotating makes
a new token and revokes the old one at once or after ``grace_s``. A user's ``sites`` and
``buildings`` limit everything they read and change (:mod:`meterflow.api.scope`); empty
lists mean no limit, and admins are never limited.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import Field

from meterflow.api import audit
from meterflow.api.auth import PERMISSIONS, Ctx, require
from meterflow.api.errors import ApiError
from meterflow.api.routers.common import Model, one, out, rows
from meterflow.api.tokens import (
    NAME_PATTERN,
    add_user,
    create_token,
    rotate_token,
    scope_of,
    set_scope,
)
from meterflow.api.types import Id, Name
from meterflow.settings import Settings

router = APIRouter(tags=["users"])
ADMIN = Depends(require("users"))
Role = Literal["admin", "operator", "finance", "maintenance", "viewer"]
UserPath = Annotated[str, Path(pattern=NAME_PATTERN)]
TokenPath = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")]
USER_COLUMNS = "user_id, name, role, disabled, created_at"
TOKEN_SQL = """
SELECT t.token_id, u.name AS user, t.label, t.created_at, t.expires_at, t.last_used_at,
       t.last_used_from, t.revoked_at, t.rotated_to,
       CASE WHEN t.revoked_at IS NOT NULL AND t.revoked_at <= now() THEN 'revoked'
            WHEN t.expires_at <= now() THEN 'expired' ELSE 'active' END AS state
FROM api_tokens t JOIN api_users u USING (user_id)
"""
Places = Annotated[list[Id], Field(max_length=1000)]


class UserIn(Model):
    name: str = Field(pattern=NAME_PATTERN)
    role: Role
    sites: Places = Field(default_factory=list, description="Limit to these sites")
    buildings: Places = Field(default_factory=list, description="Limit to these buildings")


class UserPatch(Model):
    role: Role | None = None
    disabled: bool | None = None
    sites: Places | None = Field(None, description="Replace the sites ([]: none)")
    buildings: Places | None = Field(None, description="Replace the buildings ([]: none)")


class TokenIn(Model):
    label: Name = ""
    ttl_days: int | None = Field(None, ge=1, le=3650, description="Lifetime in days "
                                 "(default METERFLOW_API_TOKEN_TTL_DAYS)")


class RotateIn(Model):
    grace_s: int = Field(0, ge=0, le=7 * 86400, description="Keep the old token valid this "
                         "long (0: revoke it now)")
    ttl_days: int | None = Field(None, ge=1, le=3650)


def _settings(request: Request) -> Settings:
    settings = request.app.state.settings
    assert isinstance(settings, Settings)
    return settings


def _user(ctx: Ctx, name: str) -> dict[str, Any]:
    row = one(ctx.conn, f"SELECT {USER_COLUMNS} FROM api_users WHERE name = %s", (name,))
    if row is None:
        raise ApiError(404, "name", f"no user {name!r}")
    return {**out(row), "scope": scope_of(ctx.conn, int(row["user_id"])).as_dict()}


@router.get("/me")
def me(ctx: Ctx = Depends(require("read"))) -> dict[str, Any]:
    """Who the token belongs to, what the role may do and where (scope)."""
    role = ctx.actor.role
    token = one(ctx.conn, "SELECT expires_at FROM api_tokens WHERE token_id = %s",
                (ctx.actor.token_id,))
    return {"user": ctx.actor.name, "role": role, "token_id": ctx.actor.token_id,
            "token_expires_at": out(token["expires_at"]) if token else None,
            "scope": ctx.actor.scope.as_dict(),
            "permissions": sorted(p for p, roles in PERMISSIONS.items() if role in roles)}


@router.post("/users", status_code=201)
def create_user(body: UserIn, response: Response, ctx: Ctx = ADMIN) -> dict[str, Any]:
    """A user with a role, optionally limited to sites and buildings."""
    with ctx.conn.transaction():
        user_id, created = add_user(ctx.conn, body.name, body.role)
        if created:
            set_scope(ctx.conn, user_id, body.role, body.sites, body.buildings)
            after = _user(ctx, body.name)
            audit.record(ctx.conn, ctx.actor, ctx.request_id, "user.create",
                         f"user:{body.name}", None, after)
        else:
            after = _user(ctx, body.name)
            asked = {"sites": sorted(set(body.sites)), "buildings": sorted(set(body.buildings))}
            have = {k: after["scope"][k] for k in asked}
            if asked != have:
                raise ApiError(409, "sites", f"user {body.name} exists with scope {have}; "
                                             "change it with PATCH /api/v1/users/{name}")
    response.status_code = 201 if created else 200
    return after


@router.get("/users")
def list_users(ctx: Ctx = ADMIN) -> dict[str, Any]:
    users = rows(ctx.conn, f"SELECT {USER_COLUMNS} FROM api_users ORDER BY name")
    return {"items": [{**out(u), "scope": scope_of(ctx.conn, int(u["user_id"])).as_dict()}
                      for u in users]}


@router.patch("/users/{name}")
def patch_user(name: UserPath, body: UserPatch, ctx: Ctx = ADMIN) -> dict[str, Any]:
    """Change a user's role, scope, or disable them (their tokens stop working at once)."""
    patch = body.model_dump(exclude_unset=True)
    with ctx.conn.transaction():
        before_row = one(ctx.conn, f"SELECT {USER_COLUMNS} FROM api_users WHERE name = %s "
                                   "FOR UPDATE", (name,))
        if before_row is None:
            raise ApiError(404, "name", f"no user {name!r}")
        before = _user(ctx, name)
        if name == ctx.actor.name and (patch.get("disabled") or
                                       patch.get("role", "admin") != "admin"):
            raise ApiError(400, "name", "an admin cannot demote or disable themselves")
        role = patch.get("role") or before["role"]
        disabled = before["disabled"] if patch.get("disabled") is None else patch["disabled"]
        ctx.conn.execute("UPDATE api_users SET role = %s, disabled = %s WHERE name = %s",
                         (role, disabled, name))
        sites = patch["sites"] if patch.get("sites") is not None else \
            before["scope"]["sites"]
        buildings = patch["buildings"] if patch.get("buildings") is not None else \
            before["scope"]["buildings"]
        set_scope(ctx.conn, int(before_row["user_id"]), role, sites, buildings)
        after = _user(ctx, name)
        audit.record(ctx.conn, ctx.actor, ctx.request_id, "user.update", f"user:{name}",
                     before, after)
    return after


@router.post("/users/{name}/tokens", status_code=201)
def new_token(name: UserPath, body: TokenIn, request: Request,
              ctx: Ctx = ADMIN) -> dict[str, Any]:
    """A new token for the user: ``token`` is shown now and never again."""
    settings = _settings(request)
    with ctx.conn.transaction():
        made = create_token(ctx.conn, name, body.label, ttl_days=body.ttl_days,
                            default_days=settings.api_token_ttl_days,
                            max_days=settings.api_token_max_ttl_days)
        audit.record(ctx.conn, ctx.actor, ctx.request_id, "token.create", f"user:{name}",
                     None, {"token_id": made.token_id, "label": body.label,
                            "expires_at": made.expires_at})
    return {"token_id": made.token_id, "user": name, "label": body.label, "token": made.token,
            "expires_at": out(made.expires_at)}


@router.get("/tokens")
def list_tokens(ctx: Ctx = ADMIN) -> dict[str, Any]:
    """Tokens (never their secret): id, user, label, created, expires, last used (when and
    from where, to the minute), revoked, rotated to, state."""
    return {"items": out(rows(ctx.conn, TOKEN_SQL + " ORDER BY t.created_at"))}


@router.delete("/tokens/{token_id}")
def revoke_token(token_id: TokenPath, ctx: Ctx = ADMIN) -> dict[str, Any]:
    """Revoke a token: refused from the next request on."""
    with ctx.conn.transaction():
        after = one(ctx.conn, "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) "
                              "WHERE token_id = %s RETURNING token_id, revoked_at", (token_id,))
        if after is None:
            raise ApiError(404, "token_id", f"no token {token_id!r}")
        audit.record(ctx.conn, ctx.actor, ctx.request_id, "token.revoke", f"token:{token_id}",
                     None, after)
    return dict(out(after))


@router.post("/tokens/{token_id}/rotate", status_code=201)
def rotate(token_id: TokenPath, request: Request, body: RotateIn | None = None,
           ctx: Ctx = Depends(require("read"))) -> dict[str, Any]:
    """A new token replacing this one (same user and label): an admin may rotate any
    token, every user their own. The new ``token`` is shown now and never again."""
    body = body or RotateIn()
    owner = one(ctx.conn, "SELECT u.name FROM api_tokens t JOIN api_users u USING (user_id) "
                          "WHERE t.token_id = %s", (token_id,))
    if owner is None:
        raise ApiError(404, "token_id", f"no token {token_id!r}")
    if ctx.actor.role != "admin" and owner["name"] != ctx.actor.name:
        raise ApiError(403, "token_id", "only an admin may rotate another user's token")
    settings = _settings(request)
    with ctx.conn.transaction():
        old, made = rotate_token(ctx.conn, token_id, grace_s=body.grace_s,
                                 ttl_days=body.ttl_days,
                                 default_days=settings.api_token_ttl_days,
                                 max_days=settings.api_token_max_ttl_days)
        audit.record(ctx.conn, ctx.actor, ctx.request_id, "token.rotate", f"token:{token_id}",
                     old, {"token_id": made.token_id, "expires_at": made.expires_at})
    return {"token_id": made.token_id, "user": owner["name"], "token": made.token,
            "expires_at": out(made.expires_at), "replaces": out(old)}
