//! Readers: GetRecords loops over shards, either draining a stream from TRIM_HORIZON to its
//! tip (throughput) or tailing it from LATEST and timing when stamped records show up
//! (put→visible latency).

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use serde::Deserialize;

use crate::body::{base64_decoded_len, decode_stamp, json_string};
use crate::client::{Client, Endpoint, Operation};
use crate::put::nanos_since;
use crate::stats::{merge_histogram, new_histogram, record_duration, Stats};
use crate::stream::{shard_iterator, IteratorType};

/// Pause after a throttle or failure before the same shard is asked again.
const FAILURE_BACKOFF: Duration = Duration::from_millis(10);
/// Consecutive non-throttle failures on one shard after which it is given up.
const SHARD_FAILURES_MAX: u32 = 5;

/// What every reader shares.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    pub stream: String,
    /// GetRecords `Limit`.
    pub limit: u32,
    pub timeout: Duration,
    /// Pause after a round over all shards that returned nothing (tail mode).
    pub idle_pause: Duration,
    pub deadline: Instant,
}

/// One shard's reading position.
#[derive(Debug, Clone)]
pub struct Cursor {
    pub shard_id: String,
    /// `None` until fetched; drains start at TRIM_HORIZON.
    pub iterator: Option<String>,
    done: bool,
    failures: u32,
}

impl Cursor {
    pub fn new(shard_id: String, iterator: Option<String>) -> Self {
        Self {
            shard_id,
            iterator,
            done: false,
            failures: 0,
        }
    }
}

/// When a reader stops.
#[derive(Debug, Clone)]
enum Mode {
    /// At each shard's tip (an empty answer with nothing behind it), or at the deadline.
    Drain,
    /// When the flag is raised, or at the deadline.
    Tail { stop: Arc<AtomicBool> },
}

/// Put→visible latency as seen by one poller.
pub struct Visibility {
    pub(crate) clock_base: Instant,
    pub latency_us: Histogram<u64>,
    /// Stamped records seen by all pollers together, so the writer side knows when all are in.
    seen: Arc<AtomicU64>,
}

impl Visibility {
    pub fn new(clock_base: Instant, seen: Arc<AtomicU64>) -> Self {
        Self {
            clock_base,
            latency_us: new_histogram(),
            seen,
        }
    }

