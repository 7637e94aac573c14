//! A short fuzz run of every target on each `cargo test`: the seeds (valid inputs of each
//! decoder), then mutations of them (bit flips, byte changes, cuts, insertions, splices) and
//! plain random bytes. Not coverage-guided, so it finds less than `scripts/fuzz`; it keeps the
//! targets compiling and their properties true. `RIFFLE_FUZZ_ITERATIONS` (default 1,500 per
//! target) makes it longer; `RIFFLE_FUZZ_SEED` replays a run (each run prints its seed).

use riffle_core::record::{self, NewRecord};
use riffle_fuzz::TARGETS;
use riffle_log::frame::encode_frame;
use riffle_log::{EntryMeta, FrameKind};
use riffle_proto::eventstream;
use riffle_proto::ops::OPERATIONS;
use riffle_proto::seqno::SeqNo;

struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

fn json_bodies() -> Vec<serde_json::Value> {
    use serde_json::json;
    vec![
        json!({}),
        json!({"StreamName": "s", "ShardCount": 2}),
        json!({"StreamName": "s", "Limit": 10, "ExclusiveStartShardId": "shardId-000000000000"}),
        json!({"StreamName": "s", "PartitionKey": "k", "Data": "aGVsbG8=", "ExplicitHashKey": "1"}),
        json!({"StreamName": "s", "Records": [{"PartitionKey": "k", "Data": "aGk="}]}),
        json!({"StreamName": "s", "ShardId": "shardId-000000000001", "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": 1.7e9}),
        json!({"ShardIterator": "AAAA", "Limit": 100}),
        json!({"StreamName": "s", "Tags": {"a": "b"}}),
        json!({"StreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s", "ConsumerName": "c"}),
        json!({"ConsumerARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/c:1", "ShardId": "shardId-000000000000", "StartingPosition": {"Type": "LATEST"}}),
        json!({"ShardFilter": {"Type": "AT_TIMESTAMP", "Timestamp": 1700000000}, "StreamName": "s"}),
        json!({"ResourceARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s", "Policy": "{\"Version\":\"2012-10-17\"}"}),
    ]
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let with_ops = |bodies: Vec<Vec<u8>>| -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (op, _) in OPERATIONS.iter().enumerate() {
            for body in &bodies {
                let mut seed = vec![op as u8];
                seed.extend_from_slice(body);
                out.push(seed);
            }
        }
        out
    };
    let meta = |kind, record_count| EntryMeta {
        flags: 0,
        kind,
        term: 1,
        leader: 1,
        record_count,
        ts_first_ms: 1_700_000_000_000,
        ts_max_ms: 1_700_000_000_005,
    };
    let records_payload = || {
        let mut payload = Vec::new();
        for (i, key) in ["a", "partition-key", ""].iter().enumerate() {
            let new = NewRecord {
                partition_key: key.to_string(),
                explicit_hash_key: (i == 1).then_some(u128::MAX / 3),
                data: bytes::Bytes::from(vec![i as u8; i * 40]),
            };
            record::encode(&mut payload, &new, i as u64);
        }
        payload
    };
    match target {
        "json_request" => with_ops(
            json_bodies()
                .iter()
                .map(|body| serde_json::to_vec(body).unwrap())
                .collect(),
        ),
        "cbor_request" => with_ops(
            json_bodies()
                .iter()
                .map(riffle_proto::cbor::encode_cbor)
                .collect(),
        ),
        "event_stream" => {
            let mut stream = eventstream::event(
                "SubscribeToShardEvent",
                "application/json",
                br#"{"Records":[],"ContinuationSequenceNumber":"1","MillisBehindLatest":0}"#,
            );
            stream.extend(eventstream::exception(
                "ResourceInUseException",
                "application/json",
                br#"{"message":"busy"}"#,
            ));
            vec![stream, eventstream::encode(&[], b"")]
        }
        "shard_iterator" => vec![vec![0; 40], (0..=255).collect()],
        "sequence_number" => vec![
            SeqNo::at_position(1_700_000_000, 3, 12_345, 7, 1_700_000_100)
                .encode()
                .into_bytes(),
            b"49590338271490256608559692538361571095921575989136588898".to_vec(),
            b"0".to_vec(),
        ],
        "log_frame" | "recovery_scan" => {
            let mut frames = Vec::new();
            let payload = records_payload();
            encode_frame(&mut frames, 1, &meta(FrameKind::Data, 3), &payload).unwrap();
            encode_frame(&mut frames, 2, &meta(FrameKind::Data, 3), &payload).unwrap();
            encode_frame(&mut frames, 3, &meta(FrameKind::Seal, 0), b"").unwrap();
            vec![frames]
        }
        "stored_records" => {
            let mut seed = vec![3u8];
            seed.extend(records_payload());
            vec![seed]
        }
        other => panic!("no seeds for target {other}"),
    }
}

