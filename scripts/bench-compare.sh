#!/usr/bin/env bash
# Runs the same `riffle bench` workloads against riffle (default durability: fdatasync before
# every ack), riffle with --durability async, and kinesalite, one after the other on this
# machine, and prints a Markdown table: the servers side by side with riffle's ratio to
# kinesalite, peak memory of each server, and a description of the machine.
#
#   scripts/bench-compare.sh                 # 10 s per workload
#   BENCH_DURATION=30s scripts/bench-compare.sh
#
# Settings (environment):
#   BENCH_DURATION         time per put/latency workload (default 10s)
#   BENCH_FILL_MIB         MiB written before the GetRecords drain (default 32)
#   BENCH_SHARDS           shards of every bench stream (default 4)
#   BENCH_E2E_RATE         records/s of the put→visible latency workload (default 500)
#   BENCH_KINESALITE_PORT  kinesalite's port (default 4568; riffle picks a free port)
#   BENCH_SKIP_BUILD=1     use the existing target/release/riffle
#   RIFFLE_BIN             riffle binary to use (default target/release/riffle)
#   BENCH_OUT              also write the Markdown report to this file
#   BENCH_WORK_PARENT      where the temporary data dir goes (default target/)
#
# kinesalite is installed from npm into bench-tools/ (git-ignored) on first use. Its package
# depends on leveldown, a native module whose install script downloads a prebuilt binary or
# compiles one; neither is possible or needed here. So it is installed with --ignore-scripts,
# and kinesalite runs in its in-memory mode (memdown), which never loads leveldown (kinesalite
# only requires leveldown when started with --path). That also means kinesalite keeps
# everything in RAM and never fsyncs, while riffle runs with its default durability (every
# acknowledged write fdatasync'ed): the comparison flatters kinesalite on writes.
#
# Both riffle servers run with --limits off: kinesalite enforces no throughput limits, and these
# workloads write and read far more than a shard's AWS quota (1 MiB/s, 1,000 records/s).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
duration=${BENCH_DURATION:-10s}
fill_mib=${BENCH_FILL_MIB:-32}
shards=${BENCH_SHARDS:-4}
e2e_rate=${BENCH_E2E_RATE:-500}
kinesalite_port=${BENCH_KINESALITE_PORT:-4568}
kinesalite_version=3.3.3
tools="$root/bench-tools"
riffle_bin=${RIFFLE_BIN:-$root/target/release/riffle}
startup_wait_s=60

say() { echo "bench-compare: $*" >&2; }
# stop_server, run_child, wait_for_line, hwm_kib
. "$root/scripts/lib/bench-common.sh"

# The temp dir (riffle's data dir among others) lives under target/ rather than $TMPDIR: a
# tmpfs temp dir would make fdatasync free and flatter riffle's durable writes.
work_parent=${BENCH_WORK_PARENT:-$root/target}
mkdir -p "$work_parent"
work=$(mktemp -d "$work_parent/bench-compare.XXXXXX")
riffle_pid=""
riffle_async_pid=""
kinesalite_pid=""
child_pid=""

