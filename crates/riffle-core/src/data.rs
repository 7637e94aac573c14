//! The data plane: routing puts to shards, shard iterators, and reads.
//!
//! **Positions.** A record's position is `(log index of its frame, slot in the frame)`. Its
//! sequence number encodes that position as the 64-bit counter `index << 16 | slot`, together with
//! the shard's creation time and ordinal (see `riffle_proto::seqno`), so sequence numbers are
//! strictly increasing per shard, survive restarts (log indexes do), and are never reused.
//! Iterators carry a position too, authenticated by an HMAC under the node's token key, so they
//! need no server-side state and survive restarts.
//!
//! **Continuation numbers.** SubscribeToShard's `ContinuationSequenceNumber` is, as on AWS, the
//! position *after* the last record delivered, not that record's number: a number with the
//! counter of the record before the next position and an arrival time no record has
//! (`riffle_proto::seqno::CONTINUATION_ARRIVAL_S`). It sorts after that record and before the
//! next, and [`SequencePoint`] resolves it to the next record for AT_SEQUENCE_NUMBER and
//! AFTER_SEQUENCE_NUMBER alike, so a consumer resuming either way neither repeats nor skips one.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock};

use riffle_proto::iterator::IteratorToken;
use riffle_proto::seqno::{SeqNo, SequenceRun};

use crate::crypto::StreamCrypto;
use crate::node::{now_ms, Node, Shard, Stream, StreamState};
use crate::record::{self, NewRecord, StoredRecord};
use crate::shard_log::{AppendError, FetchRequest, Fetched, ShardLog, TailState};
use crate::throttle;
use crate::Error;

/// Bits of a sequence number's counter that hold the slot within a frame.
const SLOT_BITS: u32 = 16;

/// A position inside a shard: the next record a reader gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub index: u64,
    pub slot: u16,
}

impl Position {
    fn after(self) -> Position {
        match self.slot.checked_add(1) {
            Some(slot) => Position {
                index: self.index,
                slot,
            },
            None => Position {
                index: self.index + 1,
                slot: 0,
            },
        }
    }
}

/// The sequence numbers of `shard`'s entry `index` from `slot` on, for records that arrived at
/// `arrival_ms` (see `SequenceRun`).
fn sequence_run(shard: &Shard, index: u64, slot: u16, arrival_ms: u64) -> SequenceRun {
    SequenceRun::new(&SeqNo {
        shard_created_s: shard.created_s(),
        shard_ordinal: shard.meta.ordinal,
        counter: (index << SLOT_BITS) | u64::from(slot),
        arrival_s: arrival_ms / 1000,
    })
}

/// The number no record of the shard is below (counter 0).
pub fn starting_sequence_number(shard: &Shard) -> String {
    SeqNo {
        shard_created_s: shard.created_s(),
        shard_ordinal: shard.meta.ordinal,
        counter: 0,
        arrival_s: shard.created_s(),
    }
    .encode()
}

/// The number every record of a closed shard is at or below.
pub fn ending_sequence_number(shard: &Shard) -> Option<String> {
    let closed = shard.meta.closed?;
    Some(
        SeqNo {
            shard_created_s: shard.created_s(),
            shard_ordinal: shard.meta.ordinal,
            counter: (closed.last_index << SLOT_BITS) | u64::from(u16::MAX),
            arrival_s: closed.closed_ms / 1000,
        }
        .encode(),
    )
}

/// The outcome of one record of a put.
#[derive(Debug, Clone)]
pub struct PutOutcome {
    pub shard_id: String,
    pub sequence_number: String,
}

/// What [`put_records`] did.
#[derive(Debug)]
pub struct PutResults {
    /// One result per record, in request order.
    pub results: Vec<Result<PutOutcome, Error>>,
    /// Bytes (data plus partition keys) of the records stored: PutRecord.Bytes and
    /// PutRecords.Bytes, summed per acknowledged frame so no per-record sizes are kept.
    pub bytes_stored: u64,
}

