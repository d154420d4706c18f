-- +goose Up
-- Instants become TIMESTAMP columns, as in the other services (they were BIGINT Unix milliseconds, 0 for "not
-- yet"): *_ms becomes *_at (at_ms: at), NULL where 0 meant unset (ended, revoked, used, wallet stop,
-- unreachable, ...). TIMESTAMP (without time zone) holds UTC, as the testbed writes it, to the millisecond.
-- Indexes (and the primary key of testbed_gpu_samples) on the old columns are made again on the new ones.

ALTER TABLE testbed_pools
    ADD COLUMN created_at TIMESTAMP,
    ADD COLUMN updated_at TIMESTAMP;
UPDATE testbed_pools SET
    created_at = to_timestamp(created_ms / 1000.0) AT TIME ZONE 'UTC',
    updated_at = to_timestamp(updated_ms / 1000.0) AT TIME ZONE 'UTC';
ALTER TABLE testbed_pools
    ALTER COLUMN created_at SET NOT NULL,
    ALTER COLUMN updated_at SET NOT NULL,
    DROP COLUMN created_ms,
    DROP COLUMN updated_ms;

ALTER TABLE testbed_nodes
    ADD COLUMN heartbeat_at TIMESTAMP,
    ADD COLUMN created_at TIMESTAMP;
UPDATE testbed_nodes SET
    heartbeat_at = to_timestamp(heartbeat_ms / 1000.0) AT TIME ZONE 'UTC',
    created_at = to_timestamp(created_ms / 1000.0) AT TIME ZONE 'UTC';
ALTER TABLE testbed_nodes
    ALTER COLUMN heartbeat_at SET NOT NULL,
    ALTER COLUMN created_at SET NOT NULL,
    DROP COLUMN heartbeat_ms,
    DROP COLUMN created_ms;

ALTER TABLE testbed_agents
    ADD COLUMN created_at TIMESTAMP,
    ADD COLUMN heartbeat_at TIMESTAMP,
    ADD COLUMN revoked_at TIMESTAMP;
UPDATE testbed_agents SET
    created_at = to_timestamp(created_ms / 1000.0) AT TIME ZONE 'UTC',
    heartbeat_at = to_timestamp(NULLIF(heartbeat_ms, 0) / 1000.0) AT TIME ZONE 'UTC',
    revoked_at = to_timestamp(NULLIF(revoked_ms, 0) / 1000.0) AT TIME ZONE 'UTC';
ALTER TABLE testbed_agents
    ALTER COLUMN created_at SET NOT NULL,
    DROP COLUMN created_ms,
    DROP COLUMN heartbeat_ms,
    DROP COLUMN revoked_ms;

ALTER TABLE testbed_agent_tokens
    ADD COLUMN created_at TIMESTAMP,
    ADD COLUMN expires_at TIMESTAMP,
    ADD COLUMN used_at TIMESTAMP,
    ADD COLUMN revoked_at TIMESTAMP;
UPDATE testbed_agent_tokens SET
    created_at = to_timestamp(created_ms / 1000.0) AT TIME ZONE 'UTC',
    expires_at = to_timestamp(expires_ms / 1000.0) AT TIME ZONE 'UTC',
    used_at = to_timestamp(NULLIF(used_ms, 0) / 1000.0) AT TIME ZONE 'UTC',
    revoked_at = to_timestamp(NULLIF(revoked_ms, 0) / 1000.0) AT TIME ZONE 'UTC';
ALTER TABLE testbed_agent_tokens
    ALTER COLUMN created_at SET NOT NULL,
    ALTER COLUMN expires_at SET NOT NULL,
    DROP COLUMN created_ms,
    DROP COLUMN expires_ms,
    DROP COLUMN used_ms,
    DROP COLUMN revoked_ms;

ALTER TABLE testbed_device_claims
    ADD COLUMN expires_at TIMESTAMP,
    ADD COLUMN created_at TIMESTAMP;
UPDATE testbed_device_claims SET
    expires_at = to_timestamp(expires_ms / 1000.0) AT TIME ZONE 'UTC',
    created_at = to_timestamp(created_ms / 1000.0) AT TIME ZONE 'UTC';
