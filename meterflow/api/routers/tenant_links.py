"""Tenant access links of an account (docs/tenant.md): staff create one (the URL with its
token is answered once; only its hash is kept), list them, and revoke one at once. Each
change is audited; a restricted operator handles the accounts of their scope only."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import Field

from meterflow.api import audit
from meterflow.api.auth import Ctx, require
from meterflow.api.errors import not_found
from meterflow.api.places import check
from meterflow.api.routers.common import Model, PathId
from meterflow.settings import Settings
from services.tenant import links

router = APIRouter(tags=["tenant links"])
LinkId = Annotated[str, Path(pattern=r"^L[0-9a-f]{16}$", description="L and 16 hex digits")]


class LinkIn(Model):
    days: int | None = Field(None, ge=1, le=3650, description="Lifetime; default: the "
                             "setting METERFLOW_TENANT_LINK_TTL_DAYS")
    label: str = Field("", max_length=200, description="What it is for (room, tenant)")


def _link(link: links.Link) -> dict[str, Any]:
    return {"link_id": link.link_id, "account_id": link.account_id, "label": link.label,
            "expires_at": link.expires_at, "revoked_at": link.revoked_at}


def _account(ctx: Ctx, account_id: str) -> None:
    check(ctx.conn, ctx.actor, "account", account_id)
    if ctx.conn.execute("SELECT 1 FROM accounts WHERE account_id = %s",
                        (account_id,)).fetchone() is None:
        raise not_found("account_id", f"account {account_id!r}")


@router.post("/accounts/{account_id}/tenant-links", status_code=201)
def create(account_id: PathId, body: LinkIn, request: Request,
           ctx: Ctx = Depends(require("accounts.write"))) -> dict[str, Any]:
    """A new link; ``url`` (with the token) is shown in this answer only."""
    settings: Settings = request.app.state.settings
    _account(ctx, account_id)
    with ctx.conn.transaction():
        link, token = links.create_link(
            ctx.conn, account_id, timedelta(days=body.days or settings.tenant_link_ttl_days),
            ctx.actor.name, body.label)
        audit.record(ctx.conn, ctx.actor, ctx.request_id, "tenant_link.create",
                     f"account:{account_id}", None, _link(link))
    return {**_link(link), "url": f"{settings.tenant_base_url.rstrip('/')}/t/{token}"}


@router.get("/accounts/{account_id}/tenant-links")
def listed(account_id: PathId, ctx: Ctx = Depends(require("read"))) -> dict[str, Any]:
    """The account's links, revoked and expired ones too; never their tokens."""
    _account(ctx, account_id)
    return {"items": [_link(link) for link in links.links_of(ctx.conn, account_id)]}


@router.post("/accounts/{account_id}/tenant-links/{link_id}/revoke", status_code=204)
def revoke(account_id: PathId, link_id: LinkId,
           ctx: Ctx = Depends(require("accounts.write"))) -> Response:
    """Revoke at once: the link's next request is refused."""
    _account(ctx, account_id)
    with ctx.conn.transaction():
        found = ctx.conn.execute("SELECT 1 FROM tenant_links WHERE link_id = %s AND "
                                 "account_id = %s", (link_id, account_id)).fetchone()
        if found is None or not links.revoke(ctx.conn, link_id, ctx.actor.name):
            raise not_found("link_id", f"live link {link_id!r} of this account")
        audit.record(ctx.conn, ctx.actor, ctx.request_id, "tenant_link.revoke",
                     f"tenant_link:{link_id}", None, {"account_id": account_id})
    return Response(status_code=204)
