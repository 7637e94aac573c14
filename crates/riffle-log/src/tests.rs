//! Unit tests of the log as a whole: recovery, rolling, the sparse index, truncation,
//! purging, poisoning and concurrency. Each test builds a log in a fresh temporary
//! directory, often damages its files the way a crash or a bad disk would, and checks what
//! reopening or reading makes of it. The frame codec and index file format have their own
//! tests beside their code.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::frame::{self, FRAME_HEADER_BYTES};
use crate::segment::{index_file_name, segment_file_name};
use crate::{Entry, EntryMeta, Expect, FileCache, FrameKind, Log, LogError, LogOptions};

/// A deterministic pseudo-random sequence (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

fn meta(term: u64, ts_ms: u64) -> EntryMeta {
    EntryMeta {
        kind: FrameKind::Data,
        flags: 0,
        term,
        leader: 1,
        record_count: 1,
        ts_first_ms: ts_ms,
        ts_max_ms: ts_ms,
    }
}

/// Payload of entry `index`, recognisable when read back.
fn payload(index: u64, bytes: usize) -> Vec<u8> {
    (0..bytes)
        .map(|offset| (index as usize * 7 + offset * 13) as u8)
        .collect()
}

fn small_options() -> LogOptions {
    LogOptions {
        segment_bytes_max: 1024,
        index_interval_bytes: 128,
    }
}

fn open(dir: &Path, options: LogOptions) -> Log {
    Log::open(dir, options).unwrap().0
}

/// Appends `count` entries with payloads of `bytes` bytes, term 1, ts = index.
fn append_entries(log: &mut Log, count: u64, bytes: usize) {
    for _ in 0..count {
        let index = log.next_index();
        assert_eq!(
            log.append(&meta(1, index), &payload(index, bytes)).unwrap(),
            index
        );
    }
}

fn read_all(log: &Log) -> Vec<Entry> {
    log.reader()
        .read(0, u64::MAX, usize::MAX, usize::MAX)
        .unwrap()
}

fn assert_entries(entries: &[Entry], indexes: std::ops::RangeInclusive<u64>, bytes: usize) {
    let expected: Vec<u64> = indexes.collect();
    let found: Vec<u64> = entries.iter().map(|entry| entry.index).collect();
    assert_eq!(found, expected);
    for entry in entries {
        assert_eq!(&entry.payload[..], &payload(entry.index, bytes)[..]);
        assert_eq!(entry.meta.ts_max_ms, entry.index);
    }
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(segment_file_name(base))
}

fn index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(index_file_name(base))
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x20;
    fs::write(path, bytes).unwrap();
}

#[test]
fn a_new_log_starts_empty_at_index_1() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("shard").join("0");
    let (log, report) = Log::open(&log_dir, LogOptions::default()).unwrap();
    assert_eq!(report.segments, 1);
    assert_eq!(report.entries, 0);
    assert_eq!(report.torn_tail_bytes_truncated, 0);
    assert_eq!(
        (
            log.first_index(),
            log.next_index(),
            log.last_index(),
            log.durable_index()
        ),
        (1, 1, 0, 0)
    );
    assert!(segment_path(&log_dir, 1).exists());
    assert!(read_all(&log).is_empty());
    assert_eq!(log.reader().find_by_timestamp(0).unwrap(), None);
    drop(log);
    let (log, report) = Log::open(&log_dir, LogOptions::default()).unwrap();
    assert_eq!((report.segments, report.entries), (1, 0));
    assert_eq!(log.next_index(), 1);
}

#[test]
fn reads_honour_ranges_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogOptions::default());
    let reader = log.reader(); // taken before the appends: it must still see them
    append_entries(&mut log, 10, 100);
    assert_entries(
        &reader.read(0, u64::MAX, 100, usize::MAX).unwrap(),
        1..=10,
        100,
    );
    assert_entries(&reader.read(3, 6, 100, usize::MAX).unwrap(), 3..=6, 100);
    assert_entries(&reader.read(3, 100, 2, usize::MAX).unwrap(), 3..=4, 100);
    // Byte limit: never exceeded, except that the first entry always comes back.
    assert_entries(&reader.read(1, 10, 100, 250).unwrap(), 1..=2, 100);
    assert_entries(&reader.read(1, 10, 100, 299).unwrap(), 1..=2, 100);
    assert_entries(&reader.read(1, 10, 100, 300).unwrap(), 1..=3, 100);
    assert_entries(&reader.read(5, 10, 100, 0).unwrap(), 5..=5, 100);
    assert_entries(&reader.read(5, 10, 0, usize::MAX).unwrap(), 5..=5, 100);
    assert!(reader.read(11, 20, 100, usize::MAX).unwrap().is_empty());
    assert!(reader.read(6, 5, 100, usize::MAX).unwrap().is_empty());
    assert_eq!(reader.next_index(), 11);
    assert_eq!(reader.first_index(), 1);
}

/// The log gives frame flags no meaning: whatever the writer sets comes back from a read,
/// also after a reopen (recovery) and from a sealed segment.
#[test]
fn frame_flags_are_returned_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_options());
    for index in 1..=40u64 {
        let flagged = EntryMeta {
            flags: index as u16 * 0x0101,
            ..meta(1, index)
        };
        log.append(&flagged, &payload(index, 50)).unwrap();
    }
    log.sync().unwrap();
    drop(log);
    let log = open(dir.path(), small_options());
    assert!(log.segments().len() > 1, "the test wants a sealed segment");
    let entries = read_all(&log);
    assert_entries(&entries, 1..=40, 50);
    for entry in &entries {
        assert_eq!(entry.meta.flags, entry.index as u16 * 0x0101);
    }
}

