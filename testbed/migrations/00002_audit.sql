-- +goose Up
-- Staff actions on testbed objects (pools, nodes, other organisations' sandboxes).
CREATE TABLE testbed_audit (
    id TEXT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor_user_id TEXT NOT NULL,
    actor_org_id TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX testbed_audit_at ON testbed_audit (at_ms);

-- +goose Down
DROP TABLE testbed_audit;
