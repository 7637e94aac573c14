//! Counters and latency histograms per worker, merged at the end into a `Report` that prints
//! as a table for people or as one JSON line for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::client::is_throttle_type;

/// Largest latency the histograms hold; anything slower is clamped (and is a broken run).
const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Three significant digits: 0.1 % resolution, enough to tell p99 from p99.9.
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
const BYTES_PER_MIB: f64 = 1024.0 * 1024.0;
const MICROSECONDS_PER_MILLISECOND: f64 = 1000.0;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_DIGITS)
        .unwrap_or_else(|error| panic!("constant histogram bounds are valid: {error}"))
}

/// What one worker saw. Requests count HTTP exchanges; records count Kinesis records.
#[derive(Debug, Clone)]
pub struct Stats {
    pub requests_ok: u64,
    pub requests_failed: u64,
    pub records_ok: u64,
    pub records_failed: u64,
    /// Payload (`Data`) bytes of the records counted in `records_ok`.
    pub payload_bytes: u64,
    /// Latency of requests answered with 200, in microseconds.
    pub latency_us: Histogram<u64>,
    /// Failures by error type: one per failed request plus one per failed PutRecords entry.
    pub errors: BTreeMap<String, u64>,
    /// Throttling failures, counted the same way but kept apart from real errors.
    pub throttles: BTreeMap<String, u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            requests_ok: 0,
            requests_failed: 0,
            records_ok: 0,
            records_failed: 0,
            payload_bytes: 0,
            latency_us: new_histogram(),
            errors: BTreeMap::new(),
            throttles: BTreeMap::new(),
        }
    }
}

impl Stats {
    pub fn record_latency(&mut self, elapsed: Duration) {
        record_duration(&mut self.latency_us, elapsed);
    }

    /// Counts one failure of type `error_type`, as a throttle if it is one.
    pub fn count_error(&mut self, error_type: &str) {
        let counts = if is_throttle_type(error_type) {
            &mut self.throttles
        } else {
            &mut self.errors
        };
        match counts.get_mut(error_type) {
            Some(count) => *count += 1,
            None => {
                counts.insert(error_type.to_owned(), 1);
            }
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        self.requests_ok += other.requests_ok;
        self.requests_failed += other.requests_failed;
        self.records_ok += other.records_ok;
        self.records_failed += other.records_failed;
        self.payload_bytes += other.payload_bytes;
        merge_histogram(&mut self.latency_us, &other.latency_us);
        merge_counts(&mut self.errors, &other.errors);
        merge_counts(&mut self.throttles, &other.throttles);
    }
}

pub fn record_duration(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros.max(1));
}

pub fn merge_histogram(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    // Both sides come from `new_histogram`, so their ranges always match.
    into.add(from)
        .unwrap_or_else(|error| panic!("histograms share bounds: {error}"));
}

pub fn merge_counts(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (kind, count) in from {
        *into.entry(kind.clone()).or_insert(0) += count;
    }
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl LatencySummary {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self {
                count: 0,
                mean: 0.0,
                p50: 0,
                p90: 0,
                p99: 0,
                p999: 0,
                max: 0,
            };
        }
        Self {
            count: histogram.len(),
            mean: round3(histogram.mean()),
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        }
    }

    fn table_cell(&self) -> String {
        if self.count == 0 {
            return "no samples".to_owned();
        }
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (ms, {} samples)",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.p999),
            ms(self.max),
            self.count
        )
    }
}

fn ms(micros: u64) -> String {
    format!("{:.3}", micros as f64 / MICROSECONDS_PER_MILLISECOND)
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// The put phase that fills a stream before a `get` run.
#[derive(Debug, Clone, Serialize)]
pub struct FillSummary {
    pub records: u64,
    pub records_failed: u64,
    pub payload_bytes: u64,
    pub seconds: f64,
    pub mib_per_s: f64,
}

impl FillSummary {
    pub fn new(stats: &Stats, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        Self {
            records: stats.records_ok,
            records_failed: stats.records_failed,
            payload_bytes: stats.payload_bytes,
            seconds: round3(elapsed.as_secs_f64()),
            mib_per_s: round3(stats.payload_bytes as f64 / BYTES_PER_MIB / seconds),
        }
    }
}

/// What the latency (`e2e`) workload adds to a report.
#[derive(Debug, Clone, Serialize)]
pub struct VisibilitySummary {
    /// Records per second the puts were scheduled at.
    pub target_rate: f64,
    /// Time from sending a put to the record appearing in a GetRecords answer.
    pub visible_latency_us: LatencySummary,
    pub records_seen: u64,
    /// Acknowledged records that no poller saw before the drain timeout.
    pub records_missing: u64,
    /// Puts sent more than the lateness threshold after their scheduled time: the generator
    /// could not hold the rate, so the achieved rate is lower than the target.
    pub sends_late: u64,
    pub poll_requests: u64,
}

/// What an open-loop put (`put --rate`) adds to a report.
#[derive(Debug, Clone, Serialize)]
pub struct OpenLoopSummary {
    /// Records per second the puts were scheduled at.
    pub target_rate: f64,
    /// Puts sent more than the lateness threshold after their scheduled time (a busy
    /// connection or a generator that cannot keep up): with any, the tail is understated.
    pub sends_late: u64,
}

/// Everything a run measured. Field names are the JSON keys scripts read.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub workload: &'static str,
    pub endpoint: String,
    pub stream: String,
    pub shards: usize,
    pub record_bytes: u64,
    pub batch: usize,
    pub concurrency: usize,
    pub seconds: f64,
    pub requests: u64,
    pub requests_failed: u64,
    pub records: u64,
    pub records_failed: u64,
    pub payload_bytes: u64,
    pub requests_per_s: f64,
    pub records_per_s: f64,
    pub mib_per_s: f64,
    pub latency_us: LatencySummary,
    pub errors: BTreeMap<String, u64>,
    pub throttles: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<VisibilitySummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fill: Option<FillSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_loop: Option<OpenLoopSummary>,
}

