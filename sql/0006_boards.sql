-- Rollups behind the Grafana boards, and the pipeline's own metrics.
-- The Apache-2 edition of TimescaleDB has no continuous aggregates, so these are plain
-- hypertables kept by the sinks (pipeline/board_rollups.py) in the same transaction that lands
-- the base rows, adding each new base row once. Buckets are the start of the period as an
-- instant: local days and months of the reporting time zone (Asia/Shanghai, as usage_daily),
-- UTC hours. `rebuild_board_rollups()` recomputes all of them from the base tables; this
-- migration calls it once to cover the history that landed before it.
-- A year over 10,000 meters stays small: per-meter rows are monthly, per-day and per-hour
-- rows are per building.

-- Where each meter is (LEFT JOINs: a meter may not be installed in a room yet).
CREATE VIEW meter_places AS
SELECT m.meter_id, m.commodity, m.account_id, m.expected_interval_s,
       COALESCE(r.room_id, '') AS room_id, COALESCE(r.name, '') AS room_name,
       COALESCE(f.floor_id, '') AS floor_id, f.level AS floor_level,
       COALESCE(bd.building_id, '') AS building_id, COALESCE(bd.name, '') AS building_name,
       COALESCE(s.site_id, '') AS site_id, COALESCE(s.name, '') AS site_name
FROM meters m
LEFT JOIN rooms r ON r.room_id = m.room_id
LEFT JOIN floors f ON f.floor_id = r.floor_id
LEFT JOIN buildings bd ON bd.building_id = f.building_id
LEFT JOIN sites s ON s.site_id = bd.site_id;

-- Where each account is (its room; '' when it has none).
CREATE VIEW account_places AS
SELECT a.account_id, a.name AS account_name,
       COALESCE(bd.building_id, '') AS building_id, COALESCE(bd.site_id, '') AS site_id
FROM accounts a
LEFT JOIN rooms r ON r.room_id = a.room_id
LEFT JOIN floors f ON f.floor_id = r.floor_id
LEFT JOIN buildings bd ON bd.building_id = f.building_id;

-- Units and energy charge per meter, band and local month (surcharges excluded, as in
-- usage_daily: they are money of rated_lines, not band units).
CREATE TABLE usage_monthly (
    meter_id    text NOT NULL,
    bucket      timestamptz NOT NULL,
    band        text NOT NULL DEFAULT '',
    units       numeric(20, 6) NOT NULL,
    amount_yuan numeric(24, 10) NOT NULL,
    PRIMARY KEY (meter_id, bucket, band)
);
SELECT create_hypertable('usage_monthly', 'bucket', chunk_time_interval => interval '365 days');

-- Per building, commodity, band and local day ('' for a meter in no building).
CREATE TABLE usage_daily_building (
    bucket      timestamptz NOT NULL,
    site_id     text NOT NULL,
    building_id text NOT NULL,
    commodity   text NOT NULL,
    band        text NOT NULL DEFAULT '',
    units       numeric(20, 6) NOT NULL,
    amount_yuan numeric(24, 10) NOT NULL,
    PRIMARY KEY (site_id, building_id, commodity, band, bucket)
);
SELECT create_hypertable('usage_daily_building', 'bucket',
                         chunk_time_interval => interval '180 days');

-- Per building, commodity and UTC hour: the load profile.
CREATE TABLE usage_hourly_building (
    bucket      timestamptz NOT NULL,
    site_id     text NOT NULL,
    building_id text NOT NULL,
    commodity   text NOT NULL,
    units       numeric(20, 6) NOT NULL,
    amount_yuan numeric(24, 10) NOT NULL,
    PRIMARY KEY (site_id, building_id, commodity, bucket)
);
SELECT create_hypertable('usage_hourly_building', 'bucket',
                         chunk_time_interval => interval '90 days');

-- Ledger entries per building of the account, kind and local day, in fen.
CREATE TABLE ledger_daily (
    bucket      timestamptz NOT NULL,
    site_id     text NOT NULL,
    building_id text NOT NULL,
    kind        text NOT NULL,
    amount_fen  bigint NOT NULL,
    entries     bigint NOT NULL,
    PRIMARY KEY (site_id, building_id, kind, bucket)
);
SELECT create_hypertable('ledger_daily', 'bucket', chunk_time_interval => interval '180 days');

