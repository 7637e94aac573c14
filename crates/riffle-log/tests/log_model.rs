//! Model-based property test of the segment log.
//!
//! Goal: whatever sequence of operations runs, the log behaves like a plain `Vec` of
//! entries, and a crash loses only entries that were never fsynced, only as a suffix.
//!
//! Method: proptest generates sequences of appends (payloads of 0..4 KiB, nondecreasing
//! timestamps and terms), batched appends, rolls, syncs (direct and through a `SyncHandle`
//! on another thread), truncations, purges, range reads, timestamp lookups and crashes, and
//! runs them against a `Log` with 4 KiB segments (so rolls are frequent) and against an
//! in-memory model. After every operation the log's indexes and segment list are checked;
//! reads and lookups are compared with the model.
//!
//! A crash drops the `Log` without syncing, then damages only the un-fsynced suffix of the
//! active segment: it cuts the file at a random offset at or beyond the durable length, or
//! overwrites everything from such an offset on with garbage or zeros (optionally growing
//! the file, as a crash after a size update but before the data write can), or flips a few
//! bytes in that suffix. After reopening, every entry up to the durable index must be there
//! unchanged, later entries may only be lost as a suffix, and indexes stay contiguous. Bytes
//! flipped in the middle of the suffix with intact frames after them look like corruption
//! rather than a torn write, so there `open` may refuse with `Corrupt` at an offset inside
//! the suffix; the test then repairs by cutting the file at that offset, as an operator
//! would, and reopens.
//!
//! Disk faults join in through the log's fault switches (the `fault-injection` feature): batch
//! writes that fail with ENOSPC or EIO, before any byte or torn half-way (the batch must be
//! refused and leave nothing behind, in memory or in the file, and the log goes on); fsyncs
//! that fail (the log must poison itself, refuse every later call, and recover by a reopen
//! that keeps everything durable); and bits that flip in stored frames (a read of the entry
//! must fail as corruption, never serve the flipped bytes).
//!
//! `PROPTEST_CASES` sets the number of cases (default 24, which keeps `cargo test` fast).

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;

use proptest::prelude::*;
use riffle_log::faults::{SyncFault, WriteFault};
use riffle_log::{
    Entry, EntryMeta, FrameKind, Log, LogError, LogOptions, LogReader, RecoveryReport,
    FRAME_HEADER_BYTES,
};

const OPTIONS: LogOptions = LogOptions {
    segment_bytes_max: 4096,
    index_interval_bytes: 512,
};

/// Default number of generated sequences when `PROPTEST_CASES` is not set.
const CASES_DEFAULT: u32 = 24;

/// Largest payload generated.
const PAYLOAD_BYTES_MAX: usize = 4096;

#[derive(Debug, Clone)]
enum Op {
    Append {
        payload_bytes: usize,
        ts_step_ms: u64,
        term_step: bool,
        kind: u8,
    },
    AppendMany {
        payload_bytes: Vec<usize>,
        ts_step_ms: u64,
        term_step: bool,
    },
    Roll,
    Sync,
    /// Take a sync handle, append one more entry, fsync through the handle on another
    /// thread, then mark what the handle covered durable.
    SyncViaHandle {
        extra_payload_bytes: usize,
    },
    TruncateAfter {
        selector: u64,
    },
    PurgeBefore {
        selector: u64,
    },
    Read {
        from_selector: u64,
        span: u64,
        max_entries: usize,
        max_bytes: MaxBytes,
    },
    FindByTimestamp {
        selector: u64,
        /// Look up the timestamp of an existing entry rather than any value.
        existing: bool,
    },
    Crash {
        damage: Damage,
    },
    /// A batch whose write fails (full disk, device error), before any byte or torn half-way:
    /// the log refuses it, keeps nothing of it, and goes on.
    FailedAppend {
        fault: WriteFault,
        payload_bytes: Vec<usize>,
    },
    /// An fsync that fails (EIO, or ENOSPC from delayed allocation): the log is poisoned,
    /// refuses everything, and is reopened.
    FailedSync {
        no_space: bool,
    },
    /// One bit of a stored frame flips on the medium; a read of that entry must fail as
    /// corruption, never serve it. The bit is flipped back afterwards.
    BitRot {
        entry_selector: u64,
        byte_selector: u64,
        bit: u8,
    },
}

