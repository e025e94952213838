#!/usr/bin/env bash
# fedgate load run (issue 6; docs/performance.md explains the figures).
#
#   scripts/load.sh            1 issuer, 1,000 external accounts
#   scripts/load.sh --big      100 issuers, 10,000 external accounts (RSS and start-up goals)
#
# Options: --accounts N  --issuers M  --duration SECONDS (per phase, default 10)
#          --connections C (default 16)  --port P (default 18080)  --keep (keep the work dir)
#
# It builds fedgate and examples/loadgen in release mode, starts `fedgate serve`
# on 127.0.0.1 with a fresh SQLite file, registers issuers with a static JWKS
# (no IdP server, no network) and the accounts through the admin API, mints one
# distinct IdP token per account, then drives with wrk, one phase at a time:
#   exchange        POST /oidc/token, rotating through every IdP token
#   viewer/token    GET /api/v1/viewer with exchanged access tokens
#   viewer/key      GET /api/v1/viewer with API keys
#   runs/token      POST /api/v1/runs with exchanged access tokens
#   runs/key        POST /api/v1/runs with API keys
# and, as the HTTP floor, GET /healthz (no work at all behind the HTTP layer).
# For each: requests/s and p50/p99 latency (wrk), and fedgate's own CPU time
# per request (utime+stime of its process from /proc/<pid>/stat, before and
# after), the figure the load generator sharing the cores cannot distort. The
# crypto floor (bare RS256 verify + ES256 sign) is measured in the same run.
# Then cache and fetch figures from /metrics, RSS, and the time to ready when
# restarted on the now populated database.
#
# Every wrk run has a duration, every loop a count, every wait a timeout; all
# traffic goes to 127.0.0.1. The server is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

ACCOUNTS=1000
ISSUERS=1
API_KEYS=100
DURATION=10
CONNECTIONS=16
PORT=18080
KEEP=0
BIG=0
while [ $# -gt 0 ]; do
    case "$1" in
        --big) BIG=1; ACCOUNTS=10000; ISSUERS=100 ;;
        --accounts) ACCOUNTS="$2"; shift ;;
        --issuers) ISSUERS="$2"; shift ;;
        --duration) DURATION="$2"; shift ;;
        --connections) CONNECTIONS="$2"; shift ;;
        --port) PORT="$2"; shift ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
BASE="http://127.0.0.1:$PORT"

log() { printf '%s\n' "$*" >&2; }

if ! command -v wrk >/dev/null 2>&1; then
    log "installing wrk (Debian package)…"
    if ! apt-get install -y wrk >/dev/null 2>&1; then
        apt-get update >/dev/null && apt-get install -y wrk >/dev/null
    fi
fi
command -v curl >/dev/null || { apt-get install -y curl >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y curl >/dev/null; }; }

