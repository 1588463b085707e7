#!/bin/sh
# SPDX-License-Identifier: MIT
# Soak: the stress mix of tests/stress (clients of the mount, programs on
# the core, writers on the original's protocol, 16 processes at once) on
# one daemon for N minutes, printing operations per minute, the violations
# found and the daemon's RSS (VmRSS) each minute, at start and at end.
# Not run by the test suite.
#
#   bench/soak.sh [-C BUILDDIR] [MINUTES]      (default: build, 30 minutes)
#
# Needs root (FUSE mounts) and a built tree; exits non-zero on any violation.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
build=$here/build
if [ "${1:-}" = "-C" ]; then
	build=$(cd "$2" && pwd)
	shift 2
fi
minutes=${1:-30}
for f in "$build/fs/scopefs" "$build/tests/stress/scope_driver"; do
	if [ ! -x "$f" ]; then
		echo "soak: $f is missing; build first (meson setup $build && ninja -C $build)" >&2
		exit 2
	fi
done
SCOPEFS=$build/fs/scopefs SCOPE_DRIVER=$build/tests/stress/scope_driver \
PYTHONDONTWRITEBYTECODE=1 \
	exec python3 "$here/tests/stress/test_stress.py" --minutes "$minutes"
