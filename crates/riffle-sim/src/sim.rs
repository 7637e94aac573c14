//! One seeded run: three nodes as turmoil hosts (each in the metadata group and every shard
//! group), a workload client (catalogue commands and records), faults driven between
//! simulation steps, then healing and the invariant checks.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::ServerState;
use riffle_cluster::{MetaRaft, MetaView, RiffleRuntime, META_DIR_NAME};
use riffle_core::catalogue::{CatalogueState, Command};
use turmoil::net::TcpStream;

use crate::catalogue_check::{check_acknowledged, stream_meta, StreamHistory, ACCOUNT, GEN_TAG};
use crate::disk::Disk;
use crate::faults::{Faults, LogDisk, NodeDisk};
use crate::gaps::{failover_gaps, Failover, LeaderFault};
use crate::node::{
    host_name, log_options, raft_config, run_node, shard_config, shard_dir, shard_log_options,
    NodeSetup, PORT,
};
use crate::records::{
    committed_frames, record_workload, RecordHistory, RecordPlan, RecordShared, ShardRegistry,
};
use crate::trace::Trace;
use crate::wire::{self, Proposed, Reply, Request};
use crate::{Plan, Rng};

const NODES: [u64; 3] = [1, 2, 3];
const STREAMS: [&str; 3] = ["alpha", "beta", "gamma"];

/// What a successful run did.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub acknowledged: usize,
    pub uncertain: usize,
    pub faults: usize,
    pub crashes: usize,
    pub leaders_seen: usize,
    /// Times a node's snapshot moved (one built, or one installed from the leader).
    pub snapshots: usize,
    /// Record appends answered `Appended` (seal included), and those without a verdict.
    pub records_acked: usize,
    pub records_unknown: usize,
    /// Frames the readers read during the run.
    pub frames_read: usize,
    /// The failover gaps after each leader crash or isolation ([`crate::gaps`]); not in the
    /// trace.
    pub failover: Failover,
    pub simulated: Duration,
    /// Everything the run did, in order; two runs of one seed must give the same.
    pub trace: Trace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Workload,
    HealRequested,
    Healed,
}

type Registry = Rc<RefCell<BTreeMap<u64, (MetaRaft, MetaView)>>>;

/// Runs one seed; the error names the seed and the violated invariant.
pub fn run(plan: &Plan) -> Result<Outcome, String> {
    run_inner(plan).map_err(|error| {
        format!(
            "riffle-sim seed {seed} ({size}) failed: {error}\n  replay: {replay}",
            seed = plan.seed,
            size = plan.size,
            replay = plan.replay_command(),
        )
    })
}

