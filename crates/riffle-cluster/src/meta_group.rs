//! The metadata group: the Raft group that replicates the catalogue.
//!
//! Its log is a [`LogStore`] in `DATA/meta/`; its state machine, [`MetaStateMachine`],
//! applies each committed entry's [`Command`] to a [`CatalogueState`] in log order and
//! answers the proposer with the catalogue's verdict ([`Response::Catalogue`]); its snapshot
//! is the catalogue's `meta.json` document plus every stream's version, kept in
//! `DATA/meta/snapshot` (see [`crate::meta_snapshot`]).
//!
//! ```text
//! DATA/meta/
//!   vote                        the group's vote, committed and purged log ids
//!   snapshot                    the last snapshot (catalogue, versions, applied id, membership)
//!   00000000000000000001.log    the group's Raft log: frame i = Raft entry i - 1
//! ```
//!
//! A command travels as the payload of a `Data` frame ([`command_payload`]): riffle's JSON
//! envelope `{"format":1,"command":...}` around the command's serde form. The state machine
//! decodes it when it applies the entry. An entry it cannot decode (a newer riffle's command,
//! or a bug) stops the group on that node with an error naming the entry, rather than being
//! skipped or rejected: skipping would let this node's catalogue silently differ from a node
//! that understood it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use openraft::entry::RaftEntry;
use openraft::error::{ClientWriteError, RaftError};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::type_config::alias::{EntryPayloadOf, SnapshotOf};
use openraft::{EntryPayload, OptionalSend, Raft};
use riffle_core::catalogue::{Applied as CatalogueApplied, CatalogueState, Command, Rejection};
use riffle_log::LogOptions;
use serde::{Deserialize, Serialize};

use crate::flush::Flusher;
use crate::log_store::LogStore;
use crate::meta_snapshot::{self, MetaSnapshotMeta};
use crate::types::{
    frame_index, Applied, FramePayload, LogId, PayloadKind, Response, RiffleRaft, StoredMembership,
};

/// The metadata group's directory under the data directory.
pub const META_DIR_NAME: &str = "meta";

/// A running metadata group: openraft's handle over a [`MetaStateMachine`].
pub type MetaRaft = Raft<RiffleRaft, MetaStateMachine>;

/// A snapshot of the metadata group: its meta and the [snapshot file's](crate::meta_snapshot)
/// bytes, which are what a leader ships to a follower.
pub type MetaSnapshot = SnapshotOf<RiffleRaft, Bytes>;

/// Version of the command envelope this crate writes and reads.
const COMMAND_FORMAT: u32 = 1;

#[derive(Serialize)]
struct CommandOut<'a> {
    format: u32,
    command: &'a Command,
}

#[derive(Deserialize)]
struct CommandIn {
    format: u32,
    command: Command,
}

/// The application data that proposes `command` to the metadata group (`client_write`).
pub fn command_payload(command: &Command) -> io::Result<FramePayload> {
    let payload = serde_json::to_vec(&CommandOut {
        format: COMMAND_FORMAT,
        command,
    })
    .map_err(io::Error::other)?;
    Ok(FramePayload {
        kind: PayloadKind::Records,
        flags: 0,
        record_count: 0,
        ts_first_ms: 0,
        ts_max_ms: 0,
        payload: Bytes::from(payload),
    })
}

/// The command a metadata entry's data holds; the reason if it holds none this build knows.
pub fn decode_command(data: &FramePayload) -> Result<Command, String> {
    if data.kind != PayloadKind::Records {
        return Err(format!("a {:?} entry, not a command", data.kind));
    }
    let envelope: CommandIn =
        serde_json::from_slice(&data.payload).map_err(|error| error.to_string())?;
    if envelope.format != COMMAND_FORMAT {
        return Err(format!(
            "command format {} (this build reads {COMMAND_FORMAT})",
            envelope.format
        ));
    }
    Ok(envelope.command)
}