#[derive(Debug, Clone)]
enum Damage {
    None,
    /// Cut the active segment somewhere in its un-fsynced suffix.
    Cut {
        selector: u64,
    },
    /// Overwrite the suffix from somewhere on, and maybe grow the file.
    Garble {
        selector: u64,
        grow_bytes: usize,
        zeros: bool,
        seed: u64,
    },
    /// Flip a few bytes inside the suffix.
    Flip {
        selectors: Vec<u64>,
        seed: u64,
    },
}

fn damage_strategy() -> impl Strategy<Value = Damage> {
    prop_oneof![
        2 => Just(Damage::None),
        3 => any::<u64>().prop_map(|selector| Damage::Cut { selector }),
        3 => (any::<u64>(), 0usize..200, any::<bool>(), any::<u64>()).prop_map(
            |(selector, grow_bytes, zeros, seed)| Damage::Garble {
                selector,
                grow_bytes,
                zeros,
                seed,
            }
        ),
        2 => (prop::collection::vec(any::<u64>(), 1..4), any::<u64>())
            .prop_map(|(selectors, seed)| Damage::Flip { selectors, seed }),
    ]
}

/// Mostly small payloads, so segments hold several frames and index points, sometimes
/// large ones up to 4 KiB.
fn payload_bytes_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 0usize..300, 1 => 0..=PAYLOAD_BYTES_MAX]
}

/// A byte limit for reads: arbitrary, or exactly at (or one off) the payload total of the
/// first few entries in range, where off-by-one mistakes show.
#[derive(Debug, Clone)]
enum MaxBytes {
    Fixed(usize),
    Boundary { entries: usize, delta: i64 },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (payload_bytes_strategy(), 0u64..4, prop::bool::weighted(0.1), 0u8..4).prop_map(
            |(payload_bytes, ts_step_ms, term_step, kind)| Op::Append {
                payload_bytes,
                ts_step_ms,
                term_step,
                kind,
            }
        ),
        8 => (
            prop::collection::vec(payload_bytes_strategy(), 1..6),
            0u64..4,
            prop::bool::weighted(0.1)
        )
            .prop_map(|(payload_bytes, ts_step_ms, term_step)| Op::AppendMany {
                payload_bytes,
                ts_step_ms,
                term_step,
            }),
        4 => Just(Op::Roll),
        6 => Just(Op::Sync),
        3 => payload_bytes_strategy().prop_map(|extra_payload_bytes| Op::SyncViaHandle {
            extra_payload_bytes
        }),
        4 => any::<u64>().prop_map(|selector| Op::TruncateAfter { selector }),
        3 => any::<u64>().prop_map(|selector| Op::PurgeBefore { selector }),
        8 => (
            any::<u64>(),
            0u64..30,
            0usize..20,
            prop_oneof![
                (0usize..20_000).prop_map(MaxBytes::Fixed),
                (0usize..6, -1i64..=1)
                    .prop_map(|(entries, delta)| MaxBytes::Boundary { entries, delta }),
            ]
        )
            .prop_map(
            |(from_selector, span, max_entries, max_bytes)| Op::Read {
                from_selector,
                span,
                max_entries,
                max_bytes,
            }
        ),
        6 => (any::<u64>(), any::<bool>())
            .prop_map(|(selector, existing)| Op::FindByTimestamp { selector, existing }),
        6 => damage_strategy().prop_map(|damage| Op::Crash { damage }),
        3 => (
            prop_oneof![
                Just(WriteFault::NoSpace),
                Just(WriteFault::TornNoSpace),
                Just(WriteFault::TornIo)
            ],
            prop::collection::vec(payload_bytes_strategy(), 1..4)
        )
            .prop_map(|(fault, payload_bytes)| Op::FailedAppend {
                fault,
                payload_bytes
            }),
        1 => any::<bool>().prop_map(|no_space| Op::FailedSync { no_space }),
        3 => (any::<u64>(), any::<u64>(), 0u8..8).prop_map(
            |(entry_selector, byte_selector, bit)| Op::BitRot {
                entry_selector,
                byte_selector,
                bit,
            }
        ),
    ]
}

/// A deterministic byte stream (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelEntry {
    index: u64,
    meta: EntryMeta,
    payload: Vec<u8>,
}

