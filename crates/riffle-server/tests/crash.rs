//! Kill -9 while writes are in flight, restart on the same data directory, and demand that
//! every acknowledged record survived: same sequence number, same bytes, same per-shard order,
//! and that numbering continues above everything written before the crash.
//!
//! Method: 3 producer tasks write PutRecord and PutRecords calls of varied sizes to a 2-shard
//! stream; each record names its partition key and a per-key counter and is padded with bytes
//! derived from both, so a record is self-describing. The server (default `sync` durability: ack
//! after fdatasync) gets SIGKILL at a random moment (50 ms to 1.5 s into the load, so kills land
//! in every phase of a group commit), is restarted, and every shard is read in full. Checked
//! after each cycle, over everything written in all cycles so far:
//!
//! - every acknowledged record is there, with its sequence number, key and bytes;
//! - every record read was really sent (its bytes are exactly what the producer built for its
//!   key and counter) and appears once: nothing invented, nothing duplicated. A record that was
//!   in flight at the kill may or may not be there, as with AWS: its producer got no answer;
//! - everything a reader saw after one restart is still there, unchanged, after the next: a
//!   record becomes visible only once durable, so no crash can take back what was served;
//! - sequence numbers only grow within a shard and are never reused: writes after a restart
//!   are numbered above everything stored before it.
//!
//! The number of cycles comes from `RIFFLE_CRASH_CYCLES` (default 4, the short version CI
//! runs); `scripts/crash-loop` runs the full 100 against a release build. `RIFFLE_CRASH_SEED`
//! replays the kill moments of an earlier run (each run prints its seed).
//!
//! The server runs with `--limits off`: the producers write faster than a shard's quota and the
//! checks read each shard in quick succession, and throttling is not what this test is about.

#[path = "sdk/common.rs"]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::Client;

use common::*;

const STREAM: &str = "crash";
const SHARD_COUNT: i32 = 2;
const PRODUCERS: usize = 3;
const KEYS_PER_PRODUCER: usize = 4;
/// Cycles when `RIFFLE_CRASH_CYCLES` is not set.
const DEFAULT_CYCLES: usize = 4;
/// The shortest and longest time producers write before a kill.
const PRODUCE_TIME_MIN_MS: u64 = 50;
const PRODUCE_TIME_MAX_MS: u64 = 1_500;
/// The throttling error a server may legitimately answer with; such records are not acked.
const THROTTLED: &str = "ProvisionedThroughputExceededException";

/// One record the server acknowledged.
#[derive(Clone, Debug)]
struct Ack {
    /// The producer task that got the ack (`usize::MAX` for the checks after a restart).
    producer: usize,
    shard_id: String,
    sequence_number: String,
    partition_key: String,
    counter: u64,
    data: Vec<u8>,
}

/// What the producers share with the test.
struct Shared {
    acks: Mutex<Vec<Ack>>,
    /// Set just before the kill: failures after this are expected.
    killing: AtomicBool,
    stop: AtomicBool,
    /// Failures seen while the server should have been healthy.
    unexpected: Mutex<Vec<String>>,
}

/// A payload naming its origin, padded with bytes derived from it, so any mix-up shows.
fn payload(partition_key: &str, counter: u64, len: usize) -> Vec<u8> {
    let mut data = format!("{partition_key}|{counter}|").into_bytes();
    let mut prng = Prng::new(md5_hash_key(partition_key.as_bytes()) as u64 ^ counter);
    while data.len() < len {
        data.push(prng.next_u64() as u8);
    }
    data
}

/// Mostly small records, some medium, a few large.
fn record_len(prng: &mut Prng) -> usize {
    match prng.below(100) {
        0..=69 => 20 + prng.below(500) as usize,
        70..=98 => 1_000 + prng.below(8_000) as usize,
        _ => 64 * 1024 + prng.below(64 * 1024) as usize,
    }
}

fn note_failure(shared: &Shared, what: String) {
    if !shared.killing.load(Ordering::SeqCst) {
        shared.unexpected.lock().unwrap().push(what);
    }
}

