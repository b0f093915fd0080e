"""Poll meters over Modbus TCP or RTU with pymodbus's asyncio clients.

One :class:`ModbusPoller` drives one bus: a Modbus TCP device, an RS-485 line behind a
TCP serial server (RTU framing over TCP), or a local serial port. Requests on a bus are
sent one at a time, as RS-485 requires. Register reads are planned by
:func:`connectors.modbus.codec.plan_blocks`, so a meter costs one request per block.

:meth:`ModbusPoller.read` raises on failure; :meth:`ModbusPoller.poll` and
:meth:`ModbusPoller.poll_all` return a :class:`ReadError` for a failed meter instead,
so a long-running loop over many meters never stops because one of them is broken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from connectors.modbus.codec import decode_block, plan_blocks
from connectors.modbus.errors import (
    DecodeError,
    ModbusConnectorError,
    ReadFailure,
    RelayNotSupported,
)
from connectors.modbus.reading import PollResult, ReadError, Reading
from connectors.modbus.registermap import CoilRelay, NoRelay, RegisterMap, Table
from contracts.clock import Clock, utc_now

Framer = Literal["tcp", "rtu"]
RelayAction = Literal["trip", "close"]

#: Exception codes of the Modbus Application Protocol v1.1b3, section 7.
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}



@dataclass(frozen=True)
class TcpEndpoint:
    """A Modbus TCP device or gateway; ``framer="rtu"`` for a transparent TCP serial server."""

    host: str
    port: int = 502
    framer: Framer = "tcp"

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class SerialEndpoint:
    """A local RS-485 port (Modbus RTU through pyserial)."""

    port: str
    baudrate: int = 9600
    bytesize: int = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: int = 1

    def __str__(self) -> str:
        return f"{self.port}@{self.baudrate}{self.parity}"


Endpoint = TcpEndpoint | SerialEndpoint


@dataclass(frozen=True)
class Meter:
    """A meter on a bus: its id in MeterFlow, its Modbus unit id and its register map."""

    meter_id: str
    unit: int
    regmap: RegisterMap


class ConnectFailure(ModbusConnectorError):
    """The bus endpoint could not be reached."""


def make_client(endpoint: Endpoint, *, timeout: float, retries: int) -> Any:
    """Build the pymodbus asyncio client for ``endpoint`` (not yet connected)."""
    if isinstance(endpoint, TcpEndpoint):
        framer = FramerType.RTU if endpoint.framer == "rtu" else FramerType.SOCKET
        return AsyncModbusTcpClient(
            endpoint.host, port=endpoint.port, framer=framer, timeout=timeout, retries=retries
        )
    return AsyncModbusSerialClient(
        endpoint.port,
        framer=FramerType.RTU,
        baudrate=endpoint.baudrate,
        bytesize=endpoint.bytesize,
        parity=endpoint.parity,
        stopbits=endpoint.stopbits,
        timeout=timeout,
        retries=retries,
    )


class ModbusPoller:
    """Reads meters and switches relays on one bus.

    ``timeout`` (seconds) and ``retries`` go to the pymodbus client, which retransmits
    a request that got no answer. ``clock`` stamps readings (default: UTC now).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        timeout: float = 3.0,
        retries: int = 2,
        clock: Clock = utc_now,
        client: Any = None,
    ) -> None:
        self.endpoint = endpoint
        self.clock = clock
        self._client = client or make_client(endpoint, timeout=timeout, retries=retries)
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> ModbusPoller:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    async def _ensure_connected(self) -> None:
        if self._client.connected:
            return
        if not await self._client.connect():
            raise ConnectFailure(
                f"cannot connect to {self.endpoint} (connection refused, unreachable or timed out)"
            )

    async def _request(
        self, meter: Meter, register: int, what: str, call: Callable[[], Awaitable[Any]]
    ) -> Any:
        try:
            await self._ensure_connected()
            response = await call()
        except ConnectFailure as exc:
            raise ReadFailure(meter.meter_id, meter.unit, str(exc), register=register) from None
        except (TimeoutError, ModbusException, OSError) as exc:
            reason = f"{what} failed: {exc or type(exc).__name__}"
            raise ReadFailure(meter.meter_id, meter.unit, reason, register=register) from None
        if response.isError():
            code = getattr(response, "exception_code", None)
            name = EXCEPTION_NAMES.get(code, "unknown") if isinstance(code, int) else "unknown"
            reason = f"{what}: exception response {code} ({name})"
            raise ReadFailure(meter.meter_id, meter.unit, reason, register=register)
        return response

    async def read(self, meter: Meter) -> Reading:
        """Read every quantity of ``meter``'s map; raise ReadFailure/DecodeError on failure."""
        values: dict[str, Decimal] = {}
        async with self._lock:
            for block in plan_blocks(meter.regmap):
                if block.table is Table.INPUT:
                    call = self._client.read_input_registers
                    what = f"read of {block.count} input register(s)"
                else:
                    call = self._client.read_holding_registers
                    what = f"read of {block.count} holding register(s)"

                def request(
                    call: Any = call, start: int = block.start, n: int = block.count
                ) -> Any:
                    return call(start, count=n, device_id=meter.unit)

                response = await self._request(meter, block.start, what, request)
                try:
                    values.update(decode_block(block, response.registers))
                except DecodeError as exc:
                    raise ReadFailure(
                        meter.meter_id, meter.unit, str(exc), register=exc.address
                    ) from None
        return Reading(
            meter=meter.meter_id,
            model=meter.regmap.name,
            unit=meter.unit,
            ts=self.clock(),
            values=values,
        )

    async def poll(self, meter: Meter) -> PollResult:
        """Like :meth:`read`, but a failure comes back as a :class:`ReadError`."""
        try:
            return await self.read(meter)
        except ReadFailure as exc:
            reason, register = str(exc), exc.register
        except ModbusConnectorError as exc:
            reason, register = str(exc), None
        return ReadError(
            meter=meter.meter_id,
            model=meter.regmap.name,
            unit=meter.unit,
            ts=self.clock(),
            reason=reason,
            register=register,
        )

    async def poll_all(self, meters: Iterable[Meter]) -> list[PollResult]:
        """Poll meters one after the other; one result per meter, in order."""
        return [await self.poll(meter) for meter in meters]

    async def set_relay(
        self, meter: Meter, action: RelayAction, *, allow_unverified: bool = False
    ) -> None:
        """Trip (open) or close the meter's load relay as its map describes.

        Refused with :class:`RelayNotSupported` when the model has no relay, or when
        the map's control register is not verified against the vendor manual and
        ``allow_unverified`` is false (a write to a wrong register could change a
        meter setting).
        """
        relay = meter.regmap.relay
        if isinstance(relay, NoRelay):
            raise RelayNotSupported(
                f"meter {meter.meter_id} ({meter.regmap.name}) has no relay: {relay.reason}"
            )
        if action not in ("trip", "close"):
            raise ValueError(f"relay action must be 'trip' or 'close', not {action!r}")
        if not relay.verified and not allow_unverified:
            raise RelayNotSupported(
                f"relay control of {meter.regmap.name} (register 0x{relay.address:04X}) is not "
                "verified against the meter's manual; verify it, then allow unverified control"
            )
        value = relay.trip if action == "trip" else relay.close
        async with self._lock:
            if isinstance(relay, CoilRelay):
                coil = bool(value)
                await self._request(
                    meter,
                    relay.address,
                    f"relay {action} (write coil {coil})",
                    lambda: self._client.write_coil(relay.address, coil, device_id=meter.unit),
                )
            else:
                word = int(value)
                await self._request(
                    meter,
                    relay.address,
                    f"relay {action} (write register value 0x{word:04X})",
                    lambda: self._client.write_register(relay.address, word, device_id=meter.unit),
                )
