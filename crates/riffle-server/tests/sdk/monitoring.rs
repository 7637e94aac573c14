//! Monitoring and On-demand Advantage (issue 5, items 4 and 5): Enable/DisableEnhancedMonitoring
//! with AWS's Current/Desired lists and DescribeStream rendering (kinesis-api.md §3.6, §3.8);
//! UpdateAccountSettings and DescribeAccountSettings with the 24-hour minimum commitment;
//! UpdateStreamWarmThroughput pre-splitting an on-demand stream; and the Prometheus endpoint,
//! scraped after a known workload whose every count the test knows from the answers it got.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    MetricsName, MinimumThroughputBillingCommitmentInput,
    MinimumThroughputBillingCommitmentInputStatus, MinimumThroughputBillingCommitmentOutput,
    MinimumThroughputBillingCommitmentOutputStatus as CommitmentStatus, PutRecordsRequestEntry,
    ShardIteratorType, StartingPosition, StreamMode, StreamModeDetails, StreamStatus,
    SubscribeToShardEventStream,
};
use aws_sdk_kinesis::Client;

use crate::common::*;
use crate::raw_http;

/// `ALL`, spelled out in the order AWS answers it (the AWS CLI's documented
/// `enable-enhanced-monitoring --shard-level-metrics ALL` output).
const ALL_SEVEN: [MetricsName; 7] = [
    MetricsName::IncomingBytes,
    MetricsName::OutgoingRecords,
    MetricsName::IteratorAgeMilliseconds,
    MetricsName::IncomingRecords,
    MetricsName::ReadProvisionedThroughputExceeded,
    MetricsName::WriteProvisionedThroughputExceeded,
    MetricsName::OutgoingBytes,
];
const DAY_MS: i64 = 24 * 3_600_000;

async fn described_metrics(client: &Client, name: &str) -> Vec<Vec<MetricsName>> {
    let description = client
        .describe_stream()
        .stream_name(name)
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap();
    let summary = client
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap();
    let of = |sets: &[aws_sdk_kinesis::types::EnhancedMetrics]| -> Vec<Vec<MetricsName>> {
        sets.iter()
            .map(|set| set.shard_level_metrics().to_vec())
            .collect()
    };
    assert_eq!(
        of(description.enhanced_monitoring()),
        of(summary.enhanced_monitoring()),
        "DescribeStream and DescribeStreamSummary agree"
    );
    of(description.enhanced_monitoring())
}

/// Enables (or disables) `metrics` and checks the answer's stream and before/after lists.
async fn change(
    client: &Client,
    name: &str,
    enable: bool,
    metrics: &[MetricsName],
    before: &[MetricsName],
    after: &[MetricsName],
) {
    let (stream_name, current, desired, arn) = if enable {
        let output = client
            .enable_enhanced_monitoring()
            .stream_name(name)
            .set_shard_level_metrics(Some(metrics.to_vec()))
            .send()
            .await
            .unwrap_or_else(|error| panic!("EnableEnhancedMonitoring {metrics:?}: {error:?}"));
        (
            output.stream_name().map(str::to_owned),
            output.current_shard_level_metrics().to_vec(),
            output.desired_shard_level_metrics().to_vec(),
            output.stream_arn().map(str::to_owned),
        )
    } else {
        let output = client
            .disable_enhanced_monitoring()
            .stream_arn(stream_arn(name))
            .set_shard_level_metrics(Some(metrics.to_vec()))
            .send()
            .await
            .unwrap_or_else(|error| panic!("DisableEnhancedMonitoring {metrics:?}: {error:?}"));
        (
            output.stream_name().map(str::to_owned),
            output.current_shard_level_metrics().to_vec(),
            output.desired_shard_level_metrics().to_vec(),
            output.stream_arn().map(str::to_owned),
        )
    };
    assert_eq!(stream_name.as_deref(), Some(name));
    assert_eq!(arn, Some(stream_arn(name)));
    assert_eq!(current, before, "CurrentShardLevelMetrics of {metrics:?}");
    assert_eq!(desired, after, "DesiredShardLevelMetrics of {metrics:?}");
    assert_eq!(described_metrics(client, name).await, vec![after.to_vec()]);
}

