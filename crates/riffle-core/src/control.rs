//! Control-plane rules: the checks AWS makes before a stream changes, with AWS's texts.
//!
//! These functions work on domain values; `service.rs` maps wire shapes onto them.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::meta::{RecordDistribution, StreamMode};
use crate::node::{now_ms, Node, Shard, Stream, StreamSettings, StreamState};
use crate::policy::{Decision, Principal, ResourcePolicy};
use crate::reshard::{self, Step};
use crate::Error;
use riffle_proto::limits;

/// Who is calling, from the request's credentials.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: String,
    pub region: String,
    /// The caller's IAM principal: `arn:aws:iam::ACCOUNT:user/NAME` for a key of the
    /// credentials file that names a principal, else `arn:aws:iam::ACCOUNT:root`.
    pub principal: String,
    /// The operation being called (set by `service::call`), for resource policies.
    pub operation: &'static str,
}

impl Caller {
    /// The caller's principal as policies name it.
    pub fn principal_arn(&self) -> String {
        self.principal.clone()
    }

    /// The IAM action of the current operation: `kinesis:PutRecord`.
    fn action(&self) -> String {
        format!("kinesis:{}", self.operation)
    }
}

/// Whether `caller` may use a resource of `owner_account` with ARN `arn` under `policy`: a
/// caller of another account needs an Allow, anyone is stopped by an explicit Deny (see
/// `policy.rs`). AccessDeniedException otherwise, with IAM's texts.
pub(crate) fn authorize(
    caller: &Caller,
    owner_account: &str,
    arn: &str,
    policy: Option<&ResourcePolicy>,
) -> Result<(), Error> {
    let cross_account = caller.account != owner_account;
    if policy.is_none() && !cross_account {
        return Ok(()); // the hot path: own resource, no policy
    }
    // The owner may always read, replace or remove the policy itself: a Deny it wrote by
    // mistake must not lock it out of its own resource.
    let managing_policy = matches!(
        caller.operation,
        "PutResourcePolicy" | "GetResourcePolicy" | "DeleteResourcePolicy"
    );
    if managing_policy && !cross_account {
        return Ok(());
    }
    let principal_arn = caller.principal_arn();
    let action = caller.action();
    let principal = Principal {
        account: &caller.account,
        arn: &principal_arn,
    };
    let decision = policy.map_or(Decision::Silent, |policy| {
        policy.decide(&principal, &action, arn)
    });
    match decision {
        Decision::Deny => Err(Error::access_denied(format!(
            "User: {principal_arn} is not authorized to perform: {action} on resource: {arn} \
             with an explicit deny in a resource-based policy"
        ))),
        Decision::Silent if cross_account => Err(Error::access_denied(format!(
            "User: {principal_arn} is not authorized to perform: {action} on resource: {arn} \
             because no resource-based policy allows the {action} action"
        ))),
        _ => Ok(()),
    }
}

/// Finds a stream by name or ARN, as every stream operation allows either.
pub fn resolve_stream(
    node: &Node,
    caller: &Caller,
    stream_name: Option<&str>,
    stream_arn: Option<&str>,
) -> Result<Arc<Stream>, Error> {
    let (account, name) = match (stream_name, stream_arn) {
        (Some(name), None) => (caller.account.clone(), name.to_owned()),
        (None, Some(arn)) => arn_stream(caller, arn)?,
        (Some(name), Some(arn)) => {
            let (account, from_arn) = arn_stream(caller, arn)?;
            if from_arn != name {
                return Err(Error::invalid_argument(format!(
                    "StreamARN {arn} and StreamName {name} do not name the same stream."
                )));
            }
            (account, from_arn)
        }
        (None, None) => {
            return Err(Error::invalid_argument(
                "Either StreamName or StreamARN must be provided.".to_owned(),
            ))
        }
    };
    let stream = node
        .stream(&account, &name)
        .ok_or_else(|| Error::stream_not_found(&name, &account))?;
    authorize_stream(caller, &stream)?;
    Ok(stream)
}

/// Resource policy check for an operation on `stream` (see [`authorize`]).
pub(crate) fn authorize_stream(caller: &Caller, stream: &Stream) -> Result<(), Error> {
    let state = stream.state();
    authorize(
        caller,
        &stream.account,
        &stream.arn,
        state.policy.as_deref(),
    )
}

