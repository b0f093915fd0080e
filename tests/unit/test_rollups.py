"""Rollup increments of new rated lines: summed per meter, bucket and band (pipeline.store)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from contracts.zones import zone
from pipeline.board_rollups import Place
from pipeline.store import rollups

D = Decimal


def test_lines_sum_per_hour_and_local_day_and_surcharges_stay_out() -> None:
    late = datetime(2026, 7, 1, 15, 45, tzinfo=UTC)   # 23:45 in Shanghai, 1 July
    later = datetime(2026, 7, 1, 16, 0, tzinfo=UTC)   # 00:00 in Shanghai, 2 July
    fresh = [("M1", late, "valley", D("1.5"), D("0.45")),
             ("M1", late, "+fund", D("1.5"), D("0.03")),
             ("M1", datetime(2026, 7, 1, 15, 30, tzinfo=UTC), "valley", D("1"), D("0.3")),
             ("M1", later, "valley", D("2"), D("0.6")),
             ("M2", late, "", D("4"), D("2"))]
    hourly, daily = rollups(fresh)
    assert hourly == [
        ("M1", datetime(2026, 7, 1, 15, tzinfo=UTC), "valley", D("2.5"), D("0.75")),
        ("M1", datetime(2026, 7, 1, 16, tzinfo=UTC), "valley", D("2"), D("0.6")),
        ("M2", datetime(2026, 7, 1, 15, tzinfo=UTC), "", D("4"), D("2")),
    ]
    assert daily == [
        ("M1", date(2026, 7, 1), "valley", D("2.5"), D("0.75")),
        ("M1", date(2026, 7, 2), "valley", D("2"), D("0.6")),
        ("M2", date(2026, 7, 1), "", D("4"), D("2")),
    ]


def test_nothing_new_adds_nothing() -> None:
    assert rollups([]) == ([], [])


def test_the_day_is_the_meters_site_day() -> None:
    """22:30 UTC on 1 July: 1 July in London (site S1), 2 July in the default zone."""
    end = datetime(2026, 7, 1, 22, 30, tzinfo=UTC)
    places = {"M1": Place("S1", "B1", "electricity", zone=zone("Europe/London"))}
    fresh = [("M1", end, "", D("1"), D("0.5")), ("M2", end, "", D("2"), D("1"))]
    _, daily = rollups(fresh, places)
    assert daily == [("M1", date(2026, 7, 1), "", D("1"), D("0.5")),
                     ("M2", date(2026, 7, 2), "", D("2"), D("1"))]
