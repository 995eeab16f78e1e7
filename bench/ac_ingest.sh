#!/usr/bin/env bash
# bench/ac_ingest.sh - webhook requests/s and p99 latency of ac-ingest with
# Kafka's acks=all delivery report before every 200 (embedded broker),
# against the same server answering 200 right after decoding
# (--no-produce): the ratio is what durability costs. Also the peak RSS of
# the producing run. Last line:
#   RESULT ingest_rps=N ratio_vs_noop=R p99_ms=L rss_mb=M
#
# usage: bench/ac_ingest.sh
# env:   BUILD_DIR (default: build, made with scripts/build.sh release),
#        DURATION (s, 15), THREADS (wrk threads, 2), CONNECTIONS (64),
#        INGEST_THREADS (server threads, 2), BODIES (distinct people, 1000)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
ingest=$build/workers/ac-ingest/ac-ingest
launcher=$build/tools/embedded-kafka/optsync-embedded-kafka
duration=${DURATION:-15}
threads=${THREADS:-2}
conns=${CONNECTIONS:-64}
server_threads=${INGEST_THREADS:-2}
bodies=${BODIES:-1000}

if ! command -v wrk >/dev/null 2>&1; then
    echo "bench: installing wrk" >&2
    if [ "$(id -u)" -eq 0 ]; then
        apt-get install -y wrk >/dev/null
    else
        sudo apt-get install -y wrk >/dev/null
    fi
fi
if [ ! -x "$ingest" ] || [ ! -x "$launcher" ]; then
    echo "bench: building (scripts/build.sh release $build)" >&2
    "$top/scripts/build.sh" release "$build"
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/optsync-bench-ingest-XXXXXX")
kpid= ipid=
stop() { # pid: SIGTERM, wait
    if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
        kill -TERM "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
}
cleanup() {
    stop "$ipid"
    stop "$kpid"
    rm -rf "$dir"
}
trap cleanup EXIT

"$launcher" --partitions 6 --bootstrap-file "$dir/bootstrap" \
    --control-file "$dir/control" >"$dir/kafka.out" 2>"$dir/kafka.log" &
kpid=$!
for _ in $(seq 1 200); do
    [ -s "$dir/bootstrap" ] && break
    sleep 0.05
done
[ -s "$dir/bootstrap" ] || { echo "bench: Kafka did not start" >&2; exit 1; }

token=bench-webhook-token-0123456789
cat >"$dir/tenants.json" <<EOF
{"tenants":[{"id":"bench","ac":{"base_url":"http://127.0.0.1:9/ac/bench",
 "api_token":"bench-api-token","webhook_token":"$token"}}]}
EOF

# wrk cycles through real-format unsubscribe webhooks of distinct people
# (distinct keys spread over the partitions, distinct event ids).
cat >"$dir/post.lua" <<EOF
local n = $bodies
local bodies = {}
for i = 1, n do
  bodies[i] = "type=unsubscribe&date_time=2024-02-28T07%3A04%3A13-06%3A00" ..
    "&initiated_from=public&initiated_by=public&list=0&list%5B0%5D%5Bid%5D=2" ..
    "&contact%5Bid%5D=" .. i .. "&contact%5Bemail%5D=person" .. i ..
    "%40example.com&contact%5Bfirst_name%5D=Jane&contact%5Blast_name%5D=Doe" ..
    "&contact%5Btags%5D=added-to-salesforce-contact%2C+newsletter" ..
    "&contact%5Bfields%5D%5Bcontact_owner%5D=3&campaign%5Bid%5D=41" ..
    "&unsubscribe%5Breason%5D=Too+many+emails&orgname=&customer_acct_id=0"
end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
request = function()
  i = i % n + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
EOF

# run_one NAME [ac-ingest flags]: start the server, warm up, measure.
run_one() {
    local name=$1
    shift
    rm -rf "$dir/spool"
    OPTSYNC_KAFKA_BOOTSTRAP=$(cat "$dir/bootstrap") \
    OPTSYNC_TENANTS_FILE=$dir/tenants.json \
    OPTSYNC_INGEST_SPOOL_DIR=$dir/spool \
    OPTSYNC_INGEST_PORT=0 OPTSYNC_INGEST_LISTEN_ADDR=127.0.0.1 \
    OPTSYNC_ADMIN_PORT=0 OPTSYNC_ADMIN_ADDR=127.0.0.1 \
    OPTSYNC_INGEST_THREADS=$server_threads OPTSYNC_LOG_LEVEL=warn \
        "$ingest" "$@" >"$dir/$name.out" 2>"$dir/$name.log" &
    ipid=$!
    for _ in $(seq 1 200); do
        grep -q '^ingest_port=' "$dir/$name.out" 2>/dev/null && break
        kill -0 "$ipid" 2>/dev/null || { cat "$dir/$name.log" >&2; exit 1; }
        sleep 0.05
    done
    local port admin
    port=$(sed -n 's/^ingest_port=\([0-9]*\).*/\1/p' "$dir/$name.out")
    admin=$(sed -n 's/.*admin_port=\([0-9]*\).*/\1/p' "$dir/$name.out")
    local url="http://127.0.0.1:$port/webhooks/ac/bench/$token"
    wrk -t1 -c4 -d1s -s "$dir/post.lua" "$url" >/dev/null
    echo "== $name" >&2
    wrk -t"$threads" -c"$conns" -d"${duration}s" --latency \
        -s "$dir/post.lua" "$url" | tee "$dir/$name.wrk" >&2
    curl -s "http://127.0.0.1:$admin/metrics" >"$dir/$name.metrics" || true
    awk '/^VmHWM:/ { printf "%d", $2 / 1024 }' "/proc/$ipid/status" \
        >"$dir/$name.rss"
    kill -TERM "$ipid"
    local status=0
    wait "$ipid" || status=$?
    ipid=
    if [ "$status" -ne 0 ]; then
        echo "bench: ac-ingest ($name) exited with $status" >&2
        cat "$dir/$name.log" >&2
        exit 1
    fi
    local errors
    errors=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$dir/$name.wrk")
    if [ -n "$errors" ]; then
        echo "bench: $name: $errors non-2xx answers" >&2
        exit 1
    fi
}

# wrk prints "99%  1.23ms" (or us / s): in milliseconds.
p99_ms() {
    awk '$1 == "99%" {
        v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
        if (u == "us") v /= 1000; else if (u == "s") v *= 1000
        printf "%.2f", v }' "$1"
}
rps_of() { awk '/^Requests\/sec:/ { printf "%d", $2 }' "$1"; }

run_one kafka
run_one noop --no-produce

rps=$(rps_of "$dir/kafka.wrk")
noop=$(rps_of "$dir/noop.wrk")
p99=$(p99_ms "$dir/kafka.wrk")
rss=$(cat "$dir/kafka.rss")
spooled=$(awk '/^optsync_ingest_requests_total\{type="unsubscribe",outcome="spooled"\}/ { print $2 }' \
    "$dir/kafka.metrics")
ratio=$(awk -v a="$rps" -v b="$noop" 'BEGIN { printf "%.2f", b ? a / b : 0 }')
echo "kafka-acked: ${rps} req/s, p99 ${p99} ms, peak RSS ${rss} MB," \
    "spooled ${spooled:-0}; no-produce: ${noop} req/s, p99 $(p99_ms "$dir/noop.wrk") ms"
echo "RESULT ingest_rps=${rps} ratio_vs_noop=${ratio} p99_ms=${p99} rss_mb=${rss}"
