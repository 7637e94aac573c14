//! One shard's log as the domain sees it: appends with group commit, and a published tail.
//!
//! A [`ShardLog`] owns a `riffle_log::Log` behind a short mutex and publishes a [`TailState`] on a
//! `tokio::sync::watch` channel. The tail's `visible_index` is the highest log index a reader may
//! see; with the default [`Durability::Sync`] it only moves after the bytes are fdatasync'ed, so a
//! reader never sees a record that a crash could take back, and a producer is acknowledged exactly
//! when its entry becomes visible.
//!
//! **Group commit.** An append writes its frame with write(2) under the mutex (microseconds), asks
//! the node's [`Flusher`] to sync the shard, and waits on the watch channel. The flusher thread
//! takes a sync handle (the file and the last index written), fdatasyncs *without* the mutex, and
//! then publishes the new tail. Appends that arrive during an fsync are covered by the next one, so
//! under load one fsync acknowledges many requests, across connections and (in parallel) shards.
//!
//! **Arrival timestamps** are `max(clock, last timestamp)`, so they never go backwards within a
//! shard even if the wall clock does; `AT_TIMESTAMP` lookups rely on this.
//!
//! **Open files.** Segment handles other than an open shard's active segment live in the node's
//! [`FileCache`]. A sealed shard (closed by a reshard) also lets its active segment go there once
//! its seal frame is durable, so a closed shard holds no file while nobody reads it.
//!
//! **Encrypted streams** hand appends a [`Sealer`]: the payload gets its key id and nonce
//! before the lock, and is sealed under the lock, where the frame's index and arrival time
//! (which the authenticated data binds) are decided: one AES-GCM pass per frame.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use riffle_log::{
    Entry, EntryMeta, Expect, FileCache, FrameKind, Log, LogError, LogOptions, LogReader,
};
use tokio::sync::watch;

use crate::crypto::{self, Sealer};
use crate::record::{self, NewRecord};

/// When a put is acknowledged, relative to fdatasync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledge only after the batch is fdatasync'ed (default). Nothing acknowledged is lost
    /// on a crash or power loss.
    Sync,
    /// Acknowledge after write(2) and fdatasync every `interval_ms` in the background. Survives a
    /// process crash (the page cache holds the bytes) but a power loss can lose the last
    /// `interval_ms` of acknowledged records.
    Async { interval_ms: u64 },
    /// Never fsync (throwaway `--in-memory` stores used by tests).
    None,
}

/// What readers and waiting producers watch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailState {
    /// Highest index readers may see (0 = nothing yet).
    pub visible_index: u64,
    /// Arrival timestamp of the newest visible record.
    pub ts_last_ms: u64,
    /// A failed fsync poisoned the log: no further write will ever be acknowledged.
    pub poisoned: bool,
}

/// Why an append failed.
#[derive(Debug)]
pub enum AppendError {
    Log(LogError),
    /// An earlier fsync failed; the shard refuses writes until the process restarts and recovers.
    Poisoned,
    /// The shard was sealed by a reshard: its records now go to its children.
    Sealed,
    /// The payload could not be encrypted (no randomness for a nonce).
    Encrypt(crypto::SealError),
    /// The shard's replication group could not take the frame now (no leader reachable, a
    /// leader change mid-append): retriable.
    Replication(String),
}

impl std::fmt::Display for AppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppendError::Log(error) => write!(f, "log append failed: {error}"),
            AppendError::Poisoned => write!(f, "log is poisoned by an earlier fsync failure"),
            AppendError::Sealed => write!(f, "the shard is sealed by a reshard"),
            AppendError::Encrypt(error) => write!(f, "cannot encrypt the frame: {error}"),
            AppendError::Replication(reason) => write!(f, "replication failed: {reason}"),
        }
    }
}

impl std::error::Error for AppendError {}

/// A frame for a shard's replication group: what a local append would write, less the
/// index and the leader, which the group decides.
#[derive(Debug, Clone)]
pub struct ReplicaFrame {
    pub kind: FrameKind,
    pub flags: u16,
    pub record_count: u16,
    /// The arrival time the entry node gave the batch (epoch ms).
    pub ts_ms: u64,
    /// The encoded records.
    pub payload: Vec<u8>,
}

