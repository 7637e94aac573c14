//! A cluster node at run time: the metadata group and the shard groups of one riffle
//! process, the peer network they share, and riffle-core's [`ClusterSeam`] over them.
//!
//! **Identity.** A node's id (random, chosen at its first start) and its cluster address (the
//! one peers reach it at: `--cluster-advertise`, else `--cluster-listen`) live in
//! `DATA/cluster.json`; a restarted node finds its peers in its metadata group's log.
//!
//! **Starting.** The first node of a cluster (no `--join`, nothing in its data directory)
//! initializes the metadata group with itself as the only voter. A joining node asks the
//! node at `--join` to add it; the metadata leader adds it as a learner, then as a voter,
//! and it receives the catalogue through the log.
//!
//! **Requests between nodes** ([`AppRequest`]): a proposal or a shard append reaching a node
//! that does not lead the group is forwarded to the leader, so any node answers any call.
//! A node holding no replica of a shard keeps a remote log for it ([`ShardLog::remote`]):
//! its appends go to the shard's leader, found through the catalogue's replicas, and its
//! reads to one of the replicas ([`reads`](self::reads)).
//!
//! **Membership** (placement, re-replication, leaving and removing nodes) is in
//! [`membership`](self::membership).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use openraft::Raft;
use riffle_core::catalogue::{Applied as CatalogueApplied, Command, Rejection};
use riffle_core::meta::ShardMeta;
use riffle_core::node::{BoxFuture, ClusterSeam, Node};
use riffle_core::queues::{ForwardedAnswer, ForwardedCall, QueueHome};
use riffle_core::shard_log::{
    AppendError, Appended, Durability, FetchRequest, Fetched, Flusher as ShardFlusher,
    ReplicaFrame, ShardLog, ShardReplica, TailState,
};
use riffle_log::{FrameKind, LogOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

mod membership;
mod reads;

pub use self::reads::Blob;

pub use self::membership::{
    admin_proof, read_proof_headers, AdminRequest, ADMIN_AT_HEADER, ADMIN_PROOF_HEADER,
};

use crate::flush::GroupCommit;
use crate::meta_group::{self, command_payload, MetaRaft, MetaView};
use crate::network::{AppHandler, BoxFuture as NetFuture, GroupId, PeerNetwork};
use crate::shard_group::{self, ShardRaft};
use crate::types::{ClusterNode, FramePayload, Response};

/// How long a proposal or an append keeps looking for a leader before giving up.
const LEADER_WAIT: Duration = Duration::from_secs(8);
/// How long one call to a peer may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a forwarded queue call may take: a receive waits up to 20 s for records.
const QUEUE_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between attempts while a group has no known leader.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// How long a starting node waits to catch up before it serves anyway.
const CATCH_UP_MAX: Duration = Duration::from_secs(15);
/// How long placing new shards waits for the metadata group's membership to show (it shows
/// at once but for the moment after a start).
const MEMBERSHIP_WAIT: Duration = Duration::from_secs(5);
/// The file holding the node's identity.
pub const IDENTITY_FILE: &str = "cluster.json";

/// `DATA/cluster.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    pub format: u32,
    /// This node's id in every group.
    pub id: u64,
    /// Its cluster address as peers reach it (the advertised one, which may differ from
    /// the address the node listens on).
    pub addr: String,
    /// Set once the node left the cluster or learnt that it was removed: a start is then
    /// refused (see [`membership`](self::membership)).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub left: bool,
}

impl Identity {
    /// This node's identity: the one recorded, or a new one (a random id) recorded now.
    pub fn load_or_create(data_dir: &Path, addr: &str) -> io::Result<Identity> {
        if let Some(identity) = Identity::load(data_dir)? {
            return Ok(identity);
        }
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|error| io::Error::other(error.to_string()))?;
        // Positive, and exact as a JSON number in any client.
        let id = (u64::from_le_bytes(bytes) >> 12).max(1);
        let identity = Identity {
            format: 1,
            id,
            addr: addr.to_owned(),
            left: false,
        };
        identity.store(data_dir)?;
        Ok(identity)
    }

    /// Reads the identity, or `None` for a directory that never ran as a cluster node.
    pub fn load(data_dir: &Path) -> io::Result<Option<Identity>> {
        let path = data_dir.join(IDENTITY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|error| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is damaged: {error}", path.display()),
                )
            }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Writes the identity (owner-only, fsynced, atomically).
    pub fn store(&self, data_dir: &Path) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        crate::durable_file::replace(data_dir, IDENTITY_FILE, &bytes)
    }
}

/// What nodes ask each other beside Raft's own RPCs.
#[derive(Debug, Serialize, Deserialize)]
pub enum AppRequest {
    /// Add the node `id` at `addr` to the cluster (sent to any member; forwarded to the
    /// metadata leader).
    Join { id: u64, addr: String },
    /// Propose a catalogue command (to the metadata leader).
    Propose { command_json: String },
    /// Append a frame to a shard group (to its leader).
    ShardAppend {
        stream: String,
        ordinal: u32,
        seal: bool,
        record_count: u16,
        ts_ms: u64,
        payload: reads::Blob,
    },
    /// This node's view of the cluster.
    Status,
    /// Open a shard's group here, empty, as a replica about to be added (sent by the shard's
    /// leader before it adds this node as a learner). The shard's catalogue entry travels as
    /// JSON, the form the catalogue stores.
    OpenReplica { stream: String, meta_json: String },
    /// Change a shard group's voters (to its leader): drop `remove`, then add nodes from
    /// `candidates`, in order, until it has `want`; answered with the new voters.
    Reconfigure {
        stream: String,
        ordinal: u32,
        remove: Vec<u64>,
        candidates: Vec<u64>,
        want: u32,
    },
    /// Whether node `id` is a member of the metadata group and whether the catalogue lists
    /// it as removed, as this node sees them.
    MemberState { id: u64 },
    /// Read a shard's committed entries (from a node holding no replica of it; see
    /// [`reads`](self::reads)).
    ShardRead {
        stream: String,
        ordinal: u32,
        from_index: u64,
        entries_max: u32,
        bytes_max: u64,
        at_timestamp: Option<u64>,
        wait_ms: u64,
        prefer_leader: bool,
    },
    /// Serve a queue delivery operation (to the home of queue delivery, the metadata
    /// leader; see `riffle_core::queues`).
    QueueCall { call: ForwardedCall },
    /// [`AppRequest::ShardAppend`] of a data frame whose header carries flags (a frame of an
    /// encrypted stream, sealed by the node the put entered). A variant of its own, and the
    /// last, so that the messages earlier riffles send decode unchanged.
    ShardAppendFlagged {
        stream: String,
        ordinal: u32,
        flags: u16,
        record_count: u16,
        ts_ms: u64,
        payload: reads::Blob,
    },
}

/// The answers to [`AppRequest`]s.
#[derive(Debug, Serialize, Deserialize)]
pub enum AppResponse {
    Joined,
    /// The catalogue's verdict and the Raft index it was applied at.
    Proposed {
        verdict: Result<CatalogueApplied, Rejection>,
        index: u64,
    },
    Appended {
        frame_index: u64,
    },
    Sealed,
    /// This node does not lead the group; `leader` if it knows who does.
    NotLeader {
        leader: Option<u64>,
    },
    Status(NodeStatus),
    Opened,
    Reconfigured {
        voters: Vec<u64>,
    },
    /// A change under way (a new replica catching up, a leadership being handed over):
    /// ask again later.
    Pending(String),
    MemberState {
        member: bool,
        removed: bool,
    },
    /// The append was handed to openraft and then failed: it may or may not be committed.
    Uncertain(String),
    /// The home's answer to a [`AppRequest::QueueCall`].
    QueueAnswer(ForwardedAnswer),
    Failed(String),
    /// A shard's log bounds and committed entries, and the leader the replica knows.
    Read {
        leader: Option<u64>,
        first_index: u64,
        visible_index: u64,
        ts_last_ms: u64,
        found_index: Option<u64>,
        entries: Vec<reads::WireEntry>,
    },
}