ALTER TABLE testbed_device_claims
    ALTER COLUMN expires_at SET NOT NULL,
    ALTER COLUMN created_at SET NOT NULL,
    DROP COLUMN expires_ms,
    DROP COLUMN created_ms;

ALTER TABLE testbed_listings
    ADD COLUMN updated_at TIMESTAMP;
UPDATE testbed_listings SET
    updated_at = to_timestamp(updated_ms / 1000.0) AT TIME ZONE 'UTC';
ALTER TABLE testbed_listings
    ALTER COLUMN updated_at SET NOT NULL,
    DROP COLUMN updated_ms;

ALTER TABLE testbed_image_listings
    ADD COLUMN updated_at TIMESTAMP;
UPDATE testbed_image_listings SET
    updated_at = to_timestamp(updated_ms / 1000.0) AT TIME ZONE 'UTC';
ALTER TABLE testbed_image_listings
    ALTER COLUMN updated_at SET NOT NULL,
    DROP COLUMN updated_ms;

ALTER TABLE testbed_entitlements
    ADD COLUMN expires_at TIMESTAMP,
    ADD COLUMN at TIMESTAMP,
    ADD COLUMN updated_at TIMESTAMP;
UPDATE testbed_entitlements SET
    expires_at = to_timestamp(NULLIF(expires_ms, 0) / 1000.0) AT TIME ZONE 'UTC',
    at = to_timestamp(at_ms / 1000.0) AT TIME ZONE 'UTC',
    updated_at = to_timestamp(updated_ms / 1000.0) AT TIME ZONE 'UTC';
ALTER TABLE testbed_entitlements
    ALTER COLUMN at SET NOT NULL,
    ALTER COLUMN updated_at SET NOT NULL,
    DROP COLUMN expires_ms,
    DROP COLUMN at_ms,
    DROP COLUMN updated_ms;

DROP INDEX testbed_sandboxes_org;
ALTER TABLE testbed_sandboxes
    ADD COLUMN created_at TIMESTAMP,
    ADD COLUMN updated_at TIMESTAMP,
    ADD COLUMN started_at TIMESTAMP,
    ADD COLUMN expires_at TIMESTAMP,
    ADD COLUMN ended_at TIMESTAMP,
    ADD COLUMN activity_at TIMESTAMP,
    ADD COLUMN wallet_stop_at TIMESTAMP,
    ADD COLUMN usage_end_at TIMESTAMP,
    ADD COLUMN unreachable_at TIMESTAMP;
UPDATE testbed_sandboxes SET
    created_at = to_timestamp(created_ms / 1000.0) AT TIME ZONE 'UTC',
    updated_at = to_timestamp(updated_ms / 1000.0) AT TIME ZONE 'UTC',
    started_at = to_timestamp(NULLIF(started_ms, 0) / 1000.0) AT TIME ZONE 'UTC',
    expires_at = to_timestamp(NULLIF(expires_ms, 0) / 1000.0) AT TIME ZONE 'UTC',
    ended_at = to_timestamp(NULLIF(ended_ms, 0) / 1000.0) AT TIME ZONE 'UTC',
    activity_at = to_timestamp(activity_ms / 1000.0) AT TIME ZONE 'UTC',
    wallet_stop_at = to_timestamp(NULLIF(wallet_stop_ms, 0) / 1000.0) AT TIME ZONE 'UTC',
    usage_end_at = to_timestamp(NULLIF(usage_end_ms, 0) / 1000.0) AT TIME ZONE 'UTC',
    unreachable_at = to_timestamp(NULLIF(unreachable_ms, 0) / 1000.0) AT TIME ZONE 'UTC';
