#!/usr/bin/env bash
# dbferry-custom.sh -- the `custom` method command for ../shared/bench/pg2pg.sh (and mysql2pg.sh):
# one real dbferry full-load migration of $SRC_URL (or $MY_URL, a MariaDB source) into $TGT_URL.
#
# Contract (pg2pg.sh run_custom): pg2pg.sh drops and re-creates the target database $TGT_DB,
# then runs  /usr/bin/time -v bash -c "$CUSTOM_CMD"  with SRC_URL, TGT_URL, TGT_DB, JOBS (and
# PGBIN) in the environment. The whole command is the timed region; rc must be 0; afterwards
# pg2pg.sh verifies exact count(*) of every table in every non-system schema of the target plus
# the number of indexes in schema public.
#
# What runs INSIDE the timed region (this whole script):
#   1. `dbferry worker` is started as a CHILD of this script (so GNU time's max RSS, which is that
#      of the largest reaped descendant, is the worker's: the process that moves the data), and
#      we wait until it logs that it polls the task queue (startup incl. loading the prebuilt
#      workflow bundle);
#   2. `dbferry start plan.yaml --wait --json` (all steps: preflight, create-database,
#      create-tables, full-load, build-indexes incl. ANALYZE, validate); exit 0 required;
#   3. SIGTERM to the worker and wait for it to exit;
#   4. DROP SCHEMA _dbferry on the target (dbferry's bookkeeping tables; the harness counts rows in
#      every non-system schema and would otherwise see 2 extra tables). Takes milliseconds.
# OUTSIDE the timed region: the Temporal dev server (TEMPORAL_ADDRESS must already answer;
# run.sh starts it once). If it does not answer, this script starts a private one and the
# server start-up then IS inside the timed region (a warning is logged).
#
# Environment knobs:
#   DBFERRY_CHECKSUMS=true|false   validate.checksums in the plan (default true = product default)
#   JOBS                           load.parallel (default 2)
#   DBFERRY_CHUNK_ROWS             load.chunkRows (default unset: every table whole)
#   TEMPORAL_ADDRESS, DBFERRY_TASK_QUEUE   Temporal frontend / task queue (run.sh sets both)
#   DBFERRY_KEEP_BOOKKEEPING=1     keep schema _dbferry on the target (the harness verify then says "no")
#   DBFERRY_PHASES_CSV             side file with per-run sub-timings (default $LOGDIR/dbferry-phases.csv)
#   DBFERRY_REPO                   checkout whose bin/dbferry (worker and CLI) runs (default: this one;
#                                  bench/compare-versions.sh points it at an older checkout)
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="${DBFERRY_REPO:-$(cd "$HERE/.." && pwd)}"
DBFERRY="$REPO/bin/dbferry"
PSQL="${PGBIN:-/usr/lib/postgresql/15/bin}/psql"
LOGDIR="${LOGDIR:-$HERE/results/logs}"
mkdir -p "$LOGDIR"
PHASES_CSV="${DBFERRY_PHASES_CSV:-$LOGDIR/dbferry-phases.csv}"
[ -f "$PHASES_CSV" ] || echo "name,checksums,parallel,worker_start_s,start_wait_s,worker_stop_s,drop_bookkeeping_s,script_total_s,status,workdir,method" >"$PHASES_CSV"

# pg2pg.sh sets SRC_URL; ../shared/bench/mysql2pg.sh sets MY_URL (a MariaDB source).
SRC_URL="${SRC_URL:-${MY_URL:-}}"
: "${SRC_URL:?SRC_URL not set (run via pg2pg.sh custom, or MY_URL via mysql2pg.sh custom)}"
case "$SRC_URL" in mysql://*|mariadb://*) SOURCE_ENGINE=mysql ;; *) SOURCE_ENGINE=postgres ;; esac
: "${TGT_URL:?TGT_URL not set (run via pg2pg.sh custom)}"
CHECKSUMS="${DBFERRY_CHECKSUMS:-true}"
case "$CHECKSUMS" in true|false) ;; *) echo "DBFERRY_CHECKSUMS must be true or false" >&2; exit 2 ;; esac
PARALLEL="${JOBS:-2}"
CHUNK_ROWS="${DBFERRY_CHUNK_ROWS:-}"
export TEMPORAL_ADDRESS="${TEMPORAL_ADDRESS:-127.0.0.1:7233}"
export DBFERRY_TASK_QUEUE="${DBFERRY_TASK_QUEUE:-dbferry-bench}"

now() { date +%s.%N; }
el() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }
say() { echo "[$(date +%H:%M:%S.%3N)] dbferry-custom: $*" >&2; }

T0=$(now)
NAME="bench-$(date +%Y%m%d-%H%M%S)-$$"       # unique per run: the workflow id is migration-<name>
WORK="$LOGDIR/$NAME"
mkdir -p "$WORK"
PLAN="$WORK/plan.yaml"
WLOG="$WORK/worker.log"
REPORT="$WORK/report.json"

WPID="" SERVER_PID=""
cleanup() {
  if [ -n "$WPID" ] && kill -0 "$WPID" 2>/dev/null; then kill -TERM "$WPID" 2>/dev/null; wait "$WPID" 2>/dev/null; fi
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then kill -TERM "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; fi
}
trap cleanup EXIT

