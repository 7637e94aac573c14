//! Opening a log directory: finding the segments, checking them, repairing a torn tail.
//!
//! The rules, and why they are safe:
//!
//! * Every segment but the last is **sealed**: roll fsyncs its data, then writes its
//!   `.idx`, and only then creates the next segment. So a sealed segment is complete, and
//!   any bad frame in one is corruption. Its index is loaded and checked against the
//!   segment's first frame and against the frames after the last index point (which also
//!   yields the last index, last term and largest timestamp); if the `.idx` is missing, bad
//!   or disagrees, the segment is scanned in full and the `.idx` rewritten.
//! * The last segment is **active** and scanned frame by frame. Appends become durable
//!   only by fsync, and nothing is acknowledged before that, so a crash can leave a damaged
//!   *suffix* of unsynced frames: at the first bad frame, if no valid frame that could
//!   follow it exists further on, the file is cut there (a **torn tail**). If one does, the
//!   damage is in the middle of written data, which a crash does not explain: the log is
//!   **corrupt** and opening fails, pointing at the offset.
//! * Across all segments, indexes are contiguous (each segment starts right after the
//!   previous one ends) and terms never decrease.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::index::{self, IndexEntry};
use crate::log::{Shared, SyncKind};
use crate::segment::{
    self, find_valid_frame_after, read_frame, ReadError, Segment, SegmentState, Window,
    INDEX_EXTENSION, SEGMENT_EXTENSION, TEMP_SUFFIX,
};
use crate::{Expect, LogError, LogOptions, RecoveryReport};

/// What recovery hands to [`crate::Log::open`].
pub(crate) struct Recovered {
    /// Every segment but the last, oldest first.
    pub sealed: Vec<Arc<Segment>>,
    /// The last segment, open for appends.
    pub active: Arc<Segment>,
    pub report: RecoveryReport,
}

/// A bad frame found by a scan.
struct BadFrame {
    position: u64,
    reason: String,
}

/// The result of scanning a segment from its start.
struct Scan {
    /// State covering the good frames before `bad` (or all of them).
    state: SegmentState,
    bad: Option<BadFrame>,
}

pub(crate) fn recover(
    shared: &Shared,
    options: &LogOptions,
    expect: &Expect,
) -> Result<Recovered, LogError> {
    let dir = &shared.dir;
    if !dir.is_dir() {
        if expect.synced_through > 0 {
            return Err(LogError::Missing {
                path: dir.clone(),
                reason: format!(
                    "the log directory is missing, but index {} had been synced",
                    expect.synced_through
                ),
            });
        }
        crate::create_owner_only_dirs(dir)?;
        if let Some(parent) = dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            let parent_file = fs::File::open(parent)?;
            shared.fsync(&parent_file, SyncKind::All, parent)?;
        }
    }

    crate::owner_only_dir(dir)?;
    let mut bases = Vec::new();
    let mut index_bases = Vec::new();
    let mut dir_changed = false;
    for dir_entry in fs::read_dir(dir)? {
        let dir_entry = dir_entry?;
        let name = dir_entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if let Some(base) = segment::parse_file_name(name, SEGMENT_EXTENSION) {
            bases.push(base);
        } else if let Some(base) = segment::parse_file_name(name, INDEX_EXTENSION) {
            index_bases.push(base);
        } else if name.ends_with(&format!(".{INDEX_EXTENSION}{TEMP_SUFFIX}")) {
            // An index write interrupted by a crash; the segment is rescanned or rolled again.
            fs::remove_file(dir_entry.path())?;
            dir_changed = true;
        }
    }
    bases.sort_unstable();
    for base in index_bases {
        if bases.binary_search(&base).is_err() {
            // The index of a segment whose deletion completed before the crash.
            fs::remove_file(dir.join(segment::index_file_name(base)))?;
            dir_changed = true;
        }
    }
    if bases.is_empty() {
        if expect.synced_through > 0 {
            return Err(LogError::Missing {
                path: dir.clone(),
                reason: format!(
                    "the log holds no segment, but index {} had been synced",
                    expect.synced_through
                ),
            });
        }
        let path = dir.join(segment::segment_file_name(1));
        Segment::create_file(&path)?;
        bases.push(1);
        dir_changed = true;
    }
    if dir_changed {
        shared.fsync_dir()?;
    }

    let mut report = RecoveryReport {
        segments: bases.len(),
        entries: 0,
        torn_tail_bytes_truncated: 0,
    };
    let mut sealed = Vec::with_capacity(bases.len());
    let mut previous: Option<(u64, u64)> = None; // (last_index, last_term)
    let last_position = bases.len() - 1;
    for (position, &base) in bases.iter().enumerate() {
        let path = dir.join(segment::segment_file_name(base));
        if base == 0 {
            return Err(corrupt(
                &path,
                0,
                "segment base index 0: indexes start at 1",
            ));
        }
        if let Some((previous_last, _)) = previous {
            if base != previous_last + 1 {
                return Err(corrupt(
                    &path,
                    0,
                    &format!(
                        "segment starts at index {base} but the previous segment ends at \
                         index {previous_last}: the log has a hole"
                    ),
                ));
            }
        }
        let term_floor = previous.map_or(0, |(_, term)| term);
        let file = Segment::open_file(&path)?;
        let file_bytes = file.metadata()?.len();
        let is_active = position == last_position;
        let state = if is_active {
            recover_active(
                shared,
                &path,
                &file,
                base,
                file_bytes,
                term_floor,
                options,
                expect,
                &mut report,
            )?
        } else {
            recover_sealed(shared, &path, &file, base, file_bytes, term_floor, options)?
        };
        if !is_active && state.bytes == 0 {
            return Err(corrupt(
                &path,
                0,
                "sealed segment is empty although later segments exist: the log has a hole",
            ));
        }
        report.entries += state.last_index + 1 - base;
        previous = Some((state.last_index, state.last_term));
        sealed.push(Arc::new(Segment::new(base, path, file, state)));
    }
    let active = sealed
        .pop()
        .ok_or_else(|| LogError::InvalidArgument("no segment could be opened".to_string()))?;
    let last_index = active.state().last_index;
    if last_index < expect.synced_through {
        return Err(LogError::Missing {
            path: active.path.clone(),
            reason: format!(
                "the log ends at index {last_index}, but index {} had been synced: \
                 segments or frames at the end of the log are gone",
                expect.synced_through
            ),
        });
    }
    // The active segment has no index file; one left from before a truncation, or from a
    // roll a crash interrupted, is stale. Removed only now that the log is accepted.
    match fs::remove_file(dir.join(segment::index_file_name(active.base_index))) {
        Ok(()) => shared.fsync_dir()?,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(LogError::Io(error)),
    }
    Ok(Recovered {
        sealed,
        active,
        report,
    })
}