/// A shard's replication group as the domain sees it (implemented by riffle-cluster). An
/// append resolves once the frame is committed on a majority of the shard's replicas and
/// applied here, with the frame index it landed at.
pub trait ShardReplica: Send + Sync + 'static {
    fn append(
        &self,
        frame: ReplicaFrame,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Appended, AppendError>> + Send>>;

    /// Reads the shard's committed entries from one of its replicas (for a node that holds
    /// none, see [`ShardLog::fetch`]).
    fn read(
        &self,
        request: FetchRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Fetched, String>> + Send>>;

    /// Retention of this node's replica (none if it holds none): whole segments whose every
    /// record arrived before `cutoff_ms` expire, and the active segment is sealed once its
    /// first record arrived before `roll_before_ms` (as [`ShardLog::trim`] does locally).
    /// Resolves to the last frame index expired (the log continues after it), if any.
    fn expire(
        &self,
        cutoff_ms: u64,
        roll_before_ms: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<u64>, String>> + Send>>;
}

/// What a node holding no replica of a shard asks one of its replicas for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchRequest {
    /// The first index wanted.
    pub from_index: u64,
    /// At most this many entries (0: none, only the log's bounds).
    pub entries_max: usize,
    /// At most this many bytes of entries (at least one entry if any is there).
    pub bytes_max: usize,
    /// Also look up the first entry at or after this arrival time (AT_TIMESTAMP).
    pub at_timestamp: Option<u64>,
    /// When nothing at or after `from_index` is visible yet, wait up to this long for it
    /// (a subscription's long poll).
    pub wait_ms: u64,
}

/// A replica's answer to a [`FetchRequest`]: committed entries only, never past its
/// published tail.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub first_index: u64,
    pub tail: TailState,
    /// The first visible entry at or after the asked arrival time, if any.
    pub found_index: Option<u64>,
    pub entries: Vec<Entry>,
}

/// An append started with [`ShardLog::start_append`].
pub enum PendingAppend {
    Local(Appended),
    Replicated(tokio::task::JoinHandle<Result<Appended, AppendError>>),
}

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub index: u64,
    pub arrival_ms: u64,
}

struct Writer {
    log: Log,
    ts_last_ms: u64,
    /// Set by [`ShardLog::seal`]: no data is appended after the seal frame.
    sealed: bool,
}

pub struct ShardLog {
    /// The local writer; `None` for a replicated shard, whose log the replication group
    /// writes (see [`ShardReplica`]).
    writer: Option<Mutex<Writer>>,
    /// The shard's replication group, for a shard of a cluster node.
    replica: Option<Arc<dyn ShardReplica>>,
    /// Reads the shard's log; `None` on a cluster node that holds no replica of the shard.
    reader: Option<LogReader>,
    /// Cleared when the cluster stops keeping this replica here (the node was moved off
    /// the shard): reads through this log are then refused like a remote shard's.
    stored: AtomicBool,
    tail: Arc<watch::Sender<TailState>>,
    durability: Durability,
    flusher: Flusher,
    /// Set while this shard waits in the flusher's queue, so a burst of appends queues it once.
    flush_queued: AtomicBool,
    /// Payload bytes and records of every data frame written since the log was opened; the
    /// ON_DEMAND scaler samples them to measure the write rate.
    written_bytes: AtomicU64,
    written_records: AtomicU64,
}

impl ShardLog {
    /// Opens (recovers) the log in `dir`, refusing one that lacks what `expect` says must be
    /// there (see `crate::watermarks`), and keeping its segment handles in `files`. A `sealed`
    /// log (a closed shard's) refuses appends and keeps no file open while it is not read.
    pub fn open(
        dir: &Path,
        options: LogOptions,
        durability: Durability,
        flusher: Flusher,
        sealed: bool,
        expect: Expect,
        files: &FileCache,
    ) -> Result<Arc<ShardLog>, LogError> {
        let (log, report) = Log::open_with_cache(dir, options, expect, files)?;
        if report.torn_tail_bytes_truncated > 0 {
            tracing::warn!(
                dir = %dir.display(),
                bytes = report.torn_tail_bytes_truncated,
                synced_through = expect.synced_through,
                "cut an incomplete write after the last synced index (a crash interrupted it \
                 before its fsync, so it was never acknowledged)"
            );
        }
        ShardLog::from_log(log, durability, flusher, sealed)
    }

    /// Wraps a recovered log.
    pub fn from_log(
        mut log: Log,
        durability: Durability,
        flusher: Flusher,
        sealed: bool,
    ) -> Result<Arc<ShardLog>, LogError> {
        let reader = log.reader();
        let last_index = log.last_index();
        let mut ts_last_ms = 0;
        if last_index >= log.first_index() && last_index > 0 {
            if let Some(entry) = reader.read(last_index, last_index, 1, 1)?.pop() {
                ts_last_ms = entry.meta.ts_max_ms;
            }
        }
        // Everything recovered from disk is durable: recovery only keeps verified frames, and
        // after a crash the page cache that held unsynced bytes is the only thing that could
        // have lost them, which recovery already accounted for.
        if sealed {
            log.unpin_active();
        }
        let (tail, _) = watch::channel(TailState {
            visible_index: last_index,
            ts_last_ms,
            poisoned: false,
        });
        Ok(Arc::new(ShardLog {
            writer: Some(Mutex::new(Writer {
                log,
                ts_last_ms,
                sealed,
            })),
            replica: None,
            reader: Some(reader),
            stored: AtomicBool::new(true),
            tail: Arc::new(tail),
            durability,
            flusher,
            flush_queued: AtomicBool::new(false),
            written_bytes: AtomicU64::new(0),
            written_records: AtomicU64::new(0),
        }))
    }

