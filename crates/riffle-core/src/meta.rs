//! Persisted metadata: streams, shards, lineage, tags, encryption, and the node's iterator key.
//!
//! The whole catalogue is one JSON document, `meta.json`, replaced atomically on every
//! control-plane change: write `meta.json.tmp`, fdatasync it, rename it over `meta.json`, fsync the
//! directory. A crash leaves either the old or the new catalogue, never a mix. Control-plane
//! changes are rare (Kinesis throttles them to a few per second), so rewriting the document is
//! cheaper than a second log format. In a cluster this document becomes the metadata Raft
//! group's state machine snapshot; the types here are what that group will replicate.
//!
//! The document holds secrets (the iterator key, the AWS-managed KMS key), so it is written
//! readable by its owner only.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Bumped whenever the document's meaning changes; older servers refuse newer documents.
/// Version 2 added encryption at rest; version 3 channels, queues, `AUTO` record
/// distribution and the directories being removed.
pub const META_FORMAT_VERSION: u32 = 3;
/// What a catalogue using encryption and nothing of version 3 is written as.
pub const META_FORMAT_VERSION_ENCRYPTED: u32 = 2;
/// What a catalogue is written as while no stream has encrypted frames: a data directory that
/// never used encryption stays readable by servers older than it, and one that did is refused
/// by them (they would take sealed frames for records).
pub const META_FORMAT_VERSION_UNENCRYPTED: u32 = 1;

/// The oldest format that can say what `document` says, which is what it is written as: a
/// data directory stays readable by older servers as long as it uses nothing they lack, and
/// is refused by them from the first write that does. Servers that know only versions 1 or 2
/// ignore fields they do not know, so without this they would start on a catalogue with
/// channels or queues, drop them at their next write, route an `AUTO` stream's records by
/// partition key, and take the directories being removed for unaccounted ones.
pub fn format_version_for(document: &MetaDocument) -> u32 {
    let newer = !document.channels.is_empty()
        || !document.queues.is_empty()
        || !document.queue_delivery.is_empty()
        || !document.removing.is_empty()
        || document
            .streams
            .iter()
            .any(|stream| !stream.record_distribution.is_partition_key());
    if newer {
        META_FORMAT_VERSION
    } else if document
        .streams
        .iter()
        .any(|stream| !stream.sealing_keys.is_empty())
    {
        META_FORMAT_VERSION_ENCRYPTED
    } else {
        META_FORMAT_VERSION_UNENCRYPTED
    }
}
pub(crate) const META_FILE: &str = "meta.json";
pub(crate) const META_TMP_FILE: &str = "meta.json.tmp";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamMode {
    #[serde(rename = "PROVISIONED")]
    Provisioned,
    #[serde(rename = "ON_DEMAND")]
    OnDemand,
}

impl StreamMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamMode::Provisioned => "PROVISIONED",
            StreamMode::OnDemand => "ON_DEMAND",
        }
    }
}

/// How an on-demand stream places new records on its shards (UpdateStreamRecordDistributionStrategy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordDistribution {
    /// By the MD5 of the partition key, or the ExplicitHashKey: AWS's default.
    #[default]
    #[serde(rename = "USER_PARTITION_KEY")]
    PartitionKey,
    /// Evenly over the open shards, whatever key the producer gave (ON_DEMAND streams only).
    #[serde(rename = "AUTO")]
    Auto,
}

impl RecordDistribution {
    pub fn is_partition_key(&self) -> bool {
        *self == RecordDistribution::PartitionKey
    }
}

/// Hash keys are 128-bit; JSON numbers that large do not survive every reader, so they are stored
/// as decimal strings.
mod u128_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u128, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMeta {
    pub ordinal: u32,
    #[serde(with = "u128_string")]
    pub starting_hash_key: u128,
    #[serde(with = "u128_string")]
    pub ending_hash_key: u128,
    pub parent: Option<u32>,
    pub adjacent_parent: Option<u32>,
    pub created_ms: u64,
    /// The "shard creation time" (epoch seconds) its sequence numbers carry in their top
    /// digits. Normally `created_ms / 1000`; a child made within its parent's second gets a
    /// later one, so that every child number sorts above every parent number, as on AWS where
    /// resharding takes seconds. 0 (older catalogues) means `created_ms / 1000`.
    #[serde(default)]
    pub sequence_epoch_s: u64,
    /// Set once the shard is sealed by a reshard: the last log index it holds and when.
    pub closed: Option<ClosedShard>,
    /// In a cluster, the ids of the nodes whose replication group holds the shard (decided
    /// when the shard is made); empty on a single node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<u64>,
}