/// The parts of a report that describe the run rather than its measurements.
#[derive(Debug, Clone)]
pub struct RunShape {
    pub workload: &'static str,
    pub endpoint: String,
    pub stream: String,
    pub shards: usize,
    pub record_bytes: u64,
    pub batch: usize,
    pub concurrency: usize,
}

impl Report {
    pub fn new(shape: RunShape, stats: &Stats, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        Self {
            workload: shape.workload,
            endpoint: shape.endpoint,
            stream: shape.stream,
            shards: shape.shards,
            record_bytes: shape.record_bytes,
            batch: shape.batch,
            concurrency: shape.concurrency,
            seconds: round3(elapsed.as_secs_f64()),
            requests: stats.requests_ok,
            requests_failed: stats.requests_failed,
            records: stats.records_ok,
            records_failed: stats.records_failed,
            payload_bytes: stats.payload_bytes,
            requests_per_s: round3(stats.requests_ok as f64 / seconds),
            records_per_s: round3(stats.records_ok as f64 / seconds),
            mib_per_s: round3(stats.payload_bytes as f64 / BYTES_PER_MIB / seconds),
            latency_us: LatencySummary::of(&stats.latency_us),
            errors: stats.errors.clone(),
            throttles: stats.throttles.clone(),
            visibility: None,
            fill: None,
            open_loop: None,
        }
    }

    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|error| panic!("a report always serialises: {error}"))
    }

    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let mut row = |label: &str, value: String| {
            let _ = writeln!(out, "  {label:<20} {value}");
        };
        let per_request = if self.workload == "get" {
            format!("GetRecords limit {}", self.batch)
        } else if self.batch == 1 {
            "PutRecord".to_owned()
        } else {
            format!("PutRecords of {}", self.batch)
        };
        row(
            "workload",
            format!(
                "{} ({} B records, {per_request}, {})",
                self.workload,
                self.record_bytes,
                plural(self.concurrency, "connection")
            ),
        );
        row(
            "target",
            format!(
                "{} stream {} ({})",
                self.endpoint,
                self.stream,
                plural(self.shards, "shard")
            ),
        );
        if let Some(fill) = &self.fill {
            row(
                "fill",
                format!(
                    "{} records, {:.1} MiB in {:.2} s ({:.2} MiB/s, {} failed)",
                    fill.records,
                    fill.payload_bytes as f64 / BYTES_PER_MIB,
                    fill.seconds,
                    fill.mib_per_s,
                    fill.records_failed
                ),
            );
        }
        row("duration", format!("{:.2} s", self.seconds));
        row(
            "requests/s",
            format!(
                "{:.1}  ({} ok, {} failed)",
                self.requests_per_s, self.requests, self.requests_failed
            ),
        );
        row(
            "records/s",
            format!(
                "{:.1}  ({} ok, {} failed)",
                self.records_per_s, self.records, self.records_failed
            ),
        );
        row("MiB/s (payload)", format!("{:.2}", self.mib_per_s));
        row("request latency", self.latency_us.table_cell());
        if let Some(visibility) = &self.visibility {
            // e2e polls with GetRecords; fanout is pushed records by SubscribeToShard streams.
            let (latency, polls) = if self.workload == "fanout" {
                ("put→push", "subscriptions")
            } else {
                ("put→visible", "polls")
            };
            row(latency, visibility.visible_latency_us.table_cell());
            row(
                "visibility",
                format!(
                    "{} seen, {} missing, target {} records/s, {} late sends, {} {polls}",
                    visibility.records_seen,
                    visibility.records_missing,
                    visibility.target_rate,
                    visibility.sends_late,
                    visibility.poll_requests
                ),
            );
        }
        if let Some(open_loop) = &self.open_loop {
            row(
                "open loop",
                format!(
                    "target {} records/s, {} late sends",
                    open_loop.target_rate, open_loop.sends_late
                ),
            );
        }
        row("errors", counts_cell(&self.errors));
        row("throttles", counts_cell(&self.throttles));
        out
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

