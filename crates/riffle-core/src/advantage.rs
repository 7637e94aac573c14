//! On-demand Advantage: the account's minimum-throughput billing commitment
//! (UpdateAccountSettings, DescribeAccountSettings) and what it unlocks — warm throughput for
//! ON_DEMAND streams (UpdateStreamWarmThroughput) and 50 instead of 20 consumers per stream.
//!
//! **The commitment** is persisted per account in the catalogue (`meta::AccountMeta`). Its
//! life, after the AWS SDK documentation of `MinimumThroughputBillingCommitmentInput`
//! ("commitments have a minimum duration of 24 hours … if you attempt to disable a commitment
//! before the minimum commitment period ends, the commitment will be scheduled for automatic
//! disable at the earliest allowed end time … you can cancel a pending disable by enabling the
//! commitment again"):
//!
//! | state | ENABLED asked | DISABLED asked |
//! |---|---|---|
//! | `DISABLED` (never, or ended) | `ENABLED`, StartedAt now, EarliestAllowedEndAt = now + 24 h | unchanged |
//! | `ENABLED` | unchanged | before EarliestAllowedEndAt: `ENABLED_UNTIL_EARLIEST_ALLOWED_END`; after: `DISABLED`, EndedAt now |
//! | `ENABLED_UNTIL_EARLIEST_ALLOWED_END` | `ENABLED` again (the pending end is cancelled) | unchanged |
//!
//! A pending end becomes `DISABLED` with EndedAt = EarliestAllowedEndAt when that time comes
//! (computed when asked; nothing runs in the background). The 24 hours can be shortened with
//! `riffle serve --commitment-minimum-s` for tests. While the status is anything but `DISABLED`
//! the account has On-demand Advantage.
//!
//! **Warm throughput** (UpdateStreamWarmThroughput) is a target write rate in MiB/s for an
//! ON_DEMAND stream. Riffle makes it real: it pre-splits the stream (halving its widest shards,
//! `reshard::split_widest`) until its open shards take the target at 1 MiB/s each, and the
//! scaler never merges the stream below that many shards. DescribeStreamSummary shows
//! `WarmThroughput{TargetMiBps, CurrentMiBps}` with CurrentMiBps = open shards × 1 MiB/s. The
//! target is kept with the stream but is in force only while the stream is ON_DEMAND and its
//! account has On-demand Advantage.
//!
//! Errors (AWS publishes no texts): a PROVISIONED stream gets ValidationException, as the other
//! operations that one capacity mode does not support; an account without the commitment gets
//! InvalidArgumentException (the warm throughput "can't be used"); more than 10 GiB/s, or more
//! shards than a stream or the account may have, LimitExceededException.

use riffle_proto::limits;
use riffle_proto::ops::{
    MinimumThroughputBillingCommitmentOutput, MinimumThroughputBillingCommitmentStatus as Status,
    UpdateAccountSettingsInput, UpdateAccountSettingsOutput, UpdateStreamWarmThroughputInput,
    UpdateStreamWarmThroughputOutput, WarmThroughputObject,
};
use riffle_proto::Timestamp;

use crate::control::{self, check_active, resolve_stream, Caller};
use crate::meta::{CommitmentMeta, StreamMode};
use crate::node::{now_ms, Node, Stream, StreamState};
use crate::reshard::{self, OpenShard};
use crate::Error;

/// Write MiB/s one shard takes.
const SHARD_WRITE_MIBPS: u32 = (limits::SHARD_WRITE_BYTES_PER_SECOND / (1024 * 1024)) as u32;

fn status_at(commitment: Option<&CommitmentMeta>, now_ms: u64) -> Status {
    match commitment.map(|commitment| commitment.ended_ms) {
        None => Status::Disabled,
        Some(None) => Status::Enabled,
        Some(Some(ended_ms)) if now_ms < ended_ms => Status::EnabledUntilEarliestAllowedEnd,
        Some(Some(_)) => Status::Disabled,
    }
}

fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from_epoch_ms(i64::try_from(ms).unwrap_or(i64::MAX))
}

