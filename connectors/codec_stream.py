"""Resynchronising stream scanner shared by the DL/T 645 and CJ/T 188 parsers.

Both protocols frame data the same way (0x68 start, a length byte, sum checksum,
0x16 end, optional FE wake-up bytes), so one scanner finds frames in a byte stream
and the protocol supplies three functions:

* ``probe(head)``: the total frame length once enough header bytes are visible
  (``None`` while too few are), raising ``FrameError`` if the bytes cannot start a
  frame (wrong second 0x68, L over the limit);
* ``verify(candidate)``: checks end byte and checksum (raises ``FrameError``);
* ``decode(candidate)``: interprets a verified frame (raises ``FrameError``).

Bytes that belong to no frame are reported as :class:`Corrupt` with the reason of
the first failure, so the connector can dead-letter them with their raw bytes. A
candidate that fails ``verify`` is skipped one byte at a time, so a real frame
hidden after a false start is still found; a verified frame whose content cannot
be interpreted is reported whole. The scanner is sans-IO: ``feed`` bytes as they
arrive, and ``flush`` when the line goes quiet (end of a reply) to resolve a
candidate still waiting for bytes that will never come.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from connectors.codec_errors import FrameError

START = 0x68
WAKEUP = 0xFE
_MAX_WAKEUP_KEPT = 16

F = TypeVar("F")


@dataclass(frozen=True)
class Corrupt:
    """Bytes that are not a usable frame: noise, a damaged frame, or an uninterpretable one."""

    raw: bytes
    reason: str
    error: FrameError | None = field(default=None, compare=False)


class _NeedMore(Exception):
    pass


class StreamScanner(Generic[F]):
    """Feed bytes, get decoded frames and :class:`Corrupt` runs, in stream order."""

    def __init__(
        self,
        probe: Callable[[bytes], int | None],
        verify: Callable[[bytes], None],
        decode: Callable[[bytes], F],
    ) -> None:
        self._probe = probe
        self._verify = verify
        self._decode = decode
        self._buf = bytearray()

    @property
    def pending(self) -> bytes:
        """Bytes held back while waiting for the rest of a possible frame."""
        return bytes(self._buf)

    def feed(self, data: bytes) -> list[F | Corrupt]:
        """Add received bytes; return every frame (and corrupt run) now complete."""
        self._buf += data
        return self._scan(final=False)

    def flush(self) -> list[F | Corrupt]:
        """The line is quiet: resolve everything held back (incomplete frames are corrupt)."""
        return self._scan(final=True)

    def _scan(self, *, final: bool) -> list[F | Corrupt]:
        buf = self._buf
        out: list[F | Corrupt] = []
        junk = bytearray()
        reason: list[str | FrameError] = []

        def flush_junk() -> None:
            if junk:
                first = reason[0] if reason else "noise: no frame start"
                err = first if isinstance(first, FrameError) else None
                out.append(Corrupt(bytes(junk), str(first), err))
                junk.clear()
                reason.clear()

        pos = 0
        while True:
            start = buf.find(START, pos)
            if start < 0:
                end = len(buf)
                if not final:  # a trailing FE run may be the preamble of the next frame
                    kept = 0
                    while end > pos and buf[end - 1] == WAKEUP and kept < _MAX_WAKEUP_KEPT:
                        end -= 1
                        kept += 1
                if end > pos and not reason:
                    reason.append("noise: no frame start")
                junk += buf[pos:end]
                pos = end
                break
            pre = start
            while pre > pos and buf[pre - 1] == WAKEUP:
                pre -= 1
            if pre > pos and not reason:
                reason.append("noise before frame start")
            junk += buf[pos:pre]
            try:
                total = self._probe(bytes(buf[start : start + 16]))
                if total is None or len(buf) - start < total:
                    raise _NeedMore
                candidate = bytes(buf[start : start + total])
                self._verify(candidate)
            except _NeedMore:
                if not final:
                    pos = pre
                    break
                needed = "?" if total is None else str(total - (len(buf) - start))
                reason.append(f"truncated frame at end of stream ({needed} more bytes needed)")
                junk += buf[pre : start + 1]
                pos = start + 1
                continue
            except FrameError as exc:
                reason.append(exc)
                junk += buf[pre : start + 1]
                pos = start + 1
                continue
            flush_junk()
            try:
                out.append(self._decode(candidate))
            except FrameError as exc:
                out.append(Corrupt(candidate, str(exc), exc))
            pos = start + total
        flush_junk()
        del buf[:pos]
        return out
