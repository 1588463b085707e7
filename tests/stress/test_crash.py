#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Crashes: writers of the table killed with SIGKILL at random moments.

    test_crash.py daemon [KILLS]   the daemon, during a burst of changes
    test_crash.py core [KILLS]     a program on the core, saving in a loop

daemon: three client threads change the table through the mount (mkdir,
allow, rmdir) while the daemon is killed at a random moment; right after
the kill the file is read as the original's pods read it (flock,
json.loads): a NUL first byte is "unreadable" (allowed, counted), a parse
that succeeds must show every acknowledged change (a change is
acknowledged when its system call returned success before the kill) and
each change in flight either done or not.  A new daemon then mounts at
once on the same mountpoint (the dead mount is removed with
`fusermount3 -u -z` first), and the table it shows must be whole, with
every acknowledged change.

core: scope_driver saves in a loop (register, release, rewrite rules),
printing each change before it starts and once its save returned; it is
killed at a random moment; the file is read as above, then a fresh open by
the core must give a whole table with every acknowledged change.

KILLS defaults to 200 (SCOPEFS_CRASH_KILLS).  Prints the figures.
"""

import errno
import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stressutil as su  # noqa: E402

DEAD = (errno.ENOTCONN, errno.ECONNABORTED, errno.ENODEV)


class Figures:
    def __init__(self, what):
        self.what = what
        self.kills = 0
        self.checked = 0          # acknowledged changes found in place
        self.unreadable = 0       # NUL first byte right after the kill
        self.torn = 0             # unreadable without the NUL (parse error)
        self.readable = 0
        self.inflight_done = 0
        self.inflight_not = 0
        self.violations = []
        self.restart_ms = []
        self.wedged = 0           # the killed daemon could not die (known bug)
        self.lock_held = 0        # ... and held the table's flock meanwhile
        self.wchans = {}

    def wedge(self, threads, table):
        self.wedged += 1
        for t in threads:
            self.wchans[t] = self.wchans.get(t, 0) + 1
        with open(table, "rb") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.lock_held += 1

    def fail(self, msg):
        self.violations.append("kill %d: %s" % (self.kills, msg))
        su.log("VIOLATION kill %d: %s" % (self.kills, msg))

    def report(self):
        su.log("%s: %d kills, %d acknowledged changes checked, unreadable between kill and "
               "restart %d times (%.0f%%), torn-but-unparseable %d, readable %d; in-flight "
               "changes found done %d, not done %d" %
               (self.what, self.kills, self.checked, self.unreadable,
                100.0 * self.unreadable / max(self.kills, 1), self.torn, self.readable,
                self.inflight_done, self.inflight_not))
        if self.wedged:
            su.log("%s: KNOWN BUG: %d of %d killed daemons could not die until their "
                   "connection was aborted (umount -f); %d of those held the table's flock "
                   "meanwhile; stuck threads %s" % (self.what, self.wedged, self.kills,
                                                    self.lock_held, self.wchans))
        if self.restart_ms:
            ms = sorted(self.restart_ms)
            su.log("%s: remount after kill: median %.0f ms, max %.0f ms" %
                   (self.what, ms[len(ms) // 2], ms[-1]))
        su.log("%s: violations: %d" % (self.what, len(self.violations)))


def read_after_kill(fig, table):
    """The file as the original's pod finds it: None when unreadable."""
    data = su.read_table_bytes(table, lock=fcntl.LOCK_EX)
    if data[:1] == b"\0":
        fig.unreadable += 1
        return None
    try:
        t = su.parse_table(data)
    except ValueError:
        fig.torn += 1
        return None
    fig.readable += 1
    return t


# ---- the daemon ----

class Client(threading.Thread):
    """Changes its own pods through the mount until told to stop or the
    mount dies; ACKED holds what was acknowledged, INFLIGHT the change whose
    outcome the kill left unknown."""

    def __init__(self, tid, mnt, acked, seed):
        super().__init__(daemon=True)
        self.tid, self.mnt, self.acked = tid, mnt, acked
        self.rng = random.Random(seed)
        self.serial = 0
        self.inflight = None
        self.stop = False
        self.errors = []
        self.done = 0

    def rules(self):
        n = self.rng.randint(0, 30)
        return [{"target": "/crash/t%d/%d/a/longer/path/to/make/the/table/span/pages/%d" %
                 (self.tid, self.rng.randint(0, 999), i), "permission": "read",
                 "recursive": bool(self.rng.randint(0, 1))} for i in range(n)]

    def run(self):
        while not self.stop:
            mine = sorted(self.acked)
            r = self.rng.random()
            if len(mine) < 3 or (r < 0.35 and len(mine) < 25):
                self.serial += 1
                name = "c%d-%d-%d" % (self.tid, os.getpid() % 1000, self.serial)
                while name in self.acked:
                    self.serial += 1
                    name = "c%d-%d-%d" % (self.tid, os.getpid() % 1000, self.serial)
                op = ("mkdir", name, [])
            elif r < 0.8:
                op = ("allow", self.rng.choice(mine), self.rules())
            else:
                op = ("rmdir", self.rng.choice(mine), None)
            self.inflight = op
            try:
                kind, name, rules = op
                p = os.path.join(self.mnt, name)
                if kind == "mkdir":
                    os.mkdir(p)
                elif kind == "rmdir":
                    os.rmdir(p)
                else:
                    text = "".join(su.rule_line(x) + "\n" for x in rules) or "\n"
                    fd = os.open(os.path.join(p, "allow"), os.O_WRONLY | os.O_TRUNC)
                    try:
                        os.write(fd, text.encode())
                    finally:
                        os.close(fd)
            except OSError as e:
                if e.errno not in DEAD:
                    self.errors.append("%s: %s" % (op[:2], e))
                return  # the mount is gone: INFLIGHT stays unknown
            self.inflight = None
            self.apply(op)
            self.done += 1

    def apply(self, op):
        kind, name, rules = op
        if kind == "mkdir":
            self.acked[name] = []
        elif kind == "rmdir":
            del self.acked[name]
        else:
            self.acked[name] = [su.rule_key(x) for x in rules]


