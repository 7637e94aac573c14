//! Micro benchmarks of the segment log without fsync: appending a batch of 500 frames of
//! 100 B with one `append_many` (write(2) into the page cache), and reading a range of 500
//! entries back (pread, CRC check, copy).
//!
//! `cargo bench -p riffle-log` measures; `cargo test -p riffle-log --bench log` (which
//! scripts/test-all runs) executes each benchmark once. The fsync is left out on purpose: it
//! is the disk's cost, not the log's, and BENCHMARKS.md measures it end to end.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use riffle_log::{EntryMeta, FrameKind, Log, LogOptions};

const FRAMES: usize = 500;
const PAYLOAD_BYTES: usize = 100;
/// Entries in the log the read benchmark reads from.
const READ_LOG_ENTRIES: u64 = 10_000;

fn meta() -> EntryMeta {
    EntryMeta {
        kind: FrameKind::Data,
        flags: 0,
        term: 1,
        leader: 1,
        record_count: 1,
        ts_first_ms: 1_796_083_200_000,
        ts_max_ms: 1_796_083_200_000,
    }
}

fn payloads() -> Vec<Vec<u8>> {
    (0..FRAMES)
        .map(|index| vec![index as u8; PAYLOAD_BYTES])
        .collect()
}

fn frames(payloads: &[Vec<u8>]) -> Vec<(EntryMeta, &[u8])> {
    payloads
        .iter()
        .map(|payload| (meta(), payload.as_slice()))
        .collect()
}

/// A new, empty log in a temporary directory (dropped with the directory).
fn new_log() -> (tempfile::TempDir, Log) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (log, _) = Log::open(dir.path(), LogOptions::default()).expect("a new log opens");
    (dir, log)
}

fn append_many(c: &mut Criterion) {
    let (_dir, mut log) = new_log();
    let payloads = payloads();
    let frames = frames(&payloads);
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Elements(FRAMES as u64));
    // The log grows by ~30 MB per 1,000 iterations; segments roll at 128 MiB as in production.
    group.bench_function("append_many 500 × 100 B, no fsync", |b| {
        b.iter(|| log.append_many(black_box(&frames)).expect("append"))
    });
    group.finish();
}

fn read_range(c: &mut Criterion) {
    let (_dir, mut log) = new_log();
    let payloads = payloads();
    let frames = frames(&payloads);
    while log.next_index() <= READ_LOG_ENTRIES {
        log.append_many(&frames).expect("append");
    }
    log.sync().expect("sync");
    let reader = log.reader();
    let last = log.durable_index();
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Elements(FRAMES as u64));
    let mut from = 1;
    group.bench_function("read 500 entries of 100 B", |b| {
        b.iter_batched(
            || {
                // Walk the log so each read starts somewhere new (the sparse index is used).
                let next = from + 997;
                from = if next + FRAMES as u64 - 1 > last {
                    1
                } else {
                    next
                };
                from
            },
            |from| {
                let entries = reader.read(from, last, FRAMES, usize::MAX).expect("read");
                assert_eq!(entries.len(), FRAMES);
                entries
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, append_many, read_range);
criterion_main!(benches);
