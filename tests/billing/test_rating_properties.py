"""Properties of rating (docs/tariffs.md): additivity, totals, monotonicity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.billing.rating import Usage, rate
from pipeline.billing.tariff import TariffBook
from pipeline.billing.tariff_parse import load_tariff_text
from pipeline.billing.tier_state import TierState

from .conftest import example

HEAD = "id: p\ncommodity: electricity\nunit: kWh\ncurrency: CNY\ntimezone: {zone}\n"
TIERED_TOU = (
    'bands: {peak: ["07:00-23:00"], valley: ["23:00-07:00"]}\n'
    'seasons: [{months: [3, 11], bands: {peak: ["01:30-12:00"], valley: ["12:00-01:30"]}}]\n'
    "tiers: {period: month, steps: [{upto: 50, prices: {peak: 0.6, valley: 0.3}},"
    " {upto: 120.5, prices: {peak: 0.7, valley: 0.35}}, {prices: {peak: 0.9, valley: 0.41}}]}\n"
    "surcharges: [{name: fund, price: 0.019}]\n"
)


def _books() -> list[TariffBook]:
    new_york = HEAD.format(zone="America/New_York") + TIERED_TOU
    versions = [
        load_tariff_text(
            HEAD.format(zone="Asia/Shanghai") + "valid_from: 2024-01-01\n" + TIERED_TOU
        ),
        load_tariff_text(
            HEAD.format(zone="Asia/Shanghai") + "valid_from: 2024-03-10\n"
            "tiers: {period: year, steps: [{upto: 100, price: 0.5}, {price: 0.8}]}\n"
        ),
    ]
    return [
        TariffBook([example("bj-residential-electricity.yaml")]),
        TariffBook([example("gd-commercial-tou.yaml")]),
        TariffBook([example("bj-residential-water.yaml")]),
        TariffBook([load_tariff_text(new_york)]),
        TariffBook(versions),
    ]


BOOKS = _books()
BASE = datetime(2024, 2, 25, 5, tzinfo=UTC)  # instants built in UTC, rated in each zone

books = st.sampled_from(BOOKS)
offsets = st.integers(min_value=0, max_value=60 * 24 * 3600)  # seconds from BASE
lengths = st.integers(min_value=2, max_value=40 * 24 * 3600)
amounts = st.decimals(min_value=0, max_value=5000, places=2)
used = st.fractions(min_value=0, max_value=300, max_denominator=1000)
registers = st.none() | st.fixed_dictionaries(
    {
        "peak": st.decimals(min_value=0, max_value=100, places=2),
        "valley": st.decimals(min_value=0, max_value=100, places=2),
    }
)


def _state(book: TariffBook, start: datetime, prior: Fraction) -> TierState:
    local = start.astimezone(book.zone)
    return TierState(book.id, f"month:{local.year:04d}-{local.month:02d}", prior)


@settings(max_examples=200, deadline=None)
@given(
    books,
    offsets,
    st.integers(min_value=1, max_value=3000),
    st.integers(1, 999),
    amounts,
    used,
    registers,
)
def test_whole_equals_sum_of_halves(
    book: TariffBook,
    offset: int,
    length: int,
    k: int,
    units: Decimal,
    prior: Fraction,
    regs: dict[str, Decimal] | None,
) -> None:
    """Cut at k/1000 of the interval: the spread gives that half exactly k/1000 of the units."""
    start = BASE + timedelta(seconds=offset)
    end = start + timedelta(seconds=length * 1000)
    middle = start + timedelta(seconds=length * k)
    share = Decimal(k) / 1000
    tiers = _state(book, start, prior)
    whole_state, whole = rate(book, tiers, Usage(start, end, units, regs))
    half = None if regs is None else {b: v * share for b, v in regs.items()}
    rest = None if regs is None else {b: v - half[b] for b, v in regs.items()} if half else None
    mid_state, first = rate(book, tiers, Usage(start, middle, units * share, half))
    end_state, second = rate(book, mid_state, Usage(middle, end, units - units * share, rest))
    assert first.amount + second.amount == whole.amount
    assert end_state == whole_state


@settings(max_examples=200, deadline=None)
@given(books, offsets, lengths, amounts, used, registers)
def test_band_and_step_units_add_up(
    book: TariffBook,
    offset: int,
    length: int,
    units: Decimal,
    prior: Fraction,
    regs: dict[str, Decimal] | None,
) -> None:
    start = BASE + timedelta(seconds=offset)
    end = start + timedelta(seconds=length)
    _, rating = rate(book, _state(book, start, prior), Usage(start, end, units, regs))
    assert sum((line.units for line in rating.lines), Fraction(0)) == units
    if all(line.band is not None for line in rating.lines):
        assert sum(rating.units_by_band().values()) == units
        energy = sum(rating.amount_by_band().values(), Fraction(0))
        assert energy + sum(s.amount for s in rating.surcharges) == rating.amount
    if all(line.step is not None for line in rating.lines):
        assert sum(rating.units_by_step().values()) == units
    for extra in rating.surcharges:
        assert 0 <= extra.units <= units  # only versions with the surcharge carry it


@settings(max_examples=200, deadline=None)
@given(books, offsets, lengths, amounts, amounts, used)
def test_cost_never_decreases_with_usage(
    book: TariffBook, offset: int, length: int, a: Decimal, b: Decimal, prior: Fraction
) -> None:
    start = BASE + timedelta(seconds=offset)
    end = start + timedelta(seconds=length)
    low, high = sorted((a, b))
    tiers = _state(book, start, prior)
    _, cheap = rate(book, tiers, Usage(start, end, low))
    _, dear = rate(book, tiers, Usage(start, end, high))
    assert cheap.amount <= dear.amount
