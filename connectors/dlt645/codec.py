"""DL/T 645-2007 codec: whole frames to messages and back (the public entry points).

``decode`` checks the link layer (DL/T 645-2007 §7.1) and interprets the data
(§7.2 read, §7.7 broadcast time, relay control 0x1C); the ``encode_*`` helpers
build master requests and the meter-side replies used by simulators.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from connectors.codec_quirks import DEFAULT_QUIRKS, CodecQuirks
from connectors.dlt645.frame import (
    BROADCAST,
    Dlt645Control,
    Function,
    LinkFrame,
    decode_link,
    encode_link,
    strip_preamble,
)
from connectors.dlt645.identifiers import Value, parse_di
from connectors.dlt645.messages import (
    Body,
    ErrorResponse,
    ReadRequest,
    ReadResponse,
    RelayAction,
    RelayCommand,
    RelayResponse,
    TimeSync,
    decode_body,
    encode_body,
)


@dataclass(frozen=True)
class Frame(Dlt645Control):
    """A decoded DL/T 645 frame: address, control code and the interpreted body."""

    address: str
    control: int
    body: Body
    #: the frame bytes as received (from the first 0x68 to 0x16), empty when built locally
    raw: bytes = field(default=b"", compare=False, repr=False)


def decode(
    raw: bytes, *, tz: tzinfo | None = None, quirks: CodecQuirks = DEFAULT_QUIRKS
) -> Frame:
    """One frame (FE preamble optional) -> :class:`Frame`; raises ``Dlt645Error``.

    ``tz`` is the zone of the meter clock (default ``quirks.meter_tz``,
    Asia/Shanghai); every decoded datetime is aware.
    """
    link = decode_link(raw, quirks=quirks)
    body = decode_body(link, quirks.clock_zone(tz))
    return Frame(link.address, link.control, body, strip_preamble(bytes(raw)))


def encode(
    frame: Frame,
    *,
    preamble: bool = True,
    tz: tzinfo | None = None,
    quirks: CodecQuirks = DEFAULT_QUIRKS,
) -> bytes:
    """:class:`Frame` -> bytes. The control code is derived from the body."""
    control, data = encode_body(frame.body, quirks.clock_zone(tz))
    return encode_link(LinkFrame(frame.address, control, data), preamble=preamble, quirks=quirks)


def _encode(
    address: str, body: Body, preamble: bool, tz: tzinfo | None, quirks: CodecQuirks
) -> bytes:
    control, data = encode_body(body, quirks.clock_zone(tz))
    return encode_link(LinkFrame(address, control, data), preamble=preamble, quirks=quirks)


def _di(di: int | str) -> int:
    return parse_di(di) if isinstance(di, str) else di


# -- master side -----------------------------------------------------------------------------


def encode_read(
    address: str, di: int | str, *, preamble: bool = True, quirks: CodecQuirks = DEFAULT_QUIRKS
) -> bytes:
    """§7.2 read request (C=0x11, L=4) for ``di`` (e.g. ``"00010000"``)."""
    return _encode(address, ReadRequest(_di(di)), preamble, None, quirks)


def encode_relay(
    address: str,
    action: RelayAction | str,
    *,
    password_level: int = 0x02,
    password: str = "000000",
    operator: str = "00000000",
    expires: datetime | None = None,
    preamble: bool = True,
    tz: tzinfo | None = None,
    quirks: CodecQuirks = DEFAULT_QUIRKS,
) -> bytes:
    """Relay control (C=0x1C, L=0x10); ``password`` is P2P1P0 and ``operator`` C3..C0 in hex."""
    body = RelayCommand(RelayAction(action), password_level, password, operator, expires)
    return _encode(address, body, preamble, tz, quirks)


def encode_time_sync(
    when: datetime,
    *,
    address: str = BROADCAST,
    preamble: bool = True,
    tz: tzinfo | None = None,
    quirks: CodecQuirks = DEFAULT_QUIRKS,
) -> bytes:
    """§7.7 broadcast time sync (C=0x08, data ssmmhhDDMMYY in the meter's zone)."""
    return _encode(address, TimeSync(when), preamble, tz, quirks)


# -- meter side (simulators) ---------------------------------------------------------------


def encode_read_response(
    address: str,
    di: int | str,
    value: Value,
    *,
    follow_up: bool = False,
    preamble: bool = True,
    quirks: CodecQuirks = DEFAULT_QUIRKS,
) -> bytes:
    """Normal read reply (C=0x91, or 0xB1 with ``follow_up``): DI + value."""
    return _encode(address, ReadResponse(_di(di), value, follow_up), preamble, None, quirks)


def encode_error_response(
    address: str,
    code: int,
    *,
    function: int = Function.READ,
    preamble: bool = True,
    quirks: CodecQuirks = DEFAULT_QUIRKS,
) -> bytes:
    """Abnormal reply (C = 0xC0 | function, e.g. 0xD1, 0xDC) with the ERR byte ``code``."""
    return _encode(address, ErrorResponse(function, code), preamble, None, quirks)


def encode_read_error(address: str, code: int, *, preamble: bool = True) -> bytes:
    """Abnormal read reply (C=0xD1) with ERR ``code``."""
    return encode_error_response(address, code, function=Function.READ, preamble=preamble)


def encode_relay_response(
    address: str, *, preamble: bool = True, quirks: CodecQuirks = DEFAULT_QUIRKS
) -> bytes:
    """Normal relay reply (C=0x9C, L=0)."""
    return _encode(address, RelayResponse(), preamble, None, quirks)


def encode_relay_error(address: str, code: int, *, preamble: bool = True) -> bytes:
    """Abnormal relay reply (C=0xDC) with ERR ``code``."""
    return encode_error_response(address, code, function=Function.RELAY, preamble=preamble)


def looks_like(raw: bytes) -> bool:
    """Whether ``raw`` has the DL/T 645 shape (68, 6 bytes, 68) after any FE bytes."""
    frame = strip_preamble(raw)
    return len(frame) >= 8 and frame[0] == 0x68 and frame[7] == 0x68
