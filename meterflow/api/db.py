"""The API's database connections: one psycopg_pool ConnectionPool per process.

Connections are in autocommit mode; every change opens its own ``conn.transaction()`` so the
change and its audit row commit together. ``record_payment`` needs exactly that (it refuses
to run inside a caller's transaction, which would acknowledge before it is durable).
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
from fastapi import Request
from psycopg_pool import ConnectionPool


def make_pool(dsn: str, min_size: int = 1, max_size: int = 8) -> ConnectionPool:
    """A pool that opens lazily: the API starts (and answers health 503) without a database."""
    return ConnectionPool(dsn, min_size=min_size, max_size=max_size, open=False,
                          kwargs={"autocommit": True}, timeout=10.0,
                          name="meterflow-api", check=ConnectionPool.check_connection)


def connection(request: Request) -> Iterator[psycopg.Connection]:
    """FastAPI dependency: a pooled connection for the request."""
    pool: ConnectionPool = request.app.state.pool
    with pool.connection() as conn:
        yield conn
