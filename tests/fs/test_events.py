#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""MOUNT/.events: one line per change after open, blocking reads that hold
no thread and die on signals, O_NONBLOCK, poll/epoll, overflow."""

import errno
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time

from fsutil import MountTest, main, wait_for, write

UUID = "0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f6"


def parse(data):
    return [l.split(" ") for l in data.decode().splitlines()]


class Events(MountTest):
    def open_events(self, flags=os.O_RDONLY):
        fd = os.open(self.d.path(".events"), flags)
        self.addCleanup(os.close, fd)
        return fd

    def read_lines(self, fd, n, timeout=2.0):
        """Reads until N lines arrived."""
        data = b""
        deadline = time.monotonic() + timeout
        while data.count(b"\n") < n:
            r, _, _ = select.select([fd], [], [], max(0, deadline - time.monotonic()))
            if not r:
                raise AssertionError("only %r after %.1f s" % (data, timeout))
            data += os.read(fd, 65536)
        return parse(data)

    def test_lines_for_every_kind(self):
        d = self.d
        os.mkdir(d.path("before"))  # before open: not reported
        fd = self.open_events()
        sleeper = subprocess.Popen(["sleep", "60"])
        self.addCleanup(sleeper.wait)
        self.addCleanup(sleeper.kill)
        os.mkdir(d.path("p"))
        write(d.path("p", "allow"), "write recursive /src\nread shallow /d\n")
        write(d.path("p", "pid"), str(sleeper.pid))
        write(d.path("p", "session"), UUID)
        write(d.path("p", "socket"), "/run/with space/s")
        os.mkdir(d.path("p", "c"))
        os.rmdir(d.path("p"))
        lines = self.read_lines(fd, 8)
        seqs = [int(l[0]) for l in lines]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))
        self.assertTrue(all(len(l) == 4 for l in lines), lines)
        body = [l[1:] for l in lines]
        self.assertEqual(body[:6], [
            ["register", "p", "-"],
            ["allow", "p", "2"],
            ["pid", "p", str(sleeper.pid)],
            ["session", "p", UUID],
            ["socket", "p", "/run/with\\040space/s"],
            ["delegate", "c", "p"],
        ])
        self.assertEqual(sorted(map(tuple, body[6:])),
                         [("release", "p", "-"), ("reparent", "c", "-")])

    def test_nonblock(self):
        fd = self.open_events(os.O_RDONLY | os.O_NONBLOCK)
        with self.assertRaises(BlockingIOError):
            os.read(fd, 100)
        os.mkdir(self.d.path("p"))
        self.assertEqual(parse(os.read(fd, 100))[0][1:], ["register", "p", "-"])
        with self.assertRaises(BlockingIOError):
            os.read(fd, 100)

    def test_blocking_read_wakes(self):
        fd = self.open_events()
        got = []
        t = threading.Thread(target=lambda: got.append(os.read(fd, 4096)))
        t.start()
        time.sleep(0.2)
        self.assertEqual(got, [])
        t0 = time.monotonic()
        os.mkdir(self.d.path("p"))
        t.join(2)
        self.assertFalse(t.is_alive())
        self.assertLess(time.monotonic() - t0, 0.5)
        self.assertEqual(parse(got[0])[0][1:], ["register", "p", "-"])

    def test_poll_and_epoll(self):
        fd = self.open_events()
        p = select.poll()
        p.register(fd, select.POLLIN)
        self.assertEqual(p.poll(0), [])
        ep = select.epoll()
        self.addCleanup(ep.close)
        ep.register(fd, select.EPOLLIN)
        self.assertEqual(ep.poll(0), [])
        t0 = time.monotonic()
        threading.Timer(0.1, os.mkdir, [self.d.path("p")]).start()
        self.assertEqual(p.poll(2000), [(fd, select.POLLIN)])
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(ep.poll(1), [(fd, select.EPOLLIN)])
        os.read(fd, 4096)
        self.assertEqual(p.poll(0), [])

    def blocked_reader(self):
        code = ("import os, sys\nfd = os.open(sys.argv[1], os.O_RDONLY)\n"
                "print('ready', flush=True)\nos.read(fd, 100)\nprint('read', flush=True)\n")
        p = subprocess.Popen([sys.executable, "-c", code, self.d.path(".events")],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        self.assertEqual(p.stdout.readline(), b"ready\n")
        time.sleep(0.2)  # in read() by now
        self.assertIsNone(p.poll())
        return p

    def test_blocked_reader_dies_on_sigint_and_sigkill(self):
        for sig in (signal.SIGINT, signal.SIGKILL, signal.SIGTERM):
            p = self.blocked_reader()
            t0 = time.monotonic()
            p.send_signal(sig)
            p.wait(2)
            self.assertLess(time.monotonic() - t0, 0.5, "signal %s" % sig)
            self.assertNotEqual(p.returncode, 0)
        # the daemon is unharmed and readers still work
        fd = self.open_events(os.O_RDONLY | os.O_NONBLOCK)
        os.mkdir(self.d.path("p"))
        self.assertEqual(parse(os.read(fd, 100))[0][1:], ["register", "p", "-"])

    def test_many_blocked_readers_hold_no_thread(self):
        fds = [self.open_events() for _ in range(40)]
        got = {}

        def reader(fd):
            got[fd] = os.read(fd, 4096)
        threads = [threading.Thread(target=reader, args=(fd,)) for fd in fds]
        for t in threads:
            t.start()
        time.sleep(0.3)
        # the file system still answers
        t0 = time.monotonic()
        self.assertEqual(sorted(os.listdir(self.d.mnt)), [".by-session", ".events"])
        os.mkdir(self.d.path("p"))
        self.assertLess(time.monotonic() - t0, 1.0)
        for t in threads:
            t.join(2)
            self.assertFalse(t.is_alive())
        self.assertEqual({parse(v)[0][1] for v in got.values()}, {"register"})

    def test_overflow(self):
        d = self.d
        fd = self.open_events(os.O_RDONLY | os.O_NONBLOCK)
        # one foreign rewrite that adds 5000 pods: 5000 lines at once
        big = {"allocations": [
            {"pod_name": "f%d" % i, "pid": os.getpid(), "socket": "", "scope_allow": [],
             "delegated_from": None, "session_id": None} for i in range(5000)]}
        with open(d.table, "r+") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            f.seek(0)
            f.truncate()
            f.write(json.dumps(big, indent=2))
            f.flush()
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        wait_for(lambda: len(os.listdir(d.mnt)) == 5002, 5)
        os.mkdir(d.path("after"))
        data = b""
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                break
            data += chunk
        lines = parse(data)
        self.assertEqual(lines[0][1:3], ["overflow", "-"])
        lost = int(lines[0][3])
        self.assertGreater(lost, 0)
        self.assertEqual(len(lines) - 1 + lost, 5001)
        self.assertEqual(int(lines[0][0]) + 1, int(lines[1][0]))
        self.assertEqual(lines[-1][1:], ["register", "after", "-"])
        self.assertEqual([l[1] for l in lines[1:-1]], ["register"] * (len(lines) - 2))


if __name__ == "__main__":
    main()
