"""A mixed fleet of simulated meters: start the protocol faces, write the fleet file.

Meters of a protocol are split into buses of at most ``per_bus`` meters, each on its own
TCP port (Modbus: unit ids 1..n; DL/T 645 / CJ/T 188: addresses on one line); MQTT meters
share one gateway client. Everything runs on one asyncio loop (no thread per meter):
200 meters cost a few milliseconds of CPU per poll cycle.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.mqtt.client import Broker
from connectors.registry import MeterEntry, write_fleet
from connectors.simulator.clock import SpeedClock
from connectors.simulator.frame_server import FrameBus
from connectors.simulator.meter import SimMeter
from connectors.simulator.modbus_server import MODEL, ModbusBus
from connectors.simulator.mqtt_gateway import MqttGateway
from connectors.simulator.spec import build_meters


def _chunks(items: list[SimMeter], size: int) -> list[list[SimMeter]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class Fleet:
    def __init__(self, spec: dict[str, Any], *, broker: Broker | None = None,
                 clock: Callable[[], datetime] | None = None, host: str = "127.0.0.1",
                 per_bus: int = 64, mqtt_interval: float = 5.0,
                 gateway_id: str = "meterflow-sim-gateway") -> None:
        if clock is None:
            start = spec.get("start")
            clock = SpeedClock(datetime.fromisoformat(start) if start else datetime.now(UTC),
                               float(spec.get("speed", 1.0)))
        self.clock = clock
        self.spec = spec
        self.meters = build_meters(spec, clock())
        self.by_id = {m.meter_id: m for m in self.meters}
        self.host = host
        per_bus = max(1, min(per_bus, 247))
        of = {p: [m for m in self.meters if m.protocol == p]
              for p in ("modbus", "dlt645", "cjt188", "mqtt")}
        self.modbus = [ModbusBus(_renumber(c), clock, host) for c in _chunks(of["modbus"], per_bus)]
        self.frames = [FrameBus(p, c, clock, host) for p in ("dlt645", "cjt188")
                       for c in _chunks(of[p], per_bus)]
        self.gateway: MqttGateway | None = None
        if of["mqtt"]:
            if broker is None:
                raise ValueError("MQTT meters need a broker")
            self.gateway = MqttGateway(of["mqtt"], broker, clock, client_id=gateway_id,
                                       interval=mqtt_interval)
        self._endpoint: dict[str, str] = {}

    def meter(self, meter_id: str) -> SimMeter:
        return self.by_id[meter_id]

    async def start(self) -> None:
        for bus in self.modbus:
            await bus.start()
            self._endpoint.update({m.meter_id: bus.endpoint for m in bus.meters})
        for frame_bus in self.frames:
            await frame_bus.start()
            self._endpoint.update({m.meter_id: frame_bus.endpoint
                                   for m in frame_bus.by_address.values()})
        if self.gateway is not None:
            await self.gateway.start()

    async def stop(self) -> None:
        if self.gateway is not None:
            await self.gateway.stop()
        for frame_bus in self.frames:
            await frame_bus.stop()
        for bus in self.modbus:
            await bus.stop()

    def entries(self) -> list[MeterEntry]:
        out = []
        for m in self.meters:
            control: dict[str, Any] = {}
            if m.protocol == "modbus":
                control = {"allow_unverified": True}  # the simulator honours map's placeholder
            elif m.protocol == "dlt645":
                control = {"password": "000000", "password_level": 2}
            elif m.protocol == "cjt188":
                control = {"meter_type": 0x10}
            out.append(MeterEntry(
                meter_id=m.meter_id, commodity=m.commodity, protocol=m.protocol,  # type: ignore[arg-type]
                endpoint=self._endpoint.get(m.meter_id, ""), address=m.address,
                model=MODEL if m.protocol == "modbus" else "", control=control,
                profile=m.profile))
        return out

    def write(self, path: Path) -> None:
        header: dict[str, Any] = {"created_at": datetime.now(UTC).isoformat(),
                                  "seed": int(self.spec.get("seed", 1)),
                                  "speed": float(self.spec.get("speed", 1.0))}
        if self.gateway is not None:
            header["mqtt"] = {"host": self.gateway.broker.host, "port": self.gateway.broker.port}
        write_fleet(path, self.entries(), **header)


def _renumber(meters: list[SimMeter]) -> list[SimMeter]:
    """Unit ids 1..n on each Modbus bus."""
    for unit, meter in enumerate(meters, start=1):
        meter.address = str(unit)
    return meters


class FleetThread:
    """A fleet on its own event loop in a background thread (tests, the demo)."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="sim-fleet")

    def start(self) -> FleetThread:
        self._thread.start()
        self.call(self.fleet.start())
        return self

    def call(self, coro: Any, timeout: float = 15.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """Stop the fleet and its loop; a second call does nothing."""
        if self.loop.is_closed():
            return
        try:
            self.call(self.fleet.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()
