"""CJ/T 188-2004 link layer: the frame, meter type, address, control code, checksum.

CJ/T 188-2004 §5.1 frame format (table 2)::

    [FE ...] 68 T A0 A1 A2 A3 A4 A5 A6 C L DATA(L bytes) CS 16

* §5.1.2 meter type T (table 3): 10H-19H water, 20H-29H heat, 30H-39H gas, 40H-49H other.
* §5.1.3 address A0..A6: 14 BCD digits, low byte first (A5 A6 are the manufacturer
  code); ``AAAAAAAAAAAAAA`` is the broadcast address (point-to-point use only).
* §5.1.4 control code: D7 direction (1 = from the meter), D6 1 = abnormal
  communication, D5..D0 function (01 read data, 04 write data, 09 read key version,
  03 read address, 15 write address, 16 write meter base number).
* §5.1.5 L: bytes of DATA (<= 64H for reads, <= 32H for writes).
* §5.1.7 CS: sum modulo 256 of every byte from 68 through DATA; then 16H.
* §6.1 the sender precedes the frame with 2~4 FE bytes. There is no data offset.
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
from connectors.codec_errors import Cjt188Error, ErrorKind
from connectors.codec_quirks import DEFAULT_QUIRKS, CodecQuirks

HEADER_LEN = 11  # 68 T A0..A6 C L
MIN_FRAME_LEN = HEADER_LEN + 2
BROADCAST = "AAAAAAAAAAAAAA"

FUNCTION_MASK = 0x3F


class Function(IntEnum):
    """CJ/T 188-2004 §5.1.4 function codes (D5..D0)."""

    READ = 0x01
    READ_ADDRESS = 0x03
    WRITE = 0x04
    READ_KEY_VERSION = 0x09
    WRITE_ADDRESS = 0x15
    WRITE_BASE = 0x16


def encode_address(address: str) -> bytes:
    """14 digits as on the nameplate (most significant first) -> A0..A6."""
    text = address.strip().upper()
    if text == BROADCAST:
        return bytes([0xAA] * 7)
    if len(text) != 14:
        raise Cjt188Error(
            ErrorKind.VALUE, f"address must be 14 digits as on the nameplate: {address!r}"
        )
    return digits_to_le(text, error=Cjt188Error, what="address")


def decode_address(raw: bytes) -> str:
    """A0..A6 -> 14 digits as on the nameplate (or the broadcast address)."""
    if raw == bytes([0xAA] * 7):
        return BROADCAST
    return le_to_digits(raw, error=Cjt188Error, what="address A")


@dataclass(frozen=True)
class LinkFrame(ControlCode):
    """One CJ/T 188 frame: meter type, address, control code and DATA."""

    FUNCTION_MASK: ClassVar[int] = FUNCTION_MASK

    meter_type: int
    address: str
    control: int
    data: bytes


def encode_link(
    frame: LinkFrame, *, preamble: bool = True, quirks: CodecQuirks = DEFAULT_QUIRKS
) -> bytes:
    """§5.1: the frame bytes, optionally preceded by the FE wake-up bytes (§6.1)."""
    for name, value in (("meter type", frame.meter_type), ("control code", frame.control)):
        if not 0 <= value <= 0xFF:
            raise Cjt188Error(ErrorKind.VALUE, f"{name} {value} is not one byte")
    if len(frame.data) > quirks.cjt188_max_data_len:
        raise Cjt188Error(
            ErrorKind.LENGTH,
            f"data field of {len(frame.data)} bytes exceeds {quirks.cjt188_max_data_len}",
        )
    body = bytearray([START, frame.meter_type])
    body += encode_address(frame.address)
    body += bytes([frame.control, len(frame.data)])
    body += frame.data
    body += bytes([checksum(body), END])
    wake = bytes([WAKEUP] * quirks.cjt188_wakeup_bytes) if preamble else b""
    return wake + bytes(body)


def frame_length(head: bytes, *, quirks: CodecQuirks = DEFAULT_QUIRKS) -> int:
    """Total length of the frame starting at ``head[0]`` (needs the 11 header bytes)."""
    if head[0] != START:
        raise Cjt188Error(ErrorKind.DELIMITER, f"missing start 0x68, got 0x{head[0]:02X}")
    length = head[10]
    if length > quirks.cjt188_max_data_len:
        raise Cjt188Error(
            ErrorKind.LENGTH,
            f"length L={length} exceeds the maximum of {quirks.cjt188_max_data_len}",
        )
    return MIN_FRAME_LEN + length


def verify(frame: bytes) -> None:
    """End byte and checksum of a frame of the right length."""
    verify_end(frame, Cjt188Error)


def decode_link(raw: bytes, *, quirks: CodecQuirks = DEFAULT_QUIRKS) -> LinkFrame:
    """Exactly one frame (optionally after FE bytes) -> :class:`LinkFrame`."""
    frame = checked_frame(raw, error=Cjt188Error, header_len=HEADER_LEN,
                          frame_length=lambda head: frame_length(head, quirks=quirks))
    return LinkFrame(
        meter_type=frame[1],
        address=decode_address(frame[2:9]),
        control=frame[9],
        data=frame[HEADER_LEN:-2],
    )
