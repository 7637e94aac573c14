#!/usr/bin/env bash
# The cluster issue's figures, measured in one run on this machine:
#   1. a single node (a cluster of one, the default) of this build against the pre-cluster
#      build (BENCH_BASELINE, default dc9e92f): PutRecords 500 × 100 B and PutRecord 100 B;
#   2. three nodes of this build on this machine (sharing its cores and disk), replication
#      factor 3: PutRecords 500 × 100 B through all three nodes at once (one load generator
#      per node), records/s summed, request latency per node.
# Prints a Markdown report (and writes it to BENCH_OUT if set).
#
#   scripts/bench-cluster.sh                    # builds both, 10 s per workload
#   BENCH_DURATION=30s scripts/bench-cluster.sh
#
# Settings (environment):
#   BENCH_DURATION      time per workload (default 10s)
#   BENCH_BASELINE      the commit to compare against (default dc9e92f, before the cluster)
#   BENCH_SKIP_BUILD=1  use target/release/riffle and target/bench-baseline/riffle as they are
#   BENCH_BASELINE_BIN  a baseline binary built elsewhere (implies no baseline build)
#   BENCH_SINGLE=0      skip the single-node part
#   BENCH_THREE_NODES   which builds to run on three nodes: "new" (default) or "old new" (both,
#                       alternately, BENCH_ROUNDS times each: an A/B of a cluster change)
#   BENCH_ROUNDS        rounds of the three-node part per build (default 1)
#   BENCH_CLUSTER_CONNECTIONS  connections per node's load generator (default 3)
#   BENCH_WORK_PARENT   where data directories go (default target/; not a tmpfs, which would
#                       make fdatasync free)
#   BENCH_OUT           also write the report to this file
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
duration=${BENCH_DURATION:-10s}
baseline=${BENCH_BASELINE:-dc9e92f}
startup_wait_s=60
new_bin=$root/target/release/riffle
old_bin=${BENCH_BASELINE_BIN:-$root/target/bench-baseline/riffle}
single=${BENCH_SINGLE:-1}
three_builds=${BENCH_THREE_NODES:-new}
rounds=${BENCH_ROUNDS:-1}
conns=${BENCH_CLUSTER_CONNECTIONS:-3}

say() { echo "bench-cluster: $*" >&2; }
. "$root/scripts/lib/bench-common.sh"

work_parent=${BENCH_WORK_PARENT:-$root/target}
mkdir -p "$work_parent"
work=$(mktemp -d "$work_parent/bench-cluster.XXXXXX")
pids=()
child_pid=""
cleanup() {
    stop_server "$child_pid"
    for pid in "${pids[@]}"; do stop_server "$pid"; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ] && [ -z "${BENCH_BASELINE_BIN:-}" ]; then
    # The baseline is built from a temporary worktree into the same target directory, so the
    # dependencies compile once.
    say "building the baseline ($baseline)"
    tree="$work/baseline-src"
    git -C "$root" worktree add --detach "$tree" "$baseline" >/dev/null
    (cd "$tree" && CARGO_TARGET_DIR="$root/target" cargo build --release -p riffle-server --bin riffle)
    mkdir -p "$(dirname "$old_bin")"
    cp "$root/target/release/riffle" "$old_bin"
    git -C "$root" worktree remove --force "$tree"
fi
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    say "building this tree"
    (cd "$root" && cargo build --release -p riffle-server --bin riffle)
fi

# start_node NAME BIN ARGS... : starts a server, sets $endpoint to its API address.
start_node() {
    local name=$1 bin=$2
    shift 2
    "$bin" serve --listen 127.0.0.1:0 --limits off "$@" >"$work/$name.out" 2>"$work/$name.err" &
    local pid=$!
    pids+=("$pid")
    local line
    line=$(wait_for_line "$pid" "$work/$name.out" '^riffle listening on ') || {
        say "$name did not start:"
        tail -n 20 "$work/$name.err" >&2
        exit 1
    }
    endpoint="http://${line#riffle listening on }"
}

stop_all() {
    for pid in "${pids[@]}"; do stop_server "$pid"; done
    pids=()
}

# bench OUT ENDPOINT ARGS...
bench() {
    local out=$1 endpoint=$2
    shift 2
    "$new_bin" bench put --endpoint "$endpoint" --json "$@" >"$out" 2>"$out.log" || {
        say "bench failed:"
        tail -n 5 "$out.log" >&2
        : >"$out"
    }
}

field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); v=d
for k in sys.argv[2].split("."): v=v[k]
print(v)' "$1" "$2" 2>/dev/null || echo "?"; }

report=()
row() { report+=("$*"); }

# --- 1. single node, before and after -------------------------------------------------------
single_builds=(old new)
[ "$single" = 1 ] || single_builds=()
for build in "${single_builds[@]}"; do
    bin_var="${build}_bin"
    for workload in "batch|--record-size 100 --batch 500 -c 8" "single|--record-size 100 --batch 1 -c 64"; do
        name=${workload%%|*}
        read -r -a args <<<"${workload#*|}"
        start_node "single-$build" "${!bin_var}" --data-dir "$work/single-$build-$name"
        say "single node, $build build: $name"
        bench "$work/single-$build-$name.json" "$endpoint" --stream "s-$name" --create --shards 4 \
            --duration "$duration" "${args[@]}"
        stop_all
    done
