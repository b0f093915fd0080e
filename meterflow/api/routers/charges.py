"""Custom charge items and common-area apportionment groups (docs/api.md, "Property billing").

Finance staff define items and groups and run them (``billing.write``); every role reads
them. An item or group belongs to a site; a restricted user sees and changes only those of
their sites, targeting only accounts and places of their scope. Runs are idempotent per
item or group, account and period (services/property/). A tenant's view of their shares,
with the master's units, the method and the arithmetic, is
``GET /accounts/{account_id}/apportionment``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import Field, model_validator

from meterflow.api import audit
from meterflow.api.auth import Ctx, require
from meterflow.api.errors import ApiError
from meterflow.api.places import check, check_existing
from meterflow.api.routers.common import Limit, Model, Offset, PathId, QueryId, one, out, rows
from meterflow.api.scope import in_scope_sql
from meterflow.api.types import Day, Id, Name
from pipeline.billing.apportion import ApportionError
from pipeline.billing.charges import Schedule
from services.property.apportionment import month, run_period
from services.property.charges import run_charges

router = APIRouter(tags=["property billing"])
READ = Depends(require("read"))
WRITE = Depends(require("billing.write"))
ItemId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,48}$")]
RATE_RE = r"^[0-9]{1,10}(\.[0-9]{1,4})?$"
SITE_SCOPED = in_scope_sql("site", "site_id")


class Target(Model):
    kind: Literal["account", "room", "floor", "building", "site"]
    id: Id


class ChargeItemIn(Model):
    site_id: Id
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00]+$")]
    basis: Literal["fixed", "area"] = "fixed"
    amount: str = Field(pattern=RATE_RE, description="yuan per period (fixed) or per m2 "
                        "per period (area), up to 4 decimal places")
    frequency: Literal["once", "monthly", "quarterly", "yearly"] = "monthly"
    day: int = Field(1, ge=1, le=28, description="day of the month it is charged on")
    month: int = Field(1, ge=1, le=12, description="month anchoring quarters and years")
    start_date: Day
    end_date: Day | None = None
    may_cut: bool = Field(False, description="whether this deduction may cut supply")
    active: bool = True
    targets: list[Target] = Field(default_factory=list, max_length=10_000)

    @model_validator(mode="after")
    def _dates(self) -> ChargeItemIn:
        Schedule(self.frequency, self.start_date, self.end_date, self.day, self.month)
        return self


def _refused(exc: Exception, status: int = 422) -> ApiError:
    field, _, reason = str(exc).partition(": ")
    return ApiError(status, field, reason or str(exc))


def _item(ctx: Ctx, item_id: str) -> dict[str, Any] | None:
    found = one(ctx.conn, "SELECT * FROM charge_items WHERE item_id = %s", (item_id,))
    if found is not None:
        check(ctx.conn, ctx.actor, "site", str(found["site_id"]))
        found["targets"] = rows(ctx.conn, "SELECT kind, target_id AS id FROM "
                                "charge_item_targets WHERE item_id = %s ORDER BY kind, "
                                "target_id", (item_id,))
    return found


@router.put("/charge-items/{item_id}", status_code=201)
def put_item(item_id: Annotated[str, ItemId], body: ChargeItemIn, response: Response,
             ctx: Ctx = WRITE) -> dict[str, Any]:
    """Create or replace a charge item and its targets (audited ``charge_item.put``)."""
    before = _item(ctx, item_id)
    check(ctx.conn, ctx.actor, "site", body.site_id)
    for target in body.targets:
        check_existing(ctx.conn, ctx.actor, target.kind, target.id)
    if one(ctx.conn, "SELECT 1 AS x FROM sites WHERE site_id = %s", (body.site_id,)) is None:
        raise ApiError(422, "site_id", f"no site {body.site_id!r}")
    values = body.model_dump(exclude={"targets", "amount"})
    values["amount_yuan"] = Decimal(body.amount)
    after = _replace(ctx, "charge_item", ("charge_items", "item_id", item_id), values,
                     ("charge_item_targets", ("kind", "target_id"),
                      [(t.kind, t.id) for t in body.targets]), before,
                     lambda: _item(ctx, item_id))
    if before is not None:
        response.status_code = 200
    return out(after)


def _replace(ctx: Ctx, kind: str, row: tuple[str, str, str], values: dict[str, Any],
             children: tuple[str, tuple[str, ...], list[tuple[Any, ...]]],
             before: dict[str, Any] | None, read: Callable[[], dict[str, Any] | None]
             ) -> dict[str, Any] | None:
    """Upsert one row and replace its child rows, audited ``<kind>.put``, in one
    transaction; return the row as read back."""
    table, key, ident = row
    child_table, child_columns, child_rows = children
    cols = list(values)
    with ctx.conn.transaction():
        ctx.conn.execute(
            f"INSERT INTO {table} ({key}, {', '.join(cols)}) VALUES (%s, "
            f"{', '.join(['%s'] * len(cols))}) ON CONFLICT ({key}) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in cols), (ident, *values.values()))
        ctx.conn.execute(f"DELETE FROM {child_table} WHERE {key} = %s", (ident,))
        with ctx.conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {child_table} ({key}, {', '.join(child_columns)}) VALUES (%s, "
                f"{', '.join(['%s'] * len(child_columns))}) ON CONFLICT DO NOTHING",
                [(ident, *child) for child in child_rows])
        after = read()
        audit.record(ctx.conn, ctx.actor, ctx.request_id, f"{kind}.put", f"{kind}:{ident}",
                     before, after)
    return after


def _listed(ctx: Ctx, table: str, key: str, site_id: str | None, limit: int,
            offset: int) -> dict[str, Any]:
    """Rows of ``table`` of the sites in scope (or of one site)."""
    check(ctx.conn, ctx.actor, "site", site_id)
    found = rows(ctx.conn, f"SELECT * FROM {table} WHERE (%(site)s::text IS NULL OR "
                 f"site_id = %(site)s) AND {SITE_SCOPED} ORDER BY {key} LIMIT %(limit)s "
                 "OFFSET %(offset)s", {"site": site_id, "limit": limit, "offset": offset,
                                       **ctx.actor.scope.params()})
    return {"items": out(found), "limit": limit, "offset": offset}


@router.get("/charge-items")
def list_items(ctx: Ctx = READ, site_id: QueryId = None, limit: Limit = 100,
               offset: Offset = 0) -> dict[str, Any]:
    """Charge items of the sites in scope."""
    return _listed(ctx, "charge_items", "item_id", site_id, limit, offset)


@router.get("/charge-items/{item_id}")
def get_item(item_id: Annotated[str, ItemId], ctx: Ctx = READ) -> dict[str, Any]:
    """One item, its targets and what it has charged (newest first, up to 500)."""
    found = _item(ctx, item_id)
    if found is None:
        raise ApiError(404, "item_id", f"no charge item {item_id!r}")
    found["postings"] = rows(ctx.conn, "SELECT account_id, period, amount_fen, created_at "
                             "FROM deductions WHERE kind = 'charge_item' AND source_id = %s "
                             "ORDER BY created_at DESC, account_id LIMIT 500", (item_id,))
    return out(found)


@router.post("/charge-items/{item_id}/run")
def run_item(item_id: Annotated[str, ItemId], ctx: Ctx = WRITE) -> dict[str, Any]:
    """Charge every period of the item due by now (each once; audited ``charge_item.run``)."""
    if _item(ctx, item_id) is None:
        raise ApiError(404, "item_id", f"no charge item {item_id!r}")
    done = run_charges(ctx.conn, datetime.now(UTC), item_id)
    result = {"item_id": item_id, "recorded": done.recorded, "already": done.already,
              "skipped": done.skipped}
    with ctx.conn.transaction():
        audit.record(ctx.conn, ctx.actor, ctx.request_id, "charge_item.run",
                     f"charge_item:{item_id}", None, result)
    return result


class MemberIn(Model):
    account_id: Id
    ratio: str = Field("1", pattern=r"^[0-9]{1,6}(\.[0-9]{1,6})?$",
                       description="weight under method ratio")
    vacant: bool = False


class GroupIn(Model):
    site_id: Id
    name: Name = ""
    master_meter_id: Id
    method: Literal["ratio", "area", "usage", "equal"] = "area"
    minus_submeters: bool = False
    include_vacant: bool = False
    may_cut: bool = False
    day: int = Field(1, ge=1, le=28, description="day of the next month a period is split")
    start_date: Day
    active: bool = True
    members: list[MemberIn] = Field(default_factory=list, max_length=10_000)


def _group(ctx: Ctx, group_id: str) -> dict[str, Any] | None:
    found = one(ctx.conn, "SELECT * FROM apportion_groups WHERE group_id = %s", (group_id,))
    if found is not None:
        check(ctx.conn, ctx.actor, "site", str(found["site_id"]))
        found["members"] = rows(ctx.conn, "SELECT account_id, ratio, vacant FROM "
                                "apportion_members WHERE group_id = %s ORDER BY account_id",
                                (group_id,))
    return found


@router.put("/apportionments/{group_id}", status_code=201)
def put_group(group_id: Annotated[str, ItemId], body: GroupIn, response: Response,
              ctx: Ctx = WRITE) -> dict[str, Any]:
    """Create or replace a group: master meter, method, options, members (audited)."""
    before = _group(ctx, group_id)
    check(ctx.conn, ctx.actor, "site", body.site_id)
    check_existing(ctx.conn, ctx.actor, "meter", body.master_meter_id)
    for member in body.members:
        check_existing(ctx.conn, ctx.actor, "account", member.account_id)
    if len({m.account_id for m in body.members}) != len(body.members):
        raise ApiError(422, "members", "an account appears twice")
    after = _replace(ctx, "apportionment", ("apportion_groups", "group_id", group_id),
                     body.model_dump(exclude={"members"}),
                     ("apportion_members", ("account_id", "ratio", "vacant"),
                      [(m.account_id, Decimal(m.ratio), m.vacant) for m in body.members]),
                     before, lambda: _group(ctx, group_id))
    if before is not None:
        response.status_code = 200
    return out(after)


@router.get("/apportionments")
def list_groups(ctx: Ctx = READ, site_id: QueryId = None, limit: Limit = 100,
                offset: Offset = 0) -> dict[str, Any]:
    """Apportionment groups of the sites in scope."""
    return _listed(ctx, "apportion_groups", "group_id", site_id, limit, offset)


@router.get("/apportionments/{group_id}")
def get_group(group_id: Annotated[str, ItemId], ctx: Ctx = READ) -> dict[str, Any]:
    """One group, its members and its splits (newest first)."""
    found = _group(ctx, group_id)
    if found is None:
        raise ApiError(404, "group_id", f"no apportionment group {group_id!r}")
    found["runs"] = rows(ctx.conn, "SELECT * FROM apportion_runs WHERE group_id = %s "
                         "ORDER BY period_start DESC LIMIT 120", (group_id,))
    return out(found)


class RunIn(Model):
    period: str = Field(pattern=r"^[0-9]{4}-[0-9]{2}$", description="the month, YYYY-MM")


@router.post("/apportionments/{group_id}/runs")
def run_group(group_id: Annotated[str, ItemId], body: RunIn, ctx: Ctx = WRITE
              ) -> dict[str, Any]:
    """Split one ended month of a group now (once: a month split before is returned)."""
    if _group(ctx, group_id) is None:
        raise ApiError(404, "group_id", f"no apportionment group {group_id!r}")
    try:
        period = month(body.period)
    except ValueError as exc:
        raise _refused(exc) from None
    if period.end > datetime.now(UTC).date() + timedelta(days=1):
        raise ApiError(422, "period", f"{body.period} has not ended yet")
    try:
        done = run_period(ctx.conn, group_id, period)
    except ApportionError as exc:
        raise _refused(exc) from None
    result = {"group_id": group_id, "period": done.period, "total_fen": done.total_fen,
              "shares": done.shares, "new": done.new}
    with ctx.conn.transaction():
        audit.record(ctx.conn, ctx.actor, ctx.request_id, "apportionment.run",
                     f"apportionment:{group_id}", None, result)
    return result


SHARES = """
SELECT s.group_id, g.name AS group_name, s.period, r.period_start, r.period_end, r.method,
       r.minus_submeters, g.master_meter_id, r.master_units, r.sub_units, r.common_units,
       r.master_yuan, r.total_fen, r.weight_sum, s.weight, s.quota, s.amount_fen, s.arithmetic
FROM apportion_shares s
JOIN apportion_runs r USING (group_id, period)
JOIN apportion_groups g USING (group_id)
WHERE s.account_id = %s ORDER BY r.period_start DESC, s.group_id LIMIT %s OFFSET %s
"""


@router.get("/accounts/{account_id}/apportionment")
def account_shares(account_id: PathId, ctx: Ctx = READ, limit: Limit = 24,
                   offset: Offset = 0) -> dict[str, Any]:
    """Per period: the master's units, the method, this account's share and the arithmetic."""
    check(ctx.conn, ctx.actor, "account", account_id)
    if one(ctx.conn, "SELECT 1 AS x FROM accounts WHERE account_id = %s", (account_id,)) is None:
        raise ApiError(404, "account_id", f"no account {account_id!r}")
    found = rows(ctx.conn, SHARES, (account_id, limit, offset))
    return {"items": out(found), "limit": limit, "offset": offset}

