"""The audit log, read-only (admin): who changed what, when, before and after."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from meterflow.api.auth import Ctx, require
from meterflow.api.errors import ApiError
from meterflow.api.routers.common import Limit, Offset, out, rows
from meterflow.api.routers.finance import Format, export

router = APIRouter(tags=["audit"])
Text = Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]*$")]


@router.get("/audit", response_model=None)
def audit_log(ctx: Ctx = Depends(require("audit.read")), user: Text = None,
              action: Text = None, target: Text = None, since: datetime | None = None,
              until: datetime | None = None, limit: Limit = 100,
              offset: Offset = 0, format: Format = "json") -> dict[str, Any] | Response:
    """Newest first; ``target`` like ``account:A-101``; ``since``/``until`` ISO 8601;
    ``format=csv`` or ``xlsx`` for a file (before and after as JSON text)."""
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
    if format != "json":
        lines = [{**r, "before": json.dumps(r["before"]), "after": json.dumps(r["after"])}
                 for r in out(found)]
        return export(lines, ["audit_id", "at", "user_name", "role", "token_id", "action",
                              "target", "before", "after", "request_id"], format, "audit")
    return {"items": out(found), "limit": limit, "offset": offset}
