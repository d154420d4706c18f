-- +goose Up
-- E-mail verification, password reset and invitation management (docs/identity.md, "E-mail verification,
-- password reset and invitations"). Accounts that exist before this migration count as verified: they were
-- created before verification existed, and locking their owners out of spending at deploy time would be worse
-- than trusting them.
ALTER TABLE identity_users ADD COLUMN email_verified_at TIMESTAMP NULL;
UPDATE identity_users SET email_verified_at = created_at;

-- Single-use links sent by e-mail: purpose is verify_email or reset_password. Only the token's SHA-256 is
-- stored; email is the address the link was sent to (a verification link proves that address only).
CREATE TABLE identity_email_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    email TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP NULL
);
CREATE UNIQUE INDEX identity_email_tokens_hash ON identity_email_tokens (token_hash);
CREATE INDEX identity_email_tokens_user ON identity_email_tokens (user_id, purpose);

ALTER TABLE identity_invitations ADD COLUMN revoked_at TIMESTAMP NULL;
ALTER TABLE identity_invitations ADD COLUMN revoked_by TEXT NOT NULL DEFAULT '';
CREATE INDEX identity_invitations_org_id ON identity_invitations (organization_id, id);

-- +goose Down
DROP INDEX identity_invitations_org_id;
ALTER TABLE identity_invitations DROP COLUMN revoked_by;
ALTER TABLE identity_invitations DROP COLUMN revoked_at;
DROP TABLE identity_email_tokens;
ALTER TABLE identity_users DROP COLUMN email_verified_at;
