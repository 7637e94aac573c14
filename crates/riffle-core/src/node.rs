//! The node: the catalogue of streams and shards, and the operations on them.
//!
//! **Concurrency.** The catalogue is a `std::sync::RwLock` held only for map look-ups and
//! swaps, never across an await or I/O. Control-plane changes are serialised by an async mutex
//! (`control`) that also covers persisting `meta.json`, so the persisted catalogue always equals
//! the in-memory one after each change. Data-plane calls never take `control`: a put looks the
//! stream up, routes each record with a binary search over the open shards' hash ranges, and
//! appends to the shard logs.
//!
//! **Layout on disk.** `DATA/meta.json` (see [`crate::meta`]), `DATA/watermarks.json` (see
//! [`crate::watermarks`]) and `DATA/streams/<dir_id>/<ordinal>/` holding each shard's segment
//! log. What a start does with directories the catalogue does not name, and with logs that
//! lack what the watermarks say they hold, is in [`crate::startup`] and [`Node::open`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use riffle_log::{Expect, Log, LogOptions};
use tokio::sync::{watch, Mutex as AsyncMutex};

use crate::catalogue::{Applied, CatalogueState, Command};
use crate::meta::{
    self, AccountMeta, ClosedShard, ConsumerMeta, MetaDocument, RecordDistribution, ShardMeta,
    StreamMeta, StreamMode,
};
use crate::metrics::{ShardMetrics, StreamMetrics};
use crate::reshard::{self, OpenShard, Step};
use crate::shard_log::{AppendError, Durability, Flusher, ShardLog};
use crate::startup;
use crate::throttle::{ControlThrottle, Limits, ShardThrottle};
use crate::watermarks::{self, WatermarkDocument};

/// Everything `riffle serve` can configure about the domain.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    /// Delete `data_dir` when the node is dropped (`--in-memory`).
    pub ephemeral: bool,
    pub durability: Durability,
    pub region: String,
    pub default_account: String,
    pub log_options: LogOptions,
    /// Open shards an account may have (DescribeLimits' ShardLimit).
    pub shard_limit: u32,
    pub on_demand_stream_limit: u32,
    /// How often retention runs.
    pub retention_interval: Duration,
    /// How long a stream shows `UPDATING` after a reshard or mode change (AWS takes seconds
    /// to minutes; 0 keeps streams `ACTIVE`, which is what local tests want). While a stream
    /// is `UPDATING`, further resharding gets ResourceInUseException as on AWS, and
    /// DescribeStream, DescribeStreamSummary and ListShards show the shards from before a
    /// reshard (see [`Stream::shown_state`]).
    pub update_window: Duration,
    /// How long a new stream shows `CREATING` (0, the default: `ACTIVE` when CreateStream
    /// returns). A `CREATING` stream lists no shards and refuses data-plane calls as AWS does.
    pub create_window: Duration,
    /// How ON_DEMAND streams are sized (see [`crate::scaler`]).
    pub on_demand: crate::scaler::OnDemandConfig,
    /// SubscribeToShard lifetime and keep-alive (see [`crate::subscribe`]).
    pub subscriptions: crate::subscribe::SubscriptionConfig,
    /// Throughput and call-rate limits: AWS's, or none (`--limits off`).
    pub limits: Limits,
    /// How long an On-demand Advantage commitment lasts at least (AWS: 24 hours; see
    /// `crate::advantage`).
    pub commitment_minimum: Duration,
    /// The KMS keys of `--kms-keys` (see [`crate::crypto`]); empty without one.
    pub kms_keys: Arc<crate::crypto::KeyStore>,
    /// The node-wide cache of segment file handles: every shard log keeps its sealed
    /// segments' handles there (and a closed shard its last one), so the node holds one file
    /// per open shard plus the cache's capacity, whatever its reshard history. Handles idle for
    /// a retention interval are closed.
    pub file_cache: riffle_log::FileCache,
    /// The answer bytes held in memory at once, node-wide (`--response-memory-mib`; see
    /// [`crate::responses`]). GetRecords sizes its reads by it; the front end leases every
    /// answer it sends.
    pub responses: Arc<crate::responses::ResponseBudget>,
    /// `--accept-data-loss`: start even when shard logs lack acknowledged data or hold damaged
    /// data, setting the damage aside (see [`Node::open`]) instead of refusing.
    pub accept_data_loss: bool,
}

impl NodeConfig {
    pub fn new(data_dir: PathBuf) -> NodeConfig {
        NodeConfig {
            data_dir,
            ephemeral: false,
            durability: Durability::Sync,
            region: "us-east-1".into(),
            default_account: "000000000000".into(),
            log_options: LogOptions::default(),
            shard_limit: SHARD_LIMIT_DEFAULT,
            on_demand_stream_limit: ON_DEMAND_STREAM_LIMIT_DEFAULT,
            retention_interval: Duration::from_secs(60),
            update_window: Duration::ZERO,
            create_window: Duration::ZERO,
            on_demand: crate::scaler::OnDemandConfig::default(),
            subscriptions: crate::subscribe::SubscriptionConfig::default(),
            limits: Limits::Aws,
            commitment_minimum: Duration::from_millis(
                riffle_proto::limits::BILLING_COMMITMENT_MIN_MS,
            ),
            kms_keys: Arc::new(crate::crypto::KeyStore::empty()),
            file_cache: riffle_log::FileCache::default(),
            responses: Arc::default(),
            accept_data_loss: false,
        }
    }
}

/// Open shards per account unless `--shard-limit` says otherwise (DescribeLimits' ShardLimit).
/// AWS grants 20,000 in its three largest regions ([`riffle_proto::limits::SHARD_LIMIT_DEFAULT`])
/// and 1,000 or 6,000 elsewhere; riffle takes 1,000 because every open shard keeps its active
/// segment file open on this one node.
pub const SHARD_LIMIT_DEFAULT: u32 = 1_000;
/// On-demand streams per account (DescribeLimits' OnDemandStreamCountLimit), AWS's default.
pub const ON_DEMAND_STREAM_LIMIT_DEFAULT: u32 =
    riffle_proto::limits::ON_DEMAND_STREAM_LIMIT_DEFAULT;

/// Why the node could not start.
#[derive(Debug)]
pub enum OpenError {
    Meta(meta::MetaError),
    Log {
        dir: PathBuf,
        error: riffle_log::LogError,
    },
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A stream's records are sealed with a key this start cannot provide.
    Encryption(String),
    /// The data directory has no catalogue but holds these entries: not riffle's, or a
    /// riffle directory whose `meta.json` was lost.
    Foreign {
        dir: PathBuf,
        entries: Vec<String>,
    },
    /// Acknowledged data is missing or damaged, or data the catalogue does not name is
    /// present: one line each. Nothing was changed on disk.
    DataLost(Vec<String>),
    /// A queue's delivery state could not be read.
    Queues(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Meta(error) => write!(f, "cannot load the catalogue: {error}"),
            OpenError::Log { dir, error } => {
                write!(
                    f,
                    "cannot recover the shard log in {}: {error}",
                    dir.display()
                )
            }
            OpenError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            OpenError::Encryption(reason) => f.write_str(reason),
            OpenError::Queues(reason) => write!(f, "cannot open the queues: {reason}"),
            OpenError::Foreign { dir, entries } => write!(
                f,
                "{} is not empty and has no meta.json, so it is not a riffle data directory \
                 (or its catalogue was lost); it holds: {}. riffle starts only in an empty or \
                 new directory, or in one it wrote, and never deletes what it did not write: \
                 pick another --data-dir, or restore meta.json from a backup",
                dir.display(),
                entries.join(", ")
            ),
            OpenError::DataLost(problems) => {
                write!(
                    f,
                    "refusing to start: {} problem(s) with the data directory, nothing was \
                     changed:",
                    problems.len()
                )?;
                for problem in problems {
                    write!(f, "\n  - {problem}")?;
                }
                write!(
                    f,
                    "\nRestore the missing files from a backup, or start with \
                     --accept-data-loss to move the damaged or unknown data into \
                     lost+found/ inside the data directory and go on without it (a damaged \
                     open shard is closed at its last intact record and a new shard takes \
                     its hash range)."
                )
            }
        }
    }
}

impl std::error::Error for OpenError {}

/// A shard: its immutable identity and hash range, its log, and its throughput limiter.
pub struct Shard {
    pub meta: ShardMeta,
    pub log: Arc<ShardLog>,
    /// `None` when limits are off: then nothing on the data path consults a limiter. Shared
    /// (`Arc`) with the closed copy a reshard makes of a parent, whose reads stay limited.
    pub throttle: Option<Arc<ShardThrottle>>,
    /// Shard-level counters (shared, like `throttle`, with the closed copy of a parent).
    pub metrics: Arc<ShardMetrics>,
}

impl Shard {
    /// A shard over an opened log, with full throughput buckets under `limits`.
    pub fn new(meta: ShardMeta, log: Arc<ShardLog>, limits: Limits) -> Shard {
        Shard {
            meta,
            log,
            throttle: ShardThrottle::for_limits(limits).map(Arc::new),
            metrics: Arc::default(),
        }
    }

    pub fn id(&self) -> String {
        riffle_proto::shard_id::shard_id(self.meta.ordinal)
    }

    /// The creation time its sequence numbers carry (see `ShardMeta::sequence_epoch_s`).
    pub fn created_s(&self) -> u64 {
        self.meta.sequence_epoch_s()
    }

    pub fn is_open(&self) -> bool {
        self.meta.closed.is_none()
    }
}

/// The settings a new stream starts with besides its mode, shards and tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    pub max_record_size_kib: u32,
    pub record_distribution: RecordDistribution,
}

impl Default for StreamSettings {
    fn default() -> StreamSettings {
        StreamSettings {
            max_record_size_kib: riffle_proto::limits::RECORD_SIZE_KIB_DEFAULT,
            record_distribution: RecordDistribution::PartitionKey,
        }
    }
}

/// The mutable part of a stream, swapped under its lock.
#[derive(Clone)]
pub struct StreamState {
    pub mode: StreamMode,
    pub retention_hours: u32,
    pub max_record_size_kib: u32,
    pub tags: BTreeMap<String, String>,
    pub shard_level_metrics: Vec<String>,
    pub next_shard_ordinal: u32,
    /// Every shard still listed (open, or closed but within retention), by ordinal.
    pub shards: Vec<Arc<Shard>>,
    /// Enhanced fan-out consumers, in registration order.
    pub consumers: Vec<ConsumerMeta>,
    /// The stream's resource policy, parsed.
    pub policy: Option<Arc<crate::policy::ResourcePolicy>>,
    /// UpdateStreamWarmThroughput's target write MiB/s (see `crate::advantage`).
    pub warm_throughput_mibps: Option<u32>,
    /// How new records are placed on shards (UpdateStreamRecordDistributionStrategy).
    pub record_distribution: RecordDistribution,
    /// The keys of an encrypted stream (or one that was): `None` if it never was.
    pub crypto: Option<Arc<crate::crypto::StreamCrypto>>,
}