    pub(crate) fn observe(&mut self, data_base64: &str, now_ns: u64) {
        if let Some(stamp_ns) = decode_stamp(data_base64) {
            let latency = Duration::from_nanos(now_ns.saturating_sub(stamp_ns));
            record_duration(&mut self.latency_us, latency);
            self.seen.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Reads every shard from TRIM_HORIZON to its tip with `connections` readers.
pub async fn drain(
    endpoint: &Arc<Endpoint>,
    plan: &ReadPlan,
    shards: &[String],
    connections: usize,
) -> (Stats, Duration) {
    let cursors = shards
        .iter()
        .map(|shard| Cursor::new(shard.clone(), None))
        .collect();
    let started = Instant::now();
    let (stats, _) = run_readers(endpoint, plan, cursors, connections, Mode::Drain, None).await;
    (stats, started.elapsed())
}

/// Polls the given cursors until `stop` is raised, timing stamped records.
pub async fn tail(
    endpoint: &Arc<Endpoint>,
    plan: &ReadPlan,
    cursors: Vec<Cursor>,
    connections: usize,
    stop: Arc<AtomicBool>,
    visibility: impl Fn() -> Visibility + Sync,
) -> (Stats, Histogram<u64>) {
    let (stats, trackers) = run_readers(
        endpoint,
        plan,
        cursors,
        connections,
        Mode::Tail { stop },
        Some(&visibility),
    )
    .await;
    let mut latency_us = new_histogram();
    for tracker in trackers.iter().flatten() {
        merge_histogram(&mut latency_us, &tracker.latency_us);
    }
    (stats, latency_us)
}

async fn run_readers(
    endpoint: &Arc<Endpoint>,
    plan: &ReadPlan,
    cursors: Vec<Cursor>,
    connections: usize,
    mode: Mode,
    visibility: Option<&(dyn Fn() -> Visibility + Sync)>,
) -> (Stats, Vec<Option<Visibility>>) {
    let readers = connections.clamp(1, cursors.len().max(1));
    let mut assigned: Vec<Vec<Cursor>> = vec![Vec::new(); readers];
    for (index, cursor) in cursors.into_iter().enumerate() {
        assigned[index % readers].push(cursor);
    }
    let mut tasks = Vec::with_capacity(readers);
    for cursors in assigned {
        let client = Client::new(Arc::clone(endpoint), plan.timeout);
        tasks.push(tokio::spawn(reader(
            client,
            plan.clone(),
            cursors,
            mode.clone(),
            visibility.map(|make| make()),
        )));
    }
    let mut total = Stats::default();
    let mut trackers = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok((stats, tracker)) => {
                total.merge(&stats);
                trackers.push(tracker);
            }
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
    (total, trackers)
}

#[derive(Deserialize)]
struct GetRecordsOutput<'a> {
    #[serde(rename = "Records", borrow, default)]
    records: Vec<RecordData<'a>>,
    #[serde(rename = "NextShardIterator")]
    next_shard_iterator: Option<String>,
    #[serde(rename = "MillisBehindLatest")]
    millis_behind_latest: Option<u64>,
}

#[derive(Deserialize)]
struct RecordData<'a> {
    #[serde(rename = "Data", borrow)]
    data: Cow<'a, str>,
}

pub fn get_records_body(iterator: &str, limit: u32) -> Bytes {
    Bytes::from(format!(
        "{{\"ShardIterator\":{},\"Limit\":{limit}}}",
        json_string(iterator)
    ))
}

async fn reader(
    mut client: Client,
    plan: ReadPlan,
    mut cursors: Vec<Cursor>,
    mode: Mode,
    mut visibility: Option<Visibility>,
) -> (Stats, Option<Visibility>) {
    let mut stats = Stats::default();
    loop {
        let stopped = match &mode {
            Mode::Drain => false,
            Mode::Tail { stop } => stop.load(Ordering::Relaxed),
        };
        if stopped || Instant::now() >= plan.deadline || cursors.iter().all(|c| c.done) {
            break;
        }
        let mut records_this_round = 0;
        for cursor in cursors.iter_mut().filter(|cursor| !cursor.done) {
            if Instant::now() >= plan.deadline {
                break;
            }
            records_this_round += poll_once(
                &mut client,
                &plan,
                cursor,
                &mode,
                &mut stats,
                &mut visibility,
            )
            .await;
        }
        if records_this_round == 0 {
            if plan.idle_pause.is_zero() {
                // Tight polling, but let the runtime schedule the other tasks on this thread.
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(plan.idle_pause).await;
            }
        }
    }
    (stats, visibility)
}

/// One GetRecords (or GetShardIterator) on one shard; returns the records it read.
async fn poll_once(
    client: &mut Client,
    plan: &ReadPlan,
    cursor: &mut Cursor,
    mode: &Mode,
    stats: &mut Stats,
    visibility: &mut Option<Visibility>,
) -> u64 {
    let iterator = match &cursor.iterator {
        Some(iterator) => iterator.clone(),
        None => {
            match shard_iterator(
                client,
                &plan.stream,
                &cursor.shard_id,
                IteratorType::TrimHorizon,
            )
            .await
            {
                Ok(iterator) => {
                    cursor.iterator = Some(iterator);
                    cursor.failures = 0;
                }
                Err(error) => {
                    stats.count_error(error.kind());
                    note_failure(cursor, error.is_throttle(), stats).await;
                }
            }
            return 0;
        }
    };
    let sent = Instant::now();
    let result = client
        .call(
            Operation::GetRecords,
            get_records_body(&iterator, plan.limit),
        )
        .await;
    let elapsed = sent.elapsed();
    let body = match result {
        Ok(body) => body,
        Err(error) => {
            stats.requests_failed += 1;
            stats.count_error(error.kind());
            note_failure(cursor, error.is_throttle(), stats).await;
            return 0;
        }
    };
    let out: GetRecordsOutput = match serde_json::from_slice(&body) {
        Ok(out) => out,
        Err(_) => {
            stats.requests_failed += 1;
            stats.count_error("MalformedResponse");
            note_failure(cursor, false, stats).await;
            return 0;
        }
    };
    stats.requests_ok += 1;
    stats.record_latency(elapsed);
    cursor.failures = 0;
    let records = out.records.len() as u64;
    stats.records_ok += records;
    let now_ns = visibility
        .as_ref()
        .map(|tracker| nanos_since(tracker.clock_base));
    for record in &out.records {
        stats.payload_bytes += base64_decoded_len(&record.data);
        if let (Some(tracker), Some(now_ns)) = (visibility.as_mut(), now_ns) {
            tracker.observe(&record.data, now_ns);
        }
    }
    let at_tip = records == 0 && out.millis_behind_latest.unwrap_or(0) == 0;
    match out.next_shard_iterator {
        // A closed shard read to its end: nothing more will ever come.
        None => cursor.done = true,
        Some(next) => {
            cursor.iterator = Some(next);
            if matches!(mode, Mode::Drain) && at_tip {
                cursor.done = true;
            }
        }
    }
    records
}

async fn note_failure(cursor: &mut Cursor, throttled: bool, stats: &mut Stats) {
    if !throttled {
        cursor.failures += 1;
        if cursor.failures >= SHARD_FAILURES_MAX {
            cursor.done = true;
            stats.count_error("ShardAbandoned");
        }
    }
    tokio::time::sleep(FAILURE_BACKOFF).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{KeyMode, PutTemplate, XorShift};
    use bytes::BytesMut;

    #[test]
    fn get_records_body_carries_iterator_and_limit() {
        let body = get_records_body("AAAA/+==", 10_000);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["ShardIterator"], "AAAA/+==");
        assert_eq!(json["Limit"], 10_000);
    }

