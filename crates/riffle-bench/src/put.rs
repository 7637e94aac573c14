//! Writers: closed-loop (each connection sends its next put as soon as the last one is
//! answered: measures peak throughput) and paced (puts leave on a fixed schedule whatever the
//! server does: measures latency at a given load without coordinated omission hiding stalls).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use serde::Deserialize;

use crate::body::{KeyMode, PutTemplate, XorShift};
use crate::client::{CallError, Client, Endpoint, Operation};
use crate::stats::Stats;

/// Pause after a throttle or transport failure before the next try, so a refusing or dead
/// server is not hammered in a hot loop.
const FAILURE_BACKOFF: Duration = Duration::from_millis(10);
/// A paced send this much behind its schedule counts as late. Timer wake-ups alone run up to
/// about a millisecond behind, which is noise, not a generator that cannot keep up.
const LATE_THRESHOLD: Duration = Duration::from_millis(5);

/// What to write and how.
#[derive(Debug, Clone)]
pub struct PutPlan {
    pub stream: String,
    pub record_bytes: usize,
    /// Records per request; 1 sends PutRecord, more send PutRecords.
    pub batch: usize,
    pub connections: usize,
    pub keys: KeyMode,
    pub seed: u64,
    pub timeout: Duration,
    /// Stop at this instant...
    pub deadline: Option<Instant>,
    /// ...or after this many records have been sent, whichever comes first.
    pub records_max: Option<u64>,
}

impl PutPlan {
    fn operation(&self) -> Operation {
        if self.batch > 1 {
            Operation::PutRecords
        } else {
            Operation::PutRecord
        }
    }

    fn template(&self, records: usize, rng: &mut XorShift) -> PutTemplate {
        PutTemplate::new(
            &self.stream,
            records,
            self.batch > 1,
            self.record_bytes,
            &self.keys,
            rng,
        )
    }
}

/// The full-batch template plus, in count mode, one for the shorter last batch.
struct Templates {
    full: PutTemplate,
    partial: Option<PutTemplate>,
}

impl Templates {
    fn new(plan: &PutPlan, rng: &mut XorShift) -> Self {
        Self {
            full: plan.template(plan.batch, rng),
            partial: None,
        }
    }

    fn for_records(&mut self, plan: &PutPlan, records: usize, rng: &mut XorShift) -> &PutTemplate {
        if records == self.full.records() {
            return &self.full;
        }
        if self.partial.as_ref().map(PutTemplate::records) != Some(records) {
            self.partial = Some(plan.template(records, rng));
        }
        self.partial
            .as_ref()
            .unwrap_or_else(|| unreachable!("the partial template was just built"))
    }
}

/// Runs a closed-loop put phase and returns what all connections saw plus its wall time.
pub async fn closed_loop(endpoint: &Arc<Endpoint>, plan: &PutPlan) -> (Stats, Duration) {
    let remaining = plan
        .records_max
        .map(|records| Arc::new(AtomicU64::new(records)));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(plan.connections);
    for index in 0..plan.connections {
        let client = Client::new(Arc::clone(endpoint), plan.timeout);
        let plan = plan.clone();
        let remaining = remaining.clone();
        workers.push(tokio::spawn(closed_loop_worker(
            client, plan, index, remaining,
        )));
    }
    let stats = join_all(workers).await;
    (stats, started.elapsed())
}

async fn closed_loop_worker(
    mut client: Client,
    plan: PutPlan,
    index: usize,
    remaining: Option<Arc<AtomicU64>>,
) -> Stats {
    let mut rng = XorShift::new(worker_seed(plan.seed, index));
    let mut templates = Templates::new(&plan, &mut rng);
    let mut scratch = BytesMut::new();
    let mut stats = Stats::default();
    loop {
        if plan
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            break;
        }
        let records = match &remaining {
            Some(remaining) => match claim(remaining, plan.batch as u64) {
                0 => break,
                claimed => claimed as usize,
            },
            None => plan.batch,
        };
        let template = templates.for_records(&plan, records, &mut rng);
        let body = template.render(&mut scratch, &mut rng, None);
        let sent = Instant::now();
        let result = client.call(plan.operation(), body).await;
        if account(&mut stats, template, result, sent.elapsed()) == Verdict::BackOff {
            tokio::time::sleep(FAILURE_BACKOFF).await;
        }
    }
    stats
}