impl StreamState {
    pub fn open_shards(&self) -> impl Iterator<Item = &Arc<Shard>> {
        self.shards.iter().filter(|shard| shard.is_open())
    }

    pub fn shard(&self, ordinal: u32) -> Option<&Arc<Shard>> {
        self.shards
            .binary_search_by_key(&ordinal, |shard| shard.meta.ordinal)
            .ok()
            .map(|position| &self.shards[position])
    }
}

pub struct Stream {
    pub account: String,
    pub name: String,
    pub arn: String,
    pub created_ms: u64,
    pub dir_id: String,
    state: RwLock<Arc<StreamState>>,
    /// Open shards sorted by starting hash key, for routing.
    routes: RwLock<Arc<Vec<Arc<Shard>>>>,
    /// Bumped whenever `routes` changes, so a put that met a sealed shard can wait for the
    /// reshard to be published and route again (no polling).
    routes_epoch: watch::Sender<u64>,
    /// The stream reports `UPDATING` until this time (epoch ms).
    updating_until_ms: AtomicU64,
    /// The stream reports `CREATING` until this time (epoch ms); 0 once it is `ACTIVE`, so the
    /// data path pays no clock read for it.
    creating_until_ms: AtomicU64,
    /// The shards (their metadata only, so no log is kept open for them) from before the last
    /// reshard, and the `updating_until_ms` it set: what the listings show while that window
    /// lasts (see [`Stream::shown_state`]).
    shards_before_reshard: std::sync::Mutex<Option<(u64, Vec<ShardMeta>)>>,
    /// When UpdateShardCount was called (epoch ms) within the last 24 hours, for AWS's limit of
    /// ten per rolling day. Kept in memory only: a restart forgets it, which errs on the side
    /// of allowing a scaling.
    scalings_ms: std::sync::Mutex<Vec<u64>>,
    /// Stream-level counters (`crate::metrics`), updated once per request.
    pub metrics: StreamMetrics,
    /// Start/StopStreamEncryption calls of the last 24 hours, for AWS's 25 of each.
    pub(crate) encryption_changes: crate::encryption::ChangeLog,
    /// The next turn of AUTO distribution (see [`Stream::spread_keys`]); per node, in memory.
    spread_turn: AtomicU64,
}

impl Stream {
    /// A consistent snapshot of the stream's state.
    pub fn state(&self) -> Arc<StreamState> {
        Arc::clone(&self.state.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn set_state(&self, state: StreamState) {
        let mut routes: Vec<Arc<Shard>> = state.open_shards().cloned().collect();
        routes.sort_by_key(|shard| shard.meta.starting_hash_key);
        *self.routes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(routes);
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(state);
        self.routes_epoch.send_modify(|epoch| *epoch += 1);
    }

    /// A receiver that sees the next change of the routes (see `routes_epoch`).
    pub fn watch_routes(&self) -> watch::Receiver<u64> {
        self.routes_epoch.subscribe()
    }

    /// The open shard whose inclusive hash range holds `hash_key`. Open shards always partition
    /// `[0, 2^128)`, so there is exactly one.
    pub fn route(&self, hash_key: u128) -> Arc<Shard> {
        let routes = Arc::clone(&self.routes.read().unwrap_or_else(|p| p.into_inner()));
        let position = routes.partition_point(|shard| shard.meta.starting_hash_key <= hash_key);
        assert!(position > 0, "open shards must cover hash key 0");
        let shard = &routes[position - 1];
        assert!(
            hash_key <= shard.meta.ending_hash_key,
            "open shards must partition the key space"
        );
        Arc::clone(shard)
    }

    /// Hash keys for the `count` records of a put under AUTO distribution: the starting key of
    /// each open shard in turn, carrying on where the stream's previous put stopped, so that
    /// records spread evenly over the open shards whatever keys their producers gave. The keys
    /// go through [`Stream::route`] like any others, so a reshard before the append sends a
    /// record to a child of its shard, as it would a keyed one.
    pub fn spread_keys(&self, count: usize) -> Vec<u128> {
        let routes = Arc::clone(&self.routes.read().unwrap_or_else(|p| p.into_inner()));
        if routes.is_empty() {
            // No open shard (a stream still CREATING): the put is refused before routing.
            return vec![0; count];
        }
        let first = self.spread_turn.fetch_add(count as u64, Ordering::Relaxed);
        let shards = routes.len() as u64;
        (0..count as u64)
            .map(|turn| {
                let position = (first.wrapping_add(turn) % shards) as usize;
                routes[position].meta.starting_hash_key
            })
            .collect()
    }

    /// `CREATING` for `--create-window-ms` after CreateStream, `UPDATING` for
    /// `--update-window-ms` after a change, else `ACTIVE`.
    pub fn status(&self) -> &'static str {
        if self.is_creating() {
            "CREATING"
        } else if now_ms() < self.updating_until_ms.load(Ordering::Acquire) {
            "UPDATING"
        } else {
            "ACTIVE"
        }
    }

    /// Whether the stream is still `CREATING`: then it has no shards to write to or read from
    /// yet, and data-plane calls are refused as for a stream that does not exist, as AWS does.
    /// Costs one atomic load once the stream is `ACTIVE`.
    pub fn is_creating(&self) -> bool {
        let until = self.creating_until_ms.load(Ordering::Acquire);
        if until == 0 {
            return false;
        }
        if now_ms() < until {
            return true;
        }
        self.creating_until_ms.store(0, Ordering::Release);
        false
    }

    /// Shows the new stream as `CREATING` for `window` from now.
    pub fn mark_creating(&self, window: Duration) {
        if !window.is_zero() {
            let until = now_ms().saturating_add(window.as_millis() as u64);
            self.creating_until_ms.store(until, Ordering::Release);
        }
    }

    /// The state DescribeStream, DescribeStreamSummary and ListShards show: the current one,
    /// except that a `CREATING` stream shows no shards yet, and one `UPDATING` after a reshard
    /// shows the shards from before it (parents still open, no children), as AWS does until the
    /// stream is `ACTIVE` again. Only what is shown differs: writes and reads already use the
    /// new shards.
    pub fn shown_state(&self) -> Arc<StreamState> {
        let state = self.state();
        let shards = match self.status() {
            "CREATING" => Vec::new(),
            "UPDATING" => {
                let until = self.updating_until_ms.load(Ordering::Acquire);
                let before = self
                    .shards_before_reshard
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                match before.as_ref() {
                    Some((window_until, metas)) if *window_until == until => {
                        Self::shards_as_they_were(&state, metas)
                    }
                    _ => return state,
                }
            }
            _ => return state,
        };
        Arc::new(StreamState {
            shards,
            ..(*state).clone()
        })
    }

    /// The shards of `metas` as they are in `state`, or, for a parent a reshard closed since,
    /// as it was then (open): the same log, limiter and counters under the old metadata.
    fn shards_as_they_were(state: &StreamState, metas: &[ShardMeta]) -> Vec<Arc<Shard>> {
        metas
            .iter()
            .filter_map(|meta| {
                let current = state.shard(meta.ordinal)?;
                if current.meta.closed.is_some() == meta.closed.is_some() {
                    return Some(Arc::clone(current));
                }
                Some(Arc::new(Shard {
                    meta: meta.clone(),
                    log: Arc::clone(&current.log),
                    throttle: current.throttle.clone(),
                    metrics: Arc::clone(&current.metrics),
                }))
            })
            .collect()
    }

    /// Records an UpdateShardCount at `now_ms` and returns how many fall within the last 24
    /// hours, this one included.
    pub fn record_scaling(&self, now_ms: u64) -> u32 {
        let mut scalings = self.scalings_ms.lock().unwrap_or_else(|p| p.into_inner());
        scalings.retain(|at| now_ms.saturating_sub(*at) < 24 * 3_600_000);
        scalings.push(now_ms);
        scalings.len() as u32
    }

    /// Takes back the scaling [`Stream::record_scaling`] just recorded (it was refused).
    pub fn forget_last_scaling(&self) {
        self.scalings_ms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
    }

    /// Shows the stream as `UPDATING` for `window` from now.
    pub fn mark_updating(&self, window: Duration) {
        let until = now_ms().saturating_add(window.as_millis() as u64);
        let mut before = self
            .shards_before_reshard
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *before = None;
        self.updating_until_ms.store(until, Ordering::Release);
    }

    /// Shows the stream as `UPDATING` for `window` from now after a reshard, listing the shards
    /// of `before` (the state the reshard started from) until then.
    pub fn mark_resharded(&self, window: Duration, before: &StreamState) {
        let until = now_ms().saturating_add(window.as_millis() as u64);
        let mut shown = self
            .shards_before_reshard
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *shown = (!window.is_zero()).then(|| {
            let metas = before
                .shards
                .iter()
                .map(|shard| shard.meta.clone())
                .collect();
            (until, metas)
        });
        self.updating_until_ms.store(until, Ordering::Release);
    }

    fn to_meta_with(&self, state: &StreamState) -> StreamMeta {
        let (encryption, sealing_keys) = crate::encryption::to_meta(state.crypto.as_deref());
        StreamMeta {
            account: self.account.clone(),
            name: self.name.clone(),
            dir_id: self.dir_id.clone(),
            created_ms: self.created_ms,
            mode: state.mode,
            retention_hours: state.retention_hours,
            max_record_size_kib: state.max_record_size_kib,
            tags: state.tags.clone(),
            shard_level_metrics: state.shard_level_metrics.clone(),
            next_shard_ordinal: state.next_shard_ordinal,
            shards: state
                .shards
                .iter()
                .map(|shard| shard.meta.clone())
                .collect(),
            consumers: state.consumers.clone(),
            policy: state.policy.as_ref().map(|policy| policy.text.clone()),
            warm_throughput_mibps: state.warm_throughput_mibps,
            record_distribution: state.record_distribution,
            encryption,
            sealing_keys,
        }
    }
}

type StreamKey = (String, String);

pub struct Node {
    pub config: NodeConfig,
    /// Authenticates shard iterators and pagination tokens.
    pub token_key: [u8; 32],
    /// The KMS keys: `config.kms_keys`, with the AWS-managed key once it exists.
    pub keys: Arc<crate::crypto::KeyStore>,
    streams: RwLock<HashMap<StreamKey, Arc<Stream>>>,
    control: AsyncMutex<()>,
    flusher: Flusher,
    /// Control-plane call rates; `None` when limits are off.
    pub control_throttle: Option<ControlThrottle>,
    /// Live SubscribeToShard streams, by consumer and shard.
    pub subscriptions: crate::subscribe::Subscriptions,
    /// The catalogue state machine's state as last persisted (see [`crate::catalogue`]): the
    /// truth `meta.json` holds. Changed only by [`Node::propose`], under `control`.
    catalogue: std::sync::Mutex<CatalogueState>,
    /// The last watermarks written (see `crate::watermarks`); its lock orders the writes.
    watermarks: std::sync::Mutex<WatermarkDocument>,
    /// Set on a cluster node (see [`ClusterSeam`]); unset, the node is a single node.
    cluster: std::sync::OnceLock<Arc<dyn ClusterSeam>>,
    /// Orders [`Node::apply_catalogue`] calls (never held across a proposal).
    reconciling: AsyncMutex<()>,
    /// Bumped after every channel change, to wake the delivery manager.
    channels_changed: watch::Sender<u64>,
    /// Queues and their delivery state (see `crate::queues`).
    pub queues: crate::queues::Queues,
}

/// A boxed future, as the cluster seam's methods return.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// What a cluster node plugs into the node (implemented by riffle-cluster): the two seams of
/// ARCHITECTURE.md ("The cluster"). The catalogue replica is `propose`; the shard replicator
/// is the [`ShardLog`] that `open_shard` returns, whose appends go through its group.
pub trait ClusterSeam: Send + Sync + 'static {
    /// Proposes `command` to the metadata group; resolves once it is applied on this node
    /// (so this node's catalogue already reflects it), with the catalogue's answer.
    fn propose(&self, command: Command) -> BoxFuture<Result<Applied, crate::Error>>;
    /// The log of the shard `meta` of the stream stored as `dir_id`, in `dir`: its group is
    /// opened (and, for a new shard, started with `meta.replicas`) unless it is open already,
    /// in which case the same log is returned.
    fn open_shard(
        &self,
        dir_id: &str,
        meta: &ShardMeta,
        dir: PathBuf,
    ) -> BoxFuture<Result<Arc<ShardLog>, String>>;
    /// Stops the groups of these shards of the stream stored as `dir_id` (deleted or expired).
    fn close_shards(&self, dir_id: &str, ordinals: &[u32]);
    /// The nodes that are to replicate each of `count` shards made now (one list per shard,
    /// none empty), chosen from the catalogue as this node applied it; an error while no
    /// node able to hold a replica is known (a node just started, say), so that no shard is
    /// ever made without replicas.
    fn place_new_shards(&self, count: usize) -> BoxFuture<Result<Vec<Vec<u64>>, crate::Error>>;
    /// Whether this node leads the metadata group (background deciders such as the ON_DEMAND
    /// scaler run on that node only).
    fn leads_catalogue(&self) -> bool;
    /// This node's view of the cluster (members, leaders, shard replicas, lag) as JSON, for
    /// `GET /cluster/status` and `riffle cluster status`.
    fn status_json(&self) -> BoxFuture<String>;
    /// Why this node no longer answers API calls (it left the cluster), if it does not.
    fn refusal(&self) -> Option<String> {
        None
    }
    /// Where queue delivery is served now (see `crate::queues`): here, under the metadata
    /// group's `term` this node leads, once it has applied everything committed before it;
    /// or on another node.
    fn queue_home(&self) -> BoxFuture<Result<crate::queues::QueueHome, crate::Error>>;
    /// Has the home node serve a queue delivery operation (this node, if it became the
    /// home meanwhile), retrying while the home changes; the answer is encoded as asked.
    fn forward_queue(
        &self,
        call: crate::queues::ForwardedCall,
    ) -> BoxFuture<Result<Vec<u8>, crate::Error>>;
    /// Commits `command` (a [`Command::QueueDelivery`]) through the metadata group from
    /// this node, which must still lead it in `term`: never forwarded, so a deposed home's
    /// updates are refused rather than applied behind its successor's back.
    fn propose_queue(&self, command: Command, term: u64) -> BoxFuture<Result<(), crate::Error>>;
    /// An operator's request to the cluster (`POST /cluster/...`: `riffle cluster leave`,
    /// `remove`): `body` as sent, `proof` its authentication header; answered with an HTTP
    /// status and a JSON body.
    fn admin(&self, path: &str, body: Vec<u8>, proof: Option<String>) -> BoxFuture<(u16, String)>;
    /// Whether an operator's read of `path` (`GET /cluster/status`) proves the cluster
    /// secret: `at_ms` as sent (the request's time, checked against this node's clock) and
    /// `proof` its authentication header. `Err` says why not.
    fn check_read_proof(
        &self,
        path: &str,
        at_ms: Option<&str>,
        proof: Option<&str>,
    ) -> Result<(), String>;
}

