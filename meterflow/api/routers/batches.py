"""Batch operations over a selection of accounts or meters, now or at ``run_at``.

Operations: ``topup``, ``set_tariff``, ``disconnect``, ``reconnect``, ``set_thresholds``,
``charge_item`` (the accounts start paying a custom charge item: they become its targets).
The caller needs the permission of the operation itself. A batch is stored with one item
per target and run by the API's runner (:mod:`meterflow.api.runner`); ``GET`` shows the
progress (done, failed, pending of total) and the per-item results. Giving ``batch_id``
makes creation idempotent: the same request again returns the batch (200), another
request under the same id is refused (409). A restricted operator makes batches over
existing accounts or meters of their scope only, and sees and cancels only batches all of
whose targets are in their scope; the runner checks each item again, as the creator is
when it runs (:mod:`meterflow.api.runner`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from psycopg.types.json import Jsonb
from pydantic import Field, model_validator

from meterflow.api import audit
from meterflow.api.auth import PERMISSIONS, Ctx, allowed, require
from meterflow.api.errors import ApiError
from meterflow.api.places import check_existing, refuse
from meterflow.api.routers.common import Limit, Model, Offset, one, out, rows
from meterflow.api.scope import Scope
from meterflow.api.types import Fen, FenOrZero, Id, Note, TariffId

router = APIRouter(tags=["batches"])
READ = Depends(require("read"))
Operation = Literal["topup", "set_tariff", "disconnect", "reconnect", "set_thresholds",
                    "charge_item"]
NEEDS = {"topup": "topup", "set_tariff": "tariffs.write", "disconnect": "control",
         "reconnect": "control", "set_thresholds": "accounts.write",
         "charge_item": "billing.write"}
MAX_ITEMS = 10_000
BatchPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]


class BatchIn(Model):
    batch_id: Id | None = Field(None, description="Optional: makes creation idempotent")
    operation: Operation
    account_ids: list[Id] = Field(default_factory=list, max_length=MAX_ITEMS)
    meter_ids: list[Id] = Field(default_factory=list, max_length=MAX_ITEMS)
    run_at: datetime | None = Field(None, description="ISO 8601 with offset; default now")
    amount: Fen | None = Field(None, description="topup: yuan per account")
    note: Note = ""
    tariff_id: TariffId | None = Field(None, description="set_tariff")
    effective_from: datetime | None = Field(None, description="set_tariff: from when")
    thresholds: list[FenOrZero] | None = Field(None, min_length=3, max_length=3,
                                               description="set_thresholds: levels 1-3")
    overdraft: FenOrZero | None = Field(None, description="set_thresholds: optional")
    item_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]{1,48}$",
                                description="charge_item: the item the accounts pay")
    reason: Note = ""

    @model_validator(mode="after")
    def _shape(self) -> BatchIn:
        if bool(self.account_ids) == bool(self.meter_ids):
            raise ValueError("give account_ids or meter_ids (one of them, not empty)")
        if self.meter_ids and self.operation in ("topup", "set_thresholds", "charge_item"):
            raise ValueError(f"{self.operation} works on account_ids")
        for name, moment in (("run_at", self.run_at), ("effective_from", self.effective_from)):
            if moment is not None and moment.utcoffset() is None:
                raise ValueError(f"{name} has no UTC offset")
        need = {"topup": ("amount", self.amount), "set_tariff": ("tariff_id", self.tariff_id),
                "set_thresholds": ("thresholds", self.thresholds),
                "charge_item": ("item_id", self.item_id)}.get(self.operation)
        if need is not None and need[1] is None:
            raise ValueError(f"{self.operation} needs {need[0]}")
        if self.thresholds is not None and not (
                self.thresholds[0] > self.thresholds[1] > self.thresholds[2]):
            raise ValueError("thresholds must be strictly descending (level 1 highest)")
        return self

    def params(self) -> dict[str, Any]:
        base: dict[str, Any] = {"by": "meter" if self.meter_ids else "account"}
        if self.operation == "topup":
            base |= {"amount_fen": self.amount, "note": self.note}
        elif self.operation == "set_tariff":
            base |= {"tariff_id": self.tariff_id, "effective_from": None
                     if self.effective_from is None else self.effective_from.isoformat()}
        elif self.operation == "set_thresholds":
            base |= {"thresholds_fen": self.thresholds, "overdraft_fen": self.overdraft}
        elif self.operation == "charge_item":
            base |= {"item_id": self.item_id}
        else:
            base |= {"reason": self.reason}
        return base


def batch_scope_sql(alias: str = "b") -> str:
    """A condition: every target of the batch ``alias`` is inside the scope."""
    return (f"(NOT %(scope_on)s OR NOT EXISTS (SELECT 1 FROM batch_items i WHERE "
            f"i.batch_id = {alias}.batch_id AND i.target NOT IN (SELECT sp.id FROM "
            f"scope_places sp WHERE sp.kind = CASE WHEN {alias}.params->>'by' = 'meter' "
            f"THEN 'meter' ELSE 'account' END AND {Scope.sql('sp.site_id', 'sp.building_id')}"
            ")))")


def _in_scope(ctx: Ctx, batch_id: str) -> None:
    """Refuse a batch with a target outside the caller's scope (a missing batch passes)."""
    if not ctx.actor.scope.restricted:
        return
    found = one(ctx.conn, f"SELECT {batch_scope_sql()} AS ok FROM batches b "
                          "WHERE b.batch_id = %(id)s", {"id": batch_id,
                                                        **ctx.actor.scope.params()})
    if found is not None and not found["ok"]:
        raise refuse(ctx.actor, f"batch:{batch_id}", f"batch {batch_id} (some of its targets)")


