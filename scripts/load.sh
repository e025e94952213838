#!/usr/bin/env bash
# fedgate load run (issues 6 and 15; docs/performance.md explains the figures).
#
#   scripts/load.sh                    1 issuer, 1,000 external accounts, SQLite
#   scripts/load.sh --big              100 issuers, 10,000 external accounts (RSS and start-up goals)
#   scripts/load.sh --postgres         the same against PostgreSQL (postgres://postgres@127.0.0.1:5432/postgres)
#   scripts/load.sh --compare-postgres SQLite and PostgreSQL side by side in one run, and their ratios
#
# Options: --accounts N  --issuers M  --duration SECONDS (per phase, default 10)
#          --connections C (default 16)  --port P (default 18080; P+1 for the second store)
#          --starts K (timed restarts, default 5)  --keep (keep the work dir)
#          --database-url URL  a PostgreSQL server to use (postgres://USER[:PASS]@HOST:PORT/DB):
#                              the run creates a fresh database fedgate_load_<pid> there
#                              (so it never touches the tests' schemas) and drops it on exit
#
# It builds fedgate and examples/loadgen in release mode, starts `fedgate serve`
# on 127.0.0.1 on a fresh store (exchange rate limit off), registers issuers with
# a static JWKS (no IdP server, no network) and the accounts through the admin
# API, mints one distinct IdP token per account, then drives with wrk, one phase
# at a time (with two stores, each phase runs on one, then on the other):
#   healthz              GET /healthz: the HTTP floor (no work behind the HTTP layer)
#   exchange             POST /oidc/token, rotating through every IdP token
#   refused/unknown-iss  exchange of tokens whose `iss` no issuer has
#   refused/unknown-kid  exchange of tokens of an issuer whose keys fedgate fetches
#                        (from its own /.well-known/jwks.json), with a `kid` the set
#                        lacks: the one refresh is done before, the flood meets the cooldown
#   refused/bad-sig      exchange of valid tokens with a changed signature byte
#   viewer/token, viewer/key, runs/token, runs/key
#                        GET /api/v1/viewer and POST /api/v1/runs with exchanged
#                        access tokens and with API keys
#   at/expired           GET /api/v1/viewer with real access tokens that expired
#                        (minted 60 s-lived after setup)
#   at/malformed         ... with a real token's header and signature around a non-JSON payload
#   at/unknown-kid       ... with well-formed tokens signed by a key fedgate never had
# For each: requests/s and p50/p99 latency (wrk), and fedgate's own CPU time per
# request (utime+stime of its process from /proc/<pid>/stat, before and after),
# the figure the load generator sharing the cores cannot distort. A phase that
# should succeed fails the run on any non-2xx answer or socket error; a refusal
# phase fails it unless every answer is a 4xx other than 429. The crypto floor
# (bare RS256 verify + ES256 sign) is measured in the same run. Then cache and
# fetch figures from /metrics, RSS, and the time to ready (median of --starts
# restarts) on the store as set up and again after the load.
#
# Every wrk run has a duration, every loop a count, every wait a timeout; all
# traffic goes to 127.0.0.1. Servers are stopped (and a created database
# dropped) on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

ACCOUNTS=1000
ISSUERS=1
API_KEYS=100
DURATION=10
CONNECTIONS=16
PORT=18080
STARTS=5
KEEP=0
PG_URL=""
MODE=sqlite # sqlite | postgres | compare
DEFAULT_PG=postgres://postgres@127.0.0.1:5432/postgres
while [ $# -gt 0 ]; do
    case "$1" in
        --big) ACCOUNTS=10000; ISSUERS=100 ;;
        --accounts) ACCOUNTS="$2"; shift ;;
        --issuers) ISSUERS="$2"; shift ;;
        --duration) DURATION="$2"; shift ;;
        --connections) CONNECTIONS="$2"; shift ;;
        --port) PORT="$2"; shift ;;
        --starts) STARTS="$2"; shift ;;
        --keep) KEEP=1 ;;
        --database-url)
            PG_URL="$2"; shift
            case "$PG_URL" in
                postgres://*|postgresql://*) ;;
                sqlite:*) echo "SQLite is the default (a fresh file per run): omit --database-url" >&2; exit 2 ;;
                *) echo "--database-url must be postgres://…" >&2; exit 2 ;;
            esac
            [ "$MODE" = compare ] || MODE=postgres ;;
        --postgres) [ "$MODE" = compare ] || MODE=postgres ;;
        --compare-postgres) MODE=compare ;;
        -h|--help) sed -n '2,44p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$PG_URL" ] || PG_URL=$DEFAULT_PG