ALTER TABLE testbed_sandboxes
    ALTER COLUMN created_at SET NOT NULL,
    ALTER COLUMN updated_at SET NOT NULL,
    ALTER COLUMN activity_at SET NOT NULL,
    DROP COLUMN created_ms,
    DROP COLUMN updated_ms,
    DROP COLUMN started_ms,
    DROP COLUMN expires_ms,
    DROP COLUMN ended_ms,
    DROP COLUMN activity_ms,
    DROP COLUMN wallet_stop_ms,
    DROP COLUMN usage_end_ms,
    DROP COLUMN unreachable_ms;
CREATE INDEX testbed_sandboxes_org ON testbed_sandboxes (org_id, created_at);

ALTER TABLE testbed_sandbox_tokens
    ADD COLUMN expires_at TIMESTAMP;
UPDATE testbed_sandbox_tokens SET
    expires_at = to_timestamp(expires_ms / 1000.0) AT TIME ZONE 'UTC';
ALTER TABLE testbed_sandbox_tokens
    ALTER COLUMN expires_at SET NOT NULL,
    DROP COLUMN expires_ms;

DROP INDEX testbed_reservations_window;
ALTER TABLE testbed_reservations
    ADD COLUMN starts_at TIMESTAMP,
    ADD COLUMN ends_at TIMESTAMP,
    ADD COLUMN created_at TIMESTAMP;
UPDATE testbed_reservations SET
    starts_at = to_timestamp(starts_ms / 1000.0) AT TIME ZONE 'UTC',
    ends_at = to_timestamp(ends_ms / 1000.0) AT TIME ZONE 'UTC',
    created_at = to_timestamp(created_ms / 1000.0) AT TIME ZONE 'UTC';
ALTER TABLE testbed_reservations
    ALTER COLUMN starts_at SET NOT NULL,
    ALTER COLUMN ends_at SET NOT NULL,
    ALTER COLUMN created_at SET NOT NULL,
    DROP COLUMN starts_ms,
    DROP COLUMN ends_ms,
    DROP COLUMN created_ms;
CREATE INDEX testbed_reservations_window ON testbed_reservations (pool_id, gpu_model, ends_at);

DROP INDEX testbed_audit_at;
ALTER TABLE testbed_audit
    ADD COLUMN at TIMESTAMP;
UPDATE testbed_audit SET
    at = to_timestamp(at_ms / 1000.0) AT TIME ZONE 'UTC';
ALTER TABLE testbed_audit
    ALTER COLUMN at SET NOT NULL,
    DROP COLUMN at_ms;
CREATE INDEX testbed_audit_at ON testbed_audit (at);

ALTER TABLE testbed_gpu_samples DROP CONSTRAINT testbed_gpu_samples_pkey;
ALTER TABLE testbed_gpu_samples
    ADD COLUMN at TIMESTAMP;
UPDATE testbed_gpu_samples SET
    at = to_timestamp(at_ms / 1000.0) AT TIME ZONE 'UTC';
ALTER TABLE testbed_gpu_samples
    ALTER COLUMN at SET NOT NULL,
    DROP COLUMN at_ms;
ALTER TABLE testbed_gpu_samples ADD PRIMARY KEY (sandbox_id, at);

ALTER TABLE testbed_processed_events
    ADD COLUMN processed_at TIMESTAMP;
UPDATE testbed_processed_events SET
    processed_at = to_timestamp(processed_ms / 1000.0) AT TIME ZONE 'UTC';
ALTER TABLE testbed_processed_events
    ALTER COLUMN processed_at SET NOT NULL,
    DROP COLUMN processed_ms;

-- +goose Down
ALTER TABLE testbed_processed_events
    ADD COLUMN processed_ms BIGINT;
UPDATE testbed_processed_events SET
    processed_ms = COALESCE(round(EXTRACT(EPOCH FROM processed_at) * 1000)::BIGINT, 0);
ALTER TABLE testbed_processed_events
    ALTER COLUMN processed_ms SET NOT NULL,
    DROP COLUMN processed_at;

ALTER TABLE testbed_gpu_samples DROP CONSTRAINT testbed_gpu_samples_pkey;
ALTER TABLE testbed_gpu_samples
    ADD COLUMN at_ms BIGINT;
UPDATE testbed_gpu_samples SET
    at_ms = COALESCE(round(EXTRACT(EPOCH FROM at) * 1000)::BIGINT, 0);