async fn produce(
    client: Client,
    shared: Arc<Shared>,
    producer: usize,
    counters: Arc<Mutex<Vec<u64>>>,
) {
    let mut prng = Prng::new(0xC0FFEE + producer as u64 * 7919 + now_millis() as u64);
    while !shared.stop.load(Ordering::SeqCst) {
        let batch_len = if prng.below(2) == 0 {
            1
        } else {
            2 + prng.below(8) as usize
        };
        let mut pending = Vec::with_capacity(batch_len);
        {
            let mut counters = counters.lock().unwrap();
            for _ in 0..batch_len {
                let key_index = prng.below(KEYS_PER_PRODUCER as u64) as usize;
                let partition_key = format!("p{producer}-k{key_index}");
                let counter = counters[key_index];
                counters[key_index] += 1;
                let data = payload(&partition_key, counter, record_len(&mut prng));
                pending.push((partition_key, counter, data));
            }
        }
        if batch_len == 1 {
            let (partition_key, counter, data) = pending.pop().unwrap();
            let result = client
                .put_record()
                .stream_name(STREAM)
                .partition_key(&partition_key)
                .data(Blob::new(data.clone()))
                .send()
                .await;
            match result {
                Ok(output) => shared.acks.lock().unwrap().push(Ack {
                    producer,
                    shard_id: output.shard_id().to_string(),
                    sequence_number: output.sequence_number().to_string(),
                    partition_key,
                    counter,
                    data,
                }),
                Err(error) if error.code() == Some(THROTTLED) => {}
                Err(error) => note_failure(&shared, format!("PutRecord: {error:?}")),
            }
        } else {
            let entries: Vec<PutRecordsRequestEntry> = pending
                .iter()
                .map(|(partition_key, _, data)| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(partition_key)
                        .data(Blob::new(data.clone()))
                        .build()
                        .unwrap()
                })
                .collect();
            let result = client
                .put_records()
                .stream_name(STREAM)
                .set_records(Some(entries))
                .send()
                .await;
            match result {
                Ok(output) => {
                    if output.records().len() != pending.len() {
                        note_failure(&shared, format!("PutRecords result count: {output:?}"));
                        continue;
                    }
                    let mut acks = shared.acks.lock().unwrap();
                    for ((partition_key, counter, data), entry) in
                        pending.into_iter().zip(output.records())
                    {
                        match (
                            entry.shard_id(),
                            entry.sequence_number(),
                            entry.error_code(),
                        ) {
                            (Some(shard_id), Some(sequence_number), None) => acks.push(Ack {
                                producer,
                                shard_id: shard_id.to_string(),
                                sequence_number: sequence_number.to_string(),
                                partition_key,
                                counter,
                                data,
                            }),
                            (_, _, Some(THROTTLED)) => {}
                            _ => note_failure(&shared, format!("PutRecords entry: {entry:?}")),
                        }
                    }
                }
                Err(error) if error.code() == Some(THROTTLED) => {}
                Err(error) => note_failure(&shared, format!("PutRecords: {error:?}")),
            }
        }
    }
}

/// Everything one full read of the stream returned: per shard, sequence number → (partition
/// key, data).
type Seen = HashMap<String, HashMap<String, (String, Vec<u8>)>>;

/// What a record's bytes say about it: the (partition key, counter) it was built for, if its
/// bytes are exactly what [`payload`] builds for them.
fn provenance(partition_key: &str, data: &[u8]) -> Option<u64> {
    let text_end = data.iter().position(|&b| b == b'|')?;
    if &data[..text_end] != partition_key.as_bytes() {
        return None;
    }
    let rest = &data[text_end + 1..];
    let counter_end = rest.iter().position(|&b| b == b'|')?;
    let counter: u64 = std::str::from_utf8(&rest[..counter_end])
        .ok()?
        .parse()
        .ok()?;
    (payload(partition_key, counter, data.len()) == data).then_some(counter)
}

