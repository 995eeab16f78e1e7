#!/usr/bin/env bash
# bench/sf_ingest.sh - sf-ingest against the sandbox and the embedded Kafka:
#  1. CDC events/s: N opt-out changes pile up in the CDC log while
#     sf-ingest is stopped (it has committed a replay id before); it is
#     started and the clock runs until Kafka acknowledged all N sf.events
#     (replay, email look-ups through SOQL, acks=all, Redis commits).
#  2. Polling mode: SF API calls (queries and tokens, as sf-ingest counts
#     them) per 1,000 opt-out changes, from the first change until every
#     change is on Kafka; the naive alternative is one call per change.
# Last line:
#   RESULT cdc_events_per_s=N poll_calls_per_1000=C
#
# usage: bench/sf_ingest.sh
# env:   BUILD_DIR (default: build, made with scripts/build.sh release),
#        EVENTS (CDC changes, 5000), POLL_CHANGES (1000),
#        POLL_INTERVAL (polling pace, 2s)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
sandbox=$build/sandbox/optsync-sandbox
launcher=$build/tools/embedded-kafka/optsync-embedded-kafka
sfi=$build/workers/sf-ingest/sf-ingest
events=${EVENTS:-5000}
poll_changes=${POLL_CHANGES:-1000}
poll_interval=${POLL_INTERVAL:-2s}

if [ ! -x "$sfi" ] || [ ! -x "$sandbox" ] || [ ! -x "$launcher" ]; then
    echo "bench: building (scripts/build.sh release $build)" >&2
    "$top/scripts/build.sh" release "$build"
fi
command -v python3 >/dev/null || { echo "bench: needs python3" >&2; exit 1; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/optsync-bench-sfi-XXXXXX")
kpid= spid= ipid=
stop() { # pid: SIGTERM, wait
    if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
        kill -TERM "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
}
cleanup() {
    stop "$ipid"
    stop "$spid"
    stop "$kpid"
    "$top/scripts/redis-stop.sh" "$dir/redis" >/dev/null 2>&1 || true
    [ -n "${KEEP:-}" ] && echo "bench: kept $dir" >&2 || rm -rf "$dir"
}
trap cleanup EXIT
now_ms() { date +%s%3N; }
wait_file() { # path
    for _ in $(seq 1 300); do
        [ -s "$1" ] && return 0
        sleep 0.05
    done
    echo "bench: $1 never appeared" >&2
    exit 1
}

# ---- Kafka, Redis, the sandbox with two orgs ------------------------------
"$launcher" --partitions 6 --bootstrap-file "$dir/bootstrap" \
    >"$dir/kafka.out" 2>"$dir/kafka.log" &
kpid=$!
wait_file "$dir/bootstrap"
redis_port=$("$top/scripts/redis-start.sh" "$dir/redis")

python3 - "$events" "$poll_changes" >"$dir/fixture.json" <<'EOF'
import json, sys
n, m = int(sys.argv[1]), int(sys.argv[2])
# Created long ago: no poll at start-up reads them, so sf-ingest's email
# cache starts cold and every CDC update needs its SOQL look-up.
old = "2020-01-01T00:00:00.000Z"
people = lambda t, k: [{"LastName": "P%d" % i, "Email": "%s%d@example.com" % (t, i),
                        "LastModifiedDate": old, "SystemModstamp": old}
                       for i in range(k + 1)]
print(json.dumps({"tenants": {"cdc": {"sf": {"contacts": people("c", n)}},
                              "poll": {"sf": {"contacts": people("p", m)}}}}))
EOF
"$sandbox" --port 0 --port-file "$dir/sandbox.port" --fixture "$dir/fixture.json" \
    2>"$dir/sandbox.log" &
spid=$!
wait_file "$dir/sandbox.port"
sbx=http://127.0.0.1:$(cat "$dir/sandbox.port")

# Opt-out changes through the REST API, 200 records per composite call; a
# distinct LastName each, so Salesforce does not merge them into one event.
change() { # tenant first last
    python3 - "$sbx" "$1" "$2" "$3" <<'EOF'
import json, sys, urllib.parse, urllib.request
sbx, tenant, first, last = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
base = "%s/sf/%s" % (sbx, tenant)
form = urllib.parse.urlencode({"grant_type": "client_credentials",
                               "client_id": "sandbox-client-id",
                               "client_secret": "sandbox-client-secret"}).encode()
tok = json.load(urllib.request.urlopen(base + "/services/oauth2/token", form))
state = json.load(urllib.request.urlopen("%s/sandbox/state?tenant=%s" % (sbx, tenant)))
ids = [c["Id"] for c in state["sf"]["contacts"]][first:last + 1]
for i in range(0, len(ids), 200):
    recs = [{"attributes": {"type": "Contact"}, "id": x, "HasOptedOutOfEmail": True,
             "LastName": "Changed%d" % (first + i + k)}
            for k, x in enumerate(ids[i:i + 200])]
    req = urllib.request.Request(base + "/services/data/v59.0/composite/sobjects",
                                 json.dumps({"allOrNone": False, "records": recs}).encode(),
                                 method="PATCH")
    req.add_header("Authorization", "Bearer " + tok["access_token"])
    req.add_header("Content-Type", "application/json")
    urllib.request.urlopen(req).read()
EOF
}

# ---- sf-ingest --------------------------------------------------------------
start_sfi() { # tenant mode
    cat >"$dir/tenants.json" <<EOF
{"tenants":[{"id":"$1","sf":{"login_url":"$sbx/sf/$1","auth":"client_credentials",
 "client_id":"sandbox-client-id","client_secret":"sandbox-client-secret"}}]}
EOF
    : >"$dir/sfi.out"
    env OPTSYNC_TENANTS_FILE="$dir/tenants.json" \
        OPTSYNC_KAFKA_BOOTSTRAP="$(cat "$dir/bootstrap")" \
        OPTSYNC_REDIS_PORT="$redis_port" OPTSYNC_ADMIN_ADDR=127.0.0.1 \
        OPTSYNC_ADMIN_PORT=0 OPTSYNC_LOG_LEVEL=${SFI_LOG_LEVEL:-warn} \
        OPTSYNC_SF_INGEST_MODE="$2" OPTSYNC_SF_POLL_INTERVAL="$poll_interval" \
        OPTSYNC_SF_CDC_SAFETY_POLL=0 \
        "$sfi" >"$dir/sfi.out" 2>>"$dir/sfi.log" &
    ipid=$!
    wait_file "$dir/sfi.out"
    admin=http://127.0.0.1:$(sed -n 's/^admin_port=//p' "$dir/sfi.out")
    for _ in $(seq 1 400); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$admin/readyz")" = 200 ] &&
            return 0
        sleep 0.05
    done
    echo "bench: sf-ingest never became ready" >&2
    exit 1
}
metric() { # prefix of sample lines to sum
    curl -s "$admin/metrics" | awk -v p="$1" 'index($0, p) == 1 { s += $NF } END { print s + 0 }'
}
wait_published() { # count timeout_s
    local until=$(($(date +%s) + $2))
    while [ "$(metric optsync_sf_ingest_events_published_total)" -lt "$1" ]; do
        [ "$(date +%s)" -lt "$until" ] || {
            echo "bench: only $(metric optsync_sf_ingest_events_published_total) of $1 published" >&2
            exit 1
        }
        sleep 0.02
    done
}

