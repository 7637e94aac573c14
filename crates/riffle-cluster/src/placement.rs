//! Where shards' replicas go, and which replica should lead a shard.
//!
//! Every choice here is a pure function of the catalogue and the nodes it is given, so that
//! a node deciding it and every node checking it reach the same answer; the choice itself is
//! then recorded in a catalogue command (a new shard's `replicas`, a `SetShardReplicas`), so
//! nothing depends on nodes recomputing it alike later.
//!
//! **Balance.** A node's load is the number of shard replicas it holds, open shards first
//! (they take writes), then all shards (closed ones still hold data and take reads). New
//! replicas go to the least loaded nodes, ties broken by node id.

use std::collections::BTreeMap;

use riffle_core::catalogue::CatalogueState;

/// How many replicas a shard has when the cluster has that many nodes.
pub const REPLICAS: usize = 3;

/// A node's load: replicas of open shards, then of all shards.
type Load = (usize, usize);

/// The load of each of `nodes` in `catalogue` (nodes holding nothing at 0).
pub fn loads(catalogue: &CatalogueState, nodes: &[u64]) -> BTreeMap<u64, Load> {
    let mut loads: BTreeMap<u64, Load> = nodes.iter().map(|node| (*node, (0, 0))).collect();
    for entry in catalogue.streams.values() {
        for shard in &entry.meta.shards {
            for replica in &shard.replicas {
                if let Some(load) = loads.get_mut(replica) {
                    if shard.closed.is_none() {
                        load.0 += 1;
                    }
                    load.1 += 1;
                }
            }
        }
    }
    loads
}

/// The nodes of `loads` not in `exclude`, least loaded first.
fn least_loaded(loads: &BTreeMap<u64, Load>, exclude: &[u64]) -> Vec<u64> {
    let mut nodes: Vec<(Load, u64)> = loads
        .iter()
        .filter(|(node, _)| !exclude.contains(node))
        .map(|(node, load)| (*load, *node))
        .collect();
    nodes.sort_unstable();
    nodes.into_iter().map(|(_, node)| node).collect()
}

/// The replicas of `count` shards made now on `nodes`: `min(3, nodes)` each, on the least
/// loaded nodes, counting the replicas chosen for the shards before (so a stream's shards
/// spread over the nodes). Each list is sorted.
pub fn place(catalogue: &CatalogueState, nodes: &[u64], count: usize) -> Vec<Vec<u64>> {
    let mut loads = loads(catalogue, nodes);
    let mut placed = Vec::with_capacity(count);
    for _ in 0..count {
        let mut chosen: Vec<u64> = least_loaded(&loads, &[])
            .into_iter()
            .take(REPLICAS)
            .collect();
        for node in &chosen {
            if let Some(load) = loads.get_mut(node) {
                load.0 += 1;
                load.1 += 1;
            }
        }
        chosen.sort_unstable();
        placed.push(chosen);
    }
    placed
}

/// The nodes that may take a new replica of a shard replicated on `current`: those of
/// `nodes` not already replicas, least loaded first.
pub fn candidates(catalogue: &CatalogueState, nodes: &[u64], current: &[u64]) -> Vec<u64> {
    least_loaded(&loads(catalogue, nodes), current)
}

/// How many replicas a shard should have on a cluster of `nodes` nodes able to hold them.
pub fn wanted(nodes: usize) -> usize {
    nodes.min(REPLICAS)
}

/// One step of moving a replica toward balance (see [`rebalance_step`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebalance {
    /// Add a replica of the shard on `to` (the shard then has one replica too many).
    Grow {
        dir_id: String,
        ordinal: u32,
        to: u64,
    },
    /// Drop the shard's replica on `drop` (the shard has one replica too many).
    Shrink {
        dir_id: String,
        ordinal: u32,
        drop: u64,
    },
}

/// The next step toward balance on `nodes` (the nodes that may hold replicas), once every
/// shard has its replicas there: a node that joined a cluster whose shards all have their
/// three replicas would otherwise hold only shards made after it joined.
///
/// A replica moves in two steps, so that a shard never has fewer replicas than it should,
/// whatever fails in between: `Grow` adds one on the least loaded node, then `Shrink` drops
/// the one on the most loaded of the shard's nodes. Only open shards are moved (they take the
/// writes; closed ones expire with retention), and only while the most loaded node holds two
/// or more replicas of open shards than the least loaded. A pure function of the catalogue, so
/// the round after an unfinished step (a replica still catching up) picks the same step.
pub fn rebalance_step(catalogue: &CatalogueState, nodes: &[u64]) -> Option<Rebalance> {
    let want = wanted(nodes.len());
    if want == 0 {
        return None;
    }
    let loads = loads(catalogue, nodes);
    let shards = || {
        catalogue.streams.values().flat_map(|entry| {
            entry
                .meta
                .shards
                .iter()
                .map(move |shard| (&entry.meta.dir_id, shard))
        })
    };
    if let Some((dir_id, shard)) = shards().find(|(_, shard)| shard.replicas.len() > want) {
        let drop = shard
            .replicas
            .iter()
            .copied()
            .max_by_key(|node| (loads.get(node).copied().unwrap_or((usize::MAX, 0)), *node))?;
        return Some(Rebalance::Shrink {
            dir_id: dir_id.clone(),
            ordinal: shard.ordinal,
            drop,
        });
    }
    let (low_load, low) = loads.iter().map(|(node, load)| (load.0, *node)).min()?;
    let (high_load, high) = loads.iter().map(|(node, load)| (load.0, *node)).max()?;
    if high_load < low_load + 2 {
        return None;
    }
    shards()
        .find(|(_, shard)| {
            shard.closed.is_none()
                && shard.replicas.len() == want
                && shard.replicas.contains(&high)
                && !shard.replicas.contains(&low)
                && shard.replicas.iter().all(|node| loads.contains_key(node))
        })
        .map(|(dir_id, shard)| Rebalance::Grow {
            dir_id: dir_id.clone(),
            ordinal: shard.ordinal,
            to: low,
        })
}

