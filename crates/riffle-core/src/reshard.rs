//! Resharding plans: which shards a split, a merge or a uniform re-scaling closes and opens.
//!
//! This module is pure: it takes the open shards' hash ranges and returns a list of [`Step`]s,
//! and [`apply`] turns the steps into the shards they create, with their lineage. The node
//! then seals the parents' logs and publishes the result (see `Node::reshard`). Keeping the
//! planning free of I/O lets the invariants below be checked by a property test over random
//! sequences of operations.
//!
//! **Invariants** (checked by `tests::plans_keep_the_key_space_partitioned`):
//! - The open shards always partition `[0, 2^128)`: sorted by starting hash key, the first
//!   starts at 0, each starts one past the previous one's end, the last ends at `u128::MAX`.
//! - Every step closes what it consumes: a split closes its parent and opens two children
//!   whose ranges partition the parent's; a merge closes two adjacent shards and opens one
//!   child covering exactly their union, with `parent` the lower and `adjacent_parent` the
//!   upper. No shard ever has more than two parents, which is all KCL's lineage model allows.
//! - Ordinals only grow: children get `next_ordinal`, `next_ordinal + 1`, … in step order.
//!
//! **Uniform scaling** (UpdateShardCount with UNIFORM_SCALING) reaches the layout a new stream
//! of the target count would have (`riffle_proto::hashkey::initial_shard_ranges`) in two
//! phases, as AWS does with short-lived intermediate shards: first every open shard is split at
//! each target boundary strictly inside it, so that each shard lies within one target range;
//! then the shards within each target range are merged left to right.

use riffle_proto::hashkey::initial_shard_ranges;

/// An open shard as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenShard {
    pub ordinal: u32,
    pub starting_hash_key: u128,
    pub ending_hash_key: u128,
}

/// One resharding step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Close `parent`; open `[start, key - 1]` and `[key, end]`.
    Split { parent: u32, key: u128 },
    /// Close `lower` and `upper` (adjacent, `lower` first); open their union.
    Merge { lower: u32, upper: u32 },
}

/// A shard a plan creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewShard {
    pub ordinal: u32,
    pub starting_hash_key: u128,
    pub ending_hash_key: u128,
    pub parent: u32,
    pub adjacent_parent: Option<u32>,
}

/// What a list of steps does to a stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Shards open before the plan that it closes, in closing order.
    pub closed: Vec<u32>,
    /// Every shard the plan creates, in ordinal order. Some may be closed again by a later step
    /// (their ordinals are in `closed_new`).
    pub created: Vec<NewShard>,
    /// Created shards that a later step of the same plan closes (intermediate shards).
    pub closed_new: Vec<u32>,
    /// The open shards after the plan, sorted by starting hash key.
    pub open: Vec<OpenShard>,
    /// The ordinal the next created shard will get.
    pub next_ordinal: u32,
}

/// Runs `steps` over `open` (which must partition the key space). Panics on a step that breaks
/// the rules (unknown or closed shard, key outside the parent, non-adjacent merge): callers
/// validate requests with AWS's errors first, and plans built here are valid by construction.
pub fn apply(open: &[OpenShard], next_ordinal: u32, steps: &[Step]) -> Outcome {
    let originally_open: Vec<u32> = open.iter().map(|shard| shard.ordinal).collect();
    let mut outcome = Outcome {
        open: open.to_vec(),
        next_ordinal,
        ..Outcome::default()
    };
    outcome.open.sort_by_key(|shard| shard.starting_hash_key);
    let close = |outcome: &mut Outcome, ordinal: u32| {
        if originally_open.contains(&ordinal) {
            outcome.closed.push(ordinal);
        } else {
            outcome.closed_new.push(ordinal);
        }
    };
    for step in steps {
        match *step {
            Step::Split { parent, key } => {
                let at = position(&outcome.open, parent);
                let shard = outcome.open[at];
                assert!(
                    shard.starting_hash_key < key && key <= shard.ending_hash_key,
                    "split key {key} outside shard {parent}"
                );
                let left = NewShard {
                    ordinal: outcome.next_ordinal,
                    starting_hash_key: shard.starting_hash_key,
                    ending_hash_key: key - 1,
                    parent,
                    adjacent_parent: None,
                };
                let right = NewShard {
                    ordinal: outcome.next_ordinal + 1,
                    starting_hash_key: key,
                    ending_hash_key: shard.ending_hash_key,
                    parent,
                    adjacent_parent: None,
                };
                outcome.next_ordinal += 2;
                close(&mut outcome, parent);
                outcome
                    .open
                    .splice(at..=at, [open_shard(&left), open_shard(&right)]);
                outcome.created.extend([left, right]);
            }
            Step::Merge { lower, upper } => {
                let at = position(&outcome.open, lower);
                assert!(
                    outcome.open.get(at + 1).map(|shard| shard.ordinal) == Some(upper),
                    "shards {lower} and {upper} are not adjacent"
                );
                let child = NewShard {
                    ordinal: outcome.next_ordinal,
                    starting_hash_key: outcome.open[at].starting_hash_key,
                    ending_hash_key: outcome.open[at + 1].ending_hash_key,
                    parent: lower,
                    adjacent_parent: Some(upper),
                };
                outcome.next_ordinal += 1;
                close(&mut outcome, lower);
                close(&mut outcome, upper);
                outcome.open.splice(at..=at + 1, [open_shard(&child)]);
                outcome.created.push(child);
            }
        }
    }
    outcome
}

