//! Metrics: Kinesis's CloudWatch stream metrics, counted as they happen and rendered in the
//! Prometheus text exposition format (0.0.4), and enhanced (shard-level) monitoring.
//!
//! **What is counted, where.** Every [`Stream`] holds a [`StreamMetrics`] and every [`Shard`]
//! an `Arc<`[`ShardMetrics`]`>` (shared with the closed copy a reshard makes of a parent). They
//! are plain `AtomicU64`s updated with `Relaxed` adds, once per request or per written frame:
//!
//! | where | what |
//! |---|---|
//! | `data::put_records`, per frame once acknowledged | IncomingBytes, IncomingRecords (stream and shard) |
//! | `data::put_records`, per refused shard group | WriteProvisionedThroughputExceeded (records; stream and shard) |
//! | `service::put_record` / `put_records`, per call | PutRecord.*, PutRecords.* |
//! | `service::get_records`, per call | GetRecords.*, shard OutgoingBytes/Records, IteratorAgeMilliseconds |
//! | `throttle::admit_read`, per refusal | ReadProvisionedThroughputExceeded (stream and shard) |
//! | `service::subscribe_to_shard`, per call | SubscribeToShard.Success / RateExceeded |
//! | `subscribe::feed`, per event sent | SubscribeToShardEvent.*, shard OutgoingBytes/Records |
//!
//! Nothing on the data path takes a lock for metrics: a request pays a handful of uncontended
//! atomic adds on its stream's counters (a few more per shard it wrote to). Latencies go into
//! fixed-bucket histograms of atomics ([`Histogram`]). Counters start at zero when the server
//! starts, and when a stream is created (a deleted and re-created stream starts again, which
//! Prometheus reads as a counter reset). Shard-level counters count always; they are only
//! *reported* for the metrics a stream's enhanced monitoring enables.
//!
//! **Names.** CloudWatch names contain dots, Prometheus names cannot: `kinesis_` + the
//! CloudWatch name with `.` replaced by `_` (`PutRecords.Latency` → `kinesis_PutRecords_Latency`),
//! labelled `{account, stream}`. Shard-level metrics, which CloudWatch keeps under the same names
//! with a ShardId dimension, are `kinesis_shard_` + the name with `{account, stream, shard}`, so
//! that summing a stream-level family never double-counts its shards. Units are CloudWatch's:
//! bytes, counts, milliseconds (latency buckets are in milliseconds, not Prometheus's usual
//! seconds, to keep the CloudWatch meaning). `Success` counters count successful calls (CloudWatch
//! reports them as averages of 0/1; here the rate is `Success / Latency_count`), and ages are
//! gauges holding the latest observation (stream level: the largest over its open shards).
//!
//! [`render`] builds one scrape's text from a snapshot of the node's streams; it runs on the
//! metrics listener's request, never on the API's.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use riffle_proto::ops::{EnhancedMonitoringInput, EnhancedMonitoringOutput, MetricsName};

use crate::control::{check_active, resolve_stream, Caller};
use crate::node::{Node, Shard, Stream};
use crate::record::NewRecord;
use crate::Error;

/// The Content-Type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, amount: u64) {
        if amount > 0 {
            self.0.fetch_add(amount, Ordering::Relaxed);
        }
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The latest value of something (an age).
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the latency buckets, in microseconds (inclusive, as Prometheus's `le`).
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// [`LATENCY_BUCKETS_US`] as the `le` labels, in milliseconds.
const LATENCY_BUCKET_LABELS: [&str; 14] = [
    "0.5", "1", "2.5", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000",
];

/// A latency histogram: one atomic per bucket plus the sum, so an observation is two adds.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket, not cumulative; the last one is above every bound (`+Inf`).
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BUCKETS_US.partition_point(|bound| *bound < us);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Observations so far (the sum of the buckets, so it always equals the `+Inf` bucket).
    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .sum()
    }
}