# ---- Temporal: normally already running (outside the timed region) -------------------------
if ! "$DBFERRY" list >/dev/null 2>&1; then
  say "WARNING: no Temporal at $TEMPORAL_ADDRESS: starting a private dev server; its start-up is INSIDE the timed region"
  port="${TEMPORAL_ADDRESS##*:}"
  "$DBFERRY" dev-server --port "$port" --ui-port $((port + 1000)) >"$WORK/dev-server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 600); do "$DBFERRY" list >/dev/null 2>&1 && break; sleep 0.1; done
  "$DBFERRY" list >/dev/null 2>&1 || { say "Temporal dev server did not come up"; cat "$WORK/dev-server.log" >&2; exit 1; }
fi

# ---- the plan ---------------------------------------------------------------------------------
cat >"$PLAN" <<EOF
# written by bench/dbferry-custom.sh for one pg2pg.sh run
name: $NAME
mode: full-load
source:
  engine: $SOURCE_ENGINE
  url: env:DBFERRY_BENCH_SOURCE_URL
target:
  engine: postgres
  url: env:DBFERRY_BENCH_TARGET_URL
  createDatabase: false        # pg2pg.sh pre-creates \$TGT_DB
load:
  parallel: $PARALLEL
${CHUNK_ROWS:+  chunkRows: $CHUNK_ROWS}
validate:
  checksums: $CHECKSUMS
EOF

# ---- 1. worker (child of this script => counted by /usr/bin/time -v) -----------------------
T_WSTART=$(now)
DBFERRY_BENCH_SOURCE_URL="$SRC_URL" DBFERRY_BENCH_TARGET_URL="$TGT_URL" "$DBFERRY" worker >"$WLOG" 2>&1 &
WPID=$!
ready=0
for _ in $(seq 1200); do   # up to 60 s
  if grep -q "polling task queue" "$WLOG" 2>/dev/null; then ready=1; break; fi
  kill -0 "$WPID" 2>/dev/null || break
  sleep 0.05
done
if [ $ready -ne 1 ]; then say "worker did not start; tail of $WLOG:"; tail -30 "$WLOG" >&2; exit 1; fi
T_WREADY=$(now)
say "worker ready in $(el "$T_WSTART" "$T_WREADY")s (pid $WPID, queue $DBFERRY_TASK_QUEUE); starting migration $NAME (parallel=$PARALLEL checksums=$CHECKSUMS)"

# ---- 2. the migration -------------------------------------------------------------------------
"$DBFERRY" start "$PLAN" --wait --json >"$REPORT" 2>"$WORK/start.err" &
SPID=$!
# Whichever ends first: the CLI (normal) or the worker (crash: then the CLI would wait forever).
wait -n -p FIRST "$SPID" "$WPID"; first_rc=$?
if [ "${FIRST:-}" = "$WPID" ]; then
  say "worker exited (rc=$first_rc) before the migration finished; tail of $WLOG:"; tail -30 "$WLOG" >&2
  WPID=""; kill -TERM "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null
  exit 1
fi
START_RC=$first_rc
T_DONE=$(now)
say "dbferry start --wait: rc=$START_RC in $(el "$T_WREADY" "$T_DONE")s"

# ---- 3. stop the worker -----------------------------------------------------------------------
kill -TERM "$WPID" 2>/dev/null
( sleep 30; kill -KILL "$WPID" 2>/dev/null ) & killer=$!
wait "$WPID" 2>/dev/null
kill "$killer" 2>/dev/null; wait "$killer" 2>/dev/null
WPID=""
T_WSTOP=$(now)

if [ "$START_RC" -ne 0 ]; then
  say "migration $NAME did not complete (rc=$START_RC). CLI output:"
  cat "$WORK/start.err" "$REPORT" | tail -40 >&2
  say "worker log: $WLOG ; inspect with: TEMPORAL_ADDRESS=$TEMPORAL_ADDRESS $DBFERRY status $NAME"
  echo "$NAME,$CHECKSUMS,$PARALLEL,$(el "$T_WSTART" "$T_WREADY"),$(el "$T_WREADY" "$T_DONE"),$(el "$T_DONE" "$T_WSTOP"),,$(el "$T0" "$(now)"),failed rc=$START_RC,$WORK,${CUSTOM_NAME:-dbferry}" >>"$PHASES_CSV"
  exit 1
fi

# ---- 4. drop dbferry's bookkeeping schema so the harness sees only the user tables -----------
T_DROP=$(now)
if [ "${DBFERRY_KEEP_BOOKKEEPING:-0}" != 1 ]; then
  "$PSQL" -X -q -v ON_ERROR_STOP=1 "$TGT_URL" -c "DROP SCHEMA IF EXISTS _dbferry CASCADE" || exit 1
fi
T_END=$(now)

echo "$NAME,$CHECKSUMS,$PARALLEL,$(el "$T_WSTART" "$T_WREADY"),$(el "$T_WREADY" "$T_DONE"),$(el "$T_DONE" "$T_WSTOP"),$(el "$T_DROP" "$T_END"),$(el "$T0" "$T_END"),ok,$WORK,${CUSTOM_NAME:-dbferry}" >>"$PHASES_CSV"
say "done: worker start $(el "$T_WSTART" "$T_WREADY")s + migration $(el "$T_WREADY" "$T_DONE")s + worker stop $(el "$T_DONE" "$T_WSTOP")s + drop _dbferry $(el "$T_DROP" "$T_END")s = $(el "$T0" "$T_END")s"
exit 0