#[test]
fn append_many_writes_one_contiguous_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogOptions::default());
    append_entries(&mut log, 2, 10);
    let payloads: Vec<Vec<u8>> = (3..=7).map(|index| payload(index, 10)).collect();
    let batch: Vec<(EntryMeta, &[u8])> = (3..=7u64)
        .zip(&payloads)
        .map(|(index, bytes)| (meta(1, index), &bytes[..]))
        .collect();
    assert_eq!(log.append_many(&batch).unwrap(), 3);
    assert_eq!(log.next_index(), 8);
    assert_entries(&read_all(&log), 1..=7, 10);
    let segment_bytes = fs::metadata(segment_path(dir.path(), 1)).unwrap().len();
    assert_eq!(segment_bytes, 7 * (FRAME_HEADER_BYTES as u64 + 10));
}

#[test]
fn bad_arguments_are_refused_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogOptions::default());
    log.append(&meta(5, 1), b"x").unwrap();
    assert!(matches!(
        log.append(&meta(4, 2), b"y"),
        Err(LogError::InvalidArgument(_))
    ));
    // A lower term later in the batch rejects the whole batch.
    let batch: [(EntryMeta, &[u8]); 2] = [(meta(6, 2), b"a"), (meta(5, 3), b"b")];
    assert!(matches!(
        log.append_many(&batch),
        Err(LogError::InvalidArgument(_))
    ));
    assert!(matches!(
        log.append_many(&[]),
        Err(LogError::InvalidArgument(_))
    ));
    let huge = vec![0u8; frame::FRAME_PAYLOAD_BYTES_MAX + 1];
    assert!(matches!(
        log.append(&meta(5, 2), &huge),
        Err(LogError::InvalidArgument(_))
    ));
    assert_eq!(log.next_index(), 2);
    assert_eq!(
        fs::metadata(segment_path(dir.path(), 1)).unwrap().len(),
        FRAME_HEADER_BYTES as u64 + 1
    );
    for options in [
        LogOptions {
            segment_bytes_max: 0,
            index_interval_bytes: 1,
        },
        LogOptions {
            segment_bytes_max: crate::SEGMENT_BYTES_MAX_CEILING + 1,
            index_interval_bytes: 1,
        },
        LogOptions {
            segment_bytes_max: 1,
            index_interval_bytes: 0,
        },
    ] {
        assert!(matches!(
            Log::open(dir.path(), options),
            Err(LogError::InvalidArgument(_))
        ));
    }
}

#[test]
fn segments_roll_when_full_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_options());
    append_entries(&mut log, 60, 100); // 154 bytes a frame: 7 frames fill 1024 bytes
    let segments = log.segments();
    assert!(segments.len() > 5, "{segments:?}");
    for pair in segments.windows(2) {
        assert_eq!(pair[1].base_index, pair[0].last_index + 1);
        assert!(pair[0].sealed);
        assert!(pair[0].bytes >= 1024 && pair[0].bytes < 1024 + 154);
        assert!(index_path(dir.path(), pair[0].base_index).exists());
    }
    let active = segments.last().unwrap();
    assert!(!active.sealed);
    assert!(!index_path(dir.path(), active.base_index).exists());
    // Rolling seals and fsyncs the full segment.
    assert!(log.durable_index() >= segments[segments.len() - 2].last_index);
    assert_eq!(segments[1].ts_max_ms, segments[1].last_index);

    log.roll().unwrap();
    let rolled = log.segments();
    assert_eq!(rolled.len(), segments.len() + 1);
    assert_eq!(rolled.last().unwrap().base_index, 61);
    assert_eq!(log.durable_index(), 60);
    log.roll().unwrap(); // the active segment is empty: nothing happens
    assert_eq!(log.segments().len(), rolled.len());
    drop(log);

    let (log, report) = Log::open(dir.path(), small_options()).unwrap();
    assert_eq!(report.segments, rolled.len());
    assert_eq!(report.entries, 60);
    assert_eq!(report.torn_tail_bytes_truncated, 0);
    assert_eq!(log.segments(), rolled);
    assert_entries(&read_all(&log), 1..=60, 100);
}

#[test]
fn missing_or_damaged_index_files_are_rebuilt_identically() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogOptions {
            segment_bytes_max: 4096,
            index_interval_bytes: 100,
        },
    );
    append_entries(&mut log, 120, 90);
    let sealed: Vec<u64> = log
        .segments()
        .iter()
        .filter(|segment| segment.sealed)
        .map(|segment| segment.base_index)
        .collect();
    assert!(sealed.len() >= 4);
    let indexes_before: Vec<_> = log
        .shared_segments_for_test()
        .iter()
        .map(|segment| segment.state().index.clone())
        .collect();
    let files_before: Vec<Vec<u8>> = sealed
        .iter()
        .map(|&base| fs::read(index_path(dir.path(), base)).unwrap())
        .collect();
    assert!(files_before[0].len() > 4, "the index has entries");
    drop(log);

    fs::remove_file(index_path(dir.path(), sealed[0])).unwrap();
    flip_byte(&index_path(dir.path(), sealed[1]), 5);
    let truncated = &files_before[2][..files_before[2].len() - 3];
    fs::write(index_path(dir.path(), sealed[2]), truncated).unwrap();
    // A stale index with a valid checksum: its last entry points one byte off, which the
    // check of the frames after the last index point catches.
    let mut stale = files_before[3].clone();
    let last_entry = (stale.len() - 4) / 16 - 1;
    stale[last_entry * 16 + 4] = stale[last_entry * 16 + 4].wrapping_add(1);
    let body = stale.len() - 4;
    let crc = crc32c::crc32c(&stale[..body]);
    stale[body..].copy_from_slice(&crc.to_le_bytes());
    fs::write(index_path(dir.path(), sealed[3]), stale).unwrap();
    // Leftovers of an interrupted index write and of a purged segment are cleaned up.
    fs::write(
        dir.path()
            .join(format!("{}.tmp", index_file_name(sealed[0]))),
        b"x",
    )
    .unwrap();
    fs::write(index_path(dir.path(), 999_999), b"orphan").unwrap();

    let log = open(
        dir.path(),
        LogOptions {
            segment_bytes_max: 4096,
            index_interval_bytes: 100,
        },
    );
    let indexes_after: Vec<_> = log
        .shared_segments_for_test()
        .iter()
        .map(|segment| segment.state().index.clone())
        .collect();
    assert_eq!(indexes_after, indexes_before);
    for (base, before) in sealed.iter().zip(&files_before) {
        assert_eq!(&fs::read(index_path(dir.path(), *base)).unwrap(), before);
    }
    assert!(!index_path(dir.path(), 999_999).exists());
    assert!(!dir
        .path()
        .join(format!("{}.tmp", index_file_name(sealed[0])))
        .exists());
    assert_entries(&read_all(&log), 1..=120, 90);
}

