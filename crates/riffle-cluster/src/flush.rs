//! Who fsyncs appended entries, and when openraft hears about it.
//!
//! openraft's `append` must return once the entries are readable and call its callback once
//! they are durable. [`LogStore`](crate::LogStore) writes the frames with `write(2)` and hands
//! a [`PendingFlush`] (a riffle-log [`SyncHandle`] and the callback) to a [`Flusher`]. Today's
//! flusher, [`SyncNow`], fdatasyncs on the spot. The point of the seam is group commit: a
//! node-wide flusher on its own thread collects the pending flushes of every shard, runs one
//! fdatasync per dirty segment (or one for a node-wide log), and then completes each pending
//! flush with [`PendingFlush::complete`], so one fsync acknowledges many appends of many
//! groups.

use openraft::storage::IOFlushed;
use riffle_log::{LogError, SyncHandle};

use crate::log_store::log_error;
use crate::types::{raft_index, RiffleRaft};

/// Appended entries waiting for an fsync, and the openraft callback to call after it.
pub struct PendingFlush {
    handle: SyncHandle,
    callback: IOFlushed<RiffleRaft>,
}

impl PendingFlush {
    pub(crate) fn new(handle: SyncHandle, callback: IOFlushed<RiffleRaft>) -> PendingFlush {
        PendingFlush { handle, callback }
    }

    /// The fsync this flush waits for. A successful [`SyncHandle::sync`] of it, or of any
    /// handle of the same log taken later, makes the entries durable (a later fdatasync of
    /// the same file covers earlier writes, and riffle-log fsyncs a segment before it rolls
    /// to the next one).
    pub fn sync_handle(&self) -> &SyncHandle {
        &self.handle
    }

    /// The Raft index of the last entry this flush covers.
    pub fn last_raft_index(&self) -> u64 {
        raft_index(self.handle.upto())
    }

    /// Tells openraft how the fsync covering this flush went. An error makes openraft stop
    /// the group (a storage error is fatal to it), which is right: riffle-log has poisoned
    /// the log, and only a reopen can tell what reached the disk.
    pub fn complete(self, result: Result<(), LogError>) {
        self.callback.io_completed(result.map_err(log_error));
    }

    /// Runs the fsync and completes the flush with its result: the one-flush-per-fsync path.
    pub fn sync_and_complete(self) {
        let result = self.handle.sync();
        self.complete(result);
    }
}

impl std::fmt::Debug for PendingFlush {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingFlush")
            .field("upto_frame_index", &self.handle.upto())
            .finish()
    }
}

/// Runs the fsyncs of appended entries. `submit` may sync before it returns or later on
/// another thread; either way it must eventually call [`PendingFlush::complete`] (or
/// [`PendingFlush::sync_and_complete`]) exactly once per pending flush, with the result of
/// an fsync that covered it. Dropping a pending flush instead leaves openraft waiting.
pub trait Flusher: Send + Sync + 'static {
    /// Takes a flush to run.
    fn submit(&self, pending: PendingFlush);
}

/// The simplest [`Flusher`]: fdatasync in `submit`, one per append.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncNow;

impl Flusher for SyncNow {
    fn submit(&self, pending: PendingFlush) {
        pending.sync_and_complete();
    }
}