fn output(
    commitment: Option<&CommitmentMeta>,
    now_ms: u64,
) -> MinimumThroughputBillingCommitmentOutput {
    MinimumThroughputBillingCommitmentOutput {
        status: status_at(commitment, now_ms),
        started_at: commitment.map(|commitment| timestamp(commitment.started_ms)),
        // A pending end is not an end yet: EndedAt appears once it has happened.
        ended_at: commitment
            .and_then(|commitment| commitment.ended_ms)
            .filter(|ended_ms| *ended_ms <= now_ms)
            .map(timestamp),
        earliest_allowed_end_at: commitment.map(|commitment| timestamp(commitment.earliest_end_ms)),
    }
}

/// DescribeAccountSettings' MinimumThroughputBillingCommitment for `account`.
pub fn commitment(node: &Node, account: &str) -> MinimumThroughputBillingCommitmentOutput {
    output(node.account(account).commitment.as_ref(), now_ms())
}

/// Whether `account` has On-demand Advantage now (its commitment is not DISABLED).
pub fn has_advantage(node: &Node, account: &str) -> bool {
    status_at(node.account(account).commitment.as_ref(), now_ms()) != Status::Disabled
}

/// Consumers a stream of `account` may have registered.
pub fn consumers_per_stream_max(node: &Node, account: &str) -> u32 {
    if has_advantage(node, account) {
        limits::CONSUMERS_PER_STREAM_ADVANTAGE_MAX
    } else {
        limits::CONSUMERS_PER_STREAM_MAX
    }
}

/// UpdateAccountSettings (see the module docs for the state table).
pub async fn update_account_settings(
    node: &Node,
    caller: &Caller,
    input: UpdateAccountSettingsInput,
) -> Result<UpdateAccountSettingsOutput, Error> {
    // The model validated Status as ENABLED or DISABLED.
    let enable = input
        .minimum_throughput_billing_commitment
        .and_then(|commitment| commitment.status)
        .as_deref()
        == Some("ENABLED");
    let _control = node.control().await;
    let now = now_ms();
    let mut account = node.account(&caller.account);
    let current = account.commitment;
    let minimum_ms = node.config.commitment_minimum.as_millis() as u64;
    let next = match (status_at(current.as_ref(), now), enable) {
        (Status::Disabled, true) => Some(CommitmentMeta {
            started_ms: now,
            earliest_end_ms: now.saturating_add(minimum_ms),
            ended_ms: None,
        }),
        (Status::EnabledUntilEarliestAllowedEnd, true) => {
            current.map(|commitment| CommitmentMeta {
                ended_ms: None,
                ..commitment
            })
        }
        (Status::Enabled, false) => current.map(|commitment| CommitmentMeta {
            ended_ms: Some(now.max(commitment.earliest_end_ms)),
            ..commitment
        }),
        _ => current,
    };
    if next != current {
        account.commitment = next;
        node.update_account(&caller.account, account).await?;
    }
    Ok(UpdateAccountSettingsOutput {
        minimum_throughput_billing_commitment: Some(output(next.as_ref(), now)),
    })
}

/// Shards that take `mibps` of writes.
fn shards_for(mibps: u32) -> u32 {
    mibps.div_ceil(SHARD_WRITE_MIBPS)
}

/// The warm throughput target in force for `stream` (ON_DEMAND, account with Advantage).
fn target_in_force(node: &Node, stream: &Stream, state: &StreamState) -> Option<u32> {
    let target = state.warm_throughput_mibps?;
    (state.mode == StreamMode::OnDemand && has_advantage(node, &stream.account)).then_some(target)
}

/// DescribeStreamSummary's WarmThroughput: shown while a target is in force.
pub fn warm_throughput(
    node: &Node,
    stream: &Stream,
    state: &StreamState,
) -> Option<WarmThroughputObject> {
    let target = target_in_force(node, stream, state)?;
    Some(WarmThroughputObject {
        target_mi_bps: Some(target),
        current_mi_bps: Some(state.open_shards().count() as u32 * SHARD_WRITE_MIBPS),
    })
}

/// The fewest open shards the ON_DEMAND scaler may merge `stream` down to for its warm
/// throughput (0 when none is in force).
pub fn warm_shards_min(node: &Node, stream: &Stream, state: &StreamState) -> u32 {
    target_in_force(node, stream, state).map_or(0, shards_for)
}

