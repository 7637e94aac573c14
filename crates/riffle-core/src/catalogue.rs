//! The catalogue state machine: every control-plane change as a command, applied to the state
//! deterministically.
//!
//! The catalogue is what every node of a cluster must agree on: streams, their shards and
//! lineage, consumers, tags, policies, encryption, account settings and the node-wide keys.
//! [`CatalogueState::apply`] takes a [`Command`] and either changes the state or rejects the
//! command, and does nothing else: no I/O, no clock (a command carries its time), no
//! randomness (a command carries its ids and keys), no tokio. So the same sequence of commands
//! gives the same state on every node and in every replay — what a Raft state machine needs,
//! what the simulator replays, and what the tests below check alone.
//!
//! **Who decides.** The AWS rules (may this stream be resharded now? is this key enabled?)
//! stay in the service, which decides on the state it sees and sends the resulting stream as
//! a command. Because two entry nodes may decide at once on the same state, every command
//! that changes an existing stream names the **version** of the stream it was decided on; the
//! state machine rejects it if the stream moved on since ([`Rejection::Stale`]), and the
//! service decides again on the new state. A version counts the changes of one stream
//! incarnation, so a re-created stream never matches a command meant for its predecessor.
//!
//! **Persistence.** The state is written as `meta.json` ([`crate::meta::MetaDocument`], its
//! snapshot form): [`CatalogueState::from_document`] and [`CatalogueState::to_document`] are
//! inverse, versions aside: a single node restarts them at 1 with the process, while a
//! replicated snapshot must restore them exactly (every node has to reject the same stale
//! commands), so it carries them beside the document ([`CatalogueState::versions`],
//! [`CatalogueState::from_document_with_versions`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::channels::ChannelMeta;
use crate::crypto::ManagedKey;
use crate::meta::{self, AccountMeta, MetaDocument, QueueDeliveryDoc, QueueMeta, StreamMeta};
use crate::queues::journal::{DeliveryLog, DeliveryUpdate};

/// A stream's place in the catalogue: account and name.
pub type StreamKey = (String, String);

/// One stream and how many changes it has seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    pub meta: StreamMeta,
    /// 1 when created, +1 on every change.
    pub version: u64,
}

/// The whole catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueState {
    /// Hex of the key that authenticates iterators and pagination tokens.
    pub token_key_hex: String,
    pub streams: BTreeMap<StreamKey, StreamEntry>,
    pub accounts: BTreeMap<String, AccountMeta>,
    pub aws_managed_key: Option<ManagedKey>,
    /// Directories whose data the catalogue no longer needs (see `MetaDocument::removing`).
    pub removing: Vec<String>,
    /// Channels, by account and name.
    pub channels: BTreeMap<StreamKey, ChannelMeta>,
    /// Queues by (account, id).
    pub queues: BTreeMap<(String, String), QueueMeta>,
    /// In a cluster, the queues' delivery state by (account, id) (see `crate::queues`).
    pub queue_delivery: BTreeMap<(String, String), DeliveryLog>,
    /// Cluster nodes being drained, and nodes gone for good (see `MetaDocument`). Sorted.
    pub nodes_leaving: Vec<u64>,
    pub nodes_removed: Vec<u64>,
}

/// The version of one stream, as a snapshot carries it beside the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamVersion {
    pub account: String,
    pub name: String,
    pub version: u64,
}

/// A change to the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Adds a stream; rejected if one of that name exists in the account.
    CreateStream { meta: StreamMeta },
    /// Replaces a stream's catalogue entry (its shards, settings, consumers, ...) with what
    /// the service decided on version `if_version`. The stream's identity (account, name,
    /// directory, creation time) must not change.
    ReplaceStream { meta: StreamMeta, if_version: u64 },
    /// Removes a stream; its directory is listed as being removed.
    DeleteStream {
        account: String,
        name: String,
        if_version: u64,
    },
    /// Replaces an account's settings.
    PutAccount { account: String, meta: AccountMeta },
    /// Records the AWS-managed KMS key; rejected if a different one is already recorded (the
    /// first node to make one wins, the others use it).
    SetManagedKey { key: ManagedKey },
    /// Forgets directories whose removal completed.
    FinishRemoving { dirs: Vec<String> },
    /// Sets the key that authenticates iterators and pagination tokens, so every node of a
    /// cluster issues tokens every other node accepts. First writer wins: rejected if a
    /// different key is set already.
    SetTokenKey { key_hex: String },
    /// Adds a channel; rejected if the account has one of that name.
    CreateChannel { meta: Box<ChannelMeta> },
    /// Replaces a channel's entry; rejected unless the same channel (by id) is there.
    ReplaceChannel { meta: Box<ChannelMeta> },
    /// Removes a channel; rejected unless that channel (by id) is there.
    RemoveChannel {
        account: String,
        name: String,
        channel_id: String,
    },
    /// Takes over a whole catalogue (a single node's `meta.json` when it becomes the first
    /// member of a cluster). Only into an empty catalogue: it never merges or overwrites.
    Import { document: MetaDocument },
    /// Adds a queue on an existing stream; rejected if the account has a queue of that name
    /// or id, or the stream (that incarnation) is gone.
    CreateQueue { meta: QueueMeta },
    /// Replaces a queue's attributes, tags or policy; its identity and stream stay.
    ReplaceQueue { meta: QueueMeta },
    /// Removes a queue (and its delivery state).
    DeleteQueue { account: String, id: String },
    /// Records what a queue's home node did to its delivery state (a cluster's queues; see
    /// `crate::queues`): journal lines and compactions, in order. Rejected if the queue is
    /// gone or a batch of lines is not whole lines.
    QueueDelivery {
        account: String,
        id: String,
        updates: Vec<DeliveryUpdate>,
    },
    /// Records the replicas of shard `ordinal` of the stream stored as `dir_id`, once its
    /// replication group has that membership (a replica added or a node moved off). It is
    /// no change of the stream as a client sees it, so the stream's version stays: a client's
    /// change decided meanwhile still applies, and keeps these replicas.
    SetShardReplicas {
        dir_id: String,
        ordinal: u32,
        replicas: Vec<u64>,
    },
    /// Starts draining cluster node `id` (`riffle cluster leave` or `remove`): no new shard
    /// is placed on it and its replicas move to other nodes. Rejected for a removed node.
    NodeLeaving { id: u64 },
    /// Records that node `id` is gone for good, once no shard names it as a replica
    /// (rejected before); the metadata group then drops it.
    NodeRemoved { id: u64 },
}

