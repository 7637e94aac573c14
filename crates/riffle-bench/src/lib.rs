//! The load generator behind `riffle bench`.
//!
//! It speaks raw HTTP/1.1 JSON Kinesis requests (no SDK) over one keep-alive connection per
//! concurrent worker, so what it measures is the server: request bodies are encoded once and
//! patched in place, answers are parsed only as far as counting needs.
//!
//! Workloads:
//! - `put`: closed-loop PutRecord (`--batch 1`) or PutRecords (`--batch N`) for a duration or
//!   a record count; reports requests/s, records/s, MiB/s of payload and request latency.
//!   With `--rate` the puts leave on a fixed schedule instead (open loop), which is how
//!   latency at a given load is measured.
//! - `get`: optionally fills the stream (`--fill-mib`), then drains every shard from
//!   TRIM_HORIZON to its tip with GetRecords; reports read throughput.
//! - `e2e` (alias `latency`): puts at a fixed rate (open loop, `--rate`) while pollers tail
//!   every shard; reports put→visible latency percentiles as well.
//!
//! - `queue`: fills an ON_DEMAND stream, then drains it through a queue (module `queue`).
//! - `channel`: puts to an ON_DEMAND stream with a channel to a bucket and counts the records
//!   in the objects the server writes under its `--data-dir` (module `channel`).
//!
//! - `ceiling-server` (hidden): not a workload but the HTTP ceiling to run one against, a
//!   server with riffle's HTTP stack that answers fixed replies; see [`ceiling`].
//!
//! Failures are counted by error type, throttles apart; a PutRecords entry with an
//! `ErrorCode` is a failed record even though its request got a 200. The report prints as a
//! table, or with `--json` as one JSON line on stdout (the table then goes to stderr).
//!
//! riffle enforces AWS's per-shard limits by default (1 MiB/s and 1,000 records/s of writes,
//! 5 GetRecords/s and 2 MiB/s of reads): to measure the server rather than the limits, run it
//! with `riffle serve --limits off`.

mod body;
pub mod ceiling;
mod channel;
mod client;
mod fanout;
#[cfg(feature = "nats")]
pub mod nats;
mod put;
mod queue;
mod read;
mod stats;
mod stream;
mod units;

pub use channel::Compression;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::ValueEnum;

use crate::body::{KeyMode, STAMP_BYTES};
use crate::client::{Client, Endpoint};
use crate::put::{Pace, PutPlan};
use crate::read::{Cursor, ReadPlan, Visibility};
use crate::stats::{
    merge_counts, FillSummary, OpenLoopSummary, Report, RunShape, VisibilitySummary,
};
use crate::stream::IteratorType;