/// Reads both shards in full and checks every ack against them, every record read for
/// provenance and uniqueness, and that nothing `before` saw has gone or changed. Returns what
/// was read and the highest sequence number present per shard (acknowledged or not).
async fn verify(
    client: &Client,
    acks: &[Ack],
    before: &Seen,
    cycle: usize,
) -> (Seen, HashMap<String, String>) {
    let shards = list_all_shards(client, STREAM).await;
    assert_eq!(
        shards.len(),
        SHARD_COUNT as usize,
        "cycle {cycle}: shards after restart"
    );
    let mut highest = HashMap::new();
    let mut by_shard: Seen = HashMap::new();
    let mut written_once: HashMap<(String, u64), String> = HashMap::new();
    for shard in &shards {
        // read_shard asserts strictly increasing sequence numbers in read order.
        let records = read_shard(client, STREAM, shard.shard_id()).await;
        let mut index = HashMap::with_capacity(records.len());
        for record in &records {
            assert_sequence_number(record.sequence_number());
            let partition_key = record.partition_key().unwrap_or_default().to_string();
            let data = record.data().as_ref().to_vec();
            let Some(counter) = provenance(&partition_key, &data) else {
                panic!(
                    "cycle {cycle}: {} {} holds {} bytes no producer sent under key {partition_key}",
                    shard.shard_id(),
                    record.sequence_number(),
                    data.len()
                )
            };
            if let Some(other) = written_once.insert(
                (partition_key.clone(), counter),
                record.sequence_number().to_string(),
            ) {
                panic!(
                    "cycle {cycle}: {partition_key}#{counter} stored twice, at {other} and {}",
                    record.sequence_number()
                );
            }
            index.insert(record.sequence_number().to_string(), (partition_key, data));
        }
        if let Some(last) = records.last() {
            highest.insert(
                shard.shard_id().to_string(),
                last.sequence_number().to_string(),
            );
        }
        by_shard.insert(shard.shard_id().to_string(), index);
    }

    // What a reader saw once stays: served records were durable.
    for (shard, earlier) in before {
        let now = by_shard.get(shard);
        for (sequence_number, record) in earlier {
            assert_eq!(
                now.and_then(|index| index.get(sequence_number)),
                Some(record),
                "cycle {cycle}: {shard} {sequence_number} was read after the previous restart \
                 and is gone or changed after this one"
            );
        }
    }

    let mut lost = Vec::new();
    for ack in acks {
        let Some(index) = by_shard.get(&ack.shard_id) else {
            panic!("cycle {cycle}: ack names unknown shard {}", ack.shard_id)
        };
        match index.get(&ack.sequence_number) {
            None => lost.push(format!(
                "{} {} {}#{}",
                ack.shard_id, ack.sequence_number, ack.partition_key, ack.counter
            )),
            Some((partition_key, data)) => {
                assert_eq!(
                    partition_key, &ack.partition_key,
                    "cycle {cycle}: key of {ack:?}"
                );
                assert!(
                    data == &ack.data,
                    "cycle {cycle}: data of {} {}#{} differs ({} bytes read, {} acked)",
                    ack.sequence_number,
                    ack.partition_key,
                    ack.counter,
                    data.len(),
                    ack.data.len()
                );
            }
        }
    }
    assert!(
        lost.is_empty(),
        "cycle {cycle}: {} of {} acknowledged records are missing after kill -9, e.g. {:?}",
        lost.len(),
        acks.len(),
        &lost[..lost.len().min(10)]
    );

    // Each producer waits for one call before making the next, so on each shard its acks, in
    // the order it received them, must carry increasing sequence numbers.
    let mut last_per_producer_shard: HashMap<(usize, &str), &Ack> = HashMap::new();
    for ack in acks {
        if let Some(previous) = last_per_producer_shard.insert((ack.producer, &ack.shard_id), ack) {
            assert_eq!(
                compare_sequence_numbers(&previous.sequence_number, &ack.sequence_number),
                std::cmp::Ordering::Less,
                "cycle {cycle}: {} was acknowledged after {} but numbered below it",
                ack.sequence_number,
                previous.sequence_number
            );
        }
    }

    // Per partition key (always the same shard), acknowledged counters increase with the
    // sequence number: acknowledged order is stored order.
    let mut per_key: BTreeMap<&str, Vec<&Ack>> = BTreeMap::new();
    for ack in acks {
        per_key.entry(&ack.partition_key).or_default().push(ack);
    }
    for (key, mut key_acks) in per_key {
        let shard = &key_acks[0].shard_id;
        assert!(
            key_acks.iter().all(|ack| &ack.shard_id == shard),
            "key {key} changed shard"
        );
        key_acks.sort_by(|a, b| compare_sequence_numbers(&a.sequence_number, &b.sequence_number));
        for pair in key_acks.windows(2) {
            assert!(
                pair[0].counter < pair[1].counter,
                "cycle {cycle}: key {key}: counter {} at {} but {} at later {}",
                pair[0].counter,
                pair[0].sequence_number,
                pair[1].counter,
                pair[1].sequence_number
            );
        }
    }
    (by_shard, highest)
}

