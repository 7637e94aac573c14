//! The metadata group end to end, over an in-process network (`router`): catalogue commands
//! proposed through the leader apply identically on every node, a stale command is rejected
//! everywhere, the group survives its leader, and a node that restarts catches up from its
//! log or from a snapshot, versions included.
//!
//! Timeouts are short (heartbeats every 50 ms, elections after 150 to 300 ms), so each test
//! runs in a second or two; every wait is bounded and names what it waited for.

mod router;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{Config, Raft, ServerState};
use riffle_cluster::meta_snapshot::SNAPSHOT_FILE_NAME;
use riffle_cluster::{
    open_meta_group, propose, ClusterNode, LogId, MetaRaft, MetaView, ProposeError, SyncNow,
    META_DIR_NAME,
};
use riffle_core::catalogue::{Applied, CatalogueState, Command, Rejection};
use riffle_core::meta::{ClosedShard, ShardMeta, StreamMeta, StreamMode};
use riffle_log::LogOptions;
use router::Router;
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(10);
const ACCOUNT: &str = "000000000000";

fn config() -> Arc<Config> {
    let config = Config {
        cluster_name: "riffle-meta-test".to_string(),
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        ..Default::default()
    };
    Arc::new(config.validate().unwrap())
}

/// Small segments, so purges after a snapshot delete whole segments.
fn log_options() -> LogOptions {
    LogOptions {
        segment_bytes_max: 2048,
        index_interval_bytes: 512,
    }
}

fn shard(ordinal: u32, start: u128, end: u128, parent: Option<u32>) -> ShardMeta {
    ShardMeta {
        ordinal,
        starting_hash_key: start,
        ending_hash_key: end,
        parent,
        adjacent_parent: None,
        created_ms: 1_000,
        sequence_epoch_s: 1,
        closed: None,
        replicas: Vec::new(),
    }
}

fn stream(name: &str) -> StreamMeta {
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
        next_shard_ordinal: 2,
        shards: vec![
            shard(0, 0, u128::MAX / 2, None),
            shard(1, u128::MAX / 2 + 1, u128::MAX, None),
        ],
        consumers: Vec::new(),
        policy: None,
        warm_throughput_mibps: None,
        record_distribution: Default::default(),
        encryption: None,
        sealing_keys: Vec::new(),
    }
}

/// `name` with shard 0 split in two.
fn split(name: &str) -> StreamMeta {
    let mut meta = stream(name);
    meta.shards[0].closed = Some(ClosedShard {
        last_index: 9,
        closed_ms: 2_000,
    });
    meta.shards.push(shard(2, 0, u128::MAX / 4, Some(0)));
    meta.shards
        .push(shard(3, u128::MAX / 4 + 1, u128::MAX / 2, Some(0)));
    meta.next_shard_ordinal = 4;
    meta
}

/// `meta` with a different retention: a change that keeps the shards.
fn retention(mut meta: StreamMeta, hours: u32) -> StreamMeta {
    meta.retention_hours = hours;
    meta
}

fn create(name: &str) -> Command {
    Command::CreateStream { meta: stream(name) }
}

fn replace(meta: StreamMeta, if_version: u64) -> Command {
    Command::ReplaceStream { meta, if_version }
}

fn delete(name: &str, if_version: u64) -> Command {
    Command::DeleteStream {
        account: ACCOUNT.into(),
        name: name.into(),
        if_version,
    }
}

/// One node of a test cluster: its data directory and, while it runs, its handle.
struct TestNode {
    id: u64,
    data_dir: PathBuf,
    raft: MetaRaft,
    view: MetaView,
    /// What the state machine had applied when it was opened, before Raft ran.
    opened_at: Option<LogId>,
}

/// Opens node `id`'s metadata group from `data_dir` and makes it reachable.
async fn start(router: &Router, id: u64, data_dir: &Path) -> TestNode {
    let (store, machine) =
        open_meta_group(data_dir, log_options(), Arc::new(SyncNow)).expect("open the group");
    let view = machine.view();
    let opened_at = view.applied();
    let raft = Raft::new(id, config(), router.clone(), store, machine)
        .await
        .expect("start Raft");
    router.add(id, raft.clone());
    TestNode {
        id,
        data_dir: data_dir.to_path_buf(),
        raft,
        view,
        opened_at,
    }
}

