#!/usr/bin/env bash
# bench/rules.sh - events/s through the rules worker (Kafka -> rules + Redis
# -> Kafka: decode, one Redis read and one write per batch, commands and
# audit produced with acks=all) against a plain kcat pass-through of the
# same messages on the same broker in the same run; Redis round trips per
# event; the worker's peak RSS. The events are produced before anything is
# timed (a full backlog); each stage is timed from when it starts consuming
# to when its last output is acknowledged (the output topic's end, followed
# by rules-bench-gen --wait). It also prints CPU per event of each process,
# and what the worker's Redis commands cost Redis on an otherwise idle
# machine (rules-bench-gen --redis-floor). Last line:
#   RESULT rules_events_per_s=N ratio_vs_kcat=R redis_rtt_per_event=X rss_mb=M
#
# usage: bench/rules.sh
# env:   BUILD_DIR (default: build-bench-rules, a release build made here),
#        EVENTS (300000), PERSONS (37500: 8 events each, the whole cycle), PARTITIONS (6), BATCH (1000),
#        RUNS (3: whole runs, each on a fresh broker and Redis; the RESULT
#        line has the median of each rate and the largest RSS: one shared
#        2-core machine varies by 20% from run to run),
#        RULES_PERF (a path: perf record the worker into it),
#        RULES_ENV (VAR=value ... for the worker alone, e.g. GLIBC_TUNABLES)
set -euo pipefail

runs=${RUNS:-3}
if [ "$runs" -gt 1 ]; then
    results=()
    for i in $(seq 1 "$runs"); do
        echo "bench: run $i of $runs" >&2
        line=$(RUNS=1 "$0" "$@" | grep '^RESULT ') ||
            { echo "bench: run $i failed" >&2; exit 1; }
        echo "bench: $line" >&2
        results+=("$line")
    done
    values() { # field: its values over the runs, ascending
        printf '%s\n' "${results[@]}" | tr ' ' '\n' | sed -n "s/^$1=//p" |
            sort -g
    }
    median() { values "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
    echo "RESULT rules_events_per_s=$(median rules_events_per_s)" \
        "ratio_vs_kcat=$(median ratio_vs_kcat)" \
        "redis_rtt_per_event=$(median redis_rtt_per_event)" \
        "rss_mb=$(values rss_mb | tail -1)"
    exit 0
fi

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build-bench-rules}
events=${EVENTS:-300000}
persons=${PERSONS:-37500}
partitions=${PARTITIONS:-6}
batch=${BATCH:-1000}
rules=$build/workers/rules/rules
gen=$build/workers/rules/rules-bench-gen
launcher=$build/tools/embedded-kafka/optsync-embedded-kafka

command -v kcat >/dev/null || { echo "bench: kcat not found" >&2; exit 1; }
# (Re)build what the bench runs: a no-op when it is up to date.
if [ ! -f "$build/CMakeCache.txt" ]; then
    echo "bench: configuring $build (release)" >&2
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release \
        -DOSY_ENABLE_TESTS=OFF >/dev/null
fi
cmake --build "$build" -j2 --target rules rules-bench-gen \
    optsync-embedded-kafka >/dev/null

dir=$(mktemp -d "${TMPDIR:-/tmp}/optsync-bench-rules-XXXXXX")
kpid= rpid= cpid= wpid=
stop() { # pid: SIGTERM, wait
    if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
        kill -TERM "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
}
cleanup() {
    stop "$wpid"
    stop "$cpid"
    stop "$rpid"
    stop "$kpid"
    [ -z "${KEEP_LOG:-}" ] || cp "$dir/rules.log" "$KEEP_LOG" 2>/dev/null || true
    bash "$top/scripts/redis-stop.sh" "$dir/redis" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
now() { date +%s.%N; }
cpu_s() { # CPU seconds (user + system) a process has used so far
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' \
        "/proc/$1/stat" 2>/dev/null || echo 0
}

"$launcher" --partitions "$partitions" --bootstrap-file "$dir/bootstrap" \
    --control-file "$dir/control" >"$dir/kafka.out" 2>"$dir/kafka.log" &
kpid=$!
for _ in $(seq 1 200); do
    [ -s "$dir/bootstrap" ] && break
    sleep 0.05
done
[ -s "$dir/bootstrap" ] || { echo "bench: Kafka did not start" >&2; exit 1; }
bootstrap=$(cat "$dir/bootstrap")
control() { # one command on the launcher's control port
    exec 3<>"/dev/tcp/127.0.0.1/$(cat "$dir/control")"
    echo "$1" >&3
    read -r reply <&3
    exec 3>&-
    case $reply in OK*) ;; *) echo "bench: $1: $reply" >&2; exit 1 ;; esac
}
control "create-topic bench.kcat.in $partitions"
control "create-topic bench.kcat.out $partitions"
redis_port=$(bash "$top/scripts/redis-start.sh" "$dir/redis")

