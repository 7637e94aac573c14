//! One node as a turmoil host: its metadata group and its shard groups, each with its storage
//! in its own directory on the node's simulated disk, openraft's RPCs served and sent as
//! [`crate::wire`] frames over turmoil's TCP (a shard's tagged with the shard), and the
//! workloads' proposals, record appends and retention passes answered.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::async_runtime::WatchReceiver;
use openraft::error::{
    ClientWriteError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::rt::AsyncRuntime;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::{Config, Raft, RaftNetworkFactory, RaftNetworkV2, ServerState};
use riffle_cluster::shard_group::{
    group_config, open_shard_storage, ShardRaft, ShardRetention, ShardStateMachine,
};
use riffle_cluster::{
    open_meta_group, propose, ClusterNode, FramePayload, MetaRaft, MetaView, ProposeError,
    Response, RiffleRaft, RiffleRuntime,
};
use riffle_core::catalogue::{Applied, Rejection};
use riffle_core::shard_log::TailState;
use riffle_log::{LogOptions, LogReader};
use tokio::sync::watch;
use turmoil::net::{TcpListener, TcpStream};

use crate::disk::{Disk, SimFlusher, SimStore};
use crate::wire::{self, Proposed, Recorded, Reply, Request};

/// The port every node listens on for its peers and the workload.
pub const PORT: u16 = 7100;

/// The turmoil host name of node `id`.
pub fn host_name(id: u64) -> String {
    format!("node{id}")
}

/// openraft's timing for the simulation: the test suite's values (in simulated time), and a
/// snapshot every `snapshot_every` entries (so snapshots, the purges after them and their
/// installation on a lagging node happen during a run, not only at its end).
pub fn raft_config(snapshot_every: u64, leader_restore: bool) -> Arc<Config> {
    let config = Config {
        enable_leader_restore: Some(leader_restore),
        cluster_name: "riffle-sim".to_string(),
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(snapshot_every),
        max_in_snapshot_log_to_keep: snapshot_every / 4,
        ..Default::default()
    };
    Arc::new(
        config
            .validate()
            .expect("the simulator's Raft config is valid"),
    )
}

/// The metadata log's options in the simulation: small segments, so runs roll, seal and
/// purge segments (and a crash finds sealed segments before the active one).
pub fn log_options() -> LogOptions {
    LogOptions {
        segment_bytes_max: 4096,
        index_interval_bytes: 512,
    }
}

/// riffle's configuration for shard groups ([`group_config`]), with openraft's
/// `enable_leader_restore` set to `leader_restore` (see [`crate::Plan::leader_restore`]).
pub fn shard_config(leader_restore: bool) -> io::Result<Arc<Config>> {
    let mut config = (*group_config("riffle-sim")?).clone();
    config.enable_leader_restore = Some(leader_restore);
    config
        .validate()
        .map(Arc::new)
        .map_err(|error| io::Error::other(error.to_string()))
}

/// How many bytes a shard log's segment holds in the simulation: small, so that a run rolls
/// several segments and retention has whole segments to expire.
pub const SHARD_SEGMENT_BYTES: u64 = 768;

/// A shard log's options in the simulation.
pub fn shard_log_options() -> LogOptions {
    LogOptions {
        segment_bytes_max: SHARD_SEGMENT_BYTES,
        index_interval_bytes: 128,
    }
}

/// The directory of shard `shard`'s log in a node's directory.
pub fn shard_dir(node_dir: &Path, shard: u32) -> PathBuf {
    node_dir.join(format!("shard{shard}"))
}

/// What the driver and the workload keep of one node's replica of a shard.
#[derive(Clone)]
pub struct ShardHandle {
    pub raft: ShardRaft,
    pub machine: ShardStateMachine,
    /// Reads the replica's log (what riffle's shard readers read committed frames with).
    pub reader: LogReader,
}

/// What a node boots: its metadata group and its shard groups, each with its disk.
pub struct NodeSetup {
    pub id: u64,
    pub seed: u64,
    pub meta_config: Arc<Config>,
    pub shard_config: Arc<Config>,
    pub dir: PathBuf,
    /// The metadata log's disk, then each shard's (shard `n` at `n + 1`).
    pub disks: Vec<Arc<Disk>>,
    pub members: Vec<u64>,
}

/// Opens node `id`'s storage in `dir` on `disk`, starts its Raft groups, registers them and
/// serves until the host crashes. openraft's randomness (election timeouts, tick phases)
/// comes from `seed`, in this task and every task spawned from it (the disks' fsync tasks
/// included).
pub async fn run_node(
    setup: NodeSetup,
    on_start: impl FnOnce(MetaRaft, MetaView, Vec<ShardHandle>),
) -> Result<(), Box<dyn std::error::Error>> {
    RiffleRuntime::seeded(setup.seed, serve_node(setup, on_start)).await
}

/// The groups a node serves.
struct Groups {
    meta: MetaRaft,
    shards: Vec<(ShardRaft, ShardRetention)>,
}

async fn serve_node(
    setup: NodeSetup,
    on_start: impl FnOnce(MetaRaft, MetaView, Vec<ShardHandle>),
) -> Result<(), Box<dyn std::error::Error>> {
    let NodeSetup {
        id,
        meta_config,
        shard_config,
        dir,
        disks,
        members,
        ..
    } = setup;
    let meta_disk = disks.first().expect("a node has a metadata log").clone();
    let flusher = SimFlusher::start(meta_disk.clone());
    let (store, machine) = open_meta_group(&dir, log_options(), Arc::new(flusher))?;
    let store = SimStore::new(store, meta_disk);
    let view = machine.view();
    let raft = Raft::new(id, meta_config, Net { shard: None }, store, machine).await?;
    let mut handles = Vec::new();
    let mut shards = Vec::new();
    for (shard, disk) in disks.iter().skip(1).enumerate() {
        let shard = shard as u32;
        let flusher = SimFlusher::start(disk.clone());
        // Nobody waits on the tail here (readers read up to the applied index).
        let tail = Arc::new(watch::channel(TailState::default()).0);
        let (store, machine) = open_shard_storage(
            &shard_dir(&dir, shard),
            shard_log_options(),
            Arc::new(flusher),
            tail,
        )?;
        let reader = store.reader().log_reader();
        let store = SimStore::new(store, disk.clone());
        let shard_raft = Raft::new(
            id,
            shard_config.clone(),
            Net { shard: Some(shard) },
            store,
            machine.clone(),
        )
        .await?;
        shards.push((
            shard_raft.clone(),
            ShardRetention::new(shard_raft.clone(), machine.clone()),
        ));
        handles.push(ShardHandle {
            raft: shard_raft,
            machine,
            reader,
        });
    }
    on_start(raft.clone(), view, handles);
    let listener = TcpListener::bind(("0.0.0.0", PORT)).await?;
    if id == members[0] {
        let nodes = members
            .iter()
            .map(|member| {
                let node = ClusterNode {
                    addr: format!("{}:{PORT}", host_name(*member)),
                };
                (*member, node)
            })
            .collect::<std::collections::BTreeMap<_, _>>();
        // Refused after the first boot (the log is not empty), which is what a restart wants.
        let _ = raft.initialize(nodes.clone()).await;
        for (shard, _) in &shards {
            let _ = shard.initialize(nodes.clone()).await;
        }
    }
    let groups = Arc::new(Groups { meta: raft, shards });
    loop {
        let (stream, _) = listener.accept().await?;
        // Through openraft's runtime, so the connection's task inherits the seed (openraft
        // may spawn from inside an API call).
        RiffleRuntime::spawn(serve(groups.clone(), stream));
    }
}

/// Answers requests on one connection until it closes or breaks.
async fn serve(groups: Arc<Groups>, mut stream: TcpStream) {
    while let Ok(Some(request)) = wire::read_frame::<Request>(&mut stream).await {
        let reply = answer(&groups, request).await;
        if wire::write_frame(&mut stream, &reply).await.is_err() {
            return;
        }
    }
}

async fn answer(groups: &Groups, request: Request) -> Reply {
    match request {
        Request::Propose(command) => Reply::Proposed(match propose(&groups.meta, &command).await {
            Ok(Ok(Applied::Stream { version })) => Proposed::Applied(version),
            Ok(Ok(Applied::Done)) => Proposed::Applied(0),
            Ok(Err(Rejection::Stale { current })) => Proposed::Rejected {
                reason: "stale".into(),
                current: Some(current),
            },
            Ok(Err(rejection)) => Proposed::Rejected {
                reason: format!("{rejection:?}"),
                current: None,
            },
            Err(ProposeError::Raft(RaftError::APIError(ClientWriteError::ForwardToLeader(
                forward,
            )))) => Proposed::Forward(forward.leader_id),
            Err(error) => Proposed::Failed(error.to_string()),
        }),
        Request::Shard { shard, rpc } => match groups.shards.get(shard as usize) {
            Some((raft, _)) => answer_rpc(raft, *rpc).await,
            None => Reply::Error(format!("no shard {shard}")),
        },
        Request::Record {
            shard,
            seal,
            record_count,
            ts_ms,
            payload,
        } => {
            let Some((raft, _)) = groups.shards.get(shard as usize) else {
                return Reply::Error(format!("no shard {shard}"));
            };
            let data = FramePayload::stamped(seal, 0, record_count, ts_ms, Bytes::from(payload));
            Reply::Recorded(match raft.client_write(data).await {
                Ok(written) => match written.data {
                    Response::Appended(applied) => Recorded::Appended(applied.frame_index),
                    Response::Sealed => Recorded::Sealed,
                    other => Recorded::Failed(format!("unexpected answer {other:?}")),
                },
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                    Recorded::Forward(forward.leader_id)
                }
                Err(error) => Recorded::Failed(error.to_string()),
            })
        }
        Request::Expire {
            shard,
            cutoff_ms,
            roll_before_ms,
        } => {
            let Some((raft, retention)) = groups.shards.get(shard as usize) else {
                return Reply::Error(format!("no shard {shard}"));
            };
            if raft.metrics().borrow_watched().state != ServerState::Leader {
                return Reply::Expired(Err("not the leader".into()));
            }
            Reply::Expired(
                retention
                    .expire(cutoff_ms, roll_before_ms)
                    .await
                    .map_err(|error| error.to_string()),
            )
        }
        rpc => answer_rpc(&groups.meta, rpc).await,
    }
}

