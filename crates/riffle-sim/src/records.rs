//! The record workload over the shard groups and its checkers.
//!
//! Every frame the workload proposes carries a payload that names it ([`payload`]): the
//! shard, a run-unique id and a filler whose length follows from the id, so any frame read
//! back says which proposal it is, and a payload nobody proposed cannot pass for one. Each
//! proposal's fate is kept ([`Fate`]); readers and the final check feed every frame they see
//! through [`RecordHistory::observe`], which holds what each frame index of each shard was
//! first seen to hold and where each id was found.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use riffle_cluster::frame_index;
use riffle_log::{Entry as Frame, FrameKind};

use crate::gaps::Attempt;
use crate::node::ShardHandle;
use crate::trace::Trace;
use crate::wire::{Recorded, Reply, Request};
use crate::Rng;

/// The replicas of every shard, by `(shard, node)`: each boot of a node registers its own,
/// and the driver removes a node's while it is down.
pub type ShardRegistry = Rc<RefCell<BTreeMap<(u32, u64), ShardHandle>>>;

/// Record timestamps are this plus the simulated time, in milliseconds.
pub const TS_BASE_MS: u64 = 1_700_000_000_000;

/// A retention pass expires what arrived more than this long ago...
const RETENTION_AGE_MS: u64 = 1_000;
/// ...and seals an active segment whose first entry is older than this.
const ROLL_AGE_MS: u64 = 500;

/// The payload of proposal `id` on `shard` (a seal if `seal`).
pub fn payload(shard: u32, id: u64, seal: bool) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64);
    bytes.push(if seal { b'S' } else { b'R' });
    bytes.extend_from_slice(&shard.to_le_bytes());
    bytes.extend_from_slice(&id.to_le_bytes());
    let filler = (id.wrapping_mul(13) % 48) as usize;
    bytes.extend(std::iter::repeat_n(id as u8, filler));
    bytes
}

/// The `(shard, id, seal)` a payload names, if it is exactly what [`payload`] makes of them.
pub fn payload_id(bytes: &[u8]) -> Option<(u32, u64, bool)> {
    let seal = match bytes.first()? {
        b'S' => true,
        b'R' => false,
        _ => return None,
    };
    let shard = u32::from_le_bytes(bytes.get(1..5)?.try_into().ok()?);
    let id = u64::from_le_bytes(bytes.get(5..13)?.try_into().ok()?);
    (payload(shard, id, seal) == bytes).then_some((shard, id, seal))
}

/// What became of a proposal, as far as its proposer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Not answered yet.
    Pending,
    /// Answered `Appended` at this frame index.
    Acked(u64),
    /// Answered `Sealed`: stored after the seal, never readable.
    Sealed,
    /// No verdict (no answer, a stopped group...): it may or may not be in the log.
    Unknown,
    /// Never proposed (every node that was asked forwarded it).
    NotAppended,
}

/// One proposal of the workload.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub shard: u32,
    pub seal: bool,
    pub ts_ms: u64,
    pub fate: Fate,
}

/// What a frame index was seen to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSeen {
    pub term: u64,
    pub leader: u64,
    pub kind: FrameKind,
    pub payload: Bytes,
}

/// Everything the record checkers know.
#[derive(Debug, Default)]
pub struct RecordHistory {
    pub proposals: BTreeMap<u64, Proposal>,
    /// The latest retention cutoff asked of each shard (whether or not the pass ran).
    pub cutoffs: BTreeMap<u32, u64>,
    /// What each `(shard, frame index)` was first seen to hold, by a reader or the final
    /// check; every later sight must agree.
    pub seen: BTreeMap<(u32, u64), FrameSeen>,
    /// Where each proposal id was seen: `(shard, frame index)`.
    pub located: BTreeMap<u64, (u32, u64)>,
    /// The lowest frame index of each shard seen holding a seal.
    pub seal_at: BTreeMap<u32, u64>,
    /// The last frame index the reader saw, per shard.
    pub cursors: BTreeMap<u32, u64>,
    /// Frames the readers read.
    pub frames_read: usize,
    /// Every request of the workload's appends (and seal), in order: what the failover
    /// gaps ([`crate::gaps`]) are measured from.
    pub attempts: Vec<Attempt>,
}

