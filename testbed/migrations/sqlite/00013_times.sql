-- +goose Up
-- Instants become TIMESTAMP columns, as in the other services (they were BIGINT Unix milliseconds, 0 for "not
-- yet"): *_ms becomes *_at (at_ms: at), NULL where 0 meant unset (ended, revoked, used, wallet stop,
-- unreachable, ...). The testbed still writes whole milliseconds, in UTC.
--
-- SQLite cannot change a column's type or nullability, so each table is rebuilt (new table, copy, drop,
-- rename, its indexes again). The text written is exactly what the driver (glebarez/go-sqlite) writes for a
-- UTC time.Time, Go's "2006-01-02 15:04:05.999999999-07:00": fraction without trailing zeros, none when
-- whole, then +00:00. Rows copied here then read back, sort and compare like rows GORM writes
-- (TestTimesMigration).

CREATE TABLE testbed_pools_new (
    id TEXT PRIMARY KEY,
    vendor_org_id TEXT NOT NULL,
    name TEXT NOT NULL,
    region TEXT NOT NULL,
    backend TEXT NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
INSERT INTO testbed_pools_new (id, vendor_org_id, name, region, backend, settings, created_at, updated_at)
SELECT
    id, vendor_org_id, name, region, backend, settings,
    strftime('%Y-%m-%d %H:%M:%S', created_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', created_ms % 1000), '.0') || '+00:00',
    strftime('%Y-%m-%d %H:%M:%S', updated_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', updated_ms % 1000), '.0') || '+00:00'
FROM testbed_pools;
DROP TABLE testbed_pools;
ALTER TABLE testbed_pools_new RENAME TO testbed_pools;
CREATE UNIQUE INDEX testbed_pools_name ON testbed_pools (vendor_org_id, name);

CREATE TABLE testbed_nodes_new (
    id TEXT PRIMARY KEY,
    pool_id TEXT NOT NULL,
    name TEXT NOT NULL,
    health TEXT NOT NULL,
    cpu_millis BIGINT NOT NULL,
    memory_bytes BIGINT NOT NULL,
    heartbeat_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    agent_id TEXT NOT NULL DEFAULT '',
    agent_health TEXT NOT NULL DEFAULT ''
);
INSERT INTO testbed_nodes_new (id, pool_id, name, health, cpu_millis, memory_bytes, heartbeat_at, created_at,
    agent_id, agent_health)
SELECT
    id, pool_id, name, health, cpu_millis, memory_bytes,
    strftime('%Y-%m-%d %H:%M:%S', heartbeat_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', heartbeat_ms % 1000), '.0') || '+00:00',
    strftime('%Y-%m-%d %H:%M:%S', created_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', created_ms % 1000), '.0') || '+00:00',
    agent_id, agent_health
FROM testbed_nodes;
DROP TABLE testbed_nodes;
ALTER TABLE testbed_nodes_new RENAME TO testbed_nodes;
CREATE UNIQUE INDEX testbed_nodes_name ON testbed_nodes (pool_id, name);

CREATE TABLE testbed_agents_new (
    id TEXT PRIMARY KEY,
    pool_id TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL DEFAULT '',
    backend TEXT NOT NULL DEFAULT '',
    problem TEXT NOT NULL DEFAULT '',
    boot TEXT NOT NULL DEFAULT '',
    nats_user TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    heartbeat_at TIMESTAMP NULL,
    revoked_at TIMESTAMP NULL,
    gpu_sampler BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO testbed_agents_new (id, pool_id, name, version, backend, problem, boot, nats_user, created_by,
    created_at, heartbeat_at, revoked_at, gpu_sampler)
SELECT
    id, pool_id, name, version, backend, problem, boot, nats_user, created_by,
    strftime('%Y-%m-%d %H:%M:%S', created_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', created_ms % 1000), '.0') || '+00:00',
    CASE WHEN heartbeat_ms = 0 THEN NULL ELSE strftime('%Y-%m-%d %H:%M:%S', heartbeat_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', heartbeat_ms % 1000), '.0') || '+00:00' END,
    CASE WHEN revoked_ms = 0 THEN NULL ELSE strftime('%Y-%m-%d %H:%M:%S', revoked_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', revoked_ms % 1000), '.0') || '+00:00' END,
    gpu_sampler
FROM testbed_agents;
DROP TABLE testbed_agents;
ALTER TABLE testbed_agents_new RENAME TO testbed_agents;
CREATE INDEX testbed_agents_pool ON testbed_agents (pool_id);

CREATE TABLE testbed_agent_tokens_new (
    id TEXT PRIMARY KEY,
    pool_id TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    note TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP NULL,
    agent_id TEXT NOT NULL DEFAULT '',
    revoked_at TIMESTAMP NULL
);
INSERT INTO testbed_agent_tokens_new (id, pool_id, token_hash, note, created_by, created_at, expires_at, used_at,
    agent_id, revoked_at)
SELECT
    id, pool_id, token_hash, note, created_by,
    strftime('%Y-%m-%d %H:%M:%S', created_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', created_ms % 1000), '.0') || '+00:00',
    strftime('%Y-%m-%d %H:%M:%S', expires_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', expires_ms % 1000), '.0') || '+00:00',
    CASE WHEN used_ms = 0 THEN NULL ELSE strftime('%Y-%m-%d %H:%M:%S', used_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', used_ms % 1000), '.0') || '+00:00' END,
    agent_id,
    CASE WHEN revoked_ms = 0 THEN NULL ELSE strftime('%Y-%m-%d %H:%M:%S', revoked_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', revoked_ms % 1000), '.0') || '+00:00' END
FROM testbed_agent_tokens;
DROP TABLE testbed_agent_tokens;
ALTER TABLE testbed_agent_tokens_new RENAME TO testbed_agent_tokens;
CREATE INDEX testbed_agent_tokens_pool ON testbed_agent_tokens (pool_id);

CREATE TABLE testbed_device_claims_new (
    device_id TEXT PRIMARY KEY,
    sandbox_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    pool_id TEXT NOT NULL,
    gpu_model TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL
);
INSERT INTO testbed_device_claims_new (device_id, sandbox_id, node_id, pool_id, gpu_model, expires_at, created_at)
SELECT
    device_id, sandbox_id, node_id, pool_id, gpu_model,
    strftime('%Y-%m-%d %H:%M:%S', expires_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', expires_ms % 1000), '.0') || '+00:00',
    strftime('%Y-%m-%d %H:%M:%S', created_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', created_ms % 1000), '.0') || '+00:00'
FROM testbed_device_claims;
DROP TABLE testbed_device_claims;
ALTER TABLE testbed_device_claims_new RENAME TO testbed_device_claims;
CREATE INDEX testbed_device_claims_sandbox ON testbed_device_claims (sandbox_id);

CREATE TABLE testbed_listings_new (
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
    updated_at TIMESTAMP NOT NULL,
    visible_to TEXT NOT NULL DEFAULT '',
    gated BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO testbed_listings_new (id, vendor_org_id, title, pool_id, gpu_model, region, min_minutes, max_minutes,
    price_per_gpu_hour, plan_id, version, updated_at, visible_to, gated)
SELECT
    id, vendor_org_id, title, pool_id, gpu_model, region, min_minutes, max_minutes, price_per_gpu_hour, plan_id,
    version,
    strftime('%Y-%m-%d %H:%M:%S', updated_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', updated_ms % 1000), '.0') || '+00:00',
    visible_to, gated
FROM testbed_listings;
DROP TABLE testbed_listings;
ALTER TABLE testbed_listings_new RENAME TO testbed_listings;

CREATE TABLE testbed_image_listings_new (
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
    updated_at TIMESTAMP NOT NULL
);
INSERT INTO testbed_image_listings_new (id, vendor_org_id, kind, title, image, command, ports, visible_to, gated,
    version, updated_at)
SELECT
    id, vendor_org_id, kind, title, image, command, ports, visible_to, gated, version,
    strftime('%Y-%m-%d %H:%M:%S', updated_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', updated_ms % 1000), '.0') || '+00:00'
FROM testbed_image_listings;
DROP TABLE testbed_image_listings;
ALTER TABLE testbed_image_listings_new RENAME TO testbed_image_listings;

CREATE TABLE testbed_entitlements_new (
    org_id TEXT NOT NULL,
    listing_id TEXT NOT NULL,
    entitlement_id TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    expires_at TIMESTAMP NULL,
    at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (org_id, listing_id)
);
INSERT INTO testbed_entitlements_new (org_id, listing_id, entitlement_id, active, expires_at, at, updated_at)
SELECT
    org_id, listing_id, entitlement_id, active,
    CASE WHEN expires_ms = 0 THEN NULL ELSE strftime('%Y-%m-%d %H:%M:%S', expires_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', expires_ms % 1000), '.0') || '+00:00' END,
    strftime('%Y-%m-%d %H:%M:%S', at_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', at_ms % 1000), '.0') || '+00:00',
    strftime('%Y-%m-%d %H:%M:%S', updated_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', updated_ms % 1000), '.0') || '+00:00'
FROM testbed_entitlements;
DROP TABLE testbed_entitlements;
ALTER TABLE testbed_entitlements_new RENAME TO testbed_entitlements;

CREATE TABLE testbed_sandboxes_new (
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
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP NULL,
    expires_at TIMESTAMP NULL,
    ended_at TIMESTAMP NULL,
    activity_at TIMESTAMP NOT NULL,
    wallet_stop_at TIMESTAMP NULL,
    usage_seq BIGINT NOT NULL DEFAULT 0,
    usage_end_at TIMESTAMP NULL,
    backend_removed BOOLEAN NOT NULL DEFAULT FALSE,
    image TEXT NOT NULL DEFAULT '',
    image_digest TEXT NOT NULL DEFAULT '',
    progress TEXT NOT NULL DEFAULT '',
    agent_id TEXT NOT NULL DEFAULT '',
    unreachable_at TIMESTAMP NULL,
    image_listing_id TEXT NOT NULL DEFAULT '',
    command TEXT NOT NULL DEFAULT '',
    ports TEXT NOT NULL DEFAULT '',
    mount_listing_id TEXT NOT NULL DEFAULT '',
    mounts TEXT NOT NULL DEFAULT ''
);
INSERT INTO testbed_sandboxes_new (id, org_id, user_id, listing_id, vendor_org_id, pool_id, backend, node_id,
    devices, gpu_model, gpu_count, mig_profile, template, cpu_millis, memory_bytes, duration_minutes,
    price_per_gpu_hour, hold_id, state, stop_reason, message, created_at, updated_at, started_at, expires_at,
    ended_at, activity_at, wallet_stop_at, usage_seq, usage_end_at, backend_removed, image, image_digest, progress,
    agent_id, unreachable_at, image_listing_id, command, ports, mount_listing_id, mounts)
SELECT
    id, org_id, user_id, listing_id, vendor_org_id, pool_id, backend, node_id, devices, gpu_model, gpu_count,
    mig_profile, template, cpu_millis, memory_bytes, duration_minutes, price_per_gpu_hour, hold_id, state,
    stop_reason, message,
    strftime('%Y-%m-%d %H:%M:%S', created_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', created_ms % 1000), '.0') || '+00:00',
    strftime('%Y-%m-%d %H:%M:%S', updated_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', updated_ms % 1000), '.0') || '+00:00',
    CASE WHEN started_ms = 0 THEN NULL ELSE strftime('%Y-%m-%d %H:%M:%S', started_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', started_ms % 1000), '.0') || '+00:00' END,
    CASE WHEN expires_ms = 0 THEN NULL ELSE strftime('%Y-%m-%d %H:%M:%S', expires_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', expires_ms % 1000), '.0') || '+00:00' END,
    CASE WHEN ended_ms = 0 THEN NULL ELSE strftime('%Y-%m-%d %H:%M:%S', ended_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', ended_ms % 1000), '.0') || '+00:00' END,
    strftime('%Y-%m-%d %H:%M:%S', activity_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', activity_ms % 1000), '.0') || '+00:00',
    CASE WHEN wallet_stop_ms = 0 THEN NULL ELSE strftime('%Y-%m-%d %H:%M:%S', wallet_stop_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', wallet_stop_ms % 1000), '.0') || '+00:00' END,
    usage_seq,
    CASE WHEN usage_end_ms = 0 THEN NULL ELSE strftime('%Y-%m-%d %H:%M:%S', usage_end_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', usage_end_ms % 1000), '.0') || '+00:00' END,
    backend_removed, image, image_digest, progress, agent_id,
    CASE WHEN unreachable_ms = 0 THEN NULL ELSE strftime('%Y-%m-%d %H:%M:%S', unreachable_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', unreachable_ms % 1000), '.0') || '+00:00' END,
    image_listing_id, command, ports, mount_listing_id, mounts
FROM testbed_sandboxes;
DROP TABLE testbed_sandboxes;
ALTER TABLE testbed_sandboxes_new RENAME TO testbed_sandboxes;
CREATE INDEX testbed_sandboxes_org ON testbed_sandboxes (org_id, created_at);
CREATE INDEX testbed_sandboxes_state ON testbed_sandboxes (state);

CREATE TABLE testbed_sandbox_tokens_new (
    token_hash TEXT PRIMARY KEY,
    sandbox_id TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
INSERT INTO testbed_sandbox_tokens_new (token_hash, sandbox_id, expires_at)
SELECT
    token_hash, sandbox_id,
    strftime('%Y-%m-%d %H:%M:%S', expires_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', expires_ms % 1000), '.0') || '+00:00'
FROM testbed_sandbox_tokens;
DROP TABLE testbed_sandbox_tokens;
ALTER TABLE testbed_sandbox_tokens_new RENAME TO testbed_sandbox_tokens;

CREATE TABLE testbed_reservations_new (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    listing_id TEXT NOT NULL,
    pool_id TEXT NOT NULL,
    gpu_model TEXT NOT NULL,
    gpu_count INTEGER NOT NULL,
    starts_at TIMESTAMP NOT NULL,
    ends_at TIMESTAMP NOT NULL,
    state TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
INSERT INTO testbed_reservations_new (id, org_id, user_id, listing_id, pool_id, gpu_model, gpu_count, starts_at,
    ends_at, state, created_at)
SELECT
    id, org_id, user_id, listing_id, pool_id, gpu_model, gpu_count,
    strftime('%Y-%m-%d %H:%M:%S', starts_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', starts_ms % 1000), '.0') || '+00:00',
    strftime('%Y-%m-%d %H:%M:%S', ends_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', ends_ms % 1000), '.0') || '+00:00',
    state,
    strftime('%Y-%m-%d %H:%M:%S', created_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', created_ms % 1000), '.0') || '+00:00'
FROM testbed_reservations;
DROP TABLE testbed_reservations;
ALTER TABLE testbed_reservations_new RENAME TO testbed_reservations;
CREATE INDEX testbed_reservations_org ON testbed_reservations (org_id, state);
CREATE INDEX testbed_reservations_window ON testbed_reservations (pool_id, gpu_model, ends_at);

CREATE TABLE testbed_audit_new (
    id TEXT PRIMARY KEY,
    at TIMESTAMP NOT NULL,
    actor_user_id TEXT NOT NULL,
    actor_org_id TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
INSERT INTO testbed_audit_new (id, at, actor_user_id, actor_org_id, action, target, detail)
SELECT
    id,
    strftime('%Y-%m-%d %H:%M:%S', at_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', at_ms % 1000), '.0') || '+00:00',
    actor_user_id, actor_org_id, action, target, detail
FROM testbed_audit;
DROP TABLE testbed_audit;
ALTER TABLE testbed_audit_new RENAME TO testbed_audit;
CREATE INDEX testbed_audit_at ON testbed_audit (at);

CREATE TABLE testbed_gpu_samples_new (
    sandbox_id TEXT NOT NULL,
    at TIMESTAMP NOT NULL,
    utilization_pct INTEGER NOT NULL,
    memory_used_mib BIGINT NOT NULL,
    memory_total_mib BIGINT NOT NULL,
    PRIMARY KEY (sandbox_id, at)
);
INSERT INTO testbed_gpu_samples_new (sandbox_id, at, utilization_pct, memory_used_mib, memory_total_mib)
SELECT
    sandbox_id,
    strftime('%Y-%m-%d %H:%M:%S', at_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', at_ms % 1000), '.0') || '+00:00',
    utilization_pct, memory_used_mib, memory_total_mib
FROM testbed_gpu_samples;
DROP TABLE testbed_gpu_samples;
ALTER TABLE testbed_gpu_samples_new RENAME TO testbed_gpu_samples;

CREATE TABLE testbed_processed_events_new (
    id TEXT PRIMARY KEY,
    processed_at TIMESTAMP NOT NULL
);
INSERT INTO testbed_processed_events_new (id, processed_at)
SELECT
    id,
    strftime('%Y-%m-%d %H:%M:%S', processed_ms / 1000, 'unixepoch')
        || rtrim(printf('.%03d', processed_ms % 1000), '.0') || '+00:00'
FROM testbed_processed_events;
DROP TABLE testbed_processed_events;
ALTER TABLE testbed_processed_events_new RENAME TO testbed_processed_events;

-- +goose Down
CREATE TABLE testbed_processed_events_old (
    id TEXT PRIMARY KEY,
    processed_ms BIGINT NOT NULL
);
INSERT INTO testbed_processed_events_old (id, processed_ms)
SELECT
    id,
    CAST(strftime('%s', processed_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', processed_at), 4) AS INTEGER)
FROM testbed_processed_events;
DROP TABLE testbed_processed_events;
ALTER TABLE testbed_processed_events_old RENAME TO testbed_processed_events;

CREATE TABLE testbed_gpu_samples_old (
    sandbox_id TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    utilization_pct INTEGER NOT NULL,
    memory_used_mib BIGINT NOT NULL,
    memory_total_mib BIGINT NOT NULL,
    PRIMARY KEY (sandbox_id, at_ms)
);
INSERT INTO testbed_gpu_samples_old (sandbox_id, at_ms, utilization_pct, memory_used_mib, memory_total_mib)
SELECT
    sandbox_id,
    CAST(strftime('%s', at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', at), 4) AS INTEGER),
    utilization_pct, memory_used_mib, memory_total_mib
FROM testbed_gpu_samples;
DROP TABLE testbed_gpu_samples;
ALTER TABLE testbed_gpu_samples_old RENAME TO testbed_gpu_samples;

CREATE TABLE testbed_audit_old (
    id TEXT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor_user_id TEXT NOT NULL,
    actor_org_id TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
INSERT INTO testbed_audit_old (id, at_ms, actor_user_id, actor_org_id, action, target, detail)
SELECT
    id,
    CAST(strftime('%s', at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', at), 4) AS INTEGER),
    actor_user_id, actor_org_id, action, target, detail
FROM testbed_audit;
DROP TABLE testbed_audit;
ALTER TABLE testbed_audit_old RENAME TO testbed_audit;
CREATE INDEX testbed_audit_at ON testbed_audit (at_ms);

CREATE TABLE testbed_reservations_old (
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
INSERT INTO testbed_reservations_old (id, org_id, user_id, listing_id, pool_id, gpu_model, gpu_count, starts_ms,
    ends_ms, state, created_ms)
SELECT
    id, org_id, user_id, listing_id, pool_id, gpu_model, gpu_count,
    CAST(strftime('%s', starts_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', starts_at), 4) AS INTEGER),
    CAST(strftime('%s', ends_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', ends_at), 4) AS INTEGER),
    state,
    CAST(strftime('%s', created_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', created_at), 4) AS INTEGER)
FROM testbed_reservations;
DROP TABLE testbed_reservations;
ALTER TABLE testbed_reservations_old RENAME TO testbed_reservations;
CREATE INDEX testbed_reservations_org ON testbed_reservations (org_id, state);
CREATE INDEX testbed_reservations_window ON testbed_reservations (pool_id, gpu_model, ends_ms);

CREATE TABLE testbed_sandbox_tokens_old (
    token_hash TEXT PRIMARY KEY,
    sandbox_id TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
INSERT INTO testbed_sandbox_tokens_old (token_hash, sandbox_id, expires_ms)
SELECT
    token_hash, sandbox_id,
    CAST(strftime('%s', expires_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', expires_at), 4) AS INTEGER)
FROM testbed_sandbox_tokens;
DROP TABLE testbed_sandbox_tokens;
ALTER TABLE testbed_sandbox_tokens_old RENAME TO testbed_sandbox_tokens;

CREATE TABLE testbed_sandboxes_old (
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
    backend_removed BOOLEAN NOT NULL DEFAULT FALSE,
    image TEXT NOT NULL DEFAULT '',
    image_digest TEXT NOT NULL DEFAULT '',
    progress TEXT NOT NULL DEFAULT '',
    agent_id TEXT NOT NULL DEFAULT '',
    unreachable_ms BIGINT NOT NULL DEFAULT 0,
    image_listing_id TEXT NOT NULL DEFAULT '',
    command TEXT NOT NULL DEFAULT '',
    ports TEXT NOT NULL DEFAULT '',
    mount_listing_id TEXT NOT NULL DEFAULT '',
    mounts TEXT NOT NULL DEFAULT ''
);
INSERT INTO testbed_sandboxes_old (id, org_id, user_id, listing_id, vendor_org_id, pool_id, backend, node_id,
    devices, gpu_model, gpu_count, mig_profile, template, cpu_millis, memory_bytes, duration_minutes,
    price_per_gpu_hour, hold_id, state, stop_reason, message, created_ms, updated_ms, started_ms, expires_ms,
    ended_ms, activity_ms, wallet_stop_ms, usage_seq, usage_end_ms, backend_removed, image, image_digest, progress,
    agent_id, unreachable_ms, image_listing_id, command, ports, mount_listing_id, mounts)
SELECT
    id, org_id, user_id, listing_id, vendor_org_id, pool_id, backend, node_id, devices, gpu_model, gpu_count,
    mig_profile, template, cpu_millis, memory_bytes, duration_minutes, price_per_gpu_hour, hold_id, state,
    stop_reason, message,
    CAST(strftime('%s', created_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', created_at), 4) AS INTEGER),
    CAST(strftime('%s', updated_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', updated_at), 4) AS INTEGER),
    COALESCE(CAST(strftime('%s', started_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', started_at), 4) AS INTEGER), 0),
    COALESCE(CAST(strftime('%s', expires_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', expires_at), 4) AS INTEGER), 0),
    COALESCE(CAST(strftime('%s', ended_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', ended_at), 4) AS INTEGER), 0),
    CAST(strftime('%s', activity_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', activity_at), 4) AS INTEGER),
    COALESCE(CAST(strftime('%s', wallet_stop_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', wallet_stop_at), 4) AS INTEGER), 0),
    usage_seq,
    COALESCE(CAST(strftime('%s', usage_end_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', usage_end_at), 4) AS INTEGER), 0),
    backend_removed, image, image_digest, progress, agent_id,
    COALESCE(CAST(strftime('%s', unreachable_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', unreachable_at), 4) AS INTEGER), 0),
    image_listing_id, command, ports, mount_listing_id, mounts
FROM testbed_sandboxes;
DROP TABLE testbed_sandboxes;
ALTER TABLE testbed_sandboxes_old RENAME TO testbed_sandboxes;
CREATE INDEX testbed_sandboxes_org ON testbed_sandboxes (org_id, created_ms);
CREATE INDEX testbed_sandboxes_state ON testbed_sandboxes (state);

CREATE TABLE testbed_entitlements_old (
    org_id TEXT NOT NULL,
    listing_id TEXT NOT NULL,
    entitlement_id TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    expires_ms BIGINT NOT NULL DEFAULT 0,
    at_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (org_id, listing_id)
);
INSERT INTO testbed_entitlements_old (org_id, listing_id, entitlement_id, active, expires_ms, at_ms, updated_ms)
SELECT
    org_id, listing_id, entitlement_id, active,
    COALESCE(CAST(strftime('%s', expires_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', expires_at), 4) AS INTEGER), 0),
    CAST(strftime('%s', at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', at), 4) AS INTEGER),
    CAST(strftime('%s', updated_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', updated_at), 4) AS INTEGER)
FROM testbed_entitlements;
DROP TABLE testbed_entitlements;
ALTER TABLE testbed_entitlements_old RENAME TO testbed_entitlements;

CREATE TABLE testbed_image_listings_old (
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
INSERT INTO testbed_image_listings_old (id, vendor_org_id, kind, title, image, command, ports, visible_to, gated,
    version, updated_ms)
SELECT
    id, vendor_org_id, kind, title, image, command, ports, visible_to, gated, version,
    CAST(strftime('%s', updated_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', updated_at), 4) AS INTEGER)
FROM testbed_image_listings;
DROP TABLE testbed_image_listings;
ALTER TABLE testbed_image_listings_old RENAME TO testbed_image_listings;

CREATE TABLE testbed_listings_old (
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
    updated_ms BIGINT NOT NULL,
    visible_to TEXT NOT NULL DEFAULT '',
    gated BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO testbed_listings_old (id, vendor_org_id, title, pool_id, gpu_model, region, min_minutes, max_minutes,
    price_per_gpu_hour, plan_id, version, updated_ms, visible_to, gated)
SELECT
    id, vendor_org_id, title, pool_id, gpu_model, region, min_minutes, max_minutes, price_per_gpu_hour, plan_id,
    version,
    CAST(strftime('%s', updated_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', updated_at), 4) AS INTEGER),
    visible_to, gated
FROM testbed_listings;
DROP TABLE testbed_listings;
ALTER TABLE testbed_listings_old RENAME TO testbed_listings;

CREATE TABLE testbed_device_claims_old (
    device_id TEXT PRIMARY KEY,
    sandbox_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    pool_id TEXT NOT NULL,
    gpu_model TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL
);
INSERT INTO testbed_device_claims_old (device_id, sandbox_id, node_id, pool_id, gpu_model, expires_ms, created_ms)
SELECT
    device_id, sandbox_id, node_id, pool_id, gpu_model,
    CAST(strftime('%s', expires_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', expires_at), 4) AS INTEGER),
    CAST(strftime('%s', created_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', created_at), 4) AS INTEGER)
FROM testbed_device_claims;
DROP TABLE testbed_device_claims;
ALTER TABLE testbed_device_claims_old RENAME TO testbed_device_claims;
CREATE INDEX testbed_device_claims_sandbox ON testbed_device_claims (sandbox_id);

CREATE TABLE testbed_agent_tokens_old (
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
INSERT INTO testbed_agent_tokens_old (id, pool_id, token_hash, note, created_by, created_ms, expires_ms, used_ms,
    agent_id, revoked_ms)
SELECT
    id, pool_id, token_hash, note, created_by,
    CAST(strftime('%s', created_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', created_at), 4) AS INTEGER),
    CAST(strftime('%s', expires_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', expires_at), 4) AS INTEGER),
    COALESCE(CAST(strftime('%s', used_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', used_at), 4) AS INTEGER), 0),
    agent_id,
    COALESCE(CAST(strftime('%s', revoked_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', revoked_at), 4) AS INTEGER), 0)
FROM testbed_agent_tokens;
DROP TABLE testbed_agent_tokens;
ALTER TABLE testbed_agent_tokens_old RENAME TO testbed_agent_tokens;
CREATE INDEX testbed_agent_tokens_pool ON testbed_agent_tokens (pool_id);

CREATE TABLE testbed_agents_old (
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
    revoked_ms BIGINT NOT NULL DEFAULT 0,
    gpu_sampler BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO testbed_agents_old (id, pool_id, name, version, backend, problem, boot, nats_user, created_by,
    created_ms, heartbeat_ms, revoked_ms, gpu_sampler)
SELECT
    id, pool_id, name, version, backend, problem, boot, nats_user, created_by,
    CAST(strftime('%s', created_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', created_at), 4) AS INTEGER),
    COALESCE(CAST(strftime('%s', heartbeat_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', heartbeat_at), 4) AS INTEGER), 0),
    COALESCE(CAST(strftime('%s', revoked_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', revoked_at), 4) AS INTEGER), 0),
    gpu_sampler
FROM testbed_agents;
DROP TABLE testbed_agents;
ALTER TABLE testbed_agents_old RENAME TO testbed_agents;
CREATE INDEX testbed_agents_pool ON testbed_agents (pool_id);

CREATE TABLE testbed_nodes_old (
    id TEXT PRIMARY KEY,
    pool_id TEXT NOT NULL,
    name TEXT NOT NULL,
    health TEXT NOT NULL,
    cpu_millis BIGINT NOT NULL,
    memory_bytes BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    agent_id TEXT NOT NULL DEFAULT '',
    agent_health TEXT NOT NULL DEFAULT ''
);
INSERT INTO testbed_nodes_old (id, pool_id, name, health, cpu_millis, memory_bytes, heartbeat_ms, created_ms,
    agent_id, agent_health)
SELECT
    id, pool_id, name, health, cpu_millis, memory_bytes,
    CAST(strftime('%s', heartbeat_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', heartbeat_at), 4) AS INTEGER),
    CAST(strftime('%s', created_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', created_at), 4) AS INTEGER),
    agent_id, agent_health
FROM testbed_nodes;
DROP TABLE testbed_nodes;
ALTER TABLE testbed_nodes_old RENAME TO testbed_nodes;
CREATE UNIQUE INDEX testbed_nodes_name ON testbed_nodes (pool_id, name);

CREATE TABLE testbed_pools_old (
    id TEXT PRIMARY KEY,
    vendor_org_id TEXT NOT NULL,
    name TEXT NOT NULL,
    region TEXT NOT NULL,
    backend TEXT NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}',
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
INSERT INTO testbed_pools_old (id, vendor_org_id, name, region, backend, settings, created_ms, updated_ms)
SELECT
    id, vendor_org_id, name, region, backend, settings,
    CAST(strftime('%s', created_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', created_at), 4) AS INTEGER),
    CAST(strftime('%s', updated_at) AS INTEGER) * 1000
        + CAST(substr(strftime('%f', updated_at), 4) AS INTEGER)
FROM testbed_pools;
DROP TABLE testbed_pools;
ALTER TABLE testbed_pools_old RENAME TO testbed_pools;
CREATE UNIQUE INDEX testbed_pools_name ON testbed_pools (vendor_org_id, name);
