"""The audit log, read-only (admin): who changed what, when, before and after."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from meterflow.api.auth import Ctx, require
from meterflow.api.errors import ApiError
from meterflow.api.routers.common import Limit, Offset, out, rows

router = APIRouter(tags=["audit"])
Text = Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]*$")]


@router.get("/audit")
def audit_log(ctx: Ctx = Depends(require("audit.read")), user: Text = None,
              action: Text = None, target: Text = None, since: datetime | None = None,
              until: datetime | None = None, limit: Limit = 100,
              offset: Offset = 0) -> dict[str, Any]:
    """Newest first; ``target`` like ``account:A-101``; ``since``/``until`` ISO 8601."""
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.utcoffset() is None:
            raise ApiError(422, name, "timestamp has no UTC offset")
    found = rows(ctx.conn, """
        SELECT * FROM audit_log
        WHERE (%(user)s::text IS NULL OR user_name = %(user)s)
          AND (%(action)s::text IS NULL OR action = %(action)s)
          AND (%(target)s::text IS NULL OR target = %(target)s)
          AND (%(since)s::timestamptz IS NULL OR at >= %(since)s)
          AND (%(until)s::timestamptz IS NULL OR at < %(until)s)
        ORDER BY audit_id DESC LIMIT %(limit)s OFFSET %(offset)s""",
                 {"user": user, "action": action, "target": target, "since": since,
                  "until": until, "limit": limit, "offset": offset})
    return {"items": out(found), "limit": limit, "offset": offset}
