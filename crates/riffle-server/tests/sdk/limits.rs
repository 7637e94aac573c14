//! Throughput and call-rate limits as AWS enforces them (kinesis-api.md §4, §5), the
//! `--limits off` switch, UpdateMaxRecordSize and DescribeLimits.
//!
//! A server's buckets start full and refill at the published rate, so whatever the scheduling,
//! over an elapsed time `t` a shard admits at most `burst + rate × t`. These tests measure `t`
//! around all their calls and assert only what holds for every `t`: never more accepted than
//! that bound, and at least one refusal whenever the demand exceeded it. Nothing depends on
//! how fast this machine happens to be, beyond a demand large enough that a refusal is certain
//! unless the calls took seconds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use aws_sdk_kinesis::Client;

use crate::common::*;

const THROTTLED: &str = "ProvisionedThroughputExceededException";
const LIMIT_EXCEEDED: &str = "LimitExceededException";
/// Per-shard write limit, records per second, and its burst (one second's worth).
const WRITE_RECORDS_PER_SECOND: f64 = 1000.0;
/// GetRecords and GetShardIterator calls per shard per second, and their burst.
const READ_CALLS_PER_SECOND: f64 = 5.0;
/// DescribeStream calls per account per second, and its burst.
const DESCRIBE_STREAM_PER_SECOND: f64 = 10.0;
const LIST_STREAMS_PER_SECOND: f64 = 5.0;
const MIB: usize = 1024 * 1024;

/// The most a bucket of `rate` per second (and a burst of one second) can admit within
/// `elapsed`, plus one for rounding at the edges of the measurement.
fn admissible(rate: f64, elapsed: Duration) -> usize {
    (rate + rate * elapsed.as_secs_f64()).floor() as usize + 1
}

fn write_throttled_message(stream: &str, shard: &str) -> String {
    format!("Rate exceeded for shard {shard} in stream {stream} under account {ACCOUNT}.")
}

fn read_throttled_message(stream: &str, shard: &str) -> String {
    format!("Rate exceeded for Shard - {ACCOUNT}/{stream}/{shard}")
}

fn entry(partition_key: &str, data: Vec<u8>) -> PutRecordsRequestEntry {
    PutRecordsRequestEntry::builder()
        .partition_key(partition_key)
        .data(Blob::new(data))
        .build()
        .unwrap()
}

/// What a burst of PutRecords calls got back: accepted payloads by sequence number, refused
/// payloads, and how long the calls took from the first send to the last answer.
struct Burst {
    accepted: BTreeMap<String, Vec<u8>>,
    refused: Vec<Vec<u8>>,
    elapsed: Duration,
}

/// Sends `requests` PutRecords of 500 small records each to a one-shard stream, all at once
/// (one task per request), and checks each answer's shape: FailedRecordCount equals the
/// entries with an ErrorCode, and every such entry carries AWS's exact code and message.
async fn put_burst(client: &Client, stream: &str, requests: usize) -> Burst {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for request in 0..requests {
        let client = client.clone();
        let stream = stream.to_owned();
        tasks.spawn(async move {
            let payloads: Vec<Vec<u8>> = (0..500)
                .map(|index| format!("burst-{request}-{index}").into_bytes())
                .collect();
            let entries = payloads
                .iter()
                .map(|data| entry("k", data.clone()))
                .collect();
            let output = client
                .put_records()
                .stream_name(&stream)
                .set_records(Some(entries))
                .send()
                .await
                .unwrap_or_else(|error| panic!("PutRecords {request}: {error:?}"));
            (payloads, output)
        });
    }
    let mut burst = Burst {
        accepted: BTreeMap::new(),
        refused: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let expected_message = write_throttled_message(stream, &shard_id(0));
    while let Some(joined) = tasks.join_next().await {
        let (payloads, output) = joined.unwrap();
        assert_eq!(output.records().len(), payloads.len(), "{output:?}");
        let mut failed = 0;
        for (data, result) in payloads.into_iter().zip(output.records()) {
            match (result.sequence_number(), result.error_code()) {
                (Some(sequence_number), None) => {
                    assert_eq!(result.shard_id(), Some(shard_id(0).as_str()));
                    assert_eq!(result.error_message(), None, "{result:?}");
                    burst.accepted.insert(sequence_number.to_owned(), data);
                }
                (None, Some(code)) => {
                    assert_eq!(code, THROTTLED, "{result:?}");
                    assert_eq!(
                        result.error_message(),
                        Some(expected_message.as_str()),
                        "{result:?}"
                    );
                    assert_eq!(result.shard_id(), None, "{result:?}");
                    failed += 1;
                    burst.refused.push(data);
                }
                _ => panic!("an entry is either accepted or refused: {result:?}"),
            }
        }
        assert_eq!(output.failed_record_count(), Some(failed), "{output:?}");
    }
    burst.elapsed = started.elapsed();
    burst
}

#[tokio::test]
async fn a_write_burst_over_1000_records_per_second_is_refused_per_entry() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "burst", 1).await;
    let requests = 6;
    let burst = put_burst(&client, "burst", requests).await;
    let sent = requests * 500;
    let bound = admissible(WRITE_RECORDS_PER_SECOND, burst.elapsed);
    assert!(
        burst.accepted.len() <= bound,
        "{} of {sent} records accepted in {:?}; a shard takes at most {bound}",
        burst.accepted.len(),
        burst.elapsed
    );
    if sent > bound {
        assert!(
            !burst.refused.is_empty(),
            "nothing refused in {:?}",
            burst.elapsed
        );
    }
    assert!(
        burst.accepted.len() >= 1000,
        "a fresh shard takes a second's quota at once, accepted {}",
        burst.accepted.len()
    );
    assert_eq!(burst.accepted.len() + burst.refused.len(), sent);

    // The shard holds exactly the accepted records: none refused, none lost.
    let stored = read_shard(&client, "burst", &shard_id(0)).await;
    let stored: BTreeMap<String, Vec<u8>> = stored
        .iter()
        .map(|record| {
            (
                record.sequence_number().to_owned(),
                record.data().as_ref().to_vec(),
            )
        })
        .collect();
    assert_eq!(stored.len(), burst.accepted.len(), "records stored");
    assert!(
        stored == burst.accepted,
        "stored records differ from those accepted"
    );
    let refused: BTreeSet<&Vec<u8>> = burst.refused.iter().collect();
    assert!(
        stored.values().all(|data| !refused.contains(data)),
        "a refused record was stored"
    );
}

