//! One segment file: its name, its shared in-memory state, and frame-by-frame reading.
//!
//! A [`Segment`] is shared through `Arc` by the [`crate::Log`] (the only writer) and every
//! [`crate::LogReader`]. The mutable part ([`SegmentState`]) sits behind a `RwLock` held only
//! to copy or update a few fields, never across disk I/O.
//!
//! **File handles.** A segment's file is open only while something needs it. The writer
//! *pins* the active segment: its read-write handle stays open for appends and fsyncs. Every
//! other segment (sealed ones, and the active segment of a log that takes no more appends) is
//! opened read-only on the first read that needs it, and its handle is then held by the
//! [`FileCache`] the log shares with other logs, which closes the least recently used handles
//! beyond its capacity and those idle for long. A read takes an `Arc` of the handle and does its
//! positional reads (`pread`) through it without any lock, so closing a handle never disturbs a
//! read in progress: the descriptor closes when that read drops its `Arc`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::frame::{self, FrameError, FrameHeader, FRAME_HEADER_BYTES, FRAME_PREFIX_BYTES};
use crate::index::{self, IndexEntry};
use crate::log::Shared;
use crate::{LogError, SegmentInfo};

/// Digits in a segment or index file name (`u64::MAX` has 20).
const FILE_NAME_DIGITS: usize = 20;

/// Extension of segment files.
pub(crate) const SEGMENT_EXTENSION: &str = "log";

/// Extension of sparse-index files.
pub(crate) const INDEX_EXTENSION: &str = "idx";

/// Suffix of an index file being written; leftovers are deleted by recovery.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// Bytes read from disk at once when scanning frames; a larger frame gets a larger read.
pub(crate) const READ_CHUNK_BYTES: usize = 256 << 10;

/// `{base_index:020}.log`
pub(crate) fn segment_file_name(base_index: u64) -> String {
    format!("{base_index:020}.{SEGMENT_EXTENSION}")
}

/// `{base_index:020}.idx`
pub(crate) fn index_file_name(base_index: u64) -> String {
    format!("{base_index:020}.{INDEX_EXTENSION}")
}

/// Parses `{20 digits}.{extension}` into the base index.
pub(crate) fn parse_file_name(name: &str, extension: &str) -> Option<u64> {
    let (digits, found_extension) = name.split_once('.')?;
    if found_extension != extension
        || digits.len() != FILE_NAME_DIGITS
        || !digits.bytes().all(|byte| byte.is_ascii_digit())
    {
        return None;
    }
    digits.parse().ok()
}

/// Mutable facts about a segment, published to readers after each change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentState {
    /// Bytes of complete, verified frames; readers never look past this.
    pub bytes: u64,
    /// Index of the last frame, `base_index - 1` when empty.
    pub last_index: u64,
    /// Term of the last frame, or the term floor inherited from the previous segment.
    pub last_term: u64,
    /// Running maximum of `ts_max_ms` over the segment's frames (0 when empty).
    pub ts_max_ms: u64,
    /// Sealed segments are fsynced, have an `.idx` file and are never appended to.
    pub sealed: bool,
    /// The sparse index.
    pub index: Vec<IndexEntry>,
    /// Bumped whenever frames are removed, so a reader that raced a truncation can tell a
    /// vanished frame from a damaged one.
    pub generation: u64,
}

impl SegmentState {
    /// The state of a segment with no frames yet.
    pub fn empty(base_index: u64, last_term: u64) -> SegmentState {
        SegmentState {
            bytes: 0,
            last_index: base_index - 1,
            last_term,
            ts_max_ms: 0,
            sealed: false,
            index: Vec::new(),
            generation: 0,
        }
    }