-- Reading quality per meter and local day / month: accepted readings, readings missed
-- (a gap of n expected intervals misses n - 1), the longest gap, rejected readings.
CREATE TABLE quality_daily (
    meter_id   text NOT NULL,
    bucket     timestamptz NOT NULL,
    readings   integer NOT NULL DEFAULT 0,
    missed     integer NOT NULL DEFAULT 0,
    max_gap_s  integer NOT NULL DEFAULT 0,
    rejected   integer NOT NULL DEFAULT 0,
    PRIMARY KEY (meter_id, bucket)
);
SELECT create_hypertable('quality_daily', 'bucket', chunk_time_interval => interval '90 days');

CREATE TABLE quality_monthly (LIKE quality_daily INCLUDING DEFAULTS, PRIMARY KEY (meter_id, bucket));
SELECT create_hypertable('quality_monthly', 'bucket', chunk_time_interval => interval '365 days');

-- The same per building and local day, and rejections by reason.
CREATE TABLE quality_daily_building (
    bucket      timestamptz NOT NULL,
    site_id     text NOT NULL,
    building_id text NOT NULL,
    readings    bigint NOT NULL DEFAULT 0,
    missed      bigint NOT NULL DEFAULT 0,
    rejected    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (site_id, building_id, bucket)
);
SELECT create_hypertable('quality_daily_building', 'bucket',
                         chunk_time_interval => interval '180 days');

CREATE TABLE rejections_daily (
    bucket      timestamptz NOT NULL,
    site_id     text NOT NULL,
    building_id text NOT NULL,
    reason      text NOT NULL,
    rejected    bigint NOT NULL,
    PRIMARY KEY (site_id, building_id, reason, bucket)
);
SELECT create_hypertable('rejections_daily', 'bucket', chunk_time_interval => interval '180 days');

-- The pipeline's own figures, written by each worker every period (pipeline/metrics.py):
-- records landed by the sinks, sink batches, their largest size and write latency, and the
-- worker's consumer lag (end offset minus committed offset, summed over partitions).
CREATE TABLE pipeline_metrics (
    at             timestamptz NOT NULL,
    worker         text NOT NULL,
    topic          text NOT NULL,
    period_s       double precision NOT NULL CHECK (period_s > 0),
    landed         bigint NOT NULL DEFAULT 0,
    batches        bigint NOT NULL DEFAULT 0,
    batch_max      integer NOT NULL DEFAULT 0,
    latency_ms_sum double precision NOT NULL DEFAULT 0,
    latency_ms_max double precision NOT NULL DEFAULT 0,
    lag            bigint,
    PRIMARY KEY (worker, topic, at)
);
SELECT create_hypertable('pipeline_metrics', 'at', chunk_time_interval => interval '7 days');

-- The same per UTC hour, for ranges longer than a day.
CREATE TABLE pipeline_metrics_hourly (
    bucket         timestamptz NOT NULL,
    worker         text NOT NULL,
    topic          text NOT NULL,
    landed         bigint NOT NULL DEFAULT 0,
    batches        bigint NOT NULL DEFAULT 0,
    batch_max      integer NOT NULL DEFAULT 0,
    latency_ms_sum double precision NOT NULL DEFAULT 0,
    latency_ms_max double precision NOT NULL DEFAULT 0,
    lag_max        bigint,
    PRIMARY KEY (worker, topic, bucket)
);
SELECT create_hypertable('pipeline_metrics_hourly', 'bucket',
                         chunk_time_interval => interval '90 days');

-- Indexes the boards need on existing tables: every meter's days in a range, top-ups and
-- refunds without the (many) charges, payments by time.
CREATE INDEX usage_daily_bucket_idx ON usage_daily (bucket);
CREATE INDEX ledger_money_idx ON ledger (at DESC) WHERE kind <> 'charge';
CREATE INDEX payments_created_idx ON payments (created_at);
CREATE INDEX commands_meter_idx ON commands (meter_id, issued_at DESC);