#[tokio::test]
async fn put_record_over_the_byte_rate_is_an_exception() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "bytes", 1).await;
    let key = "k";
    let largest = vec![7u8; RECORD_BYTES_MAX - key.len()];
    let first_sent = Instant::now();
    client
        .put_record()
        .stream_name("bytes")
        .partition_key(key)
        .data(Blob::new(largest.clone()))
        .send()
        .await
        .expect("a full bucket takes a 1 MiB record");
    let second = client
        .put_record()
        .stream_name("bytes")
        .partition_key(key)
        .data(Blob::new(largest))
        .send()
        .await;
    // The first emptied the bucket; 1 MiB more accrues only after a second.
    if first_sent.elapsed() < Duration::from_millis(900) || second.is_err() {
        expect_error(
            second,
            THROTTLED,
            Some(&write_throttled_message("bytes", &shard_id(0))),
        );
    }
    let stored = read_shard(&client, "bytes", &shard_id(0)).await;
    assert!(
        !stored.is_empty() && stored.len() <= 2,
        "{} stored",
        stored.len()
    );
}

/// Explicit hash keys that land on each shard of a fresh `shards`-shard stream.
fn shard_keys(shards: u32) -> Vec<String> {
    expected_ranges(shards)
        .into_iter()
        .map(|(start, _)| start.to_string())
        .collect()
}

#[tokio::test]
async fn writes_at_900_records_per_second_per_shard_are_never_refused() {
    let server = Server::in_memory();
    let client = server.client();
    let shards = 2u32;
    create_stream(&client, "steady", shards as i32).await;
    let keys = shard_keys(shards);
    // 90 records per shard every 100 ms, at most one request in flight, sent only on the
    // 100 ms grid: however late an answer comes, a late slot is skipped, never made up.
    let period = Duration::from_millis(100);
    let per_shard = 90;
    let slots = 30u32;
    let started = Instant::now();
    let mut sent = 0usize;
    let mut slot = 0u32;
    while slot < slots {
        let due = started + period * slot;
        tokio::time::sleep_until(due.into()).await;
        let entries: Vec<PutRecordsRequestEntry> = keys
            .iter()
            .flat_map(|key| {
                (0..per_shard).map(move |index| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(format!("p{index}"))
                        .explicit_hash_key(key)
                        .data(Blob::new(vec![b'x'; 100]))
                        .build()
                        .unwrap()
                })
            })
            .collect();
        sent += entries.len();
        let output = client
            .put_records()
            .stream_name("steady")
            .set_records(Some(entries))
            .send()
            .await
            .unwrap_or_else(|error| panic!("PutRecords in slot {slot}: {error:?}"));
        let refused: Vec<_> = output
            .records()
            .iter()
            .filter(|entry| entry.error_code().is_some())
            .collect();
        assert!(
            refused.is_empty(),
            "slot {slot}: {} of {} refused at {:?}, e.g. {:?}",
            refused.len(),
            output.records().len(),
            started.elapsed(),
            refused.first()
        );
        assert_eq!(output.failed_record_count().unwrap_or(0), 0);
        let next = (started.elapsed().as_nanos() / period.as_nanos()) as u32 + 1;
        slot = next.max(slot + 1);
    }
    assert!(sent >= per_shard * shards as usize, "sent {sent}");
    eprintln!(
        "{sent} records on {shards} shards in {:?} without a refusal",
        started.elapsed()
    );
}

