#!/usr/bin/env bash
# Latency from a change to what watchers of a scopefs mount see (inotify on
# the mount, lines of MOUNT/.events), for changes made through the mount and
# by a direct writer of the table file.  Mounts a fresh scopefs on a
# temporary directory over a temporary table on /dev/shm (empty, or holding
# LIVE other pods, since every reload parses and compares the whole table),
# runs bench/watch_latency, unmounts.  Run from a built tree:
#   bench/run-watch.sh [BUILD_DIR] [CHANGES] [LIVE]
# Exits non-zero when an event went missing, came twice or out of order, or
# a figure misses the target (median < 5 ms, p99 < 50 ms).
set -euo pipefail
build=${1:-build}
n=${2:-1000}
live=${3:-0}
build=$(cd "$build" && pwd)
work=$(mktemp -d /dev/shm/scopefs-watch.XXXXXX)
daemon=
sleeper=
cleanup() {
	if mountpoint -q "$work/mnt" 2>/dev/null; then
		fusermount3 -u "$work/mnt" 2>/dev/null || fusermount3 -u -z "$work/mnt" 2>/dev/null || true
	fi
	if [ -n "$daemon" ]; then
		kill "$daemon" 2>/dev/null || true
		wait "$daemon" 2>/dev/null || true
	fi
	[ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/t" "$work/mnt"
if [ "$live" -gt 0 ]; then
	# Their owner: a process that lives for the whole run.
	sleep 100000 &
	sleeper=$!
	"$build/bench/fill_table" "$work/t/scope.lock" "$live" "$sleeper"
else
	# What the original writes for an empty table.
	printf '{\n  "allocations": []\n}' >"$work/t/scope.lock"
	chmod 600 "$work/t/scope.lock"
fi
"$build/fs/scopefs" -f -o "table=$work/t/scope.lock" "$work/mnt" 2>"$work/daemon.log" &
daemon=$!
for _ in $(seq 200); do mountpoint -q "$work/mnt" && break; sleep 0.05; done
mountpoint -q "$work/mnt" || { echo "scopefs did not mount" >&2; cat "$work/daemon.log" >&2; exit 1; }

rc=0
"$build/bench/watch_latency" -m "$work/mnt" -t "$work/t/scope.lock" -n "$n" || rc=$?

fusermount3 -u "$work/mnt"
wait "$daemon" || { echo "scopefs exited $?" >&2; rc=1; }
daemon=
if [ -s "$work/daemon.log" ]; then
	echo "scopefs said:" >&2
	cat "$work/daemon.log" >&2
fi
exit "$rc"
