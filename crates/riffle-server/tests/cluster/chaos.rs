//! The chaos run: real `riffle serve` processes on loopback, each behind a fault-injecting
//! proxy for node-to-node traffic (`--cluster-advertise`), bounded writers (PutRecord and
//! PutRecords) and readers through every node, and at seeded random moments one fault at a
//! time: kill -9 of a shard's or the catalogue's leader and a restart, SIGSTOP/SIGCONT of a
//! leader, a clean restart, every connection of a node dropped (and new ones refused for a
//! while), latency on a node's links, a one-way cut between two nodes, and a full disk on one
//! node (a small tmpfs, when the test may mount one).
//!
//! After each fault heals, every shard must take writes again within a minute (else the
//! cluster is stuck). After the last one, everything heals, every node must serve a write to
//! every shard, all nodes must converge on the same records, and the history checker
//! (`history.rs`) judges each node's read; what readers were served during the run must all
//! still be there. The longest time a shard took no write after each fault is its failover
//! gap; the run prints their distribution per kind of fault.
//!
//! Settings (environment): `RIFFLE_CHAOS_NODES` (3), `RIFFLE_CHAOS_SECONDS` of faults (60),
//! `RIFFLE_CHAOS_SEED` (random, printed). A failing run prints its seed and the command that
//! replays its fault schedule (`scripts/chaos`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use aws_sdk_kinesis::Client;
use tokio::sync::watch;

use crate::common::{create_stream, list_all_shards, Prng, Server};
use crate::history::{
    self, call_outcome, entry_outcome, longest_gap, shard_ordinal, Attempt, History, Outcome,
    Served, StreamRead,
};
use crate::nodes::{self, client_for, free_port, status, wait_active, Spec};
use crate::proxy::{self, Control};

const STREAM: &str = "chaos";
const SHARDS: i32 = 3;
/// Writers per node, each with at most one call in flight.
const WRITERS_PER_NODE: usize = 2;
/// Partition keys per writer (few, so each key's order is tested often).
const KEYS_PER_WRITER: u64 = 6;
/// How long an SDK call may take: a writer stuck on a paused node gives up after this.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// After a fault heals, every shard must take a write within this long.
const RECOVERY_MAX: Duration = Duration::from_secs(60);
/// After the run, the nodes must agree within this long.
const CONVERGENCE_MAX: Duration = Duration::from_secs(120);
/// The tmpfs of the node whose disk fills: its base size and what a minute of load adds.
const TMPFS_BASE_BYTES: u64 = 64 << 20;
const TMPFS_PER_MINUTE_BYTES: u64 = 8 << 20;

pub struct Settings {
    pub nodes: usize,
    pub fault_time: Duration,
    pub seed: u64,
    /// The kinds of fault to inject (`RIFFLE_CHAOS_FAULTS=kill,pause,...`; default all).
    faults: Vec<Fault>,
}

