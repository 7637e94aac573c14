//! One seeded run: three metadata-group nodes as turmoil hosts, a workload client, faults
//! driven between simulation steps, then healing and the invariant checks.

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
use crate::faults::{Faults, NodeDisk};
use crate::node::{host_name, raft_config, run_node, PORT};
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
    let phase = Rc::new(Cell::new(Phase::Workload));
    let trace = Rc::new(RefCell::new(Trace::new(plan.print_trace)));
    let mut disks = BTreeMap::new();
    for id in NODES {
        let node_dir = dir.path().join(host_name(id));
        // The node's disk outlives its boots: what it made durable decides what a crash
        // leaves.
        let disk = Arc::new(Disk::default());
        disks.insert(
            id,
            NodeDisk {
                disk: disk.clone(),
                log_dir: node_dir.join(META_DIR_NAME),
            },
        );
        let registry = registry.clone();
        let boots = Rc::new(Cell::new(0u64));
        let seed = plan.seed;
        let config = raft_config(plan.snapshot_every);
        sim.host(host_name(id), move || {
            let node_dir = node_dir.clone();
            let disk = disk.clone();
            let registry = registry.clone();
            // Each boot of each node draws openraft's randomness from its own seed.
            boots.set(boots.get() + 1);
            let node_seed = node_seed(seed, id, boots.get());
            let config = config.clone();
            async move {
                run_node(
                    id,
                    node_seed,
                    config,
                    node_dir,
                    disk,
                    NODES.to_vec(),
                    move |raft, view| {
                        registry.borrow_mut().insert(id, (raft, view));
                    },
                )
                .await
            }
        });
    }

    let outcome = Rc::new(RefCell::new(Outcome::default()));
    let highest_applied: Rc<Cell<Option<u64>>> = Rc::default();
    {
        let shared = Shared {
            registry: registry.clone(),
            phase: phase.clone(),
            outcome: outcome.clone(),
            trace: trace.clone(),
            highest_applied: highest_applied.clone(),
        };
        let client_rng = Rng::new(plan.seed ^ 0x005E_EDC1_1E47);
        let ops = plan.ops;
        let workload_time = plan.workload_time;
        sim.client("workload", async move {
            workload(client_rng, ops, workload_time, shared)
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
        if done {
            break;
        }
        let event = match phase.get() {
            Phase::Workload if sim.elapsed() >= next_slot => {
                next_slot = sim.elapsed() + Duration::from_millis(200);
                let disk_events = faults.disk_event(&mut sim, |node| {
                    seen.remove(&node);
                })?;
                for event in disk_events {
                    trace
                        .borrow_mut()
                        .record(sim.elapsed(), format_args!("fault: {event}"));
                }
                if !rng.chance(plan.fault_chance) {
                    continue;
                }
                faults.inject(&mut sim, &mut rng, |node| {
                    seen.remove(&node);
                })?
            }
            Phase::HealRequested => {
                let restarted = faults.heal(&mut sim)?;
                for (node, event) in &restarted {
                    if let Some(node) = node {
                        seen.remove(node);
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
    mut rng: Rng,
    ops: usize,
    workload_time: Duration,
    shared: Shared,
) -> Result<(), String> {
    let Shared {
        registry,
        phase,
        outcome,
        trace,
        highest_applied,
    } = shared;
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

    phase.set(Phase::HealRequested);
    while phase.get() != Phase::Healed {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
    check_acknowledged(&histories, &catalogues[0].2)
}