impl ModelEntry {
    fn frame_bytes(&self) -> u64 {
        (FRAME_HEADER_BYTES + self.payload.len()) as u64
    }
}

/// The expected state: a contiguous run of entries starting at `first_index`.
struct Model {
    first_index: u64,
    entries: Vec<ModelEntry>,
    /// What `durable_index()` must be: it moves on sync, on a roll (explicit, or before an
    /// append that finds the active segment full), on truncation and on recovery.
    durable: u64,
    /// Highest term and timestamp handed out; both only grow.
    term: u64,
    clock_ms: u64,
    /// Makes payloads of re-used indexes differ from the truncated ones.
    salt: u64,
    /// Entries numbered by `new_entry` but not pushed yet (a batch being built).
    pending: u64,
}

impl Model {
    fn next_index(&self) -> u64 {
        self.first_index + self.entries.len() as u64
    }

    fn last_index(&self) -> u64 {
        self.next_index() - 1
    }

    fn entry(&self, index: u64) -> &ModelEntry {
        &self.entries[(index - self.first_index) as usize]
    }

    fn new_entry(&mut self, payload_bytes: usize, ts_step_ms: u64, kind: u8) -> ModelEntry {
        let index = self.next_index() + self.pending;
        self.pending += 1;
        let ts_first_ms = self.clock_ms;
        self.clock_ms += ts_step_ms;
        let mut rng = Rng::new(self.salt ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        // Arbitrary flags: the log must hand back whatever the writer stored (riffle-core marks
        // sealed payloads with them), through reads, recovery and sealed segments alike.
        let flags = rng.next() as u16;
        ModelEntry {
            index,
            meta: EntryMeta {
                kind: FrameKind::from_u8(kind).unwrap(),
                flags,
                term: self.term,
                leader: self.term % 3 + 1,
                record_count: (payload_bytes / 100) as u16,
                ts_first_ms,
                ts_max_ms: self.clock_ms,
            },
            payload: (0..payload_bytes).map(|_| rng.next() as u8).collect(),
        }
    }

    fn truncate_after(&mut self, index: u64) {
        let keep = (index + 1).saturating_sub(self.first_index) as usize;
        self.entries.truncate(keep);
        self.salt = self.salt.wrapping_add(1);
    }

    fn push(&mut self, entry: ModelEntry) {
        assert_eq!(entry.index, self.next_index());
        self.entries.push(entry);
        self.pending -= 1;
    }
}

struct Harness {
    dir: PathBuf,
    log: Option<Log>,
    /// Taken when the log was opened; must keep seeing later appends.
    reader: LogReader,
    model: Model,
    /// Sparse-index misses caused on purpose: a flipped bit at an index point makes the
    /// entry there unreadable, so the index cannot lead to it.
    index_misses_caused: u64,
}

fn to_model(entry: &Entry) -> ModelEntry {
    ModelEntry {
        index: entry.index,
        meta: entry.meta,
        payload: entry.payload.to_vec(),
    }
}

impl Harness {
    fn log(&mut self) -> &mut Log {
        self.log.as_mut().unwrap()
    }

    fn check_shape(&mut self) {
        let model_first = self.model.first_index;
        let model_next = self.model.next_index();
        let model_durable = self.model.durable;
        assert_eq!(
            self.reader.index_misses(),
            self.index_misses_caused,
            "in-memory sparse index is wrong"
        );
        let log = self.log();
        assert_eq!(log.first_index(), model_first);
        assert_eq!(log.next_index(), model_next);
        assert_eq!(log.last_index(), model_next - 1);
        assert_eq!(log.durable_index(), model_durable);
        let segments = log.segments();
        assert_eq!(segments[0].base_index, model_first);
        assert_eq!(segments.last().unwrap().last_index, model_next - 1);
        for pair in segments.windows(2) {
            assert_eq!(pair[1].base_index, pair[0].last_index + 1, "{segments:?}");
            assert!(pair[0].sealed);
            assert!(pair[0].bytes > 0);
        }
        assert!(!segments.last().unwrap().sealed);
        for segment in &segments {
            let expected_bytes: u64 = (segment.base_index..=segment.last_index)
                .map(|index| self.model.entry(index).frame_bytes())
                .sum();
            assert_eq!(segment.bytes, expected_bytes);
            let expected_ts_max_ms = (segment.base_index..=segment.last_index)
                .map(|index| self.model.entry(index).meta.ts_max_ms)
                .max()
                .unwrap_or(0);
            assert_eq!(segment.ts_max_ms, expected_ts_max_ms);
        }
        // Rolling fsyncs: everything in sealed segments is durable.
        if segments.len() > 1 {
            let log = self.log.as_ref().unwrap();
            assert!(log.durable_index() >= segments[segments.len() - 2].last_index);
        }
    }