impl ShardMeta {
    /// See [`ShardMeta::sequence_epoch_s`].
    pub fn sequence_epoch_s(&self) -> u64 {
        if self.sequence_epoch_s == 0 {
            self.created_ms / 1000
        } else {
            self.sequence_epoch_s
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedShard {
    pub last_index: u64,
    pub closed_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMeta {
    pub account: String,
    pub name: String,
    /// Names the stream's directory under `streams/`; a re-created stream gets a new one.
    pub dir_id: String,
    pub created_ms: u64,
    pub mode: StreamMode,
    pub retention_hours: u32,
    pub max_record_size_kib: u32,
    pub tags: BTreeMap<String, String>,
    pub shard_level_metrics: Vec<String>,
    pub next_shard_ordinal: u32,
    pub shards: Vec<ShardMeta>,
    /// Enhanced fan-out consumers registered on the stream.
    #[serde(default)]
    pub consumers: Vec<ConsumerMeta>,
    /// The stream's resource policy document, if one is attached.
    #[serde(default)]
    pub policy: Option<String>,
    /// UpdateStreamWarmThroughput's target write MiB/s (ON_DEMAND streams; see `advantage`).
    #[serde(default)]
    pub warm_throughput_mibps: Option<u32>,
    /// How new records are placed on shards. Written only when it is AUTO, so a catalogue
    /// that never used it reads the same to a riffle that does not know it.
    #[serde(default, skip_serializing_if = "RecordDistribution::is_partition_key")]
    pub record_distribution: RecordDistribution,
    /// Server-side encryption, while it is on: the key new records are sealed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionMeta>,
    /// Every key frames of the stream were ever sealed with, kept for the stream's life so
    /// that a start without one of them is refused instead of failing reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sealing_keys: Vec<SealingKeyMeta>,
}

/// StartStreamEncryption's choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionMeta {
    /// The KeyId as the client gave it (DescribeStream shows it so).
    pub key_id: String,
    /// The key it resolved to: a key id (UUID).
    pub key: String,
}

/// A key some frame of a stream is sealed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealingKeyMeta {
    /// Key id (UUID).
    pub key: String,
    /// Its check value (`crypto::Key::check_hex`): other material under the same id is refused.
    pub check_hex: String,
}

/// An enhanced fan-out consumer. Its ARN is the stream's ARN, `/consumer/`, its name, `:` and
/// its registration time in epoch seconds, so a re-registered consumer has a new ARN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerMeta {
    pub name: String,
    pub created_ms: u64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Set by DeregisterStreamConsumer while the consumer shows `DELETING`.
    #[serde(default)]
    pub deleting_ms: Option<u64>,
    /// The consumer's resource policy document, if one is attached.
    #[serde(default)]
    pub policy: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaDocument {
    pub format_version: u32,
    /// Hex of the 32-byte key that authenticates shard iterators and pagination tokens, so they
    /// stay valid across restarts.
    pub token_key_hex: String,
    pub streams: Vec<StreamMeta>,
    /// Account-level settings (UpdateAccountSettings), by account id; absent in catalogues
    /// written before accounts had settings.
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountMeta>,
    /// The key behind `alias/aws/kinesis`, once a stream asked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_managed_key: Option<crate::crypto::ManagedKey>,
    /// Directories under `streams/` (`DIR_ID` or `DIR_ID/ORDINAL`) whose data the catalogue
    /// no longer needs: deleted streams and expired shards, recorded in the same write that
    /// drops them, so that a start can finish removing them after a crash knowing they are
    /// leftovers. Any other directory the catalogue does not name is refused, never removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing: Vec<String>,
    /// Set once `watermarks.json` exists beside this document (see [`crate::watermarks`]),
    /// so that a start can tell a lost watermark file from a directory written by a riffle
    /// that kept none.
    #[serde(default)]
    pub watermarks: bool,
    /// Channels (see [`crate::channels`]), sorted by account and name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<crate::channels::ChannelMeta>,
    /// Queues (see `crate::queues`): their definitions; on a single node their delivery state
    /// lives under `DATA/queues/`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<QueueMeta>,
    /// In a cluster, the nodes being drained (`riffle cluster leave` or `remove`): their
    /// replicas move to other nodes, then they leave the metadata group. Sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes_leaving: Vec<u64>,
    /// Nodes that left or were removed: never members again (see `riffle_cluster::cluster`).
    /// Sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes_removed: Vec<u64>,
    /// In a cluster, each queue's delivery state (see `crate::queues`), replicated with the
    /// catalogue; a single node keeps it under `DATA/queues/` instead. Sorted by account, id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queue_delivery: Vec<QueueDeliveryDoc>,
}

/// One queue's replicated delivery state in a [`MetaDocument`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDeliveryDoc {
    pub account: String,
    pub id: String,
    #[serde(flatten)]
    pub log: crate::queues::journal::DeliveryLog,
}

/// A queue's definition, as CreateQueue and UpdateQueue left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueMeta {
    pub account: String,
    /// The id in the queue's ARN, made at creation (not derived from the name).
    pub id: String,
    pub name: String,
    pub created_ms: u64,
    /// The stream it delivers from: account, name and creation time (one incarnation).
    pub stream_account: String,
    pub stream_name: String,
    pub stream_created_ms: u64,
    /// `TRIM_HORIZON`, `LATEST` or `AT_TIMESTAMP`.
    pub start: String,
    /// AT_TIMESTAMP's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<u64>,
    pub visibility_timeout_s: u32,
    /// `None`: dead-letter handling off (`NONE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_receive_count: Option<u32>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// When UpdateQueue last changed it (it shows `UPDATING` for the update window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_ms: Option<u64>,
}