    /// Accounts for a verified frame written at `position`, which must be the segment's
    /// current end. The single place where the sparse index grows, so appends, recovery
    /// scans and index rebuilds all place entries identically.
    pub fn push_frame(
        &mut self,
        base_index: u64,
        position: u64,
        header: &FrameHeader,
        interval_bytes: u64,
    ) {
        assert_eq!(position, self.bytes, "frames must be pushed in file order");
        assert_eq!(
            header.index,
            self.last_index + 1,
            "frames must be pushed in index order"
        );
        self.ts_max_ms = self.ts_max_ms.max(header.meta.ts_max_ms);
        if index::wants_entry(&self.index, position, interval_bytes) {
            let rel_index = u32::try_from(header.index - base_index);
            let file_position = u32::try_from(position);
            // Segment size limits keep both below 2^32; see `SEGMENT_BYTES_MAX_CEILING`.
            assert!(rel_index.is_ok() && file_position.is_ok());
            if let (Ok(rel_index), Ok(position)) = (rel_index, file_position) {
                self.index.push(IndexEntry {
                    rel_index,
                    position,
                    ts_max_ms: self.ts_max_ms,
                });
            }
        }
        self.bytes = position + header.frame_bytes as u64;
        self.last_index = header.index;
        self.last_term = header.meta.term;
    }

    /// The public summary of this state.
    pub fn info(&self, base_index: u64) -> SegmentInfo {
        SegmentInfo {
            base_index,
            last_index: self.last_index,
            ts_max_ms: self.ts_max_ms,
            bytes: self.bytes,
            sealed: self.sealed,
        }
    }
}

/// A segment file shared by the log and its readers.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Index of the first frame in the file (also its name).
    pub base_index: u64,
    /// Path of the `.log` file, for error messages, (re)opening and deletion.
    pub path: PathBuf,
    /// The open handle, if any (see the module documentation).
    handle: Mutex<Handle>,
    /// When a read or write last used the handle, in [`FileCache::now_ms`] time.
    last_used_ms: AtomicU64,
    /// Set before the file is deleted (purge, truncation): a reader that finds it missing
    /// then knows the log moved under it, rather than that the file was lost.
    removed: AtomicBool,
    state: RwLock<SegmentState>,
}

/// A segment's file handle and what it may be used for.
#[derive(Debug)]
struct Handle {
    file: Option<Arc<File>>,
    /// Opened read-write (the writer's); lazily opened handles are read-only.
    writable: bool,
    /// The writer's active segment: never closed by the cache.
    pinned: bool,
}

impl Segment {
    /// Wraps a segment file opened read-write. The handle is neither pinned nor in a cache:
    /// the caller pins it ([`Segment::pin`]), hands it to the cache ([`Segment::unpin`]) or
    /// closes it ([`Segment::close`]).
    pub fn new(base_index: u64, path: PathBuf, file: File, state: SegmentState) -> Segment {
        Segment {
            base_index,
            path,
            handle: Mutex::new(Handle {
                file: Some(Arc::new(file)),
                writable: true,
                pinned: false,
            }),
            last_used_ms: AtomicU64::new(0),
            removed: AtomicBool::new(false),
            state: RwLock::new(state),
        }
    }

    /// A new segment for the writer: `file` opened read-write, pinned.
    pub fn new_active(base_index: u64, path: PathBuf, file: File, state: SegmentState) -> Segment {
        let segment = Segment::new(base_index, path, file, state);
        segment.handle().pinned = true;
        segment
    }