/// Answers one openraft RPC for the group `raft`.
async fn answer_rpc<SM>(raft: &Raft<RiffleRaft, SM>, request: Request) -> Reply
where
    SM: RaftStateMachine<RiffleRaft, SnapshotData = Bytes>,
{
    match request {
        Request::Append {
            vote,
            prev_log_id,
            entries,
            leader_commit,
        } => match wire::append_request_get(vote, prev_log_id, entries, leader_commit) {
            Ok(rpc) => match raft.append_entries(rpc).await {
                Ok(response) => wire::append_reply(&response),
                Err(error) => Reply::Error(error.to_string()),
            },
            Err(error) => Reply::Error(error.to_string()),
        },
        Request::Vote {
            pre,
            vote,
            last_log_id,
            leadership_transfer,
        } => {
            let rpc = wire::vote_request_get(vote, last_log_id, leadership_transfer);
            let result = if pre {
                raft.pre_vote(rpc).await
            } else {
                raft.vote(rpc).await
            };
            match result {
                Ok(response) => wire::vote_reply(&response),
                Err(error) => Reply::Error(error.to_string()),
            }
        }
        Request::Snapshot {
            vote,
            last_log_id,
            membership_log_id,
            membership,
            data,
        } => match wire::snapshot_meta_get(last_log_id, membership_log_id, membership) {
            Ok(meta) => {
                let snapshot = Snapshot {
                    meta,
                    snapshot: Bytes::from(data),
                };
                match raft.install_full_snapshot(vote.get(), snapshot).await {
                    Ok(response) => wire::snapshot_reply(&response),
                    Err(error) => Reply::Error(error.to_string()),
                }
            }
            Err(error) => Reply::Error(error.to_string()),
        },
        other => Reply::Error(format!("not an openraft RPC: {other:?}")),
    }
}

