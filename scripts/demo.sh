#!/usr/bin/env bash
# The demo: install what is missing, build, then run optsync-demo: the
# embedded Kafka cluster, a private redis-server, the sandbox seeded with a
# realistic account in place of ActiveCampaign and Salesforce, and the five
# workers as separate processes; scenarios played as users would, each
# checked against the opt-out rules. Exits 0 only when every scenario
# matches; leaves no process behind, also on Ctrl-C.
#
# usage: scripts/demo.sh [--load N] [--people N] [--seed N] [--ac-rate N] [--keep]
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

scripts/deps.sh
echo "== building (release) ..."
log="${TMPDIR:-/tmp}/optsync-demo-build.log"
if ! scripts/build.sh release "$top/build" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "demo: build failed (full log: $log)" >&2
    exit 1
fi

# exec: Ctrl-C goes straight to the demo, which stops every process it
# started (they run in their own process groups) before it exits.
exec "$top/build/tools/e2e/optsync-demo" "$@"