/// Kinesis caps a PutRecords request at 500 entries.
const PUT_RECORDS_ENTRIES_MAX: usize = 500;
/// The largest record Kinesis can be configured to take (1 MiB by default, up to 10 MiB).
const RECORD_DATA_BYTES_MAX: u64 = 10 * 1024 * 1024;
/// The largest PutRecords request Kinesis takes, counted over the decoded payloads.
const PUT_RECORDS_BYTES_MAX: u64 = 10 * 1024 * 1024;
/// Fill requests stay within 5 MiB, the older request cap some emulators still enforce.
const FILL_REQUEST_BYTES_MAX: u64 = 5 * 1024 * 1024;
const FILL_MIB_MAX: f64 = 64.0 * 1024.0;
const CONNECTIONS_MAX: usize = 1024;
/// Most shards `--create` asks for (the per-stream scaling limit of Kinesis).
const SHARDS_MAX: u32 = 10_000;
/// GetRecords returns at most 10,000 records per call.
const GET_LIMIT_MAX: u32 = 10_000;
const PARTITION_KEY_CHARS_MAX: usize = 256;
const STREAM_NAME_LEN_MAX: usize = 128;
const RATE_MAX: f64 = 10_000_000.0;
/// Records per second of e2e and fanout without --rate.
const RATE_DEFAULT: f64 = 1000.0;
/// Pollers used by the latency workload at most; shards beyond share pollers.
const POLLERS_MAX: usize = 64;
/// Puts and the latency run stop after this long unless `--duration`/`--count` say otherwise.
const DURATION_DEFAULT: Duration = Duration::from_secs(10);
/// A drain stops at the tip of every shard, and in any case after this long.
const DRAIN_DURATION_MAX: Duration = Duration::from_secs(600);
/// How long the latency workload waits, after its last put, for acknowledged records to
/// show up before counting them missing.
const VISIBILITY_WAIT_MAX: Duration = Duration::from_secs(5);
const VISIBILITY_CHECK_INTERVAL: Duration = Duration::from_millis(2);
const BYTES_PER_MIB: f64 = 1024.0 * 1024.0;

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Closed-loop PutRecord/PutRecords throughput.
    Put,
    /// Fill the stream (with --fill-mib), then drain every shard with GetRecords.
    Get,
    /// Put at a fixed --rate while polling every shard: put→visible latency.
    #[value(alias = "latency")]
    E2e,
    /// Put at a fixed --rate while --subscribers consumers receive every shard through
    /// SubscribeToShard: put→push latency.
    Fanout,
    /// Fill an ON_DEMAND stream, then --connections consumers drain it through a queue with
    /// ReceiveQueueRecords (Limit 10) and AcknowledgeQueueRecords: records/s delivered and
    /// acknowledged.
    Queue,
    /// Create an ON_DEMAND stream with a channel to --bucket, put --count records and count
    /// them in the objects the server writes under --data-dir (run the server with
    /// --channel-max-wait-ms 1000): records/s delivered to the bucket.
    Channel,
    /// Not a workload: serve the HTTP ceiling (fixed replies, riffle's HTTP stack) on
    /// --listen, for the other workloads to be run against.
    #[value(hide = true)]
    CeilingServer,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Get => "get",
            Self::E2e => "e2e",
            Self::Fanout => "fanout",
            Self::Queue => "queue",
            Self::Channel => "channel",
            Self::CeilingServer => "ceiling-server",
        }
    }
}

/// How partition keys are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Keys {
    /// A new random key per record: records spread over all shards.
    Random,
    /// --partition-key for every record: one shard takes everything.
    Fixed,
}

/// `riffle bench`: drive a running Kinesis-compatible server and report throughput and
/// latency. A riffle server throttles at AWS's per-shard limits unless started with
/// `--limits off`; throttles are counted apart from other failures.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// put: write throughput; get: fill then drain; e2e (or latency): put→visible latency.
    #[arg(value_enum)]
    pub workload: Workload,
    /// Server to drive (plain HTTP).
    #[arg(long, default_value = "http://127.0.0.1:4567")]
    pub endpoint: String,
    /// Stream to use.
    #[arg(long, default_value = "riffle-bench")]
    pub stream: String,
    /// Create the stream (with --shards) if it does not exist, and wait until it is ACTIVE.
    #[arg(long)]
    pub create: bool,
    /// Shards of the stream --create makes.
    #[arg(long, default_value_t = 1)]
    pub shards: u32,
    /// Delete the stream when the run is over.
    #[arg(long)]
    pub delete_after: bool,
    /// Payload bytes per record (100, 1KiB, 1MiB...).
    #[arg(long, default_value = "100", value_parser = units::parse_bytes)]
    pub record_size: u64,
    /// Records per put request: 1 sends PutRecord, more send PutRecords.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Concurrent connections (one worker each).
    #[arg(long, short = 'c', default_value_t = 1)]
    pub concurrency: usize,
    /// How long to run (10s, 500ms, 2m); put and e2e default to 10 s, get drains to the tip.
    #[arg(long, value_parser = units::parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many records were sent (put, e2e).
    #[arg(long)]
    pub count: Option<u64>,
    /// How partition keys are chosen.
    #[arg(long, value_enum, default_value = "random")]
    pub keys: Keys,
    /// The key used with --keys fixed.
    #[arg(long, default_value = "riffle-bench")]
    pub partition_key: String,
    /// get: first write this many MiB of payload (PutRecords of up to 500 records).
    #[arg(long)]
    pub fill_mib: Option<f64>,
    /// get, e2e: the Limit of each GetRecords.
    #[arg(long, default_value_t = 10_000)]
    pub get_limit: u32,
    /// Records per second to put, over all connections. e2e, fanout: default 1000. put: send
    /// on this schedule (open loop) rather than as fast as answers come.
    #[arg(long)]
    pub rate: Option<f64>,
    /// fanout: enhanced fan-out consumers, each subscribed to every shard.
    #[arg(long, default_value_t = 5)]
    pub subscribers: usize,
    /// e2e: pause after a polling round that found nothing (0 = poll as fast as answers come).
    #[arg(long, default_value = "0ms", value_parser = units::parse_duration)]
    pub poll_interval: Duration,
    /// Per-request timeout.
    #[arg(long, default_value = "30s", value_parser = units::parse_duration)]
    pub timeout: Duration,
    /// Seed for keys and payloads (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the report as one JSON line on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// channel: the server's --data-dir, whose buckets/BUCKET/ the server's objects land in.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<std::path::PathBuf>,
    /// channel: the bucket the channel writes to.
    #[arg(long, default_value = "riffle-bench")]
    pub bucket: String,
    /// channel: the channel's CompressionType.
    #[arg(long, value_enum, default_value = "none")]
    pub compression: Compression,
    /// ceiling-server: the address to listen on (port 0 picks a free one, printed on stdout).
    #[arg(long, hide = true, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
}

