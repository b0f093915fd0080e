"""A year (400 days) of board history for 500 meters, generated inside PostgreSQL.

Property (2 sites, 10 buildings, 50 floors, 500 rooms, one account and meter per room),
the per-meter daily usage the sink would have kept, and from it, aggregated the way
``rebuild_board_rollups()`` does, the monthly and per-building rollups; hourly usage per
building with a daily shape; ledger top-ups and one charge per account and day; reading
quality; alarms, commands, acknowledgements, notifications and pipeline metrics. The
event tables get a few rows per account and month, as in production. Everything is keyed
by the prefix, so it never mixes with other tests' rows.
"""

from __future__ import annotations

import psycopg

TZ = "'Asia/Shanghai'"
ROLLUPS = ("usage_monthly", "usage_daily_building", "usage_hourly_building", "ledger_daily",
             "quality_daily", "quality_monthly", "quality_daily_building", "rejections_daily")


def history_sql(p: str, days: int = 400, meters: int = 500) -> list[str]:
    """The statements, for ``meters`` rooms of 50 per building (10 per floor)."""
    buildings = max(meters // 50, 1)
    today = f"(now() AT TIME ZONE {TZ})::date"
    day = (f"generate_series(({today} - {days})::timestamp, ({today} - 1)::timestamp, "
           "interval '1 day') AS dd(dt)")
    m = f"m.meter_id LIKE '{p}M%'"
    return [
        f"""INSERT INTO sites (site_id, name)
            SELECT '{p}S' || s, 'History site ' || s FROM generate_series(1, 2) s""",
        f"""INSERT INTO buildings (building_id, site_id, name)
            SELECT '{p}B' || b, '{p}S' || (1 + b % 2), 'Building ' || b
            FROM generate_series(1, {buildings}) b""",
        f"""INSERT INTO floors (floor_id, building_id, level, name)
            SELECT '{p}B' || b || '-F' || f, '{p}B' || b, f, ''
            FROM generate_series(1, {buildings}) b, generate_series(1, 5) f""",
        f"""INSERT INTO rooms (room_id, floor_id, name, area_m2)
            SELECT '{p}R' || r, '{p}B' || (1 + (r - 1) / 50) || '-F' || (1 + ((r - 1) / 10) % 5),
                   'Room ' || r, 40 FROM generate_series(1, {meters}) r""",
        f"""INSERT INTO accounts (account_id, name, room_id)
            SELECT '{p}A' || r, 'Tenant ' || r, '{p}R' || r FROM generate_series(1, {meters}) r""",
        f"""INSERT INTO meters (meter_id, commodity, protocol, account_id, room_id)
            SELECT '{p}M' || r, CASE WHEN r % 5 = 0 THEN 'water' ELSE 'electricity' END,
                   'mqtt', '{p}A' || r, '{p}R' || r FROM generate_series(1, {meters}) r""",
        f"""INSERT INTO balances (account_id, balance_fen, alarm_level, supply, seq, updated_at)
            SELECT '{p}A' || r, (r * 37) % 40000 - 2000, (r % 4)::smallint,
                   CASE WHEN r % 17 = 0 THEN 'disconnected' ELSE 'connected' END, 1, now()
            FROM generate_series(1, {meters}) r""",
        # daily usage per meter: time-of-use bands for half the electricity meters
        f"""INSERT INTO usage_daily (meter_id, bucket, band, units, amount_yuan)
            SELECT m.meter_id, dt::date, b.band, u.units, round(u.units * b.price, 10)
            FROM meters m CROSS JOIN {day}
            JOIN LATERAL (VALUES ('sharp', 0.1, 1.275), ('peak', 0.3, 1.02),
                                 ('flat', 0.35, 0.6), ('valley', 0.25, 0.228),
                                 ('', 1.0, 0.5)) b(band, share, price)
              ON (m.commodity = 'electricity' AND right(m.meter_id, 1) IN ('1', '3', '5'))
                 = (b.band <> '')
            CROSS JOIN LATERAL (SELECT round(((5 + random() * 20) * b.share
                   * (1.2 + sin(extract(doy FROM dt) / 58.0)))::numeric, 6) AS units) u
            WHERE {m}""",
        f"""INSERT INTO usage_monthly (meter_id, bucket, band, units, amount_yuan)
            SELECT u.meter_id, date_trunc('month', u.bucket::timestamp) AT TIME ZONE {TZ},
                   u.band, sum(u.units), sum(u.amount_yuan)
            FROM usage_daily u WHERE u.meter_id LIKE '{p}M%' GROUP BY 1, 2, 3""",
        f"""INSERT INTO usage_daily_building (bucket, site_id, building_id, commodity, band,
                                              units, amount_yuan)
            SELECT u.bucket::timestamp AT TIME ZONE {TZ}, pl.site_id, pl.building_id,
                   pl.commodity, u.band, sum(u.units), sum(u.amount_yuan)
            FROM usage_daily u JOIN meter_places pl USING (meter_id)
            WHERE u.meter_id LIKE '{p}M%' GROUP BY 1, 2, 3, 4, 5""",
        f"""INSERT INTO usage_hourly_building (bucket, site_id, building_id, commodity, units,
                                               amount_yuan)
            SELECT h, b.site_id, b.building_id, c.commodity, x.units, round(x.units * 0.6, 10)
            FROM buildings b
            CROSS JOIN (VALUES ('electricity'), ('water')) c(commodity)
            CROSS JOIN generate_series(date_trunc('hour', now()) - interval '{days} days',
                                       date_trunc('hour', now()), interval '1 hour') h
            CROSS JOIN LATERAL (SELECT round((20 + 15 * sin(extract(hour FROM h) / 3.8)
                                + random() * 5)::numeric, 6) AS units) x
            WHERE b.building_id LIKE '{p}B%'""",
        # the ledger: two top-ups a month, a refund now and then, one charge a day
        f"""INSERT INTO ledger (entry_id, account_id, seq, at, kind, amount_fen, balance_fen,
                                ref)
            SELECT '{p}E-' || a.r || '-' || n, '{p}A' || a.r, n,
                   now() - make_interval(days => {days})
                       + make_interval(hours => n * 12 + a.r % 11),
                   k.kind, k.fen, 10000, '{p}' || a.r || '-' || n
            FROM generate_series(1, {meters}) a(r), generate_series(1, {days * 2}) n
            CROSS JOIN LATERAL (SELECT CASE WHEN n % 30 = 0 THEN 'topup'
                                            WHEN n % 301 = 0 THEN 'refund'
                                            ELSE 'charge' END AS kind) kk
            CROSS JOIN LATERAL (SELECT kk.kind,
                                       CASE kk.kind WHEN 'topup' THEN 20000
                                                    WHEN 'refund' THEN -5000
                                                    ELSE -(300 + (a.r * n) % 400) END AS fen) k
            WHERE n % 2 = 0 OR k.kind <> 'charge'""",
        f"""INSERT INTO ledger_daily (bucket, site_id, building_id, kind, amount_fen, entries)
            SELECT date_trunc('day', l.at AT TIME ZONE {TZ}) AT TIME ZONE {TZ}, pl.site_id,
                   pl.building_id, l.kind, sum(l.amount_fen), count(*)
            FROM ledger l JOIN account_places pl USING (account_id)
            WHERE l.account_id LIKE '{p}A%' GROUP BY 1, 2, 3, 4""",
        f"""INSERT INTO quality_daily (meter_id, bucket, readings, missed, max_gap_s, rejected)
            SELECT m.meter_id, dt AT TIME ZONE {TZ}, 96 - g.missed, g.missed,
                   900 * (1 + g.missed), (random() < 0.02)::int
            FROM meters m CROSS JOIN generate_series(({today} - {days})::timestamp,
                                                     {today}::timestamp, interval '1 day') dd(dt)
            CROSS JOIN LATERAL (SELECT (CASE WHEN random() < 0.05
                                        THEN floor(random() * 20) ELSE 0 END)::int AS missed) g
            WHERE {m}""",
        f"""INSERT INTO quality_monthly (meter_id, bucket, readings, missed, max_gap_s, rejected)
            SELECT meter_id, date_trunc('month', bucket AT TIME ZONE {TZ}) AT TIME ZONE {TZ},
                   sum(readings), sum(missed), max(max_gap_s), sum(rejected)
            FROM quality_daily WHERE meter_id LIKE '{p}M%' GROUP BY 1, 2""",
        f"""INSERT INTO quality_daily_building (bucket, site_id, building_id, readings, missed,
                                                rejected)
            SELECT q.bucket, pl.site_id, pl.building_id, sum(q.readings), sum(q.missed),
                   sum(q.rejected)
            FROM quality_daily q JOIN meter_places pl USING (meter_id)
            WHERE q.meter_id LIKE '{p}M%' GROUP BY 1, 2, 3""",
        f"""INSERT INTO rejections_daily (bucket, site_id, building_id, reason, rejected)
            SELECT dt AT TIME ZONE {TZ}, b.site_id, b.building_id, r.reason,
                   1 + floor(random() * 5)::int
            FROM buildings b CROSS JOIN {day}
            CROSS JOIN (VALUES ('register_decreased'), ('out_of_order')) r(reason)
            WHERE b.building_id LIKE '{p}B%'""",
        # events: alarms, commands and their acks, notifications and attempts
        f"""INSERT INTO alarms (alarm_id, at, account_id, kind, level, balance_fen, detail)
            SELECT '{p}AL-' || r || '-' || n, now() - make_interval(hours => n * 290 + r % 97),
                   '{p}A' || r, k.kind, CASE WHEN k.kind = 'low_balance' THEN 1 + n % 3 END,
                   100, CASE WHEN k.kind = 'refused' THEN 'insufficient_balance' ELSE '' END
            FROM generate_series(1, {meters}) r, generate_series(1, 30) n
            CROSS JOIN LATERAL (SELECT (ARRAY['low_balance', 'low_balance', 'disconnect',
                                'reconnect', 'refused'])[1 + n % 5] AS kind) k""",
        f"""INSERT INTO commands (command_id, issued_at, meter_id, account_id, action, deadline,
                                  reason)
            SELECT '{p}C-' || r || '-' || n, t, '{p}M' || r, '{p}A' || r,
                   CASE WHEN n % 2 = 0 THEN 'disconnect' ELSE 'reconnect' END,
                   t + interval '15 minutes', ''
            FROM generate_series(1, {meters}) r, generate_series(1, 10) n,
                 LATERAL (SELECT now() - make_interval(hours => n * 870 + r % 50) AS t) x""",
        f"""INSERT INTO command_acks (command_id, at, meter_id, status, attempts)
            SELECT c.command_id, c.issued_at + make_interval(secs => 1 + random() * 30),
                   c.meter_id, CASE WHEN random() < 0.9 THEN 'applied'
                                    WHEN random() < 0.5 THEN 'failed' ELSE 'expired' END, 1
            FROM commands c WHERE c.command_id LIKE '{p}C-%'""",
        f"""INSERT INTO notifications (notification_id, created_at, source_id, event_kind,
                                       level, account_id, site_id, channel, recipient, status,
                                       attempts, delivered_at)
            SELECT '{p}N-' || a.alarm_id || '-' || ch, a.at, a.alarm_id, a.kind, a.level,
                   a.account_id, pl.site_id, ch, '13800000000',
                   CASE WHEN random() < 0.95 THEN 'delivered' ELSE 'failed' END, 1, a.at
            FROM alarms a JOIN account_places pl USING (account_id)
            CROSS JOIN (VALUES ('sms'), ('wechat')) c(ch)
            WHERE a.alarm_id LIKE '{p}AL-%' AND a.kind = 'low_balance'""",
        f"""INSERT INTO notification_attempts (notification_id, attempt, at, channel, outcome,
                                               latency_ms)
            SELECT notification_id, 1, created_at, channel,
                   CASE status WHEN 'delivered' THEN 'delivered' ELSE 'failed' END,
                   (50 + random() * 2000)::int
            FROM notifications WHERE notification_id LIKE '{p}N-%'""",
        f"""INSERT INTO pipeline_metrics_hourly (bucket, worker, topic, landed, batches,
                                                 batch_max, latency_ms_sum, latency_ms_max,
                                                 lag_max)
            SELECT h, '{p}worker', t.name, 40000, 200, 500, 200 * 35.0, 180.0,
                   (random() * 1000)::bigint
            FROM generate_series(date_trunc('hour', now()) - interval '{days} days',
                                 date_trunc('hour', now()), interval '1 hour') h
            CROSS JOIN (VALUES ('meterflow.readings.accepted'), ('meterflow.ledger'),
                               ('meterflow.balances'), ('meterflow.intervals.rated')) t(name)""",
        f"""INSERT INTO pipeline_metrics (at, worker, topic, period_s, landed, batches,
                                          batch_max, latency_ms_sum, latency_ms_max, lag)
            SELECT a, '{p}worker', t.name, 30, 333, 2, 300, 70.0, 50.0,
                   (random() * 100)::bigint
            FROM generate_series(now() - interval '1 day', now(), interval '30 seconds') a
            CROSS JOIN (VALUES ('meterflow.readings.accepted'), ('meterflow.ledger')) t(name)""",
    ]


def generate_history(conn: psycopg.Connection, prefix: str, meters: int = 500) -> None:
    with conn.transaction():
        for statement in history_sql(prefix, meters=meters):
            conn.execute(statement.encode())
    for table in (*ROLLUPS, "usage_daily", "ledger", "alarms", "commands", "command_acks",
                  "notifications", "notification_attempts", "pipeline_metrics",
                  "pipeline_metrics_hourly", "meters", "accounts", "rooms", "floors",
                  "buildings", "sites", "balances", "readings", "meter_events"):
        conn.execute(f"ANALYZE {table}".encode())
