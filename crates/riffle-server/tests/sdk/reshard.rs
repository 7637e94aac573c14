//! Resharding as AWS does it: SplitShard, MergeShards, UpdateShardCount and UpdateStreamMode,
//! with lineage that readers can follow (kinesis-api.md §3.3, §3.4, §3.6, §5).
//!
//! The central test writes from several concurrent producers while the stream is split, merged
//! and re-scaled, then reads it the way KCL does (every shard to its end before its children,
//! both parents before a merge child, children found through `ChildShards`) and demands that
//! every acknowledged record comes back exactly once, with its sequence number, in per-key
//! order. The others pin the pieces: how a closed shard ends, the hash-range invariants after
//! random reshards, ListShards filters over a reshard history, AWS's error types and texts,
//! the UPDATING window, the account shard limit, and what survives a restart.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::operation::get_records::GetRecordsOutput;
use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{
    ChildShard, PutRecordsRequestEntry, Record, ScalingType, Shard, ShardFilter, ShardFilterType,
    ShardIteratorType, StreamMode, StreamModeDetails, StreamStatus,
};
use aws_sdk_kinesis::Client;

use crate::common::*;

/// Flags every server in this file gets. These tests reshard many times a second, above the
/// control-plane rates AWS allows (SplitShard and MergeShards 5/s per account), which is not
/// what they test: limits are off. The quotas (shard limit, ten scalings a day) still apply.
const SERVER_FLAGS: &[&str] = &["--limits", "off"];

/// What a throttled data-plane call answers; such a record is not stored, and is retried.
const THROTTLED: &str = "ProvisionedThroughputExceededException";
const THROTTLE_BACKOFF: Duration = Duration::from_millis(100);
const THROTTLE_RETRIES_MAX: u32 = 100;
/// GetRecords calls allowed to read one shard to its end.
const READ_CALLS_MAX: usize = 1_000;

fn server() -> Server {
    Server::in_memory_with(SERVER_FLAGS)
}

fn server_with(flags: &[&str]) -> Server {
    let mut all = SERVER_FLAGS.to_vec();
    all.extend_from_slice(flags);
    Server::in_memory_with(&all)
}

fn durable_server(dir: &std::path::Path) -> Server {
    Server::on_data_dir_with(dir, SERVER_FLAGS)
}

// ----- Reshard calls -----

async fn split(client: &Client, stream: &str, shard: &str, key: u128) {
    client
        .split_shard()
        .stream_name(stream)
        .shard_to_split(shard)
        .new_starting_hash_key(key.to_string())
        .send()
        .await
        .unwrap_or_else(|error| panic!("SplitShard {stream}/{shard} at {key}: {error:?}"));
}

async fn merge(client: &Client, stream: &str, lower: &str, upper: &str) {
    client
        .merge_shards()
        .stream_name(stream)
        .shard_to_merge(lower)
        .adjacent_shard_to_merge(upper)
        .send()
        .await
        .unwrap_or_else(|error| panic!("MergeShards {stream} {lower}+{upper}: {error:?}"));
}

/// UpdateShardCount with UNIFORM_SCALING; returns (CurrentShardCount, TargetShardCount).
async fn rescale(client: &Client, stream: &str, target: i32) -> (i32, i32) {
    let output = client
        .update_shard_count()
        .stream_name(stream)
        .target_shard_count(target)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap_or_else(|error| panic!("UpdateShardCount {stream} to {target}: {error:?}"));
    assert_eq!(output.stream_name(), Some(stream));
    assert_eq!(output.stream_arn(), Some(stream_arn(stream).as_str()));
    (
        output.current_shard_count().expect("CurrentShardCount"),
        output.target_shard_count().expect("TargetShardCount"),
    )
}

async fn set_mode(client: &Client, stream: &str, mode: StreamMode) {
    client
        .update_stream_mode()
        .stream_arn(stream_arn(stream))
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(mode)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_or_else(|error| panic!("UpdateStreamMode {stream}: {error:?}"));
}

// ----- Facts about a listing -----

fn is_closed(shard: &Shard) -> bool {
    ending_sequence_number(shard).is_some()
}

fn starting_sequence_number(shard: &Shard) -> &str {
    shard
        .sequence_number_range()
        .unwrap_or_else(|| panic!("no SequenceNumberRange in {shard:?}"))
        .starting_sequence_number()
}

fn ending_sequence_number(shard: &Shard) -> Option<&str> {
    shard
        .sequence_number_range()
        .unwrap_or_else(|| panic!("no SequenceNumberRange in {shard:?}"))
        .ending_sequence_number()
}

/// Open shards sorted by starting hash key.
fn open_shards(listing: &[Shard]) -> Vec<Shard> {
    let mut open: Vec<Shard> = listing
        .iter()
        .filter(|shard| !is_closed(shard))
        .cloned()
        .collect();
    open.sort_by_key(|shard| hash_range(shard).0);
    open
}

fn open_ranges(listing: &[Shard]) -> Vec<(u128, u128)> {
    open_shards(listing).iter().map(hash_range).collect()
}

fn ids(shards: &[Shard]) -> Vec<String> {
    shards
        .iter()
        .map(|shard| shard.shard_id().to_string())
        .collect()
}

fn ordinal(shard_id: &str) -> u32 {
    shard_id
        .strip_prefix("shardId-")
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("{shard_id:?} is not shardId-NNNNNNNNNNNN"))
}

fn find<'a>(listing: &'a [Shard], id: &str) -> &'a Shard {
    listing
        .iter()
        .find(|shard| shard.shard_id() == id)
        .unwrap_or_else(|| panic!("{id} is not listed: {:?}", ids(listing)))
}

/// A key strictly inside a shard, so SplitShard accepts it.
fn middle(shard: &Shard) -> u128 {
    let (start, end) = hash_range(shard);
    start + (end - start) / 2 + 1
}

/// A child as `ChildShards` describes it: (ShardId, ParentShards, HashKeyRange).
type ChildView = (String, Vec<String>, (u128, u128));

/// The children of `parent` according to ListShards, as GetRecords must report them.
fn listed_children(listing: &[Shard], parent: &str) -> Vec<ChildView> {
    let mut children: Vec<ChildView> = listing
        .iter()
        .filter(|shard| {
            shard.parent_shard_id() == Some(parent)
                || shard.adjacent_parent_shard_id() == Some(parent)
        })
        .map(|shard| {
            let parents = [shard.parent_shard_id(), shard.adjacent_parent_shard_id()]
                .into_iter()
                .flatten()
                .map(str::to_string)
                .collect();
            (shard.shard_id().to_string(), parents, hash_range(shard))
        })
        .collect();
    children.sort();
    children
}

fn child_views(children: &[ChildShard]) -> Vec<ChildView> {
    let mut views: Vec<ChildView> = children
        .iter()
        .map(|child| {
            let range = child
                .hash_key_range()
                .unwrap_or_else(|| panic!("ChildShard without HashKeyRange: {child:?}"));
            let parse = |key: &str| {
                key.parse::<u128>()
                    .unwrap_or_else(|_| panic!("hash key {key:?} in {child:?}"))
            };
            (
                child.shard_id().to_string(),
                child.parent_shards().to_vec(),
                (
                    parse(range.starting_hash_key()),
                    parse(range.ending_hash_key()),
                ),
            )
        })
        .collect();
    views.sort();
    views
}

/// What must hold of any listing after any sequence of reshards (§3.1, §3.4):
/// - shard ids are `shardId-` + 12 digits, ordinals 0..n with none missing, listed in order;
/// - the open shards partition [0, 2^128): sorted by StartingHashKey the first starts at 0,
///   each starts at the previous end + 1, the last ends at 2^128 - 1;
/// - a closed shard was either split (exactly two children naming it as ParentShardId only,
///   partitioning its range) or merged (one child with ParentShardId = the lower and
///   AdjacentParentShardId = the upper of two adjacent shards, covering exactly both);
/// - parents are listed, closed, and older (lower ordinal) than their children;
/// - StartingSequenceNumber is 56 digits; closed shards end at or above it.
fn assert_lineage_invariants(listing: &[Shard]) {
    for (index, shard) in listing.iter().enumerate() {
        assert_eq!(
            shard.shard_id(),
            shard_id(index as u32),
            "ids in order: {:?}",
            ids(listing)
        );
        let (start, end) = hash_range(shard);
        assert!(start <= end, "empty range: {shard:?}");
        assert_sequence_number(starting_sequence_number(shard));
        if let Some(ending) = ending_sequence_number(shard) {
            assert_sequence_number(ending);
            assert_ne!(
                compare_sequence_numbers(starting_sequence_number(shard), ending),
                std::cmp::Ordering::Greater,
                "{shard:?}"
            );
        }
    }

    let open = open_ranges(listing);
    assert!(!open.is_empty(), "no open shard: {listing:?}");
    assert_eq!(open[0].0, 0, "the first open shard starts at 0: {open:?}");
    for pair in open.windows(2) {
        assert_eq!(
            pair[0].1.checked_add(1),
            Some(pair[1].0),
            "open shards are contiguous: {open:?}"
        );
    }
    assert_eq!(
        open.last().unwrap().1,
        u128::MAX,
        "the last open shard ends at 2^128-1: {open:?}"
    );

    for shard in listing {
        for parent_id in [shard.parent_shard_id(), shard.adjacent_parent_shard_id()]
            .into_iter()
            .flatten()
        {
            let parent = find(listing, parent_id);
            assert!(
                is_closed(parent),
                "parent {parent_id} is closed: {parent:?}"
            );
            assert!(
                ordinal(parent_id) < ordinal(shard.shard_id()),
                "{parent_id} is older than its child {}",
                shard.shard_id()
            );
        }
        if shard.adjacent_parent_shard_id().is_some() {
            assert!(
                shard.parent_shard_id().is_some(),
                "an adjacent parent without a parent: {shard:?}"
            );
        }
        let children: Vec<&Shard> = listing
            .iter()
            .filter(|child| {
                child.parent_shard_id() == Some(shard.shard_id())
                    || child.adjacent_parent_shard_id() == Some(shard.shard_id())
            })
            .collect();
        if !is_closed(shard) {
            assert!(children.is_empty(), "an open shard has children: {shard:?}");
            continue;
        }
        let (start, end) = hash_range(shard);
        match children.as_slice() {
            [left, right]
                if left.adjacent_parent_shard_id().is_none()
                    && right.adjacent_parent_shard_id().is_none() =>
            {
                let (mut a, mut b) = (hash_range(left), hash_range(right));
                if a.0 > b.0 {
                    std::mem::swap(&mut a, &mut b);
                }
                assert_eq!(
                    (a.0, a.1.checked_add(1), b.1),
                    (start, Some(b.0), end),
                    "split children of {} partition it: {left:?} {right:?}",
                    shard.shard_id()
                );
            }
            [child] if child.adjacent_parent_shard_id().is_some() => {
                let lower = find(listing, child.parent_shard_id().unwrap());
                let upper = find(listing, child.adjacent_parent_shard_id().unwrap());
                let (lower_range, upper_range) = (hash_range(lower), hash_range(upper));
                assert_eq!(
                    lower_range.1.checked_add(1),
                    Some(upper_range.0),
                    "ParentShardId is the lower, AdjacentParentShardId the upper: {child:?}"
                );
                assert_eq!(
                    hash_range(child),
                    (lower_range.0, upper_range.1),
                    "a merge child covers exactly both parents: {child:?}"
                );
            }
            other => panic!(
                "closed shard {} must have two split children or one merge child, has {other:?}",
                shard.shard_id()
            ),
        }
    }
}

