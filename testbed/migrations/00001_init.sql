-- +goose Up
CREATE TABLE testbed_outbox (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX testbed_outbox_created ON testbed_outbox (created_at);

-- Times are unix milliseconds (UTC); 0 means "not yet". Milliseconds are the metering unit, so storing them
-- exactly keeps usage intervals contiguous across restarts on both engines.
CREATE TABLE testbed_pools (
    id TEXT PRIMARY KEY,
    vendor_org_id TEXT NOT NULL,
    name TEXT NOT NULL,
    region TEXT NOT NULL,
    backend TEXT NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}',
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE UNIQUE INDEX testbed_pools_name ON testbed_pools (vendor_org_id, name);

CREATE TABLE testbed_nodes (
    id TEXT PRIMARY KEY,
    pool_id TEXT NOT NULL,
    name TEXT NOT NULL,
    health TEXT NOT NULL,
    cpu_millis BIGINT NOT NULL,
    memory_bytes BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE UNIQUE INDEX testbed_nodes_name ON testbed_nodes (pool_id, name);

CREATE TABLE testbed_devices (
    id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    pool_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    uuid TEXT NOT NULL,
    gpu_model TEXT NOT NULL,
    memory_mib BIGINT NOT NULL,
    mig_profiles TEXT NOT NULL DEFAULT '',
    declared BOOLEAN NOT NULL
);
CREATE UNIQUE INDEX testbed_devices_idx ON testbed_devices (node_id, idx);
CREATE INDEX testbed_devices_pool ON testbed_devices (pool_id, gpu_model);

-- One row per device held by an active sandbox. The primary key on device_id is what makes double-booking
-- impossible on every engine and across processes: a second claim of the same device fails the transaction.
CREATE TABLE testbed_device_claims (
    device_id TEXT PRIMARY KEY,
    sandbox_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    pool_id TEXT NOT NULL,
    gpu_model TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX testbed_device_claims_sandbox ON testbed_device_claims (sandbox_id);

-- Projection of published compute listings (marketplace events).
CREATE TABLE testbed_listings (
    id TEXT PRIMARY KEY,
    vendor_org_id TEXT NOT NULL,
    title TEXT NOT NULL,
    pool_id TEXT NOT NULL,
    gpu_model TEXT NOT NULL,
    region TEXT NOT NULL,
    min_minutes INTEGER NOT NULL,
    max_minutes INTEGER NOT NULL,
    price_per_gpu_hour BIGINT NOT NULL,
    plan_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE testbed_sandboxes (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    listing_id TEXT NOT NULL,
    vendor_org_id TEXT NOT NULL,
    pool_id TEXT NOT NULL,
    backend TEXT NOT NULL,
    node_id TEXT NOT NULL DEFAULT '',
    devices TEXT NOT NULL DEFAULT '[]',
    gpu_model TEXT NOT NULL,
    gpu_count INTEGER NOT NULL,
    mig_profile TEXT NOT NULL DEFAULT '',
    template TEXT NOT NULL,
    cpu_millis BIGINT NOT NULL,
    memory_bytes BIGINT NOT NULL,
    duration_minutes INTEGER NOT NULL,
    price_per_gpu_hour BIGINT NOT NULL,
    hold_id TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    stop_reason TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    started_ms BIGINT NOT NULL DEFAULT 0,
    expires_ms BIGINT NOT NULL DEFAULT 0,
    ended_ms BIGINT NOT NULL DEFAULT 0,
    activity_ms BIGINT NOT NULL DEFAULT 0,
    wallet_stop_ms BIGINT NOT NULL DEFAULT 0,
    usage_seq BIGINT NOT NULL DEFAULT 0,
    usage_end_ms BIGINT NOT NULL DEFAULT 0,
    backend_removed BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX testbed_sandboxes_org ON testbed_sandboxes (org_id, created_ms);
CREATE INDEX testbed_sandboxes_state ON testbed_sandboxes (state);

CREATE TABLE testbed_sandbox_tokens (
    token_hash TEXT PRIMARY KEY,
    sandbox_id TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);

CREATE TABLE testbed_reservations (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    listing_id TEXT NOT NULL,
    pool_id TEXT NOT NULL,
    gpu_model TEXT NOT NULL,
    gpu_count INTEGER NOT NULL,
    starts_ms BIGINT NOT NULL,
    ends_ms BIGINT NOT NULL,
    state TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX testbed_reservations_window ON testbed_reservations (pool_id, gpu_model, ends_ms);
CREATE INDEX testbed_reservations_org ON testbed_reservations (org_id, state);

-- Consumed event IDs: each consumer records the ID in the same transaction as its effect.
CREATE TABLE testbed_processed_events (
    id TEXT PRIMARY KEY,
    processed_ms BIGINT NOT NULL
);

-- +goose Down
DROP TABLE testbed_processed_events;
DROP TABLE testbed_reservations;
DROP TABLE testbed_sandbox_tokens;
DROP TABLE testbed_sandboxes;
DROP TABLE testbed_listings;
DROP TABLE testbed_device_claims;
DROP TABLE testbed_devices;
DROP TABLE testbed_nodes;
DROP TABLE testbed_pools;
DROP TABLE testbed_outbox;
