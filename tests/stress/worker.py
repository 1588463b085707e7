#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""One process of the stress mix (test_stress.py, bench/soak.sh).

    worker.py KIND ID MNT TABLE UNTIL SEED

KIND is one of
  mount    a client of the mount: mkdir (top-level, delegated, contended
           names), writes of allow (replace, append), pid (its own, a
           child's, a dead one), session (from a small shared pool, so
           that some collide), socket, rmdir; and children that make a
           pod and die;
  core     drives a scope_driver (a program on the core library: lock,
           reclaim, register/delegate/set_rules/release/adopt, save,
           unlock) with the same kind of random changes;
  foreign  a writer on the original's protocol (flock, json.loads, the
           seed's checks, truncate + rewrite pretty JSON, fsync, unlock);
  reader   lists the mount, reads pod files and .events;
  checker  reads the table under the flock and checks every invariant.

Every worker tracks what it was told: after each of its steps it reads the
table (flock, json.loads) and checks that each of its pods is there exactly
as acknowledged (refused changes left no trace), that what it released is
gone, and the invariants for pairs involving its pods.  UNTIL is a
CLOCK_MONOTONIC deadline.  The last line on stdout is a JSON summary.
"""

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stressutil as su  # noqa: E402

ANY = "<any>"  # a session chosen by the daemon or the core, learnt at the next check
MAX_PODS = 6
MAX_VIOLATIONS = 50
LETTERS = "abcd"
# A small shared pool: sessions collide between workers now and then.
SESSION_POOL = ["0192f3c4-5b6a-7c8d-9e0f-%012x" % i for i in range(12)]


class Worker:
    def __init__(self, wid, mnt, table, until, seed):
        self.id, self.mnt, self.table, self.until = wid, mnt, table, until
        self.rng = random.Random(seed)
        self.pods = {}        # name -> expectation
        self.gone = set()     # unique names that must not be in the table
        self.not_mine = set()  # contended names that must not hold my pid
        self.serial = 0
        self.ops = 0
        self.acked = 0
        self.refused = {}
        self.checks = 0
        self.violations = []
        self.nviolations = 0
        self.info = {}
        self.mypid = os.getpid()

    # ---- bookkeeping ----

    def violation(self, what):
        self.nviolations += 1
        if len(self.violations) < MAX_VIOLATIONS:
            self.violations.append("%s %d: %s" % (self.kind, self.id, what))

    def count(self, key, n=1):
        self.info[key] = self.info.get(key, 0) + n

    def refuse(self, code):
        name = errno.errorcode.get(code, str(code)) if isinstance(code, int) else code
        self.refused[name] = self.refused.get(name, 0) + 1

    def new_name(self):
        self.serial += 1
        return "%s%d-%d" % (self.kind[0], self.id, self.serial)

    def rand_target(self, depth=None):
        depth = depth or self.rng.randint(1, 3)
        return "/s/" + "/".join(self.rng.choice(LETTERS[:4 - i]) for i in range(depth))

    def rand_rule(self):
        return {"target": self.rand_target(),
                "permission": "write" if self.rng.random() < 0.7 else "read",
                "recursive": self.rng.random() < 0.6}

    def sub_rule(self, parent_rules):
        """A rule within one of PARENT_RULES (often), or any rule."""
        ws = [r for r in parent_rules if su.is_write(r)]
        if not ws or self.rng.random() < 0.15:
            return self.rand_rule()
        r = self.rng.choice(ws)
        t = r["target"]
        if su.is_rec(r) and self.rng.random() < 0.7:
            t = t + "/" + self.rng.choice("xyz")
            if self.rng.random() < 0.5:
                t += "/" + self.rng.choice("uv")
        return {"target": t, "permission": "write" if self.rng.random() < 0.8 else "read",
                "recursive": su.is_rec(r) and self.rng.random() < 0.7}

    def rand_rules(self, parent=None):
        n = self.rng.choice([0, 1, 1, 2, 2, 3])
        if parent is not None and parent in self.pods:
            return [self.sub_rule(self.pods[parent]["rules_full"]) for _ in range(n)]
        return [self.rand_rule() for _ in range(n)]

    def expect(self, name, pid, rules, session, socket, parent, owner="me"):
        self.pods[name] = {"pid": pid, "rules_full": rules, "session": session,
                           "socket": socket, "parent": parent, "owner": owner}
        self.gone.discard(name)
        self.not_mine.discard(name)

    def released(self, name):
        exp = self.pods.pop(name)
        for e in self.pods.values():
            if e["parent"] == name:
                e["parent"] = exp["parent"]
        if name.startswith("shared-"):
            self.not_mine.add(name)
        else:
            self.gone.add(name)

    def kids(self, name):
        return [n for n, e in self.pods.items() if e["parent"] == name]

    def own_pods(self, owner="me"):
        return sorted(n for n, e in self.pods.items() if e["owner"] == owner)

    # ---- the check after each step ----

    def check(self, view=None):
        self.checks += 1
        try:
            table = su.read_table(self.table)
        except ValueError as e:
            self.violation("the table does not parse: %s" % e)
            return
        by = {}
        for a in su.allocations(table):
            by.setdefault(a["pod_name"], a)
        for name, exp in self.pods.items():
            a = by.get(name)
            if a is None:
                self.violation("acknowledged pod `%s` is missing" % name)
                continue
            got = {"pid": a.get("pid"), "rules": [su.rule_key(r) for r in a["scope_allow"]],
                   "socket": a.get("socket"), "parent": a.get("delegated_from")}
            want = {"pid": exp["pid"], "rules": [su.rule_key(r) for r in exp["rules_full"]],
                    "socket": exp["socket"], "parent": exp["parent"]}
            if got != want:
                self.violation("pod `%s` is %r, acknowledged %r" % (name, got, want))
            s = a.get("session_id")
            if exp["session"] == ANY:
                if not s:
                    self.violation("pod `%s` has no session" % name)
                else:
                    exp["session"] = s
            elif s != exp["session"]:
                self.violation("pod `%s` session %r, acknowledged %r" % (name, s, exp["session"]))
        for name in self.gone:
            if name in by:
                self.violation("released or refused pod `%s` is in the table" % name)
        for name in self.not_mine:
            a = by.get(name)
            if a is not None and a.get("pid") == self.mypid and name not in self.pods:
                self.violation("pod `%s` holds my pid though I released it or was refused"
                               % name)
        for v in su.check_invariants(table, only=set(self.pods)):
            self.violation(v)
        if view:
            self.check_view(*view)

    def check_view(self, name, path):
        """The mount shows an acknowledged allow at once."""
        exp = self.pods.get(name)
        if exp is None:
            return
        want = "".join(su.rule_line(r) + "\n" for r in exp["rules_full"]).encode()
        try:
            with open(path, "rb") as f:
                got = f.read()
        except OSError as e:
            self.violation("reading `%s`: %s" % (path, e))
            return
        if got != want:
            self.violation("`%s` shows %r, acknowledged %r" % (path, got, want))

    def summary(self):
        return {"kind": self.kind, "id": self.id, "ops": self.ops, "acked": self.acked,
                "refused": self.refused, "checks": self.checks,
                "violations": self.nviolations, "details": self.violations, "info": self.info}

    def run(self):
        while time.monotonic() < self.until:
            self.step()
            self.ops += 1
        self.finish()
        print(json.dumps(self.summary()), flush=True)

    def finish(self):
        pass


# ---- through the mount ----

def write_file(path, data, append=False):
    fd = os.open(path, os.O_WRONLY | (os.O_APPEND if append else os.O_TRUNC))
    try:
        n = os.write(fd, data.encode() if isinstance(data, str) else data)
    finally:
        os.close(fd)
    return n


class MountWorker(Worker):
    kind = "mount"

    def __init__(self, *a):
        super().__init__(*a)
        self.sleepers = {}  # pod -> Popen

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    def pod_path(self, name):
        """The pod's directory, at the root or under its parent."""
        parent = self.pods[name]["parent"]
        if parent and self.rng.random() < 0.5:
            return self.path(parent, name)
        return self.path(name)

    def attempt(self, what, fn, ok_errnos):
        try:
            fn()
        except OSError as e:
            if e.errno in ok_errnos:
                self.refuse(e.errno)
                return e.errno
            self.violation("%s: unexpected %s" % (what, e))
            return e.errno
        self.acked += 1
        return 0

    def step(self):
        r = self.rng.random()
        mine = self.own_pods()
        if not mine and len(self.pods) >= MAX_PODS:
            return self.op_kill_sleeper()
        if len(mine) < 2 or (r < 0.14 and len(self.pods) < MAX_PODS):
            return self.op_mkdir()
        if r < 0.20 and len(self.pods) < MAX_PODS:
            return self.op_delegate(self.rng.choice(mine))
        if r < 0.24:
            return self.op_contended()
        if r < 0.46:
            return self.op_allow(self.rng.choice(mine))
        if r < 0.52:
            return self.op_allow(self.rng.choice(mine), append=True)
        if r < 0.60:
            return self.op_pid(self.rng.choice(mine))
        if r < 0.67:
            return self.op_session(self.rng.choice(mine))
        if r < 0.72:
            return self.op_socket(self.rng.choice(mine))
        if r < 0.80:
            return self.op_dier()
        if r < 0.83 and self.sleepers:
            return self.op_kill_sleeper()
        return self.op_rmdir(self.rng.choice(mine))

    def op_mkdir(self):
        name = self.new_name()
        if self.attempt("mkdir %s" % name, lambda: os.mkdir(self.path(name)), ()) == 0:
            self.expect(name, self.mypid, [], ANY, "", None)
        else:
            self.gone.add(name)
        self.check()

    def op_contended(self):
        free = [n for n in ("shared-%d" % i for i in range(8)) if n not in self.pods]
        if not free:
            return self.check()
        name = self.rng.choice(free)
        rc = self.attempt("mkdir %s" % name, lambda: os.mkdir(self.path(name)), (errno.EEXIST,))
        if rc == 0:
            self.expect(name, self.mypid, [], ANY, "", None)
        else:
            self.not_mine.add(name)
        self.check()

    def op_delegate(self, parent):
        name = self.new_name()
        rc = self.attempt("mkdir %s/%s" % (parent, name),
                          lambda: os.mkdir(self.path(parent, name)), ())
        if rc == 0:
            self.expect(name, self.mypid, [], None, "", parent)
            rules = self.rand_rules(parent)
            self.check()
            self.op_allow(name, rules=rules)
        else:
            self.gone.add(name)
            self.check()

    def op_allow(self, name, append=False, rules=None):
        exp = self.pods[name]
        if rules is None:
            rules = self.rand_rules(exp["parent"])
        text = "".join(su.rule_line(r) + "\n" for r in rules) or "\n"
        path = os.path.join(self.pod_path(name), "allow")
        rc = self.attempt("write %s" % path, lambda: write_file(path, text, append),
                          (errno.EBUSY, errno.EPERM))
        if rc == 0:
            exp["rules_full"] = (exp["rules_full"] + rules) if append else rules
        self.check(view=(name, self.path(name, "allow")))

    def op_pid(self, name):
        exp = self.pods[name]
        r = self.rng.random()
        path = os.path.join(self.pod_path(name), "pid")
        if r < 0.5 or self.kids(name) or exp["parent"] is None and r < 0.7:
            rc = self.attempt("write %s" % path, lambda: write_file(path, "%d\n" % self.mypid), ())
        elif r < 0.8:
            # hand the pod to a child process that will be killed later
            p = subprocess.Popen(["sleep", "600"])
            rc = self.attempt("write %s" % path, lambda: write_file(path, str(p.pid)), ())
            if rc == 0:
                exp["pid"], exp["owner"] = p.pid, "sleeper"
                self.sleepers[name] = p
            else:
                p.kill()
                p.wait()
        else:
            p = subprocess.Popen(["true"])
            p.wait()
            rc = self.attempt("write %s" % path, lambda: write_file(path, str(p.pid)),
                              (errno.ESRCH,))
            if rc == 0 and not su.pid_alive(p.pid):
                self.violation("adopting dead pid %d was acknowledged" % p.pid)
        self.check()

    def op_kill_sleeper(self):
        name = self.rng.choice(sorted(self.sleepers))
        p = self.sleepers.pop(name)
        self.check()  # still there while its owner lives
        p.kill()
        p.wait()
        # Its owner is dead: the pod may vanish at any time now.
        exp = self.pods.pop(name)
        for e in self.pods.values():
            if e["parent"] == name:
                self.violation("internal: a sleeper's pod had children")
        self.count("pods whose owner was killed")
        if exp["owner"] != "sleeper":
            self.violation("internal: `%s` was not a sleeper's" % name)

    def op_session(self, name):
        path = os.path.join(self.pod_path(name), "session")
        s = self.rng.choice(SESSION_POOL) if self.rng.random() < 0.7 else su.fresh_uuid()
        rc = self.attempt("write %s" % path, lambda: write_file(path, s + "\n"), (errno.EBUSY,))
        if rc == 0:
            self.pods[name]["session"] = s
        self.check()

    def op_socket(self, name):
        path = os.path.join(self.pod_path(name), "socket")
        if self.rng.random() < 0.8:
            s = "/run/stress/%s/%d.sock" % (name, self.rng.randint(0, 999))
            rc = self.attempt("write %s" % path, lambda: write_file(path, s + "\n"), ())
            if rc == 0:
                self.pods[name]["socket"] = s
        else:
            self.attempt("write %s" % path, lambda: write_file(path, "relative/sock\n"),
                         (errno.EINVAL,))
        self.check()

    def op_rmdir(self, name):
        exp = self.pods[name]
        if exp["owner"] != "me":
            return self.check()
        path = self.pod_path(name)
        if self.attempt("rmdir %s" % path, lambda: os.rmdir(path), ()) == 0:
            self.released(name)
        self.check()

    def op_dier(self):
        """A process makes a pod (and maybe rules), adopts it and dies."""
        name = self.new_name() + "-dier"
        rules = "".join(su.rule_line(r) + "\n" for r in self.rand_rules()) or "\n"
        how = self.rng.random()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.mkdir(self.path(name))
                try:
                    write_file(self.path(name, "allow"), rules)
                except OSError:
                    pass
                if how < 0.7:
                    write_file(self.path(name, "pid"), str(os.getpid()))
            except OSError:
                code = 1
            if how > 0.85:
                os.kill(os.getpid(), signal.SIGKILL)
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        self.count("pods made by processes that died")
        if os.WIFEXITED(status) and os.WEXITSTATUS(status):
            self.count("dier failures (mkdir or pid refused)")
        self.check()

    def finish(self):
        for p in self.sleepers.values():
            p.kill()
            p.wait()


