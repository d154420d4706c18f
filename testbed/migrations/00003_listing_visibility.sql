-- +goose Up
-- Organisations that may see and launch a restricted compute listing (comma-separated IDs; empty = public).
ALTER TABLE testbed_listings ADD COLUMN visible_to TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE testbed_listings DROP COLUMN visible_to;
