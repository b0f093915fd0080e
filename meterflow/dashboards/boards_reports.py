"""Energy analysis and finance: long ranges (a year and more) over the rollups only.

Time series read per-building daily and hourly rollups; per-meter, account and room totals
read ``usage_span`` (whole months from usage_monthly, the edge days from usage_daily);
money comes from ledger_daily (fen) and, for single top-ups and refunds, from the ledger
through its partial index that leaves the charges out.
"""

from __future__ import annotations

from meterflow.dashboards.places import (
    COMMODITY,
    METER,
    TOP,
    at,
    label,
    meter_zone,
    site_zone,
    variables,
)
from meterflow.dashboards.spec import Board, Panel, Row, q

#: The report zone of a per-building row (its site's) and of a meter (sql/0010).
U_ZONE = site_zone("u")
M_ZONE = meter_zone("u.meter_id")
UDB = "usage_daily_building"
SPAN = "usage_span($__timeFrom(), $__timeTo())"


def _by_period(pattern: str, name: str) -> Panel:
    return Panel(f"Units and charge by {name}", "barchart", (q(f"""
        SELECT {label('u.bucket', pattern, U_ZONE)} AS {name}, sum(u.units) AS units,
               sum(u.amount_yuan) AS yuan
        FROM {UDB} u
        WHERE $__timeFilter(u.bucket) AND u.commodity = '$commodity'
          AND {at('u')}
        GROUP BY 1 ORDER BY 1
    """, name, "units", "yuan"),), width=8, options={"xField": name})


def _top(title: str, key: str, columns: str, names: tuple[str, ...], extra_join: str = ""
         ) -> Panel:
    return Panel(title, "table", (q(f"""
        SELECT {columns}, sum(s.units) AS units, sum(s.yuan) AS yuan
        FROM (SELECT meter_id, sum(units) AS units, sum(amount_yuan) AS yuan
              FROM {SPAN} GROUP BY meter_id) s
        JOIN meter_places p USING (meter_id){extra_join}
        WHERE p.commodity = '$commodity' AND {at('p')}
        GROUP BY {key}
        ORDER BY units DESC LIMIT $top
    """, *names, "units", "yuan"),), width=8, height=10,
        description="Whole local days of the range; energy charge before surcharges.")