/// What an applied command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// The stream's new version.
    Stream { version: u64 },
    /// A change that is not about one stream.
    Done,
}

/// Why a command was not applied. The state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// CreateStream of a name the account already has.
    Exists,
    /// The stream is not in the catalogue.
    NotFound,
    /// The stream changed since the command was decided: decide again on `current`.
    Stale { current: u64 },
    /// The command would change what identifies a stream, or break an invariant.
    Invalid(String),
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Exists => f.write_str("the stream exists"),
            Rejection::NotFound => f.write_str("the stream does not exist"),
            Rejection::Stale { current } => {
                write!(f, "the stream changed meanwhile (now version {current})")
            }
            Rejection::Invalid(reason) => write!(f, "invalid catalogue change: {reason}"),
        }
    }
}

impl std::error::Error for Rejection {}

fn key_of(meta: &StreamMeta) -> StreamKey {
    (meta.account.clone(), meta.name.clone())
}

impl CatalogueState {
    /// An empty catalogue with its token key.
    pub fn new(token_key_hex: String) -> CatalogueState {
        CatalogueState {
            token_key_hex,
            streams: BTreeMap::new(),
            accounts: BTreeMap::new(),
            aws_managed_key: None,
            removing: Vec::new(),
            channels: BTreeMap::new(),
            queues: BTreeMap::new(),
            queue_delivery: BTreeMap::new(),
            nodes_leaving: Vec::new(),
            nodes_removed: Vec::new(),
        }
    }

    /// The state a persisted document describes; every stream at version 1.
    pub fn from_document(document: &MetaDocument) -> CatalogueState {
        CatalogueState {
            token_key_hex: document.token_key_hex.clone(),
            streams: document
                .streams
                .iter()
                .map(|meta| {
                    (
                        key_of(meta),
                        StreamEntry {
                            meta: meta.clone(),
                            version: 1,
                        },
                    )
                })
                .collect(),
            accounts: document.accounts.clone(),
            aws_managed_key: document.aws_managed_key.clone(),
            removing: document.removing.clone(),
            channels: document
                .channels
                .iter()
                .map(|channel| {
                    (
                        (channel.account.clone(), channel.name.clone()),
                        channel.clone(),
                    )
                })
                .collect(),
            queues: document
                .queues
                .iter()
                .map(|queue| ((queue.account.clone(), queue.id.clone()), queue.clone()))
                .collect(),
            queue_delivery: document
                .queue_delivery
                .iter()
                .map(|doc| ((doc.account.clone(), doc.id.clone()), doc.log.clone()))
                .collect(),
            nodes_leaving: document.nodes_leaving.clone(),
            nodes_removed: document.nodes_removed.clone(),
        }
    }

    /// Every stream's version, sorted by (account, name) like the document's streams.
    pub fn versions(&self) -> Vec<StreamVersion> {
        self.streams
            .iter()
            .map(|((account, name), entry)| StreamVersion {
                account: account.clone(),
                name: name.clone(),
                version: entry.version,
            })
            .collect()
    }

