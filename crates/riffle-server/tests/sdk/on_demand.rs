//! ON_DEMAND streams size themselves (issue 3, item 4): under a rising write load an ON_DEMAND
//! stream gains shards and stops throttling, with AWS's limits on.
//!
//! Method: a producer writes PutRecords of 500 records at a paced rate, first well within four
//! shards' capacity, then at 6,000 records/s — one and a half times what four shards take. The
//! server measures shard loads every 200 ms (`--on-demand-interval-ms`), so it must split the
//! hot shards; the test then waits for a two-second window in which no record was throttled.
//! Nothing is asserted about *when* throttling happens (a fast scaler may split before any
//! record is refused), only that the stream grew and that throttling stopped.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamMode, StreamModeDetails};
use aws_sdk_kinesis::Client;

use crate::common::*;

const BATCH: usize = 500;

/// Sends one PutRecords of `BATCH` records with fresh random keys; returns (accepted, throttled).
async fn put_batch(client: &Client, stream: &str, prng: &mut Prng) -> (usize, usize) {
    let entries: Vec<PutRecordsRequestEntry> = (0..BATCH)
        .map(|_| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("key-{}", prng.next_u64()))
                .data(Blob::new(prng.bytes(100)))
                .build()
                .unwrap()
        })
        .collect();
    let output = client
        .put_records()
        .stream_name(stream)
        .set_records(Some(entries))
        .send()
        .await
        .unwrap_or_else(|error| panic!("PutRecords: {error:?}"));
    let mut throttled = 0;
    for result in output.records() {
        match result.error_code() {
            None => {}
            Some("ProvisionedThroughputExceededException") => throttled += 1,
            Some(other) => panic!("unexpected per-record error {other}"),
        }
    }
    (BATCH - throttled, throttled)
}

/// Writes at `records_per_second` until `done` says stop (checked every 500 ms window) or
/// `deadline`; returns whether `done` was satisfied. `done` gets the window's throttled count.
async fn write_at(
    client: &Client,
    stream: &str,
    records_per_second: f64,
    deadline: Duration,
    prng: &mut Prng,
    mut done: impl FnMut(usize) -> bool,
) -> bool {
    let started = Instant::now();
    let window = Duration::from_millis(500);
    let mut window_start = Instant::now();
    let mut window_throttled = 0;
    let mut sent = 0usize;
    while started.elapsed() < deadline {
        let due = started + Duration::from_secs_f64(sent as f64 / records_per_second);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let (_, throttled) = put_batch(client, stream, prng).await;
        sent += BATCH;
        window_throttled += throttled;
        if window_start.elapsed() >= window {
            if done(window_throttled) {
                return true;
            }
            window_start = Instant::now();
            window_throttled = 0;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_demand_stream_under_rising_load_adds_shards_and_stops_throttling() {
    let server = Server::in_memory_with(&["--limits", "aws", "--on-demand-interval-ms", "200"]);
    let client = server.client();
    let stream = "rising";
    client
        .create_stream()
        .stream_name(stream)
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("CreateStream ON_DEMAND");
    assert_eq!(list_all_shards(&client, stream).await.len(), 4);
    let mut prng = Prng::new(7);

    // Within capacity (300 records/s per shard): nothing throttled, nothing split.
    let mut throttled_early = 0;
    write_at(
        &client,
        stream,
        1_200.0,
        Duration::from_secs(2),
        &mut prng,
        |throttled| {
            throttled_early += throttled;
            false
        },
    )
    .await;
    assert_eq!(throttled_early, 0, "1,200 records/s fits four shards");
    let open = |shards: &[aws_sdk_kinesis::types::Shard]| {
        shards
            .iter()
            .filter(|shard| {
                shard
                    .sequence_number_range()
                    .and_then(|range| range.ending_sequence_number())
                    .is_none()
            })
            .count()
    };
    assert_eq!(
        open(&list_all_shards(&client, stream).await),
        4,
        "no split under a light load"
    );

    // 1.5 times four shards' capacity: the stream must grow until a window of 2 s (four
    // 500 ms windows in a row) passes without a throttled record.
    let mut quiet_windows = 0;
    let settled = write_at(
        &client,
        stream,
        6_000.0,
        Duration::from_secs(30),
        &mut prng,
        |throttled| {
            quiet_windows = if throttled == 0 { quiet_windows + 1 } else { 0 };
            quiet_windows >= 4
        },
    )
    .await;
    let shards = list_all_shards(&client, stream).await;
    let open_count = open(&shards);
    assert!(
        settled,
        "throttling never stopped at 6,000 records/s; {open_count} open shards\n{}",
        server.log_tail()
    );
    assert!(
        open_count >= 6,
        "6,000 records/s needs at least six shards, found {open_count}"
    );
    // The grown stream is still a proper partition of the key space.
    let mut ranges: Vec<(u128, u128)> = shards
        .iter()
        .filter(|shard| {
            shard
                .sequence_number_range()
                .and_then(|range| range.ending_sequence_number())
                .is_none()
        })
        .map(hash_range)
        .collect();
    ranges.sort();
    assert_eq!(ranges.first().map(|range| range.0), Some(0));
    assert_eq!(ranges.last().map(|range| range.1), Some(u128::MAX));
    for pair in ranges.windows(2) {
        assert_eq!(pair[0].1 + 1, pair[1].0, "open shards must be contiguous");
    }
    let summary = client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    let summary = summary.stream_description_summary().unwrap();
    assert_eq!(summary.stream_status().as_str(), "ACTIVE");
    assert_eq!(summary.open_shard_count(), open_count as i32);
}
