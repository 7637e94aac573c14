//! Queues: SQS-style consumption of a stream (CreateQueue … RestoreDeadLetterQueueRecords).
//!
//! **Definition and delivery state.** A queue's definition (name, stream, starting position,
//! attributes, tags, policy) is in the catalogue (`Command::CreateQueue`, `ReplaceQueue`,
//! `DeleteQueue`), so it replicates with the metadata group. Its delivery state — which records
//! were read from the stream, received, acknowledged, dead-lettered — is kept as a journal
//! (see [`journal`]): on a single node under `DATA/queues/<id>/`; in a cluster in the catalogue
//! (`Command::QueueDelivery`), where the metadata group's leader is the queues' home that serves
//! every delivery operation (other nodes forward them: [`ForwardedCall`]) and a new home
//! rebuilds each queue from the catalogue as a single node does from its files at start
//! (ARCHITECTURE.md, "Queues").
//!
//! **Delivery.** Each queue reads its stream shard by shard into a bounded working set
//! ([`ENTRIES_MAX`] records, [`BYTES_MAX`] bytes of data): a child shard only once every
//! parent has been read to its end. A record in the working set is *visible*, *in flight*
//! (received, for its visibility timeout) or *dead* (received `MaxReceiveCount` times without an
//! acknowledgement). A receive takes the oldest visible records — in the order they were read,
//! which is stream order per shard — and puts them in flight under a new delivery number, which
//! its receipt handle carries and MACs; only the latest delivery's handle acknowledges or
//! changes visibility, so a record is with one consumer at a time. An expired visibility makes
//! the record visible again (or dead). An acknowledged record leaves the working set, making
//! room for more. Records past the stream's retention are dropped instead of delivered.
//!
//! **Ordering.** Per partition key, first deliveries follow the stream's order: records of one
//! key are in one shard (or in a parent before its children), read in order and received
//! oldest first, so one consumer receiving alone gets each key's records in the order they
//! were written. A record delivered again (visibility expired or set to 0, restored) goes
//! back to its old place at the front, so it can come after later records of its key that
//! were delivered meanwhile; with several consumers, records of one key can be processed at
//! once by different consumers. Queues promise no more, as AWS documents ("not necessarily
//! received in the order they were written").
//!
//! **Long polling.** A waiting receive sleeps on the queue's `Notify`, woken by a task that
//! watches the stream's shard tails (the same watch channels SubscribeToShard uses), by
//! visibility changes and restores, and by the next visibility deadline: no polling.

pub mod journal;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use riffle_proto::ops::*;
use riffle_proto::receipt::ReceiptHandle;
use riffle_proto::seqno::SeqNo;
use riffle_proto::{Request, Timestamp, WireFormat};
use tokio::sync::Notify;

use self::journal::{
    DeliveryUpdate, Journal, RecordKey, RecordState, Recovered, ShardSnapshot, Snapshot,
};
use crate::catalogue::Command;
use crate::control::Caller;
use crate::data::{self, Position, StartAt};
use crate::meta::{QueueMeta, StreamMode};
use crate::node::{now_ms, Node, Shard, Stream, StreamState};
use crate::policy::ResourcePolicy;
use crate::Error;

impl ForwardedAnswer {
    /// The answer as the entry node returns it; `Ok(None)` for [`ForwardedAnswer::NotHome`].
    pub fn into_result(self) -> Result<Option<Vec<u8>>, Error> {
        match self {
            ForwardedAnswer::Body(body) => Ok(Some(body)),
            ForwardedAnswer::NotHome => Ok(None),
            ForwardedAnswer::Error { type_name, message } => Err(Error::new(
                riffle_proto::ErrorKind::from_type_name(&type_name)
                    .unwrap_or(riffle_proto::ErrorKind::InternalFailureException),
                message,
            )),
        }
    }
}

/// Records a queue holds read from its stream and not yet acknowledged.
pub const ENTRIES_MAX: usize = 20_000;
/// Bytes of data (and partition keys) those records may hold.
pub const BYTES_MAX: usize = 64 * 1024 * 1024;
/// Bytes of data one receive returns at most (one record always, whatever its size).
const RECEIVE_BYTES_MAX: usize = 10 * 1024 * 1024;
/// Records read from one shard in one step.
const READ_BATCH: usize = 1_000;
/// In a cluster, how often a waiting receive reads again the shards its home holds no
/// replica of (their tails move on other nodes, which wake no one here).
const REMOTE_POLL: Duration = Duration::from_millis(200);
pub const VISIBILITY_TIMEOUT_DEFAULT_S: u32 = 30;
pub const MAX_RECEIVE_COUNT_DEFAULT: u32 = 6;
const WAIT_TIME_DEFAULT_S: u64 = 9;
const LIST_QUEUES_DEFAULT: usize = 100;
/// Tags on one queue.
const TAGS_MAX: usize = 50;

const QUEUES_DIR: &str = "queues";
/// In a cluster, journal bytes after which a queue's home writes a snapshot into the
/// replicated state instead (every applied catalogue batch copies the state, so it stays
/// small there; a single node's journal compacts at [`journal::COMPACT_BYTES`]).
const REPLICATED_COMPACT_BYTES: u64 = 1024 * 1024;

/// Where a cluster serves queue delivery: the metadata group's leader (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueHome {
    /// This node, leading the metadata group in this term.
    Here { term: u64 },
    /// Another node.
    Elsewhere,
}

/// A queue delivery operation an entry node sends to the home node: the caller as the entry
/// node authenticated it, and the request re-encoded as JSON.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ForwardedCall {
    pub account: String,
    pub region: String,
    pub principal: String,
    pub operation: String,
    /// Whether the answer is to be CBOR (else JSON), as the client asked.
    pub cbor: bool,
    pub body: Vec<u8>,
}

/// The home node's answer to a [`ForwardedCall`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum ForwardedAnswer {
    /// The answer's body, encoded as the client asked.
    Body(Vec<u8>),
    /// An error: its `__type` and message.
    Error {
        type_name: String,
        message: Option<String>,
    },
    /// This node is not (or no longer) the home: ask the metadata group's leader.
    NotHome,
}

/// Every queue of the node, by (account, id).
#[derive(Default)]
pub struct Queues {
    by_id: RwLock<HashMap<(String, String), Arc<Queue>>>,
}

impl Queues {
    fn get(&self, account: &str, id: &str) -> Option<Arc<Queue>> {
        self.by_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(account.to_owned(), id.to_owned()))
            .cloned()
    }

    fn insert(&self, queue: Arc<Queue>) {
        self.by_id
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((queue.account.clone(), queue.id.clone()), queue);
    }

    fn remove(&self, account: &str, id: &str) -> Option<Arc<Queue>> {
        self.by_id
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(account.to_owned(), id.to_owned()))
    }

    fn all(&self) -> Vec<Arc<Queue>> {
        self.by_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// How many queues deliver from `stream` (they count as its registered consumers).
    pub fn count_on(&self, stream: &Stream) -> usize {
        self.all()
            .iter()
            .filter(|queue| {
                queue.stream.account == stream.account
                    && queue.stream.name == stream.name
                    && queue.stream.created_ms == stream.created_ms
            })
            .count()
    }
}

/// One queue: its definition and its delivery state.
pub struct Queue {
    pub account: String,
    pub id: String,
    pub arn: String,
    meta: RwLock<QueueMeta>,
    policy: RwLock<Option<Arc<ResourcePolicy>>>,
    stream: Arc<Stream>,
    delivery: Mutex<Delivery>,
    store: Store,
    notify: Notify,
    watching: AtomicBool,
    deleted: AtomicBool,
    compacting: AtomicBool,
    /// When a receive last warned that a shard's replicas did not answer (ms): consumers
    /// poll, so the warning is logged once per [`UNREACHABLE_WARN_EVERY_MS`], not per call.
    unreachable_warned_ms: AtomicU64,
}

/// How often a queue repeats the warning that a shard's replicas do not answer.
const UNREACHABLE_WARN_EVERY_MS: u64 = 30_000;

/// A record in the working set.
struct Entry {
    /// Read order: receives take the smallest visible first.
    seq: u64,
    record_id: String,
    partition_key: String,
    data: Bytes,
    arrival_ms: u64,
    state: RecordState,
    /// Deadline of the current in-flight delivery.
    in_flight_until: Option<u64>,
    /// The latest delivery's number (0: not delivered since this start).
    delivery: u64,
}

struct ShardCursor {
    next: Position,
    drained: bool,
    not_before_ms: u64,
}