ENERGY = Board(
    uid="meterflow-energy", title="MeterFlow / Energy analysis", time_from="now-1y",
    tags=("energy",),
    description="Units and energy charge per meter, account, room, building and site; by "
                "day, month and year; time-of-use bands; year over year; load profile.",
    variables=variables(COMMODITY, TOP, METER),
    items=(
        Row("Over time"),
        Panel("Units by day", "timeseries", (q(f"""
            SELECT u.bucket AS time, sum(u.units) AS units
            FROM {UDB} u
            WHERE $__timeFilter(u.bucket) AND u.commodity = '$commodity' AND {at('u')}
            GROUP BY 1 ORDER BY 1
        """, "time", "units", series=True),), custom={"drawStyle": "bars"}),
        Panel("Energy charge by day", "timeseries", (q(f"""
            SELECT u.bucket AS time, sum(u.amount_yuan) AS yuan
            FROM {UDB} u
            WHERE $__timeFilter(u.bucket) AND u.commodity = '$commodity' AND {at('u')}
            GROUP BY 1 ORDER BY 1
        """, "time", "yuan", series=True),), unit="currencyCNY",
            custom={"drawStyle": "bars"}),
        _by_period("YYYY-MM", "month"),
        _by_period("YYYY", "year"),
        Panel("Year over year by month", "table", (q(f"""
            WITH cur AS (
                SELECT date_trunc('month', u.bucket AT TIME ZONE {U_ZONE}) AS m,
                       sum(u.units) AS units, sum(u.amount_yuan) AS yuan
                FROM {UDB} u
                WHERE $__timeFilter(u.bucket) AND u.commodity = '$commodity' AND {at('u')}
                GROUP BY 1),
            prev AS (
                SELECT date_trunc('month', u.bucket AT TIME ZONE {U_ZONE}) + interval '1 year' AS m,
                       sum(u.units) AS units, sum(u.amount_yuan) AS yuan
                FROM {UDB} u
                WHERE u.bucket BETWEEN $__timeFrom()::timestamptz - interval '1 year'
                                   AND $__timeTo()::timestamptz - interval '1 year'
                  AND u.commodity = '$commodity' AND {at('u')}
                GROUP BY 1)
            SELECT to_char(cur.m, 'YYYY-MM') AS month, cur.units, prev.units AS units_last_year,
                   round(100 * (cur.units - prev.units) / NULLIF(prev.units, 0), 1)
                       AS units_change_pct,
                   cur.yuan, prev.yuan AS yuan_last_year
            FROM cur LEFT JOIN prev USING (m)
            ORDER BY cur.m
        """, "month", "units", "units_last_year", "units_change_pct", "yuan",
             "yuan_last_year"),), width=8),
        Row("Time-of-use bands"),
        Panel("Units by band and month", "barchart", (q(f"""
            SELECT {label('u.bucket', 'YYYY-MM', U_ZONE)} AS month,
                   sum(u.units) FILTER (WHERE u.band = 'sharp') AS sharp,
                   sum(u.units) FILTER (WHERE u.band = 'peak') AS peak,
                   sum(u.units) FILTER (WHERE u.band = 'flat') AS flat,
                   sum(u.units) FILTER (WHERE u.band = 'valley') AS valley,
                   sum(u.units) FILTER (WHERE u.band NOT IN ('sharp', 'peak', 'flat', 'valley'))
                       AS single_rate
            FROM {UDB} u
            WHERE $__timeFilter(u.bucket) AND u.commodity = '$commodity' AND {at('u')}
            GROUP BY 1 ORDER BY 1
        """, "month", "sharp", "peak", "flat", "valley", "single_rate"),), width=16,
            options={"stacking": "normal", "xField": "month"}),
        Panel("Band share", "piechart", (q(f"""
            SELECT CASE WHEN u.band = '' THEN 'single rate' ELSE u.band END AS band,
                   sum(u.units) AS units, sum(u.amount_yuan) AS yuan
            FROM {UDB} u
            WHERE $__timeFilter(u.bucket) AND u.commodity = '$commodity' AND {at('u')}
            GROUP BY 1 ORDER BY 2 DESC
        """, "band", "units", "yuan"),), width=8),
        Row("Top consumers"),
        _top("Top meters", "s.meter_id, p.room_id, p.building_id",
             "s.meter_id AS meter, p.room_id AS room, p.building_id AS building",
             ("meter", "room", "building")),
        _top("Top accounts", "p.account_id, a.name",
             "COALESCE(p.account_id, '') AS account, COALESCE(a.name, '') AS name",
             ("account", "name"), "\nLEFT JOIN accounts a ON a.account_id = p.account_id"),
        _top("Top rooms", "p.room_id, p.room_name, p.building_name",
             "p.room_id AS room, p.room_name, p.building_name AS building",
             ("room", "room_name", "building")),
        Panel("By building", "table", (q(f"""
            SELECT u.site_id AS site, u.building_id AS building,
                   COALESCE(NULLIF(b.name, ''), u.building_id) AS name,
                   sum(u.units) AS units, sum(u.amount_yuan) AS yuan
            FROM {UDB} u LEFT JOIN buildings b USING (building_id)
            WHERE $__timeFilter(u.bucket) AND u.commodity = '$commodity' AND {at('u')}
            GROUP BY 1, 2, 3 ORDER BY units DESC
        """, "site", "building", "name", "units", "yuan"),), height=9),
        Panel("By site", "table", (q(f"""
            SELECT u.site_id AS site, COALESCE(NULLIF(s.name, ''), u.site_id) AS name,
                   sum(u.units) AS units, sum(u.amount_yuan) AS yuan
            FROM {UDB} u LEFT JOIN sites s USING (site_id)
            WHERE $__timeFilter(u.bucket) AND u.commodity = '$commodity' AND {at('u')}
            GROUP BY 1, 2 ORDER BY units DESC
        """, "site", "name", "units", "yuan"),), height=9),
        Row("Load profile"),
        Panel("Load profile", "timeseries", (q(f"""
            SELECT $__timeGroupAlias(u.bucket, $__interval), sum(u.units) AS units
            FROM usage_hourly_building u
            WHERE $__timeFilter(u.bucket) AND u.commodity = '$commodity' AND {at('u')}
            GROUP BY 1 ORDER BY 1
        """, "time", "units", series=True),), width=16,
            description="Units per interval of the graph, from hourly rollups per building."),
        Panel("Average day", "barchart", (q(f"""
            SELECT lpad(h::text, 2, '0') || ':00' AS hour, avg(units) AS avg_units
            FROM (SELECT u.bucket, extract(hour FROM u.bucket AT TIME ZONE {U_ZONE})::int AS h,
                         sum(u.units) AS units
                  FROM usage_hourly_building u
                  WHERE $__timeFilter(u.bucket) AND u.commodity = '$commodity' AND {at('u')}
                  GROUP BY 1, 2) per_hour
            GROUP BY h ORDER BY h
        """, "hour", "avg_units"),), width=8, options={"xField": "hour"}),
        Row("One meter"),
        Panel("Meter $meter by day", "timeseries", (q(f"""
            SELECT d.time, sum(d.units) AS units, sum(d.yuan) AS yuan
            FROM (SELECT u.bucket::timestamp AT TIME ZONE {M_ZONE} AS time, u.units,
                         u.amount_yuan AS yuan
                  FROM usage_daily u WHERE u.meter_id = '$meter') d
            WHERE $__timeFilter(d.time)
            GROUP BY 1 ORDER BY 1
        """, "time", "units", "yuan", series=True),), width=16,
            custom={"drawStyle": "bars"}),
        Panel("Meter $meter by month and band", "table", (q(f"""
            SELECT {label('u.bucket', 'YYYY-MM', M_ZONE)} AS month,
                   CASE WHEN u.band = '' THEN 'single rate' ELSE u.band END AS band,
                   u.units, u.amount_yuan AS yuan
            FROM usage_monthly u
            WHERE u.meter_id = '$meter' AND $__timeFilter(u.bucket)
            ORDER BY u.bucket, u.band
        """, "month", "band", "units", "yuan"),), width=8),
    ),
)

