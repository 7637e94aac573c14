//! What a start may do to a data directory, and what it must refuse.
//!
//! The rule: **a start never deletes or reinterprets data it cannot account for.** Every
//! byte under `DATA/` is either named by the catalogue (`meta.json`), or proven a leftover
//! by it, or the start is refused with a message that names what is there. Concretely:
//!
//! * A directory without `meta.json` is new only if it is missing or empty (an empty
//!   `streams/`, a `meta.json.tmp` or `lost+found/` aside). Anything else — a `streams/` folder
//!   with data, files riffle never writes — is refused: riffle cannot know whose data it is,
//!   and starting empty would hand out sequence numbers and stream names that already exist.
//! * Under `streams/`, a directory the catalogue does not name is removed only if the
//!   catalogue's `removing` list names it (a DeleteStream or an expired shard whose removal a
//!   crash interrupted), or if it holds no data at all (empty segment files only: what a
//!   crash leaves between creating a new stream's or child shard's logs and writing the
//!   catalogue, before any record could be written there). Anything else is refused.
//! * With `--accept-data-loss`, what would be refused is **moved** into
//!   `DATA/lost+found/<time>/`, never deleted, and the start goes on without it.
//!
//! The checks of each shard log against the watermarks are in `Node::open` and
//! `crate::watermarks`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::meta::{MetaDocument, META_FILE, META_TMP_FILE};

/// Where set-aside data goes.
pub const LOST_AND_FOUND: &str = "lost+found";
const STREAMS: &str = "streams";

/// Whether a data directory without a catalogue may be used as a new one: `Ok(())` if it is
/// missing or empty (but for what a crash during the very first start leaves), else the
/// entries that make it someone else's.
pub fn check_new_dir(data_dir: &Path) -> io::Result<Result<(), Vec<String>>> {
    let entries = match fs::read_dir(data_dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Ok(())),
        Err(error) => return Err(error),
    };
    let mut foreign = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let allowed = match name.as_str() {
            META_TMP_FILE | LOST_AND_FOUND => true,
            STREAMS => entry.file_type()?.is_dir() && is_empty_dir(&entry.path())?,
            _ => false,
        };
        if !allowed {
            foreign.push(name);
        }
    }
    foreign.sort();
    Ok(if foreign.is_empty() {
        Ok(())
    } else {
        Err(foreign)
    })
}

fn is_empty_dir(dir: &Path) -> io::Result<bool> {
    Ok(fs::read_dir(dir)?.next().is_none())
}