    /// Opens an existing segment file for reading and writing. A file left readable by
    /// others (by an older riffle, or a copy) is made owner-only: records are private.
    pub fn open_file(path: &Path) -> io::Result<File> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        crate::owner_only_file(&file)?;
        Ok(file)
    }

    /// Creates a new, empty segment file, readable by its owner only; fails if it already
    /// exists.
    pub fn create_file(path: &Path) -> io::Result<File> {
        crate::owner_only_options(OpenOptions::new().read(true).write(true).create_new(true))
            .open(path)
    }

    fn handle(&self) -> MutexGuard<'_, Handle> {
        // Every update of the handle is a single assignment: nothing to repair after a panic.
        self.handle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A handle for reading (or fsyncing) the file: the open one, or a read-only one opened
    /// now and handed to `files`, which may close another segment's handle to make room.
    pub fn file(self: &Arc<Self>, files: &FileCache) -> io::Result<Arc<File>> {
        self.last_used_ms.store(files.now_ms(), Ordering::Relaxed);
        if let Some(file) = &self.handle().file {
            return Ok(Arc::clone(file));
        }
        // Opened without the lock; if another reader won the race its handle is kept.
        let opened = Arc::new(File::open(&self.path)?);
        if self.is_removed() {
            // Whatever was opened (a later segment may reuse the name after a truncation)
            // is not this segment's file.
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        let pinned = {
            let mut handle = self.handle();
            if let Some(file) = &handle.file {
                return Ok(Arc::clone(file));
            }
            handle.file = Some(Arc::clone(&opened));
            handle.writable = false;
            handle.pinned
        };
        files.inner.opened.fetch_add(1, Ordering::Relaxed);
        if !pinned {
            files.admit(self);
        }
        Ok(opened)
    }

    /// Pins the segment for the writer and returns its read-write handle, opening one if the
    /// segment had none or only a read-only one. A pinned handle is never closed by the cache.
    pub fn pin(&self) -> io::Result<Arc<File>> {
        let mut handle = self.handle();
        let file = match &handle.file {
            Some(file) if handle.writable => Arc::clone(file),
            _ => {
                let file = Arc::new(Segment::open_file(&self.path)?);
                handle.file = Some(Arc::clone(&file));
                handle.writable = true;
                file
            }
        };
        handle.pinned = true;
        Ok(file)
    }

    /// Unpins the segment: its handle, if open, now belongs to `files` like any reader's.
    pub fn unpin(self: &Arc<Self>, files: &FileCache) {
        let open = {
            let mut handle = self.handle();
            handle.pinned = false;
            handle.file.is_some()
        };
        if open {
            files.admit(self);
        }
    }

    /// Closes the handle unless the segment is pinned; the next read opens the file again.
    pub fn close(&self) {
        let mut handle = self.handle();
        if !handle.pinned {
            handle.file = None;
        }
    }

    /// Whether the segment holds an open handle that the cache may close.
    fn closable(&self) -> bool {
        let handle = self.handle();
        handle.file.is_some() && !handle.pinned
    }

    /// Marks the file as about to be deleted (see `removed`).
    pub fn mark_removed(&self) {
        self.removed.store(true, Ordering::Release);
    }

    /// Whether the file was deleted (or is being deleted) by a purge or truncation.
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    /// Shared access to the state. A panic while the lock was held cannot leave the state
    /// half-updated in a way that matters more than the panic itself, so poisoning of the
    /// lock is ignored.
    pub fn state(&self) -> RwLockReadGuard<'_, SegmentState> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Exclusive access to the state (the writer only, briefly).
    pub fn state_mut(&self) -> RwLockWriteGuard<'_, SegmentState> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Path of this segment's `.idx` file.
    pub fn index_path(&self) -> PathBuf {
        self.path.with_file_name(index_file_name(self.base_index))
    }

    #[cfg(test)]
    pub fn handle_is_closed_for_test(&self) -> bool {
        self.handle().file.is_none()
    }
}

/// Default [`FileCache`] capacity: segment files open for reads at once, beyond the active
/// segments the writers pin.
pub const FILE_CACHE_CAPACITY_DEFAULT: usize = 128;

/// The read handles of segment files, shared by every [`crate::Log`] opened with it (a node
/// shares one among all its shards), and a cap on how many stay open at once.
///
/// Only handles that no writer pins are held here: sealed segments, and the active segment of
/// a log told it takes no more appends ([`crate::Log::unpin_active`]). The first read of such
/// a segment opens it read-only; once more than `capacity` are open, each new one closes the
/// least recently used. [`FileCache::close_idle`] closes those unused for a while. So a
/// process's descriptors for segment files are at most one per log with a pinned active
/// segment, plus `capacity`, plus one per read in progress whose handle was closed under it,
/// whatever the number of segments or closed logs on disk.
///
/// Cloning is cheap (an `Arc`); clones share the cache.
#[derive(Clone)]
pub struct FileCache {
    inner: Arc<CacheInner>,
}

struct CacheInner {
    capacity: usize,
    clock: Instant,
    /// Segments whose unpinned handle was opened or handed over since they last left the list.
    /// Kept at most `capacity` long; entries of segments dropped since are skipped and pruned.
    open: Mutex<Vec<Weak<Segment>>>,
    /// Files opened lazily so far (for tests and diagnostics).
    opened: AtomicU64,
}

