#!/bin/bash
# scopefs from a shell: register, adopt, set rules, delegate, a refusal, release.
# Run: bash example.sh [MOUNT]   (or SCOPEFS_MOUNT=MOUNT)
set -eu
M=${1:-${SCOPEFS_MOUNT:-/run/scopes}}

mkdir "$M/worker" && echo $$ > "$M/worker/pid"     # register; adopt: this shell owns it
echo 'write recursive /srv/proj/src' > "$M/worker/allow"   # replaces the rules
echo 'read recursive /srv/proj' >> "$M/worker/allow"       # adds one
cat "$M/worker/allow"
echo "session $(cat "$M/worker/session")"

mkdir "$M/worker/tests" && echo $$ > "$M/worker/tests/pid"  # delegate from worker
echo 'write recursive /srv/proj/src/tests' > "$M/worker/tests/allow"
echo "tests delegated from $(cat "$M/tests/delegated_from")"
echo pods: $(ls "$M")                                   # flat: every pod

mkdir "$M/rival" && echo $$ > "$M/rival/pid"
echo 'write recursive /srv/proj/src/lib' > "$M/rival/allow" || echo "rival refused"

rmdir "$M/rival" "$M/worker"                         # release; tests moves up
echo "tests delegated from '$(cat "$M/tests/delegated_from")'"
rmdir "$M/tests"
