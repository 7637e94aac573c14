//! [`LogStore`]: openraft's `RaftLogStorage` over one riffle-log directory, and
//! [`LogStoreReader`], its `RaftLogReader`.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use bytes::Bytes;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use riffle_log::{
    EntryMeta, Log, LogError, LogOptions, LogReader, APPEND_BYTES_MAX, FRAME_HEADER_BYTES,
};

use crate::codec;
use crate::flush::{Flusher, PendingFlush};
use crate::types::{frame_index, Entry, LogId, RiffleRaft, Vote};
use crate::vote_file::{self, HardState};

/// How long a write waits for room on a full disk before it fails, which stops the group on
/// this node (a storage error is fatal to openraft) until the node restarts.
pub const NO_SPACE_WAIT_MAX: Duration = Duration::from_secs(60);

/// Pause between attempts at a write that found the disk full.
const NO_SPACE_RETRY: Duration = Duration::from_millis(100);

/// Whether a write failed only because the filesystem is full. riffle-log leaves nothing of
/// such a write behind (a torn batch is cut back), so the same write may simply be made again.
fn is_no_space(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::StorageFull || error.raw_os_error() == Some(ENOSPC)
}

const ENOSPC: i32 = 28;

/// Entries [`RaftLogReader::limited_get_log_entries`] returns at most.
pub const LIMITED_READ_ENTRIES_MAX: usize = 4096;

/// Payload bytes [`RaftLogReader::limited_get_log_entries`] returns at most (the first entry
/// is returned whatever its size).
pub const LIMITED_READ_BYTES_MAX: usize = 8 << 20;

/// The Raft log of one group (the metadata group or a shard), stored as riffle-log segment
/// files plus a [`vote` file](crate::vote_file) in the same directory. See the crate docs
/// for the mapping of entries to frames.
///
/// Appends must continue the log: the first entry of an `append` has the next Raft index
/// (after the last entry, or after the last purged one). Only a store that never held an
/// entry and never purged one accepts any first index (openraft's suite starts fresh stores
/// at various indexes); it then starts there. Truncations name the entry they keep, which
/// must be the one stored at that index.
///
/// The store does its disk I/O synchronously inside the async trait methods: appends are
/// `write(2)`s of a few frames, and the fsyncs go to the [`Flusher`]; only `save_vote`,
/// `purge` and [`persist_committed`](LogStore::persist_committed) fsync the small vote file
/// in place, and they are rare.
///
/// **A full disk** makes an append or a vote-file write wait and try again (every 100 ms, for
/// up to [`NO_SPACE_WAIT_MAX`]) instead of failing: openraft treats any storage error as
/// fatal and stops the group for good, so one moment of a full disk used to leave the node's
/// replicas dead until a restart, while the process went on serving ever staler reads. While
/// it waits, this replica is a slow one; the group's other replicas carry on without it.
pub struct LogStore {
    dir: PathBuf,
    log: Log,
    reader: LogStoreReader,
    /// The latest state: what readers and openraft are told.
    hard: HardState,
    /// What the vote file holds; differs from `hard` only in `committed`, which is written
    /// lazily (see [`LogStore::persist_committed`]).
    hard_on_disk: HardState,
    /// The log id of the last frame stored, if the log holds any (it may be at or below the
    /// purged id when everything was purged but the active segment was kept).
    last_stored: Option<LogId>,
    flusher: Arc<dyn Flusher>,
    /// The base index of an active segment that retention asked to have sealed (0: none);
    /// see [`LogStore::roll_requests`].
    roll_request: Arc<AtomicU64>,
}

/// The reading side of a [`LogStore`]: cheap to clone, `Send + Sync`, and sees every append
/// that returned before a read started. Entries up to the last purged one are never
/// returned, even while their segment still exists.
#[derive(Clone)]
pub struct LogStoreReader {
    log: LogReader,
    shared: Arc<RwLock<ReaderState>>,
}

/// What readers need of the vote file's state.
#[derive(Debug, Default)]
struct ReaderState {
    vote: Option<Vote>,
    purged: Option<LogId>,
}

