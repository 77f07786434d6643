#!/usr/bin/env bash
# bench/large-table-rss.sh -- peak RSS of ONE dbferry worker while it loads ONE table larger than 2 GB.
#
# Acceptance being measured: "Peak RSS of a worker stays under 300 MB while loading a table larger
# than 2 GB (measured in bench/, reported in the note)."
#
#   bash bench/large-table-rss.sh                        # default: ROWS=8000000 (a 2327 MB table), 2 configs
#   ROWS=1000000 bash bench/large-table-rss.sh           # quick smoke run (~300 MB table)
#   CONFIGS="p2" bash bench/large-table-rss.sh           # only load.parallel=2
#   WORKDIR=/big/disk/rss KEEP=1 bash bench/large-table-rss.sh   # keep the clusters' data (reused next time)
#
# What it does, all self-contained (servers on free ports, everything stopped on exit by a trap):
#   1. checks the prerequisites (dist/ built, Temporal CLI, PostgreSQL 15 binaries; runs
#      scripts/setup.sh when one is missing, SETUP=0 forbids that) and the free disk under WORKDIR;
#   2. initdb + pg_ctl start of a source and a target PostgreSQL 15 cluster under $WORKDIR
#      (the settings of ../shared/bench: wal_level=logical, shared_buffers=1GB, durability on);
#   3. `bin/dbferry dev-server` (Temporal dev server) in its own process group;
#   4. builds `big (id bigint primary key, a text, b text, c numeric, d timestamptz)` with
#      generate_series in the source database `rss`, VACUUM ANALYZE, CHECKPOINT, prints its size;
#   5. for each config: starts ONE `bin/dbferry worker` (bin/dbferry is `#!/usr/bin/env node`, so
#      the backgrounded pid IS the node process; checked via /proc/<pid>/exe), waits until it polls,
#      lets it settle IDLE_SETTLE_S and reads its idle VmRSS; samples /proc/<pid>/status every
#      SAMPLE_S into rss.csv; runs `bin/dbferry start plan.yaml --wait --json`; reads VmHWM (the
#      kernel's peak RSS of the process) right before SIGTERM; drops the target database;
#   6. writes bench/results/large-table/summary.md (and echoes it).
#
# Exit: 0 when every migration completed with validation equal; 1 when one failed or validated
# different (or the setup failed); 4 with STRICT_RSS=1 when a peak exceeds RSS_LIMIT_MB.
#
# Environment knobs:
#   ROWS            rows of big (default 8000000: heap 2155 MB, with the PK 2327 MB; MB = 2^20 bytes)
#   CONFIGS         space-separated subset of: p1 p2 p4c (default "p2 p4c")
#                     p1  = load: { parallel: 1 }
#                     p2  = load: { parallel: 2 }                      (the table loads whole: one COPY)
#                     p4c = load: { parallel: 4, chunkRows: 2000000 }  (key-range chunks, 4 COPYs at once)
#   CHECKSUMS       validate.checksums (default true)
#   WORKDIR         where the clusters live (default: a fresh /tmp/dbferry-large-table.XXXXXX)
#   KEEP=1          keep WORKDIR (clusters stopped); a later run with the same WORKDIR reuses the source data
#   MEM_PROBE=0     do not preload the process.memoryUsage() probe into the worker (default 1: a
#                   0.5 s timer in the worker's main thread appends heap/external figures to mem.csv)
#   SAMPLE_S        /proc sampling interval (default 0.5); IDLE_SETTLE_S (default 3)
#   RSS_LIMIT_MB    the acceptance limit (default 300); STRICT_RSS=1 exits 4 when exceeded
#   OUT             results folder (default bench/results/large-table)
#   SETUP=0         never run scripts/setup.sh; DISK_CHECK=0 skips the free-space check
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
DBFERRY="$REPO/bin/dbferry"
ROWS="${ROWS:-8000000}"
CONFIGS="${CONFIGS:-p2 p4c}"
CHECKSUMS="${CHECKSUMS:-true}"
SAMPLE_S="${SAMPLE_S:-0.5}"
IDLE_SETTLE_S="${IDLE_SETTLE_S:-3}"
RSS_LIMIT_MB="${RSS_LIMIT_MB:-300}"
MEM_PROBE="${MEM_PROBE:-1}"
OUT="${OUT:-$HERE/results/large-table}"
SRC_DB=rss

