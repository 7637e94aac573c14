//! One metadata-group node as a turmoil host: its storage in its own directory, openraft's
//! RPCs served and sent as [`crate::wire`] frames over turmoil's TCP, and the
//! workload's proposals answered.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::error::{
    ClientWriteError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::rt::AsyncRuntime;
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::{Config, Raft, RaftNetworkFactory, RaftNetworkV2};
use riffle_cluster::{
    open_meta_group, propose, ClusterNode, MetaRaft, MetaSnapshot, MetaView, ProposeError,
    RiffleRaft, RiffleRuntime,
};
use riffle_core::catalogue::{Applied, Rejection};
use riffle_log::LogOptions;
use turmoil::net::{TcpListener, TcpStream};

use crate::disk::{Disk, SimFlusher, SimStore};
use crate::wire::{self, Proposed, Reply, Request};

/// The port every node listens on for its peers and the workload.
pub const PORT: u16 = 7100;

/// The turmoil host name of node `id`.
pub fn host_name(id: u64) -> String {
    format!("node{id}")
}

/// openraft's timing for the simulation: the test suite's values (in simulated time), and a
/// snapshot every `snapshot_every` entries (so snapshots, the purges after them and their
/// installation on a lagging node happen during a run, not only at its end).
pub fn raft_config(snapshot_every: u64) -> Arc<Config> {
    let config = Config {
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

/// Opens node `id`'s storage in `dir` on `disk`, starts its Raft, registers it and serves
/// until the host crashes. openraft's randomness (election timeouts, tick phases) comes from
/// `seed`, in this task and every task spawned from it (the disk's fsync task included).
pub async fn run_node(
    id: u64,
    seed: u64,
    config: Arc<Config>,
    dir: PathBuf,
    disk: Arc<Disk>,
    members: Vec<u64>,
    on_start: impl FnOnce(MetaRaft, MetaView),
) -> Result<(), Box<dyn std::error::Error>> {
    RiffleRuntime::seeded(seed, serve_node(id, config, dir, disk, members, on_start)).await
}

async fn serve_node(
    id: u64,
    config: Arc<Config>,
    dir: PathBuf,
    disk: Arc<Disk>,
    members: Vec<u64>,
    on_start: impl FnOnce(MetaRaft, MetaView),
) -> Result<(), Box<dyn std::error::Error>> {
    let flusher = SimFlusher::start(disk.clone());
    let (store, machine) = open_meta_group(&dir, log_options(), Arc::new(flusher))?;
    let store = SimStore::new(store, disk);
    let view = machine.view();
    let raft = Raft::new(id, config, Net, store, machine).await?;
    on_start(raft.clone(), view);
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
        let _ = raft.initialize(nodes).await;
    }
    loop {
        let (stream, _) = listener.accept().await?;
        // Through openraft's runtime, so the connection's task inherits the seed (openraft
        // may spawn from inside an API call).
        RiffleRuntime::spawn(serve(raft.clone(), stream));
    }
}

/// Answers requests on one connection until it closes or breaks.
async fn serve(raft: MetaRaft, mut stream: TcpStream) {
    while let Ok(Some(request)) = wire::read_frame::<Request>(&mut stream).await {
        let reply = answer(&raft, request).await;
        if wire::write_frame(&mut stream, &reply).await.is_err() {
            return;
        }
    }
}

async fn answer(raft: &MetaRaft, request: Request) -> Reply {
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
                let snapshot = MetaSnapshot {
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
        Request::Propose(command) => Reply::Proposed(match propose(raft, &command).await {
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
    }
}

/// Sends openraft's RPCs to peers by the address in their membership entry.
struct Net;

impl RaftNetworkFactory<RiffleRaft> for Net {
    type Network = Connection;

    async fn new_client(&mut self, _target: u64, node: &ClusterNode) -> Connection {
        Connection {
            addr: node.addr.clone(),
            stream: None,
        }
    }
}

/// One connection to a peer, opened on first use and again after any failure.
pub struct Connection {
    addr: String,
    stream: Option<TcpStream>,
}

impl Connection {
    async fn call(&mut self, request: &Request, ttl: Duration) -> io::Result<Reply> {
        let result = tokio::time::timeout(ttl, self.exchange(request)).await;
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
        match self.call(&request, option.hard_ttl()).await {
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
        match self.call(&request, option.hard_ttl()).await {
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
        match self.call(&request, option.hard_ttl()).await {
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