def check_daemon_table(fig, t, clients, resolve):
    """T holds every acknowledged change; each in-flight change is done or
    not.  RESOLVE: adopt the in-flight outcomes as acknowledged state."""
    by = {a["pod_name"]: a for a in su.allocations(t)}
    errs = []
    v = su.check_invariants(t)
    errs += v
    for c in clients:
        infl = c.inflight
        for name, rules in c.acked.items():
            a = by.get(name)
            if infl and infl[1] == name and infl[0] == "rmdir" and a is None:
                continue
            if a is None:
                errs.append("acknowledged pod `%s` is missing" % name)
                continue
            got = [su.rule_key(x) for x in a["scope_allow"]]
            if got == rules:
                fig.checked += 1
                continue
            if infl and infl[0] == "allow" and infl[1] == name and \
                    got == [su.rule_key(x) for x in infl[2]]:
                continue
            errs.append("pod `%s` has %d rules, acknowledged %d" % (name, len(got), len(rules)))
        for name in by:
            if name.startswith("c%d-" % c.tid) and name not in c.acked and \
                    not (infl and infl[0] == "mkdir" and infl[1] == name):
                errs.append("pod `%s` is in the table but was never acknowledged" % name)
    if resolve and not errs:
        for c in clients:
            infl = c.inflight
            if not infl:
                continue
            kind, name, rules = infl
            a = by.get(name)
            if kind == "mkdir":
                done = a is not None
            elif kind == "rmdir":
                done = a is None
            else:
                want = [su.rule_key(x) for x in rules]
                done = a is not None and c.acked.get(name) != want and \
                    [su.rule_key(x) for x in a["scope_allow"]] == want
            if done:
                fig.inflight_done += 1
                c.apply(infl)
            else:
                fig.inflight_not += 1
            c.inflight = None
    return errs


