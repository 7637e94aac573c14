//! A queue's delivery state on disk: `DATA/queues/<id>/state.json` (a snapshot) and
//! `DATA/queues/<id>/journal` (what happened since), both readable by their owner only.
//!
//! The journal is lines of text, appended with write(2) under the queue's lock:
//!
//! ```text
//! R <shard> <index> <slot> <receive count> <first receive ms>   a record was received
//! D <shard> <index> <slot>                                       it became a dead-letter record
//! S <shard> <index> <slot>                                       it was restored
//! A <shard> <index> <slot>                                       it was acknowledged
//! ```
//!
//! An acknowledgement (and a restore) is answered only after the journal is fdatasync'ed
//! ([`Journal::sync`], one fsync for every writer waiting at once: group commit); receives are
//! only written, which a process crash (kill -9) keeps, since the page cache survives it. So
//! after a crash no acknowledged record comes back, receive counts survive, and what was in
//! flight is simply visible again (deadlines are not kept). A torn last line (a crash inside a
//! write, or a power loss) is ignored; a damaged line elsewhere ends the replay there, which
//! can only make records come back, never lose them.
//!
//! When the journal passes [`COMPACT_BYTES`], the queue writes a snapshot of its state
//! (atomically: tmp, fsync, rename, fsync the directory) and empties the journal.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::shard_log::Durability;

/// Journal size after which the queue compacts it into a snapshot.
pub const COMPACT_BYTES: u64 = 8 * 1024 * 1024;

pub const STATE_FILE: &str = "state.json";
pub const JOURNAL_FILE: &str = "journal";

/// A record's place: shard ordinal, log index, slot.
pub type RecordKey = (u32, u64, u16);

/// What is remembered about a record that was fetched and not acknowledged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordState {
    pub receive_count: u32,
    pub first_receive_ms: Option<u64>,
    pub dead: bool,
}

/// One shard in a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSnapshot {
    /// The next position to read: (index, slot).
    pub next: (u64, u16),
    pub drained: bool,
    /// Records that arrived before this are not the queue's (LATEST, AT_TIMESTAMP).
    #[serde(default)]
    pub not_before_ms: u64,
    /// Records before `next` still pending: (index, slot, state).
    pub pending: Vec<(u64, u16, RecordState)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub shards: BTreeMap<u32, ShardSnapshot>,
}

/// One shard's state as recovered at start: snapshot plus journal.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    pub snapshot: Option<ShardSnapshot>,
    /// Below `until` (the snapshot's `next`) only these records are still pending.
    pub until: (u64, u16),
    pub below: BTreeMap<(u64, u16), RecordState>,
    /// At or after `until`: acknowledged ones, and the state of received ones.
    pub acked_above: HashSet<(u64, u16)>,
    pub above: HashMap<(u64, u16), RecordState>,
}

impl Recovered {
    /// The last position this recovery knows anything about: once reading has passed it,
    /// it is no longer needed.
    pub fn last_known(&self) -> (u64, u16) {
        let mut last = self.until;
        for position in self
            .below
            .keys()
            .chain(self.acked_above.iter())
            .chain(self.above.keys())
        {
            last = last.max(*position);
        }
        last
    }

    /// What a fetched record at `position` is: `None` if it was acknowledged, else its state.
    pub fn filter(&self, position: (u64, u16)) -> Option<RecordState> {
        if position < self.until {
            self.below.get(&position).copied()
        } else if self.acked_above.contains(&position) {
            None
        } else {
            Some(self.above.get(&position).copied().unwrap_or_default())
        }
    }

    fn state_mut(&mut self, position: (u64, u16)) -> Option<&mut RecordState> {
        if position < self.until {
            self.below.get_mut(&position)
        } else if self.acked_above.contains(&position) {
            None
        } else {
            Some(self.above.entry(position).or_default())
        }
    }
}

/// The journal file and its group commit.
pub struct Journal {
    dir: PathBuf,
    file: Mutex<File>,
    /// Appends completed (a ticket).
    written: AtomicU64,
    /// Bytes in the journal since the last compaction.
    len: AtomicU64,
    /// The last ticket fsynced; its lock lets one writer fsync for all who wait.
    synced: Mutex<u64>,
    durability: Durability,
}

