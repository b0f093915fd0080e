"""Simulated DL/T 645 and CJ/T 188 buses: one TCP port per bus, many meters behind it,
addressed by their 12-digit (DL/T 645) or 14-digit (CJ/T 188) address, as an RS-485 line
behind a transparent TCP serial server. A meter answers only frames addressed to it; a
meter set offline, or an address nobody has, stays silent (the master times out).

DL/T 645: reads of the forward/combined active energy (total, T1..T4, the FF block) and the
relay command (C=1CH: trip opens the relay, close / close-allowed closes it; password
checked, a wrong one gets ERR 04H "password error / unauthorised").
CJ/T 188: read of DI 901F (current volume, meter time, valve status) and the valve command.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from connectors import cjt188, dlt645
from connectors.simulator.meter import SimMeter

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
ERR_NO_DATA = 0x02
ERR_PASSWORD = 0x04
RATE_BY_DI1 = {0x00: None, 0x01: "sharp", 0x02: "peak", 0x03: "flat", 0x04: "valley"}


def dlt645_reply(meter: SimMeter, frame: Any, now: datetime, password: str) -> bytes | None:
    body = frame.body
    if isinstance(body, dlt645.ReadRequest):
        di = body.di
        total, bands = meter.registers(now)
        if di >> 24 != 0 or (di >> 16) & 0xFF not in (0x00, 0x01):
            return dlt645.encode_read_error(meter.address, ERR_NO_DATA)
        rate = (di >> 8) & 0xFF
        if (di & 0xFF) != 0:
            return dlt645.encode_read_error(meter.address, ERR_NO_DATA)
        if rate == 0xFF:
            block = (total, bands["sharp"], bands["peak"], bands["flat"], bands["valley"])
            return dlt645.encode_read_response(meter.address, di, block)
        if rate not in RATE_BY_DI1:
            return dlt645.encode_read_error(meter.address, ERR_NO_DATA)
        name = RATE_BY_DI1[rate]
        return dlt645.encode_read_response(meter.address, di, total if name is None
                                           else bands[name])
    if isinstance(body, dlt645.RelayCommand):
        if body.password.upper() != password.upper():
            return dlt645.encode_relay_error(meter.address, ERR_PASSWORD)
        if body.action == dlt645.RelayAction.TRIP:
            meter.set_supply(False, now)
        elif body.action in (dlt645.RelayAction.CLOSE, dlt645.RelayAction.CLOSE_ALLOWED):
            meter.set_supply(True, now)
        return dlt645.encode_relay_response(meter.address)
    return None


def cjt188_reply(meter: SimMeter, frame: Any, now: datetime) -> bytes | None:
    body = frame.body
    valve = cjt188.ValveState.OPEN if meter.supply_on else cjt188.ValveState.CLOSED
    if isinstance(body, cjt188.ReadRequest):
        if body.di != cjt188.DI_METERING:
            return cjt188.encode_error_response(frame.meter_type, meter.address, 0x01,
                                                cjt188.Status.of(valve), ser=body.ser)
        total, _ = meter.registers(now)
        return cjt188.encode_read_response(frame.meter_type, meter.address, total,
                                           meter_time=now, status=cjt188.Status.of(valve),
                                           ser=body.ser)
    if isinstance(body, cjt188.ValveCommand):
        meter.set_supply(body.action == cjt188.ValveAction.OPEN, now)
        valve = cjt188.ValveState.OPEN if meter.supply_on else cjt188.ValveState.CLOSED
        return cjt188.encode_valve_response(frame.meter_type, meter.address,
                                            cjt188.Status.of(valve), ser=body.ser)
    return None


class FrameBus:
    """A TCP port serving the meters of one protocol (``dlt645`` or ``cjt188``)."""

    def __init__(self, protocol: str, meters: list[SimMeter], clock: Clock,
                 host: str = "127.0.0.1", port: int = 0, password: str = "000000") -> None:
        if protocol not in ("dlt645", "cjt188"):
            raise ValueError(f"not a framed protocol: {protocol}")
        self.protocol = protocol
        self.by_address = {m.address: m for m in meters}
        self.clock = clock
        self.host = host
        self.port = port
        self.password = password
        self.server: asyncio.Server | None = None
        self.requests = 0
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def endpoint(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in list(self._writers):
                writer.close()
            await self.server.wait_closed()

    def reply_to(self, frame: Any) -> bytes | None:
        if isinstance(frame, (dlt645.Corrupt, cjt188.Corrupt)):
            return None
        if frame.control & 0x80:  # a reply from another meter on the line
            return None
        meter = self.by_address.get(frame.address)
        if meter is None or not meter.online:
            return None
        self.requests += 1
        if self.protocol == "dlt645":
            return dlt645_reply(meter, frame, self.clock(), self.password)
        return cjt188_reply(meter, frame, self.clock())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = dlt645.StreamParser() if self.protocol == "dlt645" else cjt188.StreamParser()
        self._writers.add(writer)
        try:
            while data := await reader.read(4096):
                for frame in parser.feed(data):
                    try:
                        reply = self.reply_to(frame)
                    except ValueError:
                        log.exception("simulated %s meter could not answer", self.protocol)
                        continue
                    if reply:
                        writer.write(reply)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
