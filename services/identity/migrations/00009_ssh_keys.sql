-- +goose Up
-- SSH public keys users register on their profile; the testbed's SSH gateway looks a connecting key up by its
-- SHA256 fingerprint (docs/ssh.md). A key belongs to one user only: the fingerprint is unique.
CREATE TABLE identity_ssh_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    key_type TEXT NOT NULL,
    public_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP NULL
);
CREATE UNIQUE INDEX identity_ssh_keys_fingerprint ON identity_ssh_keys (fingerprint);
CREATE INDEX identity_ssh_keys_user ON identity_ssh_keys (user_id, id);

-- +goose Down
DROP TABLE identity_ssh_keys;