#[tokio::test]
async fn get_records_more_than_five_times_a_second_is_refused() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "reads", 1).await;
    client
        .put_record()
        .stream_name("reads")
        .partition_key("k")
        .data(Blob::new("one"))
        .send()
        .await
        .unwrap();
    let iterator = shard_iterator(
        &client,
        "reads",
        &shard_id(0),
        ShardIteratorType::TrimHorizon,
    )
    .await;
    let calls = 20;
    let started = Instant::now();
    let mut admitted = 0;
    let mut refused = 0;
    for _ in 0..calls {
        let result = client.get_records().shard_iterator(&iterator).send().await;
        if result.is_ok() {
            admitted += 1;
            continue;
        }
        expect_error(
            result,
            THROTTLED,
            Some(&read_throttled_message("reads", &shard_id(0))),
        );
        refused += 1;
    }
    let elapsed = started.elapsed();
    let bound = admissible(READ_CALLS_PER_SECOND, elapsed);
    assert!(admitted <= bound, "{admitted} GetRecords in {elapsed:?}");
    if calls > bound {
        assert!(refused > 0, "no GetRecords refused in {elapsed:?}");
    }
}

#[tokio::test]
async fn get_shard_iterator_more_than_five_times_a_second_is_refused() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "iterators", 2).await;
    let calls = 20;
    let started = Instant::now();
    let mut admitted = 0;
    let mut refused = 0;
    for _ in 0..calls {
        let result = client
            .get_shard_iterator()
            .stream_name("iterators")
            .shard_id(shard_id(1))
            .shard_iterator_type(ShardIteratorType::Latest)
            .send()
            .await;
        if result.is_ok() {
            admitted += 1;
            continue;
        }
        expect_error(
            result,
            THROTTLED,
            Some(&read_throttled_message("iterators", &shard_id(1))),
        );
        refused += 1;
    }
    let elapsed = started.elapsed();
    let bound = admissible(READ_CALLS_PER_SECOND, elapsed);
    assert!(
        admitted <= bound,
        "{admitted} GetShardIterator in {elapsed:?}"
    );
    if calls > bound {
        assert!(refused > 0, "no GetShardIterator refused in {elapsed:?}");
    }
    // The limit is per shard: the other shard still has its burst (unless seconds passed,
    // when it has it all the more).
    shard_iterator(
        &client,
        "iterators",
        &shard_id(0),
        ShardIteratorType::Latest,
    )
    .await;
}

#[tokio::test]
async fn a_large_read_refuses_the_next_reads_for_seconds() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "big-read", 1).await;
    client
        .update_max_record_size()
        .stream_arn(stream_arn("big-read"))
        .max_record_size_in_kib(10240)
        .send()
        .await
        .unwrap();
    let data = vec![3u8; 9 * MIB];
    client
        .put_record()
        .stream_name("big-read")
        .partition_key("k")
        .data(Blob::new(data.clone()))
        .send()
        .await
        .expect("a full write bucket takes a 9 MiB record, borrowing the rest");
    let iterator = shard_iterator(
        &client,
        "big-read",
        &shard_id(0),
        ShardIteratorType::TrimHorizon,
    )
    .await;
    let read_sent = Instant::now();
    let page = client
        .get_records()
        .shard_iterator(&iterator)
        .send()
        .await
        .expect("the first read is admitted");
    assert_eq!(page.records().len(), 1);
    assert!(page.records()[0].data().as_ref() == data.as_slice());
    let next = client
        .get_records()
        .shard_iterator(page.next_shard_iterator().unwrap())
        .send()
        .await;
    // 9 MiB against 2 MiB/s with 2 MiB banked: about 3.5 s in debt.
    if read_sent.elapsed() < Duration::from_secs(3) || next.is_err() {
        expect_error(
            next,
            THROTTLED,
            Some(&read_throttled_message("big-read", &shard_id(0))),
        );
    }
}

