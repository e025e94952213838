-- fedgate schema (DESIGN §1). Times are unix milliseconds (BIGINT) so the
-- same schema and queries serve SQLite and PostgreSQL.
CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs(id),
    username    TEXT NOT NULL UNIQUE,
    email       TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE teams (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs(id),
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE team_members (
    team_id     TEXT NOT NULL REFERENCES teams(id),
    user_id     TEXT NOT NULL REFERENCES users(id),
    role        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members(user_id);

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    team_id     TEXT NOT NULL REFERENCES teams(id),
    name        TEXT NOT NULL,
    visibility  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (team_id, name)
);

CREATE TABLE project_members (
    project_id     TEXT NOT NULL REFERENCES projects(id),
    principal_id   TEXT NOT NULL,
    principal_kind TEXT NOT NULL,
    role           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (project_id, principal_id)
);

CREATE TABLE trusted_issuers (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs(id),
    issuer          TEXT NOT NULL,
    jwks_uri        TEXT,
    static_jwks     TEXT,
    audiences       TEXT NOT NULL,
    allowed_algs    TEXT NOT NULL,
    max_token_age_s BIGINT NOT NULL,
    leeway_s        BIGINT NOT NULL,
    single_use_jti  BOOLEAN NOT NULL,
    users           BOOLEAN NOT NULL,
    created_at      BIGINT NOT NULL,
    UNIQUE (org_id, issuer)
);

CREATE TABLE service_accounts (
    id                   TEXT PRIMARY KEY,
    org_id               TEXT NOT NULL REFERENCES orgs(id),
    name                 TEXT NOT NULL,
    scope                TEXT NOT NULL,
    team_id              TEXT NOT NULL REFERENCES teams(id),
    auth                 TEXT NOT NULL,
    disabled             BOOLEAN NOT NULL,
    revoked_before       BIGINT NOT NULL,
    max_token_lifetime_s BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    UNIQUE (org_id, name)
);
CREATE INDEX service_accounts_team ON service_accounts(team_id);

CREATE TABLE federation_bindings (
    sa_id      TEXT PRIMARY KEY REFERENCES service_accounts(id),
    issuer_id  TEXT NOT NULL REFERENCES trusted_issuers(id),
    spec       TEXT NOT NULL
);
CREATE INDEX federation_bindings_issuer ON federation_bindings(issuer_id);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    owner_id     TEXT NOT NULL,
    owner_kind   TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_keys_owner ON api_keys(owner_id);

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_key TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);

CREATE TABLE runs (
    seq                BIGSERIAL PRIMARY KEY,
    id                 TEXT NOT NULL UNIQUE,
    project_id         TEXT NOT NULL REFERENCES projects(id),
    created_by         TEXT NOT NULL,
    created_by_kind    TEXT NOT NULL,
    attributed_user_id TEXT,
    name               TEXT NOT NULL,
    config             TEXT NOT NULL,
    created_at         BIGINT NOT NULL
);
CREATE INDEX runs_project ON runs(project_id, seq);

CREATE TABLE used_jtis (
    issuer_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (issuer_id, jti)
);

CREATE TABLE audit_events (
    seq        BIGSERIAL PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    org_id     TEXT NOT NULL,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    reason     TEXT NOT NULL,
    request_id TEXT NOT NULL,
    details    TEXT NOT NULL
);
CREATE INDEX audit_events_org ON audit_events(org_id, seq);