/// UpdateStreamWarmThroughput: sets the target and pre-splits the stream to it.
pub async fn update_warm_throughput(
    node: &Node,
    caller: &Caller,
    input: UpdateStreamWarmThroughputInput,
) -> Result<UpdateStreamWarmThroughputOutput, Error> {
    let stream = resolve_stream(
        node,
        caller,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    // The model validated WarmThroughputMiBps ≥ 0.
    let target = u32::try_from(input.warm_throughput_mibps.unwrap_or(0)).unwrap_or(0);
    let _control = node.control().await;
    check_active(node, &stream)?;
    let state = stream.state();
    if state.mode != StreamMode::OnDemand {
        return Err(Error::validation_message(format!(
            "UpdateStreamWarmThroughput is not supported for stream {} under account {} because \
             it is in PROVISIONED capacity mode.",
            stream.name, stream.account
        )));
    }
    if !has_advantage(node, &stream.account) {
        return Err(Error::invalid_argument(format!(
            "Warm throughput needs On-demand Advantage: account {} has not enabled \
             MinimumThroughputBillingCommitment (see UpdateAccountSettings).",
            stream.account
        )));
    }
    let needed = shards_for(target);
    if target > limits::WARM_THROUGHPUT_MIBPS_MAX || needed > limits::SHARDS_PER_STREAM_MAX {
        return Err(Error::limit_exceeded(format!(
            "Warm throughput of {target} MiB/s for stream {} under account {} exceeds the \
             limit of {} MiB/s ({} open shards per stream).",
            stream.name,
            stream.account,
            limits::WARM_THROUGHPUT_MIBPS_MAX
                .min(limits::SHARDS_PER_STREAM_MAX * SHARD_WRITE_MIBPS),
            limits::SHARDS_PER_STREAM_MAX
        )));
    }
    let open: Vec<OpenShard> = state
        .open_shards()
        .map(|shard| OpenShard {
            ordinal: shard.meta.ordinal,
            starting_hash_key: shard.meta.starting_hash_key,
            ending_hash_key: shard.meta.ending_hash_key,
        })
        .collect();
    let steps = reshard::split_widest(&open, state.next_shard_ordinal, needed);
    let changed = !steps.is_empty() || state.warm_throughput_mibps != Some(target);
    if !steps.is_empty() {
        control::check_shard_quota(node, caller, needed - open.len() as u32)?;
        node.reshard(&stream, &steps).await?;
    }
    if state.warm_throughput_mibps != Some(target) {
        node.update_stream(&stream, |state| state.warm_throughput_mibps = Some(target))
            .await?;
    }
    if !steps.is_empty() {
        stream.mark_resharded(node.config.update_window, &state);
    } else if changed {
        stream.mark_updating(node.config.update_window);
    }
    let open_now = stream.state().open_shards().count() as u32;
    Ok(UpdateStreamWarmThroughputOutput {
        stream_arn: Some(stream.arn.clone()),
        stream_name: Some(stream.name.clone()),
        warm_throughput: Some(WarmThroughputObject {
            target_mi_bps: Some(target),
            current_mi_bps: Some(open_now * SHARD_WRITE_MIBPS),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: u64 = 3_600_000;

    #[test]
    fn a_commitment_ends_at_its_earliest_end_when_disabled_early() {
        let enabled = CommitmentMeta {
            started_ms: 1_000,
            earliest_end_ms: 1_000 + 24 * HOUR_MS,
            ended_ms: None,
        };
        assert_eq!(status_at(None, 5), Status::Disabled);
        assert_eq!(status_at(Some(&enabled), 2_000), Status::Enabled);
        let pending = CommitmentMeta {
            ended_ms: Some(enabled.earliest_end_ms),
            ..enabled
        };
        assert_eq!(
            status_at(Some(&pending), 2_000),
            Status::EnabledUntilEarliestAllowedEnd
        );
        let shown = output(Some(&pending), 2_000);
        assert_eq!(shown.ended_at, None, "not ended yet");
        assert_eq!(
            shown.earliest_allowed_end_at,
            Some(timestamp(enabled.earliest_end_ms))
        );
        let later = enabled.earliest_end_ms;
        assert_eq!(status_at(Some(&pending), later), Status::Disabled);
        assert_eq!(
            output(Some(&pending), later).ended_at,
            Some(timestamp(later))
        );
    }

    #[test]
    fn a_shard_takes_one_mib_per_second() {
        assert_eq!(SHARD_WRITE_MIBPS, 1);
        assert_eq!(shards_for(0), 0);
        assert_eq!(shards_for(10), 10);
    }
}