/// Sends `calls` copies of a control-plane call at once; returns (admitted, refusal messages,
/// elapsed). Every refusal must be a 400 LimitExceededException.
async fn control_burst<F, Fut, T, E>(calls: usize, call: F) -> (usize, Vec<String>, Duration)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, aws_sdk_kinesis::error::SdkError<E>>>
        + Send
        + 'static,
    T: std::fmt::Debug + Send + 'static,
    E: std::fmt::Debug + ProvideErrorMetadata + Send + 'static,
{
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..calls {
        tasks.spawn(call());
    }
    let mut admitted = 0;
    let mut refusals = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let result = joined.unwrap();
        if result.is_ok() {
            admitted += 1;
            continue;
        }
        let error = expect_error(result, LIMIT_EXCEEDED, None);
        refusals.push(error.message().unwrap_or_default().to_owned());
    }
    (admitted, refusals, started.elapsed())
}

#[tokio::test]
async fn a_control_plane_burst_gets_limit_exceeded() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "described", 1).await;
    let calls = 30;
    let (admitted, refusals, elapsed) = control_burst(calls, || {
        let client = client.clone();
        async move {
            client
                .describe_stream()
                .stream_name("described")
                .send()
                .await
        }
    })
    .await;
    let bound = admissible(DESCRIBE_STREAM_PER_SECOND, elapsed);
    assert!(
        admitted <= bound,
        "{admitted} DescribeStream in {elapsed:?}"
    );
    if calls > bound {
        assert!(
            !refusals.is_empty(),
            "no DescribeStream refused in {elapsed:?}"
        );
    }
    let expected = format!("Rate exceeded for stream described under account {ACCOUNT}.");
    assert!(
        refusals.iter().all(|message| *message == expected),
        "{refusals:?}"
    );

    // The account-wide ones name the account.
    let (admitted, refusals, elapsed) = control_burst(calls, || {
        let client = client.clone();
        async move { client.list_streams().send().await }
    })
    .await;
    let bound = admissible(LIST_STREAMS_PER_SECOND, elapsed);
    assert!(admitted <= bound, "{admitted} ListStreams in {elapsed:?}");
    if calls > bound {
        assert!(
            !refusals.is_empty(),
            "no ListStreams refused in {elapsed:?}"
        );
    }
    let expected = format!("Rate exceeded for account {ACCOUNT}.");
    assert!(
        refusals.iter().all(|message| *message == expected),
        "{refusals:?}"
    );

    // Another account has buckets of its own.
    let other = server.client_with_key("123456789012");
    other
        .list_streams()
        .send()
        .await
        .expect("another account is not throttled");
}

