"""Room monitoring, alarms and control, data quality and pipeline health.

State "now" comes from the room_status / meter_status views; events over a range from the
event tables (alarms, commands, acknowledgements, notifications: a few rows per account
and month); reading quality from the quality rollups, never from raw readings.
"""

from __future__ import annotations

from meterflow.dashboards.places import (
    TOP,
    account_at,
    at,
    local_day,
    meter_at,
    on_floor,
    site_zone,
    variables,
)
from meterflow.dashboards.spec import Board, Panel, Row, q, query_variable

ROOMS = Board(
    uid="meterflow-rooms", title="MeterFlow / Room monitoring", time_from="now/d",
    refresh="1m", tags=("operations",),
    description="Every room now: online state, balance, alarm level, supply; today's units "
                "and money (the local day of each room's site).",
    variables=variables(floor=True),
    items=(
        Panel("Rooms", "stat", (q(f"""
            SELECT count(*) AS rooms, count(*) FILTER (WHERE NOT r.online) AS offline,
                   count(*) FILTER (WHERE r.supply = 'disconnected') AS disconnected,
                   count(*) FILTER (WHERE r.alarm_level > 0) AS in_alarm
            FROM room_status r
            WHERE {at('r')} AND {on_floor('r')}
        """, "rooms", "offline", "disconnected", "in_alarm"),), width=12, height=5),
        Panel("Today", "stat", (q(f"""
            SELECT COALESCE(sum(r.today_kwh), 0) AS kwh, COALESCE(sum(r.today_m3), 0) AS m3,
                   COALESCE(sum(r.today_yuan), 0) AS yuan
            FROM room_status r
            WHERE {at('r')} AND {on_floor('r')}
        """, "kwh", "m3", "yuan"),), width=12, height=5),
        Panel("Rooms", "table", (q(f"""
            SELECT r.room_id AS room, r.room_name AS name, r.building_name AS building,
                   r.floor_level AS floor, r.online, r.balance_fen / 100.0 AS balance_yuan,
                   r.alarm_level, r.supply, r.today_kwh, r.today_m3, r.today_yuan
            FROM room_status r
            WHERE {at('r')} AND {on_floor('r')}
            ORDER BY r.alarm_level DESC, r.balance_fen NULLS LAST, r.room_id
            LIMIT 5000
        """, "room", "name", "building", "floor", "online", "balance_yuan", "alarm_level",
             "supply", "today_kwh", "today_m3", "today_yuan"),), width=24, height=14,
            description="Lowest balance first within each alarm level."),
        Panel("Rooms by alarm level", "piechart", (q(f"""
            SELECT 'level ' || r.alarm_level AS level, count(*) AS rooms
            FROM room_status r
            WHERE {at('r')} AND {on_floor('r')}
            GROUP BY r.alarm_level ORDER BY r.alarm_level
        """, "level", "rooms"),), width=8),
        Panel("Today by hour", "timeseries", (q(f"""
            SELECT u.bucket AS time,
                   sum(u.units) FILTER (WHERE u.commodity = 'electricity') AS kwh,
                   sum(u.units) FILTER (WHERE u.commodity = 'water') AS m3
            FROM usage_hourly_building u
            WHERE u.bucket >= now() - interval '2 days'
              AND u.bucket >= {local_day('now()', site_zone('u'))} AND {at('u')}
            GROUP BY 1 ORDER BY 1
        """, "time", "kwh", "m3", series=True),), width=16,
            description="Site and building filters apply; hourly rollups have no floor."),
    ),
)


def _per_interval(title: str, sql: str, *names: str, width: int = 12) -> Panel:
    return Panel(title, "timeseries", (q(sql, "time", *names, series=True),), width=width,
                 custom={"drawStyle": "bars"})


