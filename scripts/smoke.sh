#!/usr/bin/env bash
# Start the embedded stack (embedded Kafka launcher + a private
# redis-server), run optsync-smoke through it, and stop everything, also on
# Ctrl-C or failure. Used by scripts/demo.sh and by the test suite.
#
# usage: scripts/smoke.sh BUILD_DIR [optsync-smoke options]
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:?usage: smoke.sh BUILD_DIR}" && pwd)
shift
cd "$top"

run=$(mktemp -d "${TMPDIR:-/tmp}/optsync-demo-XXXXXX")
kafka_pid=""
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "$kafka_pid" ] && kill -0 "$kafka_pid" 2>/dev/null; then
        kill -TERM "$kafka_pid" 2>/dev/null || true
        wait "$kafka_pid" 2>/dev/null || true
        echo "== stopped embedded Kafka"
    fi
    if [ -f "$run/redis/redis.pid" ]; then
        scripts/redis-stop.sh "$run/redis"
        echo "== stopped redis-server"
    fi
    rm -rf "$run"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

redis_port=$(scripts/redis-start.sh "$run/redis")
echo "== redis-server on 127.0.0.1:$redis_port"

"$build"/tools/embedded-kafka/optsync-embedded-kafka --brokers 3 --partitions 6 \
    --bootstrap-file "$run/bootstrap" --control-file "$run/control" \
    >"$run/kafka.log" 2>&1 &
kafka_pid=$!
for _ in $(seq 1 200); do
    [ -s "$run/bootstrap" ] && break
    kill -0 "$kafka_pid" 2>/dev/null || { cat "$run/kafka.log" >&2; exit 1; }
    sleep 0.05
done
[ -s "$run/bootstrap" ] || { echo "embedded Kafka did not start" >&2; exit 1; }
bootstrap=$(cat "$run/bootstrap")
echo "== embedded Kafka (3 brokers, contract topics x 6 partitions) at $bootstrap"

"$build"/tools/smoke/optsync-smoke --bootstrap "$bootstrap" \
    --redis-port "$redis_port" "$@"
