//! The writer side: [`Log`], its [`SyncHandle`], and the state shared with readers.

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::frame::{self, FrameHeader, FRAME_PAYLOAD_BYTES_MAX};
use crate::reader::LogReader;
use crate::recovery;
use crate::segment::{self, FileCache, Segment, SegmentState, WalkFrom};
use crate::{
    EntryMeta, Expect, LogError, LogOptions, RecoveryReport, SegmentInfo, APPEND_BYTES_MAX,
};

/// Which fsync flavour to issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncKind {
    /// `fdatasync`: data plus the metadata needed to read it back (the size). Enough
    /// after appends.
    Data,
    /// `fsync`: everything, used after truncations, for index files and directories.
    All,
}

/// State shared by the [`Log`], its readers and its sync handles.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The log directory.
    pub dir: PathBuf,
    /// Segments in index order; the last one is the active segment. Never empty once the
    /// log is open. Only the `Log` changes the list, under a short write lock.
    segments: RwLock<Vec<Arc<Segment>>>,
    poisoned: AtomicBool,
    /// Sparse-index entries that did not lead to their frame (see
    /// [`LogReader::index_misses`]).
    pub index_misses: AtomicU64,
    /// Where the handles of segments the writer does not pin are kept (see [`FileCache`]).
    pub files: FileCache,
    /// Disk faults to inject (see [`crate::faults`]).
    #[cfg(any(test, feature = "fault-injection"))]
    pub faults: crate::faults::Faults,
}

impl Shared {
    pub fn new(dir: PathBuf, files: FileCache) -> Shared {
        Shared {
            dir,
            segments: RwLock::new(Vec::new()),
            poisoned: AtomicBool::new(false),
            index_misses: AtomicU64::new(0),
            files,
            #[cfg(any(test, feature = "fault-injection"))]
            faults: crate::faults::Faults::default(),
        }
    }

    /// `Err(Poisoned)` once any fsync has failed.
    pub fn check_poisoned(&self) -> Result<(), LogError> {
        if self.poisoned.load(Ordering::Acquire) {
            Err(LogError::Poisoned)
        } else {
            Ok(())
        }
    }

    pub fn segments(&self) -> RwLockReadGuard<'_, Vec<Arc<Segment>>> {
        self.segments
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn segments_mut(&self) -> RwLockWriteGuard<'_, Vec<Arc<Segment>>> {
        self.segments
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of the segment list, taken under a short read lock so that the disk I/O that
    /// follows holds no lock.
    pub fn snapshot(&self) -> Vec<Arc<Segment>> {
        self.segments().clone()
    }

    /// Fsyncs `file`. A failure poisons the log: after a failed fsync the kernel may have
    /// marked the unwritten pages clean, so a retry could report success for data that is
    /// not on disk (the PostgreSQL "fsyncgate" lesson; fjall does the same).
    pub fn fsync(&self, file: &File, kind: SyncKind, path: &Path) -> Result<(), LogError> {
        self.check_poisoned()?;
        #[cfg(any(test, feature = "fault-injection"))]
        if let Some(error) = self.faults.take_sync() {
            return Err(self.poison(error, path));
        }
        let result = match kind {
            SyncKind::Data => file.sync_data(),
            SyncKind::All => file.sync_all(),
        };
        result.map_err(|error| self.poison(error, path))
    }

    /// Fsyncs the log directory, making file creations, renames and deletions durable.
    pub fn fsync_dir(&self) -> Result<(), LogError> {
        let dir = File::open(&self.dir)?;
        self.fsync(&dir, SyncKind::All, &self.dir)
    }

    /// Marks the log poisoned and returns the error that caused it.
    pub fn poison(&self, error: io::Error, path: &Path) -> LogError {
        self.set_poisoned(&error, path);
        LogError::Io(error)
    }

    /// Marks the log poisoned.
    pub fn set_poisoned(&self, why: &dyn fmt::Display, path: &Path) {
        self.poisoned.store(true, Ordering::Release);
        tracing::error!(path = %path.display(), error = %why, "log poisoned; reopen to recover");
    }
}

