#!/usr/bin/env bash
# bench/mysql-cdc.sh -- dbferry CDC from MariaDB (binlog) and from PostgreSQL (logical decoding)
# into PostgreSQL, side by side in one run, with the same tables and the same workload:
#
#   1. backlog: one `UPDATE t SET v = v + 1` of all ROWS rows in one source transaction; the time
#      from its COMMIT until the target holds every updated row -> rows/s applied;
#   2. steady: RATE single-row changes/s (3 UPDATEs for each INSERT, autocommit, CONNS
#      connections) for DURATION s, plus a heartbeat row written every HB_MS; the lag of each
#      heartbeat (source commit returned -> first seen on the target, polled every POLL_MS)
#      -> p50/p99/max.
#
#   bash bench/mysql-cdc.sh                               # ROWS=1000000 DURATION=60 RATE=3000, mysql then postgres
#   METHODS="native postgres" bash bench/mysql-cdc.sh     # PostgreSQL's own logical replication, then dbferry
#   ROWS=50000 DURATION=10 bash bench/mysql-cdc.sh        # a quick smoke run
#   METHODS=mysql ROWS=200000 bash bench/mysql-cdc.sh     # one source only (no ratio)
#   KEEP=1 bash bench/mysql-cdc.sh                        # keep WORKDIR (the servers' data, stopped)
#
# Everything is self-contained and stopped on exit by a trap (also on failure or Ctrl-C):
# throwaway servers on free ports under WORKDIR (default a fresh /tmp/dbferry-mycdc.XXXXXX):
# MariaDB (binlog ROW, FULL row image and metadata, as local/mariadb-server.ts starts it, with a
# 1 GB buffer pool), a PostgreSQL source and a PostgreSQL target (the ../shared/bench cluster
# settings); a Temporal dev server (`bin/dbferry dev-server`) and one task queue for the run.
# For each method (METHODS, default "mysql postgres"; "native" is PostgreSQL's own logical
# replication, a subscription on the target, measured by the same writer and the same CPU reads):
#   a. `t (id int primary key, v int, pad varchar(100))` with ROWS rows (v = 0, pad = 100 chars)
#      and `hb (id int primary key, seq bigint)` with one row, on the source;
#   b. a mode full-load migration (validate.checksums false) copies both to the target
#      (database tgt_mysql, schema benchdb; database tgt_postgres, schema public), on its own worker;
#   c. a fresh worker (the one whose RSS is reported) and a mode cdc migration (from "now"),
#      `dbferry start --wait` returning once CDC has caught up;
#   d. the backlog (bench/mysql-cdc-writer.ts burst), then VACUUM ANALYZE of t on the target (and
#      on a PostgreSQL source) so that neither side's steady phase meets the other's dead rows;
#   e. the steady phase (mysql-cdc-writer.ts steady), then a comparison of both sides (count,
#      sums, heartbeat), `dbferry status --json`, and the worker's VmHWM (peak RSS);
#   f. the worker is stopped (the migration stays behind in the throwaway Temporal server).
# It runs a copy of bin/ and dist/ taken at the start (a rebuild meanwhile does not disturb it).
# CPU seconds of the worker, the source server and the target server (all of its processes) are
# read from /proc around the backlog and the steady phase.
#
# Output: bench/results/mysql-cdc-<stamp>/ (summary.md, results.json, logs/); it echoes summary.md.
# Exit 0 when every method ran and both sides compared equal, 1 otherwise.
#
# Knobs: ROWS (1000000), DURATION (60), RATE (3000), CONNS (4), HB_MS (100), POLL_MS (20),
#   METHODS ("mysql postgres"), WORKDIR, KEEP=1, OUT, PGBIN (PostgreSQL server binaries),
#   DBFERRY_REPO (the checkout whose bin/ and dist/ are measured; default this one: node_modules
#   always come from this one),
#   MEM_PROBE=0 (default 1: a preload in the CDC worker appends its process.memoryUsage() and the
#   time V8 spent in garbage collection to logs/<method>/mem.csv every 0.5 s, and runs one full GC
#   after the steady phase, so the summary tells the heap the worker keeps from its garbage).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
# The build measured: this checkout, or another one with bin/ and dist/ (e.g. a worktree of an older commit).
BUILD="$(cd "${DBFERRY_REPO:-$REPO}" && pwd)"
ROWS="${ROWS:-1000000}"
DURATION="${DURATION:-60}"
RATE="${RATE:-3000}"
CONNS="${CONNS:-4}"
HB_MS="${HB_MS:-100}"
POLL_MS="${POLL_MS:-20}"
METHODS="${METHODS:-mysql postgres}"
MEM_PROBE="${MEM_PROBE:-1}"
KEEP="${KEEP:-0}"
STAMP="$(date +%Y%m%d-%H%M%S)"
RUN_ID="$(date +%s)"
OUT="${OUT:-$HERE/results/mysql-cdc-$STAMP}"
LOGDIR="$OUT/logs"

