-- Notifications to people (the notifier, `meterflow notifier`): one row per message to one
-- recipient over one channel, and one row per delivery attempt. The notification id is
-- deterministic (source event, recipient, channel), so a redelivered alarm adds nothing.

CREATE TABLE notifications (
    notification_id text NOT NULL,
    created_at      timestamptz NOT NULL,
    source_id       text NOT NULL,            -- the alarm_id or event_id it announces
    event_kind      text NOT NULL,            -- low_balance, disconnect, reconnect, offline, ...
    level           smallint,                 -- alarm level 1-3 for low_balance
    urgent          boolean NOT NULL DEFAULT false,
    account_id      text,
    meter_id        text,
    site_id         text,
    channel         text NOT NULL CHECK (channel IN ('sms', 'voice', 'email', 'wechat', 'webhook')),
    recipient       text NOT NULL,
    language        text NOT NULL DEFAULT 'zh' CHECK (language IN ('zh', 'en')),
    status          text NOT NULL CHECK (status IN ('pending', 'held', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    delivered_at    timestamptz,
    last_error      text NOT NULL DEFAULT '',
    PRIMARY KEY (notification_id, created_at)
);
SELECT create_hypertable('notifications', 'created_at', chunk_time_interval => interval '30 days');
CREATE INDEX notifications_due_idx ON notifications (next_attempt_at) WHERE status IN ('pending', 'held');
CREATE INDEX notifications_account_idx ON notifications (account_id, created_at DESC);

CREATE TABLE notification_attempts (
    notification_id text NOT NULL,
    attempt         integer NOT NULL CHECK (attempt >= 1),
    at              timestamptz NOT NULL,
    channel         text NOT NULL,
    outcome         text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed')),
    latency_ms      integer NOT NULL CHECK (latency_ms >= 0),
    detail          text NOT NULL DEFAULT '',
    PRIMARY KEY (notification_id, attempt, at)
);
SELECT create_hypertable('notification_attempts', 'at', chunk_time_interval => interval '30 days');