say() { echo "[$(date +%H:%M:%S)] large-table-rss: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
el() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

case "$CHECKSUMS" in true|false) ;; *) die "CHECKSUMS must be true or false" ;; esac
[[ "$ROWS" =~ ^[0-9]+$ ]] && [ "$ROWS" -gt 0 ] || die "ROWS must be a positive integer"
for c in $CONFIGS; do case "$c" in p1|p2|p4c) ;; *) die "unknown config '$c' in CONFIGS (p1 p2 p4c)" ;; esac; done

# ---- 1. prerequisites ------------------------------------------------------------------------------
find_pgbin() {
  if [ -n "${PGBIN:-}" ]; then echo "$PGBIN"; return; fi
  [ -x /usr/lib/postgresql/15/bin/initdb ] && { echo /usr/lib/postgresql/15/bin; return; }
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}
temporal_present() {
  [ -n "${DBFERRY_TEMPORAL_BIN:-}" ] && [ -x "$DBFERRY_TEMPORAL_BIN" ] && return 0
  command -v temporal >/dev/null 2>&1 && return 0
  [ -x "${XDG_CACHE_HOME:-$HOME/.cache}/dbferry/bin/temporal" ]
}
if [ ! -f "$REPO/dist/client/cli.js" ] || [ ! -d "$REPO/node_modules" ] || ! temporal_present || [ -z "$(find_pgbin)" ]; then
  [ "${SETUP:-1}" = 1 ] || die "dbferry is not set up (dist/, node_modules, Temporal CLI or PostgreSQL missing): run bash scripts/setup.sh"
  say "something is missing: running scripts/setup.sh"
  bash "$REPO/scripts/setup.sh" || die "scripts/setup.sh failed"
fi
PGBIN="$(find_pgbin)"
[ -x "$PGBIN/initdb" ] || die "no PostgreSQL server binaries (initdb) found"
PGVER="$("$PGBIN/postgres" --version | awk '{print $3}')"
case "$PGVER" in 15.*) ;; *) say "WARNING: PostgreSQL $PGVER, not 15 (set PGBIN=/usr/lib/postgresql/15/bin)";; esac
[ -f "$REPO/dist/workflow-bundle.js" ] || say "WARNING: no prebuilt dist/workflow-bundle.js: the worker bundles the workflows at start (more memory at start)"
PSQL="$PGBIN/psql"

# PostgreSQL refuses to run as root: when root, the clusters run as the `postgres` OS user.
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' OS user"
  PGUSER_OS=postgres; as_pg() { runuser -u postgres -- "$@"; }
else
  PGUSER_OS="$(id -un)"; as_pg() { "$@"; }
fi

# ---- disk ---------------------------------------------------------------------------------------------
KEEP="${KEEP:-0}"
if [ -n "${WORKDIR:-}" ]; then mkdir -p "$WORKDIR" || die "cannot create WORKDIR=$WORKDIR"; OWN_WORKDIR=0
else WORKDIR="$(mktemp -d /tmp/dbferry-large-table.XXXXXX)"; OWN_WORKDIR=1; fi
WORKDIR="$(cd "$WORKDIR" && pwd)"
df -h /tmp >&2
[ "$WORKDIR" = /tmp ] || df -h "$WORKDIR" >&2
# ~300 B a row in the heap plus the key: source + target + WAL (max_wal_size 4GB each) + slack.
EST_TABLE_B=$(( ROWS * 300 ))
NEED_B=$(( EST_TABLE_B * 2 + 6 * 1024 * 1024 * 1024 ))
AVAIL_B=$(( $(df -Pk "$WORKDIR" | awk 'NR==2{print $4}') * 1024 ))
say "WORKDIR=$WORKDIR: $(( AVAIL_B / 1048576 )) MB free, about $(( NEED_B / 1048576 )) MB needed for ROWS=$ROWS"
if [ "${DISK_CHECK:-1}" = 1 ] && [ "$AVAIL_B" -lt "$NEED_B" ]; then
  [ "$OWN_WORKDIR" = 1 ] && rm -rf "$WORKDIR"
  die "not enough free space under $WORKDIR (set WORKDIR to a bigger disk, or DISK_CHECK=0)"
fi

mkdir -p "$OUT"
LOGDIR="$OUT/logs"; mkdir -p "$LOGDIR"
RUNS_TSV="$OUT/runs.tsv.partial"   # renamed to runs.tsv with summary.md at the end: an interrupted run leaves the last summary alone

