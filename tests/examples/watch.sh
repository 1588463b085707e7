#!/bin/bash
# Watch a scopefs mount: pods appearing and going (inotify) and the change
# stream.  Run: bash watch.sh [MOUNT]   (or SCOPEFS_MOUNT=MOUNT); Ctrl-C stops.
M=${1:-${SCOPEFS_MOUNT:-/run/scopes}}
inotifywait -m -q -e create,delete "$M" &   # MOUNT/ CREATE,ISDIR worker
cat "$M/.events"                            # 1 register worker -
