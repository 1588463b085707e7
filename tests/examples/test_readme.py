#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The README's examples stay true.

Every README code block preceded by `<!-- example: tests/examples/FILE -->`
must be exactly FILE (or the part of it between the lines holding
`README begin` and `README end`, dedented), and every example file here must
be shown so.  A block preceded by `<!-- output: FILE... -->` is what those
examples print (pids and session ids aside).  Each example then runs against a real scopefs mounted on a
temporary directory over a temporary table: what it prints, the change
stream, the daemon's log and the table file are checked.  The table starts
with one pod written as the original's pods write it (with a field scopefs
does not know); after each example it must be byte for byte what it was.

Go, Node.js and rustc are required: a missing one fails (run .ci/setup).
"""

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("SCOPEFS_SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))
README = os.path.join(ROOT, "README.md")

# The integration tests' helpers (a daemon on a temporary mount), by path.
_spec = importlib.util.spec_from_file_location("fsutil", os.path.join(ROOT, "tests", "fs", "fsutil.py"))
fsutil = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fsutil)

EXAMPLES = ["example.sh", "example.py", "example.go", "example.rs", "example.js", "example.c",
            "core_example.c", "watch.sh", "watch.py"]
TAG_RE = re.compile(r"^<!-- (example|output): (.+?) -->$")
UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
REFUSAL_LOG = (r"write `rival/allow` refused \(pid %d\): requested scope `/srv/proj/src/lib` "
               r"conflicts with pod `worker`")
SETUP_HINT = "run .ci/setup (as root) to install it"


def tool(name, package):
    path = shutil.which(name)
    if not path:
        raise AssertionError("%s is not installed (Debian package %s): %s" % (name, package, SETUP_HINT))
    return path


def shown_part(path):
    """What the README must show of PATH: the whole file, or its marked part."""
    with open(path) as f:
        text = f.read()
    lines = text.splitlines(keepends=True)
    begin = [i for i, l in enumerate(lines) if "README begin" in l]
    end = [i for i, l in enumerate(lines) if "README end" in l]
    if not begin and not end:
        return text
    if len(begin) != 1 or len(end) != 1 or begin[0] >= end[0]:
        raise AssertionError("%s: expected one `README begin` line before one `README end` line" % path)
    return textwrap.dedent("".join(lines[begin[0] + 1:end[0]]))


def readme_blocks():
    """[(kind, [path...], block text, README line)] for each tagged fenced
    block; kind is "example" or "output"."""
    with open(README) as f:
        lines = f.read().split("\n")
    out = []
    i = 0
    while i < len(lines):
        m = TAG_RE.match(lines[i])
        if not m:
            i += 1
            continue
        tag_line = i + 1
        i += 1
        while i < len(lines) and lines[i].strip() == "":
            i += 1
        if i >= len(lines) or not lines[i].startswith("```"):
            raise AssertionError("README.md:%d: the example tag is not followed by a ``` block" % tag_line)
        fence = re.match(r"^`+", lines[i]).group(0)
        i += 1
        start = i
        while i < len(lines) and lines[i] != fence:
            i += 1
        if i >= len(lines):
            raise AssertionError("README.md:%d: unterminated code block" % tag_line)
        out.append((m.group(1), m.group(2).split(), "".join(l + "\n" for l in lines[start:i]),
                    tag_line))
        i += 1
    return out


class Readme(unittest.TestCase):
    def test_blocks_are_the_files(self):
        blocks = readme_blocks()
        shown = set()
        for kind, rels, text, line in blocks:
            if kind == "output":
                continue
            self.assertEqual(len(rels), 1, "README.md:%d: one file per example tag" % line)
            rel = rels[0]
            path = os.path.join(ROOT, rel)
            self.assertTrue(os.path.isfile(path), "README.md:%d names %s, which does not exist" % (line, rel))
            want = shown_part(path)
            if text != want:
                import difflib
                diff = "".join(difflib.unified_diff(want.splitlines(True), text.splitlines(True),
                                                    rel, "README.md:%d" % line))
                self.fail("README.md:%d differs from %s:\n%s" % (line, rel, diff))
            shown.add(os.path.normpath(rel))
        for name in EXAMPLES:
            rel = os.path.join("tests", "examples", name)
            self.assertIn(rel, shown, "README.md does not show %s" % rel)


def normalized(text):
    text = re.sub(UUID_RE, "UUID", text)
    return re.sub(r"\bpid \d+", "pid N", text)


def readme_output(name):
    """The README's block of what tests/examples/NAME prints."""
    rel = os.path.join("tests", "examples", name)
    found = [text for kind, rels, text, _ in readme_blocks() if kind == "output" and rel in rels]
    if len(found) != 1:
        raise AssertionError("README.md has %d output blocks for %s, want 1" % (len(found), rel))
    return found[0]


