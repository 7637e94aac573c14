//! What travels on a peer connection after the handshake: frames, each a big-endian `u32`
//! length and a [postcard](https://docs.rs/postcard) document, requests from the side that
//! connected and replies from the side that accepted, matched by a request id.
//!
//! # Why postcard
//!
//! Record batches travel here (an AppendEntries carries up to megabytes of `FramePayload`s),
//! so the format must carry bytes as bytes: postcard writes a byte string as a varint length
//! and the raw bytes, and decodes it *borrowed* from the frame, so a payload becomes a
//! `Bytes` slice of the received frame without a copy ([`Bytes::slice_ref`]). JSON would
//! need base64 or an array of numbers. postcard is serde, so the messages below are plain
//! derives; its wire format is documented and frozen for the 1.x line (a stable spec, not
//! "whatever this version's encoder does"), its integers are varints, and with only the
//! `alloc` feature it pulls in two tiny crates. Hand-framing the payloads would save the
//! one copy the encoder makes on the sending side, at the price of a second codec to keep in
//! step with openraft's types; not worth it before a profile says so.
//!
//! openraft's own serde derives stay off (they need serde on riffle's application data and
//! follow openraft's types from release to release), so the RPCs are mirrored here field by
//! field, as riffle-sim's wire does for its JSON frames.
//!
//! Every length a peer sends is checked before anything is allocated for it
//! ([`FRAME_BYTES_MAX`]), and every decoding failure is an error, never a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use bytes::Bytes;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, TransferLeaderRequest, VoteRequest, VoteResponse,
};
use openraft::type_config::alias::SnapshotMetaOf;
use openraft::EntryPayload;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::GroupId;
use crate::types::{
    ClusterNode, Entry, FramePayload, LogId, Membership, PayloadKind, RiffleRaft, StoredMembership,
    Vote,
};

/// Largest frame either side sends or accepts after the handshake: an AppendEntries holds
/// at most 8 MiB of payload beyond its first entry ([`crate::LIMITED_READ_BYTES_MAX`]), a
/// record batch at most a few MiB, and a metadata snapshot is a catalogue document. A peer
/// announcing more is disconnected before anything is allocated.
pub const FRAME_BYTES_MAX: usize = 64 << 20;

/// openraft's snapshot meta under [`RiffleRaft`].
pub(crate) type SnapshotMeta = SnapshotMetaOf<RiffleRaft>;

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// A request, as the connecting side sends it (encoded as the pair `(id, &body)`, which
/// postcard lays out identically).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RequestFrame<'a> {
    pub id: u64,
    #[serde(borrow)]
    pub body: Request<'a>,
}

