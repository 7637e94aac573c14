//! A shard's replication group: the state machine over a shard whose Raft log **is** its
//! data log (see the crate docs), and what riffle-core appends through.
//!
//! The log holds the shard's frames at Raft index + 1, so a record's sequence number (built
//! from its frame index) is the same on every replica. Applying an entry only moves the
//! shard's published tail: readers read the committed frames straight from the log, up to
//! the applied index, skipping blank and membership frames as they skip seals. After a
//! `Seal` entry, data entries are answered [`Response::Sealed`] and never become readable
//! (the catalogue closes the shard at the seal's index), so the entry node routes them to
//! the children.
//!
//! **Snapshots** hold no records: a shard's records are its log. The snapshot is a log id,
//! the membership as of that entry and whether the shard was sealed by then, in the file
//! `snapshot` beside the segments (`len | crc32c | JSON`, like the vote file), and the same
//! bytes travel to a replica that needs them. Groups run with openraft's snapshot policy
//! `Never`: a snapshot is built only by **retention** ([`ShardRetention`]), *at* the last
//! entry it expires (not at the applied entry), and openraft then purges the log up to it.
//! So a replica that lags behind the purge point, or joins after it, installs that snapshot
//! and continues from the entry after it: what it skips is expired anyway, and every entry
//! still within retention reaches it through the log.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use openraft::async_runtime::WatchReceiver;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::type_config::alias::{SnapshotMetaOf, SnapshotOf};
use openraft::{EntryPayload, OptionalSend, Raft};
use riffle_core::shard_log::TailState;
use riffle_log::{LogOptions, LogReader};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::codec::MembershipDoc;
use crate::durable_file;
use crate::flush::Flusher;
use crate::log_store::LogStore;
use crate::types::{frame_index, Applied, LogId, Response, RiffleRaft, StoredMembership};
use crate::vote_file::LogIdDoc;

/// Name of the snapshot file in a shard's directory.
pub const SHARD_SNAPSHOT_FILE_NAME: &str = "snapshot";

/// A shard snapshot is a few hundred bytes; anything this large is damaged.
const SNAPSHOT_BYTES_MAX: usize = 1 << 20;

/// How long a retention pass waits for openraft to build the snapshot it asked for.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(5);

/// A shard group's Raft handle.
pub type ShardRaft = Raft<RiffleRaft, ShardStateMachine>;

type ShardSnapshotMeta = SnapshotMetaOf<RiffleRaft>;
type ShardSnapshot = SnapshotOf<RiffleRaft, Bytes>;

#[derive(Debug, Default)]
struct Inner {
    applied: Option<LogId>,
    membership: StoredMembership,
    /// The memberships applied since the snapshot, oldest first, after the snapshot's own:
    /// a snapshot built at an entry before the applied one takes the membership as of that
    /// entry from here.
    memberships: Vec<StoredMembership>,
    /// The frame index of the seal, once one is applied.
    sealed_at: Option<u64>,
    snapshot: Option<ShardSnapshot>,
    /// The Raft index retention wants the next snapshot built at (see [`ShardRetention`]).
    snapshot_at: Option<u64>,
}

/// What a snapshot holds (JSON, sealed with a length and a checksum).
#[derive(Serialize, Deserialize)]
struct SnapshotDoc {
    format: u32,
    sealed_at: Option<u64>,
    /// The last entry the snapshot covers (repeated from openraft's meta, so that the file
    /// alone restores the state machine after a restart).
    #[serde(default)]
    last_applied: Option<LogIdDoc>,
    #[serde(default)]
    membership: Option<MembershipAt>,
}

/// A membership and the log id of the entry that carried it.
#[derive(Serialize, Deserialize)]
struct MembershipAt {
    log_id: LogIdDoc,
    membership: MembershipDoc,
}

fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// The bytes of a snapshot as of `meta`.
fn encode_snapshot(meta: &ShardSnapshotMeta, sealed_at: Option<u64>) -> io::Result<Bytes> {
    let stored = &meta.last_membership;
    let membership = stored.log_id().as_ref().map(|log_id| MembershipAt {
        log_id: LogIdDoc::from(log_id),
        membership: MembershipDoc::of(stored.membership()),
    });
    let doc = SnapshotDoc {
        format: 1,
        sealed_at,
        last_applied: meta.last_log_id.as_ref().map(LogIdDoc::from),
        membership,
    };
    let body = serde_json::to_vec(&doc).map_err(io::Error::other)?;
    Ok(Bytes::from(durable_file::seal(&body)?))
}