ALARMS = Board(
    uid="meterflow-alarms", title="MeterFlow / Alarms and control", time_from="now-30d",
    tags=("operations",),
    description="Low-balance alarms by level, disconnections and reconnections, command "
                "acknowledgement latency, failed and expired commands, notification delivery.",
    variables=variables(),
    items=(
        Row("Alarms"),
        _per_interval("Low-balance alarms by level", f"""
            SELECT $__timeGroupAlias(al.at, $__interval),
                   count(*) FILTER (WHERE al.level = 1) AS level_1,
                   count(*) FILTER (WHERE al.level = 2) AS level_2,
                   count(*) FILTER (WHERE al.level = 3) AS level_3
            FROM alarms al
            WHERE $__timeFilter(al.at) AND al.kind = 'low_balance'
              AND {account_at('al.account_id')}
            GROUP BY 1 ORDER BY 1
        """, "level_1", "level_2", "level_3"),
        _per_interval("Disconnections and reconnections", f"""
            SELECT $__timeGroupAlias(al.at, $__interval),
                   count(*) FILTER (WHERE al.kind = 'disconnect') AS disconnect,
                   count(*) FILTER (WHERE al.kind = 'reconnect') AS reconnect,
                   count(*) FILTER (WHERE al.kind = 'disconnect_deferred') AS deferred
            FROM alarms al
            WHERE $__timeFilter(al.at)
              AND al.kind IN ('disconnect', 'reconnect', 'disconnect_deferred')
              AND {account_at('al.account_id')}
            GROUP BY 1 ORDER BY 1
        """, "disconnect", "reconnect", "deferred"),
        Panel("Alarms in range", "table", (q(f"""
            SELECT al.kind, COALESCE(al.level, 0) AS level, count(*) AS alarms
            FROM alarms al
            WHERE $__timeFilter(al.at) AND {account_at('al.account_id')}
            GROUP BY 1, 2 ORDER BY 1, 2
        """, "kind", "level", "alarms"),), width=8),
        Panel("Accounts in alarm now", "bargauge", (q(f"""
            SELECT 'level ' || b.alarm_level AS level, count(*) AS accounts
            FROM balances b JOIN account_places a USING (account_id)
            WHERE {at('a')}
            GROUP BY b.alarm_level ORDER BY b.alarm_level
        """, "level", "accounts"),), width=8),
        Row("Commands"),
        Panel("Acknowledgement latency", "timeseries", (q(f"""
            SELECT $__timeGroupAlias(c.issued_at, $__interval),
                   percentile_cont(0.5) WITHIN GROUP (
                       ORDER BY extract(epoch FROM k.first_ack - c.issued_at)) AS p50_s,
                   percentile_cont(0.95) WITHIN GROUP (
                       ORDER BY extract(epoch FROM k.first_ack - c.issued_at)) AS p95_s,
                   max(extract(epoch FROM k.first_ack - c.issued_at)) AS max_s
            FROM commands c
            JOIN (SELECT command_id, min(at) AS first_ack FROM command_acks
                  WHERE $__timeFilter(at) AND status = 'applied' GROUP BY 1) k USING (command_id)
            WHERE $__timeFilter(c.issued_at) AND {meter_at('c.meter_id')}
            GROUP BY 1 ORDER BY 1
        """, "time", "p50_s", "p95_s", "max_s", series=True),), unit="s",
            description="From issuing a command to the meter's applied acknowledgement."),
        Panel("Commands by outcome", "table", (q(f"""
            SELECT c.action, COALESCE(k.status, 'unanswered') AS outcome, count(*) AS commands
            FROM commands c
            LEFT JOIN command_acks k ON k.command_id = c.command_id AND k.at >= c.issued_at
            WHERE $__timeFilter(c.issued_at) AND {meter_at('c.meter_id')}
            GROUP BY 1, 2 ORDER BY 1, 2
        """, "action", "outcome", "commands"),),
            description="Each command has one final acknowledgement (docs/contracts.md)."),
        Panel("Failed and expired commands", "table", (q(f"""
            SELECT a.at AS time, c.meter_id AS meter, c.account_id AS account, c.action,
                   a.status, a.attempts, a.detail
            FROM command_acks a JOIN commands c USING (command_id)
            WHERE $__timeFilter(a.at) AND a.status IN ('failed', 'expired')
              AND {meter_at('c.meter_id')}
            ORDER BY a.at DESC LIMIT 500
        """, "time", "meter", "account", "action", "status", "attempts", "detail"),),
            width=24, height=8),
        Row("Notifications"),
        _per_interval("Notifications by status", """
            SELECT $__timeGroupAlias(n.created_at, $__interval),
                   count(*) FILTER (WHERE n.status = 'delivered') AS delivered,
                   count(*) FILTER (WHERE n.status = 'failed') AS failed,
                   count(*) FILTER (WHERE n.status IN ('pending', 'held')) AS waiting
            FROM notifications n
            WHERE $__timeFilter(n.created_at)
              AND ('__all' IN ($site) OR n.site_id IN ($site))
            GROUP BY 1 ORDER BY 1
        """, "delivered", "failed", "waiting"),
        Panel("Delivery by channel", "table", (q("""
            SELECT n.channel, count(*) AS notifications,
                   count(*) FILTER (WHERE n.status = 'delivered') AS delivered,
                   count(*) FILTER (WHERE n.status = 'failed') AS failed,
                   round(100.0 * count(*) FILTER (WHERE n.status = 'delivered')
                         / count(*), 1) AS delivered_pct,
                   (SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY t.latency_ms)
                    FROM notification_attempts t
                    WHERE t.channel = n.channel AND $__timeFilter(t.at)) AS p95_latency_ms
            FROM notifications n
            WHERE $__timeFilter(n.created_at)
              AND ('__all' IN ($site) OR n.site_id IN ($site))
            GROUP BY n.channel ORDER BY n.channel
        """, "channel", "notifications", "delivered", "failed", "delivered_pct",
             "p95_latency_ms"),)),
    ),
)