-- Usage per meter and band over [t0, t1] in whole local days: the whole months inside
-- from usage_monthly, the days before and after them from usage_daily, so a year reads
-- about 12 + 60 rows per meter and band instead of 365.
CREATE FUNCTION usage_span(t0 timestamptz, t1 timestamptz)
RETURNS TABLE (meter_id text, band text, units numeric, amount_yuan numeric)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH d AS (
        SELECT (t0 AT TIME ZONE 'Asia/Shanghai')::date AS d0,
               (t1 AT TIME ZONE 'Asia/Shanghai')::date AS d1),
    m AS (
        SELECT d0, d1,
               (date_trunc('month', (d0 - 1)::timestamp) + interval '1 month')::date AS m0,
               date_trunc('month', (d1 + 1)::timestamp)::date AS m1
        FROM d),
    -- the days read from usage_daily: before m0 and from m1 on, or all when no whole month
    r AS (
        SELECT d0 AS lo, CASE WHEN m0 < m1 THEN m0 - 1 ELSE d1 END AS hi FROM m
        UNION ALL
        SELECT m1, d1 FROM m WHERE m0 < m1)
    SELECT u.meter_id, u.band, u.units, u.amount_yuan
    FROM m JOIN usage_monthly u
      ON u.bucket >= m.m0::timestamp AT TIME ZONE 'Asia/Shanghai'
     AND u.bucket < m.m1::timestamp AT TIME ZONE 'Asia/Shanghai'
    WHERE m.m0 < m.m1
    UNION ALL
    SELECT u.meter_id, u.band, u.units, u.amount_yuan
    FROM r JOIN usage_daily u ON u.bucket BETWEEN r.lo AND r.hi
$$;

-- Reading quality per meter over [t0, t1] in whole local days, the same way.
CREATE FUNCTION quality_span(t0 timestamptz, t1 timestamptz)
RETURNS TABLE (meter_id text, readings integer, missed integer, max_gap_s integer,
               rejected integer)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH d AS (
        SELECT (t0 AT TIME ZONE 'Asia/Shanghai')::date AS d0,
               (t1 AT TIME ZONE 'Asia/Shanghai')::date AS d1),
    m AS (
        SELECT d0, d1,
               (date_trunc('month', (d0 - 1)::timestamp) + interval '1 month')::date AS m0,
               date_trunc('month', (d1 + 1)::timestamp)::date AS m1
        FROM d),
    r AS (
        SELECT d0 AS lo, CASE WHEN m0 < m1 THEN m0 - 1 ELSE d1 END AS hi FROM m
        UNION ALL
        SELECT m1, d1 FROM m WHERE m0 < m1)
    SELECT q.meter_id, q.readings, q.missed, q.max_gap_s, q.rejected
    FROM m JOIN quality_monthly q
      ON q.bucket >= m.m0::timestamp AT TIME ZONE 'Asia/Shanghai'
     AND q.bucket < m.m1::timestamp AT TIME ZONE 'Asia/Shanghai'
    WHERE m.m0 < m.m1
    UNION ALL
    SELECT q.meter_id, q.readings, q.missed, q.max_gap_s, q.rejected
    FROM r JOIN quality_daily q
      ON q.bucket >= (r.lo::timestamp AT TIME ZONE 'Asia/Shanghai')
     AND q.bucket <= (r.hi::timestamp AT TIME ZONE 'Asia/Shanghai')
$$;

