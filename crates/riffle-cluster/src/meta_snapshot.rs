//! The metadata group's snapshot: the catalogue as `meta.json` writes it, every stream's
//! version, and the Raft facts openraft needs back (the last applied log id and the
//! membership), in one checksummed file beside the group's segments.
//!
//! Layout: `len u32 | crc32c u32 | body` (little-endian, the CRC32C covering the body, as
//! in the [vote file](crate::vote_file)), where `body` is the JSON document
//!
//! ```text
//! {"format":1,
//!  "last_applied":{"term":3,"node_id":1,"index":41},               or null
//!  "membership":{"log_id":{...},"membership":{"format":1,"configs":[[1,2,3]],"nodes":{...}}},
//!                                                                  or null before the first
//!  "catalogue":{...the meta.json document...},
//!  "versions":[{"account":"000000000000","name":"orders","version":4}, ...]}
//! ```
//!
//! The same bytes are what a leader ships to a follower that needs the snapshot, so a
//! snapshot is checked (length, checksum, format, versions against streams) the same way
//! whether it comes from the disk or from a peer. The JSON is riffle's own (the catalogue's
//! document and riffle's membership document), not openraft's serde form.

use std::fs;
use std::io;
use std::path::Path;

use bytes::Bytes;
use openraft::SnapshotMeta;
use riffle_core::catalogue::{CatalogueState, StreamVersion};
use riffle_core::meta::MetaDocument;
use serde::{Deserialize, Serialize};

use crate::codec::MembershipDoc;
use crate::durable_file;
use crate::types::{LogId, RiffleRaft, StoredMembership};
use crate::vote_file::LogIdDoc;

/// Name of the file in the metadata group's directory.
pub const SNAPSHOT_FILE_NAME: &str = "snapshot";

/// Version of [`Doc`] this crate writes and reads.
const FORMAT: u32 = 1;

/// A snapshot larger than this is damaged: a catalogue of 10,000 streams of 1,000 shards
/// each stays well below it.
const FILE_BYTES_MAX: usize = 2 << 30;

/// openraft's description of a snapshot under [`RiffleRaft`].
pub type MetaSnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<RiffleRaft>;

#[derive(Debug, Serialize, Deserialize)]
struct Doc {
    format: u32,
    last_applied: Option<LogIdDoc>,
    membership: Option<MembershipAt>,
    catalogue: MetaDocument,
    versions: Vec<StreamVersion>,
}

/// A membership and the log id of the entry that carried it.
#[derive(Debug, Serialize, Deserialize)]
struct MembershipAt {
    log_id: LogIdDoc,
    membership: MembershipDoc,
}

/// What a snapshot holds, decoded.
#[derive(Debug, Clone)]
pub(crate) struct Decoded {
    pub meta: MetaSnapshotMeta,
    pub state: CatalogueState,
}

/// The bytes of the snapshot of `state` as of `meta`.
pub(crate) fn encode(meta: &MetaSnapshotMeta, state: &CatalogueState) -> io::Result<Bytes> {
    let stored = &meta.last_membership;
    let membership = stored.log_id().as_ref().map(|log_id| MembershipAt {
        log_id: LogIdDoc::from(log_id),
        membership: MembershipDoc::of(stored.membership()),
    });
    let doc = Doc {
        format: FORMAT,
        last_applied: meta.last_log_id.as_ref().map(LogIdDoc::from),
        membership,
        catalogue: state.to_document(),
        versions: state.versions(),
    };
    let body = serde_json::to_vec(&doc).map_err(io::Error::other)?;
    Ok(Bytes::from(durable_file::seal(&body)?))
}

/// The snapshot `bytes` hold; the reason if they are not one this build wrote.
pub(crate) fn decode(bytes: &[u8]) -> Result<Decoded, String> {
    let body = durable_file::unseal(bytes, FILE_BYTES_MAX, "metadata snapshot")?;
    let doc: Doc = serde_json::from_slice(body).map_err(|error| error.to_string())?;
    if doc.format != FORMAT {
        return Err(format!("format {} (this build reads {FORMAT})", doc.format));
    }
    let last_membership = match doc.membership {
        Some(at) => StoredMembership::new(
            Some(LogId::from(at.log_id)),
            at.membership.into_membership()?,
        ),
        None => StoredMembership::default(),
    };
    let state = CatalogueState::from_document_with_versions(&doc.catalogue, &doc.versions)?;
    Ok(Decoded {
        meta: SnapshotMeta {
            last_log_id: doc.last_applied.map(LogId::from),
            last_membership,
        },
        state,
    })
}

/// The snapshot stored in `dir`, as bytes and decoded; `None` if there is none. A damaged
/// file stops the open (`InvalidData`, naming it): the log may already be purged up to it,
/// so starting without it would lose the catalogue.
pub(crate) fn read(dir: &Path) -> io::Result<Option<(Bytes, Decoded)>> {
    durable_file::remove_leftover(dir, SNAPSHOT_FILE_NAME)?;
    let path = dir.join(SNAPSHOT_FILE_NAME);
    let bytes = match fs::read(&path) {
        Ok(bytes) => Bytes::from(bytes),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let decoded = decode(&bytes).map_err(|reason| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "metadata snapshot {} is damaged ({reason}); refusing to start without the \
                 catalogue it holds",
                path.display()
            ),
        )
    })?;
    Ok(Some((bytes, decoded)))
}