# ---- 1. CDC -----------------------------------------------------------------
echo "bench: CDC: warming up (one change, replay id committed)" >&2
start_sfi cdc cdc
change cdc 0 0
wait_published 1 30
sleep 0.5
stop "$ipid"
echo "bench: CDC: $events changes while sf-ingest is down" >&2
change cdc 1 "$events"
t0=$(now_ms)
start_sfi cdc cdc
wait_published "$events" 300
t1=$(now_ms)
cdc_calls=$(metric 'optsync_sf_ingest_api_calls_total{tenant="cdc",api="query"}')
stop "$ipid"
cdc_rate=$(( events * 1000 / (t1 - t0 > 0 ? t1 - t0 : 1) ))
echo "bench: CDC: $events sf.events in $((t1 - t0)) ms (process start" \
    "included), $cdc_calls SOQL look-ups" >&2

# ---- 2. polling ---------------------------------------------------------------
echo "bench: polling every $poll_interval: $poll_changes changes" >&2
start_sfi poll poll
calls0=$(metric 'optsync_sf_ingest_api_calls_total{tenant="poll"')
t0=$(now_ms)
change poll 1 "$poll_changes"
wait_published "$poll_changes" 120
t1=$(now_ms)
calls1=$(metric 'optsync_sf_ingest_api_calls_total{tenant="poll"')
stop "$ipid"
calls=$((calls1 - calls0))
per_1000=$(python3 -c "print(round($calls * 1000 / $poll_changes, 1))")
echo "bench: polling: $calls SF calls for $poll_changes changes in" \
    "$((t1 - t0)) ms (one call per change would be $poll_changes)" >&2

echo "RESULT cdc_events_per_s=$cdc_rate poll_calls_per_1000=$per_1000"