/// The account and stream name of a stream ARN in the node's region. Only an ARN reaches
/// another account's stream, and then only as its resource policy allows.
fn arn_stream(caller: &Caller, arn: &str) -> Result<(String, String), Error> {
    let parsed = riffle_proto::arn::parse_stream_arn(arn)
        .ok_or_else(|| Error::invalid_argument(format!("Invalid StreamARN {arn}.")))?;
    if parsed.region != caller.region {
        return Err(Error::stream_not_found(&parsed.name, &parsed.account));
    }
    Ok((parsed.account, parsed.name))
}

/// CreateStream after wire validation.
pub async fn create_stream(
    node: &Node,
    caller: &Caller,
    name: &str,
    shard_count: Option<u32>,
    mode: StreamMode,
    settings: StreamSettings,
    tags: BTreeMap<String, String>,
) -> Result<(), Error> {
    let shard_count = match (mode, shard_count) {
        (StreamMode::OnDemand, Some(_)) => return Err(Error::shard_count_not_expected_on_demand()),
        (StreamMode::OnDemand, None) => limits::ON_DEMAND_INITIAL_SHARDS,
        (StreamMode::Provisioned, Some(count)) => count,
        (StreamMode::Provisioned, None) => {
            return Err(Error::invalid_argument(
                "ShardCount is required for PROVISIONED streams.".to_owned(),
            ))
        }
    };
    if mode == StreamMode::Provisioned && settings.record_distribution == RecordDistribution::Auto {
        return Err(auto_needs_on_demand());
    }
    check_tags(
        tags.iter().flat_map(|(key, value)| [key, value]),
        true,
        name,
        &caller.account,
    )?;
    let _control = node.control().await;
    if node.stream(&caller.account, name).is_some() {
        return Err(Error::stream_exists(name, &caller.account));
    }
    check_shard_quota(node, caller, shard_count)?;
    if mode == StreamMode::OnDemand {
        check_on_demand_quota(node, caller)?;
    }
    node.create_stream(&caller.account, name, mode, shard_count, settings, tags)
        .await?;
    Ok(())
}

/// DeleteStream. A stream with registered consumers is refused unless
/// `enforce_consumer_deletion`; then the consumers go too and their subscriptions end.
pub async fn delete_stream(
    node: &Node,
    stream: &Arc<Stream>,
    enforce_consumer_deletion: bool,
) -> Result<(), Error> {
    let _control = node.control().await;
    // Another DeleteStream may have won the race for the lock.
    let current = node.stream(&stream.account, &stream.name);
    if !current.is_some_and(|current| Arc::ptr_eq(&current, stream)) {
        return Err(Error::stream_not_found(&stream.name, &stream.account));
    }
    // As on AWS, queues must be deleted first, EnforceConsumerDeletion or not.
    if crate::queues::stream_has_queues(node, stream) {
        return Err(Error::resource_in_use(format!(
            "Stream {} under account {} has queues. Delete every queue on the stream with \
             DeleteQueue first.",
            stream.name, stream.account
        )));
    }
    let consumers = stream.state().consumers.clone();
    if !consumers.is_empty() && !enforce_consumer_deletion {
        return Err(Error::resource_in_use(format!(
            "Stream {} under account {} has registered consumers. Deregister them first, or \
             set EnforceConsumerDeletion.",
            stream.name, stream.account
        )));
    }
    node.delete_stream(stream).await?;
    for consumer in &consumers {
        node.subscriptions
            .end_consumer(&crate::consumers::consumer_arn(stream, consumer));
    }
    Ok(())
}

/// Increase/DecreaseStreamRetentionPeriod.
pub async fn change_retention(
    node: &Node,
    stream: &Arc<Stream>,
    hours: u32,
    increase: bool,
) -> Result<(), Error> {
    if hours < limits::RETENTION_HOURS_MIN {
        return Err(Error::retention_too_short(i64::from(hours)));
    }
    if hours > limits::RETENTION_HOURS_MAX {
        return Err(Error::retention_too_long(i64::from(hours)));
    }
    let _control = node.control().await;
    let current = stream.state().retention_hours;
    if increase && hours < current {
        return Err(Error::retention_shorter_than_current(
            i64::from(hours),
            &stream.name,
            i64::from(current),
        ));
    }
    if !increase && hours > current {
        return Err(Error::retention_longer_than_current(
            i64::from(hours),
            &stream.name,
            i64::from(current),
        ));
    }
    node.update_stream(stream, |state| state.retention_hours = hours)
        .await
}