    fn check_contents(&self) {
        let found: Vec<ModelEntry> = self
            .reader
            .read(0, u64::MAX, usize::MAX, usize::MAX)
            .unwrap()
            .iter()
            .map(to_model)
            .collect();
        assert!(
            found == self.model.entries,
            "log contents differ from the model"
        );
    }

    /// An append first rolls a full active segment, which makes everything before it
    /// durable.
    fn expect_roll_before_append(&mut self) {
        let active_bytes = self.log().segments().last().unwrap().bytes;
        if active_bytes >= OPTIONS.segment_bytes_max {
            self.model.durable = self.model.last_index();
        }
    }

    fn append(&mut self, batch: Vec<ModelEntry>) {
        self.expect_roll_before_append();
        let frames: Vec<(EntryMeta, &[u8])> = batch
            .iter()
            .map(|entry| (entry.meta, &entry.payload[..]))
            .collect();
        let first = self.log().append_many(&frames).unwrap();
        assert_eq!(first, batch[0].index);
        for entry in batch {
            self.model.push(entry);
        }
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Append {
                payload_bytes,
                ts_step_ms,
                term_step,
                kind,
            } => {
                self.model.term += u64::from(*term_step);
                let entry = self.model.new_entry(*payload_bytes, *ts_step_ms, *kind);
                self.expect_roll_before_append();
                let index = self.log().append(&entry.meta, &entry.payload).unwrap();
                assert_eq!(index, entry.index);
                self.model.push(entry);
            }
            Op::AppendMany {
                payload_bytes,
                ts_step_ms,
                term_step,
            } => {
                self.model.term += u64::from(*term_step);
                let batch = payload_bytes
                    .iter()
                    .map(|bytes| self.model.new_entry(*bytes, *ts_step_ms, 0))
                    .collect();
                self.append(batch);
            }
            Op::Roll => {
                self.log().roll().unwrap();
                self.model.durable = self.model.last_index();
                let segments = self.log().segments();
                let active = segments.last().unwrap();
                assert_eq!(active.bytes, 0);
                assert_eq!(active.base_index, self.model.next_index());
            }
            Op::Sync => {
                self.log().sync().unwrap();
                self.model.durable = self.model.last_index();
                assert_eq!(self.log().durable_index(), self.model.last_index());
            }
            Op::SyncViaHandle {
                extra_payload_bytes,
            } => {
                let handle = self.log().sync_handle();
                let upto = handle.upto();
                assert_eq!(upto, self.model.last_index());
                let entry = self.model.new_entry(*extra_payload_bytes, 1, 0);
                self.append(vec![entry]);
                let handle = thread::spawn(move || handle.sync().map(|()| handle))
                    .join()
                    .unwrap()
                    .unwrap();
                self.log().mark_synced(&handle);
                self.model.durable = self.model.durable.max(upto);
            }
            Op::TruncateAfter { selector } => {
                let first = self.model.first_index;
                let count = self.model.entries.len() as u64;
                let index = first - 1 + selector % (count + 3);
                self.log().truncate_after(index).unwrap();
                if index < self.model.last_index() {
                    self.model.truncate_after(index);
                    self.model.durable = index;
                }
                self.check_contents();
            }
            Op::PurgeBefore { selector } => {
                let count = self.model.entries.len() as u64;
                let index = self.model.first_index + selector % (count + 3);
                let segments = self.log().segments();
                let active = segments.len() - 1;
                let kept = segments[..active]
                    .iter()
                    .position(|segment| segment.last_index >= index)
                    .unwrap_or(active);
                let new_first = segments[kept].base_index;
                self.log().purge_before(index).unwrap();
                assert_eq!(self.log().first_index(), new_first);
                assert_eq!(self.log().segments(), segments[kept..].to_vec());
                let dropped = (new_first - self.model.first_index) as usize;
                self.model.entries.drain(..dropped);
                self.model.first_index = new_first;
                self.check_contents();
            }
            Op::Read {
                from_selector,
                span,
                max_entries,
                max_bytes,
            } => {
                let count = self.model.entries.len() as u64;
                let from = self.model.first_index.saturating_sub(2) + from_selector % (count + 5);
                let upto = from + span;
                let max_bytes = match max_bytes {
                    MaxBytes::Fixed(bytes) => *bytes,
                    MaxBytes::Boundary { entries, delta } => {
                        let total: usize = self
                            .model
                            .entries
                            .iter()
                            .filter(|entry| entry.index >= from && entry.index <= upto)
                            .take(*entries)
                            .map(|entry| entry.payload.len())
                            .sum();
                        (total as i64 + delta).max(0) as usize
                    }
                };
                let found: Vec<ModelEntry> = self
                    .reader
                    .read(from, upto, *max_entries, max_bytes)
                    .unwrap()
                    .iter()
                    .map(to_model)
                    .collect();
                let mut expected = Vec::new();
                let mut payload_bytes = 0;
                for entry in &self.model.entries {
                    if entry.index < from || entry.index > upto {
                        continue;
                    }
                    if expected.len() >= (*max_entries).max(1)
                        || (!expected.is_empty() && payload_bytes + entry.payload.len() > max_bytes)
                    {
                        break;
                    }
                    payload_bytes += entry.payload.len();
                    expected.push(entry.clone());
                }
                assert!(
                    found == expected,
                    "read({from}, {upto}, {max_entries}, {max_bytes})"
                );
            }
            Op::FindByTimestamp { selector, existing } => {
                let entries = &self.model.entries;
                let ts_ms = if *existing && !entries.is_empty() {
                    entries[(selector % entries.len() as u64) as usize]
                        .meta
                        .ts_max_ms
                } else {
                    selector % (self.model.clock_ms + 5)
                };
                let expected = self
                    .model
                    .entries
                    .iter()
                    .find(|entry| entry.meta.ts_max_ms >= ts_ms)
                    .map(|entry| entry.index);
                assert_eq!(self.reader.find_by_timestamp(ts_ms).unwrap(), expected);
            }
            Op::Crash { damage } => self.crash(damage),
            Op::FailedAppend {
                fault,
                payload_bytes,
            } => self.failed_append(*fault, payload_bytes),
            Op::FailedSync { no_space } => self.failed_sync(*no_space),
            Op::BitRot {
                entry_selector,
                byte_selector,
                bit,
            } => self.bit_rot(*entry_selector, *byte_selector, *bit),
        }
        self.check_shape();
    }

