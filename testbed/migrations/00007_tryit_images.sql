-- +goose Up
-- Projection of the "try it" images of published model and dataset listings (marketplace events). A row
-- whose image is '' records a newer version that withdrew it, so that an older event delivered late does not
-- bring it back. command is a JSON array (empty: the image's own), ports comma-separated.
CREATE TABLE testbed_image_listings (
    id TEXT PRIMARY KEY,
    vendor_org_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    image TEXT NOT NULL DEFAULT '',
    command TEXT NOT NULL DEFAULT '',
    ports TEXT NOT NULL DEFAULT '',
    visible_to TEXT NOT NULL DEFAULT '',
    gated BOOLEAN NOT NULL DEFAULT FALSE,
    version INTEGER NOT NULL,
    updated_ms BIGINT NOT NULL
);

-- A sandbox started from such an image: the listing it came from, and the command and ports the listing
-- gave it at launch (what it runs, whatever the listing says later).
ALTER TABLE testbed_sandboxes ADD COLUMN image_listing_id TEXT NOT NULL DEFAULT '';
ALTER TABLE testbed_sandboxes ADD COLUMN command TEXT NOT NULL DEFAULT '';
ALTER TABLE testbed_sandboxes ADD COLUMN ports TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE testbed_sandboxes DROP COLUMN ports;
ALTER TABLE testbed_sandboxes DROP COLUMN command;
ALTER TABLE testbed_sandboxes DROP COLUMN image_listing_id;
DROP TABLE testbed_image_listings;
