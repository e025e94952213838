-- The console (issue 13): server-side sessions, per-org SSO settings and the
-- short-lived state of an SSO sign-in between the redirect and the callback.

-- A console session. Only the SHA-256 of the cookie's secret is stored. A
-- session signed in with an API key remembers that key, so revoking it ends
-- the session; the owner's disable/revocation watermark ends it too.
CREATE TABLE console_sessions (
    id_hash      TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    key_id       TEXT,
    csrf         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions(user_id);

-- An org's OpenID Connect provider for "Sign in with SSO". The client secret
-- is presented to the provider, so it is kept (never shown again).
CREATE TABLE sso_configs (
    org_id        TEXT PRIMARY KEY REFERENCES orgs(id),
    issuer        TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    create_users  BOOLEAN NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- A sign-in in flight: found by the SHA-256 of its `state`, used once.
CREATE TABLE sso_logins (
    state_hash    TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