/// What snapshot `bytes` hold: its meta and the seal's frame index.
fn decode_snapshot(bytes: &[u8]) -> Result<(ShardSnapshotMeta, Option<u64>), String> {
    let body = durable_file::unseal(bytes, SNAPSHOT_BYTES_MAX, "shard snapshot")?;
    let doc: SnapshotDoc = serde_json::from_slice(body).map_err(|error| error.to_string())?;
    if doc.format != 1 {
        return Err(format!("format {} (this build reads 1)", doc.format));
    }
    let last_membership = match doc.membership {
        Some(at) => StoredMembership::new(
            Some(LogId::from(at.log_id)),
            at.membership.into_membership()?,
        ),
        None => StoredMembership::default(),
    };
    let meta = ShardSnapshotMeta {
        last_log_id: doc.last_applied.map(LogId::from),
        last_membership,
    };
    Ok((meta, doc.sealed_at))
}

/// Called with `(payload bytes, records)` of every data frame applied (the ON_DEMAND scaler
/// samples it through `ShardLog::note_applied`).
pub type AppliedCounter = Arc<dyn Fn(u64, u64) + Send + Sync>;

struct Shared {
    inner: Mutex<Inner>,
    tail: Arc<watch::Sender<TailState>>,
    counter: Mutex<Option<AppliedCounter>>,
    /// The shard's directory, where the snapshot file lives.
    dir: PathBuf,
    /// Held while the snapshot file is replaced, so an older snapshot never replaces a
    /// newer one.
    writing: Mutex<()>,
    /// Reads the shard's log (a snapshot built before the applied entry reads the log id
    /// of the entry it is built at).
    reader: LogReader,
    /// Where retention asks the log store to seal the active segment
    /// ([`LogStore::roll_requests`]).
    roll: Arc<AtomicU64>,
}

/// The state machine of a shard group (see the module docs).
#[derive(Clone)]
pub struct ShardStateMachine {
    shared: Arc<Shared>,
}

impl ShardStateMachine {
    /// The state machine of the shard whose directory is `dir`, publishing to `tail`: the
    /// snapshot file's state if there is one (openraft then applies the committed entries
    /// after it again, which only moves the tail), else nothing applied. A damaged snapshot
    /// file is refused: the log may be purged up to it.
    pub fn open(
        dir: &Path,
        reader: LogReader,
        roll: Arc<AtomicU64>,
        tail: Arc<watch::Sender<TailState>>,
    ) -> io::Result<ShardStateMachine> {
        durable_file::remove_leftover(dir, SHARD_SNAPSHOT_FILE_NAME)?;
        let path = dir.join(SHARD_SNAPSHOT_FILE_NAME);
        let mut inner = Inner::default();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let (meta, sealed_at) = decode_snapshot(&bytes).map_err(|reason| {
                    invalid_data(format!(
                        "shard snapshot {} is damaged ({reason}); refusing to open the shard, \
                         whose log may be purged up to it",
                        path.display()
                    ))
                })?;
                inner.applied = meta.last_log_id;
                inner.membership = meta.last_membership.clone();
                inner.memberships = vec![meta.last_membership.clone()];
                inner.sealed_at = sealed_at;
                inner.snapshot = Some(Snapshot {
                    meta,
                    snapshot: Bytes::from(bytes),
                });
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        let machine = ShardStateMachine {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner::default()),
                tail,
                counter: Mutex::new(None),
                dir: dir.to_path_buf(),
                writing: Mutex::new(()),
                reader,
                roll,
            }),
        };
        let applied = inner.applied;
        *machine.inner() = inner;
        if let Some(log_id) = applied {
            machine.publish(frame_of(&log_id)?, 0);
        }
        Ok(machine)
    }

    /// The last entry applied (or covered by the snapshot installed).
    pub fn applied(&self) -> Option<LogId> {
        self.inner().applied
    }

    /// The meta of the current snapshot, if there is one.
    pub fn snapshot_meta(&self) -> Option<ShardSnapshotMeta> {
        self.inner()
            .snapshot
            .as_ref()
            .map(|snapshot| snapshot.meta.clone())
    }

    /// Makes `snapshot` the current one and writes its file, unless a snapshot as new is
    /// already current.
    fn keep_snapshot(&self, snapshot: &ShardSnapshot) -> io::Result<bool> {
        let _writing = self
            .shared
            .writing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self
            .inner()
            .snapshot
            .as_ref()
            .and_then(|current| current.meta.last_log_id);
        if current.is_some() && current >= snapshot.meta.last_log_id {
            return Ok(false);
        }
        durable_file::replace(
            &self.shared.dir,
            SHARD_SNAPSHOT_FILE_NAME,
            &snapshot.snapshot,
        )?;
        let mut inner = self.inner();
        inner.snapshot = Some(snapshot.clone());
        // Memberships the snapshot covers are no longer needed, but for the last of them.
        if let Some(at) = snapshot.meta.last_log_id {
            let covered = inner
                .memberships
                .iter()
                .filter(|membership| membership.log_id().is_some_and(|id| id.index <= at.index))
                .count();
            if covered > 1 {
                inner.memberships.drain(..covered - 1);
            }
        }
        Ok(true)
    }

    /// Counts what is applied from now on.
    pub fn set_counter(&self, counter: AppliedCounter) {
        *self
            .shared
            .counter
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(counter);
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, frame: u64, ts_ms: u64) {
        self.shared.tail.send_modify(|state| {
            if frame > state.visible_index {
                state.visible_index = frame;
                if ts_ms > 0 {
                    state.ts_last_ms = state.ts_last_ms.max(ts_ms);
                }
            }
        });
    }
}

