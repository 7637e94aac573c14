//! [`LogReader`]: concurrent reads that never block the writer on disk I/O.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::log::Shared;
use crate::segment::{walk_segment, WalkFrom};
use crate::{Entry, LogError, SegmentInfo};

/// How often [`LogReader::find_by_timestamp`] restarts after racing a truncation before it
/// gives up. Truncations are rare (a Raft leader change), so one restart almost always
/// suffices.
const FIND_ATTEMPTS_MAX: usize = 8;

/// A cheap, cloneable, `Send + Sync` reader of a [`crate::Log`].
///
/// Each call copies the segment list under a short read lock, then each segment's length
/// and sparse index under that segment's short read lock, and does all disk reads
/// (`pread` through the shared file handles) holding no lock. It sees every append that
/// completed before the call. Every frame's CRC and index are checked; a mismatch is
/// [`LogError::Corrupt`], never served.
///
/// Payloads are slices of the read buffer (up to 256 KiB per disk read), so keeping one
/// entry alive keeps its buffer alive; copy a payload that is cached for long.
#[derive(Debug, Clone)]
pub struct LogReader {
    shared: Arc<Shared>,
}

impl LogReader {
    pub(crate) fn new(shared: Arc<Shared>) -> LogReader {
        LogReader { shared }
    }

    /// First index still stored (equals `next_index()` when the log is empty).
    pub fn first_index(&self) -> u64 {
        let segments = self.shared.segments();
        match segments.first() {
            Some(segment) => segment.base_index,
            None => 1,
        }
    }

    /// A summary of every segment, oldest first; the last one is the active segment (what
    /// [`crate::Log::segments`] returns, for a holder of a reader only: a replicated shard's
    /// retention, whose log its Raft group owns).
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.shared
            .segments()
            .iter()
            .map(|segment| segment.state().info(segment.base_index))
            .collect()
    }

    /// Index the next append will get: one past the last entry written so far (durable or
    /// not).
    pub fn next_index(&self) -> u64 {
        let segments = self.shared.segments();
        match segments.last() {
            Some(segment) => segment.state().last_index + 1,
            None => 1,
        }
    }

    /// How many times since the log was opened a sparse-index entry did not lead to the
    /// frame it names, so a read or lookup fell back to scanning its segment from the start.
    /// Nonzero means a damaged or stale `.idx` file (answers stay correct, reads get
    /// slower); worth a warning in operations, and always 0 in a healthy log.
    pub fn index_misses(&self) -> u64 {
        self.shared.index_misses.load(Ordering::Relaxed)
    }

    /// Entries with index in `[from, upto]` in order, stopping after `max_entries` entries
    /// or before the payload total would exceed `max_bytes`; the first entry in range is
    /// always returned, whatever its size (so `max_entries == 0` or a tiny `max_bytes` still
    /// make progress). Entries below `first_index()` are skipped (the result starts at
    /// `first_index()`). Every frame's CRC is checked; a mismatch is [`LogError::Corrupt`],
    /// never served.
    ///
    /// Entries not yet fsynced are returned too; the domain reads only up to
    /// `durable_index()` (or the Raft commit index). A read racing `truncate_after` may end
    /// early at the truncation point.
    pub fn read(
        &self,
        from: u64,
        upto: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, LogError> {
        self.shared.check_poisoned()?;
        let segments = self.shared.snapshot();
        let Some(first) = segments.first() else {
            return Ok(Vec::new());
        };
        let entries_max = max_entries.max(1);
        let mut next = from.max(first.base_index);
        let mut entries: Vec<Entry> = Vec::new();
        let mut payload_bytes = 0usize;
        let start = segments
            .partition_point(|segment| segment.base_index <= next)
            .saturating_sub(1);
        for segment in &segments[start..] {
            if next > upto || entries.len() >= entries_max {
                break;
            }
            let mut full = false;
            let walk = walk_segment(&self.shared, segment, WalkFrom::Index(next), |frame| {
                let index = frame.header.index;
                if index < next {
                    return Ok(true);
                }
                if index > upto {
                    full = true;
                    return Ok(false);
                }
                let frame_payload_bytes = frame.payload.len();
                if !entries.is_empty()
                    && payload_bytes.saturating_add(frame_payload_bytes) > max_bytes
                {
                    full = true;
                    return Ok(false);
                }
                payload_bytes += frame_payload_bytes;
                entries.push(Entry {
                    index,
                    meta: frame.header.meta,
                    payload: frame.payload,
                });
                next = index + 1;
                // Stop before reading a frame beyond the range: damage there is not ours to
                // report.
                Ok(entries.len() < entries_max && index < upto)
            })?;
            if full || walk.raced {
                break;
            }
        }
        Ok(entries)
    }

    /// First index whose `ts_max_ms >= ts_ms`, found through the segments' largest
    /// timestamps, then the sparse index, then a short scan. `None` if no stored entry
    /// reaches `ts_ms`. Timestamps need not be monotone: the comparisons use running
    /// maxima, which are.
    pub fn find_by_timestamp(&self, ts_ms: u64) -> Result<Option<u64>, LogError> {
        self.shared.check_poisoned()?;
        for _attempt in 0..FIND_ATTEMPTS_MAX {
            if let Some(found) = self.find_by_timestamp_once(ts_ms)? {
                return Ok(found);
            }
        }
        Err(LogError::Io(io::Error::other(
            "find_by_timestamp kept racing truncations of the log",
        )))
    }

    /// `Ok(None)` means the search raced a truncation and must restart.
    fn find_by_timestamp_once(&self, ts_ms: u64) -> Result<Option<Option<u64>>, LogError> {
        for segment in self.shared.snapshot() {
            let (reaches, generation) = {
                let state = segment.state();
                let is_empty = state.last_index < segment.base_index;
                (!is_empty && state.ts_max_ms >= ts_ms, state.generation)
            };
            if !reaches {
                continue;
            }
            let mut found = None;
            let walk = walk_segment(
                &self.shared,
                &segment,
                WalkFrom::Timestamp(ts_ms),
                |frame| {
                    if frame.header.meta.ts_max_ms >= ts_ms {
                        found = Some(frame.header.index);
                        return Ok(false);
                    }
                    Ok(true)
                },
            )?;
            if let Some(index) = found {
                return Ok(Some(Some(index)));
            }
            if walk.raced || segment.state().generation != generation {
                return Ok(None);
            }
            // The segment's running maximum promised a frame reaching `ts_ms`.
            return Err(LogError::Corrupt {
                path: segment.path.clone(),
                offset: 0,
                reason: format!(
                    "segment's largest timestamp reaches {ts_ms} but none of its frames does"
                ),
            });
        }
        Ok(Some(None))
    }
}
