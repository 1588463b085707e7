#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The systemd units: systemd-analyze verify accepts them (built into the
build tree with the build tree's daemon), and their commands, run in the
order systemd runs them, mount, report readiness, and leave no stale mount
behind whether the daemon stops or is killed.

No systemd is needed to run: the lifecycle part plays the service manager
for the few directives the units use (Environment=, %t, $VAR and $$,
ExecStartPre/ExecStart/ExecStartPost/ExecStopPost with a leading "-")."""

import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from mountutil import mounts_at, pods, read, safe_rmtree, unmount_all, write_table

UNITS = {"user": os.environ["SCOPEFS_USER_UNIT"], "system": os.environ["SCOPEFS_SYSTEM_UNIT"]}
DAEMON = os.environ["SCOPEFS"]
MAN_PAGES = os.environ["SCOPEFS_MAN_PAGES"].split(":")


def fuse_usable():
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
        return True
    except OSError:
        return False


def parse_unit(path):
    """{section: [(key, value)]}, continuation lines joined."""
    sections, cur = {}, None
    with open(path) as f:
        text = f.read().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            cur = sections.setdefault(line.strip("[]"), [])
            continue
        key, value = line.split("=", 1)
        cur.append((key.strip(), value.strip()))
    return sections


class Manager:
    """Runs a unit's commands as systemd would, with %t = RUNTIME."""

    def __init__(self, unit, runtime, extra_env):
        self.service = parse_unit(unit)["Service"]
        self.runtime = runtime
        self.env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        for key, value in self.service:
            if key == "Environment":
                for assignment in shlex.split(value):
                    k, v = assignment.split("=", 1)
                    self.env[k] = v
        self.env.update(extra_env)
        self.main = None

    def commands(self, key):
        return [v for k, v in self.service if k == key]

    def argv(self, line):
        ignore = line.startswith("-")
        line = line.lstrip("-")
        line = line.replace("%t", self.runtime)
        words = []
        for word in shlex.split(line):
            m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
            if m:  # $VAR: split on whitespace, nothing when empty
                words += self.env.get(m.group(1), "").split()
                continue
            word = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: self.env.get(m.group(1), ""),
                          word)
            words.append(word.replace("$$", "$"))
        return ignore, words

    def run(self, key):
        for line in self.commands(key):
            ignore, argv = self.argv(line)
            env = dict(self.env)
            if self.main:
                env["MAINPID"] = str(self.main.pid)
            r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
            if r.returncode and not ignore:
                return r
        return None

    def start(self):
        failed = self.run("ExecStartPre")
        if failed:
            return failed
        (line,) = self.commands("ExecStart")
        _, argv = self.argv(line)
        self.main = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        # systemd reaps its main process at once: MAINPID stops existing.
        self.reaper = threading.Thread(target=self.main.wait, daemon=True)
        self.reaper.start()
        return self.run("ExecStartPost")

    def stop(self, sig=signal.SIGTERM):
        if self.main.poll() is None:
            self.main.send_signal(sig)
        self.reaper.join(10)
        self.main.wait(1)
        out = self.main.stdout.read().decode(errors="replace")
        self.main.stdout.close()
        failed = self.run("ExecStopPost")
        return out, failed


class Verify(unittest.TestCase):
    def test_verify(self):
        for kind, unit in UNITS.items():
            with self.subTest(kind=kind), tempfile.TemporaryDirectory() as tmp:
                rt = os.path.join(tmp, "rt")
                os.mkdir(rt, 0o700)
                # Documentation=man:... must name pages that exist.
                man8 = os.path.join(tmp, "man", "man8")
                os.makedirs(man8)
                for page in MAN_PAGES:
                    os.symlink(page, os.path.join(man8, os.path.basename(page)))
                argv = ["systemd-analyze"] + (["--user"] if kind == "user" else []) + \
                    ["verify", unit]
                r = subprocess.run(argv, capture_output=True, text=True,
                                   env=dict(os.environ, XDG_RUNTIME_DIR=rt,
                                            MANPATH=os.path.join(tmp, "man")))
                # verify exits 0 on many problems: any message is one.
                self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))

    def test_units_run_the_daemon_in_the_foreground(self):
        for kind, unit in UNITS.items():
            with self.subTest(kind=kind):
                svc = parse_unit(unit)
                (start,) = [v for k, v in svc["Service"] if k == "ExecStart"]
                argv = shlex.split(start)
                self.assertEqual(argv[0], DAEMON)
                self.assertIn("-f", argv)
                self.assertEqual(argv[-1], "%t/scopes")
                stop = [v for k, v in svc["Service"] if k == "ExecStopPost"]
                self.assertTrue(any("-u" in shlex.split(v) and "%t/scopes" in v for v in stop))
                self.assertIn(("WantedBy", "default.target" if kind == "user"
                               else "multi-user.target"), svc["Install"])


