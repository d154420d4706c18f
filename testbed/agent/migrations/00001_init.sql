-- +goose Up
-- The agent's own database (SQLite in its data directory): its outbox of sandbox events, relayed to the
-- platform's JetStream when it is reachable, and what it has announced already, so that a restarted agent
-- does not announce a start or an end twice (the platform would ignore it, but need not be asked).
CREATE TABLE agent_outbox (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX agent_outbox_created ON agent_outbox (created_at);

CREATE TABLE agent_announced (
    id TEXT PRIMARY KEY,        -- <sandbox>-<state>
    at_ms BIGINT NOT NULL
);

-- +goose Down
DROP TABLE agent_announced;
DROP TABLE agent_outbox;
