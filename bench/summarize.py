#!/usr/bin/env python3
"""summarize.py RESULTS_CSV [DBFERRY_PHASES_CSV] [LOGDIR]

Comparison table for bench/run.sh: median wall per method, dbferry / pgcopydb and
dbferry / copy-binary ratios, max RSS; then where dbferry's time went (from the
`dbferry start --wait --json` report each run saved in LOGDIR/<migration>/report.json).
"""
import csv, json, os, statistics, sys
from collections import OrderedDict
from datetime import datetime

results = sys.argv[1]
phases_csv = sys.argv[2] if len(sys.argv) > 2 else None
logdir = sys.argv[3] if len(sys.argv) > 3 else None


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def label(r):
    if r["tool"] == "pgcopydb":
        return "pgcopydb clone"
    if r["method"] == "custom":
        return r["tool"]
    return r["method"]


groups = OrderedDict()
for r in csv.DictReader(open(results)):
    groups.setdefault(label(r), []).append(r)

summary = OrderedDict()
for name, rs in groups.items():
    ok = [r for r in rs if r["verified"] == "yes"]
    walls = [num(r["wall_s"]) for r in ok if num(r["wall_s"]) is not None]
    summary[name] = {
        "runs": len(rs),
        "ok": len(ok),
        "median": statistics.median(walls) if walls else None,
        "min": min(walls) if walls else None,
        "max": max(walls) if walls else None,
        "rss_mb": max((num(r["max_rss_kb"]) or 0) for r in rs) / 1024,
        "mbps": statistics.median([num(r["mb_per_s"]) for r in ok]) if ok and all(num(r["mb_per_s"]) for r in ok) else None,
        "walls": [r["wall_s"] for r in rs],
    }


def ratio(a, b):
    sa, sb = summary.get(a), summary.get(b)
    if not sa or not sb or not sa["median"] or not sb["median"]:
        return ""
    return f"{sa['median'] / sb['median']:.2f}x"


print("### Dataset A full load, one pg2pg.sh run (medians over verified runs)\n")
print("| method | runs (verified) | wall s median [min-max] | every run (s) | MB/s | max RSS MB | vs pgcopydb | vs copy-binary |")
print("|---|---|---|---|---|---|---|---|")
for name, s in summary.items():
    med = f"**{s['median']:.2f}** [{s['min']:.2f}-{s['max']:.2f}]" if s["median"] is not None else "failed"
    print(f"| {name} | {s['runs']} ({s['ok']}) | {med} | {' / '.join(s['walls'])} | "
          f"{'' if s['mbps'] is None else format(s['mbps'], '.1f')} | {s['rss_mb']:.0f} | {ratio(name, 'pgcopydb clone')} | {ratio(name, 'copy-binary')} |")
print("\nmax RSS = GNU time's largest single client process (for dbferry: the worker; the Temporal dev server "
      "is outside the timed command and not counted). Server backends are never counted.")

if not phases_csv or not os.path.exists(phases_csv):
    sys.exit(0)


def ts(x):
    return datetime.fromisoformat(x.replace("Z", "+00:00"))


rows = list(csv.DictReader(open(phases_csv)))
by_ck = OrderedDict()
for p in rows:
    rep = os.path.join(p.get("workdir") or os.path.join(logdir or "", p["name"]), "report.json")
    steps, tables = {}, {}
    if p["status"] == "ok" and os.path.exists(rep):
        try:
            r = json.load(open(rep))
            for s in r["status"]["steps"]:
                if s.get("startedAt") and s.get("endedAt"):
                    steps[s["step"]] = (ts(s["endedAt"]) - ts(s["startedAt"])).total_seconds()
            steps["workflow total"] = (ts(r["status"]["endedAt"]) - ts(r["status"]["startedAt"])).total_seconds()
            for t in (r.get("load") or {}).get("tables", []):
                tables[t["table"]] = t["ms"] / 1000
        except (ValueError, KeyError) as e:
            print(f"(could not read {rep}: {e})", file=sys.stderr)
    # method = pg2pg.sh's CUSTOM_NAME (missing in older CSVs): compare-versions.sh runs two dbferry builds
    key = f"{p['method']}, checksums={p['checksums']}" if p.get("method") else p["checksums"]
    by_ck.setdefault(key, []).append((p, steps, tables))

print("\n### Where dbferry's time went (medians; seconds)\n")
cols = ["worker start", "start --wait (CLI)", "workflow total", "preflight", "create-database", "create-tables",
        "full-load", "build-indexes", "validate", "worker stop", "drop _dbferry", "script total"]
print("| dbferry (checksums) | runs | " + " | ".join(cols) + " |")
print("|---|---|" + "---|" * len(cols))
for ck, items in by_ck.items():
    ok = [i for i in items if i[0]["status"] == "ok"]
    def med(vals):
        vals = [v for v in vals if v is not None]
        return f"{statistics.median(vals):.2f}" if vals else ""
    vals = {
        "worker start": med([num(p["worker_start_s"]) for p, _, _ in ok]),
        "start --wait (CLI)": med([num(p["start_wait_s"]) for p, _, _ in ok]),
        "worker stop": med([num(p["worker_stop_s"]) for p, _, _ in ok]),
        "drop _dbferry": med([num(p["drop_bookkeeping_s"]) for p, _, _ in ok]),
        "script total": med([num(p["script_total_s"]) for p, _, _ in ok]),
    }
    for c in cols:
        if c not in vals:
            vals[c] = med([st.get(c) for _, st, _ in ok])
    print(f"| {ck} | {len(items)} ({len(ok)} ok) | " + " | ".join(vals[c] for c in cols) + " |")

print("\nPer-table load time inside full-load (median s; tables run load.parallel at a time, "
      "with checksums=true each table's time includes its source-side checksum scan):\n")
for ck, items in by_ck.items():
    per = OrderedDict()
    for _, _, tables in items:
        for t, v in tables.items():
            per.setdefault(t, []).append(v)
    big = sorted(per.items(), key=lambda kv: -statistics.median(kv[1]))
    print(f"* {ck if 'checksums=' in ck else 'checksums=' + ck}: " + ", ".join(f"{t} {statistics.median(v):.2f}" for t, v in big if statistics.median(v) >= 0.05))
