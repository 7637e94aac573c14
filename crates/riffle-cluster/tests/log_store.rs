//! [`LogStore`] across restarts and damage: what openraft's suite does not cover, since it
//! never reopens a store. Each test writes through the `RaftLogStorage` API, drops the store
//! (as a crash after the last fsync would), reopens the directory, and compares everything
//! openraft reads at startup: the log state, the entries, the vote and the committed id.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::type_config::TypeConfigExt;
use openraft::{EntryPayload, RaftLogReader};
use riffle_cluster::vote_file::VOTE_FILE_NAME;
use riffle_cluster::{
    ClusterNode, Entry, Flusher, FramePayload, LogId, LogStore, Membership, PayloadKind,
    PendingFlush, RiffleRaft, SyncNow, Vote,
};
use riffle_log::faults::WriteFault;
use riffle_log::{FrameKind, LogOptions};

fn options() -> LogOptions {
    // Small segments, so a few dozen entries span several and purges delete whole ones.
    LogOptions {
        segment_bytes_max: 512,
        index_interval_bytes: 64,
    }
}

fn open(dir: &Path) -> LogStore {
    LogStore::open(dir, options(), Arc::new(SyncNow)).unwrap()
}

fn log_id(term: u64, node_id: u64, index: u64) -> LogId {
    LogId::new(LeaderId { term, node_id }, index)
}

fn vote(term: u64, node_id: u64, committed: bool) -> Vote {
    Vote {
        leader_id: LeaderId { term, node_id },
        committed,
    }
}

fn records(term: u64, index: u64) -> Entry {
    Entry {
        log_id: log_id(term, 2, index),
        payload: EntryPayload::Normal(FramePayload {
            kind: PayloadKind::Records,
            flags: (index % 2) as u16,
            record_count: (index % 500 + 1) as u16,
            ts_first_ms: 1_700_000_000_000 + index,
            ts_max_ms: 1_700_000_000_000 + index + 3,
            payload: Bytes::from(format!("records of entry {index}").into_bytes()),
        }),
    }
}

fn membership(term: u64, index: u64) -> Entry {
    let nodes = BTreeMap::from([
        (
            1,
            ClusterNode {
                addr: "127.0.0.1:7567".to_string(),
            },
        ),
        (
            2,
            ClusterNode {
                addr: "127.0.0.1:7568".to_string(),
            },
        ),
        (
            3,
            ClusterNode {
                addr: "127.0.0.1:7569".to_string(),
            },
        ),
    ]);
    let membership = Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes).unwrap();
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Membership(membership),
    }
}

/// A log as openraft writes one: the first membership at index 0 in term 0, a blank from
/// each new leader, records, a membership change and a seal.
fn history(last_index: u64) -> Vec<Entry> {
    (0..=last_index)
        .map(|index| match index {
            0 => membership(0, 0),
            1 => Entry {
                log_id: log_id(1, 1, 1),
                payload: EntryPayload::Blank,
            },
            10 => membership(2, 10),
            index if index == last_index => Entry {
                log_id: log_id(3, 2, index),
                payload: EntryPayload::Normal(FramePayload {
                    kind: PayloadKind::Seal,
                    flags: 0,
                    record_count: 0,
                    ts_first_ms: 9,
                    ts_max_ms: 9,
                    payload: Bytes::new(),
                }),
            },
            index => records(if index < 10 { 1 } else { 3 }, index),
        })
        .collect()
}

/// Appends through openraft's API and waits for the flush callback.
async fn append(store: &mut LogStore, entries: Vec<Entry>) -> io::Result<()> {
    let (tx, rx) = RiffleRaft::oneshot();
    store.append(entries, IOFlushed::signal(tx)).await?;
    rx.await.map_err(io::Error::other)?
}

/// Appends one entry per call, as a follower fed entry by entry does; riffle-log rolls a
/// segment only between appends, so this spreads the entries over several segments.
async fn append_each(store: &mut LogStore, entries: Vec<Entry>) {
    for entry in entries {
        append(store, vec![entry]).await.unwrap();
    }
}

async fn read_all(store: &mut LogStore) -> Vec<Entry> {
    store
        .get_log_reader()
        .await
        .try_get_log_entries(..)
        .await
        .unwrap()
}

/// Everything openraft reads from a store at startup.
async fn startup_view(
    store: &mut LogStore,
) -> (
    LogState<RiffleRaft>,
    Vec<Entry>,
    Option<Vote>,
    Option<LogId>,
) {
    let state = store.get_log_state().await.unwrap();
    let entries = read_all(store).await;
    let vote = store.get_log_reader().await.read_vote().await.unwrap();
    let committed = store.read_committed().await.unwrap();
    (state, entries, vote, committed)
}

