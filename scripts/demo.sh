#!/usr/bin/env bash
# The demo: install what is missing, build, then run the smoke path on the
# embedded stack (scripts/smoke.sh). Exits with the smoke path's status and
# leaves no process behind, also on Ctrl-C.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

scripts/deps.sh
echo "== building (release) ..."
if ! scripts/build.sh release "$top/build" >"${TMPDIR:-/tmp}/optsync-demo-build.log" 2>&1; then
    tail -n 40 "${TMPDIR:-/tmp}/optsync-demo-build.log" >&2
    echo "demo: build failed (full log: ${TMPDIR:-/tmp}/optsync-demo-build.log)" >&2
    exit 1
fi

exec scripts/smoke.sh "$top/build" "$@"
