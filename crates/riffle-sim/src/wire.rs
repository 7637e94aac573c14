//! The simulator's node-to-node protocol: every message one length-prefixed JSON frame
//! (a big-endian `u32` length, then the document) over turmoil's simulated TCP. openraft's
//! serde derives stay off (they would require serde on riffle's application data), so the
//! RPCs are mirrored here field by field.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use bytes::Bytes;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::storage::SnapshotMeta;
use openraft::EntryPayload;
use riffle_cluster::{
    ClusterNode, Entry, FramePayload, LogId, Membership, PayloadKind, RiffleRaft, StoredMembership,
    Vote,
};
use riffle_core::catalogue::Command;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame either side accepts; a peer announcing more is cut off.
pub const FRAME_MAX: u32 = 64 << 20;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct WLogId(u64, u64, u64);

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

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct WVote(u64, u64, bool);

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
pub struct WMembership {
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WPayload {
    Blank,
    Normal {
        seal: bool,
        flags: u16,
        record_count: u16,
        ts_first_ms: u64,
        ts_max_ms: u64,
        payload: Vec<u8>,
    },
    Membership(WMembership),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WEntry {
    log_id: WLogId,
    payload: WPayload,
}

impl WEntry {
    fn of(entry: &Entry) -> Self {
        let payload = match &entry.payload {
            EntryPayload::Blank => WPayload::Blank,
            EntryPayload::Normal(data) => WPayload::Normal {
                seal: data.kind == PayloadKind::Seal,
                flags: data.flags,
                record_count: data.record_count,
                ts_first_ms: data.ts_first_ms,
                ts_max_ms: data.ts_max_ms,
                payload: data.payload.to_vec(),
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
    fn get(self) -> io::Result<Entry> {
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
                payload: Bytes::from(payload),
            }),
            WPayload::Membership(membership) => EntryPayload::Membership(membership.get()?),
        };
        Ok(Entry {
            log_id: self.log_id.get(),
            payload,
        })
    }
}

/// What one node asks another (or the workload asks a node).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    Append {
        vote: WVote,
        prev_log_id: Option<WLogId>,
        entries: Vec<WEntry>,
        leader_commit: Option<WLogId>,
    },
    Vote {
        pre: bool,
        vote: WVote,
        last_log_id: Option<WLogId>,
        leadership_transfer: bool,
    },
    Snapshot {
        vote: WVote,
        last_log_id: Option<WLogId>,
        membership_log_id: Option<WLogId>,
        membership: WMembership,
        data: Vec<u8>,
    },
    /// The workload proposes a catalogue command to this node.
    Propose(Command),
    /// An openraft RPC (`Append`, `Vote` or `Snapshot`) for shard group `shard`; the bare
    /// variants are the metadata group's.
    Shard { shard: u32, rpc: Box<Request> },
    /// The record workload appends a frame to shard `shard` through this node: a data frame,
    /// or the shard's seal.
    Record {
        shard: u32,
        seal: bool,
        record_count: u16,
        ts_ms: u64,
        payload: Vec<u8>,
    },
    /// A retention pass over this node's replica of `shard`, if this node leads the shard.
    Expire {
        shard: u32,
        cutoff_ms: u64,
        roll_before_ms: u64,
    },
}

/// A shard group's answer to a [`Request::Record`], as the workload sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Recorded {
    /// Applied at this frame index.
    Appended(u64),
    /// Applied after the shard's seal: never readable.
    Sealed,
    /// Not the leader (nothing was proposed); who is, if known.
    Forward(Option<u64>),
    /// Anything else (the group stopped, ...): no verdict, it may have been appended.
    Failed(String),
}