fn run<F: std::future::Future<Output = ()>>(test: F) {
    RiffleRaft::run(test);
}

#[test]
fn entries_survive_a_reopen_identical_and_at_their_frame_index() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.save_vote(&vote(3, 2, true)).await.unwrap();
        let written = history(40);
        append(&mut store, written[..1].to_vec()).await.unwrap();
        append_each(&mut store, written[1..25].to_vec()).await;
        append(&mut store, written[25..].to_vec()).await.unwrap();
        assert_eq!(read_all(&mut store).await, written);
        assert!(
            store.log().segments().len() > 3,
            "the test should span segments"
        );
        let before = startup_view(&mut store).await;
        drop(store);

        let mut store = open(dir.path());
        assert_eq!(startup_view(&mut store).await, before);
        assert_eq!(read_all(&mut store).await, written);
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(3, 2, 40)));
        assert_eq!(state.last_purged_log_id, None);

        // On disk, Raft index i is frame i + 1 with the log id's term and leader.
        let frames = store.log().reader().read(1, 100, 100, usize::MAX).unwrap();
        assert_eq!(frames.len(), 41);
        for (frame, entry) in frames.iter().zip(&written) {
            assert_eq!(frame.index, entry.log_id.index + 1);
            assert_eq!(frame.meta.term, entry.log_id.leader_id.term);
            assert_eq!(frame.meta.leader, entry.log_id.leader_id.node_id);
        }
        let kinds: Vec<FrameKind> = frames.iter().map(|frame| frame.meta.kind).collect();
        assert_eq!(kinds[0], FrameKind::Membership);
        assert_eq!(kinds[1], FrameKind::Blank);
        assert_eq!(kinds[2], FrameKind::Data);
        assert_eq!(kinds[10], FrameKind::Membership);
        assert_eq!(kinds[40], FrameKind::Seal);

        // Appends continue where the reopened log ends.
        append(&mut store, vec![records(3, 41)]).await.unwrap();
        assert_eq!(read_all(&mut store).await.len(), 42);
    });
}

#[test]
fn truncation_and_purge_survive_a_reopen() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.save_vote(&vote(3, 2, true)).await.unwrap();
        let written = history(40);
        append_each(&mut store, written.clone()).await;

        // A truncation naming an entry the log does not hold cuts nothing.
        let error = store
            .truncate_after(Some(log_id(2, 2, 30)))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        assert_eq!(read_all(&mut store).await, written);

        // A new leader overwrote the tail: truncate, append its entries.
        store.truncate_after(Some(log_id(3, 2, 30))).await.unwrap();
        let rewritten: Vec<Entry> = (31..=35).map(|index| records(4, index)).collect();
        store.save_vote(&vote(4, 3, true)).await.unwrap();
        append(&mut store, rewritten.clone()).await.unwrap();
        // A snapshot covers up to 17: purge.
        store.purge(log_id(3, 2, 17)).await.unwrap();
        store.save_committed(Some(log_id(4, 2, 33))).await.unwrap();
        store.persist_committed().unwrap();

        let mut expected: Vec<Entry> = written[18..=30].to_vec();
        expected.extend(rewritten);
        assert_eq!(read_all(&mut store).await, expected);
        let before = startup_view(&mut store).await;
        assert_eq!(
            before.0,
            LogState {
                last_purged_log_id: Some(log_id(3, 2, 17)),
                last_log_id: Some(log_id(4, 2, 35)),
            }
        );
        // Purging deletes whole segments: the first one kept starts at or before 18.
        let first_frame = store.log().first_index();
        assert!(first_frame > 1 && first_frame <= 19, "{first_frame}");
        drop(store);

        let mut store = open(dir.path());
        assert_eq!(startup_view(&mut store).await, before);
        // Entries at or below the purged id are never served, even if their segment stays.
        let reader_view = store
            .get_log_reader()
            .await
            .try_get_log_entries(0..20)
            .await
            .unwrap();
        assert_eq!(reader_view, written[18..20].to_vec());
    });
}

#[test]
fn a_purge_past_the_end_continues_after_it_across_a_reopen() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.save_vote(&vote(3, 2, true)).await.unwrap();
        append(&mut store, history(12)).await.unwrap();
        // A follower installed a snapshot up to 100, far beyond its log.
        store.purge(log_id(3, 1, 100)).await.unwrap();
        let expected_state = LogState {
            last_purged_log_id: Some(log_id(3, 1, 100)),
            last_log_id: Some(log_id(3, 1, 100)),
        };
        assert_eq!(store.get_log_state().await.unwrap(), expected_state);
        assert!(read_all(&mut store).await.is_empty());
        assert_eq!(store.log().next_index(), 102);
        drop(store);

        let mut store = open(dir.path());
        assert_eq!(store.get_log_state().await.unwrap(), expected_state);
        // Anything but the entry right after the purged one would leave a hole.
        let error = append(&mut store, vec![records(3, 102)]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        append(&mut store, vec![records(3, 101), records(3, 102)])
            .await
            .unwrap();
        assert_eq!(
            read_all(&mut store).await,
            vec![records(3, 101), records(3, 102)]
        );
    });
}

