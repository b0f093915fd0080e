"""The rating core gives exactly what the reference core gives (tests/billing/reference_rating.py).

Random tariffs (flat, time of use with random and wrapping windows and seasons, tiered by
month or year with per-band step prices, surcharges, several versions), zones with and
without DST (a 30-minute one, and two whose clocks change at midnight), intervals from a
second to 40 days placed around offset changes, month and year starts, random tier usage
and band registers: same lines in the same order, same exact units and amounts, same cost,
same tier state, same error. Sequences carry the tier state from one interval to the next,
then rate the intervals again backwards, with the core's caches warm.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.money import fraction_text
from pipeline.billing.instants import utc
from pipeline.billing.rating import Usage, rate
from pipeline.billing.tariff import TariffBook
from pipeline.billing.tariff_parse import load_tariff_text
from pipeline.billing.tier_state import TierState
from pipeline.billing.timeline import pieces

from . import reference_rating as reference

ZONES = (
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",  # DST moves the clock by 30 minutes
    "Asia/Shanghai",
    "America/Sao_Paulo",  # 2018-2019: the clock jumped at midnight
    "America/Santiago",  # the clock changes at 24:00
)
YEARS = (2018, 2019, 2024)
BANDS = ("sharp", "peak", "flat", "valley")
#: Band boundaries that DST changes skip or repeat somewhere, midnight, and noon.
MINUTES = (0, 30, 60, 90, 120, 150, 180, 720, 1380, 1410)
HEAD_NY = "id: eq\ncommodity: electricity\nunit: kWh\ncurrency: CNY\ntimezone: America/New_York\n"
SETTINGS = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _anchors(name: str) -> list[datetime]:
    """Instants worth starting near: offset changes and local month starts."""
    zone = ZoneInfo(name)
    found: list[datetime] = []
    for year in YEARS:
        found += [datetime(year, month, 1, tzinfo=zone).astimezone(UTC) for month in range(1, 13)]
        at = datetime(year, 1, 1, tzinfo=UTC)
        before = at.astimezone(zone).utcoffset()
        while at.year == year:
            at += timedelta(hours=1)
            offset = at.astimezone(zone).utcoffset()
            if offset != before:
                found.append(at)
                before = offset
    return found


ANCHORS = {name: _anchors(name) for name in ZONES}


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@st.composite
def band_windows(draw: st.DrawFn) -> dict[str, list[str]]:
    """Windows covering the day once: random boundaries, one band per span, midnight wraps."""
    marks = sorted(
        draw(st.sets(st.sampled_from(MINUTES) | st.integers(0, 1439), min_size=1, max_size=6))
    )
    names = draw(st.lists(st.sampled_from(BANDS), min_size=len(marks), max_size=len(marks)))
    windows: dict[str, list[str]] = {}
    for i, (start, name) in enumerate(zip(marks, names, strict=True)):
        if i + 1 < len(marks):
            texts = [f"{_hhmm(start)}-{_hhmm(marks[i + 1])}"]
        elif marks[0] == 0:
            texts = [f"{_hhmm(start)}-24:00"]
        elif len(marks) == 1:
            texts = [f"{_hhmm(start)}-24:00", f"00:00-{_hhmm(start)}"]
        else:
            texts = [f"{_hhmm(start)}-{_hhmm(marks[0])}"]  # wraps midnight
        windows.setdefault(name, []).extend(texts)
    return windows


def _flow(windows: dict[str, list[str]]) -> str:
    return (
        "{"
        + ", ".join(f"{b}: [{', '.join(repr(t) for t in ts)}]" for b, ts in windows.items())
        + "}"
    )


prices = st.builds(
    lambda n, places: f"{Decimal(n).scaleb(-places):f}", st.integers(0, 300_000), st.integers(0, 5)
)


@st.composite
def tariff_text(draw: st.DrawFn, zone: str, valid_from: date | None) -> str:
    lines = ["id: eq", "commodity: electricity", "unit: kWh", "currency: CNY", f"timezone: {zone}"]
    if valid_from is not None:
        lines.append(f"valid_from: {valid_from.isoformat()}")
    kind = draw(st.sampled_from(("flat", "tou", "tiered", "tiered-bands")))
    names: set[str] = set()
    if kind in ("tou", "tiered-bands"):
        base = draw(band_windows())
        names |= set(base)
        lines.append(f"bands: {_flow(base)}")
        months = draw(st.permutations(range(1, 13)))
        cuts = sorted(draw(st.lists(st.integers(1, 12), max_size=2)))
        seasons = []
        for low, high in zip([0, *cuts], cuts, strict=False):
            if high > low:
                bands = draw(band_windows())
                names |= set(bands)
                seasons.append(f"{{months: {sorted(months[low:high])}, bands: {_flow(bands)}}}")
        if seasons:
            lines.append(f"seasons: [{', '.join(seasons)}]")
    if kind == "flat":
        lines.append(f"price: {draw(prices)}")
    elif kind == "tou":
        lines.append("prices: {" + ", ".join(f"{b}: {draw(prices)}" for b in sorted(names)) + "}")
    else:
        count = draw(st.integers(2, 4))
        rises = draw(
            st.lists(st.decimals("0.001", 300, places=3), min_size=count - 1, max_size=count - 1)
        )
        steps, upto = [], Decimal(0)
        for i in range(count):
            if kind == "tiered":
                price = f"price: {draw(prices)}"
            else:
                price = "prices: {" + ", ".join(f"{b}: {draw(prices)}" for b in sorted(names)) + "}"
            if i < count - 1:
                upto += rises[i]
                steps.append(f"{{upto: {upto}, {price}}}")
            else:
                steps.append(f"{{{price}}}")
        period = draw(st.sampled_from(("month", "year")))
        lines.append(f"tiers: {{period: {period}, steps: [{', '.join(steps)}]}}")
    extras = draw(
        st.lists(st.sampled_from(("fund", "sewage", "resource")), unique=True, max_size=2)
    )
    if extras:
        lines.append(
            "surcharges: ["
            + ", ".join(f"{{name: {n}, price: {draw(prices)}}}" for n in extras)
            + "]"
        )
    return "\n".join(lines) + "\n"


@st.composite
def books(draw: st.DrawFn, zone: str, near: datetime) -> TariffBook:
    """One to three versions starting around ``near`` (sometimes after it: not in force)."""
    count = draw(st.integers(1, 3))
    day = near.astimezone(ZoneInfo(zone)).date()
    offsets = draw(st.lists(st.integers(-90, 40), min_size=count, max_size=count, unique=True))
    starts: list[date | None] = sorted(day + timedelta(days=d) for d in offsets)
    if count == 1 and draw(st.booleans()):
        starts = [None]
    return TariffBook([load_tariff_text(draw(tariff_text(zone, s))) for s in starts])


lengths = st.one_of(
    st.integers(1, 3600),
    st.sampled_from((900, 1800, 3600, 86400)),
    st.integers(3600, 3 * 86400),
    st.integers(3 * 86400, 40 * 86400),
)
units = st.sampled_from(range(10)).flatmap(
    lambda pick: (
        st.just(Decimal(0))
        if pick == 0
        else st.decimals("0.001", 5000, places=3)
        if pick < 5
        else st.decimals("0.000001", 10, places=6)
        if pick < 8
        else st.decimals(1000, 100_000, places=2)
    )
)
registers = st.sampled_from((0, 1, 2)).flatmap(
    lambda pick: (
        st.none()
        if pick == 0
        else st.dictionaries(
            st.sampled_from((*BANDS, *BANDS, *BANDS, "bogus")),
            st.decimals(-1, 100, places=2),
            min_size=1,
            max_size=4,
        )
    )
)


@st.composite
def instants(draw: st.DrawFn, zone: str) -> datetime:
    """An instant within three days of an anchor of the zone."""
    anchor = draw(st.sampled_from(ANCHORS[zone]))
    shift = timedelta(seconds=draw(st.integers(-3 * 86400, 3 * 86400)))
    micro = timedelta(microseconds=draw(st.sampled_from((0, 0, 0, 1, 499_999))))
    return anchor + shift + micro


def shown(instant: datetime, how: int, zone: str) -> datetime:
    """The same instant as a reading might carry it: UTC, the tariff's zone, a fixed offset."""
    if how == 0:
        return instant
    if how == 1:
        return instant.astimezone(ZoneInfo(zone))
    return instant.astimezone(timezone(timedelta(hours=how - 6)))


