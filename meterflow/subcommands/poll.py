"""``meterflow poll``: read Modbus meters from the command line.

    meterflow poll modbus --host H --port P --unit U --model acrel-ddsy1352 --once --json
    meterflow poll modbus --serial /dev/ttyUSB0 --baudrate 9600 --unit 3 --model eastron-sdm120
    meterflow poll relay trip --host H --unit U --model acrel-ddsy1352
    meterflow poll models

Errors print one clear line on stderr and exit non-zero: 2 for a bad map or bad
options, 1 for a failed read or relay command.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from enum import StrEnum
from typing import Literal

import typer
from rich.console import Console

from connectors.modbus.errors import MapError, ModbusConnectorError
from connectors.modbus.maploader import load_map, shipped_maps
from connectors.modbus.poller import (
    Endpoint,
    Meter,
    ModbusPoller,
    SerialEndpoint,
    TcpEndpoint,
)
from connectors.modbus.reading import PollResult, Reading
from connectors.modbus.registermap import NoRelay, RegisterMap

poll_app = typer.Typer(
    help="Read meters (Modbus TCP / RTU) once or periodically.", no_args_is_help=True
)
_out = Console(highlight=False)
_err = Console(stderr=True, highlight=False)


class FramerChoice(StrEnum):
    TCP = "tcp"
    RTU = "rtu"


class ParityChoice(StrEnum):
    N = "N"
    E = "E"
    O = "O"  # noqa: E741 - the parity letter


_PARITY: dict[str, Literal["N", "E", "O"]] = {"N": "N", "E": "E", "O": "O"}


class RelayChoice(StrEnum):
    TRIP = "trip"
    CLOSE = "close"


def _fail(message: str, code: int = 1) -> typer.Exit:
    _err.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    return typer.Exit(code)


def _load(model: str) -> RegisterMap:
    try:
        return load_map(model)
    except MapError as exc:
        raise _fail(str(exc), 2) from None


def _endpoint(
    host: str | None, port: int, serial: str | None, framer: FramerChoice, baud: int, parity: str
) -> Endpoint:
    if (host is None) == (serial is None):
        raise _fail("give exactly one of --host (TCP) or --serial (RS-485 port)", 2)
    if serial is not None:  # a serial line always uses RTU framing
        return SerialEndpoint(serial, baudrate=baud, parity=_PARITY[parity.upper()])
    assert host is not None
    return TcpEndpoint(host, port, "rtu" if framer is FramerChoice.RTU else "tcp")


def _quiet_pymodbus(verbose: bool) -> None:
    logging.getLogger("pymodbus").setLevel(logging.DEBUG if verbose else logging.CRITICAL)


def _show(result: PollResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.to_dict()), flush=True)
        return
    if isinstance(result, Reading):
        fields = "  ".join(f"{k}={v}" for k, v in result.to_dict().items() if k not in ("ts",))
        _out.print(f"{result.ts.isoformat()}  {fields}")


HostOpt = typer.Option(None, "--host", help="Modbus TCP device or TCP serial server")
PortOpt = typer.Option(502, "--port", min=1, max=65535)
SerialOpt = typer.Option(None, "--serial", help="local RS-485 port, e.g. /dev/ttyUSB0")
BaudOpt = typer.Option(9600, "--baudrate", min=300)
ParityOpt = typer.Option(ParityChoice.N, "--parity", case_sensitive=False)
UnitOpt = typer.Option(1, "--unit", min=0, max=247, help="Modbus unit (slave) id")
ModelOpt = typer.Option(..., "--model", help="shipped map name or path to a YAML map")
FramerOpt = typer.Option(FramerChoice.TCP, "--framer", help="tcp (MBAP) or rtu framing")
TimeoutOpt = typer.Option(3.0, "--timeout", min=0.05, help="seconds per request")
RetriesOpt = typer.Option(2, "--retries", min=0, max=10)


@poll_app.command("modbus")
def poll_modbus(
    model: str = ModelOpt,
    host: str | None = HostOpt,
    port: int = PortOpt,
    serial: str | None = SerialOpt,
    baudrate: int = BaudOpt,
    parity: ParityChoice = ParityOpt,
    unit: int = UnitOpt,
    framer: FramerChoice = FramerOpt,
    meter: str | None = typer.Option(None, "--meter", help="meter id (default: endpoint/unit)"),
    once: bool = typer.Option(False, "--once", help="read once and exit"),
    as_json: bool = typer.Option(False, "--json", help="print JSON (one object per line)"),
    interval: float = typer.Option(60.0, "--interval", min=0.1, help="seconds between polls"),
    count: int = typer.Option(0, "--count", min=0, help="stop after N polls (0: until Ctrl-C)"),
    timeout: float = TimeoutOpt,
    retries: int = RetriesOpt,
    verbose: bool = typer.Option(False, "--verbose", help="show pymodbus debug logging"),
) -> None:
    """Read one meter: once (--once) or every --interval seconds until interrupted."""
    regmap = _load(model)
    endpoint = _endpoint(host, port, serial, framer, baudrate, parity.value)
    _quiet_pymodbus(verbose)
    target = Meter(meter or f"{endpoint}/{unit}", unit, regmap)
    polls = 1 if once else count

    async def run() -> int:
        failures = 0
        async with ModbusPoller(endpoint, timeout=timeout, retries=retries) as poller:
            n = 0
            while True:
                started = time.monotonic()
                result = await poller.poll(target)
                n += 1
                if isinstance(result, Reading):
                    _show(result, as_json)
                else:
                    failures += 1
                    if as_json and not once:
                        _show(result, as_json)
                    _err.print(f"[bold red]error:[/] {result.reason}", soft_wrap=True)
                if polls and n >= polls:
                    return failures
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    try:
        failures = asyncio.run(run())
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    if failures and once:
        raise typer.Exit(1)


@poll_app.command("relay")
def relay(
    action: RelayChoice = typer.Argument(..., help="trip (open) or close the load relay"),
    model: str = ModelOpt,
    host: str | None = HostOpt,
    port: int = PortOpt,
    serial: str | None = SerialOpt,
    baudrate: int = BaudOpt,
    parity: ParityChoice = ParityOpt,
    unit: int = UnitOpt,
    framer: FramerChoice = FramerOpt,
    timeout: float = TimeoutOpt,
    retries: int = RetriesOpt,
    allow_unverified: bool = typer.Option(
        False, "--allow-unverified", help="allow a control register not checked in the manual"
    ),
) -> None:
    """Switch a meter's load relay through its map's control register or coil."""
    regmap = _load(model)
    endpoint = _endpoint(host, port, serial, framer, baudrate, parity.value)
    _quiet_pymodbus(False)
    target = Meter(f"{endpoint}/{unit}", unit, regmap)

    async def run() -> None:
        async with ModbusPoller(endpoint, timeout=timeout, retries=retries) as poller:
            await poller.set_relay(target, action.value, allow_unverified=allow_unverified)

    try:
        asyncio.run(run())
    except ModbusConnectorError as exc:
        raise _fail(str(exc)) from None
    _out.print(f"relay {action.value}: done ({target.meter_id})")


@poll_app.command("models")
def models() -> None:
    """List the register maps shipped with MeterFlow (one line each)."""
    for name in shipped_maps():
        regmap = _load(name)
        relay_kind = (
            "no relay"
            if isinstance(regmap.relay, NoRelay)
            else f"relay {regmap.relay.kind} 0x{regmap.relay.address:04X}"
        )
        unverified = ", ".join(regmap.unverified) or "none"
        _out.print(
            f"{name}  {regmap.manufacturer} {regmap.model}  {regmap.table.value} registers  "
            f"{relay_kind}  unverified: {unverified}",
            soft_wrap=True,
        )