impl RecordHistory {
    /// Takes in frame `frame` of `shard`, read from committed frames (`what` says where, for
    /// a violation's message): it must agree with every earlier sight of its index, hold a
    /// payload the workload proposed to this shard (if it is a data frame or a seal), and
    /// that payload must be nowhere else and at the index its proposal was answered with.
    pub fn observe(&mut self, shard: u32, frame: &Frame, what: &str) -> Result<(), String> {
        let index = frame.index;
        let now = FrameSeen {
            term: frame.meta.term,
            leader: frame.meta.leader,
            kind: frame.meta.kind,
            payload: frame.payload.clone(),
        };
        match self.seen.get(&(shard, index)) {
            Some(before) if *before != now => {
                return Err(format!(
                    "{what}: shard {shard} frame {index} holds {} but held {} before",
                    describe(&now),
                    describe(before)
                ));
            }
            Some(_) => {}
            None => {
                self.seen.insert((shard, index), now.clone());
            }
        }
        let seal = match frame.meta.kind {
            FrameKind::Data => false,
            FrameKind::Seal => true,
            _ => return Ok(()),
        };
        let Some((named_shard, id, named_seal)) = payload_id(&frame.payload) else {
            return Err(format!(
                "{what}: shard {shard} frame {index} holds a payload nobody proposed ({})",
                describe(&now)
            ));
        };
        let proposal = self.proposals.get(&id);
        if named_shard != shard || named_seal != seal || proposal.is_none() {
            return Err(format!(
                "{what}: shard {shard} frame {index} holds {}, which was never proposed there",
                describe(&now)
            ));
        }
        match self.located.get(&id) {
            Some(&(_, at)) if at != index => {
                return Err(format!(
                    "{what}: proposal {id} is at shard {shard} frame {index} and at frame {at}"
                ));
            }
            Some(_) => {}
            None => {
                self.located.insert(id, (shard, index));
            }
        }
        match proposal.map(|proposal| proposal.fate) {
            Some(Fate::Acked(acked)) if acked != index => {
                return Err(format!(
                    "{what}: proposal {id} was answered Appended at frame {acked} but is at \
                     shard {shard} frame {index}"
                ));
            }
            Some(Fate::NotAppended) => {
                return Err(format!(
                    "{what}: proposal {id} is at shard {shard} frame {index}, but every node \
                     it was sent to answered ForwardToLeader"
                ));
            }
            _ => {}
        }
        if seal {
            let first = self.seal_at.entry(shard).or_insert(index);
            *first = (*first).min(index);
        }
        self.check_seal(shard)
    }

    /// A proposal was answered: records it, and checks it against what was seen.
    pub fn answered(&mut self, id: u64, fate: Fate) -> Result<(), String> {
        let Some(proposal) = self.proposals.get_mut(&id) else {
            return Err(format!("an answer for proposal {id}, which was never made"));
        };
        proposal.fate = fate;
        let shard = proposal.shard;
        if let (Fate::Acked(acked), Some(&(_, at))) = (fate, self.located.get(&id)) {
            if acked != at {
                return Err(format!(
                    "proposal {id} was answered Appended at frame {acked} but was read at \
                     shard {shard} frame {at}"
                ));
            }
        }
        self.check_seal(shard)
    }

