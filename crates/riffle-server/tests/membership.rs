//! Cluster membership with real `riffle serve` processes on loopback: placement on
//! min(3, nodes) replicas, replicas added when nodes join, `riffle cluster leave` and
//! `riffle cluster remove`, with no acknowledged record lost.
//!
//! These tests keep their own copies of the process and history helpers they were written
//! with; `tests/cluster.rs` has the shared ones (`cluster/nodes.rs`, `cluster/history.rs`)
//! that these should move onto.

#[path = "sdk/common.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType, StreamStatus};
use aws_sdk_kinesis::Client;
use common::*;

/// A free loopback port for a node's cluster listener.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

struct Node {
    dir: PathBuf,
    cluster_addr: String,
    server: Option<Server>,
}

impl Node {
    /// `riffle serve`'s flags for a node on `dir`.
    fn args(dir: &Path, cluster_addr: &str, secret: &Path, join: Option<&str>) -> Vec<String> {
        let mut args = vec![
            "--data-dir".to_owned(),
            dir.display().to_string(),
            "--cluster-listen".to_owned(),
            cluster_addr.to_owned(),
            "--cluster-secret-file".to_owned(),
            secret.display().to_string(),
            "--limits".to_owned(),
            "off".to_owned(),
        ];
        if let Some(join) = join {
            args.push("--join".to_owned());
            args.push(join.to_owned());
        }
        args
    }

    fn start(dir: &Path, cluster_addr: &str, secret: &Path, join: Option<&str>) -> Server {
        let args = Node::args(dir, cluster_addr, secret, join);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Server::with_args(&args)
    }

    /// A node of a new directory under `root`, started (joining `join` unless it is the
    /// first).
    fn new_started(root: &Path, name: &str, secret: &Path, join: Option<&str>) -> Node {
        let dir = root.join(name);
        let cluster_addr = format!("127.0.0.1:{}", free_port());
        let server = Some(Node::start(&dir, &cluster_addr, secret, join));
        Node {
            dir,
            cluster_addr,
            server,
        }
    }

    /// The stderr of this node's start, which must be refused.
    fn refused_start(&self, secret: &Path) -> String {
        let args = Node::args(&self.dir, &self.cluster_addr, secret, None);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Server::refused_start(&args)
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("the node is running")
    }
}

async fn status(endpoint: &str) -> serde_json::Value {
    let url = format!("{endpoint}/cluster/status");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_riffle"))
            .args(["cluster", "status", "--json", "--endpoint"])
            .arg(url.trim_end_matches("/cluster/status"))
            .output()
            .expect("run riffle cluster status")
    })
    .await
    .expect("status task");
    assert!(
        output.status.success(),
        "riffle cluster status failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("status is JSON")
}

