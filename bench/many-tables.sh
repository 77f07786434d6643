#!/usr/bin/env bash
# bench/many-tables.sh -- a schema of many small tables (default 50,000) migrated by dbferry in one
# full-load run: does it complete, how long it takes, the worker's peak memory, and how large the
# Temporal histories and payloads get (Temporal refuses a payload over 2 MB and a history over
# 50 MB or 51,200 events).
#
#   bash bench/many-tables.sh                 # TABLES=50000, load.parallel 4
#   TABLES=10000 PARALLEL=2 bash bench/many-tables.sh
#
# The source is database many<TABLES> on the bench source cluster (:55432, ../shared/bench/setup.sh
# pg makes it), built once like test/e2e/many-tables.test.ts: tables many.t<i> and "Many More"."T <i>",
# 1 to 3 rows each. The target database is dropped and created again on the bench target (:55433).
# The Temporal dev server is started outside the timed region; the worker inside it.
# Afterwards: every table's row count and md5 of its rows, source against target (exit 1 when
# they differ), and each workflow's history: events and bytes, and its largest payload.
# Output: bench/results/many-tables-<stamp>/{summary.md (with each step's time and the worker's peak RSS in it),
#   rss.csv (the worker's RSS every second), worker.log, start.json, ...}
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
SHARED="${SHARED_BENCH:-$(cd "$REPO/.." && pwd)/shared/bench}"
DBFERRY="$REPO/bin/dbferry"
TABLES="${TABLES:-50000}"
PARALLEL="${PARALLEL:-4}"
PSQL="${PGBIN:-/usr/lib/postgresql/15/bin}/psql"
SRC_PORT="${SRC_PORT:-55432}" TGT_PORT="${TGT_PORT:-55433}"
SRC_DB="many${TABLES}" TGT_DB="many${TABLES}_copy"
OUT="$HERE/results/many-tables-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
say() { echo "[$(date +%H:%M:%S)] many-tables: $*" >&2; }
src() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$SRC_PORT" -U postgres "$@"; }
tgt() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$TGT_PORT" -U postgres "$@"; }

[ -f "$REPO/dist/client/cli.js" ] || { say "dbferry is not built: run bash scripts/build.sh"; exit 1; }
"$SHARED/setup.sh" pg >/dev/null

# ---- the source, once --------------------------------------------------------------------------
if [ "$(src -tAc "SELECT count(*) FROM pg_database WHERE datname = '$SRC_DB'")" != 1 ] ||
   [ "$(src -d "$SRC_DB" -tAc "SELECT count(*) FROM pg_tables WHERE schemaname IN ('many', 'Many More')")" != "$TABLES" ]; then
  say "creating $TABLES tables in $SRC_DB (once)"
  src -c "DROP DATABASE IF EXISTS $SRC_DB WITH (FORCE)" -c "CREATE DATABASE $SRC_DB"
  src -d "$SRC_DB" -c 'CREATE SCHEMA many; CREATE SCHEMA "Many More"'
  # 1,000 tables a transaction: one transaction cannot lock them all.
  for ((from = 0; from < TABLES; from += 1000)); do
    python3 - "$from" "$TABLES" <<'PY' | src -d "$SRC_DB"
import sys
f, n = int(sys.argv[1]), int(sys.argv[2])
print("BEGIN;")
for i in range(f, min(n, f + 1000)):
    t = f'many.t{i}' if i % 2 == 0 else f'"Many More"."T {i}"'
    print(f"CREATE TABLE {t} (id int PRIMARY KEY, v text); INSERT INTO {t} SELECT g, 'row ' || g || ' of {i}' FROM generate_series(1, {1 + i % 3}) g;")
print("COMMIT;")
PY
  done
fi
tgt -c "DROP DATABASE IF EXISTS $TGT_DB WITH (FORCE)"

# ---- Temporal dev server, outside the timed region -----------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT="$(free_port)"
export TEMPORAL_ADDRESS="127.0.0.1:$PORT" DBFERRY_TASK_QUEUE="many-tables-$$"
setsid "$DBFERRY" dev-server --port "$PORT" --ui-port "$(free_port)" >"$OUT/dev-server.log" 2>&1 </dev/null &
SERVER=$!
WORKER=
cleanup() {
  [ -n "$WORKER" ] && pkill -TERM -P "$WORKER" 2>/dev/null || true
  kill -TERM -- "-$SERVER" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 300); do "$DBFERRY" list >/dev/null 2>&1 && break; sleep 0.2; done

