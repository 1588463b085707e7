#!/bin/sh
# SPDX-License-Identifier: MIT
# run.sh SECONDS [TARGET...] - build the fuzzers with clang (build.sh) and
# run each TARGET (default: table rules name) for SECONDS, starting from
# the committed corpus (new inputs go to build-fuzz/corpus-TARGET, not to
# the source tree).  Prints, for each target, the executions, executions
# per second, and crashes (a crash leaves crash-* in build-fuzz/artifacts).
#
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:?usage: run.sh SECONDS [TARGET...]}
shift
targets=${*:-table rules name}
out=${FUZZ_OUT:-$root/build-fuzz}
# leak checks on; halt on the first UBSan report
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

"$here/build.sh" "$out" >/dev/null
mkdir -p "$out/artifacts"
summary=""
status=0
for t in $targets; do
	work="$out/corpus-$t"
	mkdir -p "$work"
	log="$out/fuzz_$t.log"
	rm -f "$out/artifacts/$t-"*
	rc=0
	"$out/fuzz_$t" -max_total_time="$secs" -print_final_stats=1 -timeout=10 \
		-rss_limit_mb=2048 -max_len=8192 -artifact_prefix="$out/artifacts/$t-" \
		"$work" "$here/corpus/$t" >"$log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	# libFuzzer stops at the first crash, leaving one artifact
	crashes=$(find "$out/artifacts" -name "$t-*" | wc -l)
	[ "$rc" -eq 0 ] || status=1
	line="fuzz_$t: ${secs}s execs=${execs:-?} execs/s=${rate:-?} crashes=$crashes corpus=$(ls "$work" | wc -l) (exit $rc, log $log)"
	echo "$line"
	summary="$summary$line
"
done
printf '\n%s' "$summary"
find "$out/artifacts" -type f | sed 's/^/artifact: /'
exit $status
