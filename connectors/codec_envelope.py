"""The frame envelope DL/T 645-2007 and CJ/T 188 share, checked once.

Both protocols frame a message as optional FE wake-up bytes, 0x68, a header whose last byte
is the data length L, the data, a checksum (the sum modulo 256 of every byte from the first
0x68 through the data) and 0x16 (DL/T 645-2007 §7.1; CJ/T 188-2018 §6.2). The checks run in
the same order for both, so a broken frame gets the same kind of error whichever meter sent
it; each protocol passes its own error class, header size and length rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from connectors.codec_errors import ErrorKind, FrameError

START = 0x68
END = 0x16
WAKEUP = 0xFE
DIRECTION_BIT = 0x80
ABNORMAL_BIT = 0x40


class ControlCode:
    """The control byte both standards share (DL/T 645-2007 §7.1, CJ/T 188 §5.1): D7 the
    direction (1: sent by the meter), D6 an abnormal reply, the function code below them
    (``FUNCTION_MASK`` wide)."""

    control: int
    FUNCTION_MASK: ClassVar[int] = 0x3F

    @property
    def from_meter(self) -> bool:
        return bool(self.control & DIRECTION_BIT)

    @property
    def direction(self) -> str:
        return "response" if self.from_meter else "request"

    @property
    def abnormal(self) -> bool:
        return bool(self.control & ABNORMAL_BIT)

    @property
    def function(self) -> int:
        return self.control & self.FUNCTION_MASK


def checksum(body: bytes | bytearray) -> int:
    """The arithmetic sum modulo 256 of the bytes from the first 0x68 through the data."""
    return sum(body) & 0xFF


def strip_preamble(raw: bytes) -> bytes:
    """The bytes after any leading FE wake-up bytes."""
    index = 0
    while index < len(raw) and raw[index] == WAKEUP:
        index += 1
    return raw[index:]


def verify_end(frame: bytes, error: type[FrameError]) -> None:
    """End byte and checksum of a frame of the right length."""
    if frame[-1] != END:
        raise error(ErrorKind.DELIMITER, f"missing end 0x16, got 0x{frame[-1]:02X}")
    expected = checksum(frame[:-2])
    if frame[-2] != expected:
        raise error(
            ErrorKind.CHECKSUM, f"bad checksum: expected 0x{expected:02X}, got 0x{frame[-2]:02X}"
        )


def checked_frame(raw: bytes, *, error: type[FrameError], header_len: int,
                  frame_length: Callable[[bytes], int]) -> bytes:
    """Exactly one frame (after any FE bytes), its envelope checked in order: the start
    0x68, the header, L against the frame size, the end 0x16, the checksum."""
    frame = strip_preamble(bytes(raw))
    min_len = header_len + 2  # + CS 16
    if not frame:
        raise error(ErrorKind.TRUNCATED, f"no frame: need at least {min_len} bytes",
                    needed=min_len)
    if frame[0] != START:
        raise error(ErrorKind.DELIMITER, f"missing start 0x68, got 0x{frame[0]:02X}")
    if len(frame) < header_len:
        needed = min_len - len(frame)
        raise error(ErrorKind.TRUNCATED,
                    f"truncated frame: {len(frame)} bytes, need at least {needed} more",
                    needed=needed)
    total = frame_length(frame)
    length = frame[header_len - 1]
    if len(frame) < total:
        needed = total - len(frame)
        raise error(ErrorKind.TRUNCATED,
                    f"truncated frame: L={length} needs {total} bytes, got {len(frame)} "
                    f"({needed} more needed)", needed=needed)
    if len(frame) > total:
        raise error(ErrorKind.LENGTH,
                    f"bad length: L={length} gives a {total}-byte frame, got {len(frame)} bytes")
    verify_end(frame, error)
    return frame