#[tokio::test]
async fn enhanced_monitoring_round_trips_with_current_and_desired_lists() {
    let server = Server::in_memory_limits(Limits::Off);
    let client = server.client();
    create_stream(&client, "watched", 2).await;
    // No metrics: one entry with an empty list (kinesis-api.md §3.6).
    assert_eq!(described_metrics(&client, "watched").await, vec![vec![]]);

    use MetricsName::*;
    change(
        &client,
        "watched",
        true,
        &[OutgoingRecords, IncomingBytes],
        &[],
        &[IncomingBytes, OutgoingRecords],
    )
    .await;
    // Enabling what is on already changes nothing.
    change(
        &client,
        "watched",
        true,
        &[IncomingBytes],
        &[IncomingBytes, OutgoingRecords],
        &[IncomingBytes, OutgoingRecords],
    )
    .await;
    // ALL is the seven names, spelled out.
    change(
        &client,
        "watched",
        true,
        &[All],
        &[IncomingBytes, OutgoingRecords],
        &ALL_SEVEN,
    )
    .await;
    change(
        &client,
        "watched",
        false,
        &[IteratorAgeMilliseconds, IncomingRecords],
        &ALL_SEVEN,
        &[
            IncomingBytes,
            OutgoingRecords,
            ReadProvisionedThroughputExceeded,
            WriteProvisionedThroughputExceeded,
            OutgoingBytes,
        ],
    )
    .await;
    change(
        &client,
        "watched",
        false,
        &[All],
        &[
            IncomingBytes,
            OutgoingRecords,
            ReadProvisionedThroughputExceeded,
            WriteProvisionedThroughputExceeded,
            OutgoingBytes,
        ],
        &[],
    )
    .await;
    assert_eq!(described_metrics(&client, "watched").await, vec![vec![]]);

    let missing = client
        .enable_enhanced_monitoring()
        .stream_name("missing")
        .shard_level_metrics(All)
        .send()
        .await;
    expect_error(
        missing,
        "ResourceNotFoundException",
        Some(&stream_not_found("missing")),
    );
    let missing = client
        .disable_enhanced_monitoring()
        .stream_arn(stream_arn("missing"))
        .shard_level_metrics(All)
        .send()
        .await;
    expect_error(
        missing,
        "ResourceNotFoundException",
        Some(&stream_not_found("missing")),
    );
    // The model's constraints: a known name, one to seven of them.
    let unknown = client
        .enable_enhanced_monitoring()
        .stream_name("watched")
        .shard_level_metrics(MetricsName::from("IncomingBites"))
        .send()
        .await;
    let message = "1 validation error detected: Value '[IncomingBites]' at 'shardLevelMetrics' \
                   failed to satisfy constraint: Member must satisfy constraint: [Member must \
                   satisfy enum value set: [IncomingBytes, IncomingRecords, OutgoingBytes, \
                   OutgoingRecords, WriteProvisionedThroughputExceeded, \
                   ReadProvisionedThroughputExceeded, IteratorAgeMilliseconds, ALL]]";
    expect_error(unknown, "ValidationException", Some(message));
    let none = client
        .disable_enhanced_monitoring()
        .stream_name("watched")
        .set_shard_level_metrics(Some(vec![]))
        .send()
        .await;
    expect_error(none, "ValidationException", None);
    assert_eq!(described_metrics(&client, "watched").await, vec![vec![]]);
}

#[tokio::test]
async fn enhanced_monitoring_needs_an_active_stream_and_shows_updating() {
    let server = Server::in_memory_with(&["--limits", "off", "--update-window-ms", "3000"]);
    let client = server.client();
    create_stream(&client, "busy", 1).await;
    client
        .enable_enhanced_monitoring()
        .stream_name("busy")
        .shard_level_metrics(MetricsName::IncomingBytes)
        .send()
        .await
        .unwrap();
    let status = client
        .describe_stream_summary()
        .stream_name("busy")
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap()
        .stream_status;
    assert_eq!(status, StreamStatus::Updating);
    let again = client
        .disable_enhanced_monitoring()
        .stream_name("busy")
        .shard_level_metrics(MetricsName::IncomingBytes)
        .send()
        .await;
    let message =
        format!("Stream busy under account {ACCOUNT} not ACTIVE, instead in state UPDATING");
    expect_error(again, "ResourceInUseException", Some(&message));
}