#[test]
fn a_wrong_index_entry_with_a_valid_checksum_costs_a_scan_not_data() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        segment_bytes_max: 4096,
        index_interval_bytes: 300,
    };
    let mut log = open(dir.path(), options);
    append_entries(&mut log, 60, 100);
    drop(log);
    // Shift the first entry of segment 1's index by one byte and re-seal the checksum, as a
    // writer bug would.
    let path = index_path(dir.path(), 1);
    let mut bytes = fs::read(&path).unwrap();
    assert!(bytes.len() >= 2 * 16 + 4, "at least two entries");
    bytes[4] = bytes[4].wrapping_add(1);
    let body = bytes.len() - 4;
    let crc = crc32c::crc32c(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, bytes).unwrap();

    let mut log = open(dir.path(), options);
    let reader = log.reader();
    for from in 1..=12 {
        assert_entries(
            &reader.read(from, from + 3, 100, usize::MAX).unwrap(),
            from..=from + 3,
            100,
        );
    }
    for ts in 1..=12 {
        assert_eq!(reader.find_by_timestamp(ts).unwrap(), Some(ts));
    }
    assert!(reader.index_misses() > 0);
    log.truncate_after(4).unwrap();
    assert_entries(&read_all(&log), 1..=4, 100);
    assert_eq!(log.segments()[0].ts_max_ms, 4);
}

#[test]
fn find_by_timestamp_agrees_with_a_linear_scan() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        segment_bytes_max: 2048,
        index_interval_bytes: 200,
    };
    let mut log = open(dir.path(), options);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut stamps = Vec::new(); // (index, ts_max_ms)
    let mut clock = 1_000u64;
    for _ in 0..300 {
        // Mostly increasing, sometimes jumping back: the search must not rely on order.
        clock = if rng.below(10) == 0 {
            clock.saturating_sub(rng.below(50))
        } else {
            clock + rng.below(5)
        };
        let mut entry_meta = meta(1, clock);
        entry_meta.ts_first_ms = clock.saturating_sub(3);
        let index = log
            .append(&entry_meta, &payload(0, rng.below(120) as usize))
            .unwrap();
        stamps.push((index, clock));
    }
    let linear = |stamps: &[(u64, u64)], ts: u64| {
        stamps
            .iter()
            .find(|(_, stamp)| *stamp >= ts)
            .map(|(index, _)| *index)
    };
    let reader = log.reader();
    let top = stamps.iter().map(|(_, stamp)| *stamp).max().unwrap();
    for ts in 990..=top + 2 {
        assert_eq!(
            reader.find_by_timestamp(ts).unwrap(),
            linear(&stamps, ts),
            "ts {ts}"
        );
    }
    // After purging, the answer comes from what is left.
    log.purge_before(150).unwrap();
    let first = log.first_index();
    assert!(first > 1);
    let left: Vec<_> = stamps
        .iter()
        .copied()
        .filter(|(index, _)| *index >= first)
        .collect();
    for ts in 990..=top + 2 {
        assert_eq!(
            reader.find_by_timestamp(ts).unwrap(),
            linear(&left, ts),
            "ts {ts}"
        );
    }
}

/// Builds a log of `count` frames with `bytes`-byte payloads in one active segment, synced,
/// and returns the segment's bytes and the start offset of every frame.
fn one_segment_log(dir: &Path, count: u64, bytes: usize) -> (Vec<u8>, Vec<u64>) {
    let mut log = open(dir, LogOptions::default());
    append_entries(&mut log, count, bytes);
    log.sync().unwrap();
    drop(log);
    let contents = fs::read(segment_path(dir, 1)).unwrap();
    let frame_bytes = (FRAME_HEADER_BYTES + bytes) as u64;
    let starts = (0..count).map(|position| position * frame_bytes).collect();
    (contents, starts)
}

#[test]
fn a_torn_last_frame_is_cut_at_every_byte_offset() {
    let source = tempfile::tempdir().unwrap();
    let (contents, starts) = one_segment_log(source.path(), 5, 40);
    let last_start = *starts.last().unwrap();
    for cut in last_start..contents.len() as u64 {
        let dir = tempfile::tempdir().unwrap();
        fs::write(segment_path(dir.path(), 1), &contents[..cut as usize]).unwrap();
        let (mut log, report) = Log::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!(
            report.torn_tail_bytes_truncated,
            cut - last_start,
            "cut {cut}"
        );
        assert_eq!(report.entries, 4);
        assert_eq!((log.last_index(), log.durable_index()), (4, 4));
        assert_eq!(
            fs::metadata(segment_path(dir.path(), 1)).unwrap().len(),
            last_start
        );
        assert_entries(&read_all(&log), 1..=4, 40);
        // The log goes on from the cut.
        append_entries(&mut log, 1, 40);
        log.sync().unwrap();
        drop(log);
        let (log, report) = Log::open(dir.path(), LogOptions::default()).unwrap();
        assert_eq!(report.torn_tail_bytes_truncated, 0);
        assert_entries(&read_all(&log), 1..=5, 40);
    }
}

