-- +goose Up
-- Site agents (DESIGN.md §5): an agent is enrolled for one pool with a one-time token and runs the sandboxes
-- placed on the nodes it registers. A node with agent_id '' is the platform host's own, run by the agent that
-- tamarack serve embeds. A sandbox remembers its node's agent (the one to command), and since when that agent
-- has been unreachable (0: reachable): such a sandbox is not metered past its agent's last heartbeat.
CREATE TABLE testbed_agents (
    id TEXT PRIMARY KEY,
    pool_id TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL DEFAULT '',
    backend TEXT NOT NULL DEFAULT '',
    problem TEXT NOT NULL DEFAULT '',
    boot TEXT NOT NULL DEFAULT '',
    nats_user TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT '',
    created_ms BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL DEFAULT 0,
    revoked_ms BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX testbed_agents_pool ON testbed_agents (pool_id);

CREATE TABLE testbed_agent_tokens (
    id TEXT PRIMARY KEY,
    pool_id TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    note TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT '',
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    used_ms BIGINT NOT NULL DEFAULT 0,
    agent_id TEXT NOT NULL DEFAULT '',
    revoked_ms BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX testbed_agent_tokens_pool ON testbed_agent_tokens (pool_id);

ALTER TABLE testbed_nodes ADD COLUMN agent_id TEXT NOT NULL DEFAULT '';
ALTER TABLE testbed_sandboxes ADD COLUMN agent_id TEXT NOT NULL DEFAULT '';
ALTER TABLE testbed_sandboxes ADD COLUMN unreachable_ms BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE testbed_sandboxes DROP COLUMN unreachable_ms;
ALTER TABLE testbed_sandboxes DROP COLUMN agent_id;
ALTER TABLE testbed_nodes DROP COLUMN agent_id;
DROP TABLE testbed_agent_tokens;
DROP TABLE testbed_agents;
