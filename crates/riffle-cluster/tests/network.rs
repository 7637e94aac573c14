//! The peer network over real loopback TCP: metadata groups replicating through it (a
//! leader lost, a node restarted and caught up by log and by snapshot), strangers and
//! garbage at the port, and application calls beside the Raft RPCs.
//!
//! Raft timeouts are short (heartbeats every 50 ms, elections after 150 to 300 ms); every
//! wait is bounded and names what it waited for.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, RPCError, RaftError};
use openraft::network::RPCOption;
use openraft::raft::VoteRequest;
use openraft::{Config, Raft, RaftNetworkFactory, RaftNetworkV2, ServerState};
use riffle_cluster::network::{
    CallError, ClusterSecret, GroupId, PeerNetwork, PeerServer, FRAME_BYTES_MAX,
};
use riffle_cluster::{
    open_meta_group, propose, ClusterNode, MetaRaft, MetaView, ProposeError, SyncNow, Vote,
};
use riffle_core::catalogue::{Applied, CatalogueState, Command, Rejection};
use riffle_core::meta::{ShardMeta, StreamMeta, StreamMode};
use riffle_log::LogOptions;
use sha2::Sha256;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(10);
const ACCOUNT: &str = "000000000000";

fn config() -> Arc<Config> {
    let config = Config {
        cluster_name: "riffle-network-test".to_string(),
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        install_snapshot_timeout: 2_000,
        ..Default::default()
    };
    Arc::new(config.validate().unwrap())
}

fn log_options() -> LogOptions {
    LogOptions {
        segment_bytes_max: 2048,
        index_interval_bytes: 512,
    }
}

/// A secret made as an operator would, in its own file, and loaded from it; with the key
/// bytes the file holds, for the tests that speak the handshake by hand.
fn new_secret(dir: &Path, name: &str) -> (ClusterSecret, Vec<u8>) {
    let path = dir.join(name);
    ClusterSecret::create(&path).unwrap();
    let secret = ClusterSecret::load(&path).unwrap();
    let key = std::fs::read(&path).unwrap().trim_ascii().to_vec();
    (secret, key)
}

fn stream(name: &str) -> StreamMeta {
    let shard = ShardMeta {
        ordinal: 0,
        starting_hash_key: 0,
        ending_hash_key: u128::MAX,
        parent: None,
        adjacent_parent: None,
        created_ms: 1_000,
        sequence_epoch_s: 1,
        closed: None,
        replicas: Vec::new(),
    };
    StreamMeta {
        account: ACCOUNT.into(),
        name: name.into(),
        dir_id: format!("dir-{name}"),
        created_ms: 1_000,
        mode: StreamMode::Provisioned,
        retention_hours: 24,
        max_record_size_kib: 1024,
        tags: BTreeMap::new(),
        shard_level_metrics: Vec::new(),
        next_shard_ordinal: 1,
        shards: vec![shard],
        consumers: Vec::new(),
        policy: None,
        warm_throughput_mibps: None,
        record_distribution: Default::default(),
        encryption: None,
        sealing_keys: Vec::new(),
    }
}

fn create(name: &str) -> Command {
    Command::CreateStream { meta: stream(name) }
}

fn retention(name: &str, hours: u32, if_version: u64) -> Command {
    let mut meta = stream(name);
    meta.retention_hours = hours;
    Command::ReplaceStream { meta, if_version }
}

/// Binds `addr` (a port a stopped node just released may take a moment to free).
async fn bind(addr: SocketAddr) -> TcpListener {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::debug!("rebinding {addr}: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("cannot bind {addr}: {error}"),
        }
    }
}

/// One node: its metadata group over the peer network.
struct Node {
    id: u64,
    dir: PathBuf,
    addr: SocketAddr,
    network: PeerNetwork,
    server: PeerServer,
    raft: MetaRaft,
    view: MetaView,
}

