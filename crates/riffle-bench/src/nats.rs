//! A NATS JetStream publisher shaped like `riffle bench put`, so that scripts/bench-peers.sh
//! can set JetStream's figures beside riffle's (feature `nats`, example `riffle-bench-nats`).
//!
//! Debian ships `nats-server` but not the `nats` CLI (whose `nats bench` would do this), so the
//! publisher is written on async-nats, the NATS maintainers' own Rust client.
//!
//! The shapes map like this:
//! - a Kinesis stream of N shards is N JetStream streams (each one ordered log, as a shard is),
//!   file storage, one subject each; connection `i` publishes to stream `i mod N`;
//! - a PutRecords of B records is a *window* of B publishes sent back to back on one
//!   connection, then all B acknowledgements awaited; a PutRecord is a window of 1. One window
//!   is one "request": its latency runs from the first publish to the last acknowledgement.
//!
//! JetStream acknowledges a publish once the message is in its stream; whether that waited
//! for an fsync depends on the server (`sync_interval`, from nats-server 2.10 on; without it,
//! and in 2.9, the data is synced in the background, by default every 2 minutes).

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream::StorageType};
use bytes::Bytes;

use crate::body::XorShift;
use crate::stats::{Report, RunShape, Stats};
use crate::units;

const CONNECTIONS_MAX: usize = 1024;
const WINDOW_MAX: usize = 10_000;
const STREAMS_MAX: usize = 64;
const RECORD_BYTES_MAX: u64 = 1024 * 1024;
/// Pause after a failed window, so a refusing server is not hammered in a hot loop.
const FAILURE_BACKOFF: Duration = Duration::from_millis(10);

/// `riffle-bench-nats`: closed-loop JetStream publishing; the report has the fields of
/// `riffle bench put --json`.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "riffle-bench-nats", version)]
pub struct NatsArgs {
    /// The NATS server.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub url: String,
    /// Name prefix of the JetStream streams (created, and deleted after the run).
    #[arg(long, default_value = "riffle-bench")]
    pub stream: String,
    /// JetStream streams, like the shards of a Kinesis stream.
    #[arg(long, default_value_t = 4)]
    pub streams: usize,
    /// Payload bytes per message (100, 1KiB...).
    #[arg(long, default_value = "100", value_parser = units::parse_bytes)]
    pub record_size: u64,
    /// Publishes per window (sent back to back, then every ack awaited): like --batch.
    #[arg(long, default_value_t = 1)]
    pub window: usize,
    /// Connections (one publisher each).
    #[arg(long, short = 'c', default_value_t = 1)]
    pub concurrency: usize,
    /// How long to publish (10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = units::parse_duration)]
    pub duration: Duration,
    /// Keep messages in memory instead of files.
    #[arg(long)]
    pub memory: bool,
    /// Print the report as one JSON line on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// Publishes for `--duration` and prints the report.
pub async fn run(args: NatsArgs) -> Result<(), String> {
    if !(1..=CONNECTIONS_MAX).contains(&args.concurrency) {
        return Err(format!("--concurrency must be 1 to {CONNECTIONS_MAX}"));
    }
    if !(1..=WINDOW_MAX).contains(&args.window) {
        return Err(format!("--window must be 1 to {WINDOW_MAX}"));
    }
    if !(1..=STREAMS_MAX).contains(&args.streams) {
        return Err(format!("--streams must be 1 to {STREAMS_MAX}"));
    }
    if !(1..=RECORD_BYTES_MAX).contains(&args.record_size) {
        return Err("--record-size must be 1 B to 1 MiB".into());
    }
    let admin = async_nats::connect(args.url.as_str())
        .await
        .map_err(|error| format!("cannot connect to {}: {error}", args.url))?;
    let admin = jetstream::new(admin);
    let names: Vec<String> = (0..args.streams)
        .map(|index| format!("{}-{index}", args.stream))
        .collect();
    for name in &names {
        admin
            .get_or_create_stream(jetstream::stream::Config {
                name: name.clone(),
                subjects: vec![format!("{name}.records")],
                storage: if args.memory {
                    StorageType::Memory
                } else {
                    StorageType::File
                },
                ..Default::default()
            })
            .await
            .map_err(|error| format!("cannot create stream {name}: {error}"))?;
    }
    eprintln!(
        "riffle-bench-nats: windows of {} × {} B on {} connection(s) to {} stream(s), {:.1} s",
        args.window,
        args.record_size,
        args.concurrency,
        args.streams,
        args.duration.as_secs_f64()
    );
    let outcome = publish(&args, &names).await;
    for name in &names {
        if let Err(error) = admin.delete_stream(name).await {
            eprintln!("riffle-bench-nats: cannot delete stream {name}: {error}");
        }
    }
    let (stats, elapsed) = outcome?;
    let shape = RunShape {
        workload: "nats-put",
        endpoint: args.url.clone(),
        stream: args.stream.clone(),
        shards: args.streams,
        record_bytes: args.record_size,
        batch: args.window,
        concurrency: args.concurrency,
    };
    let report = Report::new(shape, &stats, elapsed);
    if args.json {
        eprint!("{}", report.to_table());
        println!("{}", report.to_json_line());
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}

async fn publish(args: &NatsArgs, streams: &[String]) -> Result<(Stats, Duration), String> {
    let mut contexts = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        let client = async_nats::connect(args.url.as_str())
            .await
            .map_err(|error| format!("cannot connect to {}: {error}", args.url))?;
        contexts.push(jetstream::new(client));
    }
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut workers = Vec::with_capacity(contexts.len());
    for (index, context) in contexts.into_iter().enumerate() {
        let subject = format!("{}.records", streams[index % streams.len()]);
        let mut payload = vec![0u8; args.record_size as usize];
        XorShift::new(index as u64 + 1).fill(&mut payload);
        workers.push(tokio::spawn(publisher(
            context,
            subject,
            Bytes::from(payload),
            args.window,
            deadline,
        )));
    }
    let mut total = Stats::default();
    for worker in workers {
        match worker.await {
            Ok(stats) => total.merge(&stats),
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
    Ok((total, started.elapsed()))
}

async fn publisher(
    context: jetstream::Context,
    subject: String,
    payload: Bytes,
    window: usize,
    deadline: Instant,
) -> Stats {
    let mut stats = Stats::default();
    let mut pending = Vec::with_capacity(window);
    while Instant::now() < deadline {
        let sent = Instant::now();
        let mut failed = 0u64;
        for _ in 0..window {
            match context.publish(subject.clone(), payload.clone()).await {
                Ok(ack) => pending.push(ack),
                Err(error) => {
                    failed += 1;
                    stats.count_error(&error.kind().to_string());
                }
            }
        }
        for ack in pending.drain(..) {
            if let Err(error) = ack.await {
                failed += 1;
                stats.count_error(&error.kind().to_string());
            }
        }
        let stored = window as u64 - failed;
        stats.records_ok += stored;
        stats.records_failed += failed;
        stats.payload_bytes += stored * payload.len() as u64;
        if failed == 0 {
            stats.requests_ok += 1;
            stats.record_latency(sent.elapsed());
        } else {
            stats.requests_failed += 1;
            tokio::time::sleep(FAILURE_BACKOFF).await;
        }
    }
    stats
}
