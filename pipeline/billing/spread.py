"""Spreading an interval's units over its stretches, tier steps and band shares, exactly.

docs/tariffs.md, "How consumption is rated", 1 and 3-5: units are spread uniformly over
the interval by microseconds; each stretch's units are split at the steps' limits of the
current tier period (reset when the period changes); register shares, when they decide,
split every part by band; surcharges apply to every unit.

Inside one interval every quantity is a whole number of one fine unit ``1 / den``, where
``den`` is the units' denominator times the interval's length in microseconds, times what
the tier state and the step limits need: spreading by time, splitting at a step limit and
carrying tier usage are integer operations that never round. The usual interval (one
stretch, the clock deciding, no step limit crossed) needs no fine unit at all: every
line then holds all the units.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from math import lcm

from pipeline.billing.line_sums import Extra, Line, LineSums
from pipeline.billing.shares import Weights, band_shares, weights
from pipeline.billing.tariff_plan import Judged, TariffPlan
from pipeline.billing.tier_state import TierState

#: The tier state after the interval, its lines, its surcharges and its exact amount.
Spread = tuple[TierState, list[Line], list[Extra], Fraction]


def spread(
    plan: TariffPlan,
    state: TierState,
    total: Fraction,
    stretches: list[tuple[int, Judged]],
    registers: Mapping[str, Decimal] | None,
) -> Spread:
    """Rate ``total`` units over the stretches, starting from the tier state ``state``."""
    if len(stretches) == 1 and not registers:
        whole = _whole(plan, state, total, stretches[0][1])
        if whole is not None:
            return whole
    return _walk(plan, state, total, stretches, registers)


def _whole(plan: TariffPlan, state: TierState, total: Fraction, judged: Judged) -> Spread | None:
    """One stretch, clock-decided, inside one step; None when a step limit is crossed."""
    index, band, period = judged
    num, den = total.as_integer_ratio()
    uptos = plan.uptos[index]
    step: int | None = None
    lines: list[Line] = []
    if uptos is not None:
        if state.tariff_id != plan.tariff_id or state.period != period:
            state = TierState(plan.tariff_id, period)
        used, per = state.used.as_integer_ratio()
        unit = plan.upto_den  # compared in 1 / (unit * per): used * unit, limit = upto * per
        step, limit = _step(uptos, used * unit, per)
        if limit is not None and (used * den + num * per) * unit > limit * den:
            return None
        if num:
            state = TierState(state.tariff_id, period, Fraction(used * den + num * per, per * den))
    if num or uptos is None:
        key, price_num, price_den, price_fine = plan.price(index, band, step)
        lines.append((key, total, Fraction(num * price_num, den * price_den)))
        if not plan.surcharges[index]:
            return state, lines, [], lines[0][2]
        fine = price_fine
    else:
        fine = 0
    extras: list[Extra] = []
    for name, extra_num, extra_den, extra_fine in plan.surcharges[index]:
        extras.append((name, total, Fraction(num * extra_num, den * extra_den)))
        fine += extra_fine
    return state, lines, extras, Fraction(num * fine, den * plan.price_den)


def _walk(
    plan: TariffPlan,
    state: TierState,
    total: Fraction,
    stretches: list[tuple[int, Judged]],
    registers: Mapping[str, Decimal] | None,
) -> Spread:
    """Any interval: every stretch, every step crossed, every register share."""
    length = sum(micros for micros, _ in stretches)
    base = total.denominator * length
    used = state.used
    den = lcm(base, used.denominator, plan.upto_den) if plan.tiered else base
    per_micro = total.numerator * (den // base)
    tier_id, period = state.tariff_id, state.period
    used_fine = used.numerator * (den // used.denominator)
    touched = False
    sums = LineSums(plan, den)
    split_of: dict[int, Weights | None] = {}
    for micros, (index, band, here) in stretches:
        units = per_micro * micros
        if plan.surcharges[index]:
            sums.surcharge(index, units)
        split = None
        if registers:
            if index not in split_of:
                split_of[index] = weights(band_shares(plan.band_names[index], registers))
            split = split_of[index]
        uptos = plan.uptos[index]
        if uptos is None:
            sums.add(index, band, None, units, split)
            continue
        if tier_id != plan.tariff_id or period != here:
            tier_id, period, used_fine = plan.tariff_id, here, 0
        touched = True
        scale = den // plan.upto_den
        while units > 0:
            step, limit = _step(uptos, used_fine, scale)
            take = units if limit is None else min(units, limit - used_fine)
            sums.add(index, band, step, take, split)
            used_fine += take
            units -= take
    if touched:
        state = TierState(tier_id, period, Fraction(used_fine, den))
    lines, extras, amount = sums.results(total)
    return state, lines, extras, amount


def _step(uptos: tuple[int | None, ...], used: int, scale: int) -> tuple[int, int | None]:
    """The step (0-based) of the next unit after ``used`` and its limit, both in the fine unit."""
    for step, upto in enumerate(uptos):
        if upto is None:
            return step, None
        if used < upto * scale:
            return step, upto * scale
    raise AssertionError("the last step has no upto")  # pragma: no cover
