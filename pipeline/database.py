"""One async PostgreSQL connection per writer, reopened after a failure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import psycopg

log = logging.getLogger("meterflow.pipeline")

Writer = Callable[[psycopg.AsyncConnection, Sequence[Any]], Awaitable[None]]


class Database:
    """A lazily opened connection; each sink agent owns one (no sharing across tasks)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: psycopg.AsyncConnection | None = None

    async def connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        return self._conn

    async def write(self, writer: Writer, rows: Sequence[Any]) -> None:
        """Write a batch, retrying with backoff until it lands (batches are idempotent).

        The batch's messages are acknowledged only after this returns, so a worker that
        dies here reads them again; it never skips them.
        """
        if not rows:
            return
        delay = 0.5
        while True:
            try:
                await writer(await self.connection(), rows)
                return
            except psycopg.OperationalError as exc:
                log.warning("database write failed (%s); retrying in %.1fs", exc, delay)
                if self._conn is not None:
                    await self._conn.close()
                self._conn = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
