"""The board rollups (sql/0006_boards.sql), kept by the sinks in their own transaction.

Each sink passes the rows its INSERT actually inserted (``RETURNING``), so a batch written
again adds nothing: the rollups count every base row once, like ``usage_hourly``. Rows are
summed here per key (Decimal for money and units) and upserted once per key and batch.
Periods are local days and months of the zone each meter or account reports in (its
site's, else the default report zone: ``report_zone`` of meter_places and account_places,
sql/0010_site_time_zones.sql) and UTC hours, the same as ``rebuild_board_rollups()``
computes them from the base tables.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from contracts.zones import DEFAULT_REPORT_ZONE, zone

DEFAULT_INTERVAL_S = 900


def local_day(ts: datetime, tz: ZoneInfo = DEFAULT_REPORT_ZONE) -> datetime:
    """The start of the local day of ``ts`` in ``tz``, as an instant."""
    local = ts.astimezone(tz)
    return datetime(local.year, local.month, local.day, tzinfo=tz)


def local_month(ts: datetime, tz: ZoneInfo = DEFAULT_REPORT_ZONE) -> datetime:
    """The start of the local month of ``ts`` in ``tz``, as an instant."""
    local = ts.astimezone(tz)
    return datetime(local.year, local.month, 1, tzinfo=tz)


def utc_hour(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Place:
    """Where a meter (or an account) is, '' when it is in no building, and the zone it
    reports in."""

    site_id: str = ""
    building_id: str = ""
    commodity: str = ""
    expected_interval_s: int = DEFAULT_INTERVAL_S
    zone: ZoneInfo = DEFAULT_REPORT_ZONE


NOWHERE = Place()


def gap_figures(start: datetime | None, end: datetime, expected_s: int) -> tuple[int, int]:
    """(missed readings, gap in seconds) of the interval ending at ``end``: a gap of n
    expected intervals misses n - 1 readings, rounded half up as PostgreSQL's round()."""
    if start is None:
        return 0, 0
    delta = end - start
    seconds = Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds) / 10**6
    expected = Decimal(expected_s)
    missed = max((seconds / expected).quantize(Decimal(1), ROUND_HALF_UP) - 1, Decimal(0))
    return int(missed), int(seconds.quantize(Decimal(1), ROUND_HALF_UP))


# -- pure aggregation ------------------------------------------------------------------

Key = tuple[Any, ...]


def usage_sums(lines: Iterable[tuple[str, datetime, str, Decimal, Decimal]],
               places: dict[str, Place]) -> dict[str, dict[Key, list[Decimal]]]:
    """Rated lines (meter, end, band, units, amount) summed per rollup key; surcharge
    lines (band '+name') are money of rated_lines only, as in usage_hourly/usage_daily."""
    out: dict[str, dict[Key, list[Decimal]]] = {
        "usage_monthly": {}, "usage_daily_building": {}, "usage_hourly_building": {}}
    for meter, end, band, units, amount in lines:
        if band.startswith("+"):
            continue
        p = places.get(meter, NOWHERE)
        keys = {"usage_monthly": (meter, local_month(end, p.zone), band),
                "usage_daily_building": (local_day(end, p.zone), p.site_id, p.building_id,
                                         p.commodity, band),
                "usage_hourly_building": (utc_hour(end), p.site_id, p.building_id,
                                          p.commodity)}
        for table, key in keys.items():
            acc = out[table].setdefault(key, [Decimal(0), Decimal(0)])
            acc[0] += units
            acc[1] += amount
    return out


@dataclass
class Quality:
    readings: int = 0
    missed: int = 0
    max_gap_s: int = 0
    rejected: int = 0

    def add(self, other: Quality) -> None:
        self.readings += other.readings
        self.missed += other.missed
        self.max_gap_s = max(self.max_gap_s, other.max_gap_s)
        self.rejected += other.rejected


