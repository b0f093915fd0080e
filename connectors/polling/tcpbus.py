"""A request/response bus over TCP: a meter with a TCP port, or an RS-485 line behind a
transparent TCP serial server (many meters on one connection, told apart by address).

Requests go one at a time (``asyncio.Lock``); the reply is the first decoded frame the
caller's ``accept`` takes, within ``timeout`` seconds. Bytes that are not a frame come
back as the codec's ``Corrupt`` items, for the dead-letter topic. A timeout closes the
connection, so that a late reply can never be taken for the answer to the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class Unreachable(Exception):
    """No answer: connection refused or lost, or nothing accepted before the timeout.
    ``exchange`` holds what did arrive (corrupt bytes to dead-letter), if anything."""

    def __init__(self, message: str, exchange: Exchange | None = None) -> None:
        super().__init__(message)
        self.exchange = exchange


class Scanner(Protocol):
    def feed(self, data: bytes) -> list[Any]: ...
    def flush(self) -> list[Any]: ...


@dataclass
class Exchange:
    reply: Any
    corrupt: list[Any] = field(default_factory=list)
    stray: list[Any] = field(default_factory=list)


class TcpBus:
    def __init__(self, host: str, port: int, *, connect_timeout: float = 3.0) -> None:
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is not None and self._writer is not None and not self._writer.is_closing():
            return self._reader, self._writer
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise Unreachable(f"cannot connect to {self}: {exc or type(exc).__name__}") from None
        self._reader, self._writer = reader, writer
        return reader, writer

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def transact(self, request: bytes, scanner: Scanner, accept: Callable[[Any], bool],
                       is_corrupt: Callable[[Any], bool], timeout: float) -> Exchange:
        async with self._lock:
            reader, writer = await self._connect()
            end = time.monotonic() + timeout
            exchange = Exchange(reply=None)
            try:
                writer.write(request)
                await writer.drain()
                while True:
                    left = end - time.monotonic()
                    if left <= 0:
                        raise TimeoutError
                    data = await asyncio.wait_for(reader.read(4096), left)
                    if not data:
                        raise ConnectionResetError("connection closed by the peer")
                    for item in scanner.feed(data):
                        if is_corrupt(item):
                            exchange.corrupt.append(item)
                        elif exchange.reply is None and accept(item):
                            exchange.reply = item
                        else:
                            exchange.stray.append(item)
                    if exchange.reply is not None:
                        return exchange
            except (TimeoutError, OSError) as exc:
                await self.close()
                exchange.corrupt.extend(i for i in scanner.flush() if is_corrupt(i))
                what = "no reply" if isinstance(exc, TimeoutError) else str(exc)
                raise Unreachable(f"{self}: {what} within {timeout:.1f}s", exchange) from None