/// A stream's counters: CloudWatch's stream-level metrics.
#[derive(Debug, Default)]
pub struct StreamMetrics {
    pub incoming_bytes: Counter,
    pub incoming_records: Counter,
    pub put_record_bytes: Counter,
    pub put_record_latency: Histogram,
    pub put_record_success: Counter,
    pub put_records_bytes: Counter,
    pub put_records_latency: Histogram,
    pub put_records_success: Counter,
    pub put_records_total_records: Counter,
    pub put_records_successful_records: Counter,
    pub put_records_failed_records: Counter,
    pub put_records_throttled_records: Counter,
    pub get_records_bytes: Counter,
    pub get_records_latency: Histogram,
    pub get_records_records: Counter,
    pub get_records_success: Counter,
    pub write_throttled: Counter,
    pub read_throttled: Counter,
    pub subscribe_rate_exceeded: Counter,
    pub subscribe_success: Counter,
    pub event_bytes: Counter,
    pub event_records: Counter,
    pub event_success: Counter,
}

/// A shard's counters: CloudWatch's shard-level (enhanced monitoring) metrics, plus the latest
/// ages its stream-level gauges take the maximum of.
#[derive(Debug, Default)]
pub struct ShardMetrics {
    pub incoming_bytes: Counter,
    pub incoming_records: Counter,
    pub outgoing_bytes: Counter,
    pub outgoing_records: Counter,
    pub write_throttled: Counter,
    pub read_throttled: Counter,
    /// Age of the last record of the latest GetRecords call.
    pub iterator_age_ms: Gauge,
    /// MillisBehindLatest of the latest SubscribeToShard event.
    pub event_millis_behind_ms: Gauge,
}

/// Is `error` a throughput refusal (ProvisionedThroughputExceededException)?
fn throttled(error: &Error) -> bool {
    error.kind == riffle_proto::ErrorKind::ProvisionedThroughputExceededException
}

/// Bytes of records as Kinesis counts them: data plus partition key.
pub fn record_bytes(records: &[NewRecord]) -> u64 {
    records
        .iter()
        .map(|record| (record.data.len() + record.partition_key.len()) as u64)
        .sum()
}

/// A frame of `records` records and `bytes` bytes was acknowledged on `shard`.
pub fn written(stream: &Stream, shard: &Shard, bytes: u64, records: u64) {
    stream.metrics.incoming_bytes.add(bytes);
    stream.metrics.incoming_records.add(records);
    shard.metrics.incoming_bytes.add(bytes);
    shard.metrics.incoming_records.add(records);
}

/// `records` records of a put were refused by `shard`'s write limits.
pub fn write_throttled(stream: &Stream, shard: &Shard, records: usize) {
    stream.metrics.write_throttled.add(records as u64);
    shard.metrics.write_throttled.add(records as u64);
}

/// A GetRecords call on `shard` was refused by its read limits.
pub fn read_throttled(stream: &Stream, shard: &Shard) {
    stream.metrics.read_throttled.inc();
    shard.metrics.read_throttled.inc();
}

impl StreamMetrics {
    /// A PutRecord that stored `bytes_stored` bytes ended with `outcome` after `elapsed`. Only
    /// successful calls are timed; a throttled one is counted by [`write_throttled`].
    pub fn put_record<T>(&self, bytes_stored: u64, outcome: &Result<T, Error>, elapsed: Duration) {
        if outcome.is_ok() {
            self.put_record_bytes.add(bytes_stored);
            self.put_record_success.inc();
            self.put_record_latency.observe(elapsed);
        }
    }

    /// A PutRecords that stored `bytes_stored` bytes ended with `outcomes` (one per record)
    /// after `elapsed`.
    pub fn put_records<T>(
        &self,
        bytes_stored: u64,
        outcomes: &[Result<T, Error>],
        elapsed: Duration,
    ) {
        let (mut succeeded, mut refused, mut failed) = (0, 0, 0);
        for outcome in outcomes {
            match outcome {
                Ok(_) => succeeded += 1,
                Err(error) if throttled(error) => refused += 1,
                Err(_) => failed += 1,
            }
        }
        self.put_records_bytes.add(bytes_stored);
        self.put_records_total_records.add(outcomes.len() as u64);
        self.put_records_successful_records.add(succeeded);
        self.put_records_throttled_records.add(refused);
        self.put_records_failed_records.add(failed);
        if succeeded > 0 {
            self.put_records_success.inc();
        }
        self.put_records_latency.observe(elapsed);
    }

