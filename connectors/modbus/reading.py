"""Results of polling one meter: a :class:`Reading` or a :class:`ReadError`.

Values are ``Decimal`` in the unit the register map declares; timestamps are
timezone-aware. ``to_dict`` gives the JSON form (decimal values as strings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from contracts.bands import BANDS

#: Quantities every map names the same way, in output order.
STANDARD_FIELDS = (
    "energy_kwh",
    "sharp",
    "peak",
    "flat",
    "valley",
    "voltage_v",
    "current_a",
    "power_kw",
    "pf",
)


def _check_aware(ts: datetime) -> None:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware")


@dataclass(frozen=True)
class Reading:
    """Values read from one meter at one moment."""

    meter: str
    model: str
    unit: int
    ts: datetime
    values: Mapping[str, Decimal] = field(default_factory=dict)
    ok: Literal[True] = True

    def __post_init__(self) -> None:
        _check_aware(self.ts)

    def get(self, name: str) -> Decimal | None:
        return self.values.get(name)

    @property
    def energy_kwh(self) -> Decimal | None:
        return self.values.get("energy_kwh")

    @property
    def voltage_v(self) -> Decimal | None:
        return self.values.get("voltage_v")

    @property
    def current_a(self) -> Decimal | None:
        return self.values.get("current_a")

    @property
    def power_kw(self) -> Decimal | None:
        return self.values.get("power_kw")

    @property
    def pf(self) -> Decimal | None:
        return self.values.get("pf")

    @property
    def bands(self) -> dict[str, Decimal]:
        """Time-of-use band registers present on this meter (sharp/peak/flat/valley)."""
        return {b: self.values[b] for b in BANDS if b in self.values}

    def to_dict(self) -> dict[str, str | int]:
        out: dict[str, str | int] = {
            "meter": self.meter,
            "model": self.model,
            "unit": self.unit,
            "ts": self.ts.isoformat(),
        }
        for name in STANDARD_FIELDS:
            if name in self.values:
                out[name] = str(self.values[name])
        for name in sorted(set(self.values) - set(STANDARD_FIELDS)):
            out[name] = str(self.values[name])
        return out


@dataclass(frozen=True)
class ReadError:
    """A meter that could not be read, with the reason (returned, never raised)."""

    meter: str
    model: str
    unit: int
    ts: datetime
    reason: str
    register: int | None = None
    ok: Literal[False] = False

    def __post_init__(self) -> None:
        _check_aware(self.ts)

    def to_dict(self) -> dict[str, str | int]:
        out: dict[str, str | int] = {
            "meter": self.meter,
            "model": self.model,
            "unit": self.unit,
            "ts": self.ts.isoformat(),
            "error": self.reason,
        }
        if self.register is not None:
            out["register"] = f"0x{self.register:04X}"
        return out


PollResult = Reading | ReadError
