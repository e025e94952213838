#!/usr/bin/env bash
# Runs the whole test suite, setting up its dependencies first
# (scripts/test-deps.sh): unit tests, then the integration suite twice — on
# embedded SQLite and on PostgreSQL (127.0.0.1:5432, user postgres, db test;
# override with FEDGATE_TEST_DATABASE_URL). Each PostgreSQL test runs in a
# schema of its own; schemas left by earlier runs are dropped first
# (scripts/test-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

PG_URL="${FEDGATE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"

# Installs (on Debian, as root) and starts what the tests need, and drops
# the PostgreSQL schemas earlier runs left.
./scripts/test-deps.sh

# The integration tests spend most of their time waiting (servers starting,
# change feeds, browsers), not on the CPU: the whole suite used under 3 min
# of CPU in 12 min of wall time with the default of one thread per core.
# Eight at once keep 2 cores busy (SQLite pass 301 s -> 80 s, PostgreSQL
# 362 s -> 104 s). Override with RUST_TEST_THREADS.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-8}"

echo "== unit tests and integration suite on SQLite (PostgreSQL-only tests listed as ignored)"
FEDGATE_TEST_DATABASE_URL= cargo test --all-targets
echo "== integration suite on PostgreSQL, the PostgreSQL-only tests included"
FEDGATE_TEST_DATABASE_URL="$PG_URL" cargo test --test it -- --include-ignored