async fn wait_for<F: Fn(&serde_json::Value) -> bool>(endpoint: &str, what: &str, check: F) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = status(endpoint).await;
        if check(&seen) {
            return;
        }
        assert!(Instant::now() < deadline, "{what} did not happen: {seen:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_active(client: &Client, stream: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(described) = client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
        {
            if described
                .stream_description_summary()
                .is_some_and(|summary| summary.stream_status() == &StreamStatus::Active)
            {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{stream} never became ACTIVE");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every record of every shard, read through `client`: (shard, sequence number) -> data.
async fn read_all(client: &Client, stream: &str) -> BTreeMap<(String, String), Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut shards = None;
    for _ in 0..100 {
        match client.list_shards().stream_name(stream).send().await {
            Ok(listed) => {
                shards = Some(listed.shards().to_vec());
                break;
            }
            // A node that just restarted may still be catching up with the catalogue.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    for shard in shards.expect("ListShards answers within 10 s") {
        let shard_id = shard.shard_id().to_owned();
        let mut attempts = 0;
        let started = loop {
            attempts += 1;
            let answer = client
                .get_shard_iterator()
                .stream_name(stream)
                .shard_id(&shard_id)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await;
            match answer {
                Ok(started) => break started,
                // A node that just became a replica of the shard may not have opened it yet.
                Err(_) if attempts < 50 => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(error) => panic!("GetShardIterator: {error:?}"),
            }
        };
        let mut iterator = started.shard_iterator().map(str::to_owned);
        while let Some(current) = iterator {
            let page = client
                .get_records()
                .shard_iterator(current)
                .limit(10_000)
                .send()
                .await
                .expect("GetRecords");
            for record in page.records() {
                found.insert(
                    (shard_id.clone(), record.sequence_number().to_owned()),
                    record.data().as_ref().to_vec(),
                );
            }
            if page.records().is_empty() || page.millis_behind_latest() == Some(0) {
                break;
            }
            iterator = page.next_shard_iterator().map(str::to_owned);
        }
    }
    found
}

type Acks = BTreeMap<(String, String), Vec<u8>>;

/// What a writer knows: the acknowledged records, and the data of records whose request got
/// no answer (stored or not: either is correct, but each at most once).
#[derive(Default)]
struct History {
    acked: Acks,
    uncertain: std::collections::BTreeSet<Vec<u8>>,
}

/// Puts `count` records through `client`; entries refused or unanswered are sent again
/// until acknowledged. Returns the history and the longest time writes kept failing.
async fn put_through(
    client: &Client,
    stream: &str,
    tag: &str,
    count: usize,
) -> (History, Duration) {
    let mut history = History::default();
    let mut longest_gap = Duration::ZERO;
    let mut failing_since: Option<Instant> = None;
    let mut pending: std::collections::VecDeque<(String, Vec<u8>)> = (0..count)
        .map(|i| (format!("key-{i}"), format!("{tag}-{i}").into_bytes()))
        .collect();
    let mut attempt = 0u32;
    while !pending.is_empty() {
        attempt += 1;
        let batch: Vec<(String, Vec<u8>)> = pending.drain(..pending.len().min(50)).collect();
        let entries: Vec<PutRecordsRequestEntry> = batch
            .iter()
            .map(|(key, data)| {
                // Each attempt carries its own bytes, so a record stored by an attempt whose
                // answer was lost is told apart from the one acknowledged later.
                let mut data = data.clone();
                data.extend_from_slice(format!("#{attempt}").as_bytes());
                PutRecordsRequestEntry::builder()
                    .partition_key(key)
                    .data(Blob::new(data))
                    .build()
                    .expect("entry")
            })
            .collect();
        let sent: Vec<Vec<u8>> = entries
            .iter()
            .map(|entry| entry.data().as_ref().to_vec())
            .collect();
        let called = Instant::now();
        let answer = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await;
        // A call the cluster holds while a shard elects a new leader counts as a gap too.
        longest_gap = longest_gap.max(called.elapsed());
        let mut refused = Vec::new();
        match answer {
            Ok(answer) => {
                for ((item, data), result) in batch.into_iter().zip(sent).zip(answer.records()) {
                    match (result.shard_id(), result.sequence_number()) {
                        (Some(shard), Some(sequence)) => {
                            history
                                .acked
                                .insert((shard.to_owned(), sequence.to_owned()), data);
                        }
                        _ => {
                            // InternalFailure for a record whose append's outcome is unknown
                            // (its leader died mid-way): it may still be stored, once.
                            history.uncertain.insert(data);
                            refused.push(item);
                        }
                    }
                }
            }
            Err(_) => {
                history.uncertain.extend(sent);
                refused = batch;
            }
        }
        if refused.is_empty() {
            if let Some(since) = failing_since.take() {
                longest_gap = longest_gap.max(since.elapsed());
            }
        } else {
            let since = *failing_since.get_or_insert_with(Instant::now);
            assert!(
                since.elapsed() < Duration::from_secs(30),
                "writes through the survivors kept failing for 30 s"
            );
            for item in refused.into_iter().rev() {
                pending.push_front(item);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    (history, longest_gap)
}

fn assert_holds(what: &str, read: &Acks, history: &History) {
    let acked = &history.acked;
    let lost: Vec<_> = acked
        .iter()
        .filter(|(key, data)| read.get(*key) != Some(*data))
        .collect();
    assert!(
        lost.is_empty(),
        "{what}: {} of {} acknowledged records are missing or differ, e.g. {:?}",
        lost.len(),
        acked.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );
    let phantoms: Vec<_> = read
        .iter()
        .filter(|(key, data)| !acked.contains_key(*key) && !history.uncertain.contains(*data))
        .take(5)
        .collect();
    assert!(
        phantoms.is_empty(),
        "{what}: records never sent or acknowledged: {phantoms:?}"
    );
    let mut seen = std::collections::BTreeSet::new();
    for data in read.values() {
        assert!(
            seen.insert(data),
            "{what}: a record is stored twice: {data:?}"
        );
    }
}

/// Runs `riffle cluster ARGS` (as an operator does) and returns its output.
async fn cluster_command(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_riffle"))
            .arg("cluster")
            .args(&args)
            .output()
            .expect("run riffle cluster")
    })
    .await
    .expect("cluster command task")
}

/// The node's id, from its status.
async fn node_id(node: &Node) -> u64 {
    status(&node.server().endpoint()).await["id"]
        .as_u64()
        .expect("a node has an id")
}

/// Whether the catalogue (as `seen` shows it) gives every shard exactly `count` replicas, all
/// of them in `allowed`.
fn every_shard_on(seen: &serde_json::Value, count: usize, allowed: &[u64]) -> bool {
    seen["placement"].as_array().is_some_and(|shards| {
        !shards.is_empty()
            && shards.iter().all(|shard| {
                shard["replicas"].as_array().is_some_and(|replicas| {
                    replicas.len() == count
                        && replicas
                            .iter()
                            .all(|id| id.as_u64().is_some_and(|id| allowed.contains(&id)))
                })
            })
    })
}

/// Reads through `node` until it holds at least the acknowledged records (a replica just
/// added, or a node that just learnt it holds one, may still be catching up), then checks
/// the history.
async fn assert_reads_hold(what: &str, node: &Node, stream: &str, history: &History) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let read = read_all(&node.server().client(), stream).await;
        if read.len() >= history.acked.len() || Instant::now() > deadline {
            assert_holds(what, &read, history);
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A stream made while the cluster was one node gets replicas on the nodes that join later,
/// so the first node can die without losing anything acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_made_on_one_node_is_replicated_on_the_nodes_that_join() {
    let root = tempfile::tempdir().expect("temp dir");
    let secret = root.path().join("cluster.secret");
    let mut nodes = vec![Node::new_started(root.path(), "d0", &secret, None)];
    let first = nodes[0].cluster_addr.clone();
    let stream = "grown";
    create_stream(&nodes[0].server().client(), stream, 2).await;
    wait_active(&nodes[0].server().client(), stream).await;
    let (mut history, _) = put_through(&nodes[0].server().client(), stream, "alone", 300).await;

    for name in ["d1", "d2"] {
        nodes.push(Node::new_started(root.path(), name, &secret, Some(&first)));
    }
    let mut ids = Vec::new();
    for node in &nodes {
        ids.push(node_id(node).await);
    }
    wait_for(
        &nodes[0].server().endpoint(),
        "every shard on three nodes",
        |seen| every_shard_on(seen, 3, &ids),
    )
    .await;

    nodes[0].server.take().expect("running").kill();
    for i in [1, 2] {
        assert_reads_hold(
            &format!("node {i} after the first node's kill"),
            &nodes[i],
            stream,
            &history,
        )
        .await;
    }
    let (after, _) = put_through(&nodes[1].server().client(), stream, "later", 200).await;
    history.acked.extend(after.acked);
    history.uncertain.extend(after.uncertain);
    assert_reads_hold("node 2 after more writes", &nodes[2], stream, &history).await;
}

/// Three nodes, then a fourth: new shards favour the empty node. The first node leaves
/// (`riffle cluster leave`) under writes: its replicas move, nothing acknowledged is lost,
/// and it refuses to start again. A node killed is removed through another
/// (`riffle cluster remove`) and a new node takes its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_join_leave_and_are_replaced_without_losing_records() {
    let root = tempfile::tempdir().expect("temp dir");
    let secret = root.path().join("cluster.secret");
    let mut nodes = vec![Node::new_started(root.path(), "d0", &secret, None)];
    let first = nodes[0].cluster_addr.clone();
    for name in ["d1", "d2"] {
        nodes.push(Node::new_started(root.path(), name, &secret, Some(&first)));
    }
    wait_for(&nodes[0].server().endpoint(), "three voters", |seen| {
        seen["voters"]
            .as_array()
            .is_some_and(|voters| voters.len() == 3)
    })
    .await;
    let stream = "moving";
    create_stream(&nodes[1].server().client(), stream, 2).await;
    wait_active(&nodes[2].server().client(), stream).await;
    let (mut history, _) = put_through(&nodes[2].server().client(), stream, "a", 300).await;

    // A fourth node joins; a stream made now has a replica on it (it holds the fewest).
    nodes.push(Node::new_started(root.path(), "d3", &secret, Some(&first)));
    let mut ids = Vec::new();
    for node in &nodes {
        ids.push(node_id(node).await);
    }
    wait_for(&nodes[3].server().endpoint(), "four voters", |seen| {
        seen["voters"]
            .as_array()
            .is_some_and(|voters| voters.len() == 4)
    })
    .await;
    // It takes its share of the shards that were fully replicated before it came: a
    // replica moves to it (added, caught up, then dropped from the most loaded node), and
    // it reads what was written before it joined.
    let everyone = ids.clone();
    wait_for(
        &nodes[1].server().endpoint(),
        "a replica moved to the new node",
        |seen| {
            every_shard_on(seen, 3, &everyone)
                && seen["placement"].as_array().is_some_and(|shards| {
                    shards.iter().any(|shard| {
                        shard["replicas"]
                            .as_array()
                            .is_some_and(|replicas| replicas.contains(&ids[3].into()))
                    })
                })
        },
    )
    .await;
    assert_reads_hold(
        "the node that joined a full cluster",
        &nodes[3],
        stream,
        &history,
    )
    .await;
    create_stream(&nodes[3].server().client(), "placed", 1).await;
    let seen = status(&nodes[1].server().endpoint()).await;
    let placed = seen["placement"]
        .as_array()
        .and_then(|shards| shards.iter().find(|shard| shard["stream"] == "placed"))
        .expect("the new stream's shard is in the catalogue")
        .clone();
    assert!(
        placed["replicas"]
            .as_array()
            .is_some_and(|replicas| replicas.len() == 3 && replicas.contains(&ids[3].into())),
        "a new shard goes to the least loaded nodes: {placed}"
    );

    // The first node leaves while writes go on through another, from before the leave starts
    // until after it ended.
    let writer_client = nodes[2].server().client();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_writer = std::sync::Arc::clone(&stop);
    let writer = tokio::spawn(async move {
        let mut history = History::default();
        let mut round = 0;
        while round < 3 || !stop_writer.load(std::sync::atomic::Ordering::Relaxed) {
            let tag = format!("b{round}");
            let (more, _) = put_through(&writer_client, "moving", &tag, 100).await;
            history.acked.extend(more.acked);
            history.uncertain.extend(more.uncertain);
            round += 1;
        }
        history
    });
    let left = cluster_command(vec![
        "leave".into(),
        "--endpoint".into(),
        nodes[0].server().endpoint(),
        "--cluster-secret-file".into(),
        secret.display().to_string(),
        "--wait-s".into(),
        "120".into(),
    ])
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let stdout = String::from_utf8_lossy(&left.stdout);
    assert!(
        left.status.success() && stdout.contains("left the cluster"),
        "riffle cluster leave: {stdout} {}",
        String::from_utf8_lossy(&left.stderr)
    );
    let during = writer.await.expect("writer task");
    history.acked.extend(during.acked);
    history.uncertain.extend(during.uncertain);
    let staying = [ids[1], ids[2], ids[3]];
    wait_for(
        &nodes[1].server().endpoint(),
        "the first node gone",
        |seen| {
            every_shard_on(seen, 3, &staying)
                && seen["members"].as_object().is_some_and(|members| {
                    members.len() == 3 && !members.contains_key(&ids[0].to_string())
                })
        },
    )
    .await;
    // The node that left serves nothing and refuses to start again, deleting nothing.
    assert!(nodes[0]
        .server()
        .client()
        .list_streams()
        .send()
        .await
        .is_err());
    assert_eq!(status(&nodes[0].server().endpoint()).await["left"], true);
    nodes[0].server.take().expect("running").kill();
    let refused = nodes[0].refused_start(&secret);
    assert!(refused.contains("left the cluster"), "{refused}");
    assert!(
        nodes[0].dir.join("meta").exists(),
        "its data directory is kept"
    );
    for i in [1, 3] {
        assert_reads_hold(
            &format!("node {i} after the leave"),
            &nodes[i],
            stream,
            &history,
        )
        .await;
    }

    // A node dies and is removed through another; the shards keep two replicas, then a
    // new node brings them back to three.
    nodes[2].server.take().expect("running").kill();
    let removed = cluster_command(vec![
        "remove".into(),
        ids[2].to_string(),
        "--endpoint".into(),
        nodes[1].server().endpoint(),
        "--cluster-secret-file".into(),
        secret.display().to_string(),
        "--wait-s".into(),
        "120".into(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&removed.stdout);
    assert!(
        removed.status.success() && stdout.contains("was removed"),
        "riffle cluster remove: {stdout} {}",
        String::from_utf8_lossy(&removed.stderr)
    );
    wait_for(
        &nodes[1].server().endpoint(),
        "shards on the two live nodes",
        |seen| every_shard_on(seen, 2, &[ids[1], ids[3]]),
    )
    .await;
    nodes.push(Node::new_started(
        root.path(),
        "d4",
        &secret,
        Some(&nodes[1].cluster_addr),
    ));
    let replacement = node_id(&nodes[4]).await;
    wait_for(
        &nodes[1].server().endpoint(),
        "the new node holding replicas",
        |seen| every_shard_on(seen, 3, &[ids[1], ids[3], replacement]),
    )
    .await;
    assert_reads_hold("the new node", &nodes[4], stream, &history).await;
    let (after, _) = put_through(&nodes[4].server().client(), stream, "c", 200).await;
    history.acked.extend(after.acked);
    history.uncertain.extend(after.uncertain);
    assert_reads_hold("node 3 at the end", &nodes[3], stream, &history).await;
    let refused = nodes[2].refused_start(&secret);
    assert!(refused.contains("removed from the cluster"), "{refused}");
}

/// A node's cluster status names every account's streams, so where the API wants
/// credentials it wants the cluster secret too: a bare GET is refused, `riffle cluster
/// status` with the cluster's secret file is answered, one with another cluster's secret is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_status_needs_the_secret_where_the_api_needs_credentials() {
    let root = tempfile::tempdir().expect("temp dir");
    let credentials = root.path().join("credentials");
    std::fs::write(
        &credentials,
        "AKIDSTATUSTEST000001  status-test-secret-key-0123456789  111122223333\n",
    )
    .expect("write the credentials file");
    std::fs::set_permissions(
        &credentials,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod the credentials file");
    let secret = root.path().join("cluster.secret");
    let dir = root.path().join("d0");
    let cluster_addr = format!("127.0.0.1:{}", free_port());
    let mut args = Node::args(&dir, &cluster_addr, &secret, None);
    args.extend([
        "--credentials".to_owned(),
        credentials.display().to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::with_args(&args);
    let endpoint = server.endpoint();

    let bare = bare_get(&format!("{endpoint}/cluster/status")).await;
    assert!(bare.starts_with("HTTP/1.1 403"), "{bare}");
    assert!(bare.contains("x-riffle-cluster-proof"), "{bare}");
    assert!(!bare.contains("voters"), "{bare}");

    let answered = cluster_command(vec![
        "status".into(),
        "--json".into(),
        "--endpoint".into(),
        endpoint.clone(),
        "--cluster-secret-file".into(),
        secret.display().to_string(),
    ])
    .await;
    assert!(
        answered.status.success(),
        "{}",
        String::from_utf8_lossy(&answered.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&answered.stdout).expect("JSON");
    assert_eq!(seen["voters"].as_array().map(Vec::len), Some(1), "{seen:#}");

    let other = root.path().join("other.secret");
    std::fs::write(&other, format!("{}\n", "ab".repeat(32))).expect("write another secret");
    std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod the other secret");
    let refused = cluster_command(vec![
        "status".into(),
        "--endpoint".into(),
        endpoint,
        "--cluster-secret-file".into(),
        other.display().to_string(),
    ])
    .await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("403") && stderr.contains("secret"),
        "{stderr}"
    );
}

/// A bare HTTP/1.1 GET, as a stranger on the network sends it: the raw answer.
async fn bare_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (authority, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}