    /// A shard whose log a replication group writes: `reader` reads that log, `tail` is
    /// published by the group as entries are committed and applied, and appends go through
    /// `replica`.
    pub fn replicated(
        reader: LogReader,
        replica: Arc<dyn ShardReplica>,
        tail: Arc<watch::Sender<TailState>>,
        durability: Durability,
        flusher: Flusher,
    ) -> Arc<ShardLog> {
        Arc::new(ShardLog {
            writer: None,
            replica: Some(replica),
            reader: Some(reader),
            stored: AtomicBool::new(true),
            tail,
            durability,
            flusher,
            flush_queued: AtomicBool::new(false),
            written_bytes: AtomicU64::new(0),
            written_records: AtomicU64::new(0),
        })
    }

    /// A shard of a cluster node that holds no replica of it: appends go to the shard's
    /// group through `replica` (which forwards them to its leader), and nothing is read
    /// here ([`ShardLog::stored_here`] is false).
    pub fn remote(replica: Arc<dyn ShardReplica>, flusher: Flusher) -> Arc<ShardLog> {
        let (tail, _) = watch::channel(TailState {
            visible_index: 0,
            ts_last_ms: 0,
            poisoned: false,
        });
        Arc::new(ShardLog {
            writer: None,
            replica: Some(replica),
            reader: None,
            stored: AtomicBool::new(false),
            tail: Arc::new(tail),
            durability: Durability::Sync,
            flusher,
            flush_queued: AtomicBool::new(false),
            written_bytes: AtomicU64::new(0),
            written_records: AtomicU64::new(0),
        })
    }

    /// Whether this node holds the shard's records: false for a cluster node's shard it
    /// holds no replica of (see [`ShardLog::remote`]), or no longer does.
    pub fn stored_here(&self) -> bool {
        self.reader.is_some() && self.stored.load(Ordering::Acquire)
    }

    /// Reads from one of the shard's replicas (a shard this node holds no replica of).
    pub async fn fetch(&self, request: FetchRequest) -> Result<Fetched, String> {
        match &self.replica {
            Some(replica) => replica.read(request).await,
            None => Err("the shard has no replication group to read from".into()),
        }
    }

    /// Answers a [`FetchRequest`] from this node's replica (the replica side of
    /// [`ShardLog::fetch`]): waits up to `wait_ms` for an entry at `from_index` if none is
    /// visible yet, then reads like a local reader would. Blocking: run it off the async
    /// workers.
    pub fn serve_fetch(&self, request: FetchRequest) -> Result<Fetched, LogError> {
        let tail = self.tail();
        let entries = if request.entries_max == 0 {
            Vec::new()
        } else {
            self.read(
                request.from_index,
                request.entries_max,
                request.bytes_max.max(1),
            )?
        };
        let found_index = match request.at_timestamp {
            Some(ts_ms) => self.find_by_timestamp(ts_ms)?,
            None => None,
        };
        Ok(Fetched {
            first_index: self.first_index(),
            // Entries read after `tail` was taken may go past it; the tail answered covers them.
            tail: match entries.last() {
                Some(last) if last.index > tail.visible_index => self.tail(),
                _ => tail,
            },
            found_index,
            entries,
        })
    }

    /// Waits (at most `wait`) until an entry at `index` is visible.
    pub async fn wait_visible(&self, index: u64, wait: Duration) {
        let mut tail = self.tail.subscribe();
        let _ = tokio::time::timeout(
            wait,
            tail.wait_for(|state| state.visible_index >= index || state.poisoned),
        )
        .await;
    }

    /// Marks the replica as gone from this node (its group was stopped and its directory
    /// is being removed), so readers are refused instead of reading vanishing files.
    pub fn no_longer_stored(&self) {
        self.stored.store(false, Ordering::Release);
    }

    fn reader(&self) -> Result<&LogReader, LogError> {
        match &self.reader {
            Some(reader) if self.stored.load(Ordering::Acquire) => Ok(reader),
            _ => Err(LogError::InvalidArgument(
                "this node holds no replica of the shard".into(),
            )),
        }
    }

    /// Counts a frame the shard's group applied (what [`ShardLog::written`] reports for a
    /// replicated shard: every replica counts every frame, wherever it entered).
    pub fn note_applied(&self, bytes: u64, records: u64) {
        self.written_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.written_records.fetch_add(records, Ordering::Relaxed);
    }

    /// Whether a replication group writes this log.
    pub fn is_replicated(&self) -> bool {
        self.replica.is_some()
    }

