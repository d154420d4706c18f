-- +goose Up
-- Failed sign-in counters shared by every identity process (docs/identity.md, "Sign-in throttling"). id is a
-- counter kind and a SHA-256 of what it counts ("pair:" account and client IP, "ip:", "acct:"), so the table
-- holds neither e-mail addresses nor IPs in plain. Times are Unix milliseconds, compared alike on both engines.
CREATE TABLE identity_login_throttle (
    id TEXT PRIMARY KEY,
    failures INTEGER NOT NULL DEFAULT 0,
    last_failure_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX identity_login_throttle_last ON identity_login_throttle (last_failure_at);

-- +goose Down
DROP TABLE identity_login_throttle;