async fn start(id: u64, dir: &Path, listener: TcpListener, secret: &ClusterSecret) -> Node {
    let addr = listener.local_addr().unwrap();
    let network = PeerNetwork::new(id, secret.clone());
    let (store, machine) = open_meta_group(dir, log_options(), Arc::new(SyncNow)).unwrap();
    let view = machine.view();
    let raft = Raft::new(
        id,
        config(),
        network.for_group(GroupId::Meta),
        store,
        machine,
    )
    .await
    .unwrap();
    network.register(GroupId::Meta, raft.clone());
    let server = PeerServer::start(listener, network.clone()).unwrap();
    Node {
        id,
        dir: dir.to_path_buf(),
        addr,
        network,
        server,
        raft,
        view,
    }
}

/// Stops a node: its port closes, its connections drop, its Raft ends.
async fn stop(node: Node) -> (u64, PathBuf, SocketAddr) {
    node.network.unregister(&GroupId::Meta);
    node.server.shutdown().await;
    node.network.client().close_all();
    node.raft.shutdown().await.unwrap();
    (node.id, node.dir, node.addr)
}

fn members(nodes: &[(u64, SocketAddr)]) -> BTreeMap<u64, ClusterNode> {
    nodes
        .iter()
        .map(|(id, addr)| {
            (
                *id,
                ClusterNode {
                    addr: addr.to_string(),
                },
            )
        })
        .collect()
}

/// Starts a cluster of three in `dirs`, initialized from node 1.
async fn three_nodes(dirs: &[TempDir], secret: &ClusterSecret) -> Vec<Node> {
    let mut nodes = Vec::new();
    for (id, dir) in (1..=3).zip(dirs) {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await;
        nodes.push(start(id, dir.path(), listener, secret).await);
    }
    let all: Vec<(u64, SocketAddr)> = nodes.iter().map(|node| (node.id, node.addr)).collect();
    nodes[0].raft.initialize(members(&all)).await.unwrap();
    nodes
}