/// Why [`propose`] got no verdict from the catalogue.
#[derive(Debug)]
pub enum ProposeError {
    /// The command could not be serialized.
    Encode(io::Error),
    /// openraft did not commit it: this node is not the leader (`ForwardToLeader` names the
    /// one to ask), a membership change is in progress, or the group stopped.
    Raft(RaftError<RiffleRaft, ClientWriteError<RiffleRaft>>),
    /// The group answered with something other than a catalogue verdict, which its state
    /// machine never does.
    Unexpected(Response),
}

impl fmt::Display for ProposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProposeError::Encode(error) => write!(f, "cannot encode the command: {error}"),
            ProposeError::Raft(error) => write!(f, "the metadata group refused: {error}"),
            ProposeError::Unexpected(response) => {
                write!(f, "the metadata group answered {response:?}")
            }
        }
    }
}

impl std::error::Error for ProposeError {}

/// Proposes `command` through `raft`, which must be the leader, and waits for it to be
/// committed and applied there: the answer is the catalogue's verdict, which every node
/// reached alike (a [`Rejection`] included).
pub async fn propose(
    raft: &MetaRaft,
    command: &Command,
) -> Result<Result<CatalogueApplied, Rejection>, ProposeError> {
    let data = command_payload(command).map_err(ProposeError::Encode)?;
    let written = raft.client_write(data).await.map_err(ProposeError::Raft)?;
    match written.data {
        Response::Catalogue(verdict) => Ok(verdict),
        other => Err(ProposeError::Unexpected(other)),
    }
}

/// Opens the metadata group's storage in `data_dir/meta/`: its Raft log and its state
/// machine, restored from the snapshot file if there is one.
///
/// Refused (`InvalidData`) when the log was purged beyond the snapshot (the snapshot file
/// was lost or replaced by an older one): the entries between are in neither, so the
/// catalogue cannot be rebuilt.
pub fn open_meta_group(
    data_dir: &Path,
    options: LogOptions,
    flusher: Arc<dyn Flusher>,
) -> io::Result<(LogStore, MetaStateMachine)> {
    let dir = data_dir.join(META_DIR_NAME);
    let store = LogStore::open(&dir, options, flusher)?;
    let machine = MetaStateMachine::open(&dir)?;
    if let Some(purged) = store.last_purged() {
        let snapshot_index = machine.view().applied().map(|log_id| log_id.index);
        if snapshot_index < Some(purged.index) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the metadata log in {} is purged up to Raft index {} but {}: the \
                     catalogue's entries up to there are lost; refusing to start",
                    dir.display(),
                    purged.index,
                    match snapshot_index {
                        Some(index) => format!("the snapshot holds only up to {index}"),
                        None => "there is no snapshot".to_string(),
                    }
                ),
            ));
        }
    }
    Ok((store, machine))
}

/// What the state machine holds.
#[derive(Debug)]
struct Inner {
    catalogue: CatalogueState,
    applied: Option<LogId>,
    membership: StoredMembership,
    /// The snapshot the file holds.
    snapshot: Option<MetaSnapshot>,
}

/// The shared state behind a [`MetaStateMachine`], its snapshot builders and views.
struct Shared {
    dir: PathBuf,
    inner: RwLock<Inner>,
    /// Held while the snapshot file is written, so an older snapshot never replaces a newer
    /// one (a builder may run beside an install).
    file: Mutex<()>,
    /// Called with the catalogue after each applied batch and installed snapshot, before
    /// `applied_index` moves (the node's reconcile: `Node::apply_catalogue`).
    hook: Mutex<Option<CatalogueHook>>,
    /// The Raft index applied (and handed to the hook) so far, for proposers that wait for
    /// this node to have applied their command.
    applied_index: tokio::sync::watch::Sender<u64>,
}

/// What [`MetaStateMachine::set_hook`] takes.
pub type CatalogueHook = Arc<
    dyn Fn(CatalogueState) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The metadata group's state machine (openraft's `RaftStateMachine`).