def _hash(body: BatchIn, targets: list[str]) -> str:
    canon = {"operation": body.operation, "params": body.params(), "targets": targets,
             "run_at": None if body.run_at is None else body.run_at.isoformat()}
    return hashlib.sha256(json.dumps(canon, sort_keys=True).encode()).hexdigest()


@router.post("/batches", status_code=201)
def create_batch(body: BatchIn, response: Response, ctx: Ctx = READ) -> dict[str, Any]:
    """Store a batch and its items; the runner starts it at ``run_at`` (default: now)."""
    need = NEEDS[body.operation]
    if not allowed(ctx.actor.role, need):
        roles = ", ".join(sorted(PERMISSIONS[need]))
        raise ApiError(403, "role", f"{ctx.actor.role} may not run {body.operation} "
                                    f"({need}: {roles})")
    targets = list(dict.fromkeys(body.account_ids or body.meter_ids))
    digest = _hash(body, targets)
    batch_id = body.batch_id or f"b-{uuid.uuid4().hex[:16]}"
    conn = ctx.conn
    _in_scope(ctx, batch_id)
    for target in targets:
        check_existing(conn, ctx.actor, "meter" if body.meter_ids else "account", target)
    with conn.transaction():
        existing = one(conn, "SELECT request_hash FROM batches WHERE batch_id = %s FOR UPDATE",
                       (batch_id,))
        if existing is not None:
            if existing["request_hash"] != digest:
                raise ApiError(409, "batch_id", f"batch {batch_id} exists with another request")
            response.status_code = 200
            response.headers["Idempotent-Replayed"] = "true"
        else:
            actor = {"user_id": ctx.actor.user_id, "name": ctx.actor.name,
                     "role": ctx.actor.role, "token_id": ctx.actor.token_id}
            row = one(conn, "INSERT INTO batches (batch_id, operation, params, request_hash, "
                      "run_at, created_by, actor) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                      "RETURNING *", (batch_id, body.operation, Jsonb(body.params()), digest,
                                      body.run_at or datetime.now(UTC), ctx.actor.name,
                                      Jsonb(actor)))
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO batch_items (batch_id, item, target) "
                                "VALUES (%s, %s, %s)",
                                [(batch_id, i, t) for i, t in enumerate(targets)])
            audit.record(conn, ctx.actor, ctx.request_id, f"batch.{body.operation}",
                         f"batch:{batch_id}", None, {**(row or {}), "targets": targets})
    return progress(ctx, batch_id, None, 100, 0)


