#!/usr/bin/env bash
# Runs the whole test suite: unit tests, then the integration suite twice —
# on embedded SQLite and on PostgreSQL (127.0.0.1:5432, user postgres, db test;
# override with FEDGATE_TEST_DATABASE_URL). Each PostgreSQL test runs in a
# schema of its own; schemas left by earlier runs are dropped first.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_URL="${FEDGATE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"

if ! psql "$PG_URL" -qAtc 'SELECT 1' >/dev/null 2>&1; then
  echo "PostgreSQL is not reachable at $PG_URL; start it (see .ci/run) or set FEDGATE_TEST_DATABASE_URL" >&2
  exit 1
fi
psql "$PG_URL" -qAt <<'SQL' >/dev/null
DO $$
DECLARE s text;
BEGIN
  FOR s IN SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\_%' LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', s);
  END LOOP;
END $$;
SQL

echo "== unit tests and integration suite on SQLite"
cargo test --all-targets
echo "== integration suite on PostgreSQL"
FEDGATE_TEST_DATABASE_URL="$PG_URL" cargo test --test it
