"""A cumulative meter reading and the register arithmetic of one meter model.

Registers count up to ``register_max`` and then wrap to zero: the step from the maximum
to zero is one register resolution (999999.99 -> 0.00 is 0.01 kWh), so the register is a
counter modulo ``register_max + resolution``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

DEFAULT_REGISTER_MAX = Decimal("999999.99")


@dataclass(frozen=True, slots=True)
class Reading:
    """One cumulative reading; ``registers`` holds the band registers present, if any."""

    meter_id: str
    ts: datetime
    value: Decimal
    registers: Mapping[str, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ts.tzinfo is None or self.ts.utcoffset() is None:
            raise ValueError("a reading's timestamp must carry a UTC offset")

    def same_values(self, other: Reading) -> bool:
        return self.value == other.value and dict(self.registers) == dict(other.registers)


@dataclass(frozen=True, slots=True)
class MeterConfig:
    """What a meter model allows: register maximum, plausible rate, stop detection."""

    register_max: Decimal = DEFAULT_REGISTER_MAX
    max_rate: Decimal | None = None  # units per hour; None: no rate limit (and no rollover)
    stopped_after: timedelta | None = None  # no change this long with supply on: stopped
    max_future: timedelta | None = None  # readings later than now + this are refused

    def __post_init__(self) -> None:
        if self.register_max <= 0:
            raise ValueError("register_max must be positive")
        if self.max_rate is not None and self.max_rate <= 0:
            raise ValueError("max_rate must be positive")

    @property
    def resolution(self) -> Decimal:
        """The register's last digit: 0.01 for 999999.99."""
        exponent = self.register_max.as_tuple().exponent
        assert isinstance(exponent, int)
        return Decimal(1).scaleb(exponent)

    @property
    def modulus(self) -> Decimal:
        """The count at which the register wraps to zero."""
        return self.register_max + self.resolution

    def wrapped(self, previous: Decimal, current: Decimal) -> Decimal:
        """The delta if the register went past its maximum from ``previous`` to ``current``."""
        return current - previous + self.modulus

    def plausible(self, delta: Decimal, span: timedelta) -> bool:
        """``delta`` within ``max_rate`` per hour over ``span`` (always, without a limit)."""
        if self.max_rate is None:
            return True
        span_us = span // timedelta(microseconds=1)
        return Fraction(delta) * 3_600_000_000 <= Fraction(self.max_rate) * span_us