log() { printf '%s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

apt_install() {
    apt-get install -y "$@" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "$@" >/dev/null; }
}
command -v wrk >/dev/null 2>&1 || { log "installing wrk (Debian package)…"; apt_install wrk; }
command -v curl >/dev/null 2>&1 || apt_install curl
if [ "$MODE" != sqlite ]; then
    command -v psql >/dev/null 2>&1 || apt_install postgresql-client
fi

log "building fedgate and examples/loadgen (release)…"
cargo build --release --quiet --bin fedgate --example loadgen
BIN=target/release/fedgate
GEN=target/release/examples/loadgen
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fedgate-load.XXXXXX")
PG_DB="fedgate_load_$$"
PG_CREATED=0

# Targets: one per store, each with its own server, port and work dir.
case "$MODE" in
    sqlite) T_NAME=(sqlite) ;;
    postgres) T_NAME=(postgres) ;;
    compare) T_NAME=(sqlite postgres) ;;
esac
T_PID=(); T_PORT=(); T_BASE=(); T_DB=(); T_DIR=(); T_ADMIN=()
pg_server_url() { # the URL with the database replaced
    local u="${PG_URL%%\?*}"
    printf '%s/%s' "${u%/*}" "$1"
}
for i in "${!T_NAME[@]}"; do
    T_PORT[i]=$((PORT + i))
    T_BASE[i]="http://127.0.0.1:${T_PORT[i]}"
    T_DIR[i]="$WORK/${T_NAME[i]}"
    mkdir -p "${T_DIR[i]}"
    if [ "${T_NAME[i]}" = sqlite ]; then
        T_DB[i]="sqlite://${T_DIR[i]}/fedgate.db"
    else
        T_DB[i]=$(pg_server_url "$PG_DB")
    fi
    T_PID[i]=""
done

