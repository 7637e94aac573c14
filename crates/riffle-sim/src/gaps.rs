//! The failover gap: how long a shard takes no appends after its leader goes.
//!
//! # Definition
//!
//! A *leader fault* is a fault that takes out the node the simulator observed, at that
//! moment, leading a shard group (among the shard's registered live replicas whose Raft
//! runs and which are in openraft's `Leader` state, the one of the highest term; the
//! driver samples every step, the fault comes between two): a crash of that node
//! ([`FaultKind::Crash`]), or its isolation from both other nodes ([`FaultKind::Isolation`],
//! the simulator's stand-in for a pause: the node keeps running, believes it still leads and
//! still hears the workload's client, but reaches no peer). A node already cut off from
//! every peer is not taken out again by another isolation, and no other fault (a cut link, a
//! lossy link, a disk that fails or is slow) counts, though those in force at the time
//! stay in force during the gap.
//!
//! The *gap* of a leader fault at simulated time `t` on shard `s` is the simulated time
//! from `t` to the first verdict of an append to `s`, given by any node, to a request sent at
//! `t` or later: `Appended` at a frame (a seal's included), or `Sealed` (the append was
//! committed after the shard's seal, so the shard was taking writes). Requests sent before
//! the fault do not count, so an answer committed (or in flight) before it does not end the
//! gap. The sample is *dropped*, not counted, when the workload sent no append request to
//! `s` at `t` or later (it had stopped proposing to that shard: the window had no
//! proposals), or when none of those it sent got a verdict (every one forwarded,
//! unanswered within the client's 3 s or answered without a verdict, until the workload
//! stopped). Faults that overlap each give a sample, each from its own `t`.
//!
//! What this measures is what a client of riffle sees: openraft's election (the shard
//! groups' timing, [`riffle_cluster::shard_group::group_config`]), plus the workload's
//! own way back to the new leader. The workload is one client: it sends one request at a
//! time, waits up to 3 s for an answer (a request stuck at an isolated leader ends only
//! then), follows `ForwardToLeader`, waits 100 ms after a `ForwardToLeader` naming no
//! leader, and sleeps 0-59 ms between operations; appends to a shard are spaced by that
//! (and, in a plan of several shards, by appends to the others), so a gap is known only to
//! within that spacing. [`proposal_spacing`] gives it; `tests/seeds.rs` prints both.
//!
//! Both matter in what the figures show: a request in flight at a crashed leader is answered
//! by nothing, and one at an isolated leader waits for a quorum it cannot reach, so the
//! workload sends its next request only after its 3 s timeout, while the shard groups elect
//! a new leader within their election timeout (0.5-1 s). The client's gap is then mostly
//! that timeout. So the driver also measures the *election gap* of each leader fault
//! ([`Failover::elections`]): the simulated time from the fault to the first step at which
//! it sees another leader of the shard (another node in the `Leader` state, or the same one
//! in a higher term), whatever the workload did (a fault still without one when the
//! workload ends is left out).
//!
//! Neither is a failover on a quiet cluster: the driver keeps injecting faults through the
//! gap (a fault slot every 200 ms, 35% of them a fault), and a lossy link stays lossy until
//! the heal ("repair every link" repairs cuts only), so later in a run, and in a full plan
//! (40 s of workload) more than a small one (12 s), most links drop messages and the tails
//! are long. Measured on a seed (small seed 6): node1, leading shard 0, crashes at 0.205 s;
//! node2 is seen leading at 1.785 s (an election gap of 1.58 s); the workload's request,
//! sent to node1 before the crash, times out at 3.150 s, and its next append is
//! acknowledged by node2 at 3.275 s (a failover gap of 3.07 s).

use std::time::Duration;

/// What took a shard's leader out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// The node crashed (a machine that stops).
    Crash,
    /// The node was cut off from both other nodes (a pause, as far as its peers can tell).
    Isolation,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Isolation => "isolation",
        }
    }
}

/// A fault that took out the node observed leading `shard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderFault {
    pub at: Duration,
    pub kind: FaultKind,
    pub shard: u32,
    pub node: u64,
}

