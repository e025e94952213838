-- The whole lifecycle (issue 12) and revocable people (issue 10).

-- A person can be disabled like a service account: credentials issued before
-- `revoked_before` (ms) stay refused after a re-enable.
ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN revoked_before BIGINT NOT NULL DEFAULT 0;

-- A service account's display field (PATCH).
ALTER TABLE service_accounts ADD COLUMN description TEXT NOT NULL DEFAULT '';

-- A binding in `shadow` mode mints nothing; matches are only audited.
ALTER TABLE federation_bindings ADD COLUMN mode TEXT NOT NULL DEFAULT 'enforce';

-- Deleted users and service accounts: their rows are gone (so the name can be
-- used again and every credential dies with the row), but the runs they
-- logged keep naming them.
CREATE TABLE deleted_principals (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    deleted_at  BIGINT NOT NULL
);

-- Paginated listing by name.
CREATE INDEX users_org_name ON users(org_id, username);
