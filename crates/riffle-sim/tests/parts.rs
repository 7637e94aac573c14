//! The simulator's own parts, on their own: the no-lost-change checker, the wire frames,
//! the crash of the simulated disk and the failover gap's computation.
//! (Here rather than as unit tests, so the library, built at opt-level 2, is compiled once.)

use std::collections::{BTreeMap, BTreeSet};

use openraft::impls::leader_id_adv::LeaderId;
use openraft::raft::VoteRequest;
use riffle_cluster::{LogId, Vote};
use riffle_core::catalogue::{CatalogueState, Command};
use riffle_log::{EntryMeta, FrameKind, Log};
use riffle_sim::catalogue_check::{check_acknowledged, stream_meta, StreamHistory, ACCOUNT};
use riffle_sim::disk::Disk;
use riffle_sim::node::log_options;
use riffle_sim::wire::{read_frame, vote_request, write_frame, Request, FRAME_MAX};
use riffle_sim::Rng;

fn catalogue_with(generation: Option<u64>, version: u64) -> CatalogueState {
    let mut catalogue = CatalogueState::new(String::new());
    if let Some(generation) = generation {
        let meta = stream_meta("alpha", generation);
        catalogue
            .apply(&Command::CreateStream { meta })
            .expect("create");
        for _ in 1..version {
            let meta = stream_meta("alpha", generation);
            let current = catalogue.stream(ACCOUNT, "alpha").expect("there").version;
            catalogue
                .apply(&Command::ReplaceStream {
                    meta,
                    if_version: current,
                })
                .expect("replace");
        }
    }
    catalogue
}

fn history(possible: Vec<Option<u64>>, last_acked: Option<(Option<u64>, u64)>) -> StreamHistory {
    StreamHistory {
        believed: None,
        possible,
        last_acked,
    }
}

#[test]
fn a_lost_or_rewritten_acknowledged_change_is_reported() {
    let acked = BTreeMap::from([("alpha", history(vec![Some(5)], Some((Some(5), 3))))]);
    assert!(check_acknowledged(&acked, &catalogue_with(Some(5), 3)).is_ok());
    // An older generation, the stream gone, or the right generation at another version.
    assert!(check_acknowledged(&acked, &catalogue_with(Some(4), 2)).is_err());
    assert!(check_acknowledged(&acked, &catalogue_with(None, 0)).is_err());
    assert!(check_acknowledged(&acked, &catalogue_with(Some(5), 2)).is_err());
    // A later change whose answer never came may or may not be there.
    let uncertain = BTreeMap::from([("alpha", history(vec![Some(5), None], Some((Some(5), 3))))]);
    assert!(check_acknowledged(&uncertain, &catalogue_with(None, 0)).is_ok());
    // A stream nobody proposed must not appear; one created without an answer may.
    let untouched = BTreeMap::from([("alpha", StreamHistory::default())]);
    assert!(check_acknowledged(&untouched, &catalogue_with(Some(1), 1)).is_err());
    assert!(check_acknowledged(&untouched, &catalogue_with(None, 0)).is_ok());
    let created = BTreeMap::from([("alpha", history(vec![None, Some(1)], None))]);
    assert!(check_acknowledged(&created, &catalogue_with(None, 0)).is_ok());
    assert!(check_acknowledged(&created, &catalogue_with(Some(1), 1)).is_ok());
}

#[tokio::test]
async fn frames_round_trip_and_a_huge_length_is_refused() {
    let log_id = LogId::new(
        LeaderId {
            term: 2,
            node_id: 1,
        },
        9,
    );
    let mut buf = Vec::new();
    let request = vote_request(true, &VoteRequest::new(Vote::new(3, 2), Some(log_id)));
    write_frame(&mut buf, &request).await.unwrap();
    let back: Request = read_frame(&mut &buf[..]).await.unwrap().unwrap();
    match back {
        Request::Vote {
            pre: true,
            vote,
            last_log_id: Some(id),
            ..
        } => {
            assert_eq!(vote.get(), Vote::new(3, 2));
            assert_eq!(id.get(), log_id);
        }
        other => panic!("{other:?}"),
    }
    let huge = (FRAME_MAX + 1).to_be_bytes();
    assert!(read_frame::<Request>(&mut &huge[..]).await.is_err());
    assert!(read_frame::<Request>(&mut &[][..]).await.unwrap().is_none());
}

