//! The fault driver: between simulation steps it isolates nodes, cuts links one way, makes
//! links lossy, repairs them, crashes nodes and restarts them (dropping what their disks had
//! not fsynced), slows disks down and makes one disk at a time fail (then restarts its node),
//! each choice drawn from the run's seed, and it keeps its own record of the links it broke
//! so it can put them back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use riffle_log::LogOptions;
use turmoil::Sim;

use crate::disk::{Disk, DiskError};
use crate::gaps::FaultKind;
use crate::node::host_name;
use crate::Rng;

/// Chance per fault slot of a disk event (a disk slowing down, recovering or starting to
/// fail), drawn from the disk faults' own RNG so that the other faults' plans stay as they
/// were.
const DISK_EVENT_CHANCE: f64 = 0.08;

/// Share of the disk events, while no disk fails, that make one fail.
const DISK_FAILURE_SHARE: f64 = 0.35;

/// Chance per fault slot that a failing disk works again (about 1.3 s on average).
const DISK_FAILURE_END_CHANCE: f64 = 0.15;

/// A slow disk's fsync latency: this many milliseconds at least...
const SLOW_FSYNC_MS_MIN: u64 = 50;
/// ...and at most.
const SLOW_FSYNC_MS_MAX: u64 = 300;

/// One log of a node on the simulated disk: its durability record, directory and options.
#[derive(Debug, Clone)]
pub struct LogDisk {
    /// What the trace calls it (`meta`, `shard0`, ...).
    pub name: String,
    pub disk: Arc<Disk>,
    pub log_dir: PathBuf,
    pub options: LogOptions,
}

/// A node's disk as the driver sees it: every log on it (the metadata log first, then each
/// shard's). A slow or failing disk is slow or fails for all of them alike; each log keeps
/// its own durable index (and is poisoned on its own, as riffle-log's logs are).
#[derive(Debug, Clone)]
pub struct NodeDisk {
    pub logs: Vec<LogDisk>,
}

impl NodeDisk {
    fn set_slow(&self, latency: Option<Duration>) {
        for log in &self.logs {
            log.disk.set_slow(latency);
        }
    }

    fn is_slow(&self) -> bool {
        self.logs.iter().any(|log| log.disk.is_slow())
    }

    fn set_failing(&self, error: Option<DiskError>) {
        for log in &self.logs {
            log.disk.set_failing(error);
        }
    }

    fn failures(&self) -> u64 {
        self.logs.iter().map(|log| log.disk.failures()).sum()
    }

    /// Whether a failed fsync poisoned any of the node's logs (that group's Raft stopped).
    fn is_poisoned(&self) -> bool {
        self.logs.iter().any(|log| log.disk.is_poisoned())
    }

    /// Every log loses what no fsync covered (see [`Disk::lose_unsynced`]); what each lost,
    /// the metadata log's first and bare (as the trace always said it), the others named.
    fn lose_unsynced(&self, rng: &mut Rng) -> Result<String, String> {
        let mut text = String::new();
        for (position, log) in self.logs.iter().enumerate() {
            let loss = log
                .disk
                .lose_unsynced(&log.log_dir, log.options, rng)
                .map_err(|error| format!("{}: {error}", log.name))?;
            if position == 0 {
                text.push_str(&loss.to_string());
            } else {
                text.push_str(&format!("; {}: {loss}", log.name));
            }
        }
        Ok(text)
    }
}

/// Chance that a message on a lossy link breaks the link (turmoil's per-link fail rate).
const LOSSY_FAIL_RATE: f64 = 0.2;

/// The faults in force and the counts of those injected.
#[derive(Debug)]
pub struct Faults {
    nodes: Vec<u64>,
    /// The turmoil client that talks to the nodes (its links are silenced at a crash too).
    client: String,
    /// One-way cuts `(from, to)` the driver made and has not repaired.
    cut: BTreeSet<(u64, u64)>,
    /// Lossy links, smaller id first.
    lossy: BTreeSet<(u64, u64)>,
    crashed: BTreeSet<u64>,
    disks: BTreeMap<u64, NodeDisk>,
    /// The node whose disk fails, if any (one at a time).
    failing: Option<u64>,
    /// The disk faults' RNG: slow and failing disks, and what a restart finds on disk.
    disk_rng: Rng,
    /// Fault events drawn (including those that found nothing to do).
    pub injected: usize,
    /// Crashes injected (a node whose Raft a failing disk stopped is crashed too, to restart).
    pub crashes: usize,
}

impl Faults {
    /// `disk_seed` seeds the disk faults (apart from the others, which `inject` draws).
    pub fn new(
        nodes: &[u64],
        client: &str,
        disks: BTreeMap<u64, NodeDisk>,
        disk_seed: u64,
    ) -> Faults {
        Faults {
            nodes: nodes.to_vec(),
            client: client.to_string(),
            cut: BTreeSet::new(),
            lossy: BTreeSet::new(),
            crashed: BTreeSet::new(),
            disks,
            failing: None,
            disk_rng: Rng::new(disk_seed),
            injected: 0,
            crashes: 0,
        }
    }

