//! The simulated disk under a node's logs (its metadata log and each shard's, one [`Disk`]
//! record per log): fsyncs that take (simulated) time, and a crash that loses what was
//! written but not yet fsynced.
//!
//! The files are real, and every `write(2)` reaches them at once; what the model adds is the
//! page cache. [`Disk`] (one per log of a node, kept by the driver, so it outlives the node's boots)
//! records the highest frame index of the log that is durable: raised by the node's flusher
//! task ([`SimFlusher`]) after each simulated fsync, before openraft is told the entries are
//! durable, and by riffle-log's own fsyncs (a segment sealed at a roll, a truncation, a
//! reset), which [`SimStore`] reads back from the log after each write. At a restart
//! ([`Disk::lose_unsynced`], while the node is down) every frame past it is dropped, and
//! sometimes a torn final write is left behind it.
//!
//! The model only ever drops what no fsync covered, so it may keep more than a real disk
//! would (the page cache may be written back at any time), never less: a frame openraft was
//! told is durable, or one riffle-log fsynced itself, always survives.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use openraft::rt::AsyncRuntime;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::OptionalSend;
use riffle_cluster::{
    frame_index, Entry, Flusher, LogId, LogStore, LogStoreReader, PendingFlush, RiffleRaft,
    RiffleRuntime, Vote,
};
use riffle_log::{Log, LogError, LogOptions, FRAME_HEADER_BYTES};
use tokio::sync::mpsc;

use crate::Rng;

/// How long an fsync takes on a healthy disk.
pub const FSYNC_LATENCY: Duration = Duration::from_millis(1);

/// Chance that a restart finds a torn final write after the last durable frame (when some
/// frames were lost, so a write was in flight).
const TORN_TAIL_CHANCE: f64 = 0.5;

/// One node's disk, shared by the driver and every boot of the node.
#[derive(Debug, Default)]
pub struct Disk {
    state: Mutex<DiskState>,
}

#[derive(Debug)]
struct DiskState {
    /// Every frame of the log up to this index is on the platter.
    durable: u64,
    /// Bumped by every truncation or reset of the log: a flush submitted before one covers
    /// frames that are gone, or rewritten since (what stayed, the truncation fsynced).
    epoch: u64,
    /// What an fsync costs now ([`FSYNC_LATENCY`], or more on a slow disk).
    fsync_latency: Duration,
    /// The disk fails the log's fsyncs (and the writes that fsync) with this error, if any.
    failing: Option<DiskError>,
    /// Calls failed since the disk last started failing.
    failures: u64,
    /// An fsync of this boot failed: the log is poisoned until the node restarts.
    poisoned: bool,
}

impl Default for DiskState {
    fn default() -> DiskState {
        DiskState {
            durable: 0,
            epoch: 0,
            fsync_latency: FSYNC_LATENCY,
            failing: None,
            failures: 0,
            poisoned: false,
        }
    }
}

/// The error a failing disk returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskError {
    /// `EIO`: the device failed to write back (reported by the fsync that covered it).
    Io,
    /// `ENOSPC`: the filesystem is full (delayed allocation reports it at the fsync too).
    NoSpace,
}

impl DiskError {
    /// Its name, for the trace.
    pub fn name(self) -> &'static str {
        match self {
            DiskError::Io => "EIO",
            DiskError::NoSpace => "ENOSPC",
        }
    }

    /// The OS error, as the system call returns it.
    pub fn os_error(self) -> io::Error {
        io::Error::from_raw_os_error(match self {
            DiskError::Io => 5,
            DiskError::NoSpace => 28,
        })
    }
}

/// What became of a simulated fsync.
#[derive(Clone, Copy)]
enum Fsync {
    Done,
    Failed(DiskError),
    /// An earlier fsync of this boot failed: riffle-log refuses every call until a reopen.
    Poisoned,
}

/// What a restart did to a node's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    /// Frames past the durable index that were dropped.
    pub frames: u64,
    /// The torn write left after the last durable frame, if any.
    pub torn: Option<String>,
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = if self.frames == 1 { "" } else { "s" };
        write!(f, "lost {} unsynced frame{plural}", self.frames)?;
        match &self.torn {
            Some(torn) => write!(f, ", torn tail: {torn}"),
            None => f.write_str(", no torn tail"),
        }
    }
}

