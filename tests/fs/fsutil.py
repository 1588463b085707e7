# SPDX-License-Identifier: MIT
"""Shared helpers of the scopefs integration tests.

Each test mounts a real scopefs (-f) on a fresh temporary mountpoint over a
temporary table, waits until it is mounted, fails if the daemon dies or
prints a line nobody expected, and always unmounts.  There are no skips: a
machine where /dev/fuse does not work fails these tests loudly.
"""

import errno
import fcntl
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest

SCOPEFS = os.environ.get("SCOPEFS")
VERSION = os.environ.get("SCOPEFS_VERSION", "")
# Mount options added to every daemon a test starts (comma-separated): the
# suite runs once as is and once with fast_read.
TEST_OPTS = tuple(o for o in os.environ.get("SCOPEFS_TEST_OPTS", "").split(",") if o)
FAST_READ = "fast_read" in TEST_OPTS
# What the root shows besides the pods: fast_read hides .events.
SPECIAL = [".by-session"] if FAST_READ else [".by-session", ".events"]


def require_fuse():
    """Fail (never skip) when the daemon or /dev/fuse is unusable."""
    if not SCOPEFS or not os.access(SCOPEFS, os.X_OK):
        raise RuntimeError("SCOPEFS does not name the scopefs executable: %r" % SCOPEFS)
    try:
        fd = os.open("/dev/fuse", os.O_RDWR)
    except OSError as e:
        raise RuntimeError("/dev/fuse is unusable, cannot test scopefs: %s" % e)
    os.close(fd)
    if not shutil.which("fusermount3"):
        raise RuntimeError("fusermount3 is missing, cannot test scopefs")


def ensure_user(name):
    """The passwd entry of system user NAME, made first if missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        name], check=True)
        return pwd.getpwnam(name)


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mnt = fields[4].encode().decode("unicode_escape")
            if mnt == path:
                sep = fields.index("-")
                return fields[sep + 1]
    return None


class Daemon:
    """A scopefs run in the foreground.

    Every line it prints must match a pattern given to expect(); stop()
    fails otherwise.
    """

    def __init__(self, table=None, opts=(), tmp=None, env=None, user=None):
        self.tmp = tmp or tempfile.mkdtemp(prefix="scopefs-test-")
        os.chmod(self.tmp, 0o755)
        self.mnt = os.path.join(self.tmp, "mnt")
        os.makedirs(self.mnt, exist_ok=True)
        self.table = table or os.path.join(self.tmp, "run", "scope.lock")
        self.lines = []
        self.expected = []
        self.cond = threading.Condition()
        argv = [SCOPEFS, "-f", "-o", "table=" + self.table]
        for o in tuple(opts) + TEST_OPTS:
            argv += ["-o", o]
        argv.append(self.mnt)
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 10
        while not is_mounted(self.mnt):
            if self.proc.poll() is not None:
                self.reader.join(2)
                raise AssertionError("scopefs exited (%s) before mounting: %s" %
                                     (self.proc.returncode, "\n".join(self.lines)))
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("scopefs did not mount within 10 s")
            time.sleep(0.01)

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    def expect(self, pattern):
        """Allow (and later require, with wait_log) lines matching PATTERN."""
        self.expected.append(re.compile(pattern))

    def wait_log(self, pattern, timeout=5):
        """Wait for a line matching PATTERN; allows such lines too."""
        rx = re.compile(pattern)
        self.expected.append(rx)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if rx.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no log line matches %r; log:\n%s" %
                                         (pattern, "\n".join(self.lines)))
                self.cond.wait(left)

    def mark(self):
        with self.cond:
            return len(self.lines)

    def wait_new(self, start, pattern, timeout=5):
        """Wait for a line after index START matching PATTERN; allows that
        very line."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines[start:]:
                    if rx.search(line):
                        self.expected.append(re.compile("^" + re.escape(line) + "$"))
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no new log line matches %r; log:\n%s" %
                                         (pattern, "\n".join(self.lines[start:])))
                self.cond.wait(left)

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        subprocess.run(["fusermount3", "-u", "-z", self.mnt], stderr=subprocess.DEVNULL)

    def stop(self, check=True):
        """Unmount, wait for a clean exit, check the output."""
        died = self.proc.poll() is not None
        if not died:
            r = subprocess.run(["fusermount3", "-u", self.mnt], capture_output=True)
            if r.returncode:
                time.sleep(0.2)
                subprocess.run(["fusermount3", "-u", "-z", self.mnt], capture_output=True)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("scopefs did not exit after unmount")
        self.reader.join(5)
        self.proc.stdout.close()
        if not check:
            return
        if died:
            raise AssertionError("scopefs died during the test (%s): %s" %
                                 (self.proc.returncode, "\n".join(self.lines)))
        if self.proc.returncode != 0:
            raise AssertionError("scopefs exited %s: %s" %
                                 (self.proc.returncode, "\n".join(self.lines)))
        bad = [l for l in self.lines if not any(rx.search(l) for rx in self.expected)]
        if bad:
            raise AssertionError("unexpected scopefs output:\n" + "\n".join(bad))

    # ---- the table file ----

    def table_bytes(self):
        """The file's content, read under the flock as the protocol wants
        (a save in progress rewrites the file in place)."""
        with open(self.table, "rb") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH)
            return f.read()

    def table_json(self):
        data = self.table_bytes()
        if not data.strip():
            return {"allocations": []}
        return json.loads(data)

    def pod(self, name):
        for a in self.table_json().get("allocations", []):
            if a["pod_name"] == name:
                return a
        return None

    def names(self):
        return [a["pod_name"] for a in self.table_json().get("allocations", [])]


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data, flags=os.O_WRONLY | os.O_TRUNC, mode=None):
    """One open, one write() carrying DATA, one close."""
    if isinstance(data, str):
        data = data.encode()
    fd = os.open(path, flags)
    try:
        n = os.write(fd, data)
        assert n == len(data), "short write %d of %d" % (n, len(data))
    finally:
        os.close(fd)


