#!/usr/bin/env bash
# Stop a redis-server started by scripts/redis-start.sh DIR and wait for it
# to exit. Safe to call twice.
#
# usage: scripts/redis-stop.sh DIR
set -uo pipefail

dir=${1:?usage: redis-stop.sh DIR}
[ -f "$dir/redis.pid" ] || exit 0
pid=$(cat "$dir/redis.pid")
if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
fi
rm -f "$dir/redis.pid" "$dir/redis.port"
exit 0
