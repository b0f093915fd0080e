"""Delivering one command to one meter through its own protocol (thin I/O edges).

Every deliverer answers one attempt with an :class:`Outcome` and a detail:

* DL/T 645 relay control / CJ/T 188 valve control frames over the meter's TCP bus;
* Modbus: the relay register or coil of the meter's map (``ModbusPoller.set_relay``);
* MQTT: a QoS 1 publish on ``meters/{id}/commands`` (see :mod:`connectors.dispatch.mqtt_link`).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Literal, Protocol

from connectors.dispatch.policy import Outcome
from connectors.modbus import ModbusPoller, ReadFailure, RelayNotSupported, TcpEndpoint
from connectors.modbus.errors import MapError
from connectors.polling.framed import BusPool
from connectors.polling.modbus import modbus_meter
from connectors.polling.protocols import FRAME_PROTOCOLS, is_corrupt
from connectors.polling.tcpbus import Unreachable
from connectors.registry import MeterEntry
from contracts.commands import Command

Result = tuple[Outcome, str]


class Deliverer(Protocol):
    async def deliver(self, entry: MeterEntry, command: Command, timeout: float) -> Result: ...


class FrameDeliverer:
    """DL/T 645 and CJ/T 188: one control frame, one reply."""

    def __init__(self, buses: BusPool | None = None) -> None:
        self.buses = buses or BusPool()

    async def deliver(self, entry: MeterEntry, command: Command, timeout: float) -> Result:
        proto = FRAME_PROTOCOLS[entry.protocol]
        try:
            request = proto.control_request(entry, command.action)
        except ValueError as exc:  # bad address or password in the registry
            return Outcome.IMPOSSIBLE, f"cannot build the {proto.name} control frame: {exc}"
        try:
            exchange = await self.buses.get(entry).transact(
                request, proto.scanner(), lambda f: proto.is_reply(entry, f), is_corrupt,
                timeout)
        except Unreachable as exc:
            return Outcome.UNREACHABLE, str(exc)
        return proto.control_outcome(entry, command.action, exchange.reply)


#: exception codes that mean "try again later": device busy (06), gateway path unavailable
#: (0A), gateway target device failed to respond (0B: the meter behind it is offline)
TRANSIENT_EXCEPTIONS = {6, 10, 11}
_EXCEPTION = re.compile(r"exception response (\d+)")


def modbus_failure(exc: ReadFailure) -> Outcome:
    """A failed relay write: refused by the meter, or not reaching it (retry later)."""
    match = _EXCEPTION.search(exc.reason)
    if match is None or int(match.group(1)) in TRANSIENT_EXCEPTIONS:
        return Outcome.UNREACHABLE
    return Outcome.REFUSED


class ModbusDeliverer:
    def __init__(self) -> None:
        self._pollers: dict[str, ModbusPoller] = {}

    def _poller(self, entry: MeterEntry, timeout: float) -> ModbusPoller:
        ep = entry.tcp()
        if str(ep) not in self._pollers:
            framer: Literal["tcp", "rtu"] = "rtu" if ep.scheme == "rtu+tcp" else "tcp"
            self._pollers[str(ep)] = ModbusPoller(
                TcpEndpoint(ep.host, ep.port, framer), timeout=min(timeout, 3.0), retries=0)
        return self._pollers[str(ep)]

    async def deliver(self, entry: MeterEntry, command: Command, timeout: float) -> Result:
        try:
            meter = modbus_meter(entry)
        except (MapError, ValueError) as exc:
            return Outcome.IMPOSSIBLE, f"meter {entry.meter_id}: {exc}"
        action: Literal["trip", "close"] = "trip" if command.action == "disconnect" else "close"
        allow = bool(entry.control.get("allow_unverified", False))
        poller = self._poller(entry, timeout)
        try:
            await asyncio.wait_for(poller.set_relay(meter, action, allow_unverified=allow),
                                   timeout)
        except RelayNotSupported as exc:
            return Outcome.IMPOSSIBLE, str(exc)
        except ReadFailure as exc:
            return modbus_failure(exc), str(exc)
        except TimeoutError:
            poller.close()
            return Outcome.UNREACHABLE, f"no answer from {poller.endpoint} within {timeout:.1f}s"
        return Outcome.APPLIED, "relay tripped" if action == "trip" else "relay closed"

    def close(self) -> None:
        for poller in self._pollers.values():
            poller.close()


class Deliverers:
    """The deliverer of each protocol."""

    def __init__(self, mqtt: Any = None, buses: BusPool | None = None) -> None:
        frame = FrameDeliverer(buses)
        self.modbus = ModbusDeliverer()
        self._by_protocol: dict[str, Any] = {"dlt645": frame, "cjt188": frame,
                                             "modbus": self.modbus}
        if mqtt is not None:
            self._by_protocol["mqtt"] = mqtt

    def get(self, protocol: str) -> Deliverer | None:
        return self._by_protocol.get(protocol)

    def close(self) -> None:
        self.modbus.close()
