#!/usr/bin/env python3
"""source-cost.py -- what a dbferry worker's source connections cost the source server.

  source-cost.py sample OUT.csv LABEL=CHECKOUT [LABEL=CHECKOUT ...]   # until SIGTERM
  source-cost.py report OUT.csv                                        # markdown table

sample: every INTERVAL s (env, default 1), when a `<CHECKOUT>/bin/dbferry worker` process is alive,
it lists the source's backends whose application_name starts with 'dbferry' (pg_stat_activity on
SRC_PORT, default 55432) and reads, from /proc, each backend's and the worker's CPU time
(utime+stime of /proc/<pid>/stat) and voluntary context switches (/proc/<pid>/status). A backend
switches voluntarily about once per statement it waits for (idle -> next client message), so
for the idle 'dbferry snapshot holder' the count is close to the number of statements it ran.
Nothing is queried while no worker runs (the other methods of a bench run are not disturbed).
Needs read access to the postgres processes' /proc entries (root).

report: per migration (one worker pid), the holder backend's CPU seconds and context switches per
minute of its life (backend_start to its last sample), the worker's CPU, then medians per label.
"""
import csv, os, signal, statistics, subprocess, sys, time
from collections import OrderedDict

TCK = os.sysconf("SC_CLK_TCK")
FIELDS = ["ts", "label", "worker_pid", "worker_cpu_s", "worker_start", "backend_pid", "app",
          "backend_start", "query_start", "state", "backend_cpu_s", "backend_vcsw"]


def boot_time():
    for line in open("/proc/stat"):
        if line.startswith("btime "):
            return int(line.split()[1])


def proc_cpu(pid):
    """(cpu seconds, start epoch) of a pid, or None when it is gone."""
    try:
        s = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    f = s[s.rindex(")") + 2:].split()  # fields from 3 (state) on
    return (int(f[11]) + int(f[12])) / TCK, BTIME + int(f[19]) / TCK


def vcsw(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    except OSError:
        return None


def workers(checkouts):
    """pid -> label of the `<checkout>/bin/dbferry worker` processes alive now."""
    found = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            argv = open(f"/proc/{d}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        argv = [a.decode(errors="replace") for a in argv if a]
        if len(argv) >= 3 and argv[2] == "worker" and argv[1].endswith("/bin/dbferry"):
            repo = os.path.realpath(os.path.join(os.path.dirname(argv[1]), ".."))
            if repo in checkouts:
                found[int(d)] = checkouts[repo]
    return found


def sample(out, pairs):
    checkouts = {os.path.realpath(p.split("=", 1)[1]): p.split("=", 1)[0] for p in pairs}
    interval = float(os.environ.get("INTERVAL", "1"))
    psql = [os.path.join(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"), "psql"), "-X", "-At", "-F", "\t",
            "-h", "127.0.0.1", "-p", os.environ.get("SRC_PORT", "55432"), "-U", "postgres", "-d", "postgres", "-c",
            "select pid, application_name, extract(epoch from backend_start), coalesce(extract(epoch from query_start)::text, ''),"
            " coalesce(state, '') from pg_stat_activity where application_name like 'dbferry%'"]
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    new = not os.path.exists(out)
    with open(out, "a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(FIELDS)
        while not stop:
            t0 = time.time()
            ws = workers(checkouts)
            if ws:
                try:
                    rows = subprocess.run(psql, capture_output=True, text=True, timeout=10).stdout.splitlines()
                except subprocess.TimeoutExpired:
                    rows = []
                now = time.time()
                for wpid, label in ws.items():
                    wc = proc_cpu(wpid)
                    if not wc:
                        continue
                    w.writerow([f"{now:.2f}", label, wpid, f"{wc[0]:.2f}", f"{wc[1]:.2f}", "", "", "", "", "", "", ""])
                    # only one dbferry runs at a time in a bench run: its backends belong to this worker
                    for r in rows:
                        pid, app, bstart, qstart, state = (r.split("\t") + [""] * 5)[:5]
                        bc = proc_cpu(int(pid))
                        if bc:
                            w.writerow([f"{now:.2f}", label, wpid, f"{wc[0]:.2f}", f"{wc[1]:.2f}", pid, app,
                                        bstart, qstart, state, f"{bc[0]:.2f}", vcsw(int(pid))])
                fh.flush()
            time.sleep(max(0.05, interval - (time.time() - t0)))


def report(path):
    runs = OrderedDict()  # worker pid -> dict
    for r in csv.DictReader(open(path)):
        run = runs.setdefault(r["worker_pid"], {"label": r["label"], "first": float(r["ts"]), "wstart": float(r["worker_start"]),
                                                "holders": {}, "qstarts": set()})
        run["last"] = float(r["ts"])
        run["wcpu"] = float(r["worker_cpu_s"])
        if r["app"] == "dbferry snapshot holder":
            h = run["holders"].setdefault(r["backend_pid"], {"start": float(r["backend_start"])})
            h.update(last=float(r["ts"]), cpu=float(r["backend_cpu_s"]), vcsw=int(r["backend_vcsw"] or 0))
            run["qstarts"].add((r["backend_pid"], r["query_start"]))
    per_label = OrderedDict()
    print("| method | worker pid | holder life s | holder backend CPU s | holder CPU s / min | holder ctx switches / min "
          "(≈ statements) | distinct query_start seen (1 s samples) | worker CPU s (life) | worker CPU s / min |")
    print("|---|---|---|---|---|---|---|---|---|")
    for wpid, run in runs.items():
        life = sum(h["last"] - h["start"] for h in run["holders"].values())
        cpu = sum(h["cpu"] for h in run["holders"].values())
        sw = sum(h["vcsw"] for h in run["holders"].values())
        wlife = run["last"] - run["wstart"]
        d = {"life": life, "cpu": cpu, "cpm": cpu / life * 60 if life > 0 else None, "swm": sw / life * 60 if life > 0 else None,
             "wcpu": run["wcpu"], "wcpm": run["wcpu"] / wlife * 60 if wlife > 0 else None}
        per_label.setdefault(run["label"], []).append(d)
        f = lambda x, p=2: "" if x is None else f"{x:.{p}f}"
        print(f"| {run['label']} | {wpid} | {f(life, 1)} | {f(cpu)} | {f(d['cpm'])} | {f(d['swm'], 0)} | {len(run['qstarts'])} "
              f"| {f(run['wcpu'], 1)} | {f(d['wcpm'], 1)} |")
    print("\nMedians per method:\n")
    print("| method | runs | holder CPU s / min of its life | holder ctx switches / min | worker CPU s / min |")
    print("|---|---|---|---|---|")
    for label, ds in per_label.items():
        m = lambda k: statistics.median([d[k] for d in ds if d[k] is not None]) if any(d[k] is not None for d in ds) else None
        f = lambda x, p: "" if x is None else f"{x:.{p}f}"
        print(f"| {label} | {len(ds)} | {f(m('cpm'), 2)} | {f(m('swm'), 0)} | {f(m('wcpm'), 1)} |")


if __name__ == "__main__":
    BTIME = boot_time()
    if len(sys.argv) >= 4 and sys.argv[1] == "sample":
        sample(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 3 and sys.argv[1] == "report":
        report(sys.argv[2])
    else:
        sys.exit(__doc__)