/// UpdateMaxRecordSize: the largest record (data plus partition key) the stream takes from
/// now on. The model bounds `kib` to 1024–10240 (checked when the request is decoded); the
/// stream must be ACTIVE.
pub async fn update_max_record_size(
    node: &Node,
    stream: &Arc<Stream>,
    kib: u32,
) -> Result<(), Error> {
    if !(limits::RECORD_SIZE_KIB_MIN..=limits::RECORD_SIZE_KIB_MAX).contains(&kib) {
        return Err(Error::invalid_argument(format!(
            "MaxRecordSizeInKiB must be between {} and {}.",
            limits::RECORD_SIZE_KIB_MIN,
            limits::RECORD_SIZE_KIB_MAX
        )));
    }
    let _control = node.control().await;
    check_active(node, stream)?;
    node.update_stream(stream, |state| state.max_record_size_kib = kib)
        .await
}

/// UpdateStreamRecordDistributionStrategy: how new records are placed on the stream's shards
/// from now on (records already stored stay where they are). AUTO is for ON_DEMAND streams
/// only (InvalidArgumentException otherwise); USER_PARTITION_KEY, what every PROVISIONED stream
/// does anyway, is accepted on both. The stream must be ACTIVE, as for the other stream
/// settings: CREATING, UPDATING (a reshard or a mode change under way) and DELETING are
/// ResourceInUseException. The change is not an update AWS shows as UPDATING: it takes effect
/// for the next put.
pub async fn update_record_distribution(
    node: &Node,
    stream: &Arc<Stream>,
    distribution: RecordDistribution,
) -> Result<(), Error> {
    let _control = node.control().await;
    check_active(node, stream)?;
    let state = stream.state();
    if distribution == RecordDistribution::Auto && state.mode != StreamMode::OnDemand {
        return Err(auto_needs_on_demand());
    }
    if state.record_distribution == distribution {
        return Ok(());
    }
    node.update_stream(stream, |state| state.record_distribution = distribution)
        .await
}

/// AUTO record distribution asked of a PROVISIONED stream.
fn auto_needs_on_demand() -> Error {
    Error::invalid_argument(
        "The AUTO record distribution strategy is only supported for streams in ON_DEMAND \
         capacity mode."
            .to_owned(),
    )
}

/// Tag keys and values may hold Unicode letters and digits, spaces and `_ . / = + - @`. Other
/// white space (tab, newline) is refused like any other character; `%` passes the first check
/// and fails a second one with its own text, as production does (recorded by kinesalite).
/// `adding` and the stream name pick the wording of that second text.
pub(crate) fn check_tags<'a>(
    texts: impl Iterator<Item = &'a String> + Clone,
    adding: bool,
    stream: &str,
    account: &str,
) -> Result<(), Error> {
    let allowed = |c: char| c.is_alphanumeric() || " _./=+-@%".contains(c);
    if !texts.clone().all(|text| text.chars().all(allowed)) {
        return Err(Error::tags_invalid_characters());
    }
    if texts.into_iter().any(|text| text.contains('%')) {
        return Err(Error::tags_illegal_characters(adding, stream, account));
    }
    Ok(())
}

pub async fn add_tags(
    node: &Node,
    stream: &Arc<Stream>,
    tags: BTreeMap<String, String>,
) -> Result<(), Error> {
    check_tags(
        tags.iter().flat_map(|(key, value)| [key, value]),
        true,
        &stream.name,
        &stream.account,
    )?;
    let _control = node.control().await;
    let state = stream.state();
    let added = tags
        .keys()
        .filter(|key| !state.tags.contains_key(*key))
        .count();
    if state.tags.len() + added > limits::TAGS_PER_RESOURCE_MAX {
        return Err(Error::too_many_tags(
            &stream.name,
            &stream.account,
            limits::TAGS_PER_RESOURCE_MAX,
        ));
    }
    node.update_stream(stream, |state| state.tags.extend(tags))
        .await
}

