//! riffle-sim: riffle's cluster under deterministic simulation (turmoil), dev only.
//!
//! # What runs
//!
//! Three nodes, each a turmoil host running riffle's Raft groups over all three: the
//! metadata group (`riffle-cluster`'s [`open_meta_group`]) and [`Plan::shards`] shard
//! replication groups (one in a small plan, three in a full one), each shard a
//! [`ShardRaft`] over [`open_shard_storage`] with its [`ShardStateMachine`] and riffle's
//! own shard-group timing ([`group_config`]), so the shard's Raft log is its data log
//! (frame index = Raft index + 1). openraft is `=0.10.0-alpha.37`, unchanged; every group's
//! storage is on disk in the node's per-run directory (`meta/`, `shard0/`, ...). openraft's
//! RPCs (append, vote, pre-vote, full snapshot) and the workloads' requests travel as
//! length-prefixed JSON frames ([`wire`]) over turmoil's simulated TCP, a shard group's RPCs
//! wrapped with the shard's id, so partitions, loss and latency act on them. Node 1
//! initialises every group's membership at its first boot (later boots are refused, as a
//! restart wants).
//!
//! Two seeded workloads run side by side in one turmoil client. The catalogue's proposes
//! `CreateStream`, `ReplaceStream` and `DeleteStream` (with the versions it believes
//! current) at random nodes, following `ForwardToLeader`. The records' ([`records`]) appends
//! data frames (`PayloadKind::Records`, `record_count` >= 1, timestamps from simulated time)
//! to random shards through random nodes, following `ForwardToLeader` to the leader; each
//! payload names its shard and a run-unique id, and no id is ever proposed twice: an append
//! that got no verdict (no answer in 3 s, a stopped group) is recorded as of unknown outcome
//! and the workload moves on. Each append ends acknowledged at a frame index, answered
//! `Sealed`, never proposed (every node asked forwarded it) or unknown. In about a third of
//! the runs one `Seal` of shard 0 is proposed at a random point; with a chance of 8% per
//! operation a retention pass (`ShardRetention::expire`, expiring what arrived over 1 s of
//! simulated time earlier, in whole segments, and rolling an active segment older than
//! 0.5 s) runs on the shard's believed leader (a node that does not lead refuses it), which
//! snapshots the shard at the expiry point and purges its log, so a lagging replica installs
//! the snapshot. Shard logs have 768-byte segments, so runs roll several. With a chance of 50%
//! per operation a reader reads a random shard's committed frames on a random live node
//! (riffle-log's `LogReader` over the replica's log, from after the last frame it saw up to
//! the frame of the entry the replica applied).
//!
//! Between simulation steps a driver with its own seeded RNG ([`faults`]) injects faults
//! every 200 ms of simulated time: isolating a node, one-way partitions, lossy links
//! (turmoil's per-link fail rate: a message may drop what is in flight on its link, which
//! breaks that TCP exchange; the RPC times out and reconnects), repairs, crashing a node (a
//! machine that stops: turmoil drops its runtime and tasks, its files stay, and no FIN or
//! RST leaves it) and restarting it (a bounce reopens the same directories, after its disk
//! lost what no fsync covered, below). A second seeded RNG, the disk faults', slows one
//! node's disk down (fsyncs take 50-300 ms instead of 1 ms) or lets it recover, at most once
//! per slot, and every disk is fast again at the heal. It also makes one node's disk at a
//! time fail with `EIO` or `ENOSPC` (a seeded choice) for a while (it ends with a chance of
//! 15% per slot, or at the heal): every fsync of every log of that node fails, and so does
//! every write that fsyncs (an append that seals a full segment, a truncation, a purge);
//! plain appends still reach the page cache. A failed fsync poisons that log for the rest of
//! the boot, as riffle-log does (every later write and fsync fails), the error reaches
//! openraft through `PendingFlush::complete` or the storage call, and openraft stops that
//! group's Raft on the node. When the disk works again, a node any of whose groups stopped
//! is crashed and restarted (losing what no fsync covered); no node is restarted while its
//! disk fails (reopening a log fsyncs, so that boot would fail too). The metadata group
//! snapshots every few entries ([`Plan`]), so snapshots, purges and snapshot installs happen
//! in most runs; shard groups snapshot only at retention, as in riffle.
//!
//! Every log's flushes (the metadata log's and each shard's) go through riffle-cluster's
//! `Flusher` seam to the node's simulated disk ([`disk`]), one [`disk::Disk`] record per
//! log: `submit` queues them for a task of the node, which completes them in order after a
//! simulated fsync (one covers every flush of that log queued before it started), and
//! records the highest frame index made durable before openraft hears of it; riffle-log's
//! own fsyncs (a segment sealed at a roll, a truncation, a reset) count too. Those records
//! live outside the host, so they survive a crash, and at the restart, while the node is
//! down, every frame of each of its logs past its record is dropped and, with a seeded
//! chance, a torn final write (part of the next frame, a few random bytes or a run of zeros)
//! is left after the last one kept, for riffle-log's recovery to cut. The vote and snapshot
//! files are written with fsync and stay as they are. The trace records each slow disk and
//! its recovery, each failing disk (node and error) and its end (the failed fsyncs, the
//! restart if any), and at each restart the frames each log lost and the torn tail written.
//!
//! **openraft's leader restore** is as riffle configures it, off ([`Plan::leader_restore`]
//! reads riffle-cluster's `group_config`). It used to be on (openraft's default), and this
//! simulator is what showed why it must not be: a leader that restarts before another node
//! starts an election resumes leading in the *same term*; if the crash (or a failed fsync)
//! dropped entries it had already sent to a follower, it writes other entries under the same
//! log ids (term, leader, index). The follower keeps the old ones (same log id, so no
//! conflict is seen), counts towards the quorum of the new ones, and the replicas diverge for
//! good: an append is acknowledged at a frame that another replica holds a different payload
//! at. `RIFFLE_SIM_LEADER_RESTORE=1` turns it on again: 9 of the first 300 small seeds fail so
//! (seed 9: node 1 leads shard 0 in term 1; its disk fails while the entry at Raft index 6
//! (proposal 5) is written and already sent to node 3; the Raft stops, the node restarts
//! losing that frame, leads term 1 again at once and appends proposal 7 as (term 1, node 1,
//! index 6), acknowledged at frame 7, which node 3 holds proposal 5 at). With it off, 0 of
//! 300 fail.
//!
//! # What is checked
//!
//! * every step, for every live node: the entry it applied at index *i* and the catalogue it
//!   holds after it are those any other node had at *i*; for every live replica of every
//!   shard, the log id it applied at index *i* is the one any other replica applied there
//!   (state-machine safety, sampled; `sim.rs`);
//! * during the run, each read ([`records::RecordHistory::read`]): the frames come in
//!   strictly increasing index order, above every frame the reader saw before on that shard,
//!   and at most the replica's applied frame; each agrees (term, leader, kind, payload) with
//!   every earlier sight of its index on any replica; every data frame or seal holds a payload
//!   the workload proposed to that shard, that payload is at no other index, and at the index
//!   its append was acknowledged with if it was. Each answer is checked against what was read
//!   too, and no data append is answered `Appended` at a frame after the shard's seal;
//! * after the workloads, all faults are healed and crashed nodes restarted; within 60 s of
//!   simulated time all three nodes must have applied the same metadata log id, at least as
//!   far as any node applied before, and hold identical catalogues (documents and versions);
//!   and every shard's replicas must have applied the same log id, at least the highest
//!   frame any replica applied before (`converge_shards` in `sim.rs`);
//! * no acknowledged change lost: each stream is in the state of its last acknowledged
//!   change, at the version that change was answered with, or of a later change whose answer
//!   never came;
//! * after convergence, every replica's committed frames of each shard
//!   ([`records::RecordHistory::check_shard`]): over the range they all hold, the replicas
//!   agree index by index (term, leader, kind, payload bytes), and with every read of the run;
//!   no payload was never proposed or sits at two indexes; every acknowledged append is on
//!   every replica at exactly its frame with its payload, unless that replica's log starts
//!   after it and the append arrived before the cutoff of a retention pass on its shard;
//!   nothing after the seal was answered `Appended`;
//! * the run replayed exactly: no openraft task was spawned and no random number drawn
//!   outside the nodes' seeded scopes (see below).
//!
//! # What is measured (reported, not checked)
//!
//! The **failover gap** ([`gaps`]): for each fault that takes out the node the driver saw
//! leading a shard group at that moment (a crash, or an isolation, the simulator's stand-in
//! for a pause), the simulated time from the fault to the first verdict (`Appended`, or
//! `Sealed`) of an append to that shard whose request was sent at the fault or later, by
//! any node; dropped, not counted, if the workload sent no append to that shard after the
//! fault, or none of those got a verdict before it stopped. Beside it, the *election gap*:
//! from the same fault to the first step at which the driver sees another leader of the
//! shard. Each run returns them in its [`sim::Outcome`] (not the trace), and
//! `tests/seeds.rs` prints count, p50, p99 and max per fault kind over every seed it ran,
//! with the spacing of proposals to one shard, which quantises the gap. The gaps are those
//! of a run under chaos (faults keep coming, a fault slot every 200 ms), and the client's
//! gap includes its 3 s request timeout (see [`gaps`]).
//!
//! "One leader per term" is deliberately *not* checked: riffle's type configuration uses
//! openraft's advanced leader ids (term and node id), under which two nodes may both be
//! elected in one term; the first version of this simulator asserted it and seed 5 showed it.
//!
//! A failure prints the seed, its plan size and the command that replays it alone, with its
//! trace (`tests/seeds.rs` lists the environment variables; every seed that ever failed is
//! in its `REGRESSIONS`, run every time).
//!
//! # Determinism: a seed replays exactly
//!
//! A run is a function of its seed and plan: its [`trace`] (every entry each node applied,
//! every change of leader, term, snapshot or purge each node saw, each Raft that stopped
//! (with openraft's fatal error), and the same of each shard replica (applied entry,
//! snapshot and purge points, stop), every fault, every answer the workloads got (record
//! appends and seals included), each retention pass and its answer, each read's frame range,
//! each shard's convergence, each with its simulated time) is the same on every run, in any process, after any other seeds, on any
//! thread. `tests/seeds.rs` runs one seed three times (two at
//! once on two threads, then one alone) and requires identical traces; `RIFFLE_SIM_REPLAY=1`
//! (on in `scripts/sim`) runs every seed twice. What it took, source by source:
//!
//! * **time**: every node runs on turmoil's paused tokio clock, which openraft's timers
//!   follow; nothing on the path reads the wall clock (catalogue commands carry their
//!   timestamps; riffle-log's file cache reads `Instant` only to close idle files, which the
//!   simulator never asks for);
//! * **openraft's randomness** (election timeouts, tick phases): riffle's runtime
//!   ([`riffle_cluster::RiffleRuntime`]) draws it through openraft's `DeterministicRng`
//!   inside a seeded scope, and each node's boot runs in one, seeded from the run's seed,
//!   the node and the boot count ([`node::run_node`]). Outside a scope the runtime is plain
//!   tokio with random timeouts, so production is unchanged. openraft's own `select`s are
//!   biased (argument order), not random;
//! * **tokio's RNG**, which a stable tokio seeds from the OS (turmoil seeds it only under
//!   `--cfg tokio_unstable`, which riffle does not build with): the simulator's code uses no
//!   `select!`; tokio's watch channel parks waiters in one of eight lists picked at random,
//!   which reorders the wake-ups of a leader's replication streams, so riffle's runtime gives
//!   openraft watch channels made in a seeded scope a wake order of their own (FIFO). With
//!   the seeded RNG but tokio's watch, 4 of 8 seeds ran differently twice;
//! * **tokio's task ids** are process-wide, and the order in which tokio drops a crashed
//!   host's tasks follows them, so the FIN and RST its sockets sent (each drawing a latency
//!   from turmoil's one RNG) came in another order after other seeds ran: 27 of 300 small
//!   seeds left another trace the second time. A crash is now silent (the node's links are
//!   cut while it goes down, then put back as the driver left them): 0 of 300;
//! * **hash maps** iterate in a per-process random order; none is on the path (openraft,
//!   the catalogue and the simulator use `BTreeMap`, turmoil `IndexMap`), and a second run in
//!   the same process, with other keys, is part of the replay test;
//! * **the workloads** run in one turmoil client, joined with `tokio::join!`, which polls
//!   them in a fixed order and draws nothing at random; the records' workload has its own RNG
//!   (seeded from the run's seed), as does the catalogue's;
//! * **threads**: turmoil runs a whole simulation on the calling thread, and nothing on the
//!   path uses `spawn_blocking` or a thread of its own; the tests run seeds on several
//!   threads at once, one simulation per thread;
//! * **directory names** are random ([`data_dir`]) but nothing a run records contains them,
//!   short of a storage error naming a path;
//! * **the disk**: fsync latency is simulated time (the paused clock), each node's fsync task
//!   is spawned through riffle's runtime inside the node's seeded scope (so it inherits the
//!   seed and dies with the host at a crash), and the disk faults (slow disks, torn tails)
//!   draw from their own RNG, seeded from the run's seed, so adding them left the other
//!   faults' draws as they were (though not the runs: timing changed). A failing disk is a
//!   state of the node's [`disk::Disk`] that its tasks read; the errors it returns name no
//!   path, so a stopped Raft's fatal error can be in the trace.
//!
//! What a seed does not give: the same run under another simulator (a change to the
//! workload, the fault driver or openraft changes what a seed does), nor a faithful disk.
//! The disk is the real file system (in RAM when `/dev/shm` exists): writes are synchronous
//! `write(2)` calls in task order, and no real fdatasync runs. A crash loses exactly the
//! frames of each log past its last simulated fsync (a real disk may keep some of them,
//! since the page cache is written back at any time; the model never drops a frame an fsync
//! covered), only at a restart, and only the logs': a crash never falls inside a storage
//! call (they are synchronous, between two simulation steps), and file creations, renames
//! and deletions, the vote and snapshot files, all fsynced by riffle, always survive. A
//! failing disk fails only the logs' fsyncs (and the writes that fsync), never a
//! plain `write(2)`, the vote file or a snapshot: riffle's wait for room after an `ENOSPC`
//! write (up to 60 s, then the group stops) is not exercised, since the model cannot make
//! riffle-log's own `write(2)` fail for a span of time; and a write that would fsync fails
//! before writing anything (one outcome a failed fsync may leave, not the only one).
//!
//! Each log of a node fsyncs on its own (its own task and latency), as if each were on its
//! own device: a slow disk slows every log of the node alike, but one log's fsync never
//! waits for another's.
//!
//! [`open_meta_group`]: riffle_cluster::open_meta_group
//! [`ShardRaft`]: riffle_cluster::shard_group::ShardRaft
//! [`open_shard_storage`]: riffle_cluster::shard_group::open_shard_storage
//! [`ShardStateMachine`]: riffle_cluster::shard_group::ShardStateMachine
//! [`group_config`]: riffle_cluster::shard_group::group_config