async fn leader_among(nodes: &[Node], not: Option<u64>) -> usize {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        for (position, node) in nodes.iter().enumerate() {
            let metrics = node.raft.metrics().borrow_watched().clone();
            if metrics.state == ServerState::Leader && Some(node.id) != not {
                return position;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader elected among {:?}",
            nodes.iter().map(|node| node.id).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Proposes `command` at whoever leads (again if a new leader is not ready yet).
async fn verdict(nodes: &[Node], command: &Command) -> Result<Applied, Rejection> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let leader = &nodes[leader_among(nodes, None).await];
        match propose(&leader.raft, command).await {
            Ok(verdict) => return verdict,
            Err(ProposeError::Raft(RaftError::APIError(ClientWriteError::ForwardToLeader(_))))
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("no verdict for {command:?}: {error}"),
        }
    }
}

fn replay(commands: &[Command]) -> (CatalogueState, Vec<Result<Applied, Rejection>>) {
    let mut state = CatalogueState::new(String::new());
    let verdicts = commands
        .iter()
        .map(|command| state.apply(command))
        .collect();
    (state, verdicts)
}

async fn propose_all(nodes: &[Node], log: &mut Vec<Command>, commands: Vec<Command>) {
    for command in commands {
        let got = verdict(nodes, &command).await;
        log.push(command);
        let (_, expected) = replay(log);
        assert_eq!(Some(&got), expected.last(), "verdict of {:?}", log.last());
    }
}

/// Waits until every node applied what the most advanced one has, then checks they all
/// hold exactly the catalogue `log` gives.
async fn assert_converged(nodes: &[Node], log: &[Command]) {
    let index = nodes
        .iter()
        .filter_map(|node| node.view.applied())
        .map(|log_id| log_id.index)
        .max()
        .expect("something applied");
    for node in nodes {
        node.raft
            .wait(Some(WAIT))
            .applied_index_at_least(Some(index), format!("node {} applies {index}", node.id))
            .await
            .unwrap();
    }
    let (expected, _) = replay(log);
    for node in nodes {
        let state = node.view.catalogue();
        assert_eq!(
            state.to_document(),
            expected.to_document(),
            "node {}",
            node.id
        );
        assert_eq!(state.versions(), expected.versions(), "node {}", node.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_over_tcp_replicate_survive_their_leader_and_catch_up() {
    let secrets = TempDir::new().unwrap();
    let (secret, _) = new_secret(secrets.path(), "cluster-secret");
    let dirs: Vec<TempDir> = (0..3).map(|_| TempDir::new().unwrap()).collect();
    let mut nodes = three_nodes(&dirs, &secret).await;

    let mut log = Vec::new();
    propose_all(
        &nodes,
        &mut log,
        vec![
            create("a"),
            create("b"),
            retention("a", 48, 1),
            retention("a", 72, 1),
        ],
    )
    .await;
    assert_eq!(replay(&log).1[3], Err(Rejection::Stale { current: 2 }));
    assert_converged(&nodes, &log).await;
    // The leader connected to each follower, which served its RPCs; nobody was refused.
    let leader_id = nodes[leader_among(&nodes, None).await].id;
    for node in &nodes {
        let stats = node.server.stats();
        assert_eq!(stats.refused, 0, "node {}: {stats:?}", node.id);
        if node.id != leader_id {
            assert!(stats.authenticated >= 1, "node {}: {stats:?}", node.id);
            assert!(stats.requests > 0, "node {}: {stats:?}", node.id);
        }
    }

    // The leader goes down: its port closes and its Raft stops. Another is elected over
    // the network and proposals go on.
    let old = nodes.remove(leader_among(&nodes, None).await);
    let (old_id, old_dir, old_addr) = stop(old).await;
    let leader = leader_among(&nodes, Some(old_id)).await;
    assert_ne!(nodes[leader].id, old_id);
    propose_all(&nodes, &mut log, vec![create("c"), retention("b", 96, 1)]).await;
    assert_converged(&nodes, &log).await;

    // It restarts on its address and catches up from the log.
    nodes.push(start(old_id, &old_dir, bind(old_addr).await, &secret).await);
    assert_converged(&nodes, &log).await;

    // A follower is down while the others snapshot and purge their logs: it can only
    // catch up by a snapshot shipped over the network.
    let leader_id = nodes[leader_among(&nodes, None).await].id;
    let follower = nodes.iter().position(|node| node.id != leader_id).unwrap();
    let (follower_id, follower_dir, follower_addr) = stop(nodes.remove(follower)).await;
    propose_all(
        &nodes,
        &mut log,
        vec![create("d"), retention("c", 120, 1), create("e")],
    )
    .await;
    assert_converged(&nodes, &log).await;
    for node in &nodes {
        let at = node.view.applied().unwrap();
        node.raft.trigger().snapshot().await.unwrap();
        node.raft
            .wait(Some(WAIT))
            .snapshot(at, format!("node {}'s snapshot", node.id))
            .await
            .unwrap();
        node.raft.trigger().purge_log(at.index).await.unwrap();
        node.raft
            .wait(Some(WAIT))
            .purged(Some(at), format!("node {}'s log purged", node.id))
            .await
            .unwrap();
    }
    let index = nodes[0].view.applied().unwrap().index;
    nodes.push(
        start(
            follower_id,
            &follower_dir,
            bind(follower_addr).await,
            &secret,
        )
        .await,
    );
    assert_converged(&nodes, &log).await;
    let returned = nodes.last().unwrap();
    let installed = returned
        .view
        .snapshot_meta()
        .and_then(|meta| meta.last_log_id)
        .expect("the follower caught up by a snapshot sent over TCP");
    assert!(installed.index >= index, "{installed:?} covers {index}");

    // And goes on by log.
    propose_all(&nodes, &mut log, vec![create("f")]).await;
    assert_converged(&nodes, &log).await;
    let ids: BTreeSet<u64> = nodes.iter().map(|node| node.id).collect();
    assert_eq!(ids, BTreeSet::from([1, 2, 3]));
    for node in nodes {
        stop(node).await;
    }
}

// The handshake by hand, as the module documents it: what a stranger can do at the port.

const MAGIC_AND_VERSION: [u8; 8] = [b'R', b'F', b'L', b'P', 1, 0, 0, 0];
const CLIENT_LABEL: &[u8] = b"riffle peer v1: client proof";

/// Runs the client's side of the handshake on `stream` as node `id`; with `key` the proof
/// is honest, without it 32 bytes of guesswork. Returns the server's hello.
async fn handshake_by_hand(stream: &mut TcpStream, id: u64, key: Option<&[u8]>) -> Vec<u8> {
    let mut hello = MAGIC_AND_VERSION.to_vec();
    hello.extend_from_slice(&id.to_be_bytes());
    hello.extend_from_slice(&[0x5A; 32]);
    stream.write_all(&hello).await.unwrap();
    let mut reply = [0u8; 80];
    stream.read_exact(&mut reply).await.unwrap();
    let server_hello = &reply[..48];
    let proof: Vec<u8> = match key {
        Some(key) => {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
            mac.update(CLIENT_LABEL);
            mac.update(&hello);
            mac.update(server_hello);
            mac.finalize().into_bytes().to_vec()
        }
        None => vec![0x42; 32],
    };
    stream.write_all(&proof).await.unwrap();
    server_hello.to_vec()
}

/// An app call as a frame, by hand: request id 1, `Request::App` (variant 4), the body.
fn app_frame(body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128, "one varint byte");
    let mut frame = vec![1, 4, body.len() as u8];
    frame.extend_from_slice(body);
    let mut out = (frame.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&frame);
    out
}

/// The next frame on `stream`, or `None` if the server closed the connection.
async fn read_frame_by_hand(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    let read = tokio::time::timeout(WAIT, stream.read_exact(&mut len))
        .await
        .expect("the server answers or closes");
    if read.is_err() {
        return None;
    }
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).await.ok()?;
    Some(body)
}

/// An app handler that counts its calls and answers `from:body`.
fn counting_handler(calls: Arc<AtomicU64>) -> Arc<dyn riffle_cluster::network::AppHandler> {
    Arc::new(move |from: u64, body: Bytes| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let mut answer = format!("{from}:").into_bytes();
            answer.extend_from_slice(&body);
            Ok(Bytes::from(answer))
        }
    })
}

