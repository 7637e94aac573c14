//! openraft's storage conformance suite (`openraft::testing::log::Suite`) against
//! [`LogStore`]: every test of the suite builds a fresh store in its own temporary directory.
//!
//! The suite also exercises a state machine, so this file carries the smallest one the
//! suite accepts: it remembers the last applied log id, the last membership, and how many
//! normal entries it applied, and its snapshot is those three facts. riffle's real state
//! machines (the catalogue, the shard tails) come with the riffle-core redesign.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::{Stream, StreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{
    EntryResponder, RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta,
};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::{EntryPayload, OptionalSend, StorageError};
use riffle_cluster::{
    frame_index, Applied, ClusterNode, Flusher, GroupCommit, LogId, LogStore, Response, RiffleRaft,
    StoredMembership, SyncNow,
};
use riffle_log::LogOptions;
use tempfile::TempDir;

/// What the test state machine knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Facts {
    applied: Option<LogId>,
    membership: StoredMembership,
    normal_entries: u64,
}

type TestSnapshot =
    Snapshot<openraft::impls::leader_id_adv::LeaderId<u64, u64>, u64, ClusterNode, Facts>;

#[derive(Debug, Default)]
struct Inner {
    facts: Facts,
    snapshot: Option<TestSnapshot>,
}

/// The state machine, and its snapshot builder (a handle on the same state).
#[derive(Debug, Clone, Default)]
struct TestStateMachine {
    inner: Arc<Mutex<Inner>>,
}

impl TestStateMachine {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RaftSnapshotBuilder<RiffleRaft> for TestStateMachine {
    type SnapshotData = Facts;

    async fn build_snapshot(&mut self) -> Result<TestSnapshot, io::Error> {
        let mut inner = self.lock();
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                last_log_id: inner.facts.applied,
                last_membership: inner.facts.membership.clone(),
            },
            snapshot: inner.facts.clone(),
        };
        inner.snapshot = Some(snapshot.clone());
        Ok(snapshot)
    }
}

impl RaftStateMachine<RiffleRaft> for TestStateMachine {
    type SnapshotData = Facts;
    type SnapshotBuilder = TestStateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let inner = self.lock();
        Ok((inner.facts.applied, inner.facts.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<RiffleRaft>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let log_id = entry.log_id();
            {
                let mut inner = self.lock();
                match &entry.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Normal(_) => inner.facts.normal_entries += 1,
                    EntryPayload::Membership(membership) => {
                        inner.facts.membership =
                            StoredMembership::new(Some(log_id), membership.clone());
                    }
                }
                inner.facts.applied = Some(log_id);
            }
            if let Some(responder) = responder {
                let frame_index = frame_index(log_id.index)
                    .ok_or_else(|| io::Error::other("Raft index beyond any log"))?;
                responder.send(Response::Appended(Applied { frame_index }));
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<openraft::impls::leader_id_adv::LeaderId<u64, u64>, u64, ClusterNode>,
        snapshot: Facts,
    ) -> Result<(), io::Error> {
        let mut inner = self.lock();
        inner.facts = snapshot.clone();
        inner.snapshot = Some(Snapshot {
            meta: meta.clone(),
            snapshot,
        });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<TestSnapshot>, io::Error> {
        Ok(self.lock().snapshot.clone())
    }
}

/// Builds a store over a fresh temporary directory with small segments, so the suite's
/// purges and truncations cross segment boundaries. With a group commit, its fsyncs run on
/// the group commit's threads (as on a node), else in `append` itself.
struct Builder {
    group_commit: Option<GroupCommit>,
}

impl StoreBuilder<RiffleRaft, LogStore, TestStateMachine, TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore, TestStateMachine), StorageError<RiffleRaft>> {
        let dir = tempfile::tempdir()
            .map_err(|error| StorageError::read(RiffleRaft::err_from_error(&error)))?;
        let options = LogOptions {
            segment_bytes_max: 256,
            index_interval_bytes: 64,
        };
        let flusher: Arc<dyn Flusher> = match &self.group_commit {
            Some(group_commit) => group_commit.lane(),
            None => Arc::new(SyncNow),
        };
        let store = LogStore::open(dir.path(), options, flusher)
            .map_err(|error| StorageError::read(RiffleRaft::err_from_error(&error)))?;
        Ok((dir, store, TestStateMachine::default()))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    RiffleRaft::run(async {
        Suite::test_all(Builder { group_commit: None })
            .await
            .unwrap();
    });
}

/// The same suite with a node's group commit: every test's store gets its own lane on one
/// pool of fsync threads, and the suite waits for each append's callback from them.
#[test]
fn openraft_storage_suite_passes_with_the_group_commit() {
    RiffleRaft::run(async {
        Suite::test_all(Builder {
            group_commit: Some(GroupCommit::new()),
        })
        .await
        .unwrap();
    });
}