    /// Whether `node` is down now.
    pub fn is_crashed(&self, node: u64) -> bool {
        self.crashed.contains(&node)
    }

    /// Maybe ends a disk failure, then maybe slows one node's disk down, lets it recover or
    /// makes it fail (from the disk faults' RNG, once per fault slot); returns what it did,
    /// for the trace. `restarted` is told of a node restarted because its storage failed.
    pub fn disk_event(
        &mut self,
        sim: &mut Sim<'_>,
        mut restarted: impl FnMut(u64),
    ) -> Result<Vec<String>, String> {
        let mut events = Vec::new();
        if self.failing.is_some() && self.disk_rng.chance(DISK_FAILURE_END_CHANCE) {
            let (event, node) = self.end_failure(sim)?;
            if let Some(node) = node {
                restarted(node);
            }
            events.push(event);
        }
        if !self.disk_rng.chance(DISK_EVENT_CHANCE) {
            return Ok(events);
        }
        let node = self.nodes[self.disk_rng.below(self.nodes.len() as u64) as usize];
        let disk = &self.disks[&node];
        if self.failing.is_none() && self.disk_rng.chance(DISK_FAILURE_SHARE) {
            let error = if self.disk_rng.chance(0.5) {
                DiskError::Io
            } else {
                DiskError::NoSpace
            };
            disk.set_failing(Some(error));
            self.failing = Some(node);
            events.push(format!("disk of node{node} fails: {}", error.name()));
        } else if disk.is_slow() {
            disk.set_slow(None);
            events.push(format!("disk of node{node} fast again"));
        } else {
            let span = SLOW_FSYNC_MS_MAX - SLOW_FSYNC_MS_MIN + 1;
            let millis = SLOW_FSYNC_MS_MIN + self.disk_rng.below(span);
            disk.set_slow(Some(Duration::from_millis(millis)));
            events.push(format!("slow disk node{node}: fsyncs take {millis} ms"));
        }
        Ok(events)
    }

    /// The failing disk works again. If its errors stopped the node's Raft (a failed fsync
    /// poisoned the log, and openraft stops a group whose storage failed), the node is
    /// restarted now, as a supervisor would once the disk is back: crashed quietly, then
    /// restarted like any crashed node (its unsynced frames lost). Not before: reopening the
    /// log fsyncs, so a boot on a failing disk would stop too. A node that is down stays
    /// down for the driver to restart. Returns the event and the node restarted, if any.
    fn end_failure(&mut self, sim: &mut Sim<'_>) -> Result<(String, Option<u64>), String> {
        let Some(node) = self.failing.take() else {
            return Ok((String::new(), None));
        };
        let disk = self.disks[&node].clone();
        disk.set_failing(None);
        let failures = disk.failures();
        let mut event = format!("disk of node{node} works again after {failures} failed fsyncs");
        if !disk.is_poisoned() || self.is_crashed(node) {
            return Ok((event, None));
        }
        self.crash_quietly(sim, node);
        self.crashed.remove(&node);
        let restart = self.restart(sim, node)?;
        event.push_str(&format!("; its Raft had stopped: {restart}"));
        Ok((event, Some(node)))
    }

    /// Brings crashed `node` back: first its disk loses what no fsync covered (the host is
    /// down, so nothing has its files open), then turmoil restarts its software. Returns what
    /// the disk lost, for the trace.
    fn restart(&mut self, sim: &mut Sim<'_>, node: u64) -> Result<String, String> {
        let loss = self.disks[&node]
            .lose_unsynced(&mut self.disk_rng)
            .map_err(|error| format!("restarting node{node}: {error}"))?;
        sim.bounce(host_name(node));
        Ok(format!("restart node{node}: {loss}"))
    }

