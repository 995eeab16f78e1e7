#!/usr/bin/env bash
# bench/sandbox.sh - simple requests per second of optsync-sandbox: wrk
# against a cheap core route (GET /sandbox/ping: routing, the fault check,
# the request log and stats, a JSON answer), so the number does not depend
# on the AC/SF modules. Last line: "RESULT sandbox_rps=N".
#
# usage: bench/sandbox.sh
# env:   BUILD_DIR (default: build, made with scripts/build.sh release),
#        DURATION (s, 10), THREADS (2), CONNECTIONS (50),
#        BENCH_PATH (/sandbox/ping), SANDBOX_BIN (overrides the binary)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
bin=${SANDBOX_BIN:-$build/sandbox/optsync-sandbox}
duration=${DURATION:-10}
threads=${THREADS:-2}
conns=${CONNECTIONS:-50}
path=${BENCH_PATH:-/sandbox/ping}

if ! command -v wrk >/dev/null 2>&1; then
    echo "bench: installing wrk" >&2
    if [ "$(id -u)" -eq 0 ]; then
        apt-get install -y wrk >/dev/null
    else
        sudo apt-get install -y wrk >/dev/null
    fi
fi
if [ ! -x "$bin" ]; then
    if [ -n "${SANDBOX_BIN:-}" ]; then
        echo "bench: $bin is not executable" >&2
        exit 1
    fi
    echo "bench: building (scripts/build.sh release $build)" >&2
    "$top/scripts/build.sh" release "$build"
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/optsync-bench-sandbox-XXXXXX")
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

echo '{"tenants":{"bench":{}}}' >"$dir/fixture.json"
"$bin" --port 0 --port-file "$dir/port" --fixture "$dir/fixture.json" \
    >"$dir/sandbox.log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
    [ -s "$dir/port" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$dir/sandbox.log" >&2; exit 1; }
    sleep 0.05
done
[ -s "$dir/port" ] || { echo "bench: sandbox did not start" >&2; exit 1; }
url="http://127.0.0.1:$(cat "$dir/port")$path"

# A short warm-up, then the measured run.
wrk -t1 -c4 -d1s "$url" >/dev/null
wrk -t"$threads" -c"$conns" -d"${duration}s" --latency "$url" | tee "$dir/wrk.out"
rps=$(awk '/^Requests\/sec:/ { printf "%d", $2 }' "$dir/wrk.out")
errors=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$dir/wrk.out")
if [ -n "$errors" ]; then
    echo "bench: $errors non-2xx answers" >&2
fi

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
if [ "$status" -ne 0 ]; then
    echo "bench: sandbox exited with $status" >&2
    exit 1
fi
echo "RESULT sandbox_rps=${rps:-0}"
