-- +goose Up
-- The published catalogue, one row per visible listing, searched through a generated tsvector with a GIN index.
CREATE TABLE market_catalog (
    doc_id BIGSERIAL PRIMARY KEY,
    listing_id TEXT NOT NULL UNIQUE,
    version_id TEXT NOT NULL,
    vendor_org_id TEXT NOT NULL,
    vendor_name TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL,
    slug TEXT NOT NULL,
    title TEXT NOT NULL,
    summary TEXT NOT NULL,
    body TEXT NOT NULL,
    tags TEXT NOT NULL,
    license TEXT NOT NULL,
    gpu_model TEXT NOT NULL DEFAULT '',
    residency TEXT NOT NULL DEFAULT '',
    canadian_ip BOOLEAN NOT NULL DEFAULT FALSE,
    gated BOOLEAN NOT NULL DEFAULT FALSE,
    visibility TEXT NOT NULL,
    price_min_micro BIGINT NOT NULL,
    published_at BIGINT NOT NULL,
    filters TEXT NOT NULL DEFAULT '', -- used by SQLite's FTS5 only; kept so both engines share one INSERT
    search tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', title), 'A') ||
        setweight(to_tsvector('english', summary), 'B') ||
        setweight(to_tsvector('english', body), 'C')
    ) STORED
);
CREATE INDEX market_catalog_search ON market_catalog USING GIN (search);
CREATE INDEX market_catalog_kind ON market_catalog (kind, published_at);
CREATE INDEX market_catalog_license ON market_catalog (license);
CREATE INDEX market_catalog_gpu ON market_catalog (gpu_model);
CREATE INDEX market_catalog_residency ON market_catalog (residency);
CREATE INDEX market_catalog_vendor ON market_catalog (vendor_org_id);
CREATE INDEX market_catalog_published ON market_catalog (published_at, listing_id);
CREATE INDEX market_catalog_price ON market_catalog (price_min_micro, listing_id);