fn mutate(input: &mut Vec<u8>, prng: &mut Prng, others: &[Vec<u8>]) {
    for _ in 0..1 + prng.below(4) {
        let len = input.len();
        match prng.below(6) {
            0 if len > 0 => {
                let at = prng.below(len);
                input[at] ^= 1 << prng.below(8);
            }
            1 if len > 0 => {
                let at = prng.below(len);
                input[at] = prng.next() as u8;
            }
            2 => input.truncate(prng.below(len + 1)),
            3 => {
                let at = prng.below(len + 1);
                let extra: Vec<u8> = (0..prng.below(16)).map(|_| prng.next() as u8).collect();
                input.splice(at..at, extra);
            }
            4 if len > 0 => {
                let start = prng.below(len);
                let end = start + prng.below(len - start + 1);
                let copy = input[start..end].to_vec();
                let at = prng.below(len + 1);
                input.splice(at..at, copy);
            }
            _ => {
                let other = &others[prng.below(others.len())];
                let cut = prng.below(input.len() + 1);
                let from = prng.below(other.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
        }
    }
}

#[test]
fn every_target_survives_seeds_mutations_and_noise() {
    let iterations: usize = std::env::var("RIFFLE_FUZZ_ITERATIONS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1_500);
    let seed: u64 = std::env::var("RIFFLE_FUZZ_SEED")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("fuzz smoke: {iterations} inputs per target, RIFFLE_FUZZ_SEED={seed}");
    for (name, target) in TARGETS {
        let seeds = seeds(name);
        for input in &seeds {
            target(input);
        }
        let mut prng = Prng(seed | 1);
        // The recovery scan writes a file per input: a tenth as many.
        let runs = if *name == "recovery_scan" {
            iterations / 10
        } else {
            iterations
        };
        for run in 0..runs {
            let input = if run % 10 == 9 {
                (0..prng.below(512)).map(|_| prng.next() as u8).collect()
            } else {
                let mut input = seeds[prng.below(seeds.len())].clone();
                mutate(&mut input, &mut prng, &seeds);
                input
            };
            target(&input);
        }
    }
}

/// Every input a long `scripts/fuzz` run ever failed on, kept under `regressions/TARGET/`,
/// still passes its target. Also makes sure a regression cannot be filed under a name that
/// is not a target.
#[test]
fn every_recorded_regression_passes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut replayed = 0;
    for dir in std::fs::read_dir(&root).expect("the regressions folder exists") {
        let dir = dir.expect("readable regressions folder");
        let name = dir.file_name().to_string_lossy().into_owned();
        let (_, target) = TARGETS
            .iter()
            .find(|(target, _)| *target == name)
            .unwrap_or_else(|| panic!("regressions/{name} names no fuzz target"));
        for file in std::fs::read_dir(dir.path()).expect("readable target folder") {
            let path = file.expect("readable entry").path();
            let input = std::fs::read(&path).expect("readable regression input");
            eprintln!("replaying {}", path.display());
            target(&input);
            replayed += 1;
        }
    }
    assert!(
        replayed > 0,
        "no regression inputs found under {}",
        root.display()
    );
}