/// The verdict of a proposal as the workload sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Proposed {
    /// Applied; the stream's version (0 for commands about no stream).
    Applied(u64),
    /// Rejected by the catalogue (`Stale`'s current version, or 0).
    Rejected {
        reason: String,
        current: Option<u64>,
    },
    /// Not the leader; who is, if known.
    Forward(Option<u64>),
    /// Anything else (the group stopped, a membership change): no verdict.
    Failed(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Reply {
    Append {
        kind: u8,
        log_id: Option<WLogId>,
        vote: Option<WVote>,
    },
    Vote {
        vote: WVote,
        granted: bool,
        last_log_id: Option<WLogId>,
    },
    Snapshot {
        vote: WVote,
    },
    Proposed(Proposed),
    Recorded(Recorded),
    /// A retention pass's result: the last frame purged, if any; an error (or "not the
    /// leader") as text.
    Expired(Result<Option<u64>, String>),
    Error(String),
}

pub fn append_request(rpc: &AppendEntriesRequest<RiffleRaft>) -> Request {
    Request::Append {
        vote: WVote::of(&rpc.vote),
        prev_log_id: opt_of(&rpc.prev_log_id),
        entries: rpc.entries.iter().map(WEntry::of).collect(),
        leader_commit: opt_of(&rpc.leader_commit),
    }
}

pub fn append_request_get(
    vote: WVote,
    prev_log_id: Option<WLogId>,
    entries: Vec<WEntry>,
    leader_commit: Option<WLogId>,
) -> io::Result<AppendEntriesRequest<RiffleRaft>> {
    Ok(AppendEntriesRequest {
        vote: vote.get(),
        prev_log_id: opt_get(prev_log_id),
        entries: entries
            .into_iter()
            .map(WEntry::get)
            .collect::<io::Result<_>>()?,
        leader_commit: opt_get(leader_commit),
    })
}

pub fn append_reply(response: &AppendEntriesResponse<RiffleRaft>) -> Reply {
    let (kind, log_id, vote) = match response {
        AppendEntriesResponse::Success => (0, None, None),
        AppendEntriesResponse::PartialSuccess(id) => (1, opt_of(id), None),
        AppendEntriesResponse::Conflict => (2, None, None),
        AppendEntriesResponse::HigherVote(vote) => (3, None, Some(WVote::of(vote))),
    };
    Reply::Append { kind, log_id, vote }
}

pub fn append_reply_get(
    kind: u8,
    log_id: Option<WLogId>,
    vote: Option<WVote>,
) -> io::Result<AppendEntriesResponse<RiffleRaft>> {
    Ok(match (kind, vote) {
        (0, _) => AppendEntriesResponse::Success,
        (1, _) => AppendEntriesResponse::PartialSuccess(opt_get(log_id)),
        (2, _) => AppendEntriesResponse::Conflict,
        (3, Some(vote)) => AppendEntriesResponse::HigherVote(vote.get()),
        _ => return Err(invalid(format!("append reply kind {kind}"))),
    })
}

pub fn vote_request(pre: bool, rpc: &VoteRequest<RiffleRaft>) -> Request {
    Request::Vote {
        pre,
        vote: WVote::of(&rpc.vote),
        last_log_id: opt_of(&rpc.last_log_id),
        leadership_transfer: rpc.leadership_transfer,
    }
}

pub fn vote_request_get(
    vote: WVote,
    last_log_id: Option<WLogId>,
    leadership_transfer: bool,
) -> VoteRequest<RiffleRaft> {
    let mut rpc = VoteRequest::new(vote.get(), opt_get(last_log_id));
    rpc.leadership_transfer = leadership_transfer;
    rpc
}

pub fn vote_reply(response: &VoteResponse<RiffleRaft>) -> Reply {
    Reply::Vote {
        vote: WVote::of(&response.vote),
        granted: response.vote_granted,
        last_log_id: opt_of(&response.last_log_id),
    }
}

pub fn vote_reply_get(
    vote: WVote,
    granted: bool,
    last_log_id: Option<WLogId>,
) -> VoteResponse<RiffleRaft> {
    VoteResponse::new(vote.get(), opt_get(last_log_id), granted)
}

pub fn snapshot_request(
    vote: &Vote,
    meta: &SnapshotMeta<LeaderId<u64, u64>, u64, ClusterNode>,
    data: &[u8],
) -> Request {
    Request::Snapshot {
        vote: WVote::of(vote),
        last_log_id: opt_of(&meta.last_log_id),
        membership_log_id: opt_of(meta.last_membership.log_id()),
        membership: WMembership::of(meta.last_membership.membership()),
        data: data.to_vec(),
    }
}

pub type MetaOf = SnapshotMeta<LeaderId<u64, u64>, u64, ClusterNode>;

pub fn snapshot_meta_get(
    last_log_id: Option<WLogId>,
    membership_log_id: Option<WLogId>,
    membership: WMembership,
) -> io::Result<MetaOf> {
    Ok(SnapshotMeta {
        last_log_id: opt_get(last_log_id),
        last_membership: StoredMembership::new(opt_get(membership_log_id), membership.get()?),
    })
}

pub fn snapshot_reply(response: &SnapshotResponse<RiffleRaft>) -> Reply {
    Reply::Snapshot {
        vote: WVote::of(&response.vote),
    }
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Writes `message` as one frame.
pub async fn write_frame<T: Serialize>(
    io: &mut (impl AsyncWrite + Unpin),
    message: &T,
) -> io::Result<()> {
    let body = serde_json::to_vec(message).map_err(io::Error::other)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|len| *len <= FRAME_MAX)
        .ok_or_else(|| invalid(format!("a {} byte frame", body.len())))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(&body).await?;
    io.flush().await
}

/// Reads one frame; `None` at a clean end of stream before a frame starts.
pub async fn read_frame<T: for<'de> Deserialize<'de>>(
    io: &mut (impl AsyncRead + Unpin),
) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match io.read_exact(&mut len).await {
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let len = u32::from_be_bytes(len);
    if len > FRAME_MAX {
        return Err(invalid(format!("a peer announced a {len} byte frame")));
    }
    let mut body = vec![0u8; len as usize];
    io.read_exact(&mut body).await?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|error| invalid(error.to_string()))
}
