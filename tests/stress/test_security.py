#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Users under -o allow_other, and unsafe table files at start.

What tests/fs/test_users.py does not cover already: a second user can
rewrite neither the session nor the socket of the first user's pod, cannot
release the first user's delegate at either of its paths, cannot adopt
another user's process (nor root's) into a pod of its own, and manages
everything of its own (rules, append, session, socket, pid, delegate,
release); root manages the other users' pods.  Every refusal leaves the
table byte-identical.

At start: a dangling symlink as the table is refused without creating its
target, a FIFO or a directory is refused, a table owned by root is refused
by a daemon run as another user; and a journal replaced by a symlink never
lets a save write through it."""

import errno
import os
import shutil
import stat
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stressutil as su  # noqa: E402

USERS = ("scopefs-sa", "scopefs-sb")

OP = r"""
import os, sys
op, args = sys.argv[1], sys.argv[2:]
try:
    if op == "mkdir":
        os.mkdir(args[0])
    elif op == "rmdir":
        os.rmdir(args[0])
    elif op == "write":
        fd = os.open(args[0], os.O_WRONLY | os.O_TRUNC)
        os.write(fd, args[1].encode())
        os.close(fd)
    elif op == "append":
        fd = os.open(args[0], os.O_WRONLY | os.O_APPEND)
        os.write(fd, args[1].encode())
        os.close(fd)
    elif op == "read":
        open(args[0], "rb").read()
    print(0)
except OSError as e:
    print(e.errno)
