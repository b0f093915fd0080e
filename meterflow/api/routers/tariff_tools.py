"""Tariff tools for people: check a tariff text without storing it (every error with the
line it is on), a stored tariff's outline (bands per season as spans of the day, tiers,
prices), and what a sample consumption would cost under it (pipeline/billing/tariff_view.py).
Nothing here changes anything, so every role may use it."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from contracts.money import yuan_text
from meterflow.api.auth import Ctx, require
from meterflow.api.errors import ApiError
from meterflow.api.routers.common import Model, rows
from meterflow.api.routers.tariffs import TariffPath, body_text
from pipeline.billing import RatingError, TariffBook, TariffError, load_tariff_text
from pipeline.billing.tariff_view import outline, preview, source_line

router = APIRouter(tags=["tariffs"])
READ = Depends(require("read"))
LONGEST = timedelta(days=366)


@router.post("/tariffs/check")
async def check_tariff_text(request: Request, ctx: Ctx = READ) -> dict[str, Any]:
    """Validate a tariff text as ``POST /tariffs`` would, without storing it: ``valid`` and
    the outline, or the error with its ``field``, ``reason`` and ``line``."""
    text = body_text(await request.body(), request.headers.get("content-type", ""))
    try:
        tariff = await run_in_threadpool(load_tariff_text, text)
    except TariffError as exc:
        return {"valid": False, "errors": [{"field": exc.path or "body", "reason": exc.reason,
                                            "line": source_line(text, exc.path)}]}
    return {"valid": True, "outline": outline(tariff)}


def _book(ctx: Ctx, tariff_id: str) -> TariffBook:
    found = rows(ctx.conn, "SELECT body FROM tariffs WHERE tariff_id = %s ORDER BY valid_from",
                 (tariff_id,))
    if not found:
        raise ApiError(404, "tariff_id", f"no tariff {tariff_id!r}")
    try:
        return TariffBook([load_tariff_text(r["body"]) for r in found])
    except TariffError as exc:
        raise ApiError(400, exc.path or "tariff_id", exc.reason) from None


@router.get("/tariffs/{tariff_id}/outline")
def tariff_outline(tariff_id: TariffPath, ctx: Ctx = READ) -> dict[str, Any]:
    """Every version's outline, oldest first."""
    book = _book(ctx, tariff_id)
    return {"tariff_id": tariff_id, "versions": [outline(v) for v in book.versions]}


class Sample(Model):
    start: datetime = Field(description="ISO 8601 with a UTC offset")
    end: datetime = Field(description="ISO 8601 with a UTC offset, after start")
    units: Annotated[Decimal, Field(ge=0, le=Decimal("1e9"), max_digits=18, decimal_places=6,
                                    description="Units consumed (decimal text)")]


@router.post("/tariffs/{tariff_id}/preview")
def tariff_preview(tariff_id: TariffPath, body: Sample, ctx: Ctx = READ) -> dict[str, Any]:
    """What ``units`` over ``[start, end)`` would cost from an empty tier period, spread
    over the interval as the rating core spreads a reading's consumption."""
    for name, moment in (("start", body.start), ("end", body.end)):
        if moment.utcoffset() is None:
            raise ApiError(422, name, "give the time with a UTC offset")
    if body.end <= body.start:
        raise ApiError(422, "end", "must be after start")
    if body.end - body.start > LONGEST:
        raise ApiError(422, "end", f"at most {LONGEST.days} days after start")
    book = _book(ctx, tariff_id)
    try:
        shown = preview(book, body.start, body.end, body.units)
    except (RatingError, ValueError, OverflowError) as exc:
        raise ApiError(400, "start", str(exc)) from None
    return {"tariff_id": tariff_id, "units": f"{shown.units:f}",
            "amount": yuan_text(shown.amount_fen), "amount_fen": shown.amount_fen,
            "by_band": [{"band": b, "units": u, "amount": a}
                        for b, (u, a) in sorted(shown.by_band.items())],
            "by_step": [{"step": s, "units": u, "amount": a}
                        for s, (u, a) in sorted(shown.by_step.items())]}
