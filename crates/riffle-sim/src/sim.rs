//! One seeded run: three metadata-group nodes as turmoil hosts, a workload client, faults
//! driven between simulation steps, then healing and the invariant checks.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::ServerState;
use riffle_cluster::{MetaRaft, MetaView};
use riffle_core::catalogue::{CatalogueState, Command};
use riffle_core::meta::{ShardMeta, StreamMeta, StreamMode};
use tempfile::TempDir;
use turmoil::net::TcpStream;

use crate::node::{host_name, run_node, PORT};
use crate::wire::{self, Proposed, Reply, Request};

const NODES: [u64; 3] = [1, 2, 3];
const ACCOUNT: &str = "000000000000";
const STREAMS: [&str; 3] = ["alpha", "beta", "gamma"];
const GEN_TAG: &str = "sim-gen";

/// How a run is shaped; [`Plan::for_seed`] is what the tests use.
#[derive(Debug, Clone)]
pub struct Plan {
    pub seed: u64,
    /// Commands the workload gets a verdict for (or gives up on).
    pub ops: usize,
    /// Chance per fault slot (every 200 ms of simulated time) of a fault event.
    pub fault_chance: f64,
    /// Simulated time after which the workload stops proposing (so a seed whose faults keep
    /// the group unavailable still ends, and CI time stays bounded).
    pub workload_time: Duration,
}

impl Plan {
    pub fn for_seed(seed: u64) -> Plan {
        Plan {
            seed,
            ops: 60,
            fault_chance: 0.35,
            workload_time: Duration::from_secs(40),
        }
    }
}

/// What a successful run did.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub acknowledged: usize,
    pub uncertain: usize,
    pub faults: usize,
    pub crashes: usize,
    pub leaders_seen: usize,
    pub simulated: Duration,
}

/// SplitMix64: small, seedable, and the same on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Workload,
    HealRequested,
    Healed,
}

/// What the workload knows of one stream.
#[derive(Debug, Default)]
struct StreamHistory {
    /// The version the workload believes current (`None`: believes absent).
    believed: Option<u64>,
    /// The generation markers the final state may hold (`None`: absent): the last
    /// acknowledged change and every later change whose fate is unknown.
    possible: Vec<Option<u64>>,
    /// The last acknowledged change: its generation (`None` for a delete) and version.
    last_acked: Option<(Option<u64>, u64)>,
}

type Registry = Rc<RefCell<BTreeMap<u64, (MetaRaft, MetaView)>>>;

/// Runs one seed; the error names the seed and the violated invariant.
pub fn run(plan: &Plan) -> Result<Outcome, String> {
    run_inner(plan).map_err(|error| {
        format!(
            "riffle-sim seed {seed} failed: {error}\n  replay: RIFFLE_SIM_SEED={seed} cargo test -p riffle-sim",
            seed = plan.seed
        )
    })
}

