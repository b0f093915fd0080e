-- Operators: API users and their tokens, the append-only audit log, tariff assignments with
-- an effective time, operator control commands, meter replacements, and batch operations.
-- Works on the Apache-2 edition of TimescaleDB (plain tables only).

-- People and machines that call the API. Roles: see meterflow/api/auth.py (PERMISSIONS).
CREATE TABLE api_users (
    user_id     bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9._@-]{1,64}$'),
    role        text NOT NULL CHECK (role IN ('admin', 'operator', 'finance', 'maintenance',
                                              'viewer')),
    disabled    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Bearer tokens: only the SHA-256 of the token is stored; the token itself is shown once.
CREATE TABLE api_tokens (
    token_id     text PRIMARY KEY CHECK (token_id ~ '^[0-9a-f]{16}$'),
    user_id      bigint NOT NULL REFERENCES api_users (user_id),
    token_sha256 text NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    label        text NOT NULL DEFAULT '' CHECK (length(label) <= 200),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

-- Every change made through the API, written in the same transaction as the change.
-- No role can edit it: triggers refuse UPDATE, DELETE and TRUNCATE, as for the ledger.
CREATE TABLE audit_log (
    audit_id    bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    user_id     bigint,
    user_name   text NOT NULL,
    role        text NOT NULL,
    token_id    text,
    action      text NOT NULL,
    target      text NOT NULL,
    before      jsonb,
    after       jsonb,
    request_id  text NOT NULL
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_target_idx ON audit_log (target, at);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP;
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();

-- A meter's tariff from a moment on. The workers' configuration (pipeline/config_source.py)
-- takes the newest assignment whose effective_from has passed, else meters.tariff_id, so an
-- assignment dated in the future changes nothing before that moment.
CREATE TABLE tariff_assignments (
    assignment_id  bigserial PRIMARY KEY,
    meter_id       text NOT NULL REFERENCES meters (meter_id),
    tariff_id      text NOT NULL CHECK (tariff_id ~ '^[A-Za-z0-9._-]{1,64}$'),
    effective_from timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text NOT NULL DEFAULT ''
);
CREATE INDEX tariff_assignments_meter_idx ON tariff_assignments (meter_id, effective_from DESC);

CREATE VIEW meter_tariffs AS
SELECT m.meter_id, coalesce(a.tariff_id, m.tariff_id) AS tariff_id, a.effective_from
FROM meters m
LEFT JOIN LATERAL (
    SELECT t.tariff_id, t.effective_from FROM tariff_assignments t
    WHERE t.meter_id = m.meter_id AND t.effective_from <= now()
    ORDER BY t.effective_from DESC, t.assignment_id DESC LIMIT 1) a ON true;

-- Disconnect / reconnect commands asked for by operators (the wallet's own commands are in
-- `commands` only). The command travels through the outbox to meterflow.commands; its
-- acknowledgement lands in command_acks.
CREATE TABLE operator_commands (
    command_id  text PRIMARY KEY,
    meter_id    text NOT NULL REFERENCES meters (meter_id),
    account_id  text,
    action      text NOT NULL CHECK (action IN ('disconnect', 'reconnect')),
    issued_at   timestamptz NOT NULL,
    deadline    timestamptz NOT NULL,
    reason      text NOT NULL DEFAULT '',
    request_key text NOT NULL,
    requested_by text NOT NULL
);
CREATE INDEX operator_commands_meter_idx ON operator_commands (meter_id, issued_at DESC);

-- A meter replaced by another: the old one's final reading and the new one's first.
CREATE TABLE meter_replacements (
    old_meter_id    text PRIMARY KEY REFERENCES meters (meter_id),
    new_meter_id    text NOT NULL UNIQUE REFERENCES meters (meter_id),
    at              timestamptz NOT NULL,
    final_reading   numeric(14, 3) NOT NULL CHECK (final_reading >= 0),
    initial_reading numeric(14, 3) NOT NULL CHECK (initial_reading >= 0),
    created_by      text NOT NULL DEFAULT ''
);

-- Batch operations over many accounts or meters, run now or at run_at by the API process.
CREATE TABLE batches (
    batch_id    text PRIMARY KEY CHECK (batch_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    operation   text NOT NULL CHECK (operation IN ('topup', 'set_tariff', 'disconnect',
                                                   'reconnect', 'set_thresholds')),
    params      jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(params) = 'object'),
    request_hash text NOT NULL,
    status      text NOT NULL DEFAULT 'scheduled'
                CHECK (status IN ('scheduled', 'running', 'done', 'cancelled')),
    run_at      timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL,
    -- who asked ({user_id, name, role, token_id}): the items run, and are audited, as them
    actor       jsonb NOT NULL CHECK (jsonb_typeof(actor) = 'object'),
    started_at  timestamptz,
    finished_at timestamptz
);
CREATE INDEX batches_due_idx ON batches (run_at) WHERE status IN ('scheduled', 'running');

CREATE TABLE batch_items (
    batch_id    text NOT NULL REFERENCES batches (batch_id),
    item        integer NOT NULL CHECK (item >= 0),
    target      text NOT NULL,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    result      jsonb,
    finished_at timestamptz,
    PRIMARY KEY (batch_id, item)
);
CREATE INDEX batch_items_pending_idx ON batch_items (batch_id, item) WHERE status = 'pending';