fn position(open: &[OpenShard], ordinal: u32) -> usize {
    open.iter()
        .position(|shard| shard.ordinal == ordinal)
        .unwrap_or_else(|| panic!("shard {ordinal} is not open"))
}

fn open_shard(shard: &NewShard) -> OpenShard {
    OpenShard {
        ordinal: shard.ordinal,
        starting_hash_key: shard.starting_hash_key,
        ending_hash_key: shard.ending_hash_key,
    }
}

/// The steps that take `open` to `target` shards of equal width (see the module docs).
pub fn uniform(open: &[OpenShard], next_ordinal: u32, target: u32) -> Vec<Step> {
    assert!(target >= 1, "at least one shard");
    let ranges = initial_shard_ranges(target);
    let mut current: Vec<OpenShard> = open.to_vec();
    current.sort_by_key(|shard| shard.starting_hash_key);
    if current.len() == ranges.len()
        && current.iter().zip(&ranges).all(|(shard, (start, end))| {
            shard.starting_hash_key == *start && shard.ending_hash_key == *end
        })
    {
        return Vec::new();
    }
    let mut steps = Vec::new();
    let mut ordinal = next_ordinal;
    // Phase 1: split at every target boundary strictly inside a shard.
    let mut after_splits = Vec::with_capacity(ranges.len() + current.len());
    for shard in current {
        let mut piece = shard;
        for (boundary, _) in ranges.iter().skip(1) {
            if piece.starting_hash_key < *boundary && *boundary <= piece.ending_hash_key {
                steps.push(Step::Split {
                    parent: piece.ordinal,
                    key: *boundary,
                });
                after_splits.push(OpenShard {
                    ordinal,
                    starting_hash_key: piece.starting_hash_key,
                    ending_hash_key: boundary - 1,
                });
                piece = OpenShard {
                    ordinal: ordinal + 1,
                    starting_hash_key: *boundary,
                    ending_hash_key: piece.ending_hash_key,
                };
                ordinal += 2;
            }
        }
        after_splits.push(piece);
    }
    // Phase 2: merge the pieces of each target range, left to right.
    let mut pieces = after_splits.into_iter().peekable();
    for (_, end) in &ranges {
        let Some(mut accumulated) = pieces.next() else {
            break;
        };
        while accumulated.ending_hash_key < *end {
            let Some(next) = pieces.next() else { break };
            steps.push(Step::Merge {
                lower: accumulated.ordinal,
                upper: next.ordinal,
            });
            accumulated = OpenShard {
                ordinal,
                starting_hash_key: accumulated.starting_hash_key,
                ending_hash_key: next.ending_hash_key,
            };
            ordinal += 1;
        }
    }
    steps
}

/// The splits that take `open` to at least `target` shards by halving the widest shard again
/// and again (at the middle of its range, as the ON_DEMAND scaler splits; ties go to the lower
/// range), so that shards a hot key range was already split into stay as they are. Nothing when
/// `open` already has `target` shards. Used to pre-warm on-demand streams.
pub fn split_widest(open: &[OpenShard], next_ordinal: u32, target: u32) -> Vec<Step> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    // Widest first; among equals, the lowest range.
    let mut heap: BinaryHeap<(u128, Reverse<u128>, u32, u128)> = open
        .iter()
        .map(|shard| {
            let width = shard.ending_hash_key - shard.starting_hash_key;
            let start = shard.starting_hash_key;
            (width, Reverse(start), shard.ordinal, shard.ending_hash_key)
        })
        .collect();
    let mut steps = Vec::new();
    let mut ordinal = next_ordinal;
    let mut count = open.len() as u64;
    while count < u64::from(target) {
        let Some((width, Reverse(start), parent, end)) = heap.pop() else {
            break;
        };
        if width == 0 {
            break; // one hash key per shard: nothing left to split
        }
        let key = start + width / 2 + 1;
        steps.push(Step::Split { parent, key });
        heap.push((key - 1 - start, Reverse(start), ordinal, key - 1));
        heap.push((end - key, Reverse(key), ordinal + 1, end));
        ordinal += 2;
        count += 1;
    }
    steps
}

