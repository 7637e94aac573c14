#!/usr/bin/env bash
# Compares riffle builds on the batched put path, interleaved so that every build sees the same
# machine: for each round and each build, a fresh single node, `riffle bench put` PutRecords
# 500 × 100 B with 8 connections on 4 shards, fsync before every acknowledgement, then the
# records/s and the server's CPU time per record (from /proc/PID/stat, so it also means
# something on a busy machine, where throughput alone mostly measures the neighbours).
#
#   scripts/bench-put-cpu.sh NAME=BINARY [NAME=BINARY ...]
#   BENCH_ROUNDS=5 BENCH_DURATION=10s scripts/bench-put-cpu.sh old=/tmp/riffle-old new=target/release/riffle
#
# The load generator is the last binary's `riffle bench put`. Linux only (/proc).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${BENCH_ROUNDS:-3}
duration=${BENCH_DURATION:-10s}
[ $# -ge 1 ] || {
    echo "usage: $0 NAME=BINARY [NAME=BINARY ...]" >&2
    exit 2
}

say() { echo "bench-put-cpu: $*" >&2; }
. "$root/scripts/lib/bench-common.sh"

names=()
bins=()
for pair in "$@"; do
    names+=("${pair%%=*}")
    bins+=("$(cd "$(dirname "${pair#*=}")" && pwd)/$(basename "${pair#*=}")")
done
generator=${bins[-1]}
ticks=$(getconf CLK_TCK)
work=$(mktemp -d "$root/target/bench-put-cpu.XXXXXX")
pid=""
cleanup() {
    stop_server "$pid"
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "| round | build | records/s | server CPU µs per record |"
echo "|---:|---|---:|---:|"
for round in $(seq 1 "$rounds"); do
    for i in "${!bins[@]}"; do
        rm -rf "$work/data"
        "${bins[$i]}" serve --listen 127.0.0.1:0 --limits off --data-dir "$work/data" \
            >"$work/out" 2>"$work/err" &
        pid=$!
        line=$(wait_for_line "$pid" "$work/out" '^riffle listening on ') || {
            say "${names[$i]} did not start:"
            tail -n 20 "$work/err" >&2
            exit 1
        }
        endpoint="http://${line#riffle listening on }"
        "$generator" bench put --endpoint "$endpoint" --json --stream s --create --shards 4 \
            --duration "$duration" --record-size 100 --batch 500 -c 8 >"$work/bench.json" 2>/dev/null
        cpu_ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
        stop_server "$pid"
        pid=""
        python3 - "$work/bench.json" "$cpu_ticks" "$ticks" "$round" "${names[$i]}" <<'EOF'
import json, sys
bench = json.load(open(sys.argv[1]))
cpu_s = float(sys.argv[2]) / float(sys.argv[3])
records = bench["records"] or 1
print(f"| {sys.argv[4]} | {sys.argv[5]} | {bench['records_per_s']:,.0f} | {cpu_s * 1e6 / records:.3f} |")
EOF
    done
done