/// How often the watermarks are rewritten (when something changed).
const WATERMARK_INTERVAL: Duration = Duration::from_secs(1);

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

fn streams_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("streams")
}

fn shard_dir(data_dir: &Path, dir_id: &str, ordinal: u32) -> PathBuf {
    streams_dir(data_dir).join(dir_id).join(ordinal.to_string())
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> OpenError + '_ {
    move |error| OpenError::Io {
        path: path.to_path_buf(),
        error,
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // getrandom only fails where the OS has no entropy source at all; fall back to the clock so
    // a node still starts (tokens are then guessable, which is logged).
    if getrandom::fill(&mut bytes).is_err() {
        tracing::warn!("no OS randomness; deriving keys from the clock");
        let seed = now_ms().to_le_bytes();
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = seed[i % seed.len()] ^ (i as u8).wrapping_mul(31);
        }
    }
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn parse_hex_key(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(key)
}

impl Node {
    /// Opens the data directory, recovers every shard log and starts the flusher.
    ///
    /// Refuses, changing nothing, a directory it cannot account for (see `crate::startup`)
    /// and any shard log that lacks acknowledged data or holds damaged data (see
    /// `crate::watermarks`), naming every such shard at once. With
    /// `config.accept_data_loss` it instead sets the damaged parts aside in
    /// `DATA/lost+found/` and closes each damaged open shard at its last intact record, with
    /// a new shard taking its hash range, so that no sequence number is ever issued twice.
    pub fn open(config: NodeConfig) -> Result<Arc<Node>, OpenError> {
        let data_dir = config.data_dir.clone();
        let loaded = if startup::has_catalogue(&data_dir) {
            meta::load(&data_dir).map_err(OpenError::Meta)?
        } else {
            match startup::check_new_dir(&data_dir).map_err(io_error(&data_dir))? {
                Ok(()) => None,
                Err(entries) => {
                    return Err(OpenError::Foreign {
                        dir: data_dir,
                        entries,
                    })
                }
            }
        };
        riffle_log::create_owner_only_dirs(&streams_dir(&data_dir)).map_err(io_error(&data_dir))?;
        let linger = match config.durability {
            Durability::Async { interval_ms } => Duration::from_millis(interval_ms),
            Durability::Sync | Durability::None => Duration::ZERO,
        };
        let flusher = Flusher::start(linger).map_err(io_error(&data_dir))?;
        let fresh = loaded.is_none();
        let mut document = loaded.unwrap_or_else(|| MetaDocument {
            format_version: meta::META_FORMAT_VERSION,
            token_key_hex: hex(&random_bytes::<32>()),
            streams: Vec::new(),
            accounts: BTreeMap::new(),
            aws_managed_key: None,
            removing: Vec::new(),
            watermarks: false,
            channels: Vec::new(),
            queues: Vec::new(),
            nodes_leaving: Vec::new(),
            nodes_removed: Vec::new(),
            queue_delivery: Vec::new(),
        });
        let token_key = parse_hex_key(&document.token_key_hex).ok_or_else(|| {
            OpenError::Meta(meta::MetaError::Corrupt {
                path: data_dir.join(meta::META_FILE),
                reason: "token_key_hex is not 64 hex digits".into(),
            })
        })?;
        let keys = Arc::clone(&config.kms_keys);
        if let Some(managed) = &document.aws_managed_key {
            keys.install_managed(managed)
                .map_err(OpenError::Encryption)?;
        }
        // Every stream's keys before any log is opened: a missing key refuses the start.
        let mut cryptos = Vec::with_capacity(document.streams.len());
        for stream_meta in &document.streams {
            cryptos.push(
                crate::encryption::restore(&keys, stream_meta).map_err(OpenError::Encryption)?,
            );
        }

        let marks = match watermarks::load(&data_dir).map_err(OpenError::Meta)? {
            Some(marks) => marks,
            None if document.watermarks && !config.accept_data_loss => {
                return Err(OpenError::DataLost(vec![format!(
                    "{} is missing although {} says it was kept: without it riffle cannot \
                     tell whether any shard lost acknowledged records",
                    data_dir.join(watermarks::WATERMARKS_FILE).display(),
                    data_dir.join(meta::META_FILE).display()
                )]))
            }
            // A directory written before watermarks existed (or the operator accepts the
            // loss of the file): nothing is known beyond what the logs and catalogue say.
            None => WatermarkDocument::default(),
        };
        let now = now_ms();
        let keep = startup::lost_and_found(&data_dir, now);
        let mut problems = Vec::new();
        let mut changed = false;

        // Directories the catalogue does not name.
        for found in startup::sweep_streams(&data_dir, &document).map_err(io_error(&data_dir))? {
            match found {
                startup::Unknown::Removed(_) => {}
                startup::Unknown::Unaccounted(relative) if config.accept_data_loss => {
                    let to = startup::set_aside_dir(&data_dir, &relative, &keep)
                        .map_err(io_error(&data_dir))?;
                    tracing::warn!(dir = %relative, kept = %to.display(), "set aside data the catalogue does not name (--accept-data-loss)");
                }
                startup::Unknown::Unaccounted(relative) => problems.push(format!(
                    "{} holds data that {} does not name; riffle will not delete or adopt it \
                     (restore the catalogue that names it, or move it out of the data directory)",
                    streams_dir(&data_dir).join(&relative).display(),
                    meta::META_FILE
                )),
            }
        }
        if !document.removing.is_empty() {
            document.removing.clear();
            changed = true;
        }

        // Every shard log, checked against what was synced and trimmed.
        let mut logs: Vec<Vec<Option<Log>>> = Vec::with_capacity(document.streams.len());
        let mut damaged: Vec<(usize, usize)> = Vec::new();
        for (stream_position, stream_meta) in document.streams.iter().enumerate() {
            let mut stream_logs = Vec::with_capacity(stream_meta.shards.len());
            for (shard_position, shard_meta) in stream_meta.shards.iter().enumerate() {
                let name = format!(
                    "stream {} (account {}) {}",
                    stream_meta.name,
                    stream_meta.account,
                    riffle_proto::shard_id::shard_id(shard_meta.ordinal)
                );
                let mark = marks
                    .shards
                    .get(&watermarks::key(&stream_meta.dir_id, shard_meta.ordinal))
                    .copied()
                    .unwrap_or_default();
                let closed_last = shard_meta.closed.map_or(0, |closed| closed.last_index);
                let expect = Expect {
                    synced_through: mark.synced.max(closed_last),
                    torn_tail_allowed: !marks.clean_shutdown,
                };
                let dir = shard_dir(&data_dir, &stream_meta.dir_id, shard_meta.ordinal);
                match Self::open_log(&config, &dir, expect, mark.first, &keep, &name) {
                    Ok((mut log, lost)) => {
                        if shard_meta.closed.is_some() {
                            // Recovered, so durable: a closed shard keeps no file open while
                            // it is not read, even while every log is being checked.
                            log.unpin_active();
                        }
                        if let Some(lost) = lost {
                            problems.push(format!("{name}: {lost}"));
                            damaged.push((stream_position, shard_position));
                        }
                        stream_logs.push(Some(log));
                    }
                    Err(error) => {
                        problems.push(format!("{name}: {error}"));
                        stream_logs.push(None);
                    }
                }
            }
            logs.push(stream_logs);
        }
        if config.accept_data_loss {
            for problem in &problems {
                tracing::warn!(%problem, "going on without lost or damaged data (--accept-data-loss)");
            }
        } else if !problems.is_empty() {
            return Err(OpenError::DataLost(problems));
        }

        // Accepted damage: each damaged shard closes at its last intact record; an open one
        // hands its hash range to a new shard, so its lost sequence numbers are never
        // issued again.
        for &(stream_position, shard_position) in &damaged {
            let Some(last_index) = logs[stream_position][shard_position]
                .as_ref()
                .map(Log::last_index)
            else {
                continue;
            };
            let stream_meta = &mut document.streams[stream_position];
            let shard_meta = stream_meta.shards[shard_position].clone();
            match shard_meta.closed {
                Some(closed) => {
                    stream_meta.shards[shard_position].closed = Some(ClosedShard {
                        last_index: closed.last_index.min(last_index),
                        ..closed
                    });
                }
                None => {
                    stream_meta.shards[shard_position].closed = Some(ClosedShard {
                        last_index,
                        closed_ms: now,
                    });
                    let ordinal = stream_meta.next_shard_ordinal;
                    stream_meta.next_shard_ordinal += 1;
                    let replacement = ShardMeta {
                        ordinal,
                        starting_hash_key: shard_meta.starting_hash_key,
                        ending_hash_key: shard_meta.ending_hash_key,
                        parent: Some(shard_meta.ordinal),
                        adjacent_parent: None,
                        created_ms: now,
                        sequence_epoch_s: (now / 1000).max(shard_meta.sequence_epoch_s() + 1),
                        closed: None,
                        replicas: shard_meta.replicas.clone(),
                    };
                    let dir = shard_dir(&data_dir, &stream_meta.dir_id, ordinal);
                    let (log, _) = Log::open_with_cache(
                        &dir,
                        config.log_options,
                        Expect::default(),
                        &config.file_cache,
                    )
                    .map_err(|error| OpenError::Log { dir, error })?;
                    tracing::warn!(
                        stream = %stream_meta.name,
                        closed = %riffle_proto::shard_id::shard_id(shard_meta.ordinal),
                        replacement = %riffle_proto::shard_id::shard_id(ordinal),
                        "closed a damaged shard at its last intact record; a new shard takes its hash range"
                    );
                    stream_meta.shards.push(replacement);
                    logs[stream_position].push(Some(log));
                }
            }
            changed = true;
        }

        let mut streams = HashMap::new();
        for ((stream_meta, crypto), stream_logs) in document.streams.iter().zip(cryptos).zip(logs) {
            let mut shard_logs = Vec::with_capacity(stream_logs.len());
            for (shard_meta, log) in stream_meta.shards.iter().zip(stream_logs) {
                let dir = shard_dir(&data_dir, &stream_meta.dir_id, shard_meta.ordinal);
                let log = log.ok_or_else(|| {
                    OpenError::DataLost(vec![format!("{} could not be opened", dir.display())])
                })?;
                let log = ShardLog::from_log(
                    log,
                    config.durability,
                    flusher.clone(),
                    shard_meta.closed.is_some(),
                )
                .map_err(|error| OpenError::Log { dir, error })?;
                shard_logs.push(log);
            }
            let stream = Self::build_stream(&config, stream_meta, shard_logs, crypto)?;
            streams.insert(
                (stream.account.clone(), stream.name.clone()),
                Arc::new(stream),
            );
        }
        let node = Arc::new(Node {
            control_throttle: ControlThrottle::for_limits(config.limits),
            config,
            token_key,
            keys,
            streams: RwLock::new(streams),
            control: AsyncMutex::new(()),
            flusher,
            subscriptions: crate::subscribe::Subscriptions::default(),
            catalogue: std::sync::Mutex::new(CatalogueState::from_document(&document)),
            watermarks: std::sync::Mutex::new(marks),
            cluster: std::sync::OnceLock::new(),
            reconciling: AsyncMutex::new(()),
            channels_changed: watch::channel(0).0,
            queues: crate::queues::Queues::default(),
        });
        crate::queues::open_all(&node).map_err(OpenError::Queues)?;
        // The watermarks first (this start is not clean until it shuts down cleanly), then a
        // catalogue that says they exist: a crash between the two leaves a catalogue that
        // does not yet expect them.
        node.write_watermarks(false).map_err(OpenError::Meta)?;
        if fresh || changed || !document.watermarks {
            let current = node.catalogue_state().to_document();
            node.persist_blocking(&current).map_err(OpenError::Meta)?;
        }
        Ok(node)
    }

    /// A cluster node over `config.data_dir`: no stream until the metadata group's catalogue
    /// is applied ([`Node::apply_catalogue`]) once [`Node::attach_cluster`] gave it the
    /// cluster. The shard logs, their votes and the catalogue's log live in the groups'
    /// directories, so neither `meta.json` nor the watermarks are kept. `token_key` must be
    /// the same on every node (iterators minted by one node are read on any).
    pub fn open_cluster(config: NodeConfig, token_key: [u8; 32]) -> Result<Arc<Node>, OpenError> {
        let data_dir = config.data_dir.clone();
        riffle_log::create_owner_only_dirs(&streams_dir(&data_dir)).map_err(io_error(&data_dir))?;
        let flusher = Flusher::start(Duration::ZERO).map_err(io_error(&data_dir))?;
        let keys = Arc::clone(&config.kms_keys);
        Ok(Arc::new(Node {
            control_throttle: ControlThrottle::for_limits(config.limits),
            config,
            token_key,
            keys,
            streams: RwLock::new(HashMap::new()),
            control: AsyncMutex::new(()),
            flusher,
            subscriptions: crate::subscribe::Subscriptions::default(),
            catalogue: std::sync::Mutex::new(CatalogueState::new(hex(&token_key))),
            watermarks: std::sync::Mutex::new(WatermarkDocument::default()),
            cluster: std::sync::OnceLock::new(),
            reconciling: AsyncMutex::new(()),
            channels_changed: watch::channel(0).0,
            queues: crate::queues::Queues::default(),
        }))
    }

    /// Makes this node a cluster node (once, before it serves).
    pub fn attach_cluster(&self, cluster: Arc<dyn ClusterSeam>) {
        if self.cluster.set(cluster).is_err() {
            tracing::warn!("the cluster was attached twice; keeping the first");
        }
    }

    /// The cluster this node belongs to, if it is a cluster node.
    pub fn cluster(&self) -> Option<&Arc<dyn ClusterSeam>> {
        self.cluster.get()
    }

    /// Whether background deciders (the ON_DEMAND scaler, expiry of closed shards) run here:
    /// always on a single node, on the metadata group's leader in a cluster.
    pub fn decides(&self) -> bool {
        self.cluster
            .get()
            .is_none_or(|cluster| cluster.leads_catalogue())
    }

    /// Brings this node's streams in line with `state`, the catalogue as the metadata group
    /// applied it: opens the groups of new streams and shards, publishes changed states,
    /// closes what was deleted. Called by the cluster after every applied batch, on every
    /// node; the node that proposed a change may have published it already, which makes
    /// the call a no-op for that stream.
    pub async fn apply_catalogue(&self, state: CatalogueState) {
        let _reconciling = self.reconciling.lock().await;
        let document = state.to_document();
        let queues = state.queues.clone();
        *self.catalogue.lock().unwrap_or_else(|p| p.into_inner()) = state;
        let Some(cluster) = self.cluster.get().cloned() else {
            return;
        };
        if let Some(managed) = &document.aws_managed_key {
            // Before any stream is built: their keys may include it.
            if let Err(error) = self.keys.install_managed(managed) {
                tracing::error!(%error, "cannot install the catalogue's AWS-managed key");
            }
        }
        let mut named = std::collections::HashSet::new();
        for meta in &document.streams {
            named.insert((meta.account.clone(), meta.name.clone()));
            match self.stream(&meta.account, &meta.name) {
                Some(stream) if stream.dir_id == meta.dir_id => {
                    if stream.to_meta_with(&stream.state()) != *meta {
                        if let Err(error) = self.reconcile_stream(&cluster, &stream, meta).await {
                            tracing::error!(stream = %meta.name, %error, "could not apply a catalogue change to a stream");
                        }
                    }
                }
                existing => {
                    if let Some(old) = existing {
                        self.drop_stream_locally(&cluster, &old).await;
                    }
                    match self.build_replicated_stream(&cluster, meta).await {
                        Ok(stream) => {
                            self.streams
                                .write()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert((meta.account.clone(), meta.name.clone()), stream);
                        }
                        Err(error) => {
                            tracing::error!(stream = %meta.name, %error, "could not open a stream the catalogue names")
                        }
                    }
                }
            }
        }
        let gone: Vec<Arc<Stream>> = self
            .all_streams()
            .into_iter()
            .filter(|stream| !named.contains(&(stream.account.clone(), stream.name.clone())))
            .collect();
        for stream in gone {
            self.drop_stream_locally(&cluster, &stream).await;
        }
        crate::queues::reconcile(self, &queues);
    }

    async fn build_replicated_stream(
        &self,
        cluster: &Arc<dyn ClusterSeam>,
        meta: &StreamMeta,
    ) -> Result<Arc<Stream>, crate::Error> {
        let crypto = crate::encryption::restore_replicated(&self.keys, meta);
        let mut logs = Vec::with_capacity(meta.shards.len());
        for shard_meta in &meta.shards {
            let dir = shard_dir(&self.config.data_dir, &meta.dir_id, shard_meta.ordinal);
            logs.push(
                cluster
                    .open_shard(&meta.dir_id, shard_meta, dir)
                    .await
                    .map_err(crate::Error::internal)?,
            );
        }
        let stream = Self::build_stream(&self.config, meta, logs, crypto)
            .map_err(|error| crate::Error::internal(error.to_string()))?;
        Ok(Arc::new(stream))
    }

    /// Publishes `meta` (the catalogue's entry for `stream`) as the stream's state, keeping
    /// the shards it already has and opening the groups of new ones.
    async fn reconcile_stream(
        &self,
        cluster: &Arc<dyn ClusterSeam>,
        stream: &Arc<Stream>,
        meta: &StreamMeta,
    ) -> Result<(), crate::Error> {
        let before = stream.state();
        let mut shards = Vec::with_capacity(meta.shards.len());
        for shard_meta in &meta.shards {
            match before.shard(shard_meta.ordinal) {
                Some(shard) if shard.meta == *shard_meta => shards.push(Arc::clone(shard)),
                Some(shard) => {
                    // Moved replicas may make this node hold the shard now, or no longer:
                    // the cluster answers with the log this node now has for it.
                    let log = if shard.meta.replicas == shard_meta.replicas {
                        Arc::clone(&shard.log)
                    } else {
                        let dir =
                            shard_dir(&self.config.data_dir, &meta.dir_id, shard_meta.ordinal);
                        cluster
                            .open_shard(&meta.dir_id, shard_meta, dir)
                            .await
                            .map_err(crate::Error::internal)?
                    };
                    shards.push(Arc::new(Shard {
                        meta: shard_meta.clone(),
                        log,
                        throttle: shard.throttle.clone(),
                        metrics: Arc::clone(&shard.metrics),
                    }))
                }
                None => {
                    let dir = shard_dir(&self.config.data_dir, &meta.dir_id, shard_meta.ordinal);
                    let log = cluster
                        .open_shard(&meta.dir_id, shard_meta, dir)
                        .await
                        .map_err(crate::Error::internal)?;
                    shards.push(Arc::new(Shard::new(
                        shard_meta.clone(),
                        log,
                        self.config.limits,
                    )));
                }
            }
        }
        shards.sort_by_key(|shard| shard.meta.ordinal);
        let expired: Vec<u32> = before
            .shards
            .iter()
            .map(|shard| shard.meta.ordinal)
            .filter(|ordinal| !meta.shards.iter().any(|shard| shard.ordinal == *ordinal))
            .collect();
        let policy = match &meta.policy {
            Some(text) => Some(Arc::new(
                crate::policy::ResourcePolicy::parse(text).map_err(|reason| {
                    crate::Error::internal(format!("a stored policy does not parse: {reason}"))
                })?,
            )),
            None => None,
        };
        let crypto = match before.crypto.as_ref() {
            // The same entry as before: keep the keys (and an unusable state logged once).
            Some(kept)
                if crate::encryption::to_meta(Some(kept))
                    == (meta.encryption.clone(), meta.sealing_keys.clone()) =>
            {
                Some(Arc::clone(kept))
            }
            _ => crate::encryption::restore_replicated(&self.keys, meta),
        };
        stream.set_state(StreamState {
            mode: meta.mode,
            retention_hours: meta.retention_hours,
            max_record_size_kib: meta.max_record_size_kib,
            tags: meta.tags.clone(),
            shard_level_metrics: meta.shard_level_metrics.clone(),
            next_shard_ordinal: meta.next_shard_ordinal,
            shards,
            consumers: meta
                .consumers
                .iter()
                .filter(|consumer| consumer.deleting_ms.is_none())
                .cloned()
                .collect(),
            policy,
            warm_throughput_mibps: meta.warm_throughput_mibps,
            record_distribution: meta.record_distribution,
            crypto,
        });
        if !expired.is_empty() {
            cluster.close_shards(&stream.dir_id, &expired);
            for ordinal in expired {
                self.remove_dir_locally(format!("{}/{ordinal}", stream.dir_id))
                    .await;
            }
        }
        Ok(())
    }

    /// Unpublishes a stream the catalogue no longer names, stops its groups and removes its
    /// data from this node.
    async fn drop_stream_locally(&self, cluster: &Arc<dyn ClusterSeam>, stream: &Arc<Stream>) {
        {
            let mut streams = self.streams.write().unwrap_or_else(|p| p.into_inner());
            let key = (stream.account.clone(), stream.name.clone());
            if streams
                .get(&key)
                .is_some_and(|current| Arc::ptr_eq(current, stream))
            {
                streams.remove(&key);
            }
        }
        let ordinals: Vec<u32> = stream
            .state()
            .shards
            .iter()
            .map(|shard| shard.meta.ordinal)
            .collect();
        cluster.close_shards(&stream.dir_id, &ordinals);
        self.remove_dir_locally(stream.dir_id.clone()).await;
    }

    /// Removes this node's copy of shard `ordinal` of the stream stored as `dir_id`, once the
    /// cluster moved the replica to other nodes and stopped its group here.
    pub async fn remove_shard_copy(&self, dir_id: &str, ordinal: u32) {
        self.remove_dir_locally(format!("{dir_id}/{ordinal}")).await;
    }

    async fn remove_dir_locally(&self, relative: String) {
        if let Err(error) = self.remove_dir(&relative).await {
            tracing::warn!(%error, "could not remove data the catalogue no longer names");
        }
    }

    /// Removes `DATA/streams/<relative>` (gone already counts as removed).
    async fn remove_dir(&self, relative: &str) -> Result<(), String> {
        let dir = streams_dir(&self.config.data_dir).join(relative);
        tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(format!("{}: {error}", dir.display())),
        })
        .await
        .map_err(|error| format!("directory removal panicked: {error}"))?
    }

    /// A new shard's log: a group of the cluster, or a local log.
    async fn make_shard_log(
        &self,
        dir_id: &str,
        meta: &ShardMeta,
    ) -> Result<Arc<ShardLog>, crate::Error> {
        let dir = shard_dir(&self.config.data_dir, dir_id, meta.ordinal);
        if let Some(cluster) = self.cluster.get() {
            return cluster
                .open_shard(dir_id, meta, dir)
                .await
                .map_err(crate::Error::internal);
        }
        let config = self.config.clone();
        let flusher = self.flusher.clone();
        tokio::task::spawn_blocking(move || Self::new_shard_log(&config, &flusher, &dir))
            .await
            .map_err(|error| crate::Error::internal(format!("shard creation failed: {error}")))?
            .map_err(|error| crate::Error::internal(format!("cannot create a shard log: {error}")))
    }

    /// Opens one shard's log against its watermarks: `Ok((log, None))` when everything
    /// acknowledged is there, `Ok((log, Some(what)))` when data was lost and
    /// `accept_data_loss` set the damage aside (the log ends at its last intact record),
    /// `Err` when data was lost and the start must be refused (nothing was changed).
    fn open_log(
        config: &NodeConfig,
        dir: &Path,
        expect: Expect,
        first_kept: u64,
        keep: &Path,
        name: &str,
    ) -> Result<(Log, Option<String>), riffle_log::LogError> {
        use riffle_log::LogError;
        let mut lost = None;
        let mut log = match Log::open_with_cache(
            dir,
            config.log_options,
            expect,
            &config.file_cache,
        ) {
            Ok((log, report)) => {
                if report.torn_tail_bytes_truncated > 0 {
                    tracing::warn!(
                        shard = %name,
                        bytes = report.torn_tail_bytes_truncated,
                        synced_through = expect.synced_through,
                        "cut an incomplete write after the last synced index (a crash \
                         interrupted it before its fsync, so it was never acknowledged)"
                    );
                }
                log
            }
            Err(error @ (LogError::Corrupt { .. } | LogError::Missing { .. }))
                if config.accept_data_loss =>
            {
                let (damaged, offset) = match &error {
                    LogError::Corrupt { path, offset, .. } => (path.clone(), Some(*offset)),
                    LogError::Missing { path, .. } => (path.clone(), None),
                    _ => unreachable!("matched above"),
                };
                if damaged.is_file() {
                    let relative = dir
                        .strip_prefix(&config.data_dir)
                        .unwrap_or(dir)
                        .to_path_buf();
                    let report = riffle_log::salvage::set_aside(
                        dir,
                        &damaged,
                        offset,
                        &keep.join(relative),
                    )?;
                    tracing::warn!(shard = %name, files = report.files, bytes = report.bytes_removed_from_log, kept = %keep.display(), "set damaged log data aside (--accept-data-loss)");
                }
                lost = Some(error.to_string());
                Log::open_with_cache(
                    dir,
                    config.log_options,
                    Expect::default(),
                    &config.file_cache,
                )?
                .0
            }
            Err(error) => return Err(error),
        };
        if first_kept > log.first_index() {
            // A retention pass recorded its new first index, then a crash stopped it before
            // (or while) it deleted the segments below: finish it.
            log.purge_before(first_kept)?;
        } else if first_kept > 0 && log.first_index() > first_kept && log.last_index() > 0 {
            let error = LogError::Missing {
                path: dir.to_path_buf(),
                reason: format!(
                    "the log starts at index {}, but retention had kept everything from \
                     index {first_kept}: segments at the start of the log are gone",
                    log.first_index()
                ),
            };
            if !config.accept_data_loss {
                return Err(error);
            }
            // The start of a log is history: going on loses those records but no sequence
            // number can be reissued, so the shard stays as it is.
            lost.get_or_insert_with(|| error.to_string());
        }
        Ok((log, lost))
    }

    /// Creates the (empty) log of a new shard: CreateStream's shards and a reshard's
    /// children. Nothing is expected of it; it is open for appends.
    fn new_shard_log(
        config: &NodeConfig,
        flusher: &Flusher,
        dir: &Path,
    ) -> Result<Arc<ShardLog>, riffle_log::LogError> {
        ShardLog::open(
            dir,
            config.log_options,
            config.durability,
            flusher.clone(),
            false,
            Expect::default(),
            &config.file_cache,
        )
    }

    /// A stream over opened shard logs (in `stream_meta.shards` order).
    fn build_stream(
        config: &NodeConfig,
        stream_meta: &StreamMeta,
        logs: Vec<Arc<ShardLog>>,
        crypto: Option<Arc<crate::crypto::StreamCrypto>>,
    ) -> Result<Stream, OpenError> {
        let mut shards: Vec<Arc<Shard>> = stream_meta
            .shards
            .iter()
            .zip(logs)
            .map(|(shard_meta, log)| Arc::new(Shard::new(shard_meta.clone(), log, config.limits)))
            .collect();
        shards.sort_by_key(|shard| shard.meta.ordinal);
        // A stored policy was validated when it was put; one that no longer parses is refused
        // rather than dropped, since dropping a Deny could widen access.
        let policy = match &stream_meta.policy {
            Some(text) => Some(Arc::new(
                crate::policy::ResourcePolicy::parse(text).map_err(|reason| {
                    OpenError::Meta(meta::MetaError::Corrupt {
                        path: config.data_dir.join("meta.json"),
                        reason: format!(
                            "the resource policy of stream {} does not parse: {reason}",
                            stream_meta.name
                        ),
                    })
                })?,
            )),
            None => None,
        };
        let stream = Stream {
            account: stream_meta.account.clone(),
            name: stream_meta.name.clone(),
            arn: riffle_proto::arn::stream_arn(
                &config.region,
                &stream_meta.account,
                &stream_meta.name,
            ),
            created_ms: stream_meta.created_ms,
            dir_id: stream_meta.dir_id.clone(),
            state: RwLock::new(Arc::new(StreamState {
                mode: stream_meta.mode,
                retention_hours: stream_meta.retention_hours,
                max_record_size_kib: stream_meta.max_record_size_kib,
                tags: BTreeMap::new(),
                shard_level_metrics: Vec::new(),
                next_shard_ordinal: 0,
                shards: Vec::new(),
                consumers: Vec::new(),
                policy: None,
                warm_throughput_mibps: None,
                record_distribution: stream_meta.record_distribution,
                crypto: None,
            })),
            routes: RwLock::new(Arc::new(Vec::new())),
            routes_epoch: watch::channel(0).0,
            updating_until_ms: AtomicU64::new(0),
            creating_until_ms: AtomicU64::new(0),
            shards_before_reshard: std::sync::Mutex::new(None),
            scalings_ms: std::sync::Mutex::new(Vec::new()),
            metrics: StreamMetrics::default(),
            encryption_changes: Default::default(),
            spread_turn: AtomicU64::new(0),
        };
        stream.set_state(StreamState {
            mode: stream_meta.mode,
            retention_hours: stream_meta.retention_hours,
            max_record_size_kib: stream_meta.max_record_size_kib,
            tags: stream_meta.tags.clone(),
            shard_level_metrics: stream_meta.shard_level_metrics.clone(),
            next_shard_ordinal: stream_meta.next_shard_ordinal,
            shards,
            // A consumer caught DELETING by a restart finishes leaving now.
            consumers: stream_meta
                .consumers
                .iter()
                .filter(|consumer| consumer.deleting_ms.is_none())
                .cloned()
                .collect(),
            policy,
            warm_throughput_mibps: stream_meta.warm_throughput_mibps,
            record_distribution: stream_meta.record_distribution,
            crypto,
        });
        Ok(stream)
    }

    /// A copy of the catalogue state as persisted.
    pub fn catalogue_state(&self) -> CatalogueState {
        self.catalogue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The version of `stream` in the catalogue (what a change to it is decided on).
    fn stream_version(&self, stream: &Stream) -> u64 {
        self.catalogue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stream(&stream.account, &stream.name)
            .filter(|entry| entry.meta.dir_id == stream.dir_id)
            .map_or(0, |entry| entry.version)
    }

    /// Applies `command` to the catalogue and makes the result durable (`meta.json`), before
    /// the caller publishes anything that depends on it. The single-node implementation of
    /// the catalogue replica (ARCHITECTURE.md, the two seams): in a cluster the command goes
    /// through the metadata Raft group instead. The caller holds `control()`. An AWS-managed
    /// key made since the last write is recorded in the same write.
    pub async fn propose(&self, command: Command) -> Result<Applied, crate::Error> {
        if let Some(cluster) = self.cluster.get() {
            return cluster.propose(command).await;
        }
        let mut next = self.catalogue_state();
        if let Some(key) = self.keys.managed() {
            if next.aws_managed_key.as_ref() != Some(key) {
                next.apply(&Command::SetManagedKey { key: key.clone() })
                    .map_err(|rejection| crate::Error::internal(rejection.to_string()))?;
            }
        }
        let applied = next
            .apply(&command)
            .map_err(|rejection| crate::Error::internal(rejection.to_string()))?;
        self.persist_document(next.to_document()).await?;
        *self.catalogue.lock().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(applied)
    }

    /// Replaces `stream`'s catalogue entry with `state`.
    async fn propose_stream(
        &self,
        stream: &Stream,
        state: &StreamState,
    ) -> Result<(), crate::Error> {
        let if_version = self.stream_version(stream);
        self.propose(Command::ReplaceStream {
            meta: stream.to_meta_with(state),
            if_version,
        })
        .await
        .map(|_| ())
    }

    fn durable_meta(&self) -> bool {
        self.config.durability != Durability::None
    }

    fn persist_blocking(&self, document: &MetaDocument) -> Result<(), meta::MetaError> {
        meta::store(&self.config.data_dir, document, self.durable_meta())
    }

    async fn persist_document(&self, document: MetaDocument) -> Result<(), crate::Error> {
        let dir = self.config.data_dir.clone();
        let durable = self.durable_meta();
        tokio::task::spawn_blocking(move || meta::store(&dir, &document, durable))
            .await
            .map_err(|error| crate::Error::internal(format!("catalogue writer failed: {error}")))?
            .map_err(|error| {
                crate::Error::internal(format!("cannot persist the catalogue: {error}"))
            })
    }

    /// The channel `name` of `account` (see [`crate::channels`]).
    pub fn channel(&self, account: &str, name: &str) -> Option<crate::channels::ChannelMeta> {
        let catalogue = self.catalogue.lock().unwrap_or_else(|p| p.into_inner());
        catalogue
            .channels
            .get(&(account.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Every channel of every account.
    pub fn channels(&self) -> Vec<crate::channels::ChannelMeta> {
        let catalogue = self.catalogue.lock().unwrap_or_else(|p| p.into_inner());
        catalogue.channels.values().cloned().collect()
    }

    /// Wakes whoever watches channel changes (the delivery manager).
    pub fn channels_changed(&self) {
        self.channels_changed.send_modify(|count| *count += 1);
    }

    /// A receiver woken by every channel change.
    pub fn watch_channels(&self) -> watch::Receiver<u64> {
        self.channels_changed.subscribe()
    }

    /// Takes the control-plane lock; hold it across a change and its `persist`.
    pub async fn control(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.control.lock().await
    }

    pub fn stream(&self, account: &str, name: &str) -> Option<Arc<Stream>> {
        let streams = self.streams.read().unwrap_or_else(|p| p.into_inner());
        streams.get(&(account.to_owned(), name.to_owned())).cloned()
    }

    /// Every stream of every account.
    pub fn all_streams(&self) -> Vec<Arc<Stream>> {
        let streams = self.streams.read().unwrap_or_else(|p| p.into_inner());
        streams.values().cloned().collect()
    }

    /// Starts the ON_DEMAND scaler; it runs until the node is dropped.
    pub fn start_scaler(self: &Arc<Self>) {
        crate::scaler::start(self);
    }

    /// The account's streams sorted by name.
    pub fn streams_of(&self, account: &str) -> Vec<Arc<Stream>> {
        let streams = self.streams.read().unwrap_or_else(|p| p.into_inner());
        let mut found: Vec<Arc<Stream>> = streams
            .values()
            .filter(|stream| stream.account == account)
            .cloned()
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found
    }

    /// Open shards of every stream of `account`.
    pub fn open_shard_count(&self, account: &str) -> u32 {
        self.streams_of(account)
            .iter()
            .map(|stream| stream.state().open_shards().count() as u32)
            .sum()
    }

    /// Creates a stream with `ranges.len()` shards. The caller holds `control()` and has checked
    /// the name is free and the limits allow it.
    pub async fn create_stream(
        &self,
        account: &str,
        name: &str,
        mode: StreamMode,
        shard_count: u32,
        settings: StreamSettings,
        tags: BTreeMap<String, String>,
    ) -> Result<Arc<Stream>, crate::Error> {
        let created_ms = now_ms();
        let dir_id = hex(&random_bytes::<16>());
        let ranges = riffle_proto::hashkey::initial_shard_ranges(shard_count);
        let placed = match self.cluster.get() {
            Some(cluster) => cluster.place_new_shards(ranges.len()).await?,
            None => Vec::new(),
        };
        let shard_metas: Vec<ShardMeta> = ranges
            .iter()
            .enumerate()
            .map(|(ordinal, (start, end))| ShardMeta {
                ordinal: ordinal as u32,
                starting_hash_key: *start,
                ending_hash_key: *end,
                parent: None,
                adjacent_parent: None,
                created_ms,
                sequence_epoch_s: created_ms / 1000,
                closed: None,
                replicas: placed.get(ordinal).cloned().unwrap_or_default(),
            })
            .collect();
        let stream_meta = StreamMeta {
            account: account.to_owned(),
            name: name.to_owned(),
            dir_id,
            created_ms,
            mode,
            retention_hours: riffle_proto::limits::RETENTION_HOURS_DEFAULT,
            max_record_size_kib: settings.max_record_size_kib,
            tags,
            shard_level_metrics: Vec::new(),
            next_shard_ordinal: shard_count,
            shards: shard_metas,
            consumers: Vec::new(),
            policy: None,
            warm_throughput_mibps: None,
            record_distribution: settings.record_distribution,
            encryption: None,
            sealing_keys: Vec::new(),
        };
        if self.cluster.get().is_some() {
            // Every node (this one included) opens the shards' groups when it applies the
            // command; the proposal resolves once this node has.
            self.propose(Command::CreateStream { meta: stream_meta })
                .await?;
            let stream = self.stream(account, name).ok_or_else(|| {
                crate::Error::internal("the created stream was not opened on this node")
            })?;
            stream.mark_creating(self.config.create_window);
            return Ok(stream);
        }
        let config = self.config.clone();
        let flusher = self.flusher.clone();
        // Shard directories first, catalogue second, publication last: a crash before the
        // catalogue names the stream leaves directories of empty logs, which the next start
        // recognises as holding no data and removes; and no put can reach the stream (and be
        // acknowledged) before the catalogue that names it is durable.
        let document_meta = stream_meta.clone();
        let stream = tokio::task::spawn_blocking(move || {
            let mut logs = Vec::with_capacity(stream_meta.shards.len());
            for shard_meta in &stream_meta.shards {
                let dir = shard_dir(&config.data_dir, &stream_meta.dir_id, shard_meta.ordinal);
                let log = Self::new_shard_log(&config, &flusher, &dir)
                    .map_err(|error| OpenError::Log { dir, error })?;
                logs.push(log);
            }
            Self::build_stream(&config, &stream_meta, logs, None)
        })
        .await
        .map_err(|error| crate::Error::internal(format!("stream creation failed: {error}")))?
        .map_err(|error| crate::Error::internal(error.to_string()))?;
        stream.mark_creating(self.config.create_window);
        let stream = Arc::new(stream);
        self.propose(Command::CreateStream {
            meta: document_meta,
        })
        .await?;
        self.streams
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((account.to_owned(), name.to_owned()), Arc::clone(&stream));
        Ok(stream)
    }

    /// Removes a stream and its data. The caller holds `control()`.
    pub async fn delete_stream(&self, stream: &Arc<Stream>) -> Result<(), crate::Error> {
        if self.cluster.get().is_some() {
            // Every node unpublishes the stream and removes its data when it applies this.
            let command = Command::DeleteStream {
                account: stream.account.clone(),
                name: stream.name.clone(),
                if_version: self.stream_version(stream),
            };
            return self.propose(command).await.map(|_| ());
        }
        let key = (stream.account.clone(), stream.name.clone());
        self.streams
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        // The catalogue that drops the stream also lists its directory as being removed, so a
        // start after a crash mid-removal knows the leftover is one.
        let command = Command::DeleteStream {
            account: stream.account.clone(),
            name: stream.name.clone(),
            if_version: self.stream_version(stream),
        };
        if let Err(error) = self.propose(command).await {
            self.streams
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, Arc::clone(stream));
            return Err(error);
        }
        self.remove_data_dir(stream.dir_id.clone()).await;
        Ok(())
    }

    /// Replaces a stream's mutable state: persisted first, then published, so clients never
    /// see a state a crash could take back. The caller holds `control()`.
    pub async fn update_stream(
        &self,
        stream: &Arc<Stream>,
        change: impl FnOnce(&mut StreamState),
    ) -> Result<(), crate::Error> {
        let mut next = (*stream.state()).clone();
        change(&mut next);
        self.propose_stream(stream, &next).await?;
        stream.set_state(next);
        Ok(())
    }

    /// An account's settings (defaults for an account that never changed them).
    pub fn account(&self, account: &str) -> AccountMeta {
        let catalogue = self.catalogue.lock().unwrap_or_else(|p| p.into_inner());
        catalogue.accounts.get(account).cloned().unwrap_or_default()
    }

    /// Replaces an account's settings: persisted first, then published, as `update_stream`.
    /// The caller holds `control()`.
    pub async fn update_account(
        &self,
        account: &str,
        next: AccountMeta,
    ) -> Result<(), crate::Error> {
        self.propose(Command::PutAccount {
            account: account.to_owned(),
            meta: next,
        })
        .await?;
        Ok(())
    }

    /// Applies resharding `steps` (already validated) to `stream`. The caller holds
    /// `control()`.
    ///
    /// Order, so that no acknowledged record is lost or reordered and a crash at any point
    /// leaves a consistent catalogue:
    /// 1. open the children's (empty) logs — a crash now leaves only orphan directories;
    /// 2. seal every closed shard's log: a seal frame after every record it accepted, after
    ///    which its appends fail with `Sealed`; wait until the seal frames are durable;
    /// 3. persist the catalogue with the parents closed (`last_index` = the seal frame) and
    ///    the children open — on failure, unseal the parents and drop the children;
    /// 4. publish the new state and routes; puts that met a sealed parent were waiting for
    ///    exactly this and now route to the children.
    ///
    /// Per partition key, every record the parent acknowledged precedes the seal, and every
    /// record sent after that acknowledgement goes to a child, so a reader that finishes the
    /// parents before the children reads each key in order.
    pub async fn reshard(&self, stream: &Arc<Stream>, steps: &[Step]) -> Result<(), crate::Error> {
        if steps.is_empty() {
            return Ok(());
        }
        let state = stream.state();
        let open: Vec<OpenShard> = state
            .open_shards()
            .map(|shard| OpenShard {
                ordinal: shard.meta.ordinal,
                starting_hash_key: shard.meta.starting_hash_key,
                ending_hash_key: shard.meta.ending_hash_key,
            })
            .collect();
        let outcome = reshard::apply(&open, state.next_shard_ordinal, steps);
        assert!(
            reshard::partitions_key_space(&outcome.open),
            "a reshard must leave the key space partitioned"
        );
        let created_ms = now_ms();

        // 1. Children's logs. Each child's sequence epoch is past its parents', so its numbers
        // sort above theirs (children come in creation order, parents first).
        let mut epochs: HashMap<u32, u64> = state
            .shards
            .iter()
            .map(|shard| (shard.meta.ordinal, shard.meta.sequence_epoch_s()))
            .collect();
        let mut metas: Vec<ShardMeta> = Vec::with_capacity(outcome.created.len());
        let mut placed = match self.cluster.get() {
            Some(cluster) => cluster.place_new_shards(outcome.created.len()).await?,
            None => Vec::new(),
        }
        .into_iter();
        for child in &outcome.created {
            let parents_epoch = [Some(child.parent), child.adjacent_parent]
                .into_iter()
                .flatten()
                .filter_map(|parent| epochs.get(&parent).copied())
                .max()
                .unwrap_or(0);
            let sequence_epoch_s = (created_ms / 1000).max(parents_epoch + 1);
            epochs.insert(child.ordinal, sequence_epoch_s);
            metas.push(ShardMeta {
                ordinal: child.ordinal,
                starting_hash_key: child.starting_hash_key,
                ending_hash_key: child.ending_hash_key,
                parent: Some(child.parent),
                adjacent_parent: child.adjacent_parent,
                created_ms,
                sequence_epoch_s,
                closed: None,
                replicas: placed.next().unwrap_or_default(),
            });
        }
        let config = self.config.clone();
        let flusher = self.flusher.clone();
        let dir_id = stream.dir_id.clone();
        let opened = if self.cluster.get().is_some() {
            let mut children = Vec::with_capacity(metas.len());
            let mut failed = None;
            for meta in metas {
                match self.make_shard_log(&dir_id, &meta).await {
                    Ok(log) => children.push(Shard::new(meta, log, config.limits)),
                    Err(error) => {
                        failed = Some(error);
                        break;
                    }
                }
            }
            match failed {
                Some(error) => Ok(Err(error)),
                None => Ok(Ok(children)),
            }
        } else {
            tokio::task::spawn_blocking(move || {
                metas
                    .into_iter()
                    .map(|meta| {
                        let dir = shard_dir(&config.data_dir, &dir_id, meta.ordinal);
                        let log =
                            Self::new_shard_log(&config, &flusher, &dir).map_err(|error| {
                                crate::Error::internal(format!(
                                    "cannot create the log of shard {}: {error}",
                                    meta.ordinal
                                ))
                            })?;
                        Ok(Shard::new(meta, log, config.limits))
                    })
                    .collect::<Result<Vec<Shard>, crate::Error>>()
            })
            .await
        }
        .map_err(|error| crate::Error::internal(format!("reshard failed: {error}")))?;
        let children = match opened {
            Ok(children) => children,
            Err(error) => {
                self.remove_shard_dirs(stream, &outcome.created);
                return Err(error);
            }
        };

        // 2. Seal the parents, and the intermediate children a later step closes again.
        let mut to_seal: Vec<(u32, Arc<ShardLog>)> = Vec::new();
        for ordinal in outcome.closed.iter().chain(&outcome.closed_new) {
            let log = match state.shard(*ordinal) {
                Some(shard) => Arc::clone(&shard.log),
                None => children
                    .iter()
                    .find(|child| child.meta.ordinal == *ordinal)
                    .map(|child| Arc::clone(&child.log))
                    .expect("a closed shard is either listed or created by the plan"),
            };
            to_seal.push((*ordinal, log));
        }
        let mut seals: Vec<(u32, Arc<ShardLog>, u64)> = Vec::with_capacity(to_seal.len());
        let mut failure = None;
        for (ordinal, log) in &to_seal {
            if log.is_replicated() && outcome.closed_new.contains(ordinal) {
                // A child this reshard makes and closes again holds nothing and is never
                // routed to; its group may not even have its other replicas yet (they open
                // it when the catalogue names it), so it is closed at index 0 unsealed.
                seals.push((*ordinal, Arc::clone(log), 0));
                continue;
            }
            let sealed = log.seal_and_wait(created_ms).await;
            match sealed {
                Ok(appended) => seals.push((*ordinal, Arc::clone(log), appended.index)),
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        let undo = |seals: &[(u32, Arc<ShardLog>, u64)]| {
            for (_, log, _) in seals {
                log.unseal();
            }
            self.remove_shard_dirs(stream, &outcome.created);
        };
        if let Some(error) = failure {
            undo(&seals);
            return Err(append_failure(error));
        }

        // 3. Persist the next state.
        let closed_at = |ordinal: u32| {
            seals
                .iter()
                .find(|(sealed, _, _)| *sealed == ordinal)
                .map(|(_, _, index)| ClosedShard {
                    last_index: *index,
                    closed_ms: created_ms,
                })
        };
        let mut shards: Vec<Arc<Shard>> = state
            .shards
            .iter()
            .map(|shard| match closed_at(shard.meta.ordinal) {
                Some(closed) => Arc::new(Shard {
                    meta: ShardMeta {
                        closed: Some(closed),
                        ..shard.meta.clone()
                    },
                    log: Arc::clone(&shard.log),
                    throttle: shard.throttle.clone(),
                    metrics: Arc::clone(&shard.metrics),
                }),
                None => Arc::clone(shard),
            })
            .collect();
        shards.extend(children.into_iter().map(|mut child| {
            child.meta.closed = closed_at(child.meta.ordinal);
            Arc::new(child)
        }));
        shards.sort_by_key(|shard| shard.meta.ordinal);
        let next = StreamState {
            shards,
            next_shard_ordinal: outcome.next_ordinal,
            ..(*state).clone()
        };
        if let Err(error) = self.propose_stream(stream, &next).await {
            undo(&seals);
            return Err(error);
        }

        // 4. Publish.
        stream.set_state(next);
        Ok(())
    }

    /// Deletes the directories of shards a failed reshard created (best effort: the next start
    /// removes any shard directory the catalogue does not name).
    fn remove_shard_dirs(&self, stream: &Stream, created: &[reshard::NewShard]) {
        for shard in created {
            let dir = shard_dir(&self.config.data_dir, &stream.dir_id, shard.ordinal);
            if let Err(error) = std::fs::remove_dir_all(&dir) {
                if error.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(dir = %dir.display(), %error, "could not remove the log of an abandoned shard");
                }
            }
        }
    }

    /// Retention: deletes sealed segments past every stream's retention and rolls segments so
    /// that whole segments can expire. Runs until the node is dropped.
    pub fn start_retention(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let interval = self.config.retention_interval;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(node) = weak.upgrade() else { return };
                let trimming = Arc::clone(&node);
                let result = tokio::task::spawn_blocking(move || trimming.trim_all()).await;
                if let Err(error) = result {
                    tracing::error!(%error, "retention pass panicked");
                }
                node.expire_replicated().await;
                node.expire_closed_shards().await;
                let closed = node.config.file_cache.close_idle(interval);
                if closed > 0 {
                    tracing::debug!(closed, "closed segment files idle for a retention interval");
                }
            }
        });
    }

    /// One retention pass over every shard.
    pub fn trim_all(&self) {
        let streams: Vec<Arc<Stream>> = self
            .streams
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let now = now_ms();
        for stream in streams {
            let state = stream.state();
            let retention_ms = u64::from(state.retention_hours) * 3_600_000;
            let cutoff_ms = now.saturating_sub(retention_ms);
            // Roll once the active segment holds a tenth of the retention, so expired data
            // leaves the disk at most ~10 % later than it leaves the API.
            let roll_before_ms = now.saturating_sub(retention_ms / 10);
            for shard in &state.shards {
                let key = watermarks::key(&stream.dir_id, shard.meta.ordinal);
                let record_first = |first: u64| self.record_first(&key, first);
                if let Err(error) = shard.log.trim(cutoff_ms, roll_before_ms, record_first) {
                    tracing::error!(stream = %stream.name, shard = %shard.id(), %error, "retention failed");
                }
            }
        }
    }

    /// One retention pass over the replicated shards this node holds a copy of: each copy
    /// expires by this node's clock, through its group (see `ShardReplica::expire`).
    pub async fn expire_replicated(&self) {
        self.expire_replicated_at(now_ms()).await;
    }

    /// [`Node::expire_replicated`] as of `now_ms`.
    pub async fn expire_replicated_at(&self, now_ms: u64) {
        for stream in self.all_streams() {
            let state = stream.state();
            let retention_ms = u64::from(state.retention_hours) * 3_600_000;
            let cutoff_ms = now_ms.saturating_sub(retention_ms);
            // As `trim_all`: roll once the active segment holds a tenth of the retention.
            let roll_before_ms = now_ms.saturating_sub(retention_ms / 10);
            for shard in &state.shards {
                if !shard.log.is_replicated() {
                    continue;
                }
                match shard.log.expire(cutoff_ms, roll_before_ms).await {
                    Ok(Some(first)) => {
                        tracing::debug!(stream = %stream.name, shard = %shard.id(), first, "expired records past retention")
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(stream = %stream.name, shard = %shard.id(), %error, "retention of a replicated shard failed; the next pass tries again")
                    }
                }
            }
        }
    }

    /// Drops closed shards whose every record is past the stream's retention: they closed
    /// before the trim horizon, so nothing in them can be read any more. Until then they stay
    /// listed, as on AWS, so that consumers can finish them before reading their children.
    pub async fn expire_closed_shards(&self) {
        self.expire_closed_shards_at(now_ms()).await;
    }

    async fn expire_closed_shards_at(&self, now_ms: u64) {
        if !self.decides() {
            return;
        }
        for stream in self.all_streams() {
            let state = stream.state();
            let cutoff_ms = now_ms.saturating_sub(u64::from(state.retention_hours) * 3_600_000);
            let expired = |shard: &Shard| {
                shard
                    .meta
                    .closed
                    .is_some_and(|closed| closed.closed_ms < cutoff_ms)
            };
            if !state.shards.iter().any(|shard| expired(shard)) {
                continue;
            }
            let _control = self.control().await;
            let current = self.stream(&stream.account, &stream.name);
            if !current.is_some_and(|current| Arc::ptr_eq(&current, &stream)) {
                continue;
            }
            let mut gone = Vec::new();
            let result = self
                .update_stream(&stream, |state| {
                    state.shards.retain(|shard| {
                        if expired(shard) {
                            gone.push(shard.meta.ordinal);
                            false
                        } else {
                            true
                        }
                    });
                })
                .await;
            match result {
                Ok(()) => {
                    for ordinal in gone {
                        tracing::info!(stream = %stream.name, shard = ordinal, "closed shard expired");
                        self.remove_data_dir(format!("{}/{ordinal}", stream.dir_id))
                            .await;
                    }
                }
                Err(error) => {
                    tracing::error!(stream = %stream.name, %error, "could not expire closed shards")
                }
            }
        }
    }

    /// Removes `DATA/streams/<relative>`, which the catalogue lists as being removed, then
    /// records that it is gone (so a failure leaves it listed, for the next start to finish).
    async fn remove_data_dir(&self, relative: String) {
        if self.cluster.get().is_some() {
            // Every node removes its own copy when it applies the change.
            return;
        }
        match self.remove_dir(&relative).await {
            Ok(()) => {
                let command = Command::FinishRemoving {
                    dirs: vec![relative],
                };
                if let Err(error) = self.propose(command).await {
                    tracing::warn!(%error, "could not record a finished removal; the next start does");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not remove data the catalogue no longer needs; the next start retries")
            }
        }
    }

    /// Records `first` as shard `key`'s first kept index, durably, before retention deletes
    /// the segments below it.
    fn record_first(&self, key: &str, first: u64) -> std::io::Result<()> {
        let mut marks = self.watermarks.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = marks.clone();
        let mark = next.shards.entry(key.to_owned()).or_default();
        mark.first = mark.first.max(first);
        next.clean_shutdown = false;
        watermarks::store(&self.config.data_dir, &next, self.durable_meta())
            .map_err(|error| std::io::Error::other(error.to_string()))?;
        *marks = next;
        Ok(())
    }

    /// Writes `DATA/watermarks.json` from every shard's current first and synced index, if
    /// anything changed since the last write (or `clean_shutdown` is asked for).
    pub fn write_watermarks(&self, clean_shutdown: bool) -> Result<(), meta::MetaError> {
        if self.cluster.get().is_some() {
            // A cluster node's groups keep their own marks (votes, committed ids).
            return Ok(());
        }
        let streams = self.all_streams();
        let mut marks = self.watermarks.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = WatermarkDocument {
            format_version: watermarks::WATERMARKS_FORMAT_VERSION,
            clean_shutdown,
            shards: BTreeMap::new(),
        };
        for stream in streams {
            for shard in &stream.state().shards {
                let key = watermarks::key(&stream.dir_id, shard.meta.ordinal);
                let (first, synced) = shard.log.marks();
                let recorded = marks.shards.get(&key).map_or(0, |mark| mark.first);
                next.shards.insert(
                    key,
                    watermarks::Mark {
                        first: first.max(recorded),
                        synced,
                    },
                );
            }
        }
        if next == *marks && !clean_shutdown {
            return Ok(());
        }
        watermarks::store(&self.config.data_dir, &next, self.durable_meta())?;
        *marks = next;
        Ok(())
    }

    /// Rewrites the watermarks about once a second while anything changes (see
    /// `crate::watermarks`). Runs until the node is dropped.
    pub fn start_watermarks(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(WATERMARK_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(node) = weak.upgrade() else { return };
                let result =
                    tokio::task::spawn_blocking(move || node.write_watermarks(false)).await;
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::error!(%error, "could not write the watermarks"),
                    Err(error) => tracing::error!(%error, "watermark writer panicked"),
                }
            }
        });
    }

    /// Clean shutdown: fsyncs every shard, then records that nothing written is unsynced, so
    /// the next start treats any damaged end as lost data rather than a torn write.
    pub fn shut_down_cleanly(&self) {
        self.sync_all();
        if let Err(error) = self.write_watermarks(true) {
            tracing::error!(%error, "could not record the clean shutdown");
        }
    }

    /// Fsyncs every shard (clean shutdown).
    pub fn sync_all(&self) {
        let streams: Vec<Arc<Stream>> = self
            .streams
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for stream in streams {
            for shard in &stream.state().shards {
                if let Err(error) = shard.log.sync_now() {
                    tracing::error!(stream = %stream.name, shard = %shard.id(), %error, "final sync failed");
                }
            }
        }
    }
}