def crash_daemon(kills):
    fig = Figures("daemon crash")
    tmp = su.new_tmp("scopefs-crash-")
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    table = os.path.join(tmp, "run", "scope.lock")
    os.makedirs(os.path.dirname(table), mode=0o700)
    log = os.path.join(tmp, "scopefs.log")
    rng = random.Random(int(os.environ.get("SCOPEFS_STRESS_SEED") or random.randrange(1 << 30)))
    acked = [dict() for _ in range(3)]
    d = su.Daemon(mnt, table, log=log)
    total_ops = 0
    try:
        while fig.kills < kills:
            clients = [Client(i, mnt, acked[i], rng.randrange(1 << 30)) for i in range(3)]
            for c in clients:
                c.start()
            time.sleep(rng.uniform(0.003, 0.06))
            d.sigkill(wedge=lambda threads: fig.wedge(threads, table))
            fig.kills += 1
            for c in clients:
                c.stop = True
            for c in clients:
                c.join(10)
                if c.is_alive():
                    fig.fail("a client hangs on the dead mount")
                    return fig
                total_ops += c.done
                for e in c.errors:
                    fig.fail("client %d: unexpected error %s" % (c.tid, e))
            t = read_after_kill(fig, table)
            if t is not None:
                for e in check_daemon_table(fig, t, clients, resolve=False):
                    fig.fail("readable right after the kill but wrong: " + e)
            t0 = time.monotonic()
            su.lazy_unmount(mnt)
            try:
                d = su.Daemon(mnt, table, log=log)
            except AssertionError as e:
                fig.fail("the daemon does not mount again: %s" % e)
                return fig
            fig.restart_ms.append((time.monotonic() - t0) * 1000)
            try:
                t = su.read_table(table)
            except ValueError as e:
                fig.fail("the table is not whole after the restart: %s" % e)
                return fig
            for e in check_daemon_table(fig, t, clients, resolve=True):
                fig.fail("after the restart: " + e)
            if fig.violations:
                return fig
            # what the mount shows agrees
            shown = set(n for n in os.listdir(mnt) if not n.startswith("."))
            want = set(n for a in acked for n in a)
            if shown != want:
                fig.fail("the new mount shows %s, acknowledged %s" %
                         (sorted(shown ^ want)[:5], "differences"))
    finally:
        if d.alive():
            d.stop()
        su.lazy_unmount(mnt)
        su.log("daemon crash: %d changes acknowledged through the mount in all" % total_ops)
        if fig.violations:
            su.log("daemon crash: files kept in %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return fig


# ---- a program on the core ----

def run_saver(table, seed, wait):
    p = subprocess.Popen([su.DRIVER, table, "saver", str(os.getpid()), str(seed)],
                         stdout=subprocess.PIPE)
    time.sleep(wait)
    p.send_signal(signal.SIGKILL)
    out, _ = p.communicate()
    return out.decode().splitlines(), p.returncode


def check_core_table(fig, t, acked, inflight):
    by = {a["pod_name"]: len(a["scope_allow"]) for a in su.allocations(t)}
    errs = []
    for name, n in acked.items():
        if name not in by:
            if inflight and inflight[0] == "rel" and inflight[1] == name:
                continue
            errs.append("acknowledged pod `%s` is missing" % name)
        elif by[name] != n and not (inflight and inflight[0] == "rules" and
                                   inflight[1] == name and by[name] == inflight[2]):
            errs.append("pod `%s` has %d rules, acknowledged %d" % (name, by[name], n))
        else:
            fig.checked += 1
    for name in by:
        if name not in acked and not (inflight and inflight[0] == "reg" and inflight[1] == name):
            errs.append("pod `%s` is in the table but was never acknowledged" % name)
    return errs, by


def crash_core(kills):
    fig = Figures("core crash")
    tmp = su.new_tmp("scopefs-crash-core-")
    table = os.path.join(tmp, "scope.lock")
    rng = random.Random(int(os.environ.get("SCOPEFS_STRESS_SEED") or random.randrange(1 << 30)))
    acked = {}
    saves = 0
    sizes = []
    try:
        for i in range(kills):
            # a sanitized saver starts slower: give it time to save at all
            lines, rc = run_saver(table, i + 1, rng.uniform(0.002, 0.03) * (3 if su.SANITIZED
                                                                            else 1))
            fig.kills += 1
            if rc != -signal.SIGKILL:
                fig.fail("the saver exited %s before the kill: %s" % (rc, lines[-3:]))
                break
            inflight = None
            for l in lines:
                f = l.split()
                if f[0] == "B":
                    inflight = (f[1], f[2], int(f[3]))
                elif f[0] == "A":
                    op, name, n = inflight
                    if op == "rel":
                        del acked[name]
                    else:
                        acked[name] = n
                    inflight = None
                    saves += 1
                else:
                    fig.fail("the saver failed: %s" % l)
            t = read_after_kill(fig, table)
            if t is not None:
                errs, _ = check_core_table(fig, t, acked, inflight)
                for e in errs:
                    fig.fail("readable right after the kill but wrong: " + e)
            r = subprocess.run([su.DRIVER, table, "dump"], capture_output=True)
            if r.returncode:
                fig.fail("a fresh open fails: %s" % r.stderr.decode().strip())
                break
            try:
                t = su.parse_table(r.stdout)
            except ValueError as e:
                fig.fail("a fresh open gives a table that does not parse: %s" % e)
                break
            errs, by = check_core_table(fig, t, acked, inflight)
            for e in errs:
                fig.fail("after a fresh open: " + e)
            if errs:
                break
            if inflight:
                op, name, n = inflight
                if op == "reg":
                    done = name in by
                elif op == "rel":
                    done = name not in by
                else:
                    done = by.get(name) == n and acked.get(name) != n
                if done:
                    fig.inflight_done += 1
                    if op == "rel":
                        del acked[name]
                    else:
                        acked[name] = n
                else:
                    fig.inflight_not += 1
            # the file itself is whole again, as the fresh open left it
            try:
                if su.read_table(table) != t:
                    fig.fail("the file differs from what the fresh open read")
            except ValueError as e:
                fig.fail("the file is not whole after a fresh open: %s" % e)
            sizes.append(os.path.getsize(table))
    finally:
        su.log("core crash: %d saves acknowledged in all; table size %d..%d bytes" %
               (saves, min(sizes or [0]), max(sizes or [0])))
        if fig.violations:
            su.log("core crash: files kept in %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return fig


def main():
    what = sys.argv[1]
    kills = int(sys.argv[2]) if len(sys.argv) > 2 else \
        su.env_number("SCOPEFS_CRASH_KILLS", 200, int)
    su.require_fuse()
    t0 = time.monotonic()
    fig = crash_daemon(kills) if what == "daemon" else crash_core(kills)
    fig.report()
    su.log("%s: %.1f s" % (fig.what, time.monotonic() - t0))
    sys.exit(1 if fig.violations else 0)


if __name__ == "__main__":
    main()
