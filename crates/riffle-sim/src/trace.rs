//! A run's trace: the ordered events that must be the same every time a seed runs.

use std::time::Duration;

/// The ordered events of a run: each entry a node applied, each change of the leader a node
/// knows, each fault, each answer the workload got, with the simulated time it happened at.
/// Kept as lines (to show where two runs part) and hashed (FNV-1a, the same on every
/// platform and build) to compare runs cheaply.
#[derive(Clone)]
pub struct Trace {
    pub lines: Vec<String>,
    hash: u64,
    print: bool,
}

impl Default for Trace {
    fn default() -> Trace {
        Trace::new(false)
    }
}

impl Trace {
    /// An empty trace; `print` echoes each event to stderr as it is recorded.
    pub fn new(print: bool) -> Trace {
        Trace {
            lines: Vec::new(),
            hash: 0xcbf2_9ce4_8422_2325,
            print,
        }
    }

    /// Appends `event`, which happened at simulated time `at`.
    pub fn record(&mut self, at: Duration, event: impl std::fmt::Display) {
        let line = format!("{:>9.3}s {event}", at.as_secs_f64());
        for byte in line.bytes().chain([b'\n']) {
            self.hash = (self.hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        if self.print {
            eprintln!("{line}");
        }
        self.lines.push(line);
    }

    /// The hash of every event so far, in order.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The first event where `self` and `other` differ (index, this run's, the other's), or
    /// `None` when they are the same.
    pub fn first_difference(&self, other: &Trace) -> Option<(usize, String, String)> {
        let len = self.lines.len().max(other.lines.len());
        (0..len).find_map(|index| {
            let ours = self.lines.get(index).cloned().unwrap_or_default();
            let theirs = other.lines.get(index).cloned().unwrap_or_default();
            (ours != theirs).then_some((index, ours, theirs))
        })
    }
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} events, hash {:016x}", self.lines.len(), self.hash)
    }
}