    /// A GetRecords call on `shard` returned `records` records of `bytes` bytes, the last of
    /// them `iterator_age_ms` old, after `elapsed`.
    pub fn get_records(
        &self,
        shard: &Shard,
        bytes: u64,
        records: u64,
        iterator_age_ms: u64,
        elapsed: Duration,
    ) {
        self.get_records_bytes.add(bytes);
        self.get_records_records.add(records);
        self.get_records_success.inc();
        self.get_records_latency.observe(elapsed);
        shard.metrics.outgoing_bytes.add(bytes);
        shard.metrics.outgoing_records.add(records);
        shard.metrics.iterator_age_ms.set(iterator_age_ms);
    }

    /// A SubscribeToShard event with `records` records of `bytes` bytes reached the connection.
    pub fn subscribe_event(&self, shard: &Shard, bytes: u64, records: u64, millis_behind: u64) {
        self.event_bytes.add(bytes);
        self.event_records.add(records);
        self.event_success.inc();
        shard.metrics.outgoing_bytes.add(bytes);
        shard.metrics.outgoing_records.add(records);
        shard.metrics.event_millis_behind_ms.set(millis_behind);
    }
}

// ===== Enhanced monitoring =====

/// The shard-level metrics (what `ALL` stands for) in the order AWS lists them.
///
/// AWS answers Current/DesiredShardLevelMetrics and DescribeStream's `EnhancedMonitoring` in
/// the iteration order of a Java `HashSet<String>` of 16 buckets, not in the model's order: the
/// AWS CLI's documented `enable-enhanced-monitoring --shard-level-metrics ALL` answer is exactly
/// this list, which is the buckets of the names' `String.hashCode()` (0, 2, 3, 12, 13, 15, 15;
/// the last two share a bucket and come in this order). Any subset comes in the same relative
/// order, as a subset of that set would.
pub const SHARD_LEVEL_METRICS: [MetricsName; 7] = [
    MetricsName::IncomingBytes,
    MetricsName::OutgoingRecords,
    MetricsName::IteratorAgeMilliseconds,
    MetricsName::IncomingRecords,
    MetricsName::ReadProvisionedThroughputExceeded,
    MetricsName::WriteProvisionedThroughputExceeded,
    MetricsName::OutgoingBytes,
];

/// The shard-level metrics `names` name (`ALL` is all of them), in AWS's order; unknown names
/// (none pass validation) are dropped.
pub fn named(names: &[String]) -> Vec<MetricsName> {
    let all = names.iter().any(|name| name == MetricsName::All.as_str());
    SHARD_LEVEL_METRICS
        .into_iter()
        .filter(|metric| all || names.iter().any(|name| name == metric.as_str()))
        .collect()
}