#[test]
fn garbage_after_the_last_frame_is_a_torn_tail() {
    let source = tempfile::tempdir().unwrap();
    let (contents, _) = one_segment_log(source.path(), 3, 40);
    let mut rng = Rng(7);
    for garbage_bytes in [1usize, 7, 53, 54, 500, 5000] {
        for filler in ["zeros", "random"] {
            let dir = tempfile::tempdir().unwrap();
            let mut damaged = contents.clone();
            damaged.extend((0..garbage_bytes).map(|_| match filler {
                "zeros" => 0,
                _ => rng.next() as u8,
            }));
            fs::write(segment_path(dir.path(), 1), damaged).unwrap();
            let (log, report) = Log::open(dir.path(), LogOptions::default()).unwrap();
            assert_eq!(report.torn_tail_bytes_truncated, garbage_bytes as u64);
            assert_entries(&read_all(&log), 1..=3, 40);
        }
    }
}

#[test]
fn a_flipped_bit_before_valid_frames_is_corruption() {
    let source = tempfile::tempdir().unwrap();
    let (contents, starts) = one_segment_log(source.path(), 6, 40);
    for (damaged_frame, &start) in starts.iter().enumerate().take(5) {
        for offset_in_frame in [0u64, 4, 9, 30, 60] {
            let dir = tempfile::tempdir().unwrap();
            let path = segment_path(dir.path(), 1);
            fs::write(&path, &contents).unwrap();
            flip_byte(&path, start + offset_in_frame);
            match Log::open(dir.path(), LogOptions::default()) {
                Err(LogError::Corrupt {
                    path: found,
                    offset,
                    reason,
                }) => {
                    assert_eq!(found, path);
                    assert_eq!(offset, start, "{reason}");
                }
                other => panic!("frame {damaged_frame}: expected Corrupt, got {other:?}"),
            }
            // Nothing was cut: the operator decides.
            assert_eq!(fs::read(&path).unwrap().len(), contents.len());
        }
    }
    // The same damage in the last frame is indistinguishable from a torn write.
    let dir = tempfile::tempdir().unwrap();
    let path = segment_path(dir.path(), 1);
    fs::write(&path, &contents).unwrap();
    flip_byte(&path, starts[5] + 30);
    let (log, report) = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(report.torn_tail_bytes_truncated, 94);
    assert_eq!(log.last_index(), 5);
}

#[test]
fn a_frame_with_the_wrong_index_is_bad() {
    // Frames 1, 2, 4, 5 written by hand: 4 is a checksummed frame in the wrong place, and
    // the valid frame 5 after it proves the damage is not a torn tail.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    for index in [1u64, 2, 4, 5] {
        frame::encode_frame(&mut bytes, index, &meta(1, index), b"abc").unwrap();
    }
    let path = segment_path(dir.path(), 1);
    fs::write(&path, &bytes).unwrap();
    let frame_bytes = (FRAME_HEADER_BYTES + 3) as u64;
    assert!(matches!(
        Log::open(dir.path(), LogOptions::default()),
        Err(LogError::Corrupt { offset, .. }) if offset == 2 * frame_bytes
    ));
    // Without frame 5 it is a tail: cut.
    fs::write(&path, &bytes[..3 * frame_bytes as usize]).unwrap();
    let (log, report) = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(report.torn_tail_bytes_truncated, frame_bytes);
    assert_eq!(log.last_index(), 2);
}

#[test]
fn a_term_going_backwards_on_disk_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    for (index, term) in [(1u64, 2u64), (2, 3), (3, 2)] {
        frame::encode_frame(&mut bytes, index, &meta(term, index), b"abc").unwrap();
    }
    fs::write(segment_path(dir.path(), 1), &bytes).unwrap();
    assert!(matches!(
        Log::open(dir.path(), LogOptions::default()),
        Err(LogError::Corrupt { offset, .. }) if offset == 2 * (FRAME_HEADER_BYTES as u64 + 3)
    ));
}

#[test]
fn damage_in_a_sealed_segment_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        segment_bytes_max: 4096,
        index_interval_bytes: 512,
    };
    let mut log = open(dir.path(), options);
    append_entries(&mut log, 100, 100);
    let first = log.segments()[0];
    assert!(first.sealed);
    drop(log);
    // Index points are at frames 5 (offset 616) and 9 (offset 1232). Frame 6 (offset 770)
    // lies between them; open reads every frame of a sealed segment, so it finds the damage
    // at once instead of leaving it to the first reader (which could only fail).
    let path = segment_path(dir.path(), 1);
    let damaged_offset = 5 * (FRAME_HEADER_BYTES as u64 + 100);
    flip_byte(&path, damaged_offset + 70);
    match Log::open(dir.path(), options) {
        Err(LogError::Corrupt {
            path: found,
            offset,
            ..
        }) => assert_eq!((found, offset), (path.clone(), damaged_offset)),
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
    // Refusing changed nothing: the index is still there and so is every byte.
    assert!(index_path(dir.path(), 1).exists());
    // With its index gone, open refuses the same way.
    fs::remove_file(index_path(dir.path(), 1)).unwrap();
    assert!(matches!(
        Log::open(dir.path(), options),
        Err(LogError::Corrupt { offset, .. }) if offset == damaged_offset
    ));
    // A torn end of a sealed segment (checked at open through the tail scan) is corruption
    // too, never silently cut.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), options);
    append_entries(&mut log, 100, 100);
    drop(log);
    let path = segment_path(dir.path(), 1);
    let length = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(length - 10)
        .unwrap();
    assert!(matches!(
        Log::open(dir.path(), options),
        Err(LogError::Corrupt { .. })
    ));
}

