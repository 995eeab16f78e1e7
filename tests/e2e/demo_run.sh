#!/usr/bin/env bash
# The README's first command, as a test: optsync-demo must exit 0 with
# every scenario matching, and leave no process behind; on SIGINT (Ctrl-C)
# mid-run it must stop everything it started and exit 130; and when SF
# refuses every write it must say which scenarios do not match and exit 1.
#
# usage: demo_run.sh BUILD_DIR full|interrupt|mismatch
set -uo pipefail

build=${1:?usage: demo_run.sh BUILD_DIR full|interrupt|mismatch}
mode=${2:?usage: demo_run.sh BUILD_DIR full|interrupt|mismatch}
demo="$build/tools/e2e/optsync-demo"
out=$(mktemp "${TMPDIR:-/tmp}/optsync-demo-test-XXXXXX")
trap 'rm -f "$out"' EXIT

fail() {
    echo "FAIL: $*" >&2
    echo "---- demo output ----" >&2
    cat "$out" >&2
    exit 1
}

# Every pid the demo printed ("name pid N ...") must be gone.
check_no_leftovers() {
    local pids
    pids=$(sed -n 's/^ *[a-z-]* *pid \([0-9][0-9]*\).*/\1/p' "$out")
    [ -n "$pids" ] || fail "the demo printed no pids"
    [ "$(echo "$pids" | wc -l)" -eq 8 ] || fail "expected 8 processes, got: $pids"
    for pid in $pids; do
        if kill -0 "$pid" 2>/dev/null; then
            fail "process $pid ($(tr '\0' ' ' </proc/"$pid"/cmdline)) is still running"
        fi
    done
}

case "$mode" in
full)
    "$demo" --people 300 --seed 3 >"$out" 2>&1
    status=$?
    [ "$status" -eq 0 ] || fail "optsync-demo exited $status"
    grep -q "^== OK: 10 of 10 scenarios match the rules; everyone else as expected" "$out" ||
        fail "no OK summary"
    [ "$(grep -c '^   result   MATCH' "$out")" -eq 10 ] || fail "not 10 MATCH lines"
    grep -q "DLQ entries  0" "$out" || fail "DLQ not empty"
    check_no_leftovers
    ;;
interrupt)
    "$demo" --people 300 --seed 3 >"$out" 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do
        grep -q "^== Playing" "$out" && break
        kill -0 "$pid" 2>/dev/null || fail "the demo ended before playing"
        sleep 0.1
    done
    grep -q "^== Playing" "$out" || fail "the demo never started playing"
    kill -INT "$pid"
    wait "$pid"
    status=$?
    [ "$status" -eq 130 ] || fail "exit status $status after SIGINT, expected 130"
    grep -q "Interrupted: stopping every process" "$out" || fail "no interrupt message"
    check_no_leftovers
    ;;
mismatch)
    # SF answers every write with a permanent error: the scenarios whose
    # rule writes SF (R1, R2, R3, R4's R2 effect) cannot match.
    "$demo" --people 300 --seed 3 --fault \
        '{"endpoint":"sf.composite","kind":"status","status":400,"body":[{"message":"injected permanent fault","errorCode":"INVALID_FIELD"}]}' \
        >"$out" 2>&1
    status=$?
    [ "$status" -eq 1 ] || fail "optsync-demo exited $status, expected 1"
    grep -q "^== FAILED: 4 of 10 scenarios match the rules" "$out" || fail "no FAILED summary"
    [ "$(grep -c '^   result   MISMATCH' "$out")" -eq 6 ] || fail "not 6 MISMATCH lines"
    grep -q "DLQ entries  6" "$out" || fail "the refused writes are not in the DLQ"
    check_no_leftovers
    ;;
*)
    echo "unknown mode $mode" >&2
    exit 2
    ;;
esac
echo "PASS: demo $mode"