stop_server() {
    local i=$1 pid=${T_PID[$1]:-}
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    T_PID[i]=""
}
cleanup() {
    for i in "${!T_NAME[@]}"; do stop_server "$i"; done
    if [ "$PG_CREATED" = 1 ]; then
        timeout 30 psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 \
            || log "could not drop database $PG_DB"
    fi
    if [ "$KEEP" = 1 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$MODE" != sqlite ]; then
    timeout 30 psql "$PG_URL" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE $PG_DB" >/dev/null \
        || die "cannot create database $PG_DB on $PG_URL"
    PG_CREATED=1
    log "PostgreSQL: fresh database $PG_DB"
fi

# Starts fedgate for target $1 (sets T_PID); READY_MS = milliseconds until /readyz answered 200.
READY_MS=""
start_server() {
    local i=$1 t0 t1 base=${T_BASE[$1]}
    t0=$(date +%s%N)
    FEDGATE_EXCHANGE_RATE_LIMIT=0 FEDGATE_JWKS_REFRESH_COOLDOWN=600 \
        "$BIN" serve --database-url "${T_DB[i]}" --listen "127.0.0.1:${T_PORT[i]}" \
        --allow-insecure-issuers >>"${T_DIR[i]}/server.log" 2>&1 &
    T_PID[i]=$!
    for _ in $(seq 1 5000); do
        if curl -fs -o /dev/null "$base/readyz"; then
            t1=$(date +%s%N)
            READY_MS=$(( (t1 - t0) / 1000000 ))
            return 0
        fi
        kill -0 "${T_PID[i]}" 2>/dev/null || { cat "${T_DIR[i]}/server.log" >&2; die "fedgate (${T_NAME[i]}) exited"; }
        sleep 0.002
    done
    die "fedgate (${T_NAME[i]}) not ready after 10 s"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/${T_PID[$1]}/stat"; }
# PostgreSQL does part of a PostgreSQL store's work in its own server processes:
# "pid ticks" of every backend connected to the run's database (the server
# runs on this machine; a backend that starts and ends within a phase is missed).
pg_backend_ticks() {
    local pid
    for pid in $(timeout 10 psql "$PG_URL" -Atc "SELECT pid FROM pg_stat_activity WHERE datname = '$PG_DB'"); do
        [ -r "/proc/$pid/stat" ] && awk -v p="$pid" '{print p, $14 + $15}' "/proc/$pid/stat"
    done
    return 0
}
# pg_delta BEFORE AFTER: ticks spent between two pg_backend_ticks listings.
pg_delta() {
    awk 'NR == FNR {b[$1] = $2; next} {s += $2 - (($1 in b) ? b[$1] : 0)} END {print s + 0}' "$1" "$2"
}

# time_starts TARGET KEY: STARTS timed starts (the server is stopped before
# and after); READY_ALL[TARGET/KEY] lists them, READY[TARGET/KEY] is the median.
declare -A READY READY_ALL
time_starts() {
    local i=$1 key=$2 ready=()
    stop_server "$i"
    for _ in $(seq 1 "$STARTS"); do
        start_server "$i"
        ready+=("$READY_MS")
        stop_server "$i"
    done
    READY_ALL[$i/$key]=$(printf '%s\n' "${ready[@]}" | sort -n | tr '\n' ' ')
    READY[$i/$key]=$(printf '%s\n' "${ready[@]}" | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}')
}

for i in "${!T_NAME[@]}"; do
    if curl -fs -o /dev/null "${T_BASE[i]}/readyz" 2>/dev/null; then
        die "something already answers on ${T_BASE[i]}: stop it or pass --port"
    fi
    start_server "$i"
    T_ADMIN[i]=$(grep -oE 'fgk_[0-9A-Za-z]{29}_[0-9A-Za-z]{6}' "${T_DIR[i]}/server.log" | head -1)
    [ -n "${T_ADMIN[i]}" ] || die "no bootstrap admin key in the ${T_NAME[i]} server log"
    log "fedgate (${T_NAME[i]}) pid ${T_PID[i]} ready in ${READY_MS} ms (empty store)"
    "$GEN" setup --base "${T_BASE[i]}" --admin-key "${T_ADMIN[i]}" --accounts "$ACCOUNTS" \
        --issuers "$ISSUERS" --api-keys "$API_KEYS" --out "${T_DIR[i]}" \
        --fetched-jwks-uri "${T_BASE[i]}/.well-known/jwks.json"
    # Start-up with the accounts and issuers only (the load below adds an
    # audit row per exchange and refusal, about a million rows).
    log "timing start-up on the store as set up ($STARTS starts)…"
    time_starts "$i" setup
    start_server "$i"
done
# Access tokens that live 60 s, for the expired flood at the end.
for i in "${!T_NAME[@]}"; do
    "$GEN" exchange --base "${T_BASE[i]}" --tokens "${T_DIR[i]}/expiring_idp_tokens.txt" \
        --count 1000 --out "${T_DIR[i]}/at_expired.txt"
done
EXPIRED_AT=$(( $(date +%s) + 62 ))
"$GEN" refusals --accounts "$ACCOUNTS" --issuers "$ISSUERS" --count 2000 --out "$WORK"
log "measuring the crypto floor (bare RS256 verify + ES256 sign)…"
FLOOR_JSON=$("$GEN" floor --seconds 4)
FLOOR_US=$(echo "$FLOOR_JSON" | sed 's/.*"floor_us": \([0-9.]*\).*/\1/')
log "floor: $FLOOR_JSON"

# wrk scripts. Refusal phases count the status of every answer (in the one
# wrk thread) and print them as a "statuses:" line.
COUNT_LUA='
statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local out = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do table.insert(out, k .. "=" .. v) end
  end
  io.write("statuses: " .. table.concat(out, " ") .. "\n")
end
'
cat >"$WORK/exchange.lua" <<'EOF'
local reqs, n, i = {}, 0, 0
init = function(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      n = n + 1
      reqs[n] = wrk.format("POST", "/oidc/token",
        { ["Content-Type"] = "application/x-www-form-urlencoded" },
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=" .. line)
    end
  end
end
request = function()
  i = i % n + 1
  return reqs[i]
end
EOF
cat >"$WORK/bearer.lua" <<'EOF'
local reqs, n, i = {}, 0, 0
init = function(args)
  local method, path, body = args[2], args[3], args[4]
  for line in io.lines(args[1]) do
    if #line > 0 then
      n = n + 1
      local headers = { ["Authorization"] = "Bearer " .. line }
      if body ~= nil and #body > 0 then headers["Content-Type"] = "application/json" end
      reqs[n] = wrk.format(method, path, headers, body)
    end
  end
end
request = function()
  i = i % n + 1
  return reqs[i]
end
EOF
{ cat "$WORK/exchange.lua"; echo "$COUNT_LUA"; } >"$WORK/exchange-refused.lua"
{ cat "$WORK/bearer.lua"; echo "$COUNT_LUA"; } >"$WORK/bearer-refused.lua"
cat >"$WORK/healthz.lua" <<'EOF'
wrk.path = "/healthz"
EOF

# to_us "1.23ms" → microseconds
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") m = 1; else if (u == "ms") m = 1000; else if (u == "s") m = 1000000; else m = 1;
        printf "%.0f", n * m }'
}

REPORT="$WORK/report.md"
{
    echo "| store | phase | requests | req/s | p50 µs | p99 µs | answers | fedgate CPU µs/req | + PostgreSQL backends µs/req |"
    echo "|---|---|---|---|---|---|---|---|---|"
} >"$REPORT"

declare -A CPU RPS P99 PGCPU
# phase TARGET NAME EXPECT SCRIPT ARGS... : one wrk run against target TARGET.
# EXPECT: ok (every answer 2xx) or refused (every answer a 4xx other than 429).
phase() {
    local i="$1" name="$2" expect="$3" script="$4"; shift 4
    local c0 c1 out reqs rps p50 p99 bad sock cpu answers pg="-"
    out="${T_DIR[i]}/wrk-${name//\//-}.txt"
    [ "${T_NAME[i]}" = postgres ] && pg_backend_ticks >"$WORK/pg0.txt"
    c0=$(cpu_ticks "$i")
    timeout $((DURATION + 60)) wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s --latency \
        -s "$script" "${T_BASE[i]}" -- "$@" >"$out" || { cat "$out" >&2; die "wrk failed in $name"; }
    c1=$(cpu_ticks "$i")
    [ "${T_NAME[i]}" = postgres ] && pg_backend_ticks >"$WORK/pg1.txt"
    reqs=$(awk '/requests in/ {print $1}' "$out")
    rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
    p50=$(to_us "$(awk '$1 == "50%" {print $2}' "$out")")
    p99=$(to_us "$(awk '$1 == "99%" {print $2}' "$out")")
    bad=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$out"); bad=${bad:-0}
    sock=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$out"); sock=${sock:-0}
    [ "${reqs:-0}" -gt 0 ] || { cat "$out" >&2; die "${T_NAME[i]} $name: no requests completed"; }
    [ "$sock" = 0 ] || { cat "$out" >&2; die "${T_NAME[i]} $name: $sock socket errors (connect/read/write/timeout)"; }
    if [ "$expect" = ok ]; then
        [ "$bad" = 0 ] || { cat "$out" >&2; die "${T_NAME[i]} $name: $bad of $reqs answers were not 2xx"; }
        answers="2xx"
    else
        answers=$(sed -n 's/^statuses: //p' "$out")
        [ "$bad" = "$reqs" ] || { cat "$out" >&2; die "${T_NAME[i]} $name: only $bad of $reqs answers were refusals"; }
        for kv in $answers; do
            case "${kv%%=*}" in
                429) die "${T_NAME[i]} $name: rate limited ($kv): the flood measures the limiter, not the refusal" ;;
                4??) ;;
                *) cat "$out" >&2; die "${T_NAME[i]} $name: unexpected answers $answers" ;;
            esac
        done
    fi
    cpu=$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" -v r="$reqs" 'BEGIN {printf "%.1f", (b - a) / t * 1e6 / r}')
    if [ "${T_NAME[i]}" = postgres ]; then
        pg=$(awk -v d="$(pg_delta "$WORK/pg0.txt" "$WORK/pg1.txt")" -v t="$CLK_TCK" -v r="$reqs" 'BEGIN {printf "%.1f", d / t * 1e6 / r}')
    fi
    CPU["$i/$name"]=$cpu; RPS["$i/$name"]=$rps; P99["$i/$name"]=$p99; PGCPU["$i/$name"]=$pg
    echo "| ${T_NAME[i]} | $name | $reqs | $rps | $p50 | $p99 | $answers | $cpu | $pg |" >>"$REPORT"
    log "${T_NAME[i]} $name: $reqs requests, $rps req/s, p50 ${p50} µs, p99 ${p99} µs, answers $answers, fedgate CPU ${cpu} µs/request (PostgreSQL backends: $pg)"
}

