-- +goose Up
-- The published catalogue, one row per visible listing, indexed by an FTS5 external-content table.
CREATE TABLE market_catalog (
    doc_id INTEGER PRIMARY KEY,
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
    filters TEXT NOT NULL DEFAULT ''
);
CREATE INDEX market_catalog_kind ON market_catalog (kind, published_at);
CREATE INDEX market_catalog_license ON market_catalog (license);
CREATE INDEX market_catalog_gpu ON market_catalog (gpu_model);
CREATE INDEX market_catalog_residency ON market_catalog (residency);
CREATE INDEX market_catalog_vendor ON market_catalog (vendor_org_id);
CREATE INDEX market_catalog_published ON market_catalog (published_at, listing_id);
CREATE INDEX market_catalog_price ON market_catalog (price_min_micro, listing_id);

-- filters holds one token per filter value (kind, licence, residency, GPU model) so that a text query with
-- filters intersects posting lists inside FTS5 instead of joining every text match to test its columns.
CREATE VIRTUAL TABLE market_catalog_fts USING fts5(
    title, summary, body, filters, content='market_catalog', content_rowid='doc_id', tokenize='porter unicode61'
);

-- +goose StatementBegin
CREATE TRIGGER market_catalog_ai AFTER INSERT ON market_catalog BEGIN
    INSERT INTO market_catalog_fts (rowid, title, summary, body, filters) VALUES (new.doc_id, new.title, new.summary, new.body, new.filters);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER market_catalog_ad AFTER DELETE ON market_catalog BEGIN
    INSERT INTO market_catalog_fts (market_catalog_fts, rowid, title, summary, body, filters) VALUES ('delete', old.doc_id, old.title, old.summary, old.body, old.filters);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER market_catalog_au AFTER UPDATE ON market_catalog BEGIN
    INSERT INTO market_catalog_fts (market_catalog_fts, rowid, title, summary, body, filters) VALUES ('delete', old.doc_id, old.title, old.summary, old.body, old.filters);
    INSERT INTO market_catalog_fts (rowid, title, summary, body, filters) VALUES (new.doc_id, new.title, new.summary, new.body, new.filters);
END;
-- +goose StatementEnd
