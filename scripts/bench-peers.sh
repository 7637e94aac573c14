#!/usr/bin/env bash
# Issue 6 ("Fast and unbreakable"): riffle against its peers, side by side in one run on this
# machine. Starts each server in turn on loopback with its data in a fresh temporary
# directory, drives it, records its peak memory, stops it, and prints one Markdown table with
# riffle's ratio to each of them and the issue's targets.
#
#   scripts/bench-peers.sh                          # 10 s per workload, a 1 GiB drain
#   BENCH_DURATION=5s BENCH_DRAIN_MIB=128 scripts/bench-peers.sh     # a quick run
#
# Servers (BENCH_SERVERS picks a subset, in this order):
#   riffle        release build, default durability (fdatasync before every ack), --limits off
#   ceiling       `riffle bench ceiling-server`: riffle's HTTP stack answering fixed replies;
#                 what riffle reaches of it is the share its own work leaves (put workloads)
#   kinesalite    npm kinesalite, in memory (it has no fsync at all; see bench-compare.sh)
#   kinesis-mock  npm kinesis-local (kinesis-mock built for Node.js), in memory (its only
#                 persistence is a periodic JSON dump, so there is nothing to fsync per ack)
#   redis         Debian redis-server, XADD to one stream, appendonly with appendfsync always,
#                 driven by redis-benchmark (pipelined like PutRecords, or not, like PutRecord)
#   nats          Debian nats-server with JetStream file storage, driven by riffle-bench-nats
#                 (crates/riffle-bench/src/nats.rs, built as an example). Debian's 2.9 has no `sync_interval`
#                 (2.10+), so its acks never wait for an fsync: the comparison flatters it.
#
# What is installed when missing: redis-server and nats-server with apt-get (needs root), and
# kinesalite and kinesis-local with npm into BENCH_TOOLS (default ~/.cache/riffle-bench-peers,
# outside the repository). riffle is built in release, riffle-bench-nats with --features nats
# (an example of riffle-bench, so that `cargo run` in the workspace finds one binary).
#
# Settings (environment):
#   BENCH_DURATION        time per put and latency workload (default 10s)
#   BENCH_DRAIN_MIB       MiB written, then drained with GetRecords, on riffle (default 1024)
#   BENCH_PEER_DRAIN_MIB  the same for kinesalite and kinesis-mock, which keep every record
#                         in the Node.js heap (default 32; the table says which size ran)
#   BENCH_OPEN_RATE       calls/s of the open-loop PutRecord workload (default 5000)
#   BENCH_E2E_RATE        records/s of the put→visible workload (default 1000)
#   BENCH_SERVERS         servers to run (default "riffle ceiling kinesalite kinesis-mock redis nats")
#   BENCH_SKIP_BUILD=1    use the existing release binaries
#   BENCH_TOOLS           where npm packages go (default ~/.cache/riffle-bench-peers)
#   BENCH_WORK_PARENT     where data directories go (default target/: a tmpfs $TMPDIR would
#                         make fsync free)
#   BENCH_OUT             also write the report to this file
#   BENCH_KEEP_RESULTS    copy the raw JSON results to this directory
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
duration=${BENCH_DURATION:-10s}
drain_mib=${BENCH_DRAIN_MIB:-1024}
peer_drain_mib=${BENCH_PEER_DRAIN_MIB:-32}
open_rate=${BENCH_OPEN_RATE:-5000}
e2e_rate=${BENCH_E2E_RATE:-1000}
servers=${BENCH_SERVERS:-riffle ceiling kinesalite kinesis-mock redis nats}
tools=${BENCH_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/riffle-bench-peers}
kinesalite_version=3.3.3
kinesis_local_version=0.6.2
shards=4
startup_wait_s=60
startup_samples=5
riffle_bin=$root/target/release/riffle
nats_bench_bin=$root/target/release/examples/riffle-bench-nats

