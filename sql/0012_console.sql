-- The operators' web console (meterflow/console/, docs/console.md): staff passwords, web
-- sessions and saved account-opening drafts.

-- A staff member's password for the console's sign-in: an argon2id hash in the PHC string
-- format (argon2-cffi), never the password. NULL: the user signs in with tokens only.
ALTER TABLE api_users ADD COLUMN password_hash text
    CHECK (password_hash IS NULL OR password_hash LIKE '$argon2id$%');
ALTER TABLE api_users ADD COLUMN password_set_at timestamptz;

-- A signed-in browser. Only the SHA-256 of the session cookie is stored; the CSRF token is
-- the synchronizer token every state-changing request must echo (X-CSRF-Token). A session
-- ends at sign-out, after METERFLOW_CONSOLE_IDLE_TIMEOUT_S without a request, or after
-- METERFLOW_CONSOLE_SESSION_MAX_S in all.
CREATE TABLE console_sessions (
    session_sha256 text PRIMARY KEY CHECK (session_sha256 ~ '^[0-9a-f]{64}$'),
    user_id        bigint NOT NULL REFERENCES api_users (user_id),
    csrf_token     text NOT NULL CHECK (length(csrf_token) BETWEEN 32 AND 128),
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    ended_at       timestamptz,
    address        text
);
CREATE INDEX console_sessions_user_idx ON console_sessions (user_id);
CREATE INDEX console_sessions_seen_idx ON console_sessions (last_seen_at);

-- An account opening saved half-way: the request body of POST /accounts (JSON), opened
-- again later. Deleted when the accounts are opened or the draft is discarded.
CREATE TABLE account_drafts (
    draft_id    bigserial PRIMARY KEY,
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    body        jsonb NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Room monitoring at a glance (the console's grid, GET /monitor/rooms): the room's
-- accounts, the supply state the meters confirmed (the furthest along of its accounts:
-- cut_confirmed, cut_requested, reconnect_requested, connected) and whether any account
-- keeps supply on by hand. New columns go last, so the view's earlier columns are unchanged.
CREATE OR REPLACE VIEW room_status AS
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
       COALESCE(sum(ms.today_yuan), 0) AS today_yuan,
       COALESCE((array_agg(ms.supply_state ORDER BY CASE ms.supply_state
                     WHEN 'cut_confirmed' THEN 0 WHEN 'cut_requested' THEN 1
                     WHEN 'reconnect_requested' THEN 2 ELSE 3 END))[1], 'connected')
           AS supply_state,
       COALESCE(bool_or(a.keep_supply ->> 'manual' = 'true'), false) AS keep_supply,
       COALESCE(array_agg(DISTINCT ms.account_id ORDER BY ms.account_id)
                FILTER (WHERE ms.account_id IS NOT NULL), '{}') AS account_ids
FROM rooms r
JOIN floors f ON f.floor_id = r.floor_id
JOIN buildings bd ON bd.building_id = f.building_id
JOIN sites s ON s.site_id = bd.site_id
LEFT JOIN meter_status ms ON ms.room_id = r.room_id
LEFT JOIN accounts a ON a.account_id = ms.account_id
GROUP BY r.room_id, r.name, r.area_m2, f.floor_id, f.level, bd.building_id, bd.name,
         s.site_id, s.name;