/// Sends one group's openraft RPCs to peers by the address in their membership entry:
/// the metadata group's bare, a shard group's wrapped with its shard.
struct Net {
    shard: Option<u32>,
}

impl RaftNetworkFactory<RiffleRaft> for Net {
    type Network = Connection;

    async fn new_client(&mut self, _target: u64, node: &ClusterNode) -> Connection {
        Connection {
            addr: node.addr.clone(),
            shard: self.shard,
            stream: None,
        }
    }
}

/// One connection to a peer for one group, opened on first use and again after any failure.
pub struct Connection {
    addr: String,
    shard: Option<u32>,
    stream: Option<TcpStream>,
}

impl Connection {
    async fn call(&mut self, request: Request, ttl: Duration) -> io::Result<Reply> {
        let request = match self.shard {
            Some(shard) => Request::Shard {
                shard,
                rpc: Box::new(request),
            },
            None => request,
        };
        let result = tokio::time::timeout(ttl, self.exchange(&request)).await;
        let result = match result {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time")),
        };
        if result.is_err() {
            // A reply that arrives later must not be read as the next call's.
            self.stream = None;
        }
        match result? {
            Reply::Error(error) => Err(io::Error::other(error)),
            reply => Ok(reply),
        }
    }

    async fn exchange(&mut self, request: &Request) -> io::Result<Reply> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => self
                .stream
                .insert(TcpStream::connect(self.addr.as_str()).await?),
        };
        wire::write_frame(stream, request).await?;
        wire::read_frame(stream).await?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the connection",
            )
        })
    }
}

