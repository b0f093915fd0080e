"""``meterflow frame``: decode and build DL/T 645-2007 and CJ/T 188-2004 frames offline.

    meterflow frame decode "68 AA AA AA AA AA AA 68 11 04 33 33 34 33 AE 16" --json
    meterflow frame decode FEFEFEFE68... --protocol cjt188
    meterflow frame encode dlt645 read --address 000000000161 --di 00010000
    meterflow frame encode dlt645 relay --address 111111111111 --action trip
    meterflow frame encode cjt188 read --type 10 --address 78330011223344
    meterflow frame encode cjt188 valve --type 10 --address 78330011223344 --action close

No service is needed. A frame that is not valid exits 1 with the reason on stderr;
bad options (not hex, wrong address length, unknown action) exit 2.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.console import Console
from rich.table import Table

from connectors import cjt188, dlt645
from connectors.cjt188 import frame as cjt188_frame
from connectors.codec_errors import FrameError
from connectors.codec_quirks import DEFAULT_TZ
from connectors.dlt645 import frame as dlt645_frame

frame_app = typer.Typer(
    help="Decode and build DL/T 645-2007 and CJ/T 188-2004 frames (offline).",
    no_args_is_help=True,
)
encode_app = typer.Typer(help="Build a frame and print it as hex bytes.", no_args_is_help=True)
dlt645_app = typer.Typer(help="DL/T 645-2007 (electricity meters).", no_args_is_help=True)
cjt188_app = typer.Typer(help="CJ/T 188-2004 (water, heat and gas meters).", no_args_is_help=True)
frame_app.add_typer(encode_app, name="encode")
encode_app.add_typer(dlt645_app, name="dlt645")
encode_app.add_typer(cjt188_app, name="cjt188")

_out = Console(highlight=False)
_err = Console(stderr=True, highlight=False)

EXIT_INVALID_FRAME = 1
EXIT_BAD_INPUT = 2


class ProtocolChoice(StrEnum):
    DLT645 = "dlt645"
    CJT188 = "cjt188"


def _fail(message: str, code: int) -> typer.Exit:
    _err.print(f"error: {message}", markup=False)
    return typer.Exit(code)


def _parse_hex(parts: list[str]) -> bytes:
    text = re.sub(r"0x|[\s,:\-]", "", " ".join(parts), flags=re.IGNORECASE)
    if not text:
        raise _fail("no bytes given", EXIT_BAD_INPUT)
    if not re.fullmatch(r"[0-9A-Fa-f]*", text):
        raise _fail(f"not hexadecimal: {' '.join(parts)!r}", EXIT_BAD_INPUT)
    if len(text) % 2:
        raise _fail(f"odd number of hex digits ({len(text)}): half a byte is missing", 2)
    return bytes.fromhex(text)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail(f"unknown time zone {name!r}", EXIT_BAD_INPUT) from None


def _hex_byte(text: str, what: str) -> int:
    if not re.fullmatch(r"[0-9A-Fa-f]{1,2}", text.strip()):
        raise _fail(f"{what} must be one byte in hex (e.g. 02): {text!r}", EXIT_BAD_INPUT)
    return int(text, 16)


def _detect(raw: bytes) -> ProtocolChoice:
    """The protocol whose link layer accepts ``raw``; refuses ambiguous or invalid bytes."""
    reasons: dict[ProtocolChoice, FrameError] = {}
    valid = []
    for choice, check in (
        (ProtocolChoice.DLT645, dlt645_frame.decode_link),
        (ProtocolChoice.CJT188, cjt188_frame.decode_link),
    ):
        try:
            check(raw)
            valid.append(choice)
        except FrameError as exc:
            reasons[choice] = exc
    if len(valid) == 1:
        return valid[0]
    if valid:
        raise _fail("ambiguous frame: valid as DL/T 645 and CJ/T 188; pass --protocol", 2)
    if dlt645.looks_like(raw):
        raise _fail(str(reasons[ProtocolChoice.DLT645]), EXIT_INVALID_FRAME)
    message = "; ".join(str(e) for e in reasons.values())
    raise _fail(f"not a valid frame ({message})", EXIT_INVALID_FRAME)


def _show(fields: dict[str, object]) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in fields.items():
        if isinstance(value, dict | list):
            text = json.dumps(value, ensure_ascii=False)
        else:
            text = "-" if value is None else str(value)
        table.add_row(key, text)
    _out.print(table)


@frame_app.command("decode")
def decode_command(
    hex_bytes: list[str] = typer.Argument(..., metavar="HEX", help="Frame bytes in hex"),
    protocol: ProtocolChoice | None = typer.Option(
        None, "--protocol", help="Default: detected from the bytes"
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout"),
    tz: str = typer.Option(str(DEFAULT_TZ), "--tz", help="Time zone of the meter clock"),
) -> None:
    """Decode one frame (FE wake-up bytes allowed) and print its fields."""
    raw = _parse_hex(hex_bytes)
    zone = _zone(tz)
    chosen = protocol or _detect(raw)
    try:
        if chosen is ProtocolChoice.DLT645:
            fields = dlt645.describe(dlt645.decode(raw, tz=zone))
        else:
            fields = cjt188.describe(cjt188.decode(raw, tz=zone))
    except FrameError as exc:
        raise _fail(str(exc), EXIT_INVALID_FRAME) from None
    if as_json:
        print(json.dumps(fields, ensure_ascii=False))
    else:
        _show(fields)


def _print_frame(build: object) -> None:
    assert isinstance(build, bytes)
    print(build.hex(" ").upper())


@dlt645_app.command("read")
def dlt645_read(
    address: str = typer.Option(..., "--address", help="12 digits as on the nameplate"),
    di: str = typer.Option(..., "--di", help="Data identifier DI3..DI0, e.g. 00010000"),
    no_preamble: bool = typer.Option(False, "--no-preamble", help="Omit the FE bytes"),
) -> None:
    """Read request (C=11H)."""
    try:
        _print_frame(dlt645.encode_read(address, di, preamble=not no_preamble))
    except FrameError as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None


@dlt645_app.command("relay")
def dlt645_relay(
    address: str = typer.Option(..., "--address", help="12 digits as on the nameplate"),
    action: dlt645.RelayAction = typer.Option(..., "--action"),
    password_level: str = typer.Option("02", "--password-level", help="PA, one hex byte"),
    password_hex: str = typer.Option(
        "000000", "--password-hex", help="P2P1P0 as written (sent low byte first)"
    ),
    operator_hex: str = typer.Option(
        "00000000", "--operator-hex", help="C3C2C1C0 as written (sent low byte first)"
    ),
    expires: str | None = typer.Option(
        None, "--expires", help="ISO 8601; without offset it is meter-local time"
    ),
    tz: str = typer.Option(str(DEFAULT_TZ), "--tz", help="Time zone of the meter clock"),
    no_preamble: bool = typer.Option(False, "--no-preamble", help="Omit the FE bytes"),
) -> None:
    """Relay control (C=1CH): trip, allow closing, close, alarm, keep supply."""
    zone = _zone(tz)
    when = None
    if expires:
        try:
            when = datetime.fromisoformat(expires)
        except ValueError:
            raise _fail(f"--expires is not ISO 8601: {expires!r}", EXIT_BAD_INPUT) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=zone)
    level = _hex_byte(password_level, "--password-level")
    try:
        built = dlt645.encode_relay(
            address,
            str(action),
            password_level=level,
            password=password_hex,
            operator=operator_hex,
            expires=when,
            preamble=not no_preamble,
            tz=zone,
        )
    except FrameError as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    _print_frame(built)


@cjt188_app.command("read")
def cjt188_read(
    meter_type: str = typer.Option(..., "--type", help="Meter type T in hex, e.g. 10"),
    address: str = typer.Option(..., "--address", help="14 digits as on the nameplate"),
    di: str = typer.Option("901F", "--di", help="Data identifier DI1 DI0"),
    ser: int = typer.Option(0, "--ser", min=0, max=255, help="Sequence number SER"),
    no_preamble: bool = typer.Option(False, "--no-preamble", help="Omit the FE bytes"),
) -> None:
    """Read data request (C=01H), by default the metering data 901F."""
    kind = _hex_byte(meter_type, "--type")
    try:
        built = cjt188.encode_read(kind, address, di, ser=ser, preamble=not no_preamble)
    except FrameError as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    _print_frame(built)


@cjt188_app.command("valve")
def cjt188_valve(
    meter_type: str = typer.Option(..., "--type", help="Meter type T in hex, e.g. 10"),
    address: str = typer.Option(..., "--address", help="14 digits as on the nameplate"),
    action: cjt188.ValveAction = typer.Option(..., "--action"),
    ser: int = typer.Option(0, "--ser", min=0, max=255, help="Sequence number SER"),
    no_preamble: bool = typer.Option(False, "--no-preamble", help="Omit the FE bytes"),
) -> None:
    """Valve control (C=04H, DI A017): 55H open, 99H close."""
    kind = _hex_byte(meter_type, "--type")
    try:
        built = cjt188.encode_valve(kind, address, str(action), ser=ser, preamble=not no_preamble)
    except FrameError as exc:
        raise _fail(str(exc), EXIT_BAD_INPUT) from None
    _print_frame(built)