    /// The state `document` and `versions` describe: the inverse of
    /// ([`to_document`](Self::to_document), [`versions`](Self::versions)). Refused unless
    /// every stream has exactly one version, at least 1, and every version names a stream.
    pub fn from_document_with_versions(
        document: &MetaDocument,
        versions: &[StreamVersion],
    ) -> Result<CatalogueState, String> {
        let mut state = CatalogueState::from_document(document);
        if state.streams.len() != document.streams.len() {
            return Err("the document lists a stream twice".into());
        }
        let mut given = BTreeMap::new();
        for version in versions {
            let key = (version.account.clone(), version.name.clone());
            if !state.streams.contains_key(&key) {
                return Err(format!(
                    "a version is given for stream {} of account {}, which the document does \
                     not hold",
                    version.name, version.account
                ));
            }
            if version.version == 0 {
                return Err(format!("stream {} has version 0", version.name));
            }
            if given.insert(key, version.version).is_some() {
                return Err(format!("stream {} has two versions", version.name));
            }
        }
        for (key, entry) in &mut state.streams {
            entry.version = *given
                .get(key)
                .ok_or_else(|| format!("stream {} has no version", key.1))?;
        }
        Ok(state)
    }

    /// The document to persist: streams sorted by (account, name), the format version that
    /// the oldest server able to read it understands (see `meta::META_FORMAT_VERSION`).
    pub fn to_document(&self) -> MetaDocument {
        let streams: Vec<StreamMeta> = self
            .streams
            .values()
            .map(|entry| entry.meta.clone())
            .collect();
        let mut document = MetaDocument {
            format_version: meta::META_FORMAT_VERSION,
            token_key_hex: self.token_key_hex.clone(),
            streams,
            accounts: self.accounts.clone(),
            aws_managed_key: self.aws_managed_key.clone(),
            removing: self.removing.clone(),
            watermarks: true,
            channels: self.channels.values().cloned().collect(),
            queues: self.queues.values().cloned().collect(),
            nodes_leaving: self.nodes_leaving.clone(),
            nodes_removed: self.nodes_removed.clone(),
            queue_delivery: self
                .queue_delivery
                .iter()
                .map(|((account, id), log)| QueueDeliveryDoc {
                    account: account.clone(),
                    id: id.clone(),
                    log: log.clone(),
                })
                .collect(),
        };
        document.format_version = meta::format_version_for(&document);
        document
    }

    /// The stream and its version.
    pub fn stream(&self, account: &str, name: &str) -> Option<&StreamEntry> {
        self.streams.get(&(account.to_owned(), name.to_owned()))
    }

