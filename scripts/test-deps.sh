#!/usr/bin/env bash
# Makes sure everything the test suite needs is on this machine and running:
# the Debian packages listed below (installed when missing) and PostgreSQL on
# 127.0.0.1:5432 (user postgres, trust auth, database "test"). Called by
# scripts/test.sh, so the README's test command works on a fresh Debian
# machine; safe to run again.
set -euo pipefail

# Debian packages the tests use: "command-to-look-for:package".
DEPS=(
  "pg_isready:postgresql"
  "chromium:chromium"
  "chromedriver:chromium-driver"
  # The docs tests (tests/it/docs.rs) run the README's and guides' commands.
  "curl:curl"
  "jq:jq"
  "openssl:openssl"
  "xxd:xxd"
  # The reverse proxy of the --trusted-proxies test (tests/it/edge.rs).
  "nginx:nginx"
)

PG_URL="${FEDGATE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"

missing=()
for dep in "${DEPS[@]}"; do
  command -v "${dep%%:*}" >/dev/null 2>&1 || missing+=("${dep##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "missing test dependencies: ${missing[*]} (install them, e.g. apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "== installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# PostgreSQL: only the default local server is started here; a URL pointing
# elsewhere (FEDGATE_TEST_DATABASE_URL) must already be reachable.
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  cluster_version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if [ -n "$cluster_version" ]; then
    pg_ctlcluster --skip-systemctl-redirect "$cluster_version" main start || true
  fi
  for _ in $(seq 1 30); do
    pg_isready -h 127.0.0.1 -p 5432 -q && break
    sleep 1
  done
fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  echo "PostgreSQL did not start on 127.0.0.1:5432; see 'pg_lsclusters'" >&2
  exit 1
fi
# Trust auth for local TCP connections as user postgres (what the tests use).
if ! psql -h 127.0.0.1 -U postgres -d postgres -qAtc 'SELECT 1' >/dev/null 2>&1; then
  hba=$(ls /etc/postgresql/*/main/pg_hba.conf | sort -V | tail -n 1)
  sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
  cluster_version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$cluster_version" main reload
  sleep 1
fi
psql -h 127.0.0.1 -U postgres -d postgres -qAtc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE test"
if ! psql "$PG_URL" -qAtc 'SELECT 1' >/dev/null 2>&1; then
  echo "PostgreSQL is not reachable at $PG_URL; check FEDGATE_TEST_DATABASE_URL" >&2
  exit 1
fi

# The suite runs 8 tests at a time (scripts/test.sh), each with servers whose
# pools open up to 16 connections, and the replica tests start three servers:
# PostgreSQL's default of 100 connections ran out ("sorry, too many clients
# already"). Raised once, with a restart, only when lower.
max_conn=$(psql "$PG_URL" -qAtc 'SHOW max_connections')
if [ "$max_conn" -lt 400 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL allows $max_conn connections; the suite needs 400: ALTER SYSTEM SET max_connections = 400, then restart it" >&2
    exit 1
  fi
  echo "== raising PostgreSQL's max_connections from $max_conn to 400 (restart)"
  psql "$PG_URL" -qAtc 'ALTER SYSTEM SET max_connections = 400' >/dev/null
  cluster_version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$cluster_version" main restart
  for _ in $(seq 1 30); do
    pg_isready -h 127.0.0.1 -p 5432 -q && break
    sleep 1
  done
fi

# Each PostgreSQL test runs in a schema of its own (t_<pid>_<n>_<random>),
# which the next run drops here: .ci/run calls this script while the code
# compiles, so a few hundred drops cost the test command nothing. One
# statement (so one transaction) per schema: dropping hundreds in one
# transaction runs out of lock slots ("out of shared memory").
PGOPTIONS='-c client_min_messages=warning' psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
SELECT format('DROP SCHEMA %I CASCADE', nspname) FROM pg_namespace WHERE nspname LIKE 't\_%' \gexec
SQL