say() { echo "[$(date +%H:%M:%S)] mysql-cdc: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

for m in $METHODS; do case "$m" in mysql|postgres|native) ;; *) die "unknown method '$m' in METHODS (mysql postgres native)" ;; esac; done
[[ "$ROWS" =~ ^[0-9]+$ ]] && [ "$ROWS" -ge 10 ] || die "ROWS must be an integer >= 10"
[ -f "$BUILD/dist/client/cli.js" ] || say "WARNING: no $BUILD/dist/client/cli.js (a rebuild running? waiting up to 3 min for it)"
PGBIN="${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
[ -x "$PGBIN/initdb" ] || die "no PostgreSQL server binaries (set PGBIN)"
MARIADBD="${MARIADBD:-$(command -v mariadbd || echo /usr/sbin/mariadbd)}"
[ -x "$MARIADBD" ] || die "mariadbd not found (install mariadb-server or set MARIADBD)"
command -v mariadb >/dev/null && command -v mariadb-install-db >/dev/null || die "the mariadb client and mariadb-install-db are needed"
command -v jq >/dev/null || die "jq is needed"
PSQL="$PGBIN/psql"
CLK_TCK="$(getconf CLK_TCK)"

mkdir -p "$LOGDIR" || die "cannot create $OUT"
ln -sfn "$(basename "$OUT")" "$HERE/results/latest-mysql-cdc" 2>/dev/null || true
if [ -n "${WORKDIR:-}" ]; then mkdir -p "$WORKDIR" || die "cannot create WORKDIR"; else WORKDIR="$(mktemp -d /tmp/dbferry-mycdc.XXXXXX)"; fi
WORKDIR="$(cd "$WORKDIR" && pwd)"
chmod 755 "$WORKDIR"

if [ "$(id -u)" = 0 ]; then
  as_pg() { runuser -u postgres -- "$@"; }; PG_OS=postgres; MY_OS=mysql
else
  as_pg() { "$@"; }; PG_OS="$(id -un)"; MY_OS="$(id -un)"
fi