/// One request of the record workload to a node: an append (or the seal) of proposal
/// `id` to `shard`, sent at `sent`, its answer (or its timeout) at `answered`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub id: u64,
    pub shard: u32,
    pub sent: Duration,
    pub answered: Duration,
    /// Answered `Appended` or `Sealed` (anything else: forwarded, no answer, no verdict).
    pub verdict: bool,
}

/// One gap: a leader fault and the time to the first verdict after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GapSample {
    pub fault: LeaderFault,
    pub gap: Duration,
}

/// What a run measured of its leader faults.
#[derive(Clone, Default)]
pub struct Failover {
    pub samples: Vec<GapSample>,
    /// Leader faults dropped because no append was sent to the shard after them.
    pub idle: Vec<LeaderFault>,
    /// Leader faults dropped because no append sent after them got a verdict.
    pub unanswered: Vec<LeaderFault>,
    /// The simulated time between consecutive proposals to one shard (see
    /// [`proposal_spacing`]).
    pub spacing: Vec<Duration>,
    /// For each leader fault, the simulated time until the driver first saw another leader
    /// of the shard (another node in the `Leader` state, or the same one in a higher term),
    /// whatever the workload did; a fault still without one when the workload ended is left
    /// out.
    pub elections: Vec<(LeaderFault, Duration)>,
}

impl std::fmt::Debug for Failover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} gaps, {} dropped",
            self.samples.len(),
            self.idle.len() + self.unanswered.len()
        )
    }
}

/// The gap of each fault in `faults` (see the module docs), from every request of the
/// run's record workload (`attempts`, in any order).
pub fn failover_gaps(faults: &[LeaderFault], attempts: &[Attempt]) -> Failover {
    let mut failover = Failover {
        spacing: proposal_spacing(attempts),
        ..Failover::default()
    };
    for fault in faults {
        let mut after = attempts
            .iter()
            .filter(|attempt| attempt.shard == fault.shard && attempt.sent >= fault.at)
            .peekable();
        if after.peek().is_none() {
            failover.idle.push(*fault);
            continue;
        }
        match after
            .filter(|attempt| attempt.verdict)
            .map(|attempt| attempt.answered)
            .min()
        {
            Some(answered) => failover.samples.push(GapSample {
                fault: *fault,
                gap: answered.saturating_sub(fault.at),
            }),
            None => failover.unanswered.push(*fault),
        }
    }
    failover
}

/// The simulated time between consecutive proposals to the same shard: from the first
/// request of one to the first request of the next.
pub fn proposal_spacing(attempts: &[Attempt]) -> Vec<Duration> {
    let mut first: std::collections::BTreeMap<(u32, u64), Duration> = Default::default();
    for attempt in attempts {
        let sent = first
            .entry((attempt.shard, attempt.id))
            .or_insert(attempt.sent);
        *sent = (*sent).min(attempt.sent);
    }
    let mut by_shard: std::collections::BTreeMap<u32, Vec<Duration>> = Default::default();
    for ((shard, _), sent) in first {
        by_shard.entry(shard).or_default().push(sent);
    }
    let mut spacing = Vec::new();
    for mut sends in by_shard.into_values() {
        sends.sort();
        spacing.extend(sends.windows(2).map(|pair| pair[1] - pair[0]));
    }
    spacing
}

/// The `q` quantile (0..=1) of `values`, nearest rank; `None` when empty.
pub fn quantile(values: &[Duration], q: f64) -> Option<Duration> {
    let mut sorted = values.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// One summary line: count, p50, p99 and max in seconds (2 decimals).
pub fn summary(what: &str, values: &[Duration]) -> String {
    let secs = |q: f64| {
        quantile(values, q).map_or("-".to_string(), |value| {
            format!("{:.2}", value.as_secs_f64())
        })
    };
    format!(
        "{what}: count {}, p50 {} s, p99 {} s, max {} s",
        values.len(),
        secs(0.5),
        secs(0.99),
        secs(1.0)
    )
}
