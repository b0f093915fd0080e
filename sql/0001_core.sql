-- MeterFlow core schema: accounts, meters, readings and dead letters.
-- Works on the Apache-2 edition of TimescaleDB (hypertables, time_bucket only).

CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE accounts (
    account_id   text PRIMARY KEY CHECK (account_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    name         text NOT NULL DEFAULT '',
    billing_mode text NOT NULL DEFAULT 'prepaid' CHECK (billing_mode IN ('prepaid', 'postpaid')),
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE meters (
    meter_id     text PRIMARY KEY CHECK (meter_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    commodity    text NOT NULL CHECK (commodity IN ('electricity', 'water')),
    protocol     text NOT NULL CHECK (protocol IN ('modbus', 'dlt645', 'cjt188', 'mqtt')),
    model        text NOT NULL DEFAULT '',
    address      text NOT NULL DEFAULT '',
    multiplier   numeric(12, 4) NOT NULL DEFAULT 1 CHECK (multiplier > 0),
    account_id   text REFERENCES accounts (account_id),
    expected_interval_s integer NOT NULL DEFAULT 900 CHECK (expected_interval_s > 0),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX meters_account_idx ON meters (account_id);

-- Accepted readings of cumulative registers. `value` is in the meter's unit (kWh or m3);
-- band registers are present only for meters that keep them. One row per meter and
-- instant: a redelivered reading is a no-op (ON CONFLICT DO NOTHING).
CREATE TABLE readings (
    meter_id     text NOT NULL,
    ts           timestamptz NOT NULL,
    value        numeric(14, 3) NOT NULL CHECK (value >= 0),
    unit         text NOT NULL CHECK (unit IN ('kWh', 'm3')),
    sharp        numeric(14, 3),
    peak         numeric(14, 3),
    flat         numeric(14, 3),
    valley       numeric(14, 3),
    source       text NOT NULL DEFAULT '',
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (meter_id, ts)
);
SELECT create_hypertable('readings', 'ts', chunk_time_interval => interval '7 days');

-- Input that could not be parsed or was refused before validation, kept with its raw
-- bytes. `id` and `at` are deterministic (topic:partition:offset and the message timestamp
-- for Kafka input) so a redelivery lands once.
CREATE TABLE dead_letters (
    id           text NOT NULL,
    at           timestamptz NOT NULL,
    stage        text NOT NULL,
    reason       text NOT NULL,
    source       text NOT NULL DEFAULT '',
    key          bytea,
    raw          bytea NOT NULL,
    PRIMARY KEY (id, at)
);
SELECT create_hypertable('dead_letters', 'at', chunk_time_interval => interval '30 days');
