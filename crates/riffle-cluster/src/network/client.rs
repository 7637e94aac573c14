//! The client side of the peer network: one connection per peer address, shared by every
//! group and call, with many requests in flight.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;

use super::handshake::{self, HANDSHAKE_TIMEOUT};
use super::secret::ClusterSecret;
use super::wire::{self, Reply, ReplyFrame, Request};
use super::GroupId;

/// First wait before reconnecting to a peer after a failed attempt; doubled per failure.
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
/// Longest wait between connection attempts to a peer.
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Longest a connection attempt (TCP connect and handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle time before TCP probes a silent peer, and between probes.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(2);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// Unanswered probes before the connection is declared dead.
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
const KEEPALIVE_RETRIES: u32 = 3;
/// Longest time data sent may stay unacknowledged before the connection fails (Linux).
#[cfg(target_os = "linux")]
const UNACKED_MAX: Duration = Duration::from_secs(10);
/// Frames queued for a connection's writer before callers wait.
pub(crate) const OUTGOING_QUEUE: usize = 256;
/// Bytes of frames queued for a connection's writer before callers wait (a frame larger
/// than this waits for the queue to empty).
pub(crate) const OUTGOING_BYTES_MAX: usize = 64 << 20;
/// Bytes the writer gathers before a write (small frames of many groups share a syscall).
const WRITE_BUFFER_BYTES: usize = 64 << 10;

/// Why a call got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No connection to the peer: it refused or did not answer, failed the handshake (the
    /// reason says which: another secret, another protocol version), is another node than
    /// the one expected at that address, or the connection broke with the call in flight.
    /// Also while the client backs off after such a failure.
    Unreachable(String),
    /// The connection broke after the request was handed to it: the peer may or may not
    /// have acted on it.
    Lost(String),
    /// No answer within the call's timeout.
    Timeout(Duration),
    /// The peer has no app handler (yet).
    NoHandler,
    /// The peer has not opened (or has removed) that group.
    NoGroup(GroupId),
    /// The peer's handler, or its Raft, answered an error.
    Failed(String),
}

impl CallError {
    /// Whether the request surely never reached the peer's handler (so sending it again
    /// cannot make it act twice).
    pub fn surely_unsent(&self) -> bool {
        matches!(
            self,
            CallError::Unreachable(_) | CallError::NoHandler | CallError::NoGroup(_)
        )
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Unreachable(reason) => write!(f, "peer unreachable: {reason}"),
            CallError::Lost(reason) => write!(f, "the call's outcome is unknown: {reason}"),
            CallError::Timeout(timeout) => write!(f, "no answer from the peer in {timeout:?}"),
            CallError::NoHandler => f.write_str("the peer does not answer app calls (yet)"),
            CallError::NoGroup(group) => write!(f, "the peer has no Raft group {group} (yet)"),
            CallError::Failed(reason) => write!(f, "the peer answered an error: {reason}"),
        }
    }
}

impl std::error::Error for CallError {}

struct ClientInner {
    node_id: u64,
    secret: ClusterSecret,
    peers: Mutex<HashMap<String, Arc<Peer>>>,
}

/// Connections to peers, by address. Cheap to clone; every clone shares the connections.
#[derive(Clone)]
pub struct PeerClient {
    inner: Arc<ClientInner>,
}

impl fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerClient")
            .field("node_id", &self.inner.node_id)
            .finish_non_exhaustive()
    }
}

/// One peer address: its connection, if any, and the backoff after failures.
struct Peer {
    addr: String,
    link: tokio::sync::Mutex<Link>,
}

#[derive(Default)]
struct Link {
    conn: Option<Arc<Conn>>,
    /// The connection attempt under way, if any: callers wait on it.
    attempt: Option<watch::Receiver<Option<Attempt>>>,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: String,
}

impl Link {
    fn failed(&mut self, error: String) {
        self.failures = self.failures.saturating_add(1);
        let backoff = BACKOFF_FIRST
            .saturating_mul(1u32 << self.failures.saturating_sub(1).min(16))
            .min(BACKOFF_MAX);
        self.retry_at = Some(Instant::now() + backoff);
        self.last_error = error;
    }
}

/// How a connection attempt ended.
type Attempt = Result<Arc<Conn>, String>;

type Pending = HashMap<u64, oneshot::Sender<Result<Bytes, CallError>>>;

/// What a connection's caller side and its reader and writer tasks share.
struct ConnShared {
    /// Calls waiting for their reply, by request id; `None` once the connection is closed
    /// (a call registering then fails at once instead of waiting for its timeout).
    pending: Mutex<Option<Pending>>,
    next_id: AtomicU64,
}