/// Arguments checked and resolved to the units the workloads use.
#[derive(Debug, Clone)]
struct Config {
    workload: Workload,
    endpoint: String,
    stream: String,
    create: bool,
    shards: u32,
    delete_after: bool,
    record_bytes: usize,
    batch: usize,
    connections: usize,
    duration: Option<Duration>,
    count: Option<u64>,
    keys: KeyMode,
    fill_bytes: Option<u64>,
    get_limit: u32,
    /// Records per second; `None` for a closed-loop put and for get.
    rate: Option<f64>,
    subscribers: usize,
    poll_interval: Duration,
    timeout: Duration,
    seed: u64,
    json: bool,
    /// channel: the server's data directory, the bucket and the compression.
    data_dir: Option<std::path::PathBuf>,
    bucket: String,
    compression: Compression,
}

impl Config {
    fn from_args(args: BenchArgs) -> Result<Self, String> {
        let stream_ok = (1..=STREAM_NAME_LEN_MAX).contains(&args.stream.len())
            && args
                .stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !stream_ok {
            return Err(format!(
                "--stream `{}`: 1 to {STREAM_NAME_LEN_MAX} characters of a-z A-Z 0-9 _ . -",
                args.stream
            ));
        }
        if !(1..=PUT_RECORDS_ENTRIES_MAX).contains(&args.batch) {
            return Err(format!(
                "--batch must be 1 to {PUT_RECORDS_ENTRIES_MAX} (PutRecords takes at most {PUT_RECORDS_ENTRIES_MAX} records)"
            ));
        }
        if !(1..=RECORD_DATA_BYTES_MAX).contains(&args.record_size) {
            return Err(format!(
                "--record-size must be 1 B to {} MiB",
                RECORD_DATA_BYTES_MAX / 1024 / 1024
            ));
        }
        if args.batch > 1 && args.batch as u64 * args.record_size > PUT_RECORDS_BYTES_MAX {
            return Err(format!(
                "--batch {} × --record-size {} exceeds the {} MiB PutRecords limit",
                args.batch,
                args.record_size,
                PUT_RECORDS_BYTES_MAX / 1024 / 1024
            ));
        }
        if !(1..=CONNECTIONS_MAX).contains(&args.concurrency) {
            return Err(format!("--concurrency must be 1 to {CONNECTIONS_MAX}"));
        }
        if !(1..=SHARDS_MAX).contains(&args.shards) {
            return Err(format!("--shards must be 1 to {SHARDS_MAX}"));
        }
        if !(1..=GET_LIMIT_MAX).contains(&args.get_limit) {
            return Err(format!("--get-limit must be 1 to {GET_LIMIT_MAX}"));
        }
        let key_chars = args.partition_key.chars().count();
        if !(1..=PARTITION_KEY_CHARS_MAX).contains(&key_chars) {
            return Err(format!(
                "--partition-key must be 1 to {PARTITION_KEY_CHARS_MAX} characters"
            ));
        }
        if args.duration.is_some_and(|duration| duration.is_zero()) {
            return Err("--duration must be more than 0".into());
        }
        if args.count == Some(0) {
            return Err("--count must be at least 1".into());
        }
        let fill_bytes = match args.fill_mib {
            None => None,
            Some(_) if args.workload != Workload::Get => {
                return Err("--fill-mib only applies to the get workload".into())
            }
            Some(mib) if mib > 0.0 && mib <= FILL_MIB_MAX => Some((mib * BYTES_PER_MIB) as u64),
            Some(_) => {
                return Err(format!(
                    "--fill-mib must be above 0 and at most {FILL_MIB_MAX}"
                ))
            }
        };
        let rate = match (args.workload, args.rate) {
            (Workload::E2e | Workload::Fanout, rate) => Some(rate.unwrap_or(RATE_DEFAULT)),
            (Workload::Get, Some(_)) => return Err("--rate does not apply to get".into()),
            (_, rate) => rate,
        };
        if rate.is_some_and(|rate| !(rate > 0.0 && rate <= RATE_MAX)) {
            return Err(format!("--rate must be above 0 and at most {RATE_MAX}"));
        }
        if matches!(args.workload, Workload::E2e | Workload::Fanout)
            && args.record_size < STAMP_BYTES as u64
        {
            return Err(format!(
                "--record-size must be at least {STAMP_BYTES} B for e2e (each payload carries its send time)"
            ));
        }
        if args.workload == Workload::Channel {
            if args.data_dir.is_none() {
                return Err(
                    "channel needs --data-dir, the server's: the records are counted in the \
                     objects it writes there"
                        .into(),
                );
            }
            if args.count.is_some_and(|count| count > channel::COUNT_MAX) {
                return Err(format!(
                    "--count must be at most {} for channel",
                    channel::COUNT_MAX
                ));
            }
            if args.record_size < channel::RECORD_BYTES_MIN as u64 {
                return Err(format!(
                    "--record-size must be at least {} B for channel (each record is JSON \
                     carrying its number)",
                    channel::RECORD_BYTES_MIN
                ));
            }
            let bucket_ok = (3..=63).contains(&args.bucket.len())
                && args
                    .bucket
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b));
            if !bucket_ok {
                return Err(format!(
                    "--bucket `{}`: 3 to 63 characters of a-z 0-9 . -",
                    args.bucket
                ));
            }
        } else if args.data_dir.is_some() {
            return Err("--data-dir only applies to the channel workload".into());
        }
        if args.workload == Workload::Get && args.count.is_some() {
            return Err("--count does not apply to get (it drains to the tip)".into());
        }
        let duration = match (args.workload, args.duration, args.count) {
            (Workload::Get, duration, _) => Some(duration.unwrap_or(DRAIN_DURATION_MAX)),
            (_, None, None) => Some(DURATION_DEFAULT),
            (_, duration, _) => duration,
        };
        let keys = match args.keys {
            Keys::Random => KeyMode::Random,
            Keys::Fixed => KeyMode::Fixed(args.partition_key),
        };
        let seed = args.seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|elapsed| elapsed.as_nanos() as u64)
                .unwrap_or(1)
        });
        Ok(Self {
            workload: args.workload,
            endpoint: args.endpoint,
            stream: args.stream,
            create: args.create,
            shards: args.shards,
            delete_after: args.delete_after,
            record_bytes: args.record_size as usize,
            batch: args.batch,
            connections: args.concurrency,
            duration,
            count: args.count,
            keys,
            fill_bytes,
            get_limit: args.get_limit,
            rate,
            subscribers: args.subscribers,
            poll_interval: args.poll_interval,
            timeout: args.timeout,
            seed,
            json: args.json,
            data_dir: args.data_dir,
            bucket: args.bucket,
            compression: args.compression,
        })
    }

    fn shape(&self, shards: usize) -> RunShape {
        RunShape {
            workload: self.workload.name(),
            endpoint: self.endpoint.clone(),
            stream: self.stream.clone(),
            shards,
            record_bytes: self.record_bytes as u64,
            batch: self.batch,
            concurrency: self.connections,
        }
    }

    fn put_plan(&self) -> PutPlan {
        PutPlan {
            stream: self.stream.clone(),
            record_bytes: self.record_bytes,
            batch: self.batch,
            connections: self.connections,
            keys: self.keys.clone(),
            seed: self.seed,
            timeout: self.timeout,
            deadline: self.duration.map(|duration| Instant::now() + duration),
            records_max: self.count,
        }
    }

    /// Records per request when filling: as many as fit both limits.
    fn fill_batch(&self) -> usize {
        let fitting = (FILL_REQUEST_BYTES_MAX / self.record_bytes as u64).max(1) as usize;
        fitting.min(PUT_RECORDS_ENTRIES_MAX)
    }
}

