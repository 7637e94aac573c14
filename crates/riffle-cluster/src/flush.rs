//! Who fsyncs appended entries, and when openraft hears about it.
//!
//! openraft's `append` must return once the entries are readable and call its callback once
//! they are durable. [`LogStore`](crate::LogStore) writes the frames with `write(2)` and hands
//! a [`PendingFlush`] (a riffle-log [`SyncHandle`] and the callback) to a [`Flusher`].
//!
//! A node runs one [`GroupCommit`]: a pool of fsync threads shared by every group of the
//! node, each group's log with a [`Lane`] of its own. A lane collects the flushes its log
//! submits while an fsync of it runs; one fdatasync of the newest then covers them all (a
//! later fdatasync of the same file covers earlier writes, and riffle-log fsyncs a segment
//! before it rolls to the next one), and they are completed in the order they came. Lanes of
//! different logs sync in parallel on different threads, with no round that waits for the
//! slowest: a log's next fsync starts as soon as its previous one ended. openraft's storage
//! task never waits for the disk: `append` returns once the frames are written, and the
//! callback fires from the fsync thread.
//!
//! [`SyncNow`] (fdatasync on the spot, in `submit`) is for tests and tools. The simulator
//! brings its own flusher (a simulated disk).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

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

/// Fsync threads at most; more logs waiting for an fsync queue for a free thread.
const SYNC_THREADS_MAX: usize = 16;

/// How long an idle fsync thread waits before it looks whether its pool is still in use.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The node-wide group commit (see the module docs). Cloning is cheap. Its threads start
/// as flushes come, up to [`SYNC_THREADS_MAX`], and end (within a second) once this and
/// every lane made from it are gone.
#[derive(Clone)]
pub struct GroupCommit {
    pool: Arc<Pool>,
}

struct Pool {
    state: Mutex<PoolState>,
    work: Condvar,
}

#[derive(Default)]
struct PoolState {
    /// Lanes with flushes to run, oldest first; a lane is here at most once.
    ready: VecDeque<Arc<Lane>>,
    threads: usize,
    /// Threads waiting for a lane.
    idle: usize,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `lane` and makes sure a thread will run it.
    fn schedule(self: &Arc<Self>, lane: Arc<Lane>) {
        let mut state = self.lock();
        state.ready.push_back(lane);
        if state.ready.len() > state.idle && state.threads < SYNC_THREADS_MAX {
            let pool = Arc::downgrade(self);
            let spawned = std::thread::Builder::new()
                .name("riffle-fsync".into())
                .spawn(move || Pool::work(&pool));
            match spawned {
                Ok(_) => state.threads += 1,
                Err(error) if state.threads == 0 => {
                    // No thread at all: sync here rather than leave openraft waiting.
                    let lane = state.ready.pop_back();
                    drop(state);
                    tracing::warn!(%error, "cannot start an fsync thread; syncing inline");
                    if let Some(lane) = lane {
                        while lane.run_once() {}
                    }
                    return;
                }
                Err(_) => {} // the threads there are will get to it
            }
        }
        self.work.notify_one();
    }

    fn work(pool: &Weak<Pool>) {
        // Holds the pool only while it works or waits a while, so that a pool nobody
        // uses any more is dropped and its threads end.
        while let Some(pool) = pool.upgrade() {
            let lane = {
                let mut state = pool.lock();
                if state.ready.is_empty() {
                    state.idle += 1;
                    state = pool
                        .work
                        .wait_timeout(state, IDLE_CHECK)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                    state.idle -= 1;
                }
                state.ready.pop_front()
            };
            let Some(lane) = lane else { continue };
            // A lane that still has flushes after one fsync goes to the back of the queue,
            // so one busy log cannot hold a thread while others wait.
            if lane.run_once() {
                pool.lock().ready.push_back(lane);
            }
        }
    }
}

impl GroupCommit {
    pub fn new() -> GroupCommit {
        GroupCommit {
            pool: Arc::new(Pool {
                state: Mutex::new(PoolState::default()),
                work: Condvar::new(),
            }),
        }
    }

    /// A flusher for one log. Give each log its own lane: a lane fsyncs the file of the
    /// newest flush it holds, which covers only that log's earlier writes.
    pub fn lane(&self) -> Arc<Lane> {
        Arc::new_cyclic(|me| Lane {
            me: me.clone(),
            pool: Arc::clone(&self.pool),
            queue: Mutex::new(Vec::new()),
            scheduled: AtomicBool::new(false),
        })
    }
}

impl Default for GroupCommit {
    fn default() -> Self {
        GroupCommit::new()
    }
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.pool.lock();
        f.debug_struct("GroupCommit")
            .field("threads", &state.threads)
            .field("ready", &state.ready.len())
            .finish()
    }
}

