//! The serving side of the peer network: accepts connections, runs the handshake, and
//! answers each request with the group or handler it names.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use super::client::{tune, weight, write_frames, Outgoing, OUTGOING_BYTES_MAX, OUTGOING_QUEUE};
use super::handshake::{self, HandshakeError, HANDSHAKE_TIMEOUT};
use super::wire::{self, Reply, Request, RequestFrame, WAppendReply, WTransferReply};
use super::PeerNetwork;

/// Connections in their handshake at once; more are closed on arrival, so strangers
/// cannot hold many sockets open by sending nothing.
const HANDSHAKES_MAX: usize = 64;
/// Requests one connection has in progress at once, and their bytes; the server reads no
/// further request from it until one is answered.
const IN_FLIGHT_MAX: usize = 256;
const IN_FLIGHT_BYTES_MAX: usize = 2 * OUTGOING_BYTES_MAX;
/// Pause after a failed accept (out of file descriptors, say) before the next.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// What a [`PeerServer`] has seen since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections whose peer proved the cluster secret.
    pub authenticated: u64,
    /// Connections closed before or during the handshake: another secret, not riffle,
    /// another protocol version, too slow, or too many handshakes at once.
    pub refused: u64,
    /// Requests read from authenticated connections and dispatched.
    pub requests: u64,
    /// Authenticated connections closed for a protocol error (an oversize or undecodable
    /// frame).
    pub protocol_errors: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    authenticated: AtomicU64,
    refused: AtomicU64,
    requests: AtomicU64,
    protocol_errors: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Serves a node's peer network on a listener until [`PeerServer::shutdown`] (or drop).
pub struct PeerServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl PeerServer {
    /// Serves `network` on `listener` (already bound: the caller chose the address and
    /// reports a bind error its own way). Must run inside a tokio runtime.
    pub fn start(listener: TcpListener, network: PeerNetwork) -> io::Result<PeerServer> {
        let local_addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(accept_loop(listener, network, stopped, counters.clone()));
        Ok(PeerServer {
            local_addr,
            stop,
            task: Some(task),
            counters,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Its counters so far.
    pub fn stats(&self) -> ServerStats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ServerStats {
            accepted: load(&self.counters.accepted),
            authenticated: load(&self.counters.authenticated),
            refused: load(&self.counters.refused),
            requests: load(&self.counters.requests),
            protocol_errors: load(&self.counters.protocol_errors),
        }
    }

    /// Stops accepting, closes the listener and every connection (requests in progress
    /// are abandoned; their callers see the connection close).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the server is gone: stop as well.
    let _ = stop.wait_for(|stopped| *stopped).await;
}

async fn accept_loop(
    listener: TcpListener,
    network: PeerNetwork,
    mut stop: watch::Receiver<bool>,
    counters: Arc<Counters>,
) {
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_MAX));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = stopped(&mut stop) => break,
            accepted = listener.accept() => accepted,
        };
        while connections.try_join_next().is_some() {}
        match accepted {
            Ok((stream, remote)) => {
                bump(&counters.accepted);
                let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                    bump(&counters.refused);
                    tracing::warn!(%remote, "too many peer handshakes at once; closed");
                    continue;
                };
                connections.spawn(serve_connection(
                    stream,
                    remote,
                    network.clone(),
                    stop.clone(),
                    counters.clone(),
                    permit,
                ));
            }
            Err(error) => {
                tracing::warn!("cannot accept a peer connection: {error}");
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn serve_connection(
    mut stream: TcpStream,
    remote: SocketAddr,
    network: PeerNetwork,
    mut stop: watch::Receiver<bool>,
    counters: Arc<Counters>,
    permit: OwnedSemaphorePermit,
) {
    tune(&stream);
    let handshake = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        handshake::server(&mut stream, network.secret(), network.node_id()),
    );
    let outcome = tokio::select! {
        () = stopped(&mut stop) => return,
        outcome = handshake => outcome,
    };
    drop(permit);
    let from = match outcome {
        Ok(Ok(from)) => from,
        Ok(Err(HandshakeError::Io(error))) => {
            bump(&counters.refused);
            tracing::debug!(%remote, "peer connection ended in its handshake: {error}");
            return;
        }
        Ok(Err(error)) => {
            bump(&counters.refused);
            tracing::warn!(%remote, "refused a peer connection: it {error}");
            return;
        }
        Err(_) => {
            bump(&counters.refused);
            tracing::warn!(%remote, "refused a peer connection: no handshake in {HANDSHAKE_TIMEOUT:?}");
            return;
        }
    };
    bump(&counters.authenticated);
    tracing::debug!(%remote, from, "peer connected");

    let (mut read, write) = stream.into_split();
    let (replies, queue) = mpsc::channel(OUTGOING_QUEUE);
    let writer = tokio::spawn(write_frames(write, queue));
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT_MAX));
    let in_flight_bytes = Arc::new(Semaphore::new(IN_FLIGHT_BYTES_MAX));
    let reply_budget = Arc::new(Semaphore::new(OUTGOING_BYTES_MAX));
    let mut requests = JoinSet::new();
    loop {
        let read = tokio::select! {
            () = stopped(&mut stop) => break,
            read = wire::read_frame(&mut read) => read,
        };
        let frame = match read {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(error) => {
                if error.kind() == io::ErrorKind::InvalidData {
                    bump(&counters.protocol_errors);
                    tracing::warn!(%remote, from, "closed a peer connection: {error}");
                } else {
                    tracing::debug!(%remote, from, "peer connection failed: {error}");
                }
                break;
            }
        };
        let id = match postcard::take_from_bytes::<u64>(&frame) {
            Ok((id, _)) => id,
            Err(error) => {
                bump(&counters.protocol_errors);
                tracing::warn!(%remote, from, "closed a peer connection: undecodable request ({error})");
                break;
            }
        };
        let permits = async {
            let count = in_flight.clone().acquire_owned().await?;
            let bytes = in_flight_bytes
                .clone()
                .acquire_many_owned(weight(frame.len()))
                .await?;
            Ok::<_, tokio::sync::AcquireError>((count, bytes))
        };
        let permit = tokio::select! {
            () = stopped(&mut stop) => break,
            permits = permits => match permits {
                Ok(permits) => permits,
                Err(_) => break,
            },
        };
        bump(&counters.requests);
        while requests.try_join_next().is_some() {}
        let network = network.clone();
        let replies = replies.clone();
        let reply_budget = reply_budget.clone();
        requests.spawn(async move {
            let body = answer(&network, from, id, &frame).await;
            drop(frame);
            drop(permit);
            if let Ok(budget) = reply_budget.acquire_many_owned(weight(body.len())).await {
                let _ = replies
                    .send(Outgoing {
                        body,
                        _budget: budget,
                    })
                    .await;
            }
        });
    }
    requests.abort_all();
    writer.abort();
}