# ---- cleanup trap -----------------------------------------------------------------------------------
SRC_DIR="$WORKDIR/pg-src" TGT_DIR="$WORKDIR/pg-tgt"
SERVER_PID="" WPID="" SAMPLER_PID="" SPID="" STARTED_PG=""
# stop_pid PID SECONDS: SIGTERM, then SIGKILL when it is still there after SECONDS. Needed for the
# CLI too: every dbferry command installs the Temporal SDK Runtime, whose default shutdown hook
# swallows the first SIGINT/SIGTERM of a process that runs no worker (`start --wait` survives it).
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
  [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null
  stop_pid "$SPID" 2
  stop_pid "$WPID" 15
  if [ -n "$SERVER_PID" ]; then
    kill -TERM -- "-$SERVER_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$SERVER_PID" 2>/dev/null
  fi
  for d in $STARTED_PG; do as_pg "$PGBIN/pg_ctl" -D "$d" -m fast -w -t 60 stop >/dev/null 2>&1 || as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1; done
  if [ "$KEEP" != 1 ]; then
    if [ "$OWN_WORKDIR" = 1 ]; then rm -rf "$WORKDIR"; else rm -rf "$SRC_DIR" "$TGT_DIR" "$WORKDIR/sock" "$WORKDIR/mem-probe.cjs"; fi
  else
    say "KEEP=1: cluster data left in $WORKDIR (stopped)"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# ---- 2. PostgreSQL clusters -----------------------------------------------------------------------------
mkdir -p "$WORKDIR/sock"
chown "$PGUSER_OS" "$WORKDIR" "$WORKDIR/sock" 2>/dev/null || true
start_cluster() { # dir port
  local dir="$1" port="$2"
  if [ ! -f "$dir/PG_VERSION" ]; then
    mkdir -p "$dir"; chown "$PGUSER_OS" "$dir"; chmod 700 "$dir"
    as_pg "$PGBIN/initdb" -D "$dir" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$LOGDIR/initdb-$(basename "$dir").log" 2>&1 \
      || { cat "$LOGDIR/initdb-$(basename "$dir").log" >&2; die "initdb $dir failed"; }
    cat >>"$dir/postgresql.conf" <<EOF
# ---- bench/large-table-rss.sh (the ../shared/bench cluster settings; max_wal_size lower to bound disk) ----
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
EOF
  fi
  # the port is given on the command line: a kept cluster gets a fresh free port every run
  as_pg "$PGBIN/pg_ctl" -D "$dir" -l "$dir/server.log" -o "-p $port" -w -t 120 start >/dev/null \
    || { tail -20 "$dir/server.log" >&2; die "PostgreSQL in $dir did not start"; }
  STARTED_PG="$STARTED_PG $dir"
}
SRC_PORT="$(free_port)"; TGT_PORT="$(free_port)"
while [ "$TGT_PORT" = "$SRC_PORT" ]; do TGT_PORT="$(free_port)"; done
say "PostgreSQL $PGVER: source :$SRC_PORT ($SRC_DIR), target :$TGT_PORT ($TGT_DIR)"
start_cluster "$SRC_DIR" "$SRC_PORT"
start_cluster "$TGT_DIR" "$TGT_PORT"
psrc() { PGOPTIONS="-c client_min_messages=warning" "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$SRC_PORT" -U postgres "$@"; }
ptgt() { PGOPTIONS="-c client_min_messages=warning" "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$TGT_PORT" -U postgres "$@"; }

# ---- 3. Temporal dev server ------------------------------------------------------------------------------
TPORT="$(free_port)"; UPORT="$(free_port)"
export TEMPORAL_ADDRESS="127.0.0.1:$TPORT"
export DBFERRY_TASK_QUEUE="dbferry-rss-$$"
say "Temporal dev server on $TEMPORAL_ADDRESS (UI :$UPORT)"
setsid "$DBFERRY" dev-server --port "$TPORT" --ui-port "$UPORT" >"$LOGDIR/temporal-dev-server.log" 2>&1 </dev/null &
SERVER_PID=$!
for _ in $(seq 300); do "$DBFERRY" list >/dev/null 2>&1 && break; kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
"$DBFERRY" list >/dev/null 2>&1 || { cat "$LOGDIR/temporal-dev-server.log" >&2; die "the Temporal dev server did not answer"; }

# ---- 4. the source table ------------------------------------------------------------------------------------
WANT="big rows=$ROWS v1"
HAVE="$(psrc -d postgres -At -c "select shobj_description(oid,'pg_database') from pg_database where datname='$SRC_DB'" 2>/dev/null || true)"
if [ "$HAVE" = "$WANT" ]; then
  say "source table already built ($HAVE)"
else
  say "building $SRC_DB.big with $ROWS rows (2 parallel INSERT … generate_series slices)"
  T=$(now)
  psrc -d postgres -c "drop database if exists $SRC_DB" -c "create database $SRC_DB" || die "create database failed"
  psrc -d "$SRC_DB" -c "create table big (id bigint not null, a text, b text, c numeric, d timestamptz)" || die "create table failed"
  half=$(( (ROWS + 1) / 2 )); pids=""
  for range in "1 $half" "$(( half + 1 )) $ROWS"; do
    set -- $range; [ "$1" -le "$2" ] || continue
    # a: 120 chars, b: 100 chars (hex, no TOAST: rows stay ~280 B in the heap), c: numeric, d: timestamptz
    psrc -d "$SRC_DB" -c "insert into big
        select g,
               rpad(md5(g::text), 120, md5((g + 1)::text)),
               rpad(md5((g * 31)::text), 100, md5((g * 7)::text)),
               (g % 1000003) * 1.2345,
               timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
          from generate_series($1::bigint, $2::bigint) g" &
    pids="$pids $!"
  done
  for p in $pids; do wait "$p" || die "filling big failed"; done
  psrc -d "$SRC_DB" -c "alter table big add primary key (id)" -c "vacuum analyze big" -c "checkpoint" \
       -c "comment on database $SRC_DB is '$WANT'" || die "finishing big failed"
  say "source table built in $(el "$T" "$(now)")s"
fi
read -r TABLE_BYTES HEAP_BYTES SRC_ROWS < <(psrc -d "$SRC_DB" -At -F ' ' -c \
  "select pg_total_relation_size('big'), pg_relation_size('big'), (select count(*) from big)")
TABLE_MB=$(awk -v b="$TABLE_BYTES" 'BEGIN{printf "%.0f", b/1048576}')
HEAP_MB=$(awk -v b="$HEAP_BYTES" 'BEGIN{printf "%.0f", b/1048576}')
say "source table big: $SRC_ROWS rows, pg_total_relation_size $TABLE_MB MB ($TABLE_BYTES bytes), heap $HEAP_MB MB"
[ "$TABLE_BYTES" -gt $(( 2 * 1024 * 1024 * 1024 )) ] || say "WARNING: the table is not larger than 2 GB (ROWS=$ROWS): this run does not meet the acceptance's condition"

# ---- the memory probe preloaded into the worker (MEM_PROBE=1) ---------------------------------------------
PROBE="$WORKDIR/mem-probe.cjs"
cat >"$PROBE" <<'EOF'
// Preloaded with NODE_OPTIONS=--require by bench/large-table-rss.sh: every 0.5 s the worker's main
// thread appends process.memoryUsage() (rss is the whole process; heap* the main isolate only;
// external/arrayBuffers are Buffers and other off-heap V8 memory) to $DBFERRY_MEMPROBE_FILE.
const { isMainThread } = require('node:worker_threads');
const file = process.env.DBFERRY_MEMPROBE_FILE;
if (isMainThread && file) {
  const fs = require('node:fs');
  fs.writeFileSync(file, 'epoch_s,rss_kb,heap_total_kb,heap_used_kb,external_kb,array_buffers_kb\n');
  const kb = (n) => Math.round(n / 1024);
  setInterval(() => {
    const m = process.memoryUsage();
    fs.appendFileSync(file, `${(Date.now() / 1000).toFixed(2)},${kb(m.rss)},${kb(m.heapTotal)},${kb(m.heapUsed)},${kb(m.external)},${kb(m.arrayBuffers)}\n`);
  }, 500).unref();
}
EOF

# ---- 5. one migration per config, each with a fresh worker -------------------------------------------------------
VERSION="$("$DBFERRY" --version 2>/dev/null || echo '?')"
printf 'config\tload\tstatus\tstart_rc\tidle_kb\tstartup_hwm_kb\tpeak_hwm_kb\tmax_sampled_kb\twait_s\trundir\n' >"$RUNS_TSV"
FAILED=0
sample_loop() { # pid csv
  local pid="$1" csv="$2" t0 line
  t0=$(now)
  echo "epoch_s,t_s,vmrss_kb,vmhwm_kb,rss_anon_kb,rss_file_kb,rss_shmem_kb,threads" >"$csv"
  while [ -r "/proc/$pid/status" ]; do
    line=$(awk -v t0="$t0" -v pid="$pid" '
      /^VmRSS:/ {rss=$2} /^VmHWM:/ {hwm=$2} /^RssAnon:/ {an=$2} /^RssFile:/ {fi=$2} /^RssShmem:/ {sh=$2} /^Threads:/ {th=$2}
      END { if (rss != "") { "date +%s.%N" | getline e; printf "%.2f,%.2f,%s,%s,%s,%s,%s,%s", e, e - t0, rss, hwm, an, fi, sh, th } }' "/proc/$pid/status" 2>/dev/null)
    [ -n "$line" ] && echo "$line" >>"$csv"
    sleep "$SAMPLE_S"
  done
}
status_kb() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status" 2>/dev/null; }

for cfg in $CONFIGS; do
  case "$cfg" in
    p1)  LOAD_YAML="{ parallel: 1 }" ;;
    p2)  LOAD_YAML="{ parallel: 2 }" ;;
    p4c) LOAD_YAML="{ parallel: 4, chunkRows: 2000000 }" ;;
  esac
  RUN="$LOGDIR/$cfg"; rm -rf "$RUN"; mkdir -p "$RUN"
  NAME="rss-$cfg-$(date +%H%M%S)-$$"
  TGT_DB="big_$cfg"
  ptgt -d postgres -c "drop database if exists $TGT_DB" >/dev/null
  cat >"$RUN/plan.yaml" <<EOF