/// Everything listed before a reshard is listed after it unchanged, except that open shards
/// may have closed (gaining an EndingSequenceNumber); closed shards keep theirs.
fn assert_history_kept(before: &[Shard], after: &[Shard]) {
    assert!(after.len() >= before.len());
    for (old, new) in before.iter().zip(after) {
        assert_eq!(old.shard_id(), new.shard_id());
        assert_eq!(old.hash_key_range(), new.hash_key_range());
        assert_eq!(old.parent_shard_id(), new.parent_shard_id());
        assert_eq!(
            old.adjacent_parent_shard_id(),
            new.adjacent_parent_shard_id()
        );
        assert_eq!(starting_sequence_number(old), starting_sequence_number(new));
        if let Some(ending) = ending_sequence_number(old) {
            assert_eq!(Some(ending), ending_sequence_number(new), "{new:?}");
        }
    }
}

// ----- Reading -----

async fn get_records_patiently(
    client: &Client,
    iterator: &str,
    limit: Option<i32>,
) -> GetRecordsOutput {
    for attempt in 0.. {
        match client
            .get_records()
            .shard_iterator(iterator)
            .set_limit(limit)
            .send()
            .await
        {
            Ok(page) => return page,
            Err(error) if error.code() == Some(THROTTLED) && attempt < THROTTLE_RETRIES_MAX => {
                tokio::time::sleep(THROTTLE_BACKOFF).await;
            }
            Err(error) => panic!("GetRecords: {error:?}"),
        }
    }
    unreachable!()
}

async fn iterator_patiently(
    client: &Client,
    stream: &str,
    shard: &str,
    kind: ShardIteratorType,
    sequence_number: Option<&str>,
) -> String {
    for attempt in 0.. {
        match client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard)
            .shard_iterator_type(kind.clone())
            .set_starting_sequence_number(sequence_number.map(str::to_string))
            .send()
            .await
        {
            Ok(output) => {
                return output
                    .shard_iterator()
                    .expect("GetShardIterator returns an iterator")
                    .to_string()
            }
            Err(error) if error.code() == Some(THROTTLED) && attempt < THROTTLE_RETRIES_MAX => {
                tokio::time::sleep(THROTTLE_BACKOFF).await;
            }
            Err(error) => panic!("GetShardIterator {stream}/{shard} {kind:?}: {error:?}"),
        }
    }
    unreachable!()
}

/// What reading one shard found.
struct ShardRead {
    records: Vec<Record>,
    /// The `ChildShards` of the response that ended a closed shard; `None` for an open shard
    /// read until caught up.
    children: Option<Vec<ChildShard>>,
    /// GetRecords responses it took.
    pages: usize,
}

/// Reads from `iterator`: a closed shard until a response comes without NextShardIterator, an
/// open one until a response is empty and caught up. On every response: NextShardIterator and
/// ChildShards never come alone (the end carries ChildShards, nothing else does), and sequence
/// numbers strictly increase.
async fn read_from(
    client: &Client,
    mut iterator: String,
    closed: bool,
    limit: Option<i32>,
) -> ShardRead {
    let mut records: Vec<Record> = Vec::new();
    for pages in 1..=READ_CALLS_MAX {
        let page = get_records_patiently(client, &iterator, limit).await;
        for record in page.records() {
            if let Some(previous) = records.last() {
                assert_sequence_before(previous.sequence_number(), record.sequence_number());
            }
            records.push(record.clone());
        }
        match page.next_shard_iterator() {
            None => {
                let children = page.child_shards.clone().unwrap_or_else(|| {
                    panic!("no NextShardIterator must come with ChildShards: {page:?}")
                });
                assert!(!children.is_empty(), "a shard ends into children: {page:?}");
                assert!(closed, "an open shard ended: {page:?}");
                return ShardRead {
                    records,
                    children: Some(children),
                    pages,
                };
            }
            Some(next) => {
                assert!(
                    page.child_shards.is_none(),
                    "ChildShards only with the end of a closed shard: {page:?}"
                );
                if !closed && page.records().is_empty() && page.millis_behind_latest() == Some(0) {
                    return ShardRead {
                        records,
                        children: None,
                        pages,
                    };
                }
                iterator = next.to_string();
            }
        }
    }
    panic!("shard not read to its end in {READ_CALLS_MAX} GetRecords calls");
}

/// Every record of `shard` lies within its SequenceNumberRange.
fn assert_within_sequence_range(shard: &Shard, records: &[Record]) {
    for record in records {
        assert_ne!(
            compare_sequence_numbers(starting_sequence_number(shard), record.sequence_number()),
            std::cmp::Ordering::Greater,
            "record below StartingSequenceNumber of {shard:?}: {record:?}"
        );
        if let Some(ending) = ending_sequence_number(shard) {
            assert_ne!(
                compare_sequence_numbers(record.sequence_number(), ending),
                std::cmp::Ordering::Greater,
                "record above EndingSequenceNumber of {shard:?}: {record:?}"
            );
        }
    }
}

/// Reads a whole stream the way KCL does: from the shards ListShards returns with no listed
/// parent, each shard read from TRIM_HORIZON to its end before its children, a merge child only
/// once both parents are done; children are found through each end's `ChildShards`, which
/// must equal what ListShards says. Every listed shard must be reached. Returns the shards in
/// the order read, with their records.
async fn read_lineage(
    client: &Client,
    stream: &str,
    listing: &[Shard],
    limit: Option<i32>,
) -> Vec<(String, Vec<Record>)> {
    let by_id: HashMap<&str, &Shard> = listing
        .iter()
        .map(|shard| (shard.shard_id(), shard))
        .collect();
    let listed_parents = |shard: &Shard| -> Vec<String> {
        [shard.parent_shard_id(), shard.adjacent_parent_shard_id()]
            .into_iter()
            .flatten()
            .filter(|id| by_id.contains_key(id))
            .map(str::to_string)
            .collect()
    };
    let mut ready: VecDeque<String> = listing
        .iter()
        .filter(|shard| listed_parents(shard).is_empty())
        .map(|shard| shard.shard_id().to_string())
        .collect();
    let mut waiting: BTreeSet<String> = BTreeSet::new();
    let mut done: HashSet<String> = HashSet::new();
    let mut read = Vec::new();
    while let Some(id) = ready.pop_front() {
        let shard = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("ChildShards named {id}, which ListShards does not list"));
        let iterator =
            iterator_patiently(client, stream, &id, ShardIteratorType::TrimHorizon, None).await;
        let shard_read = read_from(client, iterator, is_closed(shard), limit).await;
        assert_within_sequence_range(shard, &shard_read.records);
        match &shard_read.children {
            Some(children) => {
                assert_eq!(
                    child_views(children),
                    listed_children(listing, &id),
                    "ChildShards at the end of {id} against ListShards"
                );
                waiting.extend(children.iter().map(|child| child.shard_id().to_string()));
            }
            None => assert!(listed_children(listing, &id).is_empty()),
        }
        assert!(done.insert(id.clone()), "{id} read twice");
        read.push((id, shard_read.records));
        let now_ready: Vec<String> = waiting
            .iter()
            .filter(|child| {
                by_id
                    .get(child.as_str())
                    .is_some_and(|shard| listed_parents(shard).iter().all(|p| done.contains(p)))
            })
            .cloned()
            .collect();
        for child in now_ready {
            waiting.remove(&child);
            ready.push_back(child);
        }
    }
    assert!(waiting.is_empty(), "children never ready: {waiting:?}");
    let all: HashSet<String> = ids(listing).into_iter().collect();
    assert_eq!(done, all, "lineage reaches every listed shard");
    read
}

// ----- Writing -----

/// One record the server acknowledged.
#[derive(Clone, Debug)]
struct Ack {
    key: String,
    counter: u64,
    shard_id: String,
    sequence_number: String,
}

fn payload(key: &str, counter: u64) -> Vec<u8> {
    format!("{key}#{counter}").into_bytes()
}

fn parse_payload(data: &[u8]) -> (String, u64) {
    let text = std::str::from_utf8(data).expect("payloads are UTF-8");
    let (key, counter) = text.rsplit_once('#').expect("payload is key#counter");
    (key.to_string(), counter.parse().expect("counter"))
}

/// PutRecord, retried while throttled; returns (ShardId, SequenceNumber).
async fn put(
    client: &Client,
    stream: &str,
    key: &str,
    data: Vec<u8>,
    explicit: Option<u128>,
) -> (String, String) {
    for attempt in 0.. {
        match client
            .put_record()
            .stream_name(stream)
            .partition_key(key)
            .set_explicit_hash_key(explicit.map(|key| key.to_string()))
            .data(Blob::new(data.clone()))
            .send()
            .await
        {
            Ok(output) => {
                return (
                    output.shard_id().to_string(),
                    output.sequence_number().to_string(),
                )
            }
            Err(error) if error.code() == Some(THROTTLED) && attempt < THROTTLE_RETRIES_MAX => {
                tokio::time::sleep(THROTTLE_BACKOFF).await;
            }
            Err(error) => panic!("PutRecord {stream}/{key}: {error:?}"),
        }
    }
    unreachable!()
}

/// What the producers share with the test.
struct Producers {
    acks: Mutex<Vec<Ack>>,
    stop: AtomicBool,
    failures: Mutex<Vec<String>>,
}

const PRODUCERS: usize = 4;
const KEYS_PER_PRODUCER: usize = 3;
/// Pause between a producer's calls: ~100 calls/s each at most, a few hundred records/s per
/// shard in all, well under AWS's 1,000 records/s per shard.
const PRODUCER_PACE: Duration = Duration::from_millis(10);

