"""Variables and filters shared by the boards: site, building, floor, commodity, top N.

Place variables are multi-value with the "All" value ``'__all'``; a filter reads
``('__all' IN ($site) OR x.site_id IN ($site))`` so "All" costs nothing and also keeps
meters and accounts not yet placed in a building (site and building '').
"""

from __future__ import annotations

from typing import Any

from meterflow.dashboards.spec import custom_variable, datasource_variable, query_variable

SITE = query_variable("site", "Site", """
    SELECT site_id AS __value, COALESCE(NULLIF(name, ''), site_id) AS __text
    FROM sites ORDER BY 2
""")
BUILDING = query_variable("building", "Building", """
    SELECT building_id AS __value, COALESCE(NULLIF(name, ''), building_id) AS __text
    FROM buildings WHERE ('__all' IN ($site) OR site_id IN ($site)) ORDER BY 2
""")
FLOOR = query_variable("floor", "Floor", """
    SELECT f.floor_id AS __value,
           COALESCE(NULLIF(b.name, ''), b.building_id) || ' / '
               || COALESCE(NULLIF(f.name, ''), 'floor ' || f.level) AS __text
    FROM floors f JOIN buildings b USING (building_id)
    WHERE ('__all' IN ($site) OR b.site_id IN ($site))
      AND ('__all' IN ($building) OR b.building_id IN ($building))
    ORDER BY b.building_id, f.level
""")
COMMODITY = custom_variable("commodity", "Commodity", ("electricity", "water"))
TOP = custom_variable("top", "Top", ("20", "10", "50", "100"))
METER = query_variable("meter", "Meter", """
    SELECT meter_id FROM meter_places
    WHERE commodity = '$commodity'
      AND ('__all' IN ($site) OR site_id IN ($site))
      AND ('__all' IN ($building) OR building_id IN ($building))
    ORDER BY 1
""", multi=False, include_all=False)


def variables(*extra: dict[str, Any], floor: bool = False) -> tuple[dict[str, Any], ...]:
    """Data source, site and building (and floor), then the board's own."""
    return (datasource_variable(), SITE, BUILDING, *((FLOOR,) if floor else ()), *extra)


def at(alias: str) -> str:
    """The site and building filter on a row source with site_id and building_id."""
    return (f"('__all' IN ($site) OR {alias}.site_id IN ($site))\n"
            f"  AND ('__all' IN ($building) OR {alias}.building_id IN ($building))")


def placed(column: str, view: str, key: str) -> str:
    """``column`` is an account or meter at the chosen sites and buildings: with "All" this
    folds to true when the query is planned, so a large event table is not joined."""
    return (f"(('__all' IN ($site) AND '__all' IN ($building))\n"
            f"   OR {column} IN (SELECT {key} FROM {view} WHERE {at(view)}))")


def account_at(column: str) -> str:
    return placed(column, "account_places", "account_id")


def meter_at(column: str) -> str:
    return placed(column, "meter_places", "meter_id")


def on_floor(alias: str) -> str:
    return f"('__all' IN ($floor) OR {alias}.floor_id IN ($floor))"


def site_zone(alias: str) -> str:
    """The report zone of a rollup row's site (sql/0010_site_time_zones.sql)."""
    return f"site_report_zone({alias}.site_id)"


def meter_zone(column: str) -> str:
    """The report zone of a meter: its site's, else the default report zone."""
    return f"meter_report_zone({column})"


def local_day(column: str, zone: str) -> str:
    """The start of the local day of an instant in ``zone``, as an instant."""
    return f"date_trunc('day', {column} AT TIME ZONE {zone}) AT TIME ZONE {zone}"


def label(column: str, pattern: str, zone: str) -> str:
    """A month ('YYYY-MM') or year ('YYYY') label of a bucket in ``zone``."""
    return f"to_char({column} AT TIME ZONE {zone}, '{pattern}')"