# written by bench/large-table-rss.sh ($cfg)
name: $NAME
mode: full-load
source:
  engine: postgres
  url: env:DBFERRY_RSS_SOURCE_URL
target:
  engine: postgres
  url: env:DBFERRY_RSS_TARGET_URL
  createDatabase: true
tables:
  include: ["public.big"]
load: $LOAD_YAML
validate:
  checksums: $CHECKSUMS
EOF

  # The worker: exec'd directly (no bash -c wrapper), so $! is the node process itself.
  probe_env=()
  [ "$MEM_PROBE" = 1 ] && probe_env=(NODE_OPTIONS="${NODE_OPTIONS:+$NODE_OPTIONS }--require $PROBE" DBFERRY_MEMPROBE_FILE="$RUN/mem.csv")
  env "${probe_env[@]}" \
    DBFERRY_RSS_SOURCE_URL="postgres://postgres@127.0.0.1:$SRC_PORT/$SRC_DB" \
    DBFERRY_RSS_TARGET_URL="postgres://postgres@127.0.0.1:$TGT_PORT/$TGT_DB" \
    "$DBFERRY" worker >"$RUN/worker.log" 2>&1 &
  WPID=$!
  ready=0
  for _ in $(seq 1200); do
    grep -q "polling task queue" "$RUN/worker.log" 2>/dev/null && { ready=1; break; }
    kill -0 "$WPID" 2>/dev/null || break
    sleep 0.05
  done
  [ $ready = 1 ] || { tail -30 "$RUN/worker.log" >&2; die "the worker did not start ($cfg)"; }
  exe="$(readlink "/proc/$WPID/exe" 2>/dev/null)"; comm="$(cat "/proc/$WPID/comm" 2>/dev/null)"
  case "$(basename "$exe")" in node*) ;; *) die "pid $WPID is '$exe' ($comm), not node: would not measure the worker itself" ;; esac
  sample_loop "$WPID" "$RUN/rss.csv" & SAMPLER_PID=$!
  sleep "$IDLE_SETTLE_S"
  IDLE_KB="$(status_kb "$WPID" VmRSS)"; STARTUP_HWM_KB="$(status_kb "$WPID" VmHWM)"
  say "[$cfg] worker pid $WPID ($exe) idle: VmRSS $(awk -v k="$IDLE_KB" 'BEGIN{printf "%.0f", k/1024}') MB (VmHWM so far $(awk -v k="$STARTUP_HWM_KB" 'BEGIN{printf "%.0f", k/1024}') MB); starting $NAME, load: $LOAD_YAML"

  T_START=$(now)
  "$DBFERRY" start "$RUN/plan.yaml" --wait --json >"$RUN/report.json" 2>"$RUN/start.err" &
  SPID=$!
  wait -n -p FIRST "$SPID" "$WPID"; first_rc=$?
  if [ "${FIRST:-}" = "$WPID" ]; then
    say "[$cfg] the worker exited (rc=$first_rc) before the migration finished; tail of its log:"; tail -30 "$RUN/worker.log" >&2
    WPID=""; stop_pid "$SPID" 2; SPID=""
    START_RC=99
  else
    START_RC=$first_rc; SPID=""
  fi
  T_DONE=$(now)
  WAIT_S=$(el "$T_START" "$T_DONE")

  PEAK_KB=""
  if [ -n "$WPID" ]; then
    PEAK_KB="$(status_kb "$WPID" VmHWM)"          # the kernel's high-water mark, right before stopping it
    kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null; SAMPLER_PID=""
    stop_pid "$WPID" 30
  else
    kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null
    SAMPLER_PID=""
  fi
  WPID=""
  MAX_SAMPLED_KB="$(awk -F, 'NR>1 && $3>m {m=$3} END{print m+0}' "$RUN/rss.csv")"
  if [ "$START_RC" = 0 ]; then STATUS=completed; else STATUS="failed rc=$START_RC"; FAILED=1
    say "[$cfg] migration did not complete (rc=$START_RC):"; tail -40 "$RUN/start.err" "$RUN/report.json" >&2
    say "[$cfg] worker log: $RUN/worker.log"
  fi
  mb() { awk -v k="${1:-0}" 'BEGIN{printf "%.0f", k/1024}'; }
  say "[$cfg] $STATUS in ${WAIT_S}s; worker peak VmHWM $(mb "$PEAK_KB") MB, max sampled VmRSS $(mb "$MAX_SAMPLED_KB") MB"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$cfg" "$LOAD_YAML" "$STATUS" "$START_RC" "$IDLE_KB" "$STARTUP_HWM_KB" "${PEAK_KB:-}" "$MAX_SAMPLED_KB" "$WAIT_S" "$RUN" >>"$RUNS_TSV"
  # the loaded copy is not needed any more (2+ GB)
  ptgt -d postgres -c "drop database if exists $TGT_DB with (force)" >/dev/null 2>&1 || true
