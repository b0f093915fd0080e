"""Postpaid bills and arrears (docs/api.md, "Property billing").

Finance staff run billing and move bills along (``billing.write``): a run drafts a bill per
postpaid account and period (idempotent); ``confirm`` (optionally with adjustments, posted
to the ledger as reversing adjustments), ``issue`` (the tenant is notified) and ``void``
(with a reason) are audited with the bill before and after. Bills, one bill's printable
page, the arrears list and income by kind are read with ``finance.read``; lists export as
CSV or XLSX with a TOTAL row. A restricted user reaches the bills of their accounts only.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import Field, model_validator

from meterflow.api import audit, bill_page
from meterflow.api.auth import Ctx, require
from meterflow.api.errors import ApiError
from meterflow.api.places import check, check_existing
from meterflow.api.routers.common import Limit, Model, Offset, QueryId, one, out, rows, yuan
from meterflow.api.routers.finance import FIN, Format, From, To, TzQ, export
from meterflow.api.routers.spans import span
from meterflow.api.scope import in_scope_sql
from meterflow.api.types import Day, Id, Note
from meterflow.exports import with_total
from pipeline.billing.postpaid import STATES, BillError
from services.property import bills as store

router = APIRouter(tags=["property billing"])
WRITE = Depends(require("billing.write"))
BillId = Annotated[str, Path(pattern=r"^[A-Za-z0-9._:-]{1,128}$")]
SIGNED_YUAN_RE = r"^-?[0-9]{1,13}(\.[0-9]{1,2})?$"
SCOPED = in_scope_sql("account", "account_id")
MONEY = ("opening", "charges", "payments", "closing", "paid")


def _refused(exc: BillError) -> ApiError:
    field, _, reason = str(exc).partition(": ")
    return ApiError(409 if field in ("state", "bill_id") else 422, field, reason or str(exc))


def _shown(bill: dict[str, Any]) -> dict[str, Any]:
    shown = out(bill)
    for name in MONEY:
        shown[name] = yuan(bill[f"{name}_fen"])
    shown["previous_arrears_fen"] = max(-int(bill["opening_fen"]), 0)
    shown["amount_due_fen"] = max(-int(bill["closing_fen"]), 0)
    shown["outstanding_fen"] = int(bill["charges_fen"]) - int(bill["paid_fen"])
    for name in ("previous_arrears", "amount_due", "outstanding"):
        shown[name] = yuan(shown[f"{name}_fen"])
    return shown


def _bill(ctx: Ctx, bill_id: str) -> dict[str, Any]:
    found = one(ctx.conn, "SELECT * FROM bills WHERE bill_id = %s", (bill_id,))
    if found is None:
        raise ApiError(404, "bill_id", f"no bill {bill_id!r}")
    check(ctx.conn, ctx.actor, "account", str(found["account_id"]))
    return found


class BillRunIn(Model):
    start: Day = Field(description="first local day of the period")
    end: Day = Field(description="the day after the period's last (exclusive)")
    site_id: Id | None = None
    account_ids: list[Id] | None = Field(None, max_length=10_000)
    due_days: int = Field(15, ge=0, le=365)

    @model_validator(mode="after")
    def _span(self) -> BillRunIn:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if (self.end - self.start).days > 366:
            raise ValueError("a billing period is at most 366 days")
        return self


@router.post("/bills/runs", status_code=201)
def run(body: BillRunIn, ctx: Ctx = WRITE) -> dict[str, Any]:
    """Draft bills for the postpaid accounts of a site (or those named, or all): once per
    account and period, so a run started again adds nothing."""
    if ctx.actor.scope.restricted and body.site_id is None and body.account_ids is None:
        raise ApiError(422, "site_id", "name a site or accounts of your scope")
    check(ctx.conn, ctx.actor, "site", body.site_id)
    for account in body.account_ids or []:
        check_existing(ctx.conn, ctx.actor, "account", account)
    try:
        done = store.run_bills(ctx.conn, body.start, body.end, due_days=body.due_days,
                               site_id=body.site_id, account_ids=body.account_ids)
    except BillError as exc:
        raise _refused(exc) from None
    result = {"run_id": done.run_id, "bills": done.made, "already": done.already,
              "waiting": done.waiting}
    with ctx.conn.transaction():
        audit.record(ctx.conn, ctx.actor, ctx.request_id, "bill.run",
                     f"site:{body.site_id or '*'}", None, result)
    return result


StateQ = Annotated[Literal[STATES] | None, Query(description="filter by state")]  # type: ignore[valid-type]


@router.get("/bills", response_model=None)
def list_bills(ctx: Ctx = FIN, account_id: QueryId = None, state: StateQ = None,
               start: From = None, end: To = None, format: Format = "json",
               limit: Limit = 1000, offset: Offset = 0) -> dict[str, Any] | Response:
    """Bills, newest period first; CSV and XLSX end with a TOTAL row."""
    check(ctx.conn, ctx.actor, "account", account_id)
    found = rows(ctx.conn, "SELECT * FROM bills WHERE (%(a)s::text IS NULL OR account_id = "
                 "%(a)s) AND (%(s)s::text IS NULL OR state = %(s)s) AND (%(f)s::date IS NULL "
                 "OR period_start >= %(f)s) AND (%(t)s::date IS NULL OR period_start <= %(t)s) "
                 f"AND {SCOPED} ORDER BY period_start DESC, account_id LIMIT %(limit)s "
                 "OFFSET %(offset)s", {"a": account_id, "s": state, "f": start, "t": end,
                                       "limit": limit, "offset": offset,
                                       **ctx.actor.scope.params()})
    items = [_shown(b) for b in found]
    if format == "json":
        return {"items": items, "limit": limit, "offset": offset}
    columns = ["bill_id", "account_id", "period_start", "period_end", "state", "due_date",
               "previous_arrears", "charges", "payments", "amount_due", "paid",
               "previous_arrears_fen", "charges_fen", "payments_fen", "amount_due_fen",
               "paid_fen"]
    return export(with_total(items, columns, "bill_id"), columns, format, "bills")


@router.get("/bills/{bill_id}")
def get_bill(bill_id: BillId, ctx: Ctx = FIN) -> dict[str, Any]:
    """One bill with its lines (their sum is the bill's charges)."""
    bill = _shown(_bill(ctx, bill_id))
    lines = rows(ctx.conn, "SELECT line, kind, label, band, step, units, amount_fen, ref FROM "
                 "bill_lines WHERE bill_id = %s ORDER BY line", (bill_id,))
    bill["lines"] = [{**out(ln), "amount": yuan(ln["amount_fen"])} for ln in lines]
    return bill


@router.get("/bills/{bill_id}/print", response_class=HTMLResponse)
def print_bill(bill_id: BillId, ctx: Ctx = FIN,
               lang: Annotated[Literal["zh", "en"], Query()] = "zh") -> HTMLResponse:
    """One bill as a printable page."""
    bill = _bill(ctx, bill_id)
    lines = rows(ctx.conn, "SELECT * FROM bill_lines WHERE bill_id = %s ORDER BY line",
                 (bill_id,))
    name = one(ctx.conn, "SELECT name FROM accounts WHERE account_id = %s",
               (bill["account_id"],))
    return HTMLResponse(bill_page.render(bill, lines, str(name["name"]) if name else "", lang))


class AdjustmentIn(Model):
    amount: str = Field(pattern=SIGNED_YUAN_RE, description="yuan; > 0 adds to the bill, "
                        "< 0 takes off")
    reason: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]