/// What a cluster home read, off the delivery lock, from the shards it holds no replica of,
/// for the next [`Delivery::refill`] (see [`Queue::prefetch`]).
#[derive(Default)]
struct RemoteReads {
    reads: Vec<Prefetched>,
    /// The first remote read that failed: a receive answers it only when it has nothing else
    /// to deliver.
    failed: Option<Error>,
    /// Whether any shard is read remotely (a waiting receive then polls).
    any: bool,
}

/// One shard's read ahead.
struct Prefetched {
    ordinal: u32,
    /// The cursor to start with, for a shard the queue had none for yet.
    start: Option<ShardCursor>,
    /// Where the read started: used only while the cursor is still there.
    from: Position,
    read: data::Read,
}

struct Delivery {
    /// In a cluster, the metadata term this state was rebuilt in from the replicated state
    /// (0: not yet); unused on a single node.
    term: u64,
    entries: HashMap<RecordKey, Entry>,
    visible: BTreeMap<u64, RecordKey>,
    dead_visible: BTreeMap<u64, RecordKey>,
    deadlines: BinaryHeap<Reverse<(u64, u64, RecordKey)>>,
    cursors: BTreeMap<u32, ShardCursor>,
    recovered: BTreeMap<u32, Recovered>,
    next_seq: u64,
    bytes: usize,
}

/// Delivery numbers: unique in this process, starting at a random value so a restarted
/// server never repeats a handle of the previous run.
fn next_delivery() -> u64 {
    static NEXT: std::sync::LazyLock<AtomicU64> = std::sync::LazyLock::new(|| {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        AtomicU64::new(u64::from_le_bytes(seed) >> 1)
    });
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn queue_not_found(arn: &str) -> Error {
    Error::resource_not_found(format!("Queue {arn} not found."))
}

fn internal(error: impl std::fmt::Display) -> Error {
    Error::internal(error.to_string())
}

fn queues_dir(node: &Node) -> PathBuf {
    node.config.data_dir.join(QUEUES_DIR)
}

fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from_epoch_ms(i64::try_from(ms).unwrap_or(i64::MAX))
}