/// One producer: owns its keys, writes `key#counter` records strictly in order per key (the
/// next record of a key only after the previous one was acknowledged), every third call a
/// PutRecords of several of its keys (each at most once, so a throttled entry can be retried
/// without reordering), the others PutRecord.
async fn produce(client: Client, stream: String, shared: Arc<Producers>, producer: usize) {
    let keys: Vec<String> = (0..KEYS_PER_PRODUCER)
        .map(|k| format!("p{producer}-k{k}"))
        .collect();
    let mut counters = vec![0u64; keys.len()];
    let mut prng = Prng::new(0x5EED + producer as u64);
    let mut calls = 0u64;
    let fail = |what: String| shared.failures.lock().unwrap().push(what);
    while !shared.stop.load(Ordering::SeqCst) {
        calls += 1;
        if calls.is_multiple_of(3) {
            let mut chosen: Vec<usize> = (0..keys.len()).filter(|_| prng.below(3) != 0).collect();
            if chosen.is_empty() {
                chosen.push(prng.below(keys.len() as u64) as usize);
            }
            let entries: Vec<PutRecordsRequestEntry> = chosen
                .iter()
                .map(|&k| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(&keys[k])
                        .data(Blob::new(payload(&keys[k], counters[k])))
                        .build()
                        .unwrap()
                })
                .collect();
            match client
                .put_records()
                .stream_name(&stream)
                .set_records(Some(entries))
                .send()
                .await
            {
                Ok(output) => {
                    if output.records().len() != chosen.len() {
                        fail(format!("PutRecords answered {output:?} for {chosen:?}"));
                        return;
                    }
                    for (&k, entry) in chosen.iter().zip(output.records()) {
                        match (
                            entry.error_code(),
                            entry.shard_id(),
                            entry.sequence_number(),
                        ) {
                            (None, Some(shard), Some(sequence)) => {
                                shared.acks.lock().unwrap().push(Ack {
                                    key: keys[k].clone(),
                                    counter: counters[k],
                                    shard_id: shard.to_string(),
                                    sequence_number: sequence.to_string(),
                                });
                                counters[k] += 1;
                            }
                            (Some(THROTTLED), _, _) => {}
                            _ => {
                                fail(format!("PutRecords entry for {}: {entry:?}", keys[k]));
                                return;
                            }
                        }
                    }
                }
                Err(error) if error.code() == Some(THROTTLED) => {
                    tokio::time::sleep(THROTTLE_BACKOFF).await
                }
                Err(error) => {
                    fail(format!("PutRecords: {error:?}"));
                    return;
                }
            }
        } else {
            let k = prng.below(keys.len() as u64) as usize;
            match client
                .put_record()
                .stream_name(&stream)
                .partition_key(&keys[k])
                .data(Blob::new(payload(&keys[k], counters[k])))
                .send()
                .await
            {
                Ok(output) => {
                    shared.acks.lock().unwrap().push(Ack {
                        key: keys[k].clone(),
                        counter: counters[k],
                        shard_id: output.shard_id().to_string(),
                        sequence_number: output.sequence_number().to_string(),
                    });
                    counters[k] += 1;
                }
                Err(error) if error.code() == Some(THROTTLED) => {
                    tokio::time::sleep(THROTTLE_BACKOFF).await
                }
                Err(error) => {
                    fail(format!("PutRecord {}: {error:?}", keys[k]));
                    return;
                }
            }
        }
        tokio::time::sleep(PRODUCER_PACE).await;
    }
}

/// Checks a lineage read against the acknowledgements: every acked record read exactly once,
/// from the shard that acked it, with the acked sequence number, in the shard whose range
/// holds its key's MD5; no record read that was not acked; per key, counters in read order
/// are exactly 0, 1, 2, … (nothing lost, duplicated or reordered across parents and children).
fn assert_reads_match_acks(listing: &[Shard], read: &[(String, Vec<Record>)], acks: &[Ack]) {
    let mut found: HashMap<(String, u64), (String, String)> = HashMap::new();
    let mut order: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (shard_id, records) in read {
        let (start, end) = hash_range(find(listing, shard_id));
        for record in records {
            let (key, counter) = parse_payload(record.data().as_ref());
            assert_eq!(record.partition_key(), Some(key.as_str()), "{record:?}");
            let hash = md5_hash_key(key.as_bytes());
            assert!(
                start <= hash && hash <= end,
                "{key} (hash {hash}) read from {shard_id} [{start}, {end}]"
            );
            let previous = found.insert(
                (key.clone(), counter),
                (shard_id.clone(), record.sequence_number().to_string()),
            );
            assert!(
                previous.is_none(),
                "{key}#{counter} read twice: {previous:?} and {shard_id}"
            );
            order.entry(key).or_default().push(counter);
        }
    }
    let mut acked_per_key: BTreeMap<String, u64> = BTreeMap::new();
    for ack in acks {
        let got = found
            .get(&(ack.key.clone(), ack.counter))
            .unwrap_or_else(|| panic!("acknowledged record never read: {ack:?}"));
        assert_eq!(
            got,
            &(ack.shard_id.clone(), ack.sequence_number.clone()),
            "read where it was acknowledged: {ack:?}"
        );
        *acked_per_key.entry(ack.key.clone()).or_default() += 1;
    }
    assert_eq!(
        found.len(),
        acks.len(),
        "records read that were never acknowledged"
    );
    for (key, counters) in &order {
        let expected: Vec<u64> = (0..acked_per_key[key]).collect();
        assert_eq!(counters, &expected, "records of {key} in the order written");
    }
}

// ----- 1. Writes during resharding -----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn split_and_merge_under_concurrent_producers_lose_and_reorder_nothing() {
    writes_during_reshards(&server()).await;
}

/// The same on a durable server, where acknowledgements and the parents' seals wait for
/// fdatasync (group commit), not only for write(2).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn split_and_merge_under_concurrent_producers_with_fsync() {
    let dir = tempfile::tempdir().unwrap();
    writes_during_reshards(&durable_server(dir.path())).await;
}

async fn writes_during_reshards(server: &Server) {
    const STREAM: &str = "busy";
    /// Writing time between two reshards.
    const STEP: Duration = Duration::from_millis(250);
    let client = server.client();
    create_stream(&client, STREAM, 2).await;

    let shared = Arc::new(Producers {
        acks: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
        failures: Mutex::new(Vec::new()),
    });
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|producer| {
            tokio::spawn(produce(
                server.client(),
                STREAM.to_string(),
                Arc::clone(&shared),
                producer,
            ))
        })
        .collect();
    let pause = || tokio::time::sleep(STEP);
    // The producers must be writing before the first reshard, so the original shards hold
    // records too.
    let deadline = Instant::now() + Duration::from_secs(30);
    while shared.acks.lock().unwrap().len() < 40 && shared.failures.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the producers are not writing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let listing = list_all_shards(&client, STREAM).await;
    split(&client, STREAM, &shard_id(0), middle(&listing[0])).await; // -> 2, 3
    pause().await;
    split(&client, STREAM, &shard_id(1), middle(&listing[1])).await; // -> 4, 5
    pause().await;
    merge(&client, STREAM, &shard_id(2), &shard_id(3)).await; // -> 6 = shard 0's range
    pause().await;
    assert_eq!(rescale(&client, STREAM, 6).await, (3, 6));
    assert_eq!(
        open_ranges(&list_all_shards(&client, STREAM).await),
        expected_ranges(6)
    );
    pause().await;
    assert_eq!(rescale(&client, STREAM, 3).await, (6, 3));
    assert_eq!(
        open_ranges(&list_all_shards(&client, STREAM).await),
        expected_ranges(3)
    );
    pause().await;
    let open = open_shards(&list_all_shards(&client, STREAM).await);
    merge(&client, STREAM, open[0].shard_id(), open[1].shard_id()).await;
    pause().await;
    assert_eq!(rescale(&client, STREAM, 4).await, (2, 4));
    pause().await;

    shared.stop.store(true, Ordering::SeqCst);
    for producer in producers {
        producer.await.expect("producer task");
    }
    let failures = shared.failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "producer failures: {failures:#?}");
    let acks = shared.acks.lock().unwrap().clone();

    let listing = list_all_shards(&client, STREAM).await;
    assert_lineage_invariants(&listing);
    assert_eq!(open_ranges(&listing), expected_ranges(4));
    assert_eq!(
        &ids(&listing)[..7],
        &(0..7).map(shard_id).collect::<Vec<_>>()[..]
    );
    assert_eq!(
        find(&listing, &shard_id(6)).parent_shard_id(),
        Some(shard_id(2).as_str())
    );
    assert_eq!(
        find(&listing, &shard_id(6)).adjacent_parent_shard_id(),
        Some(shard_id(3).as_str())
    );
    let summary = client
        .describe_stream_summary()
        .stream_name(STREAM)
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary
            .stream_description_summary()
            .unwrap()
            .open_shard_count(),
        4
    );

    // The writes really spanned the reshards: the first shards, the merge child and the last
    // generation all acknowledged records.
    assert!(
        acks.len() >= 100,
        "only {} records acknowledged",
        acks.len()
    );
    let acked_shards: HashSet<&str> = acks.iter().map(|ack| ack.shard_id.as_str()).collect();
    for id in [shard_id(0), shard_id(1), shard_id(6)] {
        assert!(
            acked_shards.contains(id.as_str()),
            "no write acknowledged by {id}"
        );
    }
    assert!(
        open_shards(&listing)
            .iter()
            .any(|shard| acked_shards.contains(shard.shard_id())),
        "no write acknowledged by the final shards"
    );
    for ack in &acks {
        assert_sequence_number(&ack.sequence_number);
    }

    // Small pages, so most shards take several GetRecords calls.
    let read = read_lineage(&client, STREAM, &listing, Some(40)).await;
    assert_reads_match_acks(&listing, &read, &acks);
    eprintln!(
        "{} records from {PRODUCERS} producers across {} shards, read back in lineage order",
        acks.len(),
        listing.len()
    );
}

// ----- 2. How a closed shard ends -----