/// A log of `frames` frames of 300 bytes in the simulator's small segments (several sealed
/// ones, then the active one); returns the active segment's base index.
fn log_with_frames(dir: &std::path::Path, frames: u64) -> u64 {
    let (mut log, _) = Log::open(dir, log_options()).unwrap();
    for index in 1..=frames {
        let meta = EntryMeta {
            kind: FrameKind::Data,
            flags: 0,
            term: 1 + index / 10,
            leader: 1,
            record_count: 1,
            ts_first_ms: 0,
            ts_max_ms: 0,
        };
        log.append(&meta, &[index as u8; 300]).unwrap();
    }
    log.segments().last().unwrap().base_index
}

#[test]
fn a_crash_drops_the_unsynced_frames_and_recovery_cuts_the_torn_tail() {
    let mut torn_kinds = BTreeSet::new();
    for seed in 0..48u64 {
        let dir = tempfile::tempdir().unwrap();
        let active = log_with_frames(dir.path(), 40);
        assert!(active > 1, "the log has sealed segments");
        // Durable anywhere from the end of the sealed segments to the end of the log.
        let durable = active - 1 + seed % (40 - active + 2);
        let disk = Disk::default();
        disk.booted(durable);
        let loss = disk
            .lose_unsynced(dir.path(), log_options(), &mut Rng::new(seed))
            .unwrap();
        assert_eq!(loss.frames, 40 - durable, "seed {seed}");
        if let Some(torn) = &loss.torn {
            assert!(loss.frames > 0, "a torn write needs a lost one");
            torn_kinds.insert(torn.split(' ').nth(1).unwrap().to_string());
        }
        // What the node's recovery then finds: every durable frame, intact, and nothing else.
        let (log, _) = Log::open(dir.path(), log_options()).unwrap();
        assert_eq!(log.last_index(), durable, "seed {seed}: {loss}");
        let frames = log
            .reader()
            .read(1, durable, usize::MAX, usize::MAX)
            .unwrap();
        assert_eq!(frames.len() as u64, durable);
        for frame in frames {
            assert_eq!(frame.payload[..], [frame.index as u8; 300][..]);
        }
    }
    // Part of the next frame, random bytes, zeros.
    assert_eq!(torn_kinds.len(), 3, "{torn_kinds:?}");
}

#[test]
fn a_crash_that_would_drop_fsynced_frames_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let active = log_with_frames(dir.path(), 40);
    let disk = Disk::default();
    // Below the last sealed segment's end: a roll fsynced those frames.
    disk.booted(active - 2);
    let error = disk
        .lose_unsynced(dir.path(), log_options(), &mut Rng::new(1))
        .unwrap_err();
    assert!(error.contains("sealed segments"), "{error}");
    let (log, _) = Log::open(dir.path(), log_options()).unwrap();
    assert_eq!(log.last_index(), 40, "nothing was dropped");
}

mod records {
    use bytes::Bytes;
    use riffle_log::{Entry as Frame, EntryMeta, FrameKind};
    use riffle_sim::records::{payload, payload_id, Fate, Proposal, RecordHistory};

    fn frame(index: u64, term: u64, kind: FrameKind, payload: Vec<u8>) -> Frame {
        Frame {
            index,
            meta: EntryMeta {
                kind,
                flags: 0,
                term,
                leader: 1,
                record_count: 1,
                ts_first_ms: 0,
                ts_max_ms: 0,
            },
            payload: Bytes::from(payload),
        }
    }

    fn data(index: u64, term: u64, id: u64) -> Frame {
        frame(index, term, FrameKind::Data, payload(0, id, false))
    }

