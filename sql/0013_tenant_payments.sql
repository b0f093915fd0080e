-- Tenant self-service and online payment (docs/tenant.md, docs/contracts.md#tenant-payments).
-- A tenant reaches their account's page by an access link (a random token kept only as its
-- sha256); they pay through a gateway order stored before the payment starts; a verified
-- notification or query answer becomes one payment (services/payments/store.py) whose
-- idempotency key is the order number. Works on the Apache-2 edition of TimescaleDB.

-- Access links: one account each; the token itself is never stored.
CREATE TABLE tenant_links (
    link_id     text PRIMARY KEY CHECK (link_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    token_hash  text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    account_id  text NOT NULL REFERENCES accounts (account_id),
    label       text NOT NULL DEFAULT '' CHECK (length(label) <= 200),
    created_by  text NOT NULL DEFAULT '' CHECK (length(created_by) <= 64),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    revoked_by  text NOT NULL DEFAULT '' CHECK (length(revoked_by) <= 64),
    CHECK (expires_at > created_at)
);
CREATE INDEX tenant_links_account_idx ON tenant_links (account_id);

-- WeChat identities bound by OAuth sign-in through a link: the openid belongs to the
-- account's customer (customers.wechat_openid is set too when the account has a customer).
CREATE TABLE tenant_openids (
    appid       text NOT NULL CHECK (length(appid) BETWEEN 1 AND 64),
    openid      text NOT NULL CHECK (length(openid) BETWEEN 1 AND 128),
    account_id  text NOT NULL REFERENCES accounts (account_id),
    link_id     text NOT NULL REFERENCES tenant_links (link_id),
    bound_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (appid, openid, account_id)
);

-- Gateway orders, written before the tenant is sent to pay. state: created (waiting),
-- paid (applied as payment `payment_id`), closed (never paid, closed at the gateway).
-- query_at: when the settle service next asks the gateway about an order still created.
CREATE TABLE payment_orders (
    order_no        text PRIMARY KEY CHECK (order_no ~ '^[A-Za-z0-9]{6,32}$'),
    gateway         text NOT NULL CHECK (gateway IN ('wechat', 'alipay')),
    channel         text NOT NULL CHECK (channel IN ('jsapi', 'h5', 'wap')),
    account_id      text NOT NULL REFERENCES accounts (account_id),
    amount_fen      bigint NOT NULL CHECK (amount_fen > 0 AND amount_fen < 100000000),
    merchant_id     text NOT NULL CHECK (length(merchant_id) BETWEEN 1 AND 64),
    app_id          text NOT NULL CHECK (length(app_id) BETWEEN 1 AND 64),
    link_id         text REFERENCES tenant_links (link_id),
    payer_openid    text NOT NULL DEFAULT '',
    state           text NOT NULL DEFAULT 'created'
                    CHECK (state IN ('created', 'paid', 'closed')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    query_at        timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    queries         integer NOT NULL DEFAULT 0,
    gateway_trade_no text NOT NULL DEFAULT '',
    paid_at         timestamptz,
    settled_by      text NOT NULL DEFAULT '' CHECK (settled_by IN ('', 'notification', 'query')),
    payment_id      text REFERENCES payments (payment_id),
    CHECK ((state = 'paid') = (payment_id IS NOT NULL))
);
CREATE INDEX payment_orders_account_idx ON payment_orders (account_id, created_at DESC);
CREATE INDEX payment_orders_due_idx ON payment_orders (query_at) WHERE state = 'created';

-- Refunds sent back through the gateway. state: requested (stored, not yet accepted),
-- processing (accepted by the gateway), succeeded (the money left: applied as refund
-- payment `payment_id`), failed (the gateway refused; nothing applied).
CREATE TABLE payment_refunds (
    refund_no       text PRIMARY KEY CHECK (refund_no ~ '^[A-Za-z0-9]{6,64}$'),
    order_no        text NOT NULL REFERENCES payment_orders (order_no),
    amount_fen      bigint NOT NULL CHECK (amount_fen > 0),
    reason          text NOT NULL DEFAULT '' CHECK (length(reason) <= 80),
    requested_by    text NOT NULL DEFAULT '' CHECK (length(requested_by) <= 64),
    state           text NOT NULL DEFAULT 'requested'
                    CHECK (state IN ('requested', 'processing', 'succeeded', 'failed')),
    detail          text NOT NULL DEFAULT '',
    gateway_refund_no text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    query_at        timestamptz NOT NULL DEFAULT now(),
    settled_at      timestamptz,
    payment_id      text REFERENCES payments (payment_id),
    CHECK ((state = 'succeeded') = (payment_id IS NOT NULL))
);
CREATE INDEX payment_refunds_order_idx ON payment_refunds (order_no);
CREATE INDEX payment_refunds_due_idx ON payment_refunds (query_at)
    WHERE state IN ('requested', 'processing');

-- Every notification a gateway sent, with its raw bytes: applied, replayed (a repeat of
-- one applied before) or refused with the reason (bad signature, old timestamp, a field
-- that differs from the stored order). Audit only; nothing reads it to decide.
CREATE TABLE gateway_notifications (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    gateway     text NOT NULL CHECK (gateway IN ('wechat', 'alipay')),
    order_no    text NOT NULL DEFAULT '',
    outcome     text NOT NULL CHECK (outcome IN ('applied', 'replayed', 'refused', 'ignored')),
    reason      text NOT NULL DEFAULT '',
    headers     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(headers) = 'object'),
    raw         bytea NOT NULL
);
CREATE INDEX gateway_notifications_order_idx ON gateway_notifications (order_no, at);

-- The daily reconciliation against each gateway's trade bill: one row per run, and one
-- per difference found (paid at the gateway but not applied, applied but not paid, amounts
-- that differ). A difference also raises a `payment_mismatch` alarm.
CREATE TABLE gateway_bill_checks (
    gateway     text NOT NULL CHECK (gateway IN ('wechat', 'alipay')),
    bill_date   date NOT NULL,
    checked_at  timestamptz NOT NULL DEFAULT now(),
    bill_rows   integer NOT NULL,
    differences integer NOT NULL,
    PRIMARY KEY (gateway, bill_date, checked_at)
);
CREATE TABLE gateway_bill_differences (
    gateway     text NOT NULL,
    bill_date   date NOT NULL,
    checked_at  timestamptz NOT NULL,
    order_no    text NOT NULL,
    finding     text NOT NULL CHECK (finding IN ('paid_not_applied', 'applied_not_paid',
                                                 'amount_differs', 'refund_not_applied',
                                                 'refund_applied_not_paid')),
    detail      text NOT NULL DEFAULT '',
    PRIMARY KEY (gateway, bill_date, checked_at, order_no, finding),
    FOREIGN KEY (gateway, bill_date, checked_at)
        REFERENCES gateway_bill_checks (gateway, bill_date, checked_at)
);