#[tokio::test]
async fn closed_shard_returns_its_records_then_ends_with_child_shards() {
    const STREAM: &str = "ends";
    let server = server();
    let client = server.client();
    create_stream(&client, STREAM, 1).await;
    let mut written = Vec::new();
    for i in 0..7 {
        let key = format!("key-{i}");
        written.push(put(&client, STREAM, &key, payload(&key, 0), None).await);
    }
    // An iterator taken while the shard was open, at its tip, then two more records.
    let latest_before = iterator_patiently(
        &client,
        STREAM,
        &shard_id(0),
        ShardIteratorType::Latest,
        None,
    )
    .await;
    for i in 7..9 {
        let key = format!("key-{i}");
        written.push(put(&client, STREAM, &key, payload(&key, 0), None).await);
    }
    assert!(written.iter().all(|(shard, _)| shard == &shard_id(0)));
    let before = list_all_shards(&client, STREAM).await;
    let half = 1u128 << 127;
    split(&client, STREAM, &shard_id(0), half).await;

    let listing = list_all_shards(&client, STREAM).await;
    assert_eq!(ids(&listing), [shard_id(0), shard_id(1), shard_id(2)]);
    assert_history_kept(&before, &listing);
    assert_lineage_invariants(&listing);
    let parent = &listing[0];
    assert_eq!(hash_range(&listing[1]), (0, half - 1));
    assert_eq!(hash_range(&listing[2]), (half, u128::MAX));
    for child in &listing[1..] {
        assert_eq!(child.parent_shard_id(), Some(shard_id(0).as_str()));
        assert_eq!(child.adjacent_parent_shard_id(), None);
        assert_eq!(ending_sequence_number(child), None, "children are open");
        assert_sequence_number(starting_sequence_number(child));
    }
    let ending = ending_sequence_number(parent)
        .expect("a split parent has an EndingSequenceNumber")
        .to_string();
    for (_, sequence_number) in &written {
        assert_sequence_before(sequence_number, &ending);
    }
    // DescribeStream shows the same shards, closed parent included.
    let described = client
        .describe_stream()
        .stream_name(STREAM)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.stream_description().unwrap().shards(),
        listing.as_slice()
    );
    assert_eq!(
        described.stream_description().unwrap().stream_status(),
        &StreamStatus::Active
    );

    // The parent's remaining records, page by page, then the end with ChildShards.
    let expected_children = listed_children(&listing, &shard_id(0));
    assert_eq!(expected_children.len(), 2);
    let iterator = iterator_patiently(
        &client,
        STREAM,
        &shard_id(0),
        ShardIteratorType::TrimHorizon,
        None,
    )
    .await;
    let read = read_from(&client, iterator, true, Some(3)).await;
    let sequence_numbers: Vec<String> = read
        .records
        .iter()
        .map(|record| record.sequence_number().to_string())
        .collect();
    let acked: Vec<String> = written
        .iter()
        .map(|(_, sequence)| sequence.clone())
        .collect();
    assert_eq!(sequence_numbers, acked);
    assert!(read.pages >= 3, "9 records in pages of 3");
    assert_eq!(
        child_views(read.children.as_ref().unwrap()),
        expected_children
    );
    // The iterator from before the split reads what came after it, then the end.
    let read = read_from(&client, latest_before, true, None).await;
    let got: Vec<&str> = read.records.iter().map(Record::sequence_number).collect();
    assert_eq!(got, &acked[7..]);
    assert_eq!(
        child_views(read.children.as_ref().unwrap()),
        expected_children
    );
    // A page limit that stops exactly at the last record: the end may come with it or next.
    let iterator = iterator_patiently(
        &client,
        STREAM,
        &shard_id(0),
        ShardIteratorType::TrimHorizon,
        None,
    )
    .await;
    let read = read_from(&client, iterator, true, Some(9)).await;
    assert_eq!(read.records.len(), 9);
    assert_eq!(
        child_views(read.children.as_ref().unwrap()),
        expected_children
    );

    // Iterators at or past the end end at once, with the same ChildShards.
    let last = acked.last().unwrap();
    for (kind, sequence_number) in [
        (ShardIteratorType::Latest, None),
        (ShardIteratorType::AfterSequenceNumber, Some(last.as_str())),
    ] {
        let iterator =
            iterator_patiently(&client, STREAM, &shard_id(0), kind.clone(), sequence_number).await;
        let page = get_records_patiently(&client, &iterator, None).await;
        assert!(page.records().is_empty(), "{kind:?}: {page:?}");
        assert_eq!(page.next_shard_iterator(), None, "{kind:?}: {page:?}");
        assert_eq!(
            child_views(page.child_shards.as_deref().unwrap_or_default()),
            expected_children,
            "{kind:?}"
        );
    }
    // AT_SEQUENCE_NUMBER of the last record: that record, then the end.
    let iterator = iterator_patiently(
        &client,
        STREAM,
        &shard_id(0),
        ShardIteratorType::AtSequenceNumber,
        Some(last),
    )
    .await;
    let read = read_from(&client, iterator, true, None).await;
    assert_eq!(read.records.len(), 1);
    assert_eq!(read.records[0].sequence_number(), last);
    // AT_TIMESTAMP after the last record: the end at once.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let iterator = client
        .get_shard_iterator()
        .stream_name(STREAM)
        .shard_id(shard_id(0))
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .timestamp(DateTime::from_millis(now_millis() - 5))
        .send()
        .await
        .unwrap()
        .shard_iterator()
        .unwrap()
        .to_string();
    let page = get_records_patiently(&client, &iterator, None).await;
    assert!(page.records().is_empty());
    assert_eq!(page.next_shard_iterator(), None);
    assert_eq!(child_views(page.child_shards()), expected_children);

    // New writes go to the children, numbered from their StartingSequenceNumber up.
    let mut child_writes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in 0..12 {
        let key = format!("after-{i}");
        let (shard, sequence) = put(&client, STREAM, &key, payload(&key, 0), None).await;
        assert_eq!(
            shard,
            shard_for_hash_key(&listing[1..], md5_hash_key(key.as_bytes()))
        );
        assert_ne!(
            compare_sequence_numbers(starting_sequence_number(find(&listing, &shard)), &sequence),
            std::cmp::Ordering::Greater
        );
        if let Some(previous) = child_writes.get(&shard).and_then(|seqs| seqs.last()) {
            assert_sequence_before(previous, &sequence);
        }
        child_writes.entry(shard).or_default().push(sequence);
    }
    // Records with explicit hash keys in shard 1's range, then shard 1 splits again: a shard
    // closed with records and shard 3 closed with none.
    let quarter = 1u128 << 126;
    let mut in_one = Vec::new();
    for explicit in [0, quarter - 1, quarter, half - 1] {
        let (shard, sequence) =
            put(&client, STREAM, "x", b"explicit".to_vec(), Some(explicit)).await;
        assert_eq!(shard, shard_id(1), "hash key {explicit}");
        in_one.push(sequence);
    }
    split(&client, STREAM, &shard_id(1), quarter).await; // -> 3 [0, q-1], 4 [q, half-1]
    merge(&client, STREAM, &shard_id(3), &shard_id(4)).await; // -> 5 = shard 1's range
    let listing = list_all_shards(&client, STREAM).await;
    assert_lineage_invariants(&listing);
    assert_eq!(hash_range(find(&listing, &shard_id(5))), (0, half - 1));
    // Shard 3 closed without a record: TRIM_HORIZON ends at once into the merge child, whose
    // ParentShards name both parents, lower first.
    let iterator = iterator_patiently(
        &client,
        STREAM,
        &shard_id(3),
        ShardIteratorType::TrimHorizon,
        None,
    )
    .await;
    let page = get_records_patiently(&client, &iterator, None).await;
    assert!(page.records().is_empty());
    assert_eq!(page.next_shard_iterator(), None);
    assert_eq!(
        child_views(page.child_shards()),
        [(shard_id(5), vec![shard_id(3), shard_id(4)], (0, half - 1))]
    );
    // Shard 1 holds every record acked by it, then ends into 3 and 4.
    let iterator = iterator_patiently(
        &client,
        STREAM,
        &shard_id(1),
        ShardIteratorType::TrimHorizon,
        None,
    )
    .await;
    let read = read_from(&client, iterator, true, None).await;
    let mut expected_one: Vec<String> = child_writes.get(&shard_id(1)).cloned().unwrap_or_default();
    expected_one.extend(in_one);
    expected_one.sort_by(|a, b| compare_sequence_numbers(a, b));
    let got: Vec<&str> = read.records.iter().map(Record::sequence_number).collect();
    assert_eq!(got, expected_one);
    assert_eq!(
        child_views(read.children.as_ref().unwrap()),
        [
            (shard_id(3), vec![shard_id(1)], (0, quarter - 1)),
            (shard_id(4), vec![shard_id(1)], (quarter, half - 1)),
        ]
    );
    // The DescribeStream view agrees once more.
    let described = client
        .describe_stream()
        .stream_name(STREAM)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.stream_description().unwrap().shards(),
        listing.as_slice()
    );
}

// ----- 3. Hash ranges after random reshards -----