say() { echo "bench-peers: $*" >&2; }
# stop_server, run_child, wait_for_line, hwm_kib
. "$root/scripts/lib/bench-common.sh"

# Seconds in BENCH_DURATION (10s, 500ms, 2m), for tools that count requests instead of time.
duration_s=$(node -e '
const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(process.argv[1]);
if (!m) { console.error("BENCH_DURATION must look like 10s, 500ms or 2m"); process.exit(1); }
console.log(Number(m[1]) * { ms: 0.001, s: 1, m: 60 }[m[2]]);' "$duration")

work_parent=${BENCH_WORK_PARENT:-$root/target}
mkdir -p "$work_parent"
work=$(mktemp -d "$work_parent/bench-peers.XXXXXX")
server_pid=""
child_pid=""

cleanup() {
    stop_server "$child_pid"
    stop_server "$server_pid"
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wanted() { [[ " $servers " == *" $1 "* ]]; }

# --- install and build ---------------------------------------------------------------------
if wanted redis && ! command -v redis-server >/dev/null; then
    say "installing redis-server (apt-get)"
    run_child apt-get install -y redis-server >&2
fi
if wanted nats && ! command -v nats-server >/dev/null; then
    say "installing nats-server (apt-get)"
    run_child apt-get install -y nats-server >&2
fi
npm_install() {
    local package=$1 version=$2
    local manifest="$tools/node_modules/$package/package.json"
    if [ -f "$manifest" ] && grep -q "\"version\" *: *\"$version\"" "$manifest"; then
        return 0
    fi
    say "installing $package $version into $tools (npm, install scripts skipped)"
    mkdir -p "$tools"
    # --ignore-scripts: kinesalite's leveldown would download or compile a native module it
    # never loads in memory mode; kinesis-local has no scripts.
    run_child npm install --prefix "$tools" --no-audit --no-fund --ignore-scripts \
        "$package@$version" >&2
}
wanted kinesalite && npm_install kinesalite "$kinesalite_version"
wanted kinesis-mock && npm_install kinesis-local "$kinesis_local_version"

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    say "building riffle and riffle-bench-nats (release)"
    run_child bash -c 'cd "$1" && cargo build --release -p riffle-server >&2 &&
        cargo build --release -p riffle-bench --features nats --example riffle-bench-nats >&2' _ "$root"
fi
[ -x "$riffle_bin" ] || { say "no riffle binary at $riffle_bin"; exit 1; }
if wanted nats && [ ! -x "$nats_bench_bin" ]; then
    say "no riffle-bench-nats at $nats_bench_bin"; exit 1
fi

# --- helpers -------------------------------------------------------------------------------
free_port() {
    node -e 'const s = require("net").createServer();
s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

# Waits until process PID accepts TCP connections on 127.0.0.1:PORT.
wait_for_port() {
    local pid=$1 port=$2
    for _ in $(seq 1 $((startup_wait_s * 10))); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

results="$work/results"
mkdir -p "$results"

# Runs `riffle bench ARGS` against ENDPOINT; the JSON report goes to results/SERVER-ID.json.
kinesis_workload() {
    local server=$1 id=$2 endpoint=$3
    shift 3
    say "$server: $id"
    if ! run_child "$riffle_bin" bench "$@" --endpoint "$endpoint" --stream "bench-$id-$$" \
        --create --shards "$shards" --delete-after --json \
        >"$results/$server-$id.json" 2>"$results/$server-$id.log"; then
        say "$server: $id failed:"; tail -n 5 "$results/$server-$id.log" >&2
        : >"$results/$server-$id.json"
    fi
}

# The Kinesis workloads; the ceiling runs the put ones only.
kinesis_workloads() {
    local server=$1 endpoint=$2 drain=$3
    kinesis_workload "$server" batch100 "$endpoint" put --record-size 100 --batch 500 -c 8 \
        --duration "$duration"
    kinesis_workload "$server" batch1k "$endpoint" put --record-size 1KiB --batch 500 -c 8 \
        --duration "$duration"
    kinesis_workload "$server" single64 "$endpoint" put --record-size 100 --batch 1 -c 64 \
        --duration "$duration"
    kinesis_workload "$server" open "$endpoint" put --record-size 100 --batch 1 -c 32 \
        --rate "$open_rate" --duration "$duration"
    [ "$server" = ceiling ] && return 0
    kinesis_workload "$server" drain "$endpoint" get --record-size 1KiB --fill-mib "$drain" \
        -c "$shards"
    echo "$drain" >"$results/$server-drain.mib"
    kinesis_workload "$server" e2e "$endpoint" e2e --record-size 100 --rate "$e2e_rate" -c 4 \
        --duration "$duration"
}

# --- riffle: startup and idle memory, then the workloads -------------------------------------
# Time from exec to the "listening" line with an empty data dir, then resident memory after
# a second of idleness; the median of a few starts.
riffle_startup() {
    local dir="$work/startup"
    mkdir -p "$dir"
    node - "$riffle_bin" "$dir" "$startup_samples" >"$results/riffle-startup.json" <<'NODE'
const { spawn } = require("child_process");
const fs = require("fs");
const [bin, dir, samples] = process.argv.slice(2);
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const once = (i) => new Promise((resolve, reject) => {
  const data = `${dir}/data-${i}`;
  const started = process.hrtime.bigint();
  const child = spawn(bin, ["serve", "--listen", "127.0.0.1:0", "--data-dir", data, "--limits", "off"],
    { stdio: ["ignore", "pipe", "ignore"] });
  let out = "";
  child.stdout.on("data", (chunk) => {
    out += chunk;
    if (!out.includes("riffle listening on ")) return;
    child.stdout.removeAllListeners("data");
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    setTimeout(() => {
      const status = fs.readFileSync(`/proc/${child.pid}/status`, "utf8");
      const rssKib = Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
      child.kill("SIGTERM");
      child.on("exit", () => resolve({ ms, rssKib }));
    }, 1000);
  });
  child.on("error", reject);
});
(async () => {
  const runs = [];
  for (let i = 0; i < Number(samples); i++) runs.push(await once(i));
  console.log(JSON.stringify({
    startup_ms: median(runs.map((r) => r.ms)),
    startup_ms_all: runs.map((r) => Math.round(r.ms * 10) / 10),
    idle_rss_kib: median(runs.map((r) => r.rssKib)),
  }));
})();
NODE
}

run_riffle() {
    say "riffle: startup time and idle memory"
    riffle_startup || { say "riffle: startup measurement failed"; : >"$results/riffle-startup.json"; }
    "$riffle_bin" serve --listen 127.0.0.1:0 --data-dir "$work/riffle-data" --limits off \
        >"$work/riffle.out" 2>"$work/riffle.log" &
    server_pid=$!
    local line
    if ! line=$(wait_for_line "$server_pid" "$work/riffle.out" '^riffle listening on '); then
        say "riffle did not start:"; tail -n 20 "$work/riffle.log" >&2; exit 1
    fi
    kinesis_workloads riffle "http://${line#riffle listening on }" "$drain_mib"
    hwm_kib "$server_pid" >"$results/riffle.hwm"
    stop_server "$server_pid"; server_pid=""
    rm -rf "$work/riffle-data"
}

run_ceiling() {
    "$riffle_bin" bench ceiling-server --listen 127.0.0.1:0 \
        >"$work/ceiling.out" 2>"$work/ceiling.log" &
    server_pid=$!
    local line
    if ! line=$(wait_for_line "$server_pid" "$work/ceiling.out" '^ceiling listening on '); then
        say "ceiling did not start:"; tail -n 20 "$work/ceiling.log" >&2; exit 1
    fi
    kinesis_workloads ceiling "http://${line#ceiling listening on }" 0
    hwm_kib "$server_pid" >"$results/ceiling.hwm"
    stop_server "$server_pid"; server_pid=""
}

run_kinesalite() {
    local port
    port=$(free_port)
    # Started through node so it listens on loopback only (its CLI binds every address).
    node -e '
const [dir, port] = process.argv.slice(1);
const kinesalite = require(dir);
const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 10000 });
server.listen(Number(port), "127.0.0.1", () => console.log("kinesalite listening on 127.0.0.1:" + port));
' "$tools/node_modules/kinesalite" "$port" >"$work/kinesalite.out" 2>"$work/kinesalite.log" &
    server_pid=$!
    if ! wait_for_line "$server_pid" "$work/kinesalite.out" '^kinesalite listening on ' >/dev/null; then
        say "kinesalite did not start:"; tail -n 20 "$work/kinesalite.log" >&2; exit 1
    fi
    kinesis_workloads kinesalite "http://127.0.0.1:$port" "$peer_drain_mib"
    hwm_kib "$server_pid" >"$results/kinesalite.hwm"
    stop_server "$server_pid"; server_pid=""
}

run_kinesis_mock() {
    local port tls_port
    port=$(free_port)
    tls_port=$(free_port)
    # kinesis-mock binds 0.0.0.0 and has no setting for it; this preload makes every listen
    # of the process bind loopback instead.
    cat >"$work/loopback.js" <<'JS'
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (args[0] && typeof args[0] === "object" && !args[0].path) {
    args[0] = { ...args[0], host: "127.0.0.1" };
  } else if (typeof args[0] === "number" || (typeof args[0] === "string" && /^\d+$/.test(args[0]))) {
    if (typeof args[1] === "string") args[1] = "127.0.0.1";
    else args.splice(1, 0, "127.0.0.1");
  }
  return listen.apply(this, args);
};
JS
    (cd "$work" && exec env KINESIS_MOCK_PLAIN_PORT="$port" KINESIS_MOCK_TLS_PORT="$tls_port" \
        KINESIS_MOCK_CERT_PATH="$tools/node_modules/kinesis-local/server.json" \
        CREATE_STREAM_DURATION=1ms DELETE_STREAM_DURATION=1ms SHARD_LIMIT=10000 LOG_LEVEL=WARN \
        node --require "$work/loopback.js" "$tools/node_modules/kinesis-local/main.js") \
        >"$work/kinesis-mock.out" 2>"$work/kinesis-mock.log" &
    server_pid=$!
    if ! wait_for_port "$server_pid" "$port"; then
        say "kinesis-mock did not start:"; tail -n 20 "$work/kinesis-mock.log" >&2; exit 1
    fi
    kinesis_workloads kinesis-mock "http://127.0.0.1:$port" "$peer_drain_mib"
    hwm_kib "$server_pid" >"$results/kinesis-mock.hwm"
    stop_server "$server_pid"; server_pid=""
}

# redis-benchmark counts requests, not time: N is sized from a rate guess so that each run
# takes about BENCH_DURATION on a 2-core machine. Its CSV line becomes the JSON fields of a
# `riffle bench` report.
redis_workload() {
    local id=$1 port=$2 bytes=$3 clients=$4 pipeline=$5 rate_guess=$6
    local requests value
    requests=$(node -e 'console.log(Math.max(10000, Math.round(process.argv[1] * process.argv[2])))' \
        "$rate_guess" "$duration_s")
    value=$(head -c "$bytes" /dev/zero | tr '\0' x)
    say "redis: $id ($requests XADDs)"
    if ! run_child redis-benchmark -h 127.0.0.1 -p "$port" -c "$clients" -P "$pipeline" \
        -n "$requests" --csv XADD riffle-bench '*' data "$value" \
        >"$results/redis-$id.csv" 2>"$results/redis-$id.log"; then
        say "redis: $id failed:"; tail -n 5 "$results/redis-$id.log" >&2
    fi
    node - "$results/redis-$id.csv" "$bytes" "$pipeline" >"$results/redis-$id.json" <<'NODE' || : >"$results/redis-$id.json"
const fs = require("fs");
const [file, bytes, pipeline] = process.argv.slice(2);
const lines = fs.readFileSync(file, "utf8").trim().split("\n").filter((l) => l.startsWith('"'));
const header = JSON.parse("[" + lines[0] + "]");
const values = JSON.parse("[" + lines[lines.length - 1] + "]");
const field = (name) => Number(values[header.indexOf(name)]);
const rps = field("rps");
console.log(JSON.stringify({
  records_per_s: rps,
  requests_per_s: rps / Number(pipeline),
  mib_per_s: rps * Number(bytes) / 1048576,
  latency_us: { p50: field("p50_latency_ms") * 1000, p99: field("p99_latency_ms") * 1000 },
  errors: {}, throttles: {},
}));
NODE
}

run_redis() {
    local port dir="$work/redis-data"
    port=$(free_port)
    mkdir -p "$dir"
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' \
        --appendonly yes --appendfsync always --daemonize no --protected-mode yes \
        >"$work/redis.log" 2>&1 &
    server_pid=$!
    if ! wait_for_port "$server_pid" "$port"; then
        say "redis did not start:"; tail -n 20 "$work/redis.log" >&2; exit 1
    fi
    redis_workload batch100 "$port" 100 8 500 220000
    redis_workload batch1k "$port" 1024 8 500 110000
    redis_workload single64 "$port" 100 64 1 40000
    hwm_kib "$server_pid" >"$results/redis.hwm"
    stop_server "$server_pid"; server_pid=""
    rm -rf "$dir"
}

nats_workload() {
    local id=$1 url=$2
    shift 2
    say "nats: $id"
    if ! run_child "$nats_bench_bin" --url "$url" --stream "bench-$id" --streams "$shards" \
        --duration "$duration" --json "$@" \
        >"$results/nats-$id.json" 2>"$results/nats-$id.log"; then
        say "nats: $id failed:"; tail -n 5 "$results/nats-$id.log" >&2
        : >"$results/nats-$id.json"
    fi
}

run_nats() {
    local port dir="$work/nats-data"
    port=$(free_port)
    mkdir -p "$dir"
    cat >"$work/nats.conf" <<EOF
listen: "127.0.0.1:$port"
jetstream {
    store_dir: "$dir"
}
EOF
    nats-server -c "$work/nats.conf" >"$work/nats.log" 2>&1 &
    server_pid=$!
    if ! wait_for_port "$server_pid" "$port"; then
        say "nats did not start:"; tail -n 20 "$work/nats.log" >&2; exit 1
    fi
    local url="nats://127.0.0.1:$port"
    nats_workload batch100 "$url" --record-size 100 --window 500 -c 8
    nats_workload batch1k "$url" --record-size 1KiB --window 500 -c 8
    nats_workload single64 "$url" --record-size 100 --window 1 -c 64
    hwm_kib "$server_pid" >"$results/nats.hwm"
    stop_server "$server_pid"; server_pid=""
    rm -rf "$dir"
}

for server in $servers; do
    case $server in
        riffle) run_riffle ;;
        ceiling) run_ceiling ;;
        kinesalite) run_kinesalite ;;
        kinesis-mock) run_kinesis_mock ;;
        redis) run_redis ;;
        nats) run_nats ;;
        *) say "unknown server '$server' in BENCH_SERVERS"; exit 2 ;;
    esac