def progress(ctx: Ctx, batch_id: str, status: str | None, limit: int,
             offset: int) -> dict[str, Any]:
    batch = one(ctx.conn, "SELECT batch_id, operation, params, status, run_at, created_at, "
                          "created_by, started_at, finished_at FROM batches WHERE batch_id = %s",
                (batch_id,))
    if batch is None:
        raise ApiError(404, "batch_id", f"no batch {batch_id!r}")
    counts = {s: 0 for s in ("pending", "done", "failed")}
    for row in rows(ctx.conn, "SELECT status, count(*) AS n FROM batch_items WHERE "
                              "batch_id = %s GROUP BY status", (batch_id,)):
        counts[row["status"]] = int(row["n"])
    items = rows(ctx.conn, "SELECT item, target, status, result, finished_at FROM batch_items "
                           "WHERE batch_id = %s AND (%s::text IS NULL OR status = %s) "
                           "ORDER BY item LIMIT %s OFFSET %s",
                 (batch_id, status, status, limit, offset))
    total = sum(counts.values())
    return {**out(batch), "progress": {**counts, "total": total,
                                       "finished": counts["done"] + counts["failed"]},
            "items": out(items)}


@router.get("/batches/{batch_id}")
def get_batch(batch_id: BatchPath, ctx: Ctx = READ,
              status: Annotated[Literal["pending", "done", "failed"] | None, Query()] = None,
              limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
    """Progress (done, failed, pending, total) and the items with their results."""
    _in_scope(ctx, batch_id)
    return progress(ctx, batch_id, status, limit, offset)


@router.get("/batches")
def list_batches(ctx: Ctx = READ, limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
    found = rows(ctx.conn, f"""
        SELECT b.batch_id, b.operation, b.status, b.run_at, b.created_by, b.created_at,
               count(i.item) AS total,
               count(i.item) FILTER (WHERE i.status = 'done') AS done,
               count(i.item) FILTER (WHERE i.status = 'failed') AS failed
        FROM batches b LEFT JOIN batch_items i USING (batch_id)
        WHERE {batch_scope_sql()}
        GROUP BY b.batch_id ORDER BY b.created_at DESC LIMIT %(limit)s OFFSET %(offset)s""",
                 {"limit": limit, "offset": offset, **ctx.actor.scope.params()})
    return {"items": out(found), "limit": limit, "offset": offset}


@router.post("/batches/{batch_id}/cancel")
def cancel_batch(batch_id: BatchPath, ctx: Ctx = READ) -> dict[str, Any]:
    """Stop a batch before its remaining items (done items stay done)."""
    conn = ctx.conn
    with conn.transaction():
        before = one(conn, "SELECT batch_id, operation, status FROM batches "
                           "WHERE batch_id = %s FOR UPDATE", (batch_id,))
        if before is None:
            raise ApiError(404, "batch_id", f"no batch {batch_id!r}")
        if not allowed(ctx.actor.role, NEEDS[before["operation"]]):
            raise ApiError(403, "role", f"{ctx.actor.role} may not cancel a "
                                        f"{before['operation']} batch")
        _in_scope(ctx, batch_id)
        if before["status"] in ("done", "cancelled"):
            raise ApiError(409, "batch_id", f"batch {batch_id} is already {before['status']}")
        after = one(conn, "UPDATE batches SET status = 'cancelled', finished_at = now() "
                          "WHERE batch_id = %s RETURNING batch_id, operation, status",
                    (batch_id,))
        audit.record(conn, ctx.actor, ctx.request_id, "batch.cancel", f"batch:{batch_id}",
                     before, after)
    return progress(ctx, batch_id, None, 100, 0)
