"""The time-of-use band names, in the order payloads and reports list them
(docs/contracts.md, docs/tariffs.md)."""

from __future__ import annotations

from typing import Literal

Band = Literal["sharp", "peak", "flat", "valley"]
BANDS: tuple[Band, ...] = ("sharp", "peak", "flat", "valley")