fn owner_only_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Creates `dir` readable by its owner only.
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // `DATA/queues/` and the queue's own directory.
        for path in [dir.parent(), Some(dir)].into_iter().flatten() {
            fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

impl Journal {
    /// Opens (creating) the journal in `dir`.
    pub fn open(dir: &Path, durability: Durability) -> std::io::Result<Journal> {
        create_dir(dir)?;
        let path = dir.join(JOURNAL_FILE);
        let file = owner_only_file(&path)?;
        let len = file.metadata()?.len();
        if durability != Durability::None {
            if let Some(parent) = dir.parent() {
                crate::meta::sync_dir(parent)?;
            }
            crate::meta::sync_dir(dir)?;
        }
        Ok(Journal {
            dir: dir.to_path_buf(),
            file: Mutex::new(file),
            written: AtomicU64::new(0),
            len: AtomicU64::new(len),
            synced: Mutex::new(0),
            durability,
        })
    }

    /// Appends `bytes` (whole lines); returns the ticket to [`sync`](Self::sync) on.
    pub fn append(&self, bytes: &[u8]) -> std::io::Result<u64> {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(bytes)?;
        self.len.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(self.written.fetch_add(1, Ordering::AcqRel) + 1)
    }

    /// Returns once everything up to `ticket` is durable (per `--durability`).
    pub fn sync(&self, ticket: u64) -> std::io::Result<()> {
        if self.durability != Durability::Sync {
            return Ok(());
        }
        let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        if *synced >= ticket {
            return Ok(()); // someone else's fsync covered it
        }
        let target = self.written.load(Ordering::Acquire);
        let file = self
            .file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_clone()?;
        file.sync_data()?;
        *synced = target;
        Ok(())
    }

    pub fn needs_compaction(&self) -> bool {
        self.len.load(Ordering::Relaxed) > COMPACT_BYTES
    }

    /// Writes `snapshot` durably and empties the journal. The caller holds the queue's lock,
    /// so no line can be appended between the snapshot and the truncation.
    pub fn compact(&self, snapshot: &Snapshot) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(snapshot).map_err(std::io::Error::other)?;
        let durable = self.durability != Durability::None;
        crate::meta::store_file(&self.dir, STATE_FILE, &bytes, durable)
            .map_err(|error| std::io::Error::other(error.to_string()))?;
        let file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.set_len(0)?;
        if durable {
            file.sync_data()?;
        }
        self.len.store(0, Ordering::Relaxed);
        Ok(())
    }
}

/// Line formats.
pub fn receive_line(out: &mut Vec<u8>, key: RecordKey, state: &RecordState) {
    let _ = writeln!(
        out,
        "R {} {} {} {} {}",
        key.0,
        key.1,
        key.2,
        state.receive_count,
        state.first_receive_ms.unwrap_or(0)
    );
}

pub fn event_line(out: &mut Vec<u8>, kind: char, key: RecordKey) {
    let _ = writeln!(out, "{kind} {} {} {}", key.0, key.1, key.2);
}

/// Reads the snapshot and replays the journal of `dir`: per shard, what is recovered.
pub fn recover(dir: &Path) -> std::io::Result<BTreeMap<u32, Recovered>> {
    let snapshot = match fs::read(dir.join(STATE_FILE)) {
        Ok(bytes) => Some(serde_json::from_slice::<Snapshot>(&bytes).map_err(|error| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {error}", dir.join(STATE_FILE).display()),
            )
        })?),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(error),
    };
    let journal = match fs::read(dir.join(JOURNAL_FILE)) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(error),
    };
    Ok(replay(snapshot, &journal, &dir.display().to_string()))
}

/// What a snapshot and the journal lines written after it say, per shard (`what` names
/// their place in a warning).
fn replay(snapshot: Option<Snapshot>, journal: &[u8], what: &str) -> BTreeMap<u32, Recovered> {
    let mut shards: BTreeMap<u32, Recovered> = BTreeMap::new();
    for (ordinal, shard) in snapshot.map(|snapshot| snapshot.shards).unwrap_or_default() {
        let recovered = Recovered {
            until: shard.next,
            below: shard
                .pending
                .iter()
                .map(|(index, slot, state)| ((*index, *slot), *state))
                .collect(),
            snapshot: Some(shard),
            ..Recovered::default()
        };
        shards.insert(ordinal, recovered);
    }
    // Only whole lines: a torn last one was never acknowledged to anyone.
    let whole = match journal.iter().rposition(|byte| *byte == b'\n') {
        Some(last) => &journal[..=last],
        None => &[][..],
    };
    for line in whole.split(|byte| *byte == b'\n') {
        if line.is_empty() {
            continue;
        }
        if apply_line(&mut shards, line).is_none() {
            tracing::warn!(
                queue = %what,
                "a damaged line in a queue journal: replay stops there (later records may be \
                 delivered again)"
            );
            break;
        }
    }
    shards
}

/// A queue's delivery state as a cluster's catalogue replicates it: the same snapshot and
/// journal lines a single node keeps in `state.json` and `journal`, changed only by
/// [`DeliveryUpdate`]s committed through the metadata group (see `crate::queues`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryLog {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
    /// Journal lines since the snapshot, each ending in a newline.
    #[serde(default)]
    pub journal: String,
}

/// One change to a [`DeliveryLog`], in the order the queue's home made them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryUpdate {
    /// Journal lines (whole lines) appended.
    Lines(String),
    /// A compaction: the state as of here; the lines before it are dropped.
    Snapshot(Snapshot),
}

