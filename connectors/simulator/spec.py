"""Fleet declarations as data: how many meters of which protocol and profile.

A spec (YAML or dict)::

    seed: 7
    prefix: ""              # optional, put before every meter id (several fleets on a broker)
    speed: 3600             # simulated seconds per real second
    start: "2026-07-01T00:00:00+08:00"   # optional; default: now
    groups:
      - {protocol: modbus, count: 50, profile: residential}   # acrel-ddsy1352 registers
      - {protocol: dlt645, count: 50, profile: [residential, shop, office]}
      - {protocol: cjt188, count: 50}                   # water
      - {protocol: mqtt, count: 50, profile: [office, water]}

``profile`` may be a list: meters of the group take the profiles in turn. A ``water``
profile makes a water meter; CJ/T 188 meters are always water. :func:`mix_spec` builds a
spec from ``--meters N --mix modbus=1,dlt645=1,cjt188=1,mqtt=1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.simulator.meter import SimMeter
from connectors.simulator.profiles import PROFILES, ProfileName

PREFIX = {"modbus": "SIM-MB", "dlt645": "SIM-DL", "cjt188": "SIM-CJ", "mqtt": "SIM-MQ"}
DEFAULT_PROFILES: dict[str, list[ProfileName]] = {
    "modbus": ["residential", "shop", "office"],
    "dlt645": ["residential", "shop", "office"],
    "cjt188": ["water"],
    "mqtt": ["residential", "office", "water"],
}
MODBUS_UNITS_PER_BUS = 247


class SpecError(ValueError):
    pass


@dataclass(frozen=True)
class Group:
    protocol: str
    count: int
    profiles: tuple[ProfileName, ...]


def parse_spec(body: dict[str, Any]) -> tuple[int, list[Group]]:
    seed = int(body.get("seed", 1))
    groups = []
    for i, raw in enumerate(body.get("groups") or []):
        protocol = raw.get("protocol")
        if protocol not in PREFIX:
            raise SpecError(f"groups[{i}].protocol: one of {', '.join(PREFIX)}")
        count = int(raw.get("count", 0))
        if count < 0:
            raise SpecError(f"groups[{i}].count: must be >= 0")
        profile = raw.get("profile") or DEFAULT_PROFILES[protocol]
        profiles = tuple(profile if isinstance(profile, list) else [profile])
        for p in profiles:
            if p not in PROFILES:
                raise SpecError(f"groups[{i}].profile: {p!r} is not one of {', '.join(PROFILES)}")
        if protocol == "cjt188" and profiles != ("water",):
            raise SpecError(f"groups[{i}].profile: CJ/T 188 meters are water meters")
        groups.append(Group(protocol, count, profiles))
    return seed, groups


def mix_spec(meters: int, mix: str, seed: int = 1) -> dict[str, Any]:
    """``mix`` like ``modbus=1,dlt645=1,cjt188=1,mqtt=1`` (weights) -> a spec of N meters."""
    weights: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in mix.split(","))):
        name, _, weight = part.partition("=")
        if name not in PREFIX:
            raise SpecError(f"--mix: {name!r} is not one of {', '.join(PREFIX)}")
        weights[name] = int(weight or 1)
    total = sum(weights.values())
    if total <= 0:
        raise SpecError("--mix: weights must add up to more than zero")
    counts = {name: meters * w // total for name, w in weights.items()}
    for name in list(weights)[: meters - sum(counts.values())]:
        counts[name] += 1
    return {"seed": seed, "groups": [{"protocol": n, "count": c} for n, c in counts.items()]}


def address_of(protocol: str, index: int) -> str:
    """Bus address of the ``index``-th meter (1-based) of a protocol."""
    if protocol == "modbus":
        return str((index - 1) % MODBUS_UNITS_PER_BUS + 1)
    if protocol == "dlt645":
        return f"{index:012d}"
    if protocol == "cjt188":
        return f"{index:014d}"
    return ""


def build_meters(body: dict[str, Any], start: datetime) -> list[SimMeter]:
    seed, groups = parse_spec(body)
    prefix = str(body.get("prefix", ""))
    meters: list[SimMeter] = []
    counters = dict.fromkeys(PREFIX, 0)
    for group in groups:
        for n in range(group.count):
            counters[group.protocol] += 1
            index = counters[group.protocol]
            profile = group.profiles[n % len(group.profiles)]
            meters.append(SimMeter(
                meter_id=f"{prefix}{PREFIX[group.protocol]}-{index:04d}", protocol=group.protocol,
                commodity="water" if profile == "water" else "electricity", profile=profile,
                address=address_of(group.protocol, index), seed=seed, last=start))
    return meters
