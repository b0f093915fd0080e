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
    -- Added for the notifier (connectors/notify/): created_at is the announced event's own
    -- time, so a redelivered event maps onto the same key; `ordinal` keeps intake order.
    ordinal         bigserial,
    rule_id         text NOT NULL DEFAULT '',
    timezone        text NOT NULL DEFAULT 'Asia/Shanghai',
    quiet_hours     text CHECK (quiet_hours ~ '^[0-2][0-9]:[0-5][0-9]-[0-2][0-9]:[0-5][0-9]$'),
    message         jsonb NOT NULL DEFAULT '{}'::jsonb,   -- subject, text, variables, event
    payload         jsonb,                                -- the channel's request content
    meta_alarm      jsonb,                                -- notification_failed alarm to publish
    meta_alarm_published_at timestamptz,
    PRIMARY KEY (notification_id, created_at)
);
SELECT create_hypertable('notifications', 'created_at', chunk_time_interval => interval '30 days');
CREATE INDEX notifications_due_idx ON notifications (next_attempt_at) WHERE status IN ('pending', 'held');
CREATE INDEX notifications_account_idx ON notifications (account_id, created_at DESC);
CREATE INDEX notifications_recipient_idx ON notifications (channel, recipient, delivered_at)
    WHERE status = 'delivered';
CREATE INDEX notifications_meta_alarm_idx ON notifications (ordinal)
    WHERE meta_alarm IS NOT NULL AND meta_alarm_published_at IS NULL;

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

-- Who hears what: per site or per account, which events (and which low-balance levels) go
-- to which recipient over which channel, in which language, outside which quiet hours.
-- `recipient` is 'customer' (the account's customer: phone, e-mail or WeChat openid by
-- channel) or an address: a phone number, an e-mail address, an openid, or the name of a
-- webhook endpoint of the notifier's configuration file (URLs and secrets live there).
CREATE TABLE notification_rules (
    rule_id     text PRIMARY KEY CHECK (rule_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    scope       text NOT NULL CHECK (scope IN ('site', 'account')),
    scope_id    text NOT NULL CHECK (scope_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    events      text[] NOT NULL CHECK (cardinality(events) > 0),
    levels      smallint[] NOT NULL DEFAULT ARRAY[1, 2, 3]::smallint[]
        CHECK (cardinality(levels) > 0 AND levels <@ ARRAY[1, 2, 3]::smallint[]),
    channel     text NOT NULL CHECK (channel IN ('sms', 'voice', 'email', 'wechat', 'webhook')),
    recipient   text NOT NULL CHECK (length(recipient) BETWEEN 1 AND 254),
    language    text CHECK (language IN ('zh', 'en')),  -- NULL: the customer's, else zh
    timezone    text CHECK (length(timezone) <= 64),    -- NULL: the site's
    quiet_hours text CHECK (quiet_hours ~ '^[0-2][0-9]:[0-5][0-9]-[0-2][0-9]:[0-5][0-9]$'),
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_rules_scope_idx ON notification_rules (scope, scope_id);
