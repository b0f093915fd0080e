"""``meterflow poll`` against pymodbus's own server, through typer's CliRunner."""

from __future__ import annotations

import json
from typing import Any

from pymodbus import FramerType
from typer.testing import CliRunner

from connectors.modbus import load_map
from meterflow.subcommands.poll import poll_app
from tests.modbus.conftest import FC_READ_HOLDING, free_port
from tests.modbus.test_poller import ACREL_VALUES, SDM120_VALUES

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(poll_app, list(args))


def test_once_json_acrel(meter_server: Any) -> None:
    server = meter_server(load_map("acrel-ddsy1352"), ACREL_VALUES, unit=5)
    result = invoke(
        "modbus", "--host", "127.0.0.1", "--port", str(server.port), "--unit", "5",
        "--model", "acrel-ddsy1352", "--once", "--json", "--timeout", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == "acrel-ddsy1352"
    assert data["meter"] == f"127.0.0.1:{server.port}/5"
    assert data["ts"].endswith("+00:00")
    for name, value in ACREL_VALUES.items():
        assert data[name] == str(value), name


def test_once_json_rtu_over_tcp_sdm120(meter_server: Any) -> None:
    server = meter_server(load_map("eastron-sdm120"), SDM120_VALUES, framer=FramerType.RTU)
    result = invoke(
        "modbus", "--host", "127.0.0.1", "--port", str(server.port), "--framer", "rtu",
        "--model", "eastron-sdm120", "--once", "--json", "--timeout", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {k: data[k] for k in SDM120_VALUES} == {k: str(v) for k, v in SDM120_VALUES.items()}
    assert "sharp" not in data


def test_model_given_as_path(meter_server: Any) -> None:
    regmap = load_map("acrel-ddsy1352")
    server = meter_server(regmap, ACREL_VALUES)
    from connectors.modbus.maploader import _shipped_dir

    path = str(_shipped_dir() / "acrel-ddsy1352.yaml")
    result = invoke(
        "modbus", "--host", "127.0.0.1", "--port", str(server.port), "--model", path,
        "--once", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["energy_kwh"] == "12345.67"


def test_interval_loop_prints_lines(meter_server: Any) -> None:
    server = meter_server(load_map("acrel-ddsy1352"), ACREL_VALUES)
    result = invoke(
        "modbus", "--host", "127.0.0.1", "--port", str(server.port), "--model", "acrel-ddsy1352",
        "--json", "--interval", "0.1", "--count", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2 and all(line["voltage_v"] == "229.8" for line in lines)


def test_connection_refused_exits_nonzero_naming_endpoint() -> None:
    port = free_port()
    result = invoke(
        "modbus", "--host", "127.0.0.1", "--port", str(port), "--model", "acrel-ddsy1352",
        "--once", "--json", "--timeout", "0.5", "--retries", "0",
    )  # fmt: skip
    assert result.exit_code == 1
    assert f"cannot connect to 127.0.0.1:{port}" in result.stderr
    assert result.stdout == ""


def test_exception_response_names_register(meter_server: Any) -> None:
    partial = {
        k: v for k, v in ACREL_VALUES.items() if k not in ("voltage_v", "current_a", "power_kw")
    }
    server = meter_server(load_map("acrel-ddsy1352"), partial)
    result = invoke(
        "modbus", "--host", "127.0.0.1", "--port", str(server.port), "--model", "acrel-ddsy1352",
        "--once", "--timeout", "1",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "register 0x000B" in result.stderr and "illegal data address" in result.stderr


def test_bad_model_exits_2(tmp_path: Any) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n", encoding="utf-8")
    result = invoke("modbus", "--host", "127.0.0.1", "--model", str(bad), "--once")
    assert result.exit_code == 2
    assert "bad.yaml" in result.stderr and "manufacturer" in result.stderr
    result = invoke("modbus", "--host", "127.0.0.1", "--model", "nope", "--once")
    assert result.exit_code == 2 and "no shipped map" in result.stderr


def test_relay_command(meter_server: Any) -> None:
    regmap = load_map("acrel-ddsy1352")
    server = meter_server(regmap, ACREL_VALUES)
    common = ["--host", "127.0.0.1", "--port", str(server.port), "--model", "acrel-ddsy1352"]
    refused = invoke("relay", "trip", *common)
    assert refused.exit_code == 1 and "not verified" in refused.stderr
    done = invoke("relay", "trip", *common, "--allow-unverified")
    assert done.exit_code == 0, done.output
    assert server.get(FC_READ_HOLDING, 0x0040) == [1]
    sdm = invoke("relay", "trip", "--host", "127.0.0.1", "--model", "eastron-sdm120")
    assert sdm.exit_code == 1 and "has no relay" in sdm.stderr


def test_models_lists_shipped_maps() -> None:
    result = invoke("models")
    assert result.exit_code == 0
    for name in ("acrel-ddsy1352", "acrel-dtsy1352", "acrel-adm130", "eastron-sdm120"):
        assert name in result.stdout
    assert "no relay" in result.stdout
