-- +goose Up
-- The name a rater chose to show with a review. Who rated (org_id, user_id) is for the rater's organisation and
-- staff only; reviews written before the name existed show the default.
ALTER TABLE market_ratings ADD COLUMN display_name TEXT NOT NULL DEFAULT 'Verified buyer';

-- +goose Down
ALTER TABLE market_ratings DROP COLUMN display_name;