impl ConnShared {
    fn lock(&self) -> MutexGuard<'_, Option<Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_closed(&self) -> bool {
        self.lock().is_none()
    }

    /// Closes the connection for its callers: every call in flight fails with `reason`.
    fn fail(&self, reason: &str) {
        let pending = self.lock().take();
        for (_, waiter) in pending.into_iter().flatten() {
            let _ = waiter.send(Err(CallError::Unreachable(reason.to_string())));
        }
    }
}

/// One authenticated connection.
struct Conn {
    peer_id: u64,
    shared: Arc<ConnShared>,
    outgoing: mpsc::Sender<Outgoing>,
    /// Bounds the bytes queued in `outgoing` ([`OUTGOING_BYTES_MAX`]).
    budget: Arc<Semaphore>,
    tasks: [AbortHandle; 2],
}

impl Conn {
    fn close(&self, reason: &str) {
        self.shared.fail(reason);
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.close("the connection was closed");
    }
}

/// Removes a call's entry when the call ends before its reply (timeout, cancellation).
struct PendingGuard<'a> {
    shared: &'a ConnShared,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Some(pending) = self.shared.lock().as_mut() {
            pending.remove(&self.id);
        }
    }
}

impl PeerClient {
    /// The client of node `node_id`.
    pub(crate) fn new(node_id: u64, secret: ClusterSecret) -> PeerClient {
        PeerClient {
            inner: Arc::new(ClientInner {
                node_id,
                secret,
                peers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The node this client speaks for.
    pub fn node_id(&self) -> u64 {
        self.inner.node_id
    }

    pub(crate) fn secret(&self) -> &ClusterSecret {
        &self.inner.secret
    }

    /// Sends `body` to the [app handler](super::AppHandler) of the node at `addr` and
    /// returns its answer, waiting at most `timeout` (connecting included).
    pub async fn call(
        &self,
        addr: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let frame = self
            .request(addr, None, &Request::App { body: &body }, timeout)
            .await?;
        let reply: ReplyFrame<'_> = decode_reply(&frame)?;
        match reply.body {
            Reply::App(answer) => Ok(wire::slice_of(&frame, answer)),
            other => Err(unexpected(other)),
        }
    }

    /// Closes every connection (calls in flight fail); later calls connect again.
    pub fn close_all(&self) {
        let peers: Vec<Arc<Peer>> = self.peers().drain().map(|(_, peer)| peer).collect();
        for peer in peers {
            if let Ok(mut link) = peer.link.try_lock() {
                if let Some(conn) = link.conn.take() {
                    conn.close("the client was closed");
                }
            }
        }
    }

    /// Closes and forgets the connection to `addr` (a node removed from the cluster), so the
    /// map of peers does not keep every address the node ever talked to.
    pub fn forget(&self, addr: &str) {
        let Some(peer) = self.peers().remove(addr) else {
            return;
        };
        let link = peer.link.try_lock();
        if let Ok(mut link) = link {
            if let Some(conn) = link.conn.take() {
                conn.close("the peer was removed from the cluster");
            }
        }
    }

    fn peers(&self) -> MutexGuard<'_, HashMap<String, Arc<Peer>>> {
        self.inner
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn peer(&self, addr: &str) -> Arc<Peer> {
        self.peers()
            .entry(addr.to_string())
            .or_insert_with(|| {
                Arc::new(Peer {
                    addr: addr.to_string(),
                    link: tokio::sync::Mutex::new(Link::default()),
                })
            })
            .clone()
    }

    /// Sends `request` to `addr` (which must be node `expect`, when given) and returns the
    /// reply's frame, within `timeout`.
    pub(crate) async fn request(
        &self,
        addr: &str,
        expect: Option<u64>,
        request: &Request<'_>,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let peer = self.peer(addr);
        let deadline = tokio::time::Instant::now() + timeout;
        let conn = match tokio::time::timeout_at(deadline, self.connection(&peer)).await {
            Ok(conn) => conn?,
            Err(_) => return Err(CallError::Timeout(timeout)),
        };
        if let Some(expected) = expect {
            if conn.peer_id != expected {
                return Err(CallError::Unreachable(format!(
                    "{} is node {}, not node {expected}",
                    peer.addr, conn.peer_id
                )));
            }
        }
        let shared = conn.shared.clone();
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let body = wire::encode(&(id, request))
            .map_err(|error| CallError::Failed(format!("cannot send the request: {error}")))?;
        let (tx, rx) = oneshot::channel();
        match shared.lock().as_mut() {
            Some(pending) => {
                pending.insert(id, tx);
            }
            None => {
                return Err(CallError::Unreachable(format!(
                    "the connection to {} closed",
                    peer.addr
                )))
            }
        }
        let _guard = PendingGuard {
            shared: &shared,
            id,
        };
        let exchange = async {
            let closed =
                || CallError::Unreachable(format!("the connection to {} closed", peer.addr));
            let budget = conn
                .budget
                .clone()
                .acquire_many_owned(weight(body.len()))
                .await
                .map_err(|_| closed())?;
            conn.outgoing
                .send(Outgoing {
                    body,
                    _budget: budget,
                })
                .await
                .map_err(|_| closed())?;
            match rx.await {
                Ok(Err(CallError::Unreachable(reason))) => Err(CallError::Lost(reason)),
                Ok(result) => result,
                Err(_) => Err(CallError::Lost(format!(
                    "the connection to {} closed",
                    peer.addr
                ))),
            }
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(result) => result,
            // The connection stays: many calls share it, and one slow answer says nothing
            // of the others. A peer that vanished is noticed by TCP (see `tune`).
            Err(_) => Err(CallError::Timeout(timeout)),
        }
    }

    /// The peer's open connection, or a new one; fails at once while backing off after a
    /// failure.
    ///
    /// A connection attempt runs as a task of its own, bounded by [`CONNECT_TIMEOUT`] and the
    /// handshake's timeout, not by the call that started it: openraft's RPCs carry timeouts
    /// as short as a heartbeat interval, shorter than a connection and handshake take over a
    /// long link, and an attempt cut short by each of them would never connect. Calls that
    /// arrive meanwhile wait for the same attempt.
    async fn connection(&self, peer: &Arc<Peer>) -> Result<Arc<Conn>, CallError> {
        let mut attempt = {
            let mut link = peer.link.lock().await;
            if let Some(conn) = &link.conn {
                if !conn.shared.is_closed() {
                    return Ok(conn.clone());
                }
                link.conn = None;
            }
            match &link.attempt {
                Some(attempt) => attempt.clone(),
                None => {
                    if let Some(retry_at) = link.retry_at {
                        let now = Instant::now();
                        if now < retry_at {
                            return Err(CallError::Unreachable(format!(
                                "{} (retrying in {:?})",
                                link.last_error,
                                retry_at - now
                            )));
                        }
                    }
                    let (done, attempt) = watch::channel(None);
                    link.attempt = Some(attempt.clone());
                    tokio::spawn(self.clone().attempt(peer.clone(), done));
                    attempt
                }
            }
        };
        let ended = attempt
            .wait_for(Option::is_some)
            .await
            .map_err(|_| CallError::Unreachable("the connection attempt was dropped".into()))?;
        match ended.as_ref() {
            Some(Ok(conn)) => Ok(conn.clone()),
            Some(Err(error)) => Err(CallError::Unreachable(error.clone())),
            None => Err(CallError::Unreachable("no connection".into())),
        }
    }

    /// Connects to `peer`, records the outcome in its link and tells the waiting callers.
    async fn attempt(self, peer: Arc<Peer>, done: watch::Sender<Option<Attempt>>) {
        let result = match tokio::time::timeout(CONNECT_TIMEOUT, self.connect(&peer.addr)).await {
            Ok(result) => result.map(Arc::new),
            Err(_) => Err(format!(
                "no connection to {} in {CONNECT_TIMEOUT:?}",
                peer.addr
            )),
        };
        let mut link = peer.link.lock().await;
        link.attempt = None;
        match &result {
            Ok(conn) => {
                link.failures = 0;
                link.retry_at = None;
                link.conn = Some(conn.clone());
            }
            Err(error) => link.failed(error.clone()),
        }
        drop(link);
        let _ = done.send(Some(result));
    }

    async fn connect(&self, addr: &str) -> Result<Conn, String> {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|error| format!("cannot connect to {addr}: {error}"))?;
        tune(&stream);
        let peer_id = match tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            handshake::client(&mut stream, &self.inner.secret, self.inner.node_id),
        )
        .await
        {
            Ok(Ok(peer_id)) => peer_id,
            Ok(Err(error)) => {
                let reason = format!("{addr} {error}");
                if matches!(error, handshake::HandshakeError::Io(_)) {
                    tracing::debug!("peer handshake: {reason}");
                } else {
                    tracing::warn!("peer handshake refused: {reason}");
                }
                return Err(reason);
            }
            Err(_) => return Err(format!("{addr}: no handshake in {HANDSHAKE_TIMEOUT:?}")),
        };
        tracing::debug!(addr, peer_id, "connected to peer");
        let (read, write) = stream.into_split();
        let shared = Arc::new(ConnShared {
            pending: Mutex::new(Some(HashMap::new())),
            next_id: AtomicU64::new(1),
        });
        let (outgoing, queue) = mpsc::channel(OUTGOING_QUEUE);
        let reader = tokio::spawn(read_replies(read, shared.clone(), addr.to_string()));
        let writer_shared = shared.clone();
        let writer = tokio::spawn(async move {
            if let Err(error) = write_frames(write, queue).await {
                writer_shared.fail(&format!("cannot write to the peer: {error}"));
            }
        });
        Ok(Conn {
            peer_id,
            shared,
            outgoing,
            budget: Arc::new(Semaphore::new(OUTGOING_BYTES_MAX)),
            tasks: [reader.abort_handle(), writer.abort_handle()],
        })
    }
}

pub(crate) fn decode_reply(frame: &Bytes) -> Result<ReplyFrame<'_>, CallError> {
    wire::decode(frame).map_err(|error| CallError::Unreachable(format!("bad reply: {error}")))
}

/// The error for a reply of the wrong kind, or for the network's own refusals.
pub(crate) fn unexpected(reply: Reply<'_>) -> CallError {
    match reply {
        Reply::Failed(reason) => CallError::Failed(reason),
        Reply::NoHandler => CallError::NoHandler,
        Reply::NoGroup => CallError::Unreachable("the peer has no such group".to_string()),
        other => CallError::Unreachable(format!("a reply of the wrong kind: {other:?}")),
    }
}

/// Reads replies and hands each to the call waiting for its id.
async fn read_replies(mut read: OwnedReadHalf, shared: Arc<ConnShared>, addr: String) {
    let reason = loop {
        match wire::read_frame(&mut read).await {
            Ok(Some(frame)) => {
                let id = match postcard::take_from_bytes::<u64>(&frame) {
                    Ok((id, _)) => id,
                    Err(error) => {
                        tracing::warn!(addr, "peer sent an undecodable reply: {error}");
                        break format!("{addr} sent an undecodable reply");
                    }
                };
                let waiter = shared
                    .lock()
                    .as_mut()
                    .and_then(|pending| pending.remove(&id));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(Ok(frame));
                }
                // Else the call gave up already; its late reply is dropped.
            }
            Ok(None) => break format!("{addr} closed the connection"),
            Err(error) => break format!("the connection to {addr} failed: {error}"),
        }
    };
    tracing::debug!("{reason}");
    shared.fail(&reason);
}