/// Stops a node the way a crash looks to its peers: unreachable at once, its Raft gone.
async fn kill(router: &Router, node: TestNode) -> (u64, PathBuf) {
    router.remove(node.id);
    node.raft.shutdown().await.expect("shut down");
    (node.id, node.data_dir)
}

fn members(ids: &[u64]) -> BTreeMap<u64, ClusterNode> {
    ids.iter()
        .map(|id| {
            (
                *id,
                ClusterNode {
                    addr: format!("node-{id}"),
                },
            )
        })
        .collect()
}

/// Waits until `node` has applied at least Raft index `index`.
async fn applied_at_least(node: &TestNode, index: u64) {
    node.raft
        .wait(Some(WAIT))
        .applied_index_at_least(Some(index), format!("node {} applies {index}", node.id))
        .await
        .unwrap();
}

/// The index of the last entry `node`'s state machine applied (openraft's metrics may lag
/// behind it a little).
fn last_applied(node: &TestNode) -> u64 {
    node.view.applied().map_or(0, |log_id| log_id.index)
}

/// The newest index any of `nodes` applied: the one that answered the last proposal has.
fn newest(nodes: &[TestNode]) -> u64 {
    nodes.iter().map(last_applied).max().expect("some node")
}

/// Waits until one of `nodes` leads, other than `not`; its position in `nodes`.
async fn leader_among(nodes: &[TestNode], not: Option<u64>) -> usize {
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

/// Proposes `command` through the leader of `nodes` and returns the catalogue's verdict.
/// A leader that cannot take writes (newly elected and not yet acknowledged by a quorum, or
/// deposed) answers `ForwardToLeader` without appending anything, so the proposal is simply
/// made again to whoever leads then, as riffle's entry nodes will do.
async fn verdict(nodes: &[TestNode], command: &Command) -> Result<Applied, Rejection> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let leader = &nodes[leader_among(nodes, None).await];
        match propose(&leader.raft, command).await {
            Ok(verdict) => return verdict,
            Err(ProposeError::Raft(RaftError::APIError(ClientWriteError::ForwardToLeader(to))))
                if tokio::time::Instant::now() < deadline =>
            {
                tracing::debug!(?to, "retrying a proposal");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("no verdict for {command:?}: {error}"),
        }
    }
}

/// The state every node must reach: `commands` applied in order to an empty catalogue, with
/// the verdicts each got.
fn replay(commands: &[Command]) -> (CatalogueState, Vec<Result<Applied, Rejection>>) {
    let mut state = CatalogueState::new(String::new());
    let verdicts = commands
        .iter()
        .map(|command| state.apply(command))
        .collect();
    (state, verdicts)
}

/// Proposes each command through the leader of `nodes`, records it in `log`, and checks the verdict is
/// what a local replay of `log` gives.
async fn propose_all(nodes: &[TestNode], log: &mut Vec<Command>, commands: Vec<Command>) {
    for command in commands {
        let got = verdict(nodes, &command).await;
        log.push(command);
        let (_, expected) = replay(log);
        assert_eq!(Some(&got), expected.last(), "verdict of {:?}", log.last());
    }
}

