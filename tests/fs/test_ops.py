#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Every row of the operations table, with its errnos: what the mount shows,
what the table file holds, and that a refused operation leaves the file
byte-identical."""

import errno
import json
import os
import re
import stat
import subprocess
import threading

from fsutil import FAST_READ, SPECIAL, MountTest, append, free_pid, main, read, write

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
FILES = ["allow", "delegated_from", "pid", "session", "socket"]


class Layout(MountTest):
    def test_root(self):
        st = os.stat(self.d.mnt)
        self.assertTrue(stat.S_ISDIR(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o1777)
        self.assertEqual(sorted(os.listdir(self.d.mnt)), SPECIAL)
        if FAST_READ:
            self.assertErrno(errno.ENOENT, os.stat, self.d.path(".events"))
        else:
            self.assertEqual(stat.S_IMODE(os.stat(self.d.path(".events")).st_mode), 0o444)

    def test_mkdir_registers(self):
        os.mkdir(self.d.path("p"))
        self.assertIn("p", os.listdir(self.d.mnt))
        self.assertEqual(sorted(os.listdir(self.d.path("p"))), FILES)
        st = os.stat(self.d.path("p"))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o755)
        self.assertEqual((st.st_uid, st.st_gid), (os.getuid(), os.getgid()))
        modes = {f: stat.S_IMODE(os.stat(self.d.path("p", f)).st_mode) for f in FILES}
        self.assertEqual(modes, {"allow": 0o644, "pid": 0o644, "session": 0o644,
                                 "socket": 0o644, "delegated_from": 0o444})
        self.assertEqual(read(self.d.path("p", "pid")), b"%d\n" % os.getpid())
        session = read(self.d.path("p", "session")).decode()
        self.assertTrue(session.endswith("\n"))
        self.assertRegex(session.strip(), UUID_RE)
        for f in ("allow", "socket", "delegated_from"):
            self.assertEqual(read(self.d.path("p", f)), b"")
        a = self.d.pod("p")
        self.assertEqual(a["pid"], os.getpid())
        self.assertEqual(a["session_id"], session.strip())
        self.assertIsNone(a["delegated_from"])
        self.assertEqual(a["scope_allow"], [])
        self.assertEqual(a["socket"], "")
        link = self.d.path(".by-session", session.strip())
        self.assertEqual(os.listdir(self.d.path(".by-session")), [session.strip()])
        self.assertEqual(os.readlink(link), "../p")
        self.assertEqual(os.path.realpath(link), os.path.realpath(self.d.path("p")))

    def test_sizes_match_reads(self):
        os.mkdir(self.d.path("p"))
        write(self.d.path("p", "allow"), "write recursive /src\nread shallow /doc\n")
        write(self.d.path("p", "socket"), "/run/p.sock\n")
        os.mkdir(self.d.path("p", "c"))
        for pod in ("p", "c", "p/c"):
            for f in FILES:
                path = self.d.path(pod, f)
                size = os.stat(path).st_size
                data = read(path)
                self.assertEqual(size, len(data), path)
                if data:
                    self.assertTrue(data.endswith(b"\n"), path)
                cat = subprocess.run(["cat", path], capture_output=True, check=True).stdout
                head = subprocess.run(["head", "-c", "100000", path], capture_output=True,
                                      check=True).stdout
                self.assertEqual(cat, data)
                self.assertEqual(head, data)
                with open(path, "rb", buffering=0) as f:
                    self.assertEqual(f.read(3) + f.read(), data)

    def test_open_fd_sees_new_content(self):
        os.mkdir(self.d.path("p"))
        fd = os.open(self.d.path("p", "allow"), os.O_RDONLY)
        try:
            self.assertEqual(os.pread(fd, 4096, 0), b"")
            write(self.d.path("p", "allow"), "read recursive /a\n")
            self.assertEqual(os.fstat(fd).st_size, len(b"read recursive /a\n"))
            self.assertEqual(os.pread(fd, 4096, 0), b"read recursive /a\n")
        finally:
            os.close(fd)

    def test_mkdir_from_thread_is_owned_by_process(self):
        errors = []
        tids = []

        def worker():
            tids.append(threading.get_native_id())
            try:
                os.mkdir(self.d.path("t"))
            except OSError as e:
                errors.append(e)

        t = threading.Thread(target=worker)
        t.start()
        t.join()
        self.assertEqual(errors, [])
        self.assertNotEqual(tids[0], os.getpid())
        self.assertEqual(read(self.d.path("t", "pid")), b"%d\n" % os.getpid())
        self.assertEqual(self.d.pod("t")["pid"], os.getpid())

    def test_hidden_names_kept(self):
        os.mkdir(self.d.path("p"))
        self.d.stop()
        data = self.d.table_json()
        for name in (".hidden", "allow", "x" * 256):
            data["allocations"].append({
                "pod_name": name, "pid": os.getpid(), "socket": "", "scope_allow": [],
                "delegated_from": None, "session_id": None})
        with open(self.d.table, "w") as f:
            json.dump(data, f, indent=2)
        from fsutil import Daemon
        self.d = Daemon(table=self.d.table, tmp=self.d.tmp)
        self.assertEqual(sorted(os.listdir(self.d.mnt)), sorted(SPECIAL + ["p"]))
        self.assertFalse(os.path.exists(self.d.path("allow")))
        os.mkdir(self.d.path("q"))
        os.rmdir(self.d.path("p"))
        self.assertEqual(sorted(self.d.names()), sorted([".hidden", "allow", "x" * 256, "q"]))


class Mkdir(MountTest):
    def test_eexist(self):
        os.mkdir(self.d.path("p"))
        self.assertRefused(errno.EEXIST, os.mkdir, self.d.path("p"))
        os.mkdir(self.d.path("p", "c"))
        # c exists at the root too; and a pod cannot be made twice anywhere
        self.assertRefused(errno.EEXIST, os.mkdir, self.d.path("c"))
        os.mkdir(self.d.path("q"))
        self.assertRefused(errno.EEXIST, os.mkdir, self.d.path("q", "c"),
                           log="pod name `c` is already registered")

    def test_einval_names(self):
        for name in (".x", "..x", "allow", "pid", "session", "socket", "delegated_from"):
            self.assertRefused(errno.EINVAL, os.mkdir, self.d.path(name),
                               log="invalid pod name")
        self.assertEqual(self.d.names(), [])

    def test_name_lengths(self):
        os.mkdir(self.d.path("n" * 255))
        self.assertEqual(self.d.names(), ["n" * 255])
        self.assertRefused(errno.EINVAL, os.mkdir, self.d.path("m" * 256), log="invalid pod name")
        self.assertEqual(self.d.names(), ["n" * 255])

    def test_delegate(self):
        os.mkdir(self.d.path("p"))
        os.mkdir(self.d.path("p", "c"))
        c = self.d.pod("c")
        self.assertEqual(c["delegated_from"], "p")
        self.assertIsNone(c["session_id"])
        self.assertEqual(c["pid"], os.getpid())
        self.assertEqual(sorted(os.listdir(self.d.mnt)), sorted(SPECIAL + ["c", "p"]))
        self.assertIn("c", os.listdir(self.d.path("p")))
        self.assertEqual(read(self.d.path("c", "delegated_from")), b"p\n")
        self.assertEqual(read(self.d.path("p", "c", "delegated_from")), b"p\n")
        self.assertEqual(read(self.d.path("c", "session")), b"")
        # one pod at two paths: two inode numbers
        self.assertNotEqual(os.stat(self.d.path("c")).st_ino,
                            os.stat(self.d.path("p", "c")).st_ino)
        # nested delegation, seen at every depth
        os.mkdir(self.d.path("p", "c", "g"))
        self.assertEqual(read(self.d.path("p", "c", "g", "delegated_from")), b"c\n")
        self.assertEqual(read(self.d.path("c", "g", "delegated_from")), b"c\n")
        self.assertEqual(self.d.pod("g")["delegated_from"], "c")

    def test_delegate_enoent(self):
        self.assertRefused(errno.ENOENT, os.mkdir, self.d.path("ghost", "c"))
        os.mkdir(self.d.path("p"))
        os.mkdir(self.d.path("q"))
        # q is not a delegate of p: p/q does not exist
        self.assertRefused(errno.ENOENT, os.rmdir, self.d.path("p", "q"))


class Allow(MountTest):
    def setUp(self):
        super().setUp()
        os.mkdir(self.d.path("p"))
        self.allow = self.d.path("p", "allow")

    def rules(self, pod="p"):
        return [(r["permission"], r.get("recursive", True), r["target"])
                for r in self.d.pod(pod)["scope_allow"]]

    def test_set_and_read_back(self):
        text = "write recursive /src\nread shallow /home/u/a b\nwrite shallow /x/tab\\011y\n"
        write(self.allow, text)
        self.assertEqual(read(self.allow).decode(), text)
        self.assertEqual(self.rules(), [("write", True, "/src"), ("read", False, "/home/u/a b"),
                                        ("write", False, "/x/tab\ty")])

    def test_lone_newline_is_empty(self):
        write(self.allow, "write recursive /src\n")
        write(self.allow, "\n")
        self.assertEqual(read(self.allow), b"")
        self.assertEqual(self.rules(), [])

    def test_append(self):
        write(self.allow, "write recursive /src\n")
        append(self.allow, "read recursive /doc\n")
        append(self.allow, "write shallow /tmp/x\n")
        self.assertEqual(read(self.allow),
                         b"write recursive /src\nread recursive /doc\nwrite shallow /tmp/x\n")
        self.assertEqual(len(self.rules()), 3)
        # the shell's >>
        subprocess.run(["sh", "-c", "echo 'read shallow /etc' >> " + self.allow], check=True)
        self.assertEqual(self.rules()[-1], ("read", False, "/etc"))

    def test_truncation_alone_changes_nothing(self):
        write(self.allow, "write recursive /src\n")
        before = self.d.table_bytes()
        open(self.allow, "w").close()
        os.truncate(self.allow, 0)
        subprocess.run(["sh", "-c", ": > " + self.allow], check=True)
        self.assertEqual(self.d.table_bytes(), before)
        self.assertEqual(read(self.allow), b"write recursive /src\n")
        self.assertEqual(os.stat(self.allow).st_size, len(b"write recursive /src\n"))

    def test_einval_malformed(self):
        write(self.allow, "write recursive /src\n")
        for bad in ("write recursive src\n", "bogus\n", "write sideways /x\n",
                    "write recursive /a/../b\n", "read recursive /a/\n", "write recursive\n"):
            self.assertRefused(errno.EINVAL, write, self.allow, bad, log=r"write `p/allow`")
        self.assertEqual(read(self.allow), b"write recursive /src\n")

    def test_offset_without_append(self):
        fd = os.open(self.allow, os.O_WRONLY)
        try:
            self.assertRefused(errno.EINVAL, os.pwrite, fd, b"read recursive /x\n", 5,
                               log="offset 5")
        finally:
            os.close(fd)

    def test_efbig(self):
        big = b""
        while 65536 - len(big) > 500:
            big += b"read recursive /d%05d/%s\n" % (len(big), b"x" * 200)
        big += b"read recursive /" + b"e" * (65536 - len(big) - 17) + b"\n"
        self.assertEqual(len(big), 65536)
        write(self.allow, big)
        self.assertEqual(read(self.allow), big)
        self.assertRefused(errno.EFBIG, write, self.allow, big + b"read recursive /f\n",
                           log="over the limit")
        self.assertRefused(errno.EFBIG, write, self.allow, big * 20, log="over the limit")
        self.assertEqual(read(self.allow), big)

    def test_ebusy_conflict_names_competitor(self):
        write(self.allow, "write recursive /src\n")
        os.mkdir(self.d.path("q"))
        line = self.assertRefused(errno.EBUSY, write, self.d.path("q", "allow"),
                                  "write recursive /src/core\n",
                                  log="conflicts with pod `p`")
        self.assertIn("/src/core", line)
        # read rules never conflict; a disjoint write rule is fine
        write(self.d.path("q", "allow"), "read recursive /src/core\nwrite recursive /srcx\n")

    def test_own_subtree_never_conflicts(self):
        write(self.allow, "write recursive /src\n")
        os.mkdir(self.d.path("p", "c"))
        write(self.d.path("c", "allow"), "write recursive /src/core\n")
        write(self.allow, "write recursive /src\nread recursive /doc\n")
        write(self.d.path("c", "allow"), "write recursive /src/core/x\n")

    def test_eperm_not_subset(self):
        write(self.allow, "write recursive /src\n")
        os.mkdir(self.d.path("p", "c"))
        self.assertRefused(errno.EPERM, write, self.d.path("p", "c", "allow"),
                           "write recursive /etc\n",
                           log="not within spawner `p`'s effective scope")
        self.assertRefused(errno.EPERM, write, self.d.path("c", "allow"),
                           "read recursive /etc\n", log="not within spawner `p`")

    def test_ebusy_uncovered(self):
        write(self.allow, "write recursive /src\n")
        os.mkdir(self.d.path("p", "c"))
        write(self.d.path("c", "allow"), "write recursive /src/core\n")
        self.assertRefused(errno.EBUSY, write, self.allow, "write recursive /doc\n", log="")
        self.assertEqual(self.rules(), [("write", True, "/src")])


class Files(MountTest):
    def setUp(self):
        super().setUp()
        os.mkdir(self.d.path("p"))

    def test_pid(self):
        sleeper = subprocess.Popen(["sleep", "60"])
        self.addCleanup(sleeper.wait)
        self.addCleanup(sleeper.kill)
        write(self.d.path("p", "pid"), "%d\n" % sleeper.pid)
        self.assertEqual(read(self.d.path("p", "pid")), b"%d\n" % sleeper.pid)
        self.assertEqual(self.d.pod("p")["pid"], sleeper.pid)
        for bad in ("abc\n", "0\n", "-5\n", "12x\n", "\n", "99999999999999999999\n"):
            self.assertRefused(errno.EINVAL, write, self.d.path("p", "pid"), bad,
                               log="not a positive integer")
        self.assertRefused(errno.ESRCH, write, self.d.path("p", "pid"), "%d\n" % free_pid(),
                           log="no process")
        self.assertEqual(self.d.pod("p")["pid"], sleeper.pid)

    def test_pid_of_thread_is_its_process(self):
        tid = []
        ev = threading.Event()
        t = threading.Thread(target=lambda: (tid.append(threading.get_native_id()), ev.wait()))
        t.start()
        try:
            while not tid:
                pass
            write(self.d.path("p", "pid"), "%d" % tid[0])
            self.assertEqual(self.d.pod("p")["pid"], os.getpid())
        finally:
            ev.set()
            t.join()

    def test_session(self):
        old = read(self.d.path("p", "session")).decode().strip()
        new = "0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f6"
        write(self.d.path("p", "session"), new + "\n")
        self.assertEqual(read(self.d.path("p", "session")), (new + "\n").encode())
        self.assertEqual(self.d.pod("p")["session_id"], new)
        self.assertEqual(os.listdir(self.d.path(".by-session")), [new])
        self.assertFalse(os.path.lexists(self.d.path(".by-session", old)))
        self.assertEqual(os.readlink(self.d.path(".by-session", new)), "../p")
        for bad in ("nope\n", "0192f3c4-5b6a-7c8d-9e0f\n", new + "0\n"):
            self.assertRefused(errno.EINVAL, write, self.d.path("p", "session"), bad,
                               log="not a UUID")
        os.mkdir(self.d.path("q"))
        self.assertRefused(errno.EBUSY, write, self.d.path("q", "session"), new, log="")
        self.assertEqual(self.d.pod("p")["session_id"], new)

    def test_socket(self):
        write(self.d.path("p", "socket"), "/run/p/sock\n")
        self.assertEqual(read(self.d.path("p", "socket")), b"/run/p/sock\n")
        self.assertEqual(self.d.pod("p")["socket"], "/run/p/sock")
        self.assertRefused(errno.EINVAL, write, self.d.path("p", "socket"), "relative/sock\n",
                           log="")
        self.assertEqual(self.d.pod("p")["socket"], "/run/p/sock")
        write(self.d.path("p", "socket"), "\n")
        self.assertEqual(read(self.d.path("p", "socket")), b"")
        self.assertEqual(self.d.pod("p")["socket"], "")

    def test_read_only_files(self):
        # fast_read: refused by the write (logged), not by an OPEN
        self.assertRefused(errno.EACCES, write, self.d.path("p", "delegated_from"), "x\n",
                           log="read-only" if FAST_READ else None)
        self.assertRefused(errno.ENOENT if FAST_READ else errno.EACCES, write,
                           self.d.path(".events"), "x\n")


class Rmdir(MountTest):
    def test_release_and_reparent(self):
        os.mkdir(self.d.path("a"))
        write(self.d.path("a", "allow"), "write recursive /src\n")
        os.mkdir(self.d.path("a", "b"))
        write(self.d.path("b", "allow"), "write recursive /src/b\n")
        os.mkdir(self.d.path("a", "b", "c"))
        write(self.d.path("c", "allow"), "write recursive /src/b/c\n")
        # release b through its parent's directory: c goes to a
        os.rmdir(self.d.path("a", "b"))
        self.assertEqual(sorted(self.d.names()), ["a", "c"])
        self.assertEqual(self.d.pod("c")["delegated_from"], "a")
        self.assertEqual(read(self.d.path("c", "delegated_from")), b"a\n")
        self.assertIn("c", os.listdir(self.d.path("a")))
        self.assertFalse(os.path.exists(self.d.path("b")))
        self.assertEqual(read(self.d.path("a", "c", "allow")), b"write recursive /src/b/c\n")
        # release a at the root: c becomes top-level
        os.rmdir(self.d.path("a"))
        self.assertEqual(self.d.names(), ["c"])
        self.assertIsNone(self.d.pod("c")["delegated_from"])
        self.assertEqual(read(self.d.path("c", "delegated_from")), b"")
        self.assertEqual(sorted(os.listdir(self.d.mnt)), sorted(SPECIAL + ["c"]))

    def test_enoent(self):
        self.assertRefused(errno.ENOENT, os.rmdir, self.d.path("ghost"))
        os.mkdir(self.d.path("p"))
        os.rmdir(self.d.path("p"))
        self.assertRefused(errno.ENOENT, os.rmdir, self.d.path("p"))
        self.assertEqual(self.d.names(), [])

    def test_alias_path_goes_at_once(self):
        os.mkdir(self.d.path("p"))
        os.mkdir(self.d.path("p", "c"))
        os.stat(self.d.path("c", "allow"))
        os.stat(self.d.path("p", "c", "allow"))
        os.rmdir(self.d.path("p", "c"))
        self.assertFalse(os.path.exists(self.d.path("p", "c")))
        from fsutil import wait_for
        wait_for(lambda: not os.path.exists(self.d.path("c")), 0.1)


class Refused(MountTest):
    def setUp(self):
        super().setUp()
        os.mkdir(self.d.path("p"))
        write(self.d.path("p", "allow"), "write recursive /src\n")

    def test_eperm(self):
        d = self.d
        self.assertRefused(errno.EPERM, open, d.path("f"), "w", log="create `f`")
        self.assertRefused(errno.EPERM, open, d.path("p", "f"), "w", log="create `p/f`")
        self.assertRefused(errno.EPERM, os.mknod, d.path("n"), log="mknod")
        self.assertRefused(errno.EPERM, os.unlink, d.path("p", "allow"), log="unlink `p/allow`")
        self.assertRefused(errno.EPERM, os.rename, d.path("p"), d.path("q"), log="rename `p`")
        self.assertRefused(errno.EPERM, os.rename, d.path("p", "allow"), d.path("p", "x"),
                           log="rename")
        self.assertRefused(errno.EPERM, os.symlink, "p", d.path("s"), log="symlink `s`")
        self.assertRefused(errno.EPERM, os.link, d.path("p", "allow"), d.path("p", "l"),
                           log="link `p/l`")
        self.assertRefused(errno.EPERM, os.chmod, d.path("p", "allow"), 0o600, log="chmod")
        self.assertRefused(errno.EPERM, os.chmod, d.path("p"), 0o700, log="chmod")
        self.assertRefused(errno.EPERM, os.chown, d.path("p", "allow"), 1, 1, log="chown")
        self.assertRefused(errno.EPERM, os.setxattr, d.path("p", "allow"), "user.x", b"1",
                           log="setxattr")
        self.assertRefused(errno.EPERM, os.rmdir, d.path(".by-session"), log="")
        self.assertEqual(read(d.path("p", "allow")), b"write recursive /src\n")


if __name__ == "__main__":
    main()