def original_table(pid):
    """A table as the original's pods write it: pretty JSON, two-space
    indent, no final newline; with a field scopefs does not know."""
    entry = {
        "pod_name": "original",
        "pid": pid,
        "socket": "/run/original.sock",
        "scope_allow": [{"target": "/srv/other", "permission": "write", "recursive": True}],
        "delegated_from": None,
        "session_id": "0190e8a1-2b3c-7d4e-8f50-6a7b8c9d0e1f",
        "x_added_later": {"kept": [1, 2]},
    }
    return json.dumps({"allocations": [entry]}, indent=2).encode()


class Examples(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        fsutil.require_fuse()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="scopefs-examples-")
        os.chmod(self.tmp, 0o755)
        table = os.path.join(self.tmp, "run", "scope.lock")
        os.makedirs(os.path.dirname(table), mode=0o700)
        self.initial = original_table(os.getpid())
        fd = os.open(table, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, self.initial)
        os.close(fd)
        self.d = fsutil.Daemon(table=table, tmp=self.tmp)
        self.addCleanup(self._cleanup)
        self.events_fd = os.open(self.d.path(".events"), os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, self.events_fd)

    def _cleanup(self):
        try:
            self.d.stop()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- helpers ----

    def run_example(self, argv, **kw):
        env = dict(os.environ, SCOPEFS_MOUNT=self.d.mnt)
        env.update(kw.pop("env", {}))
        proc = subprocess.Popen(argv, env=env, cwd=kw.pop("cwd", self.tmp), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            self.fail("%s did not finish: %s %s" % (argv, out, err))
        self.assertEqual(proc.returncode, 0, "%s exited %s:\n%s%s" % (argv, proc.returncode, out, err))
        return proc.pid, out, err

    def events(self, until):
        """The change stream's lines as [SEQ, KIND, POD, DETAIL], read until
        a line whose KIND and POD are UNTIL (the changes are published when
        the operation returns; the wait only guards against a slow reader)."""
        got, pending = [], b""
        deadline = time.monotonic() + 5
        while True:
            try:
                pending += os.read(self.events_fd, 65536)
                continue
            except BlockingIOError:
                pass
            *lines, pending = pending.split(b"\n")
            got += [l.decode().split(" ", 3) for l in lines]
            if any(e[1:3] == list(until) for e in got):
                return got
            if time.monotonic() > deadline:
                self.fail("no `%s %s` event; got %r" % (until + (got,)))
            time.sleep(0.01)

    def assertTableAsBefore(self):
        self.assertEqual(self.d.table_bytes(), self.initial,
                         "the table file is not byte for byte what it was before the example")

    def assertOutputAsShown(self, name, out):
        self.assertEqual(normalized(out), normalized(readme_output(name)),
                         "%s does not print what the README shows" % name)

    def check_flow(self, pid, out, err, name):
        """The common scenario of the language examples."""
        self.assertOutputAsShown(name, out)
        lines = out.splitlines()
        self.assertEqual(len(lines), 5, out)
        m = re.fullmatch(r"worker: pid (\d+), session (%s)" % UUID_RE, lines[0])
        self.assertTrue(m, lines[0])
        self.assertEqual(lines[1:], ["write recursive /srv/proj/src", "read recursive /srv/proj",
                                     "rival refused: EBUSY", "released"])
        shown_pid = int(m.group(1))
        if pid is not None:
            self.assertEqual(shown_pid, pid)
        self.assertEqual(err, "")
        # What the mount saw, in order.  A pid write that changes nothing
        # may or may not be reported.
        ev = [e for e in self.events(("release", "worker")) if e[1] != "pid" or e[2:] != ["worker", str(shown_pid)]]
        self.assertEqual([e[1:] for e in ev], [
            ["register", "worker", "-"],
            ["allow", "worker", "2"],
            ["register", "rival", "-"],
            ["release", "rival", "-"],
            ["release", "worker", "-"],
        ])
        # The refusal, as the daemon logs it: by that process, naming the
        # competitor.
        self.d.wait_log(REFUSAL_LOG % shown_pid)
        self.assertEqual(sorted(os.listdir(self.d.mnt)), [".by-session", ".events", "original"])
        self.assertTableAsBefore()

    # ---- the examples ----

    def test_shell(self):
        bash = tool("bash", "bash")
        pid, out, err = self.run_example([bash, os.path.join(HERE, "example.sh")])
        self.assertRegex(out, r"\A" + re.escape(
            "write recursive /srv/proj/src\nread recursive /srv/proj\n") +
            r"session %s\n" % UUID_RE + re.escape(
            "tests delegated from worker\n"
            "pods: original tests worker\n"
            "rival refused\n"
            "tests delegated from ''\n") + r"\Z")
        self.assertRegex(err, r"\A[^\n]*echo: write error: Device or resource busy\n\Z")
        # The README's run has no other pod.
        self.assertOutputAsShown("example.sh", out.replace("pods: original ", "pods: "))
        ev = [e[1:] for e in self.events(("release", "tests"))]
        me = str(pid)
        self.assertEqual(ev, [
            ["register", "worker", "-"], ["pid", "worker", me],
            ["allow", "worker", "1"], ["allow", "worker", "2"],
            ["delegate", "tests", "worker"], ["pid", "tests", me], ["allow", "tests", "1"],
            ["register", "rival", "-"], ["pid", "rival", me],
            ["release", "rival", "-"],
            ["reparent", "tests", "-"], ["release", "worker", "-"],
            ["release", "tests", "-"],
        ])
        self.d.wait_log(REFUSAL_LOG % pid)
        self.assertTableAsBefore()

    def test_python(self):
        pid, out, err = self.run_example([sys.executable, os.path.join(HERE, "example.py")])
        self.check_flow(pid, out, err, "example.py")

    def test_python_argv(self):
        # The mount as an argument wins over the environment.
        pid, out, err = self.run_example([sys.executable, os.path.join(HERE, "example.py"), self.d.mnt],
                                         env={"SCOPEFS_MOUNT": "/nonexistent"})
        self.check_flow(pid, out, err, "example.py")

    def test_go(self):
        go = tool("go", "golang-go")
        env = {}
        if not os.environ.get("HOME") and not os.environ.get("XDG_CACHE_HOME"):
            env["GOCACHE"] = os.path.join(self.tmp, "gocache")
        # go run builds the program and runs it as a child: its pid is not ours to know.
        _, out, err = self.run_example([go, "run", os.path.join(HERE, "example.go")], env=env)
        self.check_flow(None, out, err, "example.go")

    def test_rust(self):
        rustc = tool("rustc", "rustc")
        exe = os.path.join(self.tmp, "example_rs")
        r = subprocess.run([rustc, "--edition", "2021", "-o", exe, os.path.join(HERE, "example.rs")],
                           cwd=self.tmp, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, "rustc failed:\n" + r.stdout + r.stderr)
        self.check_flow(*self.run_example([exe]), "example.rs")

    def test_node(self):
        node = tool("node", "nodejs")
        self.check_flow(*self.run_example([node, os.path.join(HERE, "example.js")]), "example.js")

    def test_c(self):
        exe = os.environ.get("SCOPEFS_EXAMPLE_C")
        self.assertTrue(exe and os.access(exe, os.X_OK), "SCOPEFS_EXAMPLE_C: %r" % exe)
        self.check_flow(*self.run_example([exe]), "example.c")

    def test_core(self):
        exe = os.environ.get("SCOPEFS_CORE_EXAMPLE")
        self.assertTrue(exe and os.access(exe, os.X_OK), "SCOPEFS_CORE_EXAMPLE: %r" % exe)
        # On the table the daemon shows, beside it.
        _, out, err = self.run_example([exe, self.d.table])
        self.assertRegex(out, r"\Aregistered worker, session %s\n" % UUID_RE + re.escape(
            "rival refused: requested scope `/srv/proj/src/lib` conflicts with pod `worker`\n"
            "released\n") + r"\Z")
        self.assertOutputAsShown("core_example.c", out)
        self.assertEqual(err, "")
        self.assertTableAsBefore()
        # The default path is the original's resolution.
        _, out, err = self.run_example([exe], env={"INSOMNIA_RUNTIME_DIR": os.path.dirname(self.d.table)})
        self.assertIn("released\n", out)
        self.assertTableAsBefore()
        self.assertTrue(self.d.alive())

    # ---- watching ----

    def watch(self, argv, want):
        """Runs a watcher, makes a pod come and go through the mount until
        the watcher has printed every line matching WANT, stops it."""
        proc = subprocess.Popen(argv, env=dict(os.environ, SCOPEFS_MOUNT=self.d.mnt), cwd=self.tmp,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(
            l.decode().rstrip("\n") for l in proc.stdout), daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + 10
            while True:
                # The watcher reports what happens after it has started
                # watching: repeat until it has.
                os.mkdir(self.d.path("w"))
                os.rmdir(self.d.path("w"))
                time.sleep(0.2)
                seen = list(lines)
                if all(any(re.fullmatch(rx, l) for l in seen) for rx in want):
                    return seen
                if proc.poll() is not None or time.monotonic() > deadline:
                    self.fail("%s printed %r; want %r" % (argv, seen, want))
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            proc.wait(10)
            reader.join(5)
            proc.stdout.close()

    def test_watch_sh(self):
        tool("inotifywait", "inotify-tools")
        mnt = re.escape(self.d.mnt)
        self.watch([tool("bash", "bash"), os.path.join(HERE, "watch.sh")],
                   [mnt + r"/ CREATE,ISDIR w", mnt + r"/ DELETE,ISDIR w",
                    r"\d+ register w -", r"\d+ release w -"])
        self.assertTableAsBefore()

    def test_watch_py(self):
        seen = self.watch([sys.executable, os.path.join(HERE, "watch.py")],
                          [r"register w -", r"release  w -"])
        self.assertTrue(all(re.fullmatch(r"(register|release ) w -", l) for l in seen), seen)
        self.assertTableAsBefore()


if __name__ == "__main__":
    unittest.main(verbosity=2, buffer=False)