/// The records of one put bound for one shard: the shard, each record's (place in the request,
/// hash key), and the records in that order.
type ShardGroup = (Arc<Shard>, Vec<(usize, u128)>, Vec<NewRecord>);

/// How many times a put follows a reshard to the children of a sealed shard. Every reshard
/// publishes its routes before the next may start, so a second attempt normally succeeds; the
/// bound only guards against a stream resharded over and over.
const ROUTE_ATTEMPTS_MAX: usize = 8;

/// How long a put that met a sealed shard waits for the reshard to be published.
const ROUTE_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// Appends `records` (already validated, with their hash keys) and returns one result per record
/// in request order. Records are grouped per shard into one frame each; all frames are written
/// before any fsync is awaited, so a PutRecords spanning shards pays one group-commit round.
///
/// A group whose shard was sealed by a concurrent reshard is refused whole by the log (nothing
/// of it is stored), waits until the reshard's routes are published, and is routed again: the
/// records land in the children, after everything the parent acknowledged.
///
/// Records over their shard's write throughput are refused (ProvisionedThroughputExceeded)
/// before the frame is built, so they are never stored.
///
/// With `sealing` (an encrypted stream, see `encryption::sealing`) every frame is sealed.
pub async fn put_records(
    stream: &Arc<Stream>,
    sealing: Option<&StreamCrypto>,
    records: Vec<(NewRecord, u128)>,
) -> PutResults {
    let now = now_ms();
    let mut bytes_stored = 0;
    let total = records.len();
    let mut results: Vec<Option<Result<PutOutcome, Error>>> = vec![None; total];
    let mut todo: Vec<(usize, NewRecord, u128)> = records
        .into_iter()
        .enumerate()
        .map(|(place, (record, hash_key))| (place, record, hash_key))
        .collect();
    for _ in 0..ROUTE_ATTEMPTS_MAX {
        // Subscribed before routing, so a reshard published after this point wakes the wait.
        let mut routes_changed = stream.watch_routes();
        let mut groups: Vec<ShardGroup> = Vec::new();
        for (place, record, hash_key) in todo.drain(..) {
            let shard = stream.route(hash_key);
            match groups
                .iter_mut()
                .find(|(grouped, _, _)| Arc::ptr_eq(grouped, &shard))
            {
                Some((_, places, batch)) => {
                    places.push((place, hash_key));
                    batch.push(record);
                }
                None => groups.push((shard, vec![(place, hash_key)], vec![record])),
            }
        }
        let mut pending = Vec::with_capacity(groups.len());
        for (shard, mut places, mut batch) in groups {
            let refused = throttle::admit_writes(&shard, &mut places, &mut batch);
            if !refused.is_empty() {
                crate::metrics::write_throttled(stream, &shard, refused.len());
                let error = Error::write_throttled(&shard.id(), &stream.name, &stream.account);
                for (place, _) in refused {
                    results[place] = Some(Err(error.clone()));
                }
            }
            if batch.is_empty() {
                continue;
            }
            let sealer = sealing.and_then(|crypto| crypto.sealer(shard.meta.ordinal));
            match shard.log.start_append(&batch, now, sealer.as_ref()) {
                Err(AppendError::Sealed) => todo.extend(
                    places
                        .into_iter()
                        .zip(batch)
                        .map(|((place, hash_key), record)| (place, record, hash_key)),
                ),
                written => {
                    let bytes = crate::metrics::record_bytes(&batch);
                    // Only a replicated shard can still turn the frame away as sealed once it
                    // has left (its group learns of a seal later), so only its records are
                    // kept for routing again. A local shard's are freed now, while they are
                    // still in cache, instead of held across the fsync wait (a profile of
                    // PutRecords showed their drop at 7 % of the server's time).
                    let kept = shard.log.is_replicated().then_some(batch);
                    pending.push((shard, places, written, bytes, kept));
                }
            }
        }
        for (shard, places, written, bytes, batch) in pending {
            let outcome = match written {
                Ok(started) => shard.log.finish_append(started).await,
                Err(error) => Err(error),
            };
            if let (Err(AppendError::Sealed), Some(batch)) = (&outcome, batch) {
                // A replicated shard learns of its seal from its group, after the frame left:
                // the group stored nothing readable of it, so it is routed again. (A local
                // shard refuses a sealed append in `start_append`, above.)
                todo.extend(
                    places
                        .into_iter()
                        .zip(batch)
                        .map(|((place, hash_key), record)| (place, record, hash_key)),
                );
                continue;
            }
            match &outcome {
                Ok(appended) => {
                    crate::metrics::written(stream, &shard, bytes, places.len() as u64);
                    bytes_stored += bytes;
                    // One shard id and one full sequence-number encoding per frame; the
                    // numbers of the following slots are derived from the first.
                    let shard_id = shard.id();
                    let mut numbers = sequence_run(&shard, appended.index, 0, appended.arrival_ms);
                    for (slot, (place, _)) in places.into_iter().enumerate() {
                        if slot > 0 {
                            numbers.advance();
                        }
                        results[place] = Some(Ok(PutOutcome {
                            shard_id: shard_id.clone(),
                            sequence_number: numbers.current().to_owned(),
                        }));
                    }
                }
                Err(error) => {
                    let error = append_error(error);
                    for (place, _) in places {
                        results[place] = Some(Err(error.clone()));
                    }
                }
            }
        }
        if todo.is_empty() {
            break;
        }
        let _ = tokio::time::timeout(ROUTE_WAIT_MAX, routes_changed.changed()).await;
    }
    for (place, _, _) in todo {
        results[place] = Some(Err(append_error(&AppendError::Sealed)));
    }
    PutResults {
        results: results
            .into_iter()
            .map(|result| result.unwrap_or_else(|| Err(Error::internal("record lost its result"))))
            .collect(),
        bytes_stored,
    }
}

