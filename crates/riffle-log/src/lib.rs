//! riffle's segment log: the durable storage of one shard.
//!
//! A [`Log`] is a directory of append-only **segment files** holding checksummed
//! **frames**, one frame per log entry, plus a **sparse index** per sealed segment. It knows
//! nothing of Kinesis, HTTP or async runtimes: it does synchronous std I/O, and payloads are
//! opaque bytes. It is shaped to be the log storage of a Raft engine (openraft): every frame
//! carries an index and a term, indexes are contiguous, and the log supports
//! [`Log::truncate_after`], [`Log::purge_before`] and [`Log::reset`] (empty the log and
//! continue at any index, as a follower does after installing a snapshot).
//!
//! # On-disk format
//!
//! ```text
//! <dir>/
//!   00000000000000000001.log   segment: frames with indexes 1 ..= 4711
//!   00000000000000000001.idx   its sparse index, written when the segment was sealed
//!   00000000000000004712.log   the active segment, appended to; no .idx yet
//! ```
//!
//! * A segment is named after the index of its first frame, zero-padded to 20 digits, so
//!   names sort like indexes.
//! * A **frame** is `len u32 | crc32c u32 | version u8 | kind u8 | flags u16 | term u64 |
//!   leader u64 | index u64 | record_count u16 | ts_first_ms u64 | ts_max_ms u64 | payload`,
//!   little-endian; the CRC32C covers everything after itself. See [`frame`] for the exact
//!   layout, limits and codec.
//! * A **sparse index** entry `(relative index u32, position u32, ts_max_ms u64)` is kept
//!   about every `index_interval_bytes` of frames (32 KiB by default, about 0.05 % of the
//!   data), with `ts_max_ms` the running maximum over the segment up to that frame. The
//!   `.idx` file is those 16-byte entries followed by a CRC32C. The index of every segment
//!   is kept in memory; the active segment's lives only there until the segment is sealed.
//!
//! # Invariants
//!
//! * **Contiguous indexes.** The frames of all segments, in file and name order, carry
//!   indexes `first_index() ..= last_index()` without a hole; each segment starts right after
//!   the previous one ends. An empty log has `first_index() == next_index()`.
//! * **Terms never decrease** along the log. Appends with a lower term are refused.
//! * **Checksums on both sides of the disk.** A frame is decoded and verified after it is
//!   encoded and before it is written, and again after every read. A reader never returns a
//!   frame that fails its CRC: it returns [`LogError::Corrupt`].
//! * **Sealed means complete.** Every segment except the last one (the *active* segment) is
//!   sealed: fsynced, then indexed (`.idx` written and fsynced), and only then followed by a
//!   new segment. Appends go only to the active segment.
//! * **Durability is explicit.** Appends are plain `write(2)`s; [`Log::durable_index`] moves
//!   only after an fsync ([`Log::sync`], a [`SyncHandle`], a roll, a truncation, or recovery).
//!   Acknowledge nothing above it. Directory entries are fsynced after every file creation,
//!   rename and deletion.
//! * **A failed fsync poisons the log.** The kernel may drop the pages it failed to write, so
//!   retrying could report success for lost data; every later call returns
//!   [`LogError::Poisoned`] and the process is expected to restart and recover.
//!
//! # Recovery
//!
//! [`Log::open`] checks contiguity and term monotonicity, loads every sealed segment's index
//! (rebuilding a missing or bad one by scanning, with a `tracing` warning), and scans the
//! active segment frame by frame. At the first bad frame of the active segment it searches
//! the rest of the file byte by byte for a frame that verifies and whose index could follow:
//! if there is none, the damage is a **torn tail** left by a crash (nothing there had been
//! fsynced, so nothing there was acknowledged) and the file is cut there; if there is one, or
//! the bad frame is in a sealed segment, the log is **corrupt** and `open` fails with the
//! file and offset, for an operator (or a replica rejoining as a learner) to decide.
//!
//! # Concurrency
//!
//! The [`Log`] is the single writer and needs `&mut self`. Readers ([`LogReader`], cheap to
//! clone, `Send + Sync`) share the segment list and each segment's state through `Arc`s and
//! short-held `RwLock`s: a reader copies what it needs (a segment's published length, last
//! index and index start point) under the lock and does all its `pread`s without one, so a
//! reader never blocks an append for the duration of disk I/O, and sees every append that
//! completed before its call. A [`SyncHandle`] lets another thread fsync the active segment
//! while the writer keeps appending; the writer then calls [`Log::mark_durable`].
//!
//! # Open files
//!
//! The writer keeps the active segment open (read-write). Every other segment is opened
//! read-only when a read needs it, and its handle is kept by a [`FileCache`] — one per
//! process, shared by all its logs through [`Log::open_with_cache`] — that closes the least
//! recently used handles beyond its capacity and, on [`FileCache::close_idle`], the idle ones.
//! A log that takes no more appends can let its active segment go the same way
//! ([`Log::unpin_active`]). So the files a process holds open are one per writable log plus
//! the cache's capacity, however many sealed segments and logs it has on disk. A read that
//! reaches a segment after a purge or truncation deleted it ends there, as if it had raced
//! the change.
//!
//! # Example
//!
//! ```
//! use riffle_log::{EntryMeta, FrameKind, Log, LogOptions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let (mut log, report) = Log::open(dir.path(), LogOptions::default()).unwrap();
//! assert_eq!(report.entries, 0);
//! let meta = EntryMeta {
//!     kind: FrameKind::Data,
//!     flags: 0,
//!     term: 1,
//!     leader: 1,
//!     record_count: 1,
//!     ts_first_ms: 1_000,
//!     ts_max_ms: 1_000,
//! };
//! assert_eq!(log.append(&meta, b"hello").unwrap(), 1);
//! log.sync().unwrap();
//! assert_eq!(log.durable_index(), 1);
//! let entries = log.reader().read(1, log.durable_index(), 100, 1 << 20).unwrap();
//! assert_eq!(&entries[0].payload[..], b"hello");
//! ```

