-- +goose Up
-- Gated compute listings need an entitlement (from the marketplace's entitlement events) to launch or reserve.
ALTER TABLE testbed_listings ADD COLUMN gated BOOLEAN NOT NULL DEFAULT FALSE;

-- The projection of marketplace entitlements: one row per (organisation, listing), the newest event wins.
CREATE TABLE testbed_entitlements (
    org_id TEXT NOT NULL,
    listing_id TEXT NOT NULL,
    entitlement_id TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    expires_ms BIGINT NOT NULL DEFAULT 0,
    at_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (org_id, listing_id)
);

-- +goose Down
DROP TABLE testbed_entitlements;
ALTER TABLE testbed_listings DROP COLUMN gated;