impl Disk {
    fn state(&self) -> std::sync::MutexGuard<'_, DiskState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The highest durable frame index.
    pub fn durable(&self) -> u64 {
        self.state().durable
    }

    /// Makes fsyncs take `latency` (a slow disk), or [`FSYNC_LATENCY`] again with `None`.
    pub fn set_slow(&self, latency: Option<Duration>) {
        self.state().fsync_latency = latency.unwrap_or(FSYNC_LATENCY);
    }

    /// Whether fsyncs are slow now.
    pub fn is_slow(&self) -> bool {
        self.state().fsync_latency != FSYNC_LATENCY
    }

    fn fsync_latency(&self) -> Duration {
        self.state().fsync_latency
    }

    /// Makes the disk fail the log's fsyncs with `error` from now on, or work again with
    /// `None` (a log already poisoned stays so until the node restarts).
    pub fn set_failing(&self, error: Option<DiskError>) {
        let mut state = self.state();
        if error.is_some() && state.failing.is_none() {
            state.failures = 0;
        }
        state.failing = error;
    }

    /// The error the disk fails with now, if it does.
    pub fn failing(&self) -> Option<DiskError> {
        self.state().failing
    }

    /// Calls that failed since the disk last started failing.
    pub fn failures(&self) -> u64 {
        self.state().failures
    }

    /// Whether a failed fsync poisoned the log of the node's current boot (its Raft has
    /// stopped: openraft treats a storage error as fatal).
    pub fn is_poisoned(&self) -> bool {
        self.state().poisoned
    }

    /// A boot opened the log: recovery fsynced everything it kept, up to `durable`.
    pub fn booted(&self, durable: u64) {
        let mut state = self.state();
        state.durable = durable;
        state.epoch += 1;
        state.poisoned = false;
    }

    /// An fsync of the log runs now: it fails on a failing disk (and poisons the log), and
    /// on a poisoned log.
    fn fsync(&self) -> Fsync {
        let mut state = self.state();
        if state.poisoned {
            return Fsync::Poisoned;
        }
        match state.failing {
            Some(error) => {
                state.poisoned = true;
                state.failures += 1;
                Fsync::Failed(error)
            }
            None => Fsync::Done,
        }
    }

    /// Whether a write of the log may go ahead: `None` if so, or the error riffle-log would
    /// return: a poisoned log refuses every write, and on a failing disk one that fsyncs
    /// (`fsyncs`) fails at its fsync and poisons the log. It fails before writing anything,
    /// which is one thing a failed fsync may leave.
    fn refuse(&self, fsyncs: bool) -> Option<io::Error> {
        match self.fsync_if(fsyncs) {
            Fsync::Done => None,
            Fsync::Failed(error) => Some(error.os_error()),
            Fsync::Poisoned => Some(io::Error::other(LogError::Poisoned.to_string())),
        }
    }

    fn fsync_if(&self, fsyncs: bool) -> Fsync {
        if fsyncs {
            self.fsync()
        } else if self.state().poisoned {
            Fsync::Poisoned
        } else {
            Fsync::Done
        }
    }

    /// A simulated fsync covering frames up to `upto` returned, for a flush submitted in
    /// `epoch`.
    fn synced(&self, upto: u64, epoch: u64) {
        let mut state = self.state();
        if state.epoch == epoch {
            state.durable = state.durable.max(upto);
        }
    }

    /// The log's own durable index after a write that neither truncated nor reset it (a roll
    /// inside an append fsyncs the sealed segment).
    fn log_durable(&self, log_durable: u64) {
        let mut state = self.state();
        state.durable = state.durable.max(log_durable);
    }

    /// The log was cut back or reset; it is durable exactly up to `log_durable` (riffle-log
    /// fsyncs a truncation, and a reset leaves an empty segment).
    fn cut(&self, log_durable: u64) {
        let mut state = self.state();
        state.durable = log_durable;
        state.epoch += 1;
    }