fn run_inner(plan: &Plan) -> Result<Outcome, String> {
    let dir = crate::data_dir()?;
    let mut rng = Rng::new(plan.seed);
    let mut sim = turmoil::Builder::new()
        .rng_seed(plan.seed)
        .simulation_duration(Duration::from_secs(600))
        .tick_duration(Duration::from_millis(5))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(1 + rng.below(40)))
        .build();

    let registry: Registry = Rc::default();
    let shards: ShardRegistry = Rc::default();
    // riffle's own configuration for shard groups (timing, no automatic snapshots).
    let shard_config = shard_config(plan.leader_restore)
        .map_err(|error| format!("the shard groups' config: {error}"))?;
    let phase = Rc::new(Cell::new(Phase::Workload));
    let trace = Rc::new(RefCell::new(Trace::new(plan.print_trace)));
    let mut disks = BTreeMap::new();
    for id in NODES {
        let node_dir = dir.path().join(host_name(id));
        // The node's disk outlives its boots: what it made durable decides what a crash
        // leaves.
        let mut logs = vec![LogDisk {
            name: "meta".into(),
            disk: Arc::new(Disk::default()),
            log_dir: node_dir.join(META_DIR_NAME),
            options: log_options(),
        }];
        for shard in 0..plan.shards {
            logs.push(LogDisk {
                name: format!("shard{shard}"),
                disk: Arc::new(Disk::default()),
                log_dir: shard_dir(&node_dir, shard),
                options: shard_log_options(),
            });
        }
        let node_disks: Vec<Arc<Disk>> = logs.iter().map(|log| log.disk.clone()).collect();
        disks.insert(id, NodeDisk { logs });
        let registry = registry.clone();
        let shards = shards.clone();
        let boots = Rc::new(Cell::new(0u64));
        let seed = plan.seed;
        let config = raft_config(plan.snapshot_every, plan.leader_restore);
        let shard_config = shard_config.clone();
        sim.host(host_name(id), move || {
            let registry = registry.clone();
            let shards = shards.clone();
            // Each boot of each node draws openraft's randomness from its own seed.
            boots.set(boots.get() + 1);
            let setup = NodeSetup {
                id,
                seed: node_seed(seed, id, boots.get()),
                meta_config: config.clone(),
                shard_config: shard_config.clone(),
                dir: node_dir.clone(),
                disks: node_disks.clone(),
                members: NODES.to_vec(),
            };
            async move {
                run_node(setup, move |raft, view, handles| {
                    registry.borrow_mut().insert(id, (raft, view));
                    let mut shards = shards.borrow_mut();
                    for (shard, handle) in handles.into_iter().enumerate() {
                        shards.insert((shard as u32, id), handle);
                    }
                })
                .await
            }
        });
    }

    let outcome = Rc::new(RefCell::new(Outcome::default()));
    let highest_applied: Rc<Cell<Option<u64>>> = Rc::default();
    let shard_highest: Rc<RefCell<BTreeMap<u32, u64>>> = Rc::default();
    let history: Rc<RefCell<RecordHistory>> = Rc::default();
    {
        let shared = Shared {
            registry: registry.clone(),
            phase: phase.clone(),
            outcome: outcome.clone(),
            trace: trace.clone(),
            highest_applied: highest_applied.clone(),
            records: RecordShared {
                shards: shards.clone(),
                history: history.clone(),
                trace: trace.clone(),
            },
            shard_highest: shard_highest.clone(),
        };
        let client_rng = Rng::new(plan.seed ^ 0x005E_EDC1_1E47);
        let record_rng = Rng::new(plan.seed ^ 0x0EC0_2D5E_ED00);
        let ops = plan.ops;
        let workload_time = plan.workload_time;
        let record_plan = RecordPlan {
            shards: plan.shards,
            ops: plan.record_ops,
            workload_time,
            retention_chance: plan.retention_chance,
            read_chance: plan.read_chance,
        };
        sim.client("workload", async move {
            workload(
                client_rng,
                ops,
                workload_time,
                record_rng,
                record_plan,
                shared,
            )
            .await
            .map_err(Into::into)
        });
    }

    // Faults, between steps, from the driver's own seeded RNG.
    let mut faults = Faults::new(&NODES, "workload", disks, plan.seed ^ 0xD15C_FA17);
    let mut leaders: BTreeSet<(u64, u64)> = BTreeSet::new();
    let mut seen: BTreeMap<u64, NodeSeen> = BTreeMap::new();
    let unseeded_before = RiffleRuntime::unseeded_uses_on_this_thread();
    let mut applied_at: BTreeMap<u64, (riffle_cluster::LogId, CatalogueState, u64)> =
        BTreeMap::new();
    let mut next_slot = Duration::ZERO;
    let mut snapshots = 0;
    let mut shard_seen: BTreeMap<(u32, u64), ShardSeen> = BTreeMap::new();
    let mut shard_applied_at: BTreeMap<(u32, u64), (riffle_cluster::LogId, u64)> = BTreeMap::new();
    let mut leader_faults: Vec<LeaderFault> = Vec::new();
    // Leader faults whose shard has no new leader yet, with the term the old one led.
    let mut leaderless: Vec<(LeaderFault, u64)> = Vec::new();
    let mut elections: Vec<(LeaderFault, Duration)> = Vec::new();
    loop {
        let done = sim.step().map_err(|error| error.to_string())?;
        // Every node that applied index i applied the same entry there and holds the same
        // catalogue after it (sampled every step). This is the safety property that matters:
        // with openraft's "advanced" leader ids, which riffle uses, two nodes may both lead
        // in one term (a leader is a term *and* a node id), so "one leader per term" is not
        // an invariant of this configuration.
        for (id, (raft, view)) in registry.borrow().iter() {
            if faults.is_crashed(*id) {
                continue;
            }
            let metrics = raft.metrics().borrow_watched().clone();
            let now = NodeSeen {
                applied: view.applied(),
                term: metrics.current_term,
                leader: metrics.current_leader,
                leading: metrics.state == ServerState::Leader,
                snapshot: metrics.snapshot,
                purged: metrics.purged,
                stopped: metrics
                    .running_state
                    .as_ref()
                    .err()
                    .map(ToString::to_string),
            };
            if now.leading {
                leaders.insert((now.term, *id));
            }
            if seen.get(id) != Some(&now) {
                let before = seen.insert(*id, now.clone());
                if before
                    .as_ref()
                    .is_some_and(|seen| seen.snapshot != now.snapshot)
                {
                    snapshots += 1;
                }
                now.record_changes(*id, before.as_ref(), sim.elapsed(), &mut trace.borrow_mut());
            }
            let Some(applied) = now.applied else {
                continue;
            };
            let catalogue = view.catalogue();
            match applied_at.get(&applied.index) {
                Some((log_id, seen, by)) => {
                    if *log_id != applied {
                        return Err(format!(
                            "node {by} applied {log_id} at index {} but node {id} applied {applied}",
                            applied.index
                        ));
                    }
                    if *seen != catalogue {
                        return Err(format!(
                            "nodes {by} and {id} hold different catalogues after applying {applied}"
                        ));
                    }
                }
                None => {
                    applied_at.insert(applied.index, (applied, catalogue, *id));
                    highest_applied.set(highest_applied.get().max(Some(applied.index)));
                }
            }
        }
        for id in NODES {
            if faults.is_crashed(id) {
                forget_node(&shards, id);
            }
        }
        if !leaderless.is_empty() {
            let leaders = shard_leaders(&shards);
            leaderless.retain(|(fault, term)| {
                let elected = leaders
                    .get(&fault.shard)
                    .is_some_and(|(node, now)| *node != fault.node || *now > *term);
                if elected {
                    elections.push((*fault, sim.elapsed() - fault.at));
                }
                !elected
            });
        }
        sample_shards(
            &shards,
            &mut shard_seen,
            &mut shard_applied_at,
            &shard_highest,
            sim.elapsed(),
            &mut trace.borrow_mut(),
        )?;
        if done {
            break;
        }
        let event = match phase.get() {
            Phase::Workload if sim.elapsed() >= next_slot => {
                next_slot = sim.elapsed() + Duration::from_millis(200);
                let disk_events = faults.disk_event(&mut sim, |node| {
                    seen.remove(&node);
                    forget_node(&shards, node);
                })?;
                for event in disk_events {
                    trace
                        .borrow_mut()
                        .record(sim.elapsed(), format_args!("fault: {event}"));
                }
                if !rng.chance(plan.fault_chance) {
                    continue;
                }
                // Who leads each shard, as seen just before the fault.
                let shard_leaders = shard_leaders(&shards);
                let at = sim.elapsed();
                let (event, took_out) = faults.inject(&mut sim, &mut rng, |node| {
                    seen.remove(&node);
                    forget_node(&shards, node);
                })?;
                if let Some((kind, node)) = took_out {
                    for (shard, (leader, term)) in shard_leaders {
                        if leader == node {
                            let fault = LeaderFault {
                                at,
                                kind,
                                shard,
                                node,
                            };
                            leader_faults.push(fault);
                            leaderless.push((fault, term));
                        }
                    }
                }
                event
            }
            Phase::HealRequested => {
                // What healing brings back is not a failover: those still waiting are dropped.
                leaderless.clear();
                let restarted = faults.heal(&mut sim)?;
                for (node, event) in &restarted {
                    if let Some(node) = node {
                        seen.remove(node);
                        forget_node(&shards, *node);
                    }
                    trace
                        .borrow_mut()
                        .record(sim.elapsed(), format_args!("fault: heal: {event}"));
                }
                phase.set(Phase::Healed);
                let nodes: Vec<u64> = restarted.iter().filter_map(|(node, _)| *node).collect();
                format!(
                    "heal: every link repaired, every disk working and fast, restarted {nodes:?}"
                )
            }
            Phase::Workload | Phase::Healed => continue,
        };
        trace
            .borrow_mut()
            .record(sim.elapsed(), format_args!("fault: {event}"));
    }
    let unseeded = RiffleRuntime::unseeded_uses_on_this_thread() - unseeded_before;
    if unseeded > 0 {
        return Err(format!(
            "openraft spawned or drew randomness {unseeded} times outside the nodes' seeded \
             scopes, so this run cannot be replayed exactly"
        ));
    }
    let mut outcome = outcome.borrow().clone();
    outcome.trace = trace.take();
    outcome.faults = faults.injected;
    outcome.crashes = faults.crashes;
    outcome.leaders_seen = leaders.len();
    outcome.snapshots = snapshots;
    let history = history.borrow();
    outcome.frames_read = history.frames_read;
    outcome.failover = failover_gaps(&leader_faults, &history.attempts);
    outcome.failover.elections = elections;
    for proposal in history.proposals.values() {
        match proposal.fate {
            crate::records::Fate::Acked(_) => outcome.records_acked += 1,
            crate::records::Fate::Unknown => outcome.records_unknown += 1,
            _ => {}
        }
    }
    outcome.simulated = sim.elapsed();
    Ok(outcome)
}

