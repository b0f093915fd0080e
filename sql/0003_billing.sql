-- Billing: tariffs and their assignment, account rules, the durable payment intake with its
-- outbox, and the landing tables of the stream pipeline (ledger, balances, rated intervals,
-- alarms, commands, acknowledgements, meter events) with hourly and daily rollups.
-- Money is integer fen everywhere except the exact (sub-fen) cost of rated lines, kept as
-- numeric yuan for reports. Works on the Apache-2 edition of TimescaleDB.

-- Tariff versions: the body is the tariff file (YAML text) as the billing core reads it.
CREATE TABLE tariffs (
    tariff_id   text NOT NULL CHECK (tariff_id ~ '^[A-Za-z0-9._-]{1,64}$'),
    valid_from  date NOT NULL DEFAULT '-infinity',
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tariff_id, valid_from)
);

ALTER TABLE meters
    ADD COLUMN tariff_id     text,
    ADD COLUMN register_max  numeric(14, 3) CHECK (register_max > 0),
    ADD COLUMN max_rate      numeric(14, 3) CHECK (max_rate > 0),
    ADD COLUMN removed_at    timestamptz;

-- Wallet rules of each account (pipeline.billing.wallet_model.WalletConfig).
ALTER TABLE accounts
    ADD COLUMN thresholds_fen      bigint[] NOT NULL DEFAULT ARRAY[5000, 2000, 1000]::bigint[]
        CHECK (array_length(thresholds_fen, 1) = 3
               AND thresholds_fen[1] > thresholds_fen[2]
               AND thresholds_fen[2] > thresholds_fen[3]),
    ADD COLUMN overdraft_fen       bigint NOT NULL DEFAULT 0 CHECK (overdraft_fen >= 0),
    ADD COLUMN reconnect_above_fen bigint NOT NULL DEFAULT 0,
    ADD COLUMN keep_supply         jsonb NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(keep_supply) = 'object'),
    -- WalletConfig's rule: reconnecting never below the level that cuts supply.
    ADD CONSTRAINT accounts_reconnect_above_cutoff CHECK (reconnect_above_fen >= -overdraft_fen);

