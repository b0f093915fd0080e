"""Pollers for DL/T 645 and CJ/T 188 meters over TCP, publishing raw readings.

Meters are grouped by endpoint: one :class:`TcpBus` per endpoint, meters of a bus read
one after the other (RS-485), buses in parallel. A reply becomes a RawReading on the
raw-readings topic; bytes that are not a frame, and frames that cannot be a reading, go
to the dead-letter topic with the reason and the raw bytes; a meter that does not answer
is logged and counted (there are no bytes to keep).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from connectors.polling.protocols import FrameProtocol, is_corrupt
from connectors.polling.tcpbus import Exchange, TcpBus, Unreachable
from connectors.publisher import KafkaOut, connector_dead_letter
from connectors.registry import MeterEntry
from contracts.clock import Clock, utc_now
from contracts.errors import PayloadError
from contracts.raw_reading import RawReading

log = logging.getLogger(__name__)



@dataclass
class CycleStats:
    readings: int = 0
    unreachable: int = 0
    dead_letters: int = 0

    def add(self, other: CycleStats) -> None:
        self.readings += other.readings
        self.unreachable += other.unreachable
        self.dead_letters += other.dead_letters


class BusPool:
    """One :class:`TcpBus` per endpoint, shared by pollers and the dispatcher."""

    def __init__(self, *, connect_timeout: float = 3.0) -> None:
        self._buses: dict[str, TcpBus] = {}
        self.connect_timeout = connect_timeout

    def get(self, entry: MeterEntry) -> TcpBus:
        endpoint = entry.tcp()
        key = f"{endpoint.host}:{endpoint.port}"
        if key not in self._buses:
            self._buses[key] = TcpBus(endpoint.host, endpoint.port,
                                      connect_timeout=self.connect_timeout)
        return self._buses[key]

    async def close(self) -> None:
        for bus in self._buses.values():
            await bus.close()


class FramePoller:
    def __init__(self, protocol: FrameProtocol, out: KafkaOut, *, timeout: float = 2.0,
                 clock: Clock = utc_now, buses: BusPool | None = None) -> None:
        self.protocol = protocol
        self.out = out
        self.timeout = timeout
        self.clock = clock
        self.buses = buses or BusPool()

    def _dead(self, entry: MeterEntry, bus: TcpBus, raw: bytes, reason: str) -> None:
        self.out.dead_letter(connector_dead_letter(
            kind=self.protocol.name, where=f"{bus}/{entry.address}", stage=self.protocol.stage,
            reason=reason, raw=raw, at=self.clock(), key=entry.meter_id.encode()))

    def _corrupt(self, entry: MeterEntry, bus: TcpBus, exchange: Exchange | None) -> int:
        if exchange is None:
            return 0
        for item in exchange.corrupt:
            self._dead(entry, bus, item.raw, item.reason)
        return len(exchange.corrupt)

    async def read(self, entry: MeterEntry) -> tuple[RawReading | None, CycleStats]:
        """Read one meter; returns the reading (or None) and what happened."""
        stats = CycleStats()
        bus = self.buses.get(entry)
        p = self.protocol
        try:
            exchange = await bus.transact(
                p.read_request(entry), p.scanner(), lambda f: p.is_reply(entry, f),
                is_corrupt, self.timeout)
        except Unreachable as exc:
            stats.dead_letters += self._corrupt(entry, bus, exc.exchange)
            stats.unreachable += 1
            log.warning("%s meter %s: %s", p.name, entry.meter_id, exc)
            return None, stats
        stats.dead_letters += self._corrupt(entry, bus, exchange)
        try:
            reading = p.to_reading(entry, exchange.reply, self.clock())
        except PayloadError as exc:
            self._dead(entry, bus, exchange.reply.raw, exc.reason)
            stats.dead_letters += 1
            return None, stats
        self.out.reading(reading)
        stats.readings += 1
        return reading, stats

    async def _bus_cycle(self, entries: list[MeterEntry]) -> CycleStats:
        stats = CycleStats()
        for entry in entries:
            stats.add((await self.read(entry))[1])
        return stats

    async def cycle(self, entries: Iterable[MeterEntry]) -> CycleStats:
        """Read every meter once: buses in parallel, meters of one bus in turn."""
        by_bus: dict[str, list[MeterEntry]] = {}
        for entry in entries:
            by_bus.setdefault(str(self.buses.get(entry)), []).append(entry)
        total = CycleStats()
        for stats in await asyncio.gather(*(self._bus_cycle(e) for e in by_bus.values())):
            total.add(stats)
        return total