/// One account's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountMeta {
    /// The On-demand Advantage commitment (MinimumThroughputBillingCommitment), once it was
    /// ever enabled; `None` is DISABLED with no history.
    #[serde(default)]
    pub commitment: Option<CommitmentMeta>,
}

/// A minimum-throughput billing commitment: when it started, when it may end at the earliest,
/// and when it ends (or ended) once disabled. A commitment disabled before its earliest end
/// stays in force until then (`ended_ms` = `earliest_end_ms`, still in the future).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitmentMeta {
    pub started_ms: u64,
    pub earliest_end_ms: u64,
    #[serde(default)]
    pub ended_ms: Option<u64>,
}

/// Why the metadata could not be loaded or stored.
#[derive(Debug)]
pub enum MetaError {
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    Corrupt {
        path: PathBuf,
        reason: String,
    },
}

impl std::fmt::Display for MetaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetaError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            MetaError::Corrupt { path, reason } => {
                write!(
                    f,
                    "{} is not a valid riffle catalogue: {reason}",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for MetaError {}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> MetaError + '_ {
    move |error| MetaError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Loads `meta.json` from `dir`, or `None` for a fresh data directory.
pub fn load(dir: &Path) -> Result<Option<MetaDocument>, MetaError> {
    let path = dir.join(META_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error(&path)(error)),
    };
    let document: MetaDocument =
        serde_json::from_slice(&bytes).map_err(|error| MetaError::Corrupt {
            path: path.clone(),
            reason: error.to_string(),
        })?;
    if document.format_version > META_FORMAT_VERSION {
        return Err(MetaError::Corrupt {
            path,
            reason: format!(
                "format version {} is newer than this server's {META_FORMAT_VERSION}",
                document.format_version
            ),
        });
    }
    Ok(Some(document))
}

/// Atomically replaces `meta.json` in `dir`. With `durable` false (throwaway stores) it skips
/// the fsyncs but keeps the rename, so a reader never sees half a document.
pub fn store(dir: &Path, document: &MetaDocument, durable: bool) -> Result<(), MetaError> {
    let bytes = serde_json::to_vec_pretty(document).map_err(|error| MetaError::Corrupt {
        path: dir.join(META_FILE),
        reason: error.to_string(),
    })?;
    store_file(dir, META_FILE, &bytes, durable)
}

/// Atomically replaces `dir/name` with `bytes`, readable by its owner only: write
/// `name.tmp`, fdatasync it, rename it over `name`, fsync the directory (the fsyncs only when
/// `durable`).
pub fn store_file(dir: &Path, name: &str, bytes: &[u8], durable: bool) -> Result<(), MetaError> {
    let tmp_path = dir.join(format!("{name}.tmp"));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // A temp file left by a crash keeps its old mode through `create`.
        if let Ok(metadata) = fs::metadata(&tmp_path) {
            if metadata.permissions().mode() & 0o077 != 0 {
                let _ = fs::remove_file(&tmp_path);
            }
        }
    }
    let mut file = options.open(&tmp_path).map_err(io_error(&tmp_path))?;
    file.write_all(bytes).map_err(io_error(&tmp_path))?;
    if durable {
        file.sync_data().map_err(io_error(&tmp_path))?;
    }
    drop(file);
    let path = dir.join(name);
    fs::rename(&tmp_path, &path).map_err(io_error(&path))?;
    if durable {
        sync_dir(dir).map_err(io_error(dir))?;
    }
    Ok(())
}

