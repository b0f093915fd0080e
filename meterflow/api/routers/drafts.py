"""Account-opening drafts: an opening saved half-way (the body of ``POST /accounts`` or a
list of them) and opened again later. A draft is the requester's work, not a change to
accounts: it is validated only when it is opened. Creating, changing and discarding a
draft are audited; a restricted user sees only their own drafts."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from psycopg.types.json import Jsonb
from pydantic import Field, field_validator

from meterflow.api import audit
from meterflow.api.auth import Ctx, require
from meterflow.api.errors import ApiError
from meterflow.api.routers.common import Model, one, out, rows

router = APIRouter(tags=["accounts"])
WRITE = Depends(require("accounts.write"))
DraftPath = Annotated[int, Path(ge=1)]


MAX_BODY = 256 * 1024


class DraftIn(Model):
    title: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")
    body: dict[str, Any] = Field(description="What the opening form holds (any JSON object)")

    @field_validator("body")
    @classmethod
    def _storable(cls, value: dict[str, Any]) -> dict[str, Any]:
        text = json.dumps(value)
        if len(text) > MAX_BODY:
            raise ValueError(f"larger than {MAX_BODY} bytes as JSON")
        if "\\u0000" in text:  # PostgreSQL's jsonb cannot hold NUL
            raise ValueError("must not contain NUL characters")
        return value


def _mine(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    return ("(NOT %(own)s OR created_by = %(me)s)",
            {"own": ctx.actor.scope.restricted, "me": ctx.actor.name})


def _find(ctx: Ctx, draft_id: int, lock: bool = False) -> dict[str, Any]:
    cond, params = _mine(ctx)
    found = one(ctx.conn, f"SELECT * FROM account_drafts WHERE draft_id = %(id)s AND {cond}"
                          + (" FOR UPDATE" if lock else ""), {"id": draft_id, **params})
    if found is None:
        raise ApiError(404, "draft_id", f"no draft {draft_id}")
    return found


@router.get("/account-drafts")
def list_drafts(ctx: Ctx = WRITE) -> dict[str, Any]:
    """Saved drafts, newest first (without their bodies)."""
    cond, params = _mine(ctx)
    return {"items": out(rows(ctx.conn, "SELECT draft_id, title, created_by, created_at, "
                                        f"updated_at FROM account_drafts WHERE {cond} "
                                        "ORDER BY updated_at DESC LIMIT 200", params))}


@router.get("/account-drafts/{draft_id}")
def get_draft(draft_id: DraftPath, ctx: Ctx = WRITE) -> dict[str, Any]:
    return dict(out(_find(ctx, draft_id)))


@router.post("/account-drafts", status_code=201)
def save_draft(body: DraftIn, ctx: Ctx = WRITE) -> dict[str, Any]:
    with ctx.conn.transaction():
        row = one(ctx.conn, "INSERT INTO account_drafts (title, body, created_by) "
                            "VALUES (%s, %s, %s) RETURNING *",
                  (body.title, Jsonb(body.body), ctx.actor.name))
        assert row is not None
        audit.record(ctx.conn, ctx.actor, ctx.request_id, "draft.put",
                     f"draft:{row['draft_id']}", None, row)
    return dict(out(row))


@router.put("/account-drafts/{draft_id}")
def update_draft(draft_id: DraftPath, body: DraftIn, ctx: Ctx = WRITE) -> dict[str, Any]:
    with ctx.conn.transaction():
        before = _find(ctx, draft_id, lock=True)
        row = one(ctx.conn, "UPDATE account_drafts SET title = %s, body = %s, updated_at = now() "
                            "WHERE draft_id = %s RETURNING *",
                  (body.title, Jsonb(body.body), draft_id))
        audit.record(ctx.conn, ctx.actor, ctx.request_id, "draft.put", f"draft:{draft_id}",
                     before, row)
    return dict(out(row))


@router.delete("/account-drafts/{draft_id}")
def discard_draft(draft_id: DraftPath, ctx: Ctx = WRITE) -> dict[str, Any]:
    with ctx.conn.transaction():
        before = _find(ctx, draft_id, lock=True)
        ctx.conn.execute("DELETE FROM account_drafts WHERE draft_id = %s", (draft_id,))
        audit.record(ctx.conn, ctx.actor, ctx.request_id, "draft.delete", f"draft:{draft_id}",
                     before, None)
    return {"draft_id": draft_id, "deleted": True}