/// What the driver last saw of a node (a change is a trace event).
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeSeen {
    applied: Option<riffle_cluster::LogId>,
    term: u64,
    leader: Option<u64>,
    leading: bool,
    /// The last entry in the node's snapshot (built or installed).
    snapshot: Option<riffle_cluster::LogId>,
    /// The last entry purged from its log.
    purged: Option<riffle_cluster::LogId>,
    /// Why its Raft stopped (a storage error is fatal to openraft), if it did.
    stopped: Option<String>,
}

impl NodeSeen {
    /// Records in `trace` how `self` differs from what was seen of node `id` before.
    fn record_changes(&self, id: u64, before: Option<&NodeSeen>, at: Duration, trace: &mut Trace) {
        if before.map(|seen| seen.applied) != Some(self.applied) {
            trace.record(at, format_args!("node{id} applied {:?}", self.applied));
        }
        let leadership = |seen: &NodeSeen| (seen.term, seen.leader, seen.leading);
        if before.map(leadership) != Some(leadership(self)) {
            let itself = if self.leading { " (itself)" } else { "" };
            trace.record(
                at,
                format_args!(
                    "node{id} term {} leader {:?}{itself}",
                    self.term, self.leader
                ),
            );
        }
        if before.map(|seen| &seen.stopped) != Some(&self.stopped) {
            if let Some(why) = &self.stopped {
                trace.record(at, format_args!("node{id} Raft stopped: {why}"));
            }
        }
        let storage = |seen: &NodeSeen| (seen.snapshot, seen.purged);
        if before.map(storage) != Some(storage(self)) {
            trace.record(
                at,
                format_args!(
                    "node{id} snapshot {:?} purged {:?}",
                    self.snapshot.map(|id| id.index),
                    self.purged.map(|id| id.index)
                ),
            );
        }
    }
}

