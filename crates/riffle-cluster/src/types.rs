//! The type configuration riffle runs openraft with, and the one place where a Raft index
//! becomes a frame index.

use std::fmt;

use bytes::Bytes;
use openraft::type_config::alias::{EntryOf, LogIdOf, StoredMembershipOf, VoteOf};
use riffle_core::catalogue::{Applied as CatalogueApplied, Rejection};
use serde::{Deserialize, Serialize};

/// A riffle node as Raft knows it: where its peers reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNode {
    /// `host:port` of the node's node-to-node listener (`--cluster-listen`). Empty only in
    /// memberships built from bare node ids (openraft's test suite does that).
    pub addr: String,
}

/// What a [`FramePayload`] asks the shard to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// A batch of records (stored as a `FrameKind::Data` frame).
    Records,
    /// The shard is sealed by a reshard; nothing follows (a `FrameKind::Seal` frame).
    Seal,
}

/// The application data of a Raft entry: exactly what one riffle frame carries besides the
/// Raft fields (index, term, leader) that openraft owns.
///
/// The payload is opaque here, as it is to riffle-log: for a shard it is the record batch
/// riffle-core encodes (possibly sealed), for the metadata group a serialized catalogue
/// command. `record_count` and the timestamps travel beside it because the frame header keeps
/// them outside the payload, where the sparse index and retention read them without decoding
/// (or decrypting) records.
#[derive(Clone, PartialEq, Eq)]
pub struct FramePayload {
    /// Records or a seal.
    pub kind: PayloadKind,
    /// The domain's frame flags (riffle-core marks sealed payloads); stored unchanged.
    pub flags: u16,
    /// Records in the payload.
    pub record_count: u16,
    /// Arrival time of the first record, in milliseconds since the Unix epoch.
    pub ts_first_ms: u64,
    /// Largest arrival time in the payload.
    pub ts_max_ms: u64,
    /// The encoded records.
    pub payload: Bytes,
}

impl FramePayload {
    /// A shard frame whose records all arrived at `ts_ms`, as an entry node stamps a batch:
    /// a seal when `seal`, else records.
    pub fn stamped(seal: bool, flags: u16, record_count: u16, ts_ms: u64, payload: Bytes) -> Self {
        FramePayload {
            kind: if seal {
                PayloadKind::Seal
            } else {
                PayloadKind::Records
            },
            flags,
            record_count,
            ts_first_ms: ts_ms,
            ts_max_ms: ts_ms,
            payload,
        }
    }
}

impl fmt::Debug for FramePayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The payload can be megabytes; its length says enough in a log line.
        f.debug_struct("FramePayload")
            .field("kind", &self.kind)
            .field("flags", &self.flags)
            .field("record_count", &self.record_count)
            .field("ts_first_ms", &self.ts_first_ms)
            .field("ts_max_ms", &self.ts_max_ms)
            .field("payload_bytes", &self.payload.len())
            .finish()
    }
}

impl fmt::Display for FramePayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}({} records, {} bytes)",
            self.kind,
            self.record_count,
            self.payload.len()
        )
    }
}

/// What applying a [`FramePayload`] answers its writer: the frame index it landed at, from
/// which riffle builds the records' sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Index of the entry's frame in riffle-log (see [`frame_index`]).
    pub frame_index: u64,
}

/// What applying an entry answers the one who proposed it (`client_write`, or a membership
/// change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Where the entry landed: a shard group's answer to a batch (and any group's answer to
    /// a membership change).
    Appended(Applied),
    /// The catalogue's answer to a metadata group's command. A rejection is a normal,
    /// deterministic answer that every node gave alike, not an error of the group.
    Catalogue(Result<CatalogueApplied, Rejection>),
    /// A shard group's answer to a batch that came after the shard's seal: nothing of it
    /// will ever be read; its records belong to the shard's children.
    Sealed,
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

openraft::declare_raft_types!(
    /// riffle's openraft type configuration, shared by the metadata group and every shard
    /// group: node ids are `u64`, a node is its cluster address, leader ids are openraft's
    /// default "advanced" ones (term and node id, which is what a frame's `term` and
    /// `leader` fields hold), application data is a [`FramePayload`], the answer a
    /// [`Response`]. The runtime is tokio, seedable for the simulator
    /// ([`RiffleRuntime`](crate::runtime::RiffleRuntime)).
    pub RiffleRaft:
        D = FramePayload,
        R = Response,
        NodeId = u64,
        Node = ClusterNode,
        AsyncRuntime = crate::runtime::RiffleRuntime,
);

/// openraft's log id (leader term, leader node id, index) under [`RiffleRaft`].
pub type LogId = LogIdOf<RiffleRaft>;
/// openraft's log entry under [`RiffleRaft`].
pub type Entry = EntryOf<RiffleRaft>;
/// openraft's vote under [`RiffleRaft`].
pub type Vote = VoteOf<RiffleRaft>;
/// A cluster membership: joint voter sets and every node's address.
pub type Membership = openraft::Membership<u64, ClusterNode>;
/// A membership and the log id of the entry that carried it.
pub type StoredMembership = StoredMembershipOf<RiffleRaft>;

/// The riffle-log frame index that holds Raft index `raft_index`: one more, because openraft
/// numbers the very first entry 0 (`Raft::initialize` writes the first membership there)
/// while riffle-log numbers frames from 1 and uses 0 for "before the first frame" (the last
/// index of an empty log). `None` only for `u64::MAX`, which no log reaches.
pub fn frame_index(raft_index: u64) -> Option<u64> {
    raft_index.checked_add(1)
}

/// The Raft index stored in frame `frame_index` (which riffle-log never numbers 0); the
/// inverse of [`frame_index`].
pub fn raft_index(frame_index: u64) -> u64 {
    assert!(frame_index >= 1, "riffle-log frame indexes start at 1");
    frame_index - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_mapping_round_trips_and_keeps_order() {
        for raft in [0u64, 1, 2, 41, u64::MAX - 1] {
            let frame = frame_index(raft).unwrap();
            assert_eq!(raft_index(frame), raft);
        }
        assert_eq!(frame_index(0), Some(1));
        assert_eq!(frame_index(u64::MAX), None);
        assert!(frame_index(7) < frame_index(8));
    }

    #[test]
    fn debug_of_a_payload_shows_its_length_not_its_bytes() {
        let payload = FramePayload {
            kind: PayloadKind::Records,
            flags: 0,
            record_count: 2,
            ts_first_ms: 1,
            ts_max_ms: 2,
            payload: Bytes::from(vec![0xAB; 1000]),
        };
        let text = format!("{payload:?}");
        assert!(text.contains("payload_bytes: 1000"), "{text}");
        assert!(!text.contains("171"), "{text}");
        assert_eq!(payload.to_string(), "Records(2 records, 1000 bytes)");
    }
}
