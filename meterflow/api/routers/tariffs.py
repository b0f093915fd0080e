"""Tariffs: upload a version (the billing core's file format, YAML or JSON), list, show,
and assign one to meters or to an account's meters from an effective moment.

A version is ``(tariff id, valid_from)``; its body is validated by the billing core's own
loader, whose error names the field. Uploading the same text again changes nothing (200);
other text for a stored version is refused (409): give the new version its own valid_from.

Assignments are stored with ``effective_from``; the workers take the newest assignment
whose moment has passed (view ``meter_tariffs``, read by pipeline/config_source.py), so an
assignment dated in the future changes no charge before that moment. An assignment that is
already due also sets ``meters.tariff_id``, so every reader sees the same tariff.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import Field, model_validator
from starlette.concurrency import run_in_threadpool

from meterflow.api import audit
from meterflow.api.auth import Ctx, require
from meterflow.api.errors import ApiError
from meterflow.api.places import check
from meterflow.api.routers.common import Model, one, out, rows
from meterflow.api.routers.meters import check_tariff
from meterflow.api.types import TARIFF_ID_RE, Id
from pipeline.billing import TariffError, load_tariff_text

router = APIRouter(tags=["tariffs"])
READ = Depends(require("read"))
WRITE = Depends(require("tariffs.write"))
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml",
              "text/plain")
MAX_BODY = 256 * 1024
TariffPath = Annotated[str, Path(pattern=TARIFF_ID_RE, description="Tariff id")]

UPLOAD_DOC = {"requestBody": {"required": True, "content": {
    "application/yaml": {"schema": {"type": "string"}},
    "application/json": {"schema": {"type": "object"}},
}}}


def body_text(raw: bytes, content_type: str) -> str:
    """The tariff text of a request body (YAML, or JSON checked to be an object)."""
    if len(raw) > MAX_BODY:
        raise ApiError(413, "body", f"larger than {MAX_BODY} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(422, "body", "not UTF-8 text") from None
    if "\x00" in text:
        raise ApiError(422, "body", "contains NUL characters")
    media = content_type.split(";")[0].strip().lower()
    if media == "application/json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ApiError(422, "body", f"not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ApiError(422, "body", "a tariff is a JSON object")
    elif media not in YAML_TYPES:
        raise ApiError(415, "Content-Type", f"{media or 'none'}: send application/yaml "
                                            "or application/json")
    return text


@router.post("/tariffs", status_code=201, openapi_extra=UPLOAD_DOC)
async def upload_tariff(request: Request, response: Response,
                        ctx: Ctx = WRITE) -> dict[str, Any]:
    """Store one tariff version (201); the same text again is 200; other text 409."""
    text = body_text(await request.body(), request.headers.get("content-type", ""))
    created, stored = await run_in_threadpool(_store, ctx, text)
    response.status_code = 201 if created else 200
    return stored


def _store(ctx: Ctx, text: str) -> tuple[bool, dict[str, Any]]:
    try:
        tariff = load_tariff_text(text)
    except TariffError as exc:
        raise ApiError(422, exc.path or "body", exc.reason) from None
    conn = ctx.conn
    with conn.transaction():
        row = one(conn, "INSERT INTO tariffs (tariff_id, valid_from, body) VALUES "
                  "(%s, coalesce(%s::date, '-infinity'::date), %s) ON CONFLICT DO NOTHING "
                  "RETURNING tariff_id, valid_from::text, created_at",
                  (tariff.id, tariff.valid_from, text))
        if row is None:
            stored = one(conn, "SELECT body FROM tariffs WHERE tariff_id = %s AND "
                         "valid_from = coalesce(%s::date, '-infinity'::date)",
                         (tariff.id, tariff.valid_from))
            if stored is None or stored["body"] != text:
                since = tariff.valid_from or "-infinity"
                raise ApiError(409, "valid_from", f"tariff {tariff.id} valid from {since} is "
                               "already stored with another text; give the new version its "
                               "own valid_from")
        else:
            audit.record(conn, ctx.actor, ctx.request_id, "tariff.upload",
                         f"tariff:{tariff.id}", None, {**row, "body": text})
    return row is not None, _describe(tariff.id, str(tariff.valid_from or "-infinity"),
                                      tariff.commodity, tariff.kind)


def _describe(tariff_id: str, valid_from: str, commodity: str, kind: str) -> dict[str, Any]:
    return {"tariff_id": tariff_id, "valid_from": valid_from, "commodity": commodity,
            "kind": kind}


@router.get("/tariffs")
def list_tariffs(ctx: Ctx = READ) -> dict[str, Any]:
    """Every tariff version: id, valid_from, commodity and kind (flat, tou, tiered)."""
    items = []
    for row in rows(ctx.conn, "SELECT tariff_id, valid_from::text AS valid_from, body "
                              "FROM tariffs ORDER BY tariff_id, valid_from"):
        try:
            tariff = load_tariff_text(row["body"])
            commodity, kind = tariff.commodity, tariff.kind
        except TariffError:
            commodity, kind = "", "invalid"
        items.append(_describe(row["tariff_id"], row["valid_from"], commodity, kind))
    return {"items": items}


@router.get("/tariffs/{tariff_id}")
def get_tariff(tariff_id: TariffPath, ctx: Ctx = READ) -> dict[str, Any]:
    """The versions of one tariff with their text."""
    versions = rows(ctx.conn, "SELECT valid_from::text AS valid_from, body, created_at "
                              "FROM tariffs WHERE tariff_id = %s ORDER BY valid_from",
                    (tariff_id,))
    if not versions:
        raise ApiError(404, "tariff_id", f"no tariff {tariff_id!r}")
    return {"tariff_id": tariff_id, "versions": out(versions)}


class Assignment(Model):
    meter_ids: list[Id] = Field(default_factory=list, max_length=1000)
    account_id: Id | None = Field(None, description="All of the account's meters of the "
                                                    "tariff's commodity")
    effective_from: datetime | None = Field(None, description="ISO 8601 with offset; "
                                                              "default: now")

    @model_validator(mode="after")
    def _some(self) -> Assignment:
        if not self.meter_ids and self.account_id is None:
            raise ValueError("give meter_ids or account_id")
        if self.effective_from is not None and self.effective_from.utcoffset() is None:
            raise ValueError("effective_from has no UTC offset")
        return self


def assign(ctx: Ctx, tariff_id: str, meter_ids: list[str], account_id: str | None,
           effective_from: datetime | None) -> list[dict[str, Any]]:
    """Assign in the caller's transaction; return the assignment rows (also for batches)."""
    conn = ctx.conn
    tariff = one(conn, "SELECT body FROM tariffs WHERE tariff_id = %s "
                       "ORDER BY valid_from DESC LIMIT 1", (tariff_id,))
    if tariff is None:
        raise ApiError(404, "tariff_id", f"no tariff {tariff_id!r}")
    commodity = load_tariff_text(tariff["body"]).commodity
    targets = list(dict.fromkeys(meter_ids))
    if account_id is not None:
        check(conn, ctx.actor, "account", account_id)
        if one(conn, "SELECT 1 AS x FROM accounts WHERE account_id = %s", (account_id,)) is None:
            raise ApiError(404, "account_id", f"no account {account_id!r}")
        targets += [r["meter_id"] for r in rows(
            conn, "SELECT meter_id FROM meters WHERE account_id = %s AND commodity = %s "
                  "AND removed_at IS NULL ORDER BY meter_id", (account_id, commodity))
            if r["meter_id"] not in targets]
        if not targets:
            raise ApiError(400, "account_id", f"account {account_id} has no {commodity} meter")
    at = (effective_from or datetime.now(UTC)).astimezone(UTC)
    due = at <= datetime.now(UTC)
    made = []
    for meter_id in targets:
        check(conn, ctx.actor, "meter", meter_id)
        meter = one(conn, "SELECT commodity FROM meters WHERE meter_id = %s FOR UPDATE",
                    (meter_id,))
        if meter is None:
            raise ApiError(404, "meter_ids", f"no meter {meter_id!r}")
        check_tariff(ctx, tariff_id, meter["commodity"], "tariff_id")
        row = one(conn, "INSERT INTO tariff_assignments (meter_id, tariff_id, effective_from, "
                  "created_by) VALUES (%s, %s, %s, %s) RETURNING *",
                  (meter_id, tariff_id, at, ctx.actor.name))
        if due:
            conn.execute("UPDATE meters SET tariff_id = %s WHERE meter_id = %s",
                         (tariff_id, meter_id))
        assert row is not None
        audit.record(conn, ctx.actor, ctx.request_id, "tariff.assign", f"meter:{meter_id}",
                     None, row)
        made.append(row)
    return made


@router.post("/tariffs/{tariff_id}/assignments", status_code=201)
def assign_tariff(tariff_id: TariffPath, body: Assignment, ctx: Ctx = WRITE) -> dict[str, Any]:
    """Assign the tariff to meters (or an account's meters) from ``effective_from``."""
    with ctx.conn.transaction():
        made = assign(ctx, tariff_id, body.meter_ids, body.account_id, body.effective_from)
    return {"assignments": out(made)}