impl std::fmt::Debug for FileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCache")
            .field("capacity", &self.inner.capacity)
            .field("open", &self.open_count())
            .finish()
    }
}

impl Default for FileCache {
    fn default() -> FileCache {
        FileCache::new(FILE_CACHE_CAPACITY_DEFAULT)
    }
}

impl FileCache {
    /// A cache keeping at most `capacity` (at least 1) unpinned segment files open.
    pub fn new(capacity: usize) -> FileCache {
        FileCache {
            inner: Arc::new(CacheInner {
                capacity: capacity.max(1),
                clock: Instant::now(),
                open: Mutex::new(Vec::new()),
                opened: AtomicU64::new(0),
            }),
        }
    }

    /// The most unpinned segment files kept open at once.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Unpinned segment files open now (held by the cache).
    pub fn open_count(&self) -> usize {
        self.list()
            .iter()
            .filter(|entry| entry.upgrade().is_some_and(|segment| segment.closable()))
            .count()
    }

    /// Segment files opened lazily since the cache was made: how often a read found its
    /// segment closed. Climbing fast under steady reads means the capacity is below the set
    /// of segments being read.
    pub fn files_opened(&self) -> u64 {
        self.inner.opened.load(Ordering::Relaxed)
    }

    /// Closes every handle not used for `idle`; returns how many it closed. A read in progress
    /// keeps its handle until it ends.
    pub fn close_idle(&self, idle: Duration) -> usize {
        let horizon_ms = self.now_ms().saturating_sub(idle.as_millis() as u64);
        let mut closing = Vec::new();
        self.list().retain(|entry| match entry.upgrade() {
            Some(segment) if segment.closable() => {
                if segment.last_used_ms.load(Ordering::Relaxed) <= horizon_ms {
                    closing.push(segment);
                    false
                } else {
                    true
                }
            }
            _ => false,
        });
        for segment in &closing {
            segment.close();
        }
        closing.len()
    }

    /// Milliseconds since the cache was made: the clock of `last_used_ms`.
    fn now_ms(&self) -> u64 {
        self.inner.clock.elapsed().as_millis() as u64
    }

    fn list(&self) -> MutexGuard<'_, Vec<Weak<Segment>>> {
        self.inner
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes `segment`'s open, unpinned handle into the cache, closing the least recently used
    /// handles beyond the capacity. Lock order: the list, then a segment's handle (never the
    /// other way round: a segment calls this without holding its handle's lock).
    fn admit(&self, segment: &Arc<Segment>) {
        let mut evicted = Vec::new();
        {
            let mut list = self.list();
            let entry = Arc::downgrade(segment);
            if list.iter().any(|listed| listed.ptr_eq(&entry)) {
                return;
            }
            list.push(entry);
            if list.len() <= self.inner.capacity {
                return;
            }
            let mut live: Vec<(Arc<Segment>, u64)> = list
                .iter()
                .filter_map(Weak::upgrade)
                .filter(|segment| segment.closable())
                .map(|segment| {
                    let used_ms = segment.last_used_ms.load(Ordering::Relaxed);
                    (segment, used_ms)
                })
                .collect();
            if live.len() > self.inner.capacity {
                // Oldest first; the stable sort keeps list order among equal times, so the
                // newcomer (last) is the last to go.
                live.sort_by_key(|(_, used_ms)| *used_ms);
                let excess = live.len() - self.inner.capacity;
                evicted.extend(live.drain(..excess).map(|(segment, _)| segment));
            }
            *list = live
                .iter()
                .map(|(segment, _)| Arc::downgrade(segment))
                .collect();
        }
        for segment in evicted {
            segment.close();
        }
    }
}
/// A cached window of a file, so that frame-by-frame scanning issues one `pread` per
/// `READ_CHUNK_BYTES` rather than one per frame. Slices are `Bytes`, so payloads handed to
/// callers share the chunk instead of being copied.
pub(crate) struct Window<'f> {
    file: &'f File,
    end: u64,
    start: u64,
    data: Bytes,
}

