//! riffle-sim: riffle's cluster under deterministic-network simulation (turmoil), dev only.
//!
//! # What runs
//!
//! The metadata Raft group of three nodes (`riffle-cluster`'s [`open_meta_group`], openraft
//! `=0.10.0-alpha.37` unchanged, storage on disk in a per-run temporary directory), each node a
//! turmoil host. openraft's RPCs (append, vote, pre-vote, full snapshot) and the workload's
//! proposals travel as length-prefixed JSON frames ([`wire`]) over turmoil's simulated TCP,
//! so partitions, loss and latency act on them. A seeded workload client proposes
//! `CreateStream`, `ReplaceStream` and `DeleteStream` (with the versions it believes current)
//! at random nodes, following `ForwardToLeader`. Between simulation steps a driver with its
//! own seeded RNG injects faults every 200 ms of simulated time: isolating a node, one-way
//! partitions, lossy links (turmoil's per-link fail rate: a message may drop what is in
//! flight on its link, which breaks that TCP exchange; the RPC times out and reconnects),
//! repairs, crashing a node (turmoil drops its runtime and tasks;
//! its files stay) and restarting it (a bounce reopens the same directory).
//!
//! # What is checked
//!
//! * every step, for every live node: the entry it applied at index *i* and the catalogue it
//!   holds after it are those any other node had at *i* (state-machine safety, sampled);
//! * after the workload, all faults are healed and crashed nodes restarted; within 60 s of
//!   simulated time all three nodes must have applied the same log id and hold identical
//!   catalogues (documents and stream versions);
//! * no acknowledged change lost: each stream is in the state of its last acknowledged
//!   change, at the version that change was answered with, or of a later change whose answer
//!   never came.
//!
//! "One leader per term" is deliberately *not* checked: riffle's type configuration uses
//! openraft's advanced leader ids (term and node id), under which two nodes may both be
//! elected in one term; the first version of this simulator asserted it and seed 5 showed it.
//!
//! A failure prints the seed and the command that replays it. `RIFFLE_SIM_SEED=N` runs one
//! seed, `RIFFLE_SIM_SEEDS=N` (default 20) runs seeds `RIFFLE_SIM_FIRST_SEED..+N`.
//!
//! # What is deterministic, and what is not yet
//!
//! Simulated time is: every node runs on turmoil's paused tokio clock, which openraft's
//! `tokio::time` timers follow, so a run of minutes of simulated time takes a second or two
//! of real time. The fault schedule and the workload's choices come from the seed. But a
//! seed does **not** yet replay bit for bit:
//!
//! * openraft draws election timeouts and tick phases from `AsyncRuntime::thread_rng()`,
//!   which for `TokioRuntime` is the unseeded `rand::ThreadRng`. openraft 0.10 ships
//!   `openraft_rt::DeterministicRng<RT>`, a runtime wrapper whose `thread_rng` draws from a
//!   seed set per task tree (`DeterministicRng::scope(seed, future)`, inherited by spawned
//!   tasks; outside a scope it has no seed). Using it means a [`riffle_cluster::RiffleRaft`]
//!   whose `AsyncRuntime` is that wrapper in the simulator only (a second type configuration
//!   or a generic one, since a cargo feature would be unified into every workspace build),
//!   which is the next step;
//! * tokio's `select!` picks branches with the runtime's RNG; turmoil seeds it from the run's
//!   seed only in builds with `--cfg tokio_unstable` (tokio's `rng_seed` is unstable), which
//!   riffle's builds do not use;
//! * the disk is the real file system: writes are synchronous `write(2)` calls, so their order
//!   follows the (simulated) task order, and a crash loses nothing (no torn or unsynced
//!   writes are dropped yet). Flushes complete without fdatasync ([`node::NoSync`]).
//!
//! So a failing seed replays the same fault schedule and workload, which makes a rerun likely
//! but not certain to fail the same way.
//!
//! [`open_meta_group`]: riffle_cluster::open_meta_group

pub mod node;
pub mod sim;
pub mod wire;
