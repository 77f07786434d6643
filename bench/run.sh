#!/usr/bin/env bash
# bench/run.sh -- dbferry full load vs pgcopydb vs raw binary COPY on dataset A, side by side,
# in one run of the shared anchor scripts (../shared/bench beside the repo; SHARED_BENCH overrides).
#
#   bash bench/run.sh                 # RUNS=3 of copy-binary, pgcopydb, dbferry (+ dbferry without checksums)
#   RUNS=5 bash bench/run.sh
#   NOCHECKSUMS_PASS=0 bash bench/run.sh   # skip the extra dbferry pass with validate.checksums=false
#   INTERLEAVE=1 bash bench/run.sh    # RUNS rounds of (copy-binary, pgcopydb, dbferry, dbferry nocksum), RUNS=1 each
#   KEEP_TARGETS=1 bash bench/run.sh  # keep the t_* target databases afterwards (2.4 GB each)
#
# Output: bench/results/<stamp>/{results.csv,dbferry-phases.csv,logs/,report.md,summary.md}
# and bench/results/latest -> <stamp>.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
SHARED="${SHARED_BENCH:-$(cd "$REPO/.." && pwd)/shared/bench}"
DBFERRY="$REPO/bin/dbferry"
RUNS="${RUNS:-3}"
JOBS="${JOBS:-2}"
STAMP="$(date +%Y%m%d-%H%M%S)"
OUT="$HERE/results/$STAMP"
mkdir -p "$OUT/logs"
ln -sfn "$STAMP" "$HERE/results/latest"

# The shared scripts write their CSV and logs wherever these point (never into /work/shared).
export RESULTS_CSV="$OUT/results.csv" LOGDIR="$OUT/logs" JOBS
export DBFERRY_PHASES_CSV="$OUT/dbferry-phases.csv"
say() { echo "[$(date +%H:%M:%S)] run.sh: $*" >&2; }

# ---- prerequisites ------------------------------------------------------------------------------
if ! command -v pgcopydb >/dev/null 2>&1; then
  say "installing pgcopydb (apt)"
  apt-get update -qq && apt-get install -y -qq pgcopydb >"$OUT/logs/apt-pgcopydb.log" 2>&1
fi
[ -f "$REPO/dist/client/cli.js" ] || { say "dbferry is not built: run bash scripts/build.sh"; exit 1; }
[ -f "$REPO/dist/workflow-bundle.js" ] || say "WARNING: no prebuilt dist/workflow-bundle.js: every worker start bundles the workflows (slow, inside the timed region)"

say "setup.sh pg (clusters :55432/:55433 + dataset A; no-op when present)"
"$SHARED/setup.sh" pg

# ---- Temporal dev server: started once, OUTSIDE the timed region ---------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
TPORT="${TEMPORAL_PORT:-$(free_port)}"
UPORT="${TEMPORAL_UI_PORT:-$(free_port)}"
export TEMPORAL_ADDRESS="127.0.0.1:$TPORT"
export DBFERRY_TASK_QUEUE="dbferry-bench-$STAMP"
say "Temporal dev server on $TEMPORAL_ADDRESS (UI :$UPORT), task queue $DBFERRY_TASK_QUEUE"
setsid "$DBFERRY" dev-server --port "$TPORT" --ui-port "$UPORT" >"$OUT/logs/temporal-dev-server.log" 2>&1 </dev/null &
SERVER_PID=$!
stop_server() {
  # its own process group (setsid): the dbferry dev-server node process and the temporal binary
  kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
}
trap stop_server EXIT
for _ in $(seq 300); do "$DBFERRY" list >/dev/null 2>&1 && break; sleep 0.2; done
"$DBFERRY" list >/dev/null 2>&1 || { say "Temporal dev server did not answer"; cat "$OUT/logs/temporal-dev-server.log" >&2; exit 1; }

# ---- the comparison: one pg2pg.sh run, methods in this order, RUNS each ------------------------------
VERSION="$("$DBFERRY" --version)"
CK_CMD="bash $HERE/dbferry-custom.sh"
NOCK_CMD="DBFERRY_CHECKSUMS=false bash $HERE/dbferry-custom.sh"
if [ "${INTERLEAVE:-0}" != 1 ]; then
  export CUSTOM_NAME=dbferry CUSTOM_VERSION="$VERSION" CUSTOM_CMD="$CK_CMD"
  say "pg2pg.sh copy-binary pgcopydb custom  (RUNS=$RUNS JOBS=$JOBS; dbferry validate.checksums=true)"
  RUNS="$RUNS" "$SHARED/pg2pg.sh" copy-binary pgcopydb custom
  if [ "${NOCHECKSUMS_PASS:-1}" = 1 ]; then
    # Same script, validate.checksums=false; CUSTOM_NAME must be a valid identifier (target db t_<name>).
    export CUSTOM_NAME=dbferry_nocksum CUSTOM_CMD="$NOCK_CMD"
    say "pg2pg.sh custom  (RUNS=$RUNS; dbferry validate.checksums=false)"
    RUNS="$RUNS" "$SHARED/pg2pg.sh" custom
  fi
else
  # INTERLEAVE=1: round r runs every method once (RUNS=1 per pg2pg.sh call), so slow drifts of the
  # shared machine hit all methods alike. The CSV's run column is then 1 everywhere; logs per round.
  for ((r=1; r<=RUNS; r++)); do
    export LOGDIR="$OUT/logs/round$r"; mkdir -p "$LOGDIR"
    export CUSTOM_NAME=dbferry CUSTOM_VERSION="$VERSION" CUSTOM_CMD="$CK_CMD"
    say "round $r/$RUNS: pg2pg.sh copy-binary pgcopydb custom"
    RUNS=1 "$SHARED/pg2pg.sh" copy-binary pgcopydb custom
    if [ "${NOCHECKSUMS_PASS:-1}" = 1 ]; then
      export CUSTOM_NAME=dbferry_nocksum CUSTOM_CMD="$NOCK_CMD"
      RUNS=1 "$SHARED/pg2pg.sh" custom
    fi
  done
  export LOGDIR="$OUT/logs"
fi

# ---- report ----------------------------------------------------------------------------------------
python3 "$SHARED/report.py" "$RESULTS_CSV" >"$OUT/report.md"
python3 "$HERE/summarize.py" "$RESULTS_CSV" "$DBFERRY_PHASES_CSV" "$OUT/logs" | tee "$OUT/summary.md"

if [ "${KEEP_TARGETS:-0}" != 1 ]; then
  for db in t_copy_binary t_pgcopydb t_dbferry t_dbferry_nocksum; do
    "${PGBIN:-/usr/lib/postgresql/15/bin}/psql" -X -q -h 127.0.0.1 -p "${TGT_PORT:-55433}" -U postgres -d postgres \
      -c "drop database if exists $db with (force)" || true
  done
fi
say "results in $OUT (report.md = every run, summary.md = the comparison)"
