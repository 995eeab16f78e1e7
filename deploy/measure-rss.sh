#!/usr/bin/env bash
# Measure each worker's peak memory (VmHWM) and its SIGTERM drain time on
# the embedded stack (embedded Kafka, a private redis-server, the sandbox),
# under a burst of webhooks, to size the Kubernetes requests and limits
# (docs/operations.md, "Sizing"). Workers not built yet are skipped.
#
# usage: deploy/measure-rss.sh BUILD_DIR [WEBHOOKS] [SETTLE_SECONDS]
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:?usage: measure-rss.sh BUILD_DIR [WEBHOOKS] [SETTLE_SECONDS]}" && pwd)
hooks=${2:-2000}
settle=${3:-10}
cd "$top"

run=$(mktemp -d "${TMPDIR:-/tmp}/optsync-rss-XXXXXX")
pids=()
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    scripts/redis-stop.sh "$run/redis" >/dev/null 2>&1 || true
    rm -rf "$run"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_file() { for _ in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.05; done; echo "timeout waiting for $1" >&2; return 1; }
# user + system CPU seconds of a process so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

redis_port=$(scripts/redis-start.sh "$run/redis")
"$build"/tools/embedded-kafka/optsync-embedded-kafka --brokers 1 --partitions 6 \
    --bootstrap-file "$run/bootstrap" >"$run/kafka.log" 2>&1 &
pids+=($!); kafka_pid=$!
wait_file "$run/bootstrap"
"$build"/sandbox/optsync-sandbox --port 0 --port-file "$run/sandbox.port" \
    --fixture deploy/sandbox/fixture.json >"$run/sandbox.log" 2>&1 &
pids+=($!); sandbox_pid=$!
wait_file "$run/sandbox.port"
sbx="127.0.0.1:$(cat "$run/sandbox.port")"
sed "s#http://sandbox:8090#http://$sbx#g" deploy/sandbox/tenants.json >"$run/tenants.json"

OPTSYNC_KAFKA_BOOTSTRAP=$(cat "$run/bootstrap")
export OPTSYNC_KAFKA_BOOTSTRAP
export OPTSYNC_REDIS_HOST=127.0.0.1 OPTSYNC_REDIS_PORT=$redis_port
export OPTSYNC_TENANTS_FILE=$run/tenants.json OPTSYNC_LOG_LEVEL=warn
export OPTSYNC_ADMIN_ADDR=127.0.0.1

declare -A wpid wadmin
ingest_port=""
for w in ac-ingest sf-ingest rules sf-writer ac-writer; do
    bin="$build/workers/$w/$w"
    [ -x "$bin" ] || { echo "$w: not built, skipped"; continue; }
    admin=$(free_port)
    extra=()
    if [ "$w" = ac-ingest ]; then
        ingest_port=$(free_port)
        mkdir -p "$run/spool"
        extra=(OPTSYNC_INGEST_PORT="$ingest_port" OPTSYNC_INGEST_SPOOL_DIR="$run/spool")
    fi
    env OPTSYNC_ADMIN_PORT="$admin" "${extra[@]}" "$bin" >"$run/$w.log" 2>&1 &
    wpid[$w]=$!; wadmin[$w]=$admin; pids+=($!)
done

for w in "${!wpid[@]}"; do
    ok=0
    for _ in $(seq 1 100); do
        if curl -fsS "http://127.0.0.1:${wadmin[$w]}/readyz" >/dev/null 2>&1; then ok=1; break; fi
        kill -0 "${wpid[$w]}" 2>/dev/null || break
        sleep 0.1
    done
    [ $ok = 1 ] || echo "$w: not ready (see its log below)" >&2
done

if [ -n "$ingest_port" ]; then
    # A burst of unsubscribe webhooks for distinct people, 16 at a time.
    url="http://127.0.0.1:$ingest_port/webhooks/ac/demo/demo-webhook-token"
    : >"$run/curl.cfg"
    for i in $(seq 1 "$hooks"); do
        [ "$i" = 1 ] || echo next >>"$run/curl.cfg"
        printf 'url = "%s"\ndata = "type=unsubscribe&date_time=2024-02-28T07%%3A04%%3A13-06%%3A00&initiated_from=admin&initiated_by=admin&list=4&contact%%5Bid%%5D=%d&contact%%5Bemail%%5D=p%d%%40example.com&contact%%5Btags%%5D=added-to-salesforce-contact"\noutput = "/dev/null"\nwrite-out = "%%{http_code} %%{errormsg}\\n"\n' \
            "$url" "$i" "$i" >>"$run/curl.cfg"
    done
    t0=$(date +%s.%N)
    curl -s --no-progress-meter -Z --parallel-max 16 -K "$run/curl.cfg" | sort | uniq -c | sed 's/^/  webhook answers: /'
    t1=$(date +%s.%N)
    echo "  $hooks webhooks in $(echo "$t1 - $t0" | bc) s"
fi
sleep "$settle"

# What the burst did, so the numbers can be read against the work done.
for w in rules sf-writer ac-writer; do
    [ -n "${wadmin[$w]:-}" ] || continue
    curl -fsS "http://127.0.0.1:${wadmin[$w]}/metrics" 2>/dev/null |
        grep -E '^(optsync_rules_decisions_total|optsync_rules_events_total|optsync_writer_commands_total|optsync_writer_api_calls_total)' |
        sed "s/^/  $w: /" | head -n 12
done

printf '%-10s %10s %10s %8s %8s\n' worker VmHWM_MiB VmRSS_MiB cpu_s drain_s
for w in ac-ingest sf-ingest rules sf-writer ac-writer; do
    [ -n "${wpid[$w]:-}" ] || continue
    p=${wpid[$w]}
    if ! kill -0 "$p" 2>/dev/null; then
        echo "$w: exited early; last log lines:"; tail -n 5 "$run/$w.log"; continue
    fi
    errs=$(grep -c '"level":"error"' "$run/$w.log" || true)
    [ "$errs" = 0 ] || echo "$w: $errs error log lines, e.g. $(grep -m1 '"level":"error"' "$run/$w.log")" >&2
    hwm=$(hwm_kb "$p"); rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status"); cpu=$(cpu_s "$p")
    t0=$(date +%s.%N); kill -TERM "$p"; wait "$p" 2>/dev/null || true; t1=$(date +%s.%N)
    printf '%-10s %10.1f %10.1f %8s %8.2f\n' "$w" "$(echo "$hwm/1024" | bc -l)" \
        "$(echo "$rss/1024" | bc -l)" "$cpu" "$(echo "$t1 - $t0" | bc)"
done
printf '%-10s %10.1f\n' sandbox "$(echo "$(hwm_kb "$sandbox_pid")/1024" | bc -l)"
printf '%-10s %10.1f\n' e-kafka "$(echo "$(hwm_kb "$kafka_pid")/1024" | bc -l)"