    #[test]
    fn visibility_times_stamped_records_only() {
        let base = Instant::now();
        let seen = Arc::new(AtomicU64::new(0));
        let mut tracker = Visibility::new(base, Arc::clone(&seen));
        let mut rng = XorShift::new(5);
        let template = PutTemplate::new("s", 1, false, 32, &KeyMode::Random, &mut rng);
        let body = template.render(&mut BytesMut::new(), &mut rng, Some(1_000_000));
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        tracker.observe(json["Data"].as_str().unwrap(), 4_000_000);
        tracker.observe("bm90IG91cnMgYXQgYWxs", 4_000_000);
        assert_eq!(seen.load(Ordering::Relaxed), 1);
        assert_eq!(tracker.latency_us.len(), 1);
        assert!(tracker
            .latency_us
            .equivalent(tracker.latency_us.max(), 3000));
    }

    #[test]
    fn get_records_answers_parse_with_escapes_and_missing_fields() {
        let answer = br#"{"Records":[{"Data":"AAEC","SequenceNumber":"1","PartitionKey":"a\/b"}],
            "NextShardIterator":"it\/1","MillisBehindLatest":0}"#;
        let out: GetRecordsOutput = serde_json::from_slice(answer).unwrap();
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.next_shard_iterator.as_deref(), Some("it/1"));
        assert_eq!(base64_decoded_len(&out.records[0].data), 3);
        let closed: GetRecordsOutput = serde_json::from_slice(br#"{"Records":[]}"#).unwrap();
        assert!(closed.next_shard_iterator.is_none());
    }
}