fn run_inner(plan: &Plan) -> Result<Outcome, String> {
    let dir = TempDir::new().map_err(|error| format!("temp dir: {error}"))?;
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
    for id in NODES {
        let node_dir = dir.path().join(host_name(id));
        let registry = registry.clone();
        sim.host(host_name(id), move || {
            let node_dir = node_dir.clone();
            let registry = registry.clone();
            async move {
                run_node(id, node_dir, NODES.to_vec(), move |raft, view| {
                    registry.borrow_mut().insert(id, (raft, view));
                })
                .await
            }
        });
    }

    let outcome = Rc::new(RefCell::new(Outcome::default()));
    {
        let registry = registry.clone();
        let phase = phase.clone();
        let outcome = outcome.clone();
        let client_rng = Rng::new(plan.seed ^ 0x005E_EDC1_1E47);
        let ops = plan.ops;
        let workload_time = plan.workload_time;
        sim.client("workload", async move {
            workload(client_rng, ops, workload_time, registry, phase, outcome)
                .await
                .map_err(Into::into)
        });
    }

    // Faults, between steps, from the driver's own seeded RNG.
    let mut crashed: BTreeSet<u64> = BTreeSet::new();
    let mut leaders: BTreeSet<(u64, u64)> = BTreeSet::new();
    let mut applied_at: BTreeMap<u64, (riffle_cluster::LogId, CatalogueState, u64)> =
        BTreeMap::new();
    let mut next_slot = Duration::ZERO;
    let mut faults = 0;
    let mut crashes = 0;
    loop {
        let done = sim.step().map_err(|error| error.to_string())?;
        // Every node that applied index i applied the same entry there and holds the same
        // catalogue after it (sampled every step). This is the safety property that matters:
        // with openraft's "advanced" leader ids, which riffle uses, two nodes may both lead
        // in one term (a leader is a term *and* a node id), so "one leader per term" is not
        // an invariant of this configuration.
        for (id, (raft, view)) in registry.borrow().iter() {
            if crashed.contains(id) {
                continue;
            }
            let metrics = raft.metrics().borrow_watched().clone();
            if metrics.state == ServerState::Leader {
                leaders.insert((metrics.current_term, *id));
            }
            let Some(applied) = view.applied() else {
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
                }
            }
        }
        if done {
            break;
        }
        match phase.get() {
            Phase::Workload => {
                if sim.elapsed() < next_slot {
                    continue;
                }
                next_slot = sim.elapsed() + Duration::from_millis(200);
                if !rng.chance(plan.fault_chance) {
                    continue;
                }
                faults += 1;
                let node = NODES[rng.below(3) as usize];
                match rng.below(6) {
                    0 => {
                        // Isolate one node from the others.
                        for other in NODES.iter().filter(|other| **other != node) {
                            sim.partition(host_name(node), host_name(*other));
                        }
                    }
                    1 => {
                        let other = NODES[(node as usize) % 3];
                        sim.partition_oneway(host_name(node), host_name(other));
                    }
                    2 => repair_all(&sim),
                    3 => {
                        if crashed.len() < 2 && crashed.insert(node) {
                            crashes += 1;
                            sim.crash(host_name(node));
                        }
                    }
                    4 => {
                        if let Some(node) = crashed.pop_first() {
                            sim.bounce(host_name(node));
                        }
                    }
                    _ => {
                        // Make one link lossy for a while.
                        let other = NODES[(node as usize) % 3];
                        sim.set_link_fail_rate(host_name(node), host_name(other), 0.2);
                    }
                }
            }
            Phase::HealRequested => {
                repair_all(&sim);
                for a in NODES {
                    for b in NODES {
                        if a < b {
                            sim.set_link_fail_rate(host_name(a), host_name(b), 0.0);
                        }
                    }
                }
                for node in std::mem::take(&mut crashed) {
                    sim.bounce(host_name(node));
                }
                phase.set(Phase::Healed);
            }
            Phase::Healed => {}
        }
    }
    let mut outcome = outcome.borrow().clone();
    outcome.faults = faults;
    outcome.crashes = crashes;
    outcome.leaders_seen = leaders.len();
    outcome.simulated = sim.elapsed();
    Ok(outcome)
}

fn repair_all(sim: &turmoil::Sim<'_>) {
    for a in NODES {
        for b in NODES {
            if a != b {
                sim.repair_oneway(host_name(a), host_name(b));
            }
        }
    }
}

