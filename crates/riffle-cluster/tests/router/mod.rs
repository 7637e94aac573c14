//! An in-process network for groups (the metadata group's by default, a shard group's with
//! `Router<ShardStateMachine>`): every node's Raft handle in one map,
//! and RPCs delivered by calling the target's handle directly. A node that is not in the map
//! (never started, or killed) is unreachable, as a dead peer would be. Snapshots are copied
//! byte for byte, as a real network would ship them.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::storage::RaftStateMachine;
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::{Raft, RaftNetworkFactory, RaftNetworkV2};
use riffle_cluster::{ClusterNode, MetaStateMachine, RiffleRaft};

/// The nodes that are up, by id.
pub struct Router<SM: RaftStateMachine<RiffleRaft> = MetaStateMachine> {
    nodes: Arc<Mutex<BTreeMap<u64, Raft<RiffleRaft, SM>>>>,
}

impl<SM: RaftStateMachine<RiffleRaft>> Clone for Router<SM> {
    fn clone(&self) -> Self {
        Router {
            nodes: Arc::clone(&self.nodes),
        }
    }
}

impl<SM: RaftStateMachine<RiffleRaft>> Default for Router<SM> {
    fn default() -> Self {
        Router {
            nodes: Arc::default(),
        }
    }
}

impl<SM: RaftStateMachine<RiffleRaft>> Router<SM> {
    /// Makes node `id` reachable through `raft`.
    pub fn add(&self, id: u64, raft: Raft<RiffleRaft, SM>) {
        self.lock().insert(id, raft);
    }

    /// Makes node `id` unreachable; its handle, if it was up.
    pub fn remove(&self, id: u64) -> Option<Raft<RiffleRaft, SM>> {
        self.lock().remove(&id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Raft<RiffleRaft, SM>>> {
        self.nodes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<SM: RaftStateMachine<RiffleRaft, SnapshotData = Bytes>> RaftNetworkFactory<RiffleRaft>
    for Router<SM>
{
    type Network = Connection<SM>;

    async fn new_client(&mut self, target: u64, _node: &ClusterNode) -> Connection<SM> {
        Connection {
            target,
            router: self.clone(),
        }
    }
}

/// A connection from one node to `target`.
pub struct Connection<SM: RaftStateMachine<RiffleRaft>> {
    target: u64,
    router: Router<SM>,
}

impl<SM: RaftStateMachine<RiffleRaft>> Connection<SM> {
    /// The target's handle, taken out of the map so no lock is held across the call.
    fn peer(&self) -> Result<Raft<RiffleRaft, SM>, Unreachable<RiffleRaft>> {
        self.router
            .lock()
            .get(&self.target)
            .cloned()
            .ok_or_else(|| {
                let down = io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("node {} is down", self.target),
                );
                Unreachable::new(&down)
            })
    }
}

impl<SM: RaftStateMachine<RiffleRaft, SnapshotData = Bytes>> RaftNetworkV2<RiffleRaft>
    for Connection<SM>
{
    type SnapshotData = Bytes;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<RiffleRaft>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<RiffleRaft>, RPCError<RiffleRaft>> {
        let peer = self.peer()?;
        peer.append_entries(rpc)
            .await
            .map_err(|error| RPCError::Unreachable(Unreachable::new(&error)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<RiffleRaft>,
        _option: RPCOption,
    ) -> Result<VoteResponse<RiffleRaft>, RPCError<RiffleRaft>> {
        let peer = self.peer()?;
        peer.vote(rpc)
            .await
            .map_err(|error| RPCError::Unreachable(Unreachable::new(&error)))
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<RiffleRaft>,
        _option: RPCOption,
    ) -> Result<VoteResponse<RiffleRaft>, RPCError<RiffleRaft>> {
        let peer = self.peer()?;
        peer.pre_vote(rpc)
            .await
            .map_err(|error| RPCError::Unreachable(Unreachable::new(&error)))
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<RiffleRaft>,
        snapshot: SnapshotOf<RiffleRaft, Bytes>,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<RiffleRaft>, StreamingError<RiffleRaft>> {
        let peer = self.peer()?;
        let shipped = SnapshotOf::<RiffleRaft, Bytes> {
            meta: snapshot.meta,
            snapshot: Bytes::copy_from_slice(&snapshot.snapshot),
        };
        peer.install_full_snapshot(vote, shipped)
            .await
            .map_err(|error| StreamingError::Unreachable(Unreachable::new(&error)))
    }
}
