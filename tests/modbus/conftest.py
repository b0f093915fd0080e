"""A real Modbus server for the tests: pymodbus's own TCP server, in a thread.

The server runs its own event loop in a background thread, so both the asyncio
poller (``asyncio.run`` in the test) and the CLI (which calls ``asyncio.run``
itself) talk to it over a real socket on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import pytest
from pymodbus import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from connectors.modbus import RegisterMap, encode_quantity
from connectors.modbus.registermap import CoilRelay, RegisterRelay, Table

FC_READ_COILS = 1
FC_READ_HOLDING = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def registers_for(
    regmap: RegisterMap, values: Mapping[str, Decimal]
) -> dict[Table, dict[int, int]]:
    """Register words a meter with ``values`` holds, by table (from the map)."""
    tables: dict[Table, dict[int, int]] = {Table.HOLDING: {}, Table.INPUT: {}}
    for name, value in values.items():
        q = regmap.quantity(name)
        words = encode_quantity(q, value)
        for i, word in enumerate(words):
            tables[regmap.table_of(q)][q.address + i] = word
    # holes the map allows reading through (max_gap) read as zero, as on the meters
    for words_of in tables.values():
        used = sorted(words_of)
        for before, after in itertools.pairwise(used):
            if 1 < after - before <= regmap.max_gap + 1:
                for hole in range(before + 1, after):
                    words_of[hole] = 0
    return tables


def _blocks(words: dict[int, int]) -> list[SimData]:
    """Contiguous SimData blocks; registers not listed stay invalid (exception 2)."""
    runs: list[tuple[int, list[int]]] = []
    for addr in sorted(words):
        if runs and runs[-1][0] + len(runs[-1][1]) == addr:
            runs[-1][1].append(words[addr])
        else:
            runs.append((addr, [words[addr]]))
    return [SimData(start, values=vals, datatype=DataType.REGISTERS) for start, vals in runs]


class ServerThread:
    """pymodbus ModbusTcpServer serving one device, on a free port of 127.0.0.1."""

    def __init__(self, device: SimDevice, framer: FramerType) -> None:
        self.port = free_port()
        self._device = device
        self._framer = framer
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.server: Any = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self.server = ModbusTcpServer(
            [self._device], address=("127.0.0.1", self.port), framer=self._framer
        )
        await self.server.serve_forever(background=True)

    def start(self) -> ServerThread:
        self._thread.start()
        assert self._ready.wait(5), "server did not start"
        return self

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(5)

    def get(self, func_code: int, address: int, count: int = 1) -> list[Any]:
        return list(
            self._call(self.server.async_getValues(self._device.id, func_code, address, count))
        )

    def stop(self) -> None:
        self._call(self.server.shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


def start_meter_server(
    regmap: RegisterMap,
    values: Mapping[str, Decimal],
    *,
    unit: int = 1,
    framer: FramerType = FramerType.SOCKET,
    extra_holding: Mapping[int, int] | None = None,
) -> ServerThread:
    """Serve a meter of ``regmap`` holding ``values`` (plus its relay register/coils)."""
    tables = registers_for(regmap, values)
    holding = dict(tables[Table.HOLDING])
    holding.update(extra_holding or {})
    coils = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
    relay = regmap.relay
    if isinstance(relay, RegisterRelay):
        holding.setdefault(relay.address, relay.close)
    elif isinstance(relay, CoilRelay):
        coils = [SimData(0, count=relay.address + 16, values=False, datatype=DataType.BITS)]
    inputs = tables[Table.INPUT] or {0xFFF0: 0}
    device = SimDevice(
        id=unit,
        simdata=(
            coils,
            [SimData(0, count=1, values=False, datatype=DataType.BITS)],
            _blocks(holding or {0xFFF0: 0}),
            _blocks(inputs),
        ),
    )
    return ServerThread(device, framer).start()


@pytest.fixture
def meter_server() -> Iterator[Any]:
    """Factory fixture: ``meter_server(regmap, values, ...)``; servers stop at teardown."""
    started: list[ServerThread] = []

    def factory(regmap: RegisterMap, values: Mapping[str, Decimal], **kw: Any) -> ServerThread:
        server = start_meter_server(regmap, values, **kw)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()