@st.composite
def tier_states(draw: st.DrawFn, book: TariffBook, at: datetime) -> TierState | None:
    local = at.astimezone(book.zone)
    used = draw(st.fractions(0, 600, max_denominator=10**6))
    return draw(
        st.sampled_from(
            (
                None,
                TierState(book.id, f"month:{local.year:04d}-{local.month:02d}", used),
                TierState(book.id, f"year:{local.year:04d}", used),
                TierState(book.id, "month:2017-01", used),
                TierState("other", f"month:{local.year:04d}-{local.month:02d}", used),
            )
        )
    )


def outcome(core: Callable[..., Any], *args: Any) -> Any:
    """What a rating gives, comparable across the cores; an error by type and message."""
    try:
        state, rating = core(*args)
    except Exception as exc:  # the cores must fail alike
        return ("error", type(exc), str(exc))
    assert type(rating.units) is Fraction
    assert all(type(x) is Fraction for line in rating.lines for x in (line.units, line.amount))
    assert all(
        type(x) is Fraction for extra in rating.surcharges for x in (extra.units, extra.amount)
    )
    return (
        (state.tariff_id, state.period, state.used, reference.fraction_text(state.used)),
        (rating.tariff_id, rating.start, rating.end, rating.units),
        [(x.valid_from, x.band, x.step, str(x.price), x.units, x.amount) for x in rating.lines],
        [(x.name, str(x.price), x.units, x.amount) for x in rating.surcharges],
        (rating.amount, str(rating.cost)),
    )