/// A per-shard segment log: the single writer. See the crate documentation for the format,
/// invariants and concurrency rules.
pub struct Log {
    shared: Arc<Shared>,
    options: LogOptions,
    /// The last segment of the list, the only one appended to.
    active: Arc<Segment>,
    next_index: u64,
    /// Term of the last entry (or of the last entry before the log became empty); appends
    /// may not go below it.
    last_term: u64,
    durable_index: u64,
    /// Bumped by every truncation, so that a [`SyncHandle`] taken before one can be told
    /// apart (see [`Log::mark_synced`]).
    truncation_epoch: u64,
    /// Reused encoding buffer, so steady appends do not allocate.
    scratch: Vec<u8>,
}

/// Scratch buffers above this size are released after the append that needed them.
const SCRATCH_BYTES_RETAINED_MAX: usize = 8 << 20;

/// Where a truncation cuts the target segment.
struct Cut {
    position: u64,
    last_term: u64,
    ts_max_ms: u64,
    entries_kept: usize,
}

impl Log {
    /// Opens (creating if missing) and recovers the log in `dir`.
    ///
    /// Recovery checks that indexes are contiguous and terms never decrease, loads the
    /// sparse index of every sealed segment (rebuilding a missing or bad one by scanning, with
    /// a warning), and scans the active segment frame by frame. A bad frame with nothing
    /// valid after it is a torn tail from a crash: it is cut off and the cut fsynced. Any
    /// other damage is [`LogError::Corrupt`]. Everything recovered is fsynced, so
    /// `durable_index() == last_index()` afterwards.
    ///
    /// The log gets a [`FileCache`] of its own; [`Log::open_with_cache`] shares one.
    pub fn open(dir: &Path, options: LogOptions) -> Result<(Log, RecoveryReport), LogError> {
        Log::open_expecting(dir, options, Expect::default())
    }

    /// [`Log::open`], checking what the caller knows must be there: a log that ends below
    /// `expect.synced_through`, or a damaged end that would have to be cut although
    /// `expect` rules out a torn write, fails with [`LogError::Missing`] before anything on
    /// disk is changed.
    pub fn open_expecting(
        dir: &Path,
        options: LogOptions,
        expect: Expect,
    ) -> Result<(Log, RecoveryReport), LogError> {
        Log::open_with_cache(dir, options, expect, &FileCache::default())
    }

    /// [`Log::open_expecting`], keeping the read handles of this log's sealed segments in
    /// `files`, shared with other logs, so that a process with many logs keeps a bounded
    /// number of segment files open: the active segment of each log that takes appends, plus
    /// the cache's capacity. Sealed segments are closed once recovery has checked them.
    pub fn open_with_cache(
        dir: &Path,
        options: LogOptions,
        expect: Expect,
        files: &FileCache,
    ) -> Result<(Log, RecoveryReport), LogError> {
        options.validate()?;
        let shared = Arc::new(Shared::new(dir.to_path_buf(), files.clone()));
        let recovered = recovery::recover(&shared, &options, &expect)?;
        for segment in &recovered.sealed {
            segment.close();
        }
        let active = recovered.active;
        active.pin()?;
        let (next_index, last_term) = {
            let state = active.state();
            (state.last_index + 1, state.last_term)
        };
        {
            let mut list = shared.segments_mut();
            *list = recovered.sealed;
            list.push(active.clone());
        }
        let log = Log {
            shared,
            options,
            active,
            next_index,
            last_term,
            durable_index: next_index - 1,
            truncation_epoch: 0,
            scratch: Vec::new(),
        };
        Ok((log, recovered.report))
    }

    /// Appends one frame at index `next_index()`; written with write(2) to the active
    /// segment (not fsynced). Returns its index.
    pub fn append(&mut self, meta: &EntryMeta, payload: &[u8]) -> Result<u64, LogError> {
        self.append_many(&[(*meta, payload)])
    }