fn frame_of(log_id: &LogId) -> io::Result<u64> {
    frame_index(log_id.index).ok_or_else(|| io::Error::other("Raft index beyond any log"))
}

impl RaftStateMachine<RiffleRaft> for ShardStateMachine {
    type SnapshotData = Bytes;
    type SnapshotBuilder = ShardSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let inner = self.inner();
        Ok((inner.applied, inner.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<RiffleRaft>, io::Error>> + Unpin + OptionalSend,
    {
        let counter = self
            .shared
            .counter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let log_id = entry.log_id;
            let frame = frame_of(&log_id)?;
            let mut ts_ms = 0;
            let response = {
                let mut inner = self.inner();
                let response = match &entry.payload {
                    EntryPayload::Blank => Response::Appended(Applied { frame_index: frame }),
                    EntryPayload::Membership(membership) => {
                        inner.membership = StoredMembership::new(Some(log_id), membership.clone());
                        let applied = inner.membership.clone();
                        inner.memberships.push(applied);
                        Response::Appended(Applied { frame_index: frame })
                    }
                    EntryPayload::Normal(data) => {
                        if inner.sealed_at.is_some() {
                            Response::Sealed
                        } else {
                            if data.kind == crate::types::PayloadKind::Seal {
                                inner.sealed_at = Some(frame);
                            } else if let Some(counter) = &counter {
                                counter(data.payload.len() as u64, u64::from(data.record_count));
                            }
                            ts_ms = data.ts_max_ms;
                            Response::Appended(Applied { frame_index: frame })
                        }
                    }
                };
                inner.applied = Some(log_id);
                response
            };
            self.publish(frame, ts_ms);
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        ShardSnapshotBuilder {
            machine: self.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &ShardSnapshotMeta,
        snapshot: Bytes,
    ) -> Result<(), io::Error> {
        let (_, sealed_at) = decode_snapshot(&snapshot).map_err(|reason| {
            invalid_data(format!("a shard snapshot received is not valid: {reason}"))
        })?;
        let frame = match &meta.last_log_id {
            Some(log_id) => frame_of(log_id)?,
            None => 0,
        };
        // The file is rewritten from openraft's meta, so that it always says what openraft
        // was told; it is durable before openraft purges the log up to it.
        let bytes = encode_snapshot(meta, sealed_at)?;
        self.keep_snapshot(&Snapshot {
            meta: meta.clone(),
            snapshot: bytes,
        })?;
        {
            let mut inner = self.inner();
            inner.applied = meta.last_log_id;
            inner.membership = meta.last_membership.clone();
            inner.memberships = vec![meta.last_membership.clone()];
            inner.sealed_at = sealed_at;
        }
        self.publish(frame, 0);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<ShardSnapshot>, io::Error> {
        Ok(self.inner().snapshot.clone())
    }
}

/// Builds a shard snapshot (metadata only, see the module docs).
pub struct ShardSnapshotBuilder {
    machine: ShardStateMachine,
}

impl RaftSnapshotBuilder<RiffleRaft> for ShardSnapshotBuilder {
    type SnapshotData = Bytes;

    async fn build_snapshot(&mut self) -> Result<ShardSnapshot, io::Error> {
        let (meta, sealed_at) = {
            let mut inner = self.machine.inner();
            let wanted = inner.snapshot_at.take();
            // At the entry retention asked for, if it is applied; else at the applied one.
            let at = match (wanted, inner.applied) {
                (Some(index), Some(applied)) if index < applied.index => {
                    let membership = inner
                        .memberships
                        .iter()
                        .rev()
                        .find(|membership| membership.log_id().is_some_and(|id| id.index <= index))
                        .cloned();
                    // The log id of the entry at `index`: the membership's own if it
                    // carried it, else read below (outside the lock).
                    Some((index, membership))
                }
                _ => None,
            };
            match at {
                None => (
                    ShardSnapshotMeta {
                        last_log_id: inner.applied,
                        last_membership: inner.membership.clone(),
                    },
                    inner.sealed_at,
                ),
                Some((index, membership)) => {
                    let Some(membership) = membership else {
                        return Err(io::Error::other(format!(
                            "no membership known as of Raft index {index}"
                        )));
                    };
                    let frame = frame_index(index)
                        .ok_or_else(|| io::Error::other("Raft index beyond any log"))?;
                    let Some(log_id) = self.log_id_at(index)? else {
                        return Err(io::Error::other(format!(
                            "the entry at Raft index {index} is not in the log"
                        )));
                    };
                    (
                        ShardSnapshotMeta {
                            last_log_id: Some(log_id),
                            last_membership: membership,
                        },
                        inner.sealed_at.filter(|sealed| *sealed <= frame),
                    )
                }
            }
        };
        let snapshot = Snapshot {
            snapshot: encode_snapshot(&meta, sealed_at)?,
            meta,
        };
        if self.machine.keep_snapshot(&snapshot)? {
            return Ok(snapshot);
        }
        // A newer snapshot is current (installed meanwhile): that is the one to report.
        Ok(self.machine.inner().snapshot.clone().unwrap_or(snapshot))
    }
}

impl ShardSnapshotBuilder {
    /// The log id of the entry at Raft index `index`, read from the log.
    fn log_id_at(&self, index: u64) -> io::Result<Option<LogId>> {
        let reader = &self.machine.shared.reader;
        let frame =
            frame_index(index).ok_or_else(|| io::Error::other("Raft index beyond any log"))?;
        let mut frames = reader
            .read(frame, frame, 1, usize::MAX)
            .map_err(crate::log_store::log_error)?;
        match frames.pop() {
            Some(entry) if entry.index == frame => Ok(Some(crate::codec::decode(entry)?.log_id)),
            _ => Ok(None),
        }
    }
}

/// Retention of one replica of a shard: each replica expires its own log by its own clock,
/// as a single node does, in whole segments.
///
/// A pass finds the oldest segments whose every entry arrived before the cutoff (a prefix
/// of the log: it stops at the first segment holding anything newer), asks openraft for a
/// snapshot **at** the last of their entries (never past the applied one), and has openraft
/// purge the log up to it; the [`LogStore`] then deletes those segments. openraft, told of
/// the purge, sends a replica that needs an entry at or before it the snapshot instead,
/// after which that replica continues from the entry after the purge point: what it skipped
/// had expired. It also asks the store to seal the active segment once that segment's first
/// entry is older than `roll_before_ms`, so that a shard written slowly still expires.
#[derive(Clone)]
pub struct ShardRetention {
    raft: ShardRaft,
    machine: ShardStateMachine,
}

impl ShardRetention {
    /// Retention over the group `raft` whose state machine is `machine`.
    pub fn new(raft: ShardRaft, machine: ShardStateMachine) -> ShardRetention {
        ShardRetention { raft, machine }
    }

    /// One pass (see the type's docs): entries that arrived before `cutoff_ms` expire in
    /// whole segments. Returns the last frame index purged (the log continues after it), if
    /// this pass purged anything (the purge itself may follow a little later on a leader, which
    /// waits for replication reading those entries to finish).
    pub async fn expire(&self, cutoff_ms: u64, roll_before_ms: u64) -> io::Result<Option<u64>> {
        let shared = &self.machine.shared;
        let reader = &shared.reader;
        let segments = reader.segments();
        let mut through = None;
        for segment in &segments {
            if segment.last_index < segment.base_index || segment.ts_max_ms >= cutoff_ms {
                break;
            }
            through = Some(segment.last_index);
        }
        if let Some(active) = segments.last() {
            let expires_whole = through == Some(active.last_index);
            if !expires_whole && active.last_index >= active.base_index {
                // The first entry with a time: blank and membership entries carry none (0),
                // and a leader's term starts with one.
                let first = reader
                    .read(active.base_index, active.last_index, 64, 1 << 20)
                    .map_err(crate::log_store::log_error)?
                    .iter()
                    .map(|entry| entry.meta.ts_first_ms)
                    .find(|ts| *ts > 0)
                    .unwrap_or(0);
                if first > 0 && first < roll_before_ms {
                    shared.roll.store(active.base_index, Ordering::Release);
                }
            }
        }
        let (Some(through), Some(applied)) = (through, self.machine.applied()) else {
            return Ok(None);
        };
        // Raft index = frame index - 1; never past what this replica applied.
        let index = through.saturating_sub(1).min(applied.index);
        let purged = self.raft.metrics().borrow_watched().purged;
        if purged.is_some_and(|purged| purged.index >= index) {
            return Ok(None);
        }
        let covered = |snapshot: Option<LogId>| snapshot.is_some_and(|id| id.index >= index);
        if !covered(
            self.machine
                .snapshot_meta()
                .and_then(|meta| meta.last_log_id),
        ) {
            self.machine.inner().snapshot_at = Some(index);
            self.raft
                .trigger()
                .snapshot()
                .await
                .map_err(|error| io::Error::other(error.to_string()))?;
            self.raft
                .wait(Some(SNAPSHOT_WAIT))
                .metrics(
                    |metrics| covered(metrics.snapshot),
                    "a snapshot at the retention point",
                )
                .await
                .map_err(|error| io::Error::other(error.to_string()))?;
        }
        self.raft
            .trigger()
            .purge_log(index)
            .await
            .map_err(|error| io::Error::other(error.to_string()))?;
        Ok(frame_index(index))
    }
}

/// openraft's configuration for shard groups: elections within a second of a leader's loss,
/// no automatic snapshots (a shard's log is its data: only retention builds a snapshot), and
/// a purge right up to each snapshot (retention builds it exactly where the log may go).
pub fn group_config(cluster_name: &str) -> io::Result<Arc<openraft::Config>> {
    config_with(cluster_name, openraft::SnapshotPolicy::Never, 0)
}

/// openraft's configuration for the metadata group: as [`group_config`], but with a snapshot
/// (the catalogue) every 1,000 entries so its log stays short.
pub fn meta_config(cluster_name: &str) -> io::Result<Arc<openraft::Config>> {
    config_with(
        cluster_name,
        openraft::SnapshotPolicy::LogsSinceLast(1000),
        1000,
    )
}

fn config_with(
    cluster_name: &str,
    snapshot_policy: openraft::SnapshotPolicy,
    max_in_snapshot_log_to_keep: u64,
) -> io::Result<Arc<openraft::Config>> {
    let config = openraft::Config {
        cluster_name: cluster_name.to_owned(),
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        snapshot_policy,
        max_in_snapshot_log_to_keep,
        max_payload_entries: 256,
        // Off: a leader that restarts must win an election in a new term, as in standard
        // Raft. With openraft's default (on), a leader that comes back before anyone else
        // campaigns leads the same term again; if its crash, or a failed fsync, lost entries
        // it had already sent to a follower, it writes other entries under the same log ids
        // (term, leader, index), the follower keeps its old ones (the ids match, so openraft
        // sees no conflict) and counts towards the quorum of the new ones: the replicas
        // diverge and an acknowledged record can be missing from, or replaced on, a replica.
        // The simulator found it (riffle-sim's regression seeds 9 and 254, which fail again
        // with it on). The cost is one election (0.5-1 s) after a leader's restart.
        enable_leader_restore: Some(false),
        ..Default::default()
    };
    config
        .validate()
        .map(Arc::new)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error.to_string()))
}

/// Opens the Raft log of a shard in `dir` and a state machine that publishes to `tail`.
pub fn open_shard_storage(
    dir: &Path,
    options: LogOptions,
    flusher: Arc<dyn Flusher>,
    tail: Arc<watch::Sender<TailState>>,
) -> io::Result<(LogStore, ShardStateMachine)> {
    let store = LogStore::open(dir, options, flusher)?;
    let machine = ShardStateMachine::open(
        dir,
        store.reader().log_reader(),
        store.roll_requests(),
        tail,
    )?;
    // Entries are purged only up to a snapshot, which is durable first (see the module
    // docs): a log purged beyond the snapshot lacks entries that no snapshot holds.
    if let Some(purged) = store.last_purged() {
        let covered = machine.snapshot_meta().and_then(|meta| meta.last_log_id);
        if covered.map(|log_id| log_id.index) < Some(purged.index) {
            return Err(invalid_data(format!(
                "the shard log in {} is purged up to Raft index {} but {}",
                dir.display(),
                purged.index,
                match covered {
                    Some(log_id) => format!("its snapshot covers only up to {}", log_id.index),
                    None => "it has no snapshot".to_string(),
                }
            )));
        }
    }
    Ok((store, machine))
}
