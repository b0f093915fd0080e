"""Tier usage state: cumulative units of one meter under one tariff id in the current period.

Kept per meter and per tariff id by the stream layer (a table keyed ``meter_id:tariff_id``)
and carried from one rating to the next. Usage resets when the local period changes.
Units are exact rationals (a period reset inside an interval splits it by time); they are
stored as decimal text when finite in decimal, else as ``"p/q"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True, slots=True)
class TierState:
    """Units used in ``period`` (e.g. ``month:2024-07``) under ``tariff_id``."""

    tariff_id: str
    period: str = ""
    used: Fraction = Fraction(0)

    def in_period(self, tariff_id: str, period: str) -> TierState:
        """This state if it is for that tariff and period, else a fresh one (reset)."""
        if (self.tariff_id, self.period) == (tariff_id, period):
            return self
        return TierState(tariff_id, period, Fraction(0))