done

# ---- 6. summary ----------------------------------------------------------------------------------------------------
mv "$RUNS_TSV" "$OUT/runs.tsv"
python3 - "$OUT/runs.tsv" "$OUT/summary.md" <<PYEOF
import csv, json, sys
from datetime import datetime

runs_tsv, summary_md = sys.argv[1], sys.argv[2]
table_bytes, heap_bytes, rows = $TABLE_BYTES, $HEAP_BYTES, $SRC_ROWS
limit_mb = float("$RSS_LIMIT_MB")
MB = 1048576

def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() if s else None

out = []
p = out.append
p("# dbferry worker peak RSS while loading one large table\n")
p(f"Measured {datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')} by \`bench/large-table-rss.sh\` (dbferry $VERSION, "
  f"PostgreSQL $PGVER source and target on one machine, $(nproc) vCPU, checksums $CHECKSUMS).\n")
p(f"* table: \`public.big (id bigint primary key, a text, b text, c numeric, d timestamptz)\`, "
  f"**{rows:,} rows**, pg_total_relation_size **{table_bytes / MB:,.0f} MB** ({table_bytes:,} bytes; heap {heap_bytes / MB:,.0f} MB)")
p(f"* one \`dbferry worker\` process (node; pid checked via /proc/<pid>/exe), fresh for each config; peak = VmHWM of that "
  f"process read right before SIGTERM; idle = its VmRSS {int(float('$IDLE_SETTLE_S'))} s after it started polling; "
  f"series every $SAMPLE_S s in \`logs/<config>/rss.csv\`. MB = 2^20 bytes.")