async fn update_commitment(
    client: &Client,
    enable: bool,
) -> MinimumThroughputBillingCommitmentOutput {
    let status = if enable {
        MinimumThroughputBillingCommitmentInputStatus::Enabled
    } else {
        MinimumThroughputBillingCommitmentInputStatus::Disabled
    };
    client
        .update_account_settings()
        .minimum_throughput_billing_commitment(
            MinimumThroughputBillingCommitmentInput::builder()
                .status(status)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_or_else(|error| panic!("UpdateAccountSettings {enable}: {error:?}"))
        .minimum_throughput_billing_commitment
        .expect("UpdateAccountSettings answers the commitment")
}

async fn described_commitment(client: &Client) -> MinimumThroughputBillingCommitmentOutput {
    client
        .describe_account_settings()
        .send()
        .await
        .unwrap()
        .minimum_throughput_billing_commitment
        .expect("DescribeAccountSettings answers the commitment")
}

fn millis(time: Option<&aws_sdk_kinesis::primitives::DateTime>) -> Option<i64> {
    time.map(|time| time.to_millis().expect("a timestamp in range"))
}

#[tokio::test]
async fn the_commitment_lasts_its_minimum_then_ends() {
    // Two seconds stand in for AWS's 24 hours.
    let server = Server::in_memory_with(&["--limits", "off", "--commitment-minimum-s", "2"]);
    let client = server.client();
    let other = server.client_with_key("123456789012");
    assert_eq!(
        described_commitment(&client).await.status(),
        &CommitmentStatus::Disabled
    );

    let before = now_millis();
    let enabled = update_commitment(&client, true).await;
    let after = now_millis();
    assert_eq!(enabled.status(), &CommitmentStatus::Enabled);
    let started = millis(enabled.started_at()).expect("StartedAt");
    // JSON carries seconds with a fraction: a millisecond may be lost either way.
    assert!(before - 1 <= started && started <= after + 1, "{enabled:?}");
    let earliest = millis(enabled.earliest_allowed_end_at()).expect("EarliestAllowedEndAt");
    assert!((earliest - started - 2_000).abs() <= 1, "{enabled:?}");
    assert_eq!(enabled.ended_at(), None);
    assert_eq!(described_commitment(&client).await, enabled);
    // Per account: another account has none.
    assert_eq!(
        described_commitment(&other).await.status(),
        &CommitmentStatus::Disabled
    );
    // Enabling again changes nothing.
    assert_eq!(update_commitment(&client, true).await, enabled);

    // Disabled before the earliest end: it stays in force until then...
    let pending = update_commitment(&client, false).await;
    assert_eq!(
        pending.status(),
        &CommitmentStatus::EnabledUntilEarliestAllowedEnd
    );
    assert_eq!(pending.started_at(), enabled.started_at());
    assert_eq!(
        pending.earliest_allowed_end_at(),
        enabled.earliest_allowed_end_at()
    );
    assert_eq!(pending.ended_at(), None, "it has not ended yet");
    // ...and enabling cancels the pending end.
    assert_eq!(update_commitment(&client, true).await, enabled);
    let pending = update_commitment(&client, false).await;
    assert_eq!(
        pending.status(),
        &CommitmentStatus::EnabledUntilEarliestAllowedEnd
    );

    // Once the earliest end has passed, it is over, ended then.
    let wait = earliest - now_millis() + 100;
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;
    let ended = described_commitment(&client).await;
    assert_eq!(ended.status(), &CommitmentStatus::Disabled);
    assert_eq!(millis(ended.ended_at()), Some(earliest), "{ended:?}");
    assert_eq!(ended.started_at(), enabled.started_at());

    // A new commitment starts afresh.
    let renewed = update_commitment(&client, true).await;
    assert_eq!(renewed.status(), &CommitmentStatus::Enabled);
    assert!(millis(renewed.started_at()).unwrap() >= earliest);
    assert_eq!(renewed.ended_at(), None);

    // Past its minimum, disabling ends it at once.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let disabled_at = now_millis();
    let ended = update_commitment(&client, false).await;
    assert_eq!(ended.status(), &CommitmentStatus::Disabled);
    let ended_ms = millis(ended.ended_at()).expect("EndedAt");
    assert!((ended_ms - disabled_at).abs() < 1_000, "{ended:?}");
}

#[tokio::test]
async fn the_default_minimum_is_a_day_and_settings_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::on_data_dir_with(dir.path(), &["--limits", "off"]);
    let client = server.client();
    create_stream(&client, "kept", 1).await;
    create_on_demand(&client, "warmed").await;
    client
        .enable_enhanced_monitoring()
        .stream_name("kept")
        .shard_level_metrics(MetricsName::IncomingRecords)
        .shard_level_metrics(MetricsName::IteratorAgeMilliseconds)
        .send()
        .await
        .unwrap();
    let enabled = update_commitment(&client, true).await;
    let started = millis(enabled.started_at()).unwrap();
    let earliest = millis(enabled.earliest_allowed_end_at()).unwrap();
    assert!((earliest - started - DAY_MS).abs() <= 1, "{enabled:?}");
    assert_eq!(set_warm(&client, "warmed", 6).await, (Some(6), Some(6)));
    let pending = update_commitment(&client, false).await;
    server.kill();

    let server = Server::on_data_dir_with(dir.path(), &["--limits", "off"]);
    let client = server.client();
    assert_eq!(described_commitment(&client).await, pending);
    // The commitment is still in force (pending its end), so the warm throughput is too.
    assert_eq!(
        warm_throughput(&client, "warmed").await,
        Some((Some(6), Some(6)))
    );
    assert_eq!(open_shards(&client, "warmed").await.len(), 6);
    assert_eq!(
        described_metrics(&client, "kept").await,
        vec![vec![
            MetricsName::IteratorAgeMilliseconds,
            MetricsName::IncomingRecords
        ]]
    );
}

#[tokio::test]
async fn advantage_allows_fifty_consumers_per_stream() {
    let server = Server::in_memory_limits(Limits::Off);
    let client = server.client();
    create_stream(&client, "fans", 1).await;
    let arn = stream_arn("fans");
    let register = |name: String| {
        client
            .register_stream_consumer()
            .stream_arn(&arn)
            .consumer_name(name)
            .send()
    };
    for i in 0..20 {
        register(format!("c{i:02}")).await.unwrap();
    }
    let refused = register("c20".to_owned()).await;
    let limit = |max: u32| {
        format!("Stream fans under account {ACCOUNT} has reached its limit of {max} registered consumers.")
    };
    expect_error(refused, "LimitExceededException", Some(&limit(20)));

    update_commitment(&client, true).await;
    for i in 20..50 {
        register(format!("c{i:02}")).await.unwrap();
    }
    let refused = register("c50".to_owned()).await;
    expect_error(refused, "LimitExceededException", Some(&limit(50)));
}

async fn open_shards(client: &Client, name: &str) -> Vec<(u128, u128)> {
    let mut open: Vec<(u128, u128)> = list_all_shards(client, name)
        .await
        .iter()
        .filter(|shard| {
            shard
                .sequence_number_range()
                .is_some_and(|range| range.ending_sequence_number().is_none())
        })
        .map(hash_range)
        .collect();
    open.sort();
    open
}

