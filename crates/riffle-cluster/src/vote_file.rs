//! The `vote` file: the Raft state a log directory keeps beside its segments.
//!
//! Raft's safety rests on a node never forgetting whom it voted for in a term, so the vote
//! must be durable before `save_vote` returns, and a damaged vote file must stop the node
//! rather than be read as "no vote" (which would let it vote twice in a term). The file also
//! keeps the last purged log id, which riffle-log cannot give back after a restart (purging
//! deletes whole segments, and the frame before the first remaining one is gone with its
//! term), and the last committed log id, an optional hint that lets a restarted node re-apply
//! its committed entries at once.
//!
//! Layout: `len u32 | crc32c u32 | body`, little-endian, where `body` is `len` bytes of JSON
//! and the CRC32C covers it:
//!
//! ```text
//! {"format":1,
//!  "vote":{"term":7,"node_id":3,"committed":true},        or null before the first vote
//!  "committed":{"term":6,"node_id":2,"index":1000},       or null
//!  "purged":{"term":5,"node_id":1,"index":400}}           or null
//! ```
//!
//! The JSON is riffle's own, not openraft's serde form, so the bytes do not depend on the
//! pinned openraft version.
//!
//! Writes replace the file atomically: write `vote.tmp` (created readable by its owner
//! only), fsync it, rename it over `vote`, fsync the directory. A reader therefore sees the
//! old or the new file whole; a file that is short, longer than its length says, or fails
//! its checksum was damaged after it was written, and opening fails with
//! `io::ErrorKind::InvalidData`, naming the file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use openraft::impls::leader_id_adv::LeaderId;
use serde::{Deserialize, Serialize};

use crate::types::{LogId, Vote};

/// Name of the file in the log directory.
pub const VOTE_FILE_NAME: &str = "vote";

/// The temporary file a write goes through.
const VOTE_TEMP_FILE_NAME: &str = "vote.tmp";

/// Version of [`Doc`] this crate writes and reads.
const FORMAT: u32 = 1;

/// `len u32 | crc32c u32`.
const HEADER_BYTES: usize = 8;

/// A vote file larger than this is damaged (a real one is a few hundred bytes).
const FILE_BYTES_MAX: usize = 64 << 10;

/// What the vote file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HardState {
    /// The last vote saved; `None` before the first.
    pub vote: Option<Vote>,
    /// The last committed log id that reached this file (a hint; see the module docs).
    pub committed: Option<LogId>,
    /// The last purged log id: entries up to it are gone or to be ignored.
    pub purged: Option<LogId>,
}

/// The JSON body.
#[derive(Debug, Serialize, Deserialize)]
struct Doc {
    format: u32,
    vote: Option<VoteDoc>,
    committed: Option<LogIdDoc>,
    purged: Option<LogIdDoc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct VoteDoc {
    term: u64,
    node_id: u64,
    committed: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct LogIdDoc {
    term: u64,
    node_id: u64,
    index: u64,
}

impl From<&LogId> for LogIdDoc {
    fn from(log_id: &LogId) -> LogIdDoc {
        LogIdDoc {
            term: log_id.leader_id.term,
            node_id: log_id.leader_id.node_id,
            index: log_id.index,
        }
    }
}

impl From<LogIdDoc> for LogId {
    fn from(doc: LogIdDoc) -> LogId {
        LogId::new(
            LeaderId {
                term: doc.term,
                node_id: doc.node_id,
            },
            doc.index,
        )
    }
}

/// Path of the vote file in `dir`.
pub(crate) fn vote_path(dir: &Path) -> PathBuf {
    dir.join(VOTE_FILE_NAME)
}

/// Reads the vote file of `dir`; the default state if there is none. Removes a temporary
/// file a crash left behind (its rename never happened, so it holds nothing that counted).
pub(crate) fn read(dir: &Path) -> io::Result<HardState> {
    match fs::remove_file(dir.join(VOTE_TEMP_FILE_NAME)) {
        Ok(()) => sync_dir(dir)?,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let path = vote_path(dir);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(HardState::default()),
        Err(error) => return Err(error),
    };
    decode(&bytes).map_err(|reason| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "vote file {} is damaged ({reason}); refusing to open the Raft log, since \
                 forgetting a vote could let this node vote twice in a term",
                path.display()
            ),
        )
    })
}