/// The encoded reply to the request in `frame`, sent by node `from`.
async fn answer(network: &PeerNetwork, from: u64, id: u64, frame: &Bytes) -> Vec<u8> {
    let request: RequestFrame<'_> = match wire::decode(frame) {
        Ok(request) => request,
        Err(error) => return encode_reply(id, &Reply::Failed(error.to_string())),
    };
    match request.body {
        Request::App { body } => {
            let Some(handler) = network.app_handler() else {
                return encode_reply(id, &Reply::NoHandler);
            };
            match handler.handle(from, wire::slice_of(frame, body)).await {
                Ok(answer) => encode_reply(id, &Reply::App(&answer)),
                Err(error) => encode_reply(id, &Reply::Failed(error)),
            }
        }
        Request::Append {
            group,
            vote,
            prev_log_id,
            entries,
            leader_commit,
        } => {
            let Some(raft) = network.group(&group) else {
                return encode_reply(id, &Reply::NoGroup);
            };
            let reply =
                match wire::append_request_get(frame, vote, prev_log_id, entries, leader_commit) {
                    Ok(rpc) => match raft.append_entries(rpc).await {
                        Ok(response) => Reply::Append(WAppendReply::of(&response)),
                        Err(error) => Reply::Failed(error),
                    },
                    Err(error) => Reply::Failed(error.to_string()),
                };
            encode_reply(id, &reply)
        }
        Request::Vote {
            group,
            pre,
            vote,
            last_log_id,
            leadership_transfer,
        } => {
            let Some(raft) = network.group(&group) else {
                return encode_reply(id, &Reply::NoGroup);
            };
            let rpc = wire::vote_request_get(vote, last_log_id, leadership_transfer);
            let reply = match raft.vote(rpc, pre).await {
                Ok(response) => wire::vote_reply(&response),
                Err(error) => Reply::Failed(error),
            };
            encode_reply(id, &reply)
        }
        Request::Snapshot {
            group,
            vote,
            meta,
            data,
        } => {
            let Some(raft) = network.group(&group) else {
                return encode_reply(id, &Reply::NoGroup);
            };
            let reply = match meta.get() {
                Ok(meta) => {
                    let data = wire::slice_of(frame, data);
                    match raft.install_snapshot(vote.get(), meta, data).await {
                        Ok(response) => Reply::Snapshot {
                            vote: wire::WVote::of(&response.vote),
                        },
                        Err(error) => Reply::Failed(error),
                    }
                }
                Err(error) => Reply::Failed(error.to_string()),
            };
            encode_reply(id, &reply)
        }
        Request::TransferLeader {
            group,
            from: leader,
            to,
            last_log_id,
        } => {
            let Some(raft) = network.group(&group) else {
                return encode_reply(id, &Reply::NoGroup);
            };
            let rpc = wire::transfer_request_get(leader, to, last_log_id);
            let reply = match raft.transfer_leader(rpc).await {
                Ok(response) => Reply::TransferLeader(WTransferReply::of(&response)),
                Err(error) => Reply::Failed(error),
            };
            encode_reply(id, &reply)
        }
    }
}

fn encode_reply(id: u64, reply: &Reply<'_>) -> Vec<u8> {
    match wire::encode(&(id, reply)) {
        Ok(body) => body,
        // Only an answer too large for a frame gets here.
        Err(error) => wire::encode(&(id, &Reply::Failed(error.to_string()))).unwrap_or_default(),
    }
}