/// A reply, as the accepting side sends it (encoded as the pair `(id, &body)`).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReplyFrame<'a> {
    pub id: u64,
    #[serde(borrow)]
    pub body: Reply<'a>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request<'a> {
    Append {
        group: GroupId,
        vote: WVote,
        prev_log_id: Option<WLogId>,
        #[serde(borrow)]
        entries: Vec<WEntry<'a>>,
        leader_commit: Option<WLogId>,
    },
    Vote {
        group: GroupId,
        pre: bool,
        vote: WVote,
        last_log_id: Option<WLogId>,
        leadership_transfer: bool,
    },
    Snapshot {
        group: GroupId,
        vote: WVote,
        meta: WSnapshotMeta,
        #[serde(borrow, serialize_with = "as_bytes")]
        data: &'a [u8],
    },
    TransferLeader {
        group: GroupId,
        from: WVote,
        to: u64,
        last_log_id: Option<WLogId>,
    },
    App {
        #[serde(borrow, serialize_with = "as_bytes")]
        body: &'a [u8],
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply<'a> {
    Append(WAppendReply),
    Vote {
        vote: WVote,
        granted: bool,
        last_log_id: Option<WLogId>,
    },
    Snapshot {
        vote: WVote,
    },
    TransferLeader(WTransferReply),
    App(#[serde(borrow, serialize_with = "as_bytes")] &'a [u8]),
    /// The group's Raft or the app handler answered an error.
    Failed(String),
    /// No group of that id is registered on the node (not yet opened, or removed).
    NoGroup,
    /// The node has no app handler.
    NoHandler,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WLogId(u64, u64, u64);

impl WLogId {
    pub fn of(id: &LogId) -> Self {
        WLogId(id.leader_id.term, id.leader_id.node_id, id.index)
    }

    pub fn get(self) -> LogId {
        LogId::new(
            LeaderId {
                term: self.0,
                node_id: self.1,
            },
            self.2,
        )
    }
}

fn opt_of(id: &Option<LogId>) -> Option<WLogId> {
    id.as_ref().map(WLogId::of)
}

fn opt_get(id: Option<WLogId>) -> Option<LogId> {
    id.map(WLogId::get)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WVote(u64, u64, bool);

impl WVote {
    pub fn of(vote: &Vote) -> Self {
        WVote(vote.leader_id.term, vote.leader_id.node_id, vote.committed)
    }

    pub fn get(self) -> Vote {
        let mut vote = Vote::new(self.0, self.1);
        vote.committed = self.2;
        vote
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WMembership {
    configs: Vec<BTreeSet<u64>>,
    nodes: BTreeMap<u64, String>,
}

impl WMembership {
    fn of(membership: &Membership) -> Self {
        WMembership {
            configs: membership.get_joint_config().clone(),
            nodes: membership
                .nodes()
                .map(|(id, node)| (*id, node.addr.clone()))
                .collect(),
        }
    }

    fn get(self) -> io::Result<Membership> {
        let nodes: BTreeMap<u64, ClusterNode> = self
            .nodes
            .into_iter()
            .map(|(id, addr)| (id, ClusterNode { addr }))
            .collect();
        Membership::new(self.configs, nodes).map_err(|error| invalid(error.to_string()))
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum WPayload<'a> {
    Blank,
    Normal {
        seal: bool,
        flags: u16,
        record_count: u16,
        ts_first_ms: u64,
        ts_max_ms: u64,
        #[serde(borrow, serialize_with = "as_bytes")]
        payload: &'a [u8],
    },
    Membership(WMembership),
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WEntry<'a> {
    log_id: WLogId,
    #[serde(borrow)]
    payload: WPayload<'a>,
}

impl<'a> WEntry<'a> {
    fn of(entry: &'a Entry) -> Self {
        let payload = match &entry.payload {
            EntryPayload::Blank => WPayload::Blank,
            EntryPayload::Normal(data) => WPayload::Normal {
                seal: data.kind == PayloadKind::Seal,
                flags: data.flags,
                record_count: data.record_count,
                ts_first_ms: data.ts_first_ms,
                ts_max_ms: data.ts_max_ms,
                payload: &data.payload,
            },
            EntryPayload::Membership(membership) => {
                WPayload::Membership(WMembership::of(membership))
            }
        };
        WEntry {
            log_id: WLogId::of(&entry.log_id),
            payload,
        }
    }

    /// The entry, its payload a slice of `frame` (which `self` was decoded from).
    fn get(self, frame: &Bytes) -> io::Result<Entry> {
        let payload = match self.payload {
            WPayload::Blank => EntryPayload::Blank,
            WPayload::Normal {
                seal,
                flags,
                record_count,
                ts_first_ms,
                ts_max_ms,
                payload,
            } => EntryPayload::Normal(FramePayload {
                kind: if seal {
                    PayloadKind::Seal
                } else {
                    PayloadKind::Records
                },
                flags,
                record_count,
                ts_first_ms,
                ts_max_ms,
                payload: slice_of(frame, payload),
            }),
            WPayload::Membership(membership) => EntryPayload::Membership(membership.get()?),
        };
        Ok(Entry {
            log_id: self.log_id.get(),
            payload,
        })
    }
}

/// Writes a byte slice as one run. serde's own impl for `[u8]` is a sequence, which postcard
/// writes as the same bytes (a varint length, then one byte per element) but one element at
/// a time: that was 7 % of a node's CPU under batched puts on three nodes (`perf`). Reading
/// is unchanged (`&[u8]` deserializes as borrowed bytes), and so is the wire format, so
/// nodes of earlier builds read what this writes.
fn as_bytes<S: serde::Serializer>(bytes: &&[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

/// `part` as a slice of `frame` when it was borrowed from it (no copy), else a copy.
pub(crate) fn slice_of(frame: &Bytes, part: &[u8]) -> Bytes {
    let start = frame.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    if !part.is_empty() && at >= start && at + part.len() <= start + frame.len() {
        frame.slice_ref(part)
    } else {
        Bytes::copy_from_slice(part)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WSnapshotMeta {
    last_log_id: Option<WLogId>,
    membership_log_id: Option<WLogId>,
    membership: WMembership,
}

impl WSnapshotMeta {
    pub fn of(meta: &SnapshotMeta) -> Self {
        WSnapshotMeta {
            last_log_id: opt_of(&meta.last_log_id),
            membership_log_id: opt_of(meta.last_membership.log_id()),
            membership: WMembership::of(meta.last_membership.membership()),
        }
    }

    pub fn get(self) -> io::Result<SnapshotMeta> {
        Ok(SnapshotMeta {
            last_log_id: opt_get(self.last_log_id),
            last_membership: StoredMembership::new(
                opt_get(self.membership_log_id),
                self.membership.get()?,
            ),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WAppendReply {
    Success,
    PartialSuccess(Option<WLogId>),
    Conflict,
    HigherVote(WVote),
}

impl WAppendReply {
    pub fn of(response: &AppendEntriesResponse<RiffleRaft>) -> Self {
        match response {
            AppendEntriesResponse::Success => WAppendReply::Success,
            AppendEntriesResponse::PartialSuccess(id) => WAppendReply::PartialSuccess(opt_of(id)),
            AppendEntriesResponse::Conflict => WAppendReply::Conflict,
            AppendEntriesResponse::HigherVote(vote) => WAppendReply::HigherVote(WVote::of(vote)),
        }
    }

    pub fn get(self) -> AppendEntriesResponse<RiffleRaft> {
        match self {
            WAppendReply::Success => AppendEntriesResponse::Success,
            WAppendReply::PartialSuccess(id) => AppendEntriesResponse::PartialSuccess(opt_get(id)),
            WAppendReply::Conflict => AppendEntriesResponse::Conflict,
            WAppendReply::HigherVote(vote) => AppendEntriesResponse::HigherVote(vote.get()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WTransferReply {
    Done,
    VoteChanged {
        expected: WVote,
        actual: WVote,
    },
    LogNotFlushed {
        expected: Option<WLogId>,
        actual: Option<WLogId>,
    },
}

impl WTransferReply {
    pub fn of(response: &openraft::raft::TransferLeaderResponse<RiffleRaft>) -> Self {
        use openraft::raft::TransferLeaderError;
        match response {
            Ok(()) => WTransferReply::Done,
            Err(TransferLeaderError::VoteChanged { expected, actual }) => {
                WTransferReply::VoteChanged {
                    expected: WVote::of(expected),
                    actual: WVote::of(actual),
                }
            }
            Err(TransferLeaderError::LogNotFlushed { expected, actual }) => {
                WTransferReply::LogNotFlushed {
                    expected: opt_of(expected),
                    actual: opt_of(actual),
                }
            }
        }
    }

    pub fn get(self) -> openraft::raft::TransferLeaderResponse<RiffleRaft> {
        use openraft::raft::TransferLeaderError;
        match self {
            WTransferReply::Done => Ok(()),
            WTransferReply::VoteChanged { expected, actual } => {
                Err(TransferLeaderError::VoteChanged {
                    expected: expected.get(),
                    actual: actual.get(),
                })
            }
            WTransferReply::LogNotFlushed { expected, actual } => {
                Err(TransferLeaderError::LogNotFlushed {
                    expected: opt_get(expected),
                    actual: opt_get(actual),
                })
            }
        }
    }
}

// Requests from openraft's types, borrowing their payloads.

pub(crate) fn append_request<'a>(
    group: &GroupId,
    rpc: &'a AppendEntriesRequest<RiffleRaft>,
) -> Request<'a> {
    Request::Append {
        group: group.clone(),
        vote: WVote::of(&rpc.vote),
        prev_log_id: opt_of(&rpc.prev_log_id),
        entries: rpc.entries.iter().map(WEntry::of).collect(),
        leader_commit: opt_of(&rpc.leader_commit),
    }
}

pub(crate) fn vote_request(
    group: &GroupId,
    pre: bool,
    rpc: &VoteRequest<RiffleRaft>,
) -> Request<'static> {
    Request::Vote {
        group: group.clone(),
        pre,
        vote: WVote::of(&rpc.vote),
        last_log_id: opt_of(&rpc.last_log_id),
        leadership_transfer: rpc.leadership_transfer,
    }
}

pub(crate) fn transfer_request(
    group: &GroupId,
    rpc: &TransferLeaderRequest<RiffleRaft>,
) -> Request<'static> {
    Request::TransferLeader {
        group: group.clone(),
        from: WVote::of(rpc.from_leader()),
        to: *rpc.to_node_id(),
        last_log_id: rpc.last_log_id().map(WLogId::of),
    }
}

// openraft's types from requests, on the serving side.

pub(crate) fn append_request_get(
    frame: &Bytes,
    vote: WVote,
    prev_log_id: Option<WLogId>,
    entries: Vec<WEntry<'_>>,
    leader_commit: Option<WLogId>,
) -> io::Result<AppendEntriesRequest<RiffleRaft>> {
    Ok(AppendEntriesRequest {
        vote: vote.get(),
        prev_log_id: opt_get(prev_log_id),
        entries: entries
            .into_iter()
            .map(|entry| entry.get(frame))
            .collect::<io::Result<_>>()?,
        leader_commit: opt_get(leader_commit),
    })
}

pub(crate) fn vote_request_get(
    vote: WVote,
    last_log_id: Option<WLogId>,
    leadership_transfer: bool,
) -> VoteRequest<RiffleRaft> {
    let mut rpc = VoteRequest::new(vote.get(), opt_get(last_log_id));
    rpc.leadership_transfer = leadership_transfer;
    rpc
}

pub(crate) fn vote_reply(response: &VoteResponse<RiffleRaft>) -> Reply<'static> {
    Reply::Vote {
        vote: WVote::of(&response.vote),
        granted: response.vote_granted,
        last_log_id: opt_of(&response.last_log_id),
    }
}

pub(crate) fn vote_reply_get(
    vote: WVote,
    granted: bool,
    last_log_id: Option<WLogId>,
) -> VoteResponse<RiffleRaft> {
    VoteResponse::new(vote.get(), opt_get(last_log_id), granted)
}

pub(crate) fn transfer_request_get(
    from: WVote,
    to: u64,
    last_log_id: Option<WLogId>,
) -> TransferLeaderRequest<RiffleRaft> {
    TransferLeaderRequest::new(from.get(), to, opt_get(last_log_id))
}

// Frames.

/// `message` as a frame body (the length goes in front when it is written); refused when
/// it is larger than [`FRAME_BYTES_MAX`].
pub(crate) fn encode<T: Serialize>(message: &T) -> io::Result<Vec<u8>> {
    let body = postcard::to_allocvec(message).map_err(|error| invalid(error.to_string()))?;
    if body.len() > FRAME_BYTES_MAX {
        return Err(invalid(format!(
            "a {} byte message, more than the {FRAME_BYTES_MAX} a peer accepts",
            body.len()
        )));
    }
    Ok(body)
}

/// The big-endian length prefix of a frame body [`encode`] made.
pub(crate) fn length_prefix(body: &[u8]) -> [u8; 4] {
    // `encode` bounds bodies far below `u32::MAX`.
    (body.len() as u32).to_be_bytes()
}

/// Decodes a frame body borrowed from `frame`.
pub(crate) fn decode<'a, T: Deserialize<'a>>(frame: &'a Bytes) -> io::Result<T> {
    postcard::from_bytes(frame).map_err(|error| invalid(format!("undecodable frame: {error}")))
}

/// Reads one frame body; `None` at a clean end of stream before a frame starts. A length
/// above [`FRAME_BYTES_MAX`] is refused before anything is allocated.
pub(crate) async fn read_frame(io: &mut (impl AsyncRead + Unpin)) -> io::Result<Option<Bytes>> {
    let mut len = [0u8; 4];
    match io.read_exact(&mut len).await {
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > FRAME_BYTES_MAX {
        return Err(invalid(format!(
            "the peer announced a {len} byte frame (at most {FRAME_BYTES_MAX})"
        )));
    }
    let mut body = Vec::with_capacity(len);
    io.take(len as u64).read_to_end(&mut body).await?;
    if body.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the peer closed the connection inside a frame",
        ));
    }
    Ok(Some(Bytes::from(body)))
}

#[cfg(test)]
mod tests {
    use openraft::raft::AppendEntriesRequest;

    use super::*;

    fn entry(
        index: u64,
        payload: openraft::type_config::alias::EntryPayloadOf<RiffleRaft>,
    ) -> Entry {
        Entry {
            log_id: WLogId(3, 2, index).get(),
            payload,
        }
    }

    /// The forms earlier builds derived (`&[u8]` as a sequence), to check the wire format
    /// did not change when byte fields started to be written as one run.
    #[derive(Serialize)]
    enum OldRequest<'a> {
        _Append,
        _Vote,
        _Snapshot,
        _TransferLeader,
        App { body: &'a [u8] },
    }

    #[derive(Serialize)]
    enum OldPayload<'a> {
        _Blank,
        Normal {
            seal: bool,
            flags: u16,
            record_count: u16,
            ts_first_ms: u64,
            ts_max_ms: u64,
            payload: &'a [u8],
        },
    }

    #[test]
    fn byte_fields_are_written_as_earlier_builds_wrote_them() {
        let body: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        assert_eq!(
            encode(&Request::App { body: &body }).unwrap(),
            encode(&OldRequest::App { body: &body }).unwrap()
        );
        let new = WPayload::Normal {
            seal: false,
            flags: 2,
            record_count: 7,
            ts_first_ms: 1,
            ts_max_ms: 2,
            payload: &body,
        };
        let old = OldPayload::Normal {
            seal: false,
            flags: 2,
            record_count: 7,
            ts_first_ms: 1,
            ts_max_ms: 2,
            payload: &body,
        };
        assert_eq!(encode(&new).unwrap(), encode(&old).unwrap());
        // And it still reads as borrowed bytes.
        let frame = Bytes::from(encode(&old).unwrap());
        match decode::<WPayload<'_>>(&frame).unwrap() {
            WPayload::Normal { payload, .. } => assert_eq!(payload, &body[..]),
            other => panic!("decoded {other:?}"),
        }
    }

    #[test]
    fn an_append_round_trips_and_its_payloads_are_slices_of_the_frame() {
        let nodes = BTreeMap::from([
            (1, ClusterNode { addr: "a:1".into() }),
            (2, ClusterNode { addr: "b:2".into() }),
        ]);
        let membership = Membership::new(vec![BTreeSet::from([1, 2])], nodes).unwrap();
        let big = Bytes::from(vec![0xA5; 1 << 20]);
        let rpc = AppendEntriesRequest::<RiffleRaft> {
            vote: Vote::new(3, 2),
            prev_log_id: Some(WLogId(2, 1, 9).get()),
            entries: vec![
                entry(10, EntryPayload::Blank),
                entry(11, EntryPayload::Membership(membership)),
                entry(
                    12,
                    EntryPayload::Normal(FramePayload {
                        kind: PayloadKind::Seal,
                        flags: 3,
                        record_count: 500,
                        ts_first_ms: 7,
                        ts_max_ms: 8,
                        payload: big.clone(),
                    }),
                ),
            ],
            leader_commit: Some(WLogId(3, 2, 10).get()),
        };
        let group = GroupId::Shard {
            stream: "dir-x".into(),
            ordinal: 4,
        };
        let body = encode(&RequestFrame {
            id: 77,
            body: append_request(&group, &rpc),
        })
        .unwrap();
        // Bytes as bytes: the megabyte costs a megabyte and a few header bytes.
        assert!(body.len() < (1 << 20) + 200, "{}", body.len());
        let frame = Bytes::from(body);
        let decoded: RequestFrame<'_> = decode(&frame).unwrap();
        assert_eq!(decoded.id, 77);
        let Request::Append {
            group: got_group,
            vote,
            prev_log_id,
            entries,
            leader_commit,
        } = decoded.body
        else {
            panic!("not an append");
        };
        assert_eq!(got_group, group);
        let back = append_request_get(&frame, vote, prev_log_id, entries, leader_commit).unwrap();
        assert_eq!(back.vote, rpc.vote);
        assert_eq!(back.prev_log_id, rpc.prev_log_id);
        assert_eq!(back.leader_commit, rpc.leader_commit);
        assert_eq!(back.entries, rpc.entries);
        let EntryPayload::Normal(data) = &back.entries[2].payload else {
            panic!("not normal");
        };
        let inside = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
        assert!(
            inside.contains(&(data.payload.as_ptr() as usize)),
            "no copy"
        );
    }

    #[test]
    fn replies_round_trip() {
        for reply in [
            WAppendReply::Success,
            WAppendReply::PartialSuccess(Some(WLogId(1, 2, 3))),
            WAppendReply::PartialSuccess(None),
            WAppendReply::Conflict,
            WAppendReply::HigherVote(WVote(4, 5, true)),
        ] {
            let response = reply.clone().get();
            assert_eq!(WAppendReply::of(&response), reply);
        }
        let vote = VoteResponse::<RiffleRaft>::new(Vote::new(4, 1), None, true);
        let frame = Bytes::from(
            encode(&ReplyFrame {
                id: 1,
                body: vote_reply(&vote),
            })
            .unwrap(),
        );
        let decoded: ReplyFrame<'_> = decode(&frame).unwrap();
        let Reply::Vote {
            vote: v,
            granted,
            last_log_id,
        } = decoded.body
        else {
            panic!("not a vote reply");
        };
        assert_eq!(vote_reply_get(v, granted, last_log_id), vote);
    }

    #[test]
    fn garbage_frames_are_errors_not_panics() {
        for garbage in [
            &b""[..],
            &b"\x00"[..],
            &[0xFF; 64][..],
            &b"\x05\x00\x00\xff\xff\xff\xff\xff\x0f"[..],
        ] {
            let frame = Bytes::copy_from_slice(garbage);
            assert!(decode::<RequestFrame<'_>>(&frame).is_err(), "{garbage:?}");
        }
        // A membership no openraft accepts (a voter without a node) is an error too.
        let bad = WMembership {
            configs: vec![BTreeSet::from([1])],
            nodes: BTreeMap::new(),
        };
        assert!(bad.get().is_err());
    }

    #[tokio::test]
    async fn frames_are_bounded_before_allocation() {
        let huge = ((FRAME_BYTES_MAX + 1) as u32).to_be_bytes();
        let error = read_frame(&mut &huge[..]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        // A length of u32::MAX is refused the same way.
        let error = read_frame(&mut &[0xFF; 4][..]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        // A frame cut short is an error; a clean end before a frame is `None`.
        let short = [0, 0, 0, 9, 1, 2];
        assert!(read_frame(&mut &short[..]).await.is_err());
        assert!(read_frame(&mut &[][..]).await.unwrap().is_none());
        let mut ok = 3u32.to_be_bytes().to_vec();
        ok.extend_from_slice(b"abc");
        assert_eq!(
            read_frame(&mut &ok[..]).await.unwrap().unwrap(),
            Bytes::from_static(b"abc")
        );
    }
}
