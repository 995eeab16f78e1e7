#!/usr/bin/env bash
# bench/writers.sh - external API calls per 1,000 opt-out changes through
# the writers, against the sandbox: sf-writer with a cold record cache
# (lookups + writes) and a warm one (writes only), ac-writer with the
# contact known (the rules' state: its lists are still read from AC, then
# bulk import) and without it (look-up, list read, one call per list); then the use of
# AC's 5 requests/s by four ac-writer replicas over 60 s, with their 429s.
# Last line:
#   RESULT sf_calls_per_1000_cold=A sf_calls_per_1000_warm=B ac_limit_use=U ac_429=Z
#
# usage: bench/writers.sh
# env:   BUILD_DIR (default: build-bench-writers, a release build made here),
#        CHANGES (1000), AC_WARM (250) and AC_COLD (100): changes of the AC
#        runs, scaled to 1,000 (each costs a list read at 5 calls/s),
#        WINDOW_S (60), REPLICAS (4), LOG_LEVEL (warn: the writers' logs),
#        SF_ONLY (a path: stop after the SF part, sf-writer's log copied there)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build-bench-writers}
changes=${CHANGES:-1000}
ac_warm_n=${AC_WARM:-250}
ac_cold=${AC_COLD:-100}
window_s=${WINDOW_S:-60}
replicas=${REPLICAS:-4}
sfw=$build/workers/sf-writer/sf-writer
acw=$build/workers/ac-writer/ac-writer
gen=$build/workers/ac-writer/writers-bench-gen
launcher=$build/tools/embedded-kafka/optsync-embedded-kafka
sandbox=$build/sandbox/optsync-sandbox

# Always brought up to date (quick when nothing changed).
if [ ! -f "$build/CMakeCache.txt" ]; then
    echo "bench: configuring $build (release)" >&2
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release \
        -DOSY_ENABLE_TESTS=OFF >/dev/null
fi
cmake --build "$build" -j2 --target sf-writer ac-writer writers-bench-gen \
    optsync-embedded-kafka optsync-sandbox >/dev/null