/// One log's flushes in a [`GroupCommit`] (see the module docs).
pub struct Lane {
    me: Weak<Lane>,
    pool: Arc<Pool>,
    queue: Mutex<Vec<PendingFlush>>,
    /// Set while the lane is queued in the pool or being run, so that no two threads run it
    /// at once (they could complete its flushes out of order).
    scheduled: AtomicBool,
}

impl Lane {
    /// Runs one fsync for every flush queued now and completes them in the order they
    /// came. Returns true when more came meanwhile and the lane stays scheduled: the caller
    /// must run it again or queue it.
    fn run_once(&self) -> bool {
        let batch = std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner));
        if let Some(last) = batch.last() {
            let handle = last.sync_handle().clone();
            let mut result = handle.sync();
            for pending in batch {
                // The first flush gets the error itself (openraft logs it and stops the
                // group); the log is poisoned after a failed fsync, which the rest get.
                let this = match &mut result {
                    Ok(()) => Ok(()),
                    Err(error) => Err(std::mem::replace(error, LogError::Poisoned)),
                };
                pending.complete(this);
            }
        }
        // Unschedule, then look again: a flush submitted since the take saw the lane
        // scheduled and left it to this run.
        self.scheduled.store(false, Ordering::Release);
        let more = !self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty();
        more && !self.scheduled.swap(true, Ordering::AcqRel)
    }
}

impl Flusher for Lane {
    fn submit(&self, pending: PendingFlush) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(pending);
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return; // queued or running: whoever runs it takes this flush too
        }
        match self.me.upgrade() {
            Some(lane) => self.pool.schedule(lane),
            // Only while the lane is being dropped, when nobody submits.
            None => while self.run_once() {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::type_config::TypeConfigExt;
    use riffle_log::faults::SyncFault;
    use riffle_log::{EntryMeta, FrameKind, Log, LogOptions};

    fn open(dir: &std::path::Path) -> Log {
        Log::open(dir, LogOptions::default()).expect("open a log").0
    }

    /// Appends one frame to `log` and submits its flush to `lane`; the receiver gets the
    /// flush's result.
    fn append_and_submit(
        log: &mut Log,
        lane: &Lane,
    ) -> impl std::future::Future<Output = Result<(), std::io::Error>> {
        let meta = EntryMeta {
            kind: FrameKind::Data,
            flags: 0,
            term: 1,
            leader: 1,
            record_count: 1,
            ts_first_ms: 0,
            ts_max_ms: 0,
        };
        log.append(&meta, b"frame").expect("append a frame");
        let (tx, rx) = RiffleRaft::oneshot();
        lane.submit(PendingFlush::new(log.sync_handle(), IOFlushed::signal(tx)));
        async move { rx.await.expect("the flush was completed") }
    }

    #[test]
    fn every_flush_of_every_lane_completes_once_synced() {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let group_commit = GroupCommit::new();
        let lanes = [group_commit.lane(), group_commit.lane()];
        let mut logs = [open(dirs[0].path()), open(dirs[1].path())];
        RiffleRaft::run(async {
            let mut waits = Vec::new();
            for _ in 0..200 {
                for (log, lane) in logs.iter_mut().zip(&lanes) {
                    waits.push(append_and_submit(log, lane));
                }
            }
            for wait in waits {
                wait.await.expect("the fsync succeeded");
            }
        });
        // Coalesced: fewer fsyncs than flushes would be nice to assert, but it depends on
        // timing; what must hold is that each log's frames are all there after a reopen.
        drop(logs);
        for dir in &dirs {
            assert_eq!(open(dir.path()).last_index(), 200);
        }
    }

    #[test]
    fn a_failed_fsync_fails_its_lane_and_no_other() {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let group_commit = GroupCommit::new();
        let (failing, healthy) = (group_commit.lane(), group_commit.lane());
        let mut logs = [open(dirs[0].path()), open(dirs[1].path())];
        logs[0].faults().fail_next_sync(SyncFault::Io);
        RiffleRaft::run(async {
            let first = append_and_submit(&mut logs[0], &failing);
            let second = append_and_submit(&mut logs[0], &failing);
            let other = append_and_submit(&mut logs[1], &healthy);
            assert!(first.await.is_err(), "the failed fsync's flush fails");
            // Whether it shared the failed fsync or came after it: the log is poisoned.
            assert!(
                second.await.is_err(),
                "a later flush of a poisoned log fails"
            );
            other.await.expect("another log's flush is not affected");
            let after = append_and_submit(&mut logs[1], &healthy);
            after.await.expect("the healthy lane goes on");
        });
    }
}
