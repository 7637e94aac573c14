//! Retention of a replicated shard, at the shard-group level over an in-process network
//! (`router`): every replica expires whole segments of records older than the cutoff and
//! keeps every record after it; a replica that was down across the purge catches up by
//! installing the snapshot at the purge point and then receives every record still within
//! retention; a purged replica restarts from its snapshot; a quiet shard whose records all
//! expired loses its whole log, and a slow one gets its active segment sealed so that it can
//! expire.
//!
//! Time is the records' arrival timestamps, which the test chooses, and the cutoff it hands
//! the retention pass: nothing waits for a clock.

mod router;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openraft::{Config, Raft, SnapshotPolicy};
use riffle_cluster::shard_group::{
    open_shard_storage, ShardRaft, ShardRetention, ShardStateMachine, SHARD_SNAPSHOT_FILE_NAME,
};
use riffle_cluster::{ClusterNode, FramePayload, PayloadKind, Response, SyncNow};
use riffle_core::shard_log::TailState;
use riffle_log::{FrameKind, LogOptions, LogReader};
use router::Router;
use tempfile::TempDir;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(10);

/// Records that arrived at `OLD_MS` expire at `CUTOFF_MS`; those at `NEW_MS` do not.
const OLD_MS: u64 = 1_000_000;
const CUTOFF_MS: u64 = 2_000_000;
const NEW_MS: u64 = 3_000_000;

fn config() -> Arc<Config> {
    let config = Config {
        cluster_name: "riffle-shard-retention-test".to_string(),
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        // As the cluster's shard groups (`shard_group::group_config`).
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: 0,
        ..Default::default()
    };
    Arc::new(config.validate().unwrap())
}

/// Small segments: a few hundred records fill many of them.
fn log_options() -> LogOptions {
    LogOptions {
        segment_bytes_max: 2048,
        index_interval_bytes: 512,
    }
}

struct TestNode {
    id: u64,
    dir: PathBuf,
    raft: ShardRaft,
    retention: ShardRetention,
    reader: LogReader,
    tail: Arc<watch::Sender<TailState>>,
}

async fn start(router: &Router<ShardStateMachine>, id: u64, dir: &Path) -> TestNode {
    let tail = Arc::new(
        watch::channel(TailState {
            visible_index: 0,
            ts_last_ms: 0,
            poisoned: false,
        })
        .0,
    );
    let (store, machine) =
        open_shard_storage(dir, log_options(), Arc::new(SyncNow), Arc::clone(&tail))
            .expect("open the shard");
    let reader = store.reader().log_reader();
    let raft = Raft::new(id, config(), router.clone(), store, machine.clone())
        .await
        .expect("start Raft");
    router.add(id, raft.clone());
    TestNode {
        id,
        dir: dir.to_path_buf(),
        retention: ShardRetention::new(raft.clone(), machine),
        raft,
        reader,
        tail,
    }
}

