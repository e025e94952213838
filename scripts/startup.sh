#!/usr/bin/env bash
# fedgate start-up time on a populated store (issue 15; docs/performance.md).
#
#   scripts/startup.sh [--accounts N] [--issuers M] [--starts K] [--port P]
#                      [--against BIN] [--bin BIN] [--store DIR] [--keep]
#
# Builds fedgate and examples/loadgen in release mode, starts `fedgate serve`
# on a fresh SQLite store, registers M issuers with a static JWKS, N external
# accounts (each bound to its own subject) and 100 API keys through the admin
# API (`loadgen setup`, as scripts/load.sh does), stops it, then starts it K
# times on that store. Each start is timed from just before the process is
# started to the first 200 from /readyz (polled with curl every ~2 ms; the
# port is bound before the store is opened, so the first connection that
# succeeds waits in the listen queue until the server answers), and its CPU
# time until then is read from /proc/<pid>/stat (utime + stime of every
# thread, in clock ticks). The median and the range of each are printed.
#
# --against BIN also times another fedgate binary (e.g. a copy of the build
# before a change) on the same store, alternating (this build, BIN, this
# build, BIN…) so that the machine's drift hits both; the ratios of the
# medians are printed. --store DIR reuses a store set up by an earlier run
# with --keep (the folder it printed) instead of setting one up. --bin BIN
# times BIN instead of this checkout's release build (nothing is built).
#
# Defaults: --accounts 10000 --issuers 100 --starts 9 --port 18100. Every wait
# is bounded, all traffic goes to 127.0.0.1, the server is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

ACCOUNTS=10000
ISSUERS=100
STARTS=9
PORT=18100
AGAINST=""
BIN=""
STORE=""
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --accounts) ACCOUNTS="$2"; shift ;;
        --issuers) ISSUERS="$2"; shift ;;
        --starts) STARTS="$2"; shift ;;
        --port) PORT="$2"; shift ;;
        --against) AGAINST="$2"; shift ;;
        --store) STORE="$2"; shift ;;
        --bin) BIN="$2"; shift ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '%s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
command -v curl >/dev/null 2>&1 || die "curl is needed"
[ -z "$AGAINST" ] || [ -x "$AGAINST" ] || die "--against $AGAINST is not an executable"

GEN=target/release/examples/loadgen
if [ -z "$BIN" ]; then
    log "building fedgate and examples/loadgen (release)…"
    cargo build --release --quiet --bin fedgate --example loadgen
    BIN=target/release/fedgate
else
    [ -x "$BIN" ] || die "--bin $BIN is not an executable"
    [ -n "$STORE" ] || [ -x "$GEN" ] || die "no $GEN: build it (cargo build --release --example loadgen) or pass --store"
fi
BASE="http://127.0.0.1:$PORT"
CLK_TCK=$(getconf CLK_TCK)

if [ -n "$STORE" ]; then
    [ -f "$STORE/fedgate.db" ] || die "no fedgate.db in $STORE (set one up with --keep first)"
    WORK=$STORE
    KEEP=1
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/fedgate-startup.XXXXXX")
fi
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
    if [ "$KEEP" = 1 ]; then log "store kept: $WORK (reuse it with --store $WORK)"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server BIN: sets PID, READY_MS (start to the first 200 from /readyz)
# and CPU_MS (the process's CPU time at that moment).
READY_MS=""
CPU_MS=""
start_server() {
    local bin=$1 t0 t1 ticks
    t0=$(date +%s%N)
    FEDGATE_EXCHANGE_RATE_LIMIT=0 "$bin" serve --database-url "$DB" \
        --listen "127.0.0.1:$PORT" --allow-insecure-issuers >>"$WORK/server.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 5000); do
        if curl -fs -o /dev/null --max-time 10 "$BASE/readyz"; then
            t1=$(date +%s%N)
            ticks=$(awk '{print $14 + $15}' "/proc/$PID/stat")
            READY_MS=$(( (t1 - t0) / 1000000 ))
            CPU_MS=$(( ticks * 1000 / CLK_TCK ))
            return 0
        fi
        kill -0 "$PID" 2>/dev/null || { tail -20 "$WORK/server.log" >&2; die "fedgate exited"; }
        sleep 0.002
    done
    die "fedgate not ready after 10 s"
}

if curl -fs -o /dev/null "$BASE/readyz" 2>/dev/null; then
    die "something already answers on $BASE: stop it or pass --port"
fi
if [ -z "$STORE" ]; then
    start_server "$BIN"
    ADMIN=$(grep -oE 'fgk_[0-9A-Za-z]{29}_[0-9A-Za-z]{6}' "$WORK/server.log" | head -1)
    [ -n "$ADMIN" ] || die "no bootstrap admin key in the server log"
    "$GEN" setup --base "$BASE" --admin-key "$ADMIN" --accounts "$ACCOUNTS" \
        --issuers "$ISSUERS" --api-keys 100 --out "$WORK" \
        --fetched-jwks-uri "$BASE/.well-known/jwks.json"
    stop_server
fi

# One start of each binary first (page cache, the WAL checkpointed by the
# last stop), not counted.
BINS=("$BIN")
[ -z "$AGAINST" ] || BINS+=("$AGAINST")
for b in "${BINS[@]}"; do start_server "$b"; stop_server; done

declare -A READY CPU
for _ in $(seq 1 "$STARTS"); do
    for k in "${!BINS[@]}"; do
        start_server "${BINS[k]}"
        READY[$k]+="$READY_MS "
        CPU[$k]+="$CPU_MS "
        stop_server
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
range() { tr ' ' '\n' | grep -v '^$' | sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "–" hi}'; }
echo
echo "Machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), load average $(cut -d' ' -f1-3 /proc/loadavg); $ACCOUNTS accounts, $ISSUERS issuers, SQLite; $STARTS starts each."
echo
echo "| binary | ready ms, median (range) | CPU ms at ready, median (range) | starts, ms |"
echo "|---|---|---|---|"
for k in "${!BINS[@]}"; do
    echo "| ${BINS[k]} | $(median <<<"${READY[$k]}") ($(range <<<"${READY[$k]}")) | $(median <<<"${CPU[$k]}") ($(range <<<"${CPU[$k]}")) | ${READY[$k]}|"
done
if [ -n "$AGAINST" ]; then
    r=$(awk -v a="$(median <<<"${READY[0]}")" -v b="$(median <<<"${READY[1]}")" 'BEGIN {printf "%.2f", a / b}')
    c=$(awk -v a="$(median <<<"${CPU[0]}")" -v b="$(median <<<"${CPU[1]}")" 'BEGIN {printf "%.2f", a / b}')
    echo
    echo "This build / $AGAINST: ready $r, CPU $c (medians)."
fi