#[tokio::test]
async fn random_reshards_keep_the_key_space_partitioned_and_routed() {
    const STREAM: &str = "random";
    const OPERATIONS: usize = 14;
    let server = server();
    let client = server.client();
    create_stream(&client, STREAM, 2).await;
    let seed = std::env::var("RESHARD_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(20_261_201u64);
    let mut prng = Prng::new(seed);
    let random_u128 =
        |prng: &mut Prng| (u128::from(prng.next_u64()) << 64) | u128::from(prng.next_u64());
    let mut rescales = 0;
    let mut routed: Vec<(u128, String, String)> = Vec::new();
    let mut listing = list_all_shards(&client, STREAM).await;
    for step in 0..OPERATIONS {
        let open = open_shards(&listing);
        let next = listing.len() as u32;
        let choice = prng.below(10);
        let what;
        if choice < 5 || open.len() == 1 {
            // Split a random open shard at a random key strictly inside it.
            let wide: Vec<&Shard> = open
                .iter()
                .filter(|shard| {
                    let (start, end) = hash_range(shard);
                    end - start >= 3
                })
                .collect();
            let shard = wide[prng.below(wide.len() as u64) as usize];
            let (start, end) = hash_range(shard);
            let key = start + 2 + random_u128(&mut prng) % (end - start - 2);
            split(&client, STREAM, shard.shard_id(), key).await;
            what = format!("split {} at {key}", shard.shard_id());
            let after = list_all_shards(&client, STREAM).await;
            assert_eq!(after.len() as u32, next + 2, "{what}");
            for (child, range) in [(next, (start, key - 1)), (next + 1, (key, end))] {
                let child = find(&after, &shard_id(child));
                assert_eq!(hash_range(child), range, "{what}");
                assert_eq!(child.parent_shard_id(), Some(shard.shard_id()), "{what}");
                assert_eq!(child.adjacent_parent_shard_id(), None, "{what}");
            }
            assert_history_kept(&listing, &after);
            listing = after;
        } else if choice < 8 || rescales == 3 {
            // Merge a random adjacent pair of open shards.
            let at = prng.below(open.len() as u64 - 1) as usize;
            let (lower, upper) = (&open[at], &open[at + 1]);
            merge(&client, STREAM, lower.shard_id(), upper.shard_id()).await;
            what = format!("merge {} and {}", lower.shard_id(), upper.shard_id());
            let after = list_all_shards(&client, STREAM).await;
            assert_eq!(after.len() as u32, next + 1, "{what}");
            let child = find(&after, &shard_id(next));
            assert_eq!(
                hash_range(child),
                (hash_range(lower).0, hash_range(upper).1)
            );
            assert_eq!(child.parent_shard_id(), Some(lower.shard_id()), "{what}");
            assert_eq!(
                child.adjacent_parent_shard_id(),
                Some(upper.shard_id()),
                "{what}"
            );
            assert_history_kept(&listing, &after);
            listing = after;
        } else {
            let current = open.len() as i32;
            let low = (current + 1) / 2;
            let high = (2 * current).min(current + 4);
            let target = low + prng.below((high - low + 1) as u64) as i32;
            what = format!("UpdateShardCount {current} -> {target}");
            assert_eq!(
                rescale(&client, STREAM, target).await,
                (current, target),
                "{what}"
            );
            rescales += 1;
            let after = list_all_shards(&client, STREAM).await;
            assert_eq!(
                open_ranges(&after),
                expected_ranges(target as u32),
                "{what}"
            );
            assert_history_kept(&listing, &after);
            listing = after;
        }
        eprintln!("step {step}: {what}");
        assert_lineage_invariants(&listing);
        let open = open_shards(&listing);
        let summary = client
            .describe_stream_summary()
            .stream_name(STREAM)
            .send()
            .await
            .unwrap();
        assert_eq!(
            summary
                .stream_description_summary()
                .unwrap()
                .open_shard_count(),
            open.len() as i32,
            "after {what}"
        );
        let limits = client.describe_limits().send().await.unwrap();
        assert_eq!(limits.open_shard_count(), open.len() as i32, "after {what}");

        // Routing agrees with the listing at both ends of every open range.
        let targets: Vec<(u128, String)> = open
            .iter()
            .flat_map(|shard| {
                let (start, end) = hash_range(shard);
                [start, end].map(|key| (key, shard.shard_id().to_string()))
            })
            .collect();
        let entries: Vec<PutRecordsRequestEntry> = targets
            .iter()
            .map(|(key, _)| {
                PutRecordsRequestEntry::builder()
                    .partition_key("routed")
                    .explicit_hash_key(key.to_string())
                    .data(Blob::new(format!("{step}:{key}")))
                    .build()
                    .unwrap()
            })
            .collect();
        let output = client
            .put_records()
            .stream_name(STREAM)
            .set_records(Some(entries))
            .send()
            .await
            .unwrap();
        assert_eq!(output.failed_record_count(), Some(0), "{output:?}");
        for ((key, expected), entry) in targets.iter().zip(output.records()) {
            assert_eq!(
                entry.shard_id(),
                Some(expected.as_str()),
                "hash key {key} after {what}"
            );
            routed.push((
                *key,
                expected.clone(),
                entry.sequence_number().unwrap().to_string(),
            ));
        }
    }

    // Every routed record is where it was acknowledged.
    let read = read_lineage(&client, STREAM, &listing, None).await;
    let found: HashMap<&str, &str> = read
        .iter()
        .flat_map(|(shard, records)| {
            records
                .iter()
                .map(move |record| (record.sequence_number(), shard.as_str()))
        })
        .collect();
    assert_eq!(found.len(), routed.len());
    for (key, shard, sequence) in &routed {
        assert_eq!(
            found.get(sequence.as_str()),
            Some(&shard.as_str()),
            "hash key {key}"
        );
    }
}

// ----- 4. ListShards filters over a reshard history -----

fn filter(kind: ShardFilterType) -> ShardFilter {
    ShardFilter::builder().r#type(kind).build().unwrap()
}

fn filter_at(kind: ShardFilterType, at_ms: i64) -> ShardFilter {
    ShardFilter::builder()
        .r#type(kind)
        .timestamp(DateTime::from_millis(at_ms))
        .build()
        .unwrap()
}

async fn listed_ids(client: &Client, stream: &str, shard_filter: ShardFilter) -> Vec<String> {
    let output = client
        .list_shards()
        .stream_name(stream)
        .shard_filter(shard_filter.clone())
        .send()
        .await
        .unwrap_or_else(|error| panic!("ListShards {shard_filter:?}: {error:?}"));
    assert_eq!(output.next_token(), None);
    ids(output.shards())
}

#[tokio::test]
async fn list_shards_filters_after_several_reshards() {
    const STREAM: &str = "history";
    /// Separates each reshard from the timestamps sampled around it.
    const GAP: Duration = Duration::from_millis(60);
    let server = server();
    let client = server.client();
    create_stream(&client, STREAM, 2).await;
    let listing = list_all_shards(&client, STREAM).await;
    tokio::time::sleep(GAP).await;
    let t1 = now_millis(); // shards 0, 1 open
    tokio::time::sleep(GAP).await;
    split(&client, STREAM, &shard_id(0), middle(&listing[0])).await; // 0 -> 2, 3
    tokio::time::sleep(GAP).await;
    let t2 = now_millis(); // 1, 2, 3 open
    tokio::time::sleep(GAP).await;
    merge(&client, STREAM, &shard_id(2), &shard_id(3)).await; // 2 + 3 -> 4
    tokio::time::sleep(GAP).await;
    let t3 = now_millis(); // 1, 4 open
    tokio::time::sleep(GAP).await;
    split(&client, STREAM, &shard_id(1), middle(&listing[1])).await; // 1 -> 5, 6
    tokio::time::sleep(GAP).await;
    let t4 = now_millis(); // 4, 5, 6 open

    let all: Vec<String> = (0..7).map(shard_id).collect();
    let named = |ordinals: &[u32]| ordinals.iter().map(|&o| shard_id(o)).collect::<Vec<_>>();
    let cases = [
        (filter(ShardFilterType::AtLatest), named(&[4, 5, 6])),
        (filter(ShardFilterType::FromTrimHorizon), all.clone()),
        // The trim horizon (24 h ago) predates the stream: the shards open at its creation.
        (filter(ShardFilterType::AtTrimHorizon), named(&[0, 1])),
        (
            ShardFilter::builder()
                .r#type(ShardFilterType::AfterShardId)
                .shard_id(shard_id(3))
                .build()
                .unwrap(),
            named(&[4, 5, 6]),
        ),
        (
            ShardFilter::builder()
                .r#type(ShardFilterType::AfterShardId)
                .shard_id(shard_id(6))
                .build()
                .unwrap(),
            vec![],
        ),
        // AT_TIMESTAMP: started at or before T, and still open or ended at or after T.
        (filter_at(ShardFilterType::AtTimestamp, t1), named(&[0, 1])),
        (
            filter_at(ShardFilterType::AtTimestamp, t2),
            named(&[1, 2, 3]),
        ),
        (filter_at(ShardFilterType::AtTimestamp, t3), named(&[1, 4])),
        (
            filter_at(ShardFilterType::AtTimestamp, t4),
            named(&[4, 5, 6]),
        ),
        // FROM_TIMESTAMP: closed shards that ended at or after T, and every open shard.
        (filter_at(ShardFilterType::FromTimestamp, t1), all.clone()),
        (
            filter_at(ShardFilterType::FromTimestamp, t2),
            named(&[1, 2, 3, 4, 5, 6]),
        ),
        (
            filter_at(ShardFilterType::FromTimestamp, t3),
            named(&[1, 4, 5, 6]),
        ),
        (
            filter_at(ShardFilterType::FromTimestamp, t4),
            named(&[4, 5, 6]),
        ),
        // Before the trim horizon FROM_TIMESTAMP is the trim horizon: everything.
        (
            filter_at(ShardFilterType::FromTimestamp, t1 - 48 * 3_600_000),
            all.clone(),
        ),
    ];
    for (shard_filter, expected) in cases {
        assert_eq!(
            listed_ids(&client, STREAM, shard_filter.clone()).await,
            expected,
            "{shard_filter:?} (t1..t4 = {t1}, {t2}, {t3}, {t4})"
        );
    }
    // No filter is FROM_TRIM_HORIZON.
    assert_eq!(ids(&list_all_shards(&client, STREAM).await), all);

    // A filtered listing pages on NextToken alone and keeps its filter.
    let first = client
        .list_shards()
        .stream_name(STREAM)
        .shard_filter(filter_at(ShardFilterType::FromTimestamp, t3))
        .max_results(3)
        .send()
        .await
        .unwrap();
    assert_eq!(ids(first.shards()), named(&[1, 4, 5]));
    let rest = client
        .list_shards()
        .next_token(first.next_token().expect("one more shard follows"))
        .send()
        .await
        .unwrap();
    assert_eq!(ids(rest.shards()), named(&[6]));
    assert_eq!(rest.next_token(), None);

    // DescribeStream lists every shard with the same ranges and sequence numbers.
    let described = client
        .describe_stream()
        .stream_name(STREAM)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.stream_description().unwrap().shards(),
        list_all_shards(&client, STREAM).await.as_slice()
    );
}

// ----- 5. Errors -----

#[tokio::test]
async fn split_shard_refuses_hash_keys_outside_the_shard() {
    // Values recorded against production by kinesalite: a three-shard stream.
    const STREAM: &str = "keys";
    let server = server();
    let client = server.client();
    create_stream(&client, STREAM, 3).await;
    let ranges = expected_ranges(3);
    let text = |key: &str, shard: u32| {
        let (start, end) = ranges[shard as usize];
        format!(
            "NewStartingHashKey {key} used in SplitShard() on shard {} in stream {STREAM} under \
             account {ACCOUNT} is not both greater than one plus the shard's StartingHashKey \
             {start} and less than the shard's EndingHashKey {end}.",
            shard_id(shard)
        )
    };
    let cases: Vec<(String, u32)> = vec![
        ("0".into(), 0),
        ("1".into(), 0),                    // = StartingHashKey + 1
        (ranges[0].1.to_string(), 0),       // = EndingHashKey
        (ranges[1].0.to_string(), 0),       // the next shard's start
        ((ranges[1].0 + 1).to_string(), 1), // StartingHashKey + 1 of a middle shard
        (ranges[1].0.to_string(), 1),       // = StartingHashKey
        (ranges[0].0.to_string(), 1),       // below the shard
        (u128::MAX.to_string(), 2),         // = EndingHashKey of the last shard
        ("999999999999999999999999999999999999999".into(), 2), // above 2^128
    ];
    for (key, shard) in &cases {
        let result = client
            .split_shard()
            .stream_name(STREAM)
            .shard_to_split(shard_id(*shard))
            .new_starting_hash_key(key)
            .send()
            .await;
        let error = expect_error(result, "InvalidArgumentException", Some(&text(key, *shard)));
        assert!(error.is_invalid_argument_exception());
    }
    // Nothing changed; the smallest and largest keys allowed work, and so does a shard named
    // the way AWS reads shard arguments (the number after the last '-').
    assert_eq!(list_all_shards(&client, STREAM).await.len(), 3);
    split(&client, STREAM, "whatever-0", 2).await;
    split(&client, STREAM, &shard_id(2), u128::MAX - 1).await;
    let listing = list_all_shards(&client, STREAM).await;
    assert_lineage_invariants(&listing);
    assert_eq!(hash_range(&listing[3]), (0, 1));
    assert_eq!(hash_range(&listing[4]), (2, ranges[0].1));
    assert_eq!(hash_range(&listing[5]), (ranges[2].0, u128::MAX - 2));
    assert_eq!(hash_range(&listing[6]), (u128::MAX - 1, u128::MAX));
}

