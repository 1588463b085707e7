#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Liveness and sharing: reaping dead owners (with reparenting) within a
second, the grace period of an unadopted pod, the shell idiom under churn,
and a foreign writer of the table file showing in the mount within 100 ms."""

import json
import os
import subprocess
import sys
import time

from fsutil import FAST_READ, SPECIAL, MountTest, main, read, wait_for, write

# A program that uses the table as the original's pods do: flock, read the
# JSON, change it, truncate and rewrite in place, sync, unlock.  It prints
# CLOCK_MONOTONIC when it let go of the lock.
FOREIGN = r"""
import fcntl, json, os, sys, time
path, action, arg, hold = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
fd = os.open(path, os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
if hold:
    print("locked", flush=True)
data = b""
while True:
    chunk = os.read(fd, 1 << 16)
    if not chunk:
        break
    data += chunk
t = json.loads(data) if data.strip() else {"allocations": []}
allocs = t.setdefault("allocations", [])
if action == "add":
    spec = json.loads(arg)
    allocs.append(spec)
elif action == "remove":
    t["allocations"] = [a for a in allocs if a["pod_name"] != arg]
elif action == "rules":
    name, rules = arg.split("=", 1)
    for a in allocs:
        if a["pod_name"] == name:
            a["scope_allow"] = json.loads(rules)
out = json.dumps(t, indent=2).encode()
time.sleep(hold)
os.lseek(fd, 0, os.SEEK_SET)
os.ftruncate(fd, 0)
os.write(fd, out)
os.fdatasync(fd)
fcntl.flock(fd, fcntl.LOCK_UN)
print(time.monotonic(), flush=True)
os.close(fd)
"""


def pod_spec(name, pid, parent=None, rules=(), session=None):
    return {"pod_name": name, "pid": pid, "socket": "", "scope_allow": list(rules),
            "delegated_from": parent, "session_id": session}


def open_events(test):
    """MOUNT/.events for TEST, or None under fast_read (which hides it)."""
    if FAST_READ:
        return None
    events = open(test.d.path(".events"), "rb", buffering=0)
    test.addCleanup(events.close)
    return events


class Reap(MountTest):
    def sleeper(self):
        p = subprocess.Popen(["sleep", "120"])
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        return p

    def test_reap_with_reparenting_within_a_second(self):
        d = self.d
        pa, pb, pc = self.sleeper(), self.sleeper(), self.sleeper()
        os.mkdir(d.path("a"))
        write(d.path("a", "pid"), str(pa.pid))
        write(d.path("a", "allow"), "write recursive /src\n")
        os.mkdir(d.path("a", "b"))
        write(d.path("b", "pid"), str(pb.pid))
        write(d.path("b", "allow"), "write recursive /src/b\n")
        os.mkdir(d.path("a", "b", "c"))
        write(d.path("c", "pid"), str(pc.pid))
        write(d.path("c", "allow"), "write recursive /src/b/c\n")
        events = open_events(self)
        # known to the kernel's caches before the death
        os.stat(d.path("b", "allow"))
        os.stat(d.path("a", "b", "c", "allow"))
        self.assertEqual(read(d.path("c", "delegated_from")), b"b\n")
        fd = os.open(d.path("c", "delegated_from"), os.O_RDONLY)
        self.addCleanup(os.close, fd)
        self.assertEqual(os.pread(fd, 100, 0), b"b\n")

        pb.kill()
        pb.wait()
        t0 = time.monotonic()
        wait_for(lambda: "b" not in os.listdir(d.mnt), 1.0)
        wait_for(lambda: not os.path.exists(d.path("b")), 1.0)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(sorted(d.names()), ["a", "c"])
        self.assertEqual(d.pod("c")["delegated_from"], "a")
        self.assertEqual(read(d.path("c", "delegated_from")), b"a\n")
        self.assertEqual(read(d.path("a", "c", "delegated_from")), b"a\n")
        # a descriptor kept open sees the new content too
        wait_for(lambda: os.pread(fd, 100, 0) == b"a\n", 0.1)
        if events is None:
            return
        lines = events.read(4096).decode().splitlines()
        kinds = [l.split()[1:] for l in lines]
        self.assertIn(["reap", "b", str(pb.pid)], kinds)
        self.assertIn(["reparent", "c", "a"], kinds)

    def test_unadopted_pod_survives_its_maker_for_a_second(self):
        d = self.d
        subprocess.run(["mkdir", d.path("m")], check=True)
        t0 = time.monotonic()
        time.sleep(0.6)
        self.assertTrue(os.path.isdir(d.path("m")))
        wait_for(lambda: not os.path.exists(d.path("m")), 2.0)
        gone = time.monotonic() - t0
        self.assertGreater(gone, 0.9)
        self.assertLess(gone, 2.0)
        self.assertEqual(d.names(), [])

    def test_dead_owner_in_table_at_start_is_reaped(self):
        d = self.d
        d.stop()
        p = subprocess.Popen(["true"])
        p.wait()
        with open(d.table, "w") as f:
            json.dump({"allocations": [pod_spec("live", os.getpid()),
                                       pod_spec("dead", p.pid, parent="live")]}, f)
        from fsutil import Daemon
        self.d = Daemon(table=d.table, tmp=d.tmp)
        wait_for(lambda: self.d.names() == ["live"], 1.0)
        self.assertEqual(sorted(os.listdir(self.d.mnt)), sorted(SPECIAL + ["live"]))


class Idiom(MountTest):
    CHURN = r"""
import os, subprocess, sys, time
mnt, kind, until = sys.argv[1], sys.argv[2], float(sys.argv[3])
i = 0
while time.monotonic() < until:
    i += 1
    name = "churn-%s-%d" % (kind, i)
    try:
        if kind == "register":
            os.mkdir(os.path.join(mnt, name))
            with open(os.path.join(mnt, name, "allow"), "w") as f:
                f.write("read recursive /churn\n")
            os.rmdir(os.path.join(mnt, name))
        elif kind == "delegate":
            os.mkdir(os.path.join(mnt, "churn-parent", name))
            os.rmdir(os.path.join(mnt, "churn-parent", name))
        elif kind == "die":
            # pods whose owners die: reaped behind our back
            subprocess.run(["sh", "-c", 'mkdir "$1" && echo $$ > "$1/pid"', "sh",
                            os.path.join(mnt, name)], check=True)
            subprocess.run(["mkdir", os.path.join(mnt, name + "-orphan")], check=True)
    except OSError as e:
        print("churn %s: %s" % (kind, e), file=sys.stderr)
        sys.exit(1)
"""

    def test_shell_idiom_under_churn(self):
        d = self.d
        os.mkdir(d.path("parent"))
        os.mkdir(d.path("churn-parent"))
        until = time.monotonic() + 60
        churn = [subprocess.Popen([sys.executable, "-c", self.CHURN, d.mnt, kind, str(until)])
                 for kind in ("register", "delegate", "die")]

        def stop_churn():
            for p in churn:
                p.kill()
                p.wait()
        self.addCleanup(stop_churn)
        script = 'echo $$; mkdir "$1" && echo $$ > "$1/pid" && cat "$1/pid"'
        made = []
        for i in range(200):
            where = d.path("idiom%d" % i) if i % 2 else d.path("parent", "idiom%d" % i)
            r = subprocess.run(["sh", "-c", script, "sh", where], capture_output=True)
            self.assertEqual(r.returncode, 0, "iteration %d: %r" % (i, r.stderr))
            shell, content = r.stdout.decode().split()
            self.assertEqual(shell, content, "iteration %d" % i)
            made.append("idiom%d" % i)
        for p in churn:
            self.assertIsNone(p.poll(), "a churn process failed")
        stop_churn()
        # every shell is dead now: their pods are reaped, the others stay
        wait_for(lambda: not any(n.startswith("idiom") for n in os.listdir(d.mnt)), 3.0)
        wait_for(lambda: not any(n.startswith("churn-die") for n in d.names()), 3.0)
        names = set(d.names())
        self.assertIn("parent", names)
        self.assertFalse(names & set(made))


class Foreign(MountTest):
    def foreign(self, action, arg, hold=0.0):
        return subprocess.Popen([sys.executable, "-c", FOREIGN, self.d.table, action, arg,
                                 str(hold)], stdout=subprocess.PIPE)

    def shows_within(self, proc, pred, limit=0.1):
        """PRED becomes true within LIMIT seconds of the writer's unlock."""
        deadline = time.monotonic() + 5
        seen = None
        while time.monotonic() < deadline:
            if proc.poll() is not None and pred():
                seen = time.monotonic()
                break
            time.sleep(0.001)
        out, _ = proc.communicate()
        self.assertEqual(proc.returncode, 0)
        self.assertIsNotNone(seen, "the foreign change never showed")
        delay = seen - float(out.split()[-1])
        self.assertLess(delay, limit, "shown %.3f s after the writer's unlock" % delay)
        return delay

    def test_foreign_changes_show_within_100ms(self):
        d = self.d
        os.mkdir(d.path("mine"))
        events = open_events(self)
        spec = pod_spec("foreign", os.getpid(), rules=[
            {"target": "/f", "permission": "write", "recursive": True}])
        p = self.foreign("add", json.dumps(spec))
        self.shows_within(p, lambda: os.path.exists(d.path("foreign", "allow")))
        self.assertIn("foreign", os.listdir(d.mnt))
        self.assertEqual(read(d.path("foreign", "allow")), b"write recursive /f\n")

        fd = os.open(d.path("foreign", "allow"), os.O_RDONLY)
        self.addCleanup(os.close, fd)
        self.assertEqual(os.pread(fd, 100, 0), b"write recursive /f\n")
        p = self.foreign("rules", 'foreign=[{"target": "/g", "permission": "read"}]')
        self.shows_within(p, lambda: os.pread(fd, 100, 0) == b"read recursive /g\n")
        self.assertEqual(os.fstat(fd).st_size, len(b"read recursive /g\n"))

        os.stat(d.path("foreign"))  # cached by the kernel for a second
        p = self.foreign("remove", "foreign")
        self.shows_within(p, lambda: not os.path.exists(d.path("foreign")))
        if events is not None:
            lines = [l.split()[1:3] for l in events.read(4096).decode().splitlines()]
            self.assertEqual(lines, [["register", "foreign"], ["allow", "foreign"],
                                     ["release", "foreign"]])
        # our next change builds on the foreign state, never an older one
        p = self.foreign("add", json.dumps(pod_spec("other", os.getpid())))
        p.communicate()
        os.mkdir(d.path("after"))
        self.assertEqual(sorted(d.names()), ["after", "mine", "other"])

    def test_flock_holder_does_not_block_reads(self):
        d = self.d
        os.mkdir(d.path("mine"))
        p = self.foreign("add", json.dumps(pod_spec("slow", os.getpid())), hold=0.5)
        self.assertEqual(p.stdout.readline(), b"locked\n")
        t0 = time.monotonic()
        self.assertIn("mine", os.listdir(d.mnt))
        read(d.path("mine", "pid"))
        self.assertLess(time.monotonic() - t0, 0.2)
        # a change waits for the lock, then builds on the writer's result
        os.mkdir(d.path("second"))
        self.assertGreater(time.monotonic() - t0, 0.35)
        p.communicate()
        self.assertEqual(sorted(d.names()), ["mine", "second", "slow"])


if __name__ == "__main__":
    main()
