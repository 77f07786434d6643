#!/usr/bin/env bash
# bench/compare-versions.sh -- two dbferry builds side by side with copy-binary and pgcopydb, in one
# bench run on dataset A (the same pg2pg.sh contract as run.sh; see bench/README.md).
#
#   git worktree add /tmp/dbferry-old <commit> && (cd /tmp/dbferry-old && ln -s "$PWD/node_modules" . && bash scripts/build.sh)
#   bash bench/compare-versions.sh /tmp/dbferry-old [NEW_CHECKOUT]      # NEW_CHECKOUT defaults to this repo
#   RUNS=2 OLD_NAME=dbferry_v01 NEW_NAME=dbferry_v02 bash bench/compare-versions.sh /tmp/dbferry-old
#
# RUNS rounds (default 3); each round runs the PEERS (default "copy-binary pgcopydb") once, then both
# dbferry builds once (old first in odd rounds, new first in even rounds). Each build runs with its
# own bin/dbferry (worker and CLI, via DBFERRY_REPO of dbferry-custom.sh), its own Temporal dev server
# (started by that build, outside the timed region) and its own task queue, so a worker never sees the
# other build's workflows. Checksums on (DBFERRY_CHECKSUMS=false to turn them off in both).
# source-cost.py samples, every second while a dbferry worker runs, the CPU of the source's
# 'dbferry snapshot holder' backend and of the worker (SOURCE_COST=0 turns it off).
# Output: bench/results/<stamp>/{results.csv,dbferry-phases.csv,source-cost.csv,report.md,summary.md,logs/}.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
SHARED="${SHARED_BENCH:-$(cd "$REPO/.." && pwd)/shared/bench}"
OLD="$(cd "${1:?usage: compare-versions.sh OLD_CHECKOUT [NEW_CHECKOUT]}" && pwd)"
NEW="$(cd "${2:-$REPO}" && pwd)"
OLD_NAME="${OLD_NAME:-dbferry_before}" NEW_NAME="${NEW_NAME:-dbferry_after}"   # identifiers: target db t_<name>
RUNS="${RUNS:-3}" PEERS="${PEERS-copy-binary pgcopydb}"
export JOBS="${JOBS:-2}"
STAMP="$(date +%Y%m%d-%H%M%S)"
OUT="$HERE/results/$STAMP"
mkdir -p "$OUT/logs"
ln -sfn "$STAMP" "$HERE/results/latest"
export RESULTS_CSV="$OUT/results.csv" DBFERRY_PHASES_CSV="$OUT/dbferry-phases.csv"
say() { echo "[$(date +%H:%M:%S)] compare-versions: $*" >&2; }

for d in "$OLD" "$NEW"; do
  [ -f "$d/dist/client/cli.js" ] && [ -f "$d/dist/workflow-bundle.js" ] || { say "$d is not built (bash scripts/build.sh there)"; exit 1; }
done
command -v pgcopydb >/dev/null || { apt-get update -qq && apt-get install -y -qq pgcopydb >"$OUT/logs/apt.log" 2>&1; }
"$SHARED/setup.sh" pg

# ---- one Temporal dev server + task queue per build, outside the timed region ----------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; kill -KILL -- "-$p" 2>/dev/null || true; done
}
trap cleanup EXIT
declare -A ADDR QUEUE VERSION
for v in old new; do
  d=$([ $v = old ] && echo "$OLD" || echo "$NEW")
  port=$(free_port)
  ADDR[$v]="127.0.0.1:$port" QUEUE[$v]="dbferry-bench-$v-$STAMP"
  setsid "$d/bin/dbferry" dev-server --port "$port" --ui-port "$(free_port)" >"$OUT/logs/dev-server-$v.log" 2>&1 </dev/null &
  PIDS+=($!)
  for _ in $(seq 300); do TEMPORAL_ADDRESS=${ADDR[$v]} "$d/bin/dbferry" list >/dev/null 2>&1 && break; sleep 0.2; done
  TEMPORAL_ADDRESS=${ADDR[$v]} "$d/bin/dbferry" list >/dev/null 2>&1 || { say "dev server of $d did not answer"; exit 1; }
  VERSION[$v]="$("$d/bin/dbferry" --version) $(git -C "$d" rev-parse --short HEAD)$(git -C "$d" diff --quiet HEAD -- . ':!bench' || echo -dirty)"
  say "$v = $d (${VERSION[$v]}): Temporal ${ADDR[$v]}, queue ${QUEUE[$v]}"