    fn failed_append(&mut self, fault: WriteFault, payload_bytes: &[usize]) {
        let batch: Vec<ModelEntry> = payload_bytes
            .iter()
            .map(|bytes| self.model.new_entry(*bytes, 1, 0))
            .collect();
        self.model.pending -= batch.len() as u64;
        self.expect_roll_before_append();
        let frames: Vec<(EntryMeta, &[u8])> = batch
            .iter()
            .map(|entry| (entry.meta, &entry.payload[..]))
            .collect();
        let log = self.log.as_mut().unwrap();
        log.faults().fail_next_write(fault);
        let expected_errno = match fault {
            WriteFault::NoSpace | WriteFault::TornNoSpace => 28,
            WriteFault::TornIo => 5,
        };
        match log.append_many(&frames) {
            Err(LogError::Io(error)) => assert_eq!(error.raw_os_error(), Some(expected_errno)),
            other => panic!("a failed write must be refused, got {other:?}"),
        }
        // Nothing of the batch stays, in memory or in the file.
        self.check_contents();
        let active = *self.log().segments().last().unwrap();
        let on_disk = fs::metadata(segment_path(&self.dir, active.base_index))
            .unwrap()
            .len();
        assert_eq!(on_disk, active.bytes, "a torn batch was left in the file");
    }

