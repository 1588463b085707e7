#!/usr/bin/env bash
# Operations through a scopefs mount beside plain tmpfs, with 0, 100, 1000
# and 10000 live pods in the table (on tmpfs).  Run as root from a built
# tree:  bench/run-fs.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
build=${1:-build}
secs=${2:-2}
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$build" && pwd)
work=$(mktemp -d /dev/shm/scopefs-bench.XXXXXX)
sleeper=
cleanup() {
	fusermount3 -u "$work/mnt" 2>/dev/null || true
	[ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# The pods' owner: a process that lives for the whole run.
sleep 100000 &
sleeper=$!

# The last columns: the same reads through a mount with -o fast_read (the
# kernel's no_open mode), beside tmpfs measured in that same run.
printf '%8s %12s %12s %9s %12s %12s %9s %12s %12s %9s\n' live "mount cyc/s" "tmpfs cyc/s" ratio \
	"mount rd/s" "tmpfs rd/s" ratio "fast rd/s" "tmpfs rd/s" ratio
for n in 0 100 1000 10000; do
	rm -rf "$work/t" "$work/mnt" "$work/plain"
	mkdir -p "$work/t" "$work/mnt" "$work/plain"
	"$build/bench/fill_table" "$work/t/scope.lock" "$n" "$sleeper"
	# A pod to read even when N is 0.
	"$build/bench/fill_table" "$work/t/read.lock" 1 "$sleeper"
	if [ "$n" = 0 ]; then cp "$work/t/read.lock" "$work/t/scope.lock"; fi
	for mode in default fast_read; do
		opts="table=$work/t/scope.lock"
		[ "$mode" = fast_read ] && opts="$opts,fast_read"
		"$build/fs/scopefs" -f -o "$opts" "$work/mnt" &
		daemon=$!
		for _ in $(seq 100); do mountpoint -q "$work/mnt" && break; sleep 0.05; done
		mountpoint -q "$work/mnt" || { echo "scopefs did not mount" >&2; exit 1; }
		if [ "$mode" = default ]; then
			printf '%8s ' "$n"
			"$build/bench/fs_ops" -m "$work/mnt" -d "$work/plain" -p pod-0 -t "$secs" |
				awk '{printf "%12s %12s %9s %12s %12s %9s", $1, $2, $3, $4, $5, $6}'
		else
			"$build/bench/fs_ops" -m "$work/mnt" -d "$work/plain" -p pod-0 -t "$secs" |
				awk '{printf " %12s %12s %9s\n", $4, $5, $6}'
		fi
		fusermount3 -u "$work/mnt"
		wait "$daemon" || true
	done
done
