-- +goose Up
CREATE TABLE identity_outbox (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX identity_outbox_created ON identity_outbox (created_at);

CREATE TABLE identity_users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_staff BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX identity_users_email ON identity_users (email);

CREATE TABLE identity_organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    verified BOOLEAN NOT NULL DEFAULT FALSE,
    verified_at TIMESTAMP NULL,
    verified_by TEXT NOT NULL DEFAULT '',
    verification_note TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX identity_organizations_kind ON identity_organizations (kind, id);

CREATE TABLE identity_memberships (
    organization_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX identity_memberships_user ON identity_memberships (user_id);

CREATE TABLE identity_invitations (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    invited_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    accepted_at TIMESTAMP NULL,
    accepted_by TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX identity_invitations_token ON identity_invitations (token_hash);
CREATE INDEX identity_invitations_org_email ON identity_invitations (organization_id, email);

CREATE TABLE identity_refresh_tokens (
    id TEXT PRIMARY KEY,
    family_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    organization_id TEXT NOT NULL DEFAULT '',
    token_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP NULL,
    revoked_at TIMESTAMP NULL
);
CREATE UNIQUE INDEX identity_refresh_tokens_hash ON identity_refresh_tokens (token_hash);
CREATE INDEX identity_refresh_tokens_family ON identity_refresh_tokens (family_id);

CREATE TABLE identity_api_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    hint TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP NULL,
    revoked_at TIMESTAMP NULL
);
CREATE UNIQUE INDEX identity_api_tokens_hash ON identity_api_tokens (token_hash);
CREATE INDEX identity_api_tokens_owner ON identity_api_tokens (organization_id, user_id);

CREATE TABLE identity_signing_keys (
    kid TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    private_key TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    retired_at TIMESTAMP NULL
);

-- Append-only: the service never updates or deletes rows; engine triggers refuse it (engine folders).
CREATE TABLE identity_audit (
    id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    actor_user_id TEXT NOT NULL DEFAULT '',
    actor_email TEXT NOT NULL DEFAULT '',
    organization_id TEXT NOT NULL DEFAULT '',
    target TEXT NOT NULL DEFAULT '',
    ip TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX identity_audit_org ON identity_audit (organization_id, id);
CREATE INDEX identity_audit_action ON identity_audit (action, id);