impl<'f> Window<'f> {
    /// A window over `file[..end]`.
    pub fn new(file: &'f File, end: u64) -> Window<'f> {
        Window {
            file,
            end,
            start: 0,
            data: Bytes::new(),
        }
    }

    /// End of the readable range.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// `file[position..position + len]`, or `None` if that reaches past the end of the
    /// range or past the actual end of the file (which shrank under us).
    pub fn get(&mut self, position: u64, len: usize) -> io::Result<Option<Bytes>> {
        let Some(stop) = position.checked_add(len as u64) else {
            return Ok(None);
        };
        if stop > self.end {
            return Ok(None);
        }
        let cached_stop = self.start + self.data.len() as u64;
        if position < self.start || stop > cached_stop {
            let remaining = usize::try_from(self.end - position).unwrap_or(usize::MAX);
            let read_bytes = len.max(READ_CHUNK_BYTES.min(remaining));
            let mut buf = vec![0u8; read_bytes];
            match self.file.read_exact_at(&mut buf, position) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(error) => return Err(error),
            }
            self.data = Bytes::from(buf);
            self.start = position;
        }
        let offset = (position - self.start) as usize;
        Ok(Some(self.data.slice(offset..offset + len)))
    }
}

/// A verified frame read from a segment.
#[derive(Debug, Clone)]
pub(crate) struct ReadFrame {
    /// Where the frame starts in the file.
    pub position: u64,
    pub header: FrameHeader,
    pub payload: Bytes,
}

/// Why reading a frame failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The operating system failed the read.
    Io(io::Error),
    /// The bytes are not a valid frame.
    Bad(FrameError),
}

/// Reads and verifies the frame at `position`.
pub(crate) fn read_frame(window: &mut Window<'_>, position: u64) -> Result<ReadFrame, ReadError> {
    let available = usize::try_from(window.end().saturating_sub(position)).unwrap_or(usize::MAX);
    let truncated = |needed| ReadError::Bad(FrameError::Truncated { needed, available });
    let prefix = window
        .get(position, FRAME_PREFIX_BYTES)
        .map_err(ReadError::Io)?
        .ok_or_else(|| truncated(FRAME_PREFIX_BYTES))?;
    let frame_bytes = frame::frame_bytes_from_prefix(&prefix).map_err(ReadError::Bad)?;
    let buf = window
        .get(position, frame_bytes)
        .map_err(ReadError::Io)?
        .ok_or_else(|| truncated(frame_bytes))?;
    let header = frame::decode_frame(&buf).map_err(ReadError::Bad)?;
    Ok(ReadFrame {
        position,
        header,
        payload: buf.slice(FRAME_HEADER_BYTES..frame_bytes),
    })
}

/// Looks for a frame at some position in `(from, end)` of the window that verifies and whose
/// index could follow `expected_index` there (at least `expected_index`, and no further
/// ahead than the remaining bytes could hold). This decides torn tail against corruption.
///
/// Most offsets are rejected by the unchecked header (length, version, kind, index) before
/// any checksum is computed, which keeps the byte-by-byte walk cheap over garbage.
pub(crate) fn find_valid_frame_after(
    window: &mut Window<'_>,
    from: u64,
    expected_index: u64,
) -> io::Result<Option<u64>> {
    let end = window.end();
    let span_frames_max = end.saturating_sub(from) / FRAME_HEADER_BYTES as u64 + 1;
    let mut position = from;
    while position + (FRAME_HEADER_BYTES as u64) <= end {
        let Some(head) = window.get(position, FRAME_HEADER_BYTES)? else {
            return Ok(None);
        };
        if let Ok(header) = frame::decode_header_unchecked(&head) {
            let fits = header.index >= expected_index
                && header.index - expected_index <= span_frames_max
                && position + header.frame_bytes as u64 <= end;
            if fits {
                if let Some(buf) = window.get(position, header.frame_bytes)? {
                    if frame::decode_frame(&buf).is_ok() {
                        return Ok(Some(position));
                    }
                }
            }
        }
        position += 1;
    }
    Ok(None)
}

/// Where a segment walk starts.
pub(crate) enum WalkFrom {
    /// At the indexed frame at or before this index.
    Index(u64),
    /// At the indexed frame at or before the first one reaching this timestamp.
    Timestamp(u64),
}