ALTER TABLE testbed_gpu_samples
    ALTER COLUMN at_ms SET NOT NULL,
    DROP COLUMN at;
ALTER TABLE testbed_gpu_samples ADD PRIMARY KEY (sandbox_id, at_ms);

DROP INDEX testbed_audit_at;
ALTER TABLE testbed_audit
    ADD COLUMN at_ms BIGINT;
UPDATE testbed_audit SET
    at_ms = COALESCE(round(EXTRACT(EPOCH FROM at) * 1000)::BIGINT, 0);
ALTER TABLE testbed_audit
    ALTER COLUMN at_ms SET NOT NULL,
    DROP COLUMN at;
CREATE INDEX testbed_audit_at ON testbed_audit (at_ms);

DROP INDEX testbed_reservations_window;
ALTER TABLE testbed_reservations
    ADD COLUMN starts_ms BIGINT,
    ADD COLUMN ends_ms BIGINT,
    ADD COLUMN created_ms BIGINT;
UPDATE testbed_reservations SET
    starts_ms = COALESCE(round(EXTRACT(EPOCH FROM starts_at) * 1000)::BIGINT, 0),
    ends_ms = COALESCE(round(EXTRACT(EPOCH FROM ends_at) * 1000)::BIGINT, 0),
    created_ms = COALESCE(round(EXTRACT(EPOCH FROM created_at) * 1000)::BIGINT, 0);
ALTER TABLE testbed_reservations
    ALTER COLUMN starts_ms SET NOT NULL,
    ALTER COLUMN ends_ms SET NOT NULL,
    ALTER COLUMN created_ms SET NOT NULL,
    DROP COLUMN starts_at,
    DROP COLUMN ends_at,
    DROP COLUMN created_at;
CREATE INDEX testbed_reservations_window ON testbed_reservations (pool_id, gpu_model, ends_ms);

ALTER TABLE testbed_sandbox_tokens
    ADD COLUMN expires_ms BIGINT;
UPDATE testbed_sandbox_tokens SET
    expires_ms = COALESCE(round(EXTRACT(EPOCH FROM expires_at) * 1000)::BIGINT, 0);
ALTER TABLE testbed_sandbox_tokens
    ALTER COLUMN expires_ms SET NOT NULL,
    DROP COLUMN expires_at;

DROP INDEX testbed_sandboxes_org;
ALTER TABLE testbed_sandboxes
    ADD COLUMN created_ms BIGINT,
    ADD COLUMN updated_ms BIGINT,
    ADD COLUMN started_ms BIGINT,
    ADD COLUMN expires_ms BIGINT,
    ADD COLUMN ended_ms BIGINT,
    ADD COLUMN activity_ms BIGINT,
    ADD COLUMN wallet_stop_ms BIGINT,
    ADD COLUMN usage_end_ms BIGINT,
    ADD COLUMN unreachable_ms BIGINT;
UPDATE testbed_sandboxes SET
    created_ms = COALESCE(round(EXTRACT(EPOCH FROM created_at) * 1000)::BIGINT, 0),
    updated_ms = COALESCE(round(EXTRACT(EPOCH FROM updated_at) * 1000)::BIGINT, 0),
    started_ms = COALESCE(round(EXTRACT(EPOCH FROM started_at) * 1000)::BIGINT, 0),
    expires_ms = COALESCE(round(EXTRACT(EPOCH FROM expires_at) * 1000)::BIGINT, 0),
    ended_ms = COALESCE(round(EXTRACT(EPOCH FROM ended_at) * 1000)::BIGINT, 0),
    activity_ms = COALESCE(round(EXTRACT(EPOCH FROM activity_at) * 1000)::BIGINT, 0),
    wallet_stop_ms = COALESCE(round(EXTRACT(EPOCH FROM wallet_stop_at) * 1000)::BIGINT, 0),
    usage_end_ms = COALESCE(round(EXTRACT(EPOCH FROM usage_end_at) * 1000)::BIGINT, 0),
    unreachable_ms = COALESCE(round(EXTRACT(EPOCH FROM unreachable_at) * 1000)::BIGINT, 0);