    /// Draws one fault from `rng` and injects it; returns what it did, for the trace, and
    /// the node it took out, if it crashed one or cut one off from every peer it still
    /// reached (what a failover gap is measured from, [`crate::gaps`]). `restarted` is told
    /// of each node brought back (its software starts afresh). An error is a restart whose
    /// disk could not be given its crash (see [`Disk::lose_unsynced`]).
    pub fn inject(
        &mut self,
        sim: &mut Sim<'_>,
        rng: &mut Rng,
        mut restarted: impl FnMut(u64),
    ) -> Result<(String, Option<(FaultKind, u64)>), String> {
        self.injected += 1;
        let count = self.nodes.len() as u64;
        let index = rng.below(count) as usize;
        let node = self.nodes[index];
        let other = self.nodes[(index + 1) % self.nodes.len()];
        let mut took_out = None;
        let event = match rng.below(6) {
            0 => {
                let already = self.nodes.iter().all(|peer| {
                    *peer == node
                        || (self.cut.contains(&(node, *peer)) && self.cut.contains(&(*peer, node)))
                });
                if !already && !self.is_crashed(node) {
                    took_out = Some((FaultKind::Isolation, node));
                }
                for peer in self.nodes.clone() {
                    if peer != node {
                        sim.partition(host_name(node), host_name(peer));
                        self.cut.insert((node, peer));
                        self.cut.insert((peer, node));
                    }
                }
                format!("isolate node{node}")
            }
            1 => {
                sim.partition_oneway(host_name(node), host_name(other));
                self.cut.insert((node, other));
                format!("cut node{node} -> node{other}")
            }
            2 => {
                self.repair_cuts(sim);
                "repair every link".to_string()
            }
            3 => {
                // At most all but one down, so the group can come back without help.
                if self.crashed.len() + 1 < self.nodes.len() && !self.is_crashed(node) {
                    self.crash_quietly(sim, node);
                    took_out = Some((FaultKind::Crash, node));
                    format!("crash node{node}")
                } else {
                    format!("crash node{node} skipped")
                }
            }
            // A node whose disk fails could not open its log: it waits for the disk.
            4 => match self
                .crashed
                .iter()
                .copied()
                .find(|node| Some(*node) != self.failing)
            {
                Some(node) => {
                    self.crashed.remove(&node);
                    let event = self.restart(sim, node)?;
                    restarted(node);
                    event
                }
                None if self.crashed.is_empty() => "restart skipped".to_string(),
                None => {
                    let waiting = self.failing.unwrap_or_default();
                    format!("restart node{waiting} skipped: its disk fails")
                }
            },
            _ => {
                sim.set_link_fail_rate(host_name(node), host_name(other), LOSSY_FAIL_RATE);
                self.lossy.insert((node.min(other), node.max(other)));
                format!("lossy node{node} - node{other}")
            }
        };
        Ok((event, took_out))
    }

    /// Repairs every link, takes every loss away, makes every disk work and fast again and
    /// restarts every crashed node (and one whose disk failure stopped its Raft); returns
    /// what it did to disks and nodes: each node restarted (if any) with what its disk lost.
    pub fn heal(&mut self, sim: &mut Sim<'_>) -> Result<Vec<(Option<u64>, String)>, String> {
        let mut restarted = Vec::new();
        if self.failing.is_some() {
            restarted.push(self.end_failure(sim).map(|(event, node)| (node, event))?);
        }
        self.repair_cuts(sim);
        for (a, b) in std::mem::take(&mut self.lossy) {
            sim.set_link_fail_rate(host_name(a), host_name(b), 0.0);
        }
        for node_disk in self.disks.values() {
            node_disk.set_slow(None);
        }
        let crashed: Vec<u64> = std::mem::take(&mut self.crashed).into_iter().collect();
        for node in crashed {
            let event = self.restart(sim, node)?;
            restarted.push((Some(node), event));
        }
        Ok(restarted)
    }

    fn repair_cuts(&mut self, sim: &Sim<'_>) {
        for (from, to) in std::mem::take(&mut self.cut) {
            sim.repair_oneway(host_name(from), host_name(to));
        }
    }

    /// Crashes `node` as a machine that stops: nothing it had open says goodbye. Were its
    /// sockets to send FIN or RST as turmoil drops its tasks, a run would depend on the order
    /// tokio drops them, which follows process-wide task ids, so a seed would run otherwise
    /// after other seeds in the same process; each such message also draws a latency from
    /// turmoil's one RNG. So the node's links are cut (and made loss-free, a draw too) while
    /// it goes down, then put back as the driver left them.
    fn crash_quietly(&mut self, sim: &mut Sim<'_>, node: u64) {
        let peers: Vec<String> = self
            .nodes
            .iter()
            .filter(|peer| **peer != node)
            .map(|peer| host_name(*peer))
            .chain([self.client.clone()])
            .collect();
        for peer in &peers {
            sim.partition(host_name(node), peer.as_str());
            sim.set_link_fail_rate(host_name(node), peer.as_str(), 0.0);
        }
        sim.crash(host_name(node));
        self.crashed.insert(node);
        self.crashes += 1;
        for peer in &peers {
            sim.repair_oneway(host_name(node), peer.as_str());
            sim.repair_oneway(peer.as_str(), host_name(node));
        }
        for (from, to) in &self.cut {
            if *from == node || *to == node {
                sim.partition_oneway(host_name(*from), host_name(*to));
            }
        }
        for (a, b) in &self.lossy {
            if *a == node || *b == node {
                sim.set_link_fail_rate(host_name(*a), host_name(*b), LOSSY_FAIL_RATE);
            }
        }
    }
}
