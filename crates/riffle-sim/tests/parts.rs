//! The simulator's own parts, on their own: the no-lost-change checker and the wire frames.
//! (Here rather than as unit tests, so the library, built at opt-level 2, is compiled once.)

use std::collections::BTreeMap;

use openraft::impls::leader_id_adv::LeaderId;
use openraft::raft::VoteRequest;
use riffle_cluster::{LogId, Vote};
use riffle_core::catalogue::{CatalogueState, Command};
use riffle_sim::catalogue_check::{check_acknowledged, stream_meta, StreamHistory, ACCOUNT};
use riffle_sim::wire::{read_frame, vote_request, write_frame, Request, FRAME_MAX};

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