#[test]
fn a_missing_segment_is_a_hole() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_options());
    append_entries(&mut log, 40, 100);
    let segments = log.segments();
    drop(log);
    let middle = segments[2].base_index;
    fs::remove_file(segment_path(dir.path(), middle)).unwrap();
    match Log::open(dir.path(), small_options()) {
        Err(LogError::Corrupt { path, reason, .. }) => {
            assert_eq!(path, segment_path(dir.path(), segments[3].base_index));
            assert!(reason.contains("hole"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn purge_deletes_whole_sealed_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_options());
    append_entries(&mut log, 40, 100);
    let segments = log.segments();
    log.purge_before(0).unwrap();
    log.purge_before(1).unwrap();
    assert_eq!(log.segments(), segments);
    // An index inside segment 1 deletes only segment 0.
    log.purge_before(segments[1].base_index + 1).unwrap();
    assert_eq!(log.first_index(), segments[1].base_index);
    assert!(!segment_path(dir.path(), 1).exists());
    assert!(!index_path(dir.path(), 1).exists());
    // The segment whose last index equals the argument is kept.
    log.purge_before(segments[1].last_index).unwrap();
    assert_eq!(log.first_index(), segments[1].base_index);
    log.purge_before(segments[1].last_index + 1).unwrap();
    assert_eq!(log.first_index(), segments[2].base_index);
    // Reads below the first index start at it.
    let entries = log.reader().read(1, 1000, 3, usize::MAX).unwrap();
    assert_eq!(entries[0].index, segments[2].base_index);
    // Far beyond the end: every sealed segment goes, the active one stays.
    log.purge_before(u64::MAX).unwrap();
    let left = log.segments();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0], *segments.last().unwrap());
    assert_eq!(log.first_index(), left[0].base_index);
    assert_eq!(log.next_index(), 41);
    // Once the active segment is empty, the log is empty with first == next.
    log.roll().unwrap();
    log.purge_before(u64::MAX).unwrap();
    assert_eq!((log.first_index(), log.next_index()), (41, 41));
    assert!(read_all(&log).is_empty());
    append_entries(&mut log, 2, 100);
    drop(log);
    let (log, report) = Log::open(dir.path(), small_options()).unwrap();
    assert_eq!((report.segments, report.entries), (1, 2));
    assert_eq!(log.first_index(), 41);
    assert_entries(&read_all(&log), 41..=42, 100);
}

#[test]
fn a_reader_keeps_reading_a_segment_purged_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_options());
    append_entries(&mut log, 40, 100);
    let segment = log.shared_segments_for_test()[0].clone();
    // A read in progress holds the handle it started with.
    let file = segment.file(log.file_cache()).unwrap();
    log.purge_before(u64::MAX).unwrap();
    assert!(!segment.path.exists());
    let mut buf = vec![0u8; FRAME_HEADER_BYTES + 100];
    std::os::unix::fs::FileExt::read_exact_at(&*file, &mut buf, 0).unwrap();
    assert_eq!(frame::decode_frame(&buf).unwrap().index, 1);
}

/// A read that reaches a purged segment after its handle was closed cannot open it again: it
/// ends there as a race, not as an error or a lost file.
#[test]
fn a_reader_reaching_a_purged_closed_segment_ends_as_a_race() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_options());
    append_entries(&mut log, 40, 100);
    let segment = log.shared_segments_for_test()[0].clone();
    segment.close();
    log.purge_before(u64::MAX).unwrap();
    let walk = crate::segment::walk_segment(
        log.shared_for_test(),
        &segment,
        crate::segment::WalkFrom::Index(1),
        |_| panic!("no frame of a deleted file can be read"),
    )
    .unwrap();
    assert!(walk.raced);
    let first = log.first_index();
    assert_entries(&read_all(&log), first..=40, 100);
}

/// Logs sharing a small cache: reads of their sealed segments keep at most the capacity open
/// beside the pinned active segments, every read still returns every entry, idle handles
/// close, and a log whose active segment was unpinned keeps nothing open.
#[test]
fn a_shared_file_cache_bounds_the_open_segments() {
    let dir = tempfile::tempdir().unwrap();
    let files = FileCache::new(3);
    let mut logs: Vec<Log> = (0..6)
        .map(|i| {
            let (mut log, _) = Log::open_with_cache(
                &dir.path().join(i.to_string()),
                small_options(),
                Expect::default(),
                &files,
            )
            .unwrap();
            append_entries(&mut log, 40, 100);
            assert!(log.segments().len() > 3, "several sealed segments per log");
            log
        })
        .collect();
    assert!(
        files.open_count() <= 3,
        "rolls hand sealed handles to the cache"
    );
    for _round in 0..2 {
        for log in &logs {
            assert_entries(&read_all(log), 1..=40, 100);
            assert!(files.open_count() <= 3, "{} open", files.open_count());
        }
    }
    let opened = files.files_opened();
    assert!(
        opened > 6 * 3,
        "closed segments were opened again on demand ({opened})"
    );
    assert_eq!(files.close_idle(Duration::ZERO), files.capacity());
    assert_eq!(files.open_count(), 0);

    // An unpinned active segment is closed like any other, and reopened to be read or
    // appended to.
    let log = &mut logs[0];
    log.sync().unwrap();
    log.unpin_active();
    let active = log.shared_segments_for_test().last().unwrap().clone();
    assert!(files.open_count() <= 3);
    files.close_idle(Duration::ZERO);
    assert!(active.handle_is_closed_for_test());
    assert_entries(&read_all(log), 1..=40, 100);
    assert!(!active.handle_is_closed_for_test());
    files.close_idle(Duration::ZERO);
    append_entries(log, 1, 100);
    log.sync().unwrap();
    files.close_idle(Duration::ZERO);
    assert!(
        !active.handle_is_closed_for_test(),
        "an append pins the active segment again"
    );
    assert_entries(&read_all(log), 1..=41, 100);

    // Truncating into a sealed segment whose handle is closed reopens it for writing.
    let last_sealed = log.segments()[log.segments().len() - 2];
    log.truncate_after(last_sealed.base_index).unwrap();
    append_entries(log, 2, 100);
    log.sync().unwrap();
    drop(logs);
    let (log, _) = Log::open(&dir.path().join("0"), small_options()).unwrap();
    assert_eq!(log.last_index(), last_sealed.base_index + 2);
}