    /// Applies `command`, or rejects it leaving the state as it was.
    pub fn apply(&mut self, command: &Command) -> Result<Applied, Rejection> {
        match command {
            Command::CreateStream { meta } => {
                let key = key_of(meta);
                if self.streams.contains_key(&key) {
                    return Err(Rejection::Exists);
                }
                check_shards(meta)?;
                self.streams.insert(
                    key,
                    StreamEntry {
                        meta: meta.clone(),
                        version: 1,
                    },
                );
                Ok(Applied::Stream { version: 1 })
            }
            Command::ReplaceStream { meta, if_version } => {
                let entry = self
                    .streams
                    .get_mut(&key_of(meta))
                    .ok_or(Rejection::NotFound)?;
                if entry.version != *if_version {
                    return Err(Rejection::Stale {
                        current: entry.version,
                    });
                }
                if entry.meta.dir_id != meta.dir_id || entry.meta.created_ms != meta.created_ms {
                    return Err(Rejection::Invalid(format!(
                        "stream {} would change its identity",
                        meta.name
                    )));
                }
                check_shards(meta)?;
                check_lineage(&entry.meta, meta)?;
                // Replicas are the cluster's to change (SetShardReplicas): a change decided on
                // an older state keeps the shards' current ones.
                let mut meta = meta.clone();
                for shard in &mut meta.shards {
                    if let Some(old) = entry
                        .meta
                        .shards
                        .iter()
                        .find(|old| old.ordinal == shard.ordinal)
                    {
                        shard.replicas = old.replicas.clone();
                    }
                }
                let meta = &meta;
                // Shards the change drops (expired closed shards) leave their directories
                // to be removed, recorded in the same state.
                for dropped in entry
                    .meta
                    .shards
                    .iter()
                    .filter(|old| meta.shards.iter().all(|new| new.ordinal != old.ordinal))
                {
                    let dir = format!("{}/{}", meta.dir_id, dropped.ordinal);
                    if !self.removing.contains(&dir) {
                        self.removing.push(dir);
                    }
                }
                entry.meta = meta.clone();
                entry.version += 1;
                Ok(Applied::Stream {
                    version: entry.version,
                })
            }
            Command::DeleteStream {
                account,
                name,
                if_version,
            } => {
                let key = (account.clone(), name.clone());
                let entry = self.streams.get(&key).ok_or(Rejection::NotFound)?;
                if entry.version != *if_version {
                    return Err(Rejection::Stale {
                        current: entry.version,
                    });
                }
                if self.queues_of_stream(account, name).next().is_some() {
                    return Err(Rejection::Invalid(format!(
                        "stream {name} still has queues"
                    )));
                }
                let dir_id = entry.meta.dir_id.clone();
                self.streams.remove(&key);
                if !self.removing.contains(&dir_id) {
                    self.removing.push(dir_id);
                }
                Ok(Applied::Done)
            }
            Command::PutAccount { account, meta } => {
                self.accounts.insert(account.clone(), meta.clone());
                Ok(Applied::Done)
            }
            Command::SetManagedKey { key } => match &self.aws_managed_key {
                Some(existing) if existing != key => Err(Rejection::Invalid(
                    "a different AWS-managed key is already recorded".into(),
                )),
                _ => {
                    self.aws_managed_key = Some(key.clone());
                    Ok(Applied::Done)
                }
            },
            Command::FinishRemoving { dirs } => {
                self.removing.retain(|dir| !dirs.contains(dir));
                Ok(Applied::Done)
            }
            Command::SetTokenKey { key_hex } => {
                let valid = key_hex.len() == 64 && key_hex.bytes().all(|b| b.is_ascii_hexdigit());
                if !valid {
                    return Err(Rejection::Invalid("a token key is 64 hex digits".into()));
                }
                if !self.token_key_hex.is_empty() && self.token_key_hex != *key_hex {
                    return Err(Rejection::Invalid(
                        "a different token key is already set".into(),
                    ));
                }
                self.token_key_hex = key_hex.clone();
                Ok(Applied::Done)
            }
            Command::CreateChannel { meta } => {
                let key = (meta.account.clone(), meta.name.clone());
                if self.channels.contains_key(&key) {
                    return Err(Rejection::Exists);
                }
                self.channels.insert(key, (**meta).clone());
                Ok(Applied::Done)
            }
            Command::ReplaceChannel { meta } => {
                let key = (meta.account.clone(), meta.name.clone());
                match self.channels.get_mut(&key) {
                    Some(entry) if entry.channel_id == meta.channel_id => {
                        *entry = (**meta).clone();
                        Ok(Applied::Done)
                    }
                    _ => Err(Rejection::NotFound),
                }
            }
            Command::RemoveChannel {
                account,
                name,
                channel_id,
            } => {
                let key = (account.clone(), name.clone());
                match self.channels.get(&key) {
                    Some(entry) if entry.channel_id == *channel_id => {
                        self.channels.remove(&key);
                        Ok(Applied::Done)
                    }
                    _ => Err(Rejection::NotFound),
                }
            }
            Command::Import { document } => {
                let empty = self.streams.is_empty()
                    && self.accounts.is_empty()
                    && self.aws_managed_key.is_none()
                    && self.removing.is_empty()
                    && self.channels.is_empty()
                    && self.queues.is_empty();
                if !empty {
                    return Err(Rejection::Invalid(
                        "a catalogue is imported only into an empty one".into(),
                    ));
                }
                let imported = CatalogueState::from_document(document);
                if imported.streams.len() != document.streams.len() {
                    return Err(Rejection::Invalid(
                        "the document lists a stream twice".into(),
                    ));
                }
                for entry in imported.streams.values() {
                    check_shards(&entry.meta)?;
                }
                // The cluster's own membership record is not the document's to replace.
                let nodes_leaving = std::mem::take(&mut self.nodes_leaving);
                let nodes_removed = std::mem::take(&mut self.nodes_removed);
                *self = CatalogueState {
                    nodes_leaving,
                    nodes_removed,
                    ..imported
                };
                Ok(Applied::Done)
            }
            Command::CreateQueue { meta } => {
                let key = (meta.account.clone(), meta.id.clone());
                let named = self
                    .queues
                    .values()
                    .any(|queue| queue.account == meta.account && queue.name == meta.name);
                if named || self.queues.contains_key(&key) {
                    return Err(Rejection::Exists);
                }
                let on_stream = self
                    .stream(&meta.stream_account, &meta.stream_name)
                    .is_some_and(|entry| entry.meta.created_ms == meta.stream_created_ms);
                if !on_stream {
                    return Err(Rejection::NotFound);
                }
                self.queues.insert(key, meta.clone());
                Ok(Applied::Done)
            }
            Command::ReplaceQueue { meta } => {
                let queue = self
                    .queues
                    .get_mut(&(meta.account.clone(), meta.id.clone()))
                    .ok_or(Rejection::NotFound)?;
                let same_identity = queue.name == meta.name
                    && queue.created_ms == meta.created_ms
                    && queue.stream_account == meta.stream_account
                    && queue.stream_name == meta.stream_name
                    && queue.stream_created_ms == meta.stream_created_ms
                    && queue.start == meta.start
                    && queue.start_ms == meta.start_ms;
                if !same_identity {
                    return Err(Rejection::Invalid(format!(
                        "queue {} would change its identity, stream or start",
                        meta.name
                    )));
                }
                *queue = meta.clone();
                Ok(Applied::Done)
            }
            Command::DeleteQueue { account, id } => {
                let key = (account.clone(), id.clone());
                self.queues.remove(&key).ok_or(Rejection::NotFound)?;
                self.queue_delivery.remove(&key);
                Ok(Applied::Done)
            }
            Command::QueueDelivery {
                account,
                id,
                updates,
            } => {
                let key = (account.clone(), id.clone());
                if !self.queues.contains_key(&key) {
                    return Err(Rejection::NotFound);
                }
                if !updates.iter().all(DeliveryUpdate::is_valid) {
                    return Err(Rejection::Invalid(format!(
                        "queue {id}: journal lines must be whole lines"
                    )));
                }
                let log = self.queue_delivery.entry(key).or_default();
                for update in updates {
                    log.apply(update);
                }
                Ok(Applied::Done)
            }
            Command::SetShardReplicas {
                dir_id,
                ordinal,
                replicas,
            } => {
                let mut sorted = replicas.clone();
                sorted.sort_unstable();
                sorted.dedup();
                if sorted.is_empty() || sorted.len() != replicas.len() {
                    return Err(Rejection::Invalid(format!(
                        "a shard's replicas are distinct nodes, at least one: {replicas:?}"
                    )));
                }
                let shard = self
                    .streams
                    .values_mut()
                    .find(|entry| entry.meta.dir_id == *dir_id)
                    .and_then(|entry| {
                        entry
                            .meta
                            .shards
                            .iter_mut()
                            .find(|shard| shard.ordinal == *ordinal)
                    })
                    .ok_or(Rejection::NotFound)?;
                shard.replicas = sorted;
                Ok(Applied::Done)
            }
            Command::NodeLeaving { id } => {
                if self.nodes_removed.contains(id) {
                    return Err(Rejection::Invalid(format!("node {id} was removed already")));
                }
                if let Err(at) = self.nodes_leaving.binary_search(id) {
                    self.nodes_leaving.insert(at, *id);
                }
                Ok(Applied::Done)
            }
            Command::NodeRemoved { id } => {
                let holding: Vec<String> = self
                    .streams
                    .values()
                    .flat_map(|entry| {
                        entry
                            .meta
                            .shards
                            .iter()
                            .filter(|shard| shard.replicas.contains(id))
                            .map(|shard| format!("{}/{}", entry.meta.name, shard.ordinal))
                    })
                    .collect();
                if !holding.is_empty() {
                    return Err(Rejection::Invalid(format!(
                        "node {id} still holds replicas of {}",
                        holding.join(", ")
                    )));
                }
                self.nodes_leaving.retain(|leaving| leaving != id);
                if let Err(at) = self.nodes_removed.binary_search(id) {
                    self.nodes_removed.insert(at, *id);
                }
                Ok(Applied::Done)
            }
        }
    }