pub mod catalogue_check;
pub mod disk;
pub mod faults;
pub mod gaps;
pub mod node;
pub mod records;
pub mod sim;
pub mod trace;
pub mod wire;

use std::fmt;
use std::time::Duration;

use tempfile::TempDir;

/// How big a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// CI's runs: a few hundred of these fit in about a minute.
    Small,
    /// `scripts/sim`'s runs: longer workloads, more faults per seed.
    Full,
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Size::Small => "small",
            Size::Full => "full",
        })
    }
}

impl std::str::FromStr for Size {
    type Err = String;

    fn from_str(text: &str) -> Result<Size, String> {
        match text {
            "small" => Ok(Size::Small),
            "full" => Ok(Size::Full),
            other => Err(format!("plan size {other:?} is neither small nor full")),
        }
    }
}

/// How a run is shaped: everything in it follows from the seed and the size.
#[derive(Debug, Clone)]
pub struct Plan {
    pub seed: u64,
    pub size: Size,
    /// Commands the workload gets a verdict for (or gives up on).
    pub ops: usize,
    /// Chance per fault slot (every 200 ms of simulated time) of a fault event.
    pub fault_chance: f64,
    /// Simulated time after which the workload stops proposing (so a seed whose faults keep
    /// the group unavailable still ends, and CI time stays bounded).
    pub workload_time: Duration,
    /// Entries between snapshots: a few per run at least.
    pub snapshot_every: u64,
    /// Shard groups every node runs (each over all three nodes).
    pub shards: u32,
    /// Record appends (and, in some runs, one seal) the record workload proposes.
    pub record_ops: usize,
    /// Chance per record operation of a retention pass on a shard's leader.
    pub retention_chance: f64,
    /// Chance per record operation of a reader's pass over a shard on a random node.
    pub read_chance: f64,
    /// openraft's `enable_leader_restore` for every group: riffle's setting (off) unless a
    /// test turns it on to show what it breaks (see the crate docs).
    pub leader_restore: bool,
    /// Print each trace event to stderr as it happens (to follow a replay, failing or not).
    pub print_trace: bool,
}

