//! Reads through a node that holds no replica of the shard.
//!
//! With more nodes than a shard has replicas, a node outside them keeps a remote log for the
//! shard ([`ShardLog::remote`]). GetShardIterator, GetRecords and SubscribeToShard there ask
//! one of the shard's replicas for the log's bounds and committed entries
//! ([`AppRequest::ShardRead`]) and build the answer themselves from those entries, with the
//! same code a replica runs over its own log (`riffle_core::data`): same records, sequence
//! numbers, `MillisBehindLatest` and iterators (sealed under the key every node derives from
//! the cluster secret, so any node reads them).
//!
//! **Which replica.** The leader first: it has applied every acknowledged append, so a
//! record put through any node is there to read at once. A replica that is not the leader
//! names it (`NotLeader`) the first times it is asked; after that, or when the leader is
//! unknown or unreachable, any replica answers: each serves only what its group committed and
//! applied, never past its published tail, so a lagging one returns fewer records, never
//! uncommitted ones. The leader learnt this way is remembered with the appends' hints.
//!
//! **Long polls.** A subscription through such a node asks the replica to hold its read
//! until an entry at the asked index is visible or `wait_ms` passes, in place of the tail
//! watch a replica's subscribers sleep on.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use riffle_core::shard_log::{FetchRequest, Fetched, TailState};
use riffle_log::{Entry, EntryMeta, FrameKind};
use serde::{Deserialize, Serialize};

use super::{decode, encode, AppRequest, AppResponse, Cluster, CALL_TIMEOUT, RETRY_PAUSE};

/// How long a read keeps looking for a replica that answers.
const READ_WAIT: Duration = Duration::from_secs(5);
/// The longest a replica holds a read for new entries (the asker's call waits this much
/// longer than an ordinary call).
const HOLD_MAX: Duration = Duration::from_secs(3);
/// How many times a read asks for the leader before any replica will do.
const LEADER_ATTEMPTS: usize = 2;

/// One committed entry on its way to a node holding no replica.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireEntry {
    pub index: u64,
    pub kind: u8,
    pub flags: u16,
    pub record_count: u16,
    pub ts_first_ms: u64,
    pub ts_max_ms: u64,
    pub payload: Blob,
}

/// Bytes that postcard writes as one length-prefixed run (a `Vec<u8>` would go byte by
/// byte through serde's sequence machinery, which costs a 10 MiB read tens of milliseconds).
#[derive(Debug)]
pub struct Blob(pub Bytes);

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Blob, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Blob, E> {
                Ok(Blob(Bytes::copy_from_slice(bytes)))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(Bytes::from(bytes)))
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
    }
}

impl Cluster {
    /// Answers a read of a shard this node holds a replica of (the replica's side of
    /// [`Cluster::read_anywhere`]): `NotLeader` if it holds none, or if `prefer_leader` and
    /// another node is known to lead the shard.
    pub(super) async fn read_here(
        &self,
        stream: &str,
        ordinal: u32,
        request: FetchRequest,
        prefer_leader: bool,
    ) -> Result<AppResponse, String> {
        let Some(open) = self.shard(stream, ordinal) else {
            return Ok(AppResponse::NotLeader { leader: None });
        };
        if !open.log.stored_here() {
            return Ok(AppResponse::NotLeader { leader: None });
        }
        let leader = open.raft.current_leader().await;
        if prefer_leader && leader.is_some_and(|leader| leader != self.id) {
            return Ok(AppResponse::NotLeader { leader });
        }
        if request.wait_ms > 0 {
            let hold = Duration::from_millis(request.wait_ms).min(HOLD_MAX);
            open.log.wait_visible(request.from_index, hold).await;
        }
        let log = Arc::clone(&open.log);
        // Off the async workers, a few at a time, like a GetRecords answer built here.
        let read = match self.node.upgrade() {
            Some(node) => {
                let responses = Arc::clone(&node.config.responses);
                responses.build(|| log.serve_fetch(request)).await
            }
            None => return Err("shutting down".into()),
        };
        let fetched = read.map_err(|error| format!("cannot read the shard here: {error}"))?;
        Ok(AppResponse::Read {
            leader,
            first_index: fetched.first_index,
            visible_index: fetched.tail.visible_index,
            ts_last_ms: fetched.tail.ts_last_ms,
            found_index: fetched.found_index,
            entries: fetched
                .entries
                .into_iter()
                .map(|entry| WireEntry {
                    index: entry.index,
                    kind: entry.meta.kind as u8,
                    flags: entry.meta.flags,
                    record_count: entry.meta.record_count,
                    ts_first_ms: entry.meta.ts_first_ms,
                    ts_max_ms: entry.meta.ts_max_ms,
                    payload: Blob(entry.payload),
                })
                .collect(),
        })
    }

