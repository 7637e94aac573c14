//! ON_DEMAND capacity: the node splits hot shards and merges cold neighbours by itself.
//!
//! **The model** is AWS's documented one: an on-demand stream starts with four shards and
//! accommodates up to twice its previous peak write throughput without throttling. Riffle gets
//! there shard by shard. Every `interval` it measures each open shard's write rate (bytes and
//! records written since the last look, against the shard capacity of 1 MiB/s and 1,000
//! records/s) as a *utilization* (1.0 = a full shard):
//!
//! - a shard above `split_utilization` (default 0.5) is split at the middle of its hash range,
//!   so that after the split each half runs below it and twice today's load still fits. A hot
//!   key range keeps halving on later rounds until the load spreads (a single partition key
//!   hotter than one shard cannot be spread: AWS has the same limit);
//! - two adjacent shards that have both stayed below `merge_utilization` (default 0.2) for
//!   `merge_after` (default 24 hours) are merged, never below `shards_min` (4) open shards; as
//!   long as `2 × merge_utilization ≤ split_utilization`, the merged shard would not be split
//!   again at once, and twice the recent peak still fits.
//!
//! Resharding goes through `Node::reshard`, exactly like SplitShard and MergeShards (parents
//! sealed after everything they accepted, children published after the catalogue), so scaling
//! never loses or reorders a record. The stream stays ACTIVE throughout, as on AWS.
//!
//! [`plan`] is pure (loads in, steps out) so its rules are unit-tested without clocks; the
//! background task only samples counters and calls it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::meta::StreamMode;
use crate::node::Node;
use crate::reshard::{OpenShard, Step};
use riffle_proto::limits;

/// How ON_DEMAND streams are sized. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OnDemandConfig {
    /// How often shard loads are measured and acted on.
    pub interval: Duration,
    /// A shard above this utilization is split.
    pub split_utilization: f64,
    /// Adjacent shards below this utilization for `merge_after` are merged.
    pub merge_utilization: f64,
    pub merge_after: Duration,
    /// Merging never leaves fewer open shards than this.
    pub shards_min: u32,
}

impl Default for OnDemandConfig {
    fn default() -> OnDemandConfig {
        OnDemandConfig {
            interval: Duration::from_secs(1),
            split_utilization: 0.5,
            merge_utilization: 0.2,
            merge_after: Duration::from_secs(24 * 3600),
            shards_min: limits::ON_DEMAND_INITIAL_SHARDS,
        }
    }
}

/// One open shard's measured load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShardLoad {
    pub shard: OpenShard,
    /// Write rate over the last interval as a fraction of one shard's capacity.
    pub utilization: f64,
    /// How long the shard has stayed below `merge_utilization` (zero if it is not cold now).
    pub cold_for: Duration,
}

/// The steps that resize a stream with these loads: every hot shard split at its middle, or,
/// when none is hot, disjoint pairs of adjacent long-cold shards merged down to `shards_min`.
pub fn plan(loads: &[ShardLoad], config: &OnDemandConfig) -> Vec<Step> {
    let mut sorted = loads.to_vec();
    sorted.sort_by_key(|load| load.shard.starting_hash_key);
    let splits: Vec<Step> = sorted
        .iter()
        .filter(|load| load.utilization > config.split_utilization)
        .filter(|load| load.shard.ending_hash_key - load.shard.starting_hash_key >= 2)
        .map(|load| {
            let start = load.shard.starting_hash_key;
            let middle = start + (load.shard.ending_hash_key - start) / 2 + 1;
            Step::Split {
                parent: load.shard.ordinal,
                key: middle,
            }
        })
        .collect();
    if !splits.is_empty() {
        return splits;
    }
    let cold = |load: &ShardLoad| {
        load.utilization < config.merge_utilization && load.cold_for >= config.merge_after
    };
    let mut open = sorted.len() as u32;
    let mut merges = Vec::new();
    let mut at = 0;
    while at + 1 < sorted.len() && open > config.shards_min {
        if cold(&sorted[at]) && cold(&sorted[at + 1]) {
            merges.push(Step::Merge {
                lower: sorted[at].shard.ordinal,
                upper: sorted[at + 1].shard.ordinal,
            });
            open -= 1;
            at += 2;
        } else {
            at += 1;
        }
    }
    merges
}

/// Shard capacity is defined per second, so loads are averaged over (at least) the last
/// second, however often the scaler looks: a 500-record PutRecords every 400 ms is 1,250
/// records/s for the 50 ms it takes, but its shards are far from full.
const LOAD_WINDOW: Duration = Duration::from_secs(1);

/// What the scaler remembers of one shard between rounds: counter readings covering the last
/// `LOAD_WINDOW` (oldest first), and since when it has been cold.
struct Sample {
    readings: std::collections::VecDeque<(Instant, u64, u64)>,
    cold_since: Option<Instant>,
}