impl Plan {
    pub fn new(seed: u64, size: Size) -> Plan {
        let (ops, workload_time, snapshot_every, shards, record_ops) = match size {
            Size::Small => (24, Duration::from_secs(12), 8, 1, 30),
            Size::Full => (60, Duration::from_secs(40), 40, 3, 160),
        };
        Plan {
            seed,
            size,
            ops,
            fault_chance: 0.35,
            workload_time,
            snapshot_every,
            shards,
            record_ops,
            retention_chance: 0.08,
            read_chance: 0.5,
            leader_restore: riffle_leader_restore(),
            print_trace: false,
        }
    }

    /// The command that runs this plan alone.
    pub fn replay_command(&self) -> String {
        let restore = if self.leader_restore {
            "RIFFLE_SIM_LEADER_RESTORE=1 "
        } else {
            ""
        };
        format!(
            "{restore}RIFFLE_SIM_SEED={} RIFFLE_SIM_SIZE={} RIFFLE_SIM_TRACE=1 cargo test -p riffle-sim --test seeds",
            self.seed, self.size
        )
    }
}

/// Whether riffle's shard groups restore a restarted leader without an election (the
/// simulator's metadata group, which has timings of its own, follows the same setting).
pub fn riffle_leader_restore() -> bool {
    riffle_cluster::shard_group::group_config("riffle-sim")
        .map(|config| config.enable_leader_restore.unwrap_or(true))
        .unwrap_or(true)
}

/// A fresh directory for one run's data. In RAM (`/dev/shm`) where there is one: the vote
/// file's fsyncs then cost nothing, and they protect nothing here anyway (a turmoil crash
/// drops a node's tasks, not the page cache, which [`disk`] models instead). Its name is
/// random, which no run can see: node
/// directories are named by node id under it, and no path reaches a log or the catalogue.
pub fn data_dir() -> Result<TempDir, String> {
    let ram = std::path::Path::new("/dev/shm");
    let made = if ram.is_dir() {
        tempfile::Builder::new()
            .prefix("riffle-sim-")
            .tempdir_in(ram)
    } else {
        tempfile::Builder::new().prefix("riffle-sim-").tempdir()
    };
    made.map_err(|error| format!("a data directory for the run: {error}"))
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