    /// The local writer (`None` for a replicated shard).
    fn lock(&self) -> Option<MutexGuard<'_, Writer>> {
        // A panic while holding the lock cannot leave the log half-written in memory: the log
        // only advances its indexes after a successful write. Keep serving.
        self.writer.as_ref().map(|writer| {
            writer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        })
    }

    /// Starts appending `records` as one frame: locally, the frame is written and its flush
    /// queued; for a replicated shard, the frame is sent to the shard's group on a task of its
    /// own, so that the frames of one request go to their shards' groups in parallel. Wait
    /// for the result with [`ShardLog::finish_append`].
    pub fn start_append(
        self: &Arc<Self>,
        records: &[NewRecord],
        now_ms: u64,
        sealer: Option<&Sealer<'_>>,
    ) -> Result<PendingAppend, AppendError> {
        let Some(replica) = &self.replica else {
            return self
                .append_nowait(records, now_ms, sealer)
                .map(PendingAppend::Local);
        };
        let mut payload = encode_payload(records, sealer)?;
        let record_count = records.len() as u16;
        let mut flags = 0;
        if let Some(sealer) = sealer {
            // Sealed here, before the frame leaves this node, with the header the group
            // stores (`FramePayload`: both timestamps are the arrival time); its index is
            // the group's to give, so the seal does not bind it (see `crypto`).
            let mut meta = EntryMeta {
                kind: FrameKind::Data,
                flags: 0,
                term: 0,
                leader: 0,
                record_count,
                ts_first_ms: now_ms,
                ts_max_ms: now_ms,
            };
            sealer
                .finish_unindexed(&mut payload, &mut meta)
                .map_err(AppendError::Encrypt)?;
            flags = meta.flags;
        }
        let frame = ReplicaFrame {
            kind: FrameKind::Data,
            flags,
            record_count,
            ts_ms: now_ms,
            payload,
        };
        Ok(PendingAppend::Replicated(tokio::spawn(
            replica.append(frame),
        )))
    }

    /// Waits until a started append may be acknowledged (see [`ShardLog::start_append`]).
    pub async fn finish_append(&self, pending: PendingAppend) -> Result<Appended, AppendError> {
        match pending {
            PendingAppend::Local(appended) => self.wait_acknowledged(appended).await,
            PendingAppend::Replicated(task) => task.await.map_err(|error| {
                AppendError::Replication(format!("the replicated append failed: {error}"))
            })?,
        }
    }

    /// Seals the shard (see [`ShardLog::seal`]) and waits until the seal may be relied on.
    pub async fn seal_and_wait(self: &Arc<Self>, now_ms: u64) -> Result<Appended, AppendError> {
        if let Some(replica) = &self.replica {
            return replica
                .append(ReplicaFrame {
                    kind: FrameKind::Seal,
                    flags: 0,
                    record_count: 0,
                    ts_ms: now_ms,
                    payload: Vec::new(),
                })
                .await;
        }
        let appended = self.seal(now_ms)?;
        self.wait_acknowledged(appended).await
    }

    /// Appends `records` as one frame and returns once they are acknowledged under the
    /// configured durability.
    pub async fn append(
        self: &Arc<Self>,
        records: &[NewRecord],
        now_ms: u64,
    ) -> Result<Appended, AppendError> {
        let appended = self.append_nowait(records, now_ms, None)?;
        self.wait_acknowledged(appended).await
    }

    /// Waits until `appended` may be acknowledged: at once unless durability is `Sync`, else
    /// once the flusher has fdatasync'ed it.
    pub async fn wait_acknowledged(&self, appended: Appended) -> Result<Appended, AppendError> {
        if self.durability != Durability::Sync {
            return Ok(appended);
        }
        let index = appended.index;
        let mut tail = self.tail.subscribe();
        let state = *tail
            .wait_for(|state| state.visible_index >= index || state.poisoned)
            .await
            .map_err(|_| AppendError::Poisoned)?;
        if state.visible_index < index {
            return Err(AppendError::Poisoned);
        }
        Ok(appended)
    }

    /// Writes the frame (sealed by `sealer`, for an encrypted stream) and queues the flush
    /// without waiting for it.
    pub fn append_nowait(
        self: &Arc<Self>,
        records: &[NewRecord],
        now_ms: u64,
        sealer: Option<&Sealer<'_>>,
    ) -> Result<Appended, AppendError> {
        assert!(!records.is_empty() && records.len() <= usize::from(u16::MAX));
        // Every record of a batch shares the batch's arrival time, so the payload can be
        // encoded before taking the lock.
        let mut payload = encode_payload(records, sealer)?;
        let appended = self.append_frame(
            FrameKind::Data,
            records.len() as u16,
            &mut payload,
            now_ms,
            sealer,
        )?;
        self.written_bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        self.written_records
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        Ok(appended)
    }

    /// `(bytes, records)` of data written since the log was opened (see `written_bytes`).
    pub fn written(&self) -> (u64, u64) {
        (
            self.written_bytes.load(Ordering::Relaxed),
            self.written_records.load(Ordering::Relaxed),
        )
    }

    /// Seals the shard: appends a seal frame after every record written so far and refuses
    /// appends from then on (they fail with [`AppendError::Sealed`] and are routed to the
    /// children). Wait for the returned append with [`ShardLog::wait_acknowledged`]; its index
    /// is the shard's last.
    pub fn seal(self: &Arc<Self>, now_ms: u64) -> Result<Appended, AppendError> {
        self.append_frame(FrameKind::Seal, 0, &mut Vec::new(), now_ms, None)
    }

    /// Takes back a seal whose reshard could not be persisted. The seal frame stays in the log
    /// (a reader may already have passed it, so its index is never reused); readers skip it.
    pub fn unseal(&self) {
        // A replicated seal is committed on the shard's group and cannot be taken back: the
        // shard stays closed (ARCHITECTURE.md, the cluster, what is left).
        if let Some(mut writer) = self.lock() {
            writer.sealed = false;
        }
    }

    fn append_frame(
        self: &Arc<Self>,
        kind: FrameKind,
        record_count: u16,
        payload: &mut Vec<u8>,
        now_ms: u64,
        sealer: Option<&Sealer<'_>>,
    ) -> Result<Appended, AppendError> {
        let appended = {
            let Some(mut writer) = self.lock() else {
                return Err(AppendError::Replication(
                    "a replicated shard is appended to through its group".into(),
                ));
            };
            if self.tail.borrow().poisoned {
                return Err(AppendError::Poisoned);
            }
            if writer.sealed {
                return Err(AppendError::Sealed);
            }
            let arrival_ms = now_ms.max(writer.ts_last_ms);
            let mut meta = EntryMeta {
                kind,
                flags: 0,
                term: 1,
                leader: 1,
                record_count,
                ts_first_ms: arrival_ms,
                ts_max_ms: arrival_ms,
            };
            let next_index = writer.log.next_index();
            if let Some(sealer) = sealer {
                sealer
                    .finish(payload, next_index, &mut meta)
                    .map_err(AppendError::Encrypt)?;
            }
            let index = writer
                .log
                .append(&meta, payload)
                .map_err(AppendError::Log)?;
            // The authenticated data named `next_index`: the frame must be exactly there.
            assert_eq!(index, next_index, "an append lands at the log's next index");
            // Under the same lock as the append: nothing can slip in behind the seal frame.
            writer.sealed = kind == FrameKind::Seal;
            writer.ts_last_ms = arrival_ms;
            if writer.sealed && self.durability == Durability::None {
                // Nothing to make durable first (see `flush` for the other modes).
                writer.log.unpin_active();
            }
            if self.durability != Durability::Sync {
                // Visible at once: publish under the lock so the tail never moves backwards.
                self.tail.send_modify(|state| {
                    state.visible_index = index;
                    state.ts_last_ms = arrival_ms;
                });
            }
            Appended { index, arrival_ms }
        };
        if self.durability != Durability::None && !self.flush_queued.swap(true, Ordering::AcqRel) {
            self.flusher.queue(Arc::clone(self));
        }
        Ok(appended)
    }

    /// Fsyncs what has been written and publishes it. Called by the flusher thread only.
    fn flush(&self) {
        self.flush_queued.store(false, Ordering::Release);
        let (handle, ts_last_ms) = {
            let Some(writer) = self.lock() else { return };
            if writer.log.durable_index() >= writer.log.last_index() {
                return;
            }
            (writer.log.sync_handle(), writer.ts_last_ms)
        };
        let upto = handle.upto();
        match handle.sync() {
            Ok(()) => {
                let Some(mut writer) = self.lock() else {
                    return;
                };
                writer.log.mark_durable(upto);
                if writer.sealed && writer.log.durable_index() == writer.log.last_index() {
                    // The seal frame is durable: the closed shard's file may now be closed
                    // while nobody reads it. (A reshard that fails unseals, and its next
                    // append pins the file again.)
                    writer.log.unpin_active();
                }
                if self.durability == Durability::Sync {
                    self.tail.send_modify(|state| {
                        if upto > state.visible_index {
                            state.visible_index = upto;
                            state.ts_last_ms = ts_last_ms;
                        }
                    });
                }
            }
            Err(error) => {
                // Never retry a failed fsync: the kernel may have dropped the dirty pages, so a
                // later success would prove nothing. Refuse writes until a restart recovers.
                tracing::error!(%error, "fsync failed; the shard log is poisoned");
                self.tail.send_modify(|state| state.poisoned = true);
            }
        }
    }

    /// Flushes synchronously (shutdown and tests).
    pub fn sync_now(&self) -> Result<(), LogError> {
        // A replicated shard's group syncs before it acknowledges anything.
        let Some(mut writer) = self.lock() else {
            return Ok(());
        };
        writer.log.sync()?;
        let upto = writer.log.last_index();
        let ts_last_ms = writer.ts_last_ms;
        self.tail.send_modify(|state| {
            if upto > state.visible_index {
                state.visible_index = upto;
                state.ts_last_ms = ts_last_ms;
            }
        });
        Ok(())
    }

    pub fn tail(&self) -> TailState {
        *self.tail.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<TailState> {
        self.tail.subscribe()
    }

    /// The first index still stored (retention may have purged older segments).
    pub fn first_index(&self) -> u64 {
        match self.lock() {
            Some(writer) => writer.log.first_index(),
            None => self.reader.as_ref().map_or(1, LogReader::first_index),
        }
    }

    /// The last index stored (written, synced or not).
    pub fn last_index(&self) -> u64 {
        match self.lock() {
            Some(writer) => writer.log.last_index(),
            None => self.tail().visible_index,
        }
    }

    /// First stored index and the highest index known to be fsynced, read together (what
    /// `crate::watermarks` records).
    pub fn marks(&self) -> (u64, u64) {
        match self.lock() {
            Some(writer) => (writer.log.first_index(), writer.log.durable_index()),
            None => (
                self.reader.as_ref().map_or(1, LogReader::first_index),
                self.tail().visible_index,
            ),
        }
    }

    /// Deletes whole sealed segments below `index` (finishing a retention pass a crash
    /// interrupted).
    pub fn purge_before(&self, index: u64) -> Result<(), LogError> {
        match self.lock() {
            Some(mut writer) => writer.log.purge_before(index),
            // A replicated shard's log is purged by its group.
            None => Ok(()),
        }
    }

    /// Visible entries from `from`, bounded by count and payload bytes.
    pub fn read(
        &self,
        from: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, LogError> {
        let reader = self.reader()?;
        let upto = self.tail().visible_index;
        if from > upto {
            return Ok(Vec::new());
        }
        reader.read(from, upto, max_entries, max_bytes)
    }

    /// First visible index whose arrival time is at or after `ts_ms`.
    pub fn find_by_timestamp(&self, ts_ms: u64) -> Result<Option<u64>, LogError> {
        let upto = self.tail().visible_index;
        Ok(self
            .reader()?
            .find_by_timestamp(ts_ms)?
            .filter(|index| *index <= upto))
    }

    /// Retention of a replicated shard's copy on this node, through its group (see
    /// [`ShardReplica::expire`]); nothing for a local log (see [`ShardLog::trim`]) or a
    /// shard this node holds no replica of.
    pub async fn expire(&self, cutoff_ms: u64, roll_before_ms: u64) -> Result<Option<u64>, String> {
        match &self.replica {
            Some(replica) if self.stored_here() => replica.expire(cutoff_ms, roll_before_ms).await,
            _ => Ok(None),
        }
    }

    /// Retention: rolls the active segment once it holds data older than `roll_age_ms`, and
    /// deletes sealed segments whose newest record is older than `cutoff_ms`. Before deleting
    /// anything it hands the new first index to `record_first`, which must make it durable
    /// (the node's watermarks); if that fails, nothing is deleted.
    pub fn trim(
        &self,
        cutoff_ms: u64,
        roll_before_ms: u64,
        record_first: impl FnOnce(u64) -> std::io::Result<()>,
    ) -> Result<u64, LogError> {
        // A replicated shard's log is trimmed through its group (`ShardLog::expire`).
        let Some(mut writer) = self.lock() else {
            return Ok(0);
        };
        let mut purge_below = 0;
        let segments = writer.log.segments();
        for segment in &segments {
            if segment.sealed && segment.ts_max_ms < cutoff_ms {
                purge_below = segment.last_index + 1;
            }
        }
        // A closed shard leaves whole once its data expires (`Node::expire_closed_shards`):
        // rolling it would only open its file and start an empty segment.
        let roll_candidate = segments.last().filter(|_| !writer.sealed);
        if let Some(active) = roll_candidate {
            let active_first_ts = self
                .reader()?
                .read(active.base_index, active.base_index, 1, 1)
                .ok()
                .and_then(|mut entries| entries.pop())
                .map(|entry| entry.meta.ts_first_ms);
            if let Some(first_ts) = active_first_ts {
                if !active.sealed
                    && active.last_index >= active.base_index
                    && first_ts < roll_before_ms
                {
                    writer.log.roll()?;
                }
            }
        }
        if purge_below > writer.log.first_index() {
            record_first(purge_below)?;
            writer.log.purge_before(purge_below)?;
            return Ok(purge_below);
        }
        Ok(0)
    }
}

/// The node-wide group-commit thread. Cloning is cheap; the thread ends when every clone is
/// dropped.
#[derive(Clone)]
pub struct Flusher {
    queue: mpsc::Sender<Arc<ShardLog>>,
}

impl Flusher {
    /// Starts the flusher. `linger` delays each round a little (async durability uses its
    /// interval); `Duration::ZERO` flushes as soon as anything is queued.
    pub fn start(linger: Duration) -> std::io::Result<Flusher> {
        let (queue, receiver) = mpsc::channel::<Arc<ShardLog>>();
        std::thread::Builder::new()
            .name("riffle-flusher".into())
            .spawn(move || Self::run(receiver, linger))?;
        Ok(Flusher { queue })
    }

    fn queue(&self, shard: Arc<ShardLog>) {
        // The receiver only goes away at process exit; a lost notification then is harmless.
        let _ = self.queue.send(shard);
    }

    fn run(receiver: mpsc::Receiver<Arc<ShardLog>>, linger: Duration) {
        let pool = SyncPool::default();
        while let Ok(first) = receiver.recv() {
            if !linger.is_zero() {
                std::thread::sleep(linger);
            }
            let mut batch = vec![first];
            while let Ok(shard) = receiver.try_recv() {
                if !batch.iter().any(|queued| Arc::ptr_eq(queued, &shard)) {
                    batch.push(shard);
                }
            }
            if batch.len() == 1 {
                batch[0].flush();
            } else {
                pool.flush_all(batch);
            }
        }
    }
}

/// Threads that fdatasync dirty shards in parallel (the device overlaps fsyncs of different
/// files). They are started on demand, up to [`SYNC_THREADS_MAX`], and kept: a round over
/// hundreds of shards used to spawn a thread per shard, which cost more than many of the
/// fsyncs themselves.
#[derive(Default)]
struct SyncPool {
    shared: Arc<SyncPoolShared>,
    threads: std::sync::atomic::AtomicUsize,
}

/// Parallel fsyncs at most; more dirty shards queue for a free thread.
const SYNC_THREADS_MAX: usize = 16;

#[derive(Default)]
struct SyncPoolShared {
    state: Mutex<SyncPoolState>,
    work: std::sync::Condvar,
    done: std::sync::Condvar,
}

#[derive(Default)]
struct SyncPoolState {
    queue: std::collections::VecDeque<Arc<ShardLog>>,
    /// Shards of the current round not flushed yet (queued or being flushed).
    pending: usize,
}

impl SyncPool {
    /// Flushes every shard of `batch`, in parallel, and returns when all are done.
    fn flush_all(&self, batch: Vec<Arc<ShardLog>>) {
        let wanted = batch.len().min(SYNC_THREADS_MAX);
        while self.threads.load(Ordering::Relaxed) < wanted {
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name("riffle-fsync".into())
                .spawn(move || SyncPool::work(&shared));
            if spawned.is_err() {
                break; // fewer threads only means less parallelism
            }
            self.threads.fetch_add(1, Ordering::Relaxed);
        }
        if self.threads.load(Ordering::Relaxed) == 0 {
            for shard in &batch {
                shard.flush();
            }
            return;
        }
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        state.pending += batch.len();
        state.queue.extend(batch);
        self.shared.work.notify_all();
        while state.pending > 0 {
            state = self
                .shared
                .done
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    fn work(shared: &SyncPoolShared) {
        let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let Some(shard) = state.queue.pop_front() else {
                state = shared.work.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            };
            drop(state);
            // A panicking flush must still count as done, or the round would never end and
            // every waiting write with it; the shard's own waiters then see no progress and
            // the next round tries again.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shard.flush()));
            state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
            state.pending -= 1;
            if state.pending == 0 {
                shared.done.notify_all();
            }
        }
    }
}

/// A frame's payload for `records`: the records back to back, after the sealed header when
/// `sealer` will seal them (the caller finishes the seal once the header is known).
fn encode_payload(
    records: &[NewRecord],
    sealer: Option<&Sealer<'_>>,
) -> Result<Vec<u8>, AppendError> {
    let capacity: usize = records.iter().map(record::encoded_len_max).sum();
    let mut payload = match sealer {
        None => Vec::with_capacity(capacity),
        Some(sealer) => {
            let mut payload = Vec::with_capacity(capacity + crypto::SEALED_OVERHEAD_BYTES);
            sealer.begin(&mut payload).map_err(AppendError::Encrypt)?;
            payload
        }
    };
    for new_record in records {
        record::encode(&mut payload, new_record, 0);
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    //! Group commit under the two runtimes the server and tests use: every append is
    //! acknowledged exactly when it is visible, concurrent waiters never lose a wake-up, and an
    //! append whose waiter is dropped still becomes durable and visible.

    use super::*;
    use bytes::Bytes;

    fn record(i: usize) -> NewRecord {
        NewRecord {
            partition_key: format!("key-{i}"),
            explicit_hash_key: None,
            data: Bytes::from(vec![i as u8; 16]),
        }
    }

    fn open(dir: &Path) -> Arc<ShardLog> {
        let flusher = Flusher::start(Duration::ZERO).unwrap();
        let files = FileCache::default();
        ShardLog::open(
            dir,
            LogOptions::default(),
            Durability::Sync,
            flusher,
            false,
            Expect::default(),
            &files,
        )
        .unwrap()
    }

    /// Many tasks append concurrently; each must see its own index acknowledged, and once all
    /// are done every index is visible and durable.
    async fn concurrent_appends_are_all_acknowledged(log: Arc<ShardLog>) {
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    let appended = log.append(&[record(i)], 1_000).await.unwrap();
                    // Acknowledged means visible to readers.
                    assert!(log.tail().visible_index >= appended.index);
                    appended.index
                })
            })
            .collect();
        let mut indexes = Vec::new();
        for task in tasks {
            indexes.push(task.await.unwrap());
        }
        indexes.sort_unstable();
        assert_eq!(indexes, (1..=64).collect::<Vec<u64>>());
        assert_eq!(log.tail().visible_index, 64);
        assert_eq!(log.lock().expect("a local log").log.durable_index(), 64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_waiters_on_a_multi_thread_runtime_are_all_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        concurrent_appends_are_all_acknowledged(open(dir.path())).await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_waiters_on_a_current_thread_runtime_are_all_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        concurrent_appends_are_all_acknowledged(open(dir.path())).await;
    }

    /// Appends to many shards at once make the flusher sync several shards per round, through
    /// its thread pool: every append is still acknowledged and durable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rounds_over_many_shards_acknowledge_every_append() {
        let dir = tempfile::tempdir().unwrap();
        let flusher = Flusher::start(Duration::ZERO).unwrap();
        let logs: Vec<Arc<ShardLog>> = (0..24)
            .map(|i| {
                let shard_dir = dir.path().join(i.to_string());
                ShardLog::open(
                    &shard_dir,
                    LogOptions::default(),
                    Durability::Sync,
                    flusher.clone(),
                    false,
                    Expect::default(),
                    &FileCache::default(),
                )
                .unwrap()
            })
            .collect();
        let tasks: Vec<_> = (0..240)
            .map(|i| {
                let log = Arc::clone(&logs[i % logs.len()]);
                tokio::spawn(async move { log.append(&[record(i)], 1_000).await.unwrap().index })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        for log in &logs {
            assert_eq!(log.tail().visible_index, 10);
            assert_eq!(log.lock().expect("a local log").log.durable_index(), 10);
        }
    }

    /// Once its seal frame is durable a closed shard's file belongs to the cache, which may
    /// close it; reads open it again, and so does a shard reopened as closed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sealed_shard_lets_the_cache_close_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = FileCache::new(4);
        let flusher = Flusher::start(Duration::ZERO).unwrap();
        let open = |sealed| {
            ShardLog::open(
                dir.path(),
                LogOptions::default(),
                Durability::Sync,
                flusher.clone(),
                sealed,
                Expect::default(),
                &files,
            )
            .unwrap()
        };
        let log = open(false);
        log.append(&[record(0)], 1_000).await.unwrap();
        assert_eq!(
            files.close_idle(Duration::ZERO),
            0,
            "an open shard's file is pinned"
        );
        let seal = log.seal(2_000).unwrap();
        log.wait_acknowledged(seal).await.unwrap();
        assert_eq!(
            files.close_idle(Duration::ZERO),
            1,
            "the sealed shard's file closes"
        );
        assert_eq!(log.read(1, 10, 1 << 20).unwrap().len(), 2);
        assert_eq!(
            files.open_count(),
            1,
            "a read opened it again, in the cache"
        );
        drop(log);
        files.close_idle(Duration::ZERO);

        let reopened = open(true);
        assert_eq!(files.close_idle(Duration::ZERO), 1);
        assert_eq!(reopened.read(1, 10, 1 << 20).unwrap().len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_append_whose_waiter_is_dropped_still_becomes_visible() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        let appended = log.append_nowait(&[record(0)], 1_000, None).unwrap();
        assert_eq!(
            log.tail().visible_index,
            0,
            "not durable yet, so not visible"
        );
        {
            let waiter = log.wait_acknowledged(appended);
            // Dropped before its first poll: the client hung up.
            drop(waiter);
        }
        let mut tail = log.subscribe();
        let state = tokio::time::timeout(
            Duration::from_secs(10),
            tail.wait_for(|state| state.visible_index >= appended.index),
        )
        .await
        .expect("the flusher must make a dropped append visible")
        .unwrap();
        assert!(!state.poisoned);
        assert_eq!(
            log.lock().expect("a local log").log.durable_index(),
            appended.index
        );
    }
}