fn assert_partition(open: &[(u128, u128)]) {
    assert_eq!(open.first().map(|range| range.0), Some(0), "{open:?}");
    assert_eq!(
        open.last().map(|range| range.1),
        Some(u128::MAX),
        "{open:?}"
    );
    for pair in open.windows(2) {
        assert_eq!(pair[0].1 + 1, pair[1].0, "{open:?}");
    }
}

async fn warm_throughput(client: &Client, name: &str) -> Option<(Option<i32>, Option<i32>)> {
    let summary = client
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap();
    summary
        .warm_throughput()
        .map(|warm| (warm.target_mibps(), warm.current_mibps()))
}

async fn set_warm(client: &Client, name: &str, mibps: i32) -> (Option<i32>, Option<i32>) {
    let output = client
        .update_stream_warm_throughput()
        .stream_arn(stream_arn(name))
        .warm_throughput_mibps(mibps)
        .send()
        .await
        .unwrap_or_else(|error| panic!("UpdateStreamWarmThroughput {mibps}: {error:?}"));
    assert_eq!(output.stream_name(), Some(name));
    assert_eq!(output.stream_arn(), Some(stream_arn(name).as_str()));
    let warm = output.warm_throughput().expect("WarmThroughput");
    (warm.target_mibps(), warm.current_mibps())
}

/// Creates an ON_DEMAND stream (four shards) and waits until it is ACTIVE.
async fn create_on_demand(client: &Client, name: &str) {
    client
        .create_stream()
        .stream_name(name)
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    wait_for_open(client, name, 4).await;
}

/// Waits until the stream has `count` open shards (the scaler merges in the background).
async fn wait_for_open(client: &Client, name: &str, count: usize) -> Vec<(u128, u128)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let open = open_shards(client, name).await;
        if open.len() == count {
            return open;
        }
        assert!(
            Instant::now() < deadline,
            "{name} has {} open shards, expected {count}",
            open.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn warm_throughput_pre_splits_on_demand_streams_and_holds_off_merges() {
    // A scaler that merges idle shards at once: only the warm throughput keeps shards apart.
    let server = Server::in_memory_with(&[
        "--limits",
        "off",
        "--on-demand-interval-ms",
        "100",
        "--on-demand-merge-after-s",
        "0",
    ]);
    let client = server.client();
    create_on_demand(&client, "warm").await;
    create_stream(&client, "fixed", 1).await;
    assert_eq!(warm_throughput(&client, "warm").await, None);

    // Without On-demand Advantage the account may not warm a stream.
    let refused = client
        .update_stream_warm_throughput()
        .stream_name("warm")
        .warm_throughput_mibps(10)
        .send()
        .await;
    expect_error(refused, "InvalidArgumentException", None);
    update_commitment(&client, true).await;
    // Provisioned streams never take warm throughput.
    let refused = client
        .update_stream_warm_throughput()
        .stream_name("fixed")
        .warm_throughput_mibps(10)
        .send()
        .await;
    let message = format!(
        "UpdateStreamWarmThroughput is not supported for stream fixed under account {ACCOUNT} \
         because it is in PROVISIONED capacity mode."
    );
    expect_error(refused, "ValidationException", Some(&message));
    assert_eq!(open_shards(&client, "fixed").await.len(), 1);
    let too_much = client
        .update_stream_warm_throughput()
        .stream_name("warm")
        .warm_throughput_mibps(10_241)
        .send()
        .await;
    expect_error(too_much, "LimitExceededException", None);

    // 10 MiB/s: the four shards become ten (1 MiB/s each), at once.
    assert_eq!(set_warm(&client, "warm", 10).await, (Some(10), Some(10)));
    let open = open_shards(&client, "warm").await;
    assert_eq!(open.len(), 10);
    assert_partition(&open);
    assert_eq!(
        warm_throughput(&client, "warm").await,
        Some((Some(10), Some(10)))
    );

    // The idle shards are not merged below the target...
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(open_shards(&client, "warm").await.len(), 10);
    // ...a lower target lets them merge down to it and no further...
    assert_eq!(set_warm(&client, "warm", 6).await, (Some(6), Some(10)));
    assert_partition(&wait_for_open(&client, "warm", 6).await);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(open_shards(&client, "warm").await.len(), 6);
    assert_eq!(
        warm_throughput(&client, "warm").await,
        Some((Some(6), Some(6)))
    );
    // ...and without one the scaler's own floor of four applies again.
    assert_eq!(set_warm(&client, "warm", 0).await, (Some(0), Some(6)));
    assert_partition(&wait_for_open(&client, "warm", 4).await);
}

// ===== The Prometheus endpoint =====

/// One scrape, parsed: (metric name, labels) → value. Also checks the text's shape: every
/// series belongs to a family announced by `# TYPE`, and histograms are cumulative with
/// `_count` equal to the `+Inf` bucket.
struct Scrape {
    series: BTreeMap<(String, BTreeMap<String, String>), f64>,
}

fn scrape(addr: SocketAddr) -> Scrape {
    let response = raw_http::exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .expect("the metrics endpoint answers");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(response.body).expect("UTF-8 text");
    let mut families: BTreeMap<String, String> = BTreeMap::new();
    let mut series = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            families.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (key, value) = line.rsplit_once(' ').expect("series value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value of {line:?}"));
        let (name, labels) = match key.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').expect("closing brace");
                let parsed: BTreeMap<String, String> = labels
                    .split(',')
                    .map(|pair| {
                        let (label, quoted) = pair.split_once('=').expect("label=value");
                        let value = quoted
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .expect("quoted label value");
                        (label.to_string(), value.to_string())
                    })
                    .collect();
                (name.to_string(), parsed)
            }
            None => (key.to_string(), BTreeMap::new()),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| families.get(*base).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(&name);
        assert!(families.contains_key(family), "{name} has no # TYPE line");
        series.insert((name, labels), value);
    }
    let scrape = Scrape { series };
    for (name, kind) in &families {
        if kind == "histogram" {
            scrape.check_histograms(name);
        }
    }
    scrape
}