///
/// The state starts as an empty catalogue (the same on every node, as a replicated state
/// machine's must) or as the snapshot file in the group's directory, and changes only by
/// applying committed entries or installing a snapshot.
#[derive(Debug, Clone)]
pub struct MetaStateMachine {
    shared: Arc<Shared>,
}

/// A read-only handle on a [`MetaStateMachine`]'s state, for the node's readers: cheap to
/// clone, and it sees every entry as soon as it is applied.
#[derive(Debug, Clone)]
pub struct MetaView {
    shared: Arc<Shared>,
}

impl MetaView {
    /// Waits until this node has applied (and reconciled) Raft index `index`.
    pub async fn wait_applied(&self, index: u64) {
        let mut applied = self.shared.applied_index.subscribe();
        let _ = applied.wait_for(|applied| *applied >= index).await;
    }

    /// Runs `read` on the current catalogue.
    pub fn read<T>(&self, read: impl FnOnce(&CatalogueState) -> T) -> T {
        read(&self.shared.read().catalogue)
    }

    /// A copy of the current catalogue.
    pub fn catalogue(&self) -> CatalogueState {
        self.read(CatalogueState::clone)
    }

    /// The log id of the last entry applied (or of the snapshot installed).
    pub fn applied(&self) -> Option<LogId> {
        self.shared.read().applied
    }

    /// The membership as of the last applied entry.
    pub fn membership(&self) -> StoredMembership {
        self.shared.read().membership.clone()
    }

    /// The meta of the snapshot in the group's directory, if any.
    pub fn snapshot_meta(&self) -> Option<MetaSnapshotMeta> {
        self.shared
            .read()
            .snapshot
            .as_ref()
            .map(|snapshot| snapshot.meta.clone())
    }
}

impl MetaStateMachine {
    /// The state machine of the metadata group whose directory is `dir`: the snapshot file's
    /// state if there is one, else an empty catalogue. A damaged snapshot file is refused.
    pub fn open(dir: &Path) -> io::Result<MetaStateMachine> {
        let (catalogue, applied, membership, snapshot) = match meta_snapshot::read(dir)? {
            Some((bytes, decoded)) => (
                decoded.state,
                decoded.meta.last_log_id,
                decoded.meta.last_membership.clone(),
                Some(Snapshot {
                    meta: decoded.meta,
                    snapshot: bytes,
                }),
            ),
            // The empty catalogue every node starts from: no token key either, since a
            // node's own random one would differ from its peers'.
            None => (
                CatalogueState::new(String::new()),
                None,
                StoredMembership::default(),
                None,
            ),
        };
        Ok(MetaStateMachine {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                inner: RwLock::new(Inner {
                    catalogue,
                    applied,
                    membership,
                    snapshot,
                }),
                file: Mutex::new(()),
                hook: Mutex::new(None),
                applied_index: tokio::sync::watch::channel(0).0,
            }),
        })
    }

    /// Sets the hook called with the catalogue after each applied batch (see `Shared::hook`).
    pub fn set_hook(&self, hook: CatalogueHook) {
        *self
            .shared
            .hook
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(hook);
    }

    /// Runs the hook on the current catalogue and publishes the applied index.
    async fn applied(&self) {
        let hook = self
            .shared
            .hook
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (catalogue, index) = {
            let inner = self.shared.read();
            (
                inner.catalogue.clone(),
                inner.applied.map_or(0, |log_id| log_id.index),
            )
        };
        if let Some(hook) = hook {
            hook(catalogue).await;
        }
        self.shared.applied_index.send_modify(|applied| {
            *applied = (*applied).max(index);
        });
    }

    /// A read-only handle on the state, which stays valid once the state machine is handed
    /// to openraft.
    pub fn view(&self) -> MetaView {
        MetaView {
            shared: self.shared.clone(),
        }
    }

    /// Applies one entry and returns what its proposer is told.
    fn apply_entry(
        &self,
        log_id: LogId,
        payload: &EntryPayloadOf<RiffleRaft>,
    ) -> io::Result<Response> {
        let appended = || {
            frame_index(log_id.index)
                .map(|frame_index| Response::Appended(Applied { frame_index }))
                .ok_or_else(|| io::Error::other("Raft index beyond any log"))
        };
        let mut inner = self.shared.write();
        let response = match payload {
            EntryPayload::Blank => appended()?,
            EntryPayload::Membership(membership) => {
                inner.membership = StoredMembership::new(Some(log_id), membership.clone());
                appended()?
            }
            EntryPayload::Normal(data) => {
                let command = decode_command(data).map_err(|reason| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "metadata entry at Raft index {} holds no command this riffle can \
                             apply ({reason}); stopping rather than letting this node's \
                             catalogue differ from its peers'",
                            log_id.index
                        ),
                    )
                })?;
                Response::Catalogue(inner.catalogue.apply(&command))
            }
        };
        inner.applied = Some(log_id);
        Ok(response)
    }
}

