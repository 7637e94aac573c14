//! What writers did and readers saw against a cluster, and the one checker that judges it
//! (used by the leader-kill test and by the chaos run alike).
//!
//! Every put attempt carries bytes of its own (an id and a filler derived from it), so a
//! record read back names the attempt that wrote it, and a record stored twice, or stored by
//! an attempt that was refused, cannot hide behind another attempt's identical bytes.
//!
//! An attempt ends in one of three ways: acknowledged (at a shard and sequence number),
//! refused definitively (a 4xx answer, or a per-record error that means "not stored"), or
//! unknown (a 5xx, InternalFailure, a timeout or a lost connection: stored once or not at
//! all are both correct).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};

/// How a put attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Acked {
        shard: u32,
        sequence: String,
    },
    /// The service said the record was not stored.
    Refused(String),
    /// Nobody knows: the record may be stored, at most once.
    Unknown(String),
}

/// One put attempt of one record.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub id: u64,
    pub key: String,
    /// The call it was part of (PutRecord: a call of its own) and its place in it.
    pub call: u64,
    pub slot: u32,
    pub sent: Instant,
    pub finished: Instant,
    pub outcome: Outcome,
}

/// The bytes attempt `id` sends: its id in hex, then a filler of a length and content
/// derived from it, so sizes vary and any stored byte can be checked.
pub fn record_data(id: u64) -> Vec<u8> {
    let mut data = format!("{id:016x}|").into_bytes();
    let mixed = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let filler = (mixed >> 56) as usize % 200;
    data.extend((0..filler).map(|i| b'a' + ((mixed >> (i % 7 * 8)) as u8 ^ i as u8) % 26));
    data
}

/// The attempt id a stored record claims, if its bytes are exactly what that attempt sent.
pub fn record_id(data: &[u8]) -> Option<u64> {
    let hex = std::str::from_utf8(data.get(..16)?).ok()?;
    let id = u64::from_str_radix(hex, 16).ok()?;
    (record_data(id) == data).then_some(id)
}

/// The ordinal of a `shardId-NNNNNNNNNNNN`.
pub fn shard_ordinal(shard_id: &str) -> u32 {
    shard_id
        .strip_prefix("shardId-")
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("not a shard id: {shard_id:?}"))
}

/// Numeric order of two decimal sequence numbers (they exceed u128).
pub fn compare_sequences(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// How an SDK failure of a whole call counts: refused (a 4xx from the service: nothing
/// was stored) or unknown (anything else).
pub fn call_outcome<E: ProvideErrorMetadata>(error: &SdkError<E>) -> Outcome {
    match error {
        // A 4xx: the request was judged and refused before anything was stored.
        SdkError::ServiceError(service) if service.raw().status().is_client_error() => {
            Outcome::Refused(service.err().code().unwrap_or("?").to_owned())
        }
        SdkError::ServiceError(service) => {
            Outcome::Unknown(service.err().code().unwrap_or("?").to_owned())
        }
        other => Outcome::Unknown(format!("{other}")),
    }
}

/// How a PutRecords entry's error code counts.
pub fn entry_outcome(code: &str) -> Outcome {
    match code {
        "ProvisionedThroughputExceededException" | "KMSThrottlingException" => {
            Outcome::Refused(code.to_owned())
        }
        _ => Outcome::Unknown(code.to_owned()),
    }
}

/// Every attempt of a run, by id.
#[derive(Default)]
pub struct History {
    attempts: HashMap<u64, Attempt>,
}

impl History {
    pub fn add(&mut self, attempt: Attempt) {
        let id = attempt.id;
        assert!(
            self.attempts.insert(id, attempt).is_none(),
            "attempt id {id} used twice by the test"
        );
    }

    pub fn extend(&mut self, other: History) {
        for attempt in other.attempts.into_values() {
            self.add(attempt);
        }
    }

    pub fn len(&self) -> usize {
        self.attempts.len()
    }

    pub fn acked(&self) -> usize {
        self.attempts
            .values()
            .filter(|attempt| matches!(attempt.outcome, Outcome::Acked { .. }))
            .count()
    }

    /// (acknowledged, refused, unknown) counts.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut counts = (0, 0, 0);
        for attempt in self.attempts.values() {
            match attempt.outcome {
                Outcome::Acked { .. } => counts.0 += 1,
                Outcome::Refused(_) => counts.1 += 1,
                Outcome::Unknown(_) => counts.2 += 1,
            }
        }
        counts
    }

    /// Per shard, the sorted moments writes to it were acknowledged.
    pub fn ack_times(&self) -> BTreeMap<u32, Vec<Instant>> {
        let mut times: BTreeMap<u32, Vec<Instant>> = BTreeMap::new();
        for attempt in self.attempts.values() {
            if let Outcome::Acked { shard, .. } = attempt.outcome {
                times.entry(shard).or_default().push(attempt.finished);
            }
        }
        for list in times.values_mut() {
            list.sort_unstable();
        }
        times
    }
}

