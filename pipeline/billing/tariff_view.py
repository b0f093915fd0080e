"""A tariff as people read it, and where in its file an error is (pure, no I/O).

``outline`` gives a version's bands as spans of the local day (the base set and each
season's), prices, tier steps and surcharges, every number as exact decimal text
(docs/tariffs.md). ``source_line`` finds the line of a field path such as
``tiers.steps[1].upto`` in the YAML text the path was reported for (the loader's
TariffError names the path, not the line). ``preview`` rates one sample interval from an
empty tier period: what that consumption would cost, rounded half-up to the fen once
(contracts/money.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import yaml

from contracts.money import decimal_text, fraction_text, round_fen
from pipeline.billing.bands import BandSet
from pipeline.billing.rating import Usage, rate
from pipeline.billing.tariff import Tariff, TariffBook

SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _spans(bands: BandSet) -> list[dict[str, Any]]:
    return [{"start_min": start, "end_min": end, "band": band}
            for start, end, band in bands.spans]


def _prices(table: Any) -> dict[str, str] | None:
    return None if table is None else {k: decimal_text(v) for k, v in table.items()}


def outline(tariff: Tariff) -> dict[str, Any]:
    """One version's structure for display; prices as decimal text, never floats."""
    return {
        "tariff_id": tariff.id, "name": tariff.name, "commodity": tariff.commodity,
        "unit": tariff.unit, "currency": tariff.currency, "timezone": tariff.timezone,
        "valid_from": None if tariff.valid_from is None else tariff.valid_from.isoformat(),
        "kind": tariff.kind,
        "price": None if tariff.price is None else decimal_text(tariff.price),
        "prices": _prices(tariff.prices),
        "bands": None if tariff.bands is None else _spans(tariff.bands),
        "seasons": [{"months": sorted(s.months), "bands": _spans(s.bands)}
                    for s in tariff.seasons],
        "tier_period": tariff.tier_period,
        "steps": [{"upto": None if s.upto is None else decimal_text(s.upto),
                   "price": None if s.price is None else decimal_text(s.price),
                   "prices": _prices(s.prices)} for s in tariff.steps],
        "surcharges": [{"name": s.name, "price": decimal_text(s.price)}
                       for s in tariff.surcharges],
    }


def path_segments(path: str) -> list[str | int]:
    """``tiers.steps[1].upto`` -> ``['tiers', 'steps', 1, 'upto']``."""
    return [int(index) if index else name.strip()
            for name, index in SEGMENT.findall(path)]


def source_line(text: str, path: str) -> int | None:
    """The 1-based line of ``path`` in ``text`` (the deepest part of it found), or of the
    syntax error when the text is not YAML; None when neither can be found."""
    try:
        node: Any = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        return None if mark is None else mark.line + 1
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    line: int | None = node.start_mark.line + 1 if path else None
    for segment in path_segments(path):
        found = None
        if isinstance(segment, int) and isinstance(node, yaml.SequenceNode):
            found = node.value[segment] if segment < len(node.value) else None
        elif isinstance(segment, str) and isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if getattr(key, "value", None) == segment:
                    line = key.start_mark.line + 1
                    found = value
                    break
        if found is None:
            break
        node = found
        line = node.start_mark.line + 1
    return line


@dataclass(frozen=True, slots=True)
class Preview:
    units: Decimal
    amount_fen: int
    by_band: dict[str, tuple[str, str]]
    by_step: dict[int, tuple[str, str]]


def preview(book: TariffBook, start: datetime, end: datetime, units: Decimal) -> Preview:
    """What ``units`` over ``[start, end)`` would cost, from an empty tier period.
    Raises RatingError (or ValueError) for an interval the tariff cannot rate."""
    _, rating = rate(book, None, Usage(start, end, units))
    units_band, amount_band = rating.units_by_band(), rating.amount_by_band()
    units_step, amount_step = rating.units_by_step(), rating.amount_by_step()
    return Preview(
        units, round_fen(rating.amount),
        {b: (fraction_text(units_band[b]), fraction_text(amount_band[b])) for b in units_band},
        {s: (fraction_text(units_step[s]), fraction_text(amount_step[s])) for s in units_step})
