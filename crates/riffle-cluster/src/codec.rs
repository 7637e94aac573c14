//! How an openraft [`Entry`] becomes a riffle-log frame and back.
//!
//! | openraft payload                 | frame kind   | frame payload              |
//! |----------------------------------|--------------|----------------------------|
//! | `Normal(FramePayload::Records)`  | `Data`       | the payload's bytes        |
//! | `Normal(FramePayload::Seal)`     | `Seal`       | the payload's bytes        |
//! | `Blank`                          | `Blank`      | empty                      |
//! | `Membership(m)`                  | `Membership` | `m` as a [`MembershipDoc`] |
//!
//! Every frame's `term` and `leader` are the log id's leader term and node id, and its index
//! is [`frame_index`] of the Raft index. A normal entry's flags, record count and timestamps
//! go to the frame header; blank and membership frames carry zeros there.
//!
//! The membership is written as riffle's own JSON document rather than through openraft's
//! serde derives, so that the bytes on disk do not change when the pinned alpha of openraft
//! moves: a data directory must outlive the library version that wrote it.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use bytes::Bytes;
use openraft::entry::RaftEntry;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::EntryPayload;
use riffle_log::{EntryMeta, FrameKind};
use serde::{Deserialize, Serialize};

use crate::types::{
    frame_index, raft_index, ClusterNode, Entry, FramePayload, LogId, Membership, PayloadKind,
};

/// Version of [`MembershipDoc`] this crate writes and reads.
const MEMBERSHIP_FORMAT: u32 = 1;

/// A membership as stored in a `Membership` frame.
#[derive(Debug, Serialize, Deserialize)]
struct MembershipDoc {
    /// [`MEMBERSHIP_FORMAT`].
    format: u32,
    /// The voter sets: one in a uniform configuration, two during a joint change.
    configs: Vec<BTreeSet<u64>>,
    /// Every member, voters and learners, with its address.
    nodes: BTreeMap<u64, ClusterNode>,
}

/// The frame index, header fields and payload `entry` is stored as.
pub(crate) fn encode(entry: &Entry) -> io::Result<(u64, EntryMeta, Bytes)> {
    let index = frame_index(entry.log_id.index).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "Raft index u64::MAX is beyond any log",
        )
    })?;
    let mut meta = EntryMeta {
        kind: FrameKind::Blank,
        flags: 0,
        term: entry.log_id.leader_id.term,
        leader: entry.log_id.leader_id.node_id,
        record_count: 0,
        ts_first_ms: 0,
        ts_max_ms: 0,
    };
    let payload = match &entry.payload {
        EntryPayload::Blank => Bytes::new(),
        EntryPayload::Normal(data) => {
            meta.kind = match data.kind {
                PayloadKind::Records => FrameKind::Data,
                PayloadKind::Seal => FrameKind::Seal,
            };
            meta.flags = data.flags;
            meta.record_count = data.record_count;
            meta.ts_first_ms = data.ts_first_ms;
            meta.ts_max_ms = data.ts_max_ms;
            data.payload.clone()
        }
        EntryPayload::Membership(membership) => {
            meta.kind = FrameKind::Membership;
            encode_membership(membership)?
        }
    };
    Ok((index, meta, payload))
}

/// The entry a frame read back from the log holds. A frame that cannot be an entry of this
/// crate (a blank or membership frame with data fields set, a membership that does not
/// parse) is `InvalidData`: the checksum verified, so the writer was wrong, not the disk.
pub(crate) fn decode(frame: riffle_log::Entry) -> io::Result<Entry> {
    let meta = frame.meta;
    let log_id = LogId::new(
        LeaderId {
            term: meta.term,
            node_id: meta.leader,
        },
        raft_index(frame.index),
    );
    let header_is_bare =
        meta.flags == 0 && meta.record_count == 0 && meta.ts_first_ms == 0 && meta.ts_max_ms == 0;
    let payload = match meta.kind {
        FrameKind::Data | FrameKind::Seal => EntryPayload::Normal(FramePayload {
            kind: if meta.kind == FrameKind::Data {
                PayloadKind::Records
            } else {
                PayloadKind::Seal
            },
            flags: meta.flags,
            record_count: meta.record_count,
            ts_first_ms: meta.ts_first_ms,
            ts_max_ms: meta.ts_max_ms,
            payload: frame.payload,
        }),
        FrameKind::Blank if header_is_bare && frame.payload.is_empty() => EntryPayload::Blank,
        FrameKind::Membership if header_is_bare => {
            EntryPayload::Membership(decode_membership(&frame.payload, frame.index)?)
        }
        kind => {
            return Err(invalid_frame(
                frame.index,
                &format!("a {kind:?} frame with data fields or payload set"),
            ))
        }
    };
    Ok(Entry::new(log_id, payload))
}

fn encode_membership(membership: &Membership) -> io::Result<Bytes> {
    let doc = MembershipDoc {
        format: MEMBERSHIP_FORMAT,
        configs: membership.get_joint_config().clone(),
        nodes: membership
            .nodes()
            .map(|(id, node)| (*id, node.clone()))
            .collect(),
    };
    let bytes = serde_json::to_vec(&doc).map_err(io::Error::other)?;
    Ok(Bytes::from(bytes))
}

fn decode_membership(payload: &[u8], index: u64) -> io::Result<Membership> {
    let doc: MembershipDoc = serde_json::from_slice(payload)
        .map_err(|error| invalid_frame(index, &format!("membership does not parse: {error}")))?;
    if doc.format != MEMBERSHIP_FORMAT {
        return Err(invalid_frame(
            index,
            &format!(
                "membership format {} (this build reads {MEMBERSHIP_FORMAT})",
                doc.format
            ),
        ));
    }
    Membership::new(doc.configs, doc.nodes)
        .map_err(|error| invalid_frame(index, &format!("membership is not valid: {error}")))
}

