#!/usr/bin/env bash
# dbferry-cdc.sh -- the CUSTOM_CDC_CMD of ../shared/bench/cdc.sh: dbferry CDC (mode cdc, from
# "now") of the pgbench tables into the preloaded target, through a real worker and workflow.
#
# Contract (cdc.sh, CDC_MODE=custom): started with setsid, with SRC_URL, TGT_URL, TGT_DB and
# PUB (the publication cdc.sh created) in the environment; runs until SIGTERM to its process
# group. Give cdc.sh CUSTOM_CDC_SLOT=dbferry_bench_cdc for the slot metrics.
#
# What it does: starts `dbferry worker` (in this process group, so cdc.sh samples its RSS), starts
# the migration (mode cdc, publication $PUB, slot dbferry_bench_cdc) and waits. The SIGTERM to
# the group reaches the worker too, which shuts down; cdc.sh then drops the (inactive) slot.
# The migration's workflow stays behind in the throwaway Temporal dev server of cdc-run.sh.
# DBFERRY_CDC_STREAMING=false: large transactions applied after their commit (cdc.streaming).
# pgbench_history has no primary key: CDC applies such a table only with REPLICA IDENTITY FULL
# (its rows then carry all columns), which this script sets on the source before it starts.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
DBFERRY="$REPO/bin/dbferry"
PSQL="${PGBIN:-/usr/lib/postgresql/15/bin}/psql"
: "${SRC_URL:?}" "${TGT_URL:?}" "${PUB:?}"
NAME="${DBFERRY_CDC_NAME:-bench-cdc}"
WORK="${LOGDIR:-/tmp}/dbferry-cdc-$$"
mkdir -p "$WORK"
export TEMPORAL_ADDRESS="${TEMPORAL_ADDRESS:-127.0.0.1:7233}" DBFERRY_TASK_QUEUE="${DBFERRY_TASK_QUEUE:-dbferry-bench-cdc}"
say() { echo "[$(date +%H:%M:%S.%3N)] dbferry-cdc: $*" >&2; }

"$PSQL" -X -q "$SRC_URL" -c "ALTER TABLE pgbench_history REPLICA IDENTITY FULL" || exit 1
# A name can be migrated once: a leftover workflow of an earlier run would be found "completed".
NAME="$NAME-$(date +%s)"

cat >"$WORK/plan.yaml" <<PLAN
name: $NAME
mode: cdc
source: { engine: postgres, url: env:DBFERRY_BENCH_SOURCE_URL }
target: { engine: postgres, url: env:DBFERRY_BENCH_TARGET_URL }
tables: { include: ['public.pgbench_%'] }
cdc: { slot: ${CUSTOM_CDC_SLOT:-dbferry_bench_cdc}, publication: $PUB, streaming: ${DBFERRY_CDC_STREAMING:-true} }
PLAN

DBFERRY_BENCH_SOURCE_URL="$SRC_URL" DBFERRY_BENCH_TARGET_URL="$TGT_URL" "$DBFERRY" worker >"$WORK/worker.log" 2>&1 &
WPID=$!
stop() {
  kill -TERM "$WPID" 2>/dev/null; wait "$WPID" 2>/dev/null
  exit 0
}
trap stop TERM INT
for _ in $(seq 1200); do grep -q "polling task queue" "$WORK/worker.log" 2>/dev/null && break; sleep 0.05; done
"$DBFERRY" start "$WORK/plan.yaml" --wait >"$WORK/start.log" 2>&1
say "dbferry start --wait: rc=$? ($(tail -1 "$WORK/start.log"))"
while kill -0 "$WPID" 2>/dev/null; do sleep 0.2; done
say "worker exited; tail of its log:"; tail -20 "$WORK/worker.log" >&2
