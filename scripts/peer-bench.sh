#!/usr/bin/env bash
# fedgate beside a real peer, same load, same run (issue 15; docs/performance.md).
#
#   scripts/peer-bench.sh [--duration SECONDS] [--rounds R] [--connections C]
#                         [--assertions N] [--port P] [--keep]
#
# The peer is node `oidc-provider` (pinned in scripts/peer/package-lock.json,
# installed with `npm ci`), configured by scripts/peer/server.mjs to do the
# work of one fedgate exchange per request: verify an RS256 `private_key_jwt`
# client assertion and mint an ES256 JWT access token (`client_credentials`,
# resource indicators with accessTokenFormat "jwt"); its only storage is its
# in-memory adapter.
#
# fedgate (release build) runs on a fresh SQLite file with the exchange rate
# limit off, one issuer with a static JWKS and N external accounts (default
# 20,000), each bound to its own subject. examples/loadgen mints N distinct
# RS256 tokens for fedgate (GitHub-shaped, one per account) and N distinct
# RS256 client assertions for the peer (the same claims with iss = sub = the
# client, signed by the same key). Each side is driven by the same
# `wrk -t1 -c16` for the same duration, rotating through its N tokens; the
# sides alternate (fedgate, peer, fedgate, peer… for --rounds rounds). For each
# run: requests/s, p50/p99 latency, and the server's own CPU per request
# (utime+stime of its process from /proc/<pid>/stat: fedgate's process, the
# node process). Any non-2xx answer or socket error fails the run: no
# numbers are printed from a run with errors.
#
# Defaults: --duration 10 --rounds 2 --connections 16 --assertions 20000
# --port 18090 (fedgate; the peer listens on P+1). Every wait is bounded; all
# traffic goes to 127.0.0.1; both servers are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=10
ROUNDS=2
CONNECTIONS=16
COUNT=20000
PORT=18090
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION="$2"; shift ;;
        --rounds) ROUNDS="$2"; shift ;;
        --connections) CONNECTIONS="$2"; shift ;;
        --assertions) COUNT="$2"; shift ;;
        --port) PORT="$2"; shift ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
PEER_PORT=$((PORT + 1))
FG="http://127.0.0.1:$PORT"
PEER="http://127.0.0.1:$PEER_PORT"

log() { printf '%s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
apt_install() {
    apt-get install -y "$@" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "$@" >/dev/null; }
}
command -v wrk >/dev/null 2>&1 || { log "installing wrk (Debian package)…"; apt_install wrk; }
command -v curl >/dev/null 2>&1 || apt_install curl
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || die "node and npm are needed (Node.js ≥ 20)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js ≥ 20 is needed, this is $(node --version)"

