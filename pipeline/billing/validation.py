"""Reading validation: accept, drop as duplicate, or reject with a stable reason code.

Rules (docs/contracts.md, rejected reading). A rejected reading never moves the baseline.
  out_of_order           older than the last accepted reading
  conflicting_duplicate  same timestamp as the last accepted one, other values
  out_of_range           negative or above the register maximum
  future_timestamp       later than ``now + max_future`` (when configured)
  register_decreased     lower than the last value and not a plausible rollover
  implausible_increase   rose faster than ``max_rate`` units per hour
The same timestamp with the same values is an idempotent duplicate, not an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from contracts.ids import meter_stopped_id, rejection_id
from pipeline.billing.instants import elapsed, utc
from pipeline.billing.reading import MeterConfig, Reading

OUT_OF_ORDER = "out_of_order"
CONFLICTING_DUPLICATE = "conflicting_duplicate"
OUT_OF_RANGE = "out_of_range"
FUTURE_TIMESTAMP = "future_timestamp"
REGISTER_DECREASED = "register_decreased"
IMPLAUSIBLE_INCREASE = "implausible_increase"
METER_STOPPED = "meter_stopped"


@dataclass(frozen=True, slots=True)
class Interval:
    """Consumption between two accepted readings of one meter, ready to rate."""

    meter_id: str
    start: datetime
    end: datetime
    units: Decimal
    band_units: Mapping[str, Decimal] | None = None
    rollover: bool = False


@dataclass(frozen=True, slots=True)
class Accepted:
    reading: Reading
    interval: Interval | None  # None for a meter's first reading (the baseline)


@dataclass(frozen=True, slots=True)
class Duplicate:
    reading: Reading


@dataclass(frozen=True, slots=True)
class Rejected:
    reading: Reading
    reason: str
    detail: str

    @property
    def id(self) -> str:
        return rejection_id(self.reading.meter_id, self.reading.ts, self.reason)


Outcome = Accepted | Duplicate | Rejected


@dataclass(frozen=True, slots=True)
class MeterStopped:
    """Alarm: the register has not moved for ``stopped_after`` while supply is on."""

    meter_id: str
    unchanged_since: datetime
    last_reading: datetime
    detected_at: datetime
    reason: str = METER_STOPPED

    @property
    def id(self) -> str:
        return meter_stopped_id(self.meter_id, self.unchanged_since)


@dataclass(frozen=True, slots=True)
class MeterState:
    """Per meter: the last accepted reading and since when its value has not changed."""

    meter_id: str
    last: Reading | None = None
    unchanged_since: datetime | None = None
    stopped_alarmed: bool = False


def _band_deltas(
    previous: Reading, current: Reading, config: MeterConfig
) -> dict[str, Decimal] | None:
    """Band register deltas when both readings carry the same band registers."""
    if not current.registers or set(previous.registers) != set(current.registers):
        return None
    deltas: dict[str, Decimal] = {}
    for band, now_value in current.registers.items():
        before = previous.registers[band]
        delta = now_value - before
        deltas[band] = delta if delta >= 0 else config.wrapped(before, now_value)
    return deltas


def _reject(
    state: MeterState, reading: Reading, reason: str, detail: str
) -> tuple[MeterState, Outcome]:
    return state, Rejected(reading, reason, detail)


def validate(
    state: MeterState, reading: Reading, config: MeterConfig, now: datetime
) -> tuple[MeterState, Outcome]:
    """Judge one reading against the meter's state; returns the new state and the outcome."""
    if (
        reading.value < 0
        or reading.value > config.register_max
        or any(v < 0 or v > config.register_max for v in reading.registers.values())
    ):
        return _reject(state, reading, OUT_OF_RANGE, f"outside 0..{config.register_max}")
    if config.max_future is not None and utc(reading.ts) > utc(now) + config.max_future:
        return _reject(state, reading, FUTURE_TIMESTAMP, f"later than {now.isoformat()}")
    last = state.last
    if last is None:
        return MeterState(reading.meter_id, reading, reading.ts), Accepted(reading, None)
    if utc(reading.ts) < utc(last.ts):
        return _reject(state, reading, OUT_OF_ORDER, f"older than {last.ts.isoformat()}")
    if utc(reading.ts) == utc(last.ts):
        if reading.same_values(last):
            return state, Duplicate(reading)
        return _reject(state, reading, CONFLICTING_DUPLICATE, f"{last.value} was accepted")
    span = elapsed(last.ts, reading.ts)
    delta = reading.value - last.value
    rollover = False
    if delta < 0:
        wrapped = config.wrapped(last.value, reading.value)
        if config.max_rate is None or not config.plausible(wrapped, span):
            return _reject(state, reading, REGISTER_DECREASED, f"{last.value} -> {reading.value}")
        delta, rollover = wrapped, True
    elif not config.plausible(delta, span):
        return _reject(
            state,
            reading,
            IMPLAUSIBLE_INCREASE,
            f"{delta} in {span} exceeds {config.max_rate} per hour",
        )
    interval = Interval(
        reading.meter_id,
        last.ts,
        reading.ts,
        delta,
        _band_deltas(last, reading, config),
        rollover,
    )
    if delta == 0 and state.unchanged_since is not None:
        new_state = replace(state, last=reading)
    else:
        new_state = MeterState(reading.meter_id, reading, reading.ts, stopped_alarmed=False)
    return new_state, Accepted(reading, interval)


def check_stopped(
    state: MeterState, config: MeterConfig, now: datetime, *, supply_on: bool
) -> tuple[MeterState, MeterStopped | None]:
    """Raise ``meter_stopped`` once when readings show no change for ``stopped_after``.

    The evidence is the readings themselves (first to last unchanged reading), so a meter
    that stopped reporting is not called stopped. Re-arms when the value moves again.
    """
    if (
        not supply_on
        or config.stopped_after is None
        or state.stopped_alarmed
        or state.last is None
        or state.unchanged_since is None
        or elapsed(state.unchanged_since, state.last.ts) < config.stopped_after
    ):
        return state, None
    alarm = MeterStopped(state.meter_id, state.unchanged_since, state.last.ts, now)
    return replace(state, stopped_alarmed=True), alarm


@dataclass(frozen=True, slots=True)
class MeterReplacement:
    """Operator event: the old meter's final reading and the new meter's first, at ``ts``."""

    old_meter_id: str
    new_meter_id: str
    ts: datetime
    old_final: Decimal
    new_first: Decimal
    old_final_registers: Mapping[str, Decimal] | None = None
    new_first_registers: Mapping[str, Decimal] | None = None


def replace_meter(
    old_state: MeterState,
    event: MeterReplacement,
    old_config: MeterConfig,
    now: datetime,
) -> tuple[MeterState, MeterState | None, Outcome]:
    """Close the old meter at its final reading and start the new one at its first.

    Returns the old meter's state, the new meter's state (None when the final reading is
    rejected: the replacement is refused and nothing moves) and the outcome of the final
    reading, whose interval is the old meter's last consumption to rate. The new meter's
    first reading is a baseline only: no negative delta, nothing counted twice.
    """
    final = Reading(
        event.old_meter_id, event.ts, event.old_final, dict(event.old_final_registers or {})
    )
    old_after, outcome = validate(old_state, final, old_config, now)
    if isinstance(outcome, Rejected):
        return old_state, None, outcome
    first = Reading(
        event.new_meter_id, event.ts, event.new_first, dict(event.new_first_registers or {})
    )
    return old_after, MeterState(event.new_meter_id, first, event.ts), outcome