impl Queue {
    fn meta(&self) -> QueueMeta {
        self.meta.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_meta(&self, meta: QueueMeta) {
        let policy = meta
            .policy
            .as_deref()
            .and_then(|text| ResourcePolicy::parse(text).ok())
            .map(Arc::new);
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = policy;
        *self.meta.write().unwrap_or_else(|p| p.into_inner()) = meta;
    }

    fn authorize(&self, caller: &Caller) -> Result<(), Error> {
        let policy = self
            .policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        crate::control::authorize(caller, &self.account, &self.arn, policy.as_deref())
    }

    /// Starts the task that wakes waiting receives when the stream's shards grow.
    fn ensure_watching(self: &Arc<Self>) {
        if !self.watching.swap(true, Ordering::AcqRel) {
            tokio::spawn(watch_tails(Arc::downgrade(self), Arc::clone(&self.stream)));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Delivery> {
        self.delivery.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns once what was recorded up to `ticket` is durable: fsynced in the journal on a
    /// single node, committed by the metadata group in a cluster. A cluster batch that
    /// fails makes the queue rebuild its state from the catalogue at its next operation,
    /// so memory never holds an acknowledgement the catalogue lacks for long.
    async fn persist(self: &Arc<Self>, node: &Node, ticket: u64) -> Result<(), Error> {
        match &self.store {
            Store::Local(_) => {
                let queue = Arc::clone(self);
                tokio::task::spawn_blocking(move || match &queue.store {
                    Store::Local(journal) => journal.sync(ticket),
                    Store::Replicated(_) => Ok(()),
                })
                .await
                .map_err(internal)?
                .map_err(|error| internal(format!("cannot persist queue state: {error}")))
            }
            Store::Replicated(_) => {
                let Some(cluster) = node.cluster().cloned() else {
                    return Err(internal("a replicated queue on a node outside a cluster"));
                };
                self.persist_with(&cluster, ticket).await
            }
        }
    }

    /// [`persist`](Self::persist) in a cluster.
    async fn persist_with(
        self: &Arc<Self>,
        cluster: &Arc<dyn crate::node::ClusterSeam>,
        ticket: u64,
    ) -> Result<(), Error> {
        let Store::Replicated(replicated) = &self.store else {
            return Ok(());
        };
        let mut committed = replicated.committed.lock().await;
        if *committed >= ticket {
            return Ok(());
        }
        let (updates, last) = {
            let mut pending = replicated.pending.lock().unwrap_or_else(|p| p.into_inner());
            (std::mem::take(&mut pending.0), pending.1)
        };
        let term = self.lock().term;
        let result = if updates.is_empty() {
            Ok(())
        } else {
            cluster
                .propose_queue(
                    Command::QueueDelivery {
                        account: self.account.clone(),
                        id: self.id.clone(),
                        updates,
                    },
                    term,
                )
                .await
        };
        *committed = last;
        if let Err(error) = &result {
            tracing::warn!(
                queue = %self.id,
                error = error.message.as_deref().unwrap_or(""),
                "queue delivery state not replicated; the queue rebuilds it from the catalogue"
            );
            self.lock().term = 0;
        }
        result
    }

    /// Persists up to `ticket` in the background (receive counts: losing one only means
    /// one more delivery, so a receive does not wait for it).
    fn persist_soon(self: &Arc<Self>, node: &Node, ticket: u64) {
        if let (Store::Replicated(_), Some(cluster)) = (&self.store, node.cluster()) {
            let queue = Arc::clone(self);
            let cluster = Arc::clone(cluster);
            tokio::spawn(async move {
                let _ = queue.persist_with(&cluster, ticket).await;
            });
        }
    }

    /// In a cluster, makes this queue's state the one the catalogue holds as of `term`,
    /// unless it was built in that term already: a node that becomes the home (its
    /// predecessor killed, say) starts from what was committed, so what was in flight is
    /// visible again and nothing acknowledged comes back — a single node's restart.
    async fn enter_term(self: &Arc<Self>, node: &Node, term: u64) {
        let Store::Replicated(replicated) = &self.store else {
            return;
        };
        if self.lock().term == term {
            return;
        }
        // No batch of the previous term is on its way meanwhile.
        let _committed = replicated.committed.lock().await;
        let log = node
            .catalogue_state()
            .queue_delivery
            .get(&(self.account.clone(), self.id.clone()))
            .cloned()
            .unwrap_or_default();
        {
            let mut delivery = self.lock();
            if delivery.term == term {
                return;
            }
            *delivery = Delivery::new(log.recover(&self.id));
            delivery.term = term;
            replicated
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .0
                .clear();
            replicated
                .len
                .store(log.journal.len() as u64, Ordering::Relaxed);
        }
        tracing::info!(queue = %self.id, term, "queue delivery state rebuilt from the catalogue on its new home");
        self.notify.notify_waiters();
    }
}

/// Where a queue's delivery state is made durable.
enum Store {
    /// A single node: the journal under `DATA/queues/<id>/`.
    Local(Journal),
    /// A cluster: the catalogue, through the metadata group.
    Replicated(Replicated),
}

/// A cluster queue's updates on their way into the catalogue, in the order they were made
/// (under the queue's lock), proposed a batch at a time: group commit, as the journal's
/// fsync.
#[derive(Default)]
struct Replicated {
    /// Updates made and not yet proposed, and the ticket of the last one made.
    pending: Mutex<(Vec<DeliveryUpdate>, u64)>,
    /// Held while a batch is proposed: the last ticket committed (or given up).
    committed: tokio::sync::Mutex<u64>,
    /// Journal bytes in the replicated state since its last snapshot.
    len: AtomicU64,
}

impl Store {
    /// Records `lines` (whole journal lines), in the queue's order; returns the ticket to
    /// [`Queue::persist`] on. The caller holds the queue's lock.
    fn append(&self, lines: &[u8]) -> Result<u64, Error> {
        match self {
            Store::Local(journal) => journal.append(lines).map_err(internal),
            Store::Replicated(replicated) => {
                replicated
                    .len
                    .fetch_add(lines.len() as u64, Ordering::Relaxed);
                Ok(replicated.push(DeliveryUpdate::Lines(
                    String::from_utf8_lossy(lines).into_owned(),
                )))
            }
        }
    }
}

impl Replicated {
    fn push(&self, update: DeliveryUpdate) -> u64 {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.0.push(update);
        pending.1 += 1;
        pending.1
    }
}

/// Wakes the queue's waiting receives whenever a shard's visible tail moves or the stream's
/// shards change; ends when the queue is gone.
async fn watch_tails(queue: Weak<Queue>, stream: Arc<Stream>) {
    let mut routes = stream.watch_routes();
    loop {
        let shards: Vec<Arc<Shard>> = stream.state().shards.clone();
        let mut tails: Vec<_> = shards
            .iter()
            .filter(|shard| shard.is_open())
            .map(|shard| shard.log.subscribe())
            .collect();
        let mut changes: Vec<Pin<Box<dyn Future<Output = bool> + Send + '_>>> = tails
            .iter_mut()
            .map(|tail| {
                Box::pin(async move { tail.changed().await.is_ok() })
                    as Pin<Box<dyn Future<Output = bool> + Send>>
            })
            .collect();
        let any_tail = std::future::poll_fn(|cx| {
            for change in changes.iter_mut() {
                if let Poll::Ready(ok) = change.as_mut().poll(cx) {
                    return Poll::Ready(ok);
                }
            }
            Poll::Pending
        });
        let woke = tokio::select! {
            ok = any_tail => {
                if !ok {
                    // A shard's log went away (expired): look again shortly.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                true
            }
            _ = routes.changed() => true,
            _ = tokio::time::sleep(Duration::from_secs(1)) => false,
        };
        drop(changes);
        let Some(queue) = queue.upgrade() else {
            return;
        };
        if queue.deleted.load(Ordering::Acquire) {
            return;
        }
        if woke {
            queue.notify.notify_waiters();
        }
    }
}

// ===== Delivery =====

impl Delivery {
    fn new(recovered: BTreeMap<u32, Recovered>) -> Delivery {
        let mut cursors = BTreeMap::new();
        let mut kept = BTreeMap::new();
        for (ordinal, recovered) in recovered {
            if let Some(snapshot) = &recovered.snapshot {
                // Read again from the oldest pending record; the filter skips the rest.
                let first_pending = recovered.below.keys().next().copied();
                let (index, slot) = first_pending.unwrap_or(snapshot.next).min(snapshot.next);
                cursors.insert(
                    ordinal,
                    ShardCursor {
                        next: Position { index, slot },
                        drained: snapshot.drained && first_pending.is_none(),
                        not_before_ms: snapshot.not_before_ms,
                    },
                );
            }
            kept.insert(ordinal, recovered);
        }
        Delivery {
            term: 0,
            entries: HashMap::new(),
            visible: BTreeMap::new(),
            dead_visible: BTreeMap::new(),
            deadlines: BinaryHeap::new(),
            cursors,
            recovered: kept,
            next_seq: 0,
            bytes: 0,
        }
    }

    fn remove(&mut self, key: RecordKey) -> Option<Entry> {
        let entry = self.entries.remove(&key)?;
        self.visible.remove(&entry.seq);
        self.dead_visible.remove(&entry.seq);
        self.bytes = self
            .bytes
            .saturating_sub(entry.data.len() + entry.partition_key.len());
        Some(entry)
    }

    /// Makes records whose visibility ran out visible again, or dead after their last
    /// allowed receive. Returns whether any changed.
    fn expire(&mut self, now: u64, max_receive_count: Option<u32>, journal: &mut Vec<u8>) -> bool {
        let mut changed = false;
        while let Some(Reverse((deadline, delivery, key))) = self.deadlines.peek().copied() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            if entry.delivery != delivery || entry.in_flight_until != Some(deadline) {
                continue; // acknowledged, extended or delivered again since
            }
            entry.in_flight_until = None;
            if !entry.state.dead
                && max_receive_count.is_some_and(|max| entry.state.receive_count >= max)
            {
                entry.state.dead = true;
                journal::event_line(journal, 'D', key);
            }
            if entry.state.dead {
                self.dead_visible.insert(entry.seq, key);
            } else {
                self.visible.insert(entry.seq, key);
            }
            changed = true;
        }
        changed
    }

    fn next_deadline(&self) -> Option<u64> {
        self.deadlines
            .peek()
            .map(|Reverse((deadline, _, _))| *deadline)
    }

    /// Where `queue` starts reading a shard it has no cursor for: the shard's start, or the
    /// time (also the cursor's `not_before_ms`) it starts at.
    fn initial_start(meta: &QueueMeta, shard: &Shard) -> Option<u64> {
        if shard.meta.created_ms >= meta.created_ms || meta.start == "TRIM_HORIZON" {
            return None;
        }
        Some(match meta.start.as_str() {
            "AT_TIMESTAMP" => meta.start_ms.unwrap_or(meta.created_ms),
            _ => meta.created_ms,
        })
    }

    /// Where `queue` starts reading a shard it has no cursor for.
    fn initial_cursor(meta: &QueueMeta, shard: &Shard) -> Result<ShardCursor, Error> {
        let Some(since) = Self::initial_start(meta, shard) else {
            return Ok(ShardCursor {
                next: Position {
                    index: shard.log.first_index(),
                    slot: 0,
                },
                drained: false,
                not_before_ms: 0,
            });
        };
        Ok(ShardCursor {
            next: data::start_position(shard, StartAt::AtTimestamp(since))?,
            drained: false,
            not_before_ms: since,
        })
    }

    /// Whether the next refill reads `shard`: its parents (those still in the stream) are
    /// drained and it is not.
    fn wants(&self, state: &StreamState, shard: &Shard) -> bool {
        let parents_done = [shard.meta.parent, shard.meta.adjacent_parent]
            .into_iter()
            .flatten()
            .filter(|parent| state.shard(*parent).is_some())
            .all(|parent| self.cursors.get(&parent).is_some_and(|c| c.drained));
        parents_done
            && self
                .cursors
                .get(&shard.meta.ordinal)
                .is_none_or(|cursor| !cursor.drained)
    }

    /// Reads more records from the stream into the working set. In a cluster (`remote` is
    /// there), a shard this node holds no replica of is read from what [`Queue::prefetch`]
    /// read ahead, if its cursor is still where that read started (else not this time).
    fn refill(
        &mut self,
        meta: &QueueMeta,
        state: &StreamState,
        now: u64,
        mut remote: Option<&mut RemoteReads>,
    ) -> Result<(), Error> {
        for shard in &state.shards {
            let room = ENTRIES_MAX.saturating_sub(self.entries.len());
            if room == 0 || self.bytes >= BYTES_MAX {
                return Ok(());
            }
            let ordinal = shard.meta.ordinal;
            let mut prefetched = None;
            let is_remote = match remote.as_deref_mut() {
                Some(remote) if !shard.log.stored_here() => {
                    if let Some(at) = remote.reads.iter().position(|p| p.ordinal == ordinal) {
                        prefetched = Some(remote.reads.swap_remove(at));
                    }
                    true
                }
                _ => false,
            };
            if let std::collections::btree_map::Entry::Vacant(vacant) = self.cursors.entry(ordinal)
            {
                if is_remote {
                    match prefetched.as_mut().and_then(|p| p.start.take()) {
                        Some(start) => vacant.insert(start),
                        None => continue,
                    };
                } else {
                    vacant.insert(Self::initial_cursor(meta, shard)?);
                }
            }
            if !self.wants(state, shard) {
                continue;
            }
            let Some(cursor) = self.cursors.get(&ordinal) else {
                continue;
            };
            let read = if is_remote {
                match prefetched {
                    // Read ahead from where the cursor still is (else another receive
                    // moved it since, and this read is stale).
                    Some(prefetched) if prefetched.from == cursor.next => prefetched.read,
                    _ => continue,
                }
            } else {
                data::read_from(
                    state,
                    shard,
                    cursor.next,
                    room.min(READ_BATCH),
                    BYTES_MAX - self.bytes,
                    now,
                )?
            };
            let not_before_ms = cursor.not_before_ms;
            // A read ahead was bounded by the room there was then: what no longer fits is
            // read again from here.
            let mut stopped_at = None;
            for (number, stored) in read.records {
                let Some(decoded) = SeqNo::decode(&number) else {
                    continue;
                };
                let position = (decoded.counter >> 16, (decoded.counter & 0xFFFF) as u16);
                if stored.arrival_ms < not_before_ms {
                    continue;
                }
                let state = match self.recovered.get(&ordinal) {
                    Some(recovered) => match recovered.filter(position) {
                        Some(state) => state,
                        None => continue, // acknowledged before the restart
                    },
                    None => RecordState::default(),
                };
                let key = (ordinal, position.0, position.1);
                if self.entries.contains_key(&key) {
                    continue;
                }
                if is_remote && (self.entries.len() >= ENTRIES_MAX || self.bytes >= BYTES_MAX) {
                    stopped_at = Some(Position {
                        index: position.0,
                        slot: position.1,
                    });
                    break;
                }
                let seq = self.next_seq;
                self.next_seq += 1;
                self.bytes += stored.data.len() + stored.partition_key.len();
                if state.dead {
                    self.dead_visible.insert(seq, key);
                } else {
                    self.visible.insert(seq, key);
                }
                self.entries.insert(
                    key,
                    Entry {
                        seq,
                        record_id: number,
                        partition_key: String::from_utf8_lossy(&stored.partition_key).into_owned(),
                        data: stored.data,
                        arrival_ms: stored.arrival_ms,
                        state,
                        in_flight_until: None,
                        delivery: 0,
                    },
                );
            }
            let Some(cursor) = self.cursors.get_mut(&ordinal) else {
                continue;
            };
            cursor.next = stopped_at.unwrap_or(read.next);
            cursor.drained = read.ended && stopped_at.is_none();
            let next = (cursor.next.index, cursor.next.slot);
            if self
                .recovered
                .get(&ordinal)
                .is_some_and(|recovered| next > recovered.last_known())
            {
                self.recovered.remove(&ordinal);
            }
        }
        Ok(())
    }

    fn snapshot(&self) -> Snapshot {
        let mut shards: BTreeMap<u32, ShardSnapshot> = self
            .cursors
            .iter()
            .map(|(ordinal, cursor)| {
                (
                    *ordinal,
                    ShardSnapshot {
                        next: (cursor.next.index, cursor.next.slot),
                        drained: cursor.drained,
                        not_before_ms: cursor.not_before_ms,
                        pending: Vec::new(),
                    },
                )
            })
            .collect();
        for ((ordinal, index, slot), entry) in &self.entries {
            if let Some(shard) = shards.get_mut(ordinal) {
                shard.pending.push((*index, *slot, entry.state));
            }
        }
        for shard in shards.values_mut() {
            shard
                .pending
                .sort_by_key(|(index, slot, _)| (*index, *slot));
        }
        Snapshot { version: 1, shards }
    }
}

/// What one receive took, copied out of the lock.
struct Taken {
    key: RecordKey,
    delivery: u64,
    record_id: String,
    partition_key: String,
    data: Bytes,
    arrival_ms: u64,
    state: RecordState,
}

/// What one receive attempt took: the records, the next visibility deadline in flight, and
/// the ticket of what it recorded.
type TakeOutcome = (Vec<Taken>, Option<u64>, Option<u64>);

impl Queue {
    /// One attempt at a receive: the records taken (maybe none), when the next in-flight
    /// record's visibility runs out, and the ticket of what it recorded (if anything).
    /// In a cluster, `remote` holds what [`Queue::prefetch`] read of the shards not stored
    /// here; a failed remote read is forgotten (the shard is read again on the next receive)
    /// if records are visible after the refill, else left in `remote.failed` for the receive
    /// to answer, after this attempt's journal lines are written like any other's.
    fn take(
        &self,
        dead: bool,
        limit: usize,
        visibility_ms: u64,
        mut remote: Option<&mut RemoteReads>,
    ) -> Result<TakeOutcome, Error> {
        let meta = self.meta();
        let state = self.stream.state();
        let now = now_ms();
        let cutoff = now.saturating_sub(u64::from(state.retention_hours) * 3_600_000);
        let mut lines = Vec::new();
        let mut delivery = self.lock();
        delivery.expire(now, meta.max_receive_count, &mut lines);
        if !dead && delivery.visible.len() < limit {
            delivery.refill(&meta, &state, now, remote.as_deref_mut())?;
            if let Some(remote) = remote.filter(|_| !delivery.visible.is_empty()) {
                if let Some(failed) = remote.failed.take() {
                    let last = self.unreachable_warned_ms.load(Ordering::Relaxed);
                    if now.saturating_sub(last) >= UNREACHABLE_WARN_EVERY_MS {
                        self.unreachable_warned_ms.store(now, Ordering::Relaxed);
                        tracing::warn!(
                            queue = %self.arn,
                            error = ?failed.message,
                            "a shard's replicas did not answer; delivering the other shards' \
                             records (repeated at most every 30 s while it lasts)"
                        );
                    } else {
                        tracing::debug!(
                            queue = %self.arn,
                            error = ?failed.message,
                            "a shard's replicas did not answer"
                        );
                    }
                }
            }
        }
        let mut taken = Vec::new();
        let mut bytes = 0usize;
        while taken.len() < limit {
            let next = if dead {
                delivery.dead_visible.pop_first()
            } else {
                delivery.visible.pop_first()
            };
            let Some((_, key)) = next else {
                break;
            };
            let Some(entry) = delivery.entries.get(&key) else {
                continue;
            };
            if entry.arrival_ms < cutoff {
                delivery.remove(key); // past the stream's retention: never delivered again
                continue;
            }
            let size = entry.data.len() + entry.partition_key.len();
            if !taken.is_empty() && bytes + size > RECEIVE_BYTES_MAX {
                let seq = entry.seq;
                if dead {
                    delivery.dead_visible.insert(seq, key);
                } else {
                    delivery.visible.insert(seq, key);
                }
                break;
            }
            bytes += size;
            let number = next_delivery();
            let until = now + visibility_ms;
            let Some(entry) = delivery.entries.get_mut(&key) else {
                continue;
            };
            entry.delivery = number;
            entry.in_flight_until = Some(until);
            if !dead {
                entry.state.receive_count += 1;
                entry.state.first_receive_ms.get_or_insert(now);
                journal::receive_line(&mut lines, key, &entry.state);
            }
            taken.push(Taken {
                key,
                delivery: number,
                record_id: entry.record_id.clone(),
                partition_key: entry.partition_key.clone(),
                data: entry.data.clone(),
                arrival_ms: entry.arrival_ms,
                state: entry.state,
            });
            delivery.deadlines.push(Reverse((until, number, key)));
        }
        let mut ticket = None;
        if !lines.is_empty() {
            // Written (not fsynced) under the lock, so the journal's order is the state's.
            ticket = Some(self.store.append(&lines)?);
        }
        Ok((taken, delivery.next_deadline(), ticket))
    }
}

impl Queue {
    /// In a cluster, reads ahead (off the delivery lock: the reads cross the network) what
    /// the next refill will want of the shards this node holds no replica of: from each such
    /// shard's cursor (or its start, for a shard the queue has no cursor for yet), at most a
    /// batch and the room the working set has left. Reads that fail are kept as
    /// [`RemoteReads::failed`].
    async fn prefetch(&self, limit: usize) -> RemoteReads {
        let meta = self.meta();
        let state = self.stream.state();
        let mut remote = RemoteReads::default();
        let mut wanted = Vec::new();
        let (room, bytes_max) = {
            let delivery = self.lock();
            let room = ENTRIES_MAX.saturating_sub(delivery.entries.len());
            if delivery.visible.len() >= limit || room == 0 || delivery.bytes >= BYTES_MAX {
                return remote;
            }
            for shard in &state.shards {
                if shard.log.stored_here() || !delivery.wants(&state, shard) {
                    continue;
                }
                let from = delivery.cursors.get(&shard.meta.ordinal).map(|c| c.next);
                wanted.push((Arc::clone(shard), from));
            }
            (room.min(READ_BATCH), BYTES_MAX - delivery.bytes)
        };
        remote.any = !wanted.is_empty();
        let now = now_ms();
        for (shard, from) in wanted {
            let (start, from) = match from {
                Some(from) => (None, from),
                None => {
                    let since = Delivery::initial_start(&meta, &shard);
                    let start = since.map_or(StartAt::TrimHorizon, StartAt::AtTimestamp);
                    match data::start_position_anywhere(&shard, start).await {
                        Ok(next) => {
                            let cursor = ShardCursor {
                                next,
                                drained: false,
                                not_before_ms: since.unwrap_or(0),
                            };
                            (Some(cursor), next)
                        }
                        Err(error) => {
                            remote.failed.get_or_insert(error);
                            continue;
                        }
                    }
                }
            };
            match data::read_anywhere(&state, &shard, from, room, bytes_max, now, 0).await {
                Ok(read) => remote.reads.push(Prefetched {
                    ordinal: shard.meta.ordinal,
                    start,
                    from,
                    read,
                }),
                Err(error) => {
                    remote.failed.get_or_insert(error);
                }
            }
        }
        remote
    }
}

// ===== The operations =====

/// A delivery operation's input as JSON (what a [`ForwardedCall`] carries); `None` for the
/// operations every node answers from its catalogue.
fn delivery_json(request: &Request) -> Option<Vec<u8>> {
    let json = WireFormat::Json;
    Some(match request {
        Request::ReceiveQueueRecords(input) | Request::ReceiveDeadLetterQueueRecords(input) => {
            json.encode(input)
        }
        Request::AcknowledgeQueueRecords(input) => json.encode(input),
        Request::AcknowledgeDeadLetterQueueRecords(input) => json.encode(input),
        Request::RestoreDeadLetterQueueRecords(input) => json.encode(input),
        Request::UpdateQueueRecordsVisibility(input) => json.encode(input),
        Request::UpdateDeadLetterQueueRecordsVisibility(input) => json.encode(input),
        _ => return None,
    })
}

/// Answers one queue operation. In a cluster, the delivery operations (receive,
/// acknowledge, visibility, restore) are served by the home node, the metadata group's
/// leader: another node forwards them there.
pub async fn call(
    node: &Node,
    caller: &Caller,
    format: WireFormat,
    request: Request,
) -> Result<Vec<u8>, Error> {
    let mut term = None;
    if let Some(cluster) = node.cluster() {
        if let Some(body) = delivery_json(&request) {
            match cluster.queue_home().await? {
                QueueHome::Here { term: now } => term = Some(now),
                QueueHome::Elsewhere => {
                    return cluster
                        .forward_queue(ForwardedCall {
                            account: caller.account.clone(),
                            region: caller.region.clone(),
                            principal: caller.principal.clone(),
                            operation: request.operation().to_owned(),
                            cbor: format == WireFormat::Cbor,
                            body,
                        })
                        .await;
                }
            }
        }
    }
    serve(node, caller, format, request, term).await
}

/// Serves a [`ForwardedCall`] on the home node.
pub async fn serve_forwarded(node: &Node, call: ForwardedCall) -> ForwardedAnswer {
    let Some(cluster) = node.cluster() else {
        return ForwardedAnswer::NotHome;
    };
    let answer = async {
        let term = match cluster.queue_home().await? {
            QueueHome::Here { term } => term,
            QueueHome::Elsewhere => return Ok(None),
        };
        let request =
            riffle_proto::decode_request_in(WireFormat::Json, &call.operation, &call.body)?;
        if delivery_json(&request).is_none() {
            return Err(Error::internal(format!(
                "{} is not forwarded to a queue's home",
                call.operation
            )));
        }
        let caller = Caller {
            account: call.account.clone(),
            region: call.region.clone(),
            principal: call.principal.clone(),
            operation: request.operation(),
        };
        let format = if call.cbor {
            WireFormat::Cbor
        } else {
            WireFormat::Json
        };
        serve(node, &caller, format, request, Some(term))
            .await
            .map(Some)
    };
    match answer.await {
        Ok(Some(body)) => ForwardedAnswer::Body(body),
        Ok(None) => ForwardedAnswer::NotHome,
        Err(error) => ForwardedAnswer::Error {
            type_name: error.type_name().to_owned(),
            message: error.message,
        },
    }
}

/// Answers one queue operation here; `term` is the cluster term this node is the home in,
/// for the delivery operations.
async fn serve(
    node: &Node,
    caller: &Caller,
    format: WireFormat,
    request: Request,
    term: Option<u64>,
) -> Result<Vec<u8>, Error> {
    let encode = |output: &dyn erased::Encode| output.encode(format);
    Ok(match request {
        Request::CreateQueue(input) => encode(&create(node, caller, input).await?),
        Request::UpdateQueue(input) => encode(&update(node, caller, input).await?),
        Request::DeleteQueue(input) => {
            delete(node, caller, input.queue_arn.as_deref().unwrap_or_default()).await?;
            Vec::new()
        }
        Request::DescribeQueue(input) => {
            let queue = find(node, caller, input.queue_arn.as_deref().unwrap_or_default())?;
            encode(&QueueDescriptionOutput {
                queue_description: describe(node, &queue, None),
            })
        }
        Request::ListQueues(input) => encode(&list(node, caller, input)?),
        Request::ReceiveQueueRecords(input) => {
            encode(&receive(node, caller, input, false, term).await?)
        }
        Request::ReceiveDeadLetterQueueRecords(input) => {
            encode(&receive(node, caller, input, true, term).await?)
        }
        Request::AcknowledgeQueueRecords(input) => encode(
            &per_entry(
                node,
                caller,
                input.queue_arn,
                input.entries,
                Action::Ack,
                term,
            )
            .await?,
        ),
        Request::AcknowledgeDeadLetterQueueRecords(input) => encode(
            &per_entry(
                node,
                caller,
                input.queue_arn,
                input.entries,
                Action::AckDead,
                term,
            )
            .await?,
        ),
        Request::RestoreDeadLetterQueueRecords(input) => encode(
            &per_entry(
                node,
                caller,
                input.queue_arn,
                input.entries,
                Action::Restore,
                term,
            )
            .await?,
        ),
        Request::UpdateQueueRecordsVisibility(input) => encode(
            &per_entry(
                node,
                caller,
                input.queue_arn,
                input.entries,
                Action::Visibility,
                term,
            )
            .await?,
        ),
        Request::UpdateDeadLetterQueueRecordsVisibility(input) => encode(
            &per_entry(
                node,
                caller,
                input.queue_arn,
                input.entries,
                Action::VisibilityDead,
                term,
            )
            .await?,
        ),
        other => {
            return Err(Error::internal(format!(
                "{} is not a queue operation",
                other.operation()
            )))
        }
    })
}

/// Encoding outputs of different types through one closure.
mod erased {
    use riffle_proto::WireFormat;

    pub trait Encode {
        fn encode(&self, format: WireFormat) -> Vec<u8>;
    }

    impl<T: serde::Serialize> Encode for T {
        fn encode(&self, format: WireFormat) -> Vec<u8> {
            format.encode(self)
        }
    }
}

/// The queue an ARN names, authorized for the caller.
pub fn find(node: &Node, caller: &Caller, arn: &str) -> Result<Arc<Queue>, Error> {
    let parsed = riffle_proto::arn::parse_queue_arn(arn).ok_or_else(|| queue_not_found(arn))?;
    if parsed.region != caller.region {
        return Err(queue_not_found(arn));
    }
    let queue = node
        .queues
        .get(&parsed.account, &parsed.id)
        .ok_or_else(|| queue_not_found(arn))?;
    queue.authorize(caller)?;
    Ok(queue)
}

fn status(node: &Node, meta: &QueueMeta) -> QueueStatus {
    let window_ms = node.config.update_window.as_millis() as u64;
    let now = now_ms();
    if now < meta.created_ms.saturating_add(window_ms) {
        QueueStatus::Creating
    } else if meta
        .updated_ms
        .is_some_and(|updated| now < updated.saturating_add(window_ms))
    {
        QueueStatus::Updating
    } else {
        QueueStatus::Active
    }
}

fn start_type(meta: &QueueMeta) -> QueueStartingPositionType {
    QueueStartingPositionType::parse(&meta.start).unwrap_or(QueueStartingPositionType::Latest)
}

fn attributes_of(meta: &QueueMeta) -> QueueAttributes {
    QueueAttributes {
        visibility_timeout_seconds: Some(meta.visibility_timeout_s),
        dead_letter_configuration: Some(match meta.max_receive_count {
            Some(max) => DeadLetterConfiguration {
                target_type: DeadLetterTargetType::BuiltIn,
                max_receive_count: Some(max),
            },
            None => DeadLetterConfiguration {
                target_type: DeadLetterTargetType::None,
                max_receive_count: None,
            },
        }),
    }
}

/// The description; `shown` overrides the status (CreateQueue answers CREATING, UpdateQueue
/// UPDATING, as AWS does).
fn describe(node: &Node, queue: &Queue, shown: Option<QueueStatus>) -> QueueDescription {
    let meta = queue.meta();
    let status = shown.unwrap_or_else(|| status(node, &meta));
    let kind = start_type(&meta);
    // While CREATING only AT_TIMESTAMP's time is echoed; once ACTIVE, the effective start.
    let start_ms = match (status, kind) {
        (QueueStatus::Creating, QueueStartingPositionType::AtTimestamp) => meta.start_ms,
        (QueueStatus::Creating, _) => None,
        (_, kind) => {
            let retention_ms = u64::from(queue.stream.state().retention_hours) * 3_600_000;
            let earliest = queue
                .stream
                .created_ms
                .max(now_ms().saturating_sub(retention_ms));
            Some(match kind {
                QueueStartingPositionType::Latest => meta.created_ms,
                QueueStartingPositionType::TrimHorizon => earliest,
                QueueStartingPositionType::AtTimestamp => {
                    meta.start_ms.unwrap_or(meta.created_ms).max(earliest)
                }
            })
        }
    };
    QueueDescription {
        queue_name: meta.name.clone(),
        queue_arn: queue.arn.clone(),
        queue_status: status,
        queue_creation_timestamp: timestamp(meta.created_ms),
        stream_configuration_list: vec![QueueStreamConfiguration {
            stream_arn: queue.stream.arn.clone(),
            starting_position: Some(QueueStartingPosition {
                position_type: kind,
                timestamp: start_ms.map(timestamp),
            }),
        }],
        queue_attributes: Some(attributes_of(&meta)),
    }
}

/// The dead-letter setting a request asks for: `Ok(None)` to keep the current one.
fn dead_letter_of(attributes: &QueueAttributesInput) -> Result<Option<Option<u32>>, Error> {
    let Some(config) = &attributes.dead_letter_configuration else {
        return Ok(None);
    };
    let max = config.max_receive_count.map(|max| max.max(1) as u32);
    match (config.target(), max) {
        (Some(DeadLetterTargetType::BuiltIn), Some(max)) => Ok(Some(Some(max))),
        (Some(DeadLetterTargetType::BuiltIn), None) => Err(Error::validation_message(
            "MaxReceiveCount is required when TargetType is BUILT_IN.",
        )),
        (_, Some(_)) => Err(Error::validation_message(
            "MaxReceiveCount can be specified only when TargetType is BUILT_IN.",
        )),
        (_, None) => Ok(Some(None)),
    }
}

fn check_tag_count(count: usize) -> Result<(), Error> {
    if count > TAGS_MAX {
        return Err(Error::invalid_argument(format!(
            "A queue can have at most {TAGS_MAX} tags."
        )));
    }
    Ok(())
}

fn random_id() -> String {
    let mut bytes = [0u8; 10];
    if getrandom::fill(&mut bytes).is_err() {
        bytes = (now_ms() as u128 ^ 0x5bd1_e995).to_le_bytes()[..10]
            .try_into()
            .unwrap_or([7; 10]);
    }
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

async fn create(
    node: &Node,
    caller: &Caller,
    input: CreateQueueInput,
) -> Result<QueueDescriptionOutput, Error> {
    let name = input.queue_name.clone().unwrap_or_default();
    let configs = input.stream_configuration_list.clone().unwrap_or_default();
    let [config] = configs.as_slice() else {
        return Err(Error::invalid_argument(
            "StreamConfigurationList must contain exactly one entry: a queue delivers records \
             from a single data stream.",
        ));
    };
    let position = config.starting_position.clone().unwrap_or_default();
    let kind = position.kind().unwrap_or(QueueStartingPositionType::Latest);
    let start_ms = match (kind, position.timestamp) {
        (QueueStartingPositionType::AtTimestamp, Some(at)) => Some(at.epoch_ms_u64()),
        (QueueStartingPositionType::AtTimestamp, None) => {
            return Err(Error::validation_message(
                "Timestamp is required when the starting position Type is AT_TIMESTAMP.",
            ))
        }
        (_, Some(_)) => {
            return Err(Error::validation_message(
                "Timestamp can be specified only when the starting position Type is \
                 AT_TIMESTAMP.",
            ))
        }
        (_, None) => None,
    };
    let attributes = input.queue_attributes.clone().unwrap_or_default();
    let visibility_timeout_s = attributes
        .visibility_timeout_seconds
        .map_or(VISIBILITY_TIMEOUT_DEFAULT_S, |seconds| {
            seconds.max(0) as u32
        });
    let max_receive_count = dead_letter_of(&attributes)?.unwrap_or(Some(MAX_RECEIVE_COUNT_DEFAULT));
    let tags = input.tags.clone().unwrap_or_default();
    check_tag_count(tags.len())?;
    let stream_arn = config.stream_arn.clone().unwrap_or_default();
    let stream = crate::control::resolve_stream(node, caller, None, Some(&stream_arn))?;
    let _control = node.control().await;
    if stream.state().mode != StreamMode::OnDemand {
        return Err(Error::invalid_argument(format!(
            "Queues are supported only on data streams in on-demand capacity mode; stream {} \
             under account {} is provisioned.",
            stream.name, stream.account
        )));
    }
    let taken = node
        .queues
        .all()
        .iter()
        .any(|queue| queue.account == caller.account && queue.meta().name == name);
    if taken {
        return Err(Error::resource_in_use(format!(
            "Queue {name} under account {} already exists.",
            caller.account
        )));
    }
    let consumers_max = crate::advantage::consumers_per_stream_max(node, &stream.account);
    let registered = stream.state().consumers.len() + node.queues.count_on(&stream);
    if registered as u32 >= consumers_max {
        return Err(Error::limit_exceeded(format!(
            "Stream {} under account {} has reached its limit of {consumers_max} registered \
             consumers (enhanced fan-out consumers and queues).",
            stream.name, stream.account
        )));
    }
    let id = random_id();
    let meta = QueueMeta {
        account: caller.account.clone(),
        id: id.clone(),
        name,
        created_ms: now_ms(),
        stream_account: stream.account.clone(),
        stream_name: stream.name.clone(),
        stream_created_ms: stream.created_ms,
        start: kind.as_str().to_owned(),
        start_ms,
        visibility_timeout_s,
        max_receive_count,
        tags,
        policy: None,
        updated_ms: None,
    };
    // The delivery directory first, the catalogue second: a crash between leaves a directory
    // the next start removes (no queue names it).
    let queue = open_queue(node, &meta, Arc::clone(&stream), BTreeMap::new())?;
    node.propose(Command::CreateQueue { meta }).await?;
    // In a cluster, applying the command opened the queue here already (`reconcile`).
    let queue = match node.queues.get(&queue.account, &queue.id) {
        Some(opened) => opened,
        None => {
            node.queues.insert(Arc::clone(&queue));
            queue
        }
    };
    Ok(QueueDescriptionOutput {
        queue_description: describe(node, &queue, Some(QueueStatus::Creating)),
    })
}

fn open_queue(
    node: &Node,
    meta: &QueueMeta,
    stream: Arc<Stream>,
    recovered: BTreeMap<u32, Recovered>,
) -> Result<Arc<Queue>, Error> {
    let store = if node.cluster().is_some() {
        Store::Replicated(Replicated::default())
    } else {
        Store::Local(
            Journal::open(&queues_dir(node).join(&meta.id), node.config.durability)
                .map_err(internal)?,
        )
    };
    let queue = Arc::new(Queue {
        account: meta.account.clone(),
        id: meta.id.clone(),
        arn: riffle_proto::arn::queue_arn(&node.config.region, &meta.account, &meta.id),
        meta: RwLock::new(meta.clone()),
        policy: RwLock::new(None),
        stream,
        delivery: Mutex::new(Delivery::new(recovered)),
        store,
        notify: Notify::new(),
        watching: AtomicBool::new(false),
        deleted: AtomicBool::new(false),
        compacting: AtomicBool::new(false),
        unreachable_warned_ms: AtomicU64::new(0),
    });
    queue.set_meta(meta.clone());
    Ok(queue)
}

/// In a cluster, after each applied catalogue batch: opens the queues the catalogue names
/// and this node lacks (made through another node), publishes changed definitions, and
/// closes the queues it no longer names. Their delivery state is the catalogue's.
pub fn reconcile(node: &Node, queues: &BTreeMap<(String, String), QueueMeta>) {
    for meta in queues.values() {
        match node.queues.get(&meta.account, &meta.id) {
            Some(queue) => {
                if queue.meta() != *meta {
                    queue.set_meta(meta.clone());
                }
            }
            None => {
                let stream = node
                    .stream(&meta.stream_account, &meta.stream_name)
                    .filter(|stream| stream.created_ms == meta.stream_created_ms);
                let Some(stream) = stream else {
                    tracing::error!(queue = %meta.name, stream = %meta.stream_name, "a queue names a stream this node lacks");
                    continue;
                };
                match open_queue(node, meta, stream, BTreeMap::new()) {
                    Ok(queue) => node.queues.insert(queue),
                    Err(error) => {
                        tracing::error!(queue = %meta.name, %error, "cannot open a queue the catalogue names")
                    }
                }
            }
        }
    }
    for queue in node.queues.all() {
        if !queues.contains_key(&(queue.account.clone(), queue.id.clone())) {
            node.queues.remove(&queue.account, &queue.id);
            queue.deleted.store(true, Ordering::Release);
            queue.notify.notify_waiters();
        }
    }
}

/// At start: opens every queue of the catalogue with its recovered delivery state, and
/// removes delivery directories no queue names (a crash between creating one and the
/// catalogue write, or after a DeleteQueue's catalogue write).
pub fn open_all(node: &Node) -> Result<(), String> {
    let catalogue = node.catalogue_state();
    let dir = queues_dir(node);
    for meta in catalogue.queues.values() {
        let stream = node
            .stream(&meta.stream_account, &meta.stream_name)
            .filter(|stream| stream.created_ms == meta.stream_created_ms)
            .ok_or_else(|| {
                format!(
                    "queue {} names stream {} of account {}, which the catalogue lacks",
                    meta.name, meta.stream_name, meta.stream_account
                )
            })?;
        let recovered = journal::recover(&dir.join(&meta.id))
            .map_err(|error| format!("queue {}: {error}", meta.name))?;
        let queue = open_queue(node, meta, stream, recovered)
            .map_err(|error| format!("queue {}: {error}", meta.name))?;
        node.queues.insert(queue);
    }
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let named = catalogue.queues.values().any(|queue| queue.id == name);
            if !named && entry.path().is_dir() {
                tracing::info!(queue = %name, "removing the delivery state of a deleted queue");
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(())
}

async fn update(
    node: &Node,
    caller: &Caller,
    input: UpdateQueueInput,
) -> Result<QueueDescriptionOutput, Error> {
    let queue = find(node, caller, input.queue_arn.as_deref().unwrap_or_default())?;
    let attributes = input.queue_attributes.clone().unwrap_or_default();
    let dead_letter = dead_letter_of(&attributes)?;
    let _control = node.control().await;
    let mut meta = queue.meta();
    if let Some(seconds) = attributes.visibility_timeout_seconds {
        meta.visibility_timeout_s = seconds.max(0) as u32;
    }
    if let Some(max) = dead_letter {
        meta.max_receive_count = max;
    }
    meta.updated_ms = Some(now_ms());
    replace(node, &queue, meta).await?;
    Ok(QueueDescriptionOutput {
        queue_description: describe(node, &queue, Some(QueueStatus::Updating)),
    })
}

/// Persists a queue's new definition, then publishes it. The caller holds `control()`.
async fn replace(node: &Node, queue: &Queue, meta: QueueMeta) -> Result<(), Error> {
    node.propose(Command::ReplaceQueue { meta: meta.clone() })
        .await?;
    queue.set_meta(meta);
    Ok(())
}

async fn delete(node: &Node, caller: &Caller, arn: &str) -> Result<(), Error> {
    let queue = find(node, caller, arn)?;
    let _control = node.control().await;
    if node.queues.get(&queue.account, &queue.id).is_none() {
        return Err(queue_not_found(arn));
    }
    node.propose(Command::DeleteQueue {
        account: queue.account.clone(),
        id: queue.id.clone(),
    })
    .await?;
    node.queues.remove(&queue.account, &queue.id);
    queue.deleted.store(true, Ordering::Release);
    queue.notify.notify_waiters();
    let dir = queues_dir(node).join(&queue.id);
    let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
    Ok(())
}

fn list(node: &Node, caller: &Caller, input: ListQueuesInput) -> Result<ListQueuesOutput, Error> {
    let limit = input
        .max_results
        .map_or(LIST_QUEUES_DEFAULT, |max| max.max(1) as usize);
    let after = match &input.next_token {
        Some(token) => {
            let (position, _, issued_ms) =
                riffle_proto::token::decode_page_token(token, &node.token_key)?;
            if now_ms().saturating_sub(issued_ms) > riffle_proto::limits::NEXT_TOKEN_LIFETIME_MS {
                return Err(Error::expired_next_token(format!(
                    "The NextToken {token} has expired."
                )));
            }
            Some(position)
        }
        None => None,
    };
    let filters = input.stream_filter.clone().unwrap_or_default();
    let mut queues: Vec<(String, Arc<Queue>)> = node
        .queues
        .all()
        .into_iter()
        .filter(|queue| queue.account == caller.account)
        .filter(|queue| {
            filters.is_empty()
                || filters.iter().any(|filter| {
                    filter.stream_arn.as_deref() == Some(queue.stream.arn.as_str())
                        && filter.stream_creation_timestamp.is_none_or(|at| {
                            at.epoch_ms_u64() / 1000 == queue.stream.created_ms / 1000
                        })
                })
        })
        .map(|queue| (queue.meta().name, queue))
        .collect();
    queues.sort_by(|a, b| a.0.cmp(&b.0));
    let start = after.map_or(0, |after| {
        queues
            .iter()
            .position(|(name, _)| *name > after)
            .unwrap_or(queues.len())
    });
    let rest = &queues[start..];
    let page = &rest[..rest.len().min(limit)];
    let next_token = (rest.len() > limit).then(|| {
        riffle_proto::token::encode_page_token(
            &page
                .last()
                .map(|(name, _)| name.clone())
                .unwrap_or_default(),
            0,
            now_ms(),
            &node.token_key,
        )
    });
    Ok(ListQueuesOutput {
        queue_summaries: page
            .iter()
            .map(|(name, queue)| {
                let meta = queue.meta();
                QueueSummary {
                    queue_name: name.clone(),
                    queue_arn: queue.arn.clone(),
                    queue_status: status(node, &meta),
                    queue_creation_timestamp: timestamp(meta.created_ms),
                    streams: vec![QueueStreamIdentifier {
                        stream_arn: queue.stream.arn.clone(),
                        stream_creation_timestamp: timestamp(queue.stream.created_ms),
                    }],
                }
            })
            .collect(),
        next_token,
    })
}

async fn receive(
    node: &Node,
    caller: &Caller,
    input: ReceiveQueueRecordsInput,
    dead: bool,
    term: Option<u64>,
) -> Result<ReceiveQueueRecordsOutput, Error> {
    let queue = find(node, caller, input.queue_arn.as_deref().unwrap_or_default())?;
    queue.ensure_watching();
    let limit = input.limit.map_or(10, |limit| limit.clamp(1, 10) as usize);
    let wait = Duration::from_secs(
        input
            .wait_time_seconds
            .map_or(WAIT_TIME_DEFAULT_S, |seconds| seconds.max(1) as u64),
    );
    let visibility_s = input.visibility_timeout_seconds.map_or_else(
        || queue.meta().visibility_timeout_s,
        |seconds| seconds.max(0) as u32,
    );
    let visibility_ms = u64::from(visibility_s) * 1000;
    let until = tokio::time::Instant::now() + wait;
    loop {
        if let Some(term) = term {
            // Again after each wait: a failed replication asks for a rebuild.
            queue.enter_term(node, term).await;
        }
        let notified = queue.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if queue.deleted.load(Ordering::Acquire) {
            return Err(queue_not_found(&queue.arn));
        }
        // Only a cluster's home has shards stored elsewhere (a single node stores them all,
        // and takes nothing but the synchronous path).
        let mut remote = match term {
            Some(_) if !dead => Some(queue.prefetch(limit).await),
            _ => None,
        };
        let polls = remote.as_ref().is_some_and(|remote| remote.any);
        let (taken, next_deadline, ticket) =
            queue.take(dead, limit, visibility_ms, remote.as_mut())?;
        if let Some(ticket) = ticket {
            queue.persist_soon(node, ticket);
        }
        // A shard's replicas did not answer and nothing else was there to deliver: the same
        // error a local read's failure gives.
        if let Some(failed) = remote
            .and_then(|remote| remote.failed)
            .filter(|_| taken.is_empty())
        {
            return Err(failed);
        }
        if !taken.is_empty() {
            return Ok(ReceiveQueueRecordsOutput {
                queue_records: taken
                    .into_iter()
                    .map(|taken| QueueRecord {
                        receipt_handle: ReceiptHandle {
                            queue_id: queue.id.clone(),
                            queue_created_ms: queue.meta().created_ms,
                            shard_ordinal: taken.key.0,
                            log_index: taken.key.1,
                            slot: taken.key.2,
                            delivery: taken.delivery,
                            dead_letter: dead,
                        }
                        .encode(&node.token_key),
                        record_id: taken.record_id,
                        partition_key: (!taken.partition_key.is_empty())
                            .then_some(taken.partition_key),
                        data: taken.data,
                        approximate_arrival_timestamp: timestamp(taken.arrival_ms),
                        first_receive_timestamp: timestamp(
                            taken.state.first_receive_ms.unwrap_or(taken.arrival_ms),
                        ),
                        receive_count: taken.state.receive_count,
                    })
                    .collect(),
            });
        }
        let now = tokio::time::Instant::now();
        if now >= until {
            return Ok(ReceiveQueueRecordsOutput::default());
        }
        let mut wake = until;
        if let Some(deadline_ms) = next_deadline {
            let in_ms = deadline_ms.saturating_sub(now_ms());
            wake = wake.min(now + Duration::from_millis(in_ms + 1));
        }
        if polls {
            wake = wake.min(now + REMOTE_POLL);
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Ack,
    AckDead,
    Restore,
    Visibility,
    VisibilityDead,
}

impl Action {
    fn dead(self) -> bool {
        matches!(
            self,
            Action::AckDead | Action::Restore | Action::VisibilityDead
        )
    }
}

fn entry_error(handle: &str, code: &str, message: &str) -> QueueEntryError {
    QueueEntryError {
        receipt_handle: handle.to_owned(),
        error_code: code.to_owned(),
        error_message: Some(message.to_owned()),
    }
}

async fn per_entry(
    node: &Node,
    caller: &Caller,
    arn: Option<String>,
    entries: Option<Vec<ReceiptEntryInput>>,
    action: Action,
    term: Option<u64>,
) -> Result<QueueEntriesOutput, Error> {
    let queue = find(node, caller, arn.as_deref().unwrap_or_default())?;
    if let Some(term) = term {
        queue.enter_term(node, term).await;
    }
    let created_ms = queue.meta().created_ms;
    let mut output = QueueEntriesOutput::default();
    let mut lines = Vec::new();
    let mut woke = false;
    let mut ticket = None;
    {
        let meta = queue.meta();
        let now = now_ms();
        let mut delivery = queue.lock();
        delivery.expire(now, meta.max_receive_count, &mut lines);
        for entry in entries.unwrap_or_default() {
            let text = entry.receipt_handle.clone().unwrap_or_default();
            let handle = ReceiptHandle::decode(&text, &node.token_key).filter(|handle| {
                handle.queue_id == queue.id && handle.queue_created_ms == created_ms
            });
            let Some(handle) = handle else {
                output.failed.push(entry_error(
                    &text,
                    "InvalidArgumentException",
                    "The receipt handle is not valid for this queue.",
                ));
                continue;
            };
            if handle.dead_letter != action.dead() {
                let message = if handle.dead_letter {
                    "The receipt handle is of a dead-letter record; use the dead-letter operations."
                } else {
                    "The receipt handle is not of a dead-letter record."
                };
                output
                    .failed
                    .push(entry_error(&text, "InvalidArgumentException", message));
                continue;
            }
            let key = (handle.shard_ordinal, handle.log_index, handle.slot);
            let current = delivery
                .entries
                .get(&key)
                .map(|entry| (entry.delivery == handle.delivery, entry.in_flight_until));
            match (action, current) {
                (Action::Ack | Action::AckDead, None) => {
                    // Gone already: acknowledged before, or past retention.
                    let fetched = delivery.cursors.get(&key.0).is_some_and(|cursor| {
                        (cursor.next.index, cursor.next.slot) > (key.1, key.2)
                    });
                    if fetched {
                        output.successful.push(QueueEntryResult {
                            receipt_handle: text,
                        });
                    } else {
                        output.failed.push(entry_error(
                            &text,
                            "InvalidArgumentException",
                            "The receipt handle has expired.",
                        ));
                    }
                }
                (_, None) => output.failed.push(entry_error(
                    &text,
                    "ResourceNotFoundException",
                    "The record is no longer in the queue.",
                )),
                (_, Some((false, _))) => output.failed.push(entry_error(
                    &text,
                    "InvalidArgumentException",
                    "The receipt handle has expired: the record was received again since.",
                )),
                (Action::Ack | Action::AckDead, Some((true, _))) => {
                    delivery.remove(key);
                    journal::event_line(&mut lines, 'A', key);
                    output.successful.push(QueueEntryResult {
                        receipt_handle: text,
                    });
                }
                (Action::Restore, Some((true, _))) => {
                    if let Some(record) = delivery.entries.get_mut(&key) {
                        record.state.dead = false;
                        record.state.receive_count = 0;
                        record.in_flight_until = None;
                        let seq = record.seq;
                        delivery.dead_visible.remove(&seq);
                        delivery.visible.insert(seq, key);
                    }
                    journal::event_line(&mut lines, 'S', key);
                    woke = true;
                    output.successful.push(QueueEntryResult {
                        receipt_handle: text,
                    });
                }
                (Action::Visibility | Action::VisibilityDead, Some((true, None))) => {
                    output.failed.push(entry_error(
                        &text,
                        "InvalidArgumentException",
                        "The record is not in flight: its visibility timeout has expired.",
                    ))
                }
                (Action::Visibility | Action::VisibilityDead, Some((true, Some(_)))) => {
                    let seconds = entry.visibility_timeout_seconds.unwrap_or(0).max(0) as u64;
                    let until = now + seconds * 1000;
                    if let Some(record) = delivery.entries.get_mut(&key) {
                        record.in_flight_until = Some(until);
                        let number = record.delivery;
                        delivery.deadlines.push(Reverse((until, number, key)));
                    }
                    if seconds == 0 {
                        delivery.expire(now, meta.max_receive_count, &mut lines);
                        woke = true;
                    }
                    output.successful.push(QueueEntryResult {
                        receipt_handle: text,
                    });
                }
            }
        }
        if !lines.is_empty() {
            ticket = Some(queue.store.append(&lines)?);
        }
    }
    if let Some(ticket) = ticket {
        // Answered only once durable: an acknowledged record never comes back.
        queue.persist(node, ticket).await?;
    }
    if woke {
        queue.notify.notify_waiters();
    }
    maybe_compact(node, &queue);
    Ok(output)
}

/// Rewrites the snapshot and empties the journal once it has grown, off the async workers.
fn maybe_compact(node: &Node, queue: &Arc<Queue>) {
    let journal = match &queue.store {
        Store::Local(journal) => journal,
        Store::Replicated(replicated) => {
            if replicated.len.load(Ordering::Relaxed) <= REPLICATED_COMPACT_BYTES {
                return;
            }
            let ticket = {
                let delivery = queue.lock();
                // As on a single node: a start's (a new home's) recovery is read past first.
                if !delivery.recovered.is_empty() {
                    return;
                }
                replicated.len.store(0, Ordering::Relaxed);
                // Pushed under the lock, so it falls between the lines it sums up and the
                // next ones.
                replicated.push(DeliveryUpdate::Snapshot(delivery.snapshot()))
            };
            queue.persist_soon(node, ticket);
            return;
        }
    };
    if !journal.needs_compaction() || queue.compacting.swap(true, Ordering::AcqRel) {
        return;
    }
    let queue = Arc::clone(queue);
    tokio::task::spawn_blocking(move || {
        let delivery = queue.lock();
        // A start's recovery must be read past before its state can be written anew.
        if let (true, Store::Local(journal)) = (delivery.recovered.is_empty(), &queue.store) {
            let snapshot = delivery.snapshot();
            if let Err(error) = journal.compact(&snapshot) {
                tracing::warn!(queue = %queue.id, %error, "cannot compact a queue journal");
            }
        }
        drop(delivery);
        queue.compacting.store(false, Ordering::Release);
    });
}

// ===== Tags and policies on queue ARNs =====

/// TagResource on a queue.
pub async fn tag(
    node: &Node,
    caller: &Caller,
    arn: &str,
    tags: std::collections::BTreeMap<String, String>,
) -> Result<(), Error> {
    let queue = find(node, caller, arn)?;
    let _control = node.control().await;
    let mut meta = queue.meta();
    meta.tags.extend(tags);
    check_tag_count(meta.tags.len())?;
    replace(node, &queue, meta).await
}

/// UntagResource on a queue.
pub async fn untag(node: &Node, caller: &Caller, arn: &str, keys: &[String]) -> Result<(), Error> {
    let queue = find(node, caller, arn)?;
    let _control = node.control().await;
    let mut meta = queue.meta();
    meta.tags.retain(|key, _| !keys.contains(key));
    replace(node, &queue, meta).await
}

/// ListTagsForResource on a queue.
pub fn tags(node: &Node, caller: &Caller, arn: &str) -> Result<ListTagsForResourceOutput, Error> {
    let queue = find(node, caller, arn)?;
    Ok(ListTagsForResourceOutput {
        tags: queue
            .meta()
            .tags
            .into_iter()
            .map(|(key, value)| Tag {
                key,
                value: Some(value),
            })
            .collect(),
    })
}

/// GetResourcePolicy on a queue.
pub fn policy(node: &Node, caller: &Caller, arn: &str) -> Result<Option<String>, Error> {
    Ok(find(node, caller, arn)?.meta().policy)
}

/// PutResourcePolicy (`Some`) and DeleteResourcePolicy (`None`) on a queue.
pub async fn set_policy(
    node: &Node,
    caller: &Caller,
    arn: &str,
    text: Option<String>,
) -> Result<(), Error> {
    let queue = find(node, caller, arn)?;
    let _control = node.control().await;
    let mut meta = queue.meta();
    if text.is_none() && meta.policy.is_none() {
        return Err(Error::resource_policy_not_found(arn));
    }
    meta.policy = text;
    replace(node, &queue, meta).await
}

/// Whether `stream` has queues (it cannot be deleted or made provisioned then).
pub fn stream_has_queues(node: &Node, stream: &Stream) -> bool {
    node.queues.count_on(stream) > 0
}
