#!/usr/bin/env bash
# Register+release cycles per second of scopefs' core against the original
# Rust registry, measured the same way in the same run on this machine.
#
#   bench/run-core-vs-original.sh [REFERENCE_RS] [SECONDS]
#
# REFERENCE_RS is the original's scope_lock.rs (it is not part of this
# project); without it, or if it cannot be built, only scopefs is measured.
# SECONDS per measurement (default 2).  Environment: BENCH_DIR (default
# /dev/shm, should be tmpfs), BENCH_LIVE (default "0 100 1000 10000"),
# BENCH_BUILD (meson build dir, default build-bench at the top of the tree).
#
# For each live count the two programs run one after the other, each in a
# fresh process with a freshly filled table, so that the peak RSS reported
# is that of one table size.  bench/core_cycles.c and
# bench/reference/harness/src/main.rs do the same work: fill the table with
# N allocations in a child, then loop lock+register+save+unlock,
# lock+release+save+unlock.
set -euo pipefail

ref=${1:-}
secs=${2:-2}
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${BENCH_DIR:-/dev/shm}
read -r -a live <<<"${BENCH_LIVE:-0 100 1000 10000}"
build=${BENCH_BUILD:-$top/build-bench}

if ! [[ $secs =~ ^[0-9]+([.][0-9]+)?$ ]]; then
	echo "usage: $0 [REFERENCE_RS] [SECONDS]" >&2
	exit 2
fi
if [[ $(stat -f -c %T "$dir") != tmpfs ]]; then
	echo "warning: $dir is not tmpfs; figures include the disk" >&2
fi

# scopefs: core_cycles, release build in a build dir of its own.
if [[ -f $build/build.ninja ]]; then
	meson configure "$build" -Dbuildtype=release -Dtests=false >/dev/null
else
	meson setup "$build" "$top" -Dbuildtype=release -Dtests=false >/dev/null
fi
ninja -C "$build" bench/core_cycles >/dev/null
core=$build/bench/core_cycles

# The original, built from REFERENCE_RS by bench/reference/build.sh.
orig=
if [[ -z $ref ]]; then
	echo "note: no reference source given (REFERENCE_RS); measuring scopefs alone" >&2
elif [[ ! -r $ref ]]; then
	echo "note: reference source $ref not found; measuring scopefs alone" >&2
elif "$top/bench/reference/build.sh" "$ref" "$build/bench/reference_cycles"; then
	orig=$build/bench/reference_cycles
else
	echo "note: the reference did not build (see above); measuring scopefs alone" >&2
fi

# Second line of a harness's output: live cycles/s us/cycle fileKiB peakKiB rssKiB
measure() {
	"$@" -d "$dir" -t "$secs" "$n" | sed -n 2p
}

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "machine: ${cpu:-unknown cpu}, $(nproc) cpus, $(uname -sr); table in $dir ($(stat -f -c %T "$dir")); ${secs}s per figure; load average $(cut -d" " -f1-3 /proc/loadavg)"
echo "scopefs: $(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown) ($core)"
if [[ -n $orig ]]; then
	echo "original: $(basename -- "$ref") sha256 $(sha256sum -- "$ref" | cut -c1-16) ($orig)"
fi
echo
printf '%8s %12s %12s %8s | %10s %10s | %10s %10s %9s\n' \
	"" "original" "scopefs" "scopefs/" "original" "original" "scopefs" "scopefs" "scopefs"
printf '%8s %12s %12s %8s | %10s %10s | %10s %10s %9s\n' \
	"live" "cycles/s" "cycles/s" "original" "file KiB" "peak KiB" "file KiB" "peak KiB" "peak/file"
for n in "${live[@]}"; do
	o_cps=- o_file=- o_peak=- ratio=-
	if [[ -n $orig ]]; then
		if line=$(measure "$orig") && [[ -n $line ]]; then
			read -r _ o_cps _ o_file o_peak _ <<<"$line"
		else
			o_cps=failed
		fi
	fi
	line=$(measure "$core")
	read -r _ c_cps _ c_file c_peak _ <<<"$line"
	ratio=$(awk -v c="$c_cps" -v o="$o_cps" 'BEGIN { if (o + 0 > 0) printf "%.1fx", c / o; else print "-" }')
	per=$(awk -v p="$c_peak" -v f="$c_file" 'BEGIN { if (f + 0 > 0) printf "%.1f", p / f; else print "-" }')
	printf '%8s %12s %12s %8s | %10s %10s | %10s %10s %9s\n' \
		"$n" "$o_cps" "$c_cps" "$ratio" "$o_file" "$o_peak" "$c_file" "$c_peak" "$per"
done