def same(book: TariffBook, tiers: TierState | None, usage: Usage) -> Any:
    """Assert both cores agree (the new one twice: caches cold or warm); the outcome."""
    expected = outcome(reference.rate, book, tiers, usage)
    assert outcome(rate, book, tiers, usage) == expected
    assert outcome(rate, book, tiers, usage) == expected
    if expected[0] != "error":
        state = expected[0]
        assert fraction_text(TierState(*state[:3]).used) == state[3]
    return expected


@st.composite
def single(draw: st.DrawFn) -> tuple[TariffBook, TierState | None, Usage]:
    zone = draw(st.sampled_from(ZONES))
    start = draw(instants(zone))
    end = start + timedelta(seconds=draw(lengths), microseconds=draw(st.sampled_from((0, 7))))
    book = draw(books(zone, start))
    how = draw(st.integers(0, 3))
    usage = Usage(shown(start, how, zone), shown(end, how, zone), draw(units), draw(registers))
    return book, draw(tier_states(book, start)), usage


@SETTINGS
@given(single())
def test_one_interval_rates_as_the_reference(
    case: tuple[TariffBook, TierState | None, Usage],
) -> None:
    book, tiers, usage = case
    same(book, tiers, usage)
    low, high = utc(usage.start), utc(usage.end)
    try:
        expected = [
            (p.start, p.end, p.version, p.band, p.period) for p in reference.pieces(book, low, high)
        ]
    except Exception as exc:
        expected = [("error", str(exc))]
    try:
        got = [(p.start, p.end, p.version, p.band, p.period) for p in pieces(book, low, high)]
    except Exception as exc:
        got = [("error", str(exc))]
    assert got == expected


@st.composite
def runs(draw: st.DrawFn) -> tuple[TariffBook, TierState | None, list[Usage]]:
    """Consecutive intervals of one meter: mostly 15 minutes, some hours or days late."""
    zone = draw(st.sampled_from(ZONES))
    start = draw(instants(zone))
    book = draw(books(zone, start - timedelta(days=45)))
    steps = draw(
        st.lists(
            st.tuples(
                st.sampled_from((900, 900, 900, 3600, 7 * 3600, 86400, 4 * 86400)), units, registers
            ),
            min_size=2,
            max_size=14,
        )
    )
    usages = []
    for seconds, amount, regs in steps:
        end = start + timedelta(seconds=seconds)
        usages.append(Usage(start, end, amount, regs))
        start = end
    return book, draw(tier_states(book, usages[0].start)), usages


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs())
def test_consecutive_intervals_carry_the_same_tier_state(
    case: tuple[TariffBook, TierState | None, list[Usage]],
) -> None:
    book, tiers, usages = case
    seen = []
    for usage in usages:
        result = same(book, tiers, usage)
        seen.append((tiers, usage, result))
        if result[0] != "error":
            tiers = TierState(*result[0][:3])
    for tiers, usage, result in reversed(seen):  # the caches visited backwards, warm
        assert outcome(rate, book, tiers, usage) == result


class _NoOffset(tzinfo):
    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None


NY = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("start", "end", "amount"),
    [
        (datetime(2024, 1, 1), datetime(2024, 1, 2), "1"),  # noqa: DTZ001 - naive on purpose
        (datetime(2024, 1, 1, tzinfo=_NoOffset()), datetime(2024, 1, 2, tzinfo=UTC), "1"),
        (datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC), "1"),
        (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC), "1"),
        (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC), "-1"),
        (datetime(2019, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC), "1"),
        # Later in UTC though earlier on the wall clock: 01:50 EDT, then 01:10 EST.
        (
            datetime(2024, 11, 3, 1, 50, tzinfo=NY),
            datetime(2024, 11, 3, 1, 10, fold=1, tzinfo=NY),
            "1",
        ),
        # Earlier in UTC though later on the wall clock.
        (
            datetime(2024, 11, 3, 1, 10, fold=1, tzinfo=NY),
            datetime(2024, 11, 3, 1, 50, tzinfo=NY),
            "1",
        ),
    ],
)
def test_refusals_and_wall_clock_traps_as_the_reference(
    start: datetime, end: datetime, amount: str
) -> None:
    book = TariffBook([load_tariff_text(HEAD_NY + "valid_from: 2020-01-01\nprice: 0.5\n")])
    same(book, None, Usage(start, end, Decimal(amount)))
