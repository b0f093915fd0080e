-- Property billing: custom charge items, common-area apportionment, postpaid bills and
-- arrears (docs/tariffs.md, docs/contracts.md "Property billing").
--
-- Money taken from an account for a charge item or an apportionment share is recorded
-- here first (`deductions`, with its outbox row to meterflow.payments, in one
-- transaction) and reaches the wallet through the same exactly-once path as a top-up; the
-- ledger entry's kind is the deduction's kind and its ref the idempotency key. The
-- database keeps each (kind, item or group, account, period) once.

CREATE TABLE charge_items (
    item_id     text PRIMARY KEY CHECK (item_id ~ '^[A-Za-z0-9._-]{1,48}$'),
    site_id     text NOT NULL REFERENCES sites (site_id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    basis       text NOT NULL CHECK (basis IN ('fixed', 'area')),
    -- yuan per period (fixed) or per m2 per period (area); rounded once to the fen
    amount_yuan numeric(14, 4) NOT NULL CHECK (amount_yuan >= 0),
    frequency   text NOT NULL CHECK (frequency IN ('once', 'monthly', 'quarterly', 'yearly')),
    day         smallint NOT NULL DEFAULT 1 CHECK (day BETWEEN 1 AND 28),
    month       smallint NOT NULL DEFAULT 1 CHECK (month BETWEEN 1 AND 12),
    start_date  date NOT NULL,
    end_date    date CHECK (end_date IS NULL OR end_date >= start_date),
    may_cut     boolean NOT NULL DEFAULT false,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Who pays an item: accounts directly, or every account in a room, floor, building or site.
CREATE TABLE charge_item_targets (
    item_id     text NOT NULL REFERENCES charge_items (item_id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('account', 'room', 'floor', 'building', 'site')),
    target_id   text NOT NULL CHECK (target_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    PRIMARY KEY (item_id, kind, target_id)
);

-- The accounts an item charges now, with the area of their room.
CREATE VIEW charge_item_accounts AS
SELECT DISTINCT t.item_id, a.account_id, r.area_m2, a.billing_mode
FROM charge_item_targets t
JOIN accounts a ON true
LEFT JOIN rooms r ON r.room_id = a.room_id
LEFT JOIN floors f ON f.floor_id = r.floor_id
LEFT JOIN buildings b ON b.building_id = f.building_id
WHERE (t.kind = 'account' AND a.account_id = t.target_id)
   OR (t.kind = 'room' AND r.room_id = t.target_id)
   OR (t.kind = 'floor' AND f.floor_id = t.target_id)
   OR (t.kind = 'building' AND b.building_id = t.target_id)
   OR (t.kind = 'site' AND b.site_id = t.target_id);

-- Common areas: a master meter whose rated consumption is split over sub-accounts.
CREATE TABLE apportion_groups (
    group_id        text PRIMARY KEY CHECK (group_id ~ '^[A-Za-z0-9._-]{1,48}$'),
    site_id         text NOT NULL REFERENCES sites (site_id),
    name            text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    master_meter_id text NOT NULL REFERENCES meters (meter_id),
    method          text NOT NULL CHECK (method IN ('ratio', 'area', 'usage', 'equal')),
    minus_submeters boolean NOT NULL DEFAULT false,
    include_vacant  boolean NOT NULL DEFAULT false,
    may_cut         boolean NOT NULL DEFAULT false,
    day             smallint NOT NULL DEFAULT 1 CHECK (day BETWEEN 1 AND 28),
    start_date      date NOT NULL,
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE apportion_members (
    group_id    text NOT NULL REFERENCES apportion_groups (group_id) ON DELETE CASCADE,
    account_id  text NOT NULL REFERENCES accounts (account_id),
    ratio       numeric(12, 6) NOT NULL DEFAULT 1 CHECK (ratio >= 0),
    vacant      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (group_id, account_id)
);

-- One split per group and period, with everything a tenant needs to check it.
CREATE TABLE apportion_runs (
    group_id       text NOT NULL REFERENCES apportion_groups (group_id),
    period         text NOT NULL,
    period_start   date NOT NULL,
    period_end     date NOT NULL CHECK (period_end > period_start),
    method         text NOT NULL,
    minus_submeters boolean NOT NULL,
    master_units   numeric(20, 6) NOT NULL,
    sub_units      numeric(20, 6) NOT NULL,
    common_units   numeric(20, 6) NOT NULL,
    master_yuan    numeric(24, 10) NOT NULL,
    common_yuan    text NOT NULL,
    total_fen      bigint NOT NULL CHECK (total_fen >= 0),
    weight_sum     numeric(24, 6) NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, period)
);

CREATE TABLE apportion_shares (
    group_id    text NOT NULL,
    period      text NOT NULL,
    account_id  text NOT NULL REFERENCES accounts (account_id),
    weight      numeric(24, 6) NOT NULL,
    quota       text NOT NULL,
    amount_fen  bigint NOT NULL CHECK (amount_fen >= 0),
    arithmetic  text NOT NULL,
    PRIMARY KEY (group_id, period, account_id),
    FOREIGN KEY (group_id, period) REFERENCES apportion_runs (group_id, period)
);

-- Deductions recorded before they reach the wallet (idempotency_key = the ledger's ref).
CREATE TABLE deductions (
    deduction_id    text PRIMARY KEY,
    idempotency_key text NOT NULL UNIQUE CHECK (idempotency_key ~ '^[A-Za-z0-9._:-]{1,128}$'),
    kind            text NOT NULL CHECK (kind IN ('charge_item', 'apportionment')),
    source_id       text NOT NULL,
    account_id      text NOT NULL REFERENCES accounts (account_id),
    period          text NOT NULL,
    period_start    date NOT NULL,
    period_end      date NOT NULL,
    amount_fen      bigint NOT NULL CHECK (amount_fen > 0),
    may_cut         boolean NOT NULL,
    detail          text NOT NULL DEFAULT '' CHECK (length(detail) <= 500),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, source_id, account_id, period)
);
CREATE INDEX deductions_account_idx ON deductions (account_id, created_at);

-- Postpaid bills: a draft per account and period, moved along by finance staff.
CREATE TABLE bills (
    bill_id       text PRIMARY KEY CHECK (bill_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
    account_id    text NOT NULL REFERENCES accounts (account_id),
    period_start  date NOT NULL,
    period_end    date NOT NULL CHECK (period_end > period_start),
    zone          text NOT NULL,
    due_date      date NOT NULL,
    state         text NOT NULL DEFAULT 'draft' CHECK (state IN (
                      'draft', 'confirmed', 'issued', 'partly_paid', 'paid', 'overdue', 'void')),
    opening_fen   bigint NOT NULL,
    charges_fen   bigint NOT NULL,
    payments_fen  bigint NOT NULL,
    closing_fen   bigint NOT NULL,
    paid_fen      bigint NOT NULL DEFAULT 0,
    void_reason   text NOT NULL DEFAULT '' CHECK (length(void_reason) <= 500),
    run_id        text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (closing_fen = opening_fen + payments_fen - charges_fen),
    CHECK (state <> 'void' OR void_reason <> '')
);
-- One live bill per account and period: a run started again adds nothing.
CREATE UNIQUE INDEX bills_once_idx ON bills (account_id, period_start, period_end)
    WHERE state <> 'void';

CREATE TABLE bill_lines (
    bill_id     text NOT NULL REFERENCES bills (bill_id),
    line        smallint NOT NULL CHECK (line >= 0),
    kind        text NOT NULL CHECK (kind IN ('electricity', 'water', 'charge_item',
                                              'apportionment', 'adjustment')),
    label       text NOT NULL,
    band        text,
    step        smallint,
    units       numeric(20, 6),
    amount_fen  bigint NOT NULL,
    ref         text NOT NULL DEFAULT '',
    PRIMARY KEY (bill_id, line)
);

-- Notices announced for a bill (issued, overdue): each once.
CREATE TABLE bill_notices (
    bill_id     text NOT NULL REFERENCES bills (bill_id),
    kind        text NOT NULL CHECK (kind IN ('bill_issued', 'bill_overdue')),
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bill_id, kind)
);

-- What each open bill still asks for (arrears), oldest first.
CREATE VIEW bill_arrears AS
SELECT b.bill_id, b.account_id, a.name AS account_name, b.period_start, b.period_end,
       b.due_date, b.state, b.charges_fen, b.paid_fen,
       b.charges_fen - b.paid_fen AS outstanding_fen,
       p.site_id, p.building_id
FROM bills b
JOIN accounts a ON a.account_id = b.account_id
LEFT JOIN account_places p ON p.account_id = b.account_id
WHERE b.state IN ('issued', 'partly_paid', 'overdue') AND b.charges_fen > b.paid_fen;

-- Income per account and kind over [t0, t1): electricity and water charges (by the meter's
-- commodity), each charge item by name, apportionment, and money received (top-ups,
-- refunds, adjustments, signed as in the ledger); charges as positive fen.
CREATE FUNCTION income_by_kind(t0 timestamptz, t1 timestamptz)
RETURNS TABLE (account_id text, kind text, label text, amount_fen bigint, entries bigint)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT l.account_id,
           CASE WHEN l.kind = 'charge' THEN COALESCE(m.commodity, 'electricity')
                ELSE l.kind END,
           CASE WHEN l.kind = 'charge' THEN COALESCE(m.commodity, 'electricity')
                WHEN l.kind = 'charge_item' THEN COALESCE(ci.name, d.source_id, l.kind)
                WHEN l.kind = 'apportionment' THEN 'apportionment'
                ELSE l.kind END,
           (CASE WHEN l.kind IN ('charge', 'charge_item', 'apportionment')
                 THEN -sum(l.amount_fen) ELSE sum(l.amount_fen) END)::bigint,
           count(*)
    FROM ledger l
    LEFT JOIN meters m ON l.kind = 'charge' AND m.meter_id = l.meter_id
    LEFT JOIN deductions d ON d.idempotency_key = l.ref AND l.kind IN ('charge_item',
                                                                       'apportionment')
    LEFT JOIN charge_items ci ON d.kind = 'charge_item' AND ci.item_id = d.source_id
    WHERE l.at >= t0 AND l.at < t1
    GROUP BY l.account_id, l.kind, m.commodity, ci.name, d.source_id
$$;

ALTER TABLE batches DROP CONSTRAINT batches_operation_check;
ALTER TABLE batches ADD CONSTRAINT batches_operation_check CHECK (operation IN (
    'topup', 'set_tariff', 'disconnect', 'reconnect', 'set_thresholds', 'charge_item'));