def append(path, data):
    write(path, data, os.O_WRONLY | os.O_APPEND)


def wait_for(pred, timeout, step=0.002):
    """Poll PRED until true; returns the seconds it took (or raises)."""
    start = time.monotonic()
    while True:
        if pred():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError("condition not met within %.3f s" % timeout)
        time.sleep(step)


def free_pid():
    """A pid no process has (checked at the time of the call)."""
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    for pid in range(pid_max - 1, 300, -1):
        if not os.path.exists("/proc/%d" % pid):
            return pid
    raise AssertionError("no free pid")


class MountTest(unittest.TestCase):
    """A fresh daemon per test; self.d is the Daemon."""

    daemon_opts = ()

    @classmethod
    def setUpClass(cls):
        require_fuse()

    def setUp(self):
        self.d = Daemon(opts=self.daemon_opts)
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        d = self.d
        try:
            d.stop()
        finally:
            shutil.rmtree(d.tmp, ignore_errors=True)

    def assertErrno(self, code, fn, *args, **kwargs):
        with self.assertRaises(OSError) as cm:
            fn(*args, **kwargs)
        self.assertEqual(cm.exception.errno, code,
                         "expected %s, got %s" % (errno.errorcode[code], cm.exception))
        return cm.exception

    def assertRefused(self, code, fn, *args, log=None, **kwargs):
        """The operation fails with CODE, the table file stays byte-identical,
        and (LOG given) the daemon logs one line matching LOG; returns it."""
        before = self.d.table_bytes()
        start = self.d.mark()
        self.assertErrno(code, fn, *args, **kwargs)
        self.assertEqual(before, self.d.table_bytes(), "a refused operation changed the table")
        if log is not None:
            return self.d.wait_new(start, r"^(?=.*refused \(pid \d+\): )(?=.*%s)" % log)
        return None


def main():
    unittest.main(verbosity=2, buffer=False)