pub async fn remove_tags(node: &Node, stream: &Arc<Stream>, keys: &[String]) -> Result<(), Error> {
    check_tags(keys.iter(), false, &stream.name, &stream.account)?;
    let _control = node.control().await;
    node.update_stream(stream, |state| {
        for key in keys {
            state.tags.remove(key);
        }
    })
    .await
}

// ----- Resharding and capacity modes -----

/// The shard a SplitShard / MergeShards argument names, with AWS's errors: an argument that
/// is no shard id at all, or the id of a shard the stream does not have. Unlike
/// GetShardIterator ("Shard sid in stream S under account A does not exist"), production
/// answers both with "Could not find shard X in stream S under account A.", naming a missing
/// shard by its full id (recorded by kinesalite: `shardId-5` → `shardId-000000000005`).
fn named_shard(stream: &Stream, state: &StreamState, argument: &str) -> Result<Arc<Shard>, Error> {
    let ordinal = riffle_proto::shard_id::parse_shard_id(argument)
        .ok_or_else(|| Error::shard_unparseable(argument, &stream.name, &stream.account))?;
    state.shard(ordinal).cloned().ok_or_else(|| {
        Error::shard_unparseable(
            &riffle_proto::shard_id::shard_id(ordinal),
            &stream.name,
            &stream.account,
        )
    })
}

/// A change needs the stream still to exist once the control lock is held (a DeleteStream,
/// and perhaps a CreateStream of the same name, may have won the race for the lock) and to be
/// ACTIVE, not UPDATING.
pub(crate) fn check_active(node: &Node, stream: &Arc<Stream>) -> Result<(), Error> {
    let current = node.stream(&stream.account, &stream.name);
    if !current.is_some_and(|current| Arc::ptr_eq(&current, stream)) {
        return Err(Error::stream_not_found(&stream.name, &stream.account));
    }
    let status = stream.status();
    if status != "ACTIVE" {
        return Err(Error::stream_not_active(
            &stream.name,
            &stream.account,
            status,
        ));
    }
    Ok(())
}

/// Resharding needs the stream ACTIVE and in PROVISIONED mode.
fn check_reshardable(node: &Node, stream: &Arc<Stream>, operation: &str) -> Result<(), Error> {
    check_active(node, stream)?;
    if stream.state().mode == StreamMode::OnDemand {
        return Err(Error::validation_message(format!(
            "{operation} is not supported for stream {} under account {} because it is in \
             ON_DEMAND capacity mode.",
            stream.name, stream.account
        )));
    }
    Ok(())
}

fn already_closed(stream: &Stream, shard: &Shard) -> Error {
    Error::invalid_argument(format!(
        "Shard {} in stream {} under account {} has already been merged or split, and thus is \
         not eligible for merging or splitting.",
        shard.id(),
        stream.name,
        stream.account
    ))
}

/// The account's shard quota must hold `additional` more open shards.
pub(crate) fn check_shard_quota(
    node: &Node,
    caller: &Caller,
    additional: u32,
) -> Result<(), Error> {
    let open = node.open_shard_count(&caller.account);
    if open.saturating_add(additional) > node.config.shard_limit {
        return Err(Error::shard_limit_exceeded(
            &caller.account,
            &caller.region,
            open,
            node.config.shard_limit,
            additional,
        ));
    }
    Ok(())
}

