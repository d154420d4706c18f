-- +goose Up
-- Two-step sign-in (docs/identity.md, "Two-step sign-in (MFA)"). The TOTP secret is sealed like the signing
-- keys; recovery codes and challenge tokens are stored as SHA-256 hashes only. last_step is the last TOTP time
-- step accepted, so a code is never accepted twice.
CREATE TABLE identity_mfa (
    user_id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    confirmed_at TIMESTAMP NULL,
    last_step BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE identity_mfa_recovery_codes (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP NULL
);
CREATE INDEX identity_mfa_recovery_codes_user ON identity_mfa_recovery_codes (user_id, code_hash);

-- A password accepted for an account with MFA on: the short-lived token that the second step presents.
CREATE TABLE identity_mfa_challenges (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    user_id TEXT NOT NULL,
    organization_id TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP NULL
);
CREATE UNIQUE INDEX identity_mfa_challenges_token ON identity_mfa_challenges (token_hash);
CREATE INDEX identity_mfa_challenges_expires ON identity_mfa_challenges (expires_at);

-- Refresh-token families opened with a second factor: their refreshed access tokens keep the mfa amr.
CREATE TABLE identity_mfa_sessions (
    family_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX identity_mfa_sessions_user ON identity_mfa_sessions (user_id);

ALTER TABLE identity_organizations ADD COLUMN require_mfa BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE identity_organizations DROP COLUMN require_mfa;
DROP TABLE identity_mfa_sessions;
DROP TABLE identity_mfa_challenges;
DROP TABLE identity_mfa_recovery_codes;
DROP TABLE identity_mfa;