fn append_error(error: &AppendError) -> Error {
    tracing::error!(%error, "append failed");
    Error::internal(riffle_proto::error::INTERNAL_SERVICE_FAILURE)
}

/// How a GetShardIterator call asked to start.
#[derive(Debug, Clone)]
pub enum StartAt {
    TrimHorizon,
    Latest,
    AtSequence(SequencePoint),
    AfterSequence(SequencePoint),
    AtTimestamp(u64),
}

/// What a sequence number given to GetShardIterator or SubscribeToShard points at: a record's
/// position, or (a continuation number) the point just after the record at `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequencePoint {
    position: Position,
    continuation: bool,
}

impl SequencePoint {
    /// Where AT_SEQUENCE_NUMBER starts: the record itself, or, for a continuation number, the
    /// record after the one it was made from.
    pub fn at(self) -> Position {
        if self.continuation {
            self.position.after()
        } else {
            self.position
        }
    }

    /// Where AFTER_SEQUENCE_NUMBER starts: the record after, either way.
    pub fn after(self) -> Position {
        self.position.after()
    }
}

/// Decodes a sequence number given to `shard`, with AWS's texts for numbers that are malformed,
/// from another shard, or from another incarnation of the stream.
pub fn position_of(
    stream: &Stream,
    shard: &Shard,
    sequence_number: &str,
) -> Result<SequencePoint, Error> {
    let decoded = SeqNo::decode(sequence_number).ok_or_else(|| {
        Error::starting_sequence_number_invalid(
            sequence_number,
            &shard.id(),
            &stream.name,
            &stream.account,
        )
    })?;
    if decoded.shard_ordinal != shard.meta.ordinal {
        return Err(Error::sequence_number_wrong_shard(
            &riffle_proto::shard_id::shard_id(decoded.shard_ordinal),
            &shard.id(),
        ));
    }
    if decoded.shard_created_s != shard.created_s() {
        return Err(Error::starting_sequence_number_foreign(
            sequence_number,
            &shard.id(),
            &stream.name,
            &stream.account,
        ));
    }
    Ok(SequencePoint {
        position: Position {
            index: decoded.counter >> SLOT_BITS,
            slot: (decoded.counter & u64::from(u16::MAX)) as u16,
        },
        continuation: decoded.is_continuation(),
    })
}