    fn failed_sync(&mut self, no_space: bool) {
        // Something to sync, so the fsync really runs.
        let entry = self.model.new_entry(10, 1, 0);
        self.append(vec![entry]);
        let fault = if no_space {
            SyncFault::NoSpace
        } else {
            SyncFault::Io
        };
        let log = self.log.as_mut().unwrap();
        log.faults().fail_next_sync(fault);
        assert!(matches!(log.sync(), Err(LogError::Io(_))));
        // Poisoned: no retry may report success, no write or read goes through.
        assert!(matches!(log.sync(), Err(LogError::Poisoned)));
        assert!(matches!(
            log.append(&self.model.entries.last().unwrap().meta, b"x"),
            Err(LogError::Poisoned)
        ));
        assert!(matches!(
            self.reader.read(0, u64::MAX, usize::MAX, usize::MAX),
            Err(LogError::Poisoned)
        ));
        // Recovery is a reopen from what is on disk.
        self.crash(&Damage::None);
    }

    fn bit_rot(&mut self, entry_selector: u64, byte_selector: u64, bit: u8) {
        if self.model.entries.is_empty() {
            return;
        }
        let entry =
            self.model.entries[(entry_selector % self.model.entries.len() as u64) as usize].clone();
        let segments = self.log().segments();
        let segment = segments
            .iter()
            .rev()
            .find(|segment| segment.base_index <= entry.index)
            .unwrap();
        let frame_start: u64 = (segment.base_index..entry.index)
            .map(|index| self.model.entry(index).frame_bytes())
            .sum();
        let offset = frame_start + byte_selector % entry.frame_bytes();
        let path = segment_path(&self.dir, segment.base_index);
        flip_bit(&path, offset, bit);
        let read = self.reader.read(entry.index, entry.index, 1, usize::MAX);
        assert!(
            matches!(read, Err(LogError::Corrupt { .. })),
            "entry {} with bit {bit} of byte {} flipped was read as {:?}",
            entry.index,
            offset - frame_start,
            read.map(|entries| entries.len())
        );
        flip_bit(&path, offset, bit);
        self.index_misses_caused = self.reader.index_misses();
        self.check_contents();
    }

    fn crash(&mut self, damage: &Damage) {
        let log = self.log.take().unwrap();
        let durable = log.durable_index();
        assert_eq!(durable, self.model.durable);
        let active = *log.segments().last().unwrap();
        let active_path = segment_path(&self.dir, active.base_index);
        let durable_bytes: u64 = (active.base_index..=durable)
            .map(|index| self.model.entry(index).frame_bytes())
            .sum();
        drop(log);

        let original = fs::read(&active_path).unwrap();
        assert_eq!(original.len() as u64, active.bytes);
        let damaged = damage_bytes(&original, durable_bytes, damage);
        fs::write(&active_path, &damaged).unwrap();

        let (log, report, damaged_len) = match Log::open(&self.dir, OPTIONS) {
            Ok((log, report)) => (log, report, damaged.len() as u64),
            Err(LogError::Corrupt {
                path,
                offset,
                reason,
            }) => {
                assert!(
                    matches!(damage, Damage::Flip { .. }),
                    "only mid-suffix flips may look like corruption: {reason}"
                );
                assert_eq!(path, active_path);
                assert!(
                    offset >= durable_bytes,
                    "corruption reported inside durable data"
                );
                // Repair as an operator would: cut at the reported offset.
                let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
                file.set_len(offset).unwrap();
                let (log, report) = Log::open(&self.dir, OPTIONS).unwrap();
                (log, report, offset)
            }
            Err(error) => panic!("reopen failed: {error}"),
        };
        let last = log.last_index();
        assert!(last >= durable, "lost durable entries: {last} < {durable}");
        assert!(last <= self.model.last_index());
        if damaged == original {
            assert_eq!(last, self.model.last_index(), "undamaged entries lost");
        }
        assert_eq!(log.durable_index(), last);
        let active_after = *log.segments().last().unwrap();
        assert_eq!(
            report.torn_tail_bytes_truncated,
            damaged_len - active_after.bytes
        );
        check_report(&report, &log);

        self.reader = log.reader();
        self.index_misses_caused = 0;
        self.log = Some(log);
        self.model.truncate_after(last);
        self.model.durable = last;
        self.check_contents();
    }
}

fn check_report(report: &RecoveryReport, log: &Log) {
    assert_eq!(report.segments, log.segments().len());
    assert_eq!(report.entries, log.next_index() - log.first_index());
}