    /// The queues delivering from stream `name` of `account`.
    pub fn queues_of_stream<'a>(
        &'a self,
        account: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a QueueMeta> + 'a {
        self.queues
            .values()
            .filter(move |queue| queue.stream_account == account && queue.stream_name == name)
    }
}

/// Ordinals unique and below `next_shard_ordinal`; open shards partition the hash space.
fn check_shards(meta: &StreamMeta) -> Result<(), Rejection> {
    let mut ordinals: Vec<u32> = meta.shards.iter().map(|shard| shard.ordinal).collect();
    ordinals.sort_unstable();
    if ordinals.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(Rejection::Invalid(format!(
            "stream {} lists a shard twice",
            meta.name
        )));
    }
    if ordinals
        .last()
        .is_some_and(|last| *last >= meta.next_shard_ordinal)
    {
        return Err(Rejection::Invalid(format!(
            "stream {} has a shard at or past its next ordinal",
            meta.name
        )));
    }
    let mut open: Vec<(u128, u128)> = meta
        .shards
        .iter()
        .filter(|shard| shard.closed.is_none())
        .map(|shard| (shard.starting_hash_key, shard.ending_hash_key))
        .collect();
    open.sort_unstable();
    let mut next = Some(0u128);
    for (start, end) in open {
        if Some(start) != next || end < start {
            return Err(Rejection::Invalid(format!(
                "the open shards of stream {} do not partition the hash key space",
                meta.name
            )));
        }
        next = end.checked_add(1);
    }
    if next.is_some() {
        return Err(Rejection::Invalid(format!(
            "the open shards of stream {} do not cover the hash key space",
            meta.name
        )));
    }
    Ok(())
}