fn vote_term(raft: &MetaRaft) -> u64 {
    raft.metrics().borrow_watched().vote.leader_id.term
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_secret_reaches_no_raft_and_no_handler() {
    let secrets = TempDir::new().unwrap();
    let (secret, key) = new_secret(secrets.path(), "ours");
    let (stranger_secret, _) = new_secret(secrets.path(), "theirs");
    let data = TempDir::new().unwrap();

    // The victim: a metadata group not initialized yet, so a vote request with a high term
    // is granted by whoever reaches it, and its term shows whether one did.
    let listener = bind("127.0.0.1:0".parse().unwrap()).await;
    let victim = start(5, data.path(), listener, &secret).await;
    let calls = Arc::new(AtomicU64::new(0));
    victim
        .network
        .set_app_handler(counting_handler(calls.clone()));
    let victim_node = ClusterNode {
        addr: victim.addr.to_string(),
    };
    let option = RPCOption::new(Duration::from_secs(2));
    let high_vote = |candidate| VoteRequest::new(Vote::new(1_000, candidate), None);

    // A node with another secret: its Raft RPCs and app calls are refused at the handshake.
    let stranger = PeerNetwork::new(6, stranger_secret);
    let mut factory = stranger.for_group::<Bytes>(GroupId::Meta);
    let mut to_victim = factory.new_client(5, &victim_node).await;
    match to_victim.vote(high_vote(6), option.clone()).await {
        Err(RPCError::Unreachable(error)) => {
            assert!(
                error
                    .to_string()
                    .contains("does not prove the cluster secret"),
                "{error}"
            );
        }
        other => panic!("a stranger's vote was answered: {other:?}"),
    }
    let error = stranger
        .call(&victim.addr.to_string(), Bytes::from_static(b"hi"), WAIT)
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::Unreachable(_)), "{error}");

    // A stranger that ignores the verdict and sends its proof and a request anyway: the
    // server closes the connection and dispatches nothing.
    let mut raw = TcpStream::connect(victim.addr).await.unwrap();
    handshake_by_hand(&mut raw, 6, None).await;
    let _ = raw.write_all(&app_frame(b"injected")).await;
    assert_eq!(
        read_frame_by_hand(&mut raw).await,
        None,
        "no answer, closed"
    );

    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "no app call reached the handler"
    );
    assert_eq!(vote_term(&victim.raft), 0, "no vote reached the Raft");
    // Both refusals are counted (the stranger's own client may still be closing).
    let deadline = tokio::time::Instant::now() + WAIT;
    while victim.server.stats().refused < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = victim.server.stats();
    assert_eq!(stats.authenticated, 0, "{stats:?}");
    assert_eq!(stats.requests, 0, "{stats:?}");
    assert!(stats.refused >= 2, "{stats:?}");

    // The same bytes with the right proof do reach the handler (so the refusal above is the
    // secret's doing, not a malformed request).
    let mut honest = TcpStream::connect(victim.addr).await.unwrap();
    let server_hello = handshake_by_hand(&mut honest, 7, Some(&key)).await;
    assert_eq!(&server_hello[..5], b"RFLP\x01");
    assert_eq!(
        &server_hello[8..16],
        &5u64.to_be_bytes(),
        "the server's node id"
    );
    honest.write_all(&app_frame(b"hello")).await.unwrap();
    let reply = read_frame_by_hand(&mut honest).await.expect("an answer");
    // Request id 1, `Reply::App` (variant 4), then the handler's answer.
    assert_eq!(reply, [&[1, 4, 7][..], b"7:hello".as_slice()].concat());
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A member's vote reaches the Raft: first told the group is not there while it is
    // unregistered, then granted.
    let member = PeerNetwork::new(7, secret.clone());
    let mut factory = member.for_group::<Bytes>(GroupId::Meta);
    let mut to_victim = factory.new_client(5, &victim_node).await;
    victim.network.unregister(&GroupId::Meta);
    match to_victim.vote(high_vote(7), option.clone()).await {
        Err(RPCError::Unreachable(error)) => {
            assert!(error.to_string().contains("no Raft group meta"), "{error}");
        }
        other => panic!("an unregistered group answered: {other:?}"),
    }
    victim.network.register(GroupId::Meta, victim.raft.clone());
    let granted = to_victim.vote(high_vote(7), option.clone()).await.unwrap();
    assert!(granted.vote_granted, "{granted:?}");
    victim
        .raft
        .wait(Some(WAIT))
        .metrics(|metrics| metrics.vote.leader_id.term == 1_000, "term 1000")
        .await
        .unwrap();

    // Aimed at another node id than the one at the address, RPCs are refused.
    let mut misdirected = factory.new_client(9, &victim_node).await;
    match misdirected.vote(high_vote(7), option).await {
        Err(RPCError::Unreachable(error)) => {
            assert!(
                error.to_string().contains("is node 5, not node 9"),
                "{error}"
            );
        }
        other => panic!("a misdirected vote was answered: {other:?}"),
    }
    stop(victim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversize_frames_at_the_port_disturb_nobody() {
    let secrets = TempDir::new().unwrap();
    let (secret, key) = new_secret(secrets.path(), "cluster-secret");
    let dirs: Vec<TempDir> = (0..3).map(|_| TempDir::new().unwrap()).collect();
    let nodes = three_nodes(&dirs, &secret).await;
    let mut log = Vec::new();
    propose_all(&nodes, &mut log, vec![create("a")]).await;
    let target = &nodes[leader_among(&nodes, None).await];
    let calls = Arc::new(AtomicU64::new(0));
    target
        .network
        .set_app_handler(counting_handler(calls.clone()));
    let before = target.server.stats();

    // Not riffle at all.
    let mut raw = TcpStream::connect(target.addr).await.unwrap();
    let _ = raw.write_all(&[0xEE; 4096]).await;
    assert_eq!(read_frame_by_hand(&mut raw).await, None);

    // Authenticated, then a length no frame may have, before anything is allocated.
    let mut raw = TcpStream::connect(target.addr).await.unwrap();
    handshake_by_hand(&mut raw, 8, Some(&key)).await;
    raw.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert_eq!(read_frame_by_hand(&mut raw).await, None);
    let mut raw = TcpStream::connect(target.addr).await.unwrap();
    handshake_by_hand(&mut raw, 8, Some(&key)).await;
    raw.write_all(&(FRAME_BYTES_MAX as u32 + 1).to_be_bytes())
        .await
        .unwrap();
    assert_eq!(read_frame_by_hand(&mut raw).await, None);

    // A frame whose request id is not even a number: closed.
    let mut raw = TcpStream::connect(target.addr).await.unwrap();
    handshake_by_hand(&mut raw, 8, Some(&key)).await;
    raw.write_all(&[0, 0, 0, 12]).await.unwrap();
    raw.write_all(&[0xFF; 12]).await.unwrap();
    assert_eq!(read_frame_by_hand(&mut raw).await, None);

    // A request of a kind that does not exist, with a readable id: answered as a failure,
    // and the connection serves the next request.
    let mut raw = TcpStream::connect(target.addr).await.unwrap();
    handshake_by_hand(&mut raw, 8, Some(&key)).await;
    raw.write_all(&[0, 0, 0, 4, 9, 0x63, 0xFF, 0xFF])
        .await
        .unwrap();
    let reply = read_frame_by_hand(&mut raw).await.expect("an answer");
    assert_eq!(reply[..2], [9, 5], "request 9 answered `Reply::Failed`");
    raw.write_all(&app_frame(b"still here")).await.unwrap();
    let reply = read_frame_by_hand(&mut raw).await.expect("an answer");
    assert_eq!(
        reply,
        [&[1, 4, 12][..], b"8:still here".as_slice()].concat()
    );

    let after = target.server.stats();
    assert_eq!(after.refused - before.refused, 1, "{after:?}");
    assert_eq!(
        after.protocol_errors - before.protocol_errors,
        3,
        "{after:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // The cluster went on throughout and still does, through that node too.
    propose_all(&nodes, &mut log, vec![create("b"), retention("a", 48, 1)]).await;
    assert_converged(&nodes, &log).await;
    let other = nodes.iter().find(|node| node.id != target.id).unwrap();
    let answer = other
        .network
        .call(&target.addr.to_string(), Bytes::from_static(b"ok?"), WAIT)
        .await
        .unwrap();
    assert_eq!(answer, format!("{}:ok?", other.id));
    for node in nodes {
        stop(node).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_calls_round_trip_share_one_connection_and_name_their_failures() {
    let secrets = TempDir::new().unwrap();
    let (secret, _) = new_secret(secrets.path(), "cluster-secret");
    let serve = |id| {
        let secret = secret.clone();
        async move {
            let network = PeerNetwork::new(id, secret);
            let listener = bind("127.0.0.1:0".parse().unwrap()).await;
            let server = PeerServer::start(listener, network.clone()).unwrap();
            (network, server)
        }
    };
    let (echo, echo_server) = serve(1).await;
    let calls = Arc::new(AtomicU64::new(0));
    echo.set_app_handler(counting_handler(calls.clone()));
    let (bare, bare_server) = serve(2).await;
    let (moody, moody_server) = serve(3).await;
    moody.set_app_handler(Arc::new(|_from: u64, body: Bytes| async move {
        match &body[..] {
            b"fail" => Err("not today".to_string()),
            b"slow" => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Ok(body)
            }
            _ => Ok(body),
        }
    }));
    let caller = PeerNetwork::new(9, secret.clone());
    let echo_addr = echo_server.local_addr().to_string();

    // A round trip, and the handler learns who called.
    let answer = caller
        .call(&echo_addr, Bytes::from_static(b"hello"), WAIT)
        .await
        .unwrap();
    assert_eq!(answer, "9:hello");

    // Many calls in flight on one connection each get their own answer; a large body
    // (megabytes, like a record batch) travels whole.
    let mut calls_in_flight = Vec::new();
    for n in 0..100u32 {
        let caller = caller.clone();
        let addr = echo_addr.clone();
        calls_in_flight.push(tokio::spawn(async move {
            let body = if n == 50 {
                Bytes::from(vec![n as u8; 4 << 20])
            } else {
                Bytes::from(n.to_string())
            };
            let answer = caller.call(&addr, body.clone(), WAIT).await.unwrap();
            assert_eq!(answer[..2], *b"9:");
            assert_eq!(answer[2..], body[..], "call {n}");
        }));
    }
    for call in calls_in_flight {
        call.await.unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 101);
    assert_eq!(echo_server.stats().authenticated, 1, "one connection");

    // Behind a link where a connection and its handshake take 300 ms, calls that each wait
    // only 100 ms (openraft's RPC timeouts are as short as a heartbeat) still get through:
    // the connection attempt outlives the call that started it and serves a later one.
    let slow_link = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_addr = slow_link.local_addr().unwrap().to_string();
    let target = echo_addr.clone();
    let proxy = tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = slow_link.accept().await else {
                return;
            };
            let target = target.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let mut outbound = TcpStream::connect(target).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    let short = Duration::from_millis(100);
    let mut answered = None;
    for attempt in 0..20 {
        match caller
            .call(&slow_addr, Bytes::from_static(b"slow link"), short)
            .await
        {
            Ok(answer) => {
                answered = Some((attempt, answer));
                break;
            }
            Err(CallError::Timeout(_)) => {}
            Err(error) => panic!("{error}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (attempt, answer) = answered.expect("no call got through the slow link");
    assert!(attempt >= 1, "the first call cannot have connected in time");
    assert_eq!(answer, "9:slow link");
    proxy.abort();

    // No handler: said so, until one is set.
    let bare_addr = bare_server.local_addr().to_string();
    let error = caller
        .call(&bare_addr, Bytes::from_static(b"x"), WAIT)
        .await
        .unwrap_err();
    assert_eq!(error, CallError::NoHandler);
    bare.set_app_handler(counting_handler(Arc::new(AtomicU64::new(0))));
    let answer = caller
        .call(&bare_addr, Bytes::from_static(b"x"), WAIT)
        .await
        .unwrap();
    assert_eq!(answer, "9:x");

    // The handler's error comes back as its text; a slow answer times out and the
    // connection goes on serving (the late answer is dropped, not taken for another).
    let moody_addr = moody_server.local_addr().to_string();
    let error = caller
        .call(&moody_addr, Bytes::from_static(b"fail"), WAIT)
        .await
        .unwrap_err();
    assert_eq!(error, CallError::Failed("not today".into()));
    let short = Duration::from_millis(200);
    let error = caller
        .call(&moody_addr, Bytes::from_static(b"slow"), short)
        .await
        .unwrap_err();
    assert_eq!(error, CallError::Timeout(short));
    let answer = caller
        .call(&moody_addr, Bytes::from_static(b"quick"), WAIT)
        .await
        .unwrap();
    assert_eq!(answer, "quick");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let answer = caller
        .call(&moody_addr, Bytes::from_static(b"after"), WAIT)
        .await
        .unwrap();
    assert_eq!(answer, "after");
    assert_eq!(moody_server.stats().authenticated, 1, "same connection");

    // A node that is gone: unreachable, then backed off from without a new attempt.
    moody_server.shutdown().await;
    // A call made before the caller's reader saw the close goes out on the dying
    // connection: its outcome is honestly unknown (Lost). Once the close is seen, the
    // node is unreachable.
    let mut error = caller
        .call(&moody_addr, Bytes::from_static(b"x"), WAIT)
        .await
        .unwrap_err();
    if matches!(error, CallError::Lost(_)) {
        error = caller
            .call(&moody_addr, Bytes::from_static(b"x"), WAIT)
            .await
            .unwrap_err();
    }
    assert!(matches!(error, CallError::Unreachable(_)), "{error}");
    let mut backed_off = false;
    for _ in 0..3 {
        match caller
            .call(&moody_addr, Bytes::from_static(b"x"), WAIT)
            .await
        {
            Err(CallError::Unreachable(reason)) if reason.contains("retrying in") => {
                backed_off = true;
            }
            Err(CallError::Unreachable(_)) => {}
            other => panic!("a stopped node answered: {other:?}"),
        }
    }
    assert!(backed_off, "no backoff after a refused connection");
    // It comes back on the same address: calls reach it again once the backoff passes.
    let listener = bind(moody_addr.parse().unwrap()).await;
    let moody_server = PeerServer::start(listener, moody.clone()).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match caller
            .call(&moody_addr, Bytes::from_static(b"back"), WAIT)
            .await
        {
            Ok(answer) => {
                assert_eq!(answer, "back");
                break;
            }
            Err(CallError::Unreachable(_)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("the node never came back: {error}"),
        }
    }
    echo_server.shutdown().await;
    bare_server.shutdown().await;
    moody_server.shutdown().await;
}
