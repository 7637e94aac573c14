//! What the metadata workload knows of each stream, and the check that no acknowledged
//! change was lost.

use std::collections::BTreeMap;

use riffle_core::catalogue::CatalogueState;
use riffle_core::meta::{ShardMeta, StreamMeta, StreamMode};

/// The account every simulated stream belongs to.
pub const ACCOUNT: &str = "000000000000";
/// The tag holding the generation of the change that wrote a stream's document.
pub const GEN_TAG: &str = "sim-gen";

/// What the workload knows of one stream.
#[derive(Debug)]
pub struct StreamHistory {
    /// The version the workload believes current (`None`: believes absent).
    pub believed: Option<u64>,
    /// The generation markers the final state may hold (`None`: absent): the last
    /// acknowledged change (or the stream's absence before any) and every later change
    /// whose fate is unknown.
    pub possible: Vec<Option<u64>>,
    /// The last acknowledged change: its generation (`None` for a delete) and version.
    pub last_acked: Option<(Option<u64>, u64)>,
}

impl Default for StreamHistory {
    fn default() -> StreamHistory {
        StreamHistory {
            believed: None,
            possible: vec![None],
            last_acked: None,
        }
    }
}

/// A stream's document whose generation tag is `generation`.
pub fn stream_meta(name: &str, generation: u64) -> StreamMeta {
    let shard = ShardMeta {
        ordinal: 0,
        starting_hash_key: 0,
        ending_hash_key: u128::MAX,
        parent: None,
        adjacent_parent: None,
        created_ms: 1_000,
        sequence_epoch_s: 1,
        closed: None,
        replicas: Vec::new(),
    };
    StreamMeta {
        account: ACCOUNT.into(),
        name: name.into(),
        dir_id: format!("dir-{name}"),
        created_ms: 1_000,
        mode: StreamMode::Provisioned,
        retention_hours: 24,
        max_record_size_kib: 1024,
        tags: BTreeMap::from([(GEN_TAG.to_string(), generation.to_string())]),
        shard_level_metrics: Vec::new(),
        next_shard_ordinal: 1,
        shards: vec![shard],
        consumers: Vec::new(),
        policy: None,
        warm_throughput_mibps: None,
        record_distribution: Default::default(),
        encryption: None,
        sealing_keys: Vec::new(),
    }
}

/// No acknowledged change lost: each stream in `catalogue` is in the state of its last
/// acknowledged change (at the version that change was answered with) or of a later change
/// whose fate the workload never learned.
pub fn check_acknowledged(
    histories: &BTreeMap<&str, StreamHistory>,
    catalogue: &CatalogueState,
) -> Result<(), String> {
    for (name, history) in histories {
        let entry = catalogue.stream(ACCOUNT, name);
        let actual = entry.map(|entry| {
            entry
                .meta
                .tags
                .get(GEN_TAG)
                .and_then(|tag| tag.parse::<u64>().ok())
                .unwrap_or(0)
        });
        if !history.possible.contains(&actual) {
            return Err(format!(
                "stream {name}: the catalogue holds generation {actual:?}, but the last \
                 acknowledged change and later unacknowledged ones allow only {:?} \
                 (last acknowledged {:?})",
                history.possible, history.last_acked
            ));
        }
        if let (Some((marker, version)), Some(entry)) = (history.last_acked, entry) {
            if marker == actual && entry.version != version {
                return Err(format!(
                    "stream {name}: generation {actual:?} was acknowledged at version {version} \
                     but the catalogue says {}",
                    entry.version
                ));
            }
        }
    }
    Ok(())
}