    /// Appends several frames with one write(2) (group commit writes many batches at once).
    /// Returns the index of the first.
    ///
    /// The batch is all or nothing: it is validated first (payload sizes, terms never
    /// decreasing, total size at most [`APPEND_BYTES_MAX`]), and if the write fails the file
    /// is cut back to where it was. The active segment is rolled first if it already holds
    /// `segment_bytes_max` bytes, so a segment exceeds the limit by at most one batch.
    pub fn append_many(&mut self, frames: &[(EntryMeta, &[u8])]) -> Result<u64, LogError> {
        self.shared.check_poisoned()?;
        let first_index = self.next_index;
        let batch_bytes = self.validate_batch(frames)?;
        self.roll_if_full()?;

        let active = self.active.clone();
        // Pinned already, unless `unpin_active` let the handle go: then appends pin it again.
        let file = active.pin()?;
        let position = active.state().bytes;
        self.scratch.clear();
        for (offset, (meta, payload)) in frames.iter().enumerate() {
            frame::encode_frame(
                &mut self.scratch,
                first_index + offset as u64,
                meta,
                payload,
            )
            .map_err(|error| LogError::InvalidArgument(error.to_string()))?;
        }
        assert_eq!(self.scratch.len() as u64, batch_bytes);
        if let Err(error) = self.write_scratch(&file, position) {
            self.undo_partial_write(&active, &file, position);
            return Err(LogError::Io(error));
        }

        {
            let mut state = active.state_mut();
            let mut frame_position = position;
            for (offset, (meta, payload)) in frames.iter().enumerate() {
                let header = FrameHeader {
                    frame_bytes: frame::encoded_frame_bytes(payload.len()),
                    index: first_index + offset as u64,
                    meta: *meta,
                };
                state.push_frame(
                    active.base_index,
                    frame_position,
                    &header,
                    self.options.index_interval_bytes,
                );
                frame_position += header.frame_bytes as u64;
            }
        }
        self.next_index = first_index + frames.len() as u64;
        if let Some((meta, _)) = frames.last() {
            self.last_term = meta.term;
        }
        if self.scratch.capacity() > SCRATCH_BYTES_RETAINED_MAX {
            self.scratch = Vec::new();
        }
        Ok(first_index)
    }

    /// Checks a batch before anything is written and returns its size on disk.
    fn validate_batch(&self, frames: &[(EntryMeta, &[u8])]) -> Result<u64, LogError> {
        if frames.is_empty() {
            return Err(LogError::InvalidArgument(
                "append_many needs at least one frame".to_string(),
            ));
        }
        if self.next_index.checked_add(frames.len() as u64).is_none() {
            return Err(LogError::InvalidArgument(
                "the log index space is exhausted".to_string(),
            ));
        }
        let mut term = self.last_term;
        let mut batch_bytes = 0u64;
        for (position, (meta, payload)) in frames.iter().enumerate() {
            if payload.len() > FRAME_PAYLOAD_BYTES_MAX {
                return Err(LogError::InvalidArgument(format!(
                    "frame {position} of the batch carries {} payload bytes; the limit is \
                     {FRAME_PAYLOAD_BYTES_MAX}",
                    payload.len()
                )));
            }
            if meta.term < term {
                return Err(LogError::InvalidArgument(format!(
                    "frame {position} of the batch has term {} below the previous term \
                     {term}: terms never go backwards in a log",
                    meta.term
                )));
            }
            term = meta.term;
            batch_bytes += frame::encoded_frame_bytes(payload.len()) as u64;
        }
        if batch_bytes > APPEND_BYTES_MAX {
            return Err(LogError::InvalidArgument(format!(
                "a batch of {batch_bytes} bytes exceeds the limit of {APPEND_BYTES_MAX}"
            )));
        }
        Ok(batch_bytes)
    }

    /// Writes the encoded batch at `position` with one positional write.
    fn write_scratch(&self, file: &File, position: u64) -> io::Result<()> {
        #[cfg(any(test, feature = "fault-injection"))]
        if let Some((written, error)) = self.shared.faults.take_write(self.scratch.len()) {
            file.write_all_at(&self.scratch[..written], position)?;
            return Err(error);
        }
        file.write_all_at(&self.scratch, position)
    }

    /// After a failed write, part of the batch may be in the file. It is cut off, durably:
    /// otherwise a later, shorter append at the same position could leave complete old
    /// frames behind it that recovery would take for live ones. If even that fails, the file
    /// no longer matches memory and the log is poisoned.
    fn undo_partial_write(&self, segment: &Segment, file: &File, position: u64) {
        match file.set_len(position) {
            Ok(()) => {
                // A failure here poisons the log inside `fsync`; the write error that got
                // us here is the one reported.
                let _ = self.shared.fsync(file, SyncKind::All, &segment.path);
            }
            Err(error) => self.shared.set_poisoned(&error, &segment.path),
        }
    }

    fn roll_if_full(&mut self) -> Result<(), LogError> {
        let bytes = self.active.state().bytes;
        if bytes >= self.options.segment_bytes_max {
            self.roll()
        } else {
            Ok(())
        }
    }