-- Top-ups, refunds and adjustments as operators asked for them. The idempotency key makes
-- a repeated request return the first result; request_hash refuses a repeat with another
-- body. Written in the same transaction as its outbox row, before it is acknowledged.
-- request_hash: sha256 hex of the canonical request (services/payments/request.py; contracts).
CREATE TABLE payments (
    payment_id      text PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE CHECK (idempotency_key ~ '^[A-Za-z0-9._:-]{1,128}$'),
    request_hash    text NOT NULL CHECK (request_hash ~ '^[0-9a-f]{64}$'),
    account_id      text NOT NULL REFERENCES accounts (account_id),
    kind            text NOT NULL CHECK (kind IN ('topup', 'refund', 'adjustment')),
    amount_fen      bigint NOT NULL CHECK (amount_fen <> 0 AND (kind = 'adjustment' OR amount_fen > 0)),
    operator        text NOT NULL DEFAULT '' CHECK (length(operator) <= 64),
    note            text NOT NULL DEFAULT '' CHECK (length(note) <= 500),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_account_idx ON payments (account_id, created_at);

-- Messages committed with the change they announce; `meterflow relay` publishes them in id
-- order and sets published_at only after the broker acknowledged (services/outbox.py).
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    topic        text NOT NULL,
    key          text NOT NULL,
    payload      jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE published_at IS NULL;

-- The ledger: append-only; corrections are new reversing entries.
CREATE TABLE ledger (
    entry_id     text NOT NULL,
    account_id   text NOT NULL,
    seq          bigint NOT NULL CHECK (seq > 0),
    at           timestamptz NOT NULL,
    kind         text NOT NULL,
    amount_fen   bigint NOT NULL,
    balance_fen  bigint NOT NULL,
    meter_id     text,
    ref          text NOT NULL DEFAULT '',
    detail       text NOT NULL DEFAULT '',
    PRIMARY KEY (entry_id, at)
);
SELECT create_hypertable('ledger', 'at', chunk_time_interval => interval '30 days');
CREATE INDEX ledger_account_idx ON ledger (account_id, seq);

CREATE FUNCTION ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only: % refused (post a reversing entry)', TG_OP;
END
$$;
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_is_append_only();

-- Latest state of each account (upserted; `seq` only moves forward).
CREATE TABLE balances (
    account_id   text PRIMARY KEY,
    balance_fen  bigint NOT NULL,
    alarm_level  smallint NOT NULL DEFAULT 0 CHECK (alarm_level BETWEEN 0 AND 3),
    supply       text NOT NULL CHECK (supply IN ('connected', 'disconnected')),
    seq          bigint NOT NULL,
    updated_at   timestamptz NOT NULL,
    disconnect_pending boolean NOT NULL DEFAULT false,
    deferred_until     timestamptz
);

-- Consumption between two accepted readings, rated: one row per band and step.
CREATE TABLE rated_lines (
    interval_id  text NOT NULL,
    line         smallint NOT NULL,
    meter_id     text NOT NULL,
    account_id   text,
    tariff_id    text NOT NULL,
    start_ts     timestamptz NOT NULL,
    end_ts       timestamptz NOT NULL,
    band         text,
    step         smallint,
    units        numeric(20, 6) NOT NULL,
    amount_yuan  numeric(24, 10) NOT NULL,
    PRIMARY KEY (interval_id, line, end_ts)
);
SELECT create_hypertable('rated_lines', 'end_ts', chunk_time_interval => interval '7 days');
CREATE INDEX rated_lines_meter_idx ON rated_lines (meter_id, end_ts);

CREATE TABLE alarms (
    alarm_id    text NOT NULL,
    at          timestamptz NOT NULL,
    account_id  text NOT NULL,
    kind        text NOT NULL,
    level       smallint,
    balance_fen bigint,
    threshold_fen bigint,
    detail      text NOT NULL DEFAULT '',
    PRIMARY KEY (alarm_id, at)
);
SELECT create_hypertable('alarms', 'at', chunk_time_interval => interval '30 days');

CREATE TABLE commands (
    command_id  text NOT NULL,
    issued_at   timestamptz NOT NULL,
    meter_id    text NOT NULL,
    account_id  text,
    action      text NOT NULL CHECK (action IN ('disconnect', 'reconnect')),
    deadline    timestamptz NOT NULL,
    reason      text NOT NULL DEFAULT '',
    PRIMARY KEY (command_id, issued_at)
);
SELECT create_hypertable('commands', 'issued_at', chunk_time_interval => interval '30 days');

CREATE TABLE command_acks (
    command_id  text NOT NULL,
    at          timestamptz NOT NULL,
    meter_id    text NOT NULL,
    status      text NOT NULL CHECK (status IN ('applied', 'failed', 'expired')),
    detail      text NOT NULL DEFAULT '',
    attempts    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (command_id, at)
);
SELECT create_hypertable('command_acks', 'at', chunk_time_interval => interval '30 days');

CREATE TABLE meter_events (
    event_id    text NOT NULL,
    at          timestamptz NOT NULL,
    meter_id    text NOT NULL,
    kind        text NOT NULL,
    detail      text NOT NULL DEFAULT '',
    PRIMARY KEY (event_id, at)
);
SELECT create_hypertable('meter_events', 'at', chunk_time_interval => interval '30 days');

CREATE TABLE rejected_readings (
    meter_id    text NOT NULL,
    ts          timestamptz NOT NULL,
    reason      text NOT NULL,
    value       numeric(14, 3),
    raw         bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (meter_id, ts, reason)
);
SELECT create_hypertable('rejected_readings', 'ts', chunk_time_interval => interval '30 days');

-- Rollups for reports (the Apache edition has no continuous aggregates: the sink keeps
-- them, adding each rated line once, in the same transaction that inserts the line).
CREATE TABLE usage_hourly (
    meter_id    text NOT NULL,
    bucket      timestamptz NOT NULL,
    band        text NOT NULL DEFAULT '',
    units       numeric(20, 6) NOT NULL,
    amount_yuan numeric(24, 10) NOT NULL,
    PRIMARY KEY (meter_id, bucket, band)
);
SELECT create_hypertable('usage_hourly', 'bucket', chunk_time_interval => interval '30 days');

CREATE TABLE usage_daily (
    meter_id    text NOT NULL,
    bucket      date NOT NULL,
    band        text NOT NULL DEFAULT '',
    units       numeric(20, 6) NOT NULL,
    amount_yuan numeric(24, 10) NOT NULL,
    PRIMARY KEY (meter_id, bucket, band)
);