# ---- the backlog: the same events on both input topics -------------------
# lz4-compressed batches: the embedded broker keeps 5 MB per partition
# (compressed); the generator fails if anything was dropped.
echo "bench: producing $events events ($persons people) twice" >&2
"$gen" --produce "$bootstrap" bench.kcat.in --events "$events" \
    --persons "$persons" >"$dir/gen1.out"
"$gen" --produce "$bootstrap" optsync.ac.events --events "$events" \
    --persons "$persons" >"$dir/gen2.out"
echo "bench: backlog: $(cat "$dir/gen2.out")" >&2

follow() { # topic: background rules-bench-gen --wait; returns once it follows
    rm -f "$dir/ready"
    "$gen" --wait "$bootstrap" "$1" --events "$events" --ready "$dir/ready" \
        >"$dir/wait.out" &
    wpid=$!
    for _ in $(seq 1 200); do
        [ -s "$dir/ready" ] && return 0
        sleep 0.05
    done
    echo "bench: cannot follow $1" >&2
    exit 1
}
done_at() { # t1: the wall clock the follower saw the last output
    wait "$wpid" || { echo "bench: follower failed" >&2; exit 1; }
    wpid=
    t1=$(sed -n 's/.*done=\([0-9.]*\).*/\1/p' "$dir/wait.out")
}

# ---- 1. kcat pass-through: consume N, produce each again (key kept) ------
echo "bench: kcat pass-through of $events events" >&2
follow bench.kcat.out
cpu0_k=$(cpu_s "$kpid")
t0=$(now)
# In a subshell whose `times` gives both kcat processes' CPU.
(
    kcat -C -b "$bootstrap" -t bench.kcat.in -o beginning -c "$events" -q \
        -f '%k\t%s\n' |
        kcat -P -b "$bootstrap" -t bench.kcat.out -K $'\t' 2>"$dir/kcat.log"
    times >"$dir/kcat.times"
) &
cpid=$!
done_at
wait "$cpid"
cpid=
kcat_rate=$(echo "$events / ($t1 - $t0)" | bc -l)
cpu_kc=$(awk 'NR == 2 { t = 0
    for (i = 1; i <= 2; i++) { split($i, a, "m"); t += a[1] * 60 + a[2] }
    printf "%.3f\n", t }' "$dir/kcat.times")
printf 'bench: kcat   %8.0f events/s\n' "$kcat_rate" >&2
# The ceiling a stage has on this machine: CPU per event against the
# cores (see bench/README.md, "Sixth session").
printf 'bench: CPU per 1000 events: kcat %.1f ms (both processes), broker %.1f ms\n' \
    "$(echo "$cpu_kc * 1000000 / $events" | bc -l)" \
    "$(echo "($(cpu_s "$kpid") - $cpu0_k) * 1000000 / $events" | bc -l)" >&2

# ---- 2. the rules worker ----------------------------------------------------
"$gen" --seed-redis "$redis_port" --persons "$persons" --events 1
redis_pid=$(cat "$dir/redis/redis.pid")
cpu0_k=$(cpu_s "$kpid") cpu0_d=$(cpu_s "$redis_pid")
# Every event gets exactly one audit record: the audit topic's end is the
# worker's progress.
follow optsync.audit
echo "bench: rules over $events events ($persons people, batch $batch)" >&2
OPTSYNC_KAFKA_BOOTSTRAP=$bootstrap OPTSYNC_REDIS_PORT=$redis_port \
OPTSYNC_ADMIN_ADDR=127.0.0.1 OPTSYNC_ADMIN_PORT=0 \
OPTSYNC_KAFKA_GROUP_ID=bench-rules OPTSYNC_RULES_SESSION_TIMEOUT=6s \
OPTSYNC_RULES_BATCH_SIZE=$batch OPTSYNC_LOG_LEVEL=${RULES_LOG_LEVEL:-info} \
    env ${RULES_ENV:-} "$rules" >"$dir/rules.out" 2>"$dir/rules.log" &
rpid=$!
ppid_=
if [ -n "${RULES_PERF:-}" ]; then # profile the worker: perf.data path
    perf record -F ${RULES_PERF_FREQ:-1999} ${RULES_PERF_CG:--g} -p "$rpid" -o "$RULES_PERF" 2>"$dir/perf.log" &
    ppid_=$!