/// Takes up to `wanted` records from the shared budget; 0 once it is spent.
fn claim(remaining: &AtomicU64, wanted: u64) -> u64 {
    let mut claimed = 0;
    let _ = remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
        claimed = left.min(wanted);
        Some(left - claimed)
    });
    claimed
}

/// Open-loop writer settings on top of a `PutPlan`.
#[derive(Debug, Clone)]
pub struct Pace {
    /// Records per second over all connections.
    pub records_per_s: f64,
    /// Time zero of the send stamps written into each payload.
    pub clock_base: Instant,
    /// Whether each payload starts with its send stamp (the latency workloads read it back;
    /// a plain open-loop put does not need it).
    pub stamped: bool,
}

/// What a paced phase saw.
pub struct PacedOutcome {
    pub stats: Stats,
    pub elapsed: Duration,
    pub sends_late: u64,
}

/// Sends request k of the whole run at `start + k × batch / rate`, connection k mod n, each
/// payload stamped with its send time (nanoseconds since `clock_base`) if `pace.stamped`.
///
/// Request latency is timed from the actual send, and a send more than [`LATE_THRESHOLD`]
/// behind its schedule is counted in `sends_late`: a run without late sends is free of
/// coordinated omission, one with them understates the tail.
pub async fn paced(endpoint: &Arc<Endpoint>, plan: &PutPlan, pace: &Pace) -> PacedOutcome {
    let request_interval_s = plan.batch as f64 / pace.records_per_s;
    let started = Instant::now();
    let late = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::with_capacity(plan.connections);
    for index in 0..plan.connections {
        let client = Client::new(Arc::clone(endpoint), plan.timeout);
        let schedule = Schedule {
            start: started,
            request_interval_s,
            first: index as u64,
            stride: plan.connections as u64,
        };
        workers.push(tokio::spawn(paced_worker(
            client,
            plan.clone(),
            schedule,
            pace.clone(),
            Arc::clone(&late),
        )));
    }
    let stats = join_all(workers).await;
    PacedOutcome {
        stats,
        elapsed: started.elapsed(),
        sends_late: late.load(Ordering::Relaxed),
    }
}

#[derive(Debug, Clone, Copy)]
struct Schedule {
    start: Instant,
    request_interval_s: f64,
    first: u64,
    stride: u64,
}

impl Schedule {
    fn due(&self, request: u64) -> Instant {
        self.start + Duration::from_secs_f64(request as f64 * self.request_interval_s)
    }
}

async fn paced_worker(
    mut client: Client,
    plan: PutPlan,
    schedule: Schedule,
    pace: Pace,
    late: Arc<AtomicU64>,
) -> Stats {
    let mut rng = XorShift::new(worker_seed(plan.seed, schedule.first as usize));
    let mut templates = Templates::new(&plan, &mut rng);
    let mut scratch = BytesMut::new();
    let mut stats = Stats::default();
    let mut request = schedule.first;
    loop {
        let due = schedule.due(request);
        if plan.deadline.is_some_and(|deadline| due >= deadline) {
            break;
        }
        let records = match plan.records_max {
            Some(records_max) => {
                let first_record = request.saturating_mul(plan.batch as u64);
                if first_record >= records_max {
                    break;
                }
                (records_max - first_record).min(plan.batch as u64) as usize
            }
            None => plan.batch,
        };
        let now = Instant::now();
        if now < due {
            tokio::time::sleep_until(due.into()).await;
        } else if now - due > LATE_THRESHOLD {
            late.fetch_add(1, Ordering::Relaxed);
        }
        let template = templates.for_records(&plan, records, &mut rng);
        let stamp_ns = pace.stamped.then(|| nanos_since(pace.clock_base));
        let body = template.render(&mut scratch, &mut rng, stamp_ns);
        let sent = Instant::now();
        let result = client.call(plan.operation(), body).await;
        // No back-off here: the schedule, not the answers, decides when the next put leaves.
        let _ = account(&mut stats, template, result, sent.elapsed());
        request += schedule.stride;
    }
    stats
}