/// The longest stretch within `[from, to]` during which some shard acknowledged no write
/// (the failover gap of whatever happened at `from`).
pub fn longest_gap(
    ack_times: &BTreeMap<u32, Vec<Instant>>,
    from: Instant,
    to: Instant,
) -> Duration {
    let mut longest = Duration::ZERO;
    for times in ack_times.values() {
        let mut previous = from;
        for &at in times.iter().filter(|at| **at > from) {
            longest = longest.max(at.min(to).saturating_duration_since(previous));
            if at >= to {
                break;
            }
            previous = at;
        }
        if times.last().is_none_or(|last| *last < to) {
            longest = longest.max(to.saturating_duration_since(previous));
        }
    }
    longest
}

/// A shard's records in the order one read returned them: (sequence number, data).
pub type ShardRead = Vec<(String, Vec<u8>)>;

/// One node's full read of a stream: shard ordinal -> records.
pub type StreamRead = BTreeMap<u32, ShardRead>;

/// Violations found, at most this many kept (the first ones tell the story).
const VIOLATIONS_MAX: usize = 40;

fn note(violations: &mut Vec<String>, what: String) {
    if violations.len() < VIOLATIONS_MAX {
        violations.push(what);
    }
}

/// Judges one node's complete read of the stream against the writers' history:
/// - sequence numbers strictly increase within each shard;
/// - no acknowledged record is lost: each is there, at its acknowledged shard and sequence
///   number, with its bytes;
/// - no phantom: every record read was sent by an attempt that was not refused;
/// - no duplicate: each attempt's bytes are stored at most once;
/// - per partition key within a shard, an acknowledged record sorts after every record of
///   the key acknowledged before it was sent, and records of one call keep the call's order.
pub fn check(what: &str, read: &StreamRead, history: &History) -> Vec<String> {
    let mut violations = Vec::new();
    let mut found: HashMap<u64, (u32, &str)> = HashMap::new();
    for (shard, records) in read {
        let mut previous: Option<&str> = None;
        for (sequence, data) in records {
            if let Some(previous) = previous {
                if compare_sequences(previous, sequence) != Ordering::Less {
                    note(
                        &mut violations,
                        format!(
                            "{what}: shard {shard}: sequence number {sequence} follows {previous}"
                        ),
                    );
                }
            }
            previous = Some(sequence);
            let Some(id) = record_id(data) else {
                note(
                    &mut violations,
                    format!(
                        "{what}: shard {shard} {sequence}: phantom, bytes no attempt sent: {:?}",
                        String::from_utf8_lossy(&data[..data.len().min(40)])
                    ),
                );
                continue;
            };
            if let Some((other_shard, other_sequence)) = found.insert(id, (*shard, sequence)) {
                note(
                    &mut violations,
                    format!(
                        "{what}: attempt {id:016x} stored twice: shard {other_shard} {other_sequence} \
                         and shard {shard} {sequence}"
                    ),
                );
            }
            match history.attempts.get(&id).map(|attempt| &attempt.outcome) {
                None => note(
                    &mut violations,
                    format!("{what}: shard {shard} {sequence}: phantom, attempt {id:016x} was never made"),
                ),
                Some(Outcome::Refused(reason)) => note(
                    &mut violations,
                    format!(
                        "{what}: shard {shard} {sequence}: attempt {id:016x} is stored but was refused ({reason})"
                    ),
                ),
                Some(Outcome::Acked {
                    shard: acked_shard,
                    sequence: acked_sequence,
                }) if (acked_shard, acked_sequence.as_str()) != (shard, sequence.as_str()) => {
                    note(
                        &mut violations,
                        format!(
                            "{what}: attempt {id:016x} acknowledged at shard {acked_shard} \
                             {acked_sequence} but stored at shard {shard} {sequence}"
                        ),
                    )
                }
                Some(_) => {}
            }
        }
    }
    let mut lost = 0usize;
    let mut by_key: HashMap<(u32, &str), Vec<&Attempt>> = HashMap::new();
    for attempt in history.attempts.values() {
        if let Outcome::Acked { shard, sequence } = &attempt.outcome {
            by_key
                .entry((*shard, attempt.key.as_str()))
                .or_default()
                .push(attempt);
            if found.get(&attempt.id) != Some(&(*shard, sequence.as_str())) {
                lost += 1;
                note(
                    &mut violations,
                    format!(
                        "{what}: acknowledged attempt {:016x} (shard {shard} {sequence}, key {}) is lost",
                        attempt.id, attempt.key
                    ),
                );
            }
        }
    }
    if lost > 0 {
        note(
            &mut violations,
            format!("{what}: {lost} acknowledged records lost in all"),
        );
    }
    for ((shard, key), attempts) in by_key {
        key_order(what, shard, key, attempts, &mut violations);
    }
    violations
}