/// The replica meant to lead shard `ordinal` of the stream stored as `dir_id`, among
/// `replicas` less `exclude` (nodes being drained). Within a stream, consecutive shards
/// take consecutive replicas, so one stream's leaderships spread over its nodes; each
/// stream starts at a place of its own (from its id), so streams do not all pile their
/// first shard's leadership on the same node.
pub fn preferred_leader(
    dir_id: &str,
    ordinal: u32,
    replicas: &[u64],
    exclude: &[u64],
) -> Option<u64> {
    let mut eligible: Vec<u64> = replicas
        .iter()
        .copied()
        .filter(|replica| !exclude.contains(replica))
        .collect();
    if eligible.is_empty() {
        return None;
    }
    eligible.sort_unstable();
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let offset = dir_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    let at = offset.wrapping_add(u64::from(ordinal)) % eligible.len() as u64;
    eligible.get(at as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use riffle_core::catalogue::Command;
    use riffle_core::meta::{ShardMeta, StreamMeta, StreamMode};

    fn stream(name: &str, placed: &[Vec<u64>]) -> StreamMeta {
        let ranges = riffle_proto_ranges(placed.len());
        StreamMeta {
            account: "000000000000".into(),
            name: name.into(),
            dir_id: format!("dir-{name}"),
            created_ms: 1_000,
            mode: StreamMode::Provisioned,
            retention_hours: 24,
            max_record_size_kib: 1024,
            record_distribution: Default::default(),
            tags: Default::default(),
            shard_level_metrics: Vec::new(),
            next_shard_ordinal: placed.len() as u32,
            shards: placed
                .iter()
                .zip(ranges)
                .enumerate()
                .map(|(ordinal, (replicas, (start, end)))| ShardMeta {
                    ordinal: ordinal as u32,
                    starting_hash_key: start,
                    ending_hash_key: end,
                    parent: None,
                    adjacent_parent: None,
                    created_ms: 1_000,
                    sequence_epoch_s: 1,
                    closed: None,
                    replicas: replicas.clone(),
                })
                .collect(),
            consumers: Vec::new(),
            policy: None,
            warm_throughput_mibps: None,
            encryption: None,
            sealing_keys: Vec::new(),
        }
    }

    /// `count` ranges partitioning the hash key space.
    fn riffle_proto_ranges(count: usize) -> Vec<(u128, u128)> {
        let step = u128::MAX / count as u128;
        (0..count)
            .map(|i| {
                let start = step * i as u128;
                let end = if i + 1 == count {
                    u128::MAX
                } else {
                    step * (i as u128 + 1) - 1
                };
                (start, end)
            })
            .collect()
    }

    /// Creates streams one after another on `nodes`, each placed on the catalogue so far.
    fn grow(nodes: &[u64], streams: usize, shards: usize) -> CatalogueState {
        let mut catalogue = CatalogueState::new(String::new());
        for i in 0..streams {
            let placed = place(&catalogue, nodes, shards);
            let meta = stream(&format!("s{i}"), &placed);
            catalogue.apply(&Command::CreateStream { meta }).unwrap();
        }
        catalogue
    }

    #[test]
    fn a_shard_gets_three_replicas_or_every_node_when_fewer() {
        let empty = CatalogueState::new(String::new());
        assert_eq!(place(&empty, &[5], 1), vec![vec![5]]);
        assert_eq!(place(&empty, &[5, 6], 1), vec![vec![5, 6]]);
        for placed in place(&empty, &[1, 2, 3, 4, 5], 4) {
            assert_eq!(placed.len(), 3);
            let mut distinct = placed.clone();
            distinct.dedup();
            assert_eq!(distinct, placed, "three different nodes, sorted");
        }
        assert!(place(&empty, &[], 2).iter().all(Vec::is_empty));
    }

    #[test]
    fn replicas_spread_evenly_over_more_than_three_nodes() {
        let nodes = [11, 22, 33, 44, 55];
        // One shard at a time (streams of one shard) and many at once (one big stream).
        for catalogue in [grow(&nodes, 20, 1), grow(&nodes, 1, 20)] {
            let loads = loads(&catalogue, &nodes);
            let open: Vec<usize> = loads.values().map(|load| load.0).collect();
            assert_eq!(open.iter().sum::<usize>(), 60, "{loads:?}");
            let (least, most) = (open.iter().min().unwrap(), open.iter().max().unwrap());
            assert!(most - least <= 1, "unbalanced: {loads:?}");
        }
    }

    #[test]
    fn a_new_node_is_the_first_candidate_and_the_same_catalogue_gives_the_same_answer() {
        let catalogue = grow(&[1, 2, 3], 4, 2);
        assert_eq!(
            place(&catalogue, &[1, 2, 3, 4], 3),
            place(&catalogue, &[4, 3, 2, 1], 3),
            "the order nodes are listed in does not matter"
        );
        // A shard on 1, 2, 3 losing node 2: node 4 (empty) comes before 1 and 3.
        assert_eq!(candidates(&catalogue, &[1, 3, 4], &[1, 2, 3]), vec![4]);
        assert_eq!(
            candidates(&catalogue, &[1, 2, 3, 4], &[1]).first(),
            Some(&4)
        );
        // The next shards placed favour the empty node until it caught up.
        let placed = place(&catalogue, &[1, 2, 3, 4], 4);
        assert!(placed.iter().all(|replicas| replicas.contains(&4)));
    }

    /// Applies `step` as the cluster records it (`SetShardReplicas`).
    fn apply_step(catalogue: &mut CatalogueState, step: &Rebalance) {
        let (dir_id, ordinal, change) = match step {
            Rebalance::Grow {
                dir_id,
                ordinal,
                to,
            } => (dir_id, *ordinal, (Some(*to), None)),
            Rebalance::Shrink {
                dir_id,
                ordinal,
                drop,
            } => (dir_id, *ordinal, (None, Some(*drop))),
        };
        let entry = catalogue
            .streams
            .values()
            .find(|entry| entry.meta.dir_id == *dir_id)
            .unwrap();
        let shard = entry
            .meta
            .shards
            .iter()
            .find(|s| s.ordinal == ordinal)
            .unwrap();
        let mut replicas = shard.replicas.clone();
        if let Some(to) = change.0 {
            assert!(!replicas.contains(&to));
            replicas.push(to);
        }
        if let Some(drop) = change.1 {
            replicas.retain(|node| *node != drop);
        }
        catalogue
            .apply(&Command::SetShardReplicas {
                dir_id: dir_id.clone(),
                ordinal,
                replicas,
            })
            .unwrap();
    }

    #[test]
    fn a_node_that_joins_a_full_cluster_gets_its_share_one_replica_at_a_time() {
        let mut catalogue = grow(&[1, 2, 3], 3, 4);
        let nodes = [1, 2, 3, 4];
        let first = rebalance_step(&catalogue, &nodes).expect("unbalanced");
        assert!(matches!(first, Rebalance::Grow { to: 4, .. }), "{first:?}");
        assert_eq!(
            rebalance_step(&catalogue, &nodes),
            Some(first),
            "the same catalogue gives the same step (an unfinished one is asked again)"
        );
        let mut steps = 0;
        while let Some(step) = rebalance_step(&catalogue, &nodes) {
            apply_step(&mut catalogue, &step);
            steps += 1;
            assert!(steps <= 40, "no convergence");
            for entry in catalogue.streams.values() {
                for shard in &entry.meta.shards {
                    assert!(
                        (3..=4).contains(&shard.replicas.len()),
                        "never fewer replicas than wanted, at most one more: {step:?}"
                    );
                }
            }
        }
        let open: Vec<usize> = loads(&catalogue, &nodes).values().map(|l| l.0).collect();
        assert_eq!(open.iter().sum::<usize>(), 36);
        assert!(
            open.iter().max().unwrap() - open.iter().min().unwrap() <= 1,
            "{open:?}"
        );
        assert!(catalogue.streams.values().all(|entry| entry
            .meta
            .shards
            .iter()
            .all(|s| s.replicas.len() == 3)));
        // Balanced clusters and single nodes are left alone.
        assert_eq!(rebalance_step(&grow(&[1, 2, 3], 2, 3), &[1, 2, 3]), None);
        assert_eq!(rebalance_step(&grow(&[7], 1, 2), &[7]), None);
    }

    #[test]
    fn leaderships_rotate_within_a_stream_and_avoid_draining_nodes() {
        let replicas = [3, 1, 2];
        let leaders: Vec<u64> = (0..6)
            .map(|ordinal| preferred_leader("abc", ordinal, &replicas, &[]).unwrap())
            .collect();
        for window in leaders.windows(3) {
            let mut seen = window.to_vec();
            seen.sort_unstable();
            assert_eq!(
                seen,
                vec![1, 2, 3],
                "three consecutive shards, three leaders"
            );
        }
        for ordinal in 0..6 {
            assert_ne!(preferred_leader("abc", ordinal, &replicas, &[2]), Some(2));
        }
        assert_eq!(preferred_leader("abc", 0, &[2], &[2]), None);
    }
}