dir=$(mktemp -d "${TMPDIR:-/tmp}/optsync-bench-writers-XXXXXX")
kpid= spid=
wpids=()
stop() { # pid: SIGTERM, wait
    if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
        kill -TERM "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
}
cleanup() {
    for p in "${wpids[@]}"; do stop "$p"; done
    stop "$spid"
    stop "$kpid"
    bash "$top/scripts/redis-stop.sh" "$dir/redis" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
wait_file() { # path: until it exists and is not empty (10 s)
    for _ in $(seq 1 200); do
        [ -s "$1" ] && return 0
        sleep 0.05
    done
    echo "bench: $1 did not appear" >&2
    exit 1
}

# ---- the stack: Kafka (4 partitions), Redis, the sandbox ----------------
persons=$((2000 + replicas * 1000))
"$launcher" --partitions 4 --bootstrap-file "$dir/bootstrap" \
    >"$dir/kafka.out" 2>"$dir/kafka.log" &
kpid=$!
wait_file "$dir/bootstrap"
bootstrap=$(cat "$dir/bootstrap")
redis_port=$(bash "$top/scripts/redis-start.sh" "$dir/redis")
# Everyone has an SF Contact (a Lead for every tenth) and an AC contact
# active on two lists.
"$gen" fixture "$persons" 10 2 >"$dir/fixture.json"
"$sandbox" --port 0 --port-file "$dir/sandbox.port" --log-size 1000000 \
    --fixture "$dir/fixture.json" >"$dir/sandbox.log" 2>&1 &
spid=$!
wait_file "$dir/sandbox.port"
sb=http://127.0.0.1:$(cat "$dir/sandbox.port")
cat >"$dir/tenants.json" <<EOF
{"tenants":[{"id":"t1",
  "ac":{"base_url":"$sb/ac/t1","api_token":"sandbox-ac-token"},
  "sf":{"login_url":"$sb/sf/t1","auth":"client_credentials",
        "client_id":"sandbox-client-id","client_secret":"sandbox-client-secret"}}]}
EOF
export OPTSYNC_KAFKA_BOOTSTRAP=$bootstrap OPTSYNC_REDIS_PORT=$redis_port \
    OPTSYNC_TENANTS_FILE=$dir/tenants.json OPTSYNC_ADMIN_PORT=0 \
    OPTSYNC_ADMIN_ADDR=127.0.0.1 OPTSYNC_LOG_LEVEL=${LOG_LEVEL:-warn} \
    OPTSYNC_WRITER_SESSION_TIMEOUT=6s OPTSYNC_SHUTDOWN_GRACE=10s

start() { # binary log [VAR=value...]: start a writer; its pid in $pid
    local bin=$1 log=$2
    shift 2
    env "$@" "$bin" >"$dir/$log" 2>&1 &
    pid=$!
    wpids+=("$pid")
}
stop_writer() { # pid: SIGTERM and wait (up to the grace), it must exit 0
    kill -TERM "$1" 2>/dev/null || true
    local rc=0
    wait "$1" || rc=$?
    [ $rc -eq 0 ] || echo "bench: writer $1 exited with $rc" >&2
}
admin_port() { # log: the port the writer printed
    wait_file "$dir/$1"
    for _ in $(seq 1 200); do
        if grep -q '^admin_port=' "$dir/$1"; then
            sed -n 's/^admin_port=//p' "$dir/$1" | head -1
            return
        fi
        sleep 0.05
    done
    echo "bench: no admin port in $1" >&2
    exit 1
}
applied() { # admin port, worker: commands finished as applied
    curl -s "http://127.0.0.1:$1/metrics" | awk -v w="$2" '
        $1 ~ /^optsync_writer_commands_total\{/ && index($1, "worker=\"" w "\"") &&
        index($1, "outcome=\"applied\"") { n += $2 } END { printf "%.0f\n", n }'
}
wait_applied() { # admin port, worker, count, timeout_s
    local end=$((SECONDS + $4))
    while [ "$(applied "$1" "$2")" -lt "$3" ]; do
        if [ $SECONDS -ge $end ]; then
            echo "bench: $2 applied $(applied "$1" "$2") of $3" >&2
            exit 1
        fi
        sleep 0.2
    done
}
per1000() { # calls, changes
    awk -v c="$1" -v n="$2" 'BEGIN { printf "%.1f\n", c * 1000 / n }'
}

# ---- SF: cold record cache, then warm -------------------------------------
seq0=$("$gen" last-seq "$sb")
"$gen" produce "$bootstrap" sf 0 "$changes" 1000000 1
start "$sfw" sf-writer.log
port=$(admin_port sf-writer.log)
wait_applied "$port" sf-writer "$changes" 120
sf_cold=$("$gen" calls "$sb" "$seq0" sf.query sf.composite sf.limits sf.rest)
sf_cold_q=$("$gen" calls "$sb" "$seq0" sf.query)
seq1=$("$gen" last-seq "$sb")
"$gen" produce "$bootstrap" sf 0 "$changes" 2000000 0
wait_applied "$port" sf-writer $((2 * changes)) 120
sf_warm=$("$gen" calls "$sb" "$seq1" sf.query sf.composite sf.limits sf.rest)
echo "sf-writer: $changes changes (cold cache): $sf_cold calls ($sf_cold_q queries); again (warm): $sf_warm calls"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^optsync_writer_batch_commands_(count|sum)' >&2 || true
stop_writer "$pid"
if [ -n "${SF_ONLY:-}" ]; then cp "$dir/sf-writer.log" "$SF_ONLY"; exit 0; fi

# ---- AC: contact known (bulk), then cold ---------------------------------------
# The rules' state gives the contact id; the active lists always come from
# AC (the rules' lists are the decided state, empty after R4).
"$gen" seed-rules "$redis_port" optsync 0 "$ac_warm_n" 2
seq2=$("$gen" last-seq "$sb")
"$gen" produce "$bootstrap" ac 0 "$ac_warm_n" 3000000 1 hint
start "$acw" ac-writer-1.log OPTSYNC_AC_WRITER_GROUP_ID=bench-ac-1
port=$(admin_port ac-writer-1.log)
wait_applied "$port" ac-writer "$ac_warm_n" 180
ac_warm=$("$gen" calls "$sb" "$seq2" 'ac.*')
stop_writer "$pid"
seq3=$("$gen" last-seq "$sb")
"$gen" produce "$bootstrap" ac "$ac_warm_n" "$ac_cold" 3000000 1
start "$acw" ac-writer-2.log OPTSYNC_AC_WRITER_GROUP_ID=bench-ac-2
port=$(admin_port ac-writer-2.log)
wait_applied "$port" ac-writer "$ac_cold" 180
ac_cold_calls=$("$gen" calls "$sb" "$seq3" 'ac.*')
stop_writer "$pid"
echo "ac-writer: $ac_warm_n changes (contact known, lists read, bulk import): $ac_warm calls; $ac_cold changes (nothing known): $ac_cold_calls calls"

# ---- AC: four replicas on one account, one call per list ------------------------
from=2000
"$gen" produce "$bootstrap" ac "$from" $((persons - from)) 4000000 1
seq4=$("$gen" last-seq "$sb")
for i in $(seq 1 "$replicas"); do
    start "$acw" "ac-writer-r$i.log" OPTSYNC_AC_WRITER_GROUP_ID=bench-ac-3 \
        OPTSYNC_AC_BULK_THRESHOLD=0
done
# The window starts at the first AC call (after the group has formed).
end=$((SECONDS + 60))
while [ "$("$gen" calls "$sb" "$seq4" 'ac.*')" -eq 0 ] && [ $SECONDS -lt $end ]; do
    sleep 0.2
done
sleep $((window_s + 2))
for p in "${wpids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${wpids[@]}"; do stop_writer "$p"; done
wpids=()
read -r granted use z429 < <("$gen" rate-use "$sb" "$seq4" $((window_s * 1000)) 5)
echo "ac-writer x$replicas: $granted AC calls answered in ${window_s} s (allowed $((5 * window_s))), 429/503: $z429"

a=$(per1000 "$sf_cold" "$changes")
b=$(per1000 "$sf_warm" "$changes")
echo "ac_calls_per_1000_warm=$(per1000 "$ac_warm" "$ac_warm_n") ac_calls_per_1000_cold=$(per1000 "$ac_cold_calls" "$ac_cold")"
echo "RESULT sf_calls_per_1000_cold=$a sf_calls_per_1000_warm=$b ac_limit_use=$use ac_429=$z429"
