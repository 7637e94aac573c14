//! What every shard log must hold: the node's record of its shards' synced and trimmed
//! indexes, so that a start can tell data that was never acknowledged from data that is gone.
//!
//! A shard log alone cannot say what it lost: a deleted active segment leaves a shorter but
//! perfectly valid log, a deleted first segment looks like retention, a deleted directory like
//! a shard that never took a write, and a cut end like a write torn by a crash. Each of these
//! would otherwise start silently with acknowledged records missing, and a lost tail would
//! even hand out its sequence numbers again. So the node keeps, in `DATA/watermarks.json`:
//!
//! * per shard (`DIR_ID/ORDINAL`), `synced`: an index every record up to which had been
//!   fsynced (so possibly acknowledged), and `first`: the first index retention kept;
//! * `clean_shutdown`: written `true` only by a clean shutdown, after its final sync, and
//!   `false` again by the next start.
//!
//! **When it is written.** A background task rewrites the file (atomically: temporary file,
//! fdatasync, rename, directory fsync) about once a second when a shard's `synced` moved, so
//! `synced` trails the truth by about a second and costs one small fsync a second at most,
//! never one per put. Retention raises `first` and writes the file *before* it deletes
//! segments, so `first` never claims more than what is gone. A clean shutdown writes the exact
//! final values.
//!
//! **What a start checks** (see `Node::open`): a log ending below `synced`, a missing shard
//! directory with `synced > 0`, a log starting above `first`, or — after a clean shutdown — any
//! damaged end at all, is lost data: the start is refused, naming stream and shard. A damaged
//! end above `synced` after a crash is a torn write: frames written after the last synced
//! index, never acknowledged if the machine kept what it synced. A log starting below `first`
//! is a retention pass a crash interrupted, finished now.
//!
//! The file is small (two integers per shard) and owner-only like the catalogue.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::meta::{self, MetaError};

pub const WATERMARKS_FILE: &str = "watermarks.json";
pub const WATERMARKS_FORMAT_VERSION: u32 = 1;

/// One shard's marks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// First index retention kept (1 until the first purge).
    pub first: u64,
    /// Every index up to this one had been fsynced when the file was written.
    pub synced: u64,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatermarkDocument {
    pub format_version: u32,
    /// Written `true` by a clean shutdown only.
    pub clean_shutdown: bool,
    /// By `DIR_ID/ORDINAL`.
    pub shards: BTreeMap<String, Mark>,
}

/// The key of a shard in the file.
pub fn key(dir_id: &str, ordinal: u32) -> String {
    format!("{dir_id}/{ordinal}")
}

/// Loads `DATA/watermarks.json`, `None` if there is none.
pub fn load(data_dir: &Path) -> Result<Option<WatermarkDocument>, MetaError> {
    let path = data_dir.join(WATERMARKS_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(MetaError::Io { path, error }),
    };
    let document: WatermarkDocument =
        serde_json::from_slice(&bytes).map_err(|error| MetaError::Corrupt {
            path: path.clone(),
            reason: error.to_string(),
        })?;
    if document.format_version > WATERMARKS_FORMAT_VERSION {
        return Err(MetaError::Corrupt {
            path,
            reason: format!(
                "format version {} is newer than this server's {WATERMARKS_FORMAT_VERSION}",
                document.format_version
            ),
        });
    }
    Ok(Some(document))
}

/// Replaces `DATA/watermarks.json` atomically (durably unless `durable` is false).
pub fn store(
    data_dir: &Path,
    document: &WatermarkDocument,
    durable: bool,
) -> Result<(), MetaError> {
    let bytes = serde_json::to_vec(document).map_err(|error| MetaError::Corrupt {
        path: data_dir.join(WATERMARKS_FILE),
        reason: error.to_string(),
    })?;
    meta::store_file(data_dir, WATERMARKS_FILE, &bytes, durable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_the_future() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        let document = WatermarkDocument {
            format_version: WATERMARKS_FORMAT_VERSION,
            clean_shutdown: true,
            shards: BTreeMap::from([(
                key("ab", 3),
                Mark {
                    first: 7,
                    synced: 99,
                },
            )]),
        };
        store(dir.path(), &document, true).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(document.clone()));
        let future = WatermarkDocument {
            format_version: WATERMARKS_FORMAT_VERSION + 1,
            ..document
        };
        store(dir.path(), &future, false).unwrap();
        assert!(matches!(load(dir.path()), Err(MetaError::Corrupt { .. })));
        fs::write(dir.path().join(WATERMARKS_FILE), b"{").unwrap();
        assert!(matches!(load(dir.path()), Err(MetaError::Corrupt { .. })));
    }
}