pub mod frame;

mod error;
#[cfg(any(test, feature = "fault-injection"))]
pub mod faults;
mod index;
mod log;
mod reader;
mod recovery;
pub mod salvage;
mod segment;

#[cfg(test)]
mod tests;

pub use crate::error::LogError;
pub use crate::frame::FRAME_HEADER_BYTES;
pub use crate::log::{Log, SyncHandle};
pub use crate::reader::LogReader;
pub use crate::segment::{FileCache, FILE_CACHE_CAPACITY_DEFAULT};

/// Options that create a file readable and writable by its owner only (mode 0600): a log
/// holds every record of its shard, which other local users must not read.
pub fn owner_only_options(options: &mut std::fs::OpenOptions) -> &mut std::fs::OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Narrows an open file to owner-only access if its group or others have any (files made by
/// older versions, or copied in with a looser umask).
pub fn owner_only_file(file: &std::fs::File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    Ok(())
}

/// Narrows an existing directory to owner-only access if its group or others have any.
pub fn owner_only_dir(dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    Ok(())
}

/// Creates `dir` and any missing parents with mode 0700 (owner only).
pub fn create_owner_only_dirs(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Default size at which the active segment is sealed and a new one started.
pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 128 << 20;

/// Default spacing of sparse-index entries.
pub const INDEX_INTERVAL_BYTES_DEFAULT: u64 = 32 << 10;

/// Largest accepted `segment_bytes_max`. Together with [`APPEND_BYTES_MAX`] it keeps every
/// frame position of a segment below 2^32, as the 32-bit positions of the sparse index
/// require.
pub const SEGMENT_BYTES_MAX_CEILING: u64 = 2 << 30;

/// Largest batch one [`Log::append_many`] call may write, frames included.
pub const APPEND_BYTES_MAX: u64 = 1 << 30;

/// Tuning knobs of a [`Log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// The active segment is sealed once it holds at least this many bytes (checked before
    /// each append, so a segment exceeds it by at most one batch). Between 1 and
    /// [`SEGMENT_BYTES_MAX_CEILING`].
    pub segment_bytes_max: u64,
    /// Bytes of frames between two sparse-index entries. Between 1 and
    /// [`SEGMENT_BYTES_MAX_CEILING`].
    pub index_interval_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> LogOptions {
        LogOptions {
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            index_interval_bytes: INDEX_INTERVAL_BYTES_DEFAULT,
        }
    }
}

impl LogOptions {
    /// Checks that the options are within their documented ranges.
    pub fn validate(&self) -> Result<(), LogError> {
        if self.segment_bytes_max == 0 || self.segment_bytes_max > SEGMENT_BYTES_MAX_CEILING {
            return Err(LogError::InvalidArgument(format!(
                "segment_bytes_max {} outside [1, {SEGMENT_BYTES_MAX_CEILING}]",
                self.segment_bytes_max
            )));
        }
        if self.index_interval_bytes == 0 || self.index_interval_bytes > SEGMENT_BYTES_MAX_CEILING {
            return Err(LogError::InvalidArgument(format!(
                "index_interval_bytes {} outside [1, {SEGMENT_BYTES_MAX_CEILING}]",
                self.index_interval_bytes
            )));
        }
        Ok(())
    }
}

/// What a frame holds. Stored as one byte (`0..=3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// A batch of records.
    Data = 0,
    /// A Raft blank entry (a new leader's first entry).
    Blank = 1,
    /// A Raft membership change.
    Membership = 2,
    /// The shard is sealed (resharding); no data follows.
    Seal = 3,
}

