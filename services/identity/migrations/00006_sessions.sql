-- +goose Up
-- A session is one sign-in: its refresh-token family (id = family_id). It records the device and address the
-- user signed in from and was last seen at, for the session list (docs/identity.md, "Sessions"). Families
-- older than this table get a row without device or address.
CREATE TABLE identity_sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    user_agent TEXT NOT NULL DEFAULT '',
    ip TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP NOT NULL,
    last_ip TEXT NOT NULL DEFAULT '',
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP NULL
);
CREATE INDEX identity_sessions_user ON identity_sessions (user_id, created_at);
CREATE INDEX identity_sessions_revoked ON identity_sessions (revoked_at);

INSERT INTO identity_sessions (id, user_id, created_at, last_used_at, expires_at, revoked_at)
SELECT family_id, MIN(user_id), MIN(created_at), MAX(created_at), MAX(expires_at), MAX(revoked_at)
FROM identity_refresh_tokens GROUP BY family_id;

-- +goose Down
DROP TABLE identity_sessions;