#[tokio::test]
async fn reshards_of_closed_unknown_and_unparseable_shards() {
    const STREAM: &str = "named";
    let server = server();
    let client = server.client();
    create_stream(&client, STREAM, 2).await;
    split(&client, STREAM, &shard_id(0), 1 << 100).await; // -> 2, 3

    // A closed shard: neither splittable nor mergeable.
    let closed = format!(
        "Shard {} in stream {STREAM} under account {ACCOUNT} has already been merged or split, \
         and thus is not eligible for merging or splitting.",
        shard_id(0)
    );
    let result = client
        .split_shard()
        .stream_name(STREAM)
        .shard_to_split(shard_id(0))
        .new_starting_hash_key("12345")
        .send()
        .await;
    assert!(
        expect_error(result, "InvalidArgumentException", Some(&closed))
            .is_invalid_argument_exception()
    );
    for (lower, upper) in [(shard_id(0), shard_id(1)), (shard_id(3), shard_id(0))] {
        let result = client
            .merge_shards()
            .stream_name(STREAM)
            .shard_to_merge(&lower)
            .adjacent_shard_to_merge(&upper)
            .send()
            .await;
        assert!(
            expect_error(result, "InvalidArgumentException", Some(&closed))
                .is_invalid_argument_exception()
        );
    }

    // Unknown shards of a known stream, and arguments that are no shard id at all (texts as
    // production answers SplitShard / MergeShards, recorded by kinesalite).
    let not_found = |shard: &str| {
        format!("Could not find shard {shard} in stream {STREAM} under account {ACCOUNT}.")
    };
    for (argument, named) in [
        ("shardId-000000000009", shard_id(9)),
        ("shardId-5", shard_id(5)),
        ("ABKLFD8", "ABKLFD8".to_string()),
        ("2.14E4", "2.14E4".to_string()),
        ("shardId-002147483648", "shardId-002147483648".to_string()),
    ] {
        let result = client
            .split_shard()
            .stream_name(STREAM)
            .shard_to_split(argument)
            .new_starting_hash_key("12345")
            .send()
            .await;
        let error = expect_error(
            result,
            "ResourceNotFoundException",
            Some(&not_found(&named)),
        );
        assert!(error.is_resource_not_found_exception(), "split {argument}");
        let lower_missing = client
            .merge_shards()
            .stream_name(STREAM)
            .shard_to_merge(argument)
            .adjacent_shard_to_merge(shard_id(1))
            .send()
            .await;
        expect_error(
            lower_missing,
            "ResourceNotFoundException",
            Some(&not_found(&named)),
        );
        let upper_missing = client
            .merge_shards()
            .stream_name(STREAM)
            .shard_to_merge(shard_id(3))
            .adjacent_shard_to_merge(argument)
            .send()
            .await;
        expect_error(
            upper_missing,
            "ResourceNotFoundException",
            Some(&not_found(&named)),
        );
    }

    // An unknown stream names the stream.
    let result = client
        .split_shard()
        .stream_name("nowhere")
        .shard_to_split(shard_id(0))
        .new_starting_hash_key("12345")
        .send()
        .await;
    expect_error(
        result,
        "ResourceNotFoundException",
        Some(&stream_not_found("nowhere")),
    );
    let result = client
        .merge_shards()
        .stream_name("nowhere")
        .shard_to_merge(shard_id(0))
        .adjacent_shard_to_merge(shard_id(1))
        .send()
        .await;
    expect_error(
        result,
        "ResourceNotFoundException",
        Some(&stream_not_found("nowhere")),
    );
    let result = client
        .update_shard_count()
        .stream_name("nowhere")
        .target_shard_count(2)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await;
    expect_error(
        result,
        "ResourceNotFoundException",
        Some(&stream_not_found("nowhere")),
    );

    // None of it changed the stream.
    let listing = list_all_shards(&client, STREAM).await;
    assert_eq!(listing.len(), 4);
    assert_lineage_invariants(&listing);
}

#[tokio::test]
async fn merge_shards_needs_an_adjacent_pair_lower_first() {
    const STREAM: &str = "pairs";
    let server = server();
    let client = server.client();
    create_stream(&client, STREAM, 3).await;
    let text = |a: u32, b: u32| {
        format!(
            "Shards {} and {} in stream {STREAM} under account {ACCOUNT} are not an adjacent pair \
             of shards eligible for merging",
            shard_id(a),
            shard_id(b)
        )
    };
    for (a, b) in [(0, 2), (2, 0), (1, 0), (2, 1), (1, 1)] {
        let result = client
            .merge_shards()
            .stream_name(STREAM)
            .shard_to_merge(shard_id(a))
            .adjacent_shard_to_merge(shard_id(b))
            .send()
            .await;
        let error = expect_error(result, "InvalidArgumentException", Some(&text(a, b)));
        assert!(error.is_invalid_argument_exception(), "{a} + {b}");
    }
    assert_eq!(list_all_shards(&client, STREAM).await.len(), 3);
    merge(&client, STREAM, "shard-1", "shard-2").await;
    let listing = list_all_shards(&client, STREAM).await;
    assert_lineage_invariants(&listing);
    let child = find(&listing, &shard_id(3));
    assert_eq!(child.parent_shard_id(), Some(shard_id(1).as_str()));
    assert_eq!(child.adjacent_parent_shard_id(), Some(shard_id(2).as_str()));
    assert_eq!(hash_range(child), (expected_ranges(3)[1].0, u128::MAX));
}

#[tokio::test]
async fn update_shard_count_stays_within_double_and_half() {
    const STREAM: &str = "bounds";
    let server = server();
    let client = server.client();
    create_stream(&client, STREAM, 4).await;
    let refuse = |target: i32| {
        client
            .update_shard_count()
            .stream_name(STREAM)
            .target_shard_count(target)
            .scaling_type(ScalingType::UniformScaling)
            .send()
    };
    // Texts as kinesalite has them.
    for (target, text) in [
        (
            9,
            "UpdateShardCount cannot scale up over double your current open shard count. \
             Current open shard count: 4, Target shard count: 9",
        ),
        (
            1,
            "UpdateShardCount cannot scale down below half your current open shard count. \
             Current open shard count: 4, Target shard count: 1",
        ),
        (
            10_001,
            "Target shard count or number of open shards cannot be greater than 10000. \
             Current open shard count: 4, Target shard count: 10001",
        ),
    ] {
        let error = expect_error(refuse(target).await, "LimitExceededException", Some(text));
        assert!(error.is_limit_exceeded_exception(), "target {target}");
    }
    assert_eq!(list_all_shards(&client, STREAM).await.len(), 4);

    // Exactly double and exactly half are allowed, and land on the layout a new stream of
    // that many shards has.
    assert_eq!(rescale(&client, STREAM, 8).await, (4, 8));
    assert_eq!(
        open_ranges(&list_all_shards(&client, STREAM).await),
        expected_ranges(8)
    );
    assert_eq!(rescale(&client, STREAM, 4).await, (8, 4));
    let listing = list_all_shards(&client, STREAM).await;
    assert_eq!(open_ranges(&listing), expected_ranges(4));
    assert_lineage_invariants(&listing);
    // Odd counts: 4 -> 2 -> 3, where 1 is below half of 3 and 2 is not.
    assert_eq!(rescale(&client, STREAM, 2).await, (4, 2));
    assert_eq!(rescale(&client, STREAM, 3).await, (2, 3));
    assert_eq!(
        open_ranges(&list_all_shards(&client, STREAM).await),
        expected_ranges(3)
    );
    let error = expect_error(refuse(1).await, "LimitExceededException", None);
    assert!(error.is_limit_exceeded_exception());
    assert_eq!(rescale(&client, STREAM, 2).await, (3, 2));
    let listing = list_all_shards(&client, STREAM).await;
    assert_eq!(open_ranges(&listing), expected_ranges(2));
    assert_lineage_invariants(&listing);
}

#[tokio::test]
async fn update_shard_count_is_limited_to_ten_per_day() {
    const STREAM: &str = "daily";
    let server = server();
    let client = server.client();
    create_stream(&client, STREAM, 1).await;
    // Refused calls do not count.
    let refused = client
        .update_shard_count()
        .stream_name(STREAM)
        .target_shard_count(3)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await;
    expect_error(refused, "LimitExceededException", None);
    for call in 0..10 {
        let (current, target) = if call % 2 == 0 { (1, 2) } else { (2, 1) };
        assert_eq!(
            rescale(&client, STREAM, target).await,
            (current, target),
            "call {call}"
        );
    }
    let eleventh = client
        .update_shard_count()
        .stream_name(STREAM)
        .target_shard_count(2)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await;
    let error = expect_error(eleventh, "LimitExceededException", None);
    assert!(error.is_limit_exceeded_exception());
    // SplitShard and MergeShards are not UpdateShardCount.
    split(
        &client,
        STREAM,
        &shard_id(list_all_shards(&client, STREAM).await.len() as u32 - 1),
        1 << 127,
    )
    .await;
    let listing = list_all_shards(&client, STREAM).await;
    assert_lineage_invariants(&listing);
    assert_eq!(open_shards(&listing).len(), 2);
}

#[tokio::test]
async fn on_demand_streams_refuse_manual_resharding() {
    const STREAM: &str = "elastic";
    let server = server();
    let client = server.client();
    client
        .create_stream()
        .stream_name(STREAM)
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let assert_refused = |error: &dyn ProvideErrorMetadata, operation: &str| {
        assert_eq!(error.code(), Some("ValidationException"), "{operation}");
        let message = error.message().unwrap_or_default();
        assert!(
            message.contains(STREAM) && message.contains("ON_DEMAND"),
            "{operation}: {message:?}"
        );
    };
    let (error, status) = service_error(
        client
            .split_shard()
            .stream_name(STREAM)
            .shard_to_split(shard_id(0))
            .new_starting_hash_key("12345")
            .send()
            .await,
    );
    assert_eq!(status, 400);
    assert!(error.is_validation_exception());
    assert_refused(&error, "SplitShard");
    let (error, status) = service_error(
        client
            .merge_shards()
            .stream_name(STREAM)
            .shard_to_merge(shard_id(0))
            .adjacent_shard_to_merge(shard_id(1))
            .send()
            .await,
    );
    assert_eq!(status, 400);
    assert!(error.is_validation_exception());
    assert_refused(&error, "MergeShards");
    let (error, status) = service_error(
        client
            .update_shard_count()
            .stream_name(STREAM)
            .target_shard_count(5)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .await,
    );
    assert_eq!(status, 400);
    assert!(error.is_validation_exception());
    assert_refused(&error, "UpdateShardCount");
    assert_eq!(list_all_shards(&client, STREAM).await.len(), 4);

    // Switched to PROVISIONED, the same calls work.
    set_mode(&client, STREAM, StreamMode::Provisioned).await;
    split(&client, STREAM, &shard_id(0), 12345).await;
    merge(&client, STREAM, &shard_id(4), &shard_id(5)).await;
    assert_eq!(rescale(&client, STREAM, 5).await, (4, 5));
    let listing = list_all_shards(&client, STREAM).await;
    assert_lineage_invariants(&listing);
    assert_eq!(open_ranges(&listing), expected_ranges(5));
}