fn counts_cell(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "none".to_owned();
    }
    counts
        .iter()
        .map(|(kind, count)| format!("{kind} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> RunShape {
        RunShape {
            workload: "put",
            endpoint: "http://127.0.0.1:4567".into(),
            stream: "s".into(),
            shards: 4,
            record_bytes: 100,
            batch: 1,
            concurrency: 8,
        }
    }

    #[test]
    fn percentiles_come_from_the_recorded_latencies() {
        let mut stats = Stats::default();
        // 1..=1000 ms: the p-th percentile is p * 10 ms, within the histogram's 0.1 %.
        for millis in 1..=1000u64 {
            stats.record_latency(Duration::from_millis(millis));
        }
        let summary = LatencySummary::of(&stats.latency_us);
        assert_eq!(summary.count, 1000);
        let close = |actual: u64, expected: u64| {
            let error = actual.abs_diff(expected) as f64 / expected as f64;
            assert!(error <= 0.001, "{actual} is not within 0.1 % of {expected}");
        };
        close(summary.p50, 500_000);
        close(summary.p90, 900_000);
        close(summary.p99, 990_000);
        close(summary.p999, 999_000);
        close(summary.max, 1_000_000);
        assert!((summary.mean - 500_500.0).abs() / 500_500.0 < 0.001);
    }

    #[test]
    fn a_slow_tail_shows_in_the_high_percentiles_only() {
        let mut stats = Stats::default();
        for _ in 0..990 {
            stats.record_latency(Duration::from_micros(100));
        }
        for _ in 0..10 {
            stats.record_latency(Duration::from_millis(50));
        }
        let summary = LatencySummary::of(&stats.latency_us);
        assert_eq!(summary.p50, 100);
        assert_eq!(summary.p90, 100);
        assert!(summary.p999 >= 49_950, "{}", summary.p999);
        assert!(summary.max >= 49_950);
    }

    #[test]
    fn empty_histograms_report_zeroes() {
        let summary = LatencySummary::of(&new_histogram());
        assert_eq!(summary.count, 0);
        assert_eq!(summary.max, 0);
        assert_eq!(summary.table_cell(), "no samples");
    }

    #[test]
    fn merging_adds_counts_and_histograms_and_separates_throttles() {
        let mut a = Stats {
            requests_ok: 3,
            records_ok: 30,
            payload_bytes: 3000,
            ..Stats::default()
        };
        a.record_latency(Duration::from_millis(1));
        a.count_error("ValidationException");
        a.count_error("ProvisionedThroughputExceededException");
        let mut b = Stats {
            requests_ok: 1,
            requests_failed: 2,
            records_failed: 20,
            ..Stats::default()
        };
        b.record_latency(Duration::from_millis(2));
        b.count_error("ValidationException");
        b.count_error("transport");
        a.merge(&b);
        assert_eq!(a.requests_ok, 4);
        assert_eq!(a.requests_failed, 2);
        assert_eq!(a.records_failed, 20);
        assert_eq!(a.latency_us.len(), 2);
        assert_eq!(a.errors["ValidationException"], 2);
        assert_eq!(a.errors["transport"], 1);
        assert_eq!(a.throttles["ProvisionedThroughputExceededException"], 1);
        assert!(!a
            .errors
            .contains_key("ProvisionedThroughputExceededException"));
    }

    #[test]
    fn report_rates_and_json_line() {
        let mut stats = Stats {
            requests_ok: 100,
            records_ok: 50_000,
            payload_bytes: 5 * 1024 * 1024,
            ..Stats::default()
        };
        stats.record_latency(Duration::from_micros(1500));
        stats.count_error("ProvisionedThroughputExceededException");
        let report = Report::new(shape(), &stats, Duration::from_secs(2));
        assert_eq!(report.requests_per_s, 50.0);
        assert_eq!(report.records_per_s, 25_000.0);
        assert_eq!(report.mib_per_s, 2.5);

        let line = report.to_json_line();
        assert!(!line.contains('\n'));
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["workload"], "put");
        assert_eq!(json["records"], 50_000);
        assert_eq!(json["latency_us"]["p50"], report.latency_us.p50);
        assert_eq!(
            json["throttles"]["ProvisionedThroughputExceededException"],
            1
        );
        assert!(json.get("visibility").is_none());

        let table = report.to_table();
        assert!(table.contains("25000.0"), "{table}");
        assert!(
            table.contains("ProvisionedThroughputExceededException 1"),
            "{table}"
        );
        assert!(table.contains("errors               none"), "{table}");
    }
}