    /// Index the next append gets; 1 for a brand-new log.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// `next_index() - 1`: the last index written (0 for a brand-new log).
    pub fn last_index(&self) -> u64 {
        self.next_index - 1
    }

    /// First index still stored; equals `next_index()` when the log holds no entry.
    pub fn first_index(&self) -> u64 {
        self.shared
            .segments()
            .first()
            .map_or(self.next_index, |segment| segment.base_index)
    }

    /// Highest index known to be fsynced.
    pub fn durable_index(&self) -> u64 {
        self.durable_index
    }

    /// Term of the last entry. When truncation empties the log this is the term of the
    /// entry before the first remaining index, if that is still known, else 0. Appends must
    /// carry at least this term.
    pub fn last_term(&self) -> u64 {
        self.last_term
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The options the log was opened with.
    pub fn options(&self) -> &LogOptions {
        &self.options
    }

    /// A handle to fsync what has been written so far WITHOUT holding `&mut Log` during the
    /// fsync (the caller may keep appending on another thread meanwhile): it holds the
    /// active segment's file and the last index written to it. After `handle.sync()`
    /// succeeds the caller calls `mark_durable(handle.upto())` (or `mark_synced(&handle)`).
    /// Segments other than the active one are always durable (roll fsyncs the old segment).
    pub fn sync_handle(&self) -> SyncHandle {
        SyncHandle {
            segment: self.active.clone(),
            shared: self.shared.clone(),
            upto: self.next_index - 1,
            epoch: self.truncation_epoch,
        }
    }

    /// Records that everything up to `upto` is fsynced. `upto` must come from a
    /// [`SyncHandle`] taken after the last [`truncate_after`](Log::truncate_after) and synced
    /// successfully; a handle from before a truncation could otherwise vouch for entries
    /// rewritten since (use [`mark_synced`](Log::mark_synced), which checks this). Values
    /// above `last_index()` are clamped; the durable index never moves backwards here. Does
    /// nothing on a poisoned log.
    pub fn mark_durable(&mut self, upto: u64) {
        if self.shared.check_poisoned().is_err() {
            return;
        }
        self.durable_index = self.durable_index.max(upto.min(self.next_index - 1));
    }

    /// Like `mark_durable(handle.upto())`, but ignores a handle taken before the latest
    /// truncation. Call it only after `handle.sync()` succeeded.
    pub fn mark_synced(&mut self, handle: &SyncHandle) {
        if handle.epoch == self.truncation_epoch {
            self.mark_durable(handle.upto);
        }
    }

    /// Convenience: fsync now and mark everything written durable.
    pub fn sync(&mut self) -> Result<(), LogError> {
        self.shared.check_poisoned()?;
        if self.durable_index == self.next_index - 1 {
            return Ok(());
        }
        let handle = self.sync_handle();
        handle.sync()?;
        self.mark_durable(handle.upto());
        Ok(())
    }

    /// Seals the active segment (fsync it, write its `.idx`) and starts a new, empty one at
    /// `next_index()`. A no-op if the active segment is empty. The domain calls it to roll
    /// by age for retention; appends call it when the segment is full.
    ///
    /// If any fsync ever failed the log is poisoned: every later call returns
    /// [`LogError::Poisoned`] (an fsync is never retried).
    pub fn roll(&mut self) -> Result<(), LogError> {
        self.shared.check_poisoned()?;
        let active = self.active.clone();
        let (bytes, entries) = {
            let state = active.state();
            (state.bytes, state.index.clone())
        };
        if bytes == 0 {
            return Ok(());
        }
        // Order matters for crash safety: the segment's data is durable before its index
        // exists, and its index before any later segment exists. So every segment that is
        // not the last one is complete and has an index (or, after a crash in between,
        // recovery scans it as the active segment).
        let active_file = active.file(&self.shared.files)?;
        self.shared
            .fsync(&active_file, SyncKind::Data, &active.path)?;
        drop(active_file);
        self.durable_index = self.next_index - 1;
        recovery::write_index_file(&self.shared, &active.index_path(), &entries)?;
        let base_index = self.next_index;
        let path = self.shared.dir.join(segment::segment_file_name(base_index));
        let file = Segment::create_file(&path)?;
        self.shared.fsync_dir()?;
        let fresh = Arc::new(Segment::new_active(
            base_index,
            path,
            file,
            SegmentState::empty(base_index, self.last_term),
        ));
        active.state_mut().sealed = true;
        self.shared.segments_mut().push(fresh.clone());
        self.active = fresh;
        // The sealed segment's handle now belongs to the cache, like any reader's.
        active.unpin(&self.shared.files);
        Ok(())
    }

    /// Drops every entry above `index`, across segments, durably: later segments are
    /// deleted (newest first, so a crash midway leaves a shorter prefix of the old log,
    /// never a hole), the segment holding `index + 1` is cut there, fsynced, and becomes
    /// the active segment (its `.idx`, if sealed, is deleted). A no-op if
    /// `index >= last_index()`; `InvalidArgument` if `index + 1 < first_index()`.
    ///
    /// Readers racing the truncation may still return entries above `index` that they had
    /// already found; they never report the vanishing frames as corruption. An I/O error
    /// midway leaves memory and disk out of step, so it poisons the log.
    pub fn truncate_after(&mut self, index: u64) -> Result<(), LogError> {
        self.shared.check_poisoned()?;
        if index >= self.next_index - 1 {
            return Ok(());
        }
        let first_index = self.first_index();
        if index + 1 < first_index {
            return Err(LogError::InvalidArgument(format!(
                "cannot truncate after index {index}: entries before {first_index} were purged"
            )));
        }
        let segments = self.shared.snapshot();
        let keep = segments.partition_point(|segment| segment.base_index <= index + 1);
        assert!(keep >= 1, "the first segment starts at or before index + 1");
        let target = segments[keep - 1].clone();
        let later = &segments[keep..];
        // Find the cut before touching anything, so a damaged frame fails cleanly.
        let cut = locate_cut(&self.shared, &target, index, &segments[..keep - 1])?;
        // The target becomes the active segment: appends need its read-write handle.
        let target_file = target.pin()?;

        // Publish the shorter log before cutting the file, so no reader that starts from
        // here on looks at the doomed bytes; readers already running notice the
        // generation change.
        for segment in later {
            segment.mark_removed();
            segment.state_mut().generation += 1;
        }
        {
            let mut state = target.state_mut();
            state.bytes = cut.position;
            state.last_index = index;
            state.last_term = cut.last_term;
            state.ts_max_ms = cut.ts_max_ms;
            state.sealed = false;
            state.index.truncate(cut.entries_kept);
            state.generation += 1;
        }
        self.shared.segments_mut().truncate(keep);
        if !Arc::ptr_eq(&self.active, &target) {
            self.active.unpin(&self.shared.files);
        }
        self.active = target.clone();
        self.next_index = index + 1;
        self.last_term = cut.last_term;
        self.truncation_epoch += 1;

        if let Err(error) = self.cut_files(later, &target, &target_file, cut.position) {
            if self.shared.check_poisoned().is_ok() {
                self.shared.set_poisoned(&error, &target.path);
            }
            return Err(error);
        }
        self.durable_index = index;
        Ok(())
    }

    fn cut_files(
        &self,
        later: &[Arc<Segment>],
        target: &Segment,
        target_file: &File,
        position: u64,
    ) -> Result<(), LogError> {
        for segment in later.iter().rev() {
            fs::remove_file(&segment.path)?;
            remove_if_exists(&segment.index_path())?;
            self.shared.fsync_dir()?;
        }
        target_file.set_len(position)?;
        self.shared
            .fsync(target_file, SyncKind::All, &target.path)?;
        if remove_if_exists(&target.index_path())? {
            self.shared.fsync_dir()?;
        }
        Ok(())
    }

    /// Deletes whole sealed segments whose `last_index < index`, oldest first; never
    /// deletes the active segment. `first_index()` moves to the first remaining segment's
    /// base, so entries below `index` may remain (purging is by whole segments). A read
    /// already inside a purged segment finishes it through its open handle; one that reaches
    /// the segment after its file is gone ends there, as if it had raced a truncation.
    pub fn purge_before(&mut self, index: u64) -> Result<(), LogError> {
        self.shared.check_poisoned()?;
        loop {
            let oldest = {
                let list = self.shared.segments();
                if list.len() <= 1 {
                    break;
                }
                list[0].clone()
            };
            if oldest.state().last_index >= index {
                break;
            }
            // Oldest first and one directory fsync per segment: a crash midway leaves a
            // suffix of the log, never a hole.
            oldest.mark_removed();
            fs::remove_file(&oldest.path)?;
            self.shared.segments_mut().remove(0);
            remove_if_exists(&oldest.index_path())?;
            self.shared.fsync_dir()?;
        }
        Ok(())
    }

    /// Drops every entry and makes the log empty, with `next_index()` (and `first_index()`)
    /// equal to `next_index`, durably: every segment is deleted, oldest first, then one empty
    /// segment named `next_index` is created. The term floor goes back to 0 (an empty log has
    /// no entry to take a term from, and this is also what recovery finds after a reopen).
    ///
    /// This is how a Raft log jumps: a follower that installs a snapshot beyond its last entry
    /// purges everything and continues after the snapshot, and a brand-new log may start at
    /// any index. [`purge_before`](Log::purge_before) cannot do it, since it keeps the active
    /// segment and never moves `next_index()`.
    ///
    /// A crash midway leaves a suffix of the old log (deletion is oldest first) or, at worst,
    /// an empty directory that reopens as a fresh log at index 1; the caller, which knows where
    /// it wanted the log to start, calls `reset` again after reopening. A read already inside a
    /// deleted segment finishes it through its handle, as after a purge. An I/O
    /// error midway leaves memory and disk out of step, so it poisons the log.
    /// `InvalidArgument` if `next_index` is 0 (indexes start at 1).
    pub fn reset(&mut self, next_index: u64) -> Result<(), LogError> {
        self.shared.check_poisoned()?;
        if next_index == 0 {
            return Err(LogError::InvalidArgument(
                "cannot reset the log to index 0: indexes start at 1".to_string(),
            ));
        }
        let segments = self.shared.snapshot();
        let path = self.shared.dir.join(segment::segment_file_name(next_index));
        match self.replace_segments(&segments, &path) {
            Ok(file) => {
                let fresh = Arc::new(Segment::new_active(
                    next_index,
                    path,
                    file,
                    SegmentState::empty(next_index, 0),
                ));
                *self.shared.segments_mut() = vec![fresh.clone()];
                self.active = fresh;
                self.next_index = next_index;
                self.last_term = 0;
                self.durable_index = next_index - 1;
                self.truncation_epoch += 1;
                Ok(())
            }
            Err(error) => {
                if self.shared.check_poisoned().is_ok() {
                    self.shared.set_poisoned(&error, &path);
                }
                Err(error)
            }
        }
    }

    /// The file work of [`Log::reset`]: deletes `segments` oldest first, then creates the
    /// empty segment at `path`.
    fn replace_segments(&self, segments: &[Arc<Segment>], path: &Path) -> Result<File, LogError> {
        for segment in segments {
            segment.mark_removed();
            fs::remove_file(&segment.path)?;
            remove_if_exists(&segment.index_path())?;
            self.shared.fsync_dir()?;
        }
        let file = Segment::create_file(path)?;
        self.shared.fsync_dir()?;
        Ok(file)
    }

    /// A summary of every segment, oldest first; the last one is the active segment.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.shared
            .segments()
            .iter()
            .map(|segment| segment.state().info(segment.base_index))
            .collect()
    }