fi
done_at
# From the group's assignment (the log line's time stamp): fetching the
# backlog starts there.
assigned=$(grep -m1 "consumer assigned" "$dir/rules.log" |
    sed -n 's/^{"ts":"\([^"]*\)".*/\1/p')
[ -n "$assigned" ] ||
    { echo "bench: rules did not join" >&2; cat "$dir/rules.log" >&2; exit 1; }
t0=$(date -d "$assigned" +%s.%N)
admin=$(sed -n 's/^admin_port=//p' "$dir/rules.out")
metric() { # value of one unlabelled metric, 0 if absent
    curl -s "http://127.0.0.1:$admin/metrics" |
        awk -v m="$1" '$1 == m { printf "%.0f\n", $2; f = 1 } END { if (!f) print 0 }'
}
# Outputs acknowledged; state, dedup entries and offsets follow within a batch.
for _ in $(seq 1 600); do
    [ "$(metric optsync_rules_events_total)" -ge "$events" ] && break
    kill -0 "$rpid" 2>/dev/null || { echo "bench: rules died" >&2; exit 1; }
    sleep 0.05
done
[ "$(metric optsync_rules_events_total)" -ge "$events" ] ||
    { echo "bench: rules did not finish" >&2; exit 1; }
cpu_r=$(cpu_s "$rpid")
cpu_k=$(echo "$(cpu_s "$kpid") - $cpu0_k" | bc -l)
cpu_d=$(echo "$(cpu_s "$redis_pid") - $cpu0_d" | bc -l)
rules_rate=$(echo "$events / ($t1 - $t0)" | bc -l)
rtt=$(metric optsync_rules_redis_roundtrips_total)
lookups=$(metric optsync_rules_ac_lookups_total)
dlq=$(metric optsync_rules_dead_letters_total)
rss_kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$rpid/status")
minflt=$(awk '{ print $10 }' "/proc/$rpid/stat")
redis-cli -p "$redis_port" INFO commandstats >"$dir/commandstats" 2>/dev/null || true
[ -z "${KEEP_LOG:-}" ] || cp "$dir/commandstats" "$KEEP_LOG.redis"
[ -z "$ppid_" ] || kill -INT "$ppid_" 2>/dev/null || true
[ -z "$ppid_" ] || wait "$ppid_" 2>/dev/null || true
stop "$rpid"
rpid=
printf 'bench: rules  %8.0f events/s (%.3f s from assignment to the last audit record)\n' \
    "$rules_rate" "$(echo "$t1 - $t0" | bc -l)" >&2
echo "bench: redis round trips $rtt, AC look-ups $lookups, dead letters $dlq," \
    "peak RSS ${rss_kb} kB, page faults $minflt" >&2
printf 'bench: CPU per 1000 events: rules %.1f ms, broker %.1f ms, redis %.1f ms (load: %s)\n' \
    "$(echo "$cpu_r * 1000000 / $events" | bc -l)" \
    "$(echo "$cpu_k * 1000000 / $events" | bc -l)" \
    "$(echo "$cpu_d * 1000000 / $events" | bc -l)" "$(cut -d' ' -f1-3 /proc/loadavg)" >&2
# Where Redis' time goes (the seed's SETs are not in these; the apply
# script's SETs are within evalsha, the dedup HSETs within exec).
echo "bench: Redis time per event:" $(awk -F'[:,=]' -v n="$events" \
    '/^cmdstat_(evalsha|mget|exec|hmget):/ { printf "%s %.2f us,", substr($1, 9), $5 / n }' \
    "$dir/commandstats") >&2
[ "$lookups" -eq 0 ] && [ "$dlq" -eq 0 ] ||
    { echo "bench: unexpected look-ups or dead letters" >&2; exit 1; }
# What the worker's Redis work costs Redis with nothing else running (its
# own keys: a prefix of their own), against kcat's whole CPU per event.
floor=$("$gen" --redis-floor "$redis_port" --events "$events" \
    --persons "$persons" --prefix bench-floor) ||
    { echo "bench: rules-bench-gen --redis-floor failed" >&2; exit 1; }
echo "bench: Redis alone, per event, idle machine: $floor" >&2

printf 'RESULT rules_events_per_s=%.0f ratio_vs_kcat=%.2f redis_rtt_per_event=%.4f rss_mb=%.1f\n' \
    "$rules_rate" "$(echo "$rules_rate / $kcat_rate" | bc -l)" \
    "$(echo "$rtt / $events" | bc -l)" "$(echo "$rss_kb / 1024" | bc -l)"