pub fn nanos_since(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn worker_seed(seed: u64, index: usize) -> u64 {
    // Distinct, well-mixed seeds per connection (splitmix64's increment).
    seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

async fn join_all(workers: Vec<tokio::task::JoinHandle<Stats>>) -> Stats {
    let mut total = Stats::default();
    for worker in workers {
        match worker.await {
            Ok(stats) => total.merge(&stats),
            // A panicking worker is a bug in the generator; surface it, never hide it.
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
    total
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    BackOff,
}

#[derive(Deserialize)]
struct PutRecordOutput<'a> {
    #[serde(rename = "SequenceNumber", borrow)]
    sequence_number: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct PutRecordsOutput<'a> {
    #[serde(rename = "FailedRecordCount", default)]
    failed_record_count: u64,
    #[serde(rename = "Records", borrow, default)]
    records: Vec<PutRecordsEntry<'a>>,
}

#[derive(Deserialize)]
struct PutRecordsEntry<'a> {
    #[serde(rename = "ErrorCode", borrow)]
    error_code: Option<Cow<'a, str>>,
}

/// Books one put exchange: a 200 PutRecords still fails every entry that carries an
/// `ErrorCode`, and those entries count as failed records, never as stored ones.
pub fn account(
    stats: &mut Stats,
    template: &PutTemplate,
    result: Result<Bytes, CallError>,
    elapsed: Duration,
) -> Verdict {
    let sent_records = template.records() as u64;
    let record_bytes = template.payload_bytes() / sent_records;
    let body = match result {
        Ok(body) => body,
        Err(error) => {
            stats.requests_failed += 1;
            stats.records_failed += sent_records;
            stats.count_error(error.kind());
            return match error {
                CallError::Api { .. } if !error.is_throttle() => Verdict::Continue,
                _ => Verdict::BackOff,
            };
        }
    };
    let failed = if template.is_put_records() {
        match serde_json::from_slice::<PutRecordsOutput>(&body) {
            Ok(out) if out.records.len() as u64 == sent_records => {
                let mut failed = 0;
                for entry in &out.records {
                    if let Some(code) = &entry.error_code {
                        failed += 1;
                        stats.count_error(code);
                    }
                }
                if failed != out.failed_record_count {
                    // The entries are the ground truth; a disagreeing count is worth knowing.
                    stats.count_error("FailedRecordCountMismatch");
                }
                failed
            }
            _ => {
                stats.count_error("MalformedResponse");
                sent_records
            }
        }
    } else {
        match serde_json::from_slice::<PutRecordOutput>(&body) {
            Ok(PutRecordOutput {
                sequence_number: Some(_),
            }) => 0,
            _ => {
                stats.count_error("MalformedResponse");
                1
            }
        }
    };
    stats.requests_ok += 1;
    stats.record_latency(elapsed);
    stats.records_ok += sent_records - failed;
    stats.records_failed += failed;
    stats.payload_bytes += (sent_records - failed) * record_bytes;
    if failed > 0 {
        Verdict::BackOff
    } else {
        Verdict::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(records: usize) -> PutTemplate {
        PutTemplate::new(
            "s",
            records,
            records > 1,
            100,
            &KeyMode::Random,
            &mut XorShift::new(3),
        )
    }

    #[test]
    fn partial_put_records_failures_are_errors_not_successes() {
        let mut stats = Stats::default();
        let answer = br#"{"FailedRecordCount":2,"Records":[
            {"SequenceNumber":"1","ShardId":"shardId-000000000000"},
            {"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded"},
            {"ErrorCode":"InternalFailure","ErrorMessage":"oops"}]}"#;
        let verdict = account(
            &mut stats,
            &template(3),
            Ok(Bytes::from_static(answer)),
            Duration::from_millis(2),
        );
        assert_eq!(verdict, Verdict::BackOff);
        assert_eq!(stats.requests_ok, 1);
        assert_eq!(stats.records_ok, 1);
        assert_eq!(stats.records_failed, 2);
        assert_eq!(stats.payload_bytes, 100);
        assert_eq!(stats.errors["InternalFailure"], 1);
        assert_eq!(stats.throttles["ProvisionedThroughputExceededException"], 1);
        assert_eq!(stats.latency_us.len(), 1);
    }

    #[test]
    fn full_success_counts_every_record() {
        let mut stats = Stats::default();
        let answer =
            br#"{"FailedRecordCount":0,"Records":[{"SequenceNumber":"1"},{"SequenceNumber":"2"}]}"#;
        let verdict = account(
            &mut stats,
            &template(2),
            Ok(Bytes::from_static(answer)),
            Duration::from_millis(1),
        );
        assert_eq!(verdict, Verdict::Continue);
        assert_eq!((stats.records_ok, stats.records_failed), (2, 0));
        assert_eq!(stats.payload_bytes, 200);
        assert!(stats.errors.is_empty());
    }

    #[test]
    fn answers_that_do_not_match_the_request_fail_the_whole_batch() {
        let mut stats = Stats::default();
        let answer = br#"{"FailedRecordCount":0,"Records":[{"SequenceNumber":"1"}]}"#;
        account(
            &mut stats,
            &template(2),
            Ok(Bytes::from_static(answer)),
            Duration::from_millis(1),
        );
        assert_eq!((stats.records_ok, stats.records_failed), (0, 2));
        assert_eq!(stats.errors["MalformedResponse"], 1);

        let mut stats = Stats::default();
        account(
            &mut stats,
            &template(1),
            Ok(Bytes::from_static(b"{}")),
            Duration::from_millis(1),
        );
        assert_eq!((stats.records_ok, stats.records_failed), (0, 1));
    }

    #[test]
    fn failed_requests_count_by_type() {
        let mut stats = Stats::default();
        let throttled = account(
            &mut stats,
            &template(1),
            Err(CallError::Api {
                error_type: "LimitExceededException".into(),
                message: String::new(),
            }),
            Duration::from_millis(1),
        );
        assert_eq!(throttled, Verdict::BackOff);
        let invalid = account(
            &mut stats,
            &template(1),
            Err(CallError::Api {
                error_type: "ValidationException".into(),
                message: String::new(),
            }),
            Duration::from_millis(1),
        );
        assert_eq!(invalid, Verdict::Continue);
        account(
            &mut stats,
            &template(1),
            Err(CallError::Timeout),
            Duration::from_millis(1),
        );
        assert_eq!(stats.requests_failed, 3);
        assert_eq!(stats.records_failed, 3);
        assert_eq!(stats.requests_ok, 0);
        assert_eq!(stats.latency_us.len(), 0);
        assert_eq!(stats.throttles["LimitExceededException"], 1);
        assert_eq!(stats.errors["ValidationException"], 1);
        assert_eq!(stats.errors["timeout"], 1);
    }

    #[test]
    fn claims_split_the_budget_exactly() {
        let remaining = AtomicU64::new(1200);
        assert_eq!(claim(&remaining, 500), 500);
        assert_eq!(claim(&remaining, 500), 500);
        assert_eq!(claim(&remaining, 500), 200);
        assert_eq!(claim(&remaining, 500), 0);
    }

    #[test]
    fn schedules_interleave_connections() {
        let start = Instant::now();
        let schedule = Schedule {
            start,
            request_interval_s: 0.001,
            first: 1,
            stride: 4,
        };
        assert_eq!(schedule.due(1) - start, Duration::from_millis(1));
        assert_eq!(schedule.due(5) - start, Duration::from_millis(5));
    }
}
