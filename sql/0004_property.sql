-- Property: sites, buildings, floors and rooms, and the customers who hold accounts.
-- A room belongs to one floor of one building of one site; meters and accounts point at the
-- room they serve (nullable: a meter can be registered before it is installed). `room_status`
-- is the one place that says what a room looks like now (the API's room monitor, the live
-- demo view and the Grafana room board read it).

CREATE TABLE sites (
    site_id     text PRIMARY KEY CHECK (site_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    name        text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    timezone    text NOT NULL DEFAULT 'Asia/Shanghai' CHECK (length(timezone) <= 64),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE buildings (
    building_id text PRIMARY KEY CHECK (building_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    site_id     text NOT NULL REFERENCES sites (site_id),
    name        text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX buildings_site_idx ON buildings (site_id);

CREATE TABLE floors (
    floor_id    text PRIMARY KEY CHECK (floor_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    building_id text NOT NULL REFERENCES buildings (building_id),
    level       integer NOT NULL CHECK (level BETWEEN -20 AND 300),
    name        text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (building_id, level)
);

CREATE TABLE rooms (
    room_id     text PRIMARY KEY CHECK (room_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    floor_id    text NOT NULL REFERENCES floors (floor_id),
    name        text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    area_m2     numeric(10, 2) CHECK (area_m2 > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rooms_floor_idx ON rooms (floor_id);

-- The people accounts belong to. `language` picks notification templates (zh or en).
CREATE TABLE customers (
    customer_id   text PRIMARY KEY CHECK (customer_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    name          text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    phone         text NOT NULL DEFAULT '' CHECK (phone = '' OR phone ~ '^\+?[0-9]{5,20}$'),
    email         text NOT NULL DEFAULT '' CHECK (email = '' OR email ~ '^[^@\s]+@[^@\s]+$'),
    wechat_openid text NOT NULL DEFAULT '' CHECK (length(wechat_openid) <= 64),
    language      text NOT NULL DEFAULT 'zh' CHECK (language IN ('zh', 'en')),
    created_at    timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE accounts
    ADD COLUMN customer_id text REFERENCES customers (customer_id),
    ADD COLUMN room_id     text REFERENCES rooms (room_id);
CREATE INDEX accounts_room_idx ON accounts (room_id);

ALTER TABLE meters
    ADD COLUMN room_id text REFERENCES rooms (room_id);
CREATE INDEX meters_room_idx ON meters (room_id);

CREATE INDEX meter_events_meter_idx ON meter_events (meter_id, at DESC);

-- Every meter in service with where it is and what it looks like now: online state from
-- its latest meter event (online until it fell silent), its account's balance, alarm level
-- and supply, and today's units and money (the site's local day, from usage_daily).
CREATE VIEW meter_status AS
SELECT m.meter_id, m.commodity, m.protocol, m.account_id,
       r.room_id, r.name AS room_name, r.area_m2,
       f.floor_id, f.level AS floor_level, bd.building_id, bd.name AS building_name,
       s.site_id, s.name AS site_name,
       COALESCE(ev.kind <> 'offline', last.ts IS NOT NULL) AS online,
       last.ts AS last_reading_at,
       b.balance_fen, COALESCE(b.alarm_level, 0) AS alarm_level,
       COALESCE(b.supply, 'connected') AS supply,
       COALESCE(today.units, 0) AS today_units,
       COALESCE(today.amount_yuan, 0) AS today_yuan
FROM meters m
LEFT JOIN rooms r ON r.room_id = m.room_id
LEFT JOIN floors f ON f.floor_id = r.floor_id
LEFT JOIN buildings bd ON bd.building_id = f.building_id
LEFT JOIN sites s ON s.site_id = bd.site_id
LEFT JOIN balances b ON b.account_id = m.account_id
LEFT JOIN LATERAL (
    SELECT e.kind FROM meter_events e
    WHERE e.meter_id = m.meter_id AND e.kind IN ('online', 'offline')
    ORDER BY e.at DESC LIMIT 1) ev ON true
LEFT JOIN LATERAL (
    SELECT rd.ts FROM readings rd WHERE rd.meter_id = m.meter_id
    ORDER BY rd.ts DESC LIMIT 1) last ON true
LEFT JOIN LATERAL (
    SELECT sum(u.units) AS units, sum(u.amount_yuan) AS amount_yuan FROM usage_daily u
    WHERE u.meter_id = m.meter_id
      AND u.bucket = (now() AT TIME ZONE COALESCE(s.timezone, 'Asia/Shanghai'))::date) today
    ON true
WHERE m.removed_at IS NULL;

-- One row per room: online when every meter of the room is; the lowest balance and the
-- highest alarm level of its accounts; disconnected when any of its supplies is.
CREATE VIEW room_status AS
SELECT r.room_id, r.name AS room_name, r.area_m2,
       f.floor_id, f.level AS floor_level, bd.building_id, bd.name AS building_name,
       s.site_id, s.name AS site_name,
       count(ms.meter_id) AS meters,
       COALESCE(bool_and(ms.online), false) AS online,
       min(ms.balance_fen) AS balance_fen,
       COALESCE(max(ms.alarm_level), 0) AS alarm_level,
       CASE WHEN bool_or(ms.supply = 'disconnected') THEN 'disconnected'
            ELSE 'connected' END AS supply,
       COALESCE(sum(ms.today_units) FILTER (WHERE ms.commodity = 'electricity'), 0)
           AS today_kwh,
       COALESCE(sum(ms.today_units) FILTER (WHERE ms.commodity = 'water'), 0) AS today_m3,
       COALESCE(sum(ms.today_yuan), 0) AS today_yuan
FROM rooms r
JOIN floors f ON f.floor_id = r.floor_id
JOIN buildings bd ON bd.building_id = f.building_id
JOIN sites s ON s.site_id = bd.site_id
LEFT JOIN meter_status ms ON ms.room_id = r.room_id
GROUP BY r.room_id, r.name, r.area_m2, f.floor_id, f.level, bd.building_id, bd.name,
         s.site_id, s.name;