done

# --- 2. three nodes ---------------------------------------------------------------------------
# three_nodes BUILD ROUND: three nodes of BUILD, one load generator per node, results in
# $work/cluster-BUILD-ROUND-{0,1,2}.json.
three_nodes() {
    local build=$1 round=$2
    local bin_var="${build}_bin"
    local bin=${!bin_var}
    local ports=() endpoints=() i
    for i in 0 1 2; do
        ports+=("$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')")
    done
    for i in 0 1 2; do
        local join=()
        [ "$i" -gt 0 ] && join=(--join "127.0.0.1:${ports[0]}")
        start_node "node$i" "$bin" --data-dir "$work/$build-$round-node$i" \
            --cluster-listen "127.0.0.1:${ports[$i]}" --cluster-secret-file "$work/cluster.secret" "${join[@]}"
        endpoints+=("$endpoint")
        [ "$i" -eq 0 ] && sleep 1
    done
    for _ in $(seq 1 100); do
        voters=$("$bin" cluster status --json --endpoint "${endpoints[0]}" 2>/dev/null |
            python3 -c 'import json,sys; print(len(json.load(sys.stdin)["voters"]))' 2>/dev/null || echo 0)
        [ "$voters" = 3 ] && break
        sleep 0.2
    done
    say "three nodes ($build build, round $round): creating the stream"
    "$new_bin" create clustered --shards 4 --endpoint "${endpoints[0]}" >/dev/null
    sleep 1
    say "three nodes ($build build, round $round): PutRecords 500 × 100 B through every node"
    local bench_pids=()
    for i in 0 1 2; do
        "$new_bin" bench put --endpoint "${endpoints[$i]}" --json --stream clustered --record-size 100 \
            --batch 500 -c "$conns" --duration "$duration" >"$work/cluster-$build-$round-$i.json" \
            2>"$work/cluster-$build-$round-$i.log" &
        bench_pids+=($!)
    done
    for pid in "${bench_pids[@]}"; do wait "$pid" || true; done
    "$bin" cluster status --endpoint "${endpoints[0]}" >"$work/status.txt" 2>&1 || true
    stop_all
}
for round in $(seq 1 "$rounds"); do
    for build in $three_builds; do
        three_nodes "$build" "$round"
    done
done

# --- report -----------------------------------------------------------------------------------
cpu_model=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
revision=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
{
    echo "Machine: $(nproc) CPUs ($cpu_model), $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), data on $(stat -f -c %T "$work")."
    echo "This build: $revision; baseline: $baseline. $duration per workload, 4 shards, fsync before every acknowledgement."
    echo
    echo "| Workload | Metric | baseline | this build | ratio |"
    echo "|---|---|---:|---:|---:|"
    for name in batch single; do
        [ "$single" = 1 ] || continue
        label="PutRecords 500 × 100 B, 8 connections"
        [ "$name" = single ] && label="PutRecord 100 B, 64 connections"
        old=$(field "$work/single-old-$name.json" records_per_s)
        new=$(field "$work/single-new-$name.json" records_per_s)
        ratio=$(python3 -c "import sys; print(f'{float(sys.argv[2])/float(sys.argv[1]):.2f}×')" "$old" "$new" 2>/dev/null || echo "?")
        echo "| $label, single node | records/s | $old | $new | $ratio |"
        echo "| $label, single node | p99 ms | $(python3 -c "print($(field "$work/single-old-$name.json" latency_us.p99)/1000)" 2>/dev/null || echo ?) | $(python3 -c "print($(field "$work/single-new-$name.json" latency_us.p99)/1000)" 2>/dev/null || echo ?) | |"
    done
    echo
    echo "Three nodes on this machine, replication factor 3, PutRecords 500 × 100 B, $conns connections per node:"
    echo
    echo "| Build | Round | Node | records/s | p50 ms | p99 ms | failed records |"
    echo "|---|---:|---|---:|---:|---:|---:|"
    for round in $(seq 1 "$rounds"); do
        for build in $three_builds; do
            total=0
            for i in 0 1 2; do
                f="$work/cluster-$build-$round-$i.json"
                r=$(field "$f" records_per_s)
                total=$(python3 -c "print(round($total + ${r/\?/0}))")
                echo "| $build | $round | $i | $r | $(python3 -c "print($(field "$f" latency_us.p50)/1000)" 2>/dev/null || echo ?) | $(python3 -c "print($(field "$f" latency_us.p99)/1000)" 2>/dev/null || echo ?) | $(field "$f" records_failed) |"
            done
            echo "| $build | $round | **all** | **$total** | | | |"
        done
    done
    echo
    echo '```'
    cat "$work/status.txt"
    echo '```'
} | tee "${BENCH_OUT:-/dev/null}"