fn corrupt(path: &Path, offset: u64, reason: &str) -> LogError {
    LogError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: reason.to_string(),
    }
}

/// Scans the active segment, cutting a torn tail.
#[allow(clippy::too_many_arguments)]
fn recover_active(
    shared: &Shared,
    path: &Path,
    file: &fs::File,
    base: u64,
    file_bytes: u64,
    term_floor: u64,
    options: &LogOptions,
    expect: &Expect,
    report: &mut RecoveryReport,
) -> Result<SegmentState, LogError> {
    let scan = scan_segment(path, file, base, file_bytes, term_floor, options)?;
    if let Some(bad) = scan.bad {
        let mut window = Window::new(file, file_bytes);
        let expected = scan.state.last_index + 1;
        if let Some(follower) = find_valid_frame_after(&mut window, bad.position + 1, expected)? {
            return Err(corrupt(
                path,
                bad.position,
                &format!(
                    "{}; a valid frame follows at offset {follower}, so this is damage inside \
                     written data, not a torn write",
                    bad.reason
                ),
            ));
        }
        let cut_bytes = file_bytes - bad.position;
        let kept_last = scan.state.last_index;
        if kept_last < expect.synced_through || !expect.torn_tail_allowed {
            // Cutting here would drop frames that were synced (so possibly acknowledged), or
            // the log was closed cleanly and no write can have been torn: this is lost data,
            // not a torn write. Leave the file as it is for the caller to decide.
            return Err(LogError::Missing {
                path: path.to_path_buf(),
                reason: format!(
                    "{} at offset {}; the frames before it end at index {kept_last}, but {}",
                    bad.reason,
                    bad.position,
                    if kept_last < expect.synced_through {
                        format!("index {} had been synced", expect.synced_through)
                    } else {
                        "the log was closed cleanly, so no write was torn".to_string()
                    }
                ),
            });
        }
        tracing::warn!(
            segment = %path.display(),
            offset = bad.position,
            bytes = cut_bytes,
            reason = %bad.reason,
            synced_through = expect.synced_through,
            "cutting an incomplete write at the end of the active segment: frames after the \
             last synced index, which a crash leaves behind unacknowledged"
        );
        file.set_len(bad.position)?;
        report.torn_tail_bytes_truncated += cut_bytes;
    }
    // Whatever survived may still be only in the page cache (the process, not the machine,
    // crashed); make it durable so `durable_index() == last_index()` is true after open.
    shared.fsync(file, SyncKind::All, path)?;
    Ok(scan.state)
}

/// Loads a sealed segment through its index, or rebuilds the index by a full scan.
fn recover_sealed(
    shared: &Shared,
    path: &Path,
    file: &fs::File,
    base: u64,
    file_bytes: u64,
    term_floor: u64,
    options: &LogOptions,
) -> Result<SegmentState, LogError> {
    let index_path = path.with_file_name(segment::index_file_name(base));
    // Every frame of a sealed segment is read and checked at open, not only those after its
    // last index point: damage anywhere is found now, with a clear error, rather than by the
    // first reader to reach it (which could only fail, again and again).
    let scan = scan_segment(path, file, base, file_bytes, term_floor, options)?;
    if let Some(bad) = scan.bad {
        return Err(corrupt(
            path,
            bad.position,
            &format!("bad frame in a sealed segment: {}", bad.reason),
        ));
    }
    let problem = match fs::read(&index_path) {
        Ok(bytes) => match index::decode_index_file(&bytes, file_bytes) {
            Ok(entries) => match verify_with_index(file, base, file_bytes, term_floor, entries) {
                Ok(state) => return Ok(state),
                Err(reason) => reason,
            },
            Err(reason) => reason,
        },
        Err(error) if error.kind() == io::ErrorKind::NotFound => "index file missing".to_string(),
        Err(error) => format!("index file unreadable: {error}"),
    };
    tracing::warn!(
        segment = %path.display(),
        %problem,
        "rebuilding the sparse index by scanning the sealed segment"
    );
    let mut state = scan.state;
    state.sealed = true;
    write_index_file(shared, &index_path, &state.index)?;
    Ok(state)
}

