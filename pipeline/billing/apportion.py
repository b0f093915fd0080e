"""Common-area apportionment: split an amount of integer fen by the largest-remainder method.

Rule (docs/tariffs.md, "Apportionment"): each member's exact quota is ``total x weight /
sum of weights`` (a rational, never rounded on its own); every member first gets the
floor of its quota, and the fen left over (fewer than the number of members) go one each
to the largest fractional remainders. Ties are broken by the larger weight, then by the
account id in ascending order, so the result is deterministic. The shares therefore always
add up to the total exactly; rounding each share on its own (as many property systems do)
loses or invents fen.

Methods: ``ratio`` (fixed weights), ``area`` (room m2), ``usage`` (each member's own
units in the period), ``equal``. Vacant members are left out unless the group includes
them. When every weight is zero (no usage anywhere) the split falls back to equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from contracts.money import round_half_up

METHODS = ("ratio", "area", "usage", "equal")


class ApportionError(ValueError):
    """A split that cannot be made; the message names the field and the reason."""


@dataclass(frozen=True, slots=True)
class Member:
    """One sub-account of a group: its weight under the group's method, and vacancy."""

    account_id: str
    weight: Decimal
    vacant: bool = False


@dataclass(frozen=True, slots=True)
class Share:
    """A member's share in fen and how it was reached (shown to the tenant)."""

    account_id: str
    weight: Decimal
    quota: Fraction
    floor_fen: int
    bonus_fen: int

    @property
    def amount_fen(self) -> int:
        return self.floor_fen + self.bonus_fen

    def arithmetic(self, total_fen: int, weight_sum: Decimal) -> str:
        """``total x weight / sum = quota -> floor + bonus = share`` as text (the quota shown
        to four places; the exact one is :attr:`quota`)."""
        shown = round_half_up(self.quota, 4)
        sign = "=" if shown == self.quota else "≈"
        return (f"{total_fen} fen x {self.weight} / {weight_sum} {sign} {shown} fen -> "
                f"{self.floor_fen} + {self.bonus_fen} = {self.amount_fen} fen")


def allot(total_fen: int, weights: Sequence[tuple[str, Decimal]]) -> list[Share]:
    """Largest-remainder split of ``total_fen`` (>= 0) over ``(key, weight)`` pairs.

    Weights must be >= 0 and keys distinct; all-zero weights split equally. The result is in
    the order given and its amounts add up to ``total_fen``.
    """
    if total_fen < 0:
        raise ApportionError(f"total_fen: {total_fen} must not be negative")
    if not weights:
        if total_fen:
            raise ApportionError("members: an amount needs at least one member to carry it")
        return []
    keys = [k for k, _ in weights]
    if len(set(keys)) != len(keys):
        raise ApportionError("members: an account appears twice")
    for key, weight in weights:
        if weight < 0:
            raise ApportionError(f"weight: {key} has a negative weight {weight}")
    if all(w == 0 for _, w in weights):
        weights = [(k, Decimal(1)) for k, _ in weights]
    denominator = sum((Fraction(w) for _, w in weights), Fraction(0))
    quotas = [(k, w, Fraction(total_fen) * Fraction(w) / denominator) for k, w in weights]
    floors = {k: q.numerator // q.denominator for k, _, q in quotas}
    left = total_fen - sum(floors.values())
    ranked = sorted(quotas, key=lambda t: (-(t[2] - floors[t[0]]), -t[1], t[0]))
    lucky = {k for k, _, _ in ranked[:left]}
    return [Share(k, w, q, floors[k], 1 if k in lucky else 0) for k, w, q in quotas]


def members_in(members: Sequence[Member], include_vacant: bool) -> list[Member]:
    """The members who carry a share: vacant ones only when the group says so."""
    return [m for m in members if include_vacant or not m.vacant]


def split(total_fen: int, method: str, members: Sequence[Member],
          include_vacant: bool = False) -> list[Share]:
    """Shares of ``total_fen`` by ``method`` over the members who carry one."""
    if method not in METHODS:
        raise ApportionError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    carrying = members_in(members, include_vacant)
    if method == "equal":
        return allot(total_fen, [(m.account_id, Decimal(1)) for m in carrying])
    return allot(total_fen, [(m.account_id, m.weight) for m in carrying])


def common_units(master_units: Decimal, sub_units: Decimal, minus_subs: bool) -> Decimal:
    """The units to split: the master's, or master minus the sub-meters (never below 0)."""
    if not minus_subs:
        return master_units
    return max(master_units - sub_units, Decimal(0))


def common_cost(master_cost: Decimal, master_units: Decimal, units: Decimal) -> Fraction:
    """The master's rated cost for ``units`` of its consumption (its own average price)."""
    if master_units <= 0:
        return Fraction(0)
    return Fraction(master_cost) * Fraction(units) / Fraction(master_units)
