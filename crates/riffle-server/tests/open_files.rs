//! Open files stay bounded whatever the reshard history.
//!
//! A shard closed by a split or merge stays listed, and readable, until its data expires. Each
//! used to keep its segment file open all that time, so a stream resharded a few hundred times
//! ran a server with a default open-file limit out of descriptors, and control-plane calls
//! failed with 500 "Too many open files". Here the real binary, started with a low soft limit
//! as many systems start processes, goes through hundreds of splits and merges of one stream
//! while a sampler watches `/proc/PID/fd`: the server must raise its soft limit to the hard
//! limit at start, its descriptors must stay within a fixed bound (one per open shard, the
//! node's segment-file cache, and the process's own), and every closed shard must still
//! return every record it holds.

#[path = "sdk/common.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::Client;

use common::*;

/// Split-then-merge cycles; each closes three shards (the parent and the two children).
const CYCLES: u32 = 110;
/// The soft open-file limit the server is started with: below what one descriptor per closed
/// shard would need.
const SOFT_LIMIT: u64 = 256;
/// Segment files the node keeps open for reads at most (`riffle_log::FILE_CACHE_CAPACITY_DEFAULT`).
const FILE_CACHE_CAPACITY: usize = 128;
/// Descriptors that come and go beside those: a directory fsync, `meta.json` being replaced, a
/// read in progress whose handle the cache closed under it, the test client's connections.
const SLACK: usize = 24;

/// `(soft, hard)` of "Max open files" in a `/proc/PID/limits` file.
fn open_file_limits(pid: &str) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("proc limits");
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("a Max open files line");
    let mut fields = line["Max open files".len()..].split_whitespace();
    let soft = fields.next().expect("soft limit").to_owned();
    let hard = fields.next().expect("hard limit").to_owned();
    (soft, hard)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

async fn put(client: &Client, hash_key: u128, data: &str) {
    client
        .put_record()
        .stream_name("churn")
        .partition_key("k")
        .explicit_hash_key(hash_key.to_string())
        .data(Blob::new(data.as_bytes()))
        .send()
        .await
        .unwrap_or_else(|error| panic!("PutRecord {data}: {error:?}"));
}

/// Every record of a closed shard, from TRIM_HORIZON to its end (no NextShardIterator).
async fn read_closed_shard(client: &Client, ordinal: u32) -> Vec<String> {
    let mut iterator = Some(
        shard_iterator(
            client,
            "churn",
            &shard_id(ordinal),
            ShardIteratorType::TrimHorizon,
        )
        .await,
    );
    let mut data = Vec::new();
    let mut pages = 0;
    while let Some(current) = iterator {
        pages += 1;
        assert!(pages <= 10, "shard {ordinal} does not end");
        let page = client
            .get_records()
            .shard_iterator(current)
            .send()
            .await
            .unwrap_or_else(|error| panic!("GetRecords on shard {ordinal}: {error:?}"));
        for record in page.records() {
            data.push(String::from_utf8_lossy(record.data().as_ref()).into_owned());
        }
        iterator = page.next_shard_iterator().map(str::to_owned);
    }
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_reshards_keep_open_files_bounded_and_closed_shards_readable() {
    let (_, own_hard) = open_file_limits("self");
    let soft = own_hard
        .parse::<u64>()
        .map_or(SOFT_LIMIT, |hard| hard.min(SOFT_LIMIT));
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().to_str().expect("UTF-8 path");
    let server =
        Server::with_soft_open_file_limit(soft, &["--data-dir", data_dir, "--limits", "off"]);
    let pid = server.pid();
    let (server_soft, server_hard) = open_file_limits(&pid.to_string());

    let client = server.client();
    create_stream(&client, "churn", 1).await;
    let baseline = open_fds(pid);

    let peak = Arc::new(AtomicUsize::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(open_fds(pid), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    // Shard ordinals follow from the plan: cycle c splits the open shard 3c into 3c+1 (lower
    // half) and 3c+2 (upper half), then merges those into 3c+3. Each shard gets records
    // before it closes.
    let middle = 1u128 << 127;
    let mut expected: Vec<(u32, Vec<String>)> = Vec::new();
    for cycle in 0..CYCLES {
        let whole = 3 * cycle;
        put(&client, 0, &format!("{whole}-a")).await;
        put(&client, u128::MAX, &format!("{whole}-b")).await;
        client
            .split_shard()
            .stream_name("churn")
            .shard_to_split(shard_id(whole))
            .new_starting_hash_key(middle.to_string())
            .send()
            .await
            .unwrap_or_else(|error| panic!("cycle {cycle}: SplitShard: {error:?}"));
        put(&client, 0, &format!("{}", whole + 1)).await;
        put(&client, middle, &format!("{}", whole + 2)).await;
        client
            .merge_shards()
            .stream_name("churn")
            .shard_to_merge(shard_id(whole + 1))
            .adjacent_shard_to_merge(shard_id(whole + 2))
            .send()
            .await
            .unwrap_or_else(|error| panic!("cycle {cycle}: MergeShards: {error:?}"));
        expected.push((whole, vec![format!("{whole}-a"), format!("{whole}-b")]));
        expected.push((whole + 1, vec![format!("{}", whole + 1)]));
        expected.push((whole + 2, vec![format!("{}", whole + 2)]));
    }
    let after_reshards = open_fds(pid);

    // Every closed shard still answers all its records (each read opens its file again).
    for (ordinal, records) in &expected {
        assert_eq!(
            &read_closed_shard(&client, *ordinal).await,
            records,
            "closed shard {ordinal}"
        );
    }
    // And the open shard takes writes and reads as ever.
    let open = 3 * CYCLES;
    put(&client, 0, "last").await;
    let records = read_shard(&client, "churn", &shard_id(open)).await;
    assert_eq!(records.len(), 1);

    done.store(true, Ordering::SeqCst);
    sampler.join().expect("sampler");
    let peak = peak.load(Ordering::SeqCst);
    let bound = baseline + FILE_CACHE_CAPACITY + SLACK;
    eprintln!(
        "{} closed shards: {baseline} descriptors at start, {after_reshards} after the reshards, \
         peak {peak} (bound {bound})",
        expected.len()
    );
    assert!(
        peak <= bound,
        "the server held {peak} descriptors with {} closed shards; the bound is {bound}",
        expected.len()
    );
    // Checked last, so that a server that keeps a file per closed shard fails above for that.
    assert_eq!(
        server_soft, server_hard,
        "the server raises its soft open-file limit (started at {soft}) to the hard limit"
    );
}
