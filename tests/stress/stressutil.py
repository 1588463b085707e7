# SPDX-License-Identifier: MIT
"""Shared helpers of the stress, crash and security tests of scopefs.

- starting a daemon (-f) on a mountpoint over a table, killing it,
  mounting again on the same mountpoint;
- the table read as the original's pods read it (flock, json.loads);
- the seed's rules in Python (path comparison as Rust's Path, overlap,
  full cover, conflict owner) for the invariant checker and for a foreign
  writer that follows the original's protocol.

Python 3 standard library only.  No skips: an unusable /dev/fuse fails.
"""

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

# The integration tests' helpers (tests/fs), shared rather than copied.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fs"))
import fsutil  # noqa: E402

SCOPEFS = os.environ.get("SCOPEFS")
DRIVER = os.environ.get("SCOPE_DRIVER")
SANITIZED = bool(os.environ.get("SCOPEFS_SANITIZED"))


def require_fuse():
    """Fail (never skip) when the daemon, the driver or /dev/fuse is unusable."""
    if not DRIVER or not os.access(DRIVER, os.X_OK):
        raise RuntimeError("SCOPE_DRIVER does not name an executable: %r" % DRIVER)
    fsutil.require_fuse()


ensure_user = fsutil.ensure_user


def env_number(name, default, kind=float):
    v = os.environ.get(name)
    return kind(v) if v else default


# The type of what is mounted exactly at PATH, or None.
mount_type = fsutil.is_mounted


def wedged_threads(pid):
    """Wait channels of PID's threads that are still there (a process
    killed with SIGKILL whose threads cannot leave the kernel)."""
    out = []
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/wchan" % (pid, t)) as f:
                    w = f.read().strip()
                with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                out.append("%s:%s" % (state, w))
    except OSError:
        pass
    return out