impl DeliveryUpdate {
    /// Whether the update can be applied: journal lines must be whole, so that a replay
    /// never joins two of them.
    pub fn is_valid(&self) -> bool {
        match self {
            DeliveryUpdate::Lines(lines) => lines.is_empty() || lines.ends_with('\n'),
            DeliveryUpdate::Snapshot(_) => true,
        }
    }
}

impl DeliveryLog {
    pub fn apply(&mut self, update: &DeliveryUpdate) {
        match update {
            DeliveryUpdate::Lines(lines) => self.journal.push_str(lines),
            DeliveryUpdate::Snapshot(snapshot) => {
                self.snapshot = Some(snapshot.clone());
                self.journal.clear();
            }
        }
    }

    /// Per shard, what a new home of the queue starts from (as [`recover`] on one node).
    pub fn recover(&self, queue: &str) -> BTreeMap<u32, Recovered> {
        replay(self.snapshot.clone(), self.journal.as_bytes(), queue)
    }
}

fn apply_line(shards: &mut BTreeMap<u32, Recovered>, line: &[u8]) -> Option<()> {
    let text = std::str::from_utf8(line).ok()?;
    let mut fields = text.split(' ');
    let kind = fields.next()?;
    let ordinal: u32 = fields.next()?.parse().ok()?;
    let index: u64 = fields.next()?.parse().ok()?;
    let slot: u16 = fields.next()?.parse().ok()?;
    let position = (index, slot);
    let shard = shards.entry(ordinal).or_default();
    match kind {
        "R" => {
            let count: u32 = fields.next()?.parse().ok()?;
            let first: u64 = fields.next()?.parse().ok()?;
            if let Some(state) = shard.state_mut(position) {
                state.receive_count = count;
                state.first_receive_ms = (first > 0).then_some(first);
            }
        }
        "D" => {
            if let Some(state) = shard.state_mut(position) {
                state.dead = true;
            }
        }
        "S" => {
            if let Some(state) = shard.state_mut(position) {
                state.dead = false;
                state.receive_count = 0;
            }
        }
        "A" => {
            if position < shard.until {
                shard.below.remove(&position);
            } else {
                shard.above.remove(&position);
                shard.acked_above.insert(position);
            }
        }
        _ => return None,
    }
    fields.next().is_none().then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_keeps_acks_counts_and_dead_letters_and_ignores_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path(), Durability::Sync).unwrap();
        let mut lines = Vec::new();
        let state = RecordState {
            receive_count: 2,
            first_receive_ms: Some(1_000),
            dead: false,
        };
        receive_line(&mut lines, (0, 5, 0), &state);
        receive_line(&mut lines, (0, 5, 1), &state);
        event_line(&mut lines, 'A', (0, 5, 0));
        event_line(&mut lines, 'D', (0, 5, 1));
        receive_line(&mut lines, (1, 9, 0), &state);
        event_line(&mut lines, 'D', (1, 9, 0));
        event_line(&mut lines, 'S', (1, 9, 0));
        let ticket = journal.append(&lines).unwrap();
        journal.sync(ticket).unwrap();
        journal.append(b"A 1 9").unwrap(); // torn: no newline
        let recovered = recover(dir.path()).unwrap();
        let shard0 = &recovered[&0];
        assert_eq!(shard0.filter((5, 0)), None, "acknowledged");
        let dead = shard0.filter((5, 1)).unwrap();
        assert!(dead.dead && dead.receive_count == 2);
        assert_eq!(shard0.filter((6, 0)), Some(RecordState::default()));
        let restored = recovered[&1].filter((9, 0)).unwrap();
        assert_eq!((restored.dead, restored.receive_count), (false, 0));

        // A snapshot: below it only the pending records remain; the journal starts afresh.
        let snapshot = Snapshot {
            version: 1,
            shards: BTreeMap::from([(
                0,
                ShardSnapshot {
                    next: (8, 0),
                    drained: false,
                    not_before_ms: 0,
                    pending: vec![(5, 1, dead)],
                },
            )]),
        };
        journal.compact(&snapshot).unwrap();
        let mut lines = Vec::new();
        event_line(&mut lines, 'A', (0, 9, 0));
        journal.append(&lines).unwrap();
        let recovered = recover(dir.path()).unwrap();
        let shard0 = &recovered[&0];
        assert_eq!(
            shard0.filter((6, 0)),
            None,
            "below the snapshot and not pending"
        );
        assert!(shard0.filter((5, 1)).unwrap().dead);
        assert_eq!(shard0.filter((9, 0)), None);
        assert_eq!(shard0.filter((9, 1)), Some(RecordState::default()));
        assert_eq!(shard0.last_known(), (9, 0));
    }
}