impl Scrape {
    /// The value of `name` with exactly `labels` (plus the default account).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(label, value)| (label.to_string(), value.to_string()))
            .collect();
        wanted.insert("account".into(), ACCOUNT.into());
        self.series.get(&(name.to_string(), wanted)).copied()
    }

    /// A stream-level value, which must be there.
    fn stream(&self, name: &str, stream: &str) -> u64 {
        self.get(name, &[("stream", stream)])
            .unwrap_or_else(|| panic!("no {name} for stream {stream}")) as u64
    }

    fn shard(&self, name: &str, stream: &str, shard: &str) -> Option<u64> {
        self.get(name, &[("stream", stream), ("shard", shard)])
            .map(|value| value as u64)
    }

    fn check_histograms(&self, family: &str) {
        let bucket = format!("{family}_bucket");
        let mut by_series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
        for ((name, labels), value) in &self.series {
            if *name != bucket {
                continue;
            }
            let mut labels = labels.clone();
            let le = labels.remove("le").expect("a bucket has le");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            by_series.entry(labels).or_default().push((le, *value));
        }
        for (labels, mut buckets) in by_series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(
                buckets.windows(2).all(|pair| pair[0].1 <= pair[1].1),
                "{family} {labels:?} is not cumulative: {buckets:?}"
            );
            assert_eq!(buckets.last().map(|bucket| bucket.0), Some(f64::INFINITY));
            let count = self.series[&(format!("{family}_count"), labels.clone())];
            assert_eq!(Some(count), buckets.last().map(|bucket| bucket.1));
        }
    }
}

/// The counts a known workload must leave, from the answers the client got.
#[derive(Debug, Default)]
struct Expected {
    stored_records: u64,
    stored_bytes: u64,
    put_record_ok: u64,
    put_record_bytes: u64,
    put_records_calls: u64,
    put_records_with_success: u64,
    put_records_total: u64,
    put_records_ok: u64,
    put_records_bytes: u64,
    put_records_throttled: u64,
    write_throttled: u64,
    get_records_ok: u64,
    get_records_records: u64,
    get_records_bytes: u64,
    read_throttled: u64,
}

fn record_bytes(data: &[u8], key: &str) -> u64 {
    (data.len() + key.len()) as u64
}

