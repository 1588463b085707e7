#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Two users under -o allow_other: ownership from the pod's process, Unix
permissions enforced by the kernel (default_permissions), the sticky root,
and adopting another user's process refused by the daemon."""

import errno
import os
import stat
import subprocess
import sys

from fsutil import MountTest, ensure_user, main, read, write

USERS = ("scopefs-ta", "scopefs-tb")

# Runs one operation as the calling user; prints 0 or the errno.
OP = r"""
import os, sys
op, args = sys.argv[1], sys.argv[2:]
try:
    if op == "mkdir":
        os.mkdir(args[0])
    elif op == "mkadopt":  # the shell idiom, with a long-lived owner
        os.mkdir(args[0])
        fd = os.open(os.path.join(args[0], "pid"), os.O_WRONLY | os.O_TRUNC)
        os.write(fd, args[1].encode())
        os.close(fd)
    elif op == "rmdir":
        os.rmdir(args[0])
    elif op == "write":
        fd = os.open(args[0], os.O_WRONLY | os.O_TRUNC)
        os.write(fd, args[1].encode())
        os.close(fd)
    print(0)
except OSError as e:
    print(e.errno)
"""


class Users(MountTest):
    daemon_opts = ("allow_other",)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pw = {n: ensure_user(n) for n in USERS}
        cls.a, cls.b = (cls.pw[n] for n in USERS)

    def priv(self, user):
        return ["setpriv", "--reuid=%d" % user.pw_uid, "--regid=%d" % user.pw_gid,
                "--clear-groups", "--"]

    def op(self, user, *args):
        r = subprocess.run(self.priv(user) + [sys.executable, "-c", OP] + list(args),
                           capture_output=True, check=True)
        return int(r.stdout)

    def sleeper(self, user):
        p = subprocess.Popen(self.priv(user) + ["sleep", "120"])
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        return p

    def owner(self, *parts):
        return os.stat(self.d.path(*parts)).st_uid

    def test_two_users(self):
        d, a, b = self.d, self.a, self.b
        pa, pb = self.sleeper(a), self.sleeper(b)
        self.assertEqual(self.op(a, "mkadopt", d.path("podA"), str(pa.pid)), 0)
        self.assertEqual(d.pod("podA")["pid"], pa.pid)
        for f in ("", "allow", "pid", "session", "socket", "delegated_from"):
            st = os.stat(d.path("podA", f))
            self.assertEqual((st.st_uid, st.st_gid), (a.pw_uid, a.pw_gid), f)
        ls = subprocess.run(["ls", "-l", d.mnt], capture_output=True, check=True).stdout.decode()
        self.assertRegex(ls, r"drwxr-xr-x +\d+ +%s +\S+ .* podA\n" % a.pw_name)
        self.assertEqual(self.op(a, "write", d.path("podA", "allow"), "write recursive /a\n"), 0)

        before = d.table_bytes()
        # the sticky root: B cannot release A's pod; A's files are A's
        self.assertEqual(self.op(b, "rmdir", d.path("podA")), errno.EPERM)
        self.assertEqual(self.op(b, "write", d.path("podA", "allow"), "write recursive /b\n"),
                         errno.EACCES)
        self.assertEqual(self.op(b, "write", d.path("podA", "pid"), str(pb.pid)), errno.EACCES)
        self.assertEqual(self.op(b, "mkdir", d.path("podA", "x")), errno.EACCES)
        self.assertEqual(d.table_bytes(), before)

        # anyone registers at the root
        self.assertEqual(self.op(b, "mkadopt", d.path("podB"), str(pb.pid)), 0)
        self.assertEqual(self.owner("podB"), b.pw_uid)

        # adopting another user's process: refused unless root
        before = d.table_bytes()
        start = d.mark()
        self.assertEqual(self.op(a, "write", d.path("podA", "pid"), str(pb.pid)), errno.EPERM)
        d.wait_new(start, r"write `podA/pid` refused \(pid \d+\): process %d belongs to another "
                   r"user" % pb.pid)
        self.assertEqual(d.table_bytes(), before)

        # A delegates; root hands the child to B's process: B owns it at once
        self.assertEqual(self.op(a, "mkdir", d.path("podA", "child")), 0)
        self.assertEqual(self.owner("podA", "child"), a.pw_uid)
        write(d.path("podA", "child", "pid"), str(pb.pid))
        self.assertEqual(self.owner("podA", "child"), b.pw_uid)
        self.assertEqual(self.owner("child", "allow"), b.pw_uid)
        self.assertEqual(self.op(b, "write", d.path("child", "allow"), "read recursive /a/x\n"), 0)
        self.assertEqual(self.op(a, "write", d.path("child", "allow"), "read recursive /a\n"),
                         errno.EACCES)
        # B cannot release the parent's pod, but the parent's owner releases
        # its delegate through its own directory
        self.assertEqual(self.op(b, "rmdir", d.path("podA")), errno.EPERM)
        self.assertEqual(self.op(a, "rmdir", d.path("podA", "child")), 0)
        self.assertNotIn("child", d.names())
        # owners release their own; root releases anything
        self.assertEqual(self.op(b, "rmdir", d.path("podB")), 0)
        os.rmdir(d.path("podA"))
        self.assertEqual(d.names(), [])

    def test_root_mode_and_owner(self):
        st = os.stat(self.d.mnt)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o1777)
        self.assertEqual(st.st_uid, 0)
        # another user can list and read
        r = subprocess.run(self.priv(self.a) + ["ls", "-a", self.d.mnt], capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    main()
