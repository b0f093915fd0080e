"""Time-of-use bands: "HH:MM-HH:MM" windows that must cover the local day exactly once.

Windows are minute-resolution, end exclusive, and wrap midnight when the end is not after
the start ("22:00-06:00"). "24:00" may end a window. A band set is refused unless every
minute of the day belongs to exactly one band.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pipeline.billing.errors import TariffError

MINUTES_PER_DAY = 24 * 60
_WINDOW = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


@dataclass(frozen=True, slots=True)
class Window:
    """Minutes from local midnight; ``end`` exclusive, wrapping when ``end <= start``."""

    start: int
    end: int

    def minutes(self) -> range | list[int]:
        if self.end > self.start:
            return range(self.start, self.end)
        return [*range(self.start, MINUTES_PER_DAY), *range(0, self.end)]


def _minute(hh: str, mm: str, *, is_end: bool) -> int:
    h, m = int(hh), int(mm)
    if m > 59 or h > 24 or (h == 24 and (m != 0 or not is_end)):
        raise ValueError(f"{hh}:{mm} is not a time of day")
    return h * 60 + m


def parse_window(text: object) -> Window:
    """Parse "HH:MM-HH:MM"; raise ValueError with the reason."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a quoted 'HH:MM-HH:MM' window")
    match = _WINDOW.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not an 'HH:MM-HH:MM' window")
    start = _minute(match[1], match[2], is_end=False)
    end = _minute(match[3], match[4], is_end=True)
    if end == start:
        raise ValueError(f"{text!r} is empty (start equals end)")
    return Window(start, end)


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@dataclass(frozen=True, slots=True)
class BandSet:
    """A day partitioned into bands: sorted, non-wrapping ``(start, end, band)`` spans."""

    spans: tuple[tuple[int, int, str], ...]
    source: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(band for _, _, band in self.spans)

    def band_at(self, minute: int) -> str:
        """The band of a minute of the local day (0..1439)."""
        for start, end, band in self.spans:
            if start <= minute < end:
                return band
        raise AssertionError("band sets cover the whole day")  # pragma: no cover

    def boundaries(self) -> tuple[int, ...]:
        """Minutes of the day where a band may start (spans' starts after midnight)."""
        return tuple(start for start, _, _ in self.spans if start)


def build_band_set(windows: object, path: str) -> BandSet:
    """Validate ``{band: [windows]}`` covers the day exactly once; refuse with the field path."""
    if not isinstance(windows, Mapping) or not windows:
        raise TariffError(path, "must map band names to lists of 'HH:MM-HH:MM' windows")
    owner: list[str | None] = [None] * MINUTES_PER_DAY
    source: list[tuple[str, tuple[str, ...]]] = []
    for band, texts in windows.items():
        if not isinstance(band, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", band):
            raise TariffError(path, f"band name {band!r} must be lower-case letters/digits/_")
        if isinstance(texts, str) or not isinstance(texts, Sequence) or not texts:
            raise TariffError(f"{path}.{band}", "must be a list of 'HH:MM-HH:MM' windows")
        for i, text in enumerate(texts):
            where = f"{path}.{band}[{i}]"
            try:
                window = parse_window(text)
            except ValueError as exc:
                raise TariffError(where, str(exc)) from None
            for minute in window.minutes():
                other = owner[minute]
                if other is not None:
                    raise TariffError(where, f"{text!r} overlaps band {other!r} at {_hhmm(minute)}")
                owner[minute] = band
        source.append((band, tuple(str(t) for t in texts)))
    gaps = [m for m in range(MINUTES_PER_DAY) if owner[m] is None]
    if gaps:
        end = gaps[0]
        while end + 1 < MINUTES_PER_DAY and owner[end + 1] is None:
            end += 1
        raise TariffError(path, f"{_hhmm(gaps[0])}-{_hhmm(end + 1)} is not covered by any band")
    spans: list[tuple[int, int, str]] = []
    for minute, band in enumerate(owner):
        assert band is not None
        if spans and spans[-1][2] == band and spans[-1][1] == minute:
            spans[-1] = (spans[-1][0], minute + 1, band)
        else:
            spans.append((minute, minute + 1, band))
    return BandSet(tuple(spans), tuple(source))
