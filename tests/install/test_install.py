#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`meson install` into a DESTDIR: every file where it belongs, the
mount.fuse.scopefs links, units whose paths are the install paths and that
systemd-analyze accepts, man pages that render cleanly, and the core usable
from outside the tree through its pkg-config file: a program built against
the installed header and library registers a pod, and the installed
mount.scopefs (finding the installed daemon by itself) shows it."""

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import mountutil
from mountutil import mounts_at, pods, read, safe_rmtree, unmount_all

BUILD = os.environ["MESON_BUILD_DIR"]
MESON = shlex.split(os.environ["MESON"])
CC = shlex.split(os.environ.get("CC") or "cc")
SOURCE = os.path.dirname(os.path.abspath(__file__))


def fuse_usable():
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
        return True
    except OSError:
        return False


def unit_lines(path, key):
    with open(path) as f:
        return [l.split("=", 1)[1] for l in f.read().splitlines() if l.startswith(key + "=")]


class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="scopefs-install-test-")
        cls.dest = os.path.join(cls.tmp, "dest")
        r = subprocess.run(MESON + ["install", "-C", BUILD, "--no-rebuild", "--quiet",
                                    "--destdir", cls.dest], capture_output=True, text=True)
        if r.returncode:
            raise AssertionError("meson install failed:\n" + r.stdout + r.stderr)
        r = subprocess.run(MESON + ["introspect", "--installed", BUILD], capture_output=True,
                           text=True, check=True)
        cls.installed = json.loads(r.stdout)
        r = subprocess.run(MESON + ["introspect", "--buildoptions", BUILD], capture_output=True,
                           text=True, check=True)
        cls.opts = {o["name"]: o["value"] for o in json.loads(r.stdout)}
        cls.prefix = cls.opts["prefix"]

    @classmethod
    def tearDownClass(cls):
        safe_rmtree(cls.tmp)

    def d(self, path):
        """PATH (absolute, as installed) inside the DESTDIR."""
        return os.path.join(self.dest, path.lstrip("/"))

    def dir_of(self, option):
        value = self.opts[option]
        return value if value.startswith("/") else os.path.join(self.prefix, value)

    def installed_as(self, name):
        found = [dst for src, dst in self.installed.items() if os.path.basename(dst) == name]
        self.assertTrue(found, "%s is not installed" % name)
        return found

    def test_every_file_is_installed(self):
        for src, dst in self.installed.items():
            self.assertTrue(os.path.lexists(self.d(dst)), "%s -> %s missing" % (src, dst))

    def test_programs(self):
        daemon = os.path.join(self.dir_of("bindir"), "scopefs")
        helper = os.path.join(self.dir_of("sbindir"), "mount.scopefs")
        for path in (daemon, helper):
            self.assertTrue(os.access(self.d(path), os.X_OK), path)
        link = self.d(os.path.join(self.dir_of("sbindir"), "mount.fuse.scopefs"))
        self.assertEqual(os.readlink(link), "mount.scopefs")
        r = subprocess.run([link, "--version"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "mount.scopefs (scopefs) %s\n" % mountutil.VERSION)

    def test_core_header_and_pkgconfig(self):
        self.assertTrue(os.path.isfile(self.d(os.path.join(self.dir_of("includedir"),
                                                           "scopefs", "scope.h"))))
        pcs = self.installed_as("scopefs-core.pc")
        self.assertEqual(len(pcs), 1)

    def test_man_pages(self):
        man8 = os.path.join(self.dir_of("mandir"), "man8")
        for page in ("scopefs.8", "mount.scopefs.8"):
            path = self.d(os.path.join(man8, page))
            text = read(path).decode()
            self.assertTrue(text.splitlines()[1].startswith(".TH %s 8" %
                                                            page[:-2].upper()), page)
            self.assertNotIn("@", text.replace("\\(at", ""), "unsubstituted @VAR@ in " + page)
            if shutil.which("groff"):
                r = subprocess.run(["groff", "-man", "-ww", "-z", "-Tutf8", path],
                                   capture_output=True, text=True)
                self.assertEqual((r.returncode, r.stderr), (0, ""), page)
        self.assertEqual(os.readlink(self.d(os.path.join(man8, "mount.fuse.scopefs.8"))),
                         "mount.scopefs.8")
        text = read(self.d(os.path.join(man8, "scopefs.8"))).decode()
        for errno_name in ("EEXIST", "EINVAL", "ENOENT", "EFBIG", "EBUSY", "EPERM", "ESRCH"):
            self.assertIn(".B %s" % errno_name, text)
        for section in ("OPTIONS", "LAYOUT", "RULES", "OPERATIONS AND ERRORS", "WATCHING",
                        "SECURITY", "FILES"):
            self.assertIn(".SH %s" % section, text)

    def test_units(self):
        units = self.installed_as("scopefs.service")
        self.assertEqual(len(units), 2, units)
        daemon = os.path.join(self.dir_of("bindir"), "scopefs")
        for unit in units:
            kind = "user" if "/user" in unit else "system"
            with self.subTest(unit=unit):
                start = unit_lines(self.d(unit), "ExecStart")
                self.assertEqual(len(start), 1)
                self.assertEqual(shlex.split(start[0])[0], daemon)
                self.assertIn("-f", shlex.split(start[0]))
                # Verify the installed file, its paths moved into the DESTDIR.
                text = read(self.d(unit)).decode().replace(daemon, self.d(daemon))
                vdir = os.path.join(self.tmp, "verify-" + kind)
                os.makedirs(vdir, exist_ok=True)
                copy = os.path.join(vdir, "scopefs.service")
                with open(copy, "w") as f:
                    f.write(text)
                argv = ["systemd-analyze"] + (["--user"] if kind == "user" else []) + \
                    ["verify", copy]
                rt = os.path.join(self.tmp, "xdg-runtime")
                os.makedirs(rt, mode=0o700, exist_ok=True)
                # Documentation=man:... must name installed pages.
                man = self.d(self.dir_of("mandir"))
                r = subprocess.run(argv, capture_output=True, text=True,
                                   env=dict(os.environ, XDG_RUNTIME_DIR=rt, MANPATH=man))
                self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))

    def pkg_env(self):
        libdir = self.dir_of("libdir")
        env = dict(os.environ,
                   PKG_CONFIG_PATH=self.d(os.path.join(libdir, "pkgconfig")),
                   PKG_CONFIG_SYSROOT_DIR=self.dest,
                   LD_LIBRARY_PATH=self.d(libdir))
        return env

    def build_client(self):
        env = self.pkg_env()
        r = subprocess.run(["pkg-config", "--cflags", "--libs", "scopefs-core"], env=env,
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        flags = shlex.split(r.stdout)
        self.assertIn("-I" + self.d(os.path.join(self.dir_of("includedir"), "scopefs")), flags)
        self.assertIn("-L" + self.d(self.dir_of("libdir")), flags)
        self.assertIn("-lscope", flags)
        exe = os.path.join(self.tmp, "register_pod")
        # A sanitized build installs a sanitized library: its runtime must
        # come first, so the client is built the same way.
        if os.environ.get("SCOPEFS_SANITIZED"):
            flags = ["-fsanitize=address,undefined"] + flags
        r = subprocess.run(CC + ["-o", exe, os.path.join(SOURCE, "register_pod.c")] + flags,
                           env=env, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # It runs on the installed library, not the build tree's.
        r = subprocess.run(["ldd", exe], env=env, capture_output=True, text=True)
        lib = [l for l in r.stdout.splitlines() if "libscope" in l]
        self.assertEqual(len(lib), 1, r.stdout)
        self.assertIn(self.d(self.dir_of("libdir")), lib[0])
        return exe, env

    def test_client_registers_a_pod_and_the_installed_mount_shows_it(self):
        exe, env = self.build_client()
        table = os.path.join(self.tmp, "client", "run", "scope.lock")
        r = subprocess.run([exe, table, "installed", str(os.getpid()),
                            "write recursive /srv/installed\n"],
                           env=env, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "registered 1\n")
        data = json.loads(read(table))
        self.assertEqual([a["pod_name"] for a in data["allocations"]], ["installed"])
        self.assertEqual(data["allocations"][0]["pid"], os.getpid())
        self.assertEqual(data["allocations"][0]["scope_allow"],
                         [{"target": "/srv/installed", "permission": "write",
                           "recursive": True}])
        # A second registration of the name is refused by the core.
        r = subprocess.run([exe, table, "installed", str(os.getpid())], env=env,
                           capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)

        if not fuse_usable():
            self.skipTest("/dev/fuse is unusable: the mount part is not tested")
        mnt = os.path.join(self.tmp, "client", "mnt")
        os.makedirs(mnt)
        self.addCleanup(unmount_all, mnt)
        helper = self.d(os.path.join(self.dir_of("sbindir"), "mount.scopefs"))
        r = subprocess.run([helper, "-v", table, mnt], env=env, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        daemon = os.path.realpath(self.d(os.path.join(self.dir_of("bindir"), "scopefs")))
        self.assertIn("mount.scopefs: running %s -o table=%s %s" % (daemon, table, mnt),
                      r.stderr)
        self.assertEqual([m[:2] for m in mounts_at(mnt)], [("fuse.scopefs", table)])
        self.assertEqual(pods(mnt), ["installed"])
        self.assertEqual(read(os.path.join(mnt, "installed", "allow")),
                         b"write recursive /srv/installed\n")
        self.assertEqual(read(os.path.join(mnt, "installed", "pid")), b"%d\n" % os.getpid())
        # And what the client registers while mounted shows too.
        r = subprocess.run([exe, table, "second", str(os.getpid())], env=env,
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        deadline = time.monotonic() + 2
        while pods(mnt) != ["installed", "second"] and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(pods(mnt), ["installed", "second"])
        unmount_all(mnt)


if __name__ == "__main__":
    unittest.main(verbosity=2)