/// EnableEnhancedMonitoring (`enable`) or DisableEnhancedMonitoring: adds or removes shard-level
/// metrics and answers the set before (`CurrentShardLevelMetrics`) and after
/// (`DesiredShardLevelMetrics`), in AWS's order, `ALL` spelled out. The stream must be
/// ACTIVE; a change shows it UPDATING for the update window, as AWS does. The set is persisted
/// with the stream.
pub async fn change_enhanced_monitoring(
    node: &Node,
    caller: &Caller,
    input: EnhancedMonitoringInput,
    enable: bool,
) -> Result<EnhancedMonitoringOutput, Error> {
    let stream = resolve_stream(
        node,
        caller,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let requested = named(&input.shard_level_metrics.unwrap_or_default());
    let _control = node.control().await;
    check_active(node, &stream)?;
    let current = named(&stream.state().shard_level_metrics);
    let desired: Vec<MetricsName> = SHARD_LEVEL_METRICS
        .into_iter()
        .filter(|metric| {
            let asked = requested.contains(metric);
            if enable {
                current.contains(metric) || asked
            } else {
                current.contains(metric) && !asked
            }
        })
        .collect();
    if desired != current {
        let stored = desired.iter().map(|metric| metric.as_str().to_owned());
        node.update_stream(&stream, |state| {
            state.shard_level_metrics = stored.collect()
        })
        .await?;
        stream.mark_updating(node.config.update_window);
    }
    Ok(EnhancedMonitoringOutput {
        stream_name: Some(stream.name.clone()),
        current_shard_level_metrics: Some(current),
        desired_shard_level_metrics: Some(desired),
        stream_arn: Some(stream.arn.clone()),
    })
}

// ===== Exposition =====

type StreamCounter = fn(&StreamMetrics) -> &Counter;
type StreamHistogram = fn(&StreamMetrics) -> &Histogram;
type ShardGauge = fn(&ShardMetrics) -> &Gauge;
type ShardCounter = fn(&ShardMetrics) -> &Counter;

/// `{account="A",stream="S"}` without the braces, values escaped as the text format wants.
fn stream_labels(stream: &Stream) -> String {
    format!(
        "account=\"{}\",stream=\"{}\"",
        escape(&stream.account),
        escape(&stream.name)
    )
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn write_histogram(out: &mut String, name: &str, labels: &str, histogram: &Histogram) {
    let mut cumulative = 0;
    for (at, bucket) in histogram.buckets.iter().enumerate() {
        cumulative += bucket.load(Ordering::Relaxed);
        let le = LATENCY_BUCKET_LABELS.get(at).copied().unwrap_or("+Inf");
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
    }
    let sum_us = histogram.sum_us.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "{name}_sum{{{labels}}} {}.{:03}",
        sum_us / 1000,
        sum_us % 1000
    );
    let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
}

/// One scrape: every metric of every stream (shard-level ones for the metrics each stream's
/// enhanced monitoring enables), streams sorted by account and name.
pub fn render(node: &Node) -> String {
    let mut streams = node.all_streams();
    streams.sort_by(|a, b| (&a.account, &a.name).cmp(&(&b.account, &b.name)));
    let labels: Vec<String> = streams.iter().map(|stream| stream_labels(stream)).collect();
    let states: Vec<_> = streams.iter().map(|stream| stream.state()).collect();
    let mut out = String::new();

    header(&mut out, "riffle_streams", "gauge", "Streams on this node.");
    let _ = writeln!(out, "riffle_streams {}", streams.len());
    header(
        &mut out,
        "riffle_subscriptions",
        "gauge",
        "Live SubscribeToShard subscriptions on this node.",
    );
    let _ = writeln!(
        out,
        "riffle_subscriptions {}",
        node.subscriptions.live_count()
    );

    let counters: [(&str, &str, StreamCounter); 20] = [
        ("IncomingBytes", "Bytes put to the stream (data plus partition keys), PutRecord and PutRecords.", |m| &m.incoming_bytes),
        ("IncomingRecords", "Records put to the stream, PutRecord and PutRecords.", |m| &m.incoming_records),
        ("PutRecord.Bytes", "Bytes put with PutRecord.", |m| &m.put_record_bytes),
        ("PutRecord.Success", "Successful PutRecord calls.", |m| &m.put_record_success),
        ("PutRecords.Bytes", "Bytes of the successful records of PutRecords calls.", |m| &m.put_records_bytes),
        ("PutRecords.Success", "PutRecords calls with at least one successful record.", |m| &m.put_records_success),
        ("PutRecords.TotalRecords", "Records sent in answered PutRecords calls.", |m| &m.put_records_total_records),
        ("PutRecords.SuccessfulRecords", "Records of PutRecords calls that were stored.", |m| &m.put_records_successful_records),
        ("PutRecords.FailedRecords", "Records of PutRecords calls refused with an internal failure.", |m| &m.put_records_failed_records),
        ("PutRecords.ThrottledRecords", "Records of PutRecords calls refused by shard write limits.", |m| &m.put_records_throttled_records),
        ("GetRecords.Bytes", "Bytes returned by GetRecords (data plus partition keys).", |m| &m.get_records_bytes),
        ("GetRecords.Records", "Records returned by GetRecords.", |m| &m.get_records_records),
        ("GetRecords.Success", "Successful GetRecords calls.", |m| &m.get_records_success),
        ("WriteProvisionedThroughputExceeded", "Records refused by shard write limits (PutRecord and PutRecords).", |m| &m.write_throttled),
        ("ReadProvisionedThroughputExceeded", "GetRecords calls refused by shard read limits.", |m| &m.read_throttled),
        ("SubscribeToShard.RateExceeded", "SubscribeToShard calls refused: an active subscription of the consumer, or over once a second.", |m| &m.subscribe_rate_exceeded),
        ("SubscribeToShard.Success", "Subscriptions established.", |m| &m.subscribe_success),
        ("SubscribeToShardEvent.Bytes", "Bytes of records pushed to subscribers.", |m| &m.event_bytes),
        ("SubscribeToShardEvent.Records", "Records pushed to subscribers.", |m| &m.event_records),
        ("SubscribeToShardEvent.Success", "SubscribeToShard events delivered (keep-alive events included).", |m| &m.event_success),
    ];
    for (cloudwatch, help, counter) in counters {
        let name = prometheus_name("kinesis_", cloudwatch);
        header(
            &mut out,
            &name,
            "counter",
            &format!("CloudWatch {cloudwatch}: {help}"),
        );
        for (stream, labels) in streams.iter().zip(&labels) {
            let _ = writeln!(out, "{name}{{{labels}}} {}", counter(&stream.metrics).get());
        }
    }

    let histograms: [(&str, &str, StreamHistogram); 3] = [
        (
            "PutRecord.Latency",
            "PutRecord calls answered, by time taken (ms).",
            |m| &m.put_record_latency,
        ),
        (
            "PutRecords.Latency",
            "PutRecords calls answered, by time taken (ms).",
            |m| &m.put_records_latency,
        ),
        (
            "GetRecords.Latency",
            "GetRecords calls answered, by time taken (ms).",
            |m| &m.get_records_latency,
        ),
    ];
    for (cloudwatch, help, histogram) in histograms {
        let name = prometheus_name("kinesis_", cloudwatch);
        header(
            &mut out,
            &name,
            "histogram",
            &format!("CloudWatch {cloudwatch}: {help}"),
        );
        for (stream, labels) in streams.iter().zip(&labels) {
            write_histogram(&mut out, &name, labels, histogram(&stream.metrics));
        }
    }

    let ages: [(&str, &str, ShardGauge); 2] = [
        ("GetRecords.IteratorAgeMilliseconds", "Age (ms) of the last record of the latest GetRecords call, the largest over the open shards.", |m| &m.iterator_age_ms),
        ("SubscribeToShardEvent.MillisBehindLatest", "MillisBehindLatest of the latest SubscribeToShard event, the largest over the open shards.", |m| &m.event_millis_behind_ms),
    ];
    for (cloudwatch, help, age) in ages {
        let name = prometheus_name("kinesis_", cloudwatch);
        header(
            &mut out,
            &name,
            "gauge",
            &format!("CloudWatch {cloudwatch}: {help}"),
        );
        for (state, labels) in states.iter().zip(&labels) {
            let largest = state
                .open_shards()
                .map(|shard| age(&shard.metrics).get())
                .max()
                .unwrap_or(0);
            let _ = writeln!(out, "{name}{{{labels}}} {largest}");
        }
    }

    render_shard_level(&mut out, &states, &labels);
    out
}

/// The shard-level families: a stream's shards appear under the metrics its enhanced
/// monitoring enables, every shard still listed (closed ones until they expire).
fn render_shard_level(
    out: &mut String,
    states: &[Arc<crate::node::StreamState>],
    labels: &[String],
) {
    enum Value {
        Counter(ShardCounter),
        Gauge(ShardGauge),
    }
    let families: [(MetricsName, &str, Value); 7] = [
        (
            MetricsName::IncomingBytes,
            "Bytes put to the shard.",
            Value::Counter(|m| &m.incoming_bytes),
        ),
        (
            MetricsName::IncomingRecords,
            "Records put to the shard.",
            Value::Counter(|m| &m.incoming_records),
        ),
        (
            MetricsName::OutgoingBytes,
            "Bytes read from the shard (GetRecords and SubscribeToShard).",
            Value::Counter(|m| &m.outgoing_bytes),
        ),
        (
            MetricsName::OutgoingRecords,
            "Records read from the shard (GetRecords and SubscribeToShard).",
            Value::Counter(|m| &m.outgoing_records),
        ),
        (
            MetricsName::WriteProvisionedThroughputExceeded,
            "Records refused by the shard's write limits.",
            Value::Counter(|m| &m.write_throttled),
        ),
        (
            MetricsName::ReadProvisionedThroughputExceeded,
            "GetRecords calls refused by the shard's read limits.",
            Value::Counter(|m| &m.read_throttled),
        ),
        (
            MetricsName::IteratorAgeMilliseconds,
            "Age (ms) of the last record of the latest GetRecords call on the shard.",
            Value::Gauge(|m| &m.iterator_age_ms),
        ),
    ];
    for (metric, help, value) in families {
        let name = prometheus_name("kinesis_shard_", metric.as_str());
        let kind = match value {
            Value::Counter(_) => "counter",
            Value::Gauge(_) => "gauge",
        };
        header(
            out,
            &name,
            kind,
            &format!(
                "CloudWatch {} (shard level, enhanced monitoring): {help}",
                metric.as_str()
            ),
        );
        for (state, labels) in states.iter().zip(labels) {
            if !state
                .shard_level_metrics
                .iter()
                .any(|enabled| enabled == metric.as_str())
            {
                continue;
            }
            for shard in &state.shards {
                let reading = match &value {
                    Value::Counter(counter) => counter(&shard.metrics).get(),
                    Value::Gauge(gauge) => gauge(&shard.metrics).get(),
                };
                let _ = writeln!(out, "{name}{{{labels},shard=\"{}\"}} {reading}", shard.id());
            }
        }
    }
}

/// `prefix` + the CloudWatch name with its dots (not allowed in Prometheus names) as `_`.
pub fn prometheus_name(prefix: &str, cloudwatch: &str) -> String {
    format!("{prefix}{}", cloudwatch.replace('.', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_labels_are_the_bounds_in_milliseconds() {
        for (bound, label) in LATENCY_BUCKETS_US.iter().zip(LATENCY_BUCKET_LABELS) {
            let ms: f64 = label.parse().unwrap();
            assert_eq!((ms * 1000.0) as u64, *bound, "{label}");
        }
        assert!(LATENCY_BUCKETS_US.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn a_histogram_is_cumulative_with_le_inclusive_and_a_millisecond_sum() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(500)); // exactly on the first bound
        histogram.observe(Duration::from_micros(501));
        histogram.observe(Duration::from_secs(60)); // above every bound
        let mut out = String::new();
        write_histogram(&mut out, "h", "stream=\"s\"", &histogram);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "h_bucket{stream=\"s\",le=\"0.5\"} 1");
        assert_eq!(lines[1], "h_bucket{stream=\"s\",le=\"1\"} 2");
        assert_eq!(lines[13], "h_bucket{stream=\"s\",le=\"10000\"} 2");
        assert_eq!(lines[14], "h_bucket{stream=\"s\",le=\"+Inf\"} 3");
        assert_eq!(lines[15], "h_sum{stream=\"s\"} 60001.001");
        assert_eq!(lines[16], "h_count{stream=\"s\"} 3");
        assert_eq!(histogram.count(), 3);
    }

    #[test]
    fn names_lose_their_dots_and_labels_are_escaped() {
        assert_eq!(
            prometheus_name("kinesis_", "PutRecords.ThrottledRecords"),
            "kinesis_PutRecords_ThrottledRecords"
        );
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn all_names_the_seven_shard_level_metrics() {
        assert_eq!(named(&["ALL".to_owned()]), SHARD_LEVEL_METRICS.to_vec());
        assert_eq!(
            named(&["OutgoingBytes".to_owned(), "IncomingBytes".to_owned()]),
            vec![MetricsName::IncomingBytes, MetricsName::OutgoingBytes],
            "in AWS's order, whatever the request's"
        );
        assert_eq!(
            SHARD_LEVEL_METRICS.len() + 1,
            <MetricsName as riffle_proto::ops::WireEnum>::VALUES.len(),
            "every name but ALL"
        );
    }

    /// The order is a 16-bucket Java `HashSet<String>`'s: buckets never go down along it.
    #[test]
    fn aws_order_is_java_hash_set_order() {
        fn bucket(name: &str) -> u32 {
            let hash = name.encode_utf16().fold(0u32, |hash, unit| {
                hash.wrapping_mul(31).wrapping_add(u32::from(unit))
            });
            (hash ^ (hash >> 16)) & 15
        }
        let buckets: Vec<u32> = SHARD_LEVEL_METRICS
            .iter()
            .map(|metric| bucket(metric.as_str()))
            .collect();
        assert_eq!(buckets, vec![0, 2, 3, 12, 13, 15, 15]);
    }
}