/// SplitShard: `[S, E]` becomes `[S, K - 1]` and `[K, E]`, with `S + 1 < K < E` as AWS demands.
pub async fn split_shard(
    node: &Node,
    caller: &Caller,
    stream: &Arc<Stream>,
    shard_to_split: &str,
    new_starting_hash_key: &str,
) -> Result<(), Error> {
    let _control = node.control().await;
    check_reshardable(node, stream, "SplitShard")?;
    let state = stream.state();
    let shard = named_shard(stream, &state, shard_to_split)?;
    if !shard.is_open() {
        return Err(already_closed(stream, &shard));
    }
    let (start, end) = (shard.meta.starting_hash_key, shard.meta.ending_hash_key);
    let key = new_starting_hash_key
        .parse::<u128>()
        .ok()
        .filter(|key| *key > start.saturating_add(1) && *key < end)
        .ok_or_else(|| {
            Error::split_hash_key_invalid(
                new_starting_hash_key,
                &shard.id(),
                &stream.name,
                &stream.account,
                start,
                end,
            )
        })?;
    check_shard_quota(node, caller, 1)?;
    node.reshard(
        stream,
        &[Step::Split {
            parent: shard.meta.ordinal,
            key,
        }],
    )
    .await?;
    stream.mark_resharded(node.config.update_window, &state);
    Ok(())
}

/// MergeShards: `shard_to_merge` must be the lower of two adjacent open shards.
pub async fn merge_shards(
    node: &Node,
    stream: &Arc<Stream>,
    shard_to_merge: &str,
    adjacent_shard_to_merge: &str,
) -> Result<(), Error> {
    let _control = node.control().await;
    check_reshardable(node, stream, "MergeShards")?;
    let state = stream.state();
    let lower = named_shard(stream, &state, shard_to_merge)?;
    let upper = named_shard(stream, &state, adjacent_shard_to_merge)?;
    for shard in [&lower, &upper] {
        if !shard.is_open() {
            return Err(already_closed(stream, shard));
        }
    }
    if lower.meta.ending_hash_key.checked_add(1) != Some(upper.meta.starting_hash_key) {
        return Err(Error::shards_not_adjacent(
            &lower.id(),
            &upper.id(),
            &stream.name,
            &stream.account,
        ));
    }
    node.reshard(
        stream,
        &[Step::Merge {
            lower: lower.meta.ordinal,
            upper: upper.meta.ordinal,
        }],
    )
    .await?;
    stream.mark_resharded(node.config.update_window, &state);
    Ok(())
}

/// UpdateShardCount with UNIFORM_SCALING: returns the open shard count before the change.
pub async fn update_shard_count(
    node: &Node,
    caller: &Caller,
    stream: &Arc<Stream>,
    target: u32,
) -> Result<u32, Error> {
    let _control = node.control().await;
    check_reshardable(node, stream, "UpdateShardCount")?;
    let state = stream.state();
    let open: Vec<reshard::OpenShard> = state
        .open_shards()
        .map(|shard| reshard::OpenShard {
            ordinal: shard.meta.ordinal,
            starting_hash_key: shard.meta.starting_hash_key,
            ending_hash_key: shard.meta.ending_hash_key,
        })
        .collect();
    let current = open.len() as u32;
    let counts = format!("Current open shard count: {current}, Target shard count: {target}");
    if target > limits::SHARDS_PER_STREAM_MAX {
        return Err(Error::limit_exceeded(format!(
            "Target shard count or number of open shards cannot be greater than {}. {counts}",
            limits::SHARDS_PER_STREAM_MAX
        )));
    }
    if target > current.saturating_mul(2) {
        return Err(Error::limit_exceeded(format!(
            "UpdateShardCount cannot scale up over double your current open shard count. {counts}"
        )));
    }
    if target.saturating_mul(2) < current {
        return Err(Error::limit_exceeded(format!(
            "UpdateShardCount cannot scale down below half your current open shard count. {counts}"
        )));
    }
    if target > current {
        check_shard_quota(node, caller, target - current)?;
    }
    let recent = stream.record_scaling(now_ms());
    if recent > limits::UPDATE_SHARD_COUNT_PER_DAY_MAX {
        stream.forget_last_scaling();
        return Err(Error::limit_exceeded(format!(
            "Exceeded the limit of {} UpdateShardCount calls per rolling 24 hours for stream {} \
             under account {}.",
            limits::UPDATE_SHARD_COUNT_PER_DAY_MAX,
            stream.name,
            stream.account
        )));
    }
    let steps = reshard::uniform(&open, state.next_shard_ordinal, target);
    if let Err(error) = node.reshard(stream, &steps).await {
        stream.forget_last_scaling();
        return Err(error);
    }
    stream.mark_resharded(node.config.update_window, &state);
    Ok(current)
}