# ---- cleanup ------------------------------------------------------------------------------------
SERVER_PID="" WPID="" MY_PID="" STARTED_PG=""
# stop_pid PID SECONDS: SIGTERM, then SIGKILL. The CLI needs it too: the Temporal SDK runtime's
# shutdown hook swallows the first SIGTERM of a process that runs no worker.
stop_pid() {
  local pid="$1" n=$(( ${2:-10} * 10 )) i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < n; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$WPID" 15
  if [ -n "$SERVER_PID" ]; then
    kill -TERM -- "-$SERVER_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$SERVER_PID" 2>/dev/null
  fi
  for d in $STARTED_PG; do as_pg "$PGBIN/pg_ctl" -D "$d" -m fast -w -t 60 stop >/dev/null 2>&1 || as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1; done
  stop_pid "$MY_PID" 60
  if [ "$KEEP" = 1 ]; then say "KEEP=1: server data left in $WORKDIR (stopped)"; else rm -rf "$WORKDIR"; fi
  exit $rc
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# ---- a copy of the build -------------------------------------------------------------------------------
# scripts/build.sh starts with rm -rf dist: a rebuild by someone else during the run must not pull
# the CLI or the worker from under it. dist/workflow-bundle.js is written last by the build.
SNAP="$WORKDIR/dbferry"
for _ in $(seq 90); do [ -f "$BUILD/dist/workflow-bundle.js" ] && [ -f "$BUILD/dist/client/cli.js" ] && break; sleep 2; done
mkdir -p "$SNAP" && cp -a "$BUILD/bin" "$BUILD/dist" "$BUILD/package.json" "$SNAP/" && ln -s "$REPO/node_modules" "$SNAP/node_modules" || die "cannot copy the build"
[ -f "$SNAP/dist/workflow-bundle.js" ] && "$SNAP/bin/dbferry" --version >/dev/null 2>&1 || die "the build in $BUILD/dist is incomplete (a rebuild running?): try again"
DBFERRY="$SNAP/bin/dbferry"
BUILT="$(date -u -r "$SNAP/dist/workflow-bundle.js" '+%F %H:%M UTC')"

# ---- the helper (TypeScript, transpiled with the repo's @swc/core) ----------------------------------
WRITER="$WORKDIR/mysql-cdc-writer.js"
NODE_PATH="$REPO/node_modules" node -e '
  const [src, out] = process.argv.slice(1);
  const { code } = require("@swc/core").transformFileSync(src, { jsc: { parser: { syntax: "typescript" }, target: "es2022" }, module: { type: "commonjs" } });
  require("fs").writeFileSync(out, code);
' "$HERE/mysql-cdc-writer.ts" "$WRITER" 2>"$LOGDIR/swc.log" || { cat "$LOGDIR/swc.log" >&2; die "cannot transpile bench/mysql-cdc-writer.ts"; }
writer() { NODE_PATH="$REPO/node_modules" node "$WRITER" "$@"; }

# ---- servers ------------------------------------------------------------------------------------------
MY_PORT="$(free_port)"; SRC_PORT="$(free_port)"; TGT_PORT="$(free_port)"; TPORT="$(free_port)"; UPORT="$(free_port)"
MYDIR="$WORKDIR/mariadb"; MY_SOCK="$MYDIR/mysqld.sock"
mkdir -p "$MYDIR"; chown "$MY_OS" "$MYDIR"
say "MariaDB $("$MARIADBD" --version | awk '{print $3}') on :$MY_PORT, PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') source :$SRC_PORT target :$TGT_PORT (WORKDIR $WORKDIR)"
mariadb-install-db --no-defaults --user="$MY_OS" --datadir="$MYDIR/data" --auth-root-authentication-method=normal \
  --skip-test-db --skip-name-resolve >"$LOGDIR/mariadb-install-db.log" 2>&1 || { tail -20 "$LOGDIR/mariadb-install-db.log" >&2; die "mariadb-install-db failed"; }
# The flags of local/mariadb-server.ts (binlog ROW with FULL images and metadata, commit without
# fsync), with a buffer pool that holds the table and a redo log that holds the 1M-row UPDATE.
"$MARIADBD" --no-defaults --user="$MY_OS" --datadir="$MYDIR/data" --socket="$MY_SOCK" --port="$MY_PORT" --bind-address=127.0.0.1 \
  --pid-file="$MYDIR/mysqld.pid" --log-error="$MYDIR/server.log" --skip-name-resolve \
  --log-bin=binlog --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL --server-id=1 \
  --innodb-buffer-pool-size=1G --innodb-log-file-size=512M --max-allowed-packet=256M \
  --innodb-flush-log-at-trx-commit=2 --sync-binlog=0 --max-connections=200 \
  --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci </dev/null >/dev/null 2>&1 &
MY_PID=$!
myroot() { mariadb --protocol=socket -S "$MY_SOCK" -uroot "$@"; }
for _ in $(seq 600); do myroot -e 'select 1' >/dev/null 2>&1 && break; kill -0 "$MY_PID" 2>/dev/null || break; sleep 0.1; done
myroot -e 'select 1' >/dev/null 2>&1 || { tail -20 "$MYDIR/server.log" >&2; die "MariaDB did not start"; }
myroot -e "CREATE USER 'bench'@'127.0.0.1' IDENTIFIED BY 'bench'; GRANT ALL PRIVILEGES ON *.* TO 'bench'@'127.0.0.1';" || die "cannot create the MariaDB user"

mkdir -p "$WORKDIR/sock"; chown "$PG_OS" "$WORKDIR/sock"
start_cluster() { # dir port extra-settings
  local dir="$1" port="$2"
  mkdir -p "$dir"; chown "$PG_OS" "$dir"; chmod 700 "$dir"
  as_pg "$PGBIN/initdb" -D "$dir" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$LOGDIR/initdb-$(basename "$dir").log" 2>&1 \
    || { cat "$LOGDIR/initdb-$(basename "$dir").log" >&2; die "initdb $dir failed"; }
  cat >>"$dir/postgresql.conf" <<EOF
# ---- bench/mysql-cdc.sh (the ../shared/bench cluster settings) ----
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORKDIR/sock'
max_connections = 100
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
shared_buffers = 1GB
maintenance_work_mem = 512MB
max_wal_size = 4GB
checkpoint_timeout = 30min
$3
EOF
  as_pg "$PGBIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 120 start >/dev/null || { tail -20 "$dir/server.log" >&2; die "PostgreSQL in $dir did not start"; }
  STARTED_PG="$STARTED_PG $dir"
}
# The source commits without waiting for its WAL flush, as MariaDB does with
# innodb_flush_log_at_trx_commit=2 and sync_binlog=0; the target keeps the durable defaults.
start_cluster "$WORKDIR/pg-src" "$SRC_PORT" "synchronous_commit = off"
start_cluster "$WORKDIR/pg-tgt" "$TGT_PORT" ""
psrc() { PGOPTIONS="-c client_min_messages=warning" "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$SRC_PORT" -U postgres "$@"; }
ptgt() { PGOPTIONS="-c client_min_messages=warning" "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$TGT_PORT" -U postgres "$@"; }

export TEMPORAL_ADDRESS="127.0.0.1:$TPORT" DBFERRY_TASK_QUEUE="dbferry-mycdc-$RUN_ID"
setsid "$DBFERRY" dev-server --port "$TPORT" --ui-port "$UPORT" >"$LOGDIR/temporal-dev-server.log" 2>&1 </dev/null &
SERVER_PID=$!
for _ in $(seq 300); do "$DBFERRY" list >/dev/null 2>&1 && break; sleep 0.2; done
"$DBFERRY" list >/dev/null 2>&1 || { tail -20 "$LOGDIR/temporal-dev-server.log" >&2; die "the Temporal dev server did not come up"; }

# The plans reference these; every worker gets them all.
export BENCH_SRC_MYSQL="mysql://bench:bench@127.0.0.1:$MY_PORT/benchdb"
export BENCH_SRC_POSTGRES="postgres://postgres@127.0.0.1:$SRC_PORT/benchdb"
export BENCH_TGT_MYSQL="postgres://postgres@127.0.0.1:$TGT_PORT/tgt_mysql"
export BENCH_TGT_POSTGRES="postgres://postgres@127.0.0.1:$TGT_PORT/tgt_postgres"
# native: its own source database, so that it can run in one run with postgres.
export BENCH_SRC_NATIVE="postgres://postgres@127.0.0.1:$SRC_PORT/benchnat"
export BENCH_TGT_NATIVE="postgres://postgres@127.0.0.1:$TGT_PORT/tgt_native"

# ---- source data ---------------------------------------------------------------------------------------
make_source() { # method
  local t0=$SECONDS
  if [ "$1" = mysql ]; then
    myroot -e "CREATE DATABASE benchdb; USE benchdb;
      CREATE TABLE t (id int PRIMARY KEY, v int, pad varchar(100)) ENGINE=InnoDB;
      CREATE TABLE hb (id int PRIMARY KEY, seq bigint NOT NULL) ENGINE=InnoDB;
      INSERT INTO t SELECT seq, 0, RPAD(MD5(seq), 100, 'x') FROM seq_1_to_$ROWS;
      INSERT INTO hb VALUES (1, 0);
      ANALYZE TABLE t, hb;" >/dev/null || die "cannot fill MariaDB"
  else
    local db; db="$(src_db "$1")"
    psrc -d postgres -c "CREATE DATABASE $db" || die "cannot create the source database"
    psrc -d "$db" -c "CREATE TABLE t (id int PRIMARY KEY, v int, pad varchar(100));
      CREATE TABLE hb (id int PRIMARY KEY, seq bigint NOT NULL);
      INSERT INTO t SELECT g, 0, rpad(md5(g::text), 100, 'x') FROM generate_series(1, $ROWS) g;
      INSERT INTO hb VALUES (1, 0);" -c "VACUUM ANALYZE" -c "CHECKPOINT" || die "cannot fill the PostgreSQL source"
  fi
  say "$1: source table t filled with $ROWS rows in $(( SECONDS - t0 )) s"
}

# ---- workers and migrations -----------------------------------------------------------------------------
cat >"$WORKDIR/mem-probe.cjs" <<'PROBE'
// Preloaded into the CDC worker (NODE_OPTIONS=--require), main thread only (the preload runs in
// the workflow threads too): memory and the time V8 spent in GC, every 0.5 s. When the file
// <csv>.gc appears, it runs a full GC and writes a line marked "forced-gc" (heap left = live).
const { appendFileSync, existsSync, rmSync } = require('node:fs');
const { PerformanceObserver } = require('node:perf_hooks');
const out = process.env.DBFERRY_BENCH_MEM_CSV;
if (out && require('node:worker_threads').isMainThread) {
  require('node:v8').setFlagsFromString('--expose-gc');
  const gc = require('node:vm').runInNewContext('gc');
  let gcMs = 0;
  let gcMaxMs = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) { gcMs += e.duration; gcMaxMs = Math.max(gcMaxMs, e.duration); }
  }).observe({ entryTypes: ['gc'] });
  appendFileSync(out, 'ms,rss_mb,heap_total_mb,heap_used_mb,external_mb,array_buffers_mb,gc_ms,gc_max_ms,note\n');
  const mb = (x) => (x / 1048576).toFixed(1);
  const line = (note) => {
    const m = process.memoryUsage();
    appendFileSync(out, `${Date.now()},${mb(m.rss)},${mb(m.heapTotal)},${mb(m.heapUsed)},${mb(m.external)},${mb(m.arrayBuffers)},${gcMs.toFixed(1)},${gcMaxMs.toFixed(1)},${note}\n`);
    gcMs = 0;
    gcMaxMs = 0;
  };
  setInterval(() => {
    line('');
    if (existsSync(out + '.gc')) {
      rmSync(out + '.gc', { force: true });
      gc();
      line('forced-gc');
    }
  }, 500).unref();
}
PROBE
start_worker() { # log [mem.csv]
  if [ -n "${2:-}" ] && [ "$MEM_PROBE" = 1 ]; then
    NODE_OPTIONS="${NODE_OPTIONS:-} --require $WORKDIR/mem-probe.cjs" DBFERRY_BENCH_MEM_CSV="$2" "$DBFERRY" worker >"$1" 2>&1 </dev/null &
  else
    "$DBFERRY" worker >"$1" 2>&1 </dev/null &
  fi
  WPID=$!
  for _ in $(seq 1200); do grep -q "polling task queue" "$1" 2>/dev/null && break; kill -0 "$WPID" 2>/dev/null || break; sleep 0.05; done
  grep -q "polling task queue" "$1" || { tail -20 "$1" >&2; die "the worker did not start polling"; }
  [ "$(readlink "/proc/$WPID/exe")" = "$(readlink -f "$(command -v node)")" ] || say "WARNING: worker pid $WPID is not the node process: its RSS is not the worker's"
}
stop_worker() { stop_pid "$WPID" 15; WPID=""; }
plan() { # file name mode method
  cat >"$1" <<PLAN
name: $2
mode: $3
source: { engine: $4, url: env:BENCH_SRC_${4^^} }
target: { engine: postgres, url: env:BENCH_TGT_${4^^} }
load: { parallel: 2 }
validate: { checksums: false }
PLAN
}
# cpu_s PID...: user+system CPU seconds of the processes (with their reaped children: a
# postmaster's count has the backends that have exited).
cpu_s() {
  local p t=0 v
  for p in "$@"; do
    [ -n "$p" ] && [ -r "/proc/$p/stat" ] || continue  # no pid: /proc//stat is the machine's
    v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$p/stat")
    t=$(( t + v ))
  done
  awk -v t="$t" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }'
}
pg_pids() { local pm; pm="$(head -1 "$1/postmaster.pid" 2>/dev/null)"; [ -n "$pm" ] && echo "$pm" $(pgrep -P "$pm"); }
src_db() { if [ "$1" = native ]; then echo benchnat; else echo benchdb; fi; }
src_pids() { if [ "$1" = mysql ]; then echo "$MY_PID"; else pg_pids "$WORKDIR/pg-src"; fi; }
machine_s() { # busy and total CPU seconds of the whole machine (all CPUs), from /proc/stat
  awk -v hz="$CLK_TCK" '$1 == "cpu" { busy = $2 + $3 + $4 + $7 + $8 + $9; printf "%.2f %.2f", busy / hz, (busy + $5 + $6) / hz; exit }' /proc/stat
}
cpu_snapshot() { # method -> "worker source target machine-busy machine-total"
  echo "$(cpu_s "$WPID") $(cpu_s $(src_pids "$1")) $(cpu_s $(pg_pids "$WORKDIR/pg-tgt")) $(machine_s)"
}
cpu_delta() { # snapshot snapshot -> JSON
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
    printf "{\"worker\": %.2f, \"source\": %.2f, \"target\": %.2f, \"machineBusy\": %.2f, \"machineTotal\": %.2f}", y[1]-x[1], y[2]-x[2], y[3]-x[3], y[4]-x[4], y[5]-x[5] }'
}
vm() { awk -v k="$2:" '$1 == k { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null; }

# native: the target's tables as dbferry would create them, a publication on the source and a
# subscription that copies the rows (table sync) and then applies changes (PostgreSQL's defaults:
# synchronous_commit off for the apply, no streaming of large transactions in progress).
start_native() { # logdir
  local t0=$SECONDS
  psrc -d benchnat -c "CREATE PUBLICATION bench_native FOR TABLE t, hb" || { say "native: cannot create the publication"; return 1; }
  ptgt -d postgres -c "CREATE DATABASE tgt_native" &&
    ptgt -d tgt_native -c "CREATE TABLE t (id int PRIMARY KEY, v int, pad varchar(100)); CREATE TABLE hb (id int PRIMARY KEY, seq bigint NOT NULL)" &&
    ptgt -d tgt_native -c "CREATE SUBSCRIPTION bench_native CONNECTION 'host=127.0.0.1 port=$SRC_PORT user=postgres dbname=benchnat application_name=bench_native' PUBLICATION bench_native" \
    || { say "native: cannot create the subscription"; return 1; }
  for _ in $(seq 6000); do
    [ "$(ptgt -d tgt_native -tAc "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'")" = 0 ] && break; sleep 0.1
  done
  [ "$(ptgt -d tgt_native -tAc "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'")" = 0 ] || { say "native: the table sync did not finish in 10 min"; return 1; }
  say "native: subscription synchronized in $(( SECONDS - t0 )) s"
}

FAILED=0
run_method() { # method
  local m="$1" d="$LOGDIR/$1" schema tgt src load cdc rc
  mkdir -p "$d"
  case "$m" in
    mysql) schema=benchdb; src="$BENCH_SRC_MYSQL"; tgt="$BENCH_TGT_MYSQL" ;;
    postgres) schema=public; src="$BENCH_SRC_POSTGRES"; tgt="$BENCH_TGT_POSTGRES" ;;
    native) schema=public; src="$BENCH_SRC_NATIVE"; tgt="$BENCH_TGT_NATIVE" ;;
  esac
  make_source "$m"
  if [ "$m" = native ]; then
    start_native "$d" || return 1
  else
    load="mcl-$m-$RUN_ID"; cdc="mcc-$m-$RUN_ID"
    plan "$d/load.yaml" "$load" full-load "$m"
    plan "$d/cdc.yaml" "$cdc" cdc "$m"
    start_worker "$d/load-worker.log"
    local t0=$SECONDS
    timeout -k 5 900 "$DBFERRY" start "$d/load.yaml" --wait --json >"$d/load-report.json" 2>"$d/load-start.err"
    rc=$?
    stop_worker
    [ $rc = 0 ] || { tail -5 "$d/load-start.err" >&2; say "$m: the full-load migration failed (rc $rc): see $d"; return 1; }
    say "$m: target loaded by dbferry full-load in $(( SECONDS - t0 )) s"

    start_worker "$d/cdc-worker.log" "$d/mem.csv"
    t0=$SECONDS
    timeout -k 5 600 "$DBFERRY" start "$d/cdc.yaml" --wait --json >"$d/cdc-start.json" 2>"$d/cdc-start.err"
    rc=$?
    [ $rc = 0 ] && [ "$(jq -r '.lag.caughtUp // false' "$d/cdc-start.json" 2>/dev/null)" = true ] \
      || { tail -5 "$d/cdc-start.err" "$d/cdc-start.json" >&2; say "$m: CDC did not reach caught-up (rc $rc)"; stop_worker; return 1; }
    say "$m: CDC caught up $(( SECONDS - t0 )) s after start (phase $(jq -r .phase "$d/cdc-start.json")); worker RSS $(vm "$WPID" VmRSS) MB"
  fi
  local rss_idle; rss_idle="$(vm "$WPID" VmRSS)"
  sleep 2

  say "$m: backlog: UPDATE t SET v = v + 1 of $ROWS rows"
  local c0 c1 c2 c3
  c0="$(cpu_snapshot "$m")"; local ms0; ms0=$(date +%s%3N)
  writer burst --src "$src" --tgt "$tgt" --schema "$schema" --rows "$ROWS" --expect 1 >"$d/burst.json" 2>"$d/burst.err"
  rc=$?
  c1="$(cpu_snapshot "$m")"; local ms1; ms1=$(date +%s%3N)
  [ $rc = 0 ] || { cat "$d/burst.err" >&2; say "$m: the backlog measurement failed"; stop_worker; return 1; }
  say "$m: backlog: $(jq -c '{sourceUpdateSeconds, applySeconds, rowsPerSecond, appliedAtOnce}' "$d/burst.json")"
  local rss_backlog; rss_backlog="$(vm "$WPID" VmHWM)"

  # Dead rows of the UPDATE: vacuumed now, outside the measurements, on both sides alike.
  ptgt -d "tgt_$m" -c "VACUUM ANALYZE $schema.t" || say "WARNING: VACUUM on the target failed"
 [ "$m" != mysql ] && { psrc -d "$(src_db "$m")" -c "VACUUM ANALYZE t" || say "WARNING: VACUUM on the source failed"; }
  sleep 3

  say "$m: steady: $RATE changes/s for $DURATION s"
  c2="$(cpu_snapshot "$m")"; local ms2; ms2=$(date +%s%3N)
  writer steady --src "$src" --tgt "$tgt" --schema "$schema" --rows "$ROWS" --rate "$RATE" --duration "$DURATION" \
    --conns "$CONNS" --hb-ms "$HB_MS" --poll-ms "$POLL_MS" --samples-csv "$d/lag-samples.csv" >"$d/steady.json" 2>"$d/steady.err"
  rc=$?
  c3="$(cpu_snapshot "$m")"; local ms3; ms3=$(date +%s%3N)
  [ $rc = 0 ] || { cat "$d/steady.err" >&2; say "$m: the steady measurement failed"; stop_worker; return 1; }
  say "$m: steady: $(jq -c '{achievedChangesPerSecond, samples, lagP50, lagP99, lagMax, catchUpSeconds}' "$d/steady.json")"

  writer verify --src "$src" --tgt "$tgt" --schema "$schema" >"$d/verify.json" 2>"$d/verify.err" || cat "$d/verify.err" >&2
  if [ "$m" = native ]; then
    # Its apply worker and walsender would otherwise go on beside the next method.
    ptgt -d tgt_native -c "DROP SUBSCRIPTION bench_native" || say "WARNING: cannot drop the native subscription"
  else
    "$DBFERRY" status "$cdc" --json >"$d/cdc-status.json" 2>"$d/cdc-status.err"
  fi
  local rss_peak; rss_peak="$(vm "$WPID" VmHWM)"
  if [ "$MEM_PROBE" = 1 ] && [ -s "$d/mem.csv" ]; then
    # What the worker's heap holds once idle: a full GC (the worker is idle, nothing is measured now).
    touch "$d/mem.csv.gc"
    for _ in $(seq 40); do grep -q forced-gc "$d/mem.csv" && break; sleep 0.25; done
  fi
  stop_worker
  local mem='null'
  if [ -s "$d/mem.csv" ]; then
    # per phase: max RSS and heap used, heap used at its end, GC time and the longest GC pause
    mem="$(awk -F, -v a="$ms0" -v b="$ms1" -v c="$ms2" -v e="$ms3" '
      NR > 1 && $9 == "forced-gc" { fr = $2; fh = $4; next }
      NR > 1 { p = ($1 >= a && $1 <= b) ? "backlog" : ($1 >= c && $1 <= e) ? "steady" : ""; if (p == "") next
        if ($2 > rss[p]) rss[p] = $2; if ($4 > heap[p]) heap[p] = $4; last[p] = $4; gc[p] += $7; if ($8 > gcmax[p]) gcmax[p] = $8 }
      END { printf "{"; n = 0
        for (p in rss) { printf "%s\"%s\": {\"rssMaxMb\": %s, \"heapUsedMaxMb\": %s, \"heapUsedEndMb\": %s, \"gcSeconds\": %.2f, \"gcMaxPauseMs\": %s}", (n++ ? ", " : ""), p, rss[p], heap[p], last[p], gc[p] / 1000, gcmax[p] }
        printf "%s\"afterForcedGc\": {\"rssMb\": %s, \"heapUsedMb\": %s}", (n++ ? ", " : ""), (fr == "" ? "null" : fr), (fh == "" ? "null" : fh)
        printf "}" }' "$d/mem.csv")"
  fi
  jq -n --arg m "$m" --argjson mem "$mem" --slurpfile b "$d/burst.json" --slurpfile s "$d/steady.json" --slurpfile v "$d/verify.json" \
    --argjson cb "$(cpu_delta "$c0" "$c1")" --argjson cs "$(cpu_delta "$c2" "$c3")" \
    --arg ri "$rss_idle" --arg rb "$rss_backlog" --arg rp "$rss_peak" \
    '{method: $m, backlog: $b[0], steady: $s[0], verify: $v[0], cpuBacklog: $cb, cpuSteady: $cs,
      workerRssMb: {caughtUp: ($ri | tonumber? // null), peakAfterBacklog: ($rb | tonumber? // null), peak: ($rp | tonumber? // null)}, workerMemory: $mem}' >"$d/result.json"
  [ "$(jq -r .equal "$d/verify.json" 2>/dev/null)" = true ] || { say "$m: source and target DIFFER: $(cat "$d/verify.json")"; return 1; }
  say "$m: source and target equal; worker peak RSS $rss_peak MB"
}

for m in $METHODS; do
  run_method "$m" || FAILED=1
done

# ---- summary ------------------------------------------------------------------------------------------------
jq -s . "$LOGDIR"/*/result.json >"$OUT/results.json" 2>/dev/null || echo '[]' >"$OUT/results.json"
LOAD="$(cut -d' ' -f1-2 /proc/loadavg)"
jq -r --arg rows "$ROWS" --arg dur "$DURATION" --arg rate "$RATE" --arg stamp "$(date -u '+%F %H:%M UTC')" --arg load "$LOAD" \
  --arg ver "$(node -p "require('$SNAP/package.json').version"), built $BUILT$([ "$BUILD" = "$REPO" ] || echo " from $BUILD")" '
  def f(x; n): if x == null then "-" else (x * pow(10; n) | round) / pow(10; n) | tostring end;
  def name(m): if m == "mysql" then "dbferry CDC, MariaDB binlog → PG" elif m == "native" then "PostgreSQL logical replication (subscription), PG → PG" else "dbferry CDC, PostgreSQL → PG" end;
  (map({key: .method, value: .}) | from_entries) as $by |
  "# dbferry CDC: MariaDB vs PostgreSQL source (\($stamp), ROWS=\($rows), DURATION=\($dur) s, RATE=\($rate)/s, dbferry \($ver))",
  "",
  "| method | backlog: apply s after COMMIT | backlog rows/s | steady changes/s achieved | lag p50 s | lag p99 s | lag max s | samples > 0.3 s | catch-up s | worker RSS MB (caught up / peak) | worker CPU s backlog / steady | verified |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|",
  (.[] | "| \(name(.method)) | \(f(.backlog.applySeconds; 2)) | **\(.backlog.rowsPerSecond)** | \(.steady.achievedChangesPerSecond) | \(f(.steady.lagP50; 3)) | **\(f(.steady.lagP99; 3))** | \(f(.steady.lagMax; 3)) | \(.steady.samplesOver300ms) of \(.steady.samples) | \(f(.steady.catchUpSeconds; 3)) | \(.workerRssMb.caughtUp) / \(.workerRssMb.peak) | \(f(.cpuBacklog.worker; 1)) / \(f(.cpuSteady.worker; 1)) | \(if .verify.equal then "yes" else "NO" end) |"),
  "",
  (if $by.mysql and $by.postgres then
     "MariaDB / PostgreSQL: backlog rate \(f($by.mysql.backlog.rowsPerSecond / $by.postgres.backlog.rowsPerSecond; 2))×, steady p99 \(f($by.mysql.steady.lagP99 / $by.postgres.steady.lagP99; 2))×." else empty end),
  (if $by.native and $by.postgres then
     "dbferry / native logical replication (PostgreSQL source): backlog rate \(f($by.postgres.backlog.rowsPerSecond / $by.native.backlog.rowsPerSecond; 2))×, steady p99 \(f($by.postgres.steady.lagP99 / $by.native.steady.lagP99; 2))×; CPU s of the backlog (worker + source + target) \(f($by.postgres.cpuBacklog.worker + $by.postgres.cpuBacklog.source + $by.postgres.cpuBacklog.target; 1)) vs \(f($by.native.cpuBacklog.source + $by.native.cpuBacklog.target; 1))." else empty end),
  (if $by.mysql then
     "Targets (MariaDB source): backlog ≥ 150k rows/s: \(if $by.mysql.backlog.rowsPerSecond >= 150000 then "met" else "NOT met" end) (\($by.mysql.backlog.rowsPerSecond)); steady p99 ≤ 0.3 s at 3k changes/s: \(if $by.mysql.steady.lagP99 <= 0.3 and $by.mysql.steady.achievedChangesPerSecond >= 0.95 * 3000 then "met" else "NOT met" end) (\(f($by.mysql.steady.lagP99; 3)) s at \($by.mysql.steady.achievedChangesPerSecond)/s)." else empty end),
  "",
  "CPU seconds (user+sys) in each phase: worker / source server / target server (all its processes) / the whole machine (busy of total: 2 vCPUs × the phase wall time; the rest of the busy time is the bench writer, Temporal and whatever else ran):",
  "",
  (.[] | "- \(.method): backlog (source UPDATE + apply) \(f(.cpuBacklog.worker; 1)) / \(f(.cpuBacklog.source; 1)) / \(f(.cpuBacklog.target; 1)) / \(f(.cpuBacklog.machineBusy; 1)) of \(f(.cpuBacklog.machineTotal; 1)); steady \(f(.cpuSteady.worker; 1)) / \(f(.cpuSteady.source; 1)) / \(f(.cpuSteady.target; 1)) / \(f(.cpuSteady.machineBusy; 1)) of \(f(.cpuSteady.machineTotal; 1))"),
  "",
  (.[] | "- \(.method): the source UPDATE took \(f(.backlog.sourceUpdateSeconds; 2)) s; first updated rows visible on the target \(f(.backlog.firstRowsVisibleSeconds; 2)) s after COMMIT (all in one target transaction: \(.backlog.appliedAtOnce)); worker RSS after the backlog \(.workerRssMb.peakAfterBacklog) MB (peak so far); steady lag p90 \(f(.steady.lagP90; 3)) s over \(.steady.samples) heartbeats; the writers were at most \(.steady.maxBehindScheduleMs) ms behind their schedule"),
  "",
  (if any(.[]; .workerMemory != null) then
     "Worker memory (MEM_PROBE, 0.5 s samples): max RSS / max V8 heap used / heap used at the end of the phase, MB; time in GC s (longest pause ms):",
     "",
     (.[] | select(.workerMemory != null) | "- \(.method): backlog \(.workerMemory.backlog.rssMaxMb) / \(.workerMemory.backlog.heapUsedMaxMb) / \(.workerMemory.backlog.heapUsedEndMb), GC \(.workerMemory.backlog.gcSeconds) s (\(.workerMemory.backlog.gcMaxPauseMs) ms); steady \(.workerMemory.steady.rssMaxMb) / \(.workerMemory.steady.heapUsedMaxMb) / \(.workerMemory.steady.heapUsedEndMb), GC \(.workerMemory.steady.gcSeconds) s (\(.workerMemory.steady.gcMaxPauseMs) ms); after a forced full GC at the end: RSS \(.workerMemory.afterForcedGc.rssMb), heap used \(.workerMemory.afterForcedGc.heapUsedMb)"),
     "" else empty end),
  "Load average at the end: \($load) (2 vCPUs shared by all servers, the worker, Temporal and anything else running)."
' "$OUT/results.json" >"$OUT/summary.md" 2>"$LOGDIR/summary.err" || { cat "$LOGDIR/summary.err" >&2; FAILED=1; }
echo >&2; cat "$OUT/summary.md" >&2
say "results: $OUT"
exit $FAILED
