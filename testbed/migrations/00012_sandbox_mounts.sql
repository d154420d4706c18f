-- +goose Up
-- A sandbox launched from a model's or dataset's "Try in a sandbox" with its artifacts: the listing whose
-- published files it sees read-only at /artifacts/<listing>, and the files as they were at launch (JSON).
ALTER TABLE testbed_sandboxes ADD COLUMN mount_listing_id TEXT NOT NULL DEFAULT '';
ALTER TABLE testbed_sandboxes ADD COLUMN mounts TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE testbed_sandboxes DROP COLUMN mounts;
ALTER TABLE testbed_sandboxes DROP COLUMN mount_listing_id;