#[test]
fn truncate_after_edge_cases() {
    let dir = tempfile::tempdir().unwrap();
    let options = small_options();
    let mut log = open(dir.path(), options);
    append_entries(&mut log, 40, 100);
    let segments = log.segments();

    // At or beyond the end: nothing happens.
    log.truncate_after(40).unwrap();
    log.truncate_after(1000).unwrap();
    assert_eq!(log.segments(), segments);

    // Inside the active segment.
    let active_base = segments.last().unwrap().base_index;
    log.truncate_after(active_base + 1).unwrap();
    assert_eq!(log.last_index(), active_base + 1);
    assert_eq!(log.durable_index(), active_base + 1);
    assert_eq!(log.segments().len(), segments.len());

    // Inside a sealed segment: later segments go, it becomes active, its .idx goes.
    let target = segments[2];
    log.truncate_after(target.base_index + 2).unwrap();
    let now = log.segments();
    assert_eq!(now.len(), 3);
    assert!(!now[2].sealed);
    assert_eq!(now[2].last_index, target.base_index + 2);
    assert_eq!(now[2].bytes, 3 * 154);
    assert_eq!(now[2].ts_max_ms, target.base_index + 2);
    assert!(!index_path(dir.path(), target.base_index).exists());
    for later in &segments[3..] {
        assert!(!segment_path(dir.path(), later.base_index).exists());
        assert!(!index_path(dir.path(), later.base_index).exists());
    }
    assert_entries(&read_all(&log), 1..=target.base_index + 2, 100);
    assert_eq!(log.durable_index(), target.base_index + 2);

    // Appending after a truncation reuses the indexes, with any term at least the kept one.
    let index = log.next_index();
    log.append(&meta(3, index), &payload(index, 100)).unwrap();
    assert_eq!(log.last_term(), 3);

    // Exactly at a segment boundary: the next segment is emptied and stays active.
    let boundary = segments[1].last_index;
    log.truncate_after(boundary).unwrap();
    let now = log.segments();
    assert_eq!(now.len(), 3);
    assert_eq!((now[2].base_index, now[2].bytes), (boundary + 1, 0));
    assert_eq!(log.last_term(), 1);
    assert!(now[1].sealed);

    // Below the first index: refused. Right below it: the log becomes empty.
    log.purge_before(segments[1].base_index).unwrap();
    let first = log.first_index();
    assert_eq!(first, segments[1].base_index);
    assert!(matches!(
        log.truncate_after(first - 2),
        Err(LogError::InvalidArgument(_))
    ));
    log.truncate_after(first - 1).unwrap();
    assert_eq!((log.first_index(), log.next_index()), (first, first));
    assert_eq!(log.segments().len(), 1);
    assert!(read_all(&log).is_empty());
    append_entries(&mut log, 3, 100);
    drop(log);

    let (log, report) = Log::open(dir.path(), options).unwrap();
    assert_eq!((report.segments, report.entries), (1, 3));
    assert_entries(&read_all(&log), first..=first + 2, 100);
}

#[test]
fn reset_empties_the_log_at_any_index_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let options = small_options();
    let mut log = open(dir.path(), options);
    append_entries(&mut log, 40, 100);
    let old = log.segments();
    assert!(old.len() > 2);
    let reader = log.reader();
    let stale = log.sync_handle();

    // Beyond the end (a Raft follower installing a snapshot past its log): every segment
    // and index file goes, one empty segment named after the new start remains.
    log.reset(1000).unwrap();
    assert_eq!((log.first_index(), log.next_index()), (1000, 1000));
    assert_eq!(log.last_index(), 999);
    assert_eq!(log.durable_index(), 999);
    assert_eq!(log.last_term(), 0);
    let now = log.segments();
    assert_eq!(now.len(), 1);
    assert_eq!((now[0].base_index, now[0].bytes), (1000, 0));
    for segment in &old {
        assert!(!segment_path(dir.path(), segment.base_index).exists());
        assert!(!index_path(dir.path(), segment.base_index).exists());
    }
    assert!(segment_path(dir.path(), 1000).exists());
    // Readers see the empty log; a sync handle from before the reset vouches for nothing.
    assert!(read_all(&log).is_empty());
    assert!(reader
        .read(1, u64::MAX, 100, usize::MAX)
        .unwrap()
        .is_empty());
    assert_eq!((reader.first_index(), reader.next_index()), (1000, 1000));
    stale.sync().unwrap();
    log.mark_synced(&stale);
    assert_eq!(log.durable_index(), 999);

    // Appends continue at the new index, with any term (the floor went back to 0).
    let index = log.next_index();
    log.append(&meta(0, index), &payload(index, 100)).unwrap();
    append_entries(&mut log, 2, 100);
    assert_entries(&read_all(&log), 1000..=1002, 100);
    drop(log);
    let (mut log, report) = Log::open(dir.path(), options).unwrap();
    assert_eq!((report.segments, report.entries), (1, 3));
    assert_eq!(log.first_index(), 1000);
    assert_entries(&read_all(&log), 1000..=1002, 100);

    // Backwards, onto the base of the segment that holds entries: it is replaced.
    log.reset(1000).unwrap();
    assert!(read_all(&log).is_empty());
    assert_eq!(log.next_index(), 1000);
    // Back to 1, as a brand-new log; reset to 0 is refused and changes nothing.
    log.reset(1).unwrap();
    assert!(matches!(log.reset(0), Err(LogError::InvalidArgument(_))));
    append_entries(&mut log, 2, 100);
    drop(log);
    let log = open(dir.path(), options);
    assert_eq!(log.first_index(), 1);
    assert_entries(&read_all(&log), 1..=2, 100);
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec![segment_file_name(1)]);
}