def quality_sums(items: Iterable[tuple[str, datetime, Quality]], places: dict[str, Place]
                 ) -> dict[str, dict[Key, Quality]]:
    """Per-reading quality figures summed per meter-day, meter-month and building-day."""
    out: dict[str, dict[Key, Quality]] = {
        "quality_daily": defaultdict(Quality), "quality_monthly": defaultdict(Quality),
        "quality_daily_building": defaultdict(Quality)}
    for meter, ts, q in items:
        p = places.get(meter, NOWHERE)
        day = local_day(ts, p.zone)
        out["quality_daily"][(meter, day)].add(q)
        out["quality_monthly"][(meter, local_month(ts, p.zone))].add(q)
        out["quality_daily_building"][(day, p.site_id, p.building_id)].add(q)
    return out


# -- database --------------------------------------------------------------------------

#: Every meter asked for gets a row: one no longer in ``meters`` reports nowhere, in the
#: default report zone.
PLACES = """
SELECT m.id, COALESCE(p.site_id, ''), COALESCE(p.building_id, ''), COALESCE(p.commodity, ''),
       COALESCE(p.expected_interval_s, %s), COALESCE(p.report_zone, default_report_zone())
FROM unnest(%s::text[]) AS m(id) LEFT JOIN meter_places p ON p.meter_id = m.id"""


def meter_places(cur: psycopg.Cursor[Any], meters: Iterable[str]) -> dict[str, Place]:
    """Where each meter is and the zone it reports in."""
    cur.execute(PLACES, (DEFAULT_INTERVAL_S, sorted(set(meters))))
    return {m: Place(s, b, c, i, zone(z)) for m, s, b, c, i, z in cur.fetchall()}


USAGE_UPSERT = {
    "usage_monthly": ("meter_id, bucket, band", "meter_id, bucket, band"),
    "usage_daily_building": ("bucket, site_id, building_id, commodity, band",
                             "site_id, building_id, commodity, band, bucket"),
    "usage_hourly_building": ("bucket, site_id, building_id, commodity",
                              "site_id, building_id, commodity, bucket"),
}


def _sum_upsert(table: str, columns: str, conflict: str, sums: Sequence[str],
                greatest: Sequence[str] = ()) -> str:
    names = [c.strip() for c in columns.split(",")] + [*sums, *greatest]
    sets = [f"{c} = {table}.{c} + excluded.{c}" for c in sums]
    sets += [f"{c} = GREATEST({table}.{c}, excluded.{c})" for c in greatest]
    return (f"INSERT INTO {table} ({', '.join(names)}) "
            f"VALUES ({', '.join(['%s'] * len(names))}) "
            f"ON CONFLICT ({conflict}) DO UPDATE SET {', '.join(sets)}")


def add_usage(cur: psycopg.Cursor[Any],
              fresh: Sequence[tuple[str, datetime, str, Decimal, Decimal]],
              places: dict[str, Place]) -> None:
    """Newly inserted rated lines -> usage_monthly and the per-building usage rollups."""
    if not fresh:
        return
    for table, sums in usage_sums(fresh, places).items():
        columns, conflict = USAGE_UPSERT[table]
        sql = _sum_upsert(table, columns, conflict, ("units", "amount_yuan"))
        cur.executemany(sql, [(*key, u, a) for key, (u, a) in sorted(sums.items())])


QUALITY_UPSERT = {
    "quality_daily": _sum_upsert("quality_daily", "meter_id, bucket", "meter_id, bucket",
                                 ("readings", "missed", "rejected"), ("max_gap_s",)),
    "quality_monthly": _sum_upsert("quality_monthly", "meter_id, bucket", "meter_id, bucket",
                                   ("readings", "missed", "rejected"), ("max_gap_s",)),
    "quality_daily_building": _sum_upsert(
        "quality_daily_building", "bucket, site_id, building_id",
        "site_id, building_id, bucket", ("readings", "missed", "rejected")),
}