/// The status DescribeStreamSummary, DescribeStream and ListStreams report for a stream.
async fn statuses(client: &Client, stream: &str) -> [StreamStatus; 3] {
    let summary = client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    let described = client
        .describe_stream()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    let listed = client.list_streams().send().await.unwrap();
    let in_list = listed
        .stream_summaries()
        .iter()
        .find(|summary| summary.stream_name() == stream)
        .expect("the stream is listed");
    [
        summary
            .stream_description_summary()
            .unwrap()
            .stream_status()
            .clone(),
        described
            .stream_description()
            .unwrap()
            .stream_status()
            .clone(),
        in_list.stream_status().clone(),
    ]
}

/// The shard layout a stream shows: (every shard ListShards lists, the open ones among them,
/// the shards DescribeStream lists, DescribeStreamSummary's OpenShardCount).
async fn shown_layout(
    client: &Client,
    stream: &str,
) -> (Vec<String>, Vec<String>, Vec<String>, i32) {
    let listed = list_all_shards(client, stream).await;
    let open: Vec<Shard> = listed
        .iter()
        .filter(|shard| {
            shard
                .sequence_number_range()
                .is_some_and(|range| range.ending_sequence_number().is_none())
        })
        .cloned()
        .collect();
    let described = client
        .describe_stream()
        .stream_name(stream)
        .send()
        .await
        .unwrap()
        .stream_description()
        .unwrap()
        .shards()
        .to_vec();
    let open_count = client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .unwrap()
        .stream_description_summary()
        .unwrap()
        .open_shard_count();
    (ids(&listed), ids(&open), ids(&described), open_count)
}

/// Shard ids from ordinals.
fn shard_ids(ordinals: &[u32]) -> Vec<String> {
    ordinals.iter().map(|ordinal| shard_id(*ordinal)).collect()
}

