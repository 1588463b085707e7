#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""-o fast_read: the kernel sends no OPEN (no_open) and keeps pod files in
its page cache, so the daemon must push every change.  Whatever made the
change (the mount, a foreign writer of the table, a reap, a reparent), a
read right after it returns the new content; refused writes, writes the
table normalises and truncations leave no bytes of their own in the cache;
one write() of a whole set is one request; .events is hidden."""

import errno
import json
import os
import subprocess
import sys
import threading
import time

from fsutil import MountTest, append, main, read, wait_for, write

FOREIGN = r"""
import fcntl, json, os, sys
path, name, rules = sys.argv[1], sys.argv[2], sys.argv[3]
fd = os.open(path, os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
data = b""
while True:
    chunk = os.read(fd, 1 << 16)
    if not chunk:
        break
    data += chunk
t = json.loads(data)
for a in t["allocations"]:
    if a["pod_name"] == name:
        a["scope_allow"] = json.loads(rules)
out = json.dumps(t, indent=2).encode()
os.lseek(fd, 0, os.SEEK_SET)
os.ftruncate(fd, 0)
os.write(fd, out)
os.fdatasync(fd)
fcntl.flock(fd, fcntl.LOCK_UN)
"""


def cat(path):
    return subprocess.run(["cat", path], capture_output=True, check=True).stdout


class FastRead(MountTest):
    daemon_opts = ("fast_read",)

    def setUp(self):
        super().setUp()
        self.d.expect(r"refused \(pid \d+\): ")
        os.mkdir(self.d.path("p"))
        self.allow = self.d.path("p", "allow")

    def cached(self, path):
        """Read PATH twice, so that its pages are in the kernel's cache."""
        data = read(path)
        self.assertEqual(read(path), data)
        return data

    def fresh(self, path, want):
        """Every way of reading PATH sees WANT, and st_size matches."""
        self.assertEqual(read(path), want)
        self.assertEqual(cat(path), want)
        self.assertEqual(os.stat(path).st_size, len(want))

    def test_no_open_requests(self):
        # Opens and reads work; the daemon saw (at most) the first OPEN.
        start = self.d.mark()
        for _ in range(200):
            self.assertEqual(read(self.d.path("p", "pid")), b"%d\n" % os.getpid())
        self.assertEqual(self.d.lines[start:], [])

    def test_events_hidden(self):
        self.assertEqual(sorted(os.listdir(self.d.mnt)), [".by-session", "p"])
        self.assertErrno(errno.ENOENT, os.stat, self.d.path(".events"))
        self.assertErrno(errno.ENOENT, os.open, self.d.path(".events"), os.O_RDONLY)
        self.assertErrno(errno.ENOENT, os.open, self.d.path(".events"),
                         os.O_RDONLY | os.O_NONBLOCK)

    def test_writes_through_the_mount_show_at_once(self):
        for i in range(100):
            self.cached(self.allow)
            text = b"write recursive /src/%d\n" % i
            if i % 2:
                write(self.allow, text)
                want = text
            else:
                write(self.allow, b"read shallow /a\n")
                append(self.allow, text)
                want = b"read shallow /a\n" + text
            self.fresh(self.allow, want)

    def test_normalised_write_of_the_same_size(self):
        # "0<pid>" (no newline) is stored as "<pid>\n": the same size, other
        # bytes.  Written over cached pages without O_TRUNC, the written
        # bytes sit in the page cache; the new mtime must drop them.
        pid = b"%d" % os.getpid()
        path = self.d.path("p", "pid")
        for _ in range(20):
            self.cached(path)
            write(path, b"0" + pid, os.O_WRONLY)
            self.fresh(path, pid + b"\n")
        # the same for allow: an escape written as a plain character
        self.cached(self.allow)
        write(self.allow, b"read shallow /a\\101\n")
        self.fresh(self.allow, b"read shallow /aA\n")

    def test_refused_write_leaves_content(self):
        write(self.allow, "write recursive /src\n")
        for bad in (b"write recursive srcX\n", b"bogus bogus bogus x\n", b"\x00" * 21):
            self.cached(self.allow)
            self.assertRefused(errno.EINVAL, write, self.allow, bad, os.O_WRONLY)
            self.fresh(self.allow, b"write recursive /src\n")
            self.assertRefused(errno.EINVAL, write, self.allow, bad)
            self.fresh(self.allow, b"write recursive /src\n")
        path = self.d.path("p", "pid")
        want = self.cached(path)
        self.assertRefused(errno.EINVAL, write, path, b"x" * len(want), os.O_WRONLY)
        self.fresh(path, want)
        self.assertRefused(errno.EACCES, write, self.d.path("p", "delegated_from"), "x\n")
        self.fresh(self.d.path("p", "delegated_from"), b"")

    def test_truncation_changes_nothing(self):
        write(self.allow, "write recursive /src\n")
        before = self.d.table_bytes()
        for how in range(4):
            self.cached(self.allow)
            if how == 0:
                open(self.allow, "w").close()
            elif how == 1:
                os.truncate(self.allow, 0)
            elif how == 2:
                fd = os.open(self.allow, os.O_WRONLY)
                os.ftruncate(fd, 3)
                os.close(fd)
            else:
                subprocess.run(["sh", "-c", ": > " + self.allow], check=True)
            self.fresh(self.allow, b"write recursive /src\n")
        self.assertEqual(self.d.table_bytes(), before)

    def test_whole_set_in_one_write_is_one_request(self):
        # Split in two, the first part would end mid-line and be refused.
        for size in (4095, 4097, 20000, 65536):
            big = b""
            n = 0
            while size - len(big) > 300:
                big += b"read recursive /d%05d/%s\n" % (n, b"x" * 150)
                n += 1
            big += b"read recursive /" + b"e" * (size - len(big) - 17) + b"\n"
            self.assertEqual(len(big), size)
            self.cached(self.allow)
            write(self.allow, big)
            self.fresh(self.allow, big)
        self.assertRefused(errno.EFBIG, write, self.allow, big + b"read recursive /f\n",
                           log="over the limit")
        self.fresh(self.allow, big)

    def test_append_within_a_page(self):
        write(self.allow, "write recursive /src\n")
        want = b"write recursive /src\n"
        for i in range(30):
            line = b"read shallow /doc/%d\n" % i
            if i % 3 == 0:
                self.cached(self.allow)
            append(self.allow, line)
            want += line
            self.fresh(self.allow, want)
        subprocess.run(["sh", "-c", "echo 'read shallow /etc' >> " + self.allow], check=True)
        self.fresh(self.allow, want + b"read shallow /etc\n")

    def test_append_across_a_page(self):
        # The documented limit: without the file's last page in the cache,
        # the kernel cuts an append at that page's end.  Cut mid-line, it
        # is refused whole; cached, it arrives whole.  Never half applied.
        write(self.allow, "write recursive /a\n")
        data = b"".join(b"read shallow /doc/%04d\n" % i for i in range(300))
        before = self.d.table_bytes()
        try:
            append(self.allow, data)
            self.fresh(self.allow, b"write recursive /a\n" + data)
        except OSError as e:
            self.assertEqual(e.errno, errno.EINVAL)
            self.assertEqual(self.d.table_bytes(), before)
            self.fresh(self.allow, b"write recursive /a\n")
        write(self.allow, "write recursive /a\n")
        self.cached(self.allow)
        append(self.allow, data)
        self.fresh(self.allow, b"write recursive /a\n" + data)

    def test_values(self):
        path = self.d.path("p", "socket")
        for i in range(10):
            self.cached(path)
            write(path, "/run/p%d.sock\n" % i)
            self.fresh(path, b"/run/p%d.sock\n" % i)
        self.assertRefused(errno.EINVAL, write, path, "relative\n")
        self.fresh(path, b"/run/p9.sock\n")
        path = self.d.path("p", "session")
        old = self.cached(path)
        uuid = "0190a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b"
        write(path, uuid + "\n")
        self.fresh(path, uuid.encode() + b"\n")
        self.assertNotEqual(old, uuid.encode() + b"\n")
        self.assertRefused(errno.EINVAL, write, path, "not-a-uuid\n")
        self.fresh(path, uuid.encode() + b"\n")
        sleeper = subprocess.Popen(["sleep", "60"])
        self.addCleanup(sleeper.wait)
        self.addCleanup(sleeper.kill)
        path = self.d.path("p", "pid")
        self.cached(path)
        write(path, "%d\n" % sleeper.pid)
        self.fresh(path, b"%d\n" % sleeper.pid)

    def test_alias_paths(self):
        write(self.allow, "write recursive /src\n")
        os.mkdir(self.d.path("p", "c"))
        a, b = self.d.path("c", "allow"), self.d.path("p", "c", "allow")
        for i in range(20):
            self.cached(a)
            self.cached(b)
            write(a if i % 2 else b, "write recursive /src/%d\n" % i)
            self.fresh(a, b"write recursive /src/%d\n" % i)
            self.fresh(b, b"write recursive /src/%d\n" % i)

    def test_kept_open_descriptor(self):
        fd = os.open(self.allow, os.O_RDONLY)
        self.addCleanup(os.close, fd)
        for i in range(20):
            self.assertEqual(os.pread(fd, 4096, 0), read(self.allow))
            write(self.allow, "write recursive /k/%d\n" % i)
            self.assertEqual(os.pread(fd, 4096, 0), b"write recursive /k/%d\n" % i)
            self.assertEqual(os.fstat(fd).st_size, len(b"write recursive /k/%d\n" % i))

    def test_foreign_writer(self):
        for i in range(10):
            self.cached(self.allow)
            rules = [{"target": "/f/%d" % i, "permission": "write", "recursive": True}]
            subprocess.run([sys.executable, "-c", FOREIGN, self.d.table, "p",
                            json.dumps(rules)], check=True)
            want = b"write recursive /f/%d\n" % i
            wait_for(lambda: read(self.allow) == want, 0.1)
            # once shown, never the old content again, whatever reads it
            self.fresh(self.allow, want)

    def test_reap_and_reparent(self):
        sleeper = subprocess.Popen(["sleep", "60"])
        self.addCleanup(sleeper.wait)
        self.addCleanup(sleeper.kill)
        os.mkdir(self.d.path("p", "b"))
        write(self.d.path("b", "pid"), str(sleeper.pid))
        os.mkdir(self.d.path("b", "c"))
        path = self.d.path("c", "delegated_from")
        self.assertEqual(self.cached(path), b"b\n")
        fd = os.open(path, os.O_RDONLY)
        self.addCleanup(os.close, fd)
        sleeper.kill()
        sleeper.wait()
        wait_for(lambda: not os.path.exists(self.d.path("b")), 1.5)
        self.fresh(path, b"p\n")
        self.assertEqual(os.pread(fd, 100, 0), b"p\n")
        self.fresh(self.d.path("p", "c", "delegated_from"), b"p\n")

    def test_concurrent_readers_never_see_foreign_bytes(self):
        # Readers cat the file while it is rewritten: they see one of the
        # sets written, never bytes of a refused write, never a mix.
        sets = [b"write recursive /s/%03d\n" % i for i in range(50)]
        write(self.allow, sets[0])
        stop = threading.Event()
        bad = []

        def reader():
            while not stop.is_set():
                data = read(self.allow)
                if data not in sets:
                    bad.append(data)

        threads = [threading.Thread(target=reader) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            for s in sets:
                write(self.allow, s)
                self.assertEqual(read(self.allow), s)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(bad, [])

    def test_loopback_write_leaves_content(self):
        # A change made elsewhere is repeated through the mount (for
        # inotify) by a write of one byte: it must not land in the cache.
        write(self.allow, "write recursive /c\n")
        os.mkdir(self.d.path("p", "c"))
        for i in range(20):
            self.cached(self.d.path("c", "allow"))
            write(self.d.path("p", "c", "allow"), "write recursive /c/%d\n" % i)
            want = b"write recursive /c/%d\n" % i
            self.fresh(self.d.path("c", "allow"), want)
            time.sleep(0.01)
            self.fresh(self.d.path("c", "allow"), want)


if __name__ == "__main__":
    main()