impl Sample {
    /// Records a reading and returns the utilization over the window it now spans (0 until the
    /// shard has been watched for one full window).
    fn utilization(&mut self, now: Instant, bytes: u64, records: u64) -> f64 {
        self.readings.push_back((now, bytes, records));
        while self.readings.len() > 2 && now.duration_since(self.readings[1].0) >= LOAD_WINDOW {
            self.readings.pop_front();
        }
        let (at, first_bytes, first_records) = self.readings[0];
        let seconds = now.duration_since(at).as_secs_f64();
        if seconds < LOAD_WINDOW.as_secs_f64() * 0.999 {
            return 0.0;
        }
        let bytes_rate = bytes.saturating_sub(first_bytes) as f64 / seconds;
        let records_rate = records.saturating_sub(first_records) as f64 / seconds;
        (bytes_rate / limits::SHARD_WRITE_BYTES_PER_SECOND as f64)
            .max(records_rate / limits::SHARD_WRITE_RECORDS_PER_SECOND as f64)
    }
}

/// Runs the scaler until the node is dropped.
pub fn start(node: &Arc<Node>) {
    let weak = Arc::downgrade(node);
    let config = node.config.on_demand;
    tokio::spawn(async move {
        let mut samples: HashMap<(String, u32), Sample> = HashMap::new();
        let mut ticker = tokio::time::interval(config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(node) = weak.upgrade() else { return };
            if !node.decides() {
                // In a cluster, the metadata group's leader scales (every replica of a shard
                // counts what it applies, so its rates are the stream's).
                samples.clear();
                continue;
            }
            round(&node, &config, &mut samples).await;
        }
    });
}

