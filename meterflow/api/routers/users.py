"""Users, roles and API tokens (admin only), and ``GET /me`` for every role.

A token is returned once, when it is made; only its SHA-256 is stored. Revoking is final.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Response
from pydantic import Field

from meterflow.api import audit
from meterflow.api.auth import PERMISSIONS, Ctx, require
from meterflow.api.errors import ApiError
from meterflow.api.routers.common import Model, one, out, rows
from meterflow.api.tokens import NAME_PATTERN, add_user, create_token
from meterflow.api.types import Name

router = APIRouter(tags=["users"])
ADMIN = Depends(require("users"))
Role = Literal["admin", "operator", "finance", "maintenance", "viewer"]
UserPath = Annotated[str, Path(pattern=NAME_PATTERN)]
USER_COLUMNS = "user_id, name, role, disabled, created_at"


class UserIn(Model):
    name: str = Field(pattern=NAME_PATTERN)
    role: Role


class UserPatch(Model):
    role: Role | None = None
    disabled: bool | None = None


class TokenIn(Model):
    label: Name = ""


@router.get("/me")
def me(ctx: Ctx = Depends(require("read"))) -> dict[str, Any]:
    """Who the token belongs to and what the role may do."""
    role = ctx.actor.role
    return {"user": ctx.actor.name, "role": role, "token_id": ctx.actor.token_id,
            "permissions": sorted(p for p, roles in PERMISSIONS.items() if role in roles)}


@router.post("/users", status_code=201)
def create_user(body: UserIn, response: Response, ctx: Ctx = ADMIN) -> dict[str, Any]:
    with ctx.conn.transaction():
        user_id, created = add_user(ctx.conn, body.name, body.role)
        row = one(ctx.conn, f"SELECT {USER_COLUMNS} FROM api_users WHERE user_id = %s",
                  (user_id,))
        if created:
            audit.record(ctx.conn, ctx.actor, ctx.request_id, "user.create",
                         f"user:{body.name}", None, row)
    response.status_code = 201 if created else 200
    return dict(out(row))


@router.get("/users")
def list_users(ctx: Ctx = ADMIN) -> dict[str, Any]:
    return {"items": out(rows(ctx.conn, f"SELECT {USER_COLUMNS} FROM api_users ORDER BY name"))}


@router.patch("/users/{name}")
def patch_user(name: UserPath, body: UserPatch, ctx: Ctx = ADMIN) -> dict[str, Any]:
    """Change a user's role or disable them (their tokens stop working at once)."""
    patch = body.model_dump(exclude_unset=True, exclude_none=True)
    with ctx.conn.transaction():
        before = one(ctx.conn, f"SELECT {USER_COLUMNS} FROM api_users WHERE name = %s "
                               "FOR UPDATE", (name,))
        if before is None:
            raise ApiError(404, "name", f"no user {name!r}")
        if name == ctx.actor.name and (patch.get("disabled") or
                                       patch.get("role", "admin") != "admin"):
            raise ApiError(400, "name", "an admin cannot demote or disable themselves")
        after = one(ctx.conn, f"UPDATE api_users SET role = %s, disabled = %s WHERE name = %s "
                              f"RETURNING {USER_COLUMNS}",
                    (patch.get("role", before["role"]),
                     patch.get("disabled", before["disabled"]), name))
        audit.record(ctx.conn, ctx.actor, ctx.request_id, "user.update", f"user:{name}",
                     before, after)
    return dict(out(after))


@router.post("/users/{name}/tokens", status_code=201)
def new_token(name: UserPath, body: TokenIn, ctx: Ctx = ADMIN) -> dict[str, Any]:
    """A new token for the user: ``token`` is shown now and never again."""
    with ctx.conn.transaction():
        token_id, token = create_token(ctx.conn, name, body.label)
        audit.record(ctx.conn, ctx.actor, ctx.request_id, "token.create", f"user:{name}",
                     None, {"token_id": token_id, "label": body.label})
    return {"token_id": token_id, "user": name, "label": body.label, "token": token}


@router.get("/tokens")
def list_tokens(ctx: Ctx = ADMIN) -> dict[str, Any]:
    """Tokens (never their secret): id, user, label, created, last used, revoked."""
    return {"items": out(rows(ctx.conn, """
        SELECT t.token_id, u.name AS user, t.label, t.created_at, t.last_used_at, t.revoked_at
        FROM api_tokens t JOIN api_users u USING (user_id) ORDER BY t.created_at"""))}


@router.delete("/tokens/{token_id}")
def revoke_token(token_id: Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")],
                 ctx: Ctx = ADMIN) -> dict[str, Any]:
    with ctx.conn.transaction():
        after = one(ctx.conn, "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) "
                              "WHERE token_id = %s RETURNING token_id, revoked_at", (token_id,))
        if after is None:
            raise ApiError(404, "token_id", f"no token {token_id!r}")
        audit.record(ctx.conn, ctx.actor, ctx.request_id, "token.revoke", f"token:{token_id}",
                     None, after)
    return dict(out(after))