fn flip_bit(path: &Path, offset: u64, bit: u8) {
    use std::os::unix::fs::FileExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, offset).unwrap();
    byte[0] ^= 1 << bit;
    file.write_all_at(&byte, offset).unwrap();
}

fn segment_path(dir: &Path, base_index: u64) -> PathBuf {
    dir.join(format!("{base_index:020}.log"))
}

/// Applies `damage` to a segment's bytes, touching nothing before `durable_bytes`.
fn damage_bytes(original: &[u8], durable_bytes: u64, damage: &Damage) -> Vec<u8> {
    let durable = durable_bytes as usize;
    let suffix = original.len() - durable;
    let mut bytes = original.to_vec();
    match damage {
        Damage::None => {}
        Damage::Cut { selector } => {
            bytes.truncate(durable + (*selector % (suffix as u64 + 1)) as usize);
        }
        Damage::Garble {
            selector,
            grow_bytes,
            zeros,
            seed,
        } => {
            let start = durable + (*selector % (suffix as u64 + 1)) as usize;
            let mut rng = Rng::new(*seed);
            bytes.resize(original.len() + grow_bytes, 0);
            for byte in &mut bytes[start..] {
                *byte = if *zeros { 0 } else { rng.next() as u8 };
            }
        }
        Damage::Flip { selectors, seed } => {
            if suffix > 0 {
                let mut rng = Rng::new(*seed);
                for selector in selectors {
                    let at = durable + (*selector % suffix as u64) as usize;
                    bytes[at] ^= (rng.next() % 255 + 1) as u8;
                }
            }
        }
    }
    bytes
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(CASES_DEFAULT)
}

fn run_sequence(ops: &[Op]) {
    let dir = tempfile::tempdir().unwrap();
    let (log, report) = Log::open(dir.path(), OPTIONS).unwrap();
    assert_eq!(report.entries, 0);
    let reader = log.reader();
    let mut harness = Harness {
        dir: dir.path().to_path_buf(),
        log: Some(log),
        reader,
        index_misses_caused: 0,
        model: Model {
            first_index: 1,
            entries: Vec::new(),
            durable: 0,
            term: 1,
            clock_ms: 1_000,
            salt: 0,
            pending: 0,
        },
    };
    for op in ops {
        harness.run(op);
    }
    harness.check_contents();
    // A final crash without damage keeps everything.
    harness.run(&Op::Crash {
        damage: Damage::None,
    });
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        // Failures print the minimal sequence; no regression files in the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn log_behaves_like_its_model(ops in prop::collection::vec(op_strategy(), 1..80)) {
        run_sequence(&ops);
    }
}

/// A sync handle taken before a truncation removed its segment (a flusher on another thread
/// may get to it late) succeeds without a file to sync, even once the file cache closed the
/// segment's file; the log's entries the truncation kept are durable. On a poisoned log it
/// still fails.
#[test]
fn a_handle_to_a_segment_a_truncation_removed_syncs_nothing_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(dir.path(), OPTIONS).unwrap();
    let meta = |term| EntryMeta {
        kind: FrameKind::Data,
        flags: 0,
        term,
        leader: 1,
        record_count: 1,
        ts_first_ms: 0,
        ts_max_ms: 0,
    };
    // Enough frames to fill the first segment and start a second.
    while log.segments().len() < 2 {
        log.append(&meta(1), &[7u8; 300]).unwrap();
    }
    let first_of_second = log.segments()[1].base_index;
    let late = log.sync_handle();
    // Cut into the first segment, so the second (the handle's) is removed.
    log.truncate_after(first_of_second - 2).unwrap();
    // Whatever the cache does with the removed segment's file now, the handle has nothing
    // to do.
    log.file_cache().close_idle(std::time::Duration::ZERO);
    late.sync().expect("nothing left to sync");
    assert_eq!(log.segments().len(), 1);
    assert_eq!(log.last_index(), first_of_second - 2);
    assert_eq!(log.durable_index(), first_of_second - 2);

    // A poisoned log refuses every sync, removed segment or not.
    log.append(&meta(2), &[8u8; 10]).unwrap();
    log.faults().fail_next_sync(SyncFault::Io);
    assert!(log.sync_handle().sync().is_err());
    assert!(matches!(late.sync(), Err(LogError::Poisoned)));
}