class ConfirmIn(Model):
    adjustments: list[AdjustmentIn] = Field(default_factory=list, max_length=50)


def _move(ctx: Ctx, bill_id: str, action: str, reason: str = "") -> dict[str, Any]:
    try:
        with ctx.conn.transaction():
            before, after = store.transition(ctx.conn, bill_id, action, reason)
            audit.record(ctx.conn, ctx.actor, ctx.request_id, f"bill.{action}",
                         f"bill:{bill_id}", before, after)
    except BillError as exc:
        raise _refused(exc) from None
    return _shown(after)


@router.post("/bills/{bill_id}/confirm")
def confirm(bill_id: BillId, body: ConfirmIn, ctx: Ctx = WRITE) -> dict[str, Any]:
    """Confirm a draft, with adjustments as reversing ledger entries and bill lines."""
    _bill(ctx, bill_id)
    adjustments = [store.Adjustment(int(Decimal(a.amount).scaleb(2)), a.reason)
                   for a in body.adjustments]
    if any(a.amount_fen == 0 for a in adjustments):
        raise ApiError(422, "adjustments", "an adjustment must not be zero")
    try:
        store.post_adjustments(ctx.conn, bill_id, adjustments, ctx.actor.name)
        with ctx.conn.transaction():
            if adjustments:
                store.apply_adjustments(ctx.conn, bill_id, adjustments)
            before, after = store.transition(ctx.conn, bill_id, "confirm")
            audit.record(ctx.conn, ctx.actor, ctx.request_id, "bill.confirm",
                         f"bill:{bill_id}", before, {**after, "adjustments": [
                             {"amount_fen": a.amount_fen, "reason": a.reason}
                             for a in adjustments]})
    except BillError as exc:
        raise _refused(exc) from None
    return _shown(after)


