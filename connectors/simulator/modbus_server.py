"""Simulated Modbus TCP meters: pymodbus's own server, one device per meter (unit id).

The register layout is the ``acrel-ddsy1352`` map (holding registers 0000H-0010H, relay
control register 0040H: trip 1 / close 0). A device action refreshes the registers from
the meter's state on every request, so a read always sees the current registers, and a
write to the relay register trips or closes the simulated relay. A meter set offline
answers exception 0BH (gateway target device failed to respond), as behind a gateway.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from connectors.modbus import encode_quantity, load_map
from connectors.modbus.registermap import RegisterMap, RegisterRelay
from connectors.simulator.meter import SimMeter

MODEL = "acrel-ddsy1352"
FC_WRITES = {6, 16}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


#: The simulated model's rating, 10(60) A single phase: the instantaneous registers cannot
#: show more (a shop profile's peak load would not fit the 16-bit power register either).
MAX_AMPS = Decimal(60)


def meter_values(meter: SimMeter, now: datetime) -> dict[str, Decimal]:
    """Register values at ``now``: the energy registers as consumed, the instantaneous
    ones limited to the meter's rating (``MAX_AMPS``)."""
    total, bands = meter.registers(now)
    volts = Decimal("229.5")
    power = min(meter.load_now(now), MAX_AMPS * volts / 1000).quantize(Decimal("0.001"))
    amps = (power * 1000 / volts).quantize(Decimal("0.01"))
    pf = Decimal("0.950") if power else Decimal("1.000")
    return {"energy_kwh": total, **bands, "voltage_v": volts, "current_a": amps,
            "power_kw": power, "apparent_power_kva": (power / pf).quantize(Decimal("0.001")),
            "pf": pf}


def write_registers(regmap: RegisterMap, registers: list[int], start: int,
                    values: dict[str, Decimal]) -> None:
    for name, value in values.items():
        q = regmap.quantity(name)
        for i, word in enumerate(encode_quantity(q, value)):
            registers[q.address + i - start] = word


async def _action(meter: SimMeter, regmap: RegisterMap, clock: Callable[[], datetime],
                  function_code: int, start_address: int, address: int, count: int,
                  current_registers: list[int], set_values: Any) -> ExcCodes | None:
    if not meter.online:
        return ExcCodes.GATEWAY_NO_RESPONSE
    relay = regmap.relay
    assert isinstance(relay, RegisterRelay)
    now = clock()
    if function_code in FC_WRITES and set_values:
        if address <= relay.address < address + count:
            value = int(set_values[relay.address - address])
            if value not in (relay.trip, relay.close):
                return ExcCodes.ILLEGAL_VALUE
            meter.set_supply(value == relay.close, now)
            return None
        return ExcCodes.ILLEGAL_ADDRESS  # the simulated meter has no other writable register
    write_registers(regmap, current_registers, start_address, meter_values(meter, now))
    current_registers[relay.address - start_address] = (
        relay.close if meter.supply_on else relay.trip)
    return None


def device_for(meter: SimMeter, regmap: RegisterMap, clock: Callable[[], datetime]) -> SimDevice:
    relay = regmap.relay
    assert isinstance(relay, RegisterRelay)
    size = relay.address + 1
    return SimDevice(
        id=int(meter.address),
        simdata=(
            [SimData(0, count=1, values=False, datatype=DataType.BITS)],
            [SimData(0, count=1, values=False, datatype=DataType.BITS)],
            [SimData(0, count=size, values=0, datatype=DataType.REGISTERS)],
            [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)],
        ),
        action=partial(_action, meter, regmap, clock),
    )


class ModbusBus:
    """One Modbus TCP port serving up to 247 simulated meters."""

    def __init__(self, meters: list[SimMeter], clock: Callable[[], datetime],
                 host: str = "127.0.0.1", port: int = 0) -> None:
        if not 0 < len(meters) <= 247:
            raise ValueError("a Modbus bus holds 1 to 247 meters")
        self.meters = meters
        self.host = host
        self.port = port or free_port(host)
        regmap = load_map(MODEL)
        self._devices = [device_for(m, regmap, clock) for m in meters]
        self.server: ModbusTcpServer | None = None

    @property
    def endpoint(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    async def start(self) -> None:
        """Create and start the server (pymodbus needs the running loop for both)."""
        self.server = ModbusTcpServer(self._devices, address=(self.host, self.port),
                                      framer=FramerType.SOCKET)
        await self.server.serve_forever(background=True)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