log "building fedgate and examples/loadgen (release)…"
cargo build --release --quiet --bin fedgate --example loadgen
BIN=target/release/fedgate
GEN=target/release/examples/loadgen
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d /tmp/fedgate-load.XXXXXX)
DB="sqlite://$WORK/fedgate.db"
PID=""
stop_server() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    PID=""
}
cleanup() {
    stop_server
    if [ "$KEEP" = 1 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT INT TERM

# Starts fedgate (sets PID); READY_MS = milliseconds until /readyz answered 200.
READY_MS=""
start_server() {
    local t0 t1
    t0=$(date +%s%N)
    FEDGATE_EXCHANGE_RATE_LIMIT=0 "$BIN" serve --database-url "$DB" --listen "127.0.0.1:$PORT" \
        >>"$WORK/server.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 2000); do
        if curl -fs -o /dev/null "$BASE/readyz"; then
            t1=$(date +%s%N)
            READY_MS=$(( (t1 - t0) / 1000000 ))
            return 0
        fi
        kill -0 "$PID" 2>/dev/null || { log "fedgate exited:"; cat "$WORK/server.log" >&2; exit 1; }
        sleep 0.002
    done
    log "fedgate not ready after 10 s"; exit 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }

if curl -fs -o /dev/null "$BASE/readyz" 2>/dev/null; then
    log "something already answers on $BASE: stop it or pass --port"; exit 1
fi
start_server
first_ready_ms=$READY_MS
ADMIN_KEY=$(grep -o 'fgk_[A-Za-z0-9]*' "$WORK/server.log" | head -1)
[ -n "$ADMIN_KEY" ] || { log "no bootstrap admin key in the server log"; exit 1; }
log "fedgate pid $PID ready in ${first_ready_ms} ms (empty database)"

"$GEN" setup --base "$BASE" --admin-key "$ADMIN_KEY" --accounts "$ACCOUNTS" \
    --issuers "$ISSUERS" --api-keys "$API_KEYS" --out "$WORK"
log "measuring the crypto floor (bare RS256 verify + ES256 sign)…"
FLOOR_JSON=$("$GEN" floor --seconds 4)
FLOOR_US=$(echo "$FLOOR_JSON" | sed 's/.*"floor_us": \([0-9.]*\).*/\1/')
log "floor: $FLOOR_JSON"

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
    echo "| phase | requests | req/s | p50 µs | p99 µs | non-2xx | fedgate CPU µs/req |"
    echo "|---|---|---|---|---|---|---|"
} >"$REPORT"

# phase NAME SCRIPT ARGS... : one wrk run; prints fedgate CPU µs per request.
phase() {
    local name="$1" script="$2"; shift 2
    local c0 c1 out reqs rps p50 p99 bad cpu
    out="$WORK/wrk-${name//\//-}.txt"
    c0=$(cpu_ticks)
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$script" "$BASE" -- "$@" >"$out"
    c1=$(cpu_ticks)
    reqs=$(awk '/requests in/ {print $1}' "$out")
    rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
    p50=$(to_us "$(awk '$1 == "50%" {print $2}' "$out")")
    p99=$(to_us "$(awk '$1 == "99%" {print $2}' "$out")")
    bad=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$out"); bad=${bad:-0}
    cpu=$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" -v r="$reqs" 'BEGIN {printf "%.1f", (b - a) / t * 1e6 / r}')
    echo "| $name | $reqs | $rps | $p50 | $p99 | $bad | $cpu |" >>"$REPORT"
    log "$name: $reqs requests, $rps req/s, p50 ${p50} µs, p99 ${p99} µs, non-2xx $bad, fedgate CPU ${cpu} µs/request"
    echo "$cpu"
}

log "warm-up (2 s, not reported)…"
wrk -t1 -c"$CONNECTIONS" -d2s -s "$WORK/exchange.lua" "$BASE" -- "$WORK/idp_tokens.txt" >/dev/null

hz_cpu=$(phase healthz "$WORK/healthz.lua")
ex_cpu=$(phase exchange "$WORK/exchange.lua" "$WORK/idp_tokens.txt")
"$GEN" exchange --base "$BASE" --tokens "$WORK/idp_tokens.txt" --count 200 --out "$WORK/access_tokens.txt"
vt_cpu=$(phase viewer/token "$WORK/bearer.lua" "$WORK/access_tokens.txt" GET /api/v1/viewer "")
vk_cpu=$(phase viewer/key "$WORK/bearer.lua" "$WORK/api_keys.txt" GET /api/v1/viewer "")
rt_cpu=$(phase runs/token "$WORK/bearer.lua" "$WORK/access_tokens.txt" POST /api/v1/runs '{"project":"load"}')
rk_cpu=$(phase runs/key "$WORK/bearer.lua" "$WORK/api_keys.txt" POST /api/v1/runs '{"project":"load"}')

curl -fs "$BASE/metrics" >"$WORK/metrics.txt"
sleep 1
rss=$(rss_kib)
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$PID/status")

log "restarting on the populated database to time start-up…"
stop_server
ready=()
for _ in 1 2 3; do
    start_server
    ready+=("$READY_MS")
    stop_server
done
ready_sorted=$(printf '%s\n' "${ready[@]}" | sort -n | tr '\n' ' ')
ready_median=$(printf '%s\n' "${ready[@]}" | sort -n | sed -n 2p)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
verdict() { awk -v v="$1" -v lim="$2" 'BEGIN {print (v <= lim) ? "pass" : "MISS"}'; }
ex_ratio=$(ratio "$ex_cpu" "$FLOOR_US")
hx_ratio=$(awk -v e="$ex_cpu" -v f="$FLOOR_US" -v h="$hz_cpu" 'BEGIN {printf "%.2f", e / (f + h)}')
v_ratio=$(ratio "$vt_cpu" "$vk_cpu")
r_ratio=$(ratio "$rt_cpu" "$rk_cpu")
rss_mib=$(awk -v k="$rss" 'BEGIN {printf "%.1f", k / 1024}')
hwm_mib=$(awk -v k="$hwm" 'BEGIN {printf "%.1f", k / 1024}')

{
    echo
    echo "Machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); $ACCOUNTS accounts, $ISSUERS issuers, $API_KEYS API keys; wrk -t1 -c$CONNECTIONS -d${DURATION}s."
    echo "Crypto floor measured in this run: $FLOOR_JSON"
    echo
    echo "| goal | measured | ratio | limit | verdict |"
    echo "|---|---|---|---|---|"
    echo "| CPU per exchange vs floor | $ex_cpu µs vs $FLOOR_US µs | $ex_ratio | 1.5 | $(verdict "$ex_ratio" 1.5) |"
    echo "| CPU per exchange vs floor + HTTP floor (/healthz) | $ex_cpu µs vs $FLOOR_US + $hz_cpu µs | $hx_ratio | (information) | |"
    echo "| viewer: access token vs API key (CPU/req) | $vt_cpu vs $vk_cpu µs | $v_ratio | 1.0 (+5% noise) | $(verdict "$v_ratio" 1.05) |"
    echo "| runs: access token vs API key (CPU/req) | $rt_cpu vs $rk_cpu µs | $r_ratio | 1.0 (+5% noise) | $(verdict "$r_ratio" 1.05) |"
    echo "| RSS after the load run | $rss_mib MiB (peak $hwm_mib MiB) | | 64 MiB | $(verdict "$rss_mib" 64) |"
    echo "| ready on the existing database (3 starts) | $ready_sorted ms (median $ready_median) | | 200 ms | $(verdict "$ready_median" 200) |"
    echo
    echo "From /metrics after the run:"
    echo '```'
    grep -E '^fedgate_(exchanges_total|cache_lookups_total|jwks_fetches_total|audit_queue_depth|trusted_issuers|external_accounts)' "$WORK/metrics.txt" || true
    grep -E '^fedgate_jwks_fetches_total' "$WORK/metrics.txt" >/dev/null || echo "fedgate_jwks_fetches_total: none (static JWKS: no IdP request at all)"
    echo '```'
} >>"$REPORT"

echo
cat "$REPORT"
