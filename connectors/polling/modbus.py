"""The Modbus polling loop: :class:`connectors.modbus.ModbusPoller` per endpoint, readings out.

A meter's map must have ``energy_kwh``; its ``sharp``/``peak``/``flat``/``valley`` registers
go along when the map has them. A read that fails (no connection, exception response,
undecodable register) is logged and counted; a reading the raw-readings contract refuses
(e.g. a negative register) goes to the dead-letter topic with the decoded values.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Literal

from connectors.modbus import Meter, ModbusPoller, Reading, TcpEndpoint, load_map
from connectors.polling.framed import CycleStats
from connectors.publisher import KafkaOut, connector_dead_letter
from connectors.registry import MeterEntry
from contracts.clock import utc_now
from contracts.raw_reading import RawReading

log = logging.getLogger(__name__)
STAGE = "modbus-poller"



def modbus_meter(entry: MeterEntry) -> Meter:
    return Meter(entry.meter_id, int(entry.address or "1"), load_map(entry.model))


def to_raw(entry: MeterEntry, reading: Reading) -> RawReading:
    if reading.energy_kwh is None:
        raise ValueError(f"map {reading.model} has no energy_kwh")
    return RawReading.model_validate({
        "meter_id": entry.meter_id, "ts": reading.ts, "value": reading.energy_kwh,
        "unit": "kWh", "source": "modbus", **reading.bands,
    })


class ModbusLoop:
    def __init__(self, out: KafkaOut, *, timeout: float = 2.0, retries: int = 1,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.out = out
        self.timeout = timeout
        self.retries = retries
        self.clock = clock
        self._pollers: dict[str, ModbusPoller] = {}

    def _poller(self, entry: MeterEntry) -> ModbusPoller:
        ep = entry.tcp()
        key = str(ep)
        if key not in self._pollers:
            framer: Literal["tcp", "rtu"] = "rtu" if ep.scheme == "rtu+tcp" else "tcp"
            self._pollers[key] = ModbusPoller(TcpEndpoint(ep.host, ep.port, framer),
                                              timeout=self.timeout, retries=self.retries,
                                              clock=self.clock)
        return self._pollers[key]

    async def _bus(self, poller: ModbusPoller, entries: list[MeterEntry]) -> CycleStats:
        stats = CycleStats()
        for entry in entries:
            result = await poller.poll(modbus_meter(entry))
            if not isinstance(result, Reading):
                stats.unreachable += 1
                log.warning("modbus meter %s: %s", entry.meter_id, result.reason)
                continue
            try:
                raw = to_raw(entry, result)
            except ValueError as exc:
                body = json.dumps(result.to_dict()).encode()
                self.out.dead_letter(connector_dead_letter(
                    kind="modbus", where=f"{poller.endpoint}/{entry.address}", stage=STAGE,
                    reason=str(exc).splitlines()[0], raw=body, at=self.clock(),
                    key=entry.meter_id.encode()))
                stats.dead_letters += 1
                continue
            self.out.reading(raw)
            stats.readings += 1
        return stats

    async def cycle(self, entries: Iterable[MeterEntry]) -> CycleStats:
        groups: dict[str, list[MeterEntry]] = {}
        for entry in entries:
            groups.setdefault(str(entry.tcp()), []).append(entry)
        total = CycleStats()
        results = await asyncio.gather(
            *(self._bus(self._poller(group[0]), group) for group in groups.values()))
        for stats in results:
            total.add(stats)
        return total

    def close(self) -> None:
        for poller in self._pollers.values():
            poller.close()