/// UpdateStreamMode: PROVISIONED ⇄ ON_DEMAND. The shards stay as they are; in ON_DEMAND mode
/// the node's scaler sizes them from then on.
pub async fn update_stream_mode(
    node: &Node,
    caller: &Caller,
    stream: &Arc<Stream>,
    mode: StreamMode,
) -> Result<(), Error> {
    let _control = node.control().await;
    check_active(node, stream)?;
    let current = stream.state().mode;
    if current == mode {
        return Ok(());
    }
    if mode == StreamMode::OnDemand {
        check_on_demand_quota(node, caller)?;
    } else if stream.state().record_distribution == RecordDistribution::Auto {
        // PROVISIONED streams route by key only; switching under AUTO would quietly make every
        // keyless producer fail, so the caller switches the strategy back first.
        return Err(Error::invalid_argument(format!(
            "Stream {} under account {} uses the AUTO record distribution strategy, which \
             PROVISIONED capacity mode does not support. Set USER_PARTITION_KEY with \
             UpdateStreamRecordDistributionStrategy first.",
            stream.name, stream.account
        )));
    } else if crate::queues::stream_has_queues(node, stream) {
        return Err(Error::resource_in_use(format!(
            "Stream {} under account {} has queues, which need on-demand capacity mode. \
             Delete them with DeleteQueue first.",
            stream.name, stream.account
        )));
    }
    node.update_stream(stream, |state| state.mode = mode)
        .await?;
    stream.mark_updating(node.config.update_window);
    Ok(())
}

/// The account may have one more ON_DEMAND stream.
fn check_on_demand_quota(node: &Node, caller: &Caller) -> Result<(), Error> {
    let on_demand = node
        .streams_of(&caller.account)
        .iter()
        .filter(|stream| stream.state().mode == StreamMode::OnDemand)
        .count() as u32;
    if on_demand >= node.config.on_demand_stream_limit {
        return Err(Error::limit_exceeded(format!(
            "This request would exceed the on-demand stream limit for the account {} in {}. Limit: {}.",
            caller.account, caller.region, node.config.on_demand_stream_limit
        )));
    }
    Ok(())
}

/// Which shards a ListShards `ShardSelection` selects.
#[derive(Debug, Clone)]
pub enum ShardSelection {
    /// All shards in retention (the default).
    FromTrimHorizon,
    /// Shards open at the trim horizon.
    AtTrimHorizon,
    /// Open shards only.
    AtLatest,
    /// Shards open at the time.
    AtTimestamp(u64),
    /// Shards open at or after the time (closed ones that ended at or after it, plus all open).
    FromTimestamp(u64),
    /// Shards whose id sorts after the given ordinal.
    AfterShard(u32),
}

impl ShardSelection {
    /// The selection as text, carried inside ListShards `NextToken`s so that later pages keep
    /// the filter of the first (AWS refuses a `ShardFilter` next to a `NextToken`).
    pub fn to_token_text(&self) -> String {
        match self {
            ShardSelection::FromTrimHorizon => "FROM_TRIM_HORIZON".to_owned(),
            ShardSelection::AtTrimHorizon => "AT_TRIM_HORIZON".to_owned(),
            ShardSelection::AtLatest => "AT_LATEST".to_owned(),
            ShardSelection::AtTimestamp(at_ms) => format!("AT_TIMESTAMP {at_ms}"),
            ShardSelection::FromTimestamp(at_ms) => format!("FROM_TIMESTAMP {at_ms}"),
            ShardSelection::AfterShard(ordinal) => format!("AFTER_SHARD_ID {ordinal}"),
        }
    }

    /// Reads [`ShardSelection::to_token_text`]; `None` for anything else.
    pub fn from_token_text(text: &str) -> Option<ShardSelection> {
        let (kind, argument) = text.split_once(' ').unwrap_or((text, ""));
        Some(match (kind, argument) {
            ("FROM_TRIM_HORIZON", "") => ShardSelection::FromTrimHorizon,
            ("AT_TRIM_HORIZON", "") => ShardSelection::AtTrimHorizon,
            ("AT_LATEST", "") => ShardSelection::AtLatest,
            ("AT_TIMESTAMP", at_ms) => ShardSelection::AtTimestamp(at_ms.parse().ok()?),
            ("FROM_TIMESTAMP", at_ms) => ShardSelection::FromTimestamp(at_ms.parse().ok()?),
            ("AFTER_SHARD_ID", ordinal) => ShardSelection::AfterShard(ordinal.parse().ok()?),
            _ => return None,
        })
    }
}