-- Recompute every board rollup from the base tables (usage_daily, usage_hourly, ledger,
-- readings, rejected_readings), with each meter and account where it is now. For history
-- that landed before this migration, or after restoring base tables; run it with the sinks
-- stopped (a batch landing meanwhile could be counted twice).
CREATE FUNCTION rebuild_board_rollups() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE usage_monthly, usage_daily_building, usage_hourly_building, ledger_daily,
             quality_daily, quality_monthly, quality_daily_building, rejections_daily;

    INSERT INTO usage_monthly (meter_id, bucket, band, units, amount_yuan)
    SELECT meter_id, date_trunc('month', bucket::timestamp) AT TIME ZONE 'Asia/Shanghai',
           band, sum(units), sum(amount_yuan)
    FROM usage_daily GROUP BY 1, 2, 3;

    INSERT INTO usage_daily_building (bucket, site_id, building_id, commodity, band, units,
                                      amount_yuan)
    SELECT u.bucket::timestamp AT TIME ZONE 'Asia/Shanghai', COALESCE(p.site_id, ''),
           COALESCE(p.building_id, ''), COALESCE(p.commodity, ''), u.band, sum(u.units),
           sum(u.amount_yuan)
    FROM usage_daily u LEFT JOIN meter_places p USING (meter_id) GROUP BY 1, 2, 3, 4, 5;

    INSERT INTO usage_hourly_building (bucket, site_id, building_id, commodity, units,
                                       amount_yuan)
    SELECT u.bucket, COALESCE(p.site_id, ''), COALESCE(p.building_id, ''),
           COALESCE(p.commodity, ''), sum(u.units), sum(u.amount_yuan)
    FROM usage_hourly u LEFT JOIN meter_places p USING (meter_id) GROUP BY 1, 2, 3, 4;

    INSERT INTO ledger_daily (bucket, site_id, building_id, kind, amount_fen, entries)
    SELECT date_trunc('day', l.at AT TIME ZONE 'Asia/Shanghai') AT TIME ZONE 'Asia/Shanghai',
           COALESCE(p.site_id, ''), COALESCE(p.building_id, ''), l.kind, sum(l.amount_fen),
           count(*)
    FROM ledger l LEFT JOIN account_places p USING (account_id) GROUP BY 1, 2, 3, 4;

    DROP TABLE IF EXISTS rebuild_quality;
    CREATE TEMPORARY TABLE rebuild_quality ON COMMIT DROP AS
    SELECT g.meter_id,
           date_trunc('day', g.ts AT TIME ZONE 'Asia/Shanghai') AS local_day,
           1 AS readings,
           COALESCE(GREATEST(round(extract(epoch FROM g.ts - g.prev)
                                   / COALESCE(p.expected_interval_s, 900)) - 1, 0), 0)::integer
               AS missed,
           COALESCE(extract(epoch FROM g.ts - g.prev), 0)::integer AS gap_s,
           0 AS rejected
    FROM (SELECT meter_id, ts, lag(ts) OVER (PARTITION BY meter_id ORDER BY ts) AS prev
          FROM readings) g
    LEFT JOIN meter_places p USING (meter_id)
    UNION ALL
    SELECT meter_id, date_trunc('day', ts AT TIME ZONE 'Asia/Shanghai'), 0, 0, 0, 1
    FROM rejected_readings;

    INSERT INTO quality_daily (meter_id, bucket, readings, missed, max_gap_s, rejected)
    SELECT meter_id, local_day AT TIME ZONE 'Asia/Shanghai', sum(readings), sum(missed),
           max(gap_s), sum(rejected)
    FROM rebuild_quality GROUP BY 1, 2;

    INSERT INTO quality_monthly (meter_id, bucket, readings, missed, max_gap_s, rejected)
    SELECT meter_id, date_trunc('month', local_day) AT TIME ZONE 'Asia/Shanghai',
           sum(readings), sum(missed), max(gap_s), sum(rejected)
    FROM rebuild_quality GROUP BY 1, 2;

    INSERT INTO quality_daily_building (bucket, site_id, building_id, readings, missed,
                                        rejected)
    SELECT q.local_day AT TIME ZONE 'Asia/Shanghai', COALESCE(p.site_id, ''),
           COALESCE(p.building_id, ''), sum(q.readings), sum(q.missed), sum(q.rejected)
    FROM rebuild_quality q LEFT JOIN meter_places p USING (meter_id) GROUP BY 1, 2, 3;

    INSERT INTO rejections_daily (bucket, site_id, building_id, reason, rejected)
    SELECT date_trunc('day', r.ts AT TIME ZONE 'Asia/Shanghai') AT TIME ZONE 'Asia/Shanghai',
           COALESCE(p.site_id, ''), COALESCE(p.building_id, ''), r.reason, count(*)
    FROM rejected_readings r LEFT JOIN meter_places p USING (meter_id) GROUP BY 1, 2, 3, 4;
END
$$;

SELECT rebuild_board_rollups();
