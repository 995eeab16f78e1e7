#!/usr/bin/env bash
# Start Debian's redis-server on a free loopback port, with a private
# directory for its files. Prints the port; writes DIR/redis.port and
# DIR/redis.pid. Stop it with scripts/redis-stop.sh DIR.
#
# usage: scripts/redis-start.sh DIR [PORT]
set -euo pipefail

dir=${1:?usage: redis-start.sh DIR [PORT]}
want_port=${2:-}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

command -v redis-server >/dev/null ||
    { echo "redis-start: redis-server not found (apt-get install redis-server)" >&2; exit 1; }

try_port() {
    local port=$1
    # No persistence: tests and the demo want a clean, fast, private server.
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" \
        --save '' --appendonly no --daemonize no --protected-mode yes \
        --logfile "$dir/redis.log" --pidfile "$dir/redis.pid" \
        </dev/null >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            return 1 # exited: most likely the port was taken
        fi
        if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
            echo "$pid" >"$dir/redis.pid"
            echo "$port" >"$dir/redis.port"
            echo "$port"
            return 0
        fi
        sleep 0.05
    done
    kill "$pid" 2>/dev/null || true
    return 1
}

if [ -n "$want_port" ]; then
    try_port "$want_port" && exit 0
    echo "redis-start: could not start on port $want_port (see $dir/redis.log)" >&2
    exit 1
fi
for _ in $(seq 1 20); do
    port=$(( (RANDOM % 30000) + 20000 ))
    try_port "$port" && exit 0
done
echo "redis-start: no free port found after 20 tries (see $dir/redis.log)" >&2
exit 1