# show_refusal TARGET LABEL CURL-ARGS...: one request, its answer in the log
# (so the reason fedgate names is on record), and it must be a 4xx.
show_refusal() {
    local i="$1" label="$2"; shift 2
    local code
    code=$(curl -s -o "$WORK/answer.txt" -w '%{http_code}' --max-time 10 "$@")
    log "${T_NAME[i]} $label: $code $(head -c 300 "$WORK/answer.txt")"
    case "$code" in 429) die "$label: rate limited" ;; 4??) ;; *) die "$label: expected a refusal, got $code" ;; esac
}
exchange_one() { # exchange_one TARGET FILE: the curl arguments of one exchange of FILE's first token
    printf '%s\n' "${T_BASE[$1]}/oidc/token" --data-urlencode "grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer" \
        --data-urlencode "assertion=$(head -1 "$2")"
}
each() { for i in "${!T_NAME[@]}"; do "$@" "$i"; done; }

warmup() {
    log "${T_NAME[$1]}: warm-up (2 s, not reported)…"
    timeout 60 wrk -t1 -c"$CONNECTIONS" -d2s -s "$WORK/exchange.lua" "${T_BASE[$1]}" -- "${T_DIR[$1]}/idp_tokens.txt" >/dev/null
}
each warmup
p_healthz() { phase "$1" healthz ok "$WORK/healthz.lua"; }
p_exchange() { phase "$1" exchange ok "$WORK/exchange.lua" "${T_DIR[$1]}/idp_tokens.txt"; }
each p_healthz
each p_exchange