/// Runs `riffle bench` to completion: prepares the stream, runs the workload, prints the
/// report, and deletes the stream with `--delete-after`.
pub async fn run(args: BenchArgs) -> Result<(), String> {
    if args.workload == Workload::CeilingServer {
        return ceiling::serve(args.listen).await;
    }
    let config = Config::from_args(args)?;
    let endpoint = Arc::new(Endpoint::resolve(&config.endpoint).await?);
    if config.workload == Workload::Queue {
        return queue::run(
            &endpoint,
            &config.stream,
            config.count.unwrap_or(200_000),
            config.connections,
            config.record_bytes,
            config.timeout,
        )
        .await;
    }
    if let (Workload::Channel, Some(data_dir)) = (config.workload, &config.data_dir) {
        let plan = channel::Plan {
            stream: config.stream.clone(),
            bucket: config.bucket.clone(),
            data_dir: data_dir.clone(),
            compression: config.compression,
            count: config.count.unwrap_or(200_000),
            record_bytes: config.record_bytes,
            timeout: config.timeout,
        };
        return channel::run(&endpoint, &plan).await;
    }
    let mut admin = Client::new(Arc::clone(&endpoint), config.timeout);
    let created = stream::prepare(&mut admin, &config.stream, config.shards, config.create).await?;
    let shards = stream::list_shards(&mut admin, &config.stream).await;
    let outcome = match shards {
        Ok(shards) if shards.is_empty() => Err(format!("stream {} has no shards", config.stream)),
        Ok(shards) => {
            eprintln!(
                "riffle bench: {} against {} ({} {}, {} shard{}){}",
                config.workload.name(),
                endpoint.address(),
                if created { "new stream" } else { "stream" },
                config.stream,
                shards.len(),
                if shards.len() == 1 { "" } else { "s" },
                match (config.workload, config.duration, config.count) {
                    (_, _, Some(count)) => format!(", {count} records"),
                    (Workload::Get, _, _) => String::new(),
                    (_, Some(duration), None) => format!(", {:.1} s", duration.as_secs_f64()),
                    (_, None, None) => String::new(),
                }
            );
            match config.workload {
                Workload::Put => Ok(run_put(&config, &endpoint, &shards).await),
                Workload::Get => Ok(run_get(&config, &endpoint, &shards).await),
                Workload::E2e => run_e2e(&config, &endpoint, &mut admin, &shards).await,
                Workload::Fanout => run_fanout(&config, &endpoint, &mut admin, &shards).await,
                Workload::CeilingServer | Workload::Queue | Workload::Channel => {
                    unreachable!("run before any stream is prepared")
                }
            }
        }
        Err(error) => Err(error),
    };
    if config.delete_after {
        if let Err(error) = stream::delete(&mut admin, &config.stream).await {
            eprintln!("riffle bench: {error}");
        }
    }
    let report = outcome?;
    if config.json {
        eprint!("{}", report.to_table());
        println!("{}", report.to_json_line());
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}

async fn run_put(config: &Config, endpoint: &Arc<Endpoint>, shards: &[String]) -> Report {
    let Some(rate) = config.rate else {
        let (stats, elapsed) = put::closed_loop(endpoint, &config.put_plan()).await;
        return Report::new(config.shape(shards.len()), &stats, elapsed);
    };
    let pace = Pace {
        records_per_s: rate,
        clock_base: Instant::now(),
        stamped: false,
    };
    let outcome = put::paced(endpoint, &config.put_plan(), &pace).await;
    let mut report = Report::new(config.shape(shards.len()), &outcome.stats, outcome.elapsed);
    report.open_loop = Some(OpenLoopSummary {
        target_rate: rate,
        sends_late: outcome.sends_late,
    });
    report
}

async fn run_get(config: &Config, endpoint: &Arc<Endpoint>, shards: &[String]) -> Report {
    let fill = match config.fill_bytes {
        Some(fill_bytes) => {
            let batch = config.fill_batch();
            let plan = PutPlan {
                batch,
                keys: KeyMode::Random,
                deadline: None,
                records_max: Some(fill_bytes.div_ceil(config.record_bytes as u64)),
                ..config.put_plan()
            };
            let (stats, elapsed) = put::closed_loop(endpoint, &plan).await;
            let fill = FillSummary::new(&stats, elapsed);
            eprintln!(
                "riffle bench: filled {} records ({:.1} MiB) in {:.2} s, {} failed",
                fill.records,
                fill.payload_bytes as f64 / BYTES_PER_MIB,
                fill.seconds,
                fill.records_failed
            );
            Some(fill)
        }
        None => None,
    };
    let plan = ReadPlan {
        stream: config.stream.clone(),
        limit: config.get_limit,
        timeout: config.timeout,
        idle_pause: Duration::ZERO,
        deadline: Instant::now() + config.duration.unwrap_or(DRAIN_DURATION_MAX),
    };
    let (stats, elapsed) = read::drain(endpoint, &plan, shards, config.connections).await;
    let mut shape = config.shape(shards.len());
    // What was read decides the record size here, not --record-size.
    shape.record_bytes = stats
        .payload_bytes
        .checked_div(stats.records_ok)
        .unwrap_or(0);
    shape.batch = config.get_limit as usize;
    shape.concurrency = config.connections.min(shards.len());
    let mut report = Report::new(shape, &stats, elapsed);
    report.fill = fill;
    report
}

async fn run_e2e(
    config: &Config,
    endpoint: &Arc<Endpoint>,
    admin: &mut Client,
    shards: &[String],
) -> Result<Report, String> {
    // Iterators are taken before the first put, so every put lands after them.
    let mut cursors = Vec::with_capacity(shards.len());
    for shard in shards {
        let iterator = stream::shard_iterator(admin, &config.stream, shard, IteratorType::Latest)
            .await
            .map_err(|error| format!("GetShardIterator {shard}: {error}"))?;
        cursors.push(Cursor::new(shard.clone(), Some(iterator)));
    }
    let clock_base = Instant::now();
    let plan = config.put_plan();
    let rate = config.rate.unwrap_or(RATE_DEFAULT);
    let scheduled = match (config.duration, config.count) {
        (Some(duration), _) => duration,
        (None, Some(count)) => Duration::from_secs_f64(count as f64 / rate),
        (None, None) => DURATION_DEFAULT,
    };
    let read_plan = ReadPlan {
        stream: config.stream.clone(),
        limit: config.get_limit,
        timeout: config.timeout,
        idle_pause: config.poll_interval,
        // A backstop only: the writer side raises `stop` well before this.
        deadline: Instant::now() + scheduled + VISIBILITY_WAIT_MAX + config.timeout * 2,
    };
    let pace = Pace {
        records_per_s: rate,
        clock_base,
        stamped: true,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicU64::new(0));
    let writers = async {
        let outcome = put::paced(endpoint, &plan, &pace).await;
        let acknowledged = outcome.stats.records_ok;
        let waited_since = Instant::now();
        while seen.load(Ordering::Relaxed) < acknowledged
            && waited_since.elapsed() < VISIBILITY_WAIT_MAX
        {
            tokio::time::sleep(VISIBILITY_CHECK_INTERVAL).await;
        }
        stop.store(true, Ordering::Relaxed);
        outcome
    };
    let pollers = read::tail(
        endpoint,
        &read_plan,
        cursors,
        shards.len().min(POLLERS_MAX),
        Arc::clone(&stop),
        || Visibility::new(clock_base, Arc::clone(&seen)),
    );
    let (outcome, (poll_stats, visible_latency_us)) = tokio::join!(writers, pollers);
    let mut report = Report::new(config.shape(shards.len()), &outcome.stats, outcome.elapsed);
    merge_counts(&mut report.errors, &poll_stats.errors);
    merge_counts(&mut report.throttles, &poll_stats.throttles);
    let records_seen = seen.load(Ordering::Relaxed);
    report.visibility = Some(VisibilitySummary {
        target_rate: rate,
        visible_latency_us: stats::LatencySummary::of(&visible_latency_us),
        records_seen,
        records_missing: outcome.stats.records_ok.saturating_sub(records_seen),
        sends_late: outcome.sends_late,
        poll_requests: poll_stats.requests_ok + poll_stats.requests_failed,
    });
    Ok(report)
}

async fn run_fanout(
    config: &Config,
    endpoint: &Arc<Endpoint>,
    admin: &mut Client,
    shards: &[String],
) -> Result<Report, String> {
    if config.subscribers == 0 {
        return Err("--subscribers must be at least 1".into());
    }
    let plan = config.put_plan();
    let rate = config.rate.unwrap_or(RATE_DEFAULT);
    let (outcome, consumers) =
        fanout::run(endpoint, admin, &plan, rate, config.subscribers, shards).await?;
    fanout::deregister_consumers(admin, &consumers).await;
    let mut report = Report::new(
        config.shape(shards.len()),
        &outcome.put_stats,
        outcome.put_elapsed,
    );
    report.visibility = Some(VisibilitySummary {
        target_rate: rate,
        visible_latency_us: outcome.latency(),
        records_seen: outcome.pushes_seen,
        records_missing: outcome.pushes_expected.saturating_sub(outcome.pushes_seen),
        sends_late: outcome.sends_late,
        poll_requests: outcome.subscriptions,
    });
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<Config, String> {
        let cli = Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
            .map_err(|error| error.to_string())?;
        Config::from_args(cli.bench)
    }

    #[test]
    fn defaults_put_100_byte_records_for_ten_seconds() {
        let config = parse(&["put"]).unwrap();
        assert_eq!(config.workload, Workload::Put);
        assert_eq!(config.endpoint, "http://127.0.0.1:4567");
        assert_eq!(config.stream, "riffle-bench");
        assert_eq!(config.record_bytes, 100);
        assert_eq!(config.batch, 1);
        assert_eq!(config.connections, 1);
        assert_eq!(config.duration, Some(Duration::from_secs(10)));
        assert_eq!(config.count, None);
        assert_eq!(config.keys, KeyMode::Random);
        assert!(!config.create && !config.delete_after && !config.json);
    }

    #[test]
    fn put_options_parse_with_units() {
        let config = parse(&[
            "put",
            "--record-size",
            "1KiB",
            "--batch",
            "500",
            "-c",
            "8",
            "--shards",
            "4",
            "--create",
            "--delete-after",
            "--duration",
            "2500ms",
            "--keys",
            "fixed",
            "--partition-key",
            "pk",
            "--json",
            "--seed",
            "9",
        ])
        .unwrap();
        assert_eq!(config.record_bytes, 1024);
        assert_eq!(config.batch, 500);
        assert_eq!(config.connections, 8);
        assert_eq!(config.shards, 4);
        assert!(config.create && config.delete_after && config.json);
        assert_eq!(config.duration, Some(Duration::from_millis(2500)));
        assert_eq!(config.keys, KeyMode::Fixed("pk".into()));
        assert_eq!(config.seed, 9);
    }

    #[test]
    fn count_alone_means_no_time_limit() {
        let config = parse(&["put", "--count", "1000"]).unwrap();
        assert_eq!(config.count, Some(1000));
        assert_eq!(config.duration, None);
    }

    #[test]
    fn latency_is_an_alias_of_e2e() {
        let config = parse(&["latency", "--rate", "250"]).unwrap();
        assert_eq!(config.workload, Workload::E2e);
        assert_eq!(config.rate, Some(250.0));
        assert_eq!(parse(&["e2e"]).unwrap().rate, Some(RATE_DEFAULT));
        assert!(parse(&["e2e", "--rate", "0"]).is_err());
        assert!(parse(&["e2e", "--record-size", "8"]).is_err());
    }

    #[test]
    fn put_with_a_rate_is_open_loop_and_without_one_closed_loop() {
        assert_eq!(parse(&["put"]).unwrap().rate, None);
        let paced = parse(&["put", "--rate", "5000", "-c", "32"]).unwrap();
        assert_eq!(paced.rate, Some(5000.0));
        assert!(parse(&["put", "--rate", "0"]).is_err());
        assert!(parse(&["get", "--rate", "10"]).is_err());
    }

    #[test]
    fn get_drains_without_a_default_time_limit_but_with_a_backstop() {
        let config = parse(&["get", "--fill-mib", "1.5", "--record-size", "1KiB"]).unwrap();
        assert_eq!(config.fill_bytes, Some(1024 * 1024 * 3 / 2));
        assert_eq!(config.duration, Some(DRAIN_DURATION_MAX));
        assert_eq!(config.fill_batch(), 500);
        let big = parse(&["get", "--record-size", "1MiB"]).unwrap();
        assert_eq!(big.fill_batch(), 5);
        assert!(parse(&["put", "--fill-mib", "1"]).is_err());
        assert!(parse(&["get", "--count", "5"]).is_err());
    }

    #[test]
    fn channel_needs_the_servers_data_dir_and_json_sized_records() {
        let config = parse(&["channel", "--data-dir", "data", "--compression", "zstd"]).unwrap();
        assert_eq!(config.workload, Workload::Channel);
        assert_eq!(config.data_dir, Some(std::path::PathBuf::from("data")));
        assert_eq!(config.bucket, "riffle-bench");
        assert_eq!(config.compression, Compression::Zstd);
        assert!(parse(&["channel"]).is_err());
        assert!(parse(&["put", "--data-dir", "data"]).is_err());
        assert!(parse(&["channel", "--data-dir", "d", "--record-size", "16"]).is_err());
        assert!(parse(&["channel", "--data-dir", "d", "--bucket", "Lake"]).is_err());
        assert!(parse(&["channel", "--data-dir", "d", "--count", "100000001"]).is_err());
        assert!(parse(&["channel", "--data-dir", "d", "--compression", "lz4"]).is_err());
    }

    #[test]
    fn out_of_range_values_are_refused() {
        assert!(parse(&["put", "--batch", "0"]).is_err());
        assert!(parse(&["put", "--batch", "501"]).is_err());
        assert!(parse(&["put", "--record-size", "0"]).is_err());
        assert!(parse(&["put", "--record-size", "11MiB"]).is_err());
        assert!(parse(&["put", "--batch", "500", "--record-size", "1MiB"]).is_err());
        assert!(parse(&["put", "-c", "0"]).is_err());
        assert!(parse(&["put", "--stream", "bad name"]).is_err());
        assert!(parse(&["put", "--stream", ""]).is_err());
        assert!(parse(&["put", "--duration", "0s"]).is_err());
        assert!(parse(&["put", "--count", "0"]).is_err());
        assert!(parse(&["put", "--get-limit", "10001"]).is_err());
        assert!(parse(&["put", "--keys", "sometimes"]).is_err());
        assert!(parse(&["scan"]).is_err());
    }
}