impl Settings {
    pub fn from_env() -> Settings {
        let number = |name: &str| {
            std::env::var(name).ok().map(|value| {
                value
                    .trim()
                    .parse::<u64>()
                    .unwrap_or_else(|_| panic!("{name}={value:?} is not a number"))
            })
        };
        let seed = number("RIFFLE_CHAOS_SEED").unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_nanos() as u64
                % 1_000_000_007
        });
        let nodes = number("RIFFLE_CHAOS_NODES").unwrap_or(3) as usize;
        assert!(
            nodes == 3 || nodes == 5,
            "RIFFLE_CHAOS_NODES must be 3 or 5, not {nodes}"
        );
        let faults = match std::env::var("RIFFLE_CHAOS_FAULTS") {
            Ok(list) if !list.trim().is_empty() => list
                .split(',')
                .map(|name| {
                    Fault::ALL
                        .into_iter()
                        .find(|fault| fault.short() == name.trim())
                        .unwrap_or_else(|| {
                            panic!(
                                "RIFFLE_CHAOS_FAULTS: unknown fault {name:?} (known: {})",
                                Fault::ALL.map(Fault::short).join(",")
                            )
                        })
                })
                .collect(),
            _ => Fault::ALL.to_vec(),
        };
        Settings {
            nodes,
            fault_time: Duration::from_secs(number("RIFFLE_CHAOS_SECONDS").unwrap_or(60)),
            seed,
            faults,
        }
    }

    fn rerun(&self) -> String {
        let faults = if self.faults.len() == Fault::ALL.len() {
            String::new()
        } else {
            format!(
                "RIFFLE_CHAOS_FAULTS={} ",
                self.faults
                    .iter()
                    .map(|fault| fault.short())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        format!(
            "{faults}RIFFLE_CHAOS_SEED={} RIFFLE_CHAOS_NODES={} RIFFLE_CHAOS_SECONDS={} scripts/chaos",
            self.seed,
            self.nodes,
            self.fault_time.as_secs()
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    KillLeader,
    PauseLeader,
    Restart,
    DropConnections,
    Delay,
    OneWayCut,
    DiskFull,
}

impl Fault {
    const ALL: [Fault; 7] = [
        Fault::KillLeader,
        Fault::PauseLeader,
        Fault::Restart,
        Fault::DropConnections,
        Fault::Delay,
        Fault::OneWayCut,
        Fault::DiskFull,
    ];

    /// The name `RIFFLE_CHAOS_FAULTS` uses.
    fn short(self) -> &'static str {
        match self {
            Fault::KillLeader => "kill",
            Fault::PauseLeader => "pause",
            Fault::Restart => "restart",
            Fault::DropConnections => "drop",
            Fault::Delay => "delay",
            Fault::OneWayCut => "cut",
            Fault::DiskFull => "disk",
        }
    }

    /// How often it is picked, relative to the others.
    fn weight(self) -> u64 {
        match self {
            Fault::KillLeader | Fault::PauseLeader => 3,
            Fault::DropConnections | Fault::OneWayCut => 2,
            Fault::Restart | Fault::Delay | Fault::DiskFull => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Fault::KillLeader => "leader kill -9",
            Fault::PauseLeader => "leader SIGSTOP",
            Fault::Restart => "clean restart",
            Fault::DropConnections => "connections dropped",
            Fault::Delay => "link latency",
            Fault::OneWayCut => "one-way cut",
            Fault::DiskFull => "disk full",
        }
    }
}

/// A small tmpfs for one node's data directory, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts one at `path`, or says why it cannot.
    fn mount(path: PathBuf, bytes: u64) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(&path).map_err(|error| error.to_string())?;
        let output = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0700"),
                "tmpfs",
            ])
            .arg(&path)
            .output()
            .map_err(|error| format!("cannot run mount: {error}"))?;
        if output.status.success() {
            Ok(Tmpfs { path })
        } else {
            Err(format!(
                "mount -t tmpfs failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    fn ballast(&self) -> PathBuf {
        self.path.join("ballast")
    }

    /// Fills the filesystem to the last byte; returns how much it took.
    fn fill(&self) -> u64 {
        use std::io::Write;
        let Ok(mut file) = std::fs::File::create(self.ballast()) else {
            return 0;
        };
        let mut written = 0u64;
        for chunk in [1 << 20, 4096, 1] {
            let bytes = vec![0x5a_u8; chunk];
            while file.write_all(&bytes).is_ok() {
                written += chunk as u64;
            }
        }
        written
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.ballast());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

struct ChaosNode {
    spec: Spec,
    server: Option<Server>,
    paused: bool,
    id: u64,
}

/// What every task of the run shares.
struct Shared {
    started: Instant,
    events: Mutex<Vec<String>>,
    violations: Mutex<Vec<String>>,
    served: Mutex<Served>,
    next_id: AtomicU64,
    /// Per shard, when a write to it was last acknowledged.
    last_ack: Mutex<BTreeMap<u32, Instant>>,
}

impl Shared {
    fn event(&self, what: String) {
        let line = format!("[{:7.2}s] {what}", self.started.elapsed().as_secs_f64());
        eprintln!("chaos {line}");
        self.events.lock().unwrap().push(line);
    }

    fn violation(&self, what: String) {
        self.event(format!("VIOLATION: {what}"));
        self.violations.lock().unwrap().push(what);
    }
}

/// Fields drop in order: the nodes stop before their tmpfs is unmounted, and that before the
/// directory holding it is removed.
struct Run {
    nodes: Vec<ChaosNode>,
    tmpfs: Option<(usize, Tmpfs)>,
    _root: tempfile::TempDir,
    settings: Settings,
    endpoints: Vec<watch::Sender<Option<String>>>,
    control: Arc<Control>,
    shared: Arc<Shared>,
    prng: Prng,
}

pub async fn run(settings: Settings) {
    eprintln!(
        "chaos: {} nodes, {} s of faults, seed {} (replay: {})",
        settings.nodes,
        settings.fault_time.as_secs(),
        settings.seed,
        settings.rerun()
    );
    let mut run = Run::start(settings).await;
    let (stop_sender, stop) = watch::channel(false);
    let mut writers = Vec::new();
    for node in 0..run.nodes.len() {
        for n in 0..WRITERS_PER_NODE {
            let writer = node * WRITERS_PER_NODE + n;
            writers.push(tokio::spawn(write_loop(
                writer,
                run.endpoints[node].subscribe(),
                stop.clone(),
                Arc::clone(&run.shared),
                run.settings.seed ^ (writer as u64 + 1).wrapping_mul(0x9e37_79b9),
            )));
        }
    }
    let mut readers = Vec::new();
    for node in 0..run.nodes.len() {
        readers.push(tokio::spawn(read_loop(
            node,
            run.endpoints[node].subscribe(),
            stop.clone(),
            Arc::clone(&run.shared),
        )));
    }

    let faults = run.inject_faults().await;

    // The last fault's gap is measured up to here, while writers still write.
    let faults_ended = Instant::now();
    stop_sender.send_replace(true);
    let mut history = History::default();
    for writer in writers {
        history.extend(writer.await.expect("writer task"));
    }
    for reader in readers {
        reader.await.expect("reader task");
    }
    run.shared.event(format!(
        "writers stopped: {} attempts ({} acknowledged, {} refused, {} unknown)",
        history.len(),
        history.counts().0,
        history.counts().1,
        history.counts().2
    ));

    run.heal_all().await;
    run.every_node_serves_every_shard(&mut history).await;
    let reads = run.converge(&history).await;
    for (node, read) in reads.iter().enumerate() {
        for violation in history::check(&format!("node {node}"), read, &history) {
            run.shared.violation(violation);
        }
    }
    if let Some(read) = reads.first() {
        let served = run.shared.served.lock().unwrap();
        run.shared.event(format!(
            "readers were served {} records during the run",
            served.len()
        ));
        for violation in served.check("served during the run", read) {
            run.shared.violation(violation);
        }
    }
    report_gaps(&run.shared, &history, &faults, faults_ended);
    run.finish();
}

/// When each fault started, and its kind.
type FaultLog = Vec<(Instant, Fault)>;

fn report_gaps(shared: &Shared, history: &History, faults: &FaultLog, end: Instant) {
    let times = history.ack_times();
    let mut by_kind: BTreeMap<Fault, Vec<Duration>> = BTreeMap::new();
    for (i, (at, kind)) in faults.iter().enumerate() {
        let until = faults.get(i + 1).map_or(end, |(next, _)| *next);
        by_kind
            .entry(*kind)
            .or_default()
            .push(longest_gap(&times, *at, until));
    }
    eprintln!("chaos: failover gap (longest time a shard took no write after the fault):");
    eprintln!(
        "  {:<22} {:>5} {:>9} {:>9} {:>9}",
        "fault", "count", "p50", "p99", "max"
    );
    for (kind, mut gaps) in by_kind {
        gaps.sort_unstable();
        let at = |q: f64| gaps[((gaps.len() - 1) as f64 * q).round() as usize];
        let line = format!(
            "  {:<22} {:>5} {:>8.2}s {:>8.2}s {:>8.2}s",
            kind.name(),
            gaps.len(),
            at(0.5).as_secs_f64(),
            at(0.99).as_secs_f64(),
            gaps[gaps.len() - 1].as_secs_f64()
        );
        eprintln!("{line}");
        shared.events.lock().unwrap().push(line);
    }
}

impl Run {
    async fn start(settings: Settings) -> Run {
        let root = tempfile::tempdir().expect("temp dir");
        let secret = root.path().join("cluster.secret");
        let control = Control::new();
        let shared = Arc::new(Shared {
            started: Instant::now(),
            events: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
            served: Mutex::new(Served::default()),
            next_id: AtomicU64::new(1),
            last_ack: Mutex::new(BTreeMap::new()),
        });
        // The last node's data directory is a small tmpfs, for the disk-full fault.
        let disk_node = settings.nodes - 1;
        let minutes = settings.fault_time.as_secs().div_ceil(60);
        let tmpfs = match Tmpfs::mount(
            root.path().join(format!("d{disk_node}")),
            TMPFS_BASE_BYTES + minutes * TMPFS_PER_MINUTE_BYTES,
        ) {
            Ok(tmpfs) => Some((disk_node, tmpfs)),
            Err(reason) => {
                eprintln!(
                    "chaos: the disk-full fault is skipped: cannot mount a tmpfs for a node's \
                     data directory ({reason}; it needs root)"
                );
                None
            }
        };
        let mut specs = Vec::new();
        for i in 0..settings.nodes {
            let listen = format!("127.0.0.1:{}", free_port());
            let upstream = listen.parse().expect("loopback address");
            let advertised = proxy::start(i, upstream, Arc::clone(&control)).await;
            specs.push(Spec {
                dir: root.path().join(format!("d{i}")),
                listen,
                advertise: Some(advertised.to_string()),
                join: None,
                secret: secret.clone(),
                extra: Vec::new(),
            });
        }
        let first = specs[0].advertise.clone();
        for spec in specs.iter_mut().skip(1) {
            spec.join = first.clone();
        }
        let mut nodes = Vec::new();
        let mut endpoints = Vec::new();
        for spec in specs {
            let server = spec.start().await;
            endpoints.push(watch::channel(Some(server.endpoint())).0);
            nodes.push(ChaosNode {
                spec,
                server: Some(server),
                paused: false,
                id: 0,
            });
        }
        let mut run = Run {
            prng: Prng::new(settings.seed),
            settings,
            _root: root,
            nodes,
            endpoints,
            control,
            shared,
            tmpfs,
        };
        run.form_cluster().await;
        run
    }

    fn endpoint(&self, node: usize) -> String {
        self.nodes[node]
            .server
            .as_ref()
            .expect("the node runs")
            .endpoint()
    }

    /// Waits for every node to be a voter, learns their ids, checks that each advertises
    /// its proxy, and creates the stream.
    async fn form_cluster(&mut self) {
        let count = self.nodes.len();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            match status(&self.endpoint(0), Duration::from_secs(5)).await {
                Ok(seen) if seen["voters"].as_array().is_some_and(|v| v.len() == count) => break,
                seen => assert!(
                    Instant::now() < deadline,
                    "the {count} nodes did not all become voters: {seen:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for i in 0..count {
            let seen = status(&self.endpoint(i), Duration::from_secs(5))
                .await
                .expect("status");
            self.nodes[i].id = seen["id"].as_u64().expect("a node id");
            let advertised = self.nodes[i].spec.advertise.clone().expect("advertised");
            assert_eq!(
                seen["addr"].as_str(),
                Some(advertised.as_str()),
                "node {i} names its advertised address"
            );
            assert_eq!(
                nodes::recorded_addr(&self.nodes[i].spec.dir),
                advertised,
                "DATA/cluster.json records the advertised address"
            );
            let members = seen["members"].as_object().expect("members");
            for node in &self.nodes[..=i] {
                assert_eq!(
                    members
                        .get(&node.id.to_string())
                        .and_then(|addr| addr.as_str()),
                    node.spec.advertise.as_deref(),
                    "peers know each node by its proxy's address"
                );
            }
        }
        assert!(
            self.control.connections() > 0,
            "node-to-node traffic goes through the proxies"
        );
        let client = client_for(&self.endpoint(1 % count), CALL_TIMEOUT);
        create_stream(&client, STREAM, SHARDS).await;
        for i in 0..count {
            let client = client_for(&self.endpoint(i), CALL_TIMEOUT);
            wait_active(&client, STREAM).await;
            assert_eq!(
                list_all_shards(&client, STREAM).await.len(),
                SHARDS as usize
            );
        }
        let ids: Vec<u64> = self.nodes.iter().map(|node| node.id).collect();
        self.shared.event(format!(
            "cluster formed: node ids {ids:?}; stream {STREAM} of {SHARDS} shards active on every node"
        ));
    }

    fn index_of(&self, id: u64) -> Option<usize> {
        self.nodes.iter().position(|node| node.id == id)
    }

    fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].server.is_some() && !self.nodes[i].paused)
            .collect()
    }

    /// A leader to hit: of a random shard, or (one time in four) of the catalogue, as the
    /// first node that answers sees it; a random node when none is known.
    async fn pick_leader(&mut self) -> (usize, String) {
        let shard = self.prng.below(SHARDS as u64);
        let catalogue = self.prng.below(4) == 0;
        for i in self.running() {
            let Ok(seen) = status(&self.endpoint(i), Duration::from_secs(3)).await else {
                continue;
            };
            let leader = if catalogue {
                seen["meta_leader"].as_u64()
            } else {
                seen["shards"].as_array().and_then(|shards| {
                    shards
                        .iter()
                        .find(|s| s["ordinal"].as_u64() == Some(shard))
                        .and_then(|s| s["leader"].as_u64())
                })
            };
            if let Some(index) = leader.and_then(|id| self.index_of(id)) {
                let what = if catalogue {
                    "the catalogue's leader".to_owned()
                } else {
                    format!("shard {shard}'s leader")
                };
                return (index, what);
            }
        }
        let any = self.prng.below(self.nodes.len() as u64) as usize;
        (any, "a node (no leader known)".to_owned())
    }

    fn seconds(&mut self, from_ms: u64, to_ms: u64) -> Duration {
        Duration::from_millis(from_ms + self.prng.below(to_ms - from_ms + 1))
    }

    fn pick_fault(&mut self, round: usize) -> Fault {
        let enabled: Vec<Fault> = self
            .settings
            .faults
            .iter()
            .copied()
            .filter(|fault| *fault != Fault::DiskFull || self.tmpfs.is_some())
            .collect();
        assert!(!enabled.is_empty(), "no fault left to inject");
        // The first faults are the ones whose gaps the run measures, so that even the
        // shortest run has one of each.
        let mut first: Vec<Fault> = [Fault::KillLeader, Fault::PauseLeader]
            .into_iter()
            .filter(|fault| enabled.contains(fault))
            .collect();
        if self.settings.seed % 2 == 1 {
            first.reverse();
        }
        if let Some(fault) = first.get(round) {
            return *fault;
        }
        let total: u64 = enabled.iter().map(|fault| fault.weight()).sum();
        let mut pick = self.prng.below(total);
        for fault in enabled {
            if pick < fault.weight() {
                return fault;
            }
            pick -= fault.weight();
        }
        unreachable!("the weights cover the pick")
    }

    async fn inject_faults(&mut self) -> FaultLog {
        let mut log = FaultLog::new();
        let end = Instant::now() + self.settings.fault_time;
        let mut round = 0;
        while Instant::now() < end {
            let quiet = self.seconds(500, 2500);
            tokio::time::sleep(quiet).await;
            let fault = self.pick_fault(round);
            round += 1;
            let started = Instant::now();
            log.push((started, fault));
            self.inject(fault).await;
            if !self.recovered(fault, started).await {
                break;
            }
        }
        log
    }

    async fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::KillLeader => {
                let (victim, what) = self.pick_leader().await;
                let down = self.seconds(300, 3000);
                self.shared.event(format!(
                    "kill -9 node {victim}, {what}; restart after {down:?}"
                ));
                self.kill(victim);
                tokio::time::sleep(down).await;
                self.restart(victim).await;
            }
            Fault::PauseLeader => {
                let (victim, what) = self.pick_leader().await;
                let paused = self.seconds(1000, 6000);
                self.shared
                    .event(format!("SIGSTOP node {victim}, {what}, for {paused:?}"));
                self.pause(victim, true);
                tokio::time::sleep(paused).await;
                self.pause(victim, false);
                self.shared.event(format!("SIGCONT node {victim}"));
            }
            Fault::Restart => {
                let node = self.prng.below(self.nodes.len() as u64) as usize;
                self.shared.event(format!("clean restart of node {node}"));
                self.stop_cleanly(node).await;
                self.restart(node).await;
            }
            Fault::DropConnections => {
                let node = self.prng.below(self.nodes.len() as u64) as usize;
                let refused = self.seconds(0, 2000);
                self.shared.event(format!(
                    "drop every connection to node {node}, refuse new ones for {refused:?}"
                ));
                self.control.change(|faults| {
                    *faults.drops.entry(node).or_default() += 1;
                    faults.refuse.insert(node);
                });
                tokio::time::sleep(refused).await;
                self.control.change(|faults| {
                    faults.refuse.remove(&node);
                });
            }
            Fault::Delay => {
                let node = self.prng.below(self.nodes.len() as u64) as usize;
                let delay = self.seconds(20, 300);
                let lasting = self.seconds(2000, 6000);
                self.shared.event(format!(
                    "{delay:?} latency on node {node}'s links for {lasting:?}"
                ));
                self.control.change(|faults| {
                    faults.delay.insert(node, delay);
                });
                tokio::time::sleep(lasting).await;
                self.control.heal();
            }
            Fault::OneWayCut => {
                // From a leader half the time: it then cannot reach a follower, which
                // still reaches it.
                let from = if self.prng.below(2) == 0 {
                    self.pick_leader().await.0
                } else {
                    self.prng.below(self.nodes.len() as u64) as usize
                };
                let to = (from + 1 + self.prng.below(self.nodes.len() as u64 - 1) as usize)
                    % self.nodes.len();
                let lasting = self.seconds(1000, 6000);
                self.shared.event(format!(
                    "cut node {from} -> node {to} (one way) for {lasting:?}"
                ));
                let link = (self.nodes[from].id, self.nodes[to].id);
                self.control.change(|faults| {
                    faults.cut.insert(link);
                });
                tokio::time::sleep(lasting).await;
                self.control.heal();
            }
            Fault::DiskFull => {
                let lasting = self.seconds(1000, 4000);
                let (node, tmpfs) = self.tmpfs.as_ref().expect("a tmpfs");
                let node = *node;
                let filled = tmpfs.fill();
                self.shared.event(format!(
                    "disk of node {node} full ({} MiB of ballast) for {lasting:?}",
                    filled >> 20
                ));
                tokio::time::sleep(lasting).await;
                tmpfs.free();
                self.shared
                    .event(format!("disk of node {node} has room again"));
            }
        }
    }

    /// Whether every node runs again and every shard took a write after the fault healed;
    /// a violation (the cluster is stuck) if not within [`RECOVERY_MAX`].
    async fn recovered(&mut self, fault: Fault, started: Instant) -> bool {
        let healed = Instant::now();
        let deadline = healed + RECOVERY_MAX;
        loop {
            let behind: Vec<u32> = {
                let last = self.shared.last_ack.lock().unwrap();
                (0..SHARDS as u32)
                    .filter(|shard| last.get(shard).is_none_or(|at| *at < healed))
                    .collect()
            };
            if behind.is_empty() {
                self.shared.event(format!(
                    "{} healed; every shard took writes {:.2?} after the fault began",
                    fault.name(),
                    started.elapsed()
                ));
                return true;
            }
            if Instant::now() > deadline {
                self.shared.violation(format!(
                    "stuck: {RECOVERY_MAX:?} after a {} healed, shards {behind:?} still take no writes",
                    fault.name()
                ));
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill(&mut self, node: usize) {
        self.endpoints[node].send_replace(None);
        if let Some(server) = self.nodes[node].server.take() {
            server.kill();
        }
        self.nodes[node].paused = false;
    }

    fn pause(&mut self, node: usize, stop: bool) {
        if let Some(server) = &self.nodes[node].server {
            server.signal(if stop { "STOP" } else { "CONT" });
            self.nodes[node].paused = stop;
        }
    }

    async fn stop_cleanly(&mut self, node: usize) {
        self.endpoints[node].send_replace(None);
        let Some(server) = self.nodes[node].server.take() else {
            return;
        };
        let stopped =
            tokio::task::spawn_blocking(move || server.terminate(Duration::from_secs(30)))
                .await
                .expect("stop task");
        match stopped {
            Ok(status) if status.success() => {}
            Ok(status) => self
                .shared
                .violation(format!("node {node}'s clean shutdown exited with {status}")),
            Err(error) => self.shared.violation(format!("node {node} {error}")),
        }
    }

    async fn restart(&mut self, node: usize) {
        let server = self.nodes[node].spec.start().await;
        self.endpoints[node].send_replace(Some(server.endpoint()));
        self.nodes[node].server = Some(server);
        self.shared.event(format!("node {node} restarted"));
    }

    /// Every fault undone: processes continued or started, the network clean, the disk freed.
    async fn heal_all(&mut self) {
        self.control.heal();
        if let Some((_, tmpfs)) = &self.tmpfs {
            tmpfs.free();
        }
        for node in 0..self.nodes.len() {
            if self.nodes[node].paused {
                self.pause(node, false);
            }
            if self.nodes[node].server.is_none() {
                self.restart(node).await;
            }
        }
        self.shared.event("everything healed".to_owned());
    }

    /// Through every node, one write to every shard must be acknowledged (each is an attempt
    /// of the history, so the final reads must hold it).
    async fn every_node_serves_every_shard(&mut self, history: &mut History) {
        let shards = list_all_shards(&client_for(&self.endpoint(0), CALL_TIMEOUT), STREAM).await;
        for node in 0..self.nodes.len() {
            let client = client_for(&self.endpoint(node), CALL_TIMEOUT);
            for shard in &shards {
                let ordinal = shard_ordinal(shard.shard_id());
                let hash_key = shard
                    .hash_key_range()
                    .expect("a hash key range")
                    .starting_hash_key()
                    .to_owned();
                let deadline = Instant::now() + RECOVERY_MAX;
                loop {
                    let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
                    let key = format!("final-{node}-{ordinal}");
                    let sent = Instant::now();
                    let answer = client
                        .put_record()
                        .stream_name(STREAM)
                        .partition_key(&key)
                        .explicit_hash_key(&hash_key)
                        .data(Blob::new(history::record_data(id)))
                        .send()
                        .await;
                    let outcome = match &answer {
                        Ok(put) => Outcome::Acked {
                            shard: shard_ordinal(put.shard_id()),
                            sequence: put.sequence_number().to_owned(),
                        },
                        Err(error) => call_outcome(error),
                    };
                    let acked = matches!(outcome, Outcome::Acked { .. });
                    history.add(Attempt {
                        id,
                        key,
                        call: id,
                        slot: 0,
                        sent,
                        finished: Instant::now(),
                        outcome: outcome.clone(),
                    });
                    if acked {
                        break;
                    }
                    if Instant::now() > deadline {
                        self.shared.violation(format!(
                            "stuck: after healing, node {node} cannot write to shard {ordinal}: {outcome:?}"
                        ));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        self.shared
            .event("every node wrote to every shard after healing".to_owned());
    }

    /// Reads the stream through every node until all reads agree and hold every
    /// acknowledged record; a violation if they never do.
    async fn converge(&mut self, history: &History) -> Vec<StreamRead> {
        let deadline = Instant::now() + CONVERGENCE_MAX;
        let acked = history.acked();
        loop {
            let mut reads = Vec::new();
            let mut problem = None;
            for node in 0..self.nodes.len() {
                let client = client_for(&self.endpoint(node), CALL_TIMEOUT);
                match nodes::read_all(&client, STREAM).await {
                    Ok(read) => reads.push(read),
                    Err(error) => {
                        problem = Some(format!("node {node}: {error}"));
                        break;
                    }
                }
            }
            if problem.is_none() {
                for (node, read) in reads.iter().enumerate().skip(1) {
                    if let Some(difference) = history::difference(&reads[0], read) {
                        problem = Some(format!("node 0 and node {node} differ: {difference}"));
                        break;
                    }
                }
            }
            let stored = reads
                .first()
                .map_or(0, |read| read.values().map(Vec::len).sum::<usize>());
            if problem.is_none() && stored < acked {
                problem = Some(format!("{stored} records stored, {acked} acknowledged"));
            }
            match problem {
                None => {
                    self.shared.event(format!(
                        "all {} nodes converged on {stored} records",
                        self.nodes.len()
                    ));
                    return reads;
                }
                Some(problem) if Instant::now() > deadline => {
                    self.shared.violation(format!(
                        "the cluster did not converge within {CONVERGENCE_MAX:?}: {problem}"
                    ));
                    return reads;
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// Ends the run: passes, or fails with the seed, the replay command, what happened and
    /// the nodes' last log lines.
    fn finish(mut self) {
        let violations = self.shared.violations.lock().unwrap().clone();
        if violations.is_empty() {
            eprintln!("chaos: no violation (seed {})", self.settings.seed);
            return;
        }
        let mut report = format!(
            "chaos run failed, seed {}\nreplay: {}\n\nviolations:\n  {}\n\nevents:\n  {}\n",
            self.settings.seed,
            self.settings.rerun(),
            violations.join("\n  "),
            self.shared.events.lock().unwrap().join("\n  ")
        );
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if let Some(server) = node.server.take() {
                report.push_str(&format!(
                    "\n--- node {i} (id {}) log, last lines ---\n{}\n",
                    node.id,
                    server.log_tail()
                ));
            }
        }
        panic!("{report}");
    }
}

/// One writer: PutRecord or PutRecords (1–20 records) through its node, one call at a
/// time, each record an attempt with bytes of its own, until told to stop.
async fn write_loop(
    writer: usize,
    mut endpoint: watch::Receiver<Option<String>>,
    stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
    seed: u64,
) -> History {
    let mut history = History::default();
    let mut prng = Prng::new(seed);
    let mut client: Option<(String, Client)> = None;
    while !*stop.borrow() {
        let Some(current) = endpoint.borrow_and_update().clone() else {
            let _ = tokio::time::timeout(Duration::from_millis(200), endpoint.changed()).await;
            continue;
        };
        if client.as_ref().is_none_or(|(at, _)| *at != current) {
            client = Some((current.clone(), client_for(&current, CALL_TIMEOUT)));
        }
        let (_, sdk) = client.as_ref().expect("a client");
        let count = if prng.below(10) < 4 {
            1
        } else {
            1 + prng.below(20) as usize
        };
        let single = count == 1 && prng.below(2) == 0;
        let call = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let batch: Vec<(u64, String)> = (0..count)
            .map(|_| {
                (
                    shared.next_id.fetch_add(1, Ordering::Relaxed),
                    format!("w{writer}-k{}", prng.below(KEYS_PER_WRITER)),
                )
            })
            .collect();
        let sent = Instant::now();
        let outcomes: Vec<Outcome> = if single {
            let (id, key) = &batch[0];
            match sdk
                .put_record()
                .stream_name(STREAM)
                .partition_key(key)
                .data(Blob::new(history::record_data(*id)))
                .send()
                .await
            {
                Ok(put) => vec![Outcome::Acked {
                    shard: shard_ordinal(put.shard_id()),
                    sequence: put.sequence_number().to_owned(),
                }],
                Err(error) => vec![call_outcome(&error)],
            }
        } else {
            let entries: Vec<PutRecordsRequestEntry> = batch
                .iter()
                .map(|(id, key)| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(key)
                        .data(Blob::new(history::record_data(*id)))
                        .build()
                        .expect("entry")
                })
                .collect();
            match sdk
                .put_records()
                .stream_name(STREAM)
                .set_records(Some(entries))
                .send()
                .await
            {
                Ok(put) if put.records().len() == count => put
                    .records()
                    .iter()
                    .map(
                        |result| match (result.shard_id(), result.sequence_number()) {
                            (Some(shard), Some(sequence)) => Outcome::Acked {
                                shard: shard_ordinal(shard),
                                sequence: sequence.to_owned(),
                            },
                            _ => entry_outcome(result.error_code().unwrap_or("?")),
                        },
                    )
                    .collect(),
                Ok(put) => {
                    shared.violation(format!(
                        "PutRecords of {count} records answered {} results",
                        put.records().len()
                    ));
                    vec![Outcome::Unknown("malformed answer".into()); count]
                }
                Err(error) => vec![call_outcome(&error); count],
            }
        };
        let finished = Instant::now();
        {
            let mut last = shared.last_ack.lock().unwrap();
            for outcome in &outcomes {
                if let Outcome::Acked { shard, .. } = outcome {
                    last.insert(*shard, finished);
                }
            }
        }
        for (slot, ((id, key), outcome)) in batch.into_iter().zip(outcomes).enumerate() {
            history.add(Attempt {
                id,
                key,
                call,
                slot: slot as u32,
                sent,
                finished,
                outcome,
            });
        }
        tokio::time::sleep(Duration::from_millis(5 + prng.below(20))).await;
    }
    history
}

/// One reader through its node: follows every shard from its start, noting what it was
/// served (the same position must always hold the same record) and that numbers only grow.
async fn read_loop(
    node: usize,
    mut endpoint: watch::Receiver<Option<String>>,
    stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
) {
    let mut client: Option<(String, Client)> = None;
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    let mut iterators: BTreeMap<String, String> = BTreeMap::new();
    let mut shards: Vec<String> = Vec::new();
    while !*stop.borrow() {
        let Some(current) = endpoint.borrow_and_update().clone() else {
            iterators.clear();
            let _ = tokio::time::timeout(Duration::from_millis(200), endpoint.changed()).await;
            continue;
        };
        if client.as_ref().is_none_or(|(at, _)| *at != current) {
            client = Some((current.clone(), client_for(&current, CALL_TIMEOUT)));
            iterators.clear();
        }
        let (_, sdk) = client.as_ref().expect("a client");
        if shards.is_empty() {
            match sdk.list_shards().stream_name(STREAM).send().await {
                Ok(listed) => {
                    shards = listed
                        .shards()
                        .iter()
                        .map(|shard| shard.shard_id().to_owned())
                        .collect()
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
        }
        for shard in &shards {
            let iterator = match iterators.remove(shard) {
                Some(iterator) => Some(iterator),
                None => {
                    let request = sdk.get_shard_iterator().stream_name(STREAM).shard_id(shard);
                    let request = match last.get(shard) {
                        Some(sequence) => request
                            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                            .starting_sequence_number(sequence),
                        None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
                    };
                    request
                        .send()
                        .await
                        .ok()
                        .and_then(|got| got.shard_iterator().map(str::to_owned))
                }
            };
            let Some(iterator) = iterator else {
                continue;
            };
            let Ok(page) = sdk
                .get_records()
                .shard_iterator(iterator)
                .limit(1000)
                .send()
                .await
            else {
                continue;
            };
            let ordinal = shard_ordinal(shard);
            for record in page.records() {
                let sequence = record.sequence_number();
                if let Some(previous) = last.get(shard) {
                    if history::compare_sequences(previous, sequence) != std::cmp::Ordering::Less {
                        shared.violation(format!(
                            "reader through node {node}: shard {ordinal} served {sequence} after {previous}"
                        ));
                    }
                }
                let noted = shared.served.lock().unwrap().note(
                    node,
                    ordinal,
                    sequence,
                    record.data().as_ref(),
                );
                if let Some(violation) = noted {
                    shared.violation(violation);
                }
                last.insert(shard.clone(), sequence.to_owned());
            }
            if let Some(next) = page.next_shard_iterator() {
                iterators.insert(shard.clone(), next.to_owned());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