#[test]
fn a_purge_a_crash_interrupted_is_finished_by_the_next_open() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.save_vote(&vote(3, 2, true)).await.unwrap();
        append_each(&mut store, history(40)).await;
        drop(store);
        // The purged id reached the vote file, then the process died before any segment
        // was deleted (purge writes the vote file first for exactly this case).
        let purged_beyond = {
            let mut store = open(dir.path());
            let saved = dir.path().join("segments-before");
            fs::create_dir(&saved).unwrap();
            for entry in fs::read_dir(dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path
                    .extension()
                    .is_some_and(|ext| ext == "log" || ext == "idx")
                {
                    fs::copy(&path, saved.join(path.file_name().unwrap())).unwrap();
                }
            }
            store.purge(log_id(3, 1, 60)).await.unwrap();
            drop(store);
            for entry in fs::read_dir(dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path
                    .extension()
                    .is_some_and(|ext| ext == "log" || ext == "idx")
                {
                    fs::remove_file(path).unwrap();
                }
            }
            for entry in fs::read_dir(&saved).unwrap() {
                let path = entry.unwrap().path();
                fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
            }
            fs::remove_dir_all(&saved).unwrap();
            log_id(3, 1, 60)
        };
        let mut store = open(dir.path());
        assert_eq!(store.log().first_index(), 62, "the old segments are gone");
        assert_eq!(
            store.get_log_state().await.unwrap(),
            LogState {
                last_purged_log_id: Some(purged_beyond),
                last_log_id: Some(purged_beyond),
            }
        );
        assert!(read_all(&mut store).await.is_empty());
        append(&mut store, vec![records(3, 61)]).await.unwrap();
    });
}

#[test]
fn a_torn_vote_file_stops_the_open() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.save_vote(&vote(5, 1, false)).await.unwrap();
        append(&mut store, history(3)).await.unwrap();
        drop(store);
        let path = dir.path().join(VOTE_FILE_NAME);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let error = LogStore::open(dir.path(), options(), Arc::new(SyncNow)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("vote file"), "{error}");
        // Restoring the file restores the store.
        fs::write(&path, &bytes).unwrap();
        let mut store = open(dir.path());
        assert_eq!(
            store.get_log_reader().await.read_vote().await.unwrap(),
            Some(vote(5, 1, false))
        );
    });
}

#[test]
fn a_log_newer_than_its_vote_is_refused() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.save_vote(&vote(3, 2, true)).await.unwrap();
        append(&mut store, history(12)).await.unwrap();
        drop(store);
        // The vote file vanished (an operator cleaned "stray" files, a restore forgot it).
        fs::remove_file(dir.path().join(VOTE_FILE_NAME)).unwrap();
        let error = LogStore::open(dir.path(), options(), Arc::new(SyncNow)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        let text = error.to_string();
        assert!(
            text.contains("term 3") && text.contains("no vote"),
            "{text}"
        );
    });
}

#[test]
fn committed_reaches_the_file_lazily_and_never_beyond_the_log() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.save_vote(&vote(3, 2, true)).await.unwrap();
        append(&mut store, history(20)).await.unwrap();
        store.save_committed(Some(log_id(3, 2, 15))).await.unwrap();
        assert_eq!(
            store.read_committed().await.unwrap(),
            Some(log_id(3, 2, 15))
        );
        drop(store);
        // save_committed alone wrote nothing: a restart finds the older value (none).
        let mut store = open(dir.path());
        assert_eq!(store.read_committed().await.unwrap(), None);

        // It rides along with the next vote, and persist_committed writes it on demand.
        store.save_committed(Some(log_id(3, 2, 16))).await.unwrap();
        store.save_vote(&vote(3, 2, true)).await.unwrap();
        drop(store);
        let mut store = open(dir.path());
        assert_eq!(
            store.read_committed().await.unwrap(),
            Some(log_id(3, 2, 16))
        );
        store.save_committed(Some(log_id(3, 2, 20))).await.unwrap();
        store.persist_committed().unwrap();
        // The tail it points at did not survive (a torn tail is cut at recovery): the id is
        // forgotten rather than sending openraft to apply entries that are gone.
        store.truncate_after(Some(log_id(3, 2, 12))).await.unwrap();
        drop(store);
        let mut store = open(dir.path());
        assert_eq!(store.read_committed().await.unwrap(), None);
        assert_eq!(
            store.get_log_state().await.unwrap().last_log_id,
            Some(log_id(3, 2, 12))
        );
    });
}

