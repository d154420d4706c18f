-- +goose Up
-- What a sandbox runs: its template's image (a built-in name or a pinned reference), the digest of the image
-- that was really unpacked and started, and the progress of getting there (JSON: phase, bytes) while it is
-- provisioning.
ALTER TABLE testbed_sandboxes ADD COLUMN image TEXT NOT NULL DEFAULT '';
ALTER TABLE testbed_sandboxes ADD COLUMN image_digest TEXT NOT NULL DEFAULT '';
ALTER TABLE testbed_sandboxes ADD COLUMN progress TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE testbed_sandboxes DROP COLUMN progress;
ALTER TABLE testbed_sandboxes DROP COLUMN image_digest;
ALTER TABLE testbed_sandboxes DROP COLUMN image;