fn sequence_of(attempt: &Attempt) -> &str {
    match &attempt.outcome {
        Outcome::Acked { sequence, .. } => sequence,
        _ => unreachable!("only acknowledged attempts are ordered"),
    }
}

/// Real-time order of one key's acknowledged records in one shard: a record sent after
/// another was acknowledged sorts after it; within a call, request order.
fn key_order(
    what: &str,
    shard: u32,
    key: &str,
    mut attempts: Vec<&Attempt>,
    violations: &mut Vec<String>,
) {
    attempts.sort_by_key(|attempt| (attempt.call, attempt.slot));
    for pair in attempts.windows(2) {
        if pair[0].call == pair[1].call
            && compare_sequences(sequence_of(pair[0]), sequence_of(pair[1])) != Ordering::Less
        {
            note(
                violations,
                format!(
                    "{what}: shard {shard} key {key}: call {} put {:016x} before {:016x} but their \
                     numbers are {} and {}",
                    pair[0].call,
                    pair[0].id,
                    pair[1].id,
                    sequence_of(pair[0]),
                    sequence_of(pair[1])
                ),
            );
        }
    }
    let mut by_finish = attempts.clone();
    by_finish.sort_by_key(|attempt| attempt.finished);
    attempts.sort_by_key(|attempt| attempt.sent);
    let mut done = 0;
    let mut highest: Option<&Attempt> = None;
    for attempt in attempts {
        while done < by_finish.len() && by_finish[done].finished < attempt.sent {
            let candidate = by_finish[done];
            if highest.is_none_or(|high| {
                compare_sequences(sequence_of(high), sequence_of(candidate)) == Ordering::Less
            }) {
                highest = Some(candidate);
            }
            done += 1;
        }
        if let Some(high) = highest {
            if compare_sequences(sequence_of(high), sequence_of(attempt)) != Ordering::Less {
                note(
                    violations,
                    format!(
                        "{what}: shard {shard} key {key}: {:016x} was sent after {:016x} was \
                         acknowledged, yet its number {} is not above {}",
                        attempt.id,
                        high.id,
                        sequence_of(attempt),
                        sequence_of(high)
                    ),
                );
            }
        }
    }
}

/// What readers were served while the run went on: (shard, sequence number) -> attempt id,
/// with the node that served it first.
#[derive(Default)]
pub struct Served {
    records: HashMap<(u32, String), (u64, usize)>,
}