/// Builds a snapshot of a [`MetaStateMachine`] as it is when `build_snapshot` runs.
#[derive(Debug)]
pub struct MetaSnapshotBuilder {
    shared: Arc<Shared>,
}

impl RaftSnapshotBuilder<RiffleRaft> for MetaSnapshotBuilder {
    type SnapshotData = Bytes;

    async fn build_snapshot(&mut self) -> Result<MetaSnapshot, io::Error> {
        let _file = self
            .shared
            .file
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (meta, catalogue) = {
            let inner = self.shared.read();
            if let Some(current) = &inner.snapshot {
                if current.meta.last_log_id.map(|log_id| log_id.index)
                    >= inner.applied.map(|log_id| log_id.index)
                {
                    // Nothing applied since (or a newer snapshot was installed meanwhile).
                    return Ok(current.clone());
                }
            }
            let meta = MetaSnapshotMeta {
                last_log_id: inner.applied,
                last_membership: inner.membership.clone(),
            };
            (meta, inner.catalogue.clone())
        };
        // Encoding and the fsyncs happen outside the state lock: applying goes on meanwhile.
        let bytes = meta_snapshot::encode(&meta, &catalogue)?;
        meta_snapshot::write(&self.shared.dir, &bytes)?;
        let snapshot = Snapshot {
            meta,
            snapshot: bytes,
        };
        self.shared.write().snapshot = Some(snapshot.clone());
        Ok(snapshot)
    }
}