/// A frame body queued for a connection's writer, holding its share of the queue's byte
/// budget until it is written.
pub(crate) struct Outgoing {
    pub body: Vec<u8>,
    pub _budget: OwnedSemaphorePermit,
}

/// The permits a frame of `len` bytes takes from a byte budget of [`OUTGOING_BYTES_MAX`]
/// (or of the server's in-flight bytes, which is larger).
pub(crate) fn weight(len: usize) -> u32 {
    // OUTGOING_BYTES_MAX and FRAME_BYTES_MAX are far below u32::MAX.
    len.clamp(1, OUTGOING_BYTES_MAX) as u32
}

/// Writes queued frames until the queue closes, gathering frames queued together into one
/// write.
pub(crate) async fn write_frames(
    write: OwnedWriteHalf,
    mut queue: mpsc::Receiver<Outgoing>,
) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, write);
    while let Some(frame) = queue.recv().await {
        write_frame(&mut out, &frame.body).await?;
        drop(frame);
        while let Ok(frame) = queue.try_recv() {
            write_frame(&mut out, &frame.body).await?;
        }
        out.flush().await?;
    }
    Ok(())
}

/// Sets up a peer connection's socket: no Nagle delay (requests and replies are small and
/// latency-bound), and TCP keepalive plus, on Linux, a user timeout, so that a peer that
/// vanished without a reset (power loss, a partition) fails the connection within seconds
/// instead of leaving every call on it to time out.
pub(crate) fn tune(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let socket = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    let keepalive = keepalive.with_retries(KEEPALIVE_RETRIES);
    let _ = socket.set_tcp_keepalive(&keepalive);
    #[cfg(target_os = "linux")]
    let _ = socket.set_tcp_user_timeout(Some(UNACKED_MAX));
}

async fn write_frame(out: &mut BufWriter<OwnedWriteHalf>, body: &[u8]) -> std::io::Result<()> {
    out.write_all(&wire::length_prefix(body)).await?;
    out.write_all(body).await
}
