"""The poller against a real Modbus server that is not ours: pymodbus's own server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pymodbus import FramerType

from connectors.modbus import (
    Meter,
    ModbusPoller,
    ReadError,
    Reading,
    RelayNotSupported,
    TcpEndpoint,
    load_map,
    parse_map,
)
from tests.modbus.conftest import FC_READ_COILS, FC_READ_HOLDING, free_port

FIXED = datetime(2025, 3, 1, 8, 0, tzinfo=timezone(timedelta(hours=8)))

ACREL_VALUES = {
    "energy_kwh": Decimal("12345.67"),
    "sharp": Decimal("1000.01"),
    "peak": Decimal("4000.02"),
    "flat": Decimal("5000.03"),
    "valley": Decimal("2345.61"),
    "voltage_v": Decimal("229.8"),
    "current_a": Decimal("6.54"),
    "power_kw": Decimal("-1.500"),
    "apparent_power_kva": Decimal("1.503"),
    "pf": Decimal("-0.998"),
}
SDM120_VALUES = {
    "voltage_v": Decimal("230.0"),
    "current_a": Decimal("4.250"),
    "power_kw": Decimal("0.977"),
    "pf": Decimal("0.999"),
    "frequency_hz": Decimal("50.00"),
    "import_kwh": Decimal("1234.50"),
    "export_kwh": Decimal("0.00"),
    "energy_kwh": Decimal("1234.50"),
}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _read(port: int, meter: Meter, framer: str = "tcp") -> Any:
    endpoint = TcpEndpoint("127.0.0.1", port, framer)  # type: ignore[arg-type]
    async with ModbusPoller(endpoint, timeout=1, retries=0, clock=lambda: FIXED) as poller:
        return await poller.poll(meter)


@pytest.mark.parametrize("framer", ["tcp", "rtu"])
def test_reads_acrel_ddsy1352(meter_server: Any, framer: str) -> None:
    regmap = load_map("acrel-ddsy1352")
    server_framer = FramerType.RTU if framer == "rtu" else FramerType.SOCKET
    server = meter_server(regmap, ACREL_VALUES, unit=7, framer=server_framer)
    result = run(_read(server.port, Meter("room-101", 7, regmap), framer))
    assert isinstance(result, Reading), result
    assert dict(result.values) == ACREL_VALUES
    assert result.ts == FIXED and result.meter == "room-101" and result.unit == 7
    assert result.bands == {b: ACREL_VALUES[b] for b in ("sharp", "peak", "flat", "valley")}
    assert result.to_dict()["power_kw"] == "-1.500"


def test_reads_eastron_sdm120_input_floats(meter_server: Any) -> None:
    regmap = load_map("eastron-sdm120")
    server = meter_server(regmap, SDM120_VALUES)
    result = run(_read(server.port, Meter("pump", 1, regmap)))
    assert isinstance(result, Reading), result
    assert dict(result.values) == SDM120_VALUES


def test_failed_meter_gives_error_and_others_still_polled(meter_server: Any) -> None:
    regmap = load_map("acrel-ddsy1352")
    # this server lacks 0x000F-0x0010: the third block gets exception 2
    partial = {k: v for k, v in ACREL_VALUES.items() if k not in ("apparent_power_kva", "pf")}
    server = meter_server(regmap, partial, unit=1)

    async def go() -> list[Any]:
        endpoint = TcpEndpoint("127.0.0.1", server.port)
        async with ModbusPoller(endpoint, timeout=1, retries=0, clock=lambda: FIXED) as poller:
            meters = [Meter("bad", 1, regmap), Meter("absent", 9, regmap)]
            good = parse_map(
                {
                    **regmap.model_dump(mode="json"),
                    "quantities": [regmap.quantity("energy_kwh").model_dump(mode="json")],
                },
                "inline",
            )
            meters.append(Meter("good", 1, good))
            return await poller.poll_all(meters)

    bad, absent, good = run(go())
    assert isinstance(bad, ReadError)
    assert "meter bad unit 1 register 0x000F" in bad.reason
    assert "exception response 2 (illegal data address)" in bad.reason
    assert bad.to_dict()["register"] == "0x000F"
    assert isinstance(absent, ReadError) and "unit 9" in absent.reason
    assert isinstance(good, Reading) and good.energy_kwh == Decimal("12345.67")


def test_out_of_range_value_is_an_error_result(meter_server: Any) -> None:
    regmap = load_map("acrel-ddsy1352")
    server = meter_server(regmap, ACREL_VALUES, extra_holding={0x0010: 1500})  # pf 1.500
    result = run(_read(server.port, Meter("m", 1, regmap)))
    assert isinstance(result, ReadError)
    assert "register 0x0010 (pf): value 1.500 outside [-1, 1]" in result.reason


def test_connection_refused_names_host_and_port() -> None:
    port = free_port()
    result = run(_read(port, Meter("m", 1, load_map("acrel-ddsy1352"))))
    assert isinstance(result, ReadError)
    assert f"cannot connect to 127.0.0.1:{port}" in result.reason
    assert result.ts.tzinfo is not None


def test_relay_register_write_changes_server(meter_server: Any) -> None:
    regmap = load_map("acrel-ddsy1352")
    server = meter_server(regmap, ACREL_VALUES)
    relay = regmap.relay
    meter = Meter("m", 1, regmap)

    async def switch(action: str, allow: bool) -> None:
        async with ModbusPoller(TcpEndpoint("127.0.0.1", server.port), timeout=1, retries=0) as p:
            await p.set_relay(meter, action, allow_unverified=allow)  # type: ignore[arg-type]

    with pytest.raises(RelayNotSupported, match="not verified"):
        run(switch("trip", False))
    assert server.get(FC_READ_HOLDING, relay.address) == [0]  # type: ignore[union-attr]
    run(switch("trip", True))
    assert server.get(FC_READ_HOLDING, relay.address) == [1]  # type: ignore[union-attr]
    run(switch("close", True))
    assert server.get(FC_READ_HOLDING, relay.address) == [0]  # type: ignore[union-attr]


def test_relay_coil_write_changes_server(meter_server: Any) -> None:
    base = load_map("acrel-ddsy1352").model_dump(mode="json")
    base["relay"] = {"kind": "coil", "address": 3, "trip": False, "close": True, "verified": True}
    regmap = parse_map(base, "inline")
    server = meter_server(regmap, ACREL_VALUES)

    async def switch(action: str) -> None:
        async with ModbusPoller(TcpEndpoint("127.0.0.1", server.port), timeout=1, retries=0) as p:
            await p.set_relay(Meter("m", 1, regmap), action)  # type: ignore[arg-type]

    run(switch("close"))
    assert server.get(FC_READ_COILS, 3) == [True]
    run(switch("trip"))
    assert server.get(FC_READ_COILS, 3) == [False]


def test_sdm120_relay_refused_without_io() -> None:

    regmap = load_map("eastron-sdm120")

    async def trip() -> None:
        async with ModbusPoller(TcpEndpoint("127.0.0.1", free_port()), timeout=0.2) as p:
            await p.set_relay(Meter("pump", 1, regmap), "trip")

    with pytest.raises(RelayNotSupported, match=r"eastron-sdm120.*has no relay"):
        run(trip())


def test_naive_clock_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Reading("m", "x", 1, datetime(2025, 1, 1), {})  # noqa: DTZ001 - deliberately naive
    assert Reading("m", "x", 1, datetime.now(UTC), {}).ok
