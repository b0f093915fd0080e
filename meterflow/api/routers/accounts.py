"""Accounts: open one (one or many meters, tariffs, thresholds, overdraft, keep-supply),
change its rules, show it with its balance, and open a whole file of them at once.

Opening is idempotent (the same request again changes nothing, 200) and refuses a request
that disagrees with what is stored (409 naming the field). The CSV import validates every
row before anything is written and opens all accounts in one transaction; initial top-ups
follow, each with the deterministic key ``open:<account>:initial``, so re-uploading the
same file opens and credits nothing twice. A restricted operator opens accounts only in a
room of their scope, with meters and customers that are theirs or placed nowhere yet.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import Field

from meterflow.api import audit
from meterflow.api.account_request import AccountRequest, ImportErrors, ImportRow, parse_csv
from meterflow.api.auth import Ctx, require
from meterflow.api.errors import ApiError
from meterflow.api.places import check, check_claim
from meterflow.api.routers.common import Limit, Model, Offset, PathId, page, rows, yuan
from meterflow.api.routers.payments import pay
from meterflow.api.scope import Scope
from meterflow.api.types import FenOrZero, Id, Name
from pipeline.configuration import wallet_config
from services.accounts.changes import (
    AccountExtras,
    account_row,
    describe,
    open_with_extras,
    stored_tariff,
)
from services.accounts.spec import InvalidAccount, build_spec
from services.accounts.store import AccountConflict

router = APIRouter(tags=["accounts"])
READ = Depends(require("read"))
WRITE = Depends(require("accounts.write"))
OptId = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]


def _open(ctx: Ctx, req: AccountRequest) -> tuple[dict[str, Any], bool]:
    """Open one account in the caller's transaction; audit it; return (row, created)."""
    conn = ctx.conn
    check(conn, ctx.actor, "account", req.account_id)
    for meter in req.meters:
        check_claim(conn, ctx.actor, "meter", meter.meter_id)
    check_claim(conn, ctx.actor, "customer", req.customer_id)
    tariffs = tuple(stored_tariff(conn, t) for t in dict.fromkeys(req.tariffs))
    spec = build_spec(req.account_id, req.name, tuple(m.spec() for m in req.meters), tariffs,
                      req.wallet())
    policy = req.keep_supply.policy() if req.keep_supply else None
    before = account_row(conn, req.account_id, lock=True)
    result = open_with_extras(conn, spec, AccountExtras(
        req.room_id, req.customer_id, req.reconnect_above, policy))
    after = account_row(conn, req.account_id)
    check(conn, ctx.actor, "account", req.account_id)  # opened where the scope reaches
    if result.created or result.meters_added or result.tariffs_added:
        audit.record(conn, ctx.actor, ctx.request_id, "account.open",
                     f"account:{req.account_id}", before,
                     {**(after or {}), "meters_added": result.meters_added})
    return after or {}, result.created


@router.post("/accounts", status_code=201)
def open_account(body: AccountRequest, response: Response, ctx: Ctx = WRITE) -> dict[str, Any]:
    """Open an account with its meters and tariffs (201), or confirm it (200, nothing new)."""
    with ctx.conn.transaction():
        _, created = _open(ctx, body)
    response.status_code = 201 if created else 200
    return describe(ctx.conn, body.account_id)


