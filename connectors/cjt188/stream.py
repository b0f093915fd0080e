"""CJ/T 188-2004 stream parser: bytes from an M-Bus/RS-485 line in, frames out.

Frames are found by their §5.1 shape (68, T, seven address bytes, C, L), checked
by CS and the 16H end (§5.1.7), and skipped byte by byte when damaged so the next
frame after garbage is still found. FE wake-up bytes (§6.1) before a frame are not
reported; any other byte outside a frame is reported as :class:`Corrupt`.
"""

from __future__ import annotations

from datetime import tzinfo

from connectors.cjt188.codec import Frame, decode
from connectors.cjt188.frame import HEADER_LEN, frame_length, verify
from connectors.codec_quirks import DEFAULT_QUIRKS, CodecQuirks
from connectors.codec_stream import Corrupt, StreamScanner

__all__ = ["Corrupt", "StreamParser"]


class StreamParser(StreamScanner[Frame]):
    """``feed(bytes) -> list[Frame | Corrupt]``; call ``flush()`` when the line is quiet."""

    def __init__(
        self, *, tz: tzinfo | None = None, quirks: CodecQuirks = DEFAULT_QUIRKS
    ) -> None:
        def probe(head: bytes) -> int | None:
            if len(head) < HEADER_LEN:
                return None
            return frame_length(head, quirks=quirks)

        def interpret(frame: bytes) -> Frame:
            return decode(frame, tz=tz, quirks=quirks)

        super().__init__(probe, verify, interpret)