/// N PutRecord, one PutRecords of M, K GetRecords, with limits off so nothing is throttled:
/// every count is a constant of the workload.
#[tokio::test]
async fn a_scrape_counts_exactly_n_puts_one_batch_of_m_and_k_reads() {
    const N: usize = 5;
    const M: usize = 7;
    const LIMIT: i32 = 5; // K = ceil((N + M) / LIMIT) reads return every record
    const K: usize = (N + M).div_ceil(LIMIT as usize);
    let server = Server::in_memory_with_metrics(&["--limits", "off"]);
    let metrics = server
        .metrics_addr
        .expect("--metrics-listen prints its address");
    let client = server.client();
    create_stream(&client, "counted", 1).await;
    client
        .enable_enhanced_monitoring()
        .stream_name("counted")
        .shard_level_metrics(MetricsName::IncomingRecords)
        .shard_level_metrics(MetricsName::OutgoingBytes)
        .send()
        .await
        .unwrap();

    let mut put_record_bytes = 0;
    for i in 0..N {
        let data = format!("single-{i}").into_bytes();
        put_record_bytes += record_bytes(&data, "key");
        client
            .put_record()
            .stream_name("counted")
            .partition_key("key")
            .data(Blob::new(data))
            .send()
            .await
            .unwrap();
    }
    let batch: Vec<(Vec<u8>, String)> = (0..M)
        .map(|i| (vec![b'b'; 10 + i], format!("batch-{i}")))
        .collect();
    let put_records_bytes: u64 = batch
        .iter()
        .map(|(data, key)| record_bytes(data, key))
        .sum();
    let entries = batch
        .iter()
        .map(|(data, key)| {
            PutRecordsRequestEntry::builder()
                .data(Blob::new(data.clone()))
                .partition_key(key)
                .build()
                .unwrap()
        })
        .collect();
    let answer = client
        .put_records()
        .stream_name("counted")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.failed_record_count(), Some(0));

    let shard = shard_id(0);
    let mut iterator =
        shard_iterator(&client, "counted", &shard, ShardIteratorType::TrimHorizon).await;
    let mut read = 0;
    for _ in 0..K {
        let page = client
            .get_records()
            .shard_iterator(&iterator)
            .limit(LIMIT)
            .send()
            .await
            .unwrap();
        read += page.records().len();
        iterator = page.next_shard_iterator().unwrap().to_owned();
    }
    assert_eq!(read, N + M, "K reads of {LIMIT} return every record");

    let stored_bytes = put_record_bytes + put_records_bytes;
    let scrape = scrape(metrics);
    let s = |name: &str| scrape.stream(name, "counted");
    let (n, m, k) = (N as u64, M as u64, K as u64);
    assert_eq!(s("kinesis_IncomingRecords"), n + m);
    assert_eq!(s("kinesis_IncomingBytes"), stored_bytes);
    assert_eq!(s("kinesis_PutRecord_Success"), n);
    assert_eq!(s("kinesis_PutRecord_Bytes"), put_record_bytes);
    assert_eq!(s("kinesis_PutRecord_Latency_count"), n);
    assert_eq!(s("kinesis_PutRecords_Success"), 1);
    assert_eq!(s("kinesis_PutRecords_Latency_count"), 1);
    assert_eq!(s("kinesis_PutRecords_Bytes"), put_records_bytes);
    assert_eq!(s("kinesis_PutRecords_TotalRecords"), m);
    assert_eq!(s("kinesis_PutRecords_SuccessfulRecords"), m);
    assert_eq!(s("kinesis_PutRecords_FailedRecords"), 0);
    assert_eq!(s("kinesis_PutRecords_ThrottledRecords"), 0);
    assert_eq!(s("kinesis_GetRecords_Success"), k);
    assert_eq!(s("kinesis_GetRecords_Latency_count"), k);
    assert_eq!(s("kinesis_GetRecords_Records"), n + m);
    assert_eq!(s("kinesis_GetRecords_Bytes"), stored_bytes);
    assert_eq!(s("kinesis_WriteProvisionedThroughputExceeded"), 0);
    assert_eq!(s("kinesis_ReadProvisionedThroughputExceeded"), 0);
    assert_eq!(s("kinesis_SubscribeToShard_Success"), 0);
    assert_eq!(s("kinesis_SubscribeToShardEvent_Records"), 0);
    // Only the two enabled shard-level families carry the shard.
    assert_eq!(
        scrape.shard("kinesis_shard_IncomingRecords", "counted", &shard),
        Some(n + m)
    );
    assert_eq!(
        scrape.shard("kinesis_shard_OutgoingBytes", "counted", &shard),
        Some(stored_bytes)
    );
    for absent in [
        "kinesis_shard_IncomingBytes",
        "kinesis_shard_OutgoingRecords",
        "kinesis_shard_WriteProvisionedThroughputExceeded",
        "kinesis_shard_ReadProvisionedThroughputExceeded",
        "kinesis_shard_IteratorAgeMilliseconds",
    ] {
        assert_eq!(scrape.shard(absent, "counted", &shard), None, "{absent}");
    }
}