def abort_connection(mnt):
    """Aborts the FUSE connection of the mount at MNT (MNT_FORCE does, for
    FUSE): requests in flight fail, a wedged daemon can finish dying."""
    subprocess.run(["umount", "-f", mnt], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def lazy_unmount(mnt):
    """Removes whatever scopefs mount is left at MNT (a dead daemon's too)."""
    for _ in range(10):
        if not mount_type(mnt):
            return
        subprocess.run(["fusermount3", "-u", "-z", mnt], stderr=subprocess.DEVNULL)


class Daemon:
    """scopefs -f on MNT over TABLE; its output goes to LOG (a file)."""

    def __init__(self, mnt, table, opts=(), log=None, wrapper=(), env=None, timeout=10,
                 program=None):
        self.mnt, self.table = mnt, table
        argv = list(wrapper) + [program or SCOPEFS, "-f", "-o", "table=" + table]
        for o in opts:
            argv += ["-o", o]
        argv.append(mnt)
        self.log = log or os.path.join(os.path.dirname(table), "scopefs.log")
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while mount_type(mnt) != "fuse.scopefs":
            if self.proc.poll() is not None:
                self.logf.close()
                raise AssertionError("scopefs exited (%s) before mounting: %s" %
                                     (self.proc.returncode, self.output()[-2000:]))
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("scopefs did not mount within %d s" % timeout)
            time.sleep(0.002)

    @property
    def pid(self):
        return self.proc.pid

    def output(self):
        with open(self.log, "rb") as f:
            return f.read().decode(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def sigkill(self, wedge=None):
        """SIGKILL, reaped; the mount is left behind, as after a crash.

        A killed daemon whose thread is stuck in the kernel (see
        wedged_threads) never finishes dying: after 0.5 s the connection is
        aborted (umount -f) so that it can.  WEDGE, a callable, is told
        first, with the stuck threads' wait channels."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        try:
            self.proc.wait(0.5)
        except subprocess.TimeoutExpired:
            if wedge:
                wedge(wedged_threads(self.proc.pid))
            abort_connection(self.mnt)
            self.proc.wait()
        self.logf.close()

    def kill(self):
        self.sigkill()
        lazy_unmount(self.mnt)

    def stop(self, timeout=30):
        """Unmount and wait for the daemon; returns its exit status."""
        if self.proc.poll() is None:
            # The daemon's loopback thread may hold the mount for a moment
            # (EBUSY): retry a plain unmount, since a lazy one leaves the
            # connection alive while that reference lasts.
            # If the mount stays busy, SIGTERM is the daemon's other clean
            # stop: it unmounts itself and exits (valgrind still reports).
            deadline = time.monotonic() + 3
            while subprocess.run(["fusermount3", "-u", self.mnt],
                                 capture_output=True).returncode:
                if time.monotonic() > deadline:
                    self.proc.send_signal(signal.SIGTERM)
                    break
                time.sleep(0.1)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("scopefs did not exit after unmount")
        self.logf.close()
        return rc


def rss_kb(pid):
    """VmRSS of PID in kB (0 if gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# ---- the table file, as the original's pods read it ----

def read_table_bytes(path, lock=fcntl.LOCK_SH):
    with open(path, "rb") as f:
        if lock:
            fcntl.flock(f.fileno(), lock)
        return f.read()


def parse_table(data):
    """json.loads as the original does (a blank file is an empty table)."""
    if not data.strip():
        return {"allocations": []}
    return json.loads(data)


def read_table(path):
    return parse_table(read_table_bytes(path))


def allocations(table):
    return table.get("allocations") or []


def dump_table(table):
    """Pretty JSON as serde_json::to_vec_pretty writes it (no final newline)."""
    return json.dumps(table, indent=2, separators=(",", ": "), ensure_ascii=False).encode()


# ---- liveness ----

def proc_start(pid):
    """Start time of PID in clock ticks (field 22 of /proc/PID/stat), or None."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rindex(b")") + 2:].split()[19])


def pid_alive(pid):
    """The original's kill(pid, 0) probe."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


def alloc_alive(a):
    """The core's rule: kill(pid, 0), and a recorded start time must match."""
    pid = a.get("pid", 0)
    if not pid_alive(pid):
        return False
    ps = a.get("pid_start")
    if isinstance(ps, dict) and ps.get("pid") == pid and ps.get("ticks"):
        now = proc_start(pid)
        if now is not None and now != ps["ticks"]:
            return False
    return True


# ---- paths and rules, as the seed compares them ----

def comps(p):
    """Components as Rust's Path::components: repeated separators and "."
    (but a leading one) do not count, nor does a trailing separator."""
    root = p.startswith("/")
    out = ["/"] if root else []
    for i, c in enumerate(p.split("/")):
        if c == "" or (c == "." and (root or i > 0)):
            continue
        out.append(c)
    return tuple(out)


def starts_with(path, base):
    a, b = comps(path), comps(base)
    return a[:len(b)] == b


def parent_is(path, parent):
    c = comps(path)
    if not c or c == ("/",):
        return False
    return c[:-1] == comps(parent)


def is_write(r):
    return r.get("permission") == "write"


def is_rec(r):
    return r.get("recursive", True) is not False


def rules_overlap(a, b):
    ta, tb = a["target"], b["target"]
    ra, rb = is_rec(a), is_rec(b)
    if ra and rb:
        return starts_with(ta, tb) or starts_with(tb, ta)
    if ra and not rb:
        return starts_with(tb, ta) or parent_is(ta, tb)
    if not ra and rb:
        return starts_with(ta, tb) or parent_is(tb, ta)
    return comps(ta) == comps(tb) or parent_is(ta, tb) or parent_is(tb, ta)


def covers_fully(cover, inner):
    if is_write(inner) and not is_write(cover):
        return False
    if is_rec(cover):
        return starts_with(inner["target"], cover["target"])
    return comps(inner["target"]) == comps(cover["target"]) and not is_rec(inner)


def rule_line(r):
    return "%s %s %s" % (r["permission"], "recursive" if is_rec(r) else "shallow", r["target"])


def rule_key(r):
    return (r.get("permission"), is_rec(r), r.get("target"))


# ---- the seed's operations, for a foreign writer on the original's protocol ----

class SeedError(Exception):
    def __init__(self, kind, msg):
        super().__init__(msg)
        self.kind = kind


def find(t, name):
    for a in allocations(t):
        if a["pod_name"] == name:
            return a
    return None


def children(t, name):
    return [a for a in allocations(t) if a.get("delegated_from") == name]


def within_effective_write(t, parent, rule):
    p = find(t, parent)
    if p is None:
        return False
    if not is_write(rule):
        return any(covers_fully(r, rule) for r in p["scope_allow"])
    if not any(covers_fully(r, rule) for r in p["scope_allow"] if is_write(r)):
        return False
    return not any(rules_overlap(r, rule) for c in children(t, parent)
                   for r in c["scope_allow"] if is_write(r))


def _conflict_in(t, a, rule, depth=0):
    if depth > 1000 or not any(rules_overlap(r, rule) for r in a["scope_allow"] if is_write(r)):
        return None
    for c in children(t, a["pod_name"]):
        owner = _conflict_in(t, c, rule, depth + 1)
        if owner:
            return owner
    return a["pod_name"]


def conflict_owner(t, rule, exempt=None):
    if not is_write(rule):
        return None
    for a in allocations(t):
        if a.get("delegated_from") is not None:
            continue
        owner = _conflict_in(t, a, rule)
        if owner and owner != exempt:
            return owner
    return None


def seed_release(t, name):
    a = find(t, name)
    if a is None:
        raise SeedError("unknown", "unknown pod `%s`" % name)
    for c in allocations(t):
        if c.get("delegated_from") == name:
            c["delegated_from"] = a.get("delegated_from")
    t["allocations"].remove(a)


def seed_reclaim(t):
    dead = [a["pod_name"] for a in allocations(t) if not pid_alive(a["pid"])]
    for name in dead:
        if find(t, name) is not None:
            seed_release(t, name)
    return dead


def new_alloc(name, pid, socket, rules, parent, session):
    return {"pod_name": name, "pid": pid, "socket": socket, "scope_allow": rules,
            "delegated_from": parent, "session_id": session}


def seed_register(t, name, pid, socket, rules, session):
    seed_reclaim(t)
    if find(t, name) is not None:
        raise SeedError("duplicate", "pod name `%s` is already registered" % name)
    if session and any(a.get("session_id") == session for a in allocations(t)):
        raise SeedError("session", "session %s is held" % session)
    for r in rules:
        c = conflict_owner(t, r)
        if c:
            raise SeedError("conflict", "requested scope `%s` conflicts with pod `%s`" %
                            (r["target"], c))
    t.setdefault("allocations", []).append(new_alloc(name, pid, socket, rules, None, session))


def seed_delegate(t, spawner, name, pid, socket, rules):
    seed_reclaim(t)
    if find(t, name) is not None:
        raise SeedError("duplicate", "pod name `%s` is already registered" % name)
    if find(t, spawner) is None:
        raise SeedError("unknown", "unknown pod `%s`" % spawner)
    for r in rules:
        if not within_effective_write(t, spawner, r):
            raise SeedError("notsubset", "requested scope `%s` is not within spawner `%s`'s "
                            "effective scope" % (r["target"], spawner))
        c = conflict_owner(t, r, spawner)
        if c:
            raise SeedError("conflict", "requested scope `%s` conflicts with pod `%s`" %
                            (r["target"], c))
    t.setdefault("allocations", []).append(new_alloc(name, pid, socket, rules, spawner, None))


def seed_adopt(t, name, pid, session):
    seed_reclaim(t)
    a = find(t, name)
    if a is None:
        raise SeedError("unknown", "unknown pod `%s`" % name)
    if session and any(b.get("session_id") == session and b is not a for b in allocations(t)):
        raise SeedError("session", "session %s is held" % session)
    a["pid"] = pid
    a["session_id"] = session


class ForeignFile:
    """One read-modify-write of the table as the original does it: open,
    flock(LOCK_EX), read + json.loads, mutate, seek 0 + truncate + write
    pretty JSON, fsync, unlock."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.f = open(self.path, "r+b")
        fcntl.flock(self.f.fileno(), fcntl.LOCK_EX)
        data = self.f.read()
        try:
            self.table = parse_table(data)
        except ValueError:
            self.close()
            raise
        return self

    def save(self):
        out = dump_table(self.table)
        self.f.seek(0)
        self.f.truncate()
        self.f.write(out)
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self):
        fcntl.flock(self.f.fileno(), fcntl.LOCK_UN)
        self.f.close()

    def __exit__(self, *exc):
        self.close()
        return False


# ---- invariants ----

def ancestors(by_name, name):
    out, seen = [], set()
    a = by_name.get(name)
    while a is not None and a.get("delegated_from") is not None:
        p = a["delegated_from"]
        if p in seen:
            break
        seen.add(p)
        out.append(p)
        a = by_name.get(p)
    return out


def check_invariants(table, only=None, alive=alloc_alive):
    """Violations of the table's invariants, as a list of strings:

    - pod names are unique, every pod's parent exists, no delegation cycle;
    - no two live pods outside one delegation line hold overlapping write
      rules (a line: one is the other's ancestor);
    - no two live pods hold the same session.

    ONLY (a set of names) restricts the pairwise checks to pairs with at
    least one of those pods (a worker checking after its own step)."""
    out = []
    allocs = allocations(table)
    by_name = {}
    for a in allocs:
        if a["pod_name"] in by_name:
            out.append("duplicate pod name `%s`" % a["pod_name"])
        by_name[a["pod_name"]] = a
    anc = {}
    for a in allocs:
        p = a.get("delegated_from")
        if p is not None and p not in by_name:
            out.append("pod `%s` has a parent `%s` that does not exist" % (a["pod_name"], p))
        chain = ancestors(by_name, a["pod_name"])
        if a["pod_name"] in chain:
            out.append("pod `%s` is its own ancestor" % a["pod_name"])
        anc[a["pod_name"]] = set(chain)
    live = [a for a in allocs if alive(a)]
    writes = [(a, [r for r in a["scope_allow"] if is_write(r)]) for a in live]
    writes = [(a, rs) for a, rs in writes if rs]
    sessions = {}
    for a in live:
        s = a.get("session_id")
        if s:
            if s in sessions and (only is None or a["pod_name"] in only or
                                  sessions[s] in only):
                out.append("pods `%s` and `%s` hold one session %s" % (sessions[s],
                                                                       a["pod_name"], s))
            sessions[s] = a["pod_name"]
    for i, (a, ra) in enumerate(writes):
        na = a["pod_name"]
        for b, rb in writes[i + 1:]:
            nb = b["pod_name"]
            if only is not None and na not in only and nb not in only:
                continue
            if na in anc[nb] or nb in anc[na]:
                continue
            for x in ra:
                for y in rb:
                    if rules_overlap(x, y):
                        out.append("live pods `%s` (%s) and `%s` (%s) are not in one "
                                   "delegation line but overlap" %
                                   (na, rule_line(x), nb, rule_line(y)))
    return out


def new_tmp(prefix):
    tmp = tempfile.mkdtemp(prefix=prefix)
    os.chmod(tmp, 0o755)
    return tmp


def fresh_uuid():
    return str(uuid.uuid4())


def log(*args):
    print(*args, flush=True)
    sys.stdout.flush()
