-- The stream engine's clock and command follow-up (docs/architecture.md, the clock).
-- Works on the Apache-2 edition of TimescaleDB (plain tables and views only).

-- What the meters confirmed of an account's supply decision, and when the account next
-- needs a tick (a deferred cut's end, a command to issue again): pipeline/wallet_stage.py.
ALTER TABLE balances
    ADD COLUMN supply_state text NOT NULL DEFAULT 'connected'
        CHECK (supply_state IN ('connected', 'cut_requested', 'cut_confirmed',
                                'reconnect_requested')),
    ADD COLUMN wake_at timestamptz;
CREATE INDEX balances_wake_idx ON balances (wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX balances_pending_idx ON balances (account_id) WHERE disconnect_pending;

-- Each meter's newest reading and newest online/offline event, kept by the sinks
-- (pipeline/store.py): the clock finds silent meters here without scanning readings.
CREATE TABLE meter_seen (
    meter_id        text PRIMARY KEY,
    last_reading_at timestamptz,
    last_event      text CHECK (last_event IN ('online', 'offline')),
    last_event_at   timestamptz
);
INSERT INTO meter_seen (meter_id, last_reading_at, last_event, last_event_at)
SELECT m.meter_id, last.ts, ev.kind, ev.at
FROM meters m
LEFT JOIN LATERAL (SELECT rd.ts FROM readings rd WHERE rd.meter_id = m.meter_id
                   ORDER BY rd.ts DESC LIMIT 1) last ON true
LEFT JOIN LATERAL (SELECT e.kind, e.at FROM meter_events e
                   WHERE e.meter_id = m.meter_id AND e.kind IN ('online', 'offline')
                   ORDER BY e.at DESC LIMIT 1) ev ON true
WHERE last.ts IS NOT NULL OR ev.kind IS NOT NULL;

-- The monitoring views read meter_seen (one row per meter) and show the confirmed supply.
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
      AND u.bucket = (now() AT TIME ZONE COALESCE(s.timezone, 'Asia/Shanghai'))::date) today
    ON true
WHERE m.removed_at IS NULL;
