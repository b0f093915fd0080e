"""The audit log: who changed what, when, with the row before and after.

``record`` must be called inside the transaction of the change it describes, so a change
without its audit row (or an audit row without its change) cannot be committed. The table
refuses UPDATE, DELETE and TRUNCATE (sql/0007_operators.sql): no role can edit it.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from meterflow.api.tokens import Actor


def _default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:f}"
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def jsonable(value: Any) -> Any:
    """Rows with dates and Decimals as JSON-safe values (text), never floats."""
    return None if value is None else json.loads(json.dumps(value, default=_default))


def record(conn: psycopg.Connection, actor: Actor, request_id: str, action: str, target: str,
           before: Any = None, after: Any = None) -> None:
    """Append one audit row (in the caller's transaction)."""
    if conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        raise RuntimeError("audit.record belongs inside the change's transaction")
    conn.execute(
        "INSERT INTO audit_log (user_id, user_name, role, token_id, action, target, before, "
        "after, request_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (actor.user_id, actor.name, actor.role, actor.token_id, action, target,
         None if before is None else Jsonb(jsonable(before)),
         None if after is None else Jsonb(jsonable(after)), request_id))