@router.post("/bills/{bill_id}/issue")
def issue(bill_id: BillId, ctx: Ctx = WRITE) -> dict[str, Any]:
    """Issue a confirmed bill; the tenant is notified (``bill_issued``)."""
    _bill(ctx, bill_id)
    return _move(ctx, bill_id, "issue")


class VoidIn(Model):
    reason: Annotated[Note, Field(min_length=1)]


@router.post("/bills/{bill_id}/void")
def void(bill_id: BillId, body: VoidIn, ctx: Ctx = WRITE) -> dict[str, Any]:
    """Void a bill with a reason; its period may then be billed again."""
    _bill(ctx, bill_id)
    return _move(ctx, bill_id, "void", body.reason)


@router.get("/finance/arrears", response_model=None)
def arrears(ctx: Ctx = FIN, account_id: QueryId = None, format: Format = "json",
            limit: Limit = 1000, offset: Offset = 0) -> dict[str, Any] | Response:
    """What every open bill still asks for, oldest first, and the total."""
    check(ctx.conn, ctx.actor, "account", account_id)
    found = rows(ctx.conn, "SELECT * FROM bill_arrears WHERE (%(a)s::text IS NULL OR "
                 f"account_id = %(a)s) AND {SCOPED} ORDER BY period_start, bill_id "
                 "LIMIT %(limit)s OFFSET %(offset)s",
                 {"a": account_id, "limit": limit, "offset": offset,
                  **ctx.actor.scope.params()})
    items = [{**out(r), "outstanding": yuan(r["outstanding_fen"])} for r in found]
    columns = ["bill_id", "account_id", "account_name", "period_start", "period_end",
               "due_date", "state", "outstanding", "charges_fen", "paid_fen",
               "outstanding_fen"]
    if format != "json":
        return export(with_total(items, columns, "bill_id"), columns, format, "arrears")
    total = sum(int(i["outstanding_fen"]) for i in items)
    return {"items": items, "total_fen": total, "total": yuan(total), "limit": limit,
            "offset": offset}


INCOME = """
SELECT kind, label, sum(amount_fen)::bigint AS amount_fen, sum(entries)::bigint AS entries
FROM income_by_kind(%(begin)s, %(stop)s) i
WHERE (%(a)s::text IS NULL OR account_id = %(a)s) AND {scoped}
GROUP BY kind, label ORDER BY kind, label
"""


@router.get("/finance/income-by-kind", response_model=None)
def income_by_kind(ctx: Ctx = FIN, start: From = None, end: To = None,
                   tz: TzQ = "Asia/Shanghai", account_id: QueryId = None,
                   format: Format = "json") -> dict[str, Any] | Response:
    """Income over local days by kind: electricity, water, each charge item by name,
    apportionment, and money received (top-ups, refunds, adjustments); and the arrears."""
    _, _, begin, stop = span(start, end, tz)
    check(ctx.conn, ctx.actor, "account", account_id)
    params = {"begin": begin, "stop": stop, "a": account_id, **ctx.actor.scope.params()}
    found = rows(ctx.conn, INCOME.format(scoped=SCOPED), params)
    items = [{**out(r), "amount": yuan(r["amount_fen"])} for r in found]
    owed = one(ctx.conn, "SELECT coalesce(sum(outstanding_fen), 0) AS fen FROM bill_arrears "
               f"WHERE (%(a)s::text IS NULL OR account_id = %(a)s) AND {SCOPED}", params)
    arrears_fen = int(owed["fen"]) if owed else 0
    if format != "json":
        columns = ["kind", "label", "amount", "amount_fen", "entries"]
        return export(with_total(items, columns, "kind"), columns, format, "income_by_kind")
    return {"items": items, "arrears_fen": arrears_fen, "arrears": yuan(arrears_fen)}

