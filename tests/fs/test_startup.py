#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Start-up: refusals reach the terminal with a non-zero exit and leave the
table untouched; a good table is never rewritten by starting; names, modes,
defaults, --help and --version."""

import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import time
import unittest

from fsutil import SCOPEFS, VERSION, Daemon, is_mounted, require_fuse, wait_for

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "original")


class Startup(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_fuse()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="scopefs-test-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.mnt = os.path.join(self.tmp, "mnt")
        os.mkdir(self.mnt)
        self.addCleanup(self.unmount)

    def unmount(self):
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", "-z", self.mnt])

    def refused(self, table, *extra):
        """Runs the daemon, which must refuse to start; returns its stderr."""
        r = subprocess.run([SCOPEFS, "-f", "-o", "table=" + table, *extra, self.mnt],
                           capture_output=True, timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertFalse(is_mounted(self.mnt))
        self.assertEqual(r.stdout, b"")
        err = r.stderr.decode()
        self.assertEqual(len(err.splitlines()), 1, err)
        return err

    def test_corrupt_table(self):
        table = os.path.join(self.tmp, "scope.lock")
        for text in (b"{ not json", b'{"allocations": [{"pod_name": 1}]}', b"[]"):
            with open(table, "wb") as f:
                f.write(text)
            err = self.refused(table)
            self.assertIn(table, err)
            with open(table, "rb") as f:
                self.assertEqual(f.read(), text)

    def test_symlinked_table(self):
        real = os.path.join(self.tmp, "real.lock")
        shutil.copy(os.path.join(FIXTURES, "minimal.json"), real)
        os.chmod(real, 0o600)
        link = os.path.join(self.tmp, "scope.lock")
        os.symlink(real, link)
        with open(real, "rb") as f:
            before = f.read()
        err = self.refused(link)
        self.assertIn("symbolic link", err)
        self.assertIn(link, err)
        with open(real, "rb") as f:
            self.assertEqual(f.read(), before)

    def test_foreign_table(self):
        table = os.path.join(self.tmp, "scope.lock")
        shutil.copy(os.path.join(FIXTURES, "minimal.json"), table)
        os.chown(table, pwd.getpwnam("nobody").pw_uid, -1)
        err = self.refused(table)
        self.assertIn(table, err)

    def test_bad_mountpoint(self):
        table = os.path.join(self.tmp, "scope.lock")
        r = subprocess.run([SCOPEFS, "-f", "-o", "table=" + table,
                            os.path.join(self.tmp, "missing")], capture_output=True, timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertNotEqual(r.stderr, b"")

    def test_missing_table_is_created(self):
        table = os.path.join(self.tmp, "deep", "run", "scope.lock")
        d = Daemon(table=table, tmp=self.tmp)
        try:
            self.assertEqual(stat.S_IMODE(os.stat(table).st_mode), 0o600)
            self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(table)).st_mode), 0o700)
            os.mkdir(d.path("p"))
            self.assertEqual(d.names(), ["p"])
        finally:
            d.stop()

    def test_good_table_is_not_rewritten(self):
        table = os.path.join(self.tmp, "scope.lock")
        with open(os.path.join(FIXTURES, "tree.json"), "rb") as f:
            text = f.read()
        # the fixture's pids are dead: make them ours, formatting untouched
        text = re.sub(rb'"pid": \d+', b'"pid": %d' % os.getpid(), text)
        with open(table, "wb") as f:
            f.write(text)
        os.chmod(table, 0o600)
        d = Daemon(table=table, tmp=self.tmp)
        try:
            self.assertEqual(sorted(os.listdir(d.mnt)),
                             [".by-session", ".events", "orchestrator", "reader", "solo pod ü",
                              "worker-core", "worker-core-tests"])
            self.assertEqual(sorted(os.listdir(d.path("orchestrator", "worker-core"))),
                             ["allow", "delegated_from", "pid", "session", "socket",
                              "worker-core-tests"])
            with open(d.path("solo pod ü", "allow"), "rb") as f:
                self.assertEqual(f.read(), b'write shallow /srv/data\n'
                                           b'read recursive /srv/data/a "quoted" dir\n')
            time.sleep(0.3)
            self.assertEqual(d.table_bytes(), text)
        finally:
            d.stop()
        with open(table, "rb") as f:
            self.assertEqual(f.read(), text)

    def test_names_in_mountinfo(self):
        table = os.path.join(self.tmp, "scope.lock")
        d = Daemon(table=table, tmp=self.tmp)
        try:
            self.assertEqual(is_mounted(d.mnt), "fuse.scopefs")
            with open("/proc/self/mountinfo") as f:
                line = [l for l in f if " %s " % d.mnt in l][0].split()
            self.assertEqual(line[line.index("-") + 2], table)
        finally:
            d.stop()

    def test_daemonized(self):
        table = os.path.join(self.tmp, "scope.lock")
        r = subprocess.run([SCOPEFS, "-o", "table=" + table, self.mnt], capture_output=True,
                           timeout=10)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, b"", b""))
        self.assertTrue(is_mounted(self.mnt))
        os.mkdir(os.path.join(self.mnt, "p"))
        subprocess.run(["fusermount3", "-u", self.mnt], check=True)
        self.assertFalse(is_mounted(self.mnt))

    def test_default_mountpoint_for_root(self):
        # /run/scopes, in a private mount namespace so the machine sees nothing
        run = os.path.join(self.tmp, "rt")
        made = not os.path.exists("/run/scopes")
        if made:
            self.addCleanup(lambda: os.path.isdir("/run/scopes") and os.rmdir("/run/scopes"))
        script = r"""