done

if [ -n "${BENCH_KEEP_RESULTS:-}" ]; then
    mkdir -p "$BENCH_KEEP_RESULTS"
    cp "$results"/* "$BENCH_KEEP_RESULTS"/
fi

# --- report --------------------------------------------------------------------------------
versions=""
wanted redis && versions+="; redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')"
wanted nats && versions+="; nats-server $(nats-server --version | sed 's/.* v//')"
cpu_model=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
mem_total=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
revision=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
data_fs=$(stat -f -c %T "$work" 2>/dev/null || echo unknown)

report=$(node - "$results" "$open_rate" "$e2e_rate" <<'NODE'
const fs = require("fs");
const [dir, openRate, e2eRate] = process.argv.slice(2);
const load = (name) => {
  try { return JSON.parse(fs.readFileSync(`${dir}/${name}.json`, "utf8").trim().split("\n").pop()); }
  catch (_) { return null; }
};
const text = (name) => { try { return fs.readFileSync(`${dir}/${name}`, "utf8").trim(); } catch (_) { return null; } };
const servers = ["riffle", "ceiling", "kinesalite", "kinesis-mock", "redis", "nats"];
const titles = ["riffle", "ceiling", "kinesalite", "kinesis-mock", "Redis", "NATS JetStream"];
const fmt = (v) => v == null || Number.isNaN(v) ? "–" :
  v >= 100 ? Math.round(v).toLocaleString("en-US") : v >= 10 ? v.toFixed(1) : v.toFixed(2);
const ms = (us) => us / 1000;
const rows = [];
const verdicts = [];
// higher: whether a bigger value is better (throughput) or a smaller one (latency, memory).
const row = (workload, metric, values, target, higher) => {
  const base = values[0];
  const cells = values.map((v, i) => {
    if (v == null) return "–";
    if (i === 0 || base == null || v === 0) return fmt(v);
    return `${fmt(v)} (${(base / v).toFixed(2)}×)`;
  });
  let verdict = "";
  if (target != null && base != null) {
    const met = higher ? base >= target.value : base <= target.value;
    verdict = `${target.text}: ${met ? "met" : "**not met**"}`;
    verdicts.push({ workload, metric, met, base, target });
  } else if (target != null) {
    verdict = `${target.text}: not measured`;
  }
  rows.push(`| ${workload} | ${metric} | ${cells.join(" | ")} | ${verdict} |`);
};
const metric = (id, f) => servers.map((s) => { const r = load(`${s}-${id}`); return r == null ? null : f(r); });
const errorsRow = (workload, id) => {
  const cells = servers.map((s) => {
    const r = load(`${s}-${id}`);
    if (r == null) return "";
    const all = [...Object.entries(r.errors || {}), ...Object.entries(r.throttles || {})];
    return all.map(([k, v]) => `${k} ${v}`).join(", ");
  });
  if (cells.some((c) => c)) rows.push(`| ${workload} | errors | ${cells.map((c) => c || "0").join(" | ")} | |`);
};
const p99 = (r) => ms(r.latency_us.p99);

let w = "PutRecords 500 × 100 B, 8 connections, 4 shards";
row(w, "records/s", metric("batch100", (r) => r.records_per_s), { text: "≥ 1,000,000", value: 1e6 }, true);
row(w, "request p99 ms", metric("batch100", p99));
errorsRow(w, "batch100");
w = "PutRecords 500 × 1 KiB, 8 connections, 4 shards";
row(w, "MiB/s payload", metric("batch1k", (r) => r.mib_per_s), { text: "≥ 400", value: 400 }, true);
row(w, "request p99 ms", metric("batch1k", p99));
errorsRow(w, "batch1k");
w = "PutRecord 100 B, 64 connections";
const single = metric("single64", (r) => r.requests_per_s);
row(w, "calls/s", single, { text: "≥ 50,000", value: 50000 }, true);
if (single[0] != null && single[1] != null) {
  const share = single[0] / single[1];
  rows.push(`| ${w} | share of the ceiling | ${(100 * share).toFixed(0)} % | 100 % | | | | | ≥ 60 %: ${share >= 0.6 ? "met" : "**not met**"} |`);
  verdicts.push({ workload: w, metric: "share of the ceiling", met: share >= 0.6 });
}
row(w, "request p99 ms", metric("single64", p99));
errorsRow(w, "single64");
w = `PutRecord 100 B, open loop at ${Number(openRate).toLocaleString("en-US")}/s, 32 connections`;
row(w, "calls/s achieved", metric("open", (r) => r.requests_per_s));
row(w, "request p50 ms", metric("open", (r) => ms(r.latency_us.p50)));
row(w, "request p99 ms", metric("open", p99), { text: "< 2", value: 2 }, false);
const late = metric("open", (r) => r.open_loop ? r.open_loop.sends_late : null);
if (late.some((v) => v)) rows.push(`| ${w} | late sends (> 5 ms behind) | ${late.map((v) => v == null ? "–" : String(v)).join(" | ")} | |`);
errorsRow(w, "open");
const drains = servers.map((s) => text(`${s}-drain.mib`));
w = `GetRecords drain (1 KiB records; MiB: ${servers.map((s, i) => drains[i] ? `${titles[i]} ${drains[i]}` : null).filter(Boolean).join(", ")})`;
row(w, "MiB/s payload", metric("drain", (r) => r.mib_per_s), { text: "≥ 500", value: 500 }, true);
errorsRow(w, "drain");
w = `Put→visible at ${Number(e2eRate).toLocaleString("en-US")} records/s, 4 connections`;
row(w, "put→visible p50 ms", metric("e2e", (r) => ms(r.visibility.visible_latency_us.p50)), { text: "≤ 0.5", value: 0.5 }, false);
row(w, "put→visible p99 ms", metric("e2e", (r) => ms(r.visibility.visible_latency_us.p99)), { text: "≤ 2", value: 2 }, false);
const missing = metric("e2e", (r) => r.visibility.records_missing);
if (missing.some((v) => v)) rows.push(`| ${w} | records never seen | ${missing.map((v) => v == null ? "–" : String(v)).join(" | ")} | |`);
errorsRow(w, "e2e");
const startup = load("riffle-startup");
const blank = servers.slice(1).map(() => "–");
row("riffle start, empty data dir (median of 5)", "ms to listening",
  [startup ? startup.startup_ms : null, ...blank.map(() => null)], { text: "< 50", value: 50 }, false);
row("riffle idle after start", "RSS MiB",
  [startup ? startup.idle_rss_kib / 1024 : null, ...blank.map(() => null)], { text: "< 20", value: 20 }, false);
row("whole run of each server", "peak RSS MiB (VmHWM)",
  servers.map((s) => { const k = Number(text(`${s}.hwm`)); return k ? k / 1024 : null; }));

console.log(`| Workload | Metric | ${titles.join(" | ")} | Target (riffle) |`);
console.log(`|---|---|${titles.map(() => "---:").join("|")}|---|`);
console.log(rows.join("\n"));
console.log();
console.log(`Targets met: ${verdicts.filter((v) => v.met).length} of ${verdicts.length}.` +
  (startup ? ` Startup samples (ms): ${startup.startup_ms_all.join(", ")}.` : ""));
NODE
)

{
    echo "## riffle against its peers"
    echo
    echo "- Machine: $(nproc) CPUs, ${cpu_model:-unknown CPU}, $mem_total RAM, $(uname -srm); data on $data_fs"
    echo "- riffle $revision, release build, fdatasync before every ack, \`--limits off\`;" \
        "kinesalite $kinesalite_version and kinesis-local $kinesis_local_version in memory on node" \
        "$(node --version)${versions}"
    echo "- $duration per put and latency workload; Kinesis streams of $shards shards with" \
        "random partition keys, created fresh per run; load from \`riffle bench\` (Redis:" \
        "redis-benchmark, NATS: riffle-bench-nats) on the same machine"
    echo "- Cells of other servers: value (riffle ÷ value). Redis rows: XADD pipelined 500 deep" \
        "on 8 connections for PutRecords, unpipelined on 64 connections for PutRecord; NATS" \
        "rows: windows of 500 (or 1) acknowledged publishes, 4 JetStream streams"
    echo
    echo "$report"
} | tee ${BENCH_OUT:+"$BENCH_OUT"}