/// One measurement and, where needed, one reshard per ON_DEMAND stream.
async fn round(
    node: &Arc<Node>,
    config: &OnDemandConfig,
    samples: &mut HashMap<(String, u32), Sample>,
) {
    let now = Instant::now();
    let mut seen = Vec::new();
    for stream in node.all_streams() {
        let state = stream.state();
        if state.mode != StreamMode::OnDemand {
            continue;
        }
        let mut loads = Vec::new();
        for shard in state.open_shards() {
            let key = (stream.dir_id.clone(), shard.meta.ordinal);
            let (bytes, records) = shard.log.written();
            let sample = samples.entry(key.clone()).or_insert_with(|| Sample {
                readings: std::collections::VecDeque::new(),
                cold_since: None,
            });
            let utilization = sample.utilization(now, bytes, records);
            sample.cold_since = if utilization < config.merge_utilization {
                Some(sample.cold_since.unwrap_or(now))
            } else {
                None
            };
            loads.push(ShardLoad {
                shard: OpenShard {
                    ordinal: shard.meta.ordinal,
                    starting_hash_key: shard.meta.starting_hash_key,
                    ending_hash_key: shard.meta.ending_hash_key,
                },
                utilization,
                cold_for: sample
                    .cold_since
                    .map_or(Duration::ZERO, |since| now.duration_since(since)),
            });
            seen.push(key);
        }
        // Warm throughput (UpdateStreamWarmThroughput) keeps shards the scaler may not merge.
        let floor = crate::advantage::warm_shards_min(node, &stream, &state);
        let stream_config = OnDemandConfig {
            shards_min: config.shards_min.max(floor),
            ..*config
        };
        let steps = plan(&loads, &stream_config);
        if steps.is_empty() {
            continue;
        }
        let _control = node.control().await;
        // The stream may have been deleted, switched to PROVISIONED or resharded meanwhile.
        let current = node.stream(&stream.account, &stream.name);
        let unchanged = current.is_some_and(|current| {
            Arc::ptr_eq(&current, &stream) && Arc::ptr_eq(&current.state(), &state)
        });
        if !unchanged {
            continue;
        }
        let open_after = state.open_shards().count() as u32 + steps.len() as u32;
        if open_after > limits::SHARDS_PER_STREAM_MAX
            || node.open_shard_count(&stream.account) + steps.len() as u32 > node.config.shard_limit
        {
            tracing::warn!(stream = %stream.name, "on-demand scaling stopped at the shard limit");
            continue;
        }
        tracing::info!(stream = %stream.name, ?steps, "on-demand scaling");
        if let Err(error) = node.reshard(&stream, &steps).await {
            tracing::error!(stream = %stream.name, %error, "on-demand scaling failed");
        }
    }
    samples.retain(|key, _| seen.contains(key));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(ordinal: u32, start: u128, end: u128, utilization: f64, cold_s: u64) -> ShardLoad {
        ShardLoad {
            shard: OpenShard {
                ordinal,
                starting_hash_key: start,
                ending_hash_key: end,
            },
            utilization,
            cold_for: Duration::from_secs(cold_s),
        }
    }

    fn quarters(utilizations: [f64; 4], cold_s: u64) -> Vec<ShardLoad> {
        let ranges = riffle_proto::hashkey::initial_shard_ranges(4);
        ranges
            .iter()
            .zip(utilizations)
            .enumerate()
            .map(|(i, ((start, end), u))| load(i as u32, *start, *end, u, cold_s))
            .collect()
    }

    #[test]
    fn hot_shards_split_at_their_middle() {
        let config = OnDemandConfig::default();
        let steps = plan(&quarters([0.9, 0.1, 0.6, 0.5], 0), &config);
        let ranges = riffle_proto::hashkey::initial_shard_ranges(4);
        let middle = |i: usize| ranges[i].0 + (ranges[i].1 - ranges[i].0) / 2 + 1;
        assert_eq!(
            steps,
            vec![
                Step::Split {
                    parent: 0,
                    key: middle(0)
                },
                Step::Split {
                    parent: 2,
                    key: middle(2)
                },
            ],
            "exactly the shards above 0.5 split; 0.5 itself is not hot"
        );
    }

    #[test]
    fn cold_neighbours_merge_only_after_the_wait_and_not_below_the_minimum() {
        let config = OnDemandConfig {
            merge_after: Duration::from_secs(60),
            shards_min: 2,
            ..OnDemandConfig::default()
        };
        assert!(
            plan(&quarters([0.0; 4], 59), &config).is_empty(),
            "not cold long enough"
        );
        assert_eq!(
            plan(&quarters([0.0; 4], 60), &config),
            vec![
                Step::Merge { lower: 0, upper: 1 },
                Step::Merge { lower: 2, upper: 3 }
            ]
        );
        let floor = OnDemandConfig {
            shards_min: 3,
            ..config
        };
        assert_eq!(
            plan(&quarters([0.0; 4], 60), &floor),
            vec![Step::Merge { lower: 0, upper: 1 }]
        );
        let default_floor = OnDemandConfig {
            merge_after: Duration::ZERO,
            ..OnDemandConfig::default()
        };
        assert!(
            plan(&quarters([0.0; 4], 0), &default_floor).is_empty(),
            "four is the floor"
        );
    }

    #[test]
    fn a_warm_shard_keeps_its_cold_neighbours_apart() {
        let config = OnDemandConfig {
            merge_after: Duration::ZERO,
            shards_min: 1,
            ..OnDemandConfig::default()
        };
        // 1 is warm (above merge, below split): 0 and 2 are not adjacent, only 2+3 merge.
        assert_eq!(
            plan(&quarters([0.0, 0.3, 0.0, 0.0], 0), &config),
            vec![Step::Merge { lower: 2, upper: 3 }]
        );
    }

    #[test]
    fn splitting_wins_over_merging() {
        let config = OnDemandConfig {
            merge_after: Duration::ZERO,
            shards_min: 1,
            ..OnDemandConfig::default()
        };
        let steps = plan(&quarters([0.0, 0.0, 0.0, 0.8], 100), &config);
        assert!(matches!(steps.as_slice(), [Step::Split { parent: 3, .. }]));
    }

    /// Bursts shorter than a second are averaged over the second: a 500-record call every
    /// 400 ms on one shard is 2,500 records/s within a 200 ms look, but 1.0–1.5 shards' worth
    /// over any second.
    #[test]
    fn load_is_averaged_over_a_second_however_often_the_scaler_looks() {
        let start = Instant::now();
        let mut sample = Sample {
            readings: std::collections::VecDeque::new(),
            cold_since: None,
        };
        let at = |ms: u64| start + Duration::from_millis(ms);
        // Looks every 200 ms; 500 records land at 0, 400, 800, 1200 ms.
        assert_eq!(sample.utilization(at(0), 0, 500), 0.0, "no full window yet");
        assert_eq!(sample.utilization(at(200), 0, 500), 0.0);
        assert_eq!(sample.utilization(at(400), 0, 1000), 0.0);
        assert_eq!(sample.utilization(at(600), 0, 1000), 0.0);
        assert_eq!(sample.utilization(at(800), 0, 1500), 0.0);
        // At 1000 ms the window 0..1000 holds 1,000 records: a full shard.
        let full = sample.utilization(at(1000), 0, 1500);
        assert!((full - 1.0).abs() < 1e-9, "{full}");
        // At 1200 ms the window is 200..1200: the bursts at 400, 800 and 1200 ms.
        let later = sample.utilization(at(1200), 0, 2000);
        assert!((later - 1.5).abs() < 1e-9, "{later}");
    }

    #[test]
    fn the_default_thresholds_leave_room_for_twice_the_peak() {
        let config = OnDemandConfig::default();
        assert!(2.0 * config.split_utilization <= 1.0);
        assert!(2.0 * config.merge_utilization <= config.split_utilization);
    }
}
