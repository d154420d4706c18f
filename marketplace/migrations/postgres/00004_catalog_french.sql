-- +goose Up
-- Listings may carry a French title and summary beside the English ones (version content: title_fr,
-- summary_fr). The catalogue keeps them in their own columns; the search vector adds them with the French
-- configuration and the same weights as the English ones. A generated column cannot be altered, so it is
-- dropped and added again (Postgres recomputes it for every row).
ALTER TABLE market_catalog ADD COLUMN title_fr TEXT NOT NULL DEFAULT '';
ALTER TABLE market_catalog ADD COLUMN summary_fr TEXT NOT NULL DEFAULT '';
DROP INDEX market_catalog_search;
ALTER TABLE market_catalog DROP COLUMN search;
ALTER TABLE market_catalog ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', title), 'A') ||
    setweight(to_tsvector('english', summary), 'B') ||
    setweight(to_tsvector('english', body), 'C') ||
    setweight(to_tsvector('french', title_fr), 'A') ||
    setweight(to_tsvector('french', summary_fr), 'B')
) STORED;
CREATE INDEX market_catalog_search ON market_catalog USING GIN (search);
