"""Micro-benchmark of the pure rating core on this machine; prints microseconds per interval.

For each kind of tariff it rates a run of consecutive intervals for one meter, carrying
the tier state as the per-meter stage does, and makes the figures the rated-interval
payload carries (``pipeline.events.rated``: the cost, each line's units and amount rounded
half-up, the units' text) and the tier state's text. The reference core
(tests/billing/reference_rating.py, with its own rounding) and the application's core
rate the same intervals; each figure is CPU time, the best of several alternating rounds,
so the application's caches are warm, as in a running worker; "cold" is one round on a
fresh book, its caches empty.

Usage: .venv/bin/python bench/rating_bench.py [--intervals 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from contracts import money  # noqa: E402
from pipeline.billing.rating import Usage, rate  # noqa: E402
from pipeline.billing.tariff import TariffBook  # noqa: E402
from pipeline.billing.tariff_parse import load_tariff_text  # noqa: E402
from pipeline.billing.tier_state import TierState  # noqa: E402
from tests.billing import reference_rating as reference  # noqa: E402

EXAMPLES = REPO / "pipeline" / "billing" / "examples"
HEAD = "id: bench\ncommodity: electricity\nunit: kWh\ncurrency: CNY\ntimezone: Asia/Shanghai\n"
TARIFFS = {
    "flat": HEAD + "price: 0.5283\n",
    "tiered": (EXAMPLES / "bj-residential-electricity.yaml").read_text(encoding="utf-8"),
    "time-of-use": (EXAMPLES / "gd-commercial-tou.yaml").read_text(encoding="utf-8"),
    "time-of-use + tiers": HEAD
    + 'bands: {peak: ["08:00-22:00"], valley: ["22:00-08:00"]}\n'
    + "tiers: {period: month, steps: [{upto: 240, prices: {peak: 0.5583, valley: 0.3}},"
    + " {upto: 400, prices: {peak: 0.6083, valley: 0.35}},"
    + " {prices: {peak: 0.8583, valley: 0.5}}]}\n",
    "tiered + surcharges": (EXAMPLES / "bj-residential-water.yaml").read_text(encoding="utf-8"),
}
UNITS = [Decimal(u) for u in ("0.37", "0.25", "1.02", "0.5", "0.13", "2.71")]
START = datetime.fromisoformat("2024-03-01T00:00:00+08:00")

Rate = Callable[[TariffBook, Any, Usage], tuple[Any, Any]]
Round = Callable[[Any, int], Decimal]
Text = Callable[[Any], str]


def payload(rating: Any, state: Any, rounding: Round, text: Text, exact_text: Text) -> None:
    """What the rated-interval payload and the stored tier state make of a rating."""
    if rating.units.denominator == 1:
        exact_text(rating.units)
    else:
        text(rounding(rating.units, 6))
    text(rating.cost)
    for line in rating.lines:
        text(line.price), text(rounding(line.units, 6)), text(rounding(line.amount, 10))
    for extra in rating.surcharges:
        text(extra.price), text(rounding(extra.units, 6)), text(rounding(extra.amount, 10))
    exact_text(state.used)


def usages(length: timedelta, count: int) -> list[Usage]:
    """Consecutive intervals as readings give them (a fixed UTC offset), units varying."""
    scale = length // timedelta(minutes=15)
    return [
        Usage(START + i * length, START + (i + 1) * length, UNITS[i % len(UNITS)] * scale)
        for i in range(count)
    ]


#: Each core with the rounding and text functions of its time.
CORES: dict[str, tuple[Rate, Round, Text, Text]] = {
    "reference": (
        reference.rate,
        reference.round_half_up,
        reference.decimal_text,
        reference.fraction_text,
    ),
    "new": (rate, money.round_half_up, money.decimal_text, money.fraction_text),
}


def one_round(book: TariffBook, intervals: list[Usage], core: str) -> float:
    """CPU microseconds per interval for one pass over the intervals."""
    rating_core, rounding, text, exact_text = CORES[core]
    state = None
    begin = time.process_time()
    for usage in intervals:
        state, rating = rating_core(book, state, usage)
        payload(rating, state, rounding, text, exact_text)
    return (time.process_time() - begin) / len(intervals) * 1e6


def split_round(book: TariffBook, intervals: list[Usage], core: str) -> tuple[float, float]:
    """CPU microseconds per interval for rate() with Rating.cost, then for the payload."""
    rating_core, rounding, text, exact_text = CORES[core]
    state = None
    rated = []
    begin = time.process_time()
    for usage in intervals:
        state, rating = rating_core(book, state, usage)
        rating.cost  # noqa: B018 - what a charge takes
        rated.append((rating, state))
    middle = time.process_time()
    for rating, state in rated:
        payload(rating, state, rounding, text, exact_text)
    end = time.process_time()
    return (middle - begin) / len(intervals) * 1e6, (end - middle) / len(intervals) * 1e6


def check_same(body: str, intervals: list[Usage]) -> None:
    """The two cores agree on what is timed (the equivalence tests check far more)."""
    book = TariffBook([load_tariff_text(body)])
    old: Any = None
    new: TierState | None = None
    for usage in intervals:
        old, expected = reference.rate(book, old, usage)
        new, got = rate(book, new, usage)
        assert (old, expected.amount) == (new, got.amount), usage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", type=int, default=2000, help="15-minute intervals")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(
        f"python {platform.python_version()} on {platform.machine()}; "
        f"best of {args.rounds} rounds; CPU microseconds per interval, payload figures included"
    )
    runs = {
        "15 min": usages(timedelta(minutes=15), args.intervals),
        "1 day": usages(timedelta(days=1), max(args.intervals // 20, 10)),
    }
    print(
        f"{'tariff':<22}{'interval':>9}{'reference':>11}{'new':>9}{'new cold':>10}{'speed-up':>10}"
    )
    for name, body in TARIFFS.items():
        for label, intervals in runs.items():
            check_same(body, intervals[:200])
            cold = one_round(TariffBook([load_tariff_text(body)]), intervals, "new")
            book = TariffBook([load_tariff_text(body)])
            best = {core: float("inf") for core in CORES}
            for _ in range(args.rounds):  # alternating, so that a busy moment hits both
                for core in CORES:
                    best[core] = min(best[core], one_round(book, intervals, core))
            old, new = best["reference"], best["new"]
            print(f"{name:<22}{label:>9}{old:>11.1f}{new:>9.1f}{cold:>10.1f}{old / new:>9.1f}x")
    print("\n15 min, split: rate() with Rating.cost | the payload's figures (reference -> new)")
    for name, body in TARIFFS.items():
        book = TariffBook([load_tariff_text(body)])
        parts = {core: [float("inf"), float("inf")] for core in CORES}
        for _ in range(args.rounds):
            for core in CORES:
                times = split_round(book, runs["15 min"], core)
                parts[core] = [min(a, b) for a, b in zip(parts[core], times, strict=True)]
        (old_rate, old_text), (new_rate, new_text) = parts["reference"], parts["new"]
        print(
            f"{name:<22}{old_rate:>8.1f} ->{new_rate:>6.1f} ({old_rate / new_rate:.1f}x) |"
            f"{old_text:>6.1f} ->{new_text:>5.1f} ({old_text / new_text:.1f}x)"
        )


if __name__ == "__main__":
    main()
