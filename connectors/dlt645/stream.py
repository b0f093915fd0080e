"""DL/T 645-2007 stream parser: bytes from a serial line or socket in, frames out.

Frames are found by their §7.1 shape (68, six address bytes, 68, C, L), checked by
CS (§7.1.6) and the 0x16 end, and skipped byte by byte when damaged so the next
frame after garbage is still found. FE wake-up bytes (§5.1.2) before a frame are
not reported; any other byte outside a frame is reported as :class:`Corrupt`.
"""

from __future__ import annotations

from datetime import tzinfo

from connectors.codec_errors import Dlt645Error, ErrorKind
from connectors.codec_quirks import DEFAULT_QUIRKS, CodecQuirks
from connectors.codec_stream import Corrupt, StreamScanner
from connectors.dlt645.codec import Frame, decode
from connectors.dlt645.frame import HEADER_LEN, START, frame_length, verify

__all__ = ["Corrupt", "StreamParser"]


class StreamParser(StreamScanner[Frame]):
    """``feed(bytes) -> list[Frame | Corrupt]``; call ``flush()`` when the line is quiet."""

    def __init__(
        self, *, tz: tzinfo | None = None, quirks: CodecQuirks = DEFAULT_QUIRKS
    ) -> None:
        def probe(head: bytes) -> int | None:
            if len(head) > 7 and head[7] != START:
                raise Dlt645Error(
                    ErrorKind.DELIMITER, f"missing second 0x68, got 0x{head[7]:02X}"
                )
            if len(head) < HEADER_LEN:
                return None
            return frame_length(head, quirks=quirks)

        def interpret(frame: bytes) -> Frame:
            return decode(frame, tz=tz, quirks=quirks)

        super().__init__(probe, verify, interpret)