/// How a segment walk ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WalkEnd {
    /// Frames vanished under the walk: a truncation raced it.
    pub raced: bool,
    /// Running maximum of `ts_max_ms` over the frames before the first frame visited,
    /// plus possibly that frame (0 when the walk started at the segment start).
    pub start_ts_max_ms: u64,
}

/// Feeds the segment's verified frames, from a sparse-index start point to its published
/// end, to `visit` until it returns `Ok(false)`.
///
/// A bad frame is [`LogError::Corrupt`] unless a truncation moved the segment meanwhile.
/// If the frame at the index start point itself does not verify, the walk restarts from the
/// segment start instead: a wrong index entry (which its checksum cannot rule out if the
/// writer erred) then costs a scan, and real damage is still found, at its true offset.
pub(crate) fn walk_segment(
    shared: &Shared,
    segment: &Arc<Segment>,
    from: WalkFrom,
    mut visit: impl FnMut(ReadFrame) -> Result<bool, LogError>,
) -> Result<WalkEnd, LogError> {
    let index_misses = &shared.index_misses;
    let (bytes, last_index, generation, start) = {
        let state = segment.state();
        if let WalkFrom::Index(index) = from {
            if index > state.last_index {
                return Ok(WalkEnd {
                    raced: false,
                    start_ts_max_ms: 0,
                });
            }
        }
        let start = match from {
            WalkFrom::Index(index) => {
                index::start_for_index(&state.index, index.saturating_sub(segment.base_index))
            }
            WalkFrom::Timestamp(ts_ms) => index::start_for_timestamp(&state.index, ts_ms),
        };
        (state.bytes, state.last_index, state.generation, start)
    };
    let mut end = WalkEnd {
        raced: false,
        start_ts_max_ms: start.ts_max_ms,
    };
    let file = match segment.file(&shared.files) {
        Ok(file) => file,
        // Deleted by a purge or truncation since the caller listed it: the log moved on.
        Err(_) if segment.is_removed() => {
            return Ok(WalkEnd {
                raced: true,
                start_ts_max_ms: 0,
            })
        }
        Err(error) => return Err(LogError::Io(error)),
    };
    let mut window = Window::new(&file, bytes);
    let mut position = start.position;
    let mut expected = segment.base_index + start.rel_index;
    let mut at_index_point = position != 0;
    while expected <= last_index {
        let problem = match read_frame(&mut window, position) {
            Ok(frame) if frame.header.index == expected => {
                at_index_point = false;
                position += frame.header.frame_bytes as u64;
                expected += 1;
                if !visit(frame)? {
                    return Ok(end);
                }
                continue;
            }
            Ok(frame) => format!(
                "frame has index {}, expected {expected}",
                frame.header.index
            ),
            Err(ReadError::Io(error)) => return Err(LogError::Io(error)),
            Err(ReadError::Bad(error)) => error.to_string(),
        };
        if segment.state().generation != generation {
            end.raced = true;
            return Ok(end);
        }
        if at_index_point {
            index_misses.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                segment = %segment.path.display(),
                position,
                %problem,
                "sparse index entry does not lead to its frame; scanning from the segment start"
            );
            at_index_point = false;
            position = 0;
            expected = segment.base_index;
            end.start_ts_max_ms = 0;
            continue;
        }
        return Err(LogError::Corrupt {
            path: segment.path.clone(),
            offset: position,
            reason: problem,
        });
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        assert_eq!(segment_file_name(1), "00000000000000000001.log");
        assert_eq!(index_file_name(42), "00000000000000000042.idx");
        assert_eq!(
            parse_file_name(&segment_file_name(u64::MAX), SEGMENT_EXTENSION),
            Some(u64::MAX)
        );
        assert_eq!(parse_file_name("00000000000000000042.idx", "idx"), Some(42));
        assert_eq!(parse_file_name("00000000000000000042.idx", "log"), None);
        assert_eq!(parse_file_name("42.log", "log"), None);
        assert_eq!(parse_file_name("0000000000000000004x.log", "log"), None);
        assert_eq!(parse_file_name("00000000000000000042.idx.tmp", "idx"), None);
        assert_eq!(parse_file_name("99999999999999999999.log", "log"), None);
    }
}