/// Resolves a starting point to a position and encodes the iterator.
pub fn shard_iterator(
    node: &Node,
    stream: &Stream,
    shard: &Shard,
    start: StartAt,
) -> Result<String, Error> {
    let position = start_position(shard, start)?;
    Ok(encode_iterator(node, stream, shard, position, now_ms()))
}

/// The position a reader starting at `start` reads first (GetShardIterator, SubscribeToShard).
pub fn start_position(shard: &Shard, start: StartAt) -> Result<Position, Error> {
    refuse_unless_stored_here(shard)?;
    let tail = shard.log.tail();
    Ok(match start {
        StartAt::TrimHorizon => Position {
            index: shard.log.first_index(),
            slot: 0,
        },
        StartAt::Latest => Position {
            index: tail.visible_index + 1,
            slot: 0,
        },
        StartAt::AtSequence(point) => point.at(),
        StartAt::AfterSequence(point) => point.after(),
        StartAt::AtTimestamp(ts_ms) => {
            let index = shard
                .log
                .find_by_timestamp(ts_ms)
                .map_err(|error| Error::internal(error.to_string()))?
                .unwrap_or(tail.visible_index + 1);
            Position { index, slot: 0 }
        }
    })
}

/// [`start_position`] on any node: a node holding no replica of the shard asks one of its
/// replicas for the log's bounds (TRIM_HORIZON, LATEST, AT_TIMESTAMP).
pub async fn start_position_anywhere(shard: &Shard, start: StartAt) -> Result<Position, Error> {
    if shard.log.stored_here() {
        return start_position(shard, start);
    }
    let at_timestamp = match start {
        StartAt::AtSequence(point) => return Ok(point.at()),
        StartAt::AfterSequence(point) => return Ok(point.after()),
        StartAt::AtTimestamp(ts_ms) => Some(ts_ms),
        StartAt::TrimHorizon | StartAt::Latest => None,
    };
    let fetched = fetch(
        shard,
        FetchRequest {
            from_index: 0,
            entries_max: 0,
            bytes_max: 0,
            at_timestamp,
            wait_ms: 0,
        },
    )
    .await?;
    Ok(match start {
        StartAt::TrimHorizon => Position {
            index: fetched.first_index,
            slot: 0,
        },
        _ => Position {
            index: fetched
                .found_index
                .unwrap_or(fetched.tail.visible_index + 1),
            slot: 0,
        },
    })
}

/// [`shard_iterator`] on any node (see [`start_position_anywhere`]).
pub async fn shard_iterator_anywhere(
    node: &Node,
    stream: &Stream,
    shard: &Shard,
    start: StartAt,
) -> Result<String, Error> {
    let position = start_position_anywhere(shard, start).await?;
    Ok(encode_iterator(node, stream, shard, position, now_ms()))
}

/// Reads from one of the replicas of a shard this node holds none of.
async fn fetch(shard: &Shard, request: FetchRequest) -> Result<Fetched, Error> {
    shard.log.fetch(request).await.map_err(|reason| {
        Error::internal(format!(
            "no replica of shard {} answered the read: {reason}",
            riffle_proto::shard_id::shard_id(shard.meta.ordinal)
        ))
    })
}

/// A cluster node reads only the shards it holds a replica of; the others' tails are not
/// here, and answering from an empty log would hide records.
fn refuse_unless_stored_here(shard: &Shard) -> Result<(), Error> {
    if shard.log.stored_here() {
        Ok(())
    } else {
        Err(Error::internal(format!(
            "this node holds no replica of shard {} (replicas {:?})",
            riffle_proto::shard_id::shard_id(shard.meta.ordinal),
            shard.meta.replicas
        )))
    }
}