    fn history(ids: &[u64]) -> RecordHistory {
        let mut history = RecordHistory::default();
        for id in ids {
            history.proposals.insert(
                *id,
                Proposal {
                    shard: 0,
                    seal: false,
                    ts_ms: 1_000 * id,
                    fate: Fate::Pending,
                },
            );
        }
        history
    }

    #[test]
    fn payloads_name_their_proposal_and_nothing_else() {
        let bytes = payload(3, 77, false);
        assert_eq!(payload_id(&bytes), Some((3, 77, false)));
        assert_eq!(payload_id(&payload(0, 5, true)), Some((0, 5, true)));
        let mut altered = bytes.clone();
        *altered.last_mut().expect("a filler") ^= 1;
        assert_eq!(payload_id(&altered), None);
        assert_eq!(payload_id(&bytes[..bytes.len() - 1]), None);
        assert_eq!(payload_id(b""), None);
    }

    #[test]
    fn contradicting_frames_and_unknown_payloads_are_reported() {
        let mut seen = history(&[1, 2]);
        assert!(seen.observe(0, &data(3, 1, 1), "a").is_ok());
        assert!(seen.observe(0, &data(3, 1, 1), "b").is_ok());
        // Same index, same term, another payload: the replicas diverged.
        assert!(seen.observe(0, &data(3, 1, 2), "c").is_err());
        // Same payload, other term.
        assert!(seen.observe(0, &data(3, 2, 1), "d").is_err());
        // A payload at a second index.
        assert!(seen.observe(0, &data(4, 1, 1), "e").is_err());
        // Never proposed, or proposed to another shard.
        assert!(seen.observe(0, &data(5, 1, 9), "f").is_err());
        assert!(seen
            .observe(0, &frame(6, 1, FrameKind::Data, payload(1, 2, false)), "g")
            .is_err());
        assert!(seen
            .observe(0, &frame(7, 1, FrameKind::Data, b"junk".to_vec()), "h")
            .is_err());
        // Blank frames carry nothing to check but their agreement.
        assert!(seen
            .observe(0, &frame(8, 1, FrameKind::Blank, Vec::new()), "i")
            .is_ok());
    }

    #[test]
    fn an_answer_must_match_where_the_append_was_read() {
        let mut seen = history(&[1, 2]);
        seen.observe(0, &data(3, 1, 1), "read").expect("fine");
        assert!(seen.answered(1, Fate::Acked(4)).is_err());
        let mut seen = history(&[1, 2]);
        seen.answered(2, Fate::Acked(5)).expect("fine");
        assert!(seen.observe(0, &data(6, 1, 2), "read").is_err());
    }

    #[test]
    fn nothing_after_the_seal_is_appended() {
        let mut seen = history(&[1, 2]);
        seen.proposals.insert(
            3,
            Proposal {
                shard: 0,
                seal: true,
                ts_ms: 0,
                fate: Fate::Pending,
            },
        );
        seen.answered(1, Fate::Acked(2)).expect("before the seal");
        seen.observe(
            0,
            &frame(3, 1, FrameKind::Seal, payload(0, 3, true)),
            "read",
        )
        .expect("the seal");
        assert!(seen.answered(2, Fate::Acked(4)).is_err());
    }

    #[test]
    fn reads_move_forward_and_stay_below_the_applied_frame() {
        let mut seen = history(&[1, 2, 3]);
        seen.read(0, 1, 4, &[data(2, 1, 1), data(3, 1, 2)])
            .expect("fine");
        // An index the reader saw already, one beyond the replica's applied frame (a failed
        // read leaves the reader where it was), then the next one.
        assert!(seen.read(0, 2, 4, &[data(3, 1, 2)]).is_err());
        assert!(seen.read(0, 2, 4, &[data(5, 1, 3)]).is_err());
        assert!(seen.read(0, 2, 4, &[data(4, 1, 3)]).is_ok());
    }