impl FrameKind {
    /// The kind stored as `byte`, if any.
    pub fn from_u8(byte: u8) -> Option<FrameKind> {
        match byte {
            0 => Some(FrameKind::Data),
            1 => Some(FrameKind::Blank),
            2 => Some(FrameKind::Membership),
            3 => Some(FrameKind::Seal),
            _ => None,
        }
    }
}

/// The fixed fields of an entry, besides its index and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMeta {
    /// What the entry holds.
    pub kind: FrameKind,
    /// Flags that belong to the writer (riffle-core marks encrypted payloads with them). The
    /// log stores and returns them unchanged and gives them no meaning.
    pub flags: u16,
    /// Raft term; never decreases along the log.
    pub term: u64,
    /// Node id of the leader that wrote the entry.
    pub leader: u64,
    /// Number of records in the payload (meaningful to the domain only).
    pub record_count: u16,
    /// Arrival time of the first record, in milliseconds since the Unix epoch.
    pub ts_first_ms: u64,
    /// Largest arrival time in the entry; what [`LogReader::find_by_timestamp`] searches.
    pub ts_max_ms: u64,
}

/// One entry read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Raft index.
    pub index: u64,
    /// Kind, term, leader, record count, timestamps.
    pub meta: EntryMeta,
    /// The opaque payload.
    pub payload: bytes::Bytes,
}

/// A summary of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Index of its first frame (and its file name).
    pub base_index: u64,
    /// Index of its last frame; `base_index - 1` if empty.
    pub last_index: u64,
    /// Largest `ts_max_ms` of its frames (0 if empty); retention compares it with the
    /// stream's retention period.
    pub ts_max_ms: u64,
    /// Size of its frames in bytes.
    pub bytes: u64,
    /// Whether it is sealed (every segment but the active one, the last).
    pub sealed: bool,
}

/// What the caller knows must be in a log it opens ([`Log::open_expecting`]), so that
/// recovery can tell a torn write, which a crash explains, from lost data, which it does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    /// Every index up to this one had been fsynced (and so possibly acknowledged) when the
    /// caller last recorded it: a log ending below it has lost data. 0 knows nothing.
    pub synced_through: u64,
    /// Whether a damaged suffix of the active segment beyond `synced_through` may be cut as
    /// a torn write. False after a clean shutdown, which synced everything it wrote.
    pub torn_tail_allowed: bool,
}

impl Default for Expect {
    /// Knows nothing: any torn tail is cut.
    fn default() -> Expect {
        Expect {
            synced_through: 0,
            torn_tail_allowed: true,
        }
    }
}

/// What [`Log::open`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments in the log.
    pub segments: usize,
    /// Entries stored (`last_index - first_index + 1`).
    pub entries: u64,
    /// Bytes cut from the end of the active segment as a torn tail.
    pub torn_tail_bytes_truncated: u64,
}
