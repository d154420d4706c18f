-- +goose Up
CREATE TABLE billing_outbox (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX billing_outbox_created ON billing_outbox (created_at);

-- Ledger: accounts carry balance = credits - debits (posted) and the sums of unresolved pending transfers.
CREATE TABLE billing_accounts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    org_id TEXT NOT NULL DEFAULT '',
    no_overdraft BOOLEAN NOT NULL DEFAULT FALSE,
    balance BIGINT NOT NULL DEFAULT 0,
    pending_debits BIGINT NOT NULL DEFAULT 0,
    pending_credits BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX billing_accounts_org ON billing_accounts (org_id, kind);

-- Transfers are never updated. phase: posted, pending, post_pending (resolves pending_id with amount),
-- void_pending (resolves pending_id). pending_id is unique: a pending transfer resolves exactly once.
CREATE TABLE billing_transfers (
    id TEXT PRIMARY KEY,
    phase TEXT NOT NULL,
    pending_id TEXT UNIQUE,
    debit_account TEXT NOT NULL,
    credit_account TEXT NOT NULL,
    amount BIGINT NOT NULL,
    kind TEXT NOT NULL,
    ref TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX billing_transfers_debit ON billing_transfers (debit_account, created_at);
CREATE INDEX billing_transfers_credit ON billing_transfers (credit_account, created_at);
CREATE INDEX billing_transfers_ref ON billing_transfers (ref);

-- Projections of other services' events.
CREATE TABLE billing_orgs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL DEFAULT '',
    verified BOOLEAN NOT NULL DEFAULT FALSE,
    held BIGINT NOT NULL DEFAULT 0,
    budget_micro BIGINT NOT NULL DEFAULT 0,
    budget_notified TEXT NOT NULL DEFAULT '',
    stripe_account TEXT NOT NULL DEFAULT '',
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE billing_admins (
    org_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE TABLE billing_prices (
    listing_id TEXT PRIMARY KEY,
    vendor_org_id TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    pool_id TEXT NOT NULL,
    gpu_model TEXT NOT NULL,
    region TEXT NOT NULL DEFAULT '',
    price_per_gpu_hour BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Grants: each has its own ledger account grant:<id>.
CREATE TABLE billing_grants (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    amount BIGINT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    cofund_percent INTEGER NOT NULL DEFAULT 0,
    cap BIGINT NOT NULL DEFAULT 0,
    cofunded BIGINT NOT NULL DEFAULT 0,
    note TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT '',
    expired BOOLEAN NOT NULL DEFAULT FALSE,
    notified_pct INTEGER NOT NULL DEFAULT 0,
    cofund_notified_pct INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX billing_grants_org ON billing_grants (org_id, expires_at);

-- Holds: one per sandbox, with the locked price and the cumulative metered time (cumulative rounding).
CREATE TABLE billing_holds (
    sandbox_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    listing_id TEXT NOT NULL DEFAULT '',
    vendor_org_id TEXT NOT NULL DEFAULT '',
    pool_id TEXT NOT NULL DEFAULT '',
    gpu_model TEXT NOT NULL DEFAULT '',
    gpu_count INTEGER NOT NULL,
    price BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    charged BIGINT NOT NULL DEFAULT 0,
    cum_ms BIGINT NOT NULL DEFAULT 0,
    samples BIGINT NOT NULL DEFAULT 0,
    max_seq BIGINT NOT NULL DEFAULT 0,
    last_seq BIGINT NOT NULL DEFAULT 0,
    stopped BOOLEAN NOT NULL DEFAULT FALSE,
    released BOOLEAN NOT NULL DEFAULT FALSE,
    exhausted BOOLEAN NOT NULL DEFAULT FALSE,
    shortfall BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX billing_holds_org ON billing_holds (org_id, released);

-- One row per charged usage event: its ID is the exactly-once key, written in the charge's transaction.
CREATE TABLE billing_usage (
    event_id TEXT PRIMARY KEY,
    sandbox_id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    vendor_org_id TEXT NOT NULL,
    gpu_model TEXT NOT NULL,
    seq BIGINT NOT NULL,
    millis BIGINT NOT NULL,
    charge BIGINT NOT NULL,
    cofunded BIGINT NOT NULL,
    shortfall BIGINT NOT NULL,
    batch_id TEXT NOT NULL,
    day TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX billing_usage_org ON billing_usage (org_id, day);

-- Processed event IDs of the other consumers (orders, sandbox ends, projections).
CREATE TABLE billing_events (
    id TEXT PRIMARY KEY,
    created_at TIMESTAMP NOT NULL
);

-- Purchases: Stripe Checkout or offline payments; credited once by the transfer purchase:<id>.
CREATE TABLE billing_purchases (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    credits BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    cad_cents BIGINT NOT NULL,
    method TEXT NOT NULL,
    status TEXT NOT NULL,
    session_id TEXT NOT NULL DEFAULT '',
    payment_intent TEXT NOT NULL DEFAULT '',
    reference TEXT NOT NULL DEFAULT '',
    refunded BIGINT NOT NULL DEFAULT 0,
    refund_unrecovered BIGINT NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX billing_purchases_org ON billing_purchases (org_id);
CREATE INDEX billing_purchases_pi ON billing_purchases (payment_intent);

CREATE TABLE billing_audit (
    id TEXT PRIMARY KEY,
    actor_user_id TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL
);
