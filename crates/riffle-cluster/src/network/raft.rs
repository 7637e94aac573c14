//! openraft's side of the peer network: the network factory a group's Raft is created
//! with ([`GroupNetwork`]), its per-peer client ([`GroupConnection`]), and the type-erased
//! handle the server dispatches a group's incoming RPCs to ([`GroupHandle`]).

use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::time::Duration;

use bytes::Bytes;
use openraft::error::{
    RPCError, ReplicationClosed, StreamingError, Timeout as RaftTimeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::{OptionalSend, Raft, RaftNetworkFactory, RaftNetworkV2};

use super::client::{decode_reply, unexpected, CallError, PeerClient};
use super::wire::{self, Reply, Request, SnapshotMeta, WSnapshotMeta, WVote};
use super::{BoxFuture, GroupId};
use crate::types::{ClusterNode, RiffleRaft, Vote};

/// How a group's snapshot data travels: as one byte string, in one frame (so at most
/// [`super::FRAME_BYTES_MAX`]). The metadata group's snapshot is already bytes; a state
/// machine with another snapshot type implements this to ship through the network.
pub trait SnapshotWire: Sized + OptionalSend + Sync + 'static {
    /// The bytes to send.
    fn to_wire(&self) -> io::Result<Bytes>;
    /// The snapshot the bytes received hold.
    fn from_wire(bytes: Bytes) -> io::Result<Self>;
}

impl SnapshotWire for Bytes {
    fn to_wire(&self) -> io::Result<Bytes> {
        Ok(self.clone())
    }

    fn from_wire(bytes: Bytes) -> io::Result<Self> {
        Ok(bytes)
    }
}

/// A registered group's Raft, whatever its state machine: what the server calls.
pub(crate) trait GroupHandle: Send + Sync + 'static {
    fn append_entries(
        &self,
        rpc: AppendEntriesRequest<RiffleRaft>,
    ) -> BoxFuture<'static, Result<AppendEntriesResponse<RiffleRaft>, String>>;

    fn vote(
        &self,
        rpc: VoteRequest<RiffleRaft>,
        pre: bool,
    ) -> BoxFuture<'static, Result<VoteResponse<RiffleRaft>, String>>;

    fn install_snapshot(
        &self,
        vote: Vote,
        meta: SnapshotMeta,
        data: Bytes,
    ) -> BoxFuture<'static, Result<SnapshotResponse<RiffleRaft>, String>>;

    fn transfer_leader(
        &self,
        rpc: TransferLeaderRequest<RiffleRaft>,
    ) -> BoxFuture<'static, Result<TransferLeaderResponse<RiffleRaft>, String>>;
}

impl<SM> GroupHandle for Raft<RiffleRaft, SM>
where
    SM: RaftStateMachine<RiffleRaft>,
    SM::SnapshotData: SnapshotWire,
{
    fn append_entries(
        &self,
        rpc: AppendEntriesRequest<RiffleRaft>,
    ) -> BoxFuture<'static, Result<AppendEntriesResponse<RiffleRaft>, String>> {
        let raft = self.clone();
        Box::pin(async move {
            Raft::append_entries(&raft, rpc)
                .await
                .map_err(|error| error.to_string())
        })
    }

    fn vote(
        &self,
        rpc: VoteRequest<RiffleRaft>,
        pre: bool,
    ) -> BoxFuture<'static, Result<VoteResponse<RiffleRaft>, String>> {
        let raft = self.clone();
        Box::pin(async move {
            let result = if pre {
                raft.pre_vote(rpc).await
            } else {
                Raft::vote(&raft, rpc).await
            };
            result.map_err(|error| error.to_string())
        })
    }

    fn install_snapshot(
        &self,
        vote: Vote,
        meta: SnapshotMeta,
        data: Bytes,
    ) -> BoxFuture<'static, Result<SnapshotResponse<RiffleRaft>, String>> {
        let raft = self.clone();
        Box::pin(async move {
            let snapshot = SM::SnapshotData::from_wire(data)
                .map_err(|error| format!("cannot read the snapshot sent: {error}"))?;
            raft.install_full_snapshot(vote, Snapshot { meta, snapshot })
                .await
                .map_err(|error| error.to_string())
        })
    }

    fn transfer_leader(
        &self,
        rpc: TransferLeaderRequest<RiffleRaft>,
    ) -> BoxFuture<'static, Result<TransferLeaderResponse<RiffleRaft>, String>> {
        let raft = self.clone();
        Box::pin(async move {
            raft.handle_transfer_leader(rpc)
                .await
                .map_err(|error| error.to_string())
        })
    }
}

/// The network factory of one group (openraft's `RaftNetworkFactory`), made by
/// [`super::PeerNetwork::for_group`]: every RPC its Raft sends carries the group's id and
/// travels on the node's shared connection to the target.
pub struct GroupNetwork<S = Bytes> {
    group: GroupId,
    client: PeerClient,
    snapshot: PhantomData<fn() -> S>,
}

impl<S> GroupNetwork<S> {
    pub(crate) fn new(group: GroupId, client: PeerClient) -> Self {
        GroupNetwork {
            group,
            client,
            snapshot: PhantomData,
        }
    }

    /// The group this factory sends for.
    pub fn group(&self) -> &GroupId {
        &self.group
    }
}

impl<S: SnapshotWire> RaftNetworkFactory<RiffleRaft> for GroupNetwork<S> {
    type Network = GroupConnection<S>;

    async fn new_client(&mut self, target: u64, node: &ClusterNode) -> GroupConnection<S> {
        GroupConnection {
            group: self.group.clone(),
            client: self.client.clone(),
            target,
            addr: node.addr.clone(),
            snapshot: PhantomData,
        }
    }
}