/// SubscribeToShard's `ContinuationSequenceNumber` for a reader whose next record is at
/// `position`: the continuation number just after the position before it (see the module
/// notes), from which AT_SEQUENCE_NUMBER and AFTER_SEQUENCE_NUMBER both start at `position`.
/// Also sent when nothing was read yet, so an idle subscriber's checkpoint still advances.
pub fn continuation_sequence_number(shard: &Shard, position: Position) -> String {
    let before = if position.slot > 0 {
        Position {
            index: position.index,
            slot: position.slot - 1,
        }
    } else {
        // `after()` of slot 0xFFFF of the previous entry is slot 0 of this one.
        Position {
            index: position.index.saturating_sub(1),
            slot: u16::MAX,
        }
    };
    SeqNo {
        shard_created_s: shard.created_s(),
        shard_ordinal: shard.meta.ordinal,
        counter: (before.index << SLOT_BITS) | u64::from(before.slot),
        arrival_s: riffle_proto::seqno::CONTINUATION_ARRIVAL_S,
    }
    .encode()
}

/// A number no other iterator of this process carries with the same position and issue
/// millisecond: AWS hands out a new iterator on every call, so riffle does too. It starts at a
/// random value, so a restarted server does not repeat the previous run's iterators either.
fn iterator_nonce() -> u32 {
    static NEXT: LazyLock<AtomicU32> = LazyLock::new(|| {
        let mut seed = [0u8; 4];
        // Without OS randomness the counter still makes this process's iterators unique.
        let _ = getrandom::fill(&mut seed);
        AtomicU32::new(u32::from_le_bytes(seed))
    });
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn encode_iterator(
    node: &Node,
    stream: &Stream,
    shard: &Shard,
    position: Position,
    issued_ms: u64,
) -> String {
    IteratorToken {
        stream_name: stream.name.clone(),
        stream_created_ms: stream.created_ms,
        shard_ordinal: shard.meta.ordinal,
        log_index: position.index,
        sub: position.slot,
        issued_ms,
        nonce: Some(iterator_nonce()),
    }
    .encode(&node.token_key)
}

/// One GetRecords answer, before encoding.
pub struct ReadBatch {
    pub records: Vec<(String, StoredRecord)>,
    /// `None` once a closed shard is fully read.
    pub next_iterator: Option<String>,
    pub millis_behind_latest: u64,
    /// Set together with `next_iterator == None`.
    pub child_shards: Vec<Arc<Shard>>,
    /// The stream and shard read (for their metrics).
    pub stream: Arc<Stream>,
    pub shard: Arc<Shard>,
}

/// A GetRecords read of a shard this node holds no replica of, everything checked and
/// admitted: finish it with [`get_records_remote`].
pub struct RemoteRead {
    stream: Arc<Stream>,
    state: Arc<StreamState>,
    shard: Arc<Shard>,
    position: Position,
    limit: usize,
    bytes_max: usize,
    now: u64,
}

/// What [`get_records`] did: read, or (a shard stored on other nodes) left the read to
/// [`get_records_remote`].
pub enum Reading {
    Done(ReadBatch),
    Remote(RemoteRead),
}

/// Reads from an iterator: at most `limit` records and `bytes_max(stream)` bytes of data (asked
/// once the caller is authorized and the read admitted), never a record older than the
/// stream's retention, never past the visible tail. For a shard this node holds no replica
/// of, the read itself is left to [`get_records_remote`].
pub fn get_records(
    node: &Node,
    account: &str,
    iterator: &str,
    limit: usize,
    bytes_max: impl FnOnce(&Arc<Stream>) -> Result<usize, Error>,
    authorize: impl FnOnce(&Arc<Stream>) -> Result<(), Error>,
) -> Result<Reading, Error> {
    let token = IteratorToken::decode(riffle_proto::iterator::unquoted(iterator), &node.token_key)?;
    let now = now_ms();
    if now.saturating_sub(token.issued_ms) > riffle_proto::limits::ITERATOR_LIFETIME_MS {
        return Err(Error::expired_iterator(token.issued_ms, now));
    }
    // AWS names the iterator's shard when its stream is gone (deleted, or deleted and created
    // again), as when the shard is.
    let shard_gone = || {
        Error::shard_not_found(
            &riffle_proto::shard_id::shard_id(token.shard_ordinal),
            &token.stream_name,
            account,
        )
    };
    let stream = node
        .stream(account, &token.stream_name)
        .filter(|stream| stream.created_ms == token.stream_created_ms)
        .ok_or_else(shard_gone)?;
    authorize(&stream)?;
    let state = stream.state();
    let shard = state.shard(token.shard_ordinal).ok_or_else(shard_gone)?;
    throttle::admit_read(shard, &stream)?;
    let bytes_max = bytes_max(&stream)?;
    let position = Position {
        index: token.log_index,
        slot: token.sub,
    };
    if !shard.log.stored_here() {
        return Ok(Reading::Remote(RemoteRead {
            shard: Arc::clone(shard),
            stream,
            state,
            position,
            limit,
            bytes_max,
            now,
        }));
    }
    let read = read_from(&state, shard, position, limit, bytes_max, now)?;
    Ok(Reading::Done(read_batch(
        node, stream, &state, shard, read, now,
    )))
}

/// Finishes a GetRecords read of a shard this node holds no replica of: the entries come
/// from one of its replicas, and the answer is built here exactly as a replica builds it.
pub async fn get_records_remote(node: &Node, remote: RemoteRead) -> Result<ReadBatch, Error> {
    let RemoteRead {
        stream,
        state,
        shard,
        position,
        limit,
        bytes_max,
        now,
    } = remote;
    let read = read_remote(&state, &shard, position, limit, bytes_max, now, 0).await?;
    Ok(read_batch(node, stream, &state, &shard, read, now))
}

fn read_batch(
    node: &Node,
    stream: Arc<Stream>,
    state: &StreamState,
    shard: &Arc<Shard>,
    read: Read,
    now: u64,
) -> ReadBatch {
    let bytes: usize = read
        .records
        .iter()
        .map(|(_, stored)| stored.data.len() + stored.partition_key.len())
        .sum();
    throttle::charge_read(shard, bytes);
    let (next_iterator, child_shards) = if read.ended {
        (None, children(state, shard))
    } else {
        (
            Some(encode_iterator(node, &stream, shard, read.next, now)),
            Vec::new(),
        )
    };
    ReadBatch {
        records: read.records,
        next_iterator,
        millis_behind_latest: read.millis_behind_latest,
        child_shards,
        shard: Arc::clone(shard),
        stream,
    }
}

/// What one read from a position found.
pub struct Read {
    /// Records with their sequence numbers, in order.
    pub records: Vec<(String, StoredRecord)>,
    /// Where the next read starts.
    pub next: Position,
    pub millis_behind_latest: u64,
    /// The shard is closed and `next` is past its last entry: nothing will ever follow.
    pub ended: bool,
    /// The visible tail the read stopped at.
    pub visible_index: u64,
}

/// Where [`read_from`] takes entries: the shard's own log, or entries a replica sent.
trait EntrySource {
    fn tail(&self) -> TailState;
    fn first_index(&self) -> u64;
    fn read(
        &self,
        from: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<riffle_log::Entry>, Error>;
}

impl EntrySource for ShardLog {
    #[inline]
    fn tail(&self) -> TailState {
        ShardLog::tail(self)
    }

    #[inline]
    fn first_index(&self) -> u64 {
        ShardLog::first_index(self)
    }

    #[inline]
    fn read(
        &self,
        from: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<riffle_log::Entry>, Error> {
        ShardLog::read(self, from, max_entries, max_bytes)
            .map_err(|error| Error::internal(error.to_string()))
    }
}

/// The entries one fetch brought: what a read asks for beyond them is not there yet, and
/// the read ends early (GetRecords may return fewer records than there are; its next
/// iterator continues after the last).
impl EntrySource for Fetched {
    fn tail(&self) -> TailState {
        self.tail
    }

    fn first_index(&self) -> u64 {
        self.first_index
    }

    fn read(
        &self,
        from: u64,
        max_entries: usize,
        _max_bytes: usize,
    ) -> Result<Vec<riffle_log::Entry>, Error> {
        Ok(self
            .entries
            .iter()
            .filter(|entry| entry.index >= from)
            .take(max_entries)
            .cloned()
            .collect())
    }
}

/// [`read_from`] on any node: a node holding no replica of the shard reads through one of
/// its replicas (waiting there up to `wait_ms` for a first entry at `position`), then builds
/// the records here, exactly as the replica would.
pub async fn read_anywhere(
    state: &StreamState,
    shard: &Shard,
    position: Position,
    limit: usize,
    bytes_max: usize,
    now: u64,
    wait_ms: u64,
) -> Result<Read, Error> {
    if shard.log.stored_here() {
        return read_from(state, shard, position, limit, bytes_max, now);
    }
    read_remote(state, shard, position, limit, bytes_max, now, wait_ms).await
}

async fn read_remote(
    state: &StreamState,
    shard: &Shard,
    position: Position,
    limit: usize,
    bytes_max: usize,
    now: u64,
    wait_ms: u64,
) -> Result<Read, Error> {
    let fetched = fetch(
        shard,
        FetchRequest {
            from_index: position.index,
            entries_max: limit,
            bytes_max,
            at_timestamp: None,
            wait_ms,
        },
    )
    .await?;
    read_core(state, shard, &fetched, position, limit, bytes_max, now)
}

/// The children of `shard` (the shards naming it as parent or adjacent parent).
pub fn children(state: &StreamState, shard: &Shard) -> Vec<Arc<Shard>> {
    state
        .shards
        .iter()
        .filter(|child| {
            child.meta.parent == Some(shard.meta.ordinal)
                || child.meta.adjacent_parent == Some(shard.meta.ordinal)
        })
        .cloned()
        .collect()
}

/// The records of a sealed frame: KMSDisabledException if its key is disabled, an internal
/// error if it does not authenticate (never its bytes).
fn open_sealed(
    state: &StreamState,
    shard: &Shard,
    entry: &riffle_log::Entry,
) -> Result<bytes::Bytes, Error> {
    let Some(crypto) = state.crypto.as_deref() else {
        tracing::error!(
            shard = shard.meta.ordinal,
            index = entry.index,
            flags = entry.meta.flags,
            "a flagged frame on a stream that never had keys"
        );
        return Err(Error::internal(
            riffle_proto::error::INTERNAL_SERVICE_FAILURE,
        ));
    };
    crypto.open(shard.meta.ordinal, entry).map_err(|error| {
        crate::encryption::open_failure(crypto, shard.meta.ordinal, entry.index, error)
    })
}

/// Reads from `position`: at most `limit` records and `bytes_max` bytes of data (at least one
/// record if any is there), never a record older than the stream's retention, never past the
/// visible tail. Shared by GetRecords and SubscribeToShard.
pub fn read_from(
    state: &StreamState,
    shard: &Shard,
    position: Position,
    limit: usize,
    bytes_max: usize,
    now: u64,
) -> Result<Read, Error> {
    refuse_unless_stored_here(shard)?;
    read_core(state, shard, &*shard.log, position, limit, bytes_max, now)
}

fn read_core<S: EntrySource + ?Sized>(
    state: &StreamState,
    shard: &Shard,
    source: &S,
    position: Position,
    limit: usize,
    bytes_max: usize,
    now: u64,
) -> Result<Read, Error> {
    let retention_ms = u64::from(state.retention_hours) * 3_600_000;
    let cutoff_ms = now.saturating_sub(retention_ms);
    let tail = source.tail();
    let first_index = source.first_index();
    let mut position = if position.index < first_index {
        Position {
            index: first_index,
            slot: 0,
        }
    } else {
        position
    };
    let mut records = Vec::new();
    let mut bytes = 0usize;
    let mut run: Option<(u64, u64, SequenceRun)> = None;
    'read: while position.index <= tail.visible_index && records.len() < limit {
        let entries = source.read(
            position.index,
            limit - records.len(),
            bytes_max.saturating_sub(bytes).max(1),
        )?;
        if entries.is_empty() {
            break;
        }
        for entry in entries {
            if entry.index != position.index {
                // The log skipped ahead (retention purged what we pointed at).
                position = Position {
                    index: entry.index,
                    slot: 0,
                };
            }
            if entry.meta.kind != riffle_log::FrameKind::Data {
                // A seal (or, later, a Raft) frame: no records, nothing to return.
                position = Position {
                    index: entry.index + 1,
                    slot: 0,
                };
                continue;
            }
            let sealed = entry.meta.flags != 0;
            let opened;
            let payload = if sealed {
                if entry.meta.ts_max_ms < cutoff_ms {
                    // Every record is past retention: nothing to open.
                    position = Position {
                        index: entry.index + 1,
                        slot: 0,
                    };
                    continue;
                }
                match open_sealed(state, shard, &entry) {
                    Ok(records) => opened = records,
                    // What came before is served; the next read starts at this frame and
                    // answers the error (KMSDisabledException, or internal for corruption).
                    Err(_) if !records.is_empty() => break 'read,
                    Err(error) => return Err(error),
                }
                &opened
            } else {
                &entry.payload
            };
            let decoded =
                record::decode_all(payload, entry.meta.ts_first_ms, entry.meta.record_count)
                    .map_err(|error| Error::internal(error.to_string()))?;
            for (slot, mut stored) in decoded.into_iter().enumerate() {
                stored.encrypted = sealed;
                let slot = slot as u16;
                if slot < position.slot {
                    continue;
                }
                let here = Position {
                    index: entry.index,
                    slot,
                };
                if stored.arrival_ms < cutoff_ms {
                    position = here.after();
                    continue;
                }
                let size = stored.data.len() + stored.partition_key.len();
                if records.len() >= limit || (!records.is_empty() && bytes + size > bytes_max) {
                    break 'read;
                }
                bytes += size;
                // Records of one put share an arrival second, so their numbers form a run.
                let arrival_s = stored.arrival_ms / 1000;
                let number = match &mut run {
                    Some((run_index, run_arrival_s, numbers))
                        if *run_index == entry.index
                            && *run_arrival_s == arrival_s
                            && numbers.slot() + 1 == u32::from(slot) =>
                    {
                        numbers.advance();
                        numbers.current().to_owned()
                    }
                    _ => {
                        let numbers = sequence_run(shard, entry.index, slot, stored.arrival_ms);
                        let number = numbers.current().to_owned();
                        run = Some((entry.index, arrival_s, numbers));
                        number
                    }
                };
                records.push((number, stored));
                position = here.after();
            }
            position = Position {
                index: entry.index + 1,
                slot: 0,
            };
        }
    }

    let caught_up = position.index > tail.visible_index;
    let millis_behind_latest = match records.last() {
        Some((_, last)) if !caught_up => tail.ts_last_ms.saturating_sub(last.arrival_ms),
        _ => 0,
    };
    let ended = shard
        .meta
        .closed
        .is_some_and(|closed| position.index > closed.last_index);
    Ok(Read {
        records,
        next: position,
        millis_behind_latest,
        ended,
        visible_index: tail.visible_index,
    })
}
