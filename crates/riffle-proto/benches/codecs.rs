//! Micro benchmarks of the codecs on the put and read paths: decoding a PutRecords request
//! of 500 records in JSON and in CBOR, encoding sequence numbers, and framing a
//! SubscribeToShard event.
//!
//! `cargo bench -p riffle-proto` measures; `cargo test -p riffle-proto --bench codecs` (which
//! scripts/test-all runs) executes each benchmark once, so they keep compiling and working.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use riffle_proto::cbor::encode_cbor;
use riffle_proto::ops::{PutRecordsInput, PutRecordsRequestEntry, Record, SubscribeToShardEvent};
use riffle_proto::seqno::{SeqNo, SequenceRun};
use riffle_proto::{decode_request_in, encode_json, eventstream, Request, WireFormat};

/// The shape of a full PutRecords request (the largest batch Kinesis takes).
const RECORDS: usize = 500;
const RECORD_BYTES: usize = 100;
/// 2026-12-01T00:00:00Z, a plausible shard creation and arrival time.
const EPOCH_S: u64 = 1_796_083_200;

/// Deterministic filler: the codecs' cost does not depend on the bytes' values.
fn payload(index: usize) -> Bytes {
    (0..RECORD_BYTES)
        .map(|offset| (index.wrapping_mul(31) + offset) as u8)
        .collect::<Vec<u8>>()
        .into()
}

fn put_records_input() -> PutRecordsInput {
    let records = (0..RECORDS)
        .map(|index| PutRecordsRequestEntry {
            data: Some(payload(index)),
            partition_key: Some(format!("{:016x}", (index as u64).wrapping_mul(0x9E37_79B9))),
            ..PutRecordsRequestEntry::default()
        })
        .collect();
    PutRecordsInput {
        records: Some(records),
        stream_name: Some("bench".into()),
        ..PutRecordsInput::default()
    }
}

fn decode_put_records(c: &mut Criterion) {
    let input = put_records_input();
    let mut group = c.benchmark_group("decode PutRecords 500 × 100 B");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for (format, body) in [
        (WireFormat::Json, encode_json(&input)),
        (WireFormat::Cbor, encode_cbor(&input)),
    ] {
        match decode_request_in(format, "PutRecords", &body) {
            Ok(Request::PutRecords(decoded)) => assert_eq!(decoded, input),
            other => panic!("the bench body must decode: {other:?}"),
        }
        let name = match format {
            WireFormat::Json => "json",
            WireFormat::Cbor => "cbor",
        };
        group.bench_function(name, |b| {
            b.iter(|| decode_request_in(format, "PutRecords", black_box(&body)))
        });
    }
    group.finish();
}

fn sequence_numbers(c: &mut Criterion) {
    let first = SeqNo::at_position(EPOCH_S, 3, 1_000_000, 0, EPOCH_S + 60);
    let mut group = c.benchmark_group("sequence numbers");
    group.bench_function("encode one", |b| b.iter(|| black_box(&first).encode()));
    // A PutRecords answer: one run per log entry, advanced once per record.
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("run of 500", |b| {
        b.iter(|| {
            let mut run = SequenceRun::new(black_box(&first));
            let mut digits = 0usize;
            for _ in 1..RECORDS {
                run.advance();
                digits += run.current().len();
            }
            digits
        })
    });
    group.finish();
}

fn event_stream(c: &mut Criterion) {
    let records = (0..RECORDS)
        .map(|index| Record {
            sequence_number: SeqNo::at_position(EPOCH_S, 0, 7, index as u16, EPOCH_S).encode(),
            approximate_arrival_timestamp: None,
            data: payload(index),
            partition_key: Some(format!("{index:016x}")),
            encryption_type: None,
        })
        .collect();
    let event = SubscribeToShardEvent {
        records,
        continuation_sequence_number: Some(SeqNo::at_position(EPOCH_S, 0, 8, 0, EPOCH_S).encode()),
        millis_behind_latest: 0,
        child_shards: None,
    };
    let payload = encode_json(&event);
    let mut group = c.benchmark_group("SubscribeToShardEvent of 500 × 100 B");
    group.throughput(Throughput::Bytes(payload.len() as u64));
    group.bench_function("json payload", |b| {
        b.iter(|| encode_json(black_box(&event)))
    });
    group.bench_function("event-stream framing", |b| {
        b.iter(|| {
            eventstream::event(
                "SubscribeToShardEvent",
                "application/json",
                black_box(&payload),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, decode_put_records, sequence_numbers, event_stream);
criterion_main!(benches);