/// Whether `open` partitions the hash key space exactly.
pub fn partitions_key_space(open: &[OpenShard]) -> bool {
    let mut sorted = open.to_vec();
    sorted.sort_by_key(|shard| shard.starting_hash_key);
    let Some(first) = sorted.first() else {
        return false;
    };
    if first.starting_hash_key != 0 || sorted.last().map(|s| s.ending_hash_key) != Some(u128::MAX) {
        return false;
    }
    sorted
        .iter()
        .all(|shard| shard.starting_hash_key <= shard.ending_hash_key)
        && sorted
            .windows(2)
            .all(|pair| pair[0].ending_hash_key.checked_add(1) == Some(pair[1].starting_hash_key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stream(count: u32) -> Vec<OpenShard> {
        initial_shard_ranges(count)
            .into_iter()
            .enumerate()
            .map(|(ordinal, (start, end))| OpenShard {
                ordinal: ordinal as u32,
                starting_hash_key: start,
                ending_hash_key: end,
            })
            .collect()
    }

    #[test]
    fn a_split_names_its_children_like_aws() {
        let open = stream(1);
        let outcome = apply(
            &open,
            1,
            &[Step::Split {
                parent: 0,
                key: 1 << 127,
            }],
        );
        assert_eq!(outcome.closed, vec![0]);
        assert_eq!(
            outcome.created,
            vec![
                NewShard {
                    ordinal: 1,
                    starting_hash_key: 0,
                    ending_hash_key: (1 << 127) - 1,
                    parent: 0,
                    adjacent_parent: None
                },
                NewShard {
                    ordinal: 2,
                    starting_hash_key: 1 << 127,
                    ending_hash_key: u128::MAX,
                    parent: 0,
                    adjacent_parent: None
                },
            ]
        );
        assert!(partitions_key_space(&outcome.open));
    }

    #[test]
    fn splitting_the_widest_halves_wide_shards_first_and_keeps_narrow_ones() {
        // Four quarters, the first already split in two: 5 open shards.
        let first = apply(
            &stream(4),
            4,
            &[Step::Split {
                parent: 0,
                key: 1 << 125,
            }],
        );
        let steps = split_widest(&first.open, first.next_ordinal, 8);
        let outcome = apply(&first.open, first.next_ordinal, &steps);
        assert_eq!(outcome.open.len(), 8);
        assert!(partitions_key_space(&outcome.open));
        // The three untouched quarters were split; the two eighths stayed.
        assert_eq!(
            steps
                .iter()
                .map(|step| match step {
                    Step::Split { parent, .. } => *parent,
                    Step::Merge { .. } => unreachable!(),
                })
                .collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        let widths: Vec<u128> = outcome
            .open
            .iter()
            .map(|shard| shard.ending_hash_key - shard.starting_hash_key)
            .collect();
        assert!(widths.iter().all(|width| *width == widths[0]), "{widths:?}");
        assert!(split_widest(&outcome.open, outcome.next_ordinal, 8).is_empty());
        assert!(split_widest(&outcome.open, outcome.next_ordinal, 3).is_empty());
        // Past a power of two, the lowest of the equally wide shards go first, and the
        // children of a split may be split again in the same plan.
        let steps = split_widest(&stream(1), 1, 3);
        let outcome = apply(&stream(1), 1, &steps);
        assert_eq!(outcome.open.len(), 3);
        assert_eq!(outcome.closed_new, vec![1]);
        assert!(partitions_key_space(&outcome.open));
    }

    #[test]
    fn a_merge_has_the_lower_shard_as_parent() {
        let outcome = apply(&stream(2), 2, &[Step::Merge { lower: 0, upper: 1 }]);
        assert_eq!(outcome.closed, vec![0, 1]);
        assert_eq!(outcome.created.len(), 1);
        let child = outcome.created[0];
        assert_eq!((child.parent, child.adjacent_parent), (0, Some(1)));
        assert_eq!(
            (child.starting_hash_key, child.ending_hash_key),
            (0, u128::MAX)
        );
    }

    #[test]
    fn uniform_scaling_reaches_the_layout_of_a_new_stream() {
        for (from, to) in [
            (1, 2),
            (2, 4),
            (4, 5),
            (4, 2),
            (5, 3),
            (10, 13),
            (3, 1),
            (7, 7),
        ] {
            let open = stream(from);
            let steps = uniform(&open, from, to);
            let outcome = apply(&open, from, &steps);
            let ranges: Vec<(u128, u128)> = outcome
                .open
                .iter()
                .map(|shard| (shard.starting_hash_key, shard.ending_hash_key))
                .collect();
            assert_eq!(ranges, initial_shard_ranges(to), "{from} -> {to}");
            if from == to {
                assert!(steps.is_empty());
            }
        }
    }

    #[test]
    fn doubling_splits_every_shard_once() {
        let open = stream(4);
        let steps = uniform(&open, 4, 8);
        assert_eq!(steps.len(), 4);
        assert!(steps.iter().all(|step| matches!(step, Step::Split { .. })));
    }

    /// A random operation on a stream: split an open shard at a fraction of its range, merge it
    /// with its right neighbour, or scale uniformly.
    #[derive(Debug, Clone)]
    enum Op {
        Split { pick: usize, fraction: u64 },
        Merge { pick: usize },
        Uniform { target: u32 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<usize>(), 1..u64::MAX).prop_map(|(pick, fraction)| Op::Split { pick, fraction }),
            any::<usize>().prop_map(|pick| Op::Merge { pick }),
            (1u32..24).prop_map(|target| Op::Uniform { target }),
        ]
    }

    proptest! {
        /// After any sequence of splits, merges and uniform scalings, the open shards partition
        /// the key space, every created shard has one or two parents that the plan closed (or
        /// that were open), split children partition their parent and merge children cover
        /// exactly their parents, and ordinals only grow.
        #[test]
        fn plans_keep_the_key_space_partitioned(
            initial in 1u32..8,
            ops in proptest::collection::vec(op(), 1..12),
        ) {
            let mut open = stream(initial);
            let mut next = initial;
            let mut ranges: std::collections::HashMap<u32, (u128, u128)> = open
                .iter()
                .map(|shard| (shard.ordinal, (shard.starting_hash_key, shard.ending_hash_key)))
                .collect();
            for op in ops {
                let steps = match op {
                    Op::Split { pick, fraction } => {
                        let shard = open[pick % open.len()];
                        let width = shard.ending_hash_key - shard.starting_hash_key;
                        if width < 2 {
                            continue;
                        }
                        let offset = ((width as f64) * (fraction as f64 / u64::MAX as f64)) as u128;
                        let key = shard.starting_hash_key + offset.clamp(1, width);
                        vec![Step::Split { parent: shard.ordinal, key }]
                    }
                    Op::Merge { pick } => {
                        if open.len() < 2 {
                            continue;
                        }
                        let at = pick % (open.len() - 1);
                        vec![Step::Merge { lower: open[at].ordinal, upper: open[at + 1].ordinal }]
                    }
                    Op::Uniform { target } => uniform(&open, next, target),
                };
                let before: Vec<u32> = open.iter().map(|shard| shard.ordinal).collect();
                let outcome = apply(&open, next, &steps);
                prop_assert!(partitions_key_space(&outcome.open));
                for closed in &outcome.closed {
                    prop_assert!(before.contains(closed));
                }
                for (position, child) in outcome.created.iter().enumerate() {
                    prop_assert_eq!(child.ordinal, next + position as u32);
                    let (parent_start, parent_end) = ranges[&child.parent];
                    match child.adjacent_parent {
                        None => {
                            prop_assert!(parent_start <= child.starting_hash_key);
                            prop_assert!(child.ending_hash_key <= parent_end);
                        }
                        Some(adjacent) => {
                            let (adjacent_start, adjacent_end) = ranges[&adjacent];
                            prop_assert_eq!(parent_end.checked_add(1), Some(adjacent_start));
                            prop_assert_eq!(
                                (child.starting_hash_key, child.ending_hash_key),
                                (parent_start, adjacent_end)
                            );
                        }
                    }
                    ranges.insert(child.ordinal, (child.starting_hash_key, child.ending_hash_key));
                }
                // Split children come in pairs that partition their parent.
                for pair in outcome.created.windows(2) {
                    if pair[0].adjacent_parent.is_none()
                        && pair[1].adjacent_parent.is_none()
                        && pair[0].parent == pair[1].parent
                        && pair[0].ending_hash_key.checked_add(1) == Some(pair[1].starting_hash_key)
                    {
                        prop_assert_eq!(
                            (pair[0].starting_hash_key, pair[1].ending_hash_key),
                            ranges[&pair[0].parent]
                        );
                    }
                }
                prop_assert!(outcome.next_ordinal >= next);
                next = outcome.next_ordinal;
                open = outcome.open;
            }
        }
    }
}
