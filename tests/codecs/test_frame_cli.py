"""``meterflow frame`` commands, run with typer's CliRunner (no services needed)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from meterflow.subcommands.frame import frame_app

runner = CliRunner()

WATER_REPLY = (
    "FE FE FE FE 68 10 44 33 22 11 00 33 78 81 16 1F 90 00 00 77 66 55 2C 00 77 66 55 2C "
    "31 01 22 11 05 15 20 21 84 13 16"
)


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(frame_app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_decode_dlt645_reply_json() -> None:
    reply = "68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33 33 33 8A 16"
    code, out, _ = run("decode", reply, "--json")
    assert code == 0
    fields = json.loads(out)
    assert fields["address"] == "000000000161" and fields["control"] == "91"
    assert fields["di"] == "00010000" and fields["value"] == "0.26" and fields["unit"] == "kWh"
    assert fields["direction"] == "response" and fields["error"] is None


def test_decode_relay_and_abnormal_reply_json() -> None:
    trip = "68 11 11 11 11 11 11 68 1C 10 33 33 33 33 33 33 33 33 4D 33 57 74 48 45 38 4B 55 16"
    fields = json.loads(run("decode", trip, "--json", "--protocol", "dlt645")[1])
    assert fields["relay_action"] == "trip" and fields["expires"] == "2018-05-12T15:41:24+08:00"
    fields = json.loads(run("decode", "68 61 01 00 00 00 00 68 D1 01 35 39 16", "--json")[1])
    assert fields["error"] == {"code": 2, "flags": ["no-requested-data"]}


def test_decode_cjt188_json_and_human() -> None:
    code, out, _ = run("decode", WATER_REPLY, "--json")
    assert code == 0
    fields = json.loads(out)
    assert fields["meter_type"] == "10" and fields["address"] == "78330011223344"
    assert fields["di"] == "901F" and fields["volume"] == "556677.00" and fields["unit"] == "m3"
    code, out, _ = run("decode", *WATER_REPLY.split(), "--protocol", "cjt188")
    assert code == 0 and "556677.00" in out


@pytest.mark.parametrize(
    ("hex_text", "code", "message"),
    [
        ("68 AA AA AA AA AA AA 68 11 04 33 33 34 33 B3 16", 1, "expected 0xAE, got 0xB3"),
        (WATER_REPLY.replace("13 16", "08 16"), 1, "expected 0x13, got 0x08"),
        ("68 AA AA", 1, "not a valid frame"),
        ("zz", 2, "not hexadecimal"),
        ("68A", 2, "odd number"),
    ],
)
def test_decode_errors_exit_non_zero(hex_text: str, code: int, message: str) -> None:
    got, out, err = run("decode", hex_text)
    assert got == code and message in err and out == ""


def test_encode_dlt645_read_and_relay() -> None:
    code, out, _ = run("encode", "dlt645", "read", "--address", "AAAAAAAAAAAA", "--di", "00010000")
    assert (code, out.strip()) == (0, "FE FE FE FE 68 AA AA AA AA AA AA 68 11 04 33 33 34 33 AE 16")
    args = ["encode", "dlt645", "relay", "--address", "111111111111", "--action", "trip"]
    args += ["--password-level", "00", "--expires", "2018-05-12T15:41:24", "--no-preamble"]
    code, out, _ = run(*args)
    assert out.strip() == (
        "68 11 11 11 11 11 11 68 1C 10 33 33 33 33 33 33 33 33 4D 33 57 74 48 45 38 4B 55 16"
    )
    code, out, _ = run(*args[:5], "--action", "close")
    assert code == 0 and " 68 1C 10 35 " in out and out.split()[-10] == "4F"


def test_encode_cjt188_read_and_valve() -> None:
    code, out, _ = run("encode", "cjt188", "read", "--type", "10", "--address", "78330011223344")
    assert (code, out.strip()) == (0, "FE FE FE FE 68 10 44 33 22 11 00 33 78 01 03 1F 90 00 80 16")
    args = ["encode", "cjt188", "valve", "--type", "30", "--address", "00000000000003"]
    code, out, _ = run(*args, "--action", "open", "--ser", "1", "--no-preamble")
    assert out.strip() == "68 30 03 00 00 00 00 00 00 04 04 17 A0 01 55 B0 16"


@pytest.mark.parametrize(
    "args",
    [
        ["encode", "dlt645", "read", "--address", "12345", "--di", "00010000"],
        ["encode", "dlt645", "read", "--address", "000000000001", "--di", "XYZ"],
        ["encode", "dlt645", "relay", "--address", "000000000001", "--action", "explode"],
        ["encode", "dlt645", "relay", "--address", "000000000001", "--action", "trip",
         "--password-hex", "12"],
        ["encode", "dlt645", "relay", "--address", "000000000001", "--action", "trip",
         "--expires", "tomorrow"],
        ["encode", "cjt188", "read", "--type", "1G", "--address", "78330011223344"],
        ["encode", "cjt188", "valve", "--type", "10", "--address", "7833", "--action", "open"],
    ],
)
def test_encode_bad_input_exits_non_zero(args: list[str]) -> None:
    result = runner.invoke(frame_app, args)
    assert result.exit_code != 0 and result.stdout == ""


def test_registered_in_the_root_app() -> None:
    from meterflow import cli

    if not any(group.name == "frame" for group in cli.app.registered_groups):
        cli._register()
    result = runner.invoke(cli.app, ["frame", "encode", "dlt645", "read", "--address",
                                     "000000000161", "--di", "00010000", "--no-preamble"])
    assert result.exit_code == 0
    assert result.stdout.strip() == "68 61 01 00 00 00 00 68 11 04 33 33 34 33 14 16"