fn invalid_frame(index: u64, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("frame {index} of the Raft log holds {what}"),
    )
}

#[cfg(test)]
mod tests {
    use openraft::EntryPayload;

    use super::*;

    fn log_id(term: u64, node_id: u64, index: u64) -> LogId {
        LogId::new(LeaderId { term, node_id }, index)
    }

    /// Encodes `entry` and decodes it the way a reader gets it back.
    fn round_trip(entry: &Entry) -> Entry {
        let (index, meta, payload) = encode(entry).unwrap();
        decode(riffle_log::Entry {
            index,
            meta,
            payload,
        })
        .unwrap()
    }

    fn membership() -> Membership {
        let nodes = BTreeMap::from([
            (
                1,
                ClusterNode {
                    addr: "10.0.0.1:7567".to_string(),
                },
            ),
            (
                2,
                ClusterNode {
                    addr: "10.0.0.2:7567".to_string(),
                },
            ),
            (
                3,
                ClusterNode {
                    addr: "10.0.0.3:7567".to_string(),
                },
            ),
            (
                9,
                ClusterNode {
                    addr: "10.0.0.9:7567".to_string(),
                },
            ),
        ]);
        // Joint: {1,2} -> {1,2,3}; 9 is a learner.
        Membership::new(
            vec![BTreeSet::from([1, 2]), BTreeSet::from([1, 2, 3])],
            nodes,
        )
        .unwrap()
    }

    #[test]
    fn every_payload_kind_maps_to_its_frame_and_back() {
        let records = Entry::new(
            log_id(3, 2, 0),
            EntryPayload::Normal(FramePayload {
                kind: PayloadKind::Records,
                flags: 1,
                record_count: 500,
                ts_first_ms: 1_700_000_000_000,
                ts_max_ms: 1_700_000_000_005,
                payload: Bytes::from_static(b"records"),
            }),
        );
        let (index, meta, payload) = encode(&records).unwrap();
        assert_eq!(index, 1, "Raft index 0 is frame 1");
        assert_eq!(meta.kind, FrameKind::Data);
        assert_eq!((meta.term, meta.leader), (3, 2));
        assert_eq!((meta.flags, meta.record_count), (1, 500));
        assert_eq!(&payload[..], b"records");
        assert_eq!(round_trip(&records), records);

        let seal = Entry::new(
            log_id(4, 1, 77),
            EntryPayload::Normal(FramePayload {
                kind: PayloadKind::Seal,
                flags: 0,
                record_count: 0,
                ts_first_ms: 5,
                ts_max_ms: 5,
                payload: Bytes::new(),
            }),
        );
        assert_eq!(encode(&seal).unwrap().1.kind, FrameKind::Seal);
        assert_eq!(round_trip(&seal), seal);

        let blank = Entry::new(log_id(5, 3, 78), EntryPayload::Blank);
        let (index, meta, payload) = encode(&blank).unwrap();
        assert_eq!((index, meta.kind, payload.len()), (79, FrameKind::Blank, 0));
        assert_eq!(round_trip(&blank), blank);

        let change = Entry::new(log_id(5, 3, 79), EntryPayload::Membership(membership()));
        assert_eq!(encode(&change).unwrap().1.kind, FrameKind::Membership);
        assert_eq!(round_trip(&change), change);
    }

    #[test]
    fn the_membership_document_is_riffles_own() {
        let (_, _, payload) = encode(&Entry::new(
            log_id(1, 1, 0),
            EntryPayload::Membership(membership()),
        ))
        .unwrap();
        let text = std::str::from_utf8(&payload).unwrap();
        assert_eq!(
            text,
            "{\"format\":1,\"configs\":[[1,2],[1,2,3]],\"nodes\":{\
             \"1\":{\"addr\":\"10.0.0.1:7567\"},\"2\":{\"addr\":\"10.0.0.2:7567\"},\
             \"3\":{\"addr\":\"10.0.0.3:7567\"},\"9\":{\"addr\":\"10.0.0.9:7567\"}}}"
        );
    }

    #[test]
    fn frames_no_entry_could_have_written_are_refused() {
        let frame = |kind, ts_max_ms, payload: &'static [u8]| riffle_log::Entry {
            index: 4,
            meta: EntryMeta {
                kind,
                flags: 0,
                term: 1,
                leader: 1,
                record_count: 0,
                ts_first_ms: 0,
                ts_max_ms,
            },
            payload: Bytes::from_static(payload),
        };
        let refused = |entry: riffle_log::Entry| {
            let error = decode(entry).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
            error.to_string()
        };
        assert!(refused(frame(FrameKind::Blank, 0, b"x")).contains("frame 4"));
        refused(frame(FrameKind::Blank, 9, b""));
        refused(frame(FrameKind::Membership, 9, b"{}"));
        assert!(refused(frame(FrameKind::Membership, 0, b"{not json")).contains("parse"));
        let future = br#"{"format":2,"configs":[[1]],"nodes":{"1":{"addr":""}}}"#;
        assert!(refused(frame(FrameKind::Membership, 0, future)).contains("format 2"));
        // A voter without a node entry is not a membership openraft would build.
        let orphan = br#"{"format":1,"configs":[[1,2]],"nodes":{"1":{"addr":""}}}"#;
        assert!(refused(frame(FrameKind::Membership, 0, orphan)).contains("not valid"));
    }
}
