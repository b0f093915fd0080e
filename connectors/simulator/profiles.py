"""Daily load profiles and the time-of-use bands of the simulated meters (pure).

Each profile is 24 hourly levels (a fraction of the meter's peak load), linearly
interpolated within the hour, evaluated in the meters' local time (Asia/Shanghai):

* ``residential``: low at night, a small morning bump, the evening peak 18-22 h;
* ``shop``: trading hours 9-21 h, flat and high, little at night;
* ``office``: weekdays 8-18 h, a lunch dip, nearly idle at night and at weekends;
* ``water``: flow (m3/h) with the morning (6-8 h) and evening (18-21 h) peaks of a household.

A meter's own peak (kW or m3/h) and a deterministic per-hour wobble come from the fleet
seed, so the same seed always gives the same consumption.

TOU bands of the simulators (a plausible Shanghai-style schedule, not a tariff):
valley 23-08 h, peak 08-10, 11-12, 17-19, 21-22 h, sharp 10-11 and 19-21 h, flat 12-17 and
22-23 h. Every boundary is a whole hour.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from contracts.bands import Band

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
ProfileName = Literal["residential", "shop", "office", "water"]
PROFILES: tuple[ProfileName, ...] = ("residential", "shop", "office", "water")

_V, _P, _S, _F = "valley", "peak", "sharp", "flat"
BAND_BY_HOUR: tuple[Band, ...] = (
    _V, _V, _V, _V, _V, _V, _V, _V,      # 00-08
    _P, _P, _S, _P,                      # 08-12
    _F, _F, _F, _F, _F,                  # 12-17
    _P, _P, _S, _S, _P, _F, _V,          # 17-24
)  # type: ignore[assignment]

_SHAPES: dict[ProfileName, str] = {
    "residential": "0.20 0.15 0.12 0.12 0.12 0.15 0.30 0.45 0.35 0.25 0.22 0.25 "
                   "0.30 0.25 0.22 0.25 0.35 0.55 0.85 1.00 0.95 0.80 0.55 0.35",
    "shop": "0.08 0.08 0.08 0.08 0.08 0.08 0.10 0.15 0.40 0.85 0.95 1.00 "
            "1.00 0.95 0.95 0.95 0.95 1.00 1.00 0.95 0.85 0.50 0.12 0.08",
    "office": "0.05 0.05 0.05 0.05 0.05 0.05 0.08 0.30 0.85 1.00 1.00 0.90 "
              "0.70 0.90 1.00 1.00 0.95 0.80 0.35 0.12 0.08 0.06 0.05 0.05",
    "water": "0.02 0.01 0.01 0.01 0.02 0.10 0.70 1.00 0.60 0.25 0.20 0.25 "
             "0.35 0.20 0.15 0.15 0.20 0.35 0.80 0.90 0.70 0.40 0.15 0.05",
}
SHAPES: dict[ProfileName, tuple[Decimal, ...]] = {
    name: tuple(Decimal(v) for v in levels.split()) for name, levels in _SHAPES.items()
}
WEEKEND_OFFICE = Decimal("0.08")


def band_of(moment: datetime) -> Band:
    """The TOU band of an aware moment (in Asia/Shanghai local time)."""
    return BAND_BY_HOUR[moment.astimezone(LOCAL_TZ).hour]


def unit_fraction(seed: int, *parts: object) -> Decimal:
    """A deterministic number in [0, 1) from the seed and the parts."""
    digest = hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).digest()
    return Decimal(int.from_bytes(digest[:6], "big")) / Decimal(2**48)


def level(profile: ProfileName, moment: datetime) -> Decimal:
    """Fraction of the peak load (0..1) at ``moment``, from the hourly shape."""
    local = moment.astimezone(LOCAL_TZ)
    if profile == "office" and local.weekday() >= 5:
        return WEEKEND_OFFICE
    shape = SHAPES[profile]
    here, after = shape[local.hour], shape[(local.hour + 1) % 24]
    within = Decimal(local.minute * 60 + local.second) / 3600
    return here + (after - here) * within


def load(profile: ProfileName, peak: Decimal, moment: datetime, seed: int, meter: str) -> Decimal:
    """Load (kW, or m3/h for water) of one meter at ``moment``: shape x peak x wobble.

    The wobble (0.8..1.2) is fixed per meter and local hour, so repeated runs agree."""
    local = moment.astimezone(LOCAL_TZ)
    wobble = Decimal("0.8") + Decimal("0.4") * unit_fraction(
        seed, meter, local.date().isoformat(), local.hour)
    return level(profile, moment) * peak * wobble


def peak_of(profile: ProfileName, seed: int, meter: str) -> Decimal:
    """The meter's own peak: kW for electricity, m3/h for water."""
    ranges = {"residential": ("2.0", "6.0"), "shop": ("4.0", "15.0"),
              "office": ("10.0", "40.0"), "water": ("0.3", "1.2")}
    low, high = (Decimal(v) for v in ranges[profile])
    return (low + (high - low) * unit_fraction(seed, meter, "peak")).quantize(Decimal("0.01"))
