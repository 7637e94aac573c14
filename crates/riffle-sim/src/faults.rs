//! The fault driver: between simulation steps it isolates nodes, cuts links one way, makes
//! links lossy, repairs them, crashes nodes and restarts them, each choice drawn from the
//! run's seed, and it keeps its own record of the links it broke so it can put them back.

use std::collections::BTreeSet;

use turmoil::Sim;

use crate::node::host_name;
use crate::Rng;

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
    /// Fault events drawn (including those that found nothing to do).
    pub injected: usize,
    /// Crashes injected.
    pub crashes: usize,
}

impl Faults {
    pub fn new(nodes: &[u64], client: &str) -> Faults {
        Faults {
            nodes: nodes.to_vec(),
            client: client.to_string(),
            cut: BTreeSet::new(),
            lossy: BTreeSet::new(),
            crashed: BTreeSet::new(),
            injected: 0,
            crashes: 0,
        }
    }

    /// Whether `node` is down now.
    pub fn is_crashed(&self, node: u64) -> bool {
        self.crashed.contains(&node)
    }

    /// Draws one fault from `rng` and injects it; returns what it did, for the trace.
    /// `restarted` is told of each node brought back (its software starts afresh).
    pub fn inject(
        &mut self,
        sim: &mut Sim<'_>,
        rng: &mut Rng,
        mut restarted: impl FnMut(u64),
    ) -> String {
        self.injected += 1;
        let count = self.nodes.len() as u64;
        let index = rng.below(count) as usize;
        let node = self.nodes[index];
        let other = self.nodes[(index + 1) % self.nodes.len()];
        match rng.below(6) {
            0 => {
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
                    format!("crash node{node}")
                } else {
                    format!("crash node{node} skipped")
                }
            }
            4 => match self.crashed.pop_first() {
                Some(node) => {
                    sim.bounce(host_name(node));
                    restarted(node);
                    format!("restart node{node}")
                }
                None => "restart skipped".to_string(),
            },
            _ => {
                sim.set_link_fail_rate(host_name(node), host_name(other), LOSSY_FAIL_RATE);
                self.lossy.insert((node.min(other), node.max(other)));
                format!("lossy node{node} - node{other}")
            }
        }
    }

    /// Repairs every link, takes every loss away and restarts every crashed node; returns
    /// the nodes restarted.
    pub fn heal(&mut self, sim: &mut Sim<'_>) -> Vec<u64> {
        self.repair_cuts(sim);
        for (a, b) in std::mem::take(&mut self.lossy) {
            sim.set_link_fail_rate(host_name(a), host_name(b), 0.0);
        }
        let restarted: Vec<u64> = std::mem::take(&mut self.crashed).into_iter().collect();
        for node in &restarted {
            sim.bounce(host_name(*node));
        }
        restarted
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
