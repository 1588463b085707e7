#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Dead owners stay dead: a reused pid does not keep a dead pod alive.

The core records `pid_start` ({"pid": N, "ticks": T}, the owner's start
time) beside the pid.  A pod whose pid is alive but whose recorded start
time differs from that process's is a dead owner's pod whose pid was
reused: the daemon and a program on the core (scope_reclaim_stale with
scope_procwatch_liveness) must reap it.  The same entry without pid_start
is kept (the original's kill(pid, 0)), and so is one whose pid_start names
another pid (the original changed the pid and kept our field) or the right
start time."""

import json
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stressutil as su  # noqa: E402


def entry(name, pid, parent=None, start=None):
    a = su.new_alloc(name, pid, "", [{"target": "/d/" + name, "permission": "write",
                                      "recursive": True}], parent,
                     None if parent else su.fresh_uuid())
    if start is not None:
        a["pid_start"] = start
    return a


class DeadOwner(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        su.require_fuse()

    def setUp(self):
        self.tmp = su.new_tmp("scopefs-deadowner-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.table = os.path.join(self.tmp, "scope.lock")
        self.owner = subprocess.Popen(["sleep", "600"])
        self.addCleanup(self.owner.wait)
        self.addCleanup(self.owner.kill)
        self.ticks = su.proc_start(self.owner.pid)
        self.assertIsNotNone(self.ticks)

    def write_table(self, allocs):
        with open(self.table, "wb") as f:
            f.write(su.dump_table({"allocations": allocs}))
        os.chmod(self.table, 0o600)

    def fixture(self):
        pid, t = self.owner.pid, self.ticks
        return [
            # the recorded owner died and its pid went to `sleep`
            entry("reused", pid, start={"pid": pid, "ticks": t + 4242}),
            entry("kid", pid, parent="reused"),
            # as the original writes it: kill(pid, 0) decides
            entry("plain", pid),
            # the original adopted another pid and kept our field
            entry("moved", pid, start={"pid": pid + 1, "ticks": t + 4242}),
            # the right start time
            entry("right", pid, start={"pid": pid, "ticks": t}),
        ]

    def check_reaped(self, t):
        names = {a["pod_name"]: a for a in su.allocations(t)}
        self.assertNotIn("reused", names, "a pod whose pid was reused is kept alive")
        for n in ("kid", "plain", "moved", "right"):
            self.assertIn(n, names, "pod `%s` of a live owner was reaped" % n)
        self.assertIsNone(names["kid"]["delegated_from"], "the dead pod's delegate was not "
                          "reparented")
        self.assertEqual(su.check_invariants(t), [])

    def test_core_reclaim(self):
        self.write_table(self.fixture())
        r = subprocess.run([su.DRIVER, self.table], input="reap\n", capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.stdout.strip(), "ok 1", r.stderr)
        self.check_reaped(su.read_table(self.table))
        # and again: nothing more to reap
        r = subprocess.run([su.DRIVER, self.table], input="reap\n", capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.stdout.strip(), "ok 0")

    def daemon(self):
        mnt = os.path.join(self.tmp, "mnt")
        os.makedirs(mnt, exist_ok=True)
        d = su.Daemon(mnt, self.table, log=os.path.join(self.tmp, "log"))

        def stop():
            if d.alive():
                self.assertEqual(d.stop(), 0)
            su.lazy_unmount(mnt)
        self.addCleanup(stop)
        return d

    def wait_gone(self, name, limit):
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            if name not in [a["pod_name"] for a in su.allocations(su.read_table(self.table))]:
                return time.monotonic() - t0
            time.sleep(0.01)
        return None

    def test_daemon_at_start(self):
        self.write_table(self.fixture())
        d = self.daemon()
        took = self.wait_gone("reused", 2.0)
        self.assertIsNotNone(took, "the daemon keeps a pod whose pid was reused")
        time.sleep(1.2)  # a second more: the others stay
        self.check_reaped(su.read_table(self.table))
        self.assertEqual(sorted(n for n in os.listdir(d.mnt) if not n.startswith(".")),
                         ["kid", "moved", "plain", "right"])
        su.log("dead owner: reaped by the daemon at start within %.0f ms" % (took * 1000))

    def test_daemon_foreign_write(self):
        """A pod with a reused pid written by another program while the
        daemon runs is reaped within a second; without pid_start it stays."""
        self.write_table([])
        d = self.daemon()
        pid = self.owner.pid
        with su.ForeignFile(self.table) as f:
            f.table["allocations"] = [
                entry("reused", pid, start={"pid": pid, "ticks": self.ticks + 1}),
                entry("plain", pid)]
            f.save()
        took = self.wait_gone("reused", 2.0)
        self.assertIsNotNone(took, "the daemon keeps a pod whose pid was reused")
        time.sleep(1.2)
        names = [a["pod_name"] for a in su.allocations(su.read_table(self.table))]
        self.assertEqual(names, ["plain"])
        self.assertEqual([n for n in os.listdir(d.mnt) if not n.startswith(".")], ["plain"])
        su.log("dead owner: a foreign entry reaped by the daemon within %.0f ms" % (took * 1000))

    def test_owner_death_after_adoption(self):
        """The pid the daemon records is the adopter's, start time included:
        the pod goes when that process dies."""
        self.write_table([])
        d = self.daemon()
        os.mkdir(os.path.join(d.mnt, "a"))
        p = subprocess.Popen(["sleep", "600"])
        with open(os.path.join(d.mnt, "a", "pid"), "w") as f:
            f.write(str(p.pid))
        a = su.read_table(self.table)["allocations"][0]
        self.assertEqual(a["pid"], p.pid)
        self.assertEqual(a.get("pid_start"), {"pid": p.pid, "ticks": su.proc_start(p.pid)})
        p.kill()
        p.wait()
        self.assertIsNotNone(self.wait_gone("a", 1.5), "a dead owner's pod stays")


if __name__ == "__main__":
    unittest.main(verbosity=2)