/// Durably replaces the snapshot in `dir` with `bytes` (write temp, fsync, rename, fsync the
/// directory; readable by its owner only).
pub(crate) fn write(dir: &Path, bytes: &[u8]) -> io::Result<()> {
    durable_file::replace(dir, SNAPSHOT_FILE_NAME, bytes)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::os::unix::fs::PermissionsExt;

    use openraft::impls::leader_id_adv::LeaderId;
    use riffle_core::catalogue::Command;
    use riffle_core::meta::{ShardMeta, StreamMeta, StreamMode};

    use super::*;
    use crate::types::{ClusterNode, Membership};

    fn log_id(term: u64, node_id: u64, index: u64) -> LogId {
        LogId::new(LeaderId { term, node_id }, index)
    }

    fn stream(name: &str) -> StreamMeta {
        StreamMeta {
            account: "000000000000".into(),
            name: name.into(),
            dir_id: format!("dir-{name}"),
            created_ms: 1_000,
            mode: StreamMode::Provisioned,
            retention_hours: 24,
            max_record_size_kib: 1024,
            tags: BTreeMap::new(),
            shard_level_metrics: Vec::new(),
            next_shard_ordinal: 1,
            shards: vec![ShardMeta {
                ordinal: 0,
                starting_hash_key: 0,
                ending_hash_key: u128::MAX,
                parent: None,
                adjacent_parent: None,
                created_ms: 1_000,
                sequence_epoch_s: 1,
                closed: None,
                replicas: Vec::new(),
            }],
            consumers: Vec::new(),
            policy: None,
            warm_throughput_mibps: None,
            record_distribution: Default::default(),
            encryption: None,
            sealing_keys: Vec::new(),
        }
    }

    /// A state where stream "a" is at version 3 and "b" at 1, and the meta of a snapshot at
    /// Raft index 9 with a three-node membership.
    fn sample() -> (MetaSnapshotMeta, CatalogueState) {
        let mut state = CatalogueState::new("ab".repeat(32));
        for name in ["a", "b"] {
            state
                .apply(&Command::CreateStream { meta: stream(name) })
                .unwrap();
        }
        for if_version in [1, 2] {
            let mut meta = stream("a");
            meta.retention_hours = 24 + if_version as u32;
            state
                .apply(&Command::ReplaceStream { meta, if_version })
                .unwrap();
        }
        let nodes: BTreeMap<u64, ClusterNode> = (1..=3)
            .map(|id| {
                (
                    id,
                    ClusterNode {
                        addr: format!("10.0.0.{id}:7567"),
                    },
                )
            })
            .collect();
        let membership = Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes).unwrap();
        let meta = SnapshotMeta {
            last_log_id: Some(log_id(2, 1, 9)),
            last_membership: StoredMembership::new(Some(log_id(1, 1, 0)), membership),
        };
        (meta, state)
    }

    #[test]
    fn a_snapshot_gives_back_its_meta_and_state_versions_included() {
        let (meta, state) = sample();
        assert_eq!(state.stream("000000000000", "a").unwrap().version, 3);
        let bytes = encode(&meta, &state).unwrap();
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.meta, meta);
        assert_eq!(decoded.state, state, "versions and all");
        // The empty snapshot of a group that applied nothing round-trips too.
        let empty = SnapshotMeta::default();
        let blank = CatalogueState::new(String::new());
        let decoded = decode(&encode(&empty, &blank).unwrap()).unwrap();
        assert_eq!((decoded.meta, decoded.state), (empty, blank));
    }

    #[test]
    fn damage_and_foreign_content_are_refused() {
        let (meta, state) = sample();
        let bytes = encode(&meta, &state).unwrap();
        for len in [0, 4, 8, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(&bytes[..len]).is_err(), "cut at {len}");
        }
        for position in [0, 5, 9, bytes.len() / 2, bytes.len() - 1] {
            let mut damaged = bytes.to_vec();
            damaged[position] ^= 0x10;
            assert!(decode(&damaged).is_err(), "flip at {position}");
        }
        // Well sealed, but a version names no stream: refused, not loaded at version 1.
        let mut doc: serde_json::Value =
            serde_json::from_slice(&bytes[durable_file::HEADER_BYTES..]).unwrap();
        doc["versions"][0]["name"] = "nobody".into();
        let sealed = durable_file::seal(&serde_json::to_vec(&doc).unwrap()).unwrap();
        assert!(decode(&sealed).unwrap_err().contains("nobody"));
        doc["format"] = 2.into();
        let sealed = durable_file::seal(&serde_json::to_vec(&doc).unwrap()).unwrap();
        assert!(decode(&sealed).unwrap_err().contains("format 2"));
    }

    #[test]
    fn the_file_is_replaced_whole_and_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_none());
        let (meta, state) = sample();
        let bytes = encode(&meta, &state).unwrap();
        write(dir.path(), &bytes).unwrap();
        // A crash between writing a newer temp file and renaming it.
        fs::write(
            durable_file::temp_path(dir.path(), SNAPSHOT_FILE_NAME),
            b"half",
        )
        .unwrap();
        let (read_bytes, decoded) = read(dir.path()).unwrap().unwrap();
        assert_eq!(read_bytes, bytes);
        assert_eq!(decoded.state, state);
        let path = dir.path().join(SNAPSHOT_FILE_NAME);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![SNAPSHOT_FILE_NAME]);
        // A damaged file stops the open, naming it.
        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let error = read(dir.path()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains(&path.display().to_string()));
    }
}
