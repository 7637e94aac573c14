//! The peer network: every Raft group of a node, and the node's own application calls,
//! over one authenticated TCP connection per peer.
//!
//! ```text
//!   node 1                                              node 2
//!   Raft(meta) --GroupNetwork(Meta)--\                  /--> Raft(meta)      registered
//!   Raft(shard a/0) --GroupNetwork---> PeerClient ====> PeerServer --> Raft(shard a/0)  by
//!   node code --PeerClient::call-----/   one TCP        \--> AppHandler       GroupId
//!                                        connection
//! ```
//!
//! * A [`PeerNetwork`] is a node's side of it: its id, the [`ClusterSecret`], a
//!   [`PeerClient`] (outgoing connections) and the registry that incoming RPCs are
//!   dispatched through: the Raft of each [`GroupId`] ([`PeerNetwork::register`]) and one
//!   [`AppHandler`] ([`PeerNetwork::set_app_handler`]).
//! * A group's Raft is created with [`PeerNetwork::for_group`] as its network factory;
//!   its RPCs carry the group id, so one connection per peer serves every group.
//! * [`PeerServer::start`] serves a bound listener: each connection first runs the
//!   handshake (mutual proof of the cluster secret, `handshake.rs`), then requests are read as
//!   frames (`wire.rs`) and answered concurrently, each by the group or handler it names. An RPC
//!   for a group this node has not opened (or has removed) is answered "no such group",
//!   which the caller's openraft sees as `Unreachable` and retries later.
//! * [`PeerClient`] keeps one connection per peer address, shared by all groups and calls,
//!   with many requests in flight (each has an id; a reader task completes them), reconnects
//!   after a failure with capped exponential backoff, and bounds every call by its timeout
//!   (openraft's `RPCOption` for Raft RPCs).
//!
//! Why a shared secret rather than TLS, for now: the handshake needs no certificate
//! authority, issuance or rotation tooling, and no TLS stack beside the one riffle already
//! builds for its client port; every node of a cluster is one operator's, so "knows the
//! secret" is the membership test that matters. What it does not give is confidentiality:
//! the frames after the handshake travel in clear, so records cross the network as they
//! would over plain HTTP. Run the node-to-node port on a private network (or a VPN, or
//! WireGuard) until a TLS mode with the dev CA is added on top of the same framing.

mod client;
mod handshake;
mod raft;
mod secret;
mod server;
mod wire;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use self::client::{CallError, PeerClient};
pub use self::handshake::{HandshakeError, PROTOCOL_VERSION};
pub use self::raft::{GroupConnection, GroupNetwork, SnapshotWire};
pub use self::secret::{ClusterSecret, SECRET_BYTES_MIN};
pub use self::server::{PeerServer, ServerStats};
pub use self::wire::FRAME_BYTES_MAX;

use self::raft::GroupHandle;

/// A boxed future, as trait objects return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which Raft group an RPC is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum GroupId {
    /// The metadata group (the catalogue).
    Meta,
    /// One shard's group.
    Shard {
        /// The stream's directory id (`StreamMeta::dir_id`), which outlives a rename or a
        /// re-creation of a stream with the same name.
        stream: String,
        /// The shard's ordinal within the stream.
        ordinal: u32,
    },
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupId::Meta => f.write_str("meta"),
            GroupId::Shard { stream, ordinal } => write!(f, "shard {stream}/{ordinal}"),
        }
    }
}

/// Answers the application calls peers make with [`PeerClient::call`]: forwarded
/// proposals, record batches, join requests, status queries. The bodies are opaque to the
/// network. An `Err` reaches the caller as [`CallError::Failed`] with its text.
///
/// Any `Fn(u64, Bytes) -> impl Future<Output = Result<Bytes, String>>` closure is one.
pub trait AppHandler: Send + Sync + 'static {
    /// Answers `body`, sent by node `from`: the id the caller announced in the handshake.
    /// Every holder of the cluster secret is trusted alike, so the id is as good as the
    /// secret's holders are honest; it is not a separate credential.
    fn handle(&self, from: u64, body: Bytes) -> BoxFuture<'_, Result<Bytes, String>>;
}

