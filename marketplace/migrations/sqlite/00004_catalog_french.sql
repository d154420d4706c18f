-- +goose Up
-- Listings may carry a French title and summary beside the English ones (version content: title_fr,
-- summary_fr). The catalogue keeps them in their own columns and searches them with the same weights as the
-- English ones. FTS5 tables cannot gain columns, so the index is rebuilt with them.
DROP TRIGGER market_catalog_ai;
DROP TRIGGER market_catalog_ad;
DROP TRIGGER market_catalog_au;
DROP TABLE market_catalog_fts;
ALTER TABLE market_catalog ADD COLUMN title_fr TEXT NOT NULL DEFAULT '';
ALTER TABLE market_catalog ADD COLUMN summary_fr TEXT NOT NULL DEFAULT '';

CREATE VIRTUAL TABLE market_catalog_fts USING fts5(
    title, summary, body, filters, title_fr, summary_fr,
    content='market_catalog', content_rowid='doc_id', tokenize='porter unicode61'
);
INSERT INTO market_catalog_fts (market_catalog_fts) VALUES ('rebuild');

-- +goose StatementBegin
CREATE TRIGGER market_catalog_ai AFTER INSERT ON market_catalog BEGIN
    INSERT INTO market_catalog_fts (rowid, title, summary, body, filters, title_fr, summary_fr)
    VALUES (new.doc_id, new.title, new.summary, new.body, new.filters, new.title_fr, new.summary_fr);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER market_catalog_ad AFTER DELETE ON market_catalog BEGIN
    INSERT INTO market_catalog_fts (market_catalog_fts, rowid, title, summary, body, filters, title_fr, summary_fr)
    VALUES ('delete', old.doc_id, old.title, old.summary, old.body, old.filters, old.title_fr, old.summary_fr);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER market_catalog_au AFTER UPDATE ON market_catalog BEGIN
    INSERT INTO market_catalog_fts (market_catalog_fts, rowid, title, summary, body, filters, title_fr, summary_fr)
    VALUES ('delete', old.doc_id, old.title, old.summary, old.body, old.filters, old.title_fr, old.summary_fr);
    INSERT INTO market_catalog_fts (rowid, title, summary, body, filters, title_fr, summary_fr)
    VALUES (new.doc_id, new.title, new.summary, new.body, new.filters, new.title_fr, new.summary_fr);
END;
-- +goose StatementEnd
