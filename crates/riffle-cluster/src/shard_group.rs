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
//! **Snapshots** hold no records: a shard's records are its log, which is only purged by
//! retention (whatever was purged is expired on every replica alike). The snapshot is the
//! applied log id, the membership and whether the shard is sealed; groups run with
//! openraft's snapshot policy `Never`, so openraft never purges a shard's log on its own.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::type_config::alias::{SnapshotMetaOf, SnapshotOf};
use openraft::{EntryPayload, OptionalSend, Raft};
use riffle_core::shard_log::TailState;
use riffle_log::LogOptions;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::flush::Flusher;
use crate::log_store::LogStore;
use crate::types::{frame_index, Applied, LogId, Response, RiffleRaft, StoredMembership};

/// A shard group's Raft handle.
pub type ShardRaft = Raft<RiffleRaft, ShardStateMachine>;

type ShardSnapshotMeta = SnapshotMetaOf<RiffleRaft>;
type ShardSnapshot = SnapshotOf<RiffleRaft, Bytes>;

#[derive(Debug, Default)]
struct Inner {
    applied: Option<LogId>,
    membership: StoredMembership,
    /// The frame index of the seal, once one is applied.
    sealed_at: Option<u64>,
    snapshot: Option<ShardSnapshot>,
}

/// What a snapshot holds (JSON).
#[derive(Serialize, Deserialize)]
struct SnapshotDoc {
    format: u32,
    sealed_at: Option<u64>,
}

/// Called with `(payload bytes, records)` of every data frame applied (the ON_DEMAND scaler
/// samples it through `ShardLog::note_applied`).
pub type AppliedCounter = Arc<dyn Fn(u64, u64) + Send + Sync>;

struct Shared {
    inner: Mutex<Inner>,
    tail: Arc<watch::Sender<TailState>>,
    counter: Mutex<Option<AppliedCounter>>,
}

/// The state machine of a shard group (see the module docs).
#[derive(Clone)]
pub struct ShardStateMachine {
    shared: Arc<Shared>,
}

impl ShardStateMachine {
    /// A state machine publishing to `tail`. It starts with nothing applied: openraft applies
    /// the committed entries again after a restart, which only moves the tail.
    pub fn new(tail: Arc<watch::Sender<TailState>>) -> ShardStateMachine {
        ShardStateMachine {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner::default()),
                tail,
                counter: Mutex::new(None),
            }),
        }
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
        let doc: SnapshotDoc = serde_json::from_slice(&snapshot).map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a shard snapshot received is not valid: {error}"),
            )
        })?;
        if doc.format != 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("shard snapshot format {} is not known", doc.format),
            ));
        }
        let frame = match &meta.last_log_id {
            Some(log_id) => frame_of(log_id)?,
            None => 0,
        };
        {
            let mut inner = self.inner();
            inner.applied = meta.last_log_id;
            inner.membership = meta.last_membership.clone();
            inner.sealed_at = doc.sealed_at;
            inner.snapshot = Some(Snapshot {
                meta: meta.clone(),
                snapshot,
            });
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
        let mut inner = self.machine.inner();
        let doc = SnapshotDoc {
            format: 1,
            sealed_at: inner.sealed_at,
        };
        let bytes = Bytes::from(serde_json::to_vec(&doc).map_err(io::Error::other)?);
        let snapshot = Snapshot {
            meta: ShardSnapshotMeta {
                last_log_id: inner.applied,
                last_membership: inner.membership.clone(),
            },
            snapshot: bytes,
        };
        inner.snapshot = Some(snapshot.clone());
        Ok(snapshot)
    }
}

/// openraft's configuration for shard groups: elections within a second of a leader's loss,
/// and no automatic snapshots (which would purge a shard's log, its data).
pub fn group_config(cluster_name: &str) -> io::Result<Arc<openraft::Config>> {
    config_with(cluster_name, openraft::SnapshotPolicy::Never)
}

/// openraft's configuration for the metadata group: as [`group_config`], but with a snapshot
/// (the catalogue) every 1,000 entries so its log stays short.
pub fn meta_config(cluster_name: &str) -> io::Result<Arc<openraft::Config>> {
    config_with(cluster_name, openraft::SnapshotPolicy::LogsSinceLast(1000))
}

fn config_with(
    cluster_name: &str,
    snapshot_policy: openraft::SnapshotPolicy,
) -> io::Result<Arc<openraft::Config>> {
    let config = openraft::Config {
        cluster_name: cluster_name.to_owned(),
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        snapshot_policy,
        max_payload_entries: 256,
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
    Ok((store, ShardStateMachine::new(tail)))
}
