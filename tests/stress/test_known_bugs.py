#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Bugs the stress tests found, each kept as a regression test: every one
of these failed before its fix (what it was and how it is fixed below).

    test_known_bugs.py kill-wedge
        SIGKILL of the daemon while clients mkdir/rmdir at the root: the
        daemon must die (and release the table's flock) at once.  Before the fix one
        of its threads is often left in the kernel in
        fuse_reverse_inval_entry, waiting for the root directory's lock,
        which a client's mkdir holds while it waits for an answer that the
        dead daemon will never send: the daemon cannot finish dying, its
        clients hang unkillably, and if the kill came during a change the
        table's flock stays held, blocking every other user of the table
        (the original's pods, a new daemon) until someone aborts the
        connection (umount -f, or .../fuse/connections/N/abort).

    test_known_bugs.py stale-mount
        A new daemon started on a mountpoint where a killed daemon's mount
        is left (ENOTCONN) must mount (or take the stale mount over); before the fix
        it exits 1 with "fuse: failed to access mountpoint ...: Transport
        endpoint is not connected", so restarting after a crash needs a
        manual `fusermount3 -u -z` first.

    test_known_bugs.py journal-unlinked
        A core user (the daemon, scope_driver) keeps its journal open after
        its first save.  If the journal file is removed meanwhile (a
        temporary-file cleaner, a user tidying up), later saves write their
        journal into the unlinked inode; a crash in the middle of such a
        save leaves the table poisoned (NUL first byte) with no journal
        under its name, and every later open fails ("was left half-written
        and its journal ... cannot finish the save"): the table is lost
        until repaired by hand, against "the next open finds the whole old
        table or the whole new one".

    interpose (a C program, interpose.c)
        libscope.so exports the core's internal helpers (sbuf_add,
        table_append, json_parse_table, proc_tgid, ...) with default
        visibility, so a program on the core that defines a function of
        the same name replaces the core's own: the core then calls the
        program's function.  The daemon itself defines proc_tgid with
        another signature than the core's (harmless before the fix only because the
        core never calls its own).

Fixes: the daemon forks a small guard (fs/guard.c) that aborts the
    connection through fusectl when the session's thread dies, which
    answers the waiting client and lets the daemon die; a new daemon
    detaches a dead mount before mounting; the core writes only to the
    journal that has the name (core/file.c); libscope exports only the
    scope_* API (core/libscope.map).
"""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stressutil as su  # noqa: E402


def kill_wedge(kills=20):
    wedged = []
    for i in range(kills):
        tmp = su.new_tmp("scopefs-wedge-")
        mnt = os.path.join(tmp, "mnt")
        os.mkdir(mnt)
        table = os.path.join(tmp, "scope.lock")
        d = su.Daemon(mnt, table, log=os.path.join(tmp, "log"))
        stop = threading.Event()

        def churn(t):
            n = 0
            while not stop.is_set():
                n += 1
                p = os.path.join(mnt, "t%d-%d" % (t, n))
                try:
                    os.mkdir(p)
                    os.rmdir(p)
                except OSError:
                    return

        ts = [threading.Thread(target=churn, args=(t,), daemon=True) for t in range(3)]
        for t in ts:
            t.start()
        time.sleep(0.05)
        d.sigkill(wedge=lambda threads: wedged.append((i, threads)))
        stop.set()
        for t in ts:
            t.join(10)
        su.lazy_unmount(mnt)
        shutil.rmtree(tmp, ignore_errors=True)
    for i, threads in wedged:
        su.log("kill %d: the daemon was still there 0.5 s after SIGKILL, threads %s" %
               (i, threads))
    su.log("kill-wedge: %d of %d SIGKILLs left the daemon unable to die until its connection "
           "was aborted" % (len(wedged), kills))
    return not wedged


def stale_mount():
    tmp = su.new_tmp("scopefs-stale-")
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    table = os.path.join(tmp, "scope.lock")
    try:
        d = su.Daemon(mnt, table, log=os.path.join(tmp, "log"))
        os.mkdir(os.path.join(mnt, "kept"))
        d.sigkill()
        try:
            os.stat(mnt)
            su.log("stale-mount: the dead mount still answers stat (unexpected)")
        except OSError as e:
            su.log("stale-mount: the killed daemon's mount answers %s" % e)
        r = subprocess.Popen([su.SCOPEFS, "-f", "-o", "table=" + table, mnt],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 5
        ok = False
        while time.monotonic() < deadline and r.poll() is None:
            try:
                if "kept" in os.listdir(mnt):
                    ok = True
                    break
            except OSError:
                pass
            time.sleep(0.02)
        if r.poll() is None:
            subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
            try:
                r.wait(10)
            except subprocess.TimeoutExpired:
                r.kill()
                r.wait()
        out = r.stdout.read().decode(errors="replace").strip()
        su.log("stale-mount: a new daemon on the same mountpoint: exit %s, %s; output: %s" %
               (r.returncode, "serves the table" if ok else "does not serve it", out))
        return ok
    finally:
        su.lazy_unmount(mnt)
        su.lazy_unmount(mnt)
        shutil.rmtree(tmp, ignore_errors=True)


def journal_unlinked(tries=50):
    import random
    rng = random.Random(1)
    tmp = su.new_tmp("scopefs-journal-")
    table = os.path.join(tmp, "scope.lock")
    try:
        for i in range(tries):
            p = subprocess.Popen([su.DRIVER, table, "saver", str(os.getpid()), str(i + 1)],
                                 stdout=subprocess.PIPE)
            time.sleep(0.02)  # its first saves opened the journal
            try:
                os.unlink(table + ".journal")
            except FileNotFoundError:
                pass
            time.sleep(rng.uniform(0.001, 0.02))
            p.send_signal(signal.SIGKILL)
            p.communicate()
            with open(table, "rb") as f:
                poisoned = f.read(1) == b"\0"
            r = subprocess.run([su.DRIVER, table, "dump"], capture_output=True, text=True)
            if r.returncode:
                su.log("journal-unlinked: kill %d (mid-save: %s): a fresh open fails: %s" %
                       (i, poisoned, r.stderr.strip()))
                return False
        su.log("journal-unlinked: %d kills, every fresh open found a whole table" % tries)
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    su.require_fuse()
    ok = {"kill-wedge": kill_wedge, "stale-mount": stale_mount,
          "journal-unlinked": journal_unlinked}[sys.argv[1]]()
    su.log("%s: %s" % (sys.argv[1], "fixed" if ok else "KNOWN BUG still there"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