/// Replaces the vote file of `dir` with `state`, durably (see the module docs).
pub(crate) fn write(dir: &Path, state: &HardState) -> io::Result<()> {
    let bytes = encode(state)?;
    let temp = dir.join(VOTE_TEMP_FILE_NAME);
    // A leftover temp file may have other permissions; mode() applies only at creation.
    match fs::remove_file(&temp) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let mut file = riffle_log::owner_only_options(OpenOptions::new().write(true).create_new(true))
        .open(&temp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp, vote_path(dir))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn encode(state: &HardState) -> io::Result<Vec<u8>> {
    let doc = Doc {
        format: FORMAT,
        vote: state.vote.as_ref().map(|vote| VoteDoc {
            term: vote.leader_id.term,
            node_id: vote.leader_id.node_id,
            committed: vote.committed,
        }),
        committed: state.committed.as_ref().map(LogIdDoc::from),
        purged: state.purged.as_ref().map(LogIdDoc::from),
    };
    let body = serde_json::to_vec(&doc).map_err(io::Error::other)?;
    let len = u32::try_from(body.len()).map_err(io::Error::other)?;
    let mut bytes = Vec::with_capacity(HEADER_BYTES + body.len());
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

fn decode(bytes: &[u8]) -> Result<HardState, String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!(
            "{} bytes, shorter than its {HEADER_BYTES}-byte header",
            bytes.len()
        ));
    }
    if bytes.len() > FILE_BYTES_MAX {
        return Err(format!("{} bytes, more than any vote file", bytes.len()));
    }
    let (header, body) = bytes.split_at(HEADER_BYTES);
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let stored = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if body.len() != len {
        return Err(format!(
            "the header announces {len} bytes of body, the file holds {}",
            body.len()
        ));
    }
    let computed = crc32c::crc32c(body);
    if computed != stored {
        return Err(format!(
            "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
        ));
    }
    let doc: Doc = serde_json::from_slice(body).map_err(|error| error.to_string())?;
    if doc.format != FORMAT {
        return Err(format!("format {} (this build reads {FORMAT})", doc.format));
    }
    Ok(HardState {
        vote: doc.vote.map(|vote| Vote {
            leader_id: LeaderId {
                term: vote.term,
                node_id: vote.node_id,
            },
            committed: vote.committed,
        }),
        committed: doc.committed.map(LogId::from),
        purged: doc.purged.map(LogId::from),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn log_id(term: u64, node_id: u64, index: u64) -> LogId {
        LogId::new(LeaderId { term, node_id }, index)
    }

    fn state() -> HardState {
        HardState {
            vote: Some(Vote {
                leader_id: LeaderId {
                    term: 7,
                    node_id: 3,
                },
                committed: true,
            }),
            committed: Some(log_id(6, 2, 1_000)),
            purged: Some(log_id(5, 1, 400)),
        }
    }

    #[test]
    fn a_written_state_reads_back_and_is_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), HardState::default());
        write(dir.path(), &state()).unwrap();
        assert_eq!(read(dir.path()).unwrap(), state());
        let mode = fs::metadata(vote_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Replacing keeps the mode and leaves no temporary file.
        write(dir.path(), &HardState::default()).unwrap();
        assert_eq!(read(dir.path()).unwrap(), HardState::default());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![VOTE_FILE_NAME]);
    }

    #[test]
    fn a_leftover_temp_file_is_ignored_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &state()).unwrap();
        // A crash between writing the temp file and renaming it.
        fs::write(dir.path().join(VOTE_TEMP_FILE_NAME), b"half").unwrap();
        assert_eq!(read(dir.path()).unwrap(), state());
        assert!(!dir.path().join(VOTE_TEMP_FILE_NAME).exists());
    }

    #[test]
    fn every_truncation_and_every_flipped_bit_is_detected() {
        let bytes = encode(&state()).unwrap();
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "cut at {len}");
        }
        for position in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[position] ^= 1 << bit;
                assert!(decode(&damaged).is_err(), "bit {bit} of byte {position}");
            }
        }
        let mut longer = bytes.clone();
        longer.push(b' ');
        assert!(decode(&longer).is_err());
        assert_eq!(decode(&bytes).unwrap(), state());
    }

    #[test]
    fn a_torn_vote_file_stops_the_open_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &state()).unwrap();
        let path = vote_path(dir.path());
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let error = read(dir.path()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        let text = error.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("header announces"), "{text}");
    }

    #[test]
    fn an_unknown_format_is_refused() {
        let body = br#"{"format":2,"vote":null,"committed":null,"purged":null}"#;
        let mut bytes = (body.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
        bytes.extend_from_slice(body);
        assert!(decode(&bytes).unwrap_err().contains("format 2"));
    }
}