    /// Lets the [`FileCache`] close the active segment's handle when it is idle, as it does
    /// sealed segments': for a log that takes no more appends (a closed shard), which then
    /// keeps no file open while nobody reads it. The next append pins the segment again.
    ///
    /// Call it only once everything written is durable (or durability does not matter): a
    /// later fsync may go through a handle opened after an earlier write-back error, and
    /// would not report it.
    pub fn unpin_active(&mut self) {
        self.active.unpin(&self.shared.files);
    }

    /// The cache holding this log's unpinned segment handles.
    pub fn file_cache(&self) -> &FileCache {
        &self.shared.files
    }

    /// A cheap, cloneable, `Send + Sync` reader that reads concurrently with appends,
    /// without the log's `&mut` (pread through shared file handles, opening closed segments
    /// as needed). It sees later appends.
    pub fn reader(&self) -> LogReader {
        LogReader::new(self.shared.clone())
    }

    /// The state shared with readers, for tests that inspect it.
    #[cfg(test)]
    pub(crate) fn shared_for_test(&self) -> &Shared {
        &self.shared
    }

    /// The disk faults this log will suffer next (see [`crate::faults`]).
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn faults(&self) -> &crate::faults::Faults {
        &self.shared.faults
    }

    /// Test hook: makes the next fsync of this log fail with `EIO`.
    #[cfg(test)]
    pub(crate) fn fail_next_sync(&self) {
        self.faults().fail_next_sync(crate::faults::SyncFault::Io);
    }

