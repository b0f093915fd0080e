"""Notifications (SMS, voice, e-mail, WeChat, webhook) sent to people, with every delivery
attempt and its outcome (the notifier's store, connectors/notify/store.py). A restricted
operator sees those of the accounts (or, without an account, the meters) of their scope."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from connectors.notify.store import list_notifications
from meterflow.api.auth import Ctx, require
from meterflow.api.errors import ApiError
from meterflow.api.places import check
from meterflow.api.routers.common import QueryId
from meterflow.api.routers.finance import Format, export
from meterflow.api.scope import in_scope_sql

router = APIRouter(tags=["notifications"])
READ = Depends(require("read"))
Status = Literal["pending", "held", "delivered", "failed"]
EXPORTED = ["created_at", "notification_id", "event_kind", "level", "account_id", "meter_id",
            "channel", "recipient", "status", "attempts", "delivered_at", "last_error"]


@router.get("/notifications", response_model=None)
def notifications(
    ctx: Ctx = READ,
    account_id: QueryId = None,
    status: Status | None = None,
    since: Annotated[datetime | None, Query(description="ISO 8601 with a UTC offset")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Newest first, at most")] = 100,
    format: Format = "json",
) -> dict[str, Any] | Response:
    """Newest first, each with ``attempts_log`` (attempt, at, outcome, latency, detail);
    ``format=csv`` or ``xlsx`` for a file (without the attempts)."""
    if since is not None and since.tzinfo is None:
        raise ApiError(422, "since", "give the time with a UTC offset, e.g. 2026-07-01T08:00+08:00")
    check(ctx.conn, ctx.actor, "account", account_id)
    scoped = (f"(CASE WHEN coalesce(account_id, '') <> '' THEN "
              f"{in_scope_sql('account', 'account_id')} "
              f"ELSE {in_scope_sql('meter', 'meter_id')} END)")
    items = list_notifications(ctx.conn, account_id=account_id, status=status, since=since,
                               limit=limit, where=scoped, params=ctx.actor.scope.params())
    if format != "json":
        return export(items, EXPORTED, format, "notifications")
    return {"items": items}
