#!/usr/bin/env bash
# Build the original registry's benchmark harness against the original's
# source file, unmodified, given on the command line.
#
#   bench/reference/build.sh REFERENCE_RS OUT_BINARY
#
# The original's text never enters this tree: this workspace and
# REFERENCE_RS are copied into a temporary directory (under $TMPDIR), built
# there offline against Debian's packaged crates, and the binary copied to
# OUT_BINARY.  Needs: cargo/rustc >= 1.85 (edition 2024), and the Debian
# packages librust-serde-dev librust-serde-derive-dev librust-serde-json-dev
# librust-thiserror-dev librust-libc-dev (in /usr/share/cargo/registry).
set -euo pipefail

if [[ $# -ne 2 ]]; then
	echo "usage: $0 REFERENCE_RS OUT_BINARY" >&2
	exit 2
fi
ref=$1
out=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
registry=${DEBIAN_CARGO_REGISTRY:-/usr/share/cargo/registry}

if [[ ! -r $ref ]]; then
	echo "$0: cannot read the reference source $ref" >&2
	exit 1
fi
if [[ ! -d $registry ]]; then
	echo "$0: no Debian cargo registry at $registry" >&2
	echo "  apt-get install librust-serde-dev librust-serde-derive-dev librust-serde-json-dev librust-thiserror-dev librust-libc-dev" >&2
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/scope-reference-build.XXXXXX")
trap 'rm -rf -- "$work"' EXIT

cp -R -- "$here/Cargo.toml" "$here/harness" "$here/shims" "$work/"
rm -f -- "$work/harness/src/scope_lock.rs"
cp -- "$ref" "$work/harness/src/scope_lock.rs"
mkdir -p "$work/.cargo"
cat >"$work/.cargo/config.toml" <<CONFIG
[source.crates-io]
replace-with = "debian"

[source.debian]
directory = "$registry"

[net]
offline = true
CONFIG

(cd "$work" && cargo build --release --offline --quiet -p reference_cycles)
mkdir -p -- "$(dirname -- "$out")"
cp -- "$work/target/release/reference_cycles" "$out"
