"""Band register shares (docs/tariffs.md, "How consumption is rated", 4).

When both readings carry band registers, their deltas decide each band's share of the
units instead of the clock. The total register is authoritative: band deltas only set
proportions, so a sum that differs from the total delta is scaled to the total.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from math import lcm

from pipeline.billing.errors import RatingError

#: Shares as integers: their common denominator, then (band, numerator) by band name.
Weights = tuple[int, tuple[tuple[str, int], ...]]


def band_shares(
    tariff_bands: frozenset[str],
    band_units: Mapping[str, Decimal] | None,
) -> dict[str, Fraction] | None:
    """Each band's share of the units, from register deltas (None: split by the clock).

    Registers that moved not at all give no proportions, and the clock decides. A tariff
    without bands ignores registers; a moved register of a band the tariff lacks, or one
    that went back, is refused.
    """
    if not band_units or not tariff_bands:
        return None
    moved = {band: Fraction(units) for band, units in band_units.items() if units}
    for band, units in moved.items():
        if units < 0:
            raise RatingError(f"band register {band!r} went back by {-units}")
        if band not in tariff_bands:
            raise RatingError(f"band register {band!r} has units but the tariff has no such band")
    total = sum(moved.values(), Fraction(0))
    if not total:
        return None
    return {band: units / total for band, units in sorted(moved.items())}


def weights(shares: dict[str, Fraction] | None) -> Weights | None:
    """Shares over one common denominator (None stays None: the clock decides)."""
    if shares is None:
        return None
    scale = lcm(*(share.denominator for share in shares.values()))
    return scale, tuple(
        (band, share.numerator * (scale // share.denominator)) for band, share in shares.items()
    )
