#!/usr/bin/env bash
# bench/scale-series.sh -- dataset A at several pgbench scales (default 50, 100, 200: about 1.2, 2.4
# and 4.7 GB), each loaded by copy-binary, pgcopydb and dbferry in interleaved rounds
# (bench/run.sh with INTERLEAVE=1): does dbferry's cost grow linearly with the data, and at what
# MB/s (the figures behind README "Capacity planning" and plan/capacity.ts).
#
#   bash bench/scale-series.sh                    # SCALES="50 100 200", RUNS=1 round each
#   SCALES="50 200" RUNS=2 bash bench/scale-series.sh
#
# The shared setup.sh regenerates dataset A for each scale (it keeps the scale it last built, so the
# series ends on the last one: run `SCALE=100 ../shared/bench/setup.sh pg` to go back).
# Output: bench/results/scale-series-<stamp>/series.md (one row per scale) and each scale's bench/run.sh
# results directory, named in the table.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
SHARED="${SHARED_BENCH:-$(cd "$REPO/.." && pwd)/shared/bench}"
SCALES="${SCALES:-50 100 200}"
OUT="$HERE/results/scale-series-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
say() { echo "[$(date +%H:%M:%S)] scale-series: $*" >&2; }

rows=()
for scale in $SCALES; do
  say "dataset A at scale $scale"
  # run.sh runs setup.sh again: SCALE must reach it too, or it goes back to the default.
  export SCALE="$scale"
  "$SHARED/setup.sh" pg >"$OUT/setup-$scale.log" 2>&1
  bytes=$("${PGBIN:-/usr/lib/postgresql/15/bin}/psql" -X -tA -h 127.0.0.1 -p "${SRC_PORT:-55432}" -U postgres -d bench \
    -c "SELECT sum(pg_table_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'")
  INTERLEAVE=1 RUNS="${RUNS:-1}" NOCHECKSUMS_PASS=0 bash "$HERE/run.sh" >"$OUT/run-$scale.log" 2>&1
  results="$(readlink -f "$HERE/results/latest")"
  # Medians per method from the run's results.csv (method, wall seconds, max RSS).
  row=$(python3 - "$results/results.csv" "$scale" "$bytes" "$(basename "$results")" <<'PY'
import csv, statistics, sys
path, scale, table_bytes, where = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
walls, rss = {}, {}
for r in csv.DictReader(open(path)):
    if r['verified'] != 'yes':
        continue
    m = r['tool'] if r['method'] == 'custom' else ('pgcopydb' if r['tool'] == 'pgcopydb' else r['method'])
    walls.setdefault(m, []).append(float(r['wall_s']))
    try:
        rss.setdefault(m, []).append(float(r['max_rss_kb']) / 1024)
    except ValueError:
        pass
med = {m: statistics.median(v) for m, v in walls.items()}
d = med.get('dbferry')
cb = med.get('copy_binary') or med.get('copy-binary')
pg = med.get('pgcopydb')
mbs = table_bytes / 1e6 / d if d else float('nan')
fmt = lambda x: f"{x:.1f}" if x else "-"
print(f"| {scale} | {table_bytes / 1e6:.0f} | {fmt(cb)} | {fmt(pg)} | {fmt(d)} | {mbs:.1f} | "
      f"{(d / pg) if d and pg else float('nan'):.2f} | {(d / cb) if d and cb else float('nan'):.2f} | "
      f"{max(rss.get('dbferry', [0])):.0f} | {where} |")
PY
)
  rows+=("$row")
  say "$row"
done
{
  echo "| pgbench scale | table MB (pg_table_size) | copy-binary s | pgcopydb s | dbferry s | dbferry MB/s | dbferry / pgcopydb | dbferry / copy-binary | dbferry worker max RSS MB | results |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$OUT/series.md"