log "installing the peer (npm ci in scripts/peer)…"
(cd scripts/peer && timeout 300 npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci failed"
PEER_VERSION=$(node -p 'require("./scripts/peer/node_modules/oidc-provider/package.json").version')

log "building fedgate and examples/loadgen (release)…"
cargo build --release --quiet --bin fedgate --example loadgen
BIN=target/release/fedgate
GEN=target/release/examples/loadgen
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fedgate-peer.XXXXXX")
FG_PID=""
PEER_PID=""
stop_pid() {
    local pid=$1
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}
cleanup() {
    stop_pid "$FG_PID"
    stop_pid "$PEER_PID"
    if [ "$KEEP" = 1 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for url in "$FG" "$PEER"; do
    if curl -s -o /dev/null --max-time 2 "$url/" 2>/dev/null; then
        die "something already answers on $url: stop it or pass --port"
    fi
done

# wait_ready PID URL NAME LOG: polls URL until it answers 200 (10 s at most).
wait_ready() {
    for _ in $(seq 1 1000); do
        curl -fs -o /dev/null --max-time 2 "$2" && return 0
        kill -0 "$1" 2>/dev/null || { cat "$4" >&2; die "$3 exited"; }
        sleep 0.01
    done
    cat "$4" >&2
    die "$3 not ready after 10 s"
}

FEDGATE_EXCHANGE_RATE_LIMIT=0 "$BIN" serve --database-url "sqlite://$WORK/fedgate.db" \
    --listen "127.0.0.1:$PORT" >"$WORK/fedgate.log" 2>&1 &
FG_PID=$!
wait_ready "$FG_PID" "$FG/readyz" fedgate "$WORK/fedgate.log"
ADMIN_KEY=$(grep -oE 'fgk_[0-9A-Za-z]{29}_[0-9A-Za-z]{6}' "$WORK/fedgate.log" | head -1)
[ -n "$ADMIN_KEY" ] || die "no bootstrap admin key in fedgate's log"
log "fedgate pid $FG_PID; registering 1 issuer and $COUNT accounts…"
"$GEN" setup --base "$FG" --admin-key "$ADMIN_KEY" --accounts "$COUNT" --issuers 1 \
    --api-keys 0 --out "$WORK"
mv "$WORK/idp_tokens.txt" "$WORK/fedgate_assertions.txt"

"$GEN" jwks >"$WORK/client_jwks.json"
node scripts/peer/server.mjs "$PEER_PORT" "$WORK/client_jwks.json" >"$WORK/peer.log" 2>&1 &
PEER_PID=$!
wait_ready "$PEER_PID" "$PEER/.well-known/openid-configuration" "node oidc-provider" "$WORK/peer.log"
log "node oidc-provider $PEER_VERSION pid $PEER_PID ($(node --version)); minting $COUNT client assertions…"
"$GEN" assertions --client-id bench --aud "$PEER/token" --count "$COUNT" --out "$WORK/peer_assertions.txt"

cat >"$WORK/fedgate.lua" <<'EOF'
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
  init_start(args)
end
-- args[2]: where to start in the pool (the runs before used the lines up to it)
init_start = function(args) i = (tonumber(args[2]) or 0) % n end
request = function()
  i = i % n + 1
  return reqs[i]
end
EOF
cat >"$WORK/peer.lua" <<'EOF'
local reqs, n, i = {}, 0, 0
init = function(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      n = n + 1
      reqs[n] = wrk.format("POST", "/token",
        { ["Content-Type"] = "application/x-www-form-urlencoded" },
        "grant_type=client_credentials&scope=api"
        .. "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
        .. "&client_assertion=" .. line)
    end
  end
  init_start(args)
end
-- args[2]: where to start in the pool (the runs before used the lines up to it)
init_start = function(args) i = (tonumber(args[2]) or 0) % n end
request = function()
  i = i % n + 1
  return reqs[i]
end
EOF

# check_token NAME URL CURL-ARGS...: one request must answer 200 with an
# ES256 at+jwt access token.
check_token() {
    local name=$1; shift
    local code header
    code=$(curl -s -o "$WORK/answer.json" -w '%{http_code}' --max-time 10 "$@")
    [ "$code" = 200 ] || die "$name answered $code: $(head -c 300 "$WORK/answer.json")"
    header=$(node -e '
        const t = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).access_token;
        const h = JSON.parse(Buffer.from(t.split(".")[0], "base64url"));
        console.log(h.alg + " " + h.typ);' "$WORK/answer.json")
    [ "$header" = "ES256 at+jwt" ] || die "$name minted a token with header \"$header\", not ES256 at+jwt"
    log "$name: 200, access token $header"
}
check_token fedgate "$FG/oidc/token" \
    --data-urlencode "grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer" \
    --data-urlencode "assertion=$(tail -1 "$WORK/fedgate_assertions.txt")"
check_token "node oidc-provider" "$PEER/token" -d grant_type=client_credentials -d scope=api \
    --data-urlencode "client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer" \
    --data-urlencode "client_assertion=$(tail -1 "$WORK/peer_assertions.txt")"

to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") m = 1; else if (u == "ms") m = 1000; else if (u == "s") m = 1000000; else m = 1;
        printf "%.0f", n * m }'
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Where each side's next run starts in its pool: a run goes on where the last
# one stopped (plus the requests that were in flight), so an assertion comes
# back only after all the others. (The peer's replay detection remembers the
# last 1,000 jtis in its in-memory LRU: a repeat within them would be refused.)
declare -A USED=([fedgate]=0 [peer]=0)
# run NAME PID URL SCRIPT FILE SECONDS warmup|measure: one wrk run; appends
# "name requests seconds p50 p99 cpu_ticks" to $WORK/runs.txt when measuring.
run() {
    local name=$1 pid=$2 url=$3 script=$4 file=$5 secs=$6 out c0 c1 reqs bad sock
    out="$WORK/wrk-$name-$(date +%s%N).txt"
    c0=$(ticks "$pid")
    timeout $((secs + 60)) wrk -t1 -c"$CONNECTIONS" -d"${secs}s" --timeout 5s --latency -s "$script" "$url" \
        -- "$file" "${USED[$name]}" >"$out" || { cat "$out" >&2; die "wrk failed against $name"; }
    c1=$(ticks "$pid")
    reqs=$(awk '/requests in/ {print $1}' "$out")
    USED[$name]=$(( (USED[$name] + ${reqs:-0} + CONNECTIONS) % COUNT ))
    bad=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$out"); bad=${bad:-0}
    sock=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$out"); sock=${sock:-0}
    [ "${reqs:-0}" -gt 0 ] || { cat "$out" >&2; die "$name: no request completed"; }
    [ "$bad" = 0 ] || { cat "$out" >&2; die "$name: $bad of $reqs answers were not 2xx"; }
    [ "$sock" = 0 ] || { cat "$out" >&2; die "$name: $sock socket errors (connect/read/write/timeout)"; }
    if [ "$7" = measure ]; then
        printf '%s %s %s %s %s %s\n' "$name" "$reqs" \
            "$(awk '/requests in/ {sub(/s,$/, "", $4); print $4}' "$out")" \
            "$(to_us "$(awk '$1 == "50%" {print $2}' "$out")")" \
            "$(to_us "$(awk '$1 == "99%" {print $2}' "$out")")" \
            "$((c1 - c0))" >>"$WORK/runs.txt"
        log "$name: $reqs requests, $(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out") req/s, $(awk -v d=$((c1 - c0)) -v t="$CLK_TCK" -v r="$reqs" 'BEGIN {printf "%.1f", d / t * 1e6 / r}') µs CPU/request"
    fi
}

log "warm-up (3 s each, not reported)…"
run fedgate "$FG_PID" "$FG" "$WORK/fedgate.lua" "$WORK/fedgate_assertions.txt" 3 warmup
run peer "$PEER_PID" "$PEER" "$WORK/peer.lua" "$WORK/peer_assertions.txt" 3 warmup
: >"$WORK/runs.txt"
for r in $(seq 1 "$ROUNDS"); do
    log "round $r of $ROUNDS (${DURATION} s per side)…"
    run fedgate "$FG_PID" "$FG" "$WORK/fedgate.lua" "$WORK/fedgate_assertions.txt" "$DURATION" measure
    run peer "$PEER_PID" "$PEER" "$WORK/peer.lua" "$WORK/peer_assertions.txt" "$DURATION" measure
done

awk -v t="$CLK_TCK" -v machine="$(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" \
    -v peer="node oidc-provider $PEER_VERSION ($(node --version))" -v n="$COUNT" \
    -v wrk="wrk -t1 -c$CONNECTIONS -d${DURATION}s" -v rounds="$ROUNDS" '
{
    k = $1; r[k] += $2; s[k] += $3; c[k] += $6
    if ($5 > p99[k]) p99[k] = $5
    if ($4 > p50[k]) p50[k] = $4
    rows = rows sprintf("| %s | %d | %.0f | %d | %d | %.1f |\n", (k == "peer" ? "peer" : "fedgate"), $2, $2 / $3, $4, $5, $6 / t * 1e6 / $2)
}
END {
    printf "Machine: %s. %s, %d rounds alternated, %s distinct RS256 assertions per side.\n", machine, wrk, rounds, n
    printf "Peer: %s. fedgate: release build, SQLite, exchange rate limit off.\n\n", peer
    print "| server (each run) | requests | req/s | p50 µs | p99 µs | server CPU µs/req |"
    print "|---|---|---|---|---|---|"
    printf "%s\n", rows
    fr = r["fedgate"] / s["fedgate"]; pr = r["peer"] / s["peer"]
    fc = c["fedgate"] / t * 1e6 / r["fedgate"]; pc = c["peer"] / t * 1e6 / r["peer"]
    print "| figure (all rounds) | fedgate | peer | ratio | goal | verdict |"
    print "|---|---|---|---|---|---|"
    printf "| requests/s | %.0f | %.0f | %.1f× | ≥ 10× | %s |\n", fr, pr, fr / pr, (fr / pr >= 10 ? "pass" : "MISS")
    printf "| server CPU µs/request | %.1f | %.1f | %.1f× less | ≥ 10× less | %s |\n", fc, pc, pc / fc, (pc / fc >= 10 ? "pass" : "MISS")
    printf "| p99 µs (worst round) | %d | %d | %.1f× | fedgate < 5,000 µs | %s |\n", p99["fedgate"], p99["peer"], p99["peer"] / p99["fedgate"], (p99["fedgate"] < 5000 ? "pass" : "MISS")
    printf "| p50 µs (worst round) | %d | %d | %.1f× | (information) | |\n", p50["fedgate"], p50["peer"], p50["peer"] / p50["fedgate"]
}' "$WORK/runs.txt"