    /// The page cache is lost: drops every frame of the log in `log_dir` past the durable
    /// index and, with a chance drawn from `rng` when some were dropped, leaves a torn write
    /// after the last one kept. Call it while the node is down (nothing has the files open).
    ///
    /// An error is a fault of the model (it would drop a sealed segment's frames, which
    /// riffle-log fsynced before sealing) or a log that cannot be opened.
    pub fn lose_unsynced(
        &self,
        log_dir: &Path,
        options: LogOptions,
        rng: &mut Rng,
    ) -> Result<Loss, String> {
        let durable = self.durable();
        let context = |what: &str, error: &dyn std::fmt::Display| {
            format!("dropping the unsynced end of a log: {what}: {error}")
        };
        let (mut log, _) = Log::open(log_dir, options).map_err(|error| context("open", &error))?;
        let last = log.last_index();
        if durable >= last {
            return Ok(Loss {
                frames: 0,
                torn: None,
            });
        }
        let active = *log.segments().last().expect("a log has an active segment");
        if durable + 1 < active.base_index {
            return Err(format!(
                "the model would drop frames {}..={} of sealed segments (durable up to {durable}, \
                 active segment from {}): a roll fsyncs a segment before sealing it",
                durable + 1,
                active.base_index - 1,
                active.base_index
            ));
        }
        let path = log_dir.join(format!("{:020}.log", active.base_index));
        let next = log
            .reader()
            .read(durable + 1, durable + 1, 1, usize::MAX)
            .map_err(|error| context("read the first lost frame", &error))?
            .pop()
            .ok_or_else(|| format!("frame {} of the log is missing", durable + 1))?;
        let next_bytes = riffle_log::frame::encoded_frame_bytes(next.payload.len());
        let before = fs::read(&path).map_err(|error| context("read the active segment", &error))?;
        log.truncate_after(durable)
            .map_err(|error| context("truncate", &error))?;
        let kept = log.segments().last().map_or(0, |segment| segment.bytes) as usize;
        drop(log);
        let frames = last - durable;
        if !rng.chance(TORN_TAIL_CHANCE) {
            return Ok(Loss { frames, torn: None });
        }
        // A torn final write: part of the next frame's bytes, a few random bytes shorter
        // than a frame header, or a sector the file grew by whose data never arrived.
        let (bytes, torn) = match rng.below(3) {
            0 => {
                let length = 1 + rng.below(next_bytes as u64 - 1) as usize;
                let bytes = before[kept..kept + length].to_vec();
                (
                    bytes,
                    format!("{length} of the next frame's {next_bytes} bytes"),
                )
            }
            1 => {
                let length = 1 + rng.below(FRAME_HEADER_BYTES as u64 - 1) as usize;
                let bytes = (0..length).map(|_| rng.next_u64() as u8).collect();
                (bytes, format!("{length} random bytes"))
            }
            _ => {
                let length = 1 + rng.below(512) as usize;
                (vec![0; length], format!("{length} zero bytes"))
            }
        };
        OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(&bytes))
            .map_err(|error| context("write the torn tail", &error))?;
        Ok(Loss {
            frames,
            torn: Some(torn),
        })
    }
}

/// A node's flusher: `submit` queues the flush for the node's disk task, which completes the
/// queued flushes in order after a simulated fsync (a group commit: one fsync covers every
/// flush queued before it started).
pub struct SimFlusher {
    disk: Arc<Disk>,
    queue: mpsc::UnboundedSender<(PendingFlush, u64)>,
}

impl SimFlusher {
    /// A flusher for `disk` and its task, spawned on the node's runtime (call it inside the
    /// node's seeded scope: the task inherits the seed, and dies with the host at a crash,
    /// leaving its flushes uncompleted).
    pub fn start(disk: Arc<Disk>) -> SimFlusher {
        let (queue, pending) = mpsc::unbounded_channel();
        RiffleRuntime::spawn(fsync_task(disk.clone(), pending));
        SimFlusher { disk, queue }
    }
}

impl Flusher for SimFlusher {
    fn submit(&self, pending: PendingFlush) {
        let epoch = self.disk.state().epoch;
        // The task is gone only when the node is: nobody waits for the flush any more.
        let _ = self.queue.send((pending, epoch));
    }
}