"$SCOPEFS" -f > "$OUT" 2>&1 &
i=0
until grep -q " /run/scopes .* fuse.scopefs " /proc/self/mountinfo; do
    i=$((i + 1)); [ $i -gt 500 ] && exit 3; sleep 0.01
done
mkdir /run/scopes/p && cat /run/scopes/p/pid > /dev/null || exit 4
fusermount3 -u /run/scopes || exit 5
wait $! || exit 6
"""
        out = os.path.join(self.tmp, "out")
        env = dict(os.environ, SCOPEFS=SCOPEFS, OUT=out, INSOMNIA_RUNTIME_DIR=run)
        r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                           env=env, capture_output=True, timeout=20)
        with open(out) as f:
            log = f.read()
        self.assertEqual(r.returncode, 0, log)
        self.assertEqual(log, "")
        with open(os.path.join(run, "scope.lock")) as f:
            self.assertIn('"pod_name": "p"', f.read())

    def test_default_mountpoint_and_table_for_a_user(self):
        user = pwd.getpwnam("nobody")
        run = os.path.join(self.tmp, "xdg")
        os.mkdir(run, 0o700)
        os.chown(run, user.pw_uid, user.pw_gid)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "XDG_RUNTIME_DIR": run,
               "HOME": "/nonexistent"}
        p = subprocess.Popen(["setpriv", "--reuid=%d" % user.pw_uid, "--regid=%d" % user.pw_gid,
                              "--clear-groups", "--", SCOPEFS, "-f"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        mnt = os.path.join(run, "scopes")
        table = os.path.join(run, "insomnia", "scope.lock")
        try:
            wait_for(lambda: is_mounted(mnt) or p.poll() is not None, 10, 0.01)
            # the table and the mountpoint are made before mounting
            self.assertEqual(os.stat(table).st_uid, user.pw_uid)
            self.assertTrue(os.path.isdir(mnt))
            if not os.access("/dev/fuse", os.R_OK | os.W_OK, effective_ids=False) or \
                    stat.S_IMODE(os.stat("/dev/fuse").st_mode) & 0o006 != 0o006:
                # this machine lets only root use /dev/fuse: the refusal
                # must say so and exit non-zero
                out, _ = p.communicate(timeout=10)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn(b"/dev/fuse", out)
                return
            self.assertTrue(is_mounted(mnt))
        finally:
            if is_mounted(mnt):
                subprocess.run(["fusermount3", "-u", mnt])
            out, _ = p.communicate(timeout=10)
        self.assertEqual((p.returncode, out), (0, b""))

    def test_help_and_version(self):
        r = subprocess.run([SCOPEFS, "--version"], capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 0)
        self.assertTrue(r.stdout.decode().startswith("scopefs %s\n" % VERSION), r.stdout)
        r = subprocess.run([SCOPEFS, "--help"], capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 0)
        self.assertIn("table=PATH", r.stdout.decode())


if __name__ == "__main__":
    unittest.main(verbosity=2)