ALTER TABLE testbed_sandboxes
    ALTER COLUMN created_ms SET NOT NULL,
    ALTER COLUMN updated_ms SET NOT NULL,
    ALTER COLUMN started_ms SET NOT NULL,
    ALTER COLUMN started_ms SET DEFAULT 0,
    ALTER COLUMN expires_ms SET NOT NULL,
    ALTER COLUMN expires_ms SET DEFAULT 0,
    ALTER COLUMN ended_ms SET NOT NULL,
    ALTER COLUMN ended_ms SET DEFAULT 0,
    ALTER COLUMN activity_ms SET NOT NULL,
    ALTER COLUMN activity_ms SET DEFAULT 0,
    ALTER COLUMN wallet_stop_ms SET NOT NULL,
    ALTER COLUMN wallet_stop_ms SET DEFAULT 0,
    ALTER COLUMN usage_end_ms SET NOT NULL,
    ALTER COLUMN usage_end_ms SET DEFAULT 0,
    ALTER COLUMN unreachable_ms SET NOT NULL,
    ALTER COLUMN unreachable_ms SET DEFAULT 0,
    DROP COLUMN created_at,
    DROP COLUMN updated_at,
    DROP COLUMN started_at,
    DROP COLUMN expires_at,
    DROP COLUMN ended_at,
    DROP COLUMN activity_at,
    DROP COLUMN wallet_stop_at,
    DROP COLUMN usage_end_at,
    DROP COLUMN unreachable_at;
CREATE INDEX testbed_sandboxes_org ON testbed_sandboxes (org_id, created_ms);

ALTER TABLE testbed_entitlements
    ADD COLUMN expires_ms BIGINT,
    ADD COLUMN at_ms BIGINT,
    ADD COLUMN updated_ms BIGINT;
UPDATE testbed_entitlements SET
    expires_ms = COALESCE(round(EXTRACT(EPOCH FROM expires_at) * 1000)::BIGINT, 0),
    at_ms = COALESCE(round(EXTRACT(EPOCH FROM at) * 1000)::BIGINT, 0),
    updated_ms = COALESCE(round(EXTRACT(EPOCH FROM updated_at) * 1000)::BIGINT, 0);
ALTER TABLE testbed_entitlements
    ALTER COLUMN expires_ms SET NOT NULL,
    ALTER COLUMN expires_ms SET DEFAULT 0,
    ALTER COLUMN at_ms SET NOT NULL,
    ALTER COLUMN updated_ms SET NOT NULL,
    DROP COLUMN expires_at,
    DROP COLUMN at,
    DROP COLUMN updated_at;

ALTER TABLE testbed_image_listings
    ADD COLUMN updated_ms BIGINT;
UPDATE testbed_image_listings SET
    updated_ms = COALESCE(round(EXTRACT(EPOCH FROM updated_at) * 1000)::BIGINT, 0);
ALTER TABLE testbed_image_listings
    ALTER COLUMN updated_ms SET NOT NULL,
    DROP COLUMN updated_at;

ALTER TABLE testbed_listings
    ADD COLUMN updated_ms BIGINT;
UPDATE testbed_listings SET
    updated_ms = COALESCE(round(EXTRACT(EPOCH FROM updated_at) * 1000)::BIGINT, 0);
ALTER TABLE testbed_listings
    ALTER COLUMN updated_ms SET NOT NULL,
    DROP COLUMN updated_at;

ALTER TABLE testbed_device_claims
    ADD COLUMN expires_ms BIGINT,
    ADD COLUMN created_ms BIGINT;
UPDATE testbed_device_claims SET
    expires_ms = COALESCE(round(EXTRACT(EPOCH FROM expires_at) * 1000)::BIGINT, 0),
    created_ms = COALESCE(round(EXTRACT(EPOCH FROM created_at) * 1000)::BIGINT, 0);