/// The shards of `state` a filter selects, in ordinal order.
pub fn filter_shards(state: &StreamState, filter: &ShardSelection) -> Vec<Arc<Shard>> {
    let retention_ms = u64::from(state.retention_hours) * 3_600_000;
    let trim_horizon_ms = now_ms().saturating_sub(retention_ms);
    let open_at = |shard: &Shard, at_ms: u64| {
        shard.meta.created_ms <= at_ms
            && shard
                .meta
                .closed
                .is_none_or(|closed| closed.closed_ms > at_ms)
    };
    state
        .shards
        .iter()
        .filter(|shard| match filter {
            ShardSelection::FromTrimHorizon => true,
            ShardSelection::AtTrimHorizon => open_at(shard, trim_horizon_ms.max(earliest(state))),
            ShardSelection::AtLatest => shard.is_open(),
            ShardSelection::AtTimestamp(at_ms) => open_at(shard, (*at_ms).max(earliest(state))),
            ShardSelection::FromTimestamp(at_ms) => {
                let at_ms = (*at_ms).max(trim_horizon_ms);
                shard
                    .meta
                    .closed
                    .is_none_or(|closed| closed.closed_ms >= at_ms)
            }
            ShardSelection::AfterShard(ordinal) => shard.meta.ordinal > *ordinal,
        })
        .cloned()
        .collect()
}

/// The creation time of the stream's oldest listed shard: times before it behave as it.
fn earliest(state: &StreamState) -> u64 {
    state
        .shards
        .iter()
        .map(|shard| shard.meta.created_ms)
        .min()
        .unwrap_or(0)
}

/// The stream a record of `size_bytes` (data + partition key) may be written to.
pub fn check_record_size(state: &StreamState, size_bytes: usize) -> Result<(), Error> {
    let max = state.max_record_size_kib as usize * 1024;
    if size_bytes > max {
        return Err(Error::invalid_argument(format!(
            "Record size {size_bytes} bytes exceeds the stream's maximum record size of {max} bytes (data plus partition key)."
        )));
    }
    Ok(())
}

impl Caller {
    /// The caller of `account` in `region`, as the IAM user `principal_name`, or as the
    /// account's root without one.
    pub fn new(account: String, region: String, principal_name: Option<&str>) -> Caller {
        let principal = match principal_name {
            Some(name) => format!("arn:aws:iam::{account}:user/{name}"),
            None => format!("arn:aws:iam::{account}:root"),
        };
        Caller {
            account,
            region,
            principal,
            operation: "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_name_an_iam_principal() {
        let user = Caller::new("123456789012".into(), "eu-west-1".into(), Some("alice"));
        assert_eq!(user.principal, "arn:aws:iam::123456789012:user/alice");
        let root = Caller::new("123456789012".into(), "eu-west-1".into(), None);
        assert_eq!(root.principal, "arn:aws:iam::123456789012:root");
    }

    #[test]
    fn shard_selections_survive_a_next_token() {
        let selections = [
            ShardSelection::FromTrimHorizon,
            ShardSelection::AtTrimHorizon,
            ShardSelection::AtLatest,
            ShardSelection::AtTimestamp(1_700_000_000_123),
            ShardSelection::FromTimestamp(0),
            ShardSelection::AfterShard(u32::MAX),
        ];
        for selection in selections {
            let text = selection.to_token_text();
            let back = ShardSelection::from_token_text(&text)
                .unwrap_or_else(|| panic!("{text:?} does not parse back"));
            assert_eq!(back.to_token_text(), text);
        }
        for bad in [
            "",
            "AT_LATEST 5",
            "AT_TIMESTAMP",
            "AT_TIMESTAMP x",
            "LATEST",
        ] {
            assert!(ShardSelection::from_token_text(bad).is_none(), "{bad:?}");
        }
    }
}