/// A seed for the kill moments: `RIFFLE_CRASH_SEED` or the clock.
fn seed() -> u64 {
    std::env::var("RIFFLE_CRASH_SEED")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| now_millis() as u64)
}

fn cycles() -> usize {
    std::env::var("RIFFLE_CRASH_CYCLES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(DEFAULT_CYCLES)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_kill_9() {
    let started = Instant::now();
    let data_dir = tempfile::tempdir().unwrap();
    let mut server = Server::on_data_dir_limits(data_dir.path(), Limits::Off);
    create_stream(&server.client(), STREAM, SHARD_COUNT).await;
    let mut all_acks: Vec<Ack> = Vec::new();
    // Per-key counters persist across cycles so every (key, counter) is written once.
    let counters: Vec<Arc<Mutex<Vec<u64>>>> = (0..PRODUCERS)
        .map(|_| Arc::new(Mutex::new(vec![0; KEYS_PER_PRODUCER])))
        .collect();

    let seed = seed();
    let cycles = cycles();
    eprintln!("crash loop: {cycles} cycles, RIFFLE_CRASH_SEED={seed}");
    let mut timing = Prng::new(seed);
    let mut seen = Seen::new();
    for cycle in 0..cycles {
        let client = server.client();
        let shared = Arc::new(Shared {
            acks: Mutex::new(Vec::new()),
            killing: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            unexpected: Mutex::new(Vec::new()),
        });
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|producer| {
                tokio::spawn(produce(
                    client.clone(),
                    Arc::clone(&shared),
                    producer,
                    Arc::clone(&counters[producer]),
                ))
            })
            .collect();
        let produce_time = Duration::from_millis(
            PRODUCE_TIME_MIN_MS + timing.below(PRODUCE_TIME_MAX_MS - PRODUCE_TIME_MIN_MS + 1),
        );
        tokio::time::sleep(produce_time).await;

        // SIGKILL with requests in flight: no shutdown path runs.
        shared.killing.store(true, Ordering::SeqCst);
        server.kill();
        shared.stop.store(true, Ordering::SeqCst);
        for producer in producers {
            producer.await.unwrap();
        }
        let unexpected = shared.unexpected.lock().unwrap().clone();
        assert!(
            unexpected.is_empty(),
            "cycle {cycle}: failures before the kill: {unexpected:#?}"
        );
        let acks = std::mem::take(&mut *shared.acks.lock().unwrap());
        all_acks.extend(acks);

        server = Server::on_data_dir_limits(data_dir.path(), Limits::Off);
        let client = server.client();
        let (read, highest) = verify(&client, &all_acks, &seen, cycle).await;
        seen = read;

        // New writes continue above everything stored before the crash, on both shards.
        for (shard_index, hash_key) in [(0u32, 0u128), (1, u128::MAX)] {
            let partition_key = format!("after-restart-{cycle}-{shard_index}");
            let data = payload(&partition_key, 0, 100);
            let put = client
                .put_record()
                .stream_name(STREAM)
                .partition_key(&partition_key)
                .explicit_hash_key(hash_key.to_string())
                .data(Blob::new(data.clone()))
                .send()
                .await
                .unwrap();
            assert_eq!(put.shard_id(), shard_id(shard_index));
            if let Some(previous) = highest.get(put.shard_id()) {
                assert_sequence_before(previous, put.sequence_number());
            }
            all_acks.push(Ack {
                producer: usize::MAX,
                shard_id: put.shard_id().to_string(),
                sequence_number: put.sequence_number().to_string(),
                partition_key,
                counter: 0,
                data,
            });
        }
        eprintln!(
            "cycle {cycle}: killed after {produce_time:?}; {} acknowledged and {} stored \
             records verified ({:?} elapsed)",
            all_acks.len(),
            seen.values().map(HashMap::len).sum::<usize>(),
            started.elapsed()
        );
    }
    assert!(
        all_acks.len() >= 20 * cycles,
        "only {} records acknowledged in {cycles} cycles: the load never got going",
        all_acks.len()
    );
}
