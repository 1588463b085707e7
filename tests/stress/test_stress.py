#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Concurrency stress: one daemon, at least 16 processes changing the table
at once through the mount, through the core library (scope_driver) and as
the original's pods do (flock + rewrite), for a bounded time
(SCOPEFS_STRESS_SECONDS, default 60; 30 on a sanitized build).

Each worker checks after each of its steps (worker.py); a checker reads the
whole table every 0.2 s; at the end the table must parse, hold no
violation, and lose every pod within 3 s of its owners' deaths, and the
daemon must still run and unmount cleanly.  Prints the operations done and
the violations found; any violation fails the test.

Usable from bench/soak.sh: --minutes N prints throughput per minute and the
daemon's RSS at start and end.
"""

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stressutil as su  # noqa: E402

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
# 16 processes doing random operations (the core workers' scope_driver
# processes make the changes), plus a checker.
MIX = [("mount", 8), ("core", 4), ("foreign", 3), ("reader", 1), ("checker", 1)]
BAD_OUTPUT = re.compile(r"AddressSanitizer|runtime error|LeakSanitizer|assert|Segmentation|"
                        r"double free|corrupt", re.I)


def run_round(mnt, table, seconds, seed):
    """Runs the mix for SECONDS; returns the workers' summaries."""
    until = time.monotonic() + seconds
    procs = []
    wid = 0
    for kind, n in MIX:
        for _ in range(n):
            wid += 1
            procs.append(subprocess.Popen([sys.executable, WORKER, kind, str(wid), mnt, table,
                                           repr(until), str(seed * 1000 + wid)],
                                          stdout=subprocess.PIPE, text=True))
    out = []
    for p in procs:
        try:
            stdout, _ = p.communicate(timeout=seconds + 120)
        except subprocess.TimeoutExpired:
            p.kill()
            stdout, _ = p.communicate()
            out.append({"kind": "?", "id": -1, "ops": 0, "acked": 0, "refused": {},
                        "checks": 0, "violations": 1, "info": {},
                        "details": ["a worker hung past its deadline"]})
            continue
        lines = [l for l in stdout.splitlines() if l.startswith("{")]
        if not lines:
            out.append({"kind": "?", "id": -1, "ops": 0, "acked": 0, "refused": {},
                        "checks": 0, "violations": 1, "info": {},
                        "details": ["a worker died (%s) without a summary" % p.returncode]})
        else:
            out.append(json.loads(lines[-1]))
    return out


def totals(summaries):
    t = {"ops": 0, "acked": 0, "checks": 0, "violations": 0, "refused": {}, "info": {},
         "by_kind": {}, "details": []}
    for s in summaries:
        for k in ("ops", "acked", "checks", "violations"):
            t[k] += s[k]
        for k, v in s["refused"].items():
            t["refused"][k] = t["refused"].get(k, 0) + v
        for k, v in s["info"].items():
            t["info"][k] = max(t["info"].get(k, 0), v) if k == "max pods" else \
                t["info"].get(k, 0) + v
        t["by_kind"][s["kind"]] = t["by_kind"].get(s["kind"], 0) + s["ops"]
        t["details"] += s["details"]
    return t


def final_checks(d, table):
    """Violations of the end state: whole table, invariants, dead pods reaped."""
    out = []
    try:
        t = su.read_table(table)
    except ValueError as e:
        return ["the table does not parse at the end: %s" % e]
    out += ["end: " + v for v in su.check_invariants(t)]
    # every worker is gone: the daemon reaps their pods within a second
    deadline = time.monotonic() + 3
    while True:
        try:
            left = [a["pod_name"] for a in su.allocations(su.read_table(table))]
        except ValueError as e:
            return out + ["the table does not parse at the end: %s" % e]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if left:
        out.append("%d pods of dead owners not reaped 3 s after the end: %s" %
                   (len(left), left[:10]))
    if not d.alive():
        out.append("the daemon died (%s)" % d.proc.returncode)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float,
                    default=su.env_number("SCOPEFS_STRESS_SECONDS", 30 if su.SANITIZED else 60))
    ap.add_argument("--minutes", type=float, default=0,
                    help="soak: run N minutes, printing figures each minute")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SCOPEFS_STRESS_SEED") or
                                                    random.randrange(1 << 30)))
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    su.require_fuse()
    tmp = su.new_tmp("scopefs-stress-")
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    table = os.path.join(tmp, "run", "scope.lock")
    os.makedirs(os.path.dirname(table), mode=0o700)
    d = su.Daemon(mnt, table, log=os.path.join(tmp, "scopefs.log"))
    violations = []
    all_summaries = []
    try:
        rss0 = su.rss_kb(d.pid)
        su.log("stress: seed %d, daemon pid %d, RSS %d kB at start" % (args.seed, d.pid, rss0))
        rounds = [60.0] * int(args.minutes) if args.minutes else [args.seconds]
        t0 = time.monotonic()
        for i, secs in enumerate(rounds):
            s = run_round(mnt, table, secs, args.seed + i)
            all_summaries += s
            t = totals(s)
            if args.minutes:
                su.log("minute %d: %d operations (%.0f/s), %d acknowledged, %d violations, "
                       "daemon RSS %d kB" % (i + 1, t["ops"], t["ops"] / secs, t["acked"],
                                             t["violations"], su.rss_kb(d.pid)))
            if not d.alive():
                break
        elapsed = time.monotonic() - t0
        rss1 = su.rss_kb(d.pid)
        t = totals(all_summaries)
        violations += t["details"]
        end = final_checks(d, table)
        violations += end
        nviol = t["violations"] + len(end)
        su.log("stress: %.0f s, %d processes, %d operations (%.0f/s), %d acknowledged, "
               "refused %s, %d checks" % (elapsed, sum(n for _, n in MIX), t["ops"],
                                          t["ops"] / elapsed, t["acked"],
                                          json.dumps(t["refused"], sort_keys=True), t["checks"]))
        su.log("stress: operations by kind %s" % json.dumps(t["by_kind"], sort_keys=True))
        su.log("stress: %s" % json.dumps(t["info"], sort_keys=True))
        su.log("stress: daemon RSS %d kB at start, %d kB at end" % (rss0, rss1))
        su.log("stress: violations found: %d" % nviol)
        for v in violations[:100]:
            su.log("  VIOLATION " + v)
    finally:
        if d.alive():
            rc = d.stop()
            if rc != 0:
                violations.append("the daemon exited %s after unmount" % rc)
                su.log("stress: the daemon exited %s after unmount" % rc)
        else:
            su.lazy_unmount(mnt)
        bad = [l for l in d.output().splitlines() if BAD_OUTPUT.search(l)]
        if bad:
            violations.append("daemon output: %s" % bad[:5])
            su.log("stress: daemon printed:\n" + "\n".join(bad[:20]))
        if args.keep or violations:
            su.log("stress: files kept in %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if violations else 0)


if __name__ == "__main__":
    main()