/// Makes a directory entry change (create, rename, delete) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MetaDocument {
        MetaDocument {
            format_version: META_FORMAT_VERSION,
            token_key_hex: "00".repeat(32),
            streams: vec![StreamMeta {
                account: "000000000000".into(),
                name: "orders".into(),
                dir_id: "abc".into(),
                created_ms: 1,
                mode: StreamMode::OnDemand,
                retention_hours: 24,
                max_record_size_kib: 1024,
                tags: BTreeMap::from([("team".into(), "core".into())]),
                shard_level_metrics: vec![],
                next_shard_ordinal: 1,
                shards: vec![ShardMeta {
                    ordinal: 0,
                    starting_hash_key: 0,
                    ending_hash_key: u128::MAX,
                    parent: None,
                    adjacent_parent: None,
                    created_ms: 1,
                    sequence_epoch_s: 0,
                    closed: Some(ClosedShard {
                        last_index: 9,
                        closed_ms: 2,
                    }),
                    replicas: vec![7, 8, 9],
                }],
                consumers: vec![],
                policy: None,
                warm_throughput_mibps: Some(8),
                record_distribution: RecordDistribution::Auto,
                encryption: Some(EncryptionMeta {
                    key_id: "alias/aws/kinesis".into(),
                    key: "3f0b1c52-8a4e-4d36-9a57-0c2f1e6d8b41".into(),
                }),
                sealing_keys: vec![SealingKeyMeta {
                    key: "3f0b1c52-8a4e-4d36-9a57-0c2f1e6d8b41".into(),
                    check_hex: "00".repeat(16),
                }],
            }],
            accounts: BTreeMap::from([(
                "000000000000".into(),
                AccountMeta {
                    commitment: Some(CommitmentMeta {
                        started_ms: 1,
                        earliest_end_ms: 86_400_001,
                        ended_ms: None,
                    }),
                },
            )]),
            aws_managed_key: Some(crate::crypto::ManagedKey {
                key_id: "3f0b1c52-8a4e-4d36-9a57-0c2f1e6d8b41".into(),
                material_hex: "11".repeat(32),
            }),
            removing: vec!["0123/4".into()],
            watermarks: true,
            channels: Vec::new(),
            queues: Vec::new(),
            nodes_leaving: vec![7],
            nodes_removed: vec![9],
            queue_delivery: Vec::new(),
        }
    }

    #[test]
    fn store_then_load_round_trips_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        let mut document = sample();
        store(dir.path(), &document, true).unwrap();
        assert_eq!(load(dir.path()).unwrap().unwrap(), document);
        document.streams.clear();
        store(dir.path(), &document, false).unwrap();
        assert_eq!(load(dir.path()).unwrap().unwrap(), document);
        assert!(!dir.path().join(META_TMP_FILE).exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(META_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "the catalogue holds keys");
        }
    }

    /// A version-1 catalogue (before encryption) still loads, with nothing encrypted.
    #[test]
    fn a_catalogue_from_before_encryption_loads() {
        let dir = tempfile::tempdir().unwrap();
        let mut document = sample();
        document.format_version = META_FORMAT_VERSION_UNENCRYPTED;
        document.aws_managed_key = None;
        document.streams[0].encryption = None;
        document.streams[0].sealing_keys.clear();
        store(dir.path(), &document, false).unwrap();
        let text = fs::read_to_string(dir.path().join(META_FILE)).unwrap();
        assert!(!text.contains("encryption") && !text.contains("sealing_keys"));
        assert!(!text.contains("aws_managed_key"));
        assert_eq!(load(dir.path()).unwrap().unwrap(), document);
    }

    /// A catalogue is written in the oldest format that says all it holds, so a server that
    /// would misread it (ignoring fields it does not know) refuses it instead.
    #[test]
    fn the_format_version_is_the_oldest_that_says_everything() {
        let mut document = sample();
        document.removing.clear();
        document.channels.clear();
        document.queues.clear();
        document.queue_delivery.clear();
        for stream in &mut document.streams {
            stream.record_distribution = RecordDistribution::PartitionKey;
        }
        assert!(!document.streams[0].sealing_keys.is_empty());
        assert_eq!(format_version_for(&document), META_FORMAT_VERSION_ENCRYPTED);
        document.streams[0].encryption = None;
        document.streams[0].sealing_keys.clear();
        assert_eq!(
            format_version_for(&document),
            META_FORMAT_VERSION_UNENCRYPTED
        );
        let mut auto = document.clone();
        auto.streams[0].record_distribution = RecordDistribution::Auto;
        assert_eq!(format_version_for(&auto), META_FORMAT_VERSION);
        let mut removing = document.clone();
        removing.removing.push("abc/0".into());
        assert_eq!(format_version_for(&removing), META_FORMAT_VERSION);
        // This server reads what it writes.
        let dir = tempfile::tempdir().unwrap();
        removing.format_version = format_version_for(&removing);
        store(dir.path(), &removing, false).unwrap();
        assert_eq!(load(dir.path()).unwrap().unwrap(), removing);
    }

    #[test]
    fn garbage_and_future_versions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(META_FILE), b"{not json").unwrap();
        assert!(matches!(load(dir.path()), Err(MetaError::Corrupt { .. })));
        let mut document = sample();
        document.format_version = META_FORMAT_VERSION + 1;
        store(dir.path(), &document, false).unwrap();
        assert!(matches!(load(dir.path()), Err(MetaError::Corrupt { .. })));
    }

    /// Catalogues written before account settings and warm throughput existed still load,
    /// with neither.
    #[test]
    fn catalogues_without_accounts_load() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = serde_json::to_value(sample()).unwrap();
        old.as_object_mut().unwrap().remove("accounts");
        old["streams"][0]
            .as_object_mut()
            .unwrap()
            .remove("warm_throughput_mibps");
        fs::write(dir.path().join(META_FILE), old.to_string()).unwrap();
        let loaded = load(dir.path()).unwrap().unwrap();
        assert!(loaded.accounts.is_empty());
        assert_eq!(loaded.streams[0].warm_throughput_mibps, None);
    }

    /// The record distribution is written only when it is AUTO: a catalogue of streams that
    /// route by key is the same document as before the setting existed, and such a document
    /// loads as routing by key.
    #[test]
    fn record_distribution_is_written_only_when_auto() {
        let mut document = sample();
        let auto = serde_json::to_value(&document).unwrap();
        assert_eq!(auto["streams"][0]["record_distribution"], "AUTO");
        document.streams[0].record_distribution = RecordDistribution::PartitionKey;
        let by_key = serde_json::to_value(&document).unwrap();
        assert!(by_key["streams"][0].get("record_distribution").is_none());
        let loaded: MetaDocument = serde_json::from_value(by_key).unwrap();
        assert_eq!(
            loaded.streams[0].record_distribution,
            RecordDistribution::PartitionKey
        );
        let loaded: MetaDocument = serde_json::from_value(auto).unwrap();
        assert_eq!(
            loaded.streams[0].record_distribution,
            RecordDistribution::Auto
        );
    }
}
