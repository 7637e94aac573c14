//! Setting damaged data aside, for an operator who accepts its loss.
//!
//! [`crate::Log::open`] refuses a log it cannot account for ([`crate::LogError::Corrupt`],
//! [`crate::LogError::Missing`]) and changes nothing on disk. When the operator decides to
//! go on without the damaged part, [`set_aside`] makes the log openable again **without
//! deleting a byte**: the damaged segment is copied, and every later segment moved, into a
//! directory the caller names (riffle uses `DATA/lost+found/...`), then the damaged segment is
//! cut at the damage. What is set aside stays there for forensics or a manual rescue.

use std::fs;
use std::io;
use std::path::Path;

use crate::segment::{self, SEGMENT_EXTENSION};

/// What [`set_aside`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetAside {
    /// Segment files moved or copied into the keep directory.
    pub files: usize,
    /// Bytes the log no longer holds (the cut suffix plus the moved segments).
    pub bytes_removed_from_log: u64,
}

/// Cuts the log in `dir` at byte `offset` of the segment `damaged` (a file of `dir`), keeping
/// a copy of that segment and moving every later segment (with their indexes) into
/// `keep_dir`. With `offset` `None` the damaged segment is only copied, not cut (the caller
/// lets recovery cut a torn end). Directory entries are fsynced. Idempotent enough to be
/// re-run after a crash midway: an already moved segment is simply no longer there.
pub fn set_aside(
    dir: &Path,
    damaged: &Path,
    offset: Option<u64>,
    keep_dir: &Path,
) -> io::Result<SetAside> {
    let damaged_base = damaged
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| segment::parse_file_name(name, SEGMENT_EXTENSION))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a segment file", damaged.display()),
            )
        })?;
    crate::create_owner_only_dirs(keep_dir)?;
    let mut report = SetAside::default();

    // A copy of the damaged segment first, made durable before anything is cut.
    let copy_path = keep_dir.join(segment::segment_file_name(damaged_base));
    fs::copy(damaged, &copy_path)?;
    let copy = fs::OpenOptions::new().read(true).open(&copy_path)?;
    crate::owner_only_file(&copy)?;
    copy.sync_all()?;
    report.files += 1;

    // Then every later segment, moved (same file system: a rename keeps the bytes).
    let mut later = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = segment::parse_file_name(name, SEGMENT_EXTENSION) {
            if base > damaged_base {
                later.push(base);
            }
        }
    }
    later.sort_unstable();
    // Newest first, so that a crash midway leaves a shorter log, never a hole.
    for base in later.into_iter().rev() {
        let from = dir.join(segment::segment_file_name(base));
        report.bytes_removed_from_log += fs::metadata(&from)?.len();
        fs::rename(&from, keep_dir.join(segment::segment_file_name(base)))?;
        report.files += 1;
        let index = dir.join(segment::index_file_name(base));
        match fs::rename(&index, keep_dir.join(segment::index_file_name(base))) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        fs::File::open(dir)?.sync_all()?;
    }
    fs::File::open(keep_dir)?.sync_all()?;

    if let Some(offset) = offset {
        let file = fs::OpenOptions::new().write(true).open(damaged)?;
        let length = file.metadata()?.len();
        if offset < length {
            file.set_len(offset)?;
            file.sync_all()?;
            report.bytes_removed_from_log += length - offset;
        }
        // The damaged segment is now the last one: it becomes the active segment, which has
        // no index file.
        let index = dir.join(segment::index_file_name(damaged_base));
        match fs::remove_file(&index) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(report)
}