/// True if `dir` holds nothing but empty segment files (`<20 digits>.log` of length 0),
/// possibly in subdirectories of one level (shard directories): a log no record ever reached.
pub fn holds_no_data(dir: &Path, depth: usize) -> io::Result<bool> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if kind.is_dir() {
            if depth == 0 || !holds_no_data(&entry.path(), depth - 1)? {
                return Ok(false);
            }
        } else if kind.is_file() {
            let is_segment = name.len() == 24
                && name.ends_with(".log")
                && name[..20].bytes().all(|byte| byte.is_ascii_digit());
            if !is_segment || entry.metadata()?.len() != 0 {
                return Ok(false);
            }
        } else {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What the sweep of `streams/` decided for one entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Unknown {
    /// Named by the catalogue's `removing` list, or holding no data: removed.
    Removed(String),
    /// Data the catalogue does not account for.
    Unaccounted(String),
}

/// Sweeps `DATA/streams/`: removes what the catalogue proves a leftover, and lists the rest
/// of what it does not name (relative paths such as `DIR_ID` or `DIR_ID/ORDINAL`), without
/// touching it.
pub fn sweep_streams(data_dir: &Path, document: &MetaDocument) -> io::Result<Vec<Unknown>> {
    let streams_dir = data_dir.join(STREAMS);
    let mut found = Vec::new();
    let removing = |relative: &str| document.removing.iter().any(|entry| entry == relative);
    // Directories made by older versions (or restored from a copy) may be readable by others;
    // shard directories are narrowed when their logs open.
    riffle_log::owner_only_dir(&streams_dir)?;
    for entry in fs::read_dir(&streams_dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if entry.file_type()?.is_dir()
            && document.streams.iter().any(|stream| stream.dir_id == name)
        {
            riffle_log::owner_only_dir(&path)?;
        }
        if !entry.file_type()?.is_dir() {
            found.push(Unknown::Unaccounted(name));
            continue;
        }
        let Some(stream) = document.streams.iter().find(|stream| stream.dir_id == name) else {
            if removing(&name) || holds_no_data(&path, 1)? {
                remove_dir(&path)?;
                found.push(Unknown::Removed(name));
            } else {
                found.push(Unknown::Unaccounted(name));
            }
            continue;
        };
        for shard in fs::read_dir(&path)? {
            let shard = shard?;
            let shard_name = shard.file_name().to_string_lossy().into_owned();
            let relative = format!("{name}/{shard_name}");
            let named = shard_name
                .parse::<u32>()
                .ok()
                .is_some_and(|ordinal| stream.shards.iter().any(|s| s.ordinal == ordinal));
            if named {
                continue;
            }
            let shard_path = shard.path();
            let is_dir = shard.file_type()?.is_dir();
            if is_dir && (removing(&relative) || holds_no_data(&shard_path, 0)?) {
                remove_dir(&shard_path)?;
                found.push(Unknown::Removed(relative));
            } else {
                found.push(Unknown::Unaccounted(relative));
            }
        }
    }
    // Listed for removal but already gone, or removed just now: either way done.
    for relative in &document.removing {
        let path = streams_dir.join(relative);
        if path.is_dir() {
            remove_dir(&path)?;
            found.push(Unknown::Removed(relative.clone()));
        }
    }
    Ok(found)
}

fn remove_dir(path: &Path) -> io::Result<()> {
    tracing::info!(dir = %path.display(), "removing a leftover the catalogue accounts for");
    fs::remove_dir_all(path)
}

/// A fresh folder under `DATA/lost+found/` for one start's set-aside data.
pub fn lost_and_found(data_dir: &Path, now_ms: u64) -> PathBuf {
    data_dir.join(LOST_AND_FOUND).join(format!("{now_ms}"))
}

/// Moves `DATA/streams/<relative>` into `keep/streams/<relative>` (same file system: a
/// rename, so nothing is copied or lost).
pub fn set_aside_dir(data_dir: &Path, relative: &str, keep: &Path) -> io::Result<PathBuf> {
    let from = data_dir.join(STREAMS).join(relative);
    let to = keep.join(STREAMS).join(relative);
    if let Some(parent) = to.parent() {
        riffle_log::create_owner_only_dirs(parent)?;
    }
    fs::rename(&from, &to)?;
    crate::meta::sync_dir(&data_dir.join(STREAMS))?;
    Ok(to)
}

/// True if `DATA/meta.json` exists.
pub fn has_catalogue(data_dir: &Path) -> bool {
    data_dir.join(META_FILE).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_missing_or_empty_directories_are_new() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        assert_eq!(check_new_dir(&dir).unwrap(), Ok(()));
        fs::create_dir_all(dir.join("streams")).unwrap();
        fs::write(dir.join(META_TMP_FILE), b"{").unwrap();
        fs::create_dir(dir.join(LOST_AND_FOUND)).unwrap();
        assert_eq!(check_new_dir(&dir).unwrap(), Ok(()));
        fs::create_dir(dir.join("streams").join("abc")).unwrap();
        assert_eq!(
            check_new_dir(&dir).unwrap(),
            Err(vec!["streams".to_string()])
        );
        fs::remove_dir(dir.join("streams").join("abc")).unwrap();
        fs::write(dir.join("notes.txt"), b"mine").unwrap();
        assert_eq!(
            check_new_dir(&dir).unwrap(),
            Err(vec!["notes.txt".to_string()])
        );
    }

    #[test]
    fn only_empty_segments_count_as_no_data() {
        let dir = tempfile::tempdir().unwrap();
        let shard = dir.path().join("0");
        fs::create_dir(&shard).unwrap();
        fs::write(shard.join("00000000000000000001.log"), b"").unwrap();
        assert!(holds_no_data(dir.path(), 1).unwrap());
        assert!(
            !holds_no_data(dir.path(), 0).unwrap(),
            "depth bounds the search"
        );
        fs::write(shard.join("00000000000000000001.log"), b"x").unwrap();
        assert!(!holds_no_data(dir.path(), 1).unwrap());
        fs::write(shard.join("00000000000000000001.log"), b"").unwrap();
        fs::write(shard.join("README"), b"").unwrap();
        assert!(!holds_no_data(dir.path(), 1).unwrap());
    }
}