p(f"* load = the \`full-load\` step (snapshot, COPY, source checksum); MB/s = table size / load time. "
  f"wall = \`dbferry start --wait\` (all steps).\n")
p("| config | load | status | rows loaded | load s | MB/s | wall s | idle RSS MB | peak RSS MB (VmHWM) | max sampled RSS MB | peak during | validation | < %d MB |" % limit_mb)
p("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
details = []
for r in csv.DictReader(open(runs_tsv), delimiter="\t"):
    rep = {}
    try:
        rep = json.load(open(f"{r['rundir']}/report.json"))
    except Exception:
        pass
    status = rep.get("status") or {}
    steps = {s.get("step"): s for s in status.get("steps", [])}
    fl = steps.get("full-load") or {}
    load_s = None
    if fl.get("startedAt") and fl.get("endedAt"):
        load_s = ts(fl["endedAt"]) - ts(fl["startedAt"])
    loaded = sum(int(t.get("rows", 0)) for t in (rep.get("load") or {}).get("tables", [])) if rep.get("load") else None
    val = rep.get("validation")
    if val and val.get("tables"):
        vt = val["tables"]
        vres = "equal" if all(t.get("equal") for t in vt) else "DIFFERENT"
        vres += " (" + ", ".join(f"{t['table']}: rows {t['sourceRows']}={t['targetRows']}, checksum {t['checksum']}" for t in vt) + ")"
    else:
        vres = "none"
    if r["status"] == "completed" and not vres.startswith("equal"):
        r["status"] = "completed, validation " + vres.split(" ")[0]
    # which step was running when the sampled RSS peaked
    during = ""
    try:
        samples = list(csv.DictReader(open(f"{r['rundir']}/rss.csv")))
        top = max(samples, key=lambda s: int(s["vmrss_kb"]))
        e = float(top["epoch_s"])
        during = "before the start"
        for s in status.get("steps", []):
            a, b = ts(s.get("startedAt")), ts(s.get("endedAt"))
            if a and b and a <= e <= b:
                during = s["step"]
                break
            if a and e > a:
                during = f"after {s['step']}"
        per_step = []
        for s in status.get("steps", []):
            a, b = ts(s.get("startedAt")), ts(s.get("endedAt"))
            if not (a and b):
                continue
            inside = [int(x["vmrss_kb"]) for x in samples if a <= float(x["epoch_s"]) <= b]
            if inside:
                per_step.append(f"{s['step']} {b - a:.1f} s, max {max(inside) / 1024:.0f} MB")
        details.append(f"* {r['config']}: " + "; ".join(per_step))
    except Exception as ex:
        details.append(f"* {r['config']}: no RSS series ({ex})")
    try:
        mem = list(csv.DictReader(open(f"{r['rundir']}/mem.csv")))
        if mem:
            f = lambda k: max(int(x[k]) for x in mem) / 1024
            details.append(f"  * process.memoryUsage() maxima (main thread): heapUsed {f('heap_used_kb'):.0f} MB, heapTotal {f('heap_total_kb'):.0f} MB, "
                           f"external {f('external_kb'):.0f} MB, arrayBuffers {f('array_buffers_kb'):.0f} MB (series in logs/{r['config']}/mem.csv)")
    except Exception:
        pass
    peak = int(r["peak_hwm_kb"]) / 1024 if r["peak_hwm_kb"] else None
    idle = int(r["idle_kb"]) / 1024 if r["idle_kb"] else None
    ok = "yes" if peak is not None and peak < limit_mb else ("NO" if peak is not None else "?")
    p(f"| {r['config']} | \`{r['load']}\` | {r['status']} | {loaded if loaded is not None else ''} | "
      f"{f'{load_s:.1f}' if load_s else ''} | {f'{table_bytes / MB / load_s:.1f}' if load_s else ''} | {float(r['wait_s']):.1f} | "
      f"{f'{idle:.0f}' if idle else ''} | **{f'{peak:.0f}' if peak else '?'}** | {int(r['max_sampled_kb']) / 1024:.0f} | {during} | {vres} | {ok} |")
p("\nRSS while each step ran (from the 0.5 s samples):\n")
out.extend(details)
text = "\n".join(out) + "\n"
open(summary_md, "w").write(text)
PYEOF
echo
cat "$OUT/summary.md"
say "results in $OUT (summary.md, runs.tsv, logs/<config>/{plan.yaml,worker.log,report.json,rss.csv,mem.csv})"

[ "$FAILED" = 0 ] || exit 1
# a completed migration whose validation was not equal is a failure too
grep -q "validation DIFFERENT\|validation none" "$OUT/summary.md" && exit 1
if [ "${STRICT_RSS:-0}" = 1 ] && awk -F'\t' -v l="$RSS_LIMIT_MB" 'NR>1 && $7/1024 >= l {bad=1} END{exit !bad}' "$OUT/runs.tsv"; then
  say "a worker peak reached RSS_LIMIT_MB=$RSS_LIMIT_MB"; exit 4
fi
exit 0
