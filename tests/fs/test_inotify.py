#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What inotify watchers of the mount see: CREATE/DELETE of pods at the root
and MODIFY/CLOSE_WRITE of pod files, whatever made the change (the mount at
another path, another program writing the table, a reap, a reparent)."""

import ctypes
import ctypes.util
import json
import os
import select
import struct
import subprocess
import sys
import time

from fsutil import MountTest, main, write
from test_watch import FOREIGN, pod_spec

IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_ISDIR = 0x40000000
IN_NONBLOCK = 0o4000
NAMES = {IN_MODIFY: "MODIFY", IN_CLOSE_WRITE: "CLOSE_WRITE", IN_CREATE: "CREATE",
         IN_DELETE: "DELETE"}

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class Inotify:
    def __init__(self):
        self.fd = libc.inotify_init1(IN_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.wds = {}

    def watch(self, path, mask):
        wd = libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch " + path)
        self.wds[wd] = path

    def events(self, timeout=0.5):
        """(watched path, event names, name) until TIMEOUT passes quietly."""
        out = []
        while select.select([self.fd], [], [], timeout)[0]:
            buf = os.read(self.fd, 65536)
            i = 0
            while i < len(buf):
                wd, mask, _, n = struct.unpack_from("iIII", buf, i)
                name = buf[i + 16:i + 16 + n].rstrip(b"\0").decode()
                kinds = [v for k, v in NAMES.items() if mask & k]
                if mask & IN_ISDIR:
                    kinds.append("ISDIR")
                out.append((self.wds[wd], ",".join(kinds), name))
                i += 16 + n
        return out

    def close(self):
        os.close(self.fd)


class Watching(MountTest):
    def setUp(self):
        super().setUp()
        self.ino = Inotify()
        self.addCleanup(self.ino.close)

    def test_pods_appear_and_disappear_at_the_root(self):
        d, ino = self.d, self.ino
        os.mkdir(d.path("a"))
        ino.watch(d.mnt, IN_CREATE | IN_DELETE)
        ino.watch(d.path("a"), IN_CREATE | IN_DELETE)
        os.mkdir(d.path("b"))
        os.mkdir(d.path("a", "c"))
        self.assertEqual(sorted(ino.events()), sorted([
            (d.mnt, "CREATE,ISDIR", "b"),       # the mount's own, once
            (d.path("a"), "CREATE,ISDIR", "c"),  # the mount's own
            (d.mnt, "CREATE,ISDIR", "c"),       # the delegate, seen at the root
        ]))
        os.rmdir(d.path("a", "c"))
        self.assertEqual(sorted(ino.events()), sorted([
            (d.path("a"), "DELETE,ISDIR", "c"), (d.mnt, "DELETE,ISDIR", "c")]))

        # another program's changes
        for action, arg, expect in (("add", json.dumps(pod_spec("f", os.getpid())), "CREATE"),
                                    ("remove", "f", "DELETE")):
            subprocess.run([sys.executable, "-c", FOREIGN, d.table, action, arg, "0"],
                           check=True, capture_output=True)
            self.assertEqual(ino.events(), [(d.mnt, expect + ",ISDIR", "f")])

        # a reap
        p = subprocess.Popen(["sleep", "60"])
        write(d.path("b", "pid"), str(p.pid))
        p.kill()
        p.wait()
        self.assertEqual(ino.events(1.5), [(d.mnt, "DELETE,ISDIR", "b")])

    def test_files_that_change(self):
        d, ino = self.d, self.ino
        os.mkdir(d.path("a"))
        write(d.path("a", "allow"), "write recursive /src\n")
        os.mkdir(d.path("a", "c"))
        ino.watch(d.path("c"), IN_MODIFY | IN_CLOSE_WRITE)
        ino.watch(d.path("a"), IN_MODIFY | IN_CLOSE_WRITE)
        # a write through another path of the same pod
        write(d.path("a", "c", "allow"), "write recursive /src/c\n")
        ev = ino.events()
        self.assertIn((d.path("c"), "MODIFY", "allow"), ev)
        self.assertIn((d.path("c"), "CLOSE_WRITE", "allow"), ev)
        self.assertFalse([e for e in ev if e[0] == d.path("a")])
        # a write through the watched path: the mount's own events only
        write(d.path("a", "allow"), "write recursive /src\nread recursive /doc\n")
        ev = ino.events()
        self.assertEqual(ev.count((d.path("a"), "CLOSE_WRITE", "allow")), 1)
        # a reparent changes delegated_from
        os.rmdir(d.path("a"))
        ev = ino.events()
        self.assertIn((d.path("c"), "MODIFY", "delegated_from"), ev)


if __name__ == "__main__":
    main()
