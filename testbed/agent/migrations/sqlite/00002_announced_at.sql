-- +goose Up
-- When a start or end was announced is a TIMESTAMP, as the platform's times are (it was BIGINT Unix
-- milliseconds). The agent's database is SQLite only, which cannot change a column's type: the table is
-- rebuilt, the instant written in the driver's own text form of a UTC time.Time (see the testbed's
-- 00013_times).
CREATE TABLE agent_announced_new (
    id TEXT PRIMARY KEY,        -- <sandbox>-<state>
    at TIMESTAMP NOT NULL
);
INSERT INTO agent_announced_new (id, at)
SELECT
    id,
    strftime('%Y-%m-%d %H:%M:%S', at_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', at_ms % 1000), '.0') || '+00:00'
FROM agent_announced;
DROP TABLE agent_announced;
ALTER TABLE agent_announced_new RENAME TO agent_announced;

-- +goose Down
CREATE TABLE agent_announced_old (
    id TEXT PRIMARY KEY,        -- <sandbox>-<state>
    at_ms BIGINT NOT NULL
);
INSERT INTO agent_announced_old (id, at_ms)
SELECT
    id,
    CAST(strftime('%s', at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', at), 4) AS INTEGER)
FROM agent_announced;
DROP TABLE agent_announced;
ALTER TABLE agent_announced_old RENAME TO agent_announced;