/// Checks a loaded index against the segment: the first frame, then every frame from the
/// last index point to the end of the file. `Err` is a reason to rebuild.
fn verify_with_index(
    file: &fs::File,
    base: u64,
    file_bytes: u64,
    term_floor: u64,
    entries: Vec<IndexEntry>,
) -> Result<SegmentState, String> {
    let mut window = Window::new(file, file_bytes);
    let first = read_frame(&mut window, 0).map_err(|error| describe(0, error))?;
    if first.header.index != base {
        return Err(format!(
            "first frame has index {}, expected {base}",
            first.header.index
        ));
    }
    if first.header.meta.term < term_floor {
        return Err(format!(
            "first frame has term {}, below the previous segment's {term_floor}",
            first.header.meta.term
        ));
    }
    let start = index::start_for_index(&entries, u64::MAX);
    let mut state = SegmentState {
        bytes: start.position,
        last_index: base + start.rel_index - 1,
        last_term: first.header.meta.term,
        ts_max_ms: start.ts_max_ms,
        sealed: true,
        index: entries,
        generation: 0,
    };
    let mut position = start.position;
    while position < file_bytes {
        let frame = read_frame(&mut window, position).map_err(|error| describe(position, error))?;
        let header = frame.header;
        if header.index != state.last_index + 1 {
            return Err(format!(
                "frame at offset {position} has index {}, expected {}",
                header.index,
                state.last_index + 1
            ));
        }
        if header.meta.term < state.last_term {
            return Err(format!("term goes backwards at offset {position}"));
        }
        // The loaded index is authoritative; the tail adds no entries of its own.
        state.push_frame(base, position, &header, u64::MAX);
        position += header.frame_bytes as u64;
    }
    Ok(state)
}

fn describe(position: u64, error: ReadError) -> String {
    match error {
        ReadError::Io(error) => format!("read failed at offset {position}: {error}"),
        ReadError::Bad(error) => format!("bad frame at offset {position}: {error}"),
    }
}

/// Reads a segment from its start, stopping at the first bad frame.
fn scan_segment(
    path: &Path,
    file: &fs::File,
    base: u64,
    file_bytes: u64,
    term_floor: u64,
    options: &LogOptions,
) -> Result<Scan, LogError> {
    let mut window = Window::new(file, file_bytes);
    let mut state = SegmentState::empty(base, term_floor);
    let mut position = 0;
    while position < file_bytes {
        let frame = match read_frame(&mut window, position) {
            Ok(frame) => frame,
            Err(ReadError::Io(error)) => return Err(LogError::Io(error)),
            Err(ReadError::Bad(error)) => {
                return Ok(Scan {
                    state,
                    bad: Some(BadFrame {
                        position,
                        reason: format!("bad frame: {error}"),
                    }),
                })
            }
        };
        let header = frame.header;
        if header.index != state.last_index + 1 {
            return Ok(Scan {
                bad: Some(BadFrame {
                    position,
                    reason: format!(
                        "frame has index {}, expected {}",
                        header.index,
                        state.last_index + 1
                    ),
                }),
                state,
            });
        }
        if header.meta.term < state.last_term {
            // A checksummed frame with a lower term is no torn write: the log broke the
            // Raft rule that terms never decrease.
            return Err(corrupt(
                path,
                position,
                &format!(
                    "term goes backwards from {} to {} at index {}",
                    state.last_term, header.meta.term, header.index
                ),
            ));
        }
        state.push_frame(base, position, &header, options.index_interval_bytes);
        position += header.frame_bytes as u64;
    }
    Ok(Scan { state, bad: None })
}

/// Writes a sealed segment's `.idx` durably: temporary file, fsync, rename, directory
/// fsync. A crash leaves either no index (rebuilt by scanning) or the complete one.
pub(crate) fn write_index_file(
    shared: &Shared,
    index_path: &Path,
    entries: &[IndexEntry],
) -> Result<(), LogError> {
    let mut temp_name: OsString = index_path.as_os_str().to_owned();
    temp_name.push(TEMP_SUFFIX);
    let temp_path = PathBuf::from(temp_name);
    let mut file =
        crate::owner_only_options(OpenOptions::new().write(true).create(true).truncate(true))
            .open(&temp_path)?;
    file.write_all(&index::encode_index_file(entries))?;
    shared.fsync(&file, SyncKind::All, &temp_path)?;
    fs::rename(&temp_path, index_path)?;
    shared.fsync_dir()
}