#[test]
fn a_failed_reset_poisons_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_options());
    append_entries(&mut log, 40, 100);
    log.fail_next_sync();
    assert!(matches!(log.reset(100), Err(LogError::Io(_))));
    assert!(matches!(log.reset(100), Err(LogError::Poisoned)));
    assert!(matches!(
        log.append(&meta(1, 41), b"x"),
        Err(LogError::Poisoned)
    ));
    drop(log);
    // What the crash-like stop left is a suffix of the old log: oldest segment gone first.
    let log = open(dir.path(), small_options());
    assert!(log.first_index() > 1);
    assert_eq!(log.next_index(), 41);
    assert_entries(&read_all(&log), log.first_index()..=40, 100);
}

#[test]
fn truncation_survives_reopen_and_keeps_the_index_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        segment_bytes_max: 8192,
        index_interval_bytes: 300,
    };
    let mut log = open(dir.path(), options);
    append_entries(&mut log, 120, 100);
    log.truncate_after(30).unwrap();
    append_entries(&mut log, 50, 100);
    log.roll().unwrap();
    let indexes: Vec<_> = log
        .shared_segments_for_test()
        .iter()
        .map(|segment| segment.state().index.clone())
        .collect();
    drop(log);
    // Rebuild every index by scanning: it must match what appends after the cut built.
    for base in [1u64, 31] {
        let _ = fs::remove_file(index_path(dir.path(), base));
    }
    let log = open(dir.path(), options);
    let rebuilt: Vec<_> = log
        .shared_segments_for_test()
        .iter()
        .map(|segment| segment.state().index.clone())
        .collect();
    assert_eq!(rebuilt, indexes);
    assert_entries(&read_all(&log), 1..=80, 100);
}

#[test]
fn a_failed_write_is_undone_so_no_stale_frames_remain() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogOptions::default());
    append_entries(&mut log, 3, 10);
    let length = fs::metadata(segment_path(dir.path(), 1)).unwrap().len();
    // A batch of four frames fails half-way: two complete frames reached the file.
    let payloads: Vec<Vec<u8>> = (4..=7).map(|index| payload(index, 10)).collect();
    let batch: Vec<(EntryMeta, &[u8])> = (4..=7u64)
        .zip(&payloads)
        .map(|(index, bytes)| (meta(1, index), &bytes[..]))
        .collect();
    log.fail_next_write();
    assert!(matches!(log.append_many(&batch), Err(LogError::Io(_))));
    assert_eq!(
        fs::metadata(segment_path(dir.path(), 1)).unwrap().len(),
        length
    );
    assert_eq!(log.next_index(), 4);
    // The log goes on; a shorter append must not leave the failed batch's frames behind it,
    // where recovery would find them valid and in sequence.
    log.append(&meta(1, 4), b"").unwrap();
    drop(log);
    let (log, report) = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(report.torn_tail_bytes_truncated, 0);
    assert_eq!(log.last_index(), 4);
    assert!(read_all(&log)[3].payload.is_empty());
}

#[test]
fn a_failed_fsync_poisons_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogOptions::default());
    append_entries(&mut log, 3, 10);
    let reader = log.reader();
    let handle = log.sync_handle();
    log.fail_next_sync();
    assert!(matches!(log.sync(), Err(LogError::Io(_))));
    assert_eq!(log.durable_index(), 0);
    assert!(matches!(log.sync(), Err(LogError::Poisoned)));
    assert!(matches!(
        log.append(&meta(1, 4), b"x"),
        Err(LogError::Poisoned)
    ));
    assert!(matches!(log.roll(), Err(LogError::Poisoned)));
    assert!(matches!(log.truncate_after(1), Err(LogError::Poisoned)));
    assert!(matches!(log.purge_before(2), Err(LogError::Poisoned)));
    assert!(matches!(handle.sync(), Err(LogError::Poisoned)));
    assert!(matches!(
        reader.read(1, 3, 10, 100),
        Err(LogError::Poisoned)
    ));
    assert!(matches!(
        reader.find_by_timestamp(1),
        Err(LogError::Poisoned)
    ));
    log.mark_durable(3);
    assert_eq!(log.durable_index(), 0);
    drop(log);
    // Reopening recovers from what is on disk.
    let (log, report) = Log::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(report.entries, 3);
    assert_eq!(log.durable_index(), 3);
}

#[test]
fn a_failed_fsync_while_rolling_poisons_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogOptions::default());
    append_entries(&mut log, 3, 10);
    log.fail_next_sync();
    assert!(matches!(log.roll(), Err(LogError::Io(_))));
    assert!(matches!(
        log.append(&meta(1, 4), b"x"),
        Err(LogError::Poisoned)
    ));
    assert_eq!(log.segments().len(), 1);
}

#[test]
fn a_sync_handle_fsyncs_on_another_thread_while_appends_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogOptions::default());
    append_entries(&mut log, 5, 10);
    let handle = log.sync_handle();
    assert_eq!(handle.upto(), 5);
    let syncer = thread::spawn(move || handle.sync().map(|()| handle));
    append_entries(&mut log, 5, 10); // not covered by the handle
    let handle = syncer.join().unwrap().unwrap();
    log.mark_durable(handle.upto());
    assert_eq!(log.durable_index(), 5);
    log.mark_durable(3); // never backwards
    assert_eq!(log.durable_index(), 5);
    log.mark_durable(1000); // clamped to what was written
    assert_eq!(log.durable_index(), 10);

    // A handle from before a truncation vouches for nothing written after it.
    let stale = log.sync_handle();
    log.truncate_after(7).unwrap();
    append_entries(&mut log, 3, 10);
    stale.sync().unwrap();
    log.mark_synced(&stale);
    assert_eq!(log.durable_index(), 7);
    let fresh = log.sync_handle();
    fresh.sync().unwrap();
    log.mark_synced(&fresh);
    assert_eq!(log.durable_index(), 10);
}