/// Waits (at most 30 s) until all three statuses are ACTIVE, asserting they are UPDATING till
/// then.
async fn until_active(client: &Client, stream: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = statuses(client, stream).await;
        if now
            == [
                StreamStatus::Active,
                StreamStatus::Active,
                StreamStatus::Active,
            ]
        {
            return;
        }
        assert!(
            now.iter().all(|status| status == &StreamStatus::Updating),
            "UPDATING or ACTIVE everywhere: {now:?}"
        );
        assert!(
            Instant::now() < deadline,
            "still {now:?} 30 s after the reshard"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_reshard_leaves_the_stream_updating_for_the_window() {
    const STREAM: &str = "window";
    const WINDOW_MS: u64 = 3_000;
    /// The window's checks run only if they start this soon after the reshard, so a stalled
    /// machine cannot make them see ACTIVE legitimately.
    const CHECKS_WITHIN: Duration = Duration::from_millis(2_000);
    let server = server_with(&["--update-window-ms", &WINDOW_MS.to_string()]);
    let client = server.client();
    create_stream(&client, STREAM, 2).await;
    assert_eq!(
        statuses(&client, STREAM).await,
        [
            StreamStatus::Active,
            StreamStatus::Active,
            StreamStatus::Active
        ]
    );
    let (_, before_sequence) = put(&client, STREAM, "before", b"parent".to_vec(), Some(5)).await;
    split(&client, STREAM, &shard_id(0), 1 << 126).await; // -> 2, 3
    let resharded = Instant::now();

    let in_use =
        format!("Stream {STREAM} under account {ACCOUNT} not ACTIVE, instead in state UPDATING");
    let status = statuses(&client, STREAM).await;
    // AWS shows the layout from before the split until the stream is ACTIVE again.
    let layout_while_updating = shown_layout(&client, STREAM).await;
    let second_split = client
        .split_shard()
        .stream_name(STREAM)
        .shard_to_split(shard_id(1))
        .new_starting_hash_key(middle(&list_all_shards(&client, STREAM).await[1]).to_string())
        .send()
        .await;
    let second_merge = client
        .merge_shards()
        .stream_name(STREAM)
        .shard_to_merge(shard_id(2))
        .adjacent_shard_to_merge(shard_id(3))
        .send()
        .await;
    let second_count = client
        .update_shard_count()
        .stream_name(STREAM)
        .target_shard_count(2)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await;
    let mode_change = client
        .update_stream_mode()
        .stream_arn(stream_arn(STREAM))
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await;
    // Reads and writes go on while UPDATING.
    let (shard, sequence) = put(&client, STREAM, "during", b"updating".to_vec(), Some(5)).await;
    assert_eq!(shard, shard_id(2));
    let iterator = iterator_patiently(
        &client,
        STREAM,
        &shard_id(2),
        ShardIteratorType::AtSequenceNumber,
        Some(&sequence),
    )
    .await;
    let page = get_records_patiently(&client, &iterator, None).await;
    assert_eq!(page.records().len(), 1);
    if resharded.elapsed() < CHECKS_WITHIN {
        assert_eq!(
            status,
            [
                StreamStatus::Updating,
                StreamStatus::Updating,
                StreamStatus::Updating
            ]
        );
        let error = expect_error(second_split, "ResourceInUseException", Some(&in_use));
        assert!(error.is_resource_in_use_exception());
        let error = expect_error(second_merge, "ResourceInUseException", Some(&in_use));
        assert!(error.is_resource_in_use_exception());
        let error = expect_error(second_count, "ResourceInUseException", Some(&in_use));
        assert!(error.is_resource_in_use_exception());
        let error = expect_error(mode_change, "ResourceInUseException", Some(&in_use));
        assert!(error.is_resource_in_use_exception());
        assert_eq!(
            layout_while_updating,
            (
                shard_ids(&[0, 1]),
                shard_ids(&[0, 1]),
                shard_ids(&[0, 1]),
                2
            ),
            "the layout from before the split while UPDATING"
        );
    } else {
        eprintln!("the machine stalled past the UPDATING window; its checks were skipped");
    }

    // ACTIVE again after the window, with the new layout, and resharding works again.
    until_active(&client, STREAM).await;
    // The window runs from before the SplitShard response was sent; allow a slow response.
    assert!(
        resharded.elapsed() >= Duration::from_millis(WINDOW_MS - 1_000),
        "ACTIVE again only after the window"
    );
    assert_eq!(
        shown_layout(&client, STREAM).await,
        (
            shard_ids(&[0, 1, 2, 3]),
            shard_ids(&[1, 2, 3]),
            shard_ids(&[0, 1, 2, 3]),
            3
        )
    );
    // Nothing written around the window was lost: the parent ends with its record and
    // ChildShards, the child holds the one put while UPDATING.
    let parent_iterator = iterator_patiently(
        &client,
        STREAM,
        &shard_id(0),
        ShardIteratorType::TrimHorizon,
        None,
    )
    .await;
    let parent = read_from(&client, parent_iterator, true, None).await;
    assert_eq!(
        parent
            .records
            .iter()
            .map(|r| r.sequence_number())
            .collect::<Vec<_>>(),
        [before_sequence.as_str()]
    );
    let child = read_shard(&client, STREAM, &shard_id(2)).await;
    assert_eq!(
        child
            .iter()
            .map(|r| r.sequence_number())
            .collect::<Vec<_>>(),
        [sequence.as_str()]
    );

    merge(&client, STREAM, &shard_id(2), &shard_id(3)).await;
    let merged = Instant::now();
    let status = statuses(&client, STREAM).await;
    let layout_while_updating = shown_layout(&client, STREAM).await;
    if merged.elapsed() < CHECKS_WITHIN {
        assert_eq!(
            status,
            [
                StreamStatus::Updating,
                StreamStatus::Updating,
                StreamStatus::Updating
            ]
        );
        assert_eq!(
            layout_while_updating,
            (
                shard_ids(&[0, 1, 2, 3]),
                shard_ids(&[1, 2, 3]),
                shard_ids(&[0, 1, 2, 3]),
                3
            ),
            "the layout from before the merge while UPDATING"
        );
    }
    until_active(&client, STREAM).await;
    let listing = list_all_shards(&client, STREAM).await;
    assert_eq!(listing.len(), 5);
    assert_lineage_invariants(&listing);
}

#[tokio::test]
async fn the_account_shard_limit_refuses_a_split() {
    const STREAM: &str = "limited";
    let server = server_with(&["--shard-limit", "4"]);
    let client = server.client();
    create_stream(&client, STREAM, 3).await;
    split(&client, STREAM, &shard_id(0), 1 << 100).await; // 4 open: at the limit
    let limits = client.describe_limits().send().await.unwrap();
    assert_eq!((limits.shard_limit(), limits.open_shard_count()), (4, 4));
    let over = |additional: u32| {
        format!(
            "This request would exceed the shard limit for the account {ACCOUNT} in {REGION}. \
             Current shard count for the account: 4. Limit: 4. Number of additional shards that \
             would have resulted from this request: {additional}. Refer to the AWS Service Limits \
             page (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for \
             current limits and how to request higher limits."
        )
    };
    let result = client
        .split_shard()
        .stream_name(STREAM)
        .shard_to_split(shard_id(1))
        .new_starting_hash_key(middle(&list_all_shards(&client, STREAM).await[1]).to_string())
        .send()
        .await;
    let error = expect_error(result, "LimitExceededException", Some(&over(1)));
    assert!(error.is_limit_exceeded_exception());
    let result = client
        .update_shard_count()
        .stream_name(STREAM)
        .target_shard_count(6)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await;
    let (error, _) = service_error(result);
    assert!(error.is_limit_exceeded_exception());
    assert!(
        error
            .message()
            .unwrap_or_default()
            .starts_with(&over(2)[..over(2).find(" Number of").unwrap()]),
        "{error:?}"
    );
    assert_eq!(list_all_shards(&client, STREAM).await.len(), 5);

    // A merge frees a shard; then the split fits.
    merge(&client, STREAM, &shard_id(3), &shard_id(4)).await;
    split(
        &client,
        STREAM,
        &shard_id(1),
        middle(&list_all_shards(&client, STREAM).await[1]),
    )
    .await;
    let listing = list_all_shards(&client, STREAM).await;
    assert_lineage_invariants(&listing);
    assert_eq!(open_shards(&listing).len(), 4);
}

// ----- 6. Restarts -----

/// Writes `count` records for keys `k0..k9` (counters continuing from `counters`).
async fn write_round(
    client: &Client,
    stream: &str,
    counters: &mut [u64; 10],
    count: usize,
    acks: &mut Vec<Ack>,
) {
    for i in 0..count {
        let k = i % counters.len();
        let key = format!("k{k}");
        let (shard_id, sequence_number) =
            put(client, stream, &key, payload(&key, counters[k]), None).await;
        acks.push(Ack {
            key,
            counter: counters[k],
            shard_id,
            sequence_number,
        });
        counters[k] += 1;
    }
}

#[tokio::test]
async fn reshards_and_their_records_survive_a_restart() {
    const STREAM: &str = "durable";
    let dir = tempfile::tempdir().unwrap();
    let server = durable_server(dir.path());
    let client = server.client();
    create_stream(&client, STREAM, 2).await;
    let mut counters = [0u64; 10];
    let mut acks = Vec::new();
    write_round(&client, STREAM, &mut counters, 30, &mut acks).await;
    let listing = list_all_shards(&client, STREAM).await;
    split(&client, STREAM, &shard_id(0), middle(&listing[0])).await; // -> 2, 3
    write_round(&client, STREAM, &mut counters, 30, &mut acks).await;
    merge(&client, STREAM, &shard_id(2), &shard_id(3)).await; // -> 4
    write_round(&client, STREAM, &mut counters, 30, &mut acks).await;
    assert_eq!(rescale(&client, STREAM, 3).await, (2, 3));
    write_round(&client, STREAM, &mut counters, 30, &mut acks).await;

    let listing = list_all_shards(&client, STREAM).await;
    assert_lineage_invariants(&listing);
    let described = client
        .describe_stream()
        .stream_name(STREAM)
        .send()
        .await
        .unwrap();
    let read = read_lineage(&client, STREAM, &listing, None).await;
    assert_reads_match_acks(&listing, &read, &acks);
    let old_iterator = iterator_patiently(
        &client,
        STREAM,
        &shard_id(0),
        ShardIteratorType::TrimHorizon,
        None,
    )
    .await;

    server.kill();
    let server = durable_server(dir.path());
    let client = server.client();
    let after = list_all_shards(&client, STREAM).await;
    assert_eq!(after, listing, "ListShards after the restart");
    // An iterator of a closed shard from before the restart still reads it to its end.
    let old_read = read_from(&client, old_iterator, true, None).await;
    assert_eq!(old_read.records, read[0].1);
    assert_eq!(read[0].0, shard_id(0));
    assert_eq!(
        child_views(old_read.children.as_ref().unwrap()),
        listed_children(&after, &shard_id(0))
    );
    let described_after = client
        .describe_stream()
        .stream_name(STREAM)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described_after.stream_description().unwrap().shards(),
        described.stream_description().unwrap().shards()
    );
    assert_eq!(read_lineage(&client, STREAM, &after, None).await, read);

    // New writes go to the open shards (never a closed parent), numbered above what each
    // shard held before.
    let open: Vec<Shard> = open_shards(&after);
    let last_before: HashMap<&str, &str> = read
        .iter()
        .filter_map(|(shard, records)| {
            records
                .last()
                .map(|r| (shard.as_str(), r.sequence_number()))
        })
        .collect();
    let first_new = acks.len();
    write_round(&client, STREAM, &mut counters, 30, &mut acks).await;
    for ack in &acks[first_new..] {
        assert_eq!(
            ack.shard_id,
            shard_for_hash_key(&open, md5_hash_key(ack.key.as_bytes())),
            "{ack:?}"
        );
        if let Some(previous) = last_before.get(ack.shard_id.as_str()) {
            assert_sequence_before(previous, &ack.sequence_number);
        }
    }
    // And the lineage keeps growing from where it was: the next shard ids follow.
    let next = after.len() as u32;
    split(&client, STREAM, open[0].shard_id(), middle(&open[0])).await;
    let listing = list_all_shards(&client, STREAM).await;
    assert_eq!(
        ids(&listing[next as usize..]),
        [shard_id(next), shard_id(next + 1)]
    );
    assert_lineage_invariants(&listing);
    write_round(&client, STREAM, &mut counters, 20, &mut acks).await;
    let read = read_lineage(&client, STREAM, &listing, None).await;
    assert_reads_match_acks(&listing, &read, &acks);
}

async fn mode_of(client: &Client, stream: &str) -> (StreamMode, StreamMode) {
    let summary = client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    let described = client
        .describe_stream()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    (
        summary
            .stream_description_summary()
            .unwrap()
            .stream_mode_details()
            .expect("StreamModeDetails")
            .stream_mode()
            .clone(),
        described
            .stream_description()
            .unwrap()
            .stream_mode_details()
            .expect("StreamModeDetails")
            .stream_mode()
            .clone(),
    )
}

#[tokio::test]
async fn stream_mode_round_trip_survives_restarts() {
    const STREAM: &str = "modal";
    let dir = tempfile::tempdir().unwrap();
    let server = durable_server(dir.path());
    let client = server.client();
    create_stream(&client, STREAM, 2).await;
    let mut counters = [0u64; 10];
    let mut acks = Vec::new();
    write_round(&client, STREAM, &mut counters, 10, &mut acks).await;
    let listing = list_all_shards(&client, STREAM).await;
    assert_eq!(
        mode_of(&client, STREAM).await,
        (StreamMode::Provisioned, StreamMode::Provisioned)
    );

    set_mode(&client, STREAM, StreamMode::OnDemand).await;
    assert_eq!(
        mode_of(&client, STREAM).await,
        (StreamMode::OnDemand, StreamMode::OnDemand)
    );
    // Setting the mode a stream already has changes nothing.
    set_mode(&client, STREAM, StreamMode::OnDemand).await;
    server.kill();

    let server = durable_server(dir.path());
    let client = server.client();
    assert_eq!(
        mode_of(&client, STREAM).await,
        (StreamMode::OnDemand, StreamMode::OnDemand)
    );
    let listed = client.list_streams().send().await.unwrap();
    assert_eq!(
        listed.stream_summaries()[0]
            .stream_mode_details()
            .map(|details| details.stream_mode()),
        Some(&StreamMode::OnDemand)
    );
    assert_eq!(
        list_all_shards(&client, STREAM).await,
        listing,
        "the shards stay as they were"
    );
    let (error, _) = service_error(
        client
            .split_shard()
            .stream_name(STREAM)
            .shard_to_split(shard_id(0))
            .new_starting_hash_key("12345")
            .send()
            .await,
    );
    assert!(error.is_validation_exception(), "{error:?}");
    write_round(&client, STREAM, &mut counters, 10, &mut acks).await;

    set_mode(&client, STREAM, StreamMode::Provisioned).await;
    assert_eq!(
        mode_of(&client, STREAM).await,
        (StreamMode::Provisioned, StreamMode::Provisioned)
    );
    server.kill();

    let server = durable_server(dir.path());
    let client = server.client();
    assert_eq!(
        mode_of(&client, STREAM).await,
        (StreamMode::Provisioned, StreamMode::Provisioned)
    );
    split(&client, STREAM, &shard_id(0), middle(&listing[0])).await;
    write_round(&client, STREAM, &mut counters, 10, &mut acks).await;
    let listing = list_all_shards(&client, STREAM).await;
    assert_lineage_invariants(&listing);
    let read = read_lineage(&client, STREAM, &listing, None).await;
    assert_reads_match_acks(&listing, &read, &acks);
}

/// Kill -9 while producers write and the stream is split and merged as fast as it will go,
/// restart on the same directory, and read the lineage: the catalogue is consistent (the
/// invariants hold, every listed shard is reachable), every acknowledged record is there
/// exactly once where it was acknowledged, and per key the records read are 0, 1, 2, … with
/// at most the one record in flight at the kill beyond the acknowledged ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_while_resharding_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut prng = Prng::new(now_millis() as u64);
    for round in 0..2 {
        let stream = format!("killed-{round}");
        let server = durable_server(dir.path());
        let client = server.client();
        create_stream(&client, &stream, 2).await;
        let shared = Arc::new(Producers {
            acks: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            failures: Mutex::new(Vec::new()),
        });
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|producer| {
                tokio::spawn(produce(
                    server.client(),
                    stream.clone(),
                    Arc::clone(&shared),
                    producer,
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let delay = Duration::from_millis(300 + prng.below(500));
        let killer = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            server.kill();
        });
        // Reshard until the server is gone (the kill makes a call fail).
        let mut reshards = 0;
        loop {
            let Ok(page) = client.list_shards().stream_name(&stream).send().await else {
                break;
            };
            let open = open_shards(page.shards());
            let done = if open.len() < 3 || (open.len() < 8 && prng.below(2) == 0) {
                let shard = &open[prng.below(open.len() as u64) as usize];
                client
                    .split_shard()
                    .stream_name(&stream)
                    .shard_to_split(shard.shard_id())
                    .new_starting_hash_key(middle(shard).to_string())
                    .send()
                    .await
                    .is_ok()
            } else {
                let at = prng.below(open.len() as u64 - 1) as usize;
                client
                    .merge_shards()
                    .stream_name(&stream)
                    .shard_to_merge(open[at].shard_id())
                    .adjacent_shard_to_merge(open[at + 1].shard_id())
                    .send()
                    .await
                    .is_ok()
            };
            if !done {
                break;
            }
            reshards += 1;
        }
        killer.await.unwrap();
        shared.stop.store(true, Ordering::SeqCst);
        for producer in producers {
            producer.await.expect("producer task");
        }
        let acks = shared.acks.lock().unwrap().clone();
        assert!(
            reshards >= 2 && acks.len() >= 20,
            "{reshards} reshards, {} acks",
            acks.len()
        );

        let server = durable_server(dir.path());
        let client = server.client();
        let listing = list_all_shards(&client, &stream).await;
        assert_lineage_invariants(&listing);
        let read = read_lineage(&client, &stream, &listing, None).await;
        let mut found: HashMap<(String, u64), (String, String)> = HashMap::new();
        let mut order: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (shard, records) in &read {
            for record in records {
                let (key, counter) = parse_payload(record.data().as_ref());
                let place = (shard.clone(), record.sequence_number().to_string());
                assert!(found.insert((key.clone(), counter), place).is_none());
                order.entry(key).or_default().push(counter);
            }
        }
        let mut acked: BTreeMap<String, u64> = BTreeMap::new();
        for ack in &acks {
            assert_eq!(
                found.get(&(ack.key.clone(), ack.counter)),
                Some(&(ack.shard_id.clone(), ack.sequence_number.clone())),
                "acknowledged before the kill: {ack:?}"
            );
            *acked.entry(ack.key.clone()).or_default() += 1;
        }
        for (key, counters) in &order {
            let expected: Vec<u64> = (0..counters.len() as u64).collect();
            assert_eq!(counters, &expected, "records of {key}");
            let acked = acked.get(key).copied().unwrap_or(0);
            assert!(
                acked <= expected.len() as u64 && expected.len() as u64 <= acked + 1,
                "{key}: {} read, {acked} acknowledged",
                expected.len()
            );
        }
        eprintln!(
            "round {round}: {reshards} reshards, {} records acknowledged before the kill",
            acks.len()
        );
    }
}
