#!/usr/bin/env bash
# The demo's smoke path as a test: scripts/smoke.sh must exit 0, report the
# expected outcome, and leave neither the broker nor redis-server running.
# usage: smoke_path.sh SOURCE_DIR BUILD_DIR
set -uo pipefail

src=$1
build=$2
export TMPDIR
TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/optsync-smoke-test-XXXXXX")
out="$TMPDIR/out.txt"

"$src/scripts/smoke.sh" "$build" >"$out" 2>&1
status=$?
cat "$out"
fail() { echo "smoke_path: $*" >&2; rm -rf "$TMPDIR"; exit 1; }

[ "$status" -eq 0 ] || fail "smoke.sh exited $status"
grep -q '^== smoke path OK' "$out" || fail "no 'smoke path OK' line"
grep -q 'processed 4, duplicates suppressed 1, dead-lettered 1' "$out" ||
    fail "unexpected tally"
# Nothing left running: the launcher's command line names our TMPDIR, and
# the redis port must refuse connections.
if pgrep -f "optsync-embedded-kafka.*$TMPDIR" >/dev/null; then
    fail "embedded Kafka still running"
fi
port=$(sed -n 's/^== redis-server on 127.0.0.1:\([0-9]*\)$/\1/p' "$out")
[ -n "$port" ] || fail "no redis port in the output"
if redis-cli -p "$port" ping >/dev/null 2>&1; then
    fail "redis-server on port $port still running"
fi
rm -rf "$TMPDIR"
echo "smoke_path: OK, nothing left running"
