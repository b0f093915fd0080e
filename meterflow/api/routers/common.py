"""Helpers shared by the routers: rows as dicts, paging, yuan text, audited upserts."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import psycopg
from fastapi import Path, Query
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from contracts.money import round_fen, yuan_text
from meterflow.api import audit
from meterflow.api.auth import Ctx
from meterflow.api.errors import ApiError
from meterflow.api.types import ID_RE

PathId = Annotated[str, Path(pattern=ID_RE, description="1-64 of A-Z a-z 0-9 . _ : -")]
QueryId = Annotated[str | None, Query(pattern=ID_RE, description="Filter by id")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip")]


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except Exception:  # ZoneInfo raises several kinds for a bad key
        raise ValueError(f"{name!r} is not an IANA time zone such as Asia/Shanghai") from None
    return name


Zone = Annotated[str, Field(max_length=64), AfterValidator(_zone)]


class Model(BaseModel):
    """Request bodies: unknown fields are refused, so a typo is an error, not a no-op."""

    model_config = ConfigDict(extra="forbid")


def rows(conn: psycopg.Connection, query: str | sql.Composed,
         params: Any = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def one(conn: psycopg.Connection, query: str | sql.Composed,
        params: Any = None) -> dict[str, Any] | None:
    found = rows(conn, query, params)
    return found[0] if found else None


def yuan(fen: int | None) -> str | None:
    """Integer fen as yuan text (``"12.30"``); None stays None."""
    return None if fen is None else yuan_text(int(fen))


def yuan_of(exact: Decimal | None) -> str:
    """An exact (sub-fen) yuan amount as yuan text, rounded half-up to the fen."""
    return yuan_text(round_fen(exact or Decimal(0)))


def out(value: Any) -> Any:
    """Rows as JSON: numerics as exact decimal text, times ISO 8601 (never a float)."""
    return audit.jsonable(value)


def page(items: list[dict[str, Any]], limit: int, offset: int) -> dict[str, Any]:
    return {"items": out(items), "limit": limit, "offset": offset}


def upsert(ctx: Ctx, kind: str, table: str, key: str, key_value: str,
           values: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create or update one row and audit it (``{kind}.put``) in one transaction."""
    conn = ctx.conn
    ident = sql.Identifier
    with conn.transaction():
        before = one(conn, sql.SQL("SELECT * FROM {} WHERE {} = %s FOR UPDATE").format(
            ident(table), ident(key)), (key_value,))
        if before is None:
            cols = [key, *values]
            after = one(conn, sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING *").format(
                ident(table), sql.SQL(", ").join(map(ident, cols)),
                sql.SQL(", ").join(sql.Placeholder() * len(cols))),
                (key_value, *values.values()))
        else:
            sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(ident(c)) for c in values)
            after = one(conn, sql.SQL("UPDATE {} SET {} WHERE {} = %s RETURNING *").format(
                ident(table), sets, ident(key)), (*values.values(), key_value))
        audit.record(conn, ctx.actor, ctx.request_id, f"{kind}.put", f"{kind}:{key_value}",
                     before, after)
    assert after is not None
    return after, before is None


def delete(ctx: Ctx, kind: str, table: str, key: str, key_value: str) -> dict[str, Any]:
    """Delete one row (409 when something still refers to it) and audit it."""
    conn = ctx.conn
    ident = sql.Identifier
    with conn.transaction():
        before = one(conn, sql.SQL("DELETE FROM {} WHERE {} = %s RETURNING *").format(
            ident(table), ident(key)), (key_value,))
        if before is None:
            raise ApiError(404, key, f"no {kind} {key_value!r}")
        audit.record(conn, ctx.actor, ctx.request_id, f"{kind}.delete", f"{kind}:{key_value}",
                     before, None)
    return before