fn append_failure(error: AppendError) -> crate::Error {
    tracing::error!(%error, "sealing a shard failed");
    crate::Error::internal(riffle_proto::error::INTERNAL_SERVICE_FAILURE)
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.config.ephemeral {
            let _ = std::fs::remove_dir_all(&self.config.data_dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(dir: &Path) -> Arc<Node> {
        let mut config = NodeConfig::new(dir.to_path_buf());
        config.durability = Durability::None;
        Node::open(config).unwrap()
    }

    /// A split parent stays listed while its records may still be read, and leaves the
    /// catalogue and the disk once it closed before the trim horizon; a restart agrees.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closed_shards_leave_once_past_retention() {
        let dir = tempfile::tempdir().unwrap();
        let node = node(dir.path());
        let stream = node
            .create_stream(
                "000000000000",
                "s",
                StreamMode::Provisioned,
                1,
                StreamSettings::default(),
                BTreeMap::new(),
            )
            .await
            .unwrap();
        node.reshard(
            &stream,
            &[Step::Split {
                parent: 0,
                key: 1 << 127,
            }],
        )
        .await
        .unwrap();
        let parent_dir = shard_dir(dir.path(), &stream.dir_id, 0);
        assert!(parent_dir.exists());

        node.expire_closed_shards_at(now_ms() + 23 * 3_600_000)
            .await;
        let ordinals = |stream: &Stream| {
            stream
                .state()
                .shards
                .iter()
                .map(|shard| shard.meta.ordinal)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ordinals(&stream),
            vec![0, 1, 2],
            "within retention: still listed"
        );

        node.expire_closed_shards_at(now_ms() + 25 * 3_600_000)
            .await;
        assert_eq!(ordinals(&stream), vec![1, 2]);
        assert!(!parent_dir.exists());
        drop(stream);
        drop(node);
        let reopened = self::node(dir.path());
        let stream = reopened.stream("000000000000", "s").unwrap();
        assert_eq!(ordinals(&stream), vec![1, 2]);
        assert_eq!(stream.state().shards[0].meta.parent, Some(0));
    }

    /// AUTO distribution's keys visit every open shard in turn, across puts, and each routes
    /// to the shard it was taken from; after a split the children take their turns.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spread_keys_take_the_open_shards_in_turn() {
        let dir = tempfile::tempdir().unwrap();
        let node = node(dir.path());
        let stream = node
            .create_stream(
                "000000000000",
                "s",
                StreamMode::OnDemand,
                4,
                StreamSettings::default(),
                BTreeMap::new(),
            )
            .await
            .unwrap();
        let ordinals = |keys: Vec<u128>| {
            keys.into_iter()
                .map(|key| stream.route(key).meta.ordinal)
                .collect::<Vec<_>>()
        };
        assert_eq!(ordinals(stream.spread_keys(6)), vec![0, 1, 2, 3, 0, 1]);
        assert_eq!(ordinals(stream.spread_keys(3)), vec![2, 3, 0]);
        let state = stream.state();
        let middle = state.shards[1].meta.starting_hash_key + (1 << 120);
        node.reshard(
            &stream,
            &[Step::Split {
                parent: 1,
                key: middle,
            }],
        )
        .await
        .unwrap();
        let mut seen = ordinals(stream.spread_keys(10));
        seen.sort_unstable();
        assert_eq!(
            seen,
            vec![0, 0, 2, 2, 3, 3, 4, 4, 5, 5],
            "ten records over five open shards, two each"
        );
    }

    /// A child made in the same second as its parent still numbers its records above the
    /// parent's EndingSequenceNumber (the shard ordinal's low nibble alone would wrap: shard 15
    /// to 16 is F to 0), and so does a merge child of intermediate shards.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn children_number_above_their_parents() {
        let dir = tempfile::tempdir().unwrap();
        let node = node(dir.path());
        let stream = node
            .create_stream(
                "000000000000",
                "s",
                StreamMode::Provisioned,
                16,
                StreamSettings::default(),
                BTreeMap::new(),
            )
            .await
            .unwrap();
        let state = stream.state();
        let last = &state.shards[15];
        let key = last.meta.starting_hash_key + 1000;
        node.reshard(&stream, &[Step::Split { parent: 15, key }])
            .await
            .unwrap();
        node.reshard(
            &stream,
            &[Step::Merge {
                lower: 16,
                upper: 17,
            }],
        )
        .await
        .unwrap();
        let state = stream.state();
        for shard in &state.shards {
            for parent in [shard.meta.parent, shard.meta.adjacent_parent]
                .into_iter()
                .flatten()
            {
                let parent = state.shard(parent).unwrap();
                let ending = crate::data::ending_sequence_number(parent).unwrap();
                let starting = crate::data::starting_sequence_number(shard);
                assert!(
                    starting > ending,
                    "shard {} starts at {starting}, below parent {} ending at {ending}",
                    shard.meta.ordinal,
                    parent.meta.ordinal
                );
            }
        }
    }
}