# Refused exchanges. The unknown-kid issuer's one refresh happens here, before
# the flood; the flood then meets the cooldown (600 s).
refused_exchanges() {
    local i=$1
    mapfile -t a < <(exchange_one "$i" "$WORK/ex_unknown_issuer.txt"); show_refusal "$i" "unknown issuer" "${a[@]}"
    mapfile -t a < <(exchange_one "$i" "$WORK/ex_unknown_kid.txt"); show_refusal "$i" "unknown kid" "${a[@]}"
    mapfile -t a < <(exchange_one "$i" "$WORK/ex_bad_signature.txt"); show_refusal "$i" "bad signature" "${a[@]}"
}
each refused_exchanges
p_ref_iss() { phase "$1" refused/unknown-iss refused "$WORK/exchange-refused.lua" "$WORK/ex_unknown_issuer.txt"; }
p_ref_kid() { phase "$1" refused/unknown-kid refused "$WORK/exchange-refused.lua" "$WORK/ex_unknown_kid.txt"; }
p_ref_sig() { phase "$1" refused/bad-sig refused "$WORK/exchange-refused.lua" "$WORK/ex_bad_signature.txt"; }
each p_ref_iss
each p_ref_kid
each p_ref_sig

access_tokens() {
    "$GEN" exchange --base "${T_BASE[$1]}" --tokens "${T_DIR[$1]}/idp_tokens.txt" --count 200 --out "${T_DIR[$1]}/access_tokens.txt"
    "$GEN" forge --like "${T_DIR[$1]}/access_tokens.txt" --count 2000 --out "${T_DIR[$1]}"
}
each access_tokens
p_vt() { phase "$1" viewer/token ok "$WORK/bearer.lua" "${T_DIR[$1]}/access_tokens.txt" GET /api/v1/viewer ""; }
p_vk() { phase "$1" viewer/key ok "$WORK/bearer.lua" "${T_DIR[$1]}/api_keys.txt" GET /api/v1/viewer ""; }
p_rt() { phase "$1" runs/token ok "$WORK/bearer.lua" "${T_DIR[$1]}/access_tokens.txt" POST /api/v1/runs '{"project":"load"}'; }
p_rk() { phase "$1" runs/key ok "$WORK/bearer.lua" "${T_DIR[$1]}/api_keys.txt" POST /api/v1/runs '{"project":"load"}'; }
each p_vt
each p_vk
each p_rt
each p_rk

