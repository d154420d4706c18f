-- +goose Up
-- Device login (OAuth 2.0 Device Authorization Grant, RFC 8628; docs/identity.md, "Device login"). A row is
-- one pending request of a client without a browser (the CLI): device_hash and user_hash are the SHA-256 of
-- the device code (the client's secret) and of the normalised user code (typed on the web UI's /device page);
-- no code is stored. A signed-in user approves (user_id, organization_id and mfa: the approving session's,
-- which vouches for the session the exchange opens) or denies it; the client's exchange marks it used. Rows
-- are pruned an hour after they expire.
CREATE TABLE identity_device_codes (
    id TEXT PRIMARY KEY,
    device_hash TEXT NOT NULL UNIQUE,
    user_hash TEXT NOT NULL UNIQUE,
    client_name TEXT NOT NULL DEFAULT '',
    ip TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    interval_seconds INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    last_polled_at TIMESTAMP NULL,
    user_id TEXT NOT NULL DEFAULT '',
    organization_id TEXT NOT NULL DEFAULT '',
    mfa BOOLEAN NOT NULL DEFAULT FALSE,
    decided_at TIMESTAMP NULL,
    session_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX identity_device_codes_expires ON identity_device_codes (expires_at);

-- The session a device login opened is named for the client ("tamarack CLI on build-01") in the session list.
ALTER TABLE identity_sessions ADD COLUMN client_name TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE identity_sessions DROP COLUMN client_name;
DROP TABLE identity_device_codes;