LD = "ledger_daily"


def _income(pattern: str, name: str) -> Panel:
    return Panel(f"Income by {name}", "table", (q(f"""
        SELECT {label('l.bucket', pattern, site_zone('l'))} AS {name},
               COALESCE(sum(l.amount_fen) FILTER (WHERE l.kind = 'topup'), 0) / 100.0
                   AS topups_yuan,
               -COALESCE(sum(l.amount_fen) FILTER (WHERE l.kind = 'refund'), 0) / 100.0
                   AS refunds_yuan,
               COALESCE(sum(l.amount_fen) FILTER (WHERE l.kind IN ('topup', 'refund')), 0)
                   / 100.0 AS income_yuan,
               -COALESCE(sum(l.amount_fen) FILTER (WHERE l.kind = 'charge'), 0) / 100.0
                   AS charges_yuan
        FROM {LD} l
        WHERE $__timeFilter(l.bucket) AND {at('l')}
        GROUP BY 1 ORDER BY 1
    """, name, "topups_yuan", "refunds_yuan", "income_yuan", "charges_yuan"),), width=12)


FINANCE = Board(
    uid="meterflow-finance", title="MeterFlow / Finance", time_from="now-1y",
    tags=("finance",),
    description="Top-ups, refunds and charges from the ledger (integer fen, shown in yuan); "
                "income by day, month and year and by kind; balances held and owed; "
                "arrears of postpaid bills.",
    variables=variables(),
    items=(
        Panel("Totals in range", "stat", (q(f"""
            SELECT COALESCE(sum(l.amount_fen) FILTER (WHERE l.kind = 'topup'), 0) / 100.0
                       AS topups_yuan,
                   -COALESCE(sum(l.amount_fen) FILTER (WHERE l.kind = 'refund'), 0) / 100.0
                       AS refunds_yuan,
                   -COALESCE(sum(l.amount_fen) FILTER (WHERE l.kind = 'charge'), 0) / 100.0
                       AS charges_yuan,
                   COALESCE(sum(l.amount_fen) FILTER (WHERE l.kind = 'adjustment'), 0) / 100.0
                       AS adjustments_yuan
            FROM {LD} l
            WHERE $__timeFilter(l.bucket) AND {at('l')}
        """, "topups_yuan", "refunds_yuan", "charges_yuan", "adjustments_yuan"),),
            width=16, height=5, unit="currencyCNY"),
        Panel("Balances held and owed", "stat", (q(f"""
            SELECT COALESCE(sum(b.balance_fen) FILTER (WHERE b.balance_fen > 0), 0) / 100.0
                       AS credit_held_yuan,
                   -COALESCE(sum(b.balance_fen) FILTER (WHERE b.balance_fen < 0), 0) / 100.0
                       AS owed_yuan,
                   count(*) FILTER (WHERE b.balance_fen < 0) AS accounts_owing
            FROM balances b JOIN account_places a USING (account_id)
            WHERE {at('a')}
        """, "credit_held_yuan", "owed_yuan", "accounts_owing"),), width=8, height=5,
            description="Now, whatever the range: prepaid credit is owed to customers; a "
                        "negative balance is owed by them."),
        Panel("Income and charges by day", "timeseries", (q(f"""
            SELECT l.bucket AS time,
                   COALESCE(sum(l.amount_fen) FILTER (WHERE l.kind = 'topup'), 0) / 100.0
                       AS topups,
                   -COALESCE(sum(l.amount_fen) FILTER (WHERE l.kind = 'refund'), 0) / 100.0
                       AS refunds,
                   -COALESCE(sum(l.amount_fen) FILTER (WHERE l.kind = 'charge'), 0) / 100.0
                       AS charges
            FROM {LD} l
            WHERE $__timeFilter(l.bucket) AND {at('l')}
            GROUP BY 1 ORDER BY 1
        """, "time", "topups", "refunds", "charges", series=True),), width=24,
            unit="currencyCNY", custom={"drawStyle": "bars"}),
        _income("YYYY-MM", "month"),
        _income("YYYY", "year"),
        Panel("Income by building", "table", (q(f"""
            SELECT l.site_id AS site, l.building_id AS building,
                   COALESCE(sum(l.amount_fen) FILTER (WHERE l.kind = 'topup'), 0) / 100.0
                       AS topups_yuan,
                   -COALESCE(sum(l.amount_fen) FILTER (WHERE l.kind = 'refund'), 0) / 100.0
                       AS refunds_yuan,
                   -COALESCE(sum(l.amount_fen) FILTER (WHERE l.kind = 'charge'), 0) / 100.0
                       AS charges_yuan
            FROM {LD} l
            WHERE $__timeFilter(l.bucket) AND {at('l')}
            GROUP BY 1, 2 ORDER BY 3 DESC
        """, "site", "building", "topups_yuan", "refunds_yuan", "charges_yuan"),)),
        Panel("Top-ups, refunds and adjustments", "table", (q(f"""
            SELECT l.at AS time, l.account_id AS account, a.account_name AS name, l.kind,
                   l.amount_fen / 100.0 AS amount_yuan, l.balance_fen / 100.0 AS balance_yuan,
                   l.ref AS key
            FROM ledger l JOIN account_places a USING (account_id)
            WHERE $__timeFilter(l.at) AND l.kind <> 'charge' AND {at('a')}
            ORDER BY l.at DESC LIMIT 500
        """, "time", "account", "name", "kind", "amount_yuan", "balance_yuan", "key"),),
            height=10),
        Panel("Lowest balances", "table", (q(f"""
            SELECT b.account_id AS account, a.account_name AS name, a.building_id AS building,
                   b.balance_fen / 100.0 AS balance_yuan, b.alarm_level, b.supply,
                   b.updated_at
            FROM balances b JOIN account_places a USING (account_id)
            WHERE {at('a')}
            ORDER BY b.balance_fen, b.account_id LIMIT 200
        """, "account", "name", "building", "balance_yuan", "alarm_level", "supply",
             "updated_at"),), height=10,
            description="Now: a negative balance is owed by the customer."),
        Panel("Income by kind", "table", (q(f"""
            SELECT i.kind, i.label, sum(i.amount_fen) / 100.0 AS amount_yuan,
                   sum(i.entries) AS entries
            FROM income_by_kind($__timeFrom(), $__timeTo()) i
            JOIN account_places a USING (account_id)
            WHERE {at('a')}
            GROUP BY 1, 2 ORDER BY 1, 2
        """, "kind", "label", "amount_yuan", "entries"),), width=12, height=8,
            description="Electricity and water charges by the meter's commodity, each custom "
                        "charge item by name, apportionment shares, and money received."),
        Panel("Arrears of postpaid bills", "stat", (q(f"""
            SELECT COALESCE(sum(b.outstanding_fen), 0) / 100.0 AS arrears_yuan,
                   count(*) AS open_bills,
                   count(*) FILTER (WHERE b.state = 'overdue') AS overdue_bills
            FROM bill_arrears b
            WHERE {at('b')}
        """, "arrears_yuan", "open_bills", "overdue_bills"),), width=12, height=8,
            description="Now, whatever the range: what issued bills still ask for."),
        Panel("Payments refused by the wallet", "table", (q(f"""
            SELECT al.at AS time, al.account_id AS account, al.detail
            FROM alarms al JOIN account_places a USING (account_id)
            WHERE $__timeFilter(al.at) AND al.kind = 'refused' AND {at('a')}
            ORDER BY al.at DESC LIMIT 200
        """, "time", "account", "detail"),), width=24, height=6),
    ),
)