    /// Reads shard `ordinal` of `stream` through one of its replicas (see the module docs).
    pub(super) async fn read_anywhere(
        &self,
        stream: &str,
        ordinal: u32,
        request: FetchRequest,
    ) -> Result<Fetched, String> {
        let deadline = tokio::time::Instant::now() + READ_WAIT;
        let hold = Duration::from_millis(request.wait_ms).min(HOLD_MAX);
        let mut attempt = 0usize;
        let mut last;
        loop {
            let mut redirected = false;
            attempt += 1;
            let prefer_leader = attempt <= LEADER_ATTEMPTS;
            let answer = match self.shard_leader(stream, ordinal, attempt).await {
                None => Err("the shard has no replica to read from".to_owned()),
                Some(id) if id == self.id => {
                    self.read_here(stream, ordinal, request, prefer_leader)
                        .await
                }
                Some(id) => match self.addr_in_shard(stream, ordinal, id) {
                    None => Err(format!("no address for node {id} yet")),
                    Some(addr) => {
                        let call = AppRequest::ShardRead {
                            stream: stream.to_owned(),
                            ordinal,
                            from_index: request.from_index,
                            entries_max: request.entries_max.min(u32::MAX as usize) as u32,
                            bytes_max: request.bytes_max as u64,
                            at_timestamp: request.at_timestamp,
                            wait_ms: hold.as_millis() as u64,
                            prefer_leader,
                        };
                        match encode(&call) {
                            Ok(body) => {
                                match self.network.call(&addr, body, CALL_TIMEOUT + hold).await {
                                    Ok(bytes) => decode::<AppResponse>(&bytes),
                                    Err(error) => Err(error.to_string()),
                                }
                            }
                            Err(error) => Err(error),
                        }
                    }
                },
            };
            match answer {
                Ok(AppResponse::Read {
                    leader,
                    first_index,
                    visible_index,
                    ts_last_ms,
                    found_index,
                    entries,
                }) => {
                    if let Some(leader) = leader {
                        self.leader_hints
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert((stream.to_owned(), ordinal), leader);
                    }
                    let entries = entries.into_iter().map(entry_from_wire).collect::<Result<
                        Vec<Entry>,
                        String,
                    >>(
                    )?;
                    return Ok(Fetched {
                        first_index,
                        tail: TailState {
                            visible_index,
                            ts_last_ms,
                            poisoned: false,
                        },
                        found_index,
                        entries,
                    });
                }
                Ok(answer @ AppResponse::NotLeader { .. }) => {
                    self.note_leader(stream, ordinal, &answer);
                    redirected = matches!(answer, AppResponse::NotLeader { leader: Some(_) });
                    last = format!("{answer:?}");
                }
                Ok(AppResponse::Failed(reason)) | Err(reason) => {
                    self.forget_leader(stream, ordinal);
                    last = reason;
                }
                Ok(other) => {
                    self.forget_leader(stream, ordinal);
                    last = format!("unexpected answer {other:?}");
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(last);
            }
            // Sent on to the leader a replica named: ask it at once.
            if !redirected || attempt >= LEADER_ATTEMPTS {
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}

fn entry_from_wire(entry: WireEntry) -> Result<Entry, String> {
    let kind = FrameKind::from_u8(entry.kind)
        .ok_or_else(|| format!("a replica sent an entry of unknown kind {}", entry.kind))?;
    Ok(Entry {
        index: entry.index,
        meta: EntryMeta {
            kind,
            flags: entry.flags,
            term: 0,
            leader: 0,
            record_count: entry.record_count,
            ts_first_ms: entry.ts_first_ms,
            ts_max_ms: entry.ts_max_ms,
        },
        payload: entry.payload.0,
    })
}