#[tokio::test]
async fn with_limits_off_nothing_is_throttled() {
    let server = Server::in_memory_limits(Limits::Off);
    let client = server.client();
    create_stream(&client, "free", 1).await;
    let burst = put_burst(&client, "free", 6).await;
    assert!(burst.refused.is_empty(), "{} refused", burst.refused.len());
    assert_eq!(burst.accepted.len(), 3000);
    let stored = read_shard(&client, "free", &shard_id(0)).await;
    assert_eq!(stored.len(), 3000);

    let iterator = shard_iterator(&client, "free", &shard_id(0), ShardIteratorType::Latest).await;
    for call in 0..20 {
        client
            .get_records()
            .shard_iterator(&iterator)
            .send()
            .await
            .unwrap_or_else(|error| panic!("GetRecords {call}: {error:?}"));
        client
            .get_shard_iterator()
            .stream_name("free")
            .shard_id(shard_id(0))
            .shard_iterator_type(ShardIteratorType::Latest)
            .send()
            .await
            .unwrap_or_else(|error| panic!("GetShardIterator {call}: {error:?}"));
    }
    let (admitted, refusals, _) = control_burst(30, || {
        let client = client.clone();
        async move { client.describe_stream().stream_name("free").send().await }
    })
    .await;
    assert_eq!((admitted, refusals.len()), (30, 0), "{refusals:?}");
    for _ in 0..3 {
        client.describe_limits().send().await.unwrap();
    }

    // Two 1 MiB records back to back, on one shard.
    let key = "k";
    for _ in 0..2 {
        client
            .put_record()
            .stream_name("free")
            .partition_key(key)
            .data(Blob::new(vec![1u8; RECORD_BYTES_MAX - key.len()]))
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn update_max_record_size_round_trip() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = Server::on_data_dir(data_dir.path());
    let client = server.client();
    create_stream(&client, "large", 1).await;
    let summary = |client: Client| async move {
        client
            .describe_stream_summary()
            .stream_name("large")
            .send()
            .await
            .unwrap()
            .stream_description_summary()
            .unwrap()
            .max_record_size_in_kib()
    };
    assert_eq!(summary(client.clone()).await, Some(1024));

    let key = "k";
    let record = vec![9u8; 3 * MIB];
    let refused = client
        .put_record()
        .stream_name("large")
        .partition_key(key)
        .data(Blob::new(record.clone()))
        .send()
        .await;
    expect_error(refused, "InvalidArgumentException", None);

    // Out of the model's range.
    for (kib, bound) in [
        (1023, "greater than or equal to 1024"),
        (10241, "less than or equal to 10240"),
    ] {
        let result = client
            .update_max_record_size()
            .stream_arn(stream_arn("large"))
            .max_record_size_in_kib(kib)
            .send()
            .await;
        expect_error(
            result,
            "ValidationException",
            Some(&format!(
                "1 validation error detected: Value '{kib}' at 'maxRecordSizeInKiB' failed to \
                 satisfy constraint: Member must have value {bound}"
            )),
        );
    }
    let missing = client
        .update_max_record_size()
        .stream_arn(stream_arn("nothing"))
        .max_record_size_in_kib(2048)
        .send()
        .await;
    expect_error(
        missing,
        "ResourceNotFoundException",
        Some(&stream_not_found("nothing")),
    );

    client
        .update_max_record_size()
        .stream_arn(stream_arn("large"))
        .max_record_size_in_kib(4096)
        .send()
        .await
        .expect("UpdateMaxRecordSize");
    assert_eq!(summary(client.clone()).await, Some(4096));
    // A record between 1 MiB and the new limit, with AWS limits on: it borrows burst.
    let put = client
        .put_record()
        .stream_name("large")
        .partition_key(key)
        .data(Blob::new(record.clone()))
        .send()
        .await
        .expect("a 3 MiB record fits a 4096 KiB stream");
    let too_large = client
        .put_record()
        .stream_name("large")
        .partition_key(key)
        .data(Blob::new(vec![0u8; 4 * MIB]))
        .send()
        .await;
    expect_error(too_large, "InvalidArgumentException", None);
    // One read: a 3 MiB answer puts the shard in read debt, so the next call would be refused.
    let iterator = shard_iterator(
        &client,
        "large",
        &shard_id(0),
        ShardIteratorType::TrimHorizon,
    )
    .await;
    let page = client
        .get_records()
        .shard_iterator(iterator)
        .send()
        .await
        .unwrap();
    let stored = page.records();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].sequence_number(), put.sequence_number());
    assert!(stored[0].data().as_ref() == record.as_slice());

    // Persisted: a restart keeps the stream's limit.
    server.kill();
    let server = Server::on_data_dir(data_dir.path());
    let client = server.client();
    assert_eq!(summary(client.clone()).await, Some(4096));
    client
        .update_max_record_size()
        .stream_arn(stream_arn("large"))
        .max_record_size_in_kib(1024)
        .send()
        .await
        .unwrap();
    assert_eq!(summary(client.clone()).await, Some(1024));
    let refused = client
        .put_record()
        .stream_name("large")
        .partition_key(key)
        .data(Blob::new(vec![0u8; 2 * MIB]))
        .send()
        .await;
    expect_error(refused, "InvalidArgumentException", None);
}

#[tokio::test]
async fn describe_limits_reports_the_shard_quota_it_enforces() {
    let server = Server::with_args(&["--in-memory", "--shard-limit", "5"]);
    let client = server.client();
    create_stream(&client, "three", 3).await;
    let refused = client
        .create_stream()
        .stream_name("too-many")
        .shard_count(3)
        .send()
        .await;
    expect_error(
        refused,
        LIMIT_EXCEEDED,
        Some(&format!(
            "This request would exceed the shard limit for the account {ACCOUNT} in {REGION}. \
             Current shard count for the account: 3. Limit: 5. Number of additional shards \
             that would have resulted from this request: 3. Refer to the AWS Service Limits \
             page (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for \
             current limits and how to request higher limits."
        )),
    );
    let started = Instant::now();
    let limits = client.describe_limits().send().await.unwrap();
    assert_eq!(limits.shard_limit(), 5);
    assert_eq!(limits.open_shard_count(), 3);
    assert_eq!(limits.on_demand_stream_count(), 0);
    assert_eq!(limits.on_demand_stream_count_limit(), 50);
    // DescribeLimits: one call per second per account.
    let again = client.describe_limits().send().await;
    if started.elapsed() < Duration::from_millis(900) || again.is_err() {
        expect_error(
            again,
            LIMIT_EXCEEDED,
            Some(&format!("Rate exceeded for account {ACCOUNT}.")),
        );
    }
}