/// One node's view, for `riffle cluster status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: u64,
    pub addr: String,
    /// The metadata group: its leader, voters and learners with addresses, applied index.
    pub meta_leader: Option<u64>,
    pub members: BTreeMap<u64, String>,
    pub voters: Vec<u64>,
    pub meta_applied: u64,
    pub shards: Vec<ShardStatus>,
    /// Nodes being drained and nodes removed, as the catalogue lists them.
    pub leaving: Vec<u64>,
    pub removed: Vec<u64>,
    /// Whether this node has left the cluster (it then serves nothing).
    pub left: bool,
    /// Every shard's replicas as the catalogue records them.
    pub placement: Vec<ShardPlacement>,
}

/// One shard's replicas in the catalogue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardPlacement {
    /// The stream's name.
    pub stream: String,
    pub ordinal: u32,
    pub closed: bool,
    pub replicas: Vec<u64>,
}

/// One shard group as this node sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardStatus {
    pub stream: String,
    pub ordinal: u32,
    pub leader: Option<u64>,
    pub replicas: Vec<u64>,
    pub applied: u64,
    /// Per replica, how far behind the leader's last log index its matched index is (only
    /// on the leader).
    pub lag: BTreeMap<u64, u64>,
}

/// Peer messages are postcard, like the network's own frames: a forwarded batch's records
/// travel as their bytes, not as JSON's array of numbers (which cost the forwarding node
/// more CPU than the append). A catalogue command inside travels as its JSON envelope, the
/// form the metadata log stores.
fn encode<T: Serialize>(value: &T) -> Result<Bytes, String> {
    postcard::to_allocvec(value)
        .map(Bytes::from)
        .map_err(|error| error.to_string())
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|error| format!("undecodable peer message: {error}"))
}

/// What `riffle serve` gives the cluster.
pub struct ClusterConfig {
    pub data_dir: PathBuf,
    /// The address peers reach this node at: `--cluster-advertise`, else `--cluster-listen`
    /// (what `DATA/cluster.json` records and the metadata group's membership carries).
    pub addr: String,
    /// Any member's cluster address, on a first start (`--join`).
    pub join: Option<String>,
    pub log_options: LogOptions,
}

struct OpenShard {
    raft: ShardRaft,
    log: Arc<ShardLog>,
    /// When this node last appended to the shard as its leader (ms since the epoch): a shard
    /// being written is not handed over, since appends in flight during a hand-over fail with
    /// an unknown outcome.
    last_append_ms: std::sync::atomic::AtomicU64,
    /// Opened here (`OpenReplica`) to be added to the group, and not yet named a replica by
    /// the catalogue. While it catches up it replays the group's earlier memberships, which
    /// do not count it, so its membership cannot tell it from a copy moved off: this flag
    /// keeps it from being retired until the catalogue names it.
    joining: std::sync::atomic::AtomicBool,
    /// Expires this copy's records past retention.
    retention: shard_group::ShardRetention,
}

/// How long a shard must have been idle on its leader before the leadership moves.
const BALANCE_IDLE_MS: u64 = 2_000;

/// How often a node hands the leadership of shards it leads to their preferred replica.
const BALANCE_INTERVAL: Duration = Duration::from_secs(3);

/// The running cluster side of a node (see the module docs).
pub struct Cluster {
    id: u64,
    addr: String,
    network: PeerNetwork,
    meta: MetaRaft,
    meta_view: MetaView,
    log_options: LogOptions,
    shards: Mutex<HashMap<(String, u32), Arc<OpenShard>>>,
    /// Held while a shard group is opened: two openings of one shard's log at once would
    /// write it through two stores.
    opening: tokio::sync::Mutex<()>,
    /// The riffle-core flusher handed to replicated shard logs (they never queue on it).
    shard_flusher: ShardFlusher,
    /// The fsync threads of every group's log on this node.
    group_commit: GroupCommit,
    config: Arc<openraft::Config>,
    /// The node's data directory.
    data_dir: PathBuf,
    /// The node's identity, as recorded in `cluster.json`.
    identity: Mutex<Identity>,
    /// Set once this node left the cluster (see [`membership`](self::membership)).
    left: std::sync::atomic::AtomicBool,
    /// The node this cluster serves (its data directory's owner).
    node: Weak<Node>,
    /// The leader last named for shards this node holds no replica of.
    leader_hints: Mutex<HashMap<(String, u32), u64>>,
    /// The metadata term in which this node, as the leader, applied everything committed
    /// before it: it serves queue delivery in that term (see [`Cluster::queue_home_now`]).
    queue_term: std::sync::atomic::AtomicU64,
    /// This cluster, for the seam's `'static` futures.
    me: Weak<Cluster>,
}