wait_s=$(( EXPIRED_AT - $(date +%s) ))
if [ "$wait_s" -gt 0 ]; then
    log "waiting ${wait_s} s for the 60 s access tokens to expire…"
    sleep "$wait_s"
fi
refused_tokens() {
    local i=$1 f
    for f in at_expired at_malformed at_unknown_kid; do
        show_refusal "$i" "$f" -H "Authorization: Bearer $(head -1 "${T_DIR[i]}/$f.txt")" "${T_BASE[i]}/api/v1/viewer"
    done
}
each refused_tokens
p_at_exp() { phase "$1" at/expired refused "$WORK/bearer-refused.lua" "${T_DIR[$1]}/at_expired.txt" GET /api/v1/viewer ""; }
p_at_mal() { phase "$1" at/malformed refused "$WORK/bearer-refused.lua" "${T_DIR[$1]}/at_malformed.txt" GET /api/v1/viewer ""; }
p_at_kid() { phase "$1" at/unknown-kid refused "$WORK/bearer-refused.lua" "${T_DIR[$1]}/at_unknown_kid.txt" GET /api/v1/viewer ""; }
each p_at_exp
each p_at_mal
each p_at_kid

declare -A RSS HWM
finish() {
    local i=$1
    curl -fs --max-time 10 "${T_BASE[i]}/metrics" >"${T_DIR[i]}/metrics.txt"
    sleep 1
    RSS[$i]=$(awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/${T_PID[i]}/status")
    HWM[$i]=$(awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/${T_PID[i]}/status")
    stop_server "$i"
}
each finish
log "restarting on the stores after the load to time start-up ($STARTS starts each)…"
for i in "${!T_NAME[@]}"; do time_starts "$i" loaded; done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
verdict() { awk -v v="$1" -v lim="$2" 'BEGIN {print (v <= lim) ? "pass" : "MISS"}'; }
{
    echo
    echo "Machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); $ACCOUNTS accounts, $ISSUERS issuers, $API_KEYS API keys; wrk -t1 -c$CONNECTIONS -d${DURATION}s per phase."
    echo "Crypto floor measured in this run: $FLOOR_JSON"
    for i in "${!T_NAME[@]}"; do
        hz=${CPU[$i/healthz]} ex=${CPU[$i/exchange]}
        echo
        echo "Goals, ${T_NAME[i]}:"
        echo
        echo "| goal | measured | ratio | limit | verdict |"
        echo "|---|---|---|---|---|"
        echo "| CPU per exchange vs floor + HTTP floor (/healthz) | $ex µs vs $FLOOR_US + $hz µs | $(awk -v e="$ex" -v f="$FLOOR_US" -v h="$hz" 'BEGIN {printf "%.2f", e / (f + h)}') | 1.3 | $(verdict "$(awk -v e="$ex" -v f="$FLOOR_US" -v h="$hz" 'BEGIN {printf "%.3f", e / (f + h)}')" 1.3) |"
        echo "| CPU per exchange vs floor | $ex µs vs $FLOOR_US µs | $(ratio "$ex" "$FLOOR_US") | (information) | |"
        for r in refused/unknown-iss refused/unknown-kid refused/bad-sig; do
            echo "| $r vs accepted exchange (CPU/req) | ${CPU[$i/$r]} vs $ex µs | $(ratio "${CPU[$i/$r]}" "$ex") | 1.0 | $(verdict "$(ratio "${CPU[$i/$r]}" "$ex")" 1.0) |"
        done
        # Over HTTP a refusal cannot cost less than the HTTP floor: its own
        # work is what it costs above /healthz in the same run.
        for r in at/expired at/malformed at/unknown-kid; do
            own=$(awk -v a="${CPU[$i/$r]}" -v h="$hz" 'BEGIN {printf "%.1f", a - h}')
            echo "| $r refused: CPU/req above the HTTP floor | ${CPU[$i/$r]} − $hz = $own µs | | 10 µs | $(verdict "$own" 10) |"
        done
        echo "| POST /api/v1/runs (CPU/req), token / key | ${CPU[$i/runs/token]} / ${CPU[$i/runs/key]} µs | | 100 µs | $(verdict "${CPU[$i/runs/token]}" 100) / $(verdict "${CPU[$i/runs/key]}" 100) |"
        echo "| viewer: access token vs API key (CPU/req) | ${CPU[$i/viewer/token]} vs ${CPU[$i/viewer/key]} µs | $(ratio "${CPU[$i/viewer/token]}" "${CPU[$i/viewer/key]}") | 1.0 (+5% noise) | $(verdict "$(ratio "${CPU[$i/viewer/token]}" "${CPU[$i/viewer/key]}")" 1.05) |"
        echo "| RSS after the load run | ${RSS[$i]} MiB (peak ${HWM[$i]} MiB) | | 64 MiB | $(verdict "${RSS[$i]}" 64) |"
        echo "| ready on the store as set up ($STARTS starts) | ${READY_ALL[$i/setup]}ms (median ${READY[$i/setup]}) | | 200 ms | $(verdict "${READY[$i/setup]}" 199.999) |"
        echo "| ready on the store after the load ($STARTS starts) | ${READY_ALL[$i/loaded]}ms (median ${READY[$i/loaded]}) | | (information) | |"
    done
    if [ "$MODE" = compare ]; then
        echo
        echo "PostgreSQL vs SQLite, same run, phases alternated:"
        echo
        echo "| figure | SQLite | PostgreSQL | PG / SQLite | limit | verdict |"
        echo "|---|---|---|---|---|---|"
        echo "| exchange CPU µs/req | ${CPU[0/exchange]} | ${CPU[1/exchange]} | $(ratio "${CPU[1/exchange]}" "${CPU[0/exchange]}") | 1.10 | $(verdict "$(ratio "${CPU[1/exchange]}" "${CPU[0/exchange]}")" 1.10) |"
        echo "| exchange CPU µs/req, fedgate + PostgreSQL backends | ${CPU[0/exchange]} | $(awk -v a="${CPU[1/exchange]}" -v b="${PGCPU[1/exchange]}" 'BEGIN {printf "%.1f", a + b}') | $(awk -v a="${CPU[1/exchange]}" -v b="${PGCPU[1/exchange]}" -v s="${CPU[0/exchange]}" 'BEGIN {printf "%.2f", (a + b) / s}') | (information) | |"
        echo "| exchange req/s | ${RPS[0/exchange]} | ${RPS[1/exchange]} | $(ratio "${RPS[1/exchange]}" "${RPS[0/exchange]}") | ≥ 0.90 | $(verdict "$(ratio "${RPS[0/exchange]}" "${RPS[1/exchange]}")" 1.111) |"
        echo "| exchange p99 µs | ${P99[0/exchange]} | ${P99[1/exchange]} | $(ratio "${P99[1/exchange]}" "${P99[0/exchange]}") | (information) | |"
        echo "| runs/token CPU µs/req | ${CPU[0/runs/token]} | ${CPU[1/runs/token]} (+ ${PGCPU[1/runs/token]} in PostgreSQL) | $(ratio "${CPU[1/runs/token]}" "${CPU[0/runs/token]}") | (information) | |"
        echo "| runs/key CPU µs/req | ${CPU[0/runs/key]} | ${CPU[1/runs/key]} | $(ratio "${CPU[1/runs/key]}" "${CPU[0/runs/key]}") | (information) | |"
        echo "| ready median ms (as set up) | ${READY[0/setup]} | ${READY[1/setup]} | $(ratio "${READY[1/setup]}" "${READY[0/setup]}") | (information) | |"
        echo
        echo "fedgate's CPU counts its own process; the PostgreSQL backends' CPU (its connections to the run's database) is shown beside it."
    fi
    for i in "${!T_NAME[@]}"; do
        echo
        echo "From /metrics after the run (${T_NAME[i]}):"
        echo '```'
        grep -E '^fedgate_(exchanges_total|cache_lookups_total|jwks_fetches_total|audit_queue_depth|trusted_issuers|external_accounts)' "${T_DIR[i]}/metrics.txt" || true
        echo '```'
    done
} >>"$REPORT"

echo
cat "$REPORT"