fn unexpected(reply: Reply) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected reply {reply:?}"),
    )
}

fn unreachable(error: io::Error) -> RPCError<RiffleRaft> {
    RPCError::Unreachable(Unreachable::new(&error))
}

impl RaftNetworkV2<RiffleRaft> for Connection {
    type SnapshotData = Bytes;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<RiffleRaft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<RiffleRaft>, RPCError<RiffleRaft>> {
        let request = wire::append_request(&rpc);
        match self.call(request, option.hard_ttl()).await {
            Ok(Reply::Append { kind, log_id, vote }) => {
                wire::append_reply_get(kind, log_id, vote).map_err(unreachable)
            }
            Ok(other) => Err(unreachable(unexpected(other))),
            Err(error) => Err(unreachable(error)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<RiffleRaft>,
        option: RPCOption,
    ) -> Result<VoteResponse<RiffleRaft>, RPCError<RiffleRaft>> {
        self.vote_call(false, rpc, option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<RiffleRaft>,
        option: RPCOption,
    ) -> Result<VoteResponse<RiffleRaft>, RPCError<RiffleRaft>> {
        self.vote_call(true, rpc, option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<RiffleRaft>,
        snapshot: SnapshotOf<RiffleRaft, Bytes>,
        _cancel: impl std::future::Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<RiffleRaft>, StreamingError<RiffleRaft>> {
        let request = wire::snapshot_request(&vote, &snapshot.meta, &snapshot.snapshot);
        let stream_error = |error: io::Error| StreamingError::Unreachable(Unreachable::new(&error));
        match self.call(request, option.hard_ttl()).await {
            Ok(Reply::Snapshot { vote }) => Ok(SnapshotResponse::new(vote.get())),
            Ok(other) => Err(stream_error(unexpected(other))),
            Err(error) => Err(stream_error(error)),
        }
    }
}

impl Connection {
    async fn vote_call(
        &mut self,
        pre: bool,
        rpc: VoteRequest<RiffleRaft>,
        option: RPCOption,
    ) -> Result<VoteResponse<RiffleRaft>, RPCError<RiffleRaft>> {
        let request = wire::vote_request(pre, &rpc);
        match self.call(request, option.hard_ttl()).await {
            Ok(Reply::Vote {
                vote,
                granted,
                last_log_id,
            }) => Ok(wire::vote_reply_get(vote, granted, last_log_id)),
            Ok(other) => Err(unreachable(unexpected(other))),
            Err(error) => Err(unreachable(error)),
        }
    }
}