QUALITY = Board(
    uid="meterflow-quality", title="MeterFlow / Data quality", time_from="now-30d",
    tags=("operations",),
    description="Rejected readings by reason, missed readings and gaps, offline and stopped "
                "meters, dead letters.",
    variables=variables(TOP),
    items=(
        Row("Rejections"),
        Panel("Rejected readings by reason", "timeseries", (q(f"""
            SELECT r.bucket AS time, r.reason AS metric, sum(r.rejected) AS rejected
            FROM rejections_daily r
            WHERE $__timeFilter(r.bucket) AND {at('r')}
            GROUP BY 1, 2 ORDER BY 1, 2
        """, "time", "metric", "rejected", series=True),), width=16,
            custom={"drawStyle": "bars", "stacking": {"mode": "normal"}}),
        Panel("Rejections in range", "table", (q(f"""
            SELECT r.reason, sum(r.rejected) AS rejected
            FROM rejections_daily r
            WHERE $__timeFilter(r.bucket) AND {at('r')}
            GROUP BY 1 ORDER BY 2 DESC
        """, "reason", "rejected"),), width=8),
        Row("Gaps"),
        Panel("Readings received and missed by day", "timeseries", (q(f"""
            SELECT g.bucket AS time, sum(g.readings) AS readings, sum(g.missed) AS missed,
                   sum(g.rejected) AS rejected
            FROM quality_daily_building g
            WHERE $__timeFilter(g.bucket) AND {at('g')}
            GROUP BY 1 ORDER BY 1
        """, "time", "readings", "missed", "rejected", series=True),), width=12),
        Panel("Meters with the most missed readings", "table", (q(f"""
            SELECT s.meter_id AS meter, p.room_id AS room, p.building_id AS building,
                   s.readings, s.missed, round(s.max_gap_s / 3600.0, 2) AS longest_gap_h,
                   s.rejected
            FROM (SELECT meter_id, sum(readings) AS readings, sum(missed) AS missed,
                         max(max_gap_s) AS max_gap_s, sum(rejected) AS rejected
                  FROM quality_span($__timeFrom(), $__timeTo()) GROUP BY meter_id) s
            JOIN meter_places p USING (meter_id)
            WHERE {at('p')}
            ORDER BY s.missed DESC, s.max_gap_s DESC, s.meter_id LIMIT $top
        """, "meter", "room", "building", "readings", "missed", "longest_gap_h",
             "rejected"),), width=12),
        Row("Meters now"),
        Panel("Offline meters", "table", (q(f"""
            SELECT m.meter_id AS meter, m.commodity, m.protocol, m.room_id AS room,
                   m.building_name AS building, m.last_reading_at
            FROM meter_status m
            WHERE NOT m.online AND {at('m')}
            ORDER BY m.last_reading_at NULLS FIRST, m.meter_id LIMIT 1000
        """, "meter", "commodity", "protocol", "room", "building", "last_reading_at"),)),
        Panel("Stopped meters", "table", (q(f"""
            SELECT p.meter_id AS meter, p.commodity, p.room_id AS room,
                   p.building_id AS building, q.readings AS readings_3d,
                   COALESCE(u.units, 0) AS units_3d
            FROM meter_places p
            JOIN LATERAL (SELECT sum(d.readings) AS readings FROM quality_daily d
                          WHERE d.meter_id = p.meter_id AND d.bucket >= now() - interval '4 days'
                            AND d.bucket >= {local_day('now()', 'p.report_zone')}
                                            - interval '2 days') q ON true
            LEFT JOIN LATERAL (SELECT sum(d.units) AS units FROM usage_daily d
                               WHERE d.meter_id = p.meter_id
                                 AND d.bucket >= (now() AT TIME ZONE p.report_zone)::date - 2
                               ) u ON true
            WHERE q.readings >= 2 AND COALESCE(u.units, 0) = 0 AND {at('p')}
            ORDER BY q.readings DESC, p.meter_id LIMIT 1000
        """, "meter", "commodity", "room", "building", "readings_3d", "units_3d"),),
            description="Readings keep arriving over the last three days but the register "
                        "does not move."),
        Row("Dead letters"),
        _per_interval("Dead letters by stage", """
            SELECT $__timeGroupAlias(d.at, $__interval), d.stage AS metric,
                   count(*) AS dead_letters
            FROM dead_letters d
            WHERE $__timeFilter(d.at)
            GROUP BY 1, 2 ORDER BY 1, 2
        """, "metric", "dead_letters", width=24),
    ),
)

