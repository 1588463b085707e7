#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""mount.scopefs, run by path and through mount(8) (-t fuse.scopefs,
-t scopefs, fstab lines): option passing, the dropped fstab options, the
source and table= agreeing, every error printed with a non-zero status, and
umount / fusermount3 -u."""

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

import mountutil
from mountutil import (DAEMON, HELPER, VERSION, MountCase, SbinLinks, daemons_on, mounts_at,
                       pods, read, write_table)

RULES = [("write", True, "/srv/alpha"), ("read", False, "/srv/docs")]
ALLOW = b"write recursive /srv/alpha\nread shallow /srv/docs\n"
DROPPED = ["auto", "noauto", "user", "users", "nouser", "owner", "group", "nofail", "_netdev",
           "defaults", "comment=systemd.automount", "x-systemd.device-timeout=5",
           "X-mount.mode=0755"]


class Direct(MountCase):
    """The helper run by path, as mount(8) runs it."""

    def helper(self, *args, **kw):
        return self.run_cmd([HELPER] + list(args), **kw)

    def test_mount_shows_the_table_and_umount(self):
        write_table(self.table, {"alpha": RULES})
        r = self.helper(self.table, self.mnt)
        self.assertOk(r)
        self.assertEqual(r.stdout + r.stderr, "")
        self.assertMounted(self.table)
        self.assertEqual(pods(self.mnt), ["alpha"])
        self.assertEqual(read(os.path.join(self.mnt, "alpha", "allow")), ALLOW)
        self.assertEqual(read(os.path.join(self.mnt, "alpha", "pid")), b"%d\n" % os.getpid())
        self.assertEqual(len(daemons_on(self.mnt)), 1)
        self.assertOk(self.run_cmd(["umount", self.mnt]))
        self.assertNotMounted()
        self.assertTrue(self.wait_no_daemon())

    def wait_no_daemon(self, timeout=5):
        deadline = time.monotonic() + timeout
        while daemons_on(self.mnt):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def test_fusermount_unmounts(self):
        self.assertOk(self.helper(self.table, self.mnt))
        self.assertMounted(self.table)
        self.assertOk(self.run_cmd(["fusermount3", "-u", self.mnt]))
        self.assertNotMounted()
        self.assertTrue(self.wait_no_daemon())

    def test_changes_through_the_mount_reach_the_table(self):
        self.assertOk(self.helper(self.table, self.mnt))
        os.mkdir(os.path.join(self.mnt, "beta"))
        with open(os.path.join(self.mnt, "beta", "pid"), "w") as f:
            f.write("%d\n" % os.getpid())
        self.assertIn(b'"beta"', read(self.table))

    def test_missing_table_and_directory_are_created(self):
        table = os.path.join(self.tmp, "new", "deeper", "scope.lock")
        self.assertOk(self.helper(table, self.mnt))
        self.assertMounted(table)
        self.assertEqual(os.stat(table).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(os.path.dirname(table)).st_mode & 0o777, 0o700)
        self.assertEqual(pods(self.mnt), [])

    def test_corrupt_table_is_refused_and_untouched(self):
        os.makedirs(os.path.dirname(self.table))
        bad = b'{"allocations": [ {"pod_name": "x",'
        with open(self.table, "wb") as f:
            f.write(bad)
        os.chmod(self.table, 0o600)
        before = os.stat(self.table)
        r = self.helper(self.table, self.mnt)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.returncode, 32)
        self.assertIn(self.table, r.stderr)
        self.assertIn("mount.scopefs: mounting scopefs on `%s` failed" % self.mnt, r.stderr)
        self.assertNotMounted()
        self.assertEqual(read(self.table), bad)
        after = os.stat(self.table)
        self.assertEqual((after.st_mtime_ns, after.st_ino), (before.st_mtime_ns, before.st_ino))
        self.assertEqual(daemons_on(self.mnt), [])

    def test_missing_mountpoint(self):
        missing = os.path.join(self.tmp, "nowhere")
        r = self.helper(self.table, missing)
        self.assertEqual(r.returncode, 32)
        self.assertIn("mountpoint `%s`: No such file or directory" % missing, r.stderr)
        self.assertFalse(os.path.exists(missing))
        self.assertFalse(os.path.exists(self.table), "the table is made only for a mount")

    def test_mountpoint_not_a_directory(self):
        path = os.path.join(self.tmp, "file")
        open(path, "w").close()
        r = self.helper(self.table, path)
        self.assertEqual(r.returncode, 32)
        self.assertIn("is not a directory", r.stderr)

    def test_busy_mountpoint(self):
        self.assertOk(self.helper(self.table, self.mnt))
        other = os.path.join(self.tmp, "other.lock")
        r = self.helper(other, self.mnt)
        self.assertEqual(r.returncode, 32)
        self.assertIn("mountpoint `%s` is busy: fuse.scopefs is already mounted there" %
                      self.mnt, r.stderr)
        self.assertMounted(self.table)
        self.assertFalse(os.path.exists(other))

    def test_busy_with_another_file_system(self):
        self.assertOk(self.run_cmd(["mount", "-t", "tmpfs", "none", self.mnt]))
        r = self.helper(self.table, self.mnt)
        self.assertEqual(r.returncode, 32)
        self.assertIn("tmpfs is already mounted there", r.stderr)

    def test_dead_mount_is_taken_over(self):
        self.assertOk(self.helper(self.table, self.mnt))
        for pid in daemons_on(self.mnt):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while True:
            try:
                os.stat(self.mnt)
            except OSError as e:
                self.assertIn(e.errno, (errno.ENOTCONN, errno.ECONNABORTED))
                break
            self.assertLess(time.monotonic(), deadline, "the daemon did not die")
            time.sleep(0.02)
        # A crash leaves a dead mount: mounting again needs no hand work.
        self.assertOk(self.helper(self.table, self.mnt))
        os.stat(self.mnt)
        self.assertOk(self.run_cmd(["fusermount3", "-u", self.mnt]))
        self.assertNotMounted()

    def test_source_and_table_option_disagree(self):
        other = os.path.join(self.tmp, "other", "scope.lock")
        r = self.helper(self.table, self.mnt, "-o", "table=" + other)
        self.assertEqual(r.returncode, 1)
        self.assertIn("the source `%s` and the option `table=%s` name different tables" %
                      (self.table, other), r.stderr)
        self.assertNotMounted()
        self.assertFalse(os.path.exists(self.table))
        self.assertFalse(os.path.exists(other))

    def test_two_table_options_disagree(self):
        r = self.helper("none", self.mnt, "-o", "table=/a/scope.lock,table=/b/scope.lock")
        self.assertEqual(r.returncode, 1)
        self.assertIn("conflicting options", r.stderr)
        self.assertNotMounted()

    def test_source_and_table_option_agree(self):
        write_table(self.table, {"alpha": RULES})
        # Another spelling of the same file.
        other = os.path.join(self.tmp, "run", "..", "run", "scope.lock")
        self.assertOk(self.helper(self.table, self.mnt, "-o", "table=" + other))
        self.assertEqual(pods(self.mnt), ["alpha"])

    def test_source_and_table_option_agree_before_the_table_exists(self):
        os.makedirs(os.path.join(self.tmp, "run"))
        os.symlink("run", os.path.join(self.tmp, "alias"))
        other = os.path.join(self.tmp, "alias", "scope.lock")
        self.assertOk(self.helper(self.table, self.mnt, "-o", "table=" + other))
        self.assertMounted(self.table)
        self.assertTrue(os.path.isfile(self.table))

    def test_default_table(self):
        for source in ("none", "-"):
            with self.subTest(source=source):
                rt = os.path.join(self.tmp, "rt-" + source)
                env = dict(os.environ, INSOMNIA_RUNTIME_DIR=rt)
                write_table(os.path.join(rt, "scope.lock"), {"dflt": []})
                self.assertOk(self.helper(source, self.mnt, env=env))
                self.assertMounted(os.path.join(rt, "scope.lock"))
                self.assertEqual(pods(self.mnt), ["dflt"])
                self.cleanup_mounts()

    def test_none_with_table_option(self):
        write_table(self.table, {"alpha": RULES})
        self.assertOk(self.helper("none", self.mnt, "-o", "table=" + self.table))
        self.assertMounted(self.table)
        self.assertEqual(pods(self.mnt), ["alpha"])

    def test_relative_source(self):
        write_table(self.table, {"alpha": RULES})
        self.assertOk(self.helper("run/scope.lock", "mnt", cwd=self.tmp))
        self.assertMounted(self.table)
        self.assertEqual(pods(self.mnt), ["alpha"])

    def test_quoted_table_with_a_comma(self):
        table = os.path.join(self.tmp, "a,b", "scope.lock")
        write_table(table, {"comma": []})
        self.assertOk(self.helper("none", self.mnt, "-o", 'noatime,table="%s"' % table))
        opts = self.assertMounted(table)
        self.assertIn("noatime", opts)
        self.assertEqual(pods(self.mnt), ["comma"])

    def test_fstab_only_options_are_dropped(self):
        opts = ",".join(DROPPED + ["noatime"])
        r = self.helper(self.table, self.mnt, "-f", "-v", "-o", opts)
        self.assertOk(r)
        run = [l for l in r.stderr.splitlines() if l.startswith("mount.scopefs: running ")]
        self.assertEqual(len(run), 1, r.stderr)
        argv = run[0].split()[2:]
        self.assertEqual(argv, [os.path.realpath(DAEMON), "-o",
                                "table=%s,noatime" % self.table, self.mnt])
        self.assertNotMounted()
        self.assertFalse(os.path.exists(self.table), "-f mounts and creates nothing")
        # And for real: the daemon would refuse any of them as unknown.
        r = self.helper(self.table, self.mnt, "-o", opts)
        self.assertOk(r)
        self.assertIn("noatime", self.assertMounted(self.table))

    def test_options_reach_the_daemon(self):
        write_table(self.table, {"alpha": RULES})
        self.assertOk(self.helper(self.table, self.mnt, "-n", "-s", "-t", "fuse.scopefs",
                                  "-o", "rw,allow_other,noatime,nodev"))
        opts = self.assertMounted(self.table)
        for o in ("allow_other", "default_permissions", "noatime", "nodev", "rw"):
            self.assertIn(o, opts)
        self.assertEqual(pods(self.mnt), ["alpha"])

    def test_read_only(self):
        write_table(self.table, {"alpha": RULES})
        self.assertOk(self.helper(self.table, self.mnt, "-o", "ro"))
        self.assertIn("ro", self.assertMounted(self.table))
        with self.assertRaises(OSError) as cm:
            os.mkdir(os.path.join(self.mnt, "beta"))
        self.assertEqual(cm.exception.errno, errno.EROFS)

    def test_unknown_option_is_the_daemons_error(self):
        r = self.helper(self.table, self.mnt, "-o", "no_such_option")
        self.assertEqual(r.returncode, 32)
        self.assertIn("no_such_option", r.stderr)
        self.assertNotMounted()

    def test_remount_is_refused(self):
        r = self.helper(self.table, self.mnt, "-o", "remount")
        self.assertEqual(r.returncode, 1)
        self.assertIn("remount", r.stderr)

    def test_bad_invocations(self):
        for args in ([], [self.table], [self.table, self.mnt, "extra"], ["-q", self.table, self.mnt]):
            with self.subTest(args=args):
                r = self.helper(*args)
                self.assertEqual(r.returncode, 1)
                self.assertIn("usage: mount.scopefs", r.stderr)
        self.assertNotMounted()

    def test_help_and_version(self):
        for flag in ("--help", "-h"):
            r = self.helper(flag)
            self.assertOk(r)
            self.assertIn("usage: mount.scopefs SOURCE MOUNTPOINT", r.stdout)
            self.assertEqual(r.stderr, "")
        for flag in ("--version", "-V"):
            r = self.helper(flag)
            self.assertOk(r)
            self.assertEqual(r.stdout, "mount.scopefs (scopefs) %s\n" % VERSION)

    def test_namespace_option(self):
        write_table(self.table, {"alpha": RULES})
        self.assertOk(self.helper(self.table, self.mnt, "-N", str(os.getpid())))
        self.assertEqual(pods(self.mnt), ["alpha"])
        r = self.helper(self.table, self.mnt, "-N", os.path.join(self.tmp, "no-such-ns"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot enter mount namespace", r.stderr)

    def test_finds_the_daemon_beside_itself(self):
        bindir = os.path.join(self.tmp, "bin")
        os.mkdir(bindir)
        shutil.copy(HELPER, os.path.join(bindir, "mount.scopefs"))
        os.symlink(os.path.realpath(DAEMON), os.path.join(bindir, "scopefs"))
        r = self.run_cmd([os.path.join(bindir, "mount.scopefs"), "-f", "-v", "none", self.mnt])
        self.assertOk(r)
        lines = r.stderr.splitlines()
        self.assertEqual(lines[0], "mount.scopefs: trying %s/scopefs" % bindir)
        self.assertEqual(lines[-1], "mount.scopefs: running %s %s" %
                         (os.path.realpath(DAEMON), self.mnt))

    def test_finds_the_daemon_in_the_build_tree(self):
        r = self.helper("-f", "-v", "none", self.mnt)
        self.assertOk(r)
        self.assertIn("mount.scopefs: running %s %s" % (os.path.realpath(DAEMON), self.mnt),
                      r.stderr)

    def test_no_daemon(self):
        installed = os.environ.get("SCOPEFS_INSTALLED_DAEMON", "")
        if os.path.exists(installed):
            self.skipTest("scopefs is installed at %s" % installed)
        lonely = os.path.join(self.tmp, "lonely")
        os.mkdir(lonely)
        shutil.copy(HELPER, lonely)
        r = self.run_cmd([os.path.join(lonely, "mount.scopefs"), "none", self.mnt])
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot find the scopefs daemon", r.stderr)
        self.assertNotMounted()


class MountCommand(MountCase):
    """Through mount(8), which runs /sbin/mount.TYPE without PATH."""

    def mount(self, *args, **kw):
        env = {"LANG": "C"}  # no PATH: as mount(8) would run from a unit
        env.update(kw.pop("env", {}))
        return self.run_cmd(["/usr/bin/env", "-i"] + ["%s=%s" % kv for kv in env.items()] +
                            [shutil.which("mount")] + list(args), **kw)

    def fstab(self, *lines):
        path = os.path.join(self.tmp, "fstab")
        with open(path, "w") as f:
            f.write("# scopefs test\n")
            for line in lines:
                f.write(line + "\n")
        return path

    def test_type_fuse_scopefs(self):
        write_table(self.table, {"alpha": RULES})
        r = self.mount("-t", "fuse.scopefs", self.table, self.mnt, "-o", "allow_other")
        self.assertOk(r)
        opts = self.assertMounted(self.table)
        self.assertIn("allow_other", opts)
        self.assertEqual(pods(self.mnt), ["alpha"])
        self.assertEqual(read(os.path.join(self.mnt, "alpha", "allow")), ALLOW)
        self.assertOk(self.run_cmd(["umount", self.mnt]))
        self.assertNotMounted()

    def test_type_scopefs(self):
        write_table(self.table, {"alpha": RULES})
        r = self.mount("-t", "scopefs", "none", self.mnt, "-o", "table=" + self.table)
        self.assertOk(r)
        self.assertMounted(self.table)
        self.assertEqual(pods(self.mnt), ["alpha"])
        self.assertOk(self.run_cmd(["umount", self.mnt]))
        self.assertNotMounted()

    def test_fstab_line(self):
        write_table(self.table, {"alpha": RULES})
        opts = ",".join(["noauto", "user", "users", "nofail", "_netdev", "noatime",
                         "x-scopefs-test=1"])
        tab = self.fstab("%s %s fuse.scopefs %s 0 0" % (self.table, self.mnt, opts))
        r = self.mount("--fstab", tab, self.mnt)
        self.assertOk(r)
        mopts = self.assertMounted(self.table)
        self.assertIn("noatime", mopts)
        self.assertEqual(pods(self.mnt), ["alpha"])
        self.assertOk(self.run_cmd(["umount", self.mnt]))
        self.assertNotMounted()

    def test_fstab_line_with_the_table_as_an_option(self):
        write_table(self.table, {"alpha": RULES})
        tab = self.fstab("none %s scopefs defaults,table=%s 0 0" % (self.mnt, self.table))
        self.assertOk(self.mount("--fstab", tab, self.mnt))
        self.assertMounted(self.table)
        self.assertEqual(pods(self.mnt), ["alpha"])

    def test_fstab_mount_all(self):
        write_table(self.table, {"alpha": RULES})
        tab = self.fstab("%s %s fuse.scopefs auto,nofail 0 0" % (self.table, self.mnt))
        self.assertOk(self.mount("-a", "--fstab", tab))
        self.assertMounted(self.table)
        self.assertEqual(pods(self.mnt), ["alpha"])
        # Already mounted: mount -a leaves it alone.
        self.assertOk(self.mount("-a", "--fstab", tab))
        self.assertMounted(self.table)

    def test_errors_reach_mount(self):
        os.makedirs(os.path.dirname(self.table))
        bad = b"not json"
        with open(self.table, "wb") as f:
            f.write(bad)
        os.chmod(self.table, 0o600)
        r = self.mount("-t", "fuse.scopefs", self.table, self.mnt)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(self.table, r.stderr)
        self.assertEqual(read(self.table), bad)
        self.assertNotMounted()

    def test_busy_through_mount(self):
        self.assertOk(self.mount("-t", "fuse.scopefs", self.table, self.mnt))
        r = self.mount("-t", "fuse.scopefs", self.table, self.mnt)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("is busy", r.stderr)
        self.assertMounted(self.table)

    def test_conflicting_tables_through_mount(self):
        r = self.mount("-t", "scopefs", self.table, self.mnt, "-o",
                       "table=" + os.path.join(self.tmp, "other.lock"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("name different tables", r.stderr)
        self.assertNotMounted()

    def test_fusermount_after_mount(self):
        self.assertOk(self.mount("-t", "fuse.scopefs", self.table, self.mnt))
        self.assertOk(self.run_cmd(["fusermount3", "-u", self.mnt]))
        self.assertNotMounted()


def main():
    mountutil.require_fuse()
    # A timeout (SIGTERM) still runs the clean-up below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    with SbinLinks(os.path.realpath(HELPER)):
        prog = unittest.main(verbosity=2, exit=False)
    sys.exit(0 if prog.result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