done
SAMPLER=""
if [ "${SOURCE_COST:-1}" = 1 ]; then
  setsid python3 "$HERE/source-cost.py" sample "$OUT/source-cost.csv" "$OLD_NAME=$OLD" "$NEW_NAME=$NEW" 2>"$OUT/logs/source-cost.err" &
  SAMPLER=$!; PIDS+=($!)
fi

run_dbferry() { # old|new
  local v=$1 d name
  d=$([ $v = old ] && echo "$OLD" || echo "$NEW"); name=$([ $v = old ] && echo "$OLD_NAME" || echo "$NEW_NAME")
  CUSTOM_NAME=$name CUSTOM_VERSION="${VERSION[$v]}" DBFERRY_REPO=$d TEMPORAL_ADDRESS=${ADDR[$v]} DBFERRY_TASK_QUEUE=${QUEUE[$v]} \
    CUSTOM_CMD="bash $HERE/dbferry-custom.sh" RUNS=1 "$SHARED/pg2pg.sh" custom
}
for ((r = 1; r <= RUNS; r++)); do
  export LOGDIR="$OUT/logs/round$r"; mkdir -p "$LOGDIR"
  say "round $r/$RUNS: $PEERS, then both dbferry builds"
  # shellcheck disable=SC2086
  [ -z "$PEERS" ] || RUNS=1 "$SHARED/pg2pg.sh" $PEERS
  if ((r % 2)); then run_dbferry old; run_dbferry new; else run_dbferry new; run_dbferry old; fi
done
export LOGDIR="$OUT/logs"
[ -z "$SAMPLER" ] || { kill -TERM "$SAMPLER"; wait "$SAMPLER" || true; }

# ---- report ----------------------------------------------------------------------------------------
python3 "$SHARED/report.py" "$RESULTS_CSV" >"$OUT/report.md"
{
  python3 "$HERE/summarize.py" "$RESULTS_CSV" "$DBFERRY_PHASES_CSV" "$OUT/logs"
  python3 - "$RESULTS_CSV" "$OLD_NAME" "$NEW_NAME" <<'EOF'
import csv, statistics, sys
w = {}
for r in csv.DictReader(open(sys.argv[1])):
    if r["verified"] == "yes":
        w.setdefault(r["tool"] if r["method"] == "custom" else r["method"], []).append(float(r["wall_s"]))
m = {k: statistics.median(v) for k, v in w.items()}
old, new = sys.argv[2], sys.argv[3]
if old in m and new in m:
    print(f"\n{new} / {old} (median wall): {m[new] / m[old]:.3f}x")
EOF
  if [ -f "$OUT/source-cost.csv" ]; then echo; echo "### Source-side cost of the snapshot holder (source-cost.py)"; echo
    python3 "$HERE/source-cost.py" report "$OUT/source-cost.csv"; fi
} | tee "$OUT/summary.md"

if [ "${KEEP_TARGETS:-0}" != 1 ]; then
  for db in t_copy_binary t_pgcopydb "t_$OLD_NAME" "t_$NEW_NAME"; do
    "${PGBIN:-/usr/lib/postgresql/15/bin}/psql" -X -q -h 127.0.0.1 -p "${TGT_PORT:-55433}" -U postgres -d postgres \
      -c "drop database if exists $db with (force)" || true
  done
fi
say "results in $OUT"