# ---- the migration (timed) ------------------------------------------------------------------------
export SRC_URL="postgres://postgres@127.0.0.1:$SRC_PORT/$SRC_DB" TGT_URL="postgres://postgres@127.0.0.1:$TGT_PORT/$TGT_DB"
cat >"$OUT/plan.yaml" <<EOF
name: many-$TABLES-$$
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:TGT_URL, createDatabase: true }
load: { parallel: $PARALLEL }
EOF
started=$(date +%s.%N)
/usr/bin/time -v -o "$OUT/worker.time" "$DBFERRY" worker >"$OUT/worker.log" 2>&1 &
WORKER=$!
# The worker's RSS every second (rss.csv), to tell which step holds the peak (summary.md).
(
  for _ in $(seq 50); do NODE_PID=$(pgrep -P "$WORKER" | head -1 || true); [ -n "$NODE_PID" ] && break; sleep 0.1; done
  echo "ms,rss_mb" >"$OUT/rss.csv"
  while [ -n "$NODE_PID" ] && kb=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$NODE_PID/status" 2>/dev/null) && [ -n "$kb" ]; do
    echo "$(date +%s%3N),$((kb / 1024))" >>"$OUT/rss.csv"; sleep 1
  done
) &
set +e
"$DBFERRY" start "$OUT/plan.yaml" --wait --json >"$OUT/start.json" 2>"$OUT/start.err"
rc=$?
set -e
ended=$(date +%s.%N)
# The worker itself, not GNU time (which writes the peak RSS once its child has exited).
pkill -TERM -P "$WORKER" 2>/dev/null || true
wait "$WORKER" 2>/dev/null || true
WORKER=
wall=$(awk -v a="$started" -v b="$ended" 'BEGIN{printf "%.1f", b-a}')
rss=$(awk -F': ' '/Maximum resident/{printf "%d", $2/1024}' "$OUT/worker.time")
say "dbferry start --wait: exit $rc after ${wall}s; worker peak RSS ${rss} MB"

# ---- every table equal? (per table: row count and md5 of its rows, as the e2e test reads them) -----
# In 50 slices, each its own transaction: one statement over every table would lock them all.
read -r -d '' slice <<'SQL' || true
SELECT coalesce(sum(n), 0) AS rows, count(*) AS tables, md5(coalesce(string_agg(t || ':' || n || ':' || h, ',' ORDER BY t), '')) AS digest
  FROM (SELECT format('%I.%I', schemaname, tablename) AS t,
               (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', schemaname, tablename), false, true, '')))[1]::text::int AS n,
               (xpath('/row/h/text()', query_to_xml(format('SELECT md5(string_agg(x::text, '','' ORDER BY x::text)) AS h FROM %I.%I x', schemaname, tablename), false, true, '')))[1]::text AS h
          FROM pg_tables WHERE schemaname IN ('many', 'Many More') AND abs(hashtext(tablename)) % 50 = :k) s
SQL
fingerprint() { # psql function (src|tgt), database: tables, rows and one digest over the 50 slices
  local side="$1" db="$2"
  for k in $(seq 0 49); do "$side" -d "$db" -tA -v k="$k" <<<"$slice" || return 1; done |
    awk -F'|' '{rows += $1; tables += $2; d = d $3} END {cmd = "printf %s " d " | md5sum"; cmd | getline m; print tables " tables, " rows " rows, " substr(m, 1, 32)}'
}
S=$(fingerprint src "$SRC_DB")
T=$(fingerprint tgt "$TGT_DB" 2>/dev/null || echo "no target")
same=no; [ "$S" = "$T" ] && same=yes
say "source $S | target $T | equal: $same"

# ---- the histories: events, bytes, the largest payload ---------------------------------------------
cd "$REPO"
node - <<'JS' >"$OUT/histories.md"
const { Connection, Client } = require(process.cwd() + '/node_modules/@temporalio/client');
const { temporal } = require(process.cwd() + '/node_modules/@temporalio/proto');
(async () => {
  const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS });
  const client = new Client({ connection });
  console.log('| workflow | events | history bytes | largest payload bytes |\n|---|---|---|---|');
  for await (const w of client.workflow.list()) {
    const h = await client.workflow.getHandle(w.workflowId, w.runId).fetchHistory();
    const bytes = temporal.api.history.v1.History.encode(h).finish().length;
    let largest = 0;
    for (const e of h.events ?? []) {
      const walk = (o) => { if (!o || typeof o !== 'object') return; if (o.data && o.metadata) largest = Math.max(largest, o.data.length ?? 0); for (const v of Object.values(o)) walk(v); };
      walk(e);
    }
    console.log(`| ${w.workflowId} | ${h.events?.length} | ${bytes} | ${largest} |`);
  }
  await connection.close();
})();
JS
{
  echo "### $TABLES tables, load.parallel $PARALLEL"
  echo
  echo "| exit | wall s | tables/s | worker peak RSS MB | every table equal |"
  echo "|---|---|---|---|---|"
  echo "| $rc | $wall | $(awk -v n="$TABLES" -v w="$wall" 'BEGIN{printf "%.0f", n/w}') | $rss | $same |"
  echo
  cat "$OUT/histories.md"
  echo
  # Each step's time and the worker's largest RSS sample during it.
  node -e '
    const fs = require("fs");
    const [start, csv] = process.argv.slice(1);
    const steps = JSON.parse(fs.readFileSync(start, "utf8")).status?.steps ?? [];
    const rss = fs.readFileSync(csv, "utf8").trim().split("\n").slice(1).map((l) => l.split(",").map(Number));
    console.log("| step | seconds | worker peak RSS MB in the step |\n|---|---|---|");
    for (const s of steps) {
      const a = Date.parse(s.startedAt), b = Date.parse(s.endedAt);
      const inside = rss.filter(([t]) => t >= a && t <= b).map(([, m]) => m);
      console.log(`| ${s.step} | ${((b - a) / 1000).toFixed(1)} | ${inside.length ? Math.max(...inside) : "-"} |`);
    }' "$OUT/start.json" "$OUT/rss.csv" 2>/dev/null || echo "(no step times: see start.json)"
} | tee "$OUT/summary.md"
[ "$rc" = 0 ] && [ "$same" = yes ]
