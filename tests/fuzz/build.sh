#!/bin/sh
# SPDX-License-Identifier: MIT
# build.sh [OUTDIR] - build the libFuzzer targets with clang, the core's
# sources compiled into each (ASan + UBSan + libFuzzer coverage).
#   CC (default clang), EXTRA_CFLAGS: override or add.
# Prints the OUTDIR it built into.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/build-fuzz}
CC=${CC:-clang}
mkdir -p "$out"

jansson=$(pkg-config --cflags --libs jansson)
flags="-g -O1 -fno-omit-frame-pointer -std=gnu11 -D_GNU_SOURCE
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
  -I$root/core -I$root ${EXTRA_CFLAGS:-}"

for t in table rules name; do
	# shellcheck disable=SC2086
	$CC $flags -o "$out/fuzz_$t" "$here/fuzz_$t.c" "$root"/core/*.c $jansson
done
echo "$out"
