-- +goose Up
-- OIDC sign-in (docs/identity.md, "Sign-in with an OpenID Connect provider").
-- A pending authorisation request: id is the SHA-256 of the state parameter, browser_hash the SHA-256 of the
-- cookie that binds it to the browser that started it. Rows are deleted when used or expired.
CREATE TABLE identity_oidc_states (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    nonce TEXT NOT NULL,
    verifier TEXT NOT NULL,
    browser_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX identity_oidc_states_expires ON identity_oidc_states (expires_at);

-- A sign-in code: the provider's callback signed the user in and redirected the browser to the web UI with
-- it; the UI trades it for tokens (POST /oidc/exchange) once, within 60 s, from the browser of browser_hash
-- (the same cookie as the state's). id is the SHA-256 of the code; no token is stored. Rows are deleted when
-- used or expired.
CREATE TABLE identity_oidc_codes (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    user_id TEXT NOT NULL,
    browser_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX identity_oidc_codes_expires ON identity_oidc_codes (expires_at);

-- An account's link to a provider's subject: the issuer's stable user ID, recorded when the provider first
-- vouched for the account's e-mail, so later sign-ins find the account even if the e-mail there changes.
CREATE TABLE identity_oidc_links (
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    provider TEXT NOT NULL,
    user_id TEXT NOT NULL,
    email TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_login_at TIMESTAMP NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX identity_oidc_links_user ON identity_oidc_links (user_id);

-- +goose Down
DROP TABLE identity_oidc_links;
DROP TABLE identity_oidc_codes;
DROP TABLE identity_oidc_states;