    #[test]
    fn an_acknowledged_append_missing_from_a_replica_is_reported() {
        let mut seen = history(&[1, 2]);
        seen.answered(1, Fate::Acked(2)).expect("fine");
        seen.answered(2, Fate::Acked(3)).expect("fine");
        let full = vec![data(2, 1, 1), data(3, 1, 2)];
        assert!(seen
            .check_shard(0, &[(1, 1, full.clone()), (2, 1, full.clone())])
            .is_ok());
        // Missing at its index on one replica.
        let short = vec![data(2, 1, 1)];
        assert!(seen
            .check_shard(0, &[(1, 1, full.clone()), (2, 1, short)])
            .is_err());
        // Gone from a replica whose log starts later: only if retention expired it.
        let purged = vec![data(3, 1, 2)];
        assert!(seen
            .check_shard(0, &[(1, 1, full.clone()), (2, 3, purged.clone())])
            .is_err());
        seen.cutoffs.insert(0, 1_500);
        assert!(seen.check_shard(0, &[(1, 1, full), (2, 3, purged)]).is_ok());
    }
}

mod failover_gaps {
    use std::time::Duration;

    use riffle_sim::gaps::{failover_gaps, quantile, Attempt, FaultKind, LeaderFault};

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn attempt(id: u64, shard: u32, sent: u64, answered: u64, verdict: bool) -> Attempt {
        Attempt {
            id,
            shard,
            sent: ms(sent),
            answered: ms(answered),
            verdict,
        }
    }

    fn fault(at: u64, kind: FaultKind, shard: u32) -> LeaderFault {
        LeaderFault {
            at: ms(at),
            kind,
            shard,
            node: 1,
        }
    }

    #[test]
    fn the_gap_runs_from_the_fault_to_the_first_verdict_sent_after_it() {
        let attempts = [
            // Before the crash at 1000: acknowledged, one of them answered after it (sent
            // before, so it does not end the gap).
            attempt(1, 0, 900, 950, true),
            attempt(2, 0, 990, 1_010, true),
            // After: no answer (3 s), forwarded, then acknowledged at 4700 and 4800.
            attempt(3, 0, 1_020, 4_020, false),
            attempt(4, 0, 4_600, 4_650, false),
            attempt(4, 0, 4_650, 4_800, true),
            attempt(5, 0, 4_660, 4_700, true),
            // Another shard answers at once: not this shard's recovery.
            attempt(6, 1, 1_030, 1_040, true),
            // Shard 1 after its isolation at 5000: sent, never answered with a verdict.
            attempt(7, 1, 5_100, 8_100, false),
        ];
        let faults = [
            fault(1_000, FaultKind::Crash, 0),
            fault(2_000, FaultKind::Isolation, 0),
            fault(5_000, FaultKind::Isolation, 1),
            // Nothing proposed to shard 0 after 6000: dropped, not a gap.
            fault(6_000, FaultKind::Crash, 0),
        ];
        let failover = failover_gaps(&faults, &attempts);
        let gaps: Vec<(FaultKind, Duration)> = failover
            .samples
            .iter()
            .map(|sample| (sample.fault.kind, sample.gap))
            .collect();
        assert_eq!(
            gaps,
            [
                (FaultKind::Crash, ms(3_700)),
                (FaultKind::Isolation, ms(2_700))
            ]
        );
        assert_eq!(failover.idle, [faults[3]]);
        assert_eq!(failover.unanswered, [faults[2]]);
        // Proposals to shard 0 started at 900, 990, 1020, 4600, 4660; to shard 1 at 1030,
        // 5100.
        let mut spacing = failover.spacing.clone();
        spacing.sort();
        assert_eq!(spacing, [ms(30), ms(60), ms(90), ms(3_580), ms(4_070)]);
        let values = [ms(1), ms(2), ms(3), ms(4)];
        assert_eq!(quantile(&values, 0.5), Some(ms(2)));
        assert_eq!(quantile(&values, 0.99), Some(ms(4)));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
