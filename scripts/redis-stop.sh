#!/usr/bin/env bash
# Stop a redis-server started by scripts/redis-start.sh DIR and wait for it
# to exit. Safe to call twice.
#
# usage: scripts/redis-stop.sh DIR
set -uo pipefail

dir=${1:?usage: redis-stop.sh DIR}
[ -f "$dir/redis.pid" ] || exit 0
pid=$(cat "$dir/redis.pid")

# Alive means running: an exited server whose parent has not reaped it yet
# (a zombie) still answers kill -0 but is gone for our purposes.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ "$state" != Z ]
}

if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do
        alive "$pid" || break
        sleep 0.05
    done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
fi
rm -f "$dir/redis.pid" "$dir/redis.port"
exit 0
