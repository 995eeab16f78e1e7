#!/usr/bin/env bash
# bench/e2e.sh - end-to-end latency from AC webhook to SF write, and the
# throughput of the whole pipeline, through optsync-demo (every worker a
# process; embedded Kafka, redis-server, the sandbox with AC's 5 calls/s):
#   paced: LOAD changes at RATE per second, below the AC limit, so the
#          latency is the pipeline's own (p50/p99);
#   burst: LOAD changes at once, so the throughput is what the AC limit
#          allows for people optsync has not seen yet.
# Last line:
#   RESULT e2e_p50_ms=A e2e_p99_ms=B burst_changes_per_s=T ac_limit_per_s=5
#
# usage: bench/e2e.sh
# env:   BUILD_DIR (default: build-bench-e2e, a release build made here),
#        LOAD (200), RATE (2)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build-bench-e2e}
load=${LOAD:-200}
rate=${RATE:-2}

if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DOSY_ENABLE_TESTS=OFF >/dev/null
fi
cmake --build "$build" -j"$(nproc)" --target optsync-demo >/dev/null

demo=$build/tools/e2e/optsync-demo
out=$(mktemp "${TMPDIR:-/tmp}/optsync-bench-e2e-XXXXXX")
trap 'rm -f "$out"' EXIT

run() {
    echo "== optsync-demo $*" >&2
    if ! "$demo" "$@" >"$out" 2>&1; then
        cat "$out" >&2
        echo "bench/e2e.sh: the demo failed" >&2
        exit 1
    fi
    sed -n '/== Load/,/final state/p' "$out" >&2
}

run --load "$load" --load-rate "$rate"
p50=$(sed -n 's/.*latency .*p50 \([0-9]*\) ms.*/\1/p' "$out")
p99=$(sed -n 's/.*latency .*p99 \([0-9]*\) ms.*/\1/p' "$out")

run --load "$load"
tput=$(sed -n 's/.*throughput *\([0-9.]*\) changes.*/\1/p' "$out")

echo "RESULT e2e_p50_ms=$p50 e2e_p99_ms=$p99 burst_changes_per_s=$tput ac_limit_per_s=5"
