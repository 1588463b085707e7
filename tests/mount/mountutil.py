# SPDX-License-Identifier: MIT
"""Shared helpers of the mount(8) and install tests.

They mount real scopefs file systems through mount.scopefs, as root.  A
machine where /dev/fuse cannot be opened skips them (exit 77); anywhere
else every case runs, and running them as another user is a failure.
Every test unmounts what it mounted, whatever happens.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HELPER = os.environ.get("SCOPEFS_MOUNT_HELPER")
DAEMON = os.environ.get("SCOPEFS")
VERSION = os.environ.get("SCOPEFS_VERSION", "")
SKIP = 77


def require_fuse():
    """Exit 77 when /dev/fuse is unusable; fail when it works but the test
    cannot run as it must (not root, no helper)."""
    try:
        fd = os.open("/dev/fuse", os.O_RDWR)
        os.close(fd)
    except OSError as e:
        if os.geteuid() == 0:
            print("/dev/fuse is unusable (%s): skipping" % e)
            sys.exit(SKIP)
        # /dev/fuse is root-only here: we cannot tell whether it works.
    if os.geteuid() != 0:
        print("these tests mount through mount(8) and /sbin: run them as root")
        sys.exit(1)
    for name, path in (("SCOPEFS_MOUNT_HELPER", HELPER), ("SCOPEFS", DAEMON)):
        if not path or not os.access(path, os.X_OK):
            print("%s does not name an executable: %r" % (name, path))
            sys.exit(1)


def unescape(field):
    """Decodes the octal escapes of a /proc/self/mountinfo field."""
    out, i = bytearray(), 0
    raw = field.encode()
    while i < len(raw):
        if raw[i:i + 1] == b"\\" and len(raw) >= i + 4 and raw[i + 1:i + 4].isdigit():
            out.append(int(raw[i + 1:i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return out.decode(errors="surrogateescape")


def mounts_at(path):
    """[(fstype, source, options)] of every mount whose mount point is PATH."""
    path = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if unescape(fields[4]) != path:
                continue
            sep = fields.index("-")
            found.append((fields[sep + 1], unescape(fields[sep + 2]), fields[5] + "," + fields[sep + 3]))
    return found


def unmount_all(path):
    """Unmounts everything on PATH; lazily if a plain unmount fails."""
    for _ in range(10):
        if not mounts_at(path):
            return
        r = subprocess.run(["umount", path], capture_output=True)
        if r.returncode:
            subprocess.run(["umount", "-l", path], capture_output=True)
    if mounts_at(path):
        raise AssertionError("cannot unmount %s" % path)


def wait_unmounted(path, timeout=5):
    deadline = time.monotonic() + timeout
    while mounts_at(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def comm_of(pid):
    try:
        with open("/proc/%s/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return None


def daemons_on(path):
    """Process ids of scopefs daemons whose command line ends in PATH."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")[:-1]
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"scopefs" and argv[-1] == os.fsencode(path):
            if comm_of(pid) != "scopefs-guard":  # the daemon's crash guard
                pids.append(int(pid))
    return pids


def write_table(path, pods):
    """Writes a table as the original does; PODS: {name: rules}, owned by
    this (living) process."""
    allocs = []
    for name, rules in pods.items():
        allocs.append({
            "pod_name": name,
            "pid": os.getpid(),
            "socket": "",
            "scope_allow": [{"target": t, "permission": p, "recursive": r} for p, r, t in rules],
            "delegated_from": None,
            "session_id": None,
        })
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with open(path, "w") as f:
        json.dump({"allocations": allocs}, f, indent=2)
    os.chmod(path, 0o600)


def safe_rmtree(path):
    """Removes PATH unless something is still mounted below it: an rmdir
    inside a live scopefs would release pods."""
    real = os.path.realpath(path) + "/"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if (unescape(line.split()[4]) + "/").startswith(real):
                return
    shutil.rmtree(path, ignore_errors=True)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def pods(mnt):
    return sorted(n for n in os.listdir(mnt) if not n.startswith("."))


class SbinLinks:
    """/sbin/mount.scopefs and /sbin/mount.fuse.scopefs pointing at the
    helper under test, for the time of a test run.  What was there before
    is moved aside and put back."""

    NAMES = ("mount.scopefs", "mount.fuse.scopefs")
    ASIDE = ".scopefs-test-aside"

    def __init__(self, helper):
        self.helper = helper
        self.moved = []
        self.made = []

    def __enter__(self):
        try:
            for name in self.NAMES:
                path = os.path.join("/sbin", name)
                if os.path.lexists(path):
                    if os.path.lexists(path + self.ASIDE):
                        raise RuntimeError("%s exists: a previous test run did not finish; "
                                           "put it back as %s" % (path + self.ASIDE, path))
                    os.rename(path, path + self.ASIDE)
                    self.moved.append(path)
                os.symlink(self.helper, path)
                self.made.append(path)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for path in self.made:
            try:
                if os.path.islink(path) and os.readlink(path) == self.helper:
                    os.unlink(path)
            except OSError:
                pass
        for path in self.moved:
            os.rename(path + self.ASIDE, path)
        self.made, self.moved = [], []


class MountCase(unittest.TestCase):
    """A fresh temporary directory with a mount point and a table path; every
    mount on the mount point is gone after the test."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="scopefs-mount-test-")
        os.chmod(self.tmp, 0o755)
        self.mnt = os.path.join(self.tmp, "mnt")
        os.mkdir(self.mnt)
        self.table = os.path.join(self.tmp, "run", "scope.lock")
        self.addCleanup(safe_rmtree, self.tmp)
        self.addCleanup(self.cleanup_mounts)

    def cleanup_mounts(self):
        unmount_all(self.mnt)
        # The daemon exits once unmounted; do not leave one behind.
        deadline = time.monotonic() + 5
        while daemons_on(self.mnt) and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid in daemons_on(self.mnt):
            os.kill(pid, 9)
            raise AssertionError("scopefs %d did not exit after the unmount" % pid)

    def run_cmd(self, argv, env=None, cwd=None):
        return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd,
                              stdin=subprocess.DEVNULL, timeout=30)

    def assertOk(self, r):
        self.assertEqual(r.returncode, 0, "%s failed (%d):\n%s%s" %
                         (r.args, r.returncode, r.stdout, r.stderr))

    def assertMounted(self, table=None):
        found = mounts_at(self.mnt)
        self.assertEqual(len(found), 1, "expected one mount on %s: %s" % (self.mnt, found))
        fstype, source, opts = found[0]
        self.assertEqual(fstype, "fuse.scopefs")
        if table:
            self.assertEqual(source, table)
        return opts.split(",")

    def assertNotMounted(self):
        self.assertEqual(mounts_at(self.mnt), [])


def main():
    require_fuse()
    unittest.main(verbosity=2)