"""


def as_user(user):
    return ["setpriv", "--reuid=%d" % user.pw_uid, "--regid=%d" % user.pw_gid,
            "--init-groups", "--"]


class Users(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        su.require_fuse()
        cls.a, cls.b = (su.ensure_user(n) for n in USERS)

    def setUp(self):
        self.tmp = su.new_tmp("scopefs-security-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.mnt = os.path.join(self.tmp, "mnt")
        os.mkdir(self.mnt)
        self.table = os.path.join(self.tmp, "run", "scope.lock")
        self.d = su.Daemon(self.mnt, self.table, opts=("allow_other",),
                           log=os.path.join(self.tmp, "log"))
        self.addCleanup(self.stop)

    def stop(self):
        if self.d.alive():
            self.assertEqual(self.d.stop(), 0)
        su.lazy_unmount(self.mnt)

    def P(self, *parts):
        return os.path.join(self.mnt, *parts)

    def op(self, user, *args):
        r = subprocess.run(as_user(user) + [sys.executable, "-c", OP] + list(args),
                           capture_output=True, check=True, text=True)
        return int(r.stdout)

    def sleeper(self, user=None):
        p = subprocess.Popen((as_user(user) if user else []) + ["sleep", "600"])
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        return p

    def owned(self, user, name):
        """USER makes pod NAME (or PARENT/NAME) and hands it to a process
        of its own; returns that process."""
        p = self.sleeper(user)
        self.assertEqual(self.op(user, "mkdir", self.P(*name.split("/"))), 0)
        self.assertEqual(self.op(user, "write", self.P(name.split("/")[-1], "pid"), str(p.pid)), 0)
        return p

    def refused(self, code, user, *args):
        before = su.read_table_bytes(self.table)
        got = self.op(user, *args)
        self.assertEqual(got, code, "%s by %s: %s, expected %s" %
                         (args[:2], user.pw_name, errno.errorcode.get(got, got),
                          errno.errorcode[code]))
        self.assertEqual(su.read_table_bytes(self.table), before,
                         "a refused %s changed the table" % args[0])

    def pod(self, name):
        return su.find(su.read_table(self.table), name)

    def test_other_user_cannot_touch(self):
        a, b = self.a, self.b
        pa = self.owned(a, "podA")
        self.assertEqual(self.op(a, "write", self.P("podA", "allow"), "write recursive /a\n"), 0)
        self.assertEqual(self.op(a, "mkdir", self.P("podA", "kidA")), 0)
        self.assertEqual(os.stat(self.P("kidA")).st_uid, a.pw_uid)
        pb = self.owned(b, "podB")
        # session and socket of A's pod, at both paths of A's delegate
        self.refused(errno.EACCES, b, "write", self.P("podA", "session"), su.fresh_uuid())
        self.refused(errno.EACCES, b, "write", self.P("podA", "socket"), "/run/b.sock")
        self.refused(errno.EACCES, b, "append", self.P("podA", "allow"), "write recursive /b\n")
        self.refused(errno.EACCES, b, "write", self.P("kidA", "allow"), "read recursive /a\n")
        self.refused(errno.EACCES, b, "write", self.P("podA", "kidA", "session"),
                     su.fresh_uuid())
        self.refused(errno.EACCES, b, "write", self.P("kidA", "pid"), str(pb.pid))
        # releasing A's delegate: the sticky root, and A's directory
        self.refused(errno.EPERM, b, "rmdir", self.P("kidA"))
        self.refused(errno.EACCES, b, "rmdir", self.P("podA", "kidA"))
        self.refused(errno.EACCES, b, "mkdir", self.P("kidA", "x"))
        # adopting another user's process, or root's, into B's own pod
        self.refused(errno.EPERM, b, "write", self.P("podB", "pid"), str(pa.pid))
        self.refused(errno.EPERM, b, "write", self.P("podB", "pid"), "1")
        self.refused(errno.EPERM, b, "write", self.P("podB", "pid"), str(os.getpid()))
        # A's view is intact
        self.assertEqual(self.pod("podA")["pid"], pa.pid)
        self.assertEqual(self.pod("kidA")["delegated_from"], "podA")

    def test_user_manages_own(self):
        b = self.b
        pb = self.owned(b, "podB")
        sid = su.fresh_uuid()
        steps = [("write", self.P("podB", "allow"), "write recursive /b\n"),
                 ("append", self.P("podB", "allow"), "read shallow /etc\n"),
                 ("write", self.P("podB", "session"), sid + "\n"),
                 ("write", self.P("podB", "socket"), "/run/b.sock\n"),
                 ("write", self.P("podB", "pid"), str(pb.pid)),
                 ("mkdir", self.P("podB", "kidB")),
                 ("write", self.P("kidB", "allow"), "write recursive /b/k\n"),
                 ("write", self.P("podB", "kidB", "socket"), "/run/k.sock\n"),
                 ("mkdir", self.P("kidB", "grandB")),
                 ("rmdir", self.P("kidB", "grandB")),
                 ("read", self.P("podB", "allow"))]
        for s in steps:
            self.assertEqual(self.op(b, *s), 0, s)
        p = self.pod("podB")
        self.assertEqual((p["pid"], p["session_id"], p["socket"]), (pb.pid, sid, "/run/b.sock"))
        self.assertEqual([r["target"] for r in p["scope_allow"]], ["/b", "/etc"])
        self.assertEqual(self.pod("kidB")["socket"], "/run/k.sock")
        self.assertIsNone(self.pod("grandB"))
        for f in ("", "allow", "pid", "session", "socket"):
            self.assertEqual(os.stat(self.P("kidB", f)).st_uid, b.pw_uid, f)
        # B's own delegate goes through B's directory, then B's pod at the root
        self.assertEqual(self.op(b, "rmdir", self.P("podB", "kidB")), 0)
        self.assertEqual(self.op(b, "rmdir", self.P("podB")), 0)
        self.assertEqual(su.allocations(su.read_table(self.table)), [])

    def test_root_manages_all(self):
        a = self.a
        pa = self.owned(a, "podA")
        self.assertEqual(self.op(a, "mkdir", self.P("podA", "kidA")), 0)
        with open(self.P("podA", "allow"), "w") as f:
            f.write("write recursive /r\n")
        with open(self.P("podA", "session"), "w") as f:
            f.write("0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f6\n")
        with open(self.P("podA", "socket"), "w") as f:
            f.write("/run/r.sock\n")
        os.mkdir(self.P("podA", "byroot"))
        # root adopts A's process into A's delegate: A owns it at once
        with open(self.P("kidA", "pid"), "w") as f:
            f.write(str(pa.pid))
        self.assertEqual(os.stat(self.P("kidA")).st_uid, a.pw_uid)
        os.rmdir(self.P("podA", "kidA"))
        os.rmdir(self.P("byroot"))
        p = self.pod("podA")
        self.assertEqual((p["socket"], p["session_id"], p["scope_allow"][0]["target"]),
                         ("/run/r.sock", "0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f6", "/r"))
        os.rmdir(self.P("podA"))
        self.assertEqual(su.allocations(su.read_table(self.table)), [])


class UnsafeTable(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        su.require_fuse()
        cls.a = su.ensure_user(USERS[0])

    def setUp(self):
        self.tmp = su.new_tmp("scopefs-unsafe-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.mnt = os.path.join(self.tmp, "mnt")
        os.mkdir(self.mnt)
        self.addCleanup(su.lazy_unmount, self.mnt)

    def refused(self, table, prefix=()):
        r = subprocess.run(list(prefix) + [su.SCOPEFS, "-f", "-o", "table=" + table, self.mnt],
                           capture_output=True, timeout=20, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIsNone(su.mount_type(self.mnt))
        self.assertIn(table, r.stderr)
        return r.stderr

    def test_dangling_symlink(self):
        target = os.path.join(self.tmp, "elsewhere", "victim.lock")
        os.mkdir(os.path.dirname(target))
        link = os.path.join(self.tmp, "scope.lock")
        os.symlink(target, link)
        self.assertIn("symbolic link", self.refused(link))
        self.assertFalse(os.path.lexists(target), "the daemon created the symlink's target")

    def test_fifo_and_directory(self):
        fifo = os.path.join(self.tmp, "fifo.lock")
        os.mkfifo(fifo, 0o600)
        self.refused(fifo)
        d = os.path.join(self.tmp, "dir.lock")
        os.mkdir(d, 0o700)
        self.refused(d)

    def test_root_table_refused_by_another_user(self):
        run = os.path.join(self.tmp, "run")
        os.mkdir(run)
        table = os.path.join(run, "scope.lock")
        with open(table, "wb") as f:
            f.write(b"")
        os.chmod(table, 0o666)  # even one the user could write
        os.chmod(run, 0o777)
        os.chown(self.mnt, self.a.pw_uid, self.a.pw_gid)
        err = self.refused(table, prefix=as_user(self.a))
        self.assertIn("owned by uid 0", err)

    def test_symlinked_journal(self):
        """Someone replaced the journal with a symlink: saves refuse to
        write through it, the daemon lives on, the victim is untouched."""
        table = os.path.join(self.tmp, "run", "scope.lock")
        d = su.Daemon(self.mnt, table, log=os.path.join(self.tmp, "log"))
        try:
            os.mkdir(os.path.join(self.mnt, "first"))
            victim = os.path.join(self.tmp, "victim")
            with open(victim, "wb") as f:
                f.write(b"precious")
            journal = table + ".journal"
            if os.path.lexists(journal):
                os.unlink(journal)
            os.symlink(victim, journal)
            before = su.read_table_bytes(table)
            # The daemon may keep its journal open from the first save; a
            # new core user opens it by name.
            try:
                os.mkdir(os.path.join(self.mnt, "second"))
            except OSError:
                pass
            r = subprocess.run([su.DRIVER, table], input="reg third %d - -\n" % os.getpid(),
                               capture_output=True, text=True, timeout=30)
            self.assertTrue(r.stdout.startswith("err"), "a save wrote through a symlinked "
                            "journal: %r" % r.stdout)
            with open(victim, "rb") as f:
                self.assertEqual(f.read(), b"precious")
            self.assertTrue(d.alive())
            names = [a["pod_name"] for a in su.allocations(su.read_table(table))]
            self.assertNotIn("third", names)
            self.assertIn("first", names)
            su.log("symlinked journal: the daemon %s; a new core user: %s" %
                   ("saved through its open journal" if su.read_table_bytes(table) != before
                    else "refused", r.stdout.strip()))
        finally:
            if d.alive():
                d.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