    /// Test hook: makes the next append write half its bytes and fail with `ENOSPC`.
    #[cfg(test)]
    pub(crate) fn fail_next_write(&self) {
        self.faults()
            .fail_next_write(crate::faults::WriteFault::TornNoSpace);
    }
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.shared.dir)
            .field("first_index", &self.first_index())
            .field("next_index", &self.next_index)
            .field("durable_index", &self.durable_index)
            .field("last_term", &self.last_term)
            .field("segments", &self.shared.segments().len())
            .finish()
    }
}

/// Finds the file position right after entry `index` in `target` (or 0 when `index`
/// precedes it), with the facts the segment keeps about its new last entry.
fn locate_cut(
    shared: &Shared,
    target: &Arc<Segment>,
    index: u64,
    earlier: &[Arc<Segment>],
) -> Result<Cut, LogError> {
    if index < target.base_index {
        let last_term = earlier
            .last()
            .map_or(0, |segment| segment.state().last_term);
        return Ok(Cut {
            position: 0,
            last_term,
            ts_max_ms: 0,
            entries_kept: 0,
        });
    }
    let entries_kept = {
        let state = target.state();
        let rel_index = index - target.base_index;
        state
            .index
            .partition_point(|entry| u64::from(entry.rel_index) <= rel_index)
    };
    let mut cut: Option<(u64, u64)> = None; // (position after entry `index`, its term)
    let mut frames_ts_max_ms = 0u64;
    let walk = segment::walk_segment(shared, target, WalkFrom::Index(index), |frame| {
        frames_ts_max_ms = frames_ts_max_ms.max(frame.header.meta.ts_max_ms);
        if frame.header.index == index {
            let end = frame.position + frame.header.frame_bytes as u64;
            cut = Some((end, frame.header.meta.term));
            return Ok(false);
        }
        Ok(true)
    })?;
    match cut {
        Some((position, last_term)) => Ok(Cut {
            position,
            last_term,
            ts_max_ms: walk.start_ts_max_ms.max(frames_ts_max_ms),
            entries_kept,
        }),
        // The writer holds `&mut Log`, so the segment cannot have changed under the walk.
        None => Err(LogError::Corrupt {
            path: target.path.clone(),
            offset: 0,
            reason: format!("entry {index} is not in the segment that should hold it"),
        }),
    }
}