def _add_quality(cur: psycopg.Cursor[Any], items: Sequence[tuple[str, datetime, Quality]],
                 places: dict[str, Place]) -> None:
    for table, sums in quality_sums(items, places).items():
        if table == "quality_daily_building":
            params = [(*k, q.readings, q.missed, q.rejected) for k, q in sorted(sums.items())]
        else:
            params = [(*k, q.readings, q.missed, q.rejected, q.max_gap_s)
                      for k, q in sorted(sums.items())]
        cur.executemany(QUALITY_UPSERT[table], params)


def add_accepted(cur: psycopg.Cursor[Any],
                 fresh: Sequence[tuple[str, datetime, datetime | None]]) -> None:
    """Newly inserted readings (meter, ts, start of the interval they close or None)."""
    if not fresh:
        return
    places = meter_places(cur, (r[0] for r in fresh))
    items = []
    for meter, ts, start in fresh:
        expected = places.get(meter, NOWHERE).expected_interval_s
        missed, gap = gap_figures(start, ts, expected)
        items.append((meter, ts, Quality(readings=1, missed=missed, max_gap_s=gap)))
    _add_quality(cur, items, places)


REJECTIONS = _sum_upsert("rejections_daily", "bucket, site_id, building_id, reason",
                         "site_id, building_id, reason, bucket", ("rejected",))


def add_rejected(cur: psycopg.Cursor[Any], fresh: Sequence[tuple[str, datetime, str]]) -> None:
    """Newly inserted rejections (meter, ts, reason)."""
    if not fresh:
        return
    places = meter_places(cur, (r[0] for r in fresh))
    _add_quality(cur, [(m, ts, Quality(rejected=1)) for m, ts, _ in fresh], places)
    by_reason: dict[Key, int] = defaultdict(int)
    for meter, ts, reason in fresh:
        p = places.get(meter, NOWHERE)
        by_reason[(local_day(ts, p.zone), p.site_id, p.building_id, reason)] += 1
    cur.executemany(REJECTIONS, [(*k, n) for k, n in sorted(by_reason.items())])


LEDGER_DAILY = _sum_upsert("ledger_daily", "bucket, site_id, building_id, kind",
                           "site_id, building_id, kind, bucket", ("amount_fen", "entries"))
ACCOUNT_PLACES = """
SELECT a.id, COALESCE(p.site_id, ''), COALESCE(p.building_id, ''),
       COALESCE(p.report_zone, default_report_zone())
FROM unnest(%s::text[]) AS a(id) LEFT JOIN account_places p ON p.account_id = a.id"""


def add_ledger(cur: psycopg.Cursor[Any], fresh: Sequence[tuple[str, datetime, str, int]]
               ) -> None:
    """Newly inserted ledger entries (account, at, kind, amount_fen) -> ledger_daily, in
    the local day of the account's site."""
    if not fresh:
        return
    cur.execute(ACCOUNT_PLACES, (sorted({r[0] for r in fresh}),))
    where = {a: (s, b, zone(z)) for a, s, b, z in cur.fetchall()}
    sums: dict[Key, list[int]] = {}
    for account, at, kind, fen in fresh:
        site, building, tz = where[account]
        acc = sums.setdefault((local_day(at, tz), site, building, kind), [0, 0])
        acc[0] += fen
        acc[1] += 1
    cur.executemany(LEDGER_DAILY, [(*k, f, n) for k, (f, n) in sorted(sums.items())])


def inserted(cur: psycopg.Cursor[Any], sql: str,
             params: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Run ``INSERT ... ON CONFLICT DO NOTHING RETURNING ...`` for each parameter tuple
    and return the rows it inserted (a redelivered row returns nothing)."""
    if not params:
        return []
    cur.executemany(sql, params, returning=True)
    rows: list[tuple[Any, ...]] = []
    while True:
        rows.extend(cur.fetchall())
        if not cur.nextset():
            return rows
