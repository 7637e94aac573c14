//! An in-process network for metadata groups: every node's [`MetaRaft`] handle in one map,
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
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::{RaftNetworkFactory, RaftNetworkV2};
use riffle_cluster::{ClusterNode, MetaRaft, RiffleRaft};

/// The nodes that are up, by id.
#[derive(Clone, Default)]
pub struct Router {
    nodes: Arc<Mutex<BTreeMap<u64, MetaRaft>>>,
}

impl Router {
    /// Makes node `id` reachable through `raft`.
    pub fn add(&self, id: u64, raft: MetaRaft) {
        self.lock().insert(id, raft);
    }

    /// Makes node `id` unreachable; its handle, if it was up.
    pub fn remove(&self, id: u64) -> Option<MetaRaft> {
        self.lock().remove(&id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, MetaRaft>> {
        self.nodes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RaftNetworkFactory<RiffleRaft> for Router {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, _node: &ClusterNode) -> Connection {
        Connection {
            target,
            router: self.clone(),
        }
    }
}

/// A connection from one node to `target`.
pub struct Connection {
    target: u64,
    router: Router,
}

impl Connection {
    /// The target's handle, taken out of the map so no lock is held across the call.
    fn peer(&self) -> Result<MetaRaft, Unreachable<RiffleRaft>> {
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

impl RaftNetworkV2<RiffleRaft> for Connection {
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