cleanup() {
    stop_server "$child_pid"
    stop_server "$riffle_pid"
    stop_server "$riffle_async_pid"
    stop_server "$kinesalite_pid"
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build and install -------------------------------------------------------------------
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    say "building riffle (release)"
    run_child bash -c 'cd "$1" && cargo build --release -p riffle-server >&2' _ "$root"
fi
[ -x "$riffle_bin" ] || { say "no riffle binary at $riffle_bin"; exit 1; }

kinesalite_dir="$tools/node_modules/kinesalite"
if [ ! -f "$kinesalite_dir/package.json" ] ||
    ! grep -q "\"version\": \"$kinesalite_version\"" "$kinesalite_dir/package.json"; then
    say "installing kinesalite $kinesalite_version into bench-tools/ (scripts skipped, see header)"
    mkdir -p "$tools"
    run_child npm install --prefix "$tools" --no-audit --no-fund --ignore-scripts \
        "kinesalite@$kinesalite_version" >&2
fi

# --- start both servers --------------------------------------------------------------------
"$riffle_bin" serve --listen 127.0.0.1:0 --data-dir "$work/riffle-data" --limits off \
    >"$work/riffle.out" 2>"$work/riffle.log" &
riffle_pid=$!
if ! line=$(wait_for_line "$riffle_pid" "$work/riffle.out" '^riffle listening on '); then
    say "riffle did not start:"; tail -n 20 "$work/riffle.log" >&2; exit 1
fi
riffle_endpoint="http://${line#riffle listening on }"

"$riffle_bin" serve --listen 127.0.0.1:0 --data-dir "$work/riffle-async-data" --durability async --limits off \
    >"$work/riffle-async.out" 2>"$work/riffle-async.log" &
riffle_async_pid=$!
if ! line=$(wait_for_line "$riffle_async_pid" "$work/riffle-async.out" '^riffle listening on '); then
    say "riffle (async) did not start:"; tail -n 20 "$work/riffle-async.log" >&2; exit 1
fi
riffle_async_endpoint="http://${line#riffle listening on }"

# Started through node directly so it listens on loopback only (its CLI binds every address).
node -e '
const [dir, port] = process.argv.slice(1);
const kinesalite = require(dir);
const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 10000 });
server.listen(Number(port), "127.0.0.1", () => console.log("kinesalite listening on 127.0.0.1:" + port));
' "$kinesalite_dir" "$kinesalite_port" >"$work/kinesalite.out" 2>"$work/kinesalite.log" &
kinesalite_pid=$!
if ! wait_for_line "$kinesalite_pid" "$work/kinesalite.out" '^kinesalite listening on ' >/dev/null; then
    say "kinesalite did not start (port $kinesalite_port taken?):"
    tail -n 20 "$work/kinesalite.log" >&2; exit 1
fi
kinesalite_endpoint="http://127.0.0.1:$kinesalite_port"
say "riffle at $riffle_endpoint (pid $riffle_pid), kinesalite at $kinesalite_endpoint (pid $kinesalite_pid)"

# --- workloads -----------------------------------------------------------------------------
# name|arguments of `riffle bench`
workloads=(
    "PutRecord 100 B, 1 connection|put --record-size 100 --batch 1 -c 1 --duration $duration"
    "PutRecord 100 B, 8 connections|put --record-size 100 --batch 1 -c 8 --duration $duration"
    "PutRecords 500 × 100 B, 8 connections|put --record-size 100 --batch 500 -c 8 --duration $duration"
    "PutRecords 500 × 1 KiB, 8 connections|put --record-size 1KiB --batch 500 -c 8 --duration $duration"
    "GetRecords drain of $fill_mib MiB (1 KiB records)|get --record-size 1KiB --fill-mib $fill_mib -c $shards"
    "Put→visible at $e2e_rate records/s, 4 connections|e2e --record-size 100 --rate $e2e_rate -c 4 --duration $duration"
)

mkdir -p "$work/results"
index=0
for entry in "${workloads[@]}"; do
    name=${entry%%|*}
    read -r -a bench_args <<<"${entry#*|}"
    for server in riffle riffle_async kinesalite; do
        endpoint_var="${server}_endpoint"
        stream="bench-$index-$server-$$"
        say "$server: $name"
        result="$work/results/$index-$server.json"
        if ! run_child "$riffle_bin" bench "${bench_args[@]}" --endpoint "${!endpoint_var}" \
            --stream "$stream" --create --shards "$shards" --delete-after --json \
            >"$result" 2>"$work/results/$index-$server.log"; then
            say "$server: '$name' failed:"
            tail -n 5 "$work/results/$index-$server.log" >&2
            : >"$result"
        fi
    done
    echo "$name" >"$work/results/$index.name"
    index=$((index + 1))
done

# Peak resident memory over the whole run, before the servers are stopped.
riffle_hwm=$(hwm_kib "$riffle_pid")
riffle_async_hwm=$(hwm_kib "$riffle_async_pid")
kinesalite_hwm=$(hwm_kib "$kinesalite_pid")