/// What the driver and the workload share (all on turmoil's one thread).
struct Shared {
    registry: Registry,
    phase: Rc<Cell<Phase>>,
    outcome: Rc<RefCell<Outcome>>,
    trace: Rc<RefCell<Trace>>,
    /// The highest index any node has applied so far (kept by the driver).
    highest_applied: Rc<Cell<Option<u64>>>,
    records: RecordShared,
    /// The highest frame index any replica of each shard has applied so far (the driver's).
    shard_highest: Rc<RefCell<BTreeMap<u32, u64>>>,
}

/// The seed of openraft's randomness for boot `boot` of node `id` in run `seed`.
fn node_seed(seed: u64, id: u64, boot: u64) -> u64 {
    Rng::new(seed ^ (id << 48) ^ (boot << 32)).next_u64()
}

/// One request to `node` on a fresh connection; `None` when no reply came (the command may
/// or may not have been applied).
async fn ask(node: u64, request: &Request) -> Option<Reply> {
    let exchange = async {
        let mut stream = TcpStream::connect((host_name(node).as_str(), PORT)).await?;
        wire::write_frame(&mut stream, request).await?;
        wire::read_frame::<Reply>(&mut stream).await
    };
    match tokio::time::timeout(Duration::from_secs(3), exchange).await {
        Ok(Ok(reply)) => reply,
        _ => None,
    }
}

