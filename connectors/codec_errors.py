"""Errors of the sans-IO meter protocol codecs (DL/T 645-2007, CJ/T 188-2004).

Every codec raises only subclasses of :class:`FrameError`, itself a ``ValueError``,
so a caller can catch one type for "these bytes are not a frame I can use".
``kind`` names the class of problem so connectors can count and route failures
without parsing messages; the message itself says exactly what is wrong.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """What is wrong with the bytes."""

    CHECKSUM = "checksum"
    LENGTH = "length"
    DELIMITER = "delimiter"
    BCD = "bcd"
    TRUNCATED = "truncated"
    UNKNOWN_DI = "unknown-di"
    UNSUPPORTED = "unsupported"
    VALUE = "value"


class FrameError(ValueError):
    """Bytes that are not a valid frame, or a value that cannot be encoded.

    ``needed`` is set for :attr:`ErrorKind.TRUNCATED` errors: how many more bytes
    the frame needs.
    """

    protocol = "frame"

    def __init__(self, kind: ErrorKind, message: str, *, needed: int | None = None) -> None:
        self.kind = kind
        self.needed = needed
        super().__init__(f"{self.protocol}: {message}")


class Dlt645Error(FrameError):
    """A DL/T 645-2007 frame or value problem."""

    protocol = "DL/T 645"


class Cjt188Error(FrameError):
    """A CJ/T 188-2004 frame or value problem."""

    protocol = "CJ/T 188"