impl<F, Fut> AppHandler for F
where
    F: Fn(u64, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Bytes, String>> + Send + 'static,
{
    fn handle(&self, from: u64, body: Bytes) -> BoxFuture<'_, Result<Bytes, String>> {
        Box::pin(self(from, body))
    }
}

struct NetInner {
    node_id: u64,
    client: PeerClient,
    groups: RwLock<HashMap<GroupId, Arc<dyn GroupHandle>>>,
    app: RwLock<Option<Arc<dyn AppHandler>>>,
}

/// A node's side of the peer network: what it sends through and what incoming RPCs are
/// dispatched to. Cheap to clone; every clone is the same network.
#[derive(Clone)]
pub struct PeerNetwork {
    inner: Arc<NetInner>,
}

impl fmt::Debug for PeerNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerNetwork")
            .field("node_id", &self.inner.node_id)
            .field("groups", &self.groups())
            .finish()
    }
}

impl PeerNetwork {
    /// The network of node `node_id`, proving `secret` to its peers and requiring it of them.
    /// No group and no app handler is registered yet; nothing listens until a
    /// [`PeerServer`] is started with it.
    pub fn new(node_id: u64, secret: ClusterSecret) -> PeerNetwork {
        PeerNetwork {
            inner: Arc::new(NetInner {
                node_id,
                client: PeerClient::new(node_id, secret.clone()),
                groups: RwLock::new(HashMap::new()),
                app: RwLock::new(None),
            }),
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.inner.node_id
    }

    /// The client side: connections to peers, and app calls.
    pub fn client(&self) -> &PeerClient {
        &self.inner.client
    }

    /// Sends `body` to the app handler of the node at `addr` (`host:port` of its cluster
    /// listener) and waits at most `timeout` for its answer. See [`PeerClient::call`].
    pub async fn call(
        &self,
        addr: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        self.inner.client.call(addr, body, timeout).await
    }

    /// The network factory of group `group`, for `Raft::new`: its RPCs reach the peers'
    /// Raft registered under the same id. `S` is the group's snapshot data (`Bytes` for the
    /// metadata group), inferred from the state machine.
    pub fn for_group<S: SnapshotWire>(&self, group: GroupId) -> GroupNetwork<S> {
        GroupNetwork::new(group, self.inner.client.clone())
    }

    /// Dispatches incoming RPCs for `group` to `raft` from now on (replacing any Raft
    /// registered under that id). Register a group once its Raft is created; until then its
    /// peers are told the group is not here, which they treat as unreachable.
    pub fn register<SM>(&self, group: GroupId, raft: openraft::Raft<crate::RiffleRaft, SM>)
    where
        SM: openraft::storage::RaftStateMachine<crate::RiffleRaft>,
        SM::SnapshotData: SnapshotWire,
    {
        self.write_groups().insert(group, Arc::new(raft));
    }

    /// Stops dispatching RPCs for `group` (before its Raft shuts down, or once the group is
    /// deleted); whether it was registered.
    pub fn unregister(&self, group: &GroupId) -> bool {
        self.write_groups().remove(group).is_some()
    }

    /// The groups registered, in order.
    pub fn groups(&self) -> Vec<GroupId> {
        let mut groups: Vec<GroupId> = self
            .inner
            .groups
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        groups.sort();
        groups
    }

    /// Answers peers' app calls with `handler` from now on (replacing any before).
    pub fn set_app_handler(&self, handler: Arc<dyn AppHandler>) {
        *self
            .inner
            .app
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(handler);
    }

    /// Answers peers' app calls with "no handler" from now on.
    pub fn clear_app_handler(&self) {
        *self
            .inner
            .app
            .write()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn write_groups(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<GroupId, Arc<dyn GroupHandle>>> {
        self.inner
            .groups
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn group(&self, group: &GroupId) -> Option<Arc<dyn GroupHandle>> {
        self.inner
            .groups
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(group)
            .cloned()
    }

    pub(crate) fn app_handler(&self) -> Option<Arc<dyn AppHandler>> {
        self.inner
            .app
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn secret(&self) -> &ClusterSecret {
        self.inner.client.secret()
    }
}
