"""One simulated meter: cumulative registers, the relay or valve, the commands it applied.

Pure and clock-driven: :meth:`SimMeter.advance` integrates the load profile from the last
moment it was called up to ``now`` (steps of at most 15 minutes, never across a whole hour,
so each step lies in one TOU band) and adds the energy or volume to the total and to the
band of that hour. While the relay is open (or the valve closed) nothing is added.
Registers are exposed truncated to 0.01 kWh / 0.01 m3, as meters display them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Literal

from connectors.simulator.profiles import (
    ProfileName,
    band_of,
    load,
    peak_of,
    unit_fraction,
)
from contracts.bands import BANDS, Band

STEP = timedelta(minutes=15)
CENT = Decimal("0.01")
Commodity = Literal["electricity", "water"]


def _next_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


@dataclass
class SimMeter:
    meter_id: str
    protocol: str
    commodity: Commodity
    profile: ProfileName
    address: str
    seed: int
    last: datetime
    total: Decimal = Decimal(0)
    bands: dict[Band, Decimal] = field(default_factory=dict)
    supply_on: bool = True
    online: bool = True
    applied: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.last.tzinfo is None:
            raise ValueError("simulated meters need a timezone-aware start")
        self.peak = peak_of(self.profile, self.seed, self.meter_id)
        if not self.total:
            base = Decimal(100 + int(unit_fraction(self.seed, self.meter_id, "start") * 4900))
            self.total = base if self.commodity == "electricity" else base / 10
        if self.commodity == "electricity" and not self.bands:
            split = (Decimal("0.10"), Decimal("0.30"), Decimal("0.35"))
            parts = [self.total * s for s in split]
            self.bands = dict(zip(BANDS, [*parts, self.total - sum(parts)], strict=True))

    @property
    def water(self) -> bool:
        return self.commodity == "water"

    def load_now(self, now: datetime) -> Decimal:
        """kW (or m3/h) drawn at ``now``: zero while the supply is cut."""
        if not self.supply_on:
            return Decimal(0)
        return load(self.profile, self.peak, now, self.seed, self.meter_id)

    def advance(self, now: datetime) -> None:
        t = self.last
        while t < now:
            end = min(now, t + STEP, _next_hour(t))
            if self.supply_on:
                hours = Decimal((end - t).total_seconds()) / 3600
                amount = load(self.profile, self.peak, t + (end - t) / 2, self.seed,
                              self.meter_id) * hours
                self.total += amount
                if not self.water:
                    band = band_of(t)
                    self.bands[band] = self.bands.get(band, Decimal(0)) + amount
            t = end
        self.last = max(self.last, now)

    def registers(self, now: datetime) -> tuple[Decimal, dict[str, Decimal]]:
        """Total and band registers at ``now`` (band registers empty for water)."""
        self.advance(now)
        total = self.total.quantize(CENT, rounding=ROUND_DOWN)
        bands: dict[str, Decimal] = {}
        if not self.water:
            for b in BANDS:
                bands[b] = self.bands.get(b, Decimal(0)).quantize(CENT, rounding=ROUND_DOWN)
        return total, bands

    def set_supply(self, on: bool, now: datetime) -> None:
        """Close (``on``) or open the relay / open or close the valve, at ``now``."""
        self.advance(now)
        self.supply_on = on

    def apply(self, command_id: str, action: str, now: datetime) -> tuple[str, str]:
        """Apply a disconnect/reconnect once; a repeated command id gets the first answer."""
        if command_id in self.applied:
            return self.applied[command_id]
        if action not in ("disconnect", "reconnect"):
            result = ("failed", f"unknown action {action!r}")
        else:
            self.set_supply(action == "reconnect", now)
            what = ("valve closed" if action == "disconnect" else "valve opened") if self.water \
                else ("relay tripped" if action == "disconnect" else "relay closed")
            result = ("applied", what)
        self.applied[command_id] = result
        return result
