-- +goose Up
CREATE TABLE market_outbox (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX market_outbox_created ON market_outbox (created_at);

-- Projections fed by other services' events.
CREATE TABLE market_orgs (
    org_id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL DEFAULT '',
    verified BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE market_pools (
    pool_id TEXT PRIMARY KEY,
    vendor_org_id TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    region TEXT NOT NULL DEFAULT '',
    gpu_models TEXT NOT NULL DEFAULT '',
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE market_processed (
    event_id TEXT PRIMARY KEY,
    consumer TEXT NOT NULL,
    processed_at TIMESTAMP NOT NULL
);
CREATE TABLE market_keys (
    name TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE market_listings (
    id TEXT PRIMARY KEY,
    vendor_org_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    slug TEXT NOT NULL,
    status TEXT NOT NULL,
    published_version_id TEXT NOT NULL DEFAULT '',
    latest_version INTEGER NOT NULL,
    status_reason TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX market_listings_slug ON market_listings (slug);
CREATE INDEX market_listings_vendor ON market_listings (vendor_org_id, created_at);

CREATE TABLE market_versions (
    id TEXT PRIMARY KEY,
    listing_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    state TEXT NOT NULL,
    content TEXT NOT NULL,
    card_html TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    submitted_at TIMESTAMP NULL,
    decided_at TIMESTAMP NULL,
    decided_by TEXT NOT NULL DEFAULT '',
    comment TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX market_versions_listing ON market_versions (listing_id, version);
CREATE INDEX market_versions_queue ON market_versions (state, submitted_at);

CREATE TABLE market_history (
    id TEXT PRIMARY KEY,
    listing_id TEXT NOT NULL,
    version_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    action TEXT NOT NULL,
    fields TEXT NOT NULL DEFAULT '',
    comment TEXT NOT NULL DEFAULT '',
    at TIMESTAMP NOT NULL
);
CREATE INDEX market_history_listing ON market_history (listing_id, at);

CREATE TABLE market_artifacts (
    id TEXT PRIMARY KEY,
    listing_id TEXT NOT NULL,
    version_id TEXT NOT NULL,
    name TEXT NOT NULL,
    blob_key TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    content_type TEXT NOT NULL,
    uploaded_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX market_artifacts_version_name ON market_artifacts (version_id, name);

CREATE TABLE market_orders (
    id TEXT PRIMARY KEY,
    buyer_org_id TEXT NOT NULL,
    buyer_user_id TEXT NOT NULL,
    vendor_org_id TEXT NOT NULL,
    listing_id TEXT NOT NULL,
    plan_id TEXT NOT NULL,
    plan_kind TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    amount_micro BIGINT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    transfer_id TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX market_orders_buyer ON market_orders (buyer_org_id, created_at);
CREATE INDEX market_orders_vendor ON market_orders (vendor_org_id, created_at);

CREATE TABLE market_entitlements (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    listing_id TEXT NOT NULL,
    source TEXT NOT NULL,
    source_id TEXT NOT NULL,
    plan_id TEXT NOT NULL DEFAULT '',
    expires_at TIMESTAMP NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX market_entitlements_org_listing ON market_entitlements (org_id, listing_id);

CREATE TABLE market_access_requests (
    id TEXT PRIMARY KEY,
    listing_id TEXT NOT NULL,
    vendor_org_id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    state TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    decided_by TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX market_access_requests_org ON market_access_requests (org_id, created_at);
CREATE INDEX market_access_requests_vendor ON market_access_requests (vendor_org_id, created_at);

CREATE TABLE market_ratings (
    id TEXT PRIMARY KEY,
    listing_id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    stars INTEGER NOT NULL,
    body TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX market_ratings_listing_org ON market_ratings (listing_id, org_id);

CREATE TABLE market_audit (
    id TEXT PRIMARY KEY,
    actor_user_id TEXT NOT NULL,
    actor_org_id TEXT NOT NULL,
    action TEXT NOT NULL,
    listing_id TEXT NOT NULL DEFAULT '',
    target_id TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    at TIMESTAMP NOT NULL
);
CREATE INDEX market_audit_at ON market_audit (at);

-- Catalogue side tables (the catalogue itself is per engine: full-text search differs).
CREATE TABLE market_catalog_tags (
    tag TEXT NOT NULL,
    listing_id TEXT NOT NULL,
    PRIMARY KEY (tag, listing_id)
);
CREATE INDEX market_catalog_tags_listing ON market_catalog_tags (listing_id);
CREATE TABLE market_catalog_orgs (
    org_id TEXT NOT NULL,
    listing_id TEXT NOT NULL,
    PRIMARY KEY (org_id, listing_id)
);
CREATE INDEX market_catalog_orgs_listing ON market_catalog_orgs (listing_id);