/// Simulated time since the run started, as the workload (a turmoil client) sees it.
fn elapsed() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

async fn workload(
    rng: Rng,
    ops: usize,
    workload_time: Duration,
    record_rng: Rng,
    record_plan: RecordPlan,
    shared: Shared,
) -> Result<(), String> {
    let Shared {
        registry,
        phase,
        outcome,
        trace,
        highest_applied,
        records,
        shard_highest,
    } = shared;
    // The catalogue's client and the records' run side by side (`join!` polls them in a
    // fixed order, drawing nothing at random).
    let (histories, appended) = tokio::join!(
        meta_workload(rng, ops, workload_time, &outcome, &trace),
        record_workload(
            record_rng,
            record_plan,
            &records,
            &NODES,
            |node, request| async move { ask(node, &request).await }
        ),
    );
    appended?;
    phase.set(Phase::HealRequested);
    while phase.get() != Phase::Healed {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    converge_meta(&registry, &highest_applied, &histories).await?;
    converge_shards(&records, record_plan.shards, &shard_highest, &trace).await
}

/// The catalogue workload: `ops` commands at random nodes; the history of each stream.
async fn meta_workload(
    mut rng: Rng,
    ops: usize,
    workload_time: Duration,
    outcome: &RefCell<Outcome>,
    trace: &RefCell<Trace>,
) -> BTreeMap<&'static str, StreamHistory> {
    let mut histories: BTreeMap<&str, StreamHistory> = BTreeMap::new();
    let mut generation = 0u64;
    let mut target = NODES[rng.below(3) as usize];
    let stop = tokio::time::Instant::now() + workload_time;
    for op in 0..ops {
        if tokio::time::Instant::now() > stop {
            break;
        }
        let name = STREAMS[rng.below(STREAMS.len() as u64) as usize];
        let history = histories.entry(name).or_default();
        generation += 1;
        let (command, marker) = match history.believed {
            None => (
                Command::CreateStream {
                    meta: stream_meta(name, generation),
                },
                Some(generation),
            ),
            Some(version) if rng.chance(0.75) => (
                Command::ReplaceStream {
                    meta: stream_meta(name, generation),
                    if_version: version,
                },
                Some(generation),
            ),
            Some(version) => (
                Command::DeleteStream {
                    account: ACCOUNT.into(),
                    name: name.into(),
                    if_version: version,
                },
                None,
            ),
        };
        let request = Request::Propose(command);
        let mut verdict = None;
        for _attempt in 0..20 {
            let reply = ask(target, &request).await;
            trace.borrow_mut().record(
                elapsed(),
                format_args!("op {op} ({name}, generation {marker:?}) at node{target}: {reply:?}"),
            );
            match reply {
                Some(Reply::Proposed(Proposed::Forward(Some(leader)))) => target = leader,
                Some(Reply::Proposed(Proposed::Forward(None))) => {
                    target = NODES[rng.below(3) as usize];
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Some(Reply::Proposed(proposed @ Proposed::Applied(_)))
                | Some(Reply::Proposed(proposed @ Proposed::Rejected { .. })) => {
                    verdict = Some(proposed);
                    break;
                }
                // No answer or no verdict: it may have been applied.
                _ => {
                    if !history.possible.contains(&marker) {
                        history.possible.push(marker);
                    }
                    outcome.borrow_mut().uncertain += 1;
                    target = NODES[rng.below(3) as usize];
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        match verdict {
            Some(Proposed::Applied(version)) => {
                outcome.borrow_mut().acknowledged += 1;
                history.possible = vec![marker];
                history.last_acked = Some((marker, version));
                history.believed = marker.map(|_| version);
            }
            Some(Proposed::Rejected { reason, current }) => {
                outcome.borrow_mut().acknowledged += 1;
                history.believed = match (reason.as_str(), current) {
                    ("stale", current) => current,
                    ("NotFound", _) => None,
                    // Exists: some version is there; a stale answer will name it.
                    _ => Some(1),
                };
            }
            _ => {}
        }
    }
    histories
}

/// After healing: the metadata group converges and lost no acknowledged change.
async fn converge_meta(
    registry: &Registry,
    highest_applied: &Cell<Option<u64>>,
    histories: &BTreeMap<&'static str, StreamHistory>,
) -> Result<(), String> {
    // Converge: every node applies the same entries to the same catalogue, and at least
    // every entry any node applied before (nodes that just restarted agree on nothing
    // applied until a leader commits again, which is agreement but not convergence).
    let floor = highest_applied.get();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let catalogues = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let snapshot: Vec<(u64, Option<riffle_cluster::LogId>, CatalogueState)> = registry
            .borrow()
            .iter()
            .map(|(id, (_, view))| (*id, view.applied(), view.catalogue()))
            .collect();
        let same = snapshot.len() == NODES.len()
            && snapshot
                .windows(2)
                .all(|pair| pair[0].1 == pair[1].1 && pair[0].2 == pair[1].2)
            && snapshot[0].1.map(|applied| applied.index) >= floor;
        if same {
            break snapshot;
        }
        if tokio::time::Instant::now() > deadline {
            let mut text = format!(
                "the nodes did not converge within 60 s after healing (on at least index \
                 {floor:?}, applied before):"
            );
            for (id, applied, catalogue) in &snapshot {
                let _ = write!(
                    text,
                    "\n  node {id}: applied {applied:?}, streams {:?}",
                    catalogue
                        .streams
                        .values()
                        .map(|entry| (
                            &entry.meta.name,
                            entry.version,
                            entry.meta.tags.get(GEN_TAG)
                        ))
                        .collect::<Vec<_>>()
                );
            }
            return Err(text);
        }
    };
    check_acknowledged(histories, &catalogues[0].2)
}

/// After healing: within 60 s every replica of every shard applies the same log id, at
/// least the highest any replica applied before; then their committed logs agree with each
/// other and with every read, and every acknowledged append is on every replica.
async fn converge_shards(
    records: &RecordShared,
    shard_count: u32,
    shard_highest: &RefCell<BTreeMap<u32, u64>>,
    trace: &RefCell<Trace>,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for shard in 0..shard_count {
        let floor = shard_highest.borrow().get(&shard).copied();
        let handles = loop {
            let handles: Vec<(u64, crate::node::ShardHandle)> = NODES
                .iter()
                .filter_map(|node| {
                    let handle = records.shards.borrow().get(&(shard, *node)).cloned();
                    handle.map(|handle| (*node, handle))
                })
                .collect();
            let applied: Vec<Option<riffle_cluster::LogId>> = handles
                .iter()
                .map(|(_, handle)| handle.machine.applied())
                .collect();
            let same = handles.len() == NODES.len()
                && applied.windows(2).all(|pair| pair[0] == pair[1])
                && applied[0].and_then(|id| riffle_cluster::frame_index(id.index)) >= floor;
            if same {
                trace.borrow_mut().record(
                    elapsed(),
                    format_args!("shard{shard} converged at {:?}", applied[0]),
                );
                break handles;
            }
            if tokio::time::Instant::now() > deadline {
                let nodes: Vec<(u64, Option<riffle_cluster::LogId>)> =
                    handles.iter().map(|(node, _)| *node).zip(applied).collect();
                return Err(format!(
                    "the replicas of shard {shard} did not converge within 60 s after healing                      (on at least frame {floor:?}, applied before): {nodes:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut logs = Vec::new();
        for (node, handle) in &handles {
            let (first, frames) = committed_frames(handle)
                .map_err(|error| format!("shard {shard} on node{node}: {error}"))?;
            logs.push((*node, first, frames));
        }
        records.history.borrow_mut().check_shard(shard, &logs)?;
    }
    Ok(())
}

/// The node each shard's registered replicas show leading: of those in openraft's `Leader`
/// state with a running Raft, the one of the highest term (an isolated leader may not know
/// yet that another was elected), the higher id on a tie; with its term.
fn shard_leaders(shards: &ShardRegistry) -> BTreeMap<u32, (u64, u64)> {
    let mut leaders: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for ((shard, node), handle) in shards.borrow().iter() {
        let metrics = handle.raft.metrics().borrow_watched().clone();
        if metrics.state != ServerState::Leader || metrics.running_state.is_err() {
            continue;
        }
        let candidate = (metrics.current_term, *node);
        let best = leaders.entry(*shard).or_insert(candidate);
        *best = (*best).max(candidate);
    }
    leaders
        .into_iter()
        .map(|(shard, (term, node))| (shard, (node, term)))
        .collect()
}

/// Forgets `node`'s shard replicas (it is down, or its boot is over): its next boot
/// registers new ones.
fn forget_node(shards: &ShardRegistry, node: u64) {
    shards.borrow_mut().retain(|(_, of), _| *of != node);
}

/// What the driver last saw of a shard replica (a change is a trace event).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ShardSeen {
    applied: Option<riffle_cluster::LogId>,
    snapshot: Option<u64>,
    purged: Option<u64>,
    stopped: Option<String>,
}

/// Samples every registered shard replica after a step: the entry it applied at index *i*
/// is the one any other replica applied there (state-machine safety), each replica's
/// applied entry, snapshot and purge point and a stop go to the trace, and the highest
/// applied frame of each shard is kept.
fn sample_shards(
    shards: &ShardRegistry,
    seen: &mut BTreeMap<(u32, u64), ShardSeen>,
    applied_at: &mut BTreeMap<(u32, u64), (riffle_cluster::LogId, u64)>,
    highest: &RefCell<BTreeMap<u32, u64>>,
    at: Duration,
    trace: &mut Trace,
) -> Result<(), String> {
    for ((shard, node), handle) in shards.borrow().iter() {
        let metrics = handle.raft.metrics().borrow_watched().clone();
        let now = ShardSeen {
            applied: handle.machine.applied(),
            snapshot: metrics.snapshot.map(|id| id.index),
            purged: metrics.purged.map(|id| id.index),
            stopped: metrics
                .running_state
                .as_ref()
                .err()
                .map(ToString::to_string),
        };
        if seen.get(&(*shard, *node)) == Some(&now) {
            continue;
        }
        let before = seen.insert((*shard, *node), now.clone());
        if before.as_ref().map(|seen| seen.applied) != Some(now.applied) {
            trace.record(
                at,
                format_args!("node{node} shard{shard} applied {:?}", now.applied),
            );
        }
        let storage = |seen: &ShardSeen| (seen.snapshot, seen.purged);
        if before.as_ref().map(storage) != Some(storage(&now)) {
            trace.record(
                at,
                format_args!(
                    "node{node} shard{shard} snapshot {:?} purged {:?}",
                    now.snapshot, now.purged
                ),
            );
        }
        if before.as_ref().map(|seen| &seen.stopped) != Some(&now.stopped) {
            if let Some(why) = &now.stopped {
                trace.record(
                    at,
                    format_args!("node{node} shard{shard} Raft stopped: {why}"),
                );
            }
        }
        let Some(applied) = now.applied else {
            continue;
        };
        match applied_at.get(&(*shard, applied.index)) {
            Some((log_id, by)) if *log_id != applied => {
                return Err(format!(
                    "shard {shard}: node {by} applied {log_id} at index {} but node {node}                      applied {applied}",
                    applied.index
                ));
            }
            Some(_) => {}
            None => {
                applied_at.insert((*shard, applied.index), (applied, *node));
                if let Some(frame) = riffle_cluster::frame_index(applied.index) {
                    let mut highest = highest.borrow_mut();
                    let top = highest.entry(*shard).or_default();
                    *top = (*top).max(frame);
                }
            }
        }
    }
    Ok(())
}