/// A change never reopens a closed shard, never moves a shard's hash range, never takes back
/// its ordinal counter, and keeps closed shards' last index.
fn check_lineage(before: &StreamMeta, after: &StreamMeta) -> Result<(), Rejection> {
    if after.next_shard_ordinal < before.next_shard_ordinal {
        return Err(Rejection::Invalid(
            "the shard ordinal counter went back".into(),
        ));
    }
    for old in &before.shards {
        let Some(new) = after
            .shards
            .iter()
            .find(|shard| shard.ordinal == old.ordinal)
        else {
            continue; // expired and dropped
        };
        let same_range = (old.starting_hash_key, old.ending_hash_key)
            == (new.starting_hash_key, new.ending_hash_key);
        let reopened = old.closed.is_some() && new.closed != old.closed;
        if !same_range || reopened || old.parent != new.parent {
            return Err(Rejection::Invalid(format!(
                "shard {} of stream {} would change its range, lineage or closing",
                old.ordinal, after.name
            )));
        }
    }
    for new in &after.shards {
        let known = before
            .shards
            .iter()
            .any(|shard| shard.ordinal == new.ordinal);
        if !known && new.ordinal < before.next_shard_ordinal {
            return Err(Rejection::Invalid(format!(
                "shard {} of stream {} reuses an ordinal",
                new.ordinal, after.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{ClosedShard, ShardMeta, StreamMode};

    fn shard(ordinal: u32, start: u128, end: u128, parent: Option<u32>) -> ShardMeta {
        ShardMeta {
            ordinal,
            starting_hash_key: start,
            ending_hash_key: end,
            parent,
            adjacent_parent: None,
            created_ms: 1_000,
            sequence_epoch_s: 1,
            closed: None,
            replicas: Vec::new(),
        }
    }

    fn stream(name: &str) -> StreamMeta {
        StreamMeta {
            account: "000000000000".into(),
            name: name.into(),
            dir_id: format!("dir-{name}"),
            created_ms: 1_000,
            mode: StreamMode::Provisioned,
            retention_hours: 24,
            max_record_size_kib: 1024,
            tags: BTreeMap::new(),
            shard_level_metrics: Vec::new(),
            next_shard_ordinal: 2,
            shards: vec![
                shard(0, 0, u128::MAX / 2, None),
                shard(1, u128::MAX / 2 + 1, u128::MAX, None),
            ],
            consumers: Vec::new(),
            policy: None,
            warm_throughput_mibps: None,
            record_distribution: Default::default(),
            encryption: None,
            sealing_keys: Vec::new(),
        }
    }

    /// Shard 0 split in two at `u128::MAX / 4`.
    fn split(meta: &StreamMeta) -> StreamMeta {
        let mut next = meta.clone();
        next.shards[0].closed = Some(ClosedShard {
            last_index: 9,
            closed_ms: 2_000,
        });
        next.shards.push(shard(2, 0, u128::MAX / 4, Some(0)));
        next.shards
            .push(shard(3, u128::MAX / 4 + 1, u128::MAX / 2, Some(0)));
        next.next_shard_ordinal = 4;
        next
    }

    #[test]
    fn versions_count_changes_and_reject_stale_decisions() {
        let mut state = CatalogueState::new("00".repeat(32));
        let orders = stream("orders");
        assert_eq!(
            state.apply(&Command::CreateStream {
                meta: orders.clone()
            }),
            Ok(Applied::Stream { version: 1 })
        );
        assert_eq!(
            state.apply(&Command::CreateStream {
                meta: orders.clone()
            }),
            Err(Rejection::Exists)
        );
        let resharded = split(&orders);
        let replace = Command::ReplaceStream {
            meta: resharded.clone(),
            if_version: 1,
        };
        assert_eq!(state.apply(&replace), Ok(Applied::Stream { version: 2 }));
        // A second entry node decided on version 1 too: it must decide again.
        let before = state.clone();
        assert_eq!(state.apply(&replace), Err(Rejection::Stale { current: 2 }));
        assert_eq!(state, before, "a rejection changes nothing");
        let delete = Command::DeleteStream {
            account: orders.account.clone(),
            name: orders.name.clone(),
            if_version: 2,
        };
        assert_eq!(state.apply(&delete), Ok(Applied::Done));
        assert_eq!(state.removing, vec!["dir-orders".to_string()]);
        assert_eq!(state.apply(&delete), Err(Rejection::NotFound));
        state
            .apply(&Command::FinishRemoving {
                dirs: vec!["dir-orders".into()],
            })
            .unwrap();
        assert!(state.removing.is_empty());
    }

    #[test]
    fn invariants_are_enforced() {
        let mut state = CatalogueState::new(String::new());
        let orders = stream("orders");
        // A gap in the key space.
        let mut gap = orders.clone();
        gap.shards[1].starting_hash_key += 1;
        assert!(matches!(
            state.apply(&Command::CreateStream { meta: gap }),
            Err(Rejection::Invalid(_))
        ));
        state
            .apply(&Command::CreateStream {
                meta: orders.clone(),
            })
            .unwrap();
        let resharded = split(&orders);
        state
            .apply(&Command::ReplaceStream {
                meta: resharded.clone(),
                if_version: 1,
            })
            .unwrap();
        // Reopening a closed shard, reusing an ordinal, moving a range: all refused.
        let mut reopened = resharded.clone();
        reopened.shards[0].closed = None;
        reopened.shards.retain(|shard| shard.parent != Some(0));
        let mut moved = resharded.clone();
        moved.shards[1].starting_hash_key -= 1;
        moved.shards[0].ending_hash_key -= 1;
        let mut identity = resharded.clone();
        identity.dir_id = "elsewhere".into();
        for meta in [reopened, moved, identity] {
            assert!(matches!(
                state.apply(&Command::ReplaceStream {
                    meta,
                    if_version: 2
                }),
                Err(Rejection::Invalid(_))
            ));
        }
        assert_eq!(state.stream("000000000000", "orders").unwrap().version, 2);
        // Dropping an expired closed shard lists its directory for removal.
        let mut expired = resharded.clone();
        expired.shards.retain(|shard| shard.ordinal != 0);
        state
            .apply(&Command::ReplaceStream {
                meta: expired,
                if_version: 2,
            })
            .unwrap();
        assert_eq!(state.removing, vec!["dir-orders/0".to_string()]);
    }

    #[test]
    fn replicas_and_node_membership_change_only_through_their_commands() {
        let mut state = CatalogueState::new(String::new());
        let mut orders = stream("orders");
        for shard in &mut orders.shards {
            shard.replicas = vec![1];
        }
        state
            .apply(&Command::CreateStream {
                meta: orders.clone(),
            })
            .unwrap();
        let set = |replicas: Vec<u64>| Command::SetShardReplicas {
            dir_id: "dir-orders".into(),
            ordinal: 0,
            replicas,
        };
        assert_eq!(state.apply(&set(vec![3, 1, 2])), Ok(Applied::Done));
        let entry = state.stream("000000000000", "orders").unwrap();
        assert_eq!(entry.meta.shards[0].replicas, vec![1, 2, 3], "kept sorted");
        assert_eq!(entry.version, 1, "no change a client sees");
        for bad in [vec![], vec![2, 2]] {
            assert!(matches!(state.apply(&set(bad)), Err(Rejection::Invalid(_))));
        }
        let elsewhere = Command::SetShardReplicas {
            dir_id: "dir-orders".into(),
            ordinal: 7,
            replicas: vec![1],
        };
        assert_eq!(state.apply(&elsewhere), Err(Rejection::NotFound));
        // A client's change decided on the state before keeps the replicas set since.
        state
            .apply(&Command::ReplaceStream {
                meta: split(&orders),
                if_version: 1,
            })
            .unwrap();
        let entry = state.stream("000000000000", "orders").unwrap();
        assert_eq!(entry.meta.shards[0].replicas, vec![1, 2, 3]);
        assert_eq!(entry.meta.shards[1].replicas, vec![1]);

        // A node is removed only once no shard names it; a removed node never leaves again.
        assert_eq!(
            state.apply(&Command::NodeLeaving { id: 1 }),
            Ok(Applied::Done)
        );
        assert_eq!(state.nodes_leaving, vec![1]);
        assert!(matches!(
            state.apply(&Command::NodeRemoved { id: 1 }),
            Err(Rejection::Invalid(_))
        ));
        for ordinal in [0, 1, 2, 3] {
            state
                .apply(&Command::SetShardReplicas {
                    dir_id: "dir-orders".into(),
                    ordinal,
                    replicas: vec![2, 3],
                })
                .unwrap();
        }
        assert_eq!(
            state.apply(&Command::NodeRemoved { id: 1 }),
            Ok(Applied::Done)
        );
        assert!(state.nodes_leaving.is_empty());
        assert_eq!(state.nodes_removed, vec![1]);
        assert!(state.apply(&Command::NodeLeaving { id: 1 }).is_err());
        let document = state.to_document();
        assert_eq!(
            CatalogueState::from_document(&document).to_document(),
            document
        );
    }

    #[test]
    fn the_document_round_trips_and_replays_deterministically() {
        let commands = vec![
            Command::CreateStream { meta: stream("a") },
            Command::CreateStream { meta: stream("b") },
            Command::ReplaceStream {
                meta: split(&stream("a")),
                if_version: 1,
            },
            Command::PutAccount {
                account: "000000000000".into(),
                meta: AccountMeta::default(),
            },
            Command::SetManagedKey {
                key: ManagedKey {
                    key_id: "k".into(),
                    material_hex: "11".repeat(32),
                },
            },
            Command::DeleteStream {
                account: "000000000000".into(),
                name: "b".into(),
                if_version: 1,
            },
        ];
        let run = || {
            let mut state = CatalogueState::new("ab".repeat(32));
            for command in &commands {
                state.apply(command).unwrap();
            }
            state
        };
        let state = run();
        assert_eq!(state, run(), "the same commands give the same state");
        let document = state.to_document();
        let restored = CatalogueState::from_document(&document);
        assert_eq!(restored.to_document(), document);
        // Commands travel (a Raft log entry): serde round trip.
        let text = serde_json::to_string(&commands).unwrap();
        let back: Vec<Command> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, commands);
        // With the versions beside it, the document gives back the same state, versions
        // included (what a replicated snapshot needs).
        assert_eq!(state.stream("000000000000", "a").unwrap().version, 2);
        let exact = CatalogueState::from_document_with_versions(&document, &state.versions());
        assert_eq!(exact.as_ref(), Ok(&state));
        assert_eq!(restored.stream("000000000000", "a").unwrap().version, 1);
        // A version missing, doubled, 0 or for a stream the document lacks is refused.
        let versions = state.versions();
        let stray = StreamVersion {
            account: "000000000000".into(),
            name: "gone".into(),
            version: 3,
        };
        let mut zero = versions.clone();
        zero[0].version = 0;
        for bad in [
            Vec::new(),
            [versions.clone(), versions.clone()].concat(),
            zero,
            [versions.clone(), vec![stray]].concat(),
        ] {
            assert!(CatalogueState::from_document_with_versions(&document, &bad).is_err());
        }
        let mut twice = document.clone();
        twice.streams.push(twice.streams[0].clone());
        assert!(CatalogueState::from_document_with_versions(&twice, &versions).is_err());
        // A token key is set once; an import goes only into an empty catalogue.
        let mut fresh = CatalogueState::new(String::new());
        let key = "cd".repeat(32);
        fresh
            .apply(&Command::SetTokenKey {
                key_hex: key.clone(),
            })
            .unwrap();
        assert!(fresh
            .apply(&Command::SetTokenKey {
                key_hex: "ef".repeat(32)
            })
            .is_err());
        assert!(fresh
            .apply(&Command::SetTokenKey {
                key_hex: "short".into()
            })
            .is_err());
        let mut empty = CatalogueState::new(String::new());
        empty
            .apply(&Command::Import {
                document: document.clone(),
            })
            .unwrap();
        assert_eq!(empty.to_document(), document);
        assert!(empty
            .apply(&Command::Import {
                document: document.clone()
            })
            .is_err());
        // A second managed key never replaces the first.
        let mut state = state;
        assert!(state
            .apply(&Command::SetManagedKey {
                key: ManagedKey {
                    key_id: "other".into(),
                    material_hex: "22".repeat(32),
                },
            })
            .is_err());
    }

    #[test]
    fn queue_delivery_is_journal_lines_and_snapshots_of_a_named_queue() {
        let mut state = CatalogueState::new(String::new());
        let meta = stream("s");
        state
            .apply(&Command::CreateStream { meta: meta.clone() })
            .unwrap();
        let queue = QueueMeta {
            account: meta.account.clone(),
            id: "q1".into(),
            name: "work".into(),
            created_ms: 2_000,
            stream_account: meta.account.clone(),
            stream_name: meta.name.clone(),
            stream_created_ms: meta.created_ms,
            start: "TRIM_HORIZON".into(),
            start_ms: None,
            visibility_timeout_s: 30,
            max_receive_count: Some(6),
            tags: BTreeMap::new(),
            policy: None,
            updated_ms: None,
        };
        let deliver = |updates: Vec<DeliveryUpdate>| Command::QueueDelivery {
            account: meta.account.clone(),
            id: "q1".into(),
            updates,
        };
        let lines = |text: &str| DeliveryUpdate::Lines(text.to_owned());
        assert_eq!(
            state.apply(&deliver(vec![lines("A 0 1 0\n")])),
            Err(Rejection::NotFound),
            "no such queue"
        );
        state.apply(&Command::CreateQueue { meta: queue }).unwrap();
        state
            .apply(&deliver(vec![
                lines("R 0 1 0 1 5\nR 0 1 1 1 5\n"),
                lines("A 0 1 0\n"),
            ]))
            .unwrap();
        assert!(matches!(
            state.apply(&deliver(vec![lines("A 0 1 1")])),
            Err(Rejection::Invalid(_))
        ));
        let key = (meta.account.clone(), "q1".to_owned());
        let recovered = state.queue_delivery[&key].recover("q1");
        assert_eq!(recovered[&0].filter((1, 0)), None, "acknowledged");
        assert_eq!(
            recovered[&0].filter((1, 1)).map(|s| s.receive_count),
            Some(1)
        );

        // A snapshot replaces the lines before it; the document carries the state.
        let snapshot = crate::queues::journal::Snapshot {
            version: 1,
            shards: BTreeMap::from([(
                0,
                crate::queues::journal::ShardSnapshot {
                    next: (2, 0),
                    drained: false,
                    not_before_ms: 0,
                    pending: Vec::new(),
                },
            )]),
        };
        state
            .apply(&deliver(vec![
                DeliveryUpdate::Snapshot(snapshot),
                lines("A 0 3 0\n"),
            ]))
            .unwrap();
        assert_eq!(state.queue_delivery[&key].journal, "A 0 3 0\n");
        let restored =
            CatalogueState::from_document_with_versions(&state.to_document(), &state.versions())
                .unwrap();
        assert_eq!(restored, state);
        let recovered = restored.queue_delivery[&key].recover("q1");
        assert_eq!(
            recovered[&0].filter((1, 1)),
            None,
            "below the snapshot, not pending"
        );
        assert_eq!(recovered[&0].filter((3, 0)), None);

        state
            .apply(&Command::DeleteQueue {
                account: meta.account.clone(),
                id: "q1".into(),
            })
            .unwrap();
        assert!(state.queue_delivery.is_empty(), "deleted with its queue");
    }
}