TOPIC = query_variable("topic", "Topic", """
    SELECT DISTINCT topic FROM pipeline_metrics_hourly
    WHERE bucket > now() - interval '7 days' ORDER BY 1
""")
SHORT = "$__timeTo()::timestamptz - $__timeFrom()::timestamptz <= interval '1 day'"
LONG = "$__timeTo()::timestamptz - $__timeFrom()::timestamptz > interval '1 day'"
ON_TOPIC = "('__all' IN ($topic) OR {a}.topic IN ($topic))"


def _health(title: str, fine: str, hourly: str, name: str, unit: str = "") -> Panel:
    """Minute rows for ranges up to a day, hourly rows beyond (one branch runs)."""
    return Panel(title, "timeseries", (q(f"""
        SELECT $__timeGroupAlias(m.at, $__interval), m.topic AS metric, {fine} AS {name}
        FROM pipeline_metrics m
        WHERE $__timeFilter(m.at) AND {SHORT} AND {ON_TOPIC.format(a='m')}
        GROUP BY 1, 2
        UNION ALL
        SELECT $__timeGroupAlias(h.bucket, $__interval), h.topic, {hourly}
        FROM pipeline_metrics_hourly h
        WHERE $__timeFilter(h.bucket) AND {LONG} AND {ON_TOPIC.format(a='h')}
        GROUP BY 1, 2
        ORDER BY 1, 2
    """, "time", "metric", name, series=True),), unit=unit)


PIPELINE = Board(
    uid="meterflow-pipeline", title="MeterFlow / Pipeline health", time_from="now-6h",
    refresh="30s", tags=("operations",),
    description="Records landed per topic, consumer lag, sink batch size and latency, from "
                "each worker's pipeline_metrics rows.",
    variables=(variables()[0], TOPIC),
    items=(
        _health("Records landed per second",
                "sum(m.landed) / sum(m.period_s)",
                "sum(h.landed) / 3600.0", "per_s", unit="ops"),
        _health("Consumer lag",
                "max(m.lag)", "max(h.lag_max)", "lag"),
        _health("Sink batch latency (mean)",
                "sum(m.latency_ms_sum) / NULLIF(sum(m.batches), 0)",
                "sum(h.latency_ms_sum) / NULLIF(sum(h.batches), 0)", "latency_ms", unit="ms"),
        _health("Sink batch latency (max)",
                "max(m.latency_ms_max)", "max(h.latency_ms_max)", "latency_ms_max",
                unit="ms"),
        _health("Sink batch size (mean)",
                "sum(m.landed)::numeric / NULLIF(sum(m.batches), 0)",
                "sum(h.landed)::numeric / NULLIF(sum(h.batches), 0)", "batch_size"),
        Panel("Last 15 minutes", "table", (q("""
            SELECT m.topic, sum(m.landed) AS landed,
                   round((sum(m.landed) / sum(m.period_s))::numeric, 2) AS per_s,
                   max(m.batch_max) AS largest_batch,
                   round((max(m.latency_ms_max))::numeric, 1) AS slowest_batch_ms,
                   (array_agg(m.lag ORDER BY m.at DESC) FILTER (WHERE m.lag IS NOT NULL))[1]
                       AS lag_now,
                   count(DISTINCT m.worker) AS workers, max(m.at) AS last_report
            FROM pipeline_metrics m
            WHERE m.at > now() - interval '15 minutes'
              AND ('__all' IN ($topic) OR m.topic IN ($topic))
            GROUP BY 1 ORDER BY 1
        """, "topic", "landed", "per_s", "largest_batch", "slowest_batch_ms", "lag_now",
             "workers", "last_report"),),
            description="Now, whatever the range: lag_now is the latest report of one worker."),
    ),
)
