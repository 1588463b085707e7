#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Malformed input through the mount: at least 1,000 bad writes and names
(huge, binary, NUL, bad escapes, `..`, 10,000 rules, 255/256-byte and
longer names, non-UTF-8 bytes, offsets, refused file operations).  Each
must fail with the errno the contract gives (interface.md: EINVAL for a
malformed line, value or name, EFBIG over 64 KiB, ESRCH for no such
process, EPERM for refused file operations; the kernel answers EEXIST for
"." and "..", ENOTDIR, and ENAMETOOLONG past its own limits), the daemon
must survive, and the table file must stay byte-identical."""

import errno
import os
import random
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stressutil as su  # noqa: E402

E = errno
LONG = (E.EINVAL, E.ENAMETOOLONG)  # a name over 255 bytes: the daemon or the kernel


def write(path, data, flags=os.O_WRONLY | os.O_TRUNC, offset=None):
    fd = os.open(path, flags)
    try:
        if offset is not None:
            return os.pwrite(fd, data, offset)
        return os.write(fd, data)
    finally:
        os.close(fd)


class Cases:
    def __init__(self, mnt, rng):
        self.mnt, self.rng = mnt, rng
        self.cases = []

    def P(self, *parts):
        return os.path.join(self.mnt.encode(), *[p if isinstance(p, bytes) else p.encode()
                                                 for p in parts])

    def add(self, desc, expect, fn, *args, **kw):
        self.cases.append((desc, expect if isinstance(expect, tuple) else (expect,),
                           fn, args, kw))

    def file(self):
        """One of the writable files' pods, at one of its paths."""
        return self.rng.choice([("p",), ("c",), ("p", "c")])

    # ---- the fixed cases ----

    def fixed(self):
        P = self.P
        allow = P("p", "allow")
        for pod in (("p",), ("c",), ("p", "c")):
            f = P(*pod, "allow")
            for bad in (b"write recursive src\n", b"bogus\n", b"write sideways /x\n",
                        b"write recursive /a/../b\n", b"write recursive /a/./b\n",
                        b"read recursive /a/\n", b"write recursive\n", b"write recursive \n",
                        b"write recursive //a\n", b"write  recursive /a\n",
                        b" write recursive /a\n", b"WRITE recursive /a\n",
                        b"write RECURSIVE /a\n", b"write recursive /a\\000b\n",
                        b"write recursive /a\\400\n", b"write recursive /a\\12\n",
                        b"write recursive /a\\\n", b"write recursive /a\\x41\n",
                        b"write recursive /a\\057..\\057b\n", b"write recursive /\\056\\056\n",
                        b"write recursive /a\xff\n", b"write recursive /a\xc0\xaf\n",
                        b"write recursive /a\xed\xa0\x80\n", b"\0", b"\0\n",
                        b"write recursive /a\0\n", b"write recursive /a\n\n",
                        b"\n\n", b"write recursive /a\n\nread recursive /b\n",
                        b"write\trecursive\t/a\n", b"\xef\xbb\xbfwrite recursive /a\n"):
                self.add("allow %r" % bad[:40], E.EINVAL, write, f, bad)
                self.add("append allow %r" % bad[:40], E.EINVAL, write, f, bad,
                         os.O_WRONLY | os.O_APPEND)
        # sizes
        self.add("allow 64 KiB + 1", E.EFBIG, write, allow, b"x" * 65537)
        self.add("allow 1 MiB", E.EFBIG, write, allow, b"read recursive /a\n" * 58255)
        self.add("allow 10,000 rules", E.EFBIG, write, allow, b"read shallow /a\n" * 10000)
        self.add("allow 10,000 write rules", E.EFBIG, write, allow,
                 b"".join(b"write recursive /a/%d\n" % i for i in range(10000)))
        self.add("append 10,000 rules", E.EFBIG, write, allow, b"read shallow /a\n" * 10000,
                 os.O_WRONLY | os.O_APPEND)
        self.add("allow 16 MiB of NUL", E.EFBIG, write, allow, b"\0" * (16 << 20))
        self.add("allow at offset 5", E.EINVAL, write, allow, b"read recursive /x\n",
                 os.O_WRONLY, 5)
        # pid
        pidf = P("p", "pid")
        for bad in (b"abc", b"-1", b"0", b"\n", b"", b" ", b"99999999999999999999",
                    b"2147483648", b"4294967296", b"1 2", b"+5", b"0x10", b"1.5", b"1\0",
                    b"\0", b"\xff", b"12\n34\n", b"1e3", b"\xd9\xa1"):
            if bad == b"":
                continue  # an empty write(2) never reaches the daemon
            self.add("pid %r" % bad, E.EINVAL, write, pidf, bad)
        self.add("pid of no process", E.ESRCH, write, pidf, b"%d" % self.free_pid())
        self.add("pid 64 KiB + 1", E.EFBIG, write, pidf, b"1" * 65537)
        # session
        sess = P("p", "session")
        good = "0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f6"
        for bad in ("not-a-uuid", "{%s}" % good, good.replace("-", ""), good[:-1],
                    good + "0", good.replace("a", "g"), "\n", good + "\n" + good,
                    "urn:uuid:" + good, " " + good, good.replace("-", "_")):
            self.add("session %r" % bad, E.EINVAL, write, sess, bad.encode())
        self.add("session with NUL", E.EINVAL, write, sess, good.encode() + b"\0")
        self.add("session non-UTF-8", E.EINVAL, write, sess, b"\xff" + good.encode()[1:])
        self.add("session 64 KiB + 1", E.EFBIG, write, sess, b"a" * 65537)
        # socket
        sock = P("p", "socket")
        for bad in (b"sock", b"relative/sock\n", b"./sock", b"../sock", b"~/sock",
                    b"/a\0b\n", b"\0", b"/a\xff\n", b"/\xc3\n", b" /sock\n"):
            self.add("socket %r" % bad, E.EINVAL, write, sock, bad)
        self.add("socket 64 KiB + 1", E.EFBIG, write, sock, b"/" + b"s" * 65536)
        # read-only files and special entries
        self.add("write delegated_from", E.EACCES, write, P("c", "delegated_from"), b"p\n")
        self.add("write .events", E.EACCES, write, P(".events"), b"x\n", os.O_WRONLY)
        # names
        for parent in ((), ("p",)):
            self.add("mkdir 256-byte name", E.EINVAL, os.mkdir, P(*parent, "n" * 256))
            self.add("mkdir 1024-byte name", LONG, os.mkdir, P(*parent, "n" * 1024))
            self.add("mkdir 1025-byte name", LONG, os.mkdir, P(*parent, "n" * 1025))
            self.add("mkdir 5000-byte name", E.ENAMETOOLONG, os.mkdir, P(*parent, "n" * 5000))
            for bad in (".x", "..x", ".hidden", "allow", "pid", "session", "socket",
                        "delegated_from"):
                # inside a pod, a pod file's name is taken by the file
                self.add("mkdir %r" % bad, E.EEXIST if parent and not bad.startswith(".")
                         else E.EINVAL, os.mkdir, P(*parent, bad))
            self.add("mkdir ..", E.EEXIST, os.mkdir, P(*parent, ".."))
            self.add("mkdir .", E.EEXIST, os.mkdir, P(*parent, "."))
            for bad in (b"\xff", b"a\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80",
                        b"a\xe2\x82", b"\xfe\xfe\xff\xff", b"\x80"):
                self.add("mkdir non-UTF-8 %r" % bad, E.EINVAL, os.mkdir, P(*parent, bad))
            self.add("mkdir existing", E.EEXIST, os.mkdir, P(*parent, "c"))
        self.add("mkdir 255 bytes under a missing parent", E.ENOENT, os.mkdir,
                 P("ghost", "n" * 255))
        self.add("mkdir in a file", E.ENOTDIR, os.mkdir, P("p", "allow", "x"))
        self.add("mkdir in .events", E.ENOTDIR, os.mkdir, P(".events", "x"))
        self.add("mkdir in .by-session", E.EPERM, os.mkdir, P(".by-session", "x"))
        self.add("rmdir missing", E.ENOENT, os.rmdir, P("ghost"))
        self.add("rmdir 256-byte name", LONG + (E.ENOENT,), os.rmdir, P("n" * 256))
        self.add("rmdir .events", E.ENOTDIR, os.rmdir, P(".events"))
        self.add("rmdir .by-session", E.EPERM, os.rmdir, P(".by-session"))
        self.add("rmdir a file", E.ENOTDIR, os.rmdir, P("p", "allow"))
        self.add("rmdir a non-child", E.ENOENT, os.rmdir, P("c", "p"))
        # refused file operations
        self.add("create at the root", E.EPERM, lambda p: os.close(os.open(p, os.O_CREAT |
                                                                                os.O_WRONLY)),
                 P("f"))
        self.add("create in a pod", E.EPERM, lambda p: os.close(os.open(p, os.O_CREAT |
                                                                              os.O_WRONLY)),
                 P("p", "f"))
        self.add("mknod", E.EPERM, os.mknod, P("n"))
        self.add("unlink allow", E.EPERM, os.unlink, P("p", "allow"))
        self.add("rename a pod", E.EPERM, os.rename, P("p"), P("q"))
        self.add("rename a file", E.EPERM, os.rename, P("p", "allow"), P("p", "pid"))
        self.add("symlink", E.EPERM, os.symlink, b"x", P("s"))
        self.add("link", E.EPERM, os.link, P("p", "allow"), P("p", "a2"))
        self.add("chmod", E.EPERM, os.chmod, P("p", "allow"), 0o777)
        self.add("chown", E.EPERM, os.chown, P("p", "allow"), 1, 1)
        self.add("setxattr", (E.EPERM, E.ENOTSUP), os.setxattr, P("p", "allow"), "user.x", b"1")

    def free_pid(self):
        with open("/proc/sys/kernel/pid_max") as f:
            pid_max = int(f.read())
        for pid in range(pid_max - 1, 300, -1):
            if not os.path.exists("/proc/%d" % pid):
                return pid
        raise AssertionError("no free pid")

    # ---- random cases, each malformed by construction ----

    def bad_line(self):
        r = self.rng
        perm = r.choice(["read", "write"])
        rec = r.choice(["recursive", "shallow"])
        target = "/" + "/".join(r.choice(["a", "b", "src", "x y", "t\\011u"])
                                for _ in range(r.randint(1, 4)))
        what = r.randrange(12)
        if what == 0:
            perm = r.choice(["", "writ", "READ", "rw", "w", "execute", "write,", "réad"])
        elif what == 1:
            rec = r.choice(["", "rec", "Recursive", "deep", "shallow,", "recursively"])
        elif what == 2:
            target = target.lstrip("/") or "a"
        elif what == 3:
            target += r.choice(["/..", "/.", "/", "/../x", "/./x"])
        elif what == 4:
            target = target.replace("/", "//", 1)
        elif what == 5:
            target += r.choice(["\\", "\\0", "\\01", "\\400", "\\777", "\\9", "\\000",
                                "\\x00", "\\u0041", "\\057..", "/\\056\\056"])
        elif what == 6:
            return (perm + " " + rec + " ").encode() + target.encode() + \
                r.choice([b"\xff", b"\xc3", b"\xc0\x80", b"\xed\xb0\x80", b"\x80abc"])
        elif what == 7:
            return (perm + " " + rec).encode()
        elif what == 8:
            return (perm + r.choice(["  ", "\t", " \t "]) + rec + " " + target).encode()
        elif what == 9:
            return target.encode()
        elif what == 10:
            return (perm + " " + rec + " " + target).encode().replace(b"/", b"/\0", 1)
        else:
            target = ""
        return (perm + " " + rec + " " + target).encode()

    def good_line(self, pod):
        base = "/a" if pod == "p" else "/a/b"
        return ("read recursive %s/%d" % (base, self.rng.randint(0, 99))).encode()

    def random(self, n):
        r, P = self.rng, self.P
        kinds = ["lines"] * 30 + ["binary"] * 20 + ["names"] * 15 + ["pid"] * 10 + \
            ["session"] * 10 + ["socket"] * 10 + ["big"] * 5
        for _ in range(n):
            k = r.choice(kinds)
            pod = self.file()
            if k == "lines":
                lines = [self.good_line(pod[-1]) for _ in range(r.randint(0, 5))]
                lines.insert(r.randint(0, len(lines)), self.bad_line())
                data = b"\n".join(lines) + (b"\n" if r.random() < 0.8 else b"")
                flags = os.O_WRONLY | (os.O_APPEND if r.random() < 0.3 else os.O_TRUNC)
                self.add("allow lines %r" % data[:60], E.EINVAL, write, P(*pod, "allow"), data,
                         flags)
            elif k == "binary":
                data = b"\0" + bytes(r.randrange(256) for _ in range(r.randint(0, 3000)))
                f = r.choice(["allow", "pid", "session", "socket"])
                self.add("%s binary %d bytes" % (f, len(data)), E.EINVAL, write,
                         P(*pod, f), data)
            elif k == "names":
                how = r.randrange(4)
                if how == 0:
                    name = bytes(r.choice(b"abcxyz") for _ in range(r.randint(256, 1000)))
                    exp = LONG
                elif how == 1:
                    name = b"\xff" + bytes(r.choice(range(0x80, 0x100))
                                           for _ in range(r.randint(0, 60)))
                    exp = E.EINVAL
                elif how == 2:
                    name = b"." + bytes(r.choice(b"abc.-_") for _ in range(r.randint(1, 40)))
                    exp = E.EEXIST if name == b".." else E.EINVAL  # ".." exists
                else:
                    name = bytes(r.choice(b"abc") for _ in range(r.randint(1, 100))) + \
                        r.choice([b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xc0\xaf", b"\xff"])
                    exp = E.EINVAL
                self.add("mkdir name %r" % name[:40], exp, os.mkdir, P(*pod[:-1], name)
                         if len(pod) > 1 and r.random() < 0.5 else P(name))
            elif k == "pid":
                data = r.choice([b"-", b"x", b" 1 2", b"0", b"00", b"1e9", b"0b1", b"\t\n"]) + \
                    bytes(r.choice(b"0123456789abc -+\n\0") for _ in range(r.randint(0, 12)))
                if data.strip(b" \t\n").isdigit() and int(data) > 0:
                    continue
                self.add("pid %r" % data, E.EINVAL, write, P(*pod, "pid"), data)
            elif k == "session":
                u = bytearray(su.fresh_uuid().encode())
                i = r.randrange(len(u))
                u[i] = r.choice(b"gz_ \0\xff{}")  # never a hex digit nor a dash
                self.add("session %r" % bytes(u), E.EINVAL, write, P(*pod, "session"),
                         bytes(u) + b"\n")
            elif k == "socket":
                data = r.choice([b"", b"x", b".", b"..", b"~", b" /"]) + \
                    bytes(r.choice(b"abc/._-") for _ in range(r.randint(1, 80)))
                if data.startswith(b"/"):
                    continue
                self.add("socket %r" % data[:40], E.EINVAL, write, P(*pod, "socket"), data)
            else:
                size = r.randint(65537, 4 << 20)
                f = r.choice(["allow", "pid", "session", "socket"])
                self.add("%s %d bytes" % (f, size), E.EFBIG, write, P(*pod, f),
                         b"read recursive /a\n" * (size // 18 + 1))


def main():
    su.require_fuse()
    seed = int(os.environ.get("SCOPEFS_STRESS_SEED") or random.randrange(1 << 30))
    tmp = su.new_tmp("scopefs-badinput-")
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    table = os.path.join(tmp, "run", "scope.lock")
    os.makedirs(os.path.dirname(table), mode=0o700)
    d = su.Daemon(mnt, table, log=os.path.join(tmp, "scopefs.log"))
    failures = []
    try:
        os.mkdir(os.path.join(mnt, "p"))
        write(os.path.join(mnt, "p", "allow"), b"write recursive /a\nread recursive /r\n")
        os.mkdir(os.path.join(mnt, "p", "c"))
        write(os.path.join(mnt, "c", "allow"), b"write recursive /a/b\n")
        write(os.path.join(mnt, "p", "socket"), b"/run/p.sock\n")
        views = {f: open(os.path.join(mnt, "p", f), "rb").read()
                 for f in ("allow", "pid", "session", "socket")}
        before = su.read_table_bytes(table)

        cases = Cases(mnt, random.Random(seed))
        cases.fixed()
        nfixed = len(cases.cases)
        while len(cases.cases) < 1000:
            cases.random(1000 - len(cases.cases))
        by_errno = {}
        for desc, expect, fn, args, kw in cases.cases:
            try:
                fn(*args, **kw)
                failures.append("%s: accepted, expected %s" %
                                (desc, "/".join(errno.errorcode[e] for e in expect)))
            except OSError as e:
                by_errno[errno.errorcode.get(e.errno, e.errno)] = \
                    by_errno.get(errno.errorcode.get(e.errno, e.errno), 0) + 1
                if e.errno not in expect:
                    failures.append("%s: %s, expected %s" %
                                    (desc, errno.errorcode.get(e.errno, e.errno),
                                     "/".join(errno.errorcode[x] for x in expect)))
            if not d.alive():
                failures.append("the daemon died at: %s" % desc)
                break
        after = su.read_table_bytes(table)
        if after != before:
            failures.append("the table changed:\n--- before\n%s\n--- after\n%s" %
                            (before.decode(errors="replace"), after.decode(errors="replace")))
        for f, v in views.items():
            now = open(os.path.join(mnt, "p", f), "rb").read()
            if now != v:
                failures.append("p/%s shows %r, before %r" % (f, now, v))
        su.log("badinput: seed %d, %d malformed operations (%d fixed, %d random), errnos %s" %
               (seed, len(cases.cases), nfixed, len(cases.cases) - nfixed,
                dict(sorted(by_errno.items()))))
        su.log("badinput: daemon alive %s, table byte-identical %s" %
               (d.alive(), after == before))
    finally:
        if d.alive():
            rc = d.stop()
            if rc:
                failures.append("the daemon exited %s" % rc)
        else:
            su.lazy_unmount(mnt)
    su.log("badinput: %d failures" % len(failures))
    for f in failures[:200]:
        su.log("  FAIL " + f)
    if failures:
        su.log("badinput: files kept in %s" % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