impl Cluster {
    /// Starts this node's metadata group on `network` and attaches the cluster to `node`.
    pub async fn start(
        config: ClusterConfig,
        identity: Identity,
        network: PeerNetwork,
        node: &Arc<Node>,
    ) -> io::Result<Arc<Cluster>> {
        if identity.left {
            return Err(io::Error::other(format!(
                "this node (id {}) left the cluster or was removed from it, so it serves \
                 nothing and its data directory is kept as it is; to make this machine a \
                 member again, start it with an empty --data-dir and --join",
                identity.id
            )));
        }
        if identity.addr != config.addr {
            tracing::warn!(
                recorded = %identity.addr,
                now = %config.addr,
                "this node's cluster address changed; peers still know it by the old one"
            );
        }
        let raft_config = shard_group::group_config("riffle")?;
        let meta_config = shard_group::meta_config("riffle")?;
        // One group commit for every group of this node (see `flush`).
        let group_commit = GroupCommit::new();
        let (store, machine) =
            meta_group::open_meta_group(&config.data_dir, config.log_options, group_commit.lane())?;
        let meta_view = machine.view();
        let weak_node = Arc::downgrade(node);
        machine.set_hook(Arc::new(move |catalogue| {
            let weak_node = weak_node.clone();
            Box::pin(async move {
                if let Some(node) = weak_node.upgrade() {
                    node.apply_catalogue(catalogue).await;
                }
            })
        }));
        let meta = Raft::new(
            identity.id,
            meta_config,
            network.for_group(GroupId::Meta),
            store,
            machine,
        )
        .await
        .map_err(|error| io::Error::other(format!("cannot start the metadata group: {error}")))?;
        network.register(GroupId::Meta, meta.clone());
        let shard_flusher = ShardFlusher::start(Duration::ZERO)?;
        let cluster = Arc::new_cyclic(|me| Cluster {
            me: me.clone(),
            id: identity.id,
            addr: config.addr.clone(),
            network: network.clone(),
            meta,
            meta_view,
            log_options: config.log_options,
            shards: Mutex::new(HashMap::new()),
            opening: tokio::sync::Mutex::new(()),
            shard_flusher,
            group_commit,
            config: raft_config,
            data_dir: config.data_dir.clone(),
            identity: Mutex::new(identity.clone()),
            left: std::sync::atomic::AtomicBool::new(false),
            leader_hints: Mutex::new(HashMap::new()),
            queue_term: std::sync::atomic::AtomicU64::new(0),
            node: Arc::downgrade(node),
        });
        network.set_app_handler(Arc::new(Handler {
            cluster: Arc::downgrade(&cluster),
        }));
        cluster.refuse_if_removed().await?;
        node.attach_cluster(Arc::clone(&cluster) as Arc<dyn ClusterSeam>);
        // What the metadata group already applied (its snapshot) is this node's catalogue
        // until the log replays the rest.
        node.apply_catalogue(cluster.meta_view.catalogue()).await;

        let initialized = cluster
            .meta
            .is_initialized()
            .await
            .map_err(|error| io::Error::other(error.to_string()))?;
        match (&config.join, initialized) {
            (_, true) => {}
            (None, false) => {
                let members = BTreeMap::from([(
                    identity.id,
                    ClusterNode {
                        addr: config.addr.clone(),
                    },
                )]);
                cluster.meta.initialize(members).await.map_err(|error| {
                    io::Error::other(format!("cannot start the cluster: {error}"))
                })?;
                // `initialize` returns once the first membership is on disk; its metrics,
                // which placement reads, follow a moment later.
                cluster.wait_for_members().await;
            }
            (Some(join), false) => cluster.join(join).await?,
        }
        cluster.catch_up(CATCH_UP_MAX).await;
        let weak = Arc::downgrade(&cluster);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(BALANCE_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(cluster) = weak.upgrade() else {
                    return;
                };
                if cluster.has_left() {
                    return;
                }
                cluster.balance().await;
            }
        });
        membership::start(&cluster);
        Ok(cluster)
    }

    /// Hands the leadership of each shard this node leads to the shard's preferred replica
    /// once that replica is up and has every entry (after it restarted, say), so that
    /// leaderships, and with them the work of appending, stay spread over the nodes.
    async fn balance(&self) {
        let open: Vec<((String, u32), Arc<OpenShard>)> = self
            .shards
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(key, open)| (key.clone(), Arc::clone(open)))
            .collect();
        for ((stream, ordinal), shard) in open {
            let preferred = self.meta_view.read(|catalogue| {
                let replicas = catalogue_shard(catalogue, &stream, ordinal)?
                    .replicas
                    .clone();
                let draining: Vec<u64> = catalogue
                    .nodes_leaving
                    .iter()
                    .chain(&catalogue.nodes_removed)
                    .copied()
                    .collect();
                crate::placement::preferred_leader(&stream, ordinal, &replicas, &draining)
            });
            let Some(preferred) = preferred.filter(|preferred| *preferred != self.id) else {
                continue;
            };
            let idle_since = shard
                .last_append_ms
                .load(std::sync::atomic::Ordering::Relaxed);
            if crate::types::now_ms().saturating_sub(idle_since) < BALANCE_IDLE_MS {
                continue;
            }
            let caught_up = {
                let receiver = shard.raft.metrics();
                let metrics = receiver.borrow_watched();
                metrics.current_leader == Some(self.id)
                    && metrics
                        .membership_config
                        .membership()
                        .voter_ids()
                        .any(|id| id == preferred)
                    && metrics.replication.as_ref().is_some_and(|replication| {
                        replication.get(&preferred).is_some_and(|matched| {
                            matched.as_ref().map(|log_id| log_id.index) == metrics.last_log_index
                        })
                    })
            };
            if caught_up {
                tracing::debug!(
                    to = preferred,
                    "handing a shard's leadership to its preferred replica"
                );
                let _ = shard.raft.trigger().transfer_leader(preferred).await;
            }
        }
    }

    /// Waits (at most `budget`) until the metadata group and then every shard group this
    /// node holds have applied what their own logs held at the start, so that a restarted
    /// node does not answer from a catalogue or a shard older than what it had before it
    /// stopped. Applying needs the leader to confirm the commit point, so this ends early
    /// only when the rest of the cluster is unreachable; the node then serves anyway.
    async fn catch_up(&self, budget: Duration) {
        let deadline = tokio::time::Instant::now() + budget;
        let target = self.meta.metrics().borrow_watched().last_log_index;
        if let Some(target) = target {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Err(error) = self
                .meta
                .wait(Some(left))
                .applied_index_at_least(Some(target), "catalogue caught up")
                .await
            {
                tracing::warn!(%error, "serving before the catalogue caught up with this node's log");
                return;
            }
        }
        let open: Vec<Arc<OpenShard>> = self
            .shards
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for shard in open {
            let target = shard.raft.metrics().borrow_watched().last_log_index;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Some(target) = target {
                if let Err(error) = shard
                    .raft
                    .wait(Some(left))
                    .applied_index_at_least(Some(target), "shard caught up")
                    .await
                {
                    tracing::warn!(%error, "serving before a shard caught up with this node's log");
                    return;
                }
            }
        }
    }

    /// This node's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Asks the member at `join` to add this node, retrying until it answers.
    async fn join(&self, join: &str) -> io::Result<()> {
        let request = encode(&AppRequest::Join {
            id: self.id,
            addr: self.addr.clone(),
        })
        .map_err(io::Error::other)?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match self.network.call(join, request.clone(), CALL_TIMEOUT).await {
                Ok(bytes) => match decode::<AppResponse>(&bytes) {
                    Ok(AppResponse::Joined) => {
                        tracing::info!(%join, id = self.id, "joined the cluster");
                        return Ok(());
                    }
                    Ok(other) => tracing::warn!(%join, answer = ?other, "join not accepted yet"),
                    Err(error) => tracing::warn!(%join, %error, "join answer unreadable"),
                },
                Err(error) => tracing::warn!(%join, %error, "cannot reach the node to join"),
            }
            if tokio::time::Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("could not join the cluster through {join} within a minute"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The metadata group's members (voters and learners) with their addresses.
    fn members(&self) -> BTreeMap<u64, ClusterNode> {
        let metrics = self.meta.metrics();
        let metrics = metrics.borrow_watched();
        metrics
            .membership_config
            .nodes()
            .map(|(id, node)| (*id, node.clone()))
            .collect()
    }

    fn voters(&self) -> Vec<u64> {
        let metrics = self.meta.metrics();
        let metrics = metrics.borrow_watched();
        metrics.membership_config.membership().voter_ids().collect()
    }

    fn addr_of(&self, id: u64) -> Option<String> {
        self.members().get(&id).map(|node| node.addr.clone())
    }

    /// Adds a node to the metadata group (on its leader).
    async fn add_member(&self, id: u64, addr: String) -> Result<AppResponse, String> {
        if self.meta.current_leader().await != Some(self.id) {
            let leader = self.meta.current_leader().await;
            return match leader.and_then(|leader| self.addr_of(leader)) {
                Some(leader_addr) => {
                    let request = encode(&AppRequest::Join { id, addr })?;
                    let bytes = self
                        .network
                        .call(&leader_addr, request, CALL_TIMEOUT)
                        .await
                        .map_err(|error| error.to_string())?;
                    decode(&bytes)
                }
                None => Ok(AppResponse::NotLeader { leader }),
            };
        }
        if self
            .meta_view
            .read(|catalogue| catalogue.nodes_removed.contains(&id))
        {
            return Err(format!(
                "node {id} was removed from this cluster and cannot join it again; start it \
                 with an empty data directory to join as a new node"
            ));
        }
        if !self.voters().contains(&id) {
            self.meta
                .add_learner(id, ClusterNode { addr }, true)
                .await
                .map_err(|error| format!("cannot add the node as a learner: {error}"))?;
            let mut voters: BTreeSet<u64> = self.voters().into_iter().collect();
            voters.insert(id);
            self.meta
                .change_membership(voters, false)
                .await
                .map_err(|error| format!("cannot make the node a voter: {error}"))?;
        }
        Ok(AppResponse::Joined)
    }

    /// Proposes on this node, which must lead the metadata group.
    async fn propose_here(&self, command: &Command) -> Result<AppResponse, String> {
        let data = command_payload(command).map_err(|error| error.to_string())?;
        match self.meta.client_write(data).await {
            Ok(written) => match written.data {
                Response::Catalogue(verdict) => Ok(AppResponse::Proposed {
                    verdict,
                    index: written.log_id.index,
                }),
                other => Err(format!("the metadata group answered {other:?}")),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Ok(AppResponse::NotLeader {
                    leader: forward.leader_id,
                })
            }
            Err(error) => Err(error.to_string()),
        }
    }

    async fn propose_anywhere(
        &self,
        command: Command,
    ) -> Result<CatalogueApplied, riffle_core::Error> {
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        let mut last;
        loop {
            let leader = self.meta.current_leader().await;
            let answer = match leader {
                Some(leader) if leader == self.id => self.propose_here(&command).await,
                Some(leader) => match self.addr_of(leader) {
                    Some(addr) => {
                        let request = serde_json::to_string(&command)
                            .map_err(|error| error.to_string())
                            .and_then(|command_json| encode(&AppRequest::Propose { command_json }));
                        match request {
                            Ok(request) => {
                                match self.network.call(&addr, request, CALL_TIMEOUT).await {
                                    Ok(bytes) => decode(&bytes),
                                    Err(error) => Err(error.to_string()),
                                }
                            }
                            Err(error) => Err(error),
                        }
                    }
                    None => Err(format!("no address for node {leader}")),
                },
                None => Err("the metadata group has no leader".into()),
            };
            match answer {
                Ok(AppResponse::Proposed { verdict, index }) => {
                    // This node's catalogue (and streams) must reflect the change before the
                    // caller goes on, as on a single node.
                    let _ =
                        tokio::time::timeout(LEADER_WAIT, self.meta_view.wait_applied(index)).await;
                    return verdict
                        .map_err(|rejection| riffle_core::Error::internal(rejection.to_string()));
                }
                Ok(AppResponse::Failed(reason)) => last = reason,
                Ok(other) => last = format!("{other:?}"),
                Err(reason) => last = reason,
            }
            if tokio::time::Instant::now() > deadline {
                tracing::warn!(reason = %last, "a catalogue change found no leader");
                return Err(riffle_core::Error::internal(format!(
                    "the cluster's metadata group did not take the change: {last}"
                )));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// The metadata leader and term as this node sees them.
    fn meta_leader_term(&self) -> (Option<u64>, u64) {
        let metrics = self.meta.metrics();
        let metrics = metrics.borrow_watched();
        (metrics.current_leader, metrics.current_term)
    }

    /// Whether this node is the home of queue delivery: the metadata leader, once it has
    /// applied every entry committed before its term (a linearizable read, once per term),
    /// so that the queues it rebuilds hold every acknowledgement its predecessor committed.
    async fn queue_home_now(&self) -> QueueHome {
        use std::sync::atomic::Ordering;
        let (leader, term) = self.meta_leader_term();
        if leader != Some(self.id) {
            return QueueHome::Elsewhere;
        }
        if self.queue_term.load(Ordering::Acquire) == term {
            return QueueHome::Here { term };
        }
        let read = match self
            .meta
            .ensure_linearizable(openraft::ReadPolicy::ReadIndex)
            .await
        {
            Ok(read) => read,
            Err(error) => {
                tracing::debug!(%error, "not the home of queue delivery yet");
                return QueueHome::Elsewhere;
            }
        };
        if tokio::time::timeout(LEADER_WAIT, self.meta_view.wait_applied(read.index()))
            .await
            .is_err()
        {
            return QueueHome::Elsewhere;
        }
        if self.meta_leader_term() != (Some(self.id), term) {
            return QueueHome::Elsewhere;
        }
        self.queue_term.store(term, Ordering::Release);
        tracing::info!(term, "this node is now the home of queue delivery");
        QueueHome::Here { term }
    }

    /// Has the home of queue delivery serve `call` (this node, if it is the home),
    /// retrying while the metadata group has no leader or the home changes.
    async fn forward_queue_call(&self, call: ForwardedCall) -> Result<Vec<u8>, riffle_core::Error> {
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        let mut last;
        loop {
            let answer = match self.meta.current_leader().await {
                Some(leader) if leader == self.id => match self.node.upgrade() {
                    Some(node) => {
                        Ok(riffle_core::queues::serve_forwarded(&node, call.clone()).await)
                    }
                    None => Err("the node is shutting down".to_string()),
                },
                Some(leader) => match self.addr_of(leader) {
                    Some(addr) => match encode(&AppRequest::QueueCall { call: call.clone() }) {
                        Ok(request) => {
                            match self.network.call(&addr, request, QUEUE_CALL_TIMEOUT).await {
                                Ok(bytes) => match decode::<AppResponse>(&bytes) {
                                    Ok(AppResponse::QueueAnswer(answer)) => Ok(answer),
                                    Ok(other) => Err(format!("{other:?}")),
                                    Err(error) => Err(error),
                                },
                                Err(error) => Err(error.to_string()),
                            }
                        }
                        Err(error) => Err(error),
                    },
                    None => Err(format!("no address for node {leader}")),
                },
                None => Err("the metadata group has no leader".into()),
            };
            match answer.map(ForwardedAnswer::into_result) {
                Ok(Ok(Some(body))) => return Ok(body),
                Ok(Err(error)) => return Err(error),
                Ok(Ok(None)) => last = "the home of queue delivery is changing".to_string(),
                Err(reason) => last = reason,
            }
            if tokio::time::Instant::now() > deadline {
                tracing::warn!(reason = %last, "a queue call found no home");
                return Err(riffle_core::Error::internal(format!(
                    "no node of the cluster serves queue delivery now: {last}"
                )));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// Commits a queue's delivery updates from this node, the home in `term`.
    async fn propose_queue_here(
        &self,
        command: Command,
        term: u64,
    ) -> Result<(), riffle_core::Error> {
        let gone = || {
            riffle_core::Error::internal(
                "this node stopped serving queue delivery (the metadata leader changed)",
            )
        };
        if self.meta_leader_term() != (Some(self.id), term) {
            return Err(gone());
        }
        match self.propose_here(&command).await {
            Ok(AppResponse::Proposed { verdict, .. }) => verdict
                .map(|_| ())
                .map_err(|rejection| riffle_core::Error::internal(rejection.to_string())),
            Ok(AppResponse::NotLeader { .. }) => Err(gone()),
            Ok(other) => Err(riffle_core::Error::internal(format!(
                "the metadata group answered {other:?}"
            ))),
            Err(reason) => Err(riffle_core::Error::internal(reason)),
        }
    }

    /// Waits (up to [`MEMBERSHIP_WAIT`]) until the metadata group's metrics name its voters:
    /// they do a moment after the group starts, or after `initialize` returns.
    pub(crate) async fn wait_for_members(&self) {
        let _ = self
            .meta
            .wait(Some(MEMBERSHIP_WAIT))
            .metrics(
                |metrics| {
                    metrics
                        .membership_config
                        .membership()
                        .voter_ids()
                        .next()
                        .is_some()
                },
                "the metadata group's members are known",
            )
            .await;
    }

    /// The replicas of `count` shards made now (see `ClusterSeam::place_new_shards`). The
    /// metadata group's membership shows in its metrics a moment after the group starts (a
    /// request can arrive first): that moment is waited for, and a placement with an empty
    /// list is refused rather than recorded, since a shard without replicas can never be
    /// written to.
    async fn place_new_shards_here(
        &self,
        count: usize,
    ) -> Result<Vec<Vec<u64>>, riffle_core::Error> {
        self.wait_for_members().await;
        let nodes = self.eligible_nodes();
        let placed = self
            .meta_view
            .read(|catalogue| crate::placement::place(catalogue, &nodes, count));
        if placed.iter().any(Vec::is_empty) {
            return Err(riffle_core::Error::internal(
                "no node of the cluster can take the new shards' replicas yet (the cluster is \
                 starting, or every node is leaving); retry",
            ));
        }
        Ok(placed)
    }

    fn shard(&self, stream: &str, ordinal: u32) -> Option<Arc<OpenShard>> {
        self.shards
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(stream.to_owned(), ordinal))
            .cloned()
    }

    /// The log of shard `meta` of the stream stored as `stream` on this node: its group's
    /// (started now if needed) when the catalogue names this node a replica, or while this
    /// node is being added to the group (a learner, or not started yet); a remote log
    /// otherwise. A group this node was moved off is stopped and its data removed: the
    /// catalogue records a shard's new replicas only once its group committed them, so the
    /// data is on them. (The removal itself may not have reached this node's copy of the
    /// group, whose view then still counts it a voter: the catalogue is the one to trust.)
    async fn open_shard_group(
        self: Arc<Self>,
        stream: String,
        meta: ShardMeta,
        dir: PathBuf,
    ) -> Result<Arc<ShardLog>, String> {
        let _opening = self.opening.lock().await;
        if let Some(open) = self.shard(&stream, meta.ordinal) {
            if meta.replicas.contains(&self.id) {
                open.joining
                    .store(false, std::sync::atomic::Ordering::Release);
                return Ok(Arc::clone(&open.log));
            }
            if self.being_added(&open) {
                return Ok(Arc::clone(&open.log));
            }
            self.retire(&stream, meta.ordinal).await;
            return Ok(self.remote_log(&stream, meta.ordinal));
        }
        if !meta.replicas.contains(&self.id) {
            return Ok(self.remote_log(&stream, meta.ordinal));
        }
        self.start_group(stream, &meta, dir, true).await
    }

    /// Opens shard `meta` of `stream` here as a replica about to be added: its group starts
    /// empty, without a membership of its own, and waits for its leader to add it.
    async fn open_learner(self: Arc<Self>, stream: String, meta: ShardMeta) -> Result<(), String> {
        let _opening = self.opening.lock().await;
        if let Some(open) = self.shard(&stream, meta.ordinal) {
            if !meta.replicas.contains(&self.id) {
                // A copy moved off earlier and not retired yet is taken back.
                open.joining
                    .store(true, std::sync::atomic::Ordering::Release);
            }
            return Ok(());
        }
        let dir = self.shard_dir(&stream, meta.ordinal);
        self.start_group(stream, &meta, dir, false)
            .await
            .map(|_| ())
    }

    /// `DATA/streams/<dir_id>/<ordinal>`, where riffle-core keeps a shard's log.
    fn shard_dir(&self, stream: &str, ordinal: u32) -> PathBuf {
        self.data_dir
            .join("streams")
            .join(stream)
            .join(ordinal.to_string())
    }

    /// Whether this node is on its way into the group: a learner, or opened and waiting for
    /// its leader (no membership yet).
    fn being_added(&self, open: &OpenShard) -> bool {
        if open.joining.load(std::sync::atomic::Ordering::Acquire) {
            return true;
        }
        let metrics = open.raft.metrics();
        let metrics = metrics.borrow_watched();
        let membership = metrics.membership_config.membership();
        membership.voter_ids().next().is_none()
            || (membership.learner_ids().any(|id| id == self.id)
                && !membership.voter_ids().any(|id| id == self.id))
    }

    /// Whether the group's membership, as this node last learnt it, still counts this node
    /// (as a voter or a learner), or has no members yet (a replica waiting to be added).
    fn counted_in(&self, open: &OpenShard) -> bool {
        if open.joining.load(std::sync::atomic::Ordering::Acquire) {
            return true;
        }
        let metrics = open.raft.metrics();
        let metrics = metrics.borrow_watched();
        let membership = metrics.membership_config.membership();
        membership.voter_ids().next().is_none()
            || membership.voter_ids().any(|id| id == self.id)
            || membership.learner_ids().any(|id| id == self.id)
    }

    /// Stops this node's group of a shard it no longer replicates and removes its data.
    async fn retire(&self, stream: &str, ordinal: u32) {
        let removed = self
            .shards
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(stream.to_owned(), ordinal));
        let Some(open) = removed else {
            return;
        };
        tracing::info!(
            stream,
            ordinal,
            "this node no longer replicates the shard: stopping its group and removing its copy"
        );
        self.network.unregister(&GroupId::Shard {
            stream: stream.to_owned(),
            ordinal,
        });
        open.log.no_longer_stored();
        let _ = open.raft.shutdown().await;
        if let Some(node) = self.node.upgrade() {
            node.remove_shard_copy(stream, ordinal).await;
        }
    }

    /// The log of a shard this node holds no replica of.
    fn remote_log(self: &Arc<Self>, stream: &str, ordinal: u32) -> Arc<ShardLog> {
        let replica = Arc::new(Appender {
            cluster: Arc::downgrade(self),
            stream: stream.to_owned(),
            ordinal,
        });
        ShardLog::remote(replica, self.shard_flusher.clone())
    }

    /// Opens the shard's log in `dir` and starts its group; with `initialize`, a group never
    /// started before starts with the catalogue's replicas as its membership.
    async fn start_group(
        self: &Arc<Self>,
        stream: String,
        meta: &ShardMeta,
        dir: PathBuf,
        initialize: bool,
    ) -> Result<Arc<ShardLog>, String> {
        let tail = Arc::new(
            watch::channel(TailState {
                visible_index: 0,
                ts_last_ms: 0,
                poisoned: false,
            })
            .0,
        );
        let options = self.log_options;
        let tail_for_storage = Arc::clone(&tail);
        let dir_for_storage = dir.clone();
        let lane = self.group_commit.lane();
        let (store, machine) = tokio::task::spawn_blocking(move || {
            shard_group::open_shard_storage(&dir_for_storage, options, lane, tail_for_storage)
        })
        .await
        .map_err(|error| error.to_string())?
        .map_err(|error| format!("cannot open the log in {}: {error}", dir.display()))?;
        let reader = store.reader().log_reader();
        let group = GroupId::Shard {
            stream: stream.clone(),
            ordinal: meta.ordinal,
        };
        let raft = Raft::new(
            self.id,
            Arc::clone(&self.config),
            self.network.for_group(group.clone()),
            store,
            machine.clone(),
        )
        .await
        .map_err(|error| format!("cannot start the shard's group: {error}"))?;
        let replica = Arc::new(Appender {
            cluster: Arc::downgrade(self),
            stream: stream.clone(),
            ordinal: meta.ordinal,
        });
        let log = ShardLog::replicated(
            reader,
            replica,
            tail,
            Durability::Sync,
            self.shard_flusher.clone(),
        );
        let counted = Arc::downgrade(&log);
        machine.set_counter(Arc::new(move |bytes, records| {
            if let Some(log) = counted.upgrade() {
                log.note_applied(bytes, records);
            }
        }));
        let existing = {
            let mut shards = self.shards.lock().unwrap_or_else(PoisonError::into_inner);
            match shards.get(&(stream.clone(), meta.ordinal)) {
                // Opened meanwhile by another caller: keep theirs.
                Some(open) => Some(Arc::clone(open)),
                None => {
                    let open = Arc::new(OpenShard {
                        raft: raft.clone(),
                        log: Arc::clone(&log),
                        last_append_ms: std::sync::atomic::AtomicU64::new(0),
                        joining: std::sync::atomic::AtomicBool::new(!initialize),
                        retention: shard_group::ShardRetention::new(raft.clone(), machine.clone()),
                    });
                    shards.insert((stream.clone(), meta.ordinal), open);
                    None
                }
            }
        };
        if let Some(open) = existing {
            let _ = raft.shutdown().await;
            return Ok(Arc::clone(&open.log));
        }
        self.network.register(group, raft.clone());
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|error| error.to_string())?;
        if initialize && !initialized {
            let members = self.members();
            let replicas: BTreeMap<u64, ClusterNode> = meta
                .replicas
                .iter()
                .map(|id| (*id, members.get(id).cloned().unwrap_or_default()))
                .collect();
            // Every replica starts the group with the same membership, decided when the
            // shard was made (the catalogue records it): the same first entry everywhere.
            if let Err(error) = raft.initialize(replicas).await {
                tracing::debug!(%error, "shard group already started");
            }
            let preferred = crate::placement::preferred_leader(
                &stream,
                meta.ordinal,
                &meta.replicas,
                &self.draining(),
            );
            if preferred == Some(self.id) {
                // The preferred replica stands first, before the others' election timers run
                // out, so a new stream's leaderships start spread.
                let _ = raft.trigger().elect(false).await;
            }
        }
        Ok(log)
    }

    fn close(&self, stream: &str, ordinals: &[u32]) {
        for ordinal in ordinals {
            let removed = self
                .shards
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&(stream.to_owned(), *ordinal));
            if let Some(open) = removed {
                self.network.unregister(&GroupId::Shard {
                    stream: stream.to_owned(),
                    ordinal: *ordinal,
                });
                tokio::spawn(async move {
                    let _ = open.raft.shutdown().await;
                });
            }
        }
    }

    /// Appends on this node if it leads the shard's group. `NotLeader` means nothing was
    /// appended; any other failure once the entry is handed to openraft is `Uncertain`: an
    /// entry in a former leader's log may still be committed by its successor.
    async fn append_here(
        &self,
        stream: &str,
        ordinal: u32,
        payload: FramePayload,
    ) -> Result<AppResponse, String> {
        let Some(open) = self.shard(stream, ordinal) else {
            // Nothing appended: the caller asks another replica.
            return Ok(AppResponse::NotLeader { leader: None });
        };
        let leader = open.raft.current_leader().await;
        if leader != Some(self.id) {
            return Ok(AppResponse::NotLeader { leader });
        }
        open.last_append_ms
            .store(crate::types::now_ms(), std::sync::atomic::Ordering::Relaxed);
        match open.raft.client_write(payload).await {
            Ok(written) => match written.data {
                Response::Appended(applied) => Ok(AppResponse::Appended {
                    frame_index: applied.frame_index,
                }),
                Response::Sealed => Ok(AppResponse::Sealed),
                other => Ok(AppResponse::Uncertain(format!(
                    "the shard group answered {other:?}"
                ))),
            },
            // openraft answers ForwardToLeader only for a write it did not append (it checks
            // leadership, and its lease, first); an entry appended and then lost is
            // `LogEntryDiscarded`, and one appended and committed after a change of leader is
            // still answered with success when this node applies it.
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Ok(AppResponse::NotLeader {
                    leader: forward.leader_id,
                })
            }
            Err(error) => Ok(AppResponse::Uncertain(error.to_string())),
        }
    }

    /// Appends `frame` through the shard's leader, wherever it is. An attempt is made again
    /// only when it surely appended nothing (no leader known, the leader could not be
    /// reached, a node that is not the leader refused it), so a record is never stored twice
    /// by riffle's own retries; an attempt whose outcome is unknown fails the append
    /// (InternalFailure, which clients retry, as after any write whose answer was lost).
    async fn append_anywhere(
        &self,
        stream: &str,
        ordinal: u32,
        frame: ReplicaFrame,
    ) -> Result<Appended, AppendError> {
        let seal = frame.kind == FrameKind::Seal;
        let payload = Bytes::from(frame.payload);
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        let mut attempt = 0usize;
        loop {
            attempt += 1;
            let answer = match self.shard_leader(stream, ordinal, attempt).await {
                Some(leader) if leader == self.id => {
                    let data = FramePayload::stamped(
                        seal,
                        frame.flags,
                        frame.record_count,
                        frame.ts_ms,
                        payload.clone(),
                    );
                    match self.append_here(stream, ordinal, data).await {
                        Ok(answer) => Self::settle(answer, frame.ts_ms),
                        Err(reason) => Attempt::Fail(AppendError::Replication(reason)),
                    }
                }
                Some(leader) => match self.addr_in_shard(stream, ordinal, leader) {
                    None => Attempt::Retry(format!("no address for node {leader} yet")),
                    Some(addr) => {
                        let request = if frame.flags == 0 {
                            AppRequest::ShardAppend {
                                stream: stream.to_owned(),
                                ordinal,
                                seal,
                                record_count: frame.record_count,
                                ts_ms: frame.ts_ms,
                                payload: reads::Blob(payload.clone()),
                            }
                        } else {
                            AppRequest::ShardAppendFlagged {
                                stream: stream.to_owned(),
                                ordinal,
                                flags: frame.flags,
                                record_count: frame.record_count,
                                ts_ms: frame.ts_ms,
                                payload: reads::Blob(payload.clone()),
                            }
                        };
                        let request = encode(&request).map_err(AppendError::Replication)?;
                        // A leader that stopped answering (paused, its disk full, cut off) is
                        // replaced within an election timeout; waiting for its answer until
                        // the call times out would hold every write to the shard that long.
                        // Once another leader is known the call's outcome is unknown, as after
                        // any lost answer, and the client retries through the new leader. (A
                        // node holding no replica has no group to learn that from, and waits
                        // for the call.)
                        let call = self.network.call(&addr, request, CALL_TIMEOUT);
                        let group = self.shard(stream, ordinal);
                        let replaced = async {
                            match &group {
                                Some(open) => {
                                    leader_silent_after_handover(&open.raft, leader).await
                                }
                                None => std::future::pending().await,
                            }
                        };
                        tokio::select! {
                            called = call => match called {
                                Ok(bytes) => match decode::<AppResponse>(&bytes) {
                                    Ok(answer) => {
                                        self.note_leader(stream, ordinal, &answer);
                                        Self::settle(answer, frame.ts_ms)
                                    }
                                    Err(reason) => Attempt::Fail(AppendError::Replication(reason)),
                                },
                                Err(error) if error.surely_unsent() => {
                                    self.forget_leader(stream, ordinal);
                                    Attempt::Retry(error.to_string())
                                }
                                Err(error) => Attempt::Fail(AppendError::Replication(format!(
                                    "the append's outcome is unknown: {error}"
                                ))),
                            },
                            successor = replaced => {
                                self.forget_leader(stream, ordinal);
                                Attempt::Fail(AppendError::Replication(format!(
                                    "the append's outcome is unknown: node {successor} took \
                                     over the shard from node {leader} while it was forwarded"
                                )))
                            }
                        }
                    }
                },
                None => Attempt::Retry("the shard's group has no leader".to_owned()),
            };
            match answer {
                Attempt::Done(appended) => return Ok(appended),
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry(reason) => {
                    if tokio::time::Instant::now() > deadline {
                        return Err(AppendError::Replication(reason));
                    }
                }
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// Who leads the shard's group, as far as this node can tell: the group's own view when
    /// this node holds a replica; else the leader a replica named last, or else (the
    /// `attempt`-th time) one of the catalogue's replicas in turn, which forwards the caller
    /// to the leader it knows.
    async fn shard_leader(&self, stream: &str, ordinal: u32, attempt: usize) -> Option<u64> {
        if let Some(open) = self.shard(stream, ordinal) {
            if let Some(leader) = open.raft.current_leader().await {
                return Some(leader);
            }
        }
        let key = (stream.to_owned(), ordinal);
        if let Some(hint) = self
            .leader_hints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Some(*hint);
        }
        let replicas: Vec<u64> = self.meta_view.read(|catalogue| {
            catalogue_shard(catalogue, stream, ordinal)
                .map(|shard| shard.replicas.clone())
                .unwrap_or_default()
        });
        let others: Vec<u64> = replicas.into_iter().filter(|id| *id != self.id).collect();
        if others.is_empty() {
            return None;
        }
        others.get(attempt % others.len()).copied()
    }

    /// Remembers the leader a replica named in `answer`, or forgets the one it denied being.
    fn note_leader(&self, stream: &str, ordinal: u32, answer: &AppResponse) {
        if let AppResponse::NotLeader { leader } = answer {
            let key = (stream.to_owned(), ordinal);
            let mut hints = self
                .leader_hints
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match leader {
                Some(leader) => hints.insert(key, *leader),
                None => hints.remove(&key),
            };
        }
    }

    fn forget_leader(&self, stream: &str, ordinal: u32) {
        self.leader_hints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(stream.to_owned(), ordinal));
    }

    /// The cluster address of node `id`: from the metadata group's members, else from the
    /// shard group's own membership.
    fn addr_in_shard(&self, stream: &str, ordinal: u32, id: u64) -> Option<String> {
        if let Some(addr) = self.addr_of(id) {
            return Some(addr);
        }
        let open = self.shard(stream, ordinal)?;
        let receiver = open.raft.metrics();
        let metrics = receiver.borrow_watched();
        let found = metrics
            .membership_config
            .nodes()
            .find(|(node, _)| **node == id)
            .map(|(_, node)| node.addr.clone());
        found
    }

    /// What an append attempt's answer means.
    fn settle(answer: AppResponse, ts_ms: u64) -> Attempt {
        match answer {
            AppResponse::Appended { frame_index } => Attempt::Done(Appended {
                index: frame_index,
                arrival_ms: ts_ms,
            }),
            AppResponse::Sealed => Attempt::Fail(AppendError::Sealed),
            AppResponse::NotLeader { leader } => {
                Attempt::Retry(format!("not the leader (the leader is {leader:?})"))
            }
            AppResponse::Uncertain(reason) => Attempt::Fail(AppendError::Replication(format!(
                "the append's outcome is unknown: {reason}"
            ))),
            AppResponse::Failed(reason) => Attempt::Fail(AppendError::Replication(reason)),
            other => Attempt::Fail(AppendError::Replication(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// This node's view of the cluster.
    pub async fn status(&self) -> NodeStatus {
        let meta_leader = self.meta.current_leader().await;
        let members = self
            .members()
            .into_iter()
            .map(|(id, node)| (id, node.addr))
            .collect();
        let open: Vec<((String, u32), Arc<OpenShard>)> = self
            .shards
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(key, open)| (key.clone(), Arc::clone(open)))
            .collect();
        let mut shards = Vec::with_capacity(open.len());
        for ((stream, ordinal), open) in open {
            let metrics = open.raft.metrics().borrow_watched().clone();
            let last = metrics.last_log_index.unwrap_or(0);
            let lag = metrics
                .replication
                .as_ref()
                .map(|replication| {
                    replication
                        .iter()
                        .map(|(id, matched)| {
                            (
                                *id,
                                last.saturating_sub(
                                    matched.as_ref().map_or(0, |log_id| log_id.index),
                                ),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            shards.push(ShardStatus {
                stream,
                ordinal,
                leader: metrics.current_leader,
                replicas: metrics.membership_config.membership().voter_ids().collect(),
                applied: metrics.last_applied.map_or(0, |log_id| log_id.index),
                lag,
            });
        }
        shards.sort_by(|a, b| (&a.stream, a.ordinal).cmp(&(&b.stream, b.ordinal)));
        let (leaving, removed, placement) = self.meta_view.read(|catalogue| {
            let placement = catalogue
                .streams
                .values()
                .flat_map(|entry| {
                    entry.meta.shards.iter().map(|shard| ShardPlacement {
                        stream: entry.meta.name.clone(),
                        ordinal: shard.ordinal,
                        closed: shard.closed.is_some(),
                        replicas: shard.replicas.clone(),
                    })
                })
                .collect();
            (
                catalogue.nodes_leaving.clone(),
                catalogue.nodes_removed.clone(),
                placement,
            )
        });
        NodeStatus {
            id: self.id,
            addr: self.addr.clone(),
            meta_leader,
            members,
            voters: self.voters(),
            meta_applied: self.meta_view.applied().map_or(0, |log_id| log_id.index),
            shards,
            leaving,
            removed,
            left: self.has_left(),
            placement,
        }
    }

    /// Stops every group (clean shutdown).
    pub async fn shutdown(&self) {
        let open: Vec<Arc<OpenShard>> = self
            .shards
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, open)| open)
            .collect();
        for open in open {
            let _ = open.raft.shutdown().await;
        }
        let _ = self.meta.shutdown().await;
    }
}

impl ClusterSeam for Cluster {
    fn propose(&self, command: Command) -> BoxFuture<Result<CatalogueApplied, riffle_core::Error>> {
        let cluster = self.myself();
        Box::pin(async move {
            match cluster {
                Some(cluster) => cluster.propose_anywhere(command).await,
                None => Err(riffle_core::Error::internal("the cluster is shutting down")),
            }
        })
    }

    fn open_shard(
        &self,
        dir_id: &str,
        meta: &ShardMeta,
        dir: PathBuf,
    ) -> BoxFuture<Result<Arc<ShardLog>, String>> {
        let cluster = self.myself();
        let stream = dir_id.to_owned();
        let meta = meta.clone();
        Box::pin(async move {
            match cluster {
                Some(cluster) => cluster.open_shard_group(stream, meta, dir).await,
                None => Err("the cluster is shutting down".into()),
            }
        })
    }

    fn close_shards(&self, dir_id: &str, ordinals: &[u32]) {
        self.close(dir_id, ordinals);
    }

    fn queue_home(&self) -> BoxFuture<Result<QueueHome, riffle_core::Error>> {
        let cluster = self.myself();
        Box::pin(async move {
            match cluster {
                Some(cluster) => Ok(cluster.queue_home_now().await),
                None => Err(riffle_core::Error::internal("the cluster is shutting down")),
            }
        })
    }

    fn forward_queue(&self, call: ForwardedCall) -> BoxFuture<Result<Vec<u8>, riffle_core::Error>> {
        let cluster = self.myself();
        Box::pin(async move {
            match cluster {
                Some(cluster) => cluster.forward_queue_call(call).await,
                None => Err(riffle_core::Error::internal("the cluster is shutting down")),
            }
        })
    }

    fn propose_queue(
        &self,
        command: Command,
        term: u64,
    ) -> BoxFuture<Result<(), riffle_core::Error>> {
        let cluster = self.myself();
        Box::pin(async move {
            match cluster {
                Some(cluster) => cluster.propose_queue_here(command, term).await,
                None => Err(riffle_core::Error::internal("the cluster is shutting down")),
            }
        })
    }

    fn place_new_shards(
        &self,
        count: usize,
    ) -> BoxFuture<Result<Vec<Vec<u64>>, riffle_core::Error>> {
        let cluster = self.myself();
        Box::pin(async move {
            let Some(cluster) = cluster else {
                return Err(riffle_core::Error::internal("the cluster is shutting down"));
            };
            cluster.place_new_shards_here(count).await
        })
    }

    fn refusal(&self) -> Option<String> {
        self.has_left().then(|| {
            format!(
                "this node (id {}) left the cluster and serves nothing; use another node",
                self.id
            )
        })
    }

    fn admin(&self, path: &str, body: Vec<u8>, proof: Option<String>) -> BoxFuture<(u16, String)> {
        let cluster = self.myself();
        let path = path.to_owned();
        Box::pin(async move {
            match cluster {
                Some(cluster) => cluster.admin_call(&path, &body, proof.as_deref()).await,
                None => (503, "{\"error\":\"shutting down\"}".to_owned()),
            }
        })
    }

    fn leads_catalogue(&self) -> bool {
        self.meta.metrics().borrow_watched().current_leader == Some(self.id)
    }

    fn check_read_proof(
        &self,
        path: &str,
        at_ms: Option<&str>,
        proof: Option<&str>,
    ) -> Result<(), String> {
        membership::check_read_proof(self.network.secret(), path, at_ms, proof)
    }

    fn status_json(&self) -> BoxFuture<String> {
        let cluster = self.myself();
        Box::pin(async move {
            match cluster {
                Some(cluster) => serde_json::to_string_pretty(&cluster.status().await)
                    .unwrap_or_else(|error| format!("{{\"error\":\"{error}\"}}")),
                None => "{\"error\":\"shutting down\"}".to_owned(),
            }
        })
    }
}

impl Cluster {
    fn myself(&self) -> Option<Arc<Cluster>> {
        self.me.upgrade()
    }
}

/// A leader that hands its shard over on purpose (the balancer) still answers a forwarded
/// append at once, appended or not; only one that stays silent this long after a successor is
/// known is given up on.
const HANDOVER_GRACE: Duration = Duration::from_millis(500);

/// Resolves [`HANDOVER_GRACE`] after `raft`'s group knows a leader other than `leader`.
async fn leader_silent_after_handover(raft: &ShardRaft, leader: u64) -> u64 {
    let successor = leader_replaced(raft, leader).await;
    tokio::time::sleep(HANDOVER_GRACE).await;
    successor
}

/// Resolves once `raft`'s group knows a leader other than `leader` (never, if the group
/// stops).
async fn leader_replaced(raft: &ShardRaft, leader: u64) -> u64 {
    let mut metrics = raft.metrics();
    loop {
        let known = metrics.borrow_watched().current_leader;
        if let Some(successor) = known.filter(|known| *known != leader) {
            return successor;
        }
        if metrics.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Shard `ordinal` of the stream stored as `dir_id` in `catalogue`.
fn catalogue_shard<'a>(
    catalogue: &'a riffle_core::catalogue::CatalogueState,
    dir_id: &str,
    ordinal: u32,
) -> Option<&'a ShardMeta> {
    catalogue
        .streams
        .values()
        .find(|entry| entry.meta.dir_id == dir_id)?
        .meta
        .shards
        .iter()
        .find(|shard| shard.ordinal == ordinal)
}

/// The outcome of one append attempt (see [`Cluster::append_anywhere`]).
enum Attempt {
    Done(Appended),
    /// Nothing was appended; try again.
    Retry(String),
    Fail(AppendError),
}

/// A replicated shard's appends (riffle-core's [`ShardReplica`]).
struct Appender {
    cluster: Weak<Cluster>,
    stream: String,
    ordinal: u32,
}

impl ShardReplica for Appender {
    fn append(
        &self,
        frame: ReplicaFrame,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Appended, AppendError>> + Send>>
    {
        let cluster = self.cluster.upgrade();
        let stream = self.stream.clone();
        let ordinal = self.ordinal;
        Box::pin(async move {
            match cluster {
                Some(cluster) => cluster.append_anywhere(&stream, ordinal, frame).await,
                None => Err(AppendError::Replication(
                    "the cluster is shutting down".into(),
                )),
            }
        })
    }

    fn read(
        &self,
        request: FetchRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Fetched, String>> + Send>> {
        let cluster = self.cluster.upgrade();
        let stream = self.stream.clone();
        let ordinal = self.ordinal;
        Box::pin(async move {
            match cluster {
                Some(cluster) => cluster.read_anywhere(&stream, ordinal, request).await,
                None => Err("the cluster is shutting down".into()),
            }
        })
    }

    fn expire(
        &self,
        cutoff_ms: u64,
        roll_before_ms: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<u64>, String>> + Send>>
    {
        let open = self
            .cluster
            .upgrade()
            .and_then(|cluster| cluster.shard(&self.stream, self.ordinal));
        Box::pin(async move {
            match open {
                Some(open) => open
                    .retention
                    .expire(cutoff_ms, roll_before_ms)
                    .await
                    .map_err(|error| error.to_string()),
                None => Ok(None),
            }
        })
    }
}

/// Answers [`AppRequest`]s from peers.
pub struct Handler {
    cluster: Weak<Cluster>,
}

impl Handler {
    async fn answer(&self, body: Bytes) -> Result<AppResponse, String> {
        let Some(cluster) = self.cluster.upgrade() else {
            return Err("shutting down".into());
        };
        match decode::<AppRequest>(&body)? {
            AppRequest::Join { id, addr } => cluster.add_member(id, addr).await,
            AppRequest::Propose { command_json } => {
                let command: Command = serde_json::from_str(&command_json)
                    .map_err(|error| format!("undecodable catalogue command: {error}"))?;
                cluster.propose_here(&command).await
            }
            AppRequest::ShardAppend {
                stream,
                ordinal,
                seal,
                record_count,
                ts_ms,
                payload,
            } => {
                let data = FramePayload::stamped(seal, 0, record_count, ts_ms, payload.0);
                cluster.append_here(&stream, ordinal, data).await
            }
            AppRequest::ShardAppendFlagged {
                stream,
                ordinal,
                flags,
                record_count,
                ts_ms,
                payload,
            } => {
                let data = FramePayload::stamped(false, flags, record_count, ts_ms, payload.0);
                cluster.append_here(&stream, ordinal, data).await
            }
            AppRequest::Status => Ok(AppResponse::Status(cluster.status().await)),
            AppRequest::OpenReplica { stream, meta_json } => {
                let meta: ShardMeta = serde_json::from_str(&meta_json)
                    .map_err(|error| format!("undecodable shard entry: {error}"))?;
                cluster.open_learner(stream, meta).await?;
                Ok(AppResponse::Opened)
            }
            AppRequest::Reconfigure {
                stream,
                ordinal,
                remove,
                candidates,
                want,
            } => {
                cluster
                    .reconfigure_here(&stream, ordinal, &remove, &candidates, want as usize)
                    .await
            }
            AppRequest::MemberState { id } => Ok(cluster.member_state(id)),
            AppRequest::ShardRead {
                stream,
                ordinal,
                from_index,
                entries_max,
                bytes_max,
                at_timestamp,
                wait_ms,
                prefer_leader,
            } => {
                let request = FetchRequest {
                    from_index,
                    entries_max: entries_max as usize,
                    bytes_max: usize::try_from(bytes_max).unwrap_or(usize::MAX),
                    at_timestamp,
                    wait_ms,
                };
                cluster
                    .read_here(&stream, ordinal, request, prefer_leader)
                    .await
            }
            AppRequest::QueueCall { call } => {
                Ok(AppResponse::QueueAnswer(match cluster.node.upgrade() {
                    Some(node) => riffle_core::queues::serve_forwarded(&node, call).await,
                    None => ForwardedAnswer::NotHome,
                }))
            }
        }
    }
}

impl AppHandler for Handler {
    fn handle(&self, _from: u64, body: Bytes) -> NetFuture<'_, Result<Bytes, String>> {
        let cluster = self.cluster.clone();
        Box::pin(async move {
            let handler = Handler { cluster };
            let answer = match handler.answer(body).await {
                Ok(answer) => answer,
                Err(reason) => AppResponse::Failed(reason),
            };
            encode(&answer)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ShardAppend` as earlier builds derived it (the payload a `Vec<u8>`, a sequence).
    #[derive(Serialize)]
    enum OldAppRequest {
        _Join,
        _Propose,
        ShardAppend {
            stream: String,
            ordinal: u32,
            seal: bool,
            record_count: u16,
            ts_ms: u64,
            payload: Vec<u8>,
        },
    }

    #[test]
    fn a_forwarded_append_is_written_as_earlier_builds_wrote_it_and_read_back() {
        let payload: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let new = AppRequest::ShardAppend {
            stream: "s".into(),
            ordinal: 3,
            seal: false,
            record_count: 5,
            ts_ms: 42,
            payload: Blob(Bytes::from(payload.clone())),
        };
        let old = OldAppRequest::ShardAppend {
            stream: "s".into(),
            ordinal: 3,
            seal: false,
            record_count: 5,
            ts_ms: 42,
            payload: payload.clone(),
        };
        let bytes = encode(&new).unwrap();
        assert_eq!(bytes, encode(&old).unwrap());
        match decode::<AppRequest>(&bytes).unwrap() {
            AppRequest::ShardAppend { payload: got, .. } => assert_eq!(got.0, payload),
            other => panic!("decoded {other:?}"),
        }
    }
}