#[test]
fn readers_run_concurrently_with_appends_rolls_and_purges() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_options());
    let reader = log.reader();
    let done = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let reader = reader.clone();
            let done = done.clone();
            thread::spawn(move || {
                let mut reads = 0u64;
                while !done.load(Ordering::Acquire) || reads == 0 {
                    let next = reader.next_index();
                    let entries = reader.read(0, next - 1, 50, usize::MAX).unwrap();
                    for pair in entries.windows(2) {
                        assert_eq!(pair[1].index, pair[0].index + 1);
                    }
                    for entry in &entries {
                        assert_eq!(&entry.payload[..], &payload(entry.index, 100)[..]);
                    }
                    if let Some(found) = reader.find_by_timestamp(next / 2).unwrap() {
                        assert!(found >= next / 2, "{found} < {next} / 2");
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for round in 0..300u64 {
        append_entries(&mut log, 3, 100);
        if round % 50 == 49 {
            log.purge_before(log.last_index() - 100).unwrap();
        }
    }
    done.store(true, Ordering::Release);
    for thread in threads {
        assert!(thread.join().unwrap() > 0);
    }
    assert_eq!(log.next_index(), 901);
}

impl Log {
    /// The shared segment list, for tests that look at in-memory state.
    fn shared_segments_for_test(&self) -> Vec<Arc<crate::segment::Segment>> {
        self.shared_for_test().snapshot()
    }
}

#[test]
fn handles_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}
    assert_send_sync::<crate::LogReader>();
    assert_send_sync::<crate::SyncHandle>();
    assert_send::<Log>();
    assert_send_sync::<LogError>();
}

/// Opening with what the caller knows was synced tells lost data from a torn write, and
/// refuses without changing a byte.
#[test]
fn expect_tells_lost_data_from_a_torn_write() {
    let options = small_options();
    // A cut end below the synced index is lost data, not a torn tail.
    let (dir, _) = {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, _) = one_segment_log(dir.path(), 5, 20);
        (dir, bytes)
    };
    let path = segment_path(dir.path(), 1);
    let length = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(length - 3)
        .unwrap();
    let expect_all = Expect {
        synced_through: 5,
        torn_tail_allowed: true,
    };
    assert!(matches!(
        Log::open_expecting(dir.path(), options, expect_all),
        Err(LogError::Missing { .. })
    ));
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        length - 3,
        "nothing cut"
    );
    // After a clean shutdown no write can be torn: the same damage is refused too.
    let clean = Expect {
        synced_through: 4,
        torn_tail_allowed: false,
    };
    assert!(matches!(
        Log::open_expecting(dir.path(), options, clean),
        Err(LogError::Missing { .. })
    ));
    // Beyond the synced index, after a crash, it is a torn write and is cut.
    let crashed = Expect {
        synced_through: 4,
        torn_tail_allowed: true,
    };
    let (log, report) = Log::open_expecting(dir.path(), options, crashed).unwrap();
    assert_eq!(log.last_index(), 4);
    assert!(report.torn_tail_bytes_truncated > 0);
    drop(log);

    // A log whose last segments are gone ends below the synced index.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), options);
    append_entries(&mut log, 60, 100);
    log.sync().unwrap();
    let last = log.last_index();
    let active = log.segments().last().unwrap().base_index;
    drop(log);
    fs::remove_file(segment_path(dir.path(), active)).unwrap();
    let synced = Expect {
        synced_through: last,
        torn_tail_allowed: true,
    };
    assert!(matches!(
        Log::open_expecting(dir.path(), options, synced),
        Err(LogError::Missing { .. })
    ));
    // And a missing directory with synced data is refused, not recreated.
    let gone = dir.path().join("gone");
    assert!(matches!(
        Log::open_expecting(&gone, options, synced),
        Err(LogError::Missing { .. })
    ));
    assert!(!gone.exists());
}

/// `set_aside` cuts a damaged log so it opens again, keeping every byte it removes.
#[test]
fn set_aside_keeps_what_it_cuts() {
    let dir = tempfile::tempdir().unwrap();
    let keep = tempfile::tempdir().unwrap();
    let options = LogOptions {
        segment_bytes_max: 4096,
        index_interval_bytes: 512,
    };
    let mut log = open(dir.path(), options);
    append_entries(&mut log, 100, 100);
    let segments = log.segments();
    assert!(segments.len() >= 3);
    drop(log);
    let path = segment_path(dir.path(), 1);
    let damaged_offset = 5 * (FRAME_HEADER_BYTES as u64 + 100);
    let original = fs::read(&path).unwrap();
    flip_byte(&path, damaged_offset + 70);
    let Err(LogError::Corrupt {
        path: found,
        offset,
        ..
    }) = Log::open(dir.path(), options)
    else {
        panic!("expected Corrupt");
    };
    let report = crate::salvage::set_aside(dir.path(), &found, Some(offset), keep.path()).unwrap();
    assert_eq!(report.files, segments.len());
    let log = open(dir.path(), options);
    assert_eq!(log.last_index(), 5);
    assert_entries(&read_all(&log), 1..=5, 100);
    // The copy of the damaged segment is whole, and the later segments moved intact.
    let copy = fs::read(segment_path(keep.path(), 1)).unwrap();
    assert_eq!(copy.len(), original.len());
    for info in &segments[1..] {
        assert!(segment_path(keep.path(), info.base_index).exists());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(segment_path(keep.path(), 1))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "kept data is owner-only");
    }
}

/// Segment and index files, and directories the log creates, are owner-only; a file left
/// readable by others is narrowed when the log opens it.
#[cfg(unix)]
#[test]
fn log_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("a").join("b");
    let mut log = open(&dir, small_options());
    append_entries(&mut log, 40, 100);
    log.sync().unwrap();
    drop(log);
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&parent.path().join("a")), 0o700);
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    let first = segment_path(&dir, 1);
    fs::set_permissions(&first, fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    drop(open(&dir, small_options()));
    assert_eq!(mode(&first), 0o600);
    assert_eq!(mode(&dir), 0o700);
}
