#!/usr/bin/env bash
# bench/cdc-run.sh -- dbferry CDC vs PostgreSQL's native logical replication on dataset A, side by
# side in one run of ../shared/bench/cdc.sh (pgbench -N load, then a 1M-row UPDATE backlog).
#
#   bash bench/cdc-run.sh                 # native, then dbferry (DURATION=60, BURST_ROWS=1000000)
#   ROUNDS=2 DURATION=30 bash bench/cdc-run.sh
#   METHODS=dbferry DURATION=20 bash bench/cdc-run.sh   # one side only (no comparison)
#   DBFERRY_CDC_STREAMING=false bash bench/cdc-run.sh     # dbferry applies large transactions after their commit
#
# Output: bench/results/<stamp>/{results.csv,logs/,cdc-summary.md}; bench/results/latest -> <stamp>.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
SHARED="${SHARED_BENCH:-$(cd "$REPO/.." && pwd)/shared/bench}"
DBFERRY="$REPO/bin/dbferry"
ROUNDS="${ROUNDS:-1}"
METHODS="${METHODS:-native dbferry}"
STAMP="$(date +%Y%m%d-%H%M%S)"
OUT="$HERE/results/cdc-$STAMP"
mkdir -p "$OUT/logs"
ln -sfn "cdc-$STAMP" "$HERE/results/latest"
export RESULTS_CSV="$OUT/results.csv" LOGDIR="$OUT/logs" DURATION="${DURATION:-60}" BURST_ROWS="${BURST_ROWS:-1000000}"
# cdc.sh's sampler keeps overwriting the heartbeat row while it waits for the end heartbeat; on a
# busy machine a 0.5 s interval can overwrite it before the 0.1 s poll sees it, and the wait then
# runs into CATCHUP_TIMEOUT. A 1 s interval leaves the end heartbeat visible long enough.
export SAMPLE_INTERVAL="${SAMPLE_INTERVAL:-1}" CATCHUP_TIMEOUT="${CATCHUP_TIMEOUT:-600}"
say() { echo "[$(date +%H:%M:%S)] cdc-run.sh: $*" >&2; }

[ -f "$REPO/dist/client/cli.js" ] || { say "dbferry is not built: run bash scripts/build.sh"; exit 1; }
"$SHARED/setup.sh" pg

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
TPORT="$(free_port)"; UPORT="$(free_port)"
export TEMPORAL_ADDRESS="127.0.0.1:$TPORT" DBFERRY_TASK_QUEUE="dbferry-bench-cdc-$STAMP"
setsid "$DBFERRY" dev-server --port "$TPORT" --ui-port "$UPORT" >"$OUT/logs/temporal-dev-server.log" 2>&1 </dev/null &
SERVER_PID=$!
trap 'kill -TERM -- "-$SERVER_PID" 2>/dev/null || true' EXIT
for _ in $(seq 300); do "$DBFERRY" list >/dev/null 2>&1 && break; sleep 0.2; done

for r in $(seq "$ROUNDS"); do
  if [[ " $METHODS " == *" native "* ]]; then
    say "round $r: native logical replication"
    (cd "$SHARED" && ./cdc.sh) 2>&1 | tee "$OUT/logs/native-$r.log" | grep -E "^(tool|ready|source tps|catch-up|lag|rows applied|burst|verified|tool max)" || true
  fi
  [[ " $METHODS " == *" dbferry "* ]] || continue
  say "round $r: dbferry"
  (cd "$SHARED" && CDC_MODE=custom CUSTOM_NAME=dbferry CUSTOM_VERSION="$(node -p "require('$REPO/package.json').version")" \
     CUSTOM_CDC_SLOT=dbferry_bench_cdc CUSTOM_CDC_CMD="bash $HERE/dbferry-cdc.sh" ./cdc.sh) 2>&1 | tee "$OUT/logs/dbferry-$r.log" \
     | grep -E "^(tool|ready|source tps|catch-up|lag|rows applied|burst|verified|tool max)" || true
done
{
  echo "# CDC: dbferry vs native logical replication ($(date -u +%F), DURATION=$DURATION, BURST_ROWS=$BURST_ROWS)"
  for f in "$OUT"/logs/native-*.log "$OUT"/logs/dbferry-*.log; do
    echo; echo "## $(basename "$f" .log)"; echo '```'
    grep -E "^(tool|source tps|catch-up|lag|rows applied|burst|verified|tool max)" "$f" || true
    echo '```'
  done
} >"$OUT/cdc-summary.md"
say "summary: $OUT/cdc-summary.md"