/// One group's RPCs to one peer (openraft's `RaftNetworkV2`). Holds no connection of its
/// own: the [`PeerClient`]'s connection to the peer's address is shared by every group.
pub struct GroupConnection<S = Bytes> {
    group: GroupId,
    client: PeerClient,
    target: u64,
    addr: String,
    snapshot: PhantomData<fn() -> S>,
}

impl<S> GroupConnection<S> {
    /// Sends `request` to the target and returns its reply frame; the target must be the
    /// node at the address, and must have the group.
    async fn send(&self, request: &Request<'_>, ttl: Duration) -> Result<Bytes, CallError> {
        self.client
            .request(&self.addr, Some(self.target), request, ttl)
            .await
    }

    fn error(&self, action: RPCTypes, error: CallError) -> RPCError<RiffleRaft> {
        match error {
            CallError::Timeout(timeout) => RPCError::Timeout(RaftTimeout {
                action,
                id: self.client.node_id(),
                target: self.target,
                timeout,
            }),
            other => RPCError::Unreachable(Unreachable::new(&other)),
        }
    }

    fn refused(&self, reply: Reply<'_>) -> CallError {
        match reply {
            Reply::NoGroup => CallError::NoGroup(self.group.clone()),
            other => unexpected(other),
        }
    }

    async fn vote_call(
        &self,
        pre: bool,
        rpc: VoteRequest<RiffleRaft>,
        option: RPCOption,
    ) -> Result<VoteResponse<RiffleRaft>, RPCError<RiffleRaft>> {
        let request = wire::vote_request(&self.group, pre, &rpc);
        let frame = self
            .send(&request, option.hard_ttl())
            .await
            .map_err(|error| self.error(RPCTypes::Vote, error))?;
        let reply = decode_reply(&frame).map_err(|error| self.error(RPCTypes::Vote, error))?;
        match reply.body {
            Reply::Vote {
                vote,
                granted,
                last_log_id,
            } => Ok(wire::vote_reply_get(vote, granted, last_log_id)),
            other => Err(self.error(RPCTypes::Vote, self.refused(other))),
        }
    }
}

/// The least time an append carrying entries may take (see `append_entries`).
const APPEND_TTL_MIN: Duration = Duration::from_millis(1_000);
/// And per MiB of entries on top.
const APPEND_TTL_PER_MIB: Duration = Duration::from_millis(200);

impl<S: SnapshotWire> RaftNetworkV2<RiffleRaft> for GroupConnection<S> {
    type SnapshotData = S;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<RiffleRaft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<RiffleRaft>, RPCError<RiffleRaft>> {
        let action = RPCTypes::AppendEntries;
        // openraft bounds an append by its heartbeat interval, which suits heartbeats but not
        // entries of megabytes (a shard's batches) on a busy machine: a replication that times
        // out is sent again whole, and again, and the commit stalls. Entries get a bound that
        // grows with their size.
        let bytes: usize = rpc
            .entries
            .iter()
            .map(|entry| match &entry.payload {
                openraft::EntryPayload::Normal(data) => data.payload.len(),
                _ => 0,
            })
            .sum();
        let ttl = if rpc.entries.is_empty() {
            option.hard_ttl()
        } else {
            option
                .hard_ttl()
                .max(APPEND_TTL_MIN + APPEND_TTL_PER_MIB * (bytes as u32 >> 20))
        };
        let request = wire::append_request(&self.group, &rpc);
        let frame = self
            .send(&request, ttl)
            .await
            .map_err(|error| self.error(action, error))?;
        let reply = decode_reply(&frame).map_err(|error| self.error(action, error))?;
        match reply.body {
            Reply::Append(response) => Ok(response.get()),
            other => Err(self.error(action, self.refused(other))),
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
        snapshot: SnapshotOf<RiffleRaft, S>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<RiffleRaft>, StreamingError<RiffleRaft>> {
        let streaming = |error: RPCError<RiffleRaft>| match error {
            RPCError::Timeout(timeout) => StreamingError::Timeout(timeout),
            RPCError::Unreachable(unreachable) => StreamingError::Unreachable(unreachable),
            other => StreamingError::Unreachable(Unreachable::new(&other)),
        };
        let action = RPCTypes::InstallSnapshot;
        let data = snapshot.snapshot.to_wire().map_err(|error| {
            streaming(self.error(
                action,
                CallError::Failed(format!("cannot encode the snapshot: {error}")),
            ))
        })?;
        let request = Request::Snapshot {
            group: self.group.clone(),
            vote: WVote::of(&vote),
            meta: WSnapshotMeta::of(&snapshot.meta),
            data: &data,
        };
        let sent = self.send(&request, option.hard_ttl());
        let frame = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            sent = sent => sent.map_err(|error| streaming(self.error(action, error)))?,
        };
        let reply = decode_reply(&frame).map_err(|error| streaming(self.error(action, error)))?;
        match reply.body {
            Reply::Snapshot { vote } => Ok(SnapshotResponse::new(vote.get())),
            other => Err(streaming(self.error(action, self.refused(other)))),
        }
    }

    async fn transfer_leader(
        &mut self,
        rpc: TransferLeaderRequest<RiffleRaft>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<RiffleRaft>, RPCError<RiffleRaft>> {
        let action = RPCTypes::TransferLeader;
        let request = wire::transfer_request(&self.group, &rpc);
        let frame = self
            .send(&request, option.hard_ttl())
            .await
            .map_err(|error| self.error(action, error))?;
        let reply = decode_reply(&frame).map_err(|error| self.error(action, error))?;
        match reply.body {
            Reply::TransferLeader(response) => Ok(response.get()),
            other => Err(self.error(action, self.refused(other))),
        }
    }
}