/// Removes `path`; `Ok(false)` if it did not exist.
fn remove_if_exists(path: &Path) -> Result<bool, LogError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(LogError::Io(error)),
    }
}

/// A handle for fsyncing the active segment without holding the [`Log`]. `Send + Sync`;
/// cloning is cheap.
#[derive(Debug, Clone)]
pub struct SyncHandle {
    segment: Arc<Segment>,
    shared: Arc<Shared>,
    upto: u64,
    epoch: u64,
}

impl SyncHandle {
    /// Fsyncs (`fdatasync`) the segment that was active when the handle was taken. A
    /// failure poisons the log.
    ///
    /// If a truncation or a purge has removed that segment since, there is nothing left to
    /// sync and this succeeds (unless the log is poisoned): the entries of the handle's
    /// segment that a truncation kept were fsynced by it, the ones it cut are gone, a purge
    /// removes only what the caller made durable elsewhere, and every earlier segment was
    /// fsynced when it was sealed. A flusher that runs on another thread may get to a handle
    /// after the log moved on; without this it would fail (and, in a cluster, stop a
    /// replica's group) over a file that no longer matters.
    pub fn sync(&self) -> Result<(), LogError> {
        self.shared.check_poisoned()?;
        if self.segment.is_removed() {
            return Ok(());
        }
        let file = match self.segment.file(&self.shared.files) {
            Ok(file) => file,
            Err(_) if self.segment.is_removed() => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        self.shared.fsync(&file, SyncKind::Data, &self.segment.path)
    }

    /// The last index written when the handle was taken: what a successful `sync()` makes
    /// durable.
    pub fn upto(&self) -> u64 {
        self.upto
    }
}