async fn fsync_task(disk: Arc<Disk>, mut queue: mpsc::UnboundedReceiver<(PendingFlush, u64)>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = queue.try_recv() {
            batch.push(more);
        }
        tokio::time::sleep(disk.fsync_latency()).await;
        let fsync = disk.fsync();
        for (pending, epoch) in batch {
            match fsync {
                Fsync::Done => {
                    // Durable before openraft hears it: a crash from here on keeps the frames.
                    disk.synced(pending.sync_handle().upto(), epoch);
                    pending.complete(Ok(()));
                }
                // openraft stops the group on this node; the frames stay unsynced.
                Fsync::Failed(error) => pending.complete(Err(LogError::Io(error.os_error()))),
                Fsync::Poisoned => pending.complete(Err(LogError::Poisoned)),
            }
        }
    }
}

/// The node's [`LogStore`], telling its [`Disk`] what riffle-log made durable itself (rolls,
/// truncations, resets) and when the log was cut back.
pub struct SimStore {
    inner: LogStore,
    disk: Arc<Disk>,
}

impl SimStore {
    /// Wraps `inner`, just opened (recovery made all of it durable).
    pub fn new(inner: LogStore, disk: Arc<Disk>) -> SimStore {
        disk.booted(inner.log().durable_index());
        SimStore { inner, disk }
    }

    /// After a write: `next_before` is the log's next index before it. A log cut back
    /// (`truncate_after`) or emptied to continue further on (a reset after a purge past its
    /// end) is durable exactly as far as it goes; otherwise the log's own durable index
    /// moves only at a roll (an append seals a full segment, with an fsync, before writing).
    fn after_write(&self, next_before: u64) {
        let log = self.inner.log();
        let next = log.next_index();
        let emptied = next > next_before && log.first_index() == next;
        if next < next_before || emptied {
            self.disk.cut(log.durable_index());
        } else {
            self.disk.log_durable(log.durable_index());
        }
    }
}

impl RaftLogStorage<RiffleRaft> for SimStore {
    type LogReader = LogStoreReader;

    async fn get_log_state(&mut self) -> Result<LogState<RiffleRaft>, std::io::Error> {
        self.inner.get_log_state().await
    }

    async fn get_log_reader(&mut self) -> LogStoreReader {
        self.inner.get_log_reader().await
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), std::io::Error> {
        self.inner.save_vote(vote).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), std::io::Error> {
        self.inner.save_committed(committed).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, std::io::Error> {
        self.inner.read_committed().await
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<RiffleRaft>,
    ) -> Result<(), std::io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Appends are write(2)s into the page cache, which a failing disk takes; only one that
        // seals a full segment first fsyncs (riffle-log rolls before it writes).
        let log = self.inner.log();
        let rolls = log
            .segments()
            .last()
            .is_some_and(|active| active.bytes >= log.options().segment_bytes_max);
        if let Some(error) = self.disk.refuse(rolls) {
            return Err(error);
        }
        let next_before = self.inner.log().next_index();
        let result = self.inner.append(entries, callback).await;
        self.after_write(next_before);
        result
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), std::io::Error> {
        // A truncation that cuts something fsyncs it.
        let keep = last_log_id.map_or(Some(0), |log_id| frame_index(log_id.index));
        let cuts = keep.is_some_and(|keep| keep < self.inner.log().last_index());
        if let Some(error) = self.disk.refuse(cuts) {
            return Err(error);
        }
        let next_before = self.inner.log().next_index();
        let result = self.inner.truncate_after(last_log_id).await;
        self.after_write(next_before);
        result
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), std::io::Error> {
        // A purge that drops something fsyncs the log's directory (or a reset segment).
        let purges =
            !matches!(self.inner.last_purged(), Some(purged) if purged.index >= log_id.index);
        if let Some(error) = self.disk.refuse(purges) {
            return Err(error);
        }
        let next_before = self.inner.log().next_index();
        let result = self.inner.purge(log_id).await;
        self.after_write(next_before);
        result
    }
}