impl RaftStateMachine<RiffleRaft> for MetaStateMachine {
    type SnapshotData = Bytes;
    type SnapshotBuilder = MetaSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let inner = self.shared.read();
        Ok((inner.applied, inner.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<RiffleRaft>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let response = self.apply_entry(entry.log_id(), &entry.payload)?;
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        self.applied().await;
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        MetaSnapshotBuilder {
            shared: self.shared.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &MetaSnapshotMeta,
        snapshot: Bytes,
    ) -> Result<(), io::Error> {
        let decoded = meta_snapshot::decode(&snapshot).map_err(|reason| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the metadata snapshot received is not valid ({reason})"),
            )
        })?;
        if decoded.meta != *meta {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the metadata snapshot received holds {:?} but was sent as {:?}",
                    decoded.meta, meta
                ),
            ));
        }
        {
            let _file = self
                .shared
                .file
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Durable first: openraft purges the log up to the snapshot once this returns.
            meta_snapshot::write(&self.shared.dir, &snapshot)?;
            let mut inner = self.shared.write();
            inner.catalogue = decoded.state;
            inner.applied = meta.last_log_id;
            inner.membership = meta.last_membership.clone();
            inner.snapshot = Some(Snapshot {
                meta: meta.clone(),
                snapshot,
            });
        }
        self.applied().await;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<MetaSnapshot>, io::Error> {
        Ok(self.shared.read().snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::impls::leader_id_adv::LeaderId;
    use riffle_core::meta::AccountMeta;

    use super::*;
    use crate::types::{ClusterNode, Membership};

    fn log_id(index: u64) -> LogId {
        LogId::new(
            LeaderId {
                term: 1,
                node_id: 1,
            },
            index,
        )
    }

    fn put_account() -> Command {
        Command::PutAccount {
            account: "000000000000".into(),
            meta: AccountMeta::default(),
        }
    }

    #[test]
    fn commands_travel_in_an_envelope_and_foreign_data_is_named() {
        let command = put_account();
        let data = command_payload(&command).unwrap();
        assert_eq!(data.kind, PayloadKind::Records);
        assert!(std::str::from_utf8(&data.payload)
            .unwrap()
            .starts_with("{\"format\":1,\"command\":"));
        assert_eq!(decode_command(&data), Ok(command));

        let with = |kind, payload: &'static [u8]| FramePayload {
            kind,
            payload: Bytes::from_static(payload),
            ..data.clone()
        };
        let newer = br#"{"format":2,"command":{"FinishRemoving":{"dirs":[]}}}"#;
        assert!(decode_command(&with(PayloadKind::Records, newer))
            .unwrap_err()
            .contains("format 2"));
        let unknown = br#"{"format":1,"command":{"Rename":{}}}"#;
        assert!(decode_command(&with(PayloadKind::Records, unknown)).is_err());
        assert!(decode_command(&with(PayloadKind::Records, b"records, not json")).is_err());
        assert!(decode_command(&with(PayloadKind::Seal, b""))
            .unwrap_err()
            .contains("Seal"));
    }

    #[test]
    fn entries_apply_in_order_and_an_undecodable_one_stops_without_a_trace() {
        let dir = tempfile::tempdir().unwrap();
        let machine = MetaStateMachine::open(dir.path()).unwrap();
        let view = machine.view();
        assert_eq!(view.applied(), None);
        assert_eq!(view.catalogue(), CatalogueState::new(String::new()));

        let nodes = BTreeMap::from([(1, ClusterNode::default())]);
        let membership = Membership::new(vec![BTreeSet::from([1])], nodes).unwrap();
        let answer = machine
            .apply_entry(log_id(0), &EntryPayload::Membership(membership.clone()))
            .unwrap();
        assert_eq!(answer, Response::Appended(Applied { frame_index: 1 }));
        assert_eq!(view.membership().log_id(), &Some(log_id(0)));
        machine
            .apply_entry(log_id(1), &EntryPayload::Blank)
            .unwrap();

        let command = EntryPayload::Normal(command_payload(&put_account()).unwrap());
        let answer = machine.apply_entry(log_id(2), &command).unwrap();
        assert_eq!(answer, Response::Catalogue(Ok(CatalogueApplied::Done)));
        assert!(view.read(|state| state.accounts.contains_key("000000000000")));
        assert_eq!(view.applied(), Some(log_id(2)));
        // A command the catalogue rejects is an answer, and the entry counts as applied.
        let delete = Command::DeleteStream {
            account: "000000000000".into(),
            name: "none".into(),
            if_version: 1,
        };
        let answer = machine
            .apply_entry(
                log_id(3),
                &EntryPayload::Normal(command_payload(&delete).unwrap()),
            )
            .unwrap();
        assert_eq!(answer, Response::Catalogue(Err(Rejection::NotFound)));
        assert_eq!(view.applied(), Some(log_id(3)));

        let before = view.catalogue();
        let garbage = EntryPayload::Normal(FramePayload {
            payload: Bytes::from_static(b"\xff not a command"),
            ..command_payload(&put_account()).unwrap()
        });
        let error = machine.apply_entry(log_id(4), &garbage).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("Raft index 4"), "{error}");
        assert_eq!(view.applied(), Some(log_id(3)), "not applied");
        assert_eq!(view.catalogue(), before);
    }
}
