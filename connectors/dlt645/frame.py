"""DL/T 645-2007 link layer: the frame, its address, control code and checksum.

DL/T 645-2007 §7.1 frame format::

    [FE ...] 68 A0 A1 A2 A3 A4 A5 68 C L DATA(L bytes) CS 16

* §7.1.2 address A0..A5: 12 BCD digits, low byte first; ``999999999999`` is the
  broadcast address and, for abbreviated addressing, high bytes may be ``AA``
  (a full ``AAAAAAAAAAAA`` is the wildcard used to read a meter of unknown address).
* §7.1.3 control code: D7 direction (1 = from the meter), D6 abnormal reply,
  D5 follow-up frame, D4..D0 function.
* §7.1.5 data: every byte is sent with 0x33 added (and removed on receipt).
* §7.1.6 CS: sum modulo 256 of every byte from the first 0x68 through the data.
* §5.1.2 wake-up: the sender may precede the frame with FE bytes.

:class:`LinkFrame` holds the data with the 0x33 offset already removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from connectors.codec_bcd import digits_to_le, le_to_digits
from connectors.codec_envelope import (
    END,
    START,
    WAKEUP,
    ControlCode,
    checked_frame,
    checksum,
    verify_end,
)
from connectors.codec_envelope import strip_preamble as strip_preamble  # public here too
from connectors.codec_errors import Dlt645Error, ErrorKind
from connectors.codec_quirks import DEFAULT_QUIRKS, CodecQuirks

OFFSET = 0x33
HEADER_LEN = 10  # 68 A0..A5 68 C L
MIN_FRAME_LEN = HEADER_LEN + 2  # + CS 16

BROADCAST = "999999999999"
WILDCARD = "AAAAAAAAAAAA"

FOLLOW_UP_BIT = 0x20
FUNCTION_MASK = 0x1F


class Function(IntEnum):
    """DL/T 645-2007 §7.1.3 function codes (D4..D0 of the control code)."""

    SECURITY = 0x03
    BROADCAST_TIME = 0x08
    READ = 0x11
    READ_FOLLOW_UP = 0x12
    READ_ADDRESS = 0x13
    WRITE = 0x14
    WRITE_ADDRESS = 0x15
    FREEZE = 0x16
    CHANGE_BAUD = 0x17
    CHANGE_PASSWORD = 0x18
    CLEAR_DEMAND = 0x19
    CLEAR_METER = 0x1A
    CLEAR_EVENTS = 0x1B
    RELAY = 0x1C
    MULTI_OUTPUT = 0x1D


def encode_address(address: str) -> bytes:
    """12 characters as on the nameplate (most significant first) -> A0..A5.

    Every byte is two decimal digits or ``AA`` (abbreviated addressing, §7.1.2:
    the wildcard bytes are the high-order ones).
    """
    text = address.strip().upper()
    if len(text) != 12:
        raise Dlt645Error(
            ErrorKind.VALUE, f"address must be 12 characters as on the nameplate: {address!r}"
        )
    pairs = [text[i : i + 2] for i in range(0, 12, 2)]
    seen_digits = False
    out = bytearray()
    for pair in reversed(pairs):  # low byte first on the wire
        if pair == "AA":
            out.append(0xAA)
            continue
        out += digits_to_le(pair, error=Dlt645Error, what="address")
    for pair in pairs:  # most significant first: AA bytes only as a prefix
        if pair == "AA" and seen_digits:
            raise Dlt645Error(
                ErrorKind.VALUE, f"wildcard AA bytes must be the high-order ones: {address!r}"
            )
        seen_digits = seen_digits or pair != "AA"
    return bytes(out)


def decode_address(raw: bytes) -> str:
    """A0..A5 -> 12 characters as on the nameplate (``AA`` wildcard bytes kept)."""
    out = []
    for index in range(5, -1, -1):
        byte = raw[index]
        if byte == 0xAA:
            out.append("AA")
        else:
            out.append(le_to_digits(bytes([byte]), error=Dlt645Error, what=f"address A{index}"))
    return "".join(out)


class Dlt645Control(ControlCode):
    """DL/T 645-2007's control byte: D5 says more frames follow (§7.1)."""

    FUNCTION_MASK: ClassVar[int] = FUNCTION_MASK

    @property
    def follow_up(self) -> bool:
        return bool(self.control & FOLLOW_UP_BIT)


@dataclass(frozen=True)
class LinkFrame(Dlt645Control):
    """One DL/T 645 frame: address, control code and DATA without the 0x33 offset."""

    address: str
    control: int
    data: bytes


def verify(frame: bytes) -> None:
    """End byte and checksum of a frame of the right length."""
    verify_end(frame, Dlt645Error)


def encode_link(
    frame: LinkFrame, *, preamble: bool = True, quirks: CodecQuirks = DEFAULT_QUIRKS
) -> bytes:
    """§7.1: the frame bytes, optionally preceded by the wake-up FE bytes (§5.1.2)."""
    if not 0 <= frame.control <= 0xFF:
        raise Dlt645Error(ErrorKind.VALUE, f"control code {frame.control} is not one byte")
    if len(frame.data) > quirks.dlt645_max_data_len:
        raise Dlt645Error(
            ErrorKind.LENGTH,
            f"data field of {len(frame.data)} bytes exceeds {quirks.dlt645_max_data_len}",
        )
    body = bytearray([START])
    body += encode_address(frame.address)
    body += bytes([START, frame.control, len(frame.data)])
    body += bytes((b + OFFSET) & 0xFF for b in frame.data)
    body += bytes([checksum(body), END])
    wake = bytes([WAKEUP] * quirks.dlt645_wakeup_bytes) if preamble else b""
    return wake + bytes(body)


def frame_length(head: bytes, *, quirks: CodecQuirks = DEFAULT_QUIRKS) -> int:
    """Total length of the frame starting at ``head[0]`` (needs the 10 header bytes).

    Raises for a header that cannot start a frame (missing 0x68, L too large).
    """
    if head[0] != START:
        raise Dlt645Error(ErrorKind.DELIMITER, f"missing start 0x68, got 0x{head[0]:02X}")
    if head[7] != START:
        raise Dlt645Error(
            ErrorKind.DELIMITER, f"missing second 0x68 after the address, got 0x{head[7]:02X}"
        )
    length = head[9]
    if length > quirks.dlt645_max_data_len:
        raise Dlt645Error(
            ErrorKind.LENGTH,
            f"length L={length} exceeds the maximum of {quirks.dlt645_max_data_len}",
        )
    return MIN_FRAME_LEN + length


def decode_link(raw: bytes, *, quirks: CodecQuirks = DEFAULT_QUIRKS) -> LinkFrame:
    """Exactly one frame (optionally after FE bytes) -> :class:`LinkFrame`.

    Checks, in order: the envelope (connectors.codec_envelope: start 0x68, enough bytes,
    L against the frame size, the end 0x16, CS), the second 0x68, then the BCD address.
    """
    frame = checked_frame(raw, error=Dlt645Error, header_len=HEADER_LEN,
                          frame_length=lambda head: frame_length(head, quirks=quirks))
    address = decode_address(frame[1:7])
    data = bytes((b - OFFSET) & 0xFF for b in frame[HEADER_LEN:-2])
    return LinkFrame(address=address, control=frame[8], data=data)
