#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""One run of the daemon under valgrind (memcheck): a representative
sequence of operations (mkdir, allow, pid, session, socket, delegate,
.by-session, .events read and a reader killed while blocked, refusals, a
foreign write, a reap, rmdir), then a clean unmount.  Fails on any memcheck
error or definite leak (--errors-for-leak-kinds=definite).

Skips (77) on a sanitized build, which valgrind cannot run."""

import errno
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stressutil as su  # noqa: E402

VG_EXIT = 99


def write(path, data, flags=os.O_WRONLY | os.O_TRUNC):
    fd = os.open(path, flags)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)


def expect_errno(code, fn, *args):
    try:
        fn(*args)
    except OSError as e:
        if e.errno != code:
            raise AssertionError("%s%r: %s, expected %s" % (fn.__name__, args, e,
                                                            errno.errorcode[code]))
        return
    raise AssertionError("%s%r succeeded, expected %s" % (fn.__name__, args,
                                                          errno.errorcode[code]))


def wait_for(pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def sequence(mnt, table):
    P = lambda *a: os.path.join(mnt, *a)  # noqa: E731
    events = os.open(P(".events"), os.O_RDONLY | os.O_NONBLOCK)
    os.mkdir(P("a"))
    write(P("a", "allow"), "write recursive /src\nread shallow /doc\n")
    write(P("a", "allow"), "write shallow /tmp/x\n", os.O_WRONLY | os.O_APPEND)
    write(P("a", "pid"), str(os.getpid()))
    write(P("a", "session"), "0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f6\n")
    write(P("a", "socket"), "/run/a.sock\n")
    os.mkdir(P("a", "kid"))
    write(P("kid", "allow"), "write recursive /src/kid\n")
    for f in ("allow", "pid", "session", "socket", "delegated_from"):
        with open(P("a", "kid", f), "rb") as fh:
            fh.read()
    os.listdir(mnt)
    os.listdir(P("a"))
    os.listdir(P(".by-session"))
    os.readlink(P(".by-session", "0192f3c4-5b6a-7c8d-9e0f-a1b2c3d4e5f6"))
    # refusals
    os.mkdir(P("b"))
    expect_errno(errno.EBUSY, write, P("b", "allow"), "write recursive /src/x\n")
    expect_errno(errno.EINVAL, write, P("b", "allow"), "nonsense\n")
    expect_errno(errno.EPERM, write, P("kid", "allow"), "write recursive /elsewhere\n")
    expect_errno(errno.EEXIST, os.mkdir, P("a"))
    expect_errno(errno.EPERM, os.unlink, P("a", "allow"))
    # .events: what happened so far, then a poll, then a blocked reader killed
    lines = b""
    try:
        while True:
            lines += os.read(events, 65536)
    except BlockingIOError:
        pass
    if b"register a" not in lines:
        raise AssertionError(".events missed `register a`: %r" % lines)
    os.mkdir(P("c"))
    r, _, _ = select.select([events], [], [], 10)
    if not r:
        raise AssertionError(".events did not become readable")
    os.read(events, 65536)
    reader = subprocess.Popen([sys.executable, "-c",
                               "import sys; open(sys.argv[1], 'rb', buffering=0).read(100)",
                               P(".events")])
    time.sleep(1.0)
    reader.send_signal(signal.SIGKILL)
    reader.wait(30)
    # a foreign write on the original's protocol
    with su.ForeignFile(table) as f:
        f.table["allocations"].append(su.new_alloc("foreign", os.getpid(), "", [
            {"target": "/f", "permission": "write", "recursive": True}], None, None))
        f.save()
    if not wait_for(lambda: os.path.exists(P("foreign")), 10):
        raise AssertionError("the foreign pod never showed")
    # a reap: the owner dies
    p = subprocess.Popen(["sleep", "600"])
    write(P("c", "pid"), str(p.pid))
    p.kill()
    p.wait()
    if not wait_for(lambda: not os.path.exists(P("c")), 15):
        raise AssertionError("the dead owner's pod was not reaped")
    # releases, with a reparent
    os.mkdir(P("kid", "grand"))
    os.rmdir(P("a", "kid"))
    os.rmdir(P("a"))
    os.rmdir(P("b"))
    os.rmdir(P("grand"))
    os.rmdir(P("foreign"))
    os.close(events)
    left = su.allocations(su.read_table(table))
    if left:
        raise AssertionError("pods left: %s" % [a["pod_name"] for a in left])


def main():
    if su.SANITIZED:
        print("valgrind cannot run a sanitized build: skipped")
        sys.exit(77)
    su.require_fuse()
    valgrind = shutil.which("valgrind")
    if not valgrind:
        raise RuntimeError("valgrind is missing")
    tmp = su.new_tmp("scopefs-valgrind-")
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    table = os.path.join(tmp, "run", "scope.lock")
    vglog = os.path.join(tmp, "valgrind.log")
    wrapper = [valgrind, "--tool=memcheck", "--leak-check=full",
               "--errors-for-leak-kinds=definite", "--error-exitcode=%d" % VG_EXIT,
               "--sim-hints=fuse-compatible", "--track-fds=no", "--num-callers=30",
               "--log-file=" + vglog]
    # the same objects as SCOPEFS, without an $ORIGIN runpath (meson.build)
    daemon = os.environ.get("SCOPEFS_VG") or su.SCOPEFS
    d = su.Daemon(mnt, table, log=os.path.join(tmp, "scopefs.log"), wrapper=wrapper,
                  timeout=120, program=daemon)
    failed = None
    try:
        sequence(mnt, table)
    except Exception as e:  # report it with valgrind's findings
        failed = e
    rc = d.stop(timeout=120) if d.alive() else d.proc.returncode
    with open(vglog) as f:
        log = f.read()
    summary = re.search(r"ERROR SUMMARY: (\d+) errors", log)
    definite = re.search(r"definitely lost: ([\d,]+) bytes", log)
    print("valgrind: daemon exit %s, %s, definitely lost %s bytes" %
          (rc, summary.group(0) if summary else "no summary",
           definite.group(1) if definite else "0"))
    ok = failed is None and rc == 0 and summary and summary.group(1) == "0"
    if not ok:
        if failed:
            print("the sequence failed: %s" % failed)
        print(log[-20000:])
        print("daemon output:\n" + d.output()[-5000:])
        print("files kept in %s" % tmp)
        sys.exit(1)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