impl Served {
    /// Notes that `node` served attempt `id`'s bytes at (shard, sequence); a violation if
    /// another record was served there before.
    pub fn note(&mut self, node: usize, shard: u32, sequence: &str, data: &[u8]) -> Option<String> {
        let Some(id) = record_id(data) else {
            return Some(format!(
                "node {node} served shard {shard} {sequence}: bytes no attempt sent"
            ));
        };
        match self.records.get(&(shard, sequence.to_owned())) {
            Some((earlier, by)) if *earlier != id => Some(format!(
                "shard {shard} {sequence}: node {by} served {earlier:016x}, node {node} served {id:016x}"
            )),
            Some(_) => None,
            None => {
                self.records.insert((shard, sequence.to_owned()), (id, node));
                None
            }
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Everything a reader was served must still be there, unchanged: a record served and
    /// then gone was served before it was committed (a paused leader's, say).
    pub fn check(&self, what: &str, read: &StreamRead) -> Vec<String> {
        let mut at: HashMap<(u32, &str), u64> = HashMap::new();
        for (shard, records) in read {
            for (sequence, data) in records {
                if let Some(id) = record_id(data) {
                    at.insert((*shard, sequence.as_str()), id);
                }
            }
        }
        let mut violations = Vec::new();
        for ((shard, sequence), (id, node)) in &self.records {
            match at.get(&(*shard, sequence.as_str())) {
                Some(stored) if stored == id => {}
                other => note(
                    &mut violations,
                    format!(
                        "{what}: node {node} served {id:016x} at shard {shard} {sequence}, which \
                         now holds {:?}",
                        other.map(|id| format!("{id:016x}"))
                    ),
                ),
            }
        }
        violations
    }
}

/// Where two nodes' reads differ, if they do (the cluster did not converge).
pub fn difference(a: &StreamRead, b: &StreamRead) -> Option<String> {
    for shard in a.keys().chain(b.keys()) {
        let (left, right) = (a.get(shard), b.get(shard));
        let (left, right) = (
            left.map(Vec::as_slice).unwrap_or_default(),
            right.map(Vec::as_slice).unwrap_or_default(),
        );
        if left.len() != right.len() {
            return Some(format!(
                "shard {shard}: {} records against {}",
                left.len(),
                right.len()
            ));
        }
        if let Some(((s1, _), (s2, _))) = left
            .iter()
            .zip(right)
            .find(|(x, y)| x.0 != y.0 || x.1 != y.1)
        {
            return Some(format!("shard {shard}: {s1} against {s2}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acked(id: u64, key: &str, call: u64, sequence: &str, at: Instant) -> Attempt {
        Attempt {
            id,
            key: key.to_owned(),
            call,
            slot: 0,
            sent: at,
            finished: at + Duration::from_millis(5),
            outcome: Outcome::Acked {
                shard: 0,
                sequence: sequence.to_owned(),
            },
        }
    }

    #[test]
    fn record_bytes_name_their_attempt() {
        for id in [0, 1, 77, u64::MAX >> 1] {
            assert_eq!(record_id(&record_data(id)), Some(id));
        }
        let mut changed = record_data(5);
        let last = changed.len() - 1;
        changed[last] ^= 1;
        assert_eq!(record_id(&changed), None);
    }

    #[test]
    fn the_checker_finds_each_kind_of_violation() {
        let t0 = Instant::now();
        let mut history = History::default();
        history.add(acked(1, "k", 1, "10", t0));
        history.add(acked(2, "k", 2, "20", t0 + Duration::from_millis(10)));
        let mut refused = acked(3, "k", 3, "0", t0);
        refused.outcome = Outcome::Refused("ResourceNotFoundException".into());
        history.add(refused);
        let good: StreamRead = BTreeMap::from([(
            0,
            vec![("10".into(), record_data(1)), ("20".into(), record_data(2))],
        )]);
        assert!(check("good", &good, &history).is_empty());

        let lost: StreamRead = BTreeMap::from([(0, vec![("10".into(), record_data(1))])]);
        assert!(check("x", &lost, &history)
            .iter()
            .any(|v| v.contains("is lost")));
        let phantom: StreamRead = BTreeMap::from([(
            0,
            vec![
                ("10".into(), record_data(1)),
                ("20".into(), record_data(2)),
                ("30".into(), record_data(9)),
            ],
        )]);
        assert!(check("x", &phantom, &history)
            .iter()
            .any(|v| v.contains("never made")));
        let stored_refused: StreamRead = BTreeMap::from([(
            0,
            vec![
                ("10".into(), record_data(1)),
                ("20".into(), record_data(2)),
                ("30".into(), record_data(3)),
            ],
        )]);
        assert!(check("x", &stored_refused, &history)
            .iter()
            .any(|v| v.contains("refused")));
        let twice: StreamRead = BTreeMap::from([(
            0,
            vec![
                ("10".into(), record_data(1)),
                ("20".into(), record_data(2)),
                ("30".into(), record_data(2)),
            ],
        )]);
        assert!(check("x", &twice, &history)
            .iter()
            .any(|v| v.contains("stored twice")));
        let backwards: StreamRead = BTreeMap::from([(
            0,
            vec![("20".into(), record_data(2)), ("10".into(), record_data(1))],
        )]);
        assert!(check("x", &backwards, &history)
            .iter()
            .any(|v| v.contains("follows")));

        // Sent after 1 was acknowledged, yet numbered below it.
        let mut history = History::default();
        history.add(acked(1, "k", 1, "20", t0));
        history.add(acked(2, "k", 2, "10", t0 + Duration::from_millis(10)));
        let reordered: StreamRead = BTreeMap::from([(
            0,
            vec![("10".into(), record_data(2)), ("20".into(), record_data(1))],
        )]);
        assert!(check("x", &reordered, &history)
            .iter()
            .any(|v| v.contains("was sent after")));
    }

    #[test]
    fn the_gap_is_the_longest_stretch_without_an_acknowledgement() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let times = BTreeMap::from([(0, vec![ms(0), ms(100), ms(900), ms(950)])]);
        assert_eq!(
            longest_gap(&times, ms(50), ms(1000)),
            Duration::from_millis(800)
        );
        // A shard that never recovers within the window counts to its end.
        let times = BTreeMap::from([
            (0, vec![ms(0), ms(100)]),
            (1, vec![ms(0), ms(500), ms(990)]),
        ]);
        assert_eq!(
            longest_gap(&times, ms(50), ms(1000)),
            Duration::from_millis(900)
        );
    }

    #[test]
    fn served_records_must_stay() {
        let mut served = Served::default();
        assert!(served.note(0, 0, "10", &record_data(1)).is_none());
        assert!(served.note(1, 0, "10", &record_data(2)).is_some());
        let read: StreamRead = BTreeMap::from([(0, vec![("10".into(), record_data(1))])]);
        assert!(served.check("x", &read).is_empty());
        let other: StreamRead = BTreeMap::from([(0, vec![("10".into(), record_data(3))])]);
        assert!(!served.check("x", &other).is_empty());
    }
}