# --- report --------------------------------------------------------------------------------
cpu_model=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
mem_total=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
revision=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
data_fs=$(stat -f -c %T "$work" 2>/dev/null || echo unknown)

report=$(node - "$work/results" "$index" "$riffle_hwm" "$riffle_async_hwm" "$kinesalite_hwm" <<'NODE'
const fs = require("fs");
const [dir, count, riffleHwm, asyncHwm, kinesaliteHwm] = process.argv.slice(2);
const load = (file) => {
  try { return JSON.parse(fs.readFileSync(file, "utf8").trim().split("\n").pop()); }
  catch (_) { return null; }
};
const fmt = (v) => v == null ? "failed" :
  v >= 100 ? Math.round(v).toLocaleString("en-US") : v >= 10 ? v.toFixed(1) : v.toFixed(2);
const ratio = (a, b) => a == null || b == null || b === 0 ? "–" : (a / b).toFixed(2) + "×";
const rows = [];
const row = (workload, metric, a, s, b) => rows.push(`| ${workload} | ${metric} | ${fmt(a)} | ${fmt(s)} | ${fmt(b)} | ${ratio(a, b)} |`);
const errors = (r) => r == null ? "failed" :
  [...Object.entries(r.errors), ...Object.entries(r.throttles)].map(([k, v]) => `${k} ${v}`).join(", ") || "0";
for (let i = 0; i < Number(count); i++) {
  const name = fs.readFileSync(`${dir}/${i}.name`, "utf8").trim();
  const r = load(`${dir}/${i}-riffle.json`), s = load(`${dir}/${i}-riffle_async.json`);
  const k = load(`${dir}/${i}-kinesalite.json`);
  const get = (rep, f) => rep == null ? null : f(rep);
  const all = (f) => [get(r, f), get(s, f), get(k, f)];
  const ms = (us) => us / 1000;
  row(name, "records/s", ...all((x) => x.records_per_s));
  row(name, "MiB/s payload", ...all((x) => x.mib_per_s));
  if (r && r.visibility || k && k.visibility) {
    row(name, "put→visible p50 ms", ...all((x) => ms(x.visibility.visible_latency_us.p50)));
    row(name, "put→visible p99 ms", ...all((x) => ms(x.visibility.visible_latency_us.p99)));
  } else {
    row(name, "request p50 ms", ...all((x) => ms(x.latency_us.p50)));
    row(name, "request p99 ms", ...all((x) => ms(x.latency_us.p99)));
  }
  const er = errors(r), es = errors(s), ek = errors(k);
  if (er !== "0" || es !== "0" || ek !== "0") rows.push(`| ${name} | errors | ${er} | ${es} | ${ek} | |`);
}
const mib = (kib) => Number(kib) / 1024 || null;
row("whole run", "peak RSS MiB (VmHWM)", mib(riffleHwm), mib(asyncHwm), mib(kinesaliteHwm));
console.log("| Workload | Metric | riffle | riffle async | kinesalite | riffle ÷ kinesalite |");
console.log("|---|---|---:|---:|---:|---:|");
console.log(rows.join("\n"));
NODE
)

{
    echo "## riffle vs kinesalite"
    echo
    echo "- Machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, $mem_total RAM, $(uname -srm)"
    echo "- riffle $revision (release build; \"riffle\": default durability, fdatasync before" \
        "every ack; \"riffle async\": \`--durability async\`, ack after write(2); data on $data_fs);" \
        "kinesalite $kinesalite_version in memory on node $(node --version)"
    echo "- $duration per put and latency workload; streams of $shards shards with random" \
        "partition keys, created fresh per run; load from \`riffle bench\` on the same machine"
    echo "- Throughput ratios above 1 favour riffle; latency and memory ratios below 1 do."
    echo
    echo "$report"
} | tee ${BENCH_OUT:+"$BENCH_OUT"}