    /// Nothing after a shard's seal was answered `Appended`.
    fn check_seal(&self, shard: u32) -> Result<(), String> {
        let Some(&sealed) = self.seal_at.get(&shard) else {
            return Ok(());
        };
        for (id, proposal) in &self.proposals {
            if proposal.seal || proposal.shard != shard {
                continue;
            }
            if let Fate::Acked(at) = proposal.fate {
                if at > sealed {
                    return Err(format!(
                        "data proposal {id} was answered Appended at shard {shard} frame {at}, \
                         after the shard's seal at frame {sealed}"
                    ));
                }
            }
            if let (Fate::Sealed, Some(&(_, at))) = (proposal.fate, self.located.get(id)) {
                if at < sealed {
                    return Err(format!(
                        "data proposal {id} was answered Sealed but is at shard {shard} frame \
                         {at}, before the shard's seal at frame {sealed}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// A reader's pass over `frames`, read from `node`'s replica of `shard` up to `upto` (the
    /// frame index of what that replica applied): the indexes are above every index the
    /// reader saw before on this shard, strictly increasing, at most `upto`, and every frame
    /// agrees with what was seen (see [`RecordHistory::observe`]).
    pub fn read(
        &mut self,
        shard: u32,
        node: u64,
        upto: u64,
        frames: &[Frame],
    ) -> Result<(), String> {
        let what = format!("a read of node{node}");
        let mut last = self.cursors.get(&shard).copied().unwrap_or(0);
        for frame in frames {
            if frame.index <= last {
                return Err(format!(
                    "{what}: shard {shard} frame {} came after frame {last} (indexes must \
                     increase)",
                    frame.index
                ));
            }
            if frame.index > upto {
                return Err(format!(
                    "{what}: shard {shard} frame {} is beyond the replica's applied frame {upto}",
                    frame.index
                ));
            }
            self.observe(shard, frame, &what)?;
            last = frame.index;
            self.frames_read += 1;
        }
        self.cursors.insert(shard, last);
        Ok(())
    }

    /// The final check of one shard, once every replica applied the same entries: `logs`
    /// holds each replica's committed frames (node, first frame index stored, frames up to
    /// the applied one). Every frame is observed (so the replicas agree with each other and
    /// with every read over the range they hold); every acknowledged proposal is on every
    /// replica at its index, unless that replica's log starts after it and a retention pass
    /// could have expired it.
    pub fn check_shard(
        &mut self,
        shard: u32,
        logs: &[(u64, u64, Vec<Frame>)],
    ) -> Result<(), String> {
        for (node, _, frames) in logs {
            let what = format!("after healing, node{node}'s log");
            for frame in frames {
                self.observe(shard, frame, &what)?;
            }
        }
        let cutoff = self.cutoffs.get(&shard).copied().unwrap_or(0);
        for (id, proposal) in &self.proposals {
            let Fate::Acked(at) = proposal.fate else {
                continue;
            };
            if proposal.shard != shard {
                continue;
            }
            for (node, first, frames) in logs {
                if at < *first {
                    if proposal.ts_ms >= cutoff {
                        return Err(format!(
                            "proposal {id}, answered Appended at shard {shard} frame {at}, is \
                             gone from node{node} (its log starts at {first}) though no \
                             retention pass expired it (arrived at {} ms, latest cutoff {cutoff} \
                             ms)",
                            proposal.ts_ms
                        ));
                    }
                    continue;
                }
                let found = frames
                    .binary_search_by_key(&at, |frame| frame.index)
                    .ok()
                    .map(|position| &frames[position]);
                let expected = payload(shard, *id, proposal.seal);
                if found.is_none_or(|frame| frame.payload.as_ref() != expected.as_slice()) {
                    return Err(format!(
                        "proposal {id}, answered Appended at shard {shard} frame {at}, is not \
                         there on node{node} (it holds {})",
                        found.map_or("nothing applied".to_string(), |frame| describe(
                            &FrameSeen {
                                term: frame.meta.term,
                                leader: frame.meta.leader,
                                kind: frame.meta.kind,
                                payload: frame.payload.clone(),
                            }
                        ))
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A frame's content in a violation's message.
fn describe(seen: &FrameSeen) -> String {
    let named = payload_id(&seen.payload)
        .map(|(shard, id, seal)| format!("proposal {id} (shard {shard}, seal {seal})"))
        .unwrap_or_else(|| format!("{} unnamed bytes", seen.payload.len()));
    format!(
        "{:?} of term {} by node{}: {named}",
        seen.kind, seen.term, seen.leader
    )
}

/// What the record workload shares with the driver.
pub struct RecordShared {
    pub shards: ShardRegistry,
    pub history: Rc<RefCell<RecordHistory>>,
    pub trace: Rc<RefCell<Trace>>,
}

/// How the record workload runs.
#[derive(Debug, Clone, Copy)]
pub struct RecordPlan {
    pub shards: u32,
    pub ops: usize,
    pub workload_time: Duration,
    /// Chance per operation of a retention pass on a shard's leader.
    pub retention_chance: f64,
    /// Chance per operation of a reader's pass.
    pub read_chance: f64,
}

/// The record workload: appends to random shards through random nodes, following
/// `ForwardToLeader`, never proposing an id twice; sometimes a retention pass, in some runs
/// one seal of shard 0 (in the last third of the operations); reads in between. `ask` sends one request to a node.
pub async fn record_workload<A, F>(
    mut rng: Rng,
    plan: RecordPlan,
    shared: &RecordShared,
    nodes: &[u64],
    ask: A,
) -> Result<(), String>
where
    A: Fn(u64, Request) -> F,
    F: std::future::Future<Output = Option<Reply>>,
{
    // Late in the run (the shard takes no more data after it).
    let late = plan.ops as u64 * 2 / 3;
    let seal_op = rng
        .chance(0.3)
        .then(|| (late + rng.below((plan.ops as u64 - late).max(1))) as usize);
    let mut leaders: BTreeMap<u32, u64> = BTreeMap::new();
    let stop = tokio::time::Instant::now() + plan.workload_time;
    for op in 0..plan.ops {
        if tokio::time::Instant::now() > stop {
            break;
        }
        let seal = seal_op == Some(op);
        let shard = if seal {
            0
        } else {
            rng.below(u64::from(plan.shards)) as u32
        };
        let id = op as u64 + 1;
        let ts_ms = TS_BASE_MS + elapsed().as_millis() as u64;
        shared.history.borrow_mut().proposals.insert(
            id,
            Proposal {
                shard,
                seal,
                ts_ms,
                fate: Fate::Pending,
            },
        );
        let request = Request::Record {
            shard,
            seal,
            record_count: 1 + (id % 5) as u16,
            ts_ms,
            payload: payload(shard, id, seal),
        };
        let mut target = leaders
            .get(&shard)
            .copied()
            .unwrap_or_else(|| nodes[rng.below(nodes.len() as u64) as usize]);
        let mut fate = Fate::NotAppended;
        for _attempt in 0..10 {
            let sent = elapsed();
            let reply = ask(target, request.clone()).await;
            shared.history.borrow_mut().attempts.push(Attempt {
                id,
                shard,
                sent,
                answered: elapsed(),
                verdict: matches!(
                    reply,
                    Some(Reply::Recorded(Recorded::Appended(_) | Recorded::Sealed))
                ),
            });
            let kind = if seal { "seal" } else { "append" };
            shared.trace.borrow_mut().record(
                elapsed(),
                format_args!("record {kind} {id} to shard{shard} at node{target}: {reply:?}"),
            );
            match reply {
                Some(Reply::Recorded(Recorded::Forward(Some(leader)))) => {
                    target = leader;
                    leaders.insert(shard, leader);
                }
                Some(Reply::Recorded(Recorded::Forward(None))) => {
                    target = nodes[rng.below(nodes.len() as u64) as usize];
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Some(Reply::Recorded(Recorded::Appended(at))) => {
                    leaders.insert(shard, target);
                    fate = Fate::Acked(at);
                    break;
                }
                Some(Reply::Recorded(Recorded::Sealed)) => {
                    fate = Fate::Sealed;
                    break;
                }
                // No answer, or no verdict: it may be in the log; never proposed again.
                _ => {
                    leaders.remove(&shard);
                    fate = Fate::Unknown;
                    break;
                }
            }
        }
        shared.history.borrow_mut().answered(id, fate)?;
        if rng.chance(plan.retention_chance) {
            let shard = rng.below(u64::from(plan.shards)) as u32;
            let target = leaders
                .get(&shard)
                .copied()
                .unwrap_or_else(|| nodes[rng.below(nodes.len() as u64) as usize]);
            let now_ms = TS_BASE_MS + elapsed().as_millis() as u64;
            let cutoff_ms = now_ms.saturating_sub(RETENTION_AGE_MS);
            // Recorded before asking: a pass whose answer is lost may have run.
            {
                let mut history = shared.history.borrow_mut();
                let latest = history.cutoffs.entry(shard).or_default();
                *latest = (*latest).max(cutoff_ms);
            }
            let reply = ask(
                target,
                Request::Expire {
                    shard,
                    cutoff_ms,
                    roll_before_ms: now_ms.saturating_sub(ROLL_AGE_MS),
                },
            )
            .await;
            shared.trace.borrow_mut().record(
                elapsed(),
                format_args!("retention of shard{shard} at node{target}: {reply:?}"),
            );
        }
        if rng.chance(plan.read_chance) {
            let node = nodes[rng.below(nodes.len() as u64) as usize];
            let shard = rng.below(u64::from(plan.shards)) as u32;
            read_pass(shared, shard, node)?;
        }
        tokio::time::sleep(Duration::from_millis(rng.below(60))).await;
    }
    Ok(())
}

/// A reader reads `node`'s replica of `shard` from after its last frame up to the replica's
/// applied frame (nothing if the node is down or its log refuses reads).
fn read_pass(shared: &RecordShared, shard: u32, node: u64) -> Result<(), String> {
    let Some(handle) = shared.shards.borrow().get(&(shard, node)).cloned() else {
        return Ok(());
    };
    let Some(upto) = handle
        .machine
        .applied()
        .and_then(|applied| frame_index(applied.index))
    else {
        return Ok(());
    };
    let from = shared
        .history
        .borrow()
        .cursors
        .get(&shard)
        .copied()
        .unwrap_or(0)
        + 1;
    if from > upto {
        return Ok(());
    }
    let Ok(frames) = handle.reader.read(from, upto, 64, 1 << 20) else {
        return Ok(());
    };
    if let (Some(first), Some(last)) = (frames.first(), frames.last()) {
        shared.trace.borrow_mut().record(
            elapsed(),
            format_args!(
                "read shard{shard} at node{node}: frames {}..={}",
                first.index, last.index
            ),
        );
    }
    shared.history.borrow_mut().read(shard, node, upto, &frames)
}

/// Every committed frame of a replica: `(first frame index stored, frames up to the applied
/// one)`.
pub fn committed_frames(handle: &ShardHandle) -> Result<(u64, Vec<Frame>), String> {
    let first = handle.reader.first_index();
    let Some(upto) = handle
        .machine
        .applied()
        .and_then(|applied| frame_index(applied.index))
    else {
        return Ok((first, Vec::new()));
    };
    let mut frames = Vec::new();
    let mut from = first;
    while from <= upto {
        let batch = handle
            .reader
            .read(from, upto, 1024, 1 << 24)
            .map_err(|error| format!("reading a replica's log: {error}"))?;
        let Some(last) = batch.last() else {
            break;
        };
        from = last.index + 1;
        frames.extend(batch);
    }
    Ok((first, frames))
}

/// The nodes whose replicas of the shards are registered (up), in order.
pub fn nodes_up(registry: &ShardRegistry, shard: u32) -> BTreeSet<u64> {
    registry
        .borrow()
        .keys()
        .filter(|(of, _)| *of == shard)
        .map(|(_, node)| *node)
        .collect()
}

/// Simulated time since the run started, as a turmoil client sees it.
fn elapsed() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}