class Lifecycle(unittest.TestCase):
    def setUp(self):
        if not fuse_usable():
            if os.geteuid() == 0:
                self.skipTest("/dev/fuse is unusable")
            self.fail("run as root: /dev/fuse is not open to this user")
        self.tmp = tempfile.mkdtemp(prefix="scopefs-units-test-")
        self.addCleanup(safe_rmtree, self.tmp)
        self.rt = os.path.join(self.tmp, "rt")
        os.mkdir(self.rt, 0o700)
        self.mnt = os.path.join(self.rt, "scopes")
        self.addCleanup(unmount_all, self.mnt)
        # The table, as a drop-in would set it (the default resolution).
        self.env = {"INSOMNIA_RUNTIME_DIR": os.path.join(self.tmp, "insomnia"),
                    "XDG_RUNTIME_DIR": self.rt}
        self.table = os.path.join(self.tmp, "insomnia", "scope.lock")

    def lifecycle(self, kind, sig):
        write_table(self.table, {"unitpod": []})
        m = Manager(UNITS[kind], self.rt, self.env)
        failed = m.start()
        self.assertIsNone(failed, failed and failed.stderr)
        self.assertEqual([x[:2] for x in mounts_at(self.mnt)], [("fuse.scopefs", self.table)])
        self.assertEqual(pods(self.mnt), ["unitpod"])
        if kind == "system":
            self.assertIn("allow_other", mounts_at(self.mnt)[0][2].split(","))
        os.mkdir(os.path.join(self.mnt, "fromunit"))
        out, failed = m.stop(sig)
        self.assertEqual(mounts_at(self.mnt), [], "a stale mount is left")
        self.assertTrue(os.path.isdir(self.mnt))
        self.assertIn(b'"fromunit"', read(self.table))
        return m, out

    def test_stop(self):
        for kind in UNITS:
            with self.subTest(kind=kind):
                self.lifecycle(kind, signal.SIGTERM)

    def test_stop_is_a_clean_exit(self):
        """systemctl stop sends SIGTERM: anything but exit 0 leaves the unit
        "failed" after every stop."""
        for kind in UNITS:
            with self.subTest(kind=kind):
                m, out = self.lifecycle(kind, signal.SIGTERM)
                self.assertEqual(m.main.returncode, 0,
                                 "scopefs exits %d on SIGTERM: %s" % (m.main.returncode, out))

    def test_killed_daemon_leaves_no_stale_mount(self):
        for kind in UNITS:
            with self.subTest(kind=kind):
                m, out = self.lifecycle(kind, signal.SIGKILL)
                self.assertEqual(m.main.returncode, -signal.SIGKILL)

    def test_start_fails_on_a_corrupt_table(self):
        os.makedirs(os.path.dirname(self.table), mode=0o700)
        with open(self.table, "wb") as f:
            f.write(b"{corrupt")
        os.chmod(self.table, 0o600)
        for kind in UNITS:
            with self.subTest(kind=kind):
                m = Manager(UNITS[kind], self.rt, self.env)
                t0 = time.monotonic()
                failed = m.start()
                self.assertIsNotNone(failed, "ExecStartPost accepted a daemon that died")
                self.assertLess(time.monotonic() - t0, 5, "readiness did not see the death")
                out, _ = m.stop()
                self.assertNotEqual(m.main.returncode, 0)
                self.assertIn(self.table, out)
                self.assertEqual(mounts_at(self.mnt), [])
                self.assertEqual(read(self.table), b"{corrupt")


if __name__ == "__main__":
    unittest.main(verbosity=2)