#[tokio::test]
async fn a_scrape_after_a_known_workload_shows_its_counts() {
    // AWS limits, so that some writes and reads are throttled.
    let server = Server::in_memory_with_metrics(&[]);
    let metrics = server
        .metrics_addr
        .expect("--metrics-listen prints its address");
    let client = server.client();
    create_stream(&client, "metered", 1).await;
    create_stream(&client, "quiet", 1).await;
    client
        .enable_enhanced_monitoring()
        .stream_name("metered")
        .shard_level_metrics(MetricsName::All)
        .send()
        .await
        .unwrap();
    let shard = shard_id(0);
    let mut expected = Expected::default();

    // N = 3 PutRecord.
    for i in 0..3 {
        let data = format!("record-{i}").into_bytes();
        client
            .put_record()
            .stream_name("metered")
            .partition_key("k")
            .data(Blob::new(data.clone()))
            .send()
            .await
            .unwrap();
        expected.put_record_ok += 1;
        expected.put_record_bytes += record_bytes(&data, "k");
    }
    expected.stored_records += expected.put_record_ok;
    expected.stored_bytes += expected.put_record_bytes;

    // M = 2 PutRecords of K = 4 small records, then one of three 600 KiB records, which a
    // shard's 1 MiB burst cannot take whole: some are throttled.
    let small: Vec<Vec<(Vec<u8>, String)>> = (0..2)
        .map(|call| {
            (0..4)
                .map(|i| (format!("batch-{call}-{i}").into_bytes(), format!("key-{i}")))
                .collect()
        })
        .collect();
    let large: Vec<(Vec<u8>, String)> = (0..3)
        .map(|i| (vec![b'x'; 600 * 1024], format!("large-{i}")))
        .collect();
    for batch in small.iter().chain([&large]) {
        let entries: Vec<PutRecordsRequestEntry> = batch
            .iter()
            .map(|(data, key)| {
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(data.clone()))
                    .partition_key(key)
                    .build()
                    .unwrap()
            })
            .collect();
        let output = client
            .put_records()
            .stream_name("metered")
            .set_records(Some(entries))
            .send()
            .await
            .unwrap();
        expected.put_records_calls += 1;
        expected.put_records_total += batch.len() as u64;
        let mut any = false;
        for (result, (data, key)) in output.records().iter().zip(batch) {
            match result.error_code() {
                None => {
                    any = true;
                    expected.put_records_ok += 1;
                    expected.put_records_bytes += record_bytes(data, key);
                }
                Some("ProvisionedThroughputExceededException") => {
                    expected.put_records_throttled += 1
                }
                Some(other) => panic!("unexpected error {other}"),
            }
        }
        expected.put_records_with_success += u64::from(any);
    }
    assert!(expected.put_records_throttled >= 1, "{expected:?}");
    expected.stored_records += expected.put_records_ok;
    expected.stored_bytes += expected.put_records_bytes;
    expected.write_throttled += expected.put_records_throttled;
    // A PutRecord of a maximal record needs an almost full bucket, which the large records
    // just emptied: refused whole (400), and no success. (Should the machine have stalled for
    // the bucket to refill, it is stored instead and counted so.)
    let maximal = vec![b'y'; RECORD_BYTES_MAX - 1];
    let answer = client
        .put_record()
        .stream_name("metered")
        .partition_key("k")
        .data(Blob::new(maximal.clone()))
        .send()
        .await;
    match answer {
        Ok(_) => {
            expected.put_record_ok += 1;
            expected.put_record_bytes += record_bytes(&maximal, "k");
            expected.stored_records += 1;
            expected.stored_bytes += record_bytes(&maximal, "k");
        }
        Err(error) => {
            let (error, _) = service_error(Err::<(), _>(error));
            assert!(
                error.is_provisioned_throughput_exceeded_exception(),
                "{error:?}"
            );
            expected.write_throttled += 1;
        }
    }

    // GetRecords until a call is refused (5 calls a second per shard).
    let mut iterator =
        shard_iterator(&client, "metered", &shard, ShardIteratorType::TrimHorizon).await;
    for _ in 0..50 {
        match client.get_records().shard_iterator(&iterator).send().await {
            Ok(page) => {
                expected.get_records_ok += 1;
                expected.get_records_records += page.records().len() as u64;
                expected.get_records_bytes += page
                    .records()
                    .iter()
                    .map(|record| {
                        record_bytes(
                            record.data().as_ref(),
                            record.partition_key().unwrap_or_default(),
                        )
                    })
                    .sum::<u64>();
                iterator = page.next_shard_iterator().unwrap().to_string();
            }
            Err(error) => {
                let (error, _) = service_error(Err::<(), _>(error));
                assert!(
                    error.is_provisioned_throughput_exceeded_exception(),
                    "{error:?}"
                );
                expected.read_throttled += 1;
                break;
            }
        }
    }
    assert_eq!(expected.read_throttled, 1, "GetRecords was never throttled");
    assert_eq!(expected.get_records_records, expected.stored_records);

    // One subscription, reading every record; a second at once is refused.
    let consumer = client
        .register_stream_consumer()
        .stream_arn(stream_arn("metered"))
        .consumer_name("meter")
        .send()
        .await
        .unwrap()
        .consumer
        .unwrap()
        .consumer_arn;
    let from_start = || {
        StartingPosition::builder()
            .r#type(ShardIteratorType::TrimHorizon)
            .build()
            .unwrap()
    };
    let mut subscription = client
        .subscribe_to_shard()
        .consumer_arn(&consumer)
        .shard_id(&shard)
        .starting_position(from_start())
        .send()
        .await
        .unwrap();
    let mut pushed_records = 0u64;
    let mut pushed_bytes = 0u64;
    let deadline = Instant::now() + Duration::from_secs(20);
    while pushed_records < expected.stored_records {
        assert!(
            Instant::now() < deadline,
            "only {pushed_records} records pushed"
        );
        let event = tokio::time::timeout(Duration::from_secs(10), subscription.event_stream.recv())
            .await
            .expect("an event in time")
            .expect("the event stream works")
            .expect("the subscription is open");
        if let SubscribeToShardEventStream::SubscribeToShardEvent(event) = event {
            pushed_records += event.records().len() as u64;
            pushed_bytes += event
                .records()
                .iter()
                .map(|record| {
                    record_bytes(
                        record.data().as_ref(),
                        record.partition_key().unwrap_or_default(),
                    )
                })
                .sum::<u64>();
        }
    }
    assert_eq!(pushed_records, expected.stored_records);
    assert_eq!(pushed_bytes, expected.stored_bytes);
    let second = client
        .subscribe_to_shard()
        .consumer_arn(&consumer)
        .shard_id(&shard)
        .starting_position(from_start())
        .send()
        .await;
    expect_error(second, "ResourceInUseException", None);

    let first = scrape(metrics);
    let s = |name: &str| first.stream(name, "metered");
    assert_eq!(s("kinesis_IncomingRecords"), expected.stored_records);
    assert_eq!(s("kinesis_IncomingBytes"), expected.stored_bytes);
    assert_eq!(s("kinesis_PutRecord_Success"), expected.put_record_ok);
    assert_eq!(s("kinesis_PutRecord_Bytes"), expected.put_record_bytes);
    assert_eq!(s("kinesis_PutRecord_Latency_count"), expected.put_record_ok);
    assert_eq!(
        s("kinesis_PutRecords_Success"),
        expected.put_records_with_success
    );
    assert_eq!(
        s("kinesis_PutRecords_Latency_count"),
        expected.put_records_calls
    );
    assert_eq!(
        s("kinesis_PutRecords_TotalRecords"),
        expected.put_records_total
    );
    assert_eq!(
        s("kinesis_PutRecords_SuccessfulRecords"),
        expected.put_records_ok
    );
    assert_eq!(
        s("kinesis_PutRecords_ThrottledRecords"),
        expected.put_records_throttled
    );
    assert_eq!(s("kinesis_PutRecords_FailedRecords"), 0);
    assert_eq!(s("kinesis_PutRecords_Bytes"), expected.put_records_bytes);
    assert_eq!(
        s("kinesis_WriteProvisionedThroughputExceeded"),
        expected.write_throttled
    );
    assert_eq!(s("kinesis_GetRecords_Success"), expected.get_records_ok);
    assert_eq!(
        s("kinesis_GetRecords_Latency_count"),
        expected.get_records_ok
    );
    assert_eq!(
        s("kinesis_GetRecords_Records"),
        expected.get_records_records
    );
    assert_eq!(s("kinesis_GetRecords_Bytes"), expected.get_records_bytes);
    assert_eq!(
        s("kinesis_ReadProvisionedThroughputExceeded"),
        expected.read_throttled
    );
    assert_eq!(s("kinesis_SubscribeToShard_Success"), 1);
    assert_eq!(s("kinesis_SubscribeToShard_RateExceeded"), 1);
    assert_eq!(
        s("kinesis_SubscribeToShardEvent_Records"),
        expected.stored_records
    );
    assert_eq!(
        s("kinesis_SubscribeToShardEvent_Bytes"),
        expected.stored_bytes
    );
    assert!(s("kinesis_SubscribeToShardEvent_Success") >= 1);
    // The reader caught up, so its last call's age is that of a record just read, or 0.
    s("kinesis_GetRecords_IteratorAgeMilliseconds");
    s("kinesis_SubscribeToShardEvent_MillisBehindLatest");
    assert!(
        first
            .get("kinesis_PutRecord_Latency_sum", &[("stream", "metered")])
            .unwrap()
            > 0.0
    );
    assert_eq!(first.get("riffle_streams", &[]), None, "no account label");

    // Shard level, all seven enabled on `metered`.
    let sh = |name: &str| {
        first
            .shard(name, "metered", &shard)
            .unwrap_or_else(|| panic!("no {name} for {shard}"))
    };
    assert_eq!(sh("kinesis_shard_IncomingRecords"), expected.stored_records);
    assert_eq!(sh("kinesis_shard_IncomingBytes"), expected.stored_bytes);
    assert_eq!(
        sh("kinesis_shard_OutgoingRecords"),
        expected.get_records_records + pushed_records
    );
    assert_eq!(
        sh("kinesis_shard_OutgoingBytes"),
        expected.get_records_bytes + pushed_bytes
    );
    assert_eq!(
        sh("kinesis_shard_WriteProvisionedThroughputExceeded"),
        expected.write_throttled
    );
    assert_eq!(
        sh("kinesis_shard_ReadProvisionedThroughputExceeded"),
        expected.read_throttled
    );
    sh("kinesis_shard_IteratorAgeMilliseconds");

    // `quiet` saw nothing and has no enhanced monitoring: zeros, and no shard-level series.
    assert_eq!(first.stream("kinesis_IncomingRecords", "quiet"), 0);
    assert_eq!(first.stream("kinesis_PutRecords_Latency_count", "quiet"), 0);
    assert_eq!(
        first.shard("kinesis_shard_IncomingRecords", "quiet", &shard),
        None
    );

    // Disabling a metric takes its shard series out of the next scrape.
    client
        .disable_enhanced_monitoring()
        .stream_name("metered")
        .shard_level_metrics(MetricsName::IncomingRecords)
        .send()
        .await
        .unwrap();
    let later = scrape(metrics);
    assert_eq!(
        later.shard("kinesis_shard_IncomingRecords", "metered", &shard),
        None
    );
    assert_eq!(
        later.shard("kinesis_shard_IncomingBytes", "metered", &shard),
        Some(expected.stored_bytes)
    );
    drop(subscription);
}

#[tokio::test]
async fn metrics_are_off_the_api_port_and_off_by_default() {
    let server = Server::in_memory_with_metrics(&["--limits", "off"]);
    let metrics = server.metrics_addr.unwrap();
    assert_ne!(metrics.port(), server.addr.port());
    let not_found = raw_http::exchange(
        metrics,
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(not_found.status, 404);
    let wrong_method = raw_http::exchange(
        metrics,
        b"POST /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(wrong_method.status, 405);
    // The API port does not serve metrics.
    let api = raw_http::exchange(
        server.addr,
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_ne!(api.status, 200);
    // Without the flag there is no second line and no listener (the harness would fail to
    // start otherwise); the server still works.
    let plain = Server::in_memory_limits(Limits::Off);
    assert_eq!(plain.metrics_addr, None);
}