/// Turns a riffle-log error into the `io::Error` openraft's storage traits speak, keeping
/// the OS error when there is one.
pub(crate) fn log_error(error: LogError) -> io::Error {
    match error {
        LogError::Io(error) => error,
        LogError::Corrupt { .. } | LogError::Missing { .. } => {
            io::Error::new(io::ErrorKind::InvalidData, error.to_string())
        }
        LogError::InvalidArgument(_) => {
            io::Error::new(io::ErrorKind::InvalidInput, error.to_string())
        }
        LogError::Poisoned => io::Error::other(error.to_string()),
    }
}

fn invalid_input(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// The frame index of Raft index `raft_index`, as an `io::Error` for the impossible index.
fn frame_of(raft_index: u64) -> io::Result<u64> {
    frame_index(raft_index)
        .ok_or_else(|| invalid_input("Raft index u64::MAX is beyond any log".to_string()))
}

impl LogStore {
    /// Opens (creating if missing) the Raft log in `dir` and checks it against its vote file.
    ///
    /// Besides riffle-log's own recovery this:
    /// * refuses a damaged vote file (see [`crate::vote_file`]);
    /// * finishes a purge that a crash interrupted: entries up to the persisted purged id are
    ///   dropped, and a log that ends at or before it restarts right after it;
    /// * refuses a log whose first entry lies beyond the purged id + 1 (entries missing);
    /// * refuses a log holding entries of a later term than the saved vote: the vote file was
    ///   lost or replaced, and a node that forgot its vote may vote twice in a term;
    /// * forgets a persisted committed id beyond the log's end (it is only a hint; the
    ///   entries it pointed at did not survive the crash).
    pub fn open(
        dir: &Path,
        options: LogOptions,
        flusher: Arc<dyn Flusher>,
    ) -> io::Result<LogStore> {
        let (mut log, _report) = Log::open(dir, options).map_err(log_error)?;
        let mut hard = vote_file::read(dir)?;
        if let Some(purged) = &hard.purged {
            let after = frame_of(purged.index)?
                .checked_add(1)
                .ok_or_else(|| invalid_input("purged index beyond any log".to_string()))?;
            let is_empty = log.first_index() == log.next_index();
            if log.next_index() < after
                || (is_empty && log.next_index() != after)
                || (!is_empty && log.next_index() == after)
            {
                // Everything stored is purged (a snapshot installed beyond the log, or
                // retention expiring every entry): the log continues right after it.
                log.reset(after).map_err(log_error)?;
            } else if log.first_index() < after {
                // Segments wholly at or below the purged entry that a crash left behind.
                log.purge_before(after).map_err(log_error)?;
            } else if log.first_index() > after {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the Raft log in {} starts at frame {} but the last purged entry is \
                         Raft index {} (frame {}): the entries between are missing",
                        dir.display(),
                        log.first_index(),
                        purged.index,
                        after - 1
                    ),
                ));
            }
        }
        let last_stored = last_stored(&log)?;

        let newest = newest(last_stored.as_ref(), hard.purged.as_ref()).cloned();
        let vote_term = hard.vote.as_ref().map_or(0, |vote| vote.leader_id.term);
        if let Some(newest) = &newest {
            if newest.leader_id.term > vote_term {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the Raft log in {} holds entries of term {} but the vote file records \
                         {}: the vote file was lost or replaced; refusing to open, since a \
                         node that forgot its vote could vote twice in a term",
                        dir.display(),
                        newest.leader_id.term,
                        match &hard.vote {
                            Some(vote) => format!("term {}", vote.leader_id.term),
                            None => "no vote".to_string(),
                        }
                    ),
                ));
            }
        }
        let committed_is_stale = match (&hard.committed, &newest) {
            (Some(committed), Some(newest)) => committed.index > newest.index,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if committed_is_stale {
            tracing::warn!(
                dir = %dir.display(),
                committed = ?hard.committed,
                "the saved committed log id is beyond the recovered log; forgetting it"
            );
            hard.committed = None;
        }

        let reader = LogStoreReader {
            log: log.reader(),
            shared: Arc::new(RwLock::new(ReaderState {
                vote: hard.vote,
                purged: hard.purged,
            })),
        };
        Ok(LogStore {
            dir: dir.to_path_buf(),
            log,
            reader,
            hard_on_disk: hard.clone(),
            hard,
            last_stored,
            flusher,
            roll_request: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Where retention asks for the active segment to be sealed: it stores the segment's
    /// base index, and the next append seals that segment first (if it is still the active
    /// one and holds entries), so that it can expire whole. Retention runs beside openraft,
    /// which owns the store, so the request waits for the store's next write.
    pub fn roll_requests(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.roll_request)
    }

    /// Seals the active segment if retention asked for it (see [`LogStore::roll_requests`]).
    /// A roll that fails leaves the active segment as it was; the append goes on, and the
    /// next retention pass asks again.
    fn roll_if_requested(&mut self) {
        let wanted = self.roll_request.swap(0, Ordering::AcqRel);
        if wanted == 0 {
            return;
        }
        let active = self.log.segments().pop();
        let Some(active) = active else { return };
        if active.base_index != wanted || active.last_index < active.base_index {
            return;
        }
        if let Err(error) = self.log.roll() {
            tracing::warn!(dir = %self.dir.display(), %error, "could not seal the active segment for retention");
        }
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last purged log id: entries up to it are gone (a snapshot must hold them).
    pub fn last_purged(&self) -> Option<LogId> {
        self.hard.purged
    }

    /// The riffle-log underneath, for reads by frame index and for inspection.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// A reader of this store (what `get_log_reader` hands openraft).
    pub fn reader(&self) -> LogStoreReader {
        self.reader.clone()
    }

    /// Writes the committed log id to the vote file if it changed since the file was last
    /// written. `save_committed` keeps the id in memory only: openraft calls it on every
    /// commit, and three fsyncs per commit round would cost more than the commit itself. The
    /// id also reaches the file with every `save_vote` and `purge`. A restart therefore finds
    /// a committed id that may be older than the last one saved, which is safe (it is a
    /// lower bound; openraft learns the rest from the leader); the node calls this on a
    /// clean shutdown and may call it periodically to shorten the re-apply after a crash.
    pub fn persist_committed(&mut self) -> io::Result<()> {
        if self.hard != self.hard_on_disk {
            self.write_hard(self.hard.clone())?;
        }
        Ok(())
    }

    /// Durably replaces the vote file with `state`, then adopts it.
    fn write_hard(&mut self, state: HardState) -> io::Result<()> {
        vote_file::write(&self.dir, &state)?;
        self.hard_on_disk = state.clone();
        self.hard = state;
        Ok(())
    }

    /// Writes `frames` (consecutive, starting at the log's next index) in batches riffle-log
    /// accepts, keeping `last_stored` in step.
    fn append_frames(
        &mut self,
        frames: &[(u64, EntryMeta, Bytes)],
        ids: &[LogId],
    ) -> io::Result<()> {
        let mut start = 0;
        while start < frames.len() {
            let mut end = start;
            let mut batch_bytes = 0u64;
            while end < frames.len() {
                let frame_bytes = (FRAME_HEADER_BYTES + frames[end].2.len()) as u64;
                if end > start && batch_bytes + frame_bytes > APPEND_BYTES_MAX {
                    break;
                }
                batch_bytes += frame_bytes;
                end += 1;
            }
            let batch: Vec<(EntryMeta, &[u8])> = frames[start..end]
                .iter()
                .map(|(_, meta, payload)| (*meta, &payload[..]))
                .collect();
            let first = self.log.append_many(&batch).map_err(log_error)?;
            assert_eq!(
                first, frames[start].0,
                "frames land at the index they were encoded for"
            );
            self.last_stored = Some(ids[end - 1]);
            start = end;
        }
        Ok(())
    }
}

impl LogStore {
    /// [`LogStore::append_frames`], waiting for room while the disk is full: each attempt
    /// writes what the last one did not (a batch that failed left nothing behind).
    async fn append_frames_waiting_for_room(
        &mut self,
        frames: &[(u64, EntryMeta, Bytes)],
        ids: &[LogId],
    ) -> io::Result<()> {
        let started = tokio::time::Instant::now();
        loop {
            let next = self.log.next_index();
            let done = frames
                .iter()
                .take_while(|(index, _, _)| *index < next)
                .count();
            match self.append_frames(&frames[done..], &ids[done..]) {
                Err(error) if is_no_space(&error) && started.elapsed() < NO_SPACE_WAIT_MAX => {
                    self.wait_for_room(started, &error).await
                }
                result => return result,
            }
        }
    }

    /// [`LogStore::write_hard`], waiting for room while the disk is full (a failed write of
    /// the vote file leaves the old one in place).
    async fn write_hard_waiting_for_room(&mut self, state: HardState) -> io::Result<()> {
        let started = tokio::time::Instant::now();
        loop {
            match self.write_hard(state.clone()) {
                Err(error) if is_no_space(&error) && started.elapsed() < NO_SPACE_WAIT_MAX => {
                    self.wait_for_room(started, &error).await
                }
                result => return result,
            }
        }
    }

    async fn wait_for_room(&self, started: tokio::time::Instant, error: &io::Error) {
        if started.elapsed() < NO_SPACE_RETRY {
            tracing::warn!(
                dir = %self.dir.display(),
                %error,
                "the disk is full; this replica waits for room (up to {NO_SPACE_WAIT_MAX:?})"
            );
        }
        tokio::time::sleep(NO_SPACE_RETRY).await;
    }
}

/// The log id of the last frame `log` holds, if it holds any.
fn last_stored(log: &Log) -> io::Result<Option<LogId>> {
    if log.first_index() == log.next_index() {
        return Ok(None);
    }
    let last = log.last_index();
    let mut frames = log
        .reader()
        .read(last, last, 1, usize::MAX)
        .map_err(log_error)?;
    match frames.pop() {
        Some(frame) => Ok(Some(codec::decode(frame)?.log_id)),
        // The store is the log's only writer, so nothing can have removed the frame.
        None => Err(io::Error::other(format!(
            "the log's last frame {last} could not be read back"
        ))),
    }
}

/// The later of two log ids by index (the last purged id counts as the last log id when no
/// later entry is stored).
fn newest<'a>(stored: Option<&'a LogId>, purged: Option<&'a LogId>) -> Option<&'a LogId> {
    match (stored, purged) {
        (Some(stored), Some(purged)) if stored.index > purged.index => Some(stored),
        (Some(stored), None) => Some(stored),
        (_, purged) => purged,
    }
}

impl RaftLogStorage<RiffleRaft> for LogStore {
    type LogReader = LogStoreReader;

    async fn get_log_state(&mut self) -> Result<LogState<RiffleRaft>, io::Error> {
        Ok(LogState {
            last_purged_log_id: self.hard.purged,
            last_log_id: newest(self.last_stored.as_ref(), self.hard.purged.as_ref()).cloned(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let mut state = self.hard.clone();
        state.vote = Some(*vote);
        self.write_hard_waiting_for_room(state).await?;
        self.reader.state_mut().vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.hard.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.hard.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<RiffleRaft>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut frames = Vec::new();
        let mut ids = Vec::new();
        for entry in entries {
            let frame = codec::encode(&entry)?;
            if let Some((previous, _, _)) = frames.last() {
                if frame.0 != previous + 1 {
                    return Err(invalid_input(format!(
                        "appended entries are not consecutive: Raft index {} follows {}",
                        entry.log_id.index,
                        previous - 1
                    )));
                }
            }
            frames.push(frame);
            ids.push(entry.log_id);
        }
        let Some(&(first, _, _)) = frames.first() else {
            callback.io_completed(Ok(()));
            return Ok(());
        };
        if first != self.log.next_index() {
            let is_empty = self.log.first_index() == self.log.next_index();
            if is_empty && self.hard.purged.is_none() {
                // A log that never held an entry may start anywhere (openraft's storage
                // suite starts fresh stores at various indexes).
                self.log.reset(first).map_err(log_error)?;
            } else {
                return Err(invalid_input(format!(
                    "append at Raft index {} but the log's next entry is Raft index {}: that \
                     would leave a hole or overwrite entries without truncating them",
                    ids[0].index,
                    self.log.next_index() - 1
                )));
            }
        }
        self.roll_if_requested();
        self.append_frames_waiting_for_room(&frames, &ids).await?;
        self.flusher
            .submit(PendingFlush::new(self.log.sync_handle(), callback));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let keep = match &last_log_id {
            Some(log_id) => frame_of(log_id.index)?,
            None => 0,
        };
        if keep >= self.log.last_index() {
            return Ok(());
        }
        if let Some(purged) = &self.hard.purged {
            if keep < frame_of(purged.index)? {
                return Err(invalid_input(format!(
                    "cannot truncate after Raft index {:?}: entries up to {} are purged",
                    last_log_id.as_ref().map(|log_id| log_id.index),
                    purged.index
                )));
            }
        }
        if keep >= self.log.first_index() {
            // The entry kept must be the one openraft names; cutting after a different one
            // would mean openraft and the log disagree, so nothing is cut.
            let stored = self
                .log
                .reader()
                .read(keep, keep, 1, usize::MAX)
                .map_err(log_error)?
                .pop()
                .map(codec::decode)
                .transpose()?
                .map(|entry| entry.log_id);
            if stored != last_log_id {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "asked to truncate after {last_log_id:?} but the entry stored at its \
                         index is {stored:?}"
                    ),
                ));
            }
            self.log.truncate_after(keep).map_err(log_error)?;
            self.last_stored = last_log_id;
        } else {
            // Everything goes. Only a log that started past index 0 without a purge, or whose
            // kept entry is exactly the purged one, gets here: the entries below its first
            // one are not stored, so what remains is an empty log continuing after `keep`.
            self.log.reset(keep + 1).map_err(log_error)?;
            self.last_stored = None;
        }
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        if let Some(purged) = &self.hard.purged {
            if purged.index >= log_id.index {
                return Ok(());
            }
        }
        let purged_frame = frame_of(log_id.index)?;
        // The purged id is durable before any segment goes, so a crash midway is finished
        // by the next open, and readers stop returning the entries before files vanish.
        let mut state = self.hard.clone();
        state.purged = Some(log_id);
        self.write_hard_waiting_for_room(state).await?;
        self.reader.state_mut().purged = Some(log_id);
        if self.log.last_index() <= purged_frame {
            // Purged up to or past the end (a snapshot was installed, or retention expired
            // every entry): continue right after it. riffle-log never deletes its active
            // segment, so only this drops the entries of a log that holds nothing else.
            self.log.reset(purged_frame + 1).map_err(log_error)?;
            self.last_stored = None;
        } else {
            self.log.purge_before(purged_frame + 1).map_err(log_error)?;
        }
        Ok(())
    }
}

impl LogStoreReader {
    /// The underlying riffle-log reader (what a shard's readers read its frames with).
    pub fn log_reader(&self) -> LogReader {
        self.log.clone()
    }

    fn state(&self) -> RwLockReadGuard<'_, ReaderState> {
        self.shared.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn state_mut(&self) -> std::sync::RwLockWriteGuard<'_, ReaderState> {
        self.shared.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Entries with Raft index in `[start, end)` above the last purged one, in order, up to
    /// the given limits (the first entry in range always comes back).
    fn read_range(
        &self,
        start: u64,
        end: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> io::Result<Vec<Entry>> {
        let start = match &self.state().purged {
            Some(purged) => start.max(purged.index.saturating_add(1)),
            None => start,
        };
        if start >= end {
            return Ok(Vec::new());
        }
        // `start < end <= u64::MAX`, and the frame of Raft index `end - 1` is `end`.
        let frames = self
            .log
            .read(frame_of(start)?, end, max_entries, max_bytes)
            .map_err(log_error)?;
        frames.into_iter().map(codec::decode).collect()
    }
}

/// `range` as a half-open `[start, end)`.
fn half_open(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&start) => start,
        Bound::Excluded(&start) => start.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&end) => end.saturating_add(1),
        Bound::Excluded(&end) => end,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<RiffleRaft> for LogStoreReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = half_open(&range);
        self.read_range(start, end, usize::MAX, usize::MAX)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.state().vote)
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, io::Error> {
        self.read_range(start, end, LIMITED_READ_ENTRIES_MAX, LIMITED_READ_BYTES_MAX)
    }
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.dir)
            .field("log", &self.log)
            .field("hard", &self.hard)
            .field("last_stored", &self.last_stored)
            .finish()
    }
}

impl Debug for LogStoreReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStoreReader")
            .field("state", &*self.state())
            .finish()
    }
}