# ---- the core library, through scope_driver ----

class CoreWorker(Worker):
    kind = "core"

    def __init__(self, *a):
        super().__init__(*a)
        self.proc = subprocess.Popen([su.DRIVER, self.table], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.cpid = self.proc.pid

    def call(self, *tokens):
        self.proc.stdin.write(" ".join(str(t) for t in tokens) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("scope_driver died")
        parts = line.split(None, 3)
        if parts[0] == "ok":
            self.acked += 1
            if len(parts) > 1 and int(parts[1]):
                self.count("pods reaped by the core", int(parts[1]))
            return None
        return parts[2]  # the kind

    def attempt(self, ok_kinds, *tokens):
        kind = self.call(*tokens)
        if kind is not None:
            if kind in ok_kinds:
                self.refuse(kind)
            else:
                self.violation("%s: unexpected %s" % (" ".join(map(str, tokens)), kind))
        return kind

    @staticmethod
    def tok(r):
        return "%s:%s:%s" % ("w" if su.is_write(r) else "r", "r" if su.is_rec(r) else "s",
                             r["target"])

    def step(self):
        r = self.rng.random()
        mine = self.own_pods()
        if len(mine) < 2 or (r < 0.15 and len(self.pods) < MAX_PODS):
            return self.op_register()
        if r < 0.25 and len(self.pods) < MAX_PODS:
            return self.op_delegate(self.rng.choice(mine))
        if r < 0.55:
            return self.op_rules(self.rng.choice(mine))
        if r < 0.65:
            return self.op_session(self.rng.choice(mine))
        if r < 0.72:
            return self.op_socket(self.rng.choice(mine))
        if r < 0.80:
            return self.op_adopt(self.rng.choice(mine))
        if r < 0.85:
            self.attempt((), "reap")
            return self.check()
        return self.op_release(self.rng.choice(mine))

    def op_register(self):
        contended = self.rng.random() < 0.15
        name = "shared-%d" % self.rng.randint(0, 7) if contended else self.new_name()
        if name in self.pods:
            return self.check()
        rules = self.rand_rules()
        session = self.rng.choice(SESSION_POOL) if self.rng.random() < 0.3 else "-"
        kind = self.attempt(("conflict", "session", "duplicate") if contended else
                            ("conflict", "session"),
                            "reg", name, self.cpid, session, "-", *map(self.tok, rules))
        if kind is None:
            self.expect(name, self.cpid, rules, ANY if session == "-" else session, "", None)
        elif contended:
            self.not_mine.add(name)
        else:
            self.gone.add(name)
        self.check()

    def op_delegate(self, parent):
        name = self.new_name()
        rules = self.rand_rules(parent)
        kind = self.attempt(("conflict", "notsubset"), "del", parent, name, self.cpid,
                            *map(self.tok, rules))
        if kind is None:
            self.expect(name, self.cpid, rules, None, "", parent)
        else:
            self.gone.add(name)
        self.check()

    def op_rules(self, name):
        rules = self.rand_rules(self.pods[name]["parent"])
        kind = self.attempt(("conflict", "notsubset", "uncovered"), "rules", name,
                            *map(self.tok, rules))
        if kind is None:
            self.pods[name]["rules_full"] = rules
        self.check()

    def op_session(self, name):
        s = self.rng.choice(SESSION_POOL)
        if self.rng.random() < 0.2:
            s = "-"
        if self.attempt(("session",), "sess", name, s) is None:
            self.pods[name]["session"] = None if s == "-" else s
        self.check()

    def op_socket(self, name):
        if self.rng.random() < 0.8:
            s = "/run/stress/%s/%d.sock" % (name, self.rng.randint(0, 999))
            if self.attempt((), "sock", name, s) is None:
                self.pods[name]["socket"] = s
        else:
            self.attempt(("inval",), "sock", name, "relative/sock")
        self.check()

    def op_adopt(self, name):
        s = self.rng.choice(SESSION_POOL)
        if self.attempt(("session",), "adopt", name, self.cpid, s) is None:
            self.pods[name]["pid"] = self.cpid
            self.pods[name]["session"] = s
        self.check()

    def op_release(self, name):
        if self.attempt((), "rel", name) is None:
            self.released(name)
        self.check()

    def finish(self):
        self.proc.stdin.close()
        self.proc.wait()


# ---- a writer on the original's protocol ----

class ForeignWorker(Worker):
    kind = "foreign"

    def attempt(self, fn):
        try:
            with su.ForeignFile(self.table) as f:
                try:
                    fn(f.table)
                except su.SeedError as e:
                    self.refuse(e.kind)
                    # the original saves what its reclaim removed only with a
                    # successful change: nothing is written on refusal
                    return e.kind
                f.save()
        except ValueError as e:
            self.violation("the table does not parse: %s" % e)
            return "parse"
        self.acked += 1
        return None

    def step(self):
        r = self.rng.random()
        mine = self.own_pods()
        if len(mine) < 2 or (r < 0.25 and len(self.pods) < MAX_PODS):
            return self.op_register()
        if r < 0.45 and len(self.pods) < MAX_PODS:
            return self.op_delegate(self.rng.choice(mine))
        if r < 0.70:
            return self.op_adopt(self.rng.choice(mine))
        return self.op_release(self.rng.choice(mine))

    def op_register(self):
        contended = self.rng.random() < 0.15
        name = "shared-%d" % self.rng.randint(0, 7) if contended else self.new_name()
        if name in self.pods:
            return self.check()
        rules = self.rand_rules()
        session = self.rng.choice(SESSION_POOL) if self.rng.random() < 0.3 else su.fresh_uuid()
        sock = "/run/stress/%s.sock" % name
        kind = self.attempt(lambda t: su.seed_register(t, name, self.mypid, sock, rules, session))
        if kind is None:
            self.expect(name, self.mypid, rules, session, sock, None)
        elif contended:
            self.not_mine.add(name)
        else:
            self.gone.add(name)
        self.check()

    def op_delegate(self, parent):
        name = self.new_name()
        rules = self.rand_rules(parent)
        kind = self.attempt(lambda t: su.seed_delegate(t, parent, name, self.mypid, "", rules))
        if kind is None:
            self.expect(name, self.mypid, rules, None, "", parent)
        else:
            self.gone.add(name)
        self.check()

    def op_adopt(self, name):
        s = self.rng.choice(SESSION_POOL)
        if self.attempt(lambda t: su.seed_adopt(t, name, self.mypid, s)) is None:
            self.pods[name]["session"] = s
        self.check()

    def op_release(self, name):
        if self.attempt(lambda t: su.seed_release(t, name)) is None:
            self.released(name)
        self.check()


# ---- readers of the mount and the whole-table checker ----

class ReaderWorker(Worker):
    kind = "reader"

    def __init__(self, *a):
        super().__init__(*a)
        self.events = os.open(os.path.join(self.mnt, ".events"), os.O_RDONLY | os.O_NONBLOCK)

    def step(self):
        try:
            names = [n for n in os.listdir(self.mnt) if not n.startswith(".")]
            for n in self.rng.sample(names, min(3, len(names))):
                for f in ("allow", "pid", "session", "socket", "delegated_from"):
                    p = os.path.join(self.mnt, n, f)
                    with open(p, "rb") as fh:
                        data = fh.read()
                    if data and not data.endswith(b"\n"):
                        self.violation("`%s/%s` does not end with a newline: %r" % (n, f, data))
            try:
                while os.read(self.events, 65536):
                    self.count("event reads")
            except BlockingIOError:
                pass
            self.acked += 1
        except FileNotFoundError:
            self.refuse(errno.ENOENT)  # a pod went between listing and reading
        except OSError as e:
            self.violation("reading the mount: %s" % e)
        time.sleep(0.005)

    def finish(self):
        os.close(self.events)


class CheckerWorker(Worker):
    kind = "checker"

    def step(self):
        try:
            table = su.read_table(self.table)
        except ValueError as e:
            self.violation("the table does not parse: %s" % e)
            return
        self.checks += 1
        n = len(su.allocations(table))
        self.info["max pods"] = max(self.info.get("max pods", 0), n)
        for v in su.check_invariants(table):
            self.violation(v)
        time.sleep(0.2)


KINDS = {"mount": MountWorker, "core": CoreWorker, "foreign": ForeignWorker,
         "reader": ReaderWorker, "checker": CheckerWorker}


def main():
    kind, wid, mnt, table, until, seed = sys.argv[1:7]
    w = KINDS[kind](int(wid), mnt, table, float(until), int(seed))
    try:
        w.run()
    except Exception as e:  # report, do not hide: a crash is a violation
        w.violation("worker crashed: %r" % e)
        print(json.dumps(w.summary()), flush=True)
        raise


if __name__ == "__main__":
    main()
