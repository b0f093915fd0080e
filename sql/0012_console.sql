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

-- Room monitoring at a glance (the console's grid, GET /monitor/rooms): room_status and,
-- per room, its accounts, the supply state the meters confirmed (the furthest along of its
-- accounts: cut_confirmed, cut_requested, reconnect_requested, connected) and whether any
-- account keeps supply on by hand.
CREATE VIEW room_glance AS
SELECT rs.*, x.supply_state, x.keep_supply, x.account_ids
FROM room_status rs
CROSS JOIN LATERAL (
    SELECT COALESCE((array_agg(b.supply_state ORDER BY CASE b.supply_state
                         WHEN 'cut_confirmed' THEN 0 WHEN 'cut_requested' THEN 1
                         WHEN 'reconnect_requested' THEN 2 ELSE 3 END)
                     FILTER (WHERE b.supply_state IS NOT NULL))[1], 'connected')
               AS supply_state,
           COALESCE(bool_or(a.keep_supply ->> 'manual' = 'true'), false) AS keep_supply,
           COALESCE(array_agg(DISTINCT m.account_id ORDER BY m.account_id)
                    FILTER (WHERE m.account_id IS NOT NULL), '{}') AS account_ids
    FROM meters m
    LEFT JOIN accounts a ON a.account_id = m.account_id
    LEFT JOIN balances b ON b.account_id = m.account_id
    WHERE m.room_id = rs.room_id AND m.removed_at IS NULL) x;
