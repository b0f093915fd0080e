-- Report days and months in each site's own time zone (sites.timezone, 0004).
-- A meter or account in no site reports in the default report zone, the setting
-- METERFLOW_REPORT_TIMEZONE, which `meterflow db migrate` writes into report_settings
-- (docs/operations.md, settings). Every local day and month of the rollups (usage_daily,
-- usage_monthly, the per-building rollups, ledger_daily, the quality rollups), of the spans
-- the boards read and of "today" in the monitoring views follows the zone of the meter's
-- (or account's) site; the sinks read the same zone from meter_places.report_zone and
-- account_places.report_zone (pipeline/board_rollups.py). UTC hours are unchanged.

-- The installation's default report zone: one row.
CREATE TABLE report_settings (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    timezone  text NOT NULL DEFAULT 'Asia/Shanghai' CHECK (length(timezone) <= 64)
);
INSERT INTO report_settings DEFAULT VALUES;

CREATE FUNCTION default_report_zone() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT COALESCE((SELECT timezone FROM report_settings), 'Asia/Shanghai')
$$;

-- The report zone of a site ('' or an unknown site: the default).
CREATE FUNCTION site_report_zone(site text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT COALESCE((SELECT s.timezone FROM sites s WHERE s.site_id = site),
                    default_report_zone())
$$;

-- Where each meter and account is, now with the zone it reports in (new last column).
CREATE OR REPLACE VIEW meter_places AS
SELECT m.meter_id, m.commodity, m.account_id, m.expected_interval_s,
       COALESCE(r.room_id, '') AS room_id, COALESCE(r.name, '') AS room_name,
       COALESCE(f.floor_id, '') AS floor_id, f.level AS floor_level,
       COALESCE(bd.building_id, '') AS building_id, COALESCE(bd.name, '') AS building_name,
       COALESCE(s.site_id, '') AS site_id, COALESCE(s.name, '') AS site_name,
       COALESCE(s.timezone, default_report_zone()) AS report_zone
FROM meters m
LEFT JOIN rooms r ON r.room_id = m.room_id
LEFT JOIN floors f ON f.floor_id = r.floor_id
LEFT JOIN buildings bd ON bd.building_id = f.building_id
LEFT JOIN sites s ON s.site_id = bd.site_id;

CREATE OR REPLACE VIEW account_places AS
SELECT a.account_id, a.name AS account_name,
       COALESCE(bd.building_id, '') AS building_id, COALESCE(bd.site_id, '') AS site_id,
       COALESCE(s.timezone, default_report_zone()) AS report_zone
FROM accounts a
LEFT JOIN rooms r ON r.room_id = a.room_id
LEFT JOIN floors f ON f.floor_id = r.floor_id
LEFT JOIN buildings bd ON bd.building_id = f.building_id
LEFT JOIN sites s ON s.site_id = bd.site_id;

-- The zone of any meter id, known or not (rollup rows may outlive their meter).
CREATE FUNCTION meter_report_zone(meter text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT COALESCE((SELECT p.report_zone FROM meter_places p WHERE p.meter_id = meter),
                    default_report_zone())
$$;

-- "Today" of the monitoring views: the site's day, or the default zone's.
CREATE OR REPLACE VIEW meter_status AS
SELECT m.meter_id, m.commodity, m.protocol, m.account_id,
       r.room_id, r.name AS room_name, r.area_m2,
       f.floor_id, f.level AS floor_level, bd.building_id, bd.name AS building_name,
       s.site_id, s.name AS site_name,
       COALESCE(seen.last_event <> 'offline', seen.last_reading_at IS NOT NULL) AS online,
       seen.last_reading_at,
       b.balance_fen, COALESCE(b.alarm_level, 0) AS alarm_level,
       COALESCE(b.supply, 'connected') AS supply,
       COALESCE(today.units, 0) AS today_units,
       COALESCE(today.amount_yuan, 0) AS today_yuan,
       COALESCE(b.supply_state, 'connected') AS supply_state
FROM meters m
LEFT JOIN rooms r ON r.room_id = m.room_id
LEFT JOIN floors f ON f.floor_id = r.floor_id
LEFT JOIN buildings bd ON bd.building_id = f.building_id
LEFT JOIN sites s ON s.site_id = bd.site_id
LEFT JOIN balances b ON b.account_id = m.account_id
LEFT JOIN meter_seen seen ON seen.meter_id = m.meter_id
LEFT JOIN LATERAL (
    SELECT sum(u.units) AS units, sum(u.amount_yuan) AS amount_yuan FROM usage_daily u
    WHERE u.meter_id = m.meter_id
      AND u.bucket = (now() AT TIME ZONE COALESCE(s.timezone, default_report_zone()))::date
    ) today ON true
WHERE m.removed_at IS NULL;

-- The whole local days of [t0, t1] in each zone in use, split as the rollups are read (as
-- in 0006): the whole months inside, [lo, hi), from the monthly rollups (monthly), and the
-- days before and after them, [lo, hi], from the daily ones.
CREATE FUNCTION report_span_parts(t0 timestamptz, t1 timestamptz)
RETURNS TABLE (zone text, monthly boolean, lo date, hi date)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH z AS (
        SELECT DISTINCT report_zone AS zone FROM meter_places
        UNION SELECT default_report_zone()),
    d AS (
        SELECT zone, (t0 AT TIME ZONE zone)::date AS d0, (t1 AT TIME ZONE zone)::date AS d1
        FROM z),
    m AS (
        SELECT zone, d0, d1,
               (date_trunc('month', (d0 - 1)::timestamp) + interval '1 month')::date AS m0,
               date_trunc('month', (d1 + 1)::timestamp)::date AS m1
        FROM d)
    SELECT zone, true, m0, m1 FROM m WHERE m0 < m1
    UNION ALL
    SELECT zone, false, d0, CASE WHEN m0 < m1 THEN m0 - 1 ELSE d1 END FROM m
    UNION ALL
    SELECT zone, false, m1, d1 FROM m WHERE m0 < m1
$$;

-- Usage per meter and band over [t0, t1] in whole local days of each meter's zone.
CREATE OR REPLACE FUNCTION usage_span(t0 timestamptz, t1 timestamptz)
RETURNS TABLE (meter_id text, band text, units numeric, amount_yuan numeric)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT u.meter_id, u.band, u.units, u.amount_yuan
    FROM report_span_parts(t0, t1) s
    JOIN usage_monthly u ON s.monthly
     AND u.bucket >= s.lo::timestamp AT TIME ZONE s.zone
     AND u.bucket < s.hi::timestamp AT TIME ZONE s.zone
    LEFT JOIN meter_places p ON p.meter_id = u.meter_id
    WHERE COALESCE(p.report_zone, default_report_zone()) = s.zone
    UNION ALL
    SELECT u.meter_id, u.band, u.units, u.amount_yuan
    FROM report_span_parts(t0, t1) s
    JOIN usage_daily u ON NOT s.monthly AND u.bucket BETWEEN s.lo AND s.hi
    LEFT JOIN meter_places p ON p.meter_id = u.meter_id
    WHERE COALESCE(p.report_zone, default_report_zone()) = s.zone
$$;

-- Reading quality per meter over [t0, t1] in whole local days of each meter's zone.
CREATE OR REPLACE FUNCTION quality_span(t0 timestamptz, t1 timestamptz)
RETURNS TABLE (meter_id text, readings integer, missed integer, max_gap_s integer,
               rejected integer)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT q.meter_id, q.readings, q.missed, q.max_gap_s, q.rejected
    FROM report_span_parts(t0, t1) s
    JOIN quality_monthly q ON s.monthly
     AND q.bucket >= s.lo::timestamp AT TIME ZONE s.zone
     AND q.bucket < s.hi::timestamp AT TIME ZONE s.zone
    LEFT JOIN meter_places p ON p.meter_id = q.meter_id
    WHERE COALESCE(p.report_zone, default_report_zone()) = s.zone
    UNION ALL
    SELECT q.meter_id, q.readings, q.missed, q.max_gap_s, q.rejected
    FROM report_span_parts(t0, t1) s
    JOIN quality_daily q ON NOT s.monthly
     AND q.bucket >= (s.lo::timestamp AT TIME ZONE s.zone)
     AND q.bucket <= (s.hi::timestamp AT TIME ZONE s.zone)
    LEFT JOIN meter_places p ON p.meter_id = q.meter_id
    WHERE COALESCE(p.report_zone, default_report_zone()) = s.zone
$$;

-- Recompute every board rollup from the base tables, each meter and account in the zone
-- of the site where it is now (as 0006 did in one zone); run it with the sinks stopped.
CREATE OR REPLACE FUNCTION rebuild_board_rollups() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE usage_monthly, usage_daily_building, usage_hourly_building, ledger_daily,
             quality_daily, quality_monthly, quality_daily_building, rejections_daily;

    DROP TABLE IF EXISTS rebuild_zones;
    CREATE TEMPORARY TABLE rebuild_zones ON COMMIT DROP AS
    SELECT meter_id, site_id, building_id, commodity, expected_interval_s,
           report_zone AS zone
    FROM meter_places;

    INSERT INTO usage_monthly (meter_id, bucket, band, units, amount_yuan)
    SELECT u.meter_id,
           date_trunc('month', u.bucket::timestamp)
               AT TIME ZONE COALESCE(p.zone, default_report_zone()),
           u.band, sum(u.units), sum(u.amount_yuan)
    FROM usage_daily u LEFT JOIN rebuild_zones p USING (meter_id) GROUP BY 1, 2, 3;

    INSERT INTO usage_daily_building (bucket, site_id, building_id, commodity, band, units,
                                      amount_yuan)
    SELECT u.bucket::timestamp AT TIME ZONE COALESCE(p.zone, default_report_zone()),
           COALESCE(p.site_id, ''), COALESCE(p.building_id, ''), COALESCE(p.commodity, ''),
           u.band, sum(u.units), sum(u.amount_yuan)
    FROM usage_daily u LEFT JOIN rebuild_zones p USING (meter_id) GROUP BY 1, 2, 3, 4, 5;

    INSERT INTO usage_hourly_building (bucket, site_id, building_id, commodity, units,
                                       amount_yuan)
    SELECT u.bucket, COALESCE(p.site_id, ''), COALESCE(p.building_id, ''),
           COALESCE(p.commodity, ''), sum(u.units), sum(u.amount_yuan)
    FROM usage_hourly u LEFT JOIN rebuild_zones p USING (meter_id) GROUP BY 1, 2, 3, 4;

    INSERT INTO ledger_daily (bucket, site_id, building_id, kind, amount_fen, entries)
    SELECT date_trunc('day', l.at AT TIME ZONE COALESCE(p.report_zone, default_report_zone()))
               AT TIME ZONE COALESCE(p.report_zone, default_report_zone()),
           COALESCE(p.site_id, ''), COALESCE(p.building_id, ''), l.kind, sum(l.amount_fen),
           count(*)
    FROM ledger l LEFT JOIN account_places p USING (account_id) GROUP BY 1, 2, 3, 4;

    DROP TABLE IF EXISTS rebuild_quality;
    CREATE TEMPORARY TABLE rebuild_quality ON COMMIT DROP AS
    SELECT g.meter_id, g.zone,
           date_trunc('day', g.ts AT TIME ZONE g.zone) AS local_day,
           1 AS readings,
           COALESCE(GREATEST(round(extract(epoch FROM g.ts - g.prev)
                                   / COALESCE(g.expected_interval_s, 900)) - 1, 0), 0)::integer
               AS missed,
           COALESCE(extract(epoch FROM g.ts - g.prev), 0)::integer AS gap_s,
           0 AS rejected
    FROM (SELECT rd.meter_id, rd.ts, p.expected_interval_s,
                 COALESCE(p.zone, default_report_zone()) AS zone,
                 lag(rd.ts) OVER (PARTITION BY rd.meter_id ORDER BY rd.ts) AS prev
          FROM readings rd LEFT JOIN rebuild_zones p USING (meter_id)) g
    UNION ALL
    SELECT rj.meter_id, COALESCE(p.zone, default_report_zone()),
           date_trunc('day', rj.ts AT TIME ZONE COALESCE(p.zone, default_report_zone())),
           0, 0, 0, 1
    FROM rejected_readings rj LEFT JOIN rebuild_zones p USING (meter_id);

    INSERT INTO quality_daily (meter_id, bucket, readings, missed, max_gap_s, rejected)
    SELECT meter_id, local_day AT TIME ZONE zone, sum(readings), sum(missed), max(gap_s),
           sum(rejected)
    FROM rebuild_quality GROUP BY 1, 2;

    INSERT INTO quality_monthly (meter_id, bucket, readings, missed, max_gap_s, rejected)
    SELECT meter_id, date_trunc('month', local_day) AT TIME ZONE zone,
           sum(readings), sum(missed), max(gap_s), sum(rejected)
    FROM rebuild_quality GROUP BY 1, 2;

    INSERT INTO quality_daily_building (bucket, site_id, building_id, readings, missed,
                                        rejected)
    SELECT q.local_day AT TIME ZONE q.zone, COALESCE(p.site_id, ''),
           COALESCE(p.building_id, ''), sum(q.readings), sum(q.missed), sum(q.rejected)
    FROM rebuild_quality q LEFT JOIN rebuild_zones p USING (meter_id) GROUP BY 1, 2, 3;

    INSERT INTO rejections_daily (bucket, site_id, building_id, reason, rejected)
    SELECT date_trunc('day', rj.ts AT TIME ZONE COALESCE(p.zone, default_report_zone()))
               AT TIME ZONE COALESCE(p.zone, default_report_zone()),
           COALESCE(p.site_id, ''), COALESCE(p.building_id, ''), rj.reason, count(*)
    FROM rejected_readings rj LEFT JOIN rebuild_zones p USING (meter_id) GROUP BY 1, 2, 3, 4;
END
$$;

-- Recompute usage_daily from the rated lines in each meter's zone, then every board
-- rollup: after a site's zone or the default report zone changed (`meterflow db migrate`
-- calls it when METERFLOW_REPORT_TIMEZONE changes). Run it with the sinks stopped.
CREATE FUNCTION rebuild_report_days() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE usage_daily;
    INSERT INTO usage_daily (meter_id, bucket, band, units, amount_yuan)
    SELECT l.meter_id,
           (l.end_ts AT TIME ZONE COALESCE(p.report_zone, default_report_zone()))::date,
           COALESCE(l.band, ''), sum(l.units), sum(l.amount_yuan)
    FROM rated_lines l LEFT JOIN meter_places p USING (meter_id)
    WHERE l.band IS NULL OR l.band NOT LIKE '+%'
    GROUP BY 1, 2, 3;
    PERFORM rebuild_board_rollups();
END
$$;

-- History that landed in Asia/Shanghai days for a site in another zone moves to its own.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM sites WHERE timezone <> 'Asia/Shanghai') THEN
        PERFORM rebuild_report_days();
    END IF;
END
$$;