async fn kill(router: &Router<ShardStateMachine>, node: TestNode) -> (u64, PathBuf) {
    router.remove(node.id);
    node.raft.shutdown().await.expect("shut down");
    (node.id, node.dir)
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

async fn leader(nodes: &[&TestNode]) -> usize {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        for (position, node) in nodes.iter().enumerate() {
            if node.raft.current_leader().await == Some(node.id) {
                return position;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Appends record batch `n` (its payload names it) arriving at `ts_ms`; its frame index.
async fn put(leader: &TestNode, n: u32, ts_ms: u64) -> u64 {
    let payload = FramePayload {
        kind: PayloadKind::Records,
        flags: 0,
        record_count: 1,
        ts_first_ms: ts_ms,
        ts_max_ms: ts_ms,
        payload: Bytes::from(format!("record {n:05} ").repeat(8)),
    };
    match leader
        .raft
        .client_write(payload)
        .await
        .expect("append")
        .data
    {
        Response::Appended(applied) => applied.frame_index,
        other => panic!("unexpected answer {other:?}"),
    }
}

/// The numbers of the record batches `node` can read, in log order, from its first frame up
/// to its published tail (what a reader of the shard on that node sees).
fn readable(node: &TestNode) -> Vec<u32> {
    let upto = node.tail.borrow().visible_index;
    let mut found = Vec::new();
    let mut from = node.reader.first_index();
    while from <= upto {
        let entries = node
            .reader
            .read(from, upto, 1024, usize::MAX)
            .expect("read");
        let Some(last) = entries.last() else { break };
        from = last.index + 1;
        for entry in entries {
            if entry.meta.kind == FrameKind::Data && entry.meta.record_count > 0 {
                let text = String::from_utf8(entry.payload.to_vec()).expect("utf-8");
                let number = text["record ".len().."record 00000".len()]
                    .parse()
                    .expect("a record number");
                found.push(number);
            }
        }
    }
    found
}

async fn applied_at_least(node: &TestNode, index: u64) {
    node.raft
        .wait(Some(WAIT))
        .applied_index_at_least(Some(index), format!("node {} applies {index}", node.id))
        .await
        .unwrap();
}

/// Waits until `node`'s log is purged at least up to frame `frame`.
async fn purged_through(node: &TestNode, frame: u64) {
    node.raft
        .wait(Some(WAIT))
        .metrics(
            |metrics| {
                metrics
                    .purged
                    .is_some_and(|purged| purged.index + 1 >= frame)
            },
            format!("node {} purges up to frame {frame}", node.id),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_expire_old_segments_and_a_lagging_replica_catches_up_by_snapshot() {
    let temp = TempDir::new().unwrap();
    let router = Router::<ShardStateMachine>::default();
    let dir = |id: u64| temp.path().join(format!("node-{id}"));
    let n1 = start(&router, 1, &dir(1)).await;
    let n2 = start(&router, 2, &dir(2)).await;
    let n3 = start(&router, 3, &dir(3)).await;
    n1.raft.initialize(members(&[1, 2, 3])).await.unwrap();
    let first_leader = leader(&[&n1, &n2, &n3]).await;
    let nodes = [n1, n2, n3];
    let lead = &nodes[first_leader];
    put(lead, 0, OLD_MS).await;

    // Node 3 goes down (not the leader: pick it among the followers).
    let [n1, n2, n3] = nodes;
    let (mut up, down): (Vec<TestNode>, TestNode) = if first_leader == 2 {
        (vec![n2, n3], n1)
    } else {
        (vec![n1, n2], n3)
    };
    let (down_id, down_dir) = kill(&router, down).await;
    let lead = leader(&[&up[0], &up[1]]).await;

    // 300 old batches fill many segments; 100 new ones follow.
    let mut last = 0;
    for n in 1..300 {
        last = put(&up[lead], n, OLD_MS).await;
    }
    let last_old = last;
    for n in 300..400 {
        last = put(&up[lead], n, NEW_MS).await;
    }
    for node in &up {
        applied_at_least(node, last - 1).await;
        assert_eq!(readable(node), (0..400).collect::<Vec<_>>());
    }

    // Every replica that is up expires the old segments (a prefix of its log) and keeps
    // every new record.
    for node in &up {
        let first = node
            .retention
            .expire(CUTOFF_MS, 0)
            .await
            .expect("retention")
            .expect("something expired");
        assert!(
            first > 100 && first <= last_old,
            "node {} purged through frame {first}, expected well into the old records \
             (the last old one is at {last_old})",
            node.id
        );
        purged_through(node, first).await;
    }
    for node in &up {
        assert!(node.reader.first_index() > 100, "old segments are gone");
        let left = readable(node);
        // At most one segment's worth of old records (the one the new ones start in).
        assert!(left.len() <= 100 + 20, "node {} kept {left:?}", node.id);
        assert!(
            left.ends_with(&(300..400).collect::<Vec<_>>()),
            "every new record is kept"
        );
        assert!(node.dir.join(SHARD_SNAPSHOT_FILE_NAME).exists());
    }
    // A second pass with nothing more to expire does nothing.
    assert_eq!(up[0].retention.expire(CUTOFF_MS, 0).await.unwrap(), None);

    // The replica that was down needs entries the others purged: it installs the snapshot
    // at the purge point and then receives every entry after it.
    let back = start(&router, down_id, &down_dir).await;
    applied_at_least(&back, last - 1).await;
    assert!(back.dir.join(SHARD_SNAPSHOT_FILE_NAME).exists());
    assert!(
        back.reader.first_index() > 100,
        "it starts after the purge point"
    );
    let left = readable(&back);
    assert!(
        left.ends_with(&(300..400).collect::<Vec<_>>()),
        "every new record: {left:?}"
    );
    assert!(
        !left.contains(&0),
        "records before the purge point are not shipped"
    );

    // Writes go on, and a purged replica restarts from its snapshot and its log.
    let lead = leader(&[&up[0], &up[1], &back]).await;
    let more = match lead {
        0 | 1 => put(&up[lead], 400, NEW_MS).await,
        _ => put(&back, 400, NEW_MS).await,
    };
    for node in up.iter().chain([&back]) {
        applied_at_least(node, more - 1).await;
    }
    let follower = if lead == 0 { 1 } else { 0 };
    let restarted = up.remove(follower);
    let (id, restarted_dir) = kill(&router, restarted).await;
    let restarted = start(&router, id, &restarted_dir).await;
    applied_at_least(&restarted, more - 1).await;
    let left = readable(&restarted);
    assert!(
        left.ends_with(&(300..401).collect::<Vec<_>>()),
        "after a restart: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_shard_expires_whole_and_a_slow_one_is_rolled() {
    let temp = TempDir::new().unwrap();
    let router = Router::<ShardStateMachine>::default();
    let node = start(&router, 1, &temp.path().join("node-1")).await;
    node.raft.initialize(members(&[1])).await.unwrap();
    leader(&[&node]).await;

    // A few old records, all in the active segment.
    let mut last = 0;
    for n in 0..3 {
        last = put(&node, n, OLD_MS).await;
    }
    applied_at_least(&node, last - 1).await;
    assert_eq!(node.reader.segments().len(), 1);
    // Not yet old enough to roll: nothing happens.
    assert_eq!(node.retention.expire(0, OLD_MS).await.unwrap(), None);
    // Old enough to roll, not to expire: the store is asked to seal the segment, which it
    // does at its next append.
    assert_eq!(node.retention.expire(0, OLD_MS + 1).await.unwrap(), None);
    last = put(&node, 3, NEW_MS).await;
    applied_at_least(&node, last - 1).await;
    let segments = node.reader.segments();
    assert_eq!(
        segments.len(),
        2,
        "the old records' segment was sealed: {segments:?}"
    );
    // The sealed segment expires; the new record stays.
    let first = node.retention.expire(CUTOFF_MS, 0).await.unwrap();
    assert_eq!(first, Some(segments[0].last_index));
    purged_through(&node, segments[0].last_index).await;
    assert_eq!(readable(&node), vec![3]);

    // Then the new record expires too, with nothing after it: the whole log goes.
    let first = node.retention.expire(NEW_MS + 1, 0).await.unwrap();
    assert_eq!(first, Some(last));
    purged_through(&node, last).await;
    assert_eq!(
        node.reader.first_index(),
        last + 1,
        "the log continues after the purge"
    );
    assert_eq!(readable(&node), Vec::<u32>::new());

    // The shard takes appends at the next index, and survives a restart.
    let next = put(&node, 4, NEW_MS + 2).await;
    assert_eq!(next, last + 1);
    let dir = node.dir.clone();
    kill(&router, node).await;
    let node = start(&router, 1, &dir).await;
    leader(&[&node]).await;
    applied_at_least(&node, next - 1).await;
    assert_eq!(readable(&node), vec![4]);
}