@router.get("/accounts")
def list_accounts(ctx: Ctx = READ, room_id: OptId = None, customer_id: OptId = None,
                  limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
    """Accounts with their balance, alarm level and supply (from the pipeline)."""
    check(ctx.conn, ctx.actor, "room", room_id)
    check(ctx.conn, ctx.actor, "customer", customer_id)
    found = rows(ctx.conn, f"""
        SELECT a.account_id, a.name, a.billing_mode, a.room_id, a.customer_id,
               b.balance_fen, coalesce(b.alarm_level, 0) AS alarm_level,
               coalesce(b.supply, 'connected') AS supply, b.updated_at AS as_of
        FROM accounts a LEFT JOIN balances b USING (account_id)
        JOIN account_places p USING (account_id)
        WHERE (%(room)s::text IS NULL OR a.room_id = %(room)s)
          AND (%(customer)s::text IS NULL OR a.customer_id = %(customer)s)
          AND {Scope.sql("p.site_id", "p.building_id")}
        ORDER BY a.account_id LIMIT %(limit)s OFFSET %(offset)s""",
        {"room": room_id, "customer": customer_id, "limit": limit, "offset": offset,
         **ctx.actor.scope.params()})
    for row in found:
        row["balance"] = yuan(row["balance_fen"])
    return page(found, limit, offset)


@router.get("/accounts/{account_id}")
def get_account(account_id: PathId, ctx: Ctx = READ) -> dict[str, Any]:
    """Balance (yuan text and fen), alarm level, supply, meters, rules, pending payments."""
    check(ctx.conn, ctx.actor, "account", account_id)
    return describe(ctx.conn, account_id)


class AccountPatch(Model):
    name: Name | None = None
    billing_mode: Literal["prepaid", "postpaid"] | None = None
    thresholds: list[FenOrZero] | None = Field(None, min_length=3, max_length=3)
    overdraft: FenOrZero | None = None
    reconnect_above: FenOrZero | None = None
    room_id: Id | None = None
    customer_id: Id | None = None


def apply_patch(ctx: Ctx, account_id: str, patch: dict[str, Any], action: str) -> None:
    """Change an account's rules in the caller's transaction, checked by building them as
    the workers read them (pipeline/configuration.py), and audit it."""
    conn = ctx.conn
    check(conn, ctx.actor, "account", account_id)
    before = account_row(conn, account_id, lock=True)
    if before is None:
        raise ApiError(404, "account_id", f"no account {account_id!r}")
    if "customer_id" in patch:
        check_claim(conn, ctx.actor, "customer", patch["customer_id"])
    values = {**before}
    for name, value in patch.items():
        column = {"thresholds": "thresholds_fen", "overdraft": "overdraft_fen",
                  "reconnect_above": "reconnect_above_fen"}.get(name, name)
        values[column] = value
    a, b, c = (int(x) for x in values["thresholds_fen"])
    try:
        wallet_config(values["billing_mode"], (a, b, c), values["overdraft_fen"],
                      values["reconnect_above_fen"], values["keep_supply"])
    except ValueError as exc:
        raise ApiError(400, "thresholds" if "threshold" in str(exc) else "reconnect_above",
                       str(exc)) from None
    for table, column in (("rooms", "room_id"), ("customers", "customer_id")):
        if column in patch and patch[column] is not None and conn.execute(
                f"SELECT 1 FROM {table} WHERE {column} = %s", (patch[column],)).fetchone() is None:
            raise ApiError(404, column, f"no {column.removesuffix('_id')} {patch[column]!r}")
    conn.execute("UPDATE accounts SET name = %s, billing_mode = %s, thresholds_fen = %s, "
                 "overdraft_fen = %s, reconnect_above_fen = %s, room_id = %s, customer_id = %s "
                 "WHERE account_id = %s",
                 (values["name"], values["billing_mode"], [a, b, c], values["overdraft_fen"],
                  values["reconnect_above_fen"], values["room_id"], values["customer_id"],
                  account_id))
    check(conn, ctx.actor, "account", account_id)  # still in scope where it is now
    audit.record(conn, ctx.actor, ctx.request_id, action, f"account:{account_id}", before,
                 account_row(conn, account_id))


@router.patch("/accounts/{account_id}")
def patch_account(account_id: PathId, body: AccountPatch, ctx: Ctx = WRITE) -> dict[str, Any]:
    """Change name, billing mode, thresholds, overdraft, reconnect level, room or customer.

    The workers pick the new rules up on their next configuration reload (a few seconds).
    """
    with ctx.conn.transaction():
        apply_patch(ctx, account_id, body.model_dump(exclude_unset=True), "account.update")
    return describe(ctx.conn, account_id)


CSV_BODY = Body(..., media_type="text/csv", description="The import file (docs/contracts.md)")


@router.post("/accounts/import", status_code=200, openapi_extra={"requestBody": {
    "required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}})
async def import_accounts(request: Request, ctx: Ctx = WRITE) -> dict[str, Any]:
    """Open every account of a CSV file in one transaction, or none (422 lists every bad
    row and field); initial top-ups are recorded after, with deterministic keys."""
    raw = await request.body()
    return await _run_sync(_import, ctx, raw)


async def _run_sync(func: Any, *args: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(func, *args)


def _import(ctx: Ctx, raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(422, "body", "the file is not UTF-8 text") from None
    if "\x00" in text:
        raise ApiError(422, "body", "the file contains NUL characters")
    try:
        parsed = parse_csv(text)
    except ImportErrors as exc:
        raise ApiError.many(422, exc.errors) from None
    opened: list[str] = []
    errors: list[tuple[str, str]] = []
    conn = ctx.conn
    with conn.transaction():
        for row in parsed:
            try:
                with conn.transaction():
                    _customer(ctx, row)
                    _, created = _open(ctx, row.account)
            except (InvalidAccount, AccountConflict, LookupError) as exc:
                field, _, reason = str(exc).partition(": ")
                errors.append((f"row {row.line}.{_api_field(field)}", reason))
                continue
            if created:
                opened.append(row.account.account_id)
        if errors:
            raise ApiError.many(409 if all("already" in r or "belongs" in r
                                           for _, r in errors) else 422, errors)
    topups = []
    for row in parsed:
        if row.topup_fen:
            paid = pay(ctx, "topup", row.account.account_id, row.topup_fen,
                       f"open:{row.account.account_id}:initial", "initial top-up (import)")
            topups.append({"account_id": paid.account_id, "payment_id": paid.payment_id,
                           "amount": yuan(paid.amount_fen), "replayed": paid.replayed})
    return {"rows": len(parsed), "opened": opened,
            "unchanged": [r.account.account_id for r in parsed
                          if r.account.account_id not in opened],
            "topups": topups}


def _api_field(field: str) -> str:
    from meterflow.api.errors import CLI_FIELDS

    first = field.split(" ")[0]
    return CLI_FIELDS.get(first, first)


def _customer(ctx: Ctx, row: ImportRow) -> None:
    """Create the row's customer when it names one that does not exist yet."""
    customer = row.account.customer_id
    if customer is None:
        return
    check_claim(ctx.conn, ctx.actor, "customer", customer)
    created = ctx.conn.execute(
        "INSERT INTO customers (customer_id, name) VALUES (%s, %s) "
        "ON CONFLICT (customer_id) DO NOTHING RETURNING customer_id",
        (customer, row.customer_name)).fetchone()
    if created is not None:
        audit.record(ctx.conn, ctx.actor, ctx.request_id, "customer.put",
                     f"customer:{customer}", None,
                     {"customer_id": customer, "name": row.customer_name})


