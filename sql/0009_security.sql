-- Security: API tokens that expire and rotate, operators limited to sites or buildings,
-- throttling of failed authentication, and one MQTT identity per meter or gateway from
-- which the broker's password file and ACL are generated (docs/operations.md#security).
-- Works on the Apache-2 edition of TimescaleDB (plain tables and views only).

-- API tokens: a lifetime, where they were last used from, and what replaced them.
ALTER TABLE api_tokens
    ADD COLUMN expires_at     timestamptz,
    ADD COLUMN last_used_from text CHECK (length(last_used_from) <= 64),
    ADD COLUMN rotated_to     text REFERENCES api_tokens (token_id);
-- Tokens made before tokens expired get their 90 days from the upgrade, not from when they
-- were made, so an upgrade locks nobody out at once.
UPDATE api_tokens SET expires_at = now() + interval '90 days' WHERE expires_at IS NULL;
ALTER TABLE api_tokens ALTER COLUMN expires_at SET NOT NULL;

-- Operators limited to sites or buildings (meterflow/api/scope.py). A user without rows
-- here sees everything; admins are never limited. A site or building named here need not
-- exist yet.
CREATE TABLE api_user_scopes (
    user_id     bigint NOT NULL REFERENCES api_users (user_id) ON DELETE CASCADE,
    site_id     text CHECK (site_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    building_id text CHECK (building_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    CHECK ((site_id IS NULL) <> (building_id IS NULL))
);
CREATE UNIQUE INDEX api_user_scopes_site ON api_user_scopes (user_id, site_id)
    WHERE site_id IS NOT NULL;
CREATE UNIQUE INDEX api_user_scopes_building ON api_user_scopes (user_id, building_id)
    WHERE building_id IS NOT NULL;

-- Failed authentications per client address and per user name, and the blocks they cause
-- (meterflow/security/throttle.py). Rows are kept small: one per address or name.
CREATE TABLE auth_throttle (
    kind            text NOT NULL CHECK (kind IN ('address', 'user')),
    key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    failures        integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    window_start    timestamptz NOT NULL DEFAULT now(),
    last_failure_at timestamptz NOT NULL DEFAULT now(),
    blocked_until   timestamptz,
    PRIMARY KEY (kind, key)
);

-- MQTT gateways: one connection (one identity) for the meters registered behind it.
-- Ids are MQTT user names, so no ':' (Mosquitto's password file separates with it).
CREATE TABLE mqtt_gateways (
    gateway_id  text PRIMARY KEY CHECK (gateway_id ~ '^[A-Za-z0-9._-]{1,64}$'),
    name        text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    building_id text REFERENCES buildings (building_id),
    created_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE meters ADD COLUMN gateway_id text REFERENCES mqtt_gateways (gateway_id);
CREATE INDEX meters_gateway_idx ON meters (gateway_id) WHERE gateway_id IS NOT NULL;

-- One MQTT credential per meter or gateway; a rotation revokes the old row and adds a new
-- one. Only the PBKDF2-HMAC-SHA512 hash is stored (services/devices/passwords.py): the
-- password itself is shown once, when it is made.
CREATE TABLE device_credentials (
    credential_id bigserial PRIMARY KEY,
    meter_id      text REFERENCES meters (meter_id),
    gateway_id    text REFERENCES mqtt_gateways (gateway_id),
    username      text NOT NULL CHECK (username ~ '^[A-Za-z0-9._-]{1,64}$'),
    salt          text NOT NULL CHECK (length(salt) = 12),
    iterations    integer NOT NULL CHECK (iterations > 0),
    password_hash text NOT NULL CHECK (password_hash ~ '^[0-9a-f]{128}$'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text NOT NULL DEFAULT '',
    revoked_at    timestamptz,
    revoked_by    text,
    revoke_reason text CHECK (revoke_reason IN ('revoked', 'rotated')),
    CHECK ((meter_id IS NULL) <> (gateway_id IS NULL)),
    CHECK ((revoked_at IS NULL) = (revoke_reason IS NULL))
);
CREATE UNIQUE INDEX device_credentials_live_user ON device_credentials (username)
    WHERE revoked_at IS NULL;
CREATE UNIQUE INDEX device_credentials_live_meter ON device_credentials (meter_id)
    WHERE revoked_at IS NULL AND meter_id IS NOT NULL;
CREATE UNIQUE INDEX device_credentials_live_gateway ON device_credentials (gateway_id)
    WHERE revoked_at IS NULL AND gateway_id IS NOT NULL;

-- A meter in service for MQTT: not removed, or removed only in the future (a replacement's
-- grace period, meterflow/api/routers/meters.py).
CREATE VIEW mqtt_meters AS
SELECT meter_id, gateway_id FROM meters
WHERE protocol = 'mqtt' AND (removed_at IS NULL OR removed_at > now());

-- The user names the broker accepts and their hashes. EMQX's PostgreSQL authenticator can
-- query this view directly (docs/operations.md#emqx); Mosquitto gets it as a file.
CREATE VIEW mqtt_users AS
SELECT c.username, c.password_hash, c.salt, c.iterations, false AS is_superuser,
       CASE WHEN c.meter_id IS NOT NULL THEN 'meter' ELSE 'gateway' END AS device_kind,
       COALESCE(c.meter_id, c.gateway_id) AS device_id
FROM device_credentials c
WHERE c.revoked_at IS NULL
  AND (c.meter_id IS NULL OR c.meter_id IN (SELECT meter_id FROM mqtt_meters));

-- Which meter each live identity speaks for: a meter for itself, a gateway for the meters
-- registered behind it.
CREATE VIEW mqtt_grants AS
SELECT c.username, m.meter_id
FROM device_credentials c JOIN mqtt_meters m ON m.meter_id = c.meter_id
WHERE c.revoked_at IS NULL
UNION
SELECT c.username, m.meter_id
FROM device_credentials c JOIN mqtt_meters m ON m.gateway_id = c.gateway_id
WHERE c.revoked_at IS NULL;

-- The rules in EMQX's authorisation form (permission, action, topic); anything not listed
-- is denied. The same rules make Mosquitto's ACL file.
CREATE VIEW mqtt_acl AS
SELECT username, meter_id, 'allow'::text AS permission, 'publish'::text AS action,
       'meters/' || meter_id || '/readings' AS topic FROM mqtt_grants
UNION ALL
SELECT username, meter_id, 'allow', 'publish', 'meters/' || meter_id || '/acks'
FROM mqtt_grants
UNION ALL
SELECT username, meter_id, 'allow', 'subscribe', 'meters/' || meter_id || '/commands'
FROM mqtt_grants;

-- Any change to identities or to which meters they speak for is announced to the broker
-- sync (meterflow/broker/sync.py), which regenerates the broker's files at once.
CREATE FUNCTION mqtt_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('meterflow_mqtt_auth', TG_TABLE_NAME);
    RETURN NULL;
END
$$;
CREATE TRIGGER device_credentials_changed AFTER INSERT OR UPDATE OR DELETE
    ON device_credentials FOR EACH STATEMENT EXECUTE FUNCTION mqtt_auth_changed();
CREATE TRIGGER mqtt_gateways_changed AFTER INSERT OR UPDATE OR DELETE
    ON mqtt_gateways FOR EACH STATEMENT EXECUTE FUNCTION mqtt_auth_changed();
CREATE TRIGGER meters_mqtt_changed AFTER INSERT OR DELETE
    OR UPDATE OF gateway_id, protocol, removed_at ON meters
    FOR EACH STATEMENT EXECUTE FUNCTION mqtt_auth_changed();

-- What each broker sync last applied: the moment of the database snapshot it rendered and
-- when the broker was told to reload. A change committed before snapshot_at is in force
-- at that broker once applied_at is set (`meterflow device credentials revoke --wait`).
CREATE TABLE mqtt_auth_syncs (
    name        text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 200),
    snapshot_at timestamptz NOT NULL,
    applied_at  timestamptz NOT NULL,
    users       integer NOT NULL,
    rules       integer NOT NULL,
    skipped     jsonb NOT NULL DEFAULT '[]'::jsonb,
    error       text NOT NULL DEFAULT ''
);

-- Where things are, for the scope of operators: one row per (kind, id) and place; ''
-- where there is none. A meter is where its room is, else where its account is; a
-- customer wherever one of their accounts is; a site also where each of its buildings is
-- (a user of one building may read its site).
CREATE VIEW meter_scope AS
SELECT m.meter_id,
       COALESCE(b1.site_id, b2.site_id, '') AS site_id,
       COALESCE(b1.building_id, b2.building_id, '') AS building_id
FROM meters m
LEFT JOIN rooms r1 ON r1.room_id = m.room_id
LEFT JOIN floors f1 ON f1.floor_id = r1.floor_id
LEFT JOIN buildings b1 ON b1.building_id = f1.building_id
LEFT JOIN accounts a ON a.account_id = m.account_id
LEFT JOIN rooms r2 ON r2.room_id = a.room_id
LEFT JOIN floors f2 ON f2.floor_id = r2.floor_id
LEFT JOIN buildings b2 ON b2.building_id = f2.building_id;

CREATE VIEW scope_places AS
SELECT 'site'::text AS kind, s.site_id AS id, s.site_id, ''::text AS building_id FROM sites s
UNION ALL
SELECT 'site', b.site_id, b.site_id, b.building_id FROM buildings b
UNION ALL
SELECT 'building', b.building_id, b.site_id, b.building_id FROM buildings b
UNION ALL
SELECT 'floor', f.floor_id, b.site_id, b.building_id
FROM floors f JOIN buildings b ON b.building_id = f.building_id
UNION ALL
SELECT 'room', r.room_id, b.site_id, b.building_id
FROM rooms r JOIN floors f ON f.floor_id = r.floor_id
JOIN buildings b ON b.building_id = f.building_id
UNION ALL
SELECT 'account', p.account_id, p.site_id, p.building_id FROM account_places p
UNION ALL
SELECT 'meter', s.meter_id, s.site_id, s.building_id FROM meter_scope s
UNION ALL
SELECT 'customer', c.customer_id, COALESCE(p.site_id, ''), COALESCE(p.building_id, '')
FROM customers c
LEFT JOIN accounts a ON a.customer_id = c.customer_id
LEFT JOIN account_places p ON p.account_id = a.account_id
UNION ALL
SELECT 'gateway', g.gateway_id, COALESCE(b.site_id, ''), COALESCE(g.building_id, '')
FROM mqtt_gateways g LEFT JOIN buildings b ON b.building_id = g.building_id;
