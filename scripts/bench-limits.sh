#!/usr/bin/env bash
# Shard limits under load, in one run on this machine:
#  1. with `--limits aws`, a stream of N shards accepts N x 1,000 records/s (plus the one-second
#     burst each shard starts with), whatever the offered load;
#  2. the limiter costs nothing measurable: the same unthrottled workloads with `--limits aws`
#     and `--limits off`, side by side (streams with enough shards that nothing is refused);
#  3. for reference, batched throughput against the number of shards a batch spreads over.
# Prints a Markdown report (and writes it to $BENCH_OUT if set).
#
#   scripts/bench-limits.sh                 # 10 s per workload, ~3 minutes
#   BENCH_DURATION=30s scripts/bench-limits.sh
#
# Settings: BENCH_DURATION (default 10s), BENCH_SKIP_BUILD=1 (use target/release/riffle),
# RIFFLE_BIN, BENCH_OUT, BENCH_WORK_PARENT (default target/, not a tmpfs: fsync must cost).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
duration=${BENCH_DURATION:-10s}
riffle_bin=${RIFFLE_BIN:-$root/target/release/riffle}
work_parent=${BENCH_WORK_PARENT:-$root/target}
mkdir -p "$work_parent"
work=$(mktemp -d "$work_parent/bench-limits.XXXXXX")
server_pid=""

say() { echo "bench-limits: $*" >&2; }

stop_server() {
    [ -n "$server_pid" ] || return 0
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}
trap 'stop_server; rm -rf "$work"' EXIT

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    say "building riffle (release)"
    (cd "$root" && cargo build --release -p riffle-server >&2)
fi

# start_server LIMITS: a fresh durable server; sets $endpoint.
start_server() {
    stop_server
    local data="$work/data-$1-$RANDOM"
    "$riffle_bin" serve --listen 127.0.0.1:0 --data-dir "$data" --limits "$1" \
        --shard-limit 5000 >"$work/out" 2>"$work/log" &
    server_pid=$!
    for _ in $(seq 1 100); do
        if line=$(grep -m1 '^riffle listening on ' "$work/out" 2>/dev/null); then
            endpoint="http://${line#riffle listening on }"
            return 0
        fi
        sleep 0.1
    done
    say "riffle did not start"; tail -n 20 "$work/log" >&2; exit 1
}

# bench SHARDS ARGS...: one put workload on a new stream; prints its JSON report.
bench() {
    local shards=$1
    shift
    "$riffle_bin" bench put --endpoint "$endpoint" --stream "limits-$RANDOM" --create \
        --shards "$shards" --record-size 100 --duration "$duration" --json "$@" 2>/dev/null |
        tail -n 1
}

field() { python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }

seconds=$(python3 -c "import sys; d=sys.argv[1]; print(float(d[:-1]) if d.endswith('s') else float(d))" "$duration")

report="$work/report.md"
{
    echo "### With \`--limits aws\`: accepted writes per stream"
    echo
    echo "PutRecords of 500 × 100 B from 8 connections, far above capacity; ideal = N × 1,000"
    echo "records/s plus each shard's one-second burst spread over the run."
    echo
    echo "| shards | accepted records/s | refused records/s | ideal records/s | accepted ÷ ideal |"
    echo "|---:|---:|---:|---:|---:|"
} >"$report"
start_server aws
for shards in 1 4 16; do
    say "limits aws, $shards shards"
    r=$(bench "$shards" --batch 500 -c 8)
    accepted=$(field "$r" 'r["records_per_s"]')
    refused=$(field "$r" 'round(r["throttles"].get("ProvisionedThroughputExceededException", 0) / r["seconds"])')
    ideal=$(python3 -c "print(round($shards * 1000 * (1 + 1 / $seconds)))")
    ratio=$(python3 -c "print(f'{$accepted / $ideal:.3f}')")
    printf '| %s | %.0f | %s | %s | %s |\n' "$shards" "$accepted" "$refused" "$ideal" "$ratio" >>"$report"
done

{
    echo
    echo "### The limiter's cost: the same unthrottled load with limits on and off"
    echo
    echo "| workload | limits off records/s | limits aws records/s | aws ÷ off | refused with aws |"
    echo "|---|---:|---:|---:|---:|"
} >>"$report"
declare -A off_rate
for limits in off aws; do
    start_server "$limits"
    for spec in "PutRecord 100 B, 8 connections, 16 shards|16|--batch 1 -c 8" \
        "PutRecords 500 × 100 B, 8 connections, 256 shards|256|--batch 500 -c 8"; do
        name=${spec%%|*}
        rest=${spec#*|}
        shards=${rest%%|*}
        read -r -a args <<<"${rest#*|}"
        say "limits $limits: $name"
        r=$(bench "$shards" "${args[@]}")
        rate=$(field "$r" 'r["records_per_s"]')
        if [ "$limits" = off ]; then
            off_rate[$name]=$rate
        else
            refused=$(field "$r" 'r["throttles"].get("ProvisionedThroughputExceededException", 0)')
            printf '| %s | %.0f | %.0f | %s | %s |\n' "$name" "${off_rate[$name]}" "$rate" \
                "$(python3 -c "print(f'{$rate / ${off_rate[$name]}:.2f}')")" "$refused" >>"$report"
        fi
    done
done

{
    echo
    echo "### For reference: batched writes against the shards a batch spreads over (limits off)"
    echo
    echo "| shards | records/s | request p99 ms |"
    echo "|---:|---:|---:|"
} >>"$report"
start_server off
for shards in 4 16 64 256; do
    say "limits off, PutRecords 500 × 100 B over $shards shards"
    r=$(bench "$shards" --batch 500 -c 8)
    printf '| %s | %.0f | %.1f |\n' "$shards" "$(field "$r" 'r["records_per_s"]')" \
        "$(field "$r" 'r["latency_us"]["p99"] / 1000')" >>"$report"
done
stop_server

cpu_model=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
{
    echo "## Shard limits"
    echo
    echo "- Machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, $(uname -srm); riffle" \
        "$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown), release build," \
        "fdatasync before every ack; $duration per workload, load from \`riffle bench\` on the same machine"
    echo
    cat "$report"
} | tee ${BENCH_OUT:+"$BENCH_OUT"}