/// Every node in `nodes` holds exactly the catalogue `log` gives: the same document and the
/// same version of every stream.
fn assert_state(nodes: &[&TestNode], log: &[Command]) {
    let (expected, _) = replay(log);
    for node in nodes {
        let state = node.view.catalogue();
        assert_eq!(
            state.to_document(),
            expected.to_document(),
            "document on node {}",
            node.id
        );
        assert_eq!(
            state.versions(),
            expected.versions(),
            "versions on node {}",
            node.id
        );
        assert_eq!(state, expected, "state on node {}", node.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_of_one_keeps_its_catalogue_across_restarts_and_snapshots() {
    let data = TempDir::new().unwrap();
    let router = Router::default();
    let node = start(&router, 1, data.path()).await;
    node.raft.initialize(members(&[1])).await.unwrap();
    node.raft
        .wait(Some(WAIT))
        .current_leader(1, "node 1 leads itself")
        .await
        .unwrap();

    let mut log = Vec::new();
    propose_all(
        std::slice::from_ref(&node),
        &mut log,
        vec![
            create("a"),
            create("b"),
            replace(split("a"), 1),
            // Decided on version 1 too: rejected, the state unchanged.
            replace(retention(stream("a"), 48), 1),
            delete("b", 1),
            create("a"),
        ],
    )
    .await;
    let (_, verdicts) = replay(&log);
    assert_eq!(verdicts[2], Ok(Applied::Stream { version: 2 }));
    assert_eq!(verdicts[3], Err(Rejection::Stale { current: 2 }));
    assert_eq!(verdicts[5], Err(Rejection::Exists));
    assert_state(&[&node], &log);

    // Restart from the log alone (no snapshot yet).
    let before = last_applied(&node);
    let (id, dir) = kill(&router, node).await;
    assert!(!dir.join(META_DIR_NAME).join(SNAPSHOT_FILE_NAME).exists());
    let node = start(&router, id, &dir).await;
    applied_at_least(&node, before).await;
    assert_state(&[&node], &log);
    // The version survived: a change decided on version 2 applies, one on 1 is stale.
    propose_all(
        std::slice::from_ref(&node),
        &mut log,
        vec![
            replace(retention(split("a"), 72), 2),
            replace(retention(split("a"), 96), 2),
        ],
    )
    .await;
    assert_eq!(
        replay(&log).1[6..],
        [
            Ok(Applied::Stream { version: 3 }),
            Err(Rejection::Stale { current: 3 })
        ]
    );

    // Snapshot, purge the log up to it, restart: the catalogue comes back from the
    // snapshot file, versions included.
    let at = node.view.applied().unwrap();
    node.raft.trigger().snapshot().await.unwrap();
    node.raft
        .wait(Some(WAIT))
        .snapshot(at, "snapshot built")
        .await
        .unwrap();
    node.raft.trigger().purge_log(at.index).await.unwrap();
    node.raft
        .wait(Some(WAIT))
        .purged(Some(at), "log purged")
        .await
        .unwrap();
    let (id, dir) = kill(&router, node).await;
    assert!(dir.join(META_DIR_NAME).join(SNAPSHOT_FILE_NAME).exists());
    let node = start(&router, id, &dir).await;
    assert_eq!(node.opened_at, Some(at), "restored from the snapshot");
    assert_state(&[&node], &log);
    node.raft
        .wait(Some(WAIT))
        .current_leader(1, "node 1 leads again")
        .await
        .unwrap();
    propose_all(
        std::slice::from_ref(&node),
        &mut log,
        vec![replace(retention(split("a"), 120), 3)],
    )
    .await;
    assert_eq!(
        replay(&log).1.last(),
        Some(&Ok(Applied::Stream { version: 4 }))
    );
    assert_state(&[&node], &log);
    let (_, dir) = kill(&router, node).await;

    // Without its snapshot the purged log cannot give the catalogue back: refused.
    let snapshot = dir.join(META_DIR_NAME).join(SNAPSHOT_FILE_NAME);
    std::fs::remove_file(&snapshot).unwrap();
    let error = open_meta_group(&dir, log_options(), Arc::new(SyncNow)).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    assert!(error.to_string().contains("no snapshot"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_agree_survive_their_leader_and_catch_up_by_log_and_snapshot() {
    let dirs: Vec<TempDir> = (0..3).map(|_| TempDir::new().unwrap()).collect();
    let router = Router::default();
    let mut nodes = Vec::new();
    for (id, dir) in (1..=3).zip(&dirs) {
        nodes.push(start(&router, id, dir.path()).await);
    }
    nodes[0].raft.initialize(members(&[1, 2, 3])).await.unwrap();
    let leader = leader_among(&nodes, None).await;

    // Commands through the leader apply alike everywhere; the stale one is rejected on all.
    let mut log = Vec::new();
    propose_all(
        &nodes,
        &mut log,
        vec![
            create("a"),
            create("b"),
            replace(split("a"), 1),
            replace(retention(stream("a"), 48), 1),
        ],
    )
    .await;
    assert_eq!(replay(&log).1[3], Err(Rejection::Stale { current: 2 }));
    let index = newest(&nodes);
    for node in &nodes {
        applied_at_least(node, index).await;
    }
    assert_state(&nodes.iter().collect::<Vec<_>>(), &log);

    // A follower does not take proposals; it names the leader.
    let follower = (leader + 1) % 3;
    match propose(&nodes[follower].raft, &create("c")).await {
        Err(ProposeError::Raft(RaftError::APIError(ClientWriteError::ForwardToLeader(to)))) => {
            assert_eq!(to.leader_id, Some(nodes[leader].id));
        }
        other => panic!("a follower accepted a proposal: {other:?}"),
    }

    // Kill the leader: another is elected and keeps every committed command.
    let old_leader = nodes.remove(leader);
    let old_id = old_leader.id;
    let (old_id_back, old_dir) = kill(&router, old_leader).await;
    assert_eq!(old_id, old_id_back);
    let leader = leader_among(&nodes, Some(old_id)).await;
    assert_state(&[&nodes[leader]], &log);
    assert_ne!(nodes[leader].id, old_id);
    propose_all(
        &nodes,
        &mut log,
        vec![replace(retention(split("a"), 72), 2), create("c")],
    )
    .await;
    assert_eq!(
        replay(&log).1[4..],
        [
            Ok(Applied::Stream { version: 3 }),
            Ok(Applied::Stream { version: 1 })
        ]
    );

    // The old leader restarts and catches up from the log.
    nodes.push(start(&router, old_id, &old_dir).await);
    let index = newest(&nodes);
    for node in &nodes {
        applied_at_least(node, index).await;
    }
    assert_state(&nodes.iter().collect::<Vec<_>>(), &log);

    // A follower is down while the leader moves on, snapshots and purges its log: on its
    // return it can only catch up by installing the snapshot.
    let leader_id = nodes[leader_among(&nodes, None).await].id;
    let follower = nodes.iter().position(|node| node.id != leader_id).unwrap();
    let (follower_id, follower_dir) = kill(&router, nodes.remove(follower)).await;
    assert!(
        !follower_dir
            .join(META_DIR_NAME)
            .join(SNAPSHOT_FILE_NAME)
            .exists(),
        "the follower never built a snapshot of its own"
    );
    propose_all(
        &nodes,
        &mut log,
        vec![
            delete("b", 1),
            replace(retention(split("a"), 96), 3),
            replace(retention(split("a"), 120), 3),
            create("d"),
        ],
    )
    .await;
    assert_eq!(
        replay(&log).1[6..],
        [
            Ok(Applied::Done),
            Ok(Applied::Stream { version: 4 }),
            Err(Rejection::Stale { current: 4 }),
            Ok(Applied::Stream { version: 1 })
        ]
    );
    // Both live nodes snapshot and purge, so whichever leads when the follower returns has
    // only the snapshot to offer it.
    let index = newest(&nodes);
    for node in &nodes {
        applied_at_least(node, index).await;
    }
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

    nodes.push(start(&router, follower_id, &follower_dir).await);
    let returned = nodes.len() - 1;
    applied_at_least(&nodes[returned], index).await;
    let installed = nodes[returned]
        .view
        .snapshot_meta()
        .and_then(|meta| meta.last_log_id)
        .expect("the follower caught up by installing a snapshot");
    assert!(installed.index >= index, "{installed:?} covers {index}");
    assert_state(&nodes.iter().collect::<Vec<_>>(), &log);

    // It goes on from there by log, and a restart finds the installed snapshot on its disk.
    propose_all(
        &nodes,
        &mut log,
        vec![replace(retention(split("a"), 144), 4)],
    )
    .await;
    assert_eq!(
        replay(&log).1.last(),
        Some(&Ok(Applied::Stream { version: 5 }))
    );
    let index = newest(&nodes);
    applied_at_least(&nodes[returned], index).await;
    let (id, dir) = kill(&router, nodes.remove(returned)).await;
    nodes.push(start(&router, id, &dir).await);
    let returned = nodes.len() - 1;
    assert_eq!(
        nodes[returned].opened_at,
        Some(installed),
        "from its snapshot file"
    );
    applied_at_least(&nodes[returned], index).await;
    assert_state(&nodes.iter().collect::<Vec<_>>(), &log);

    let members: BTreeSet<u64> = nodes.iter().map(|node| node.id).collect();
    assert_eq!(members, BTreeSet::from([1, 2, 3]));
    for node in nodes {
        node.raft.shutdown().await.unwrap();
    }
}