#[test]
fn appends_must_continue_the_log() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.save_vote(&vote(3, 2, true)).await.unwrap();
        // A store that never held an entry may start anywhere.
        append(&mut store, vec![records(1, 7), records(1, 8)])
            .await
            .unwrap();
        assert_eq!(store.log().first_index(), 8);
        for bad in [
            vec![records(1, 10)],
            vec![records(1, 8)],
            vec![records(1, 9), records(1, 11)],
        ] {
            let error = append(&mut store, bad).await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");
        }
        // Terms never go backwards along a log.
        let error = append(&mut store, vec![records(0, 9)]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}");
        assert_eq!(
            read_all(&mut store).await,
            vec![records(1, 7), records(1, 8)]
        );
        // An empty append completes at once.
        append(&mut store, Vec::new()).await.unwrap();
        // Truncating everything of a log that started at 7 leaves an empty log.
        store.truncate_after(None).await.unwrap();
        assert_eq!(store.get_log_state().await.unwrap().last_log_id, None);
        append(&mut store, history(2)).await.unwrap();
        assert_eq!(read_all(&mut store).await, history(2));
    });
}

/// A flusher that keeps pending flushes until the test runs them, as a node-wide group
/// commit thread would.
#[derive(Clone, Default)]
struct Deferred {
    pending: Arc<Mutex<Vec<PendingFlush>>>,
}

impl Flusher for Deferred {
    fn submit(&self, pending: PendingFlush) {
        self.pending.lock().unwrap().push(pending);
    }
}

#[test]
fn appends_are_readable_at_once_and_acknowledged_only_after_the_flush() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let deferred = Deferred::default();
        let mut store = LogStore::open(dir.path(), options(), Arc::new(deferred.clone())).unwrap();
        let entries = history(29);
        let mut acknowledgements = Vec::new();
        for chunk in entries.chunks(10) {
            let (tx, rx) = RiffleRaft::oneshot();
            store
                .append(chunk.to_vec(), IOFlushed::signal(tx))
                .await
                .unwrap();
            acknowledgements.push(rx);
        }
        // Readable before any fsync, as openraft requires.
        assert_eq!(read_all(&mut store).await, entries);
        let pending: Vec<PendingFlush> = std::mem::take(&mut *deferred.pending.lock().unwrap());
        assert_eq!(pending.len(), 3);
        assert_eq!(
            pending
                .iter()
                .map(PendingFlush::last_raft_index)
                .collect::<Vec<_>>(),
            vec![9, 19, 29]
        );
        // One fsync of the newest handle covers all three appends (group commit).
        let newest = pending.last().unwrap().sync_handle().clone();
        newest.sync().unwrap();
        for flush in pending {
            flush.complete(Ok(()));
        }
        for rx in acknowledgements {
            rx.await.unwrap().unwrap();
        }
        // A failed fsync reaches openraft as an error.
        let (tx, rx) = RiffleRaft::oneshot();
        store
            .append(vec![records(3, 30)], IOFlushed::signal(tx))
            .await
            .unwrap();
        let flush = deferred.pending.lock().unwrap().pop().unwrap();
        flush.complete(Err(riffle_log::LogError::Poisoned));
        assert!(rx.await.unwrap().is_err());
    });
}

/// A full disk is a wait, not an error: openraft stops a group for good on any storage
/// error, so an append that fails with ENOSPC (before a byte, or torn half-way) is made again
/// once there is room, and the entries land once, where they belong. Found by the chaos run
/// (riffle-server/tests/cluster/chaos.rs): one second of a full disk left a node's replicas
/// dead until it restarted. Other write errors still fail the append.
#[test]
fn a_full_disk_delays_appends_instead_of_failing_them() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        store.save_vote(&vote(3, 2, true)).await.unwrap();
        let written = history(30);
        append(&mut store, written[..10].to_vec()).await.unwrap();
        store.log().faults().fail_next_write(WriteFault::NoSpace);
        append(&mut store, written[10..20].to_vec()).await.unwrap();
        store
            .log()
            .faults()
            .fail_next_write(WriteFault::TornNoSpace);
        append(&mut store, written[20..].to_vec()).await.unwrap();
        assert_eq!(read_all(&mut store).await, written);
        drop(store);
        let mut store = open(dir.path());
        assert_eq!(read_all(&mut store).await, written);

        store.log().faults().fail_next_write(WriteFault::TornIo);
        let failed = append(&mut store, vec![records(3, 31)]).await;
        assert!(
            failed.is_err(),
            "an I/O error is not waited out: {failed:?}"
        );
        assert_eq!(read_all(&mut store).await, written, "nothing of it stays");
    });
}