fn stream_meta(name: &str, generation: u64) -> StreamMeta {
    let shard = ShardMeta {
        ordinal: 0,
        starting_hash_key: 0,
        ending_hash_key: u128::MAX,
        parent: None,
        adjacent_parent: None,
        created_ms: 1_000,
        sequence_epoch_s: 1,
        closed: None,
        replicas: Vec::new(),
    };
    StreamMeta {
        account: ACCOUNT.into(),
        name: name.into(),
        dir_id: format!("dir-{name}"),
        created_ms: 1_000,
        mode: StreamMode::Provisioned,
        retention_hours: 24,
        max_record_size_kib: 1024,
        tags: BTreeMap::from([(GEN_TAG.to_string(), generation.to_string())]),
        shard_level_metrics: Vec::new(),
        next_shard_ordinal: 1,
        shards: vec![shard],
        consumers: Vec::new(),
        policy: None,
        warm_throughput_mibps: None,
        record_distribution: Default::default(),
        encryption: None,
        sealing_keys: Vec::new(),
    }
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

async fn workload(
    mut rng: Rng,
    ops: usize,
    workload_time: Duration,
    registry: Registry,
    phase: Rc<Cell<Phase>>,
    outcome: Rc<RefCell<Outcome>>,
) -> Result<(), String> {
    let mut histories: BTreeMap<&str, StreamHistory> = BTreeMap::new();
    let mut generation = 0u64;
    let mut target = NODES[rng.below(3) as usize];
    let stop = tokio::time::Instant::now() + workload_time;
    for _ in 0..ops {
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
            match ask(target, &request).await {
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
    // Converge: every node applies the same entries to the same catalogue.
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
                .all(|pair| pair[0].1 == pair[1].1 && pair[0].2 == pair[1].2);
        if same {
            break snapshot;
        }
        if tokio::time::Instant::now() > deadline {
            let mut text = String::from("the nodes did not converge within 60 s after healing:");
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

/// No acknowledged change lost: each stream in `catalogue` is in the state of its last
/// acknowledged change (at the version that change was answered with) or of a later change
/// whose fate the workload never learned.
fn check_acknowledged(
    histories: &BTreeMap<&str, StreamHistory>,
    catalogue: &CatalogueState,
) -> Result<(), String> {
    for (name, history) in histories {
        let entry = catalogue.stream(ACCOUNT, name);
        let actual = entry.map(|entry| {
            entry
                .meta
                .tags
                .get(GEN_TAG)
                .and_then(|tag| tag.parse::<u64>().ok())
                .unwrap_or(0)
        });
        if history.last_acked.is_none() && history.possible.is_empty() {
            if actual.is_some() {
                return Err(format!("stream {name} exists but was never proposed"));
            }
            continue;
        }
        if !history.possible.contains(&actual) {
            return Err(format!(
                "stream {name}: the catalogue holds generation {actual:?}, but the last \
                 acknowledged change and later unacknowledged ones allow only {:?} \
                 (last acknowledged {:?})",
                history.possible, history.last_acked
            ));
        }
        if let (Some((marker, version)), Some(entry)) = (history.last_acked, entry) {
            if marker == actual && entry.version != version {
                return Err(format!(
                    "stream {name}: generation {actual:?} was acknowledged at version {version} \
                     but the catalogue says {}",
                    entry.version
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue_with(generation: Option<u64>, version: u64) -> CatalogueState {
        let mut catalogue = CatalogueState::new(String::new());
        if let Some(generation) = generation {
            let meta = stream_meta("alpha", generation);
            catalogue
                .apply(&Command::CreateStream { meta })
                .expect("create");
            for _ in 1..version {
                let meta = stream_meta("alpha", generation);
                let current = catalogue.stream(ACCOUNT, "alpha").expect("there").version;
                catalogue
                    .apply(&Command::ReplaceStream {
                        meta,
                        if_version: current,
                    })
                    .expect("replace");
            }
        }
        catalogue
    }

    fn history(
        possible: Vec<Option<u64>>,
        last_acked: Option<(Option<u64>, u64)>,
    ) -> StreamHistory {
        StreamHistory {
            believed: None,
            possible,
            last_acked,
        }
    }

    #[test]
    fn a_lost_or_rewritten_acknowledged_change_is_reported() {
        let acked = BTreeMap::from([("alpha", history(vec![Some(5)], Some((Some(5), 3))))]);
        assert!(check_acknowledged(&acked, &catalogue_with(Some(5), 3)).is_ok());
        // An older generation, the stream gone, or the right generation at another version.
        assert!(check_acknowledged(&acked, &catalogue_with(Some(4), 2)).is_err());
        assert!(check_acknowledged(&acked, &catalogue_with(None, 0)).is_err());
        assert!(check_acknowledged(&acked, &catalogue_with(Some(5), 2)).is_err());
        // A later change whose answer never came may or may not be there.
        let uncertain =
            BTreeMap::from([("alpha", history(vec![Some(5), None], Some((Some(5), 3))))]);
        assert!(check_acknowledged(&uncertain, &catalogue_with(None, 0)).is_ok());
        // A stream nobody proposed must not appear.
        let untouched = BTreeMap::from([("alpha", history(Vec::new(), None))]);
        assert!(check_acknowledged(&untouched, &catalogue_with(Some(1), 1)).is_err());
    }
}