ALTER TABLE testbed_device_claims
    ALTER COLUMN expires_ms SET NOT NULL,
    ALTER COLUMN created_ms SET NOT NULL,
    DROP COLUMN expires_at,
    DROP COLUMN created_at;

ALTER TABLE testbed_agent_tokens
    ADD COLUMN created_ms BIGINT,
    ADD COLUMN expires_ms BIGINT,
    ADD COLUMN used_ms BIGINT,
    ADD COLUMN revoked_ms BIGINT;
UPDATE testbed_agent_tokens SET
    created_ms = COALESCE(round(EXTRACT(EPOCH FROM created_at) * 1000)::BIGINT, 0),
    expires_ms = COALESCE(round(EXTRACT(EPOCH FROM expires_at) * 1000)::BIGINT, 0),
    used_ms = COALESCE(round(EXTRACT(EPOCH FROM used_at) * 1000)::BIGINT, 0),
    revoked_ms = COALESCE(round(EXTRACT(EPOCH FROM revoked_at) * 1000)::BIGINT, 0);
ALTER TABLE testbed_agent_tokens
    ALTER COLUMN created_ms SET NOT NULL,
    ALTER COLUMN expires_ms SET NOT NULL,
    ALTER COLUMN used_ms SET NOT NULL,
    ALTER COLUMN used_ms SET DEFAULT 0,
    ALTER COLUMN revoked_ms SET NOT NULL,
    ALTER COLUMN revoked_ms SET DEFAULT 0,
    DROP COLUMN created_at,
    DROP COLUMN expires_at,
    DROP COLUMN used_at,
    DROP COLUMN revoked_at;

ALTER TABLE testbed_agents
    ADD COLUMN created_ms BIGINT,
    ADD COLUMN heartbeat_ms BIGINT,
    ADD COLUMN revoked_ms BIGINT;
UPDATE testbed_agents SET
    created_ms = COALESCE(round(EXTRACT(EPOCH FROM created_at) * 1000)::BIGINT, 0),
    heartbeat_ms = COALESCE(round(EXTRACT(EPOCH FROM heartbeat_at) * 1000)::BIGINT, 0),
    revoked_ms = COALESCE(round(EXTRACT(EPOCH FROM revoked_at) * 1000)::BIGINT, 0);
ALTER TABLE testbed_agents
    ALTER COLUMN created_ms SET NOT NULL,
    ALTER COLUMN heartbeat_ms SET NOT NULL,
    ALTER COLUMN heartbeat_ms SET DEFAULT 0,
    ALTER COLUMN revoked_ms SET NOT NULL,
    ALTER COLUMN revoked_ms SET DEFAULT 0,
    DROP COLUMN created_at,
    DROP COLUMN heartbeat_at,
    DROP COLUMN revoked_at;

ALTER TABLE testbed_nodes
    ADD COLUMN heartbeat_ms BIGINT,
    ADD COLUMN created_ms BIGINT;
UPDATE testbed_nodes SET
    heartbeat_ms = COALESCE(round(EXTRACT(EPOCH FROM heartbeat_at) * 1000)::BIGINT, 0),
    created_ms = COALESCE(round(EXTRACT(EPOCH FROM created_at) * 1000)::BIGINT, 0);
ALTER TABLE testbed_nodes
    ALTER COLUMN heartbeat_ms SET NOT NULL,
    ALTER COLUMN created_ms SET NOT NULL,
    DROP COLUMN heartbeat_at,
    DROP COLUMN created_at;

ALTER TABLE testbed_pools
    ADD COLUMN created_ms BIGINT,
    ADD COLUMN updated_ms BIGINT;
UPDATE testbed_pools SET
    created_ms = COALESCE(round(EXTRACT(EPOCH FROM created_at) * 1000)::BIGINT, 0),
    updated_ms = COALESCE(round(EXTRACT(EPOCH FROM updated_at) * 1000)::BIGINT, 0);
ALTER TABLE testbed_pools
    ALTER COLUMN created_ms SET NOT NULL,
    ALTER COLUMN updated_ms SET NOT NULL,
    DROP COLUMN created_at,
    DROP COLUMN updated_at;
