//! Streams and shards: create, delete, describe and list them, their retention, tags,
//! record size and distribution, resharding, capacity mode and encryption (the rules are in
//! `control.rs` and `encryption.rs`; these turn wire shapes into calls of them).

use super::*;

pub(super) async fn create_stream(
    node: &Node,
    caller: &Caller,
    input: CreateStreamInput,
) -> Result<(), Error> {
    let mode = match input
        .stream_mode_details
        .as_ref()
        .and_then(|details| details.stream_mode.as_deref())
    {
        Some("ON_DEMAND") => StreamMode::OnDemand,
        Some(_) => StreamMode::Provisioned,
        // Without either, AWS (and kinesis-mock) create an on-demand-sized stream.
        None if input.shard_count.is_none() => StreamMode::OnDemand,
        None => StreamMode::Provisioned,
    };
    let shard_count = input
        .shard_count
        .map(|count| u32::try_from(count).unwrap_or(0));
    let settings = StreamSettings {
        max_record_size_kib: input
            .max_record_size_kib
            .map_or(limits::RECORD_SIZE_KIB_DEFAULT, |kib| {
                u32::try_from(kib).unwrap_or(0)
            }),
        record_distribution: record_distribution(input.distribution_strategy()),
    };
    let tags: BTreeMap<String, String> = input.tags.unwrap_or_default();
    control::create_stream(
        node,
        caller,
        input.stream_name.as_deref().unwrap_or_default(),
        shard_count,
        mode,
        settings,
        tags,
    )
    .await
}

/// The domain's record distribution for a validated wire value; absent is AWS's default.
pub(super) fn record_distribution(
    strategy: Option<RecordDistributionStrategy>,
) -> RecordDistribution {
    match strategy {
        Some(RecordDistributionStrategy::Auto) => RecordDistribution::Auto,
        Some(RecordDistributionStrategy::UserPartitionKey) | None => {
            RecordDistribution::PartitionKey
        }
    }
}

pub(super) async fn delete_stream(
    node: &Node,
    caller: &Caller,
    input: DeleteStreamInput,
) -> Result<(), Error> {
    let stream = stream_of(node, caller, &input.stream_name, &input.stream_arn)?;
    // AWS: "A stream cannot be deleted while it has active channels."
    if channels::stream_has_channels(node, &stream.account, &stream.name, stream.created_ms) {
        return Err(Error::resource_in_use(format!(
            "Stream {} under account {} has channels; delete them first (ListChannels with a \
             StreamFilter finds them).",
            stream.name, stream.account
        )));
    }
    control::delete_stream(node, &stream, input.enforce_consumer_deletion == Some(true)).await
}

pub(super) fn shard_shape(shard: &Shard) -> riffle_proto::ops::Shard {
    riffle_proto::ops::Shard {
        shard_id: shard.id(),
        parent_shard_id: shard.meta.parent.map(riffle_proto::shard_id::shard_id),
        adjacent_parent_shard_id: shard
            .meta
            .adjacent_parent
            .map(riffle_proto::shard_id::shard_id),
        hash_key_range: HashKeyRange {
            starting_hash_key: shard.meta.starting_hash_key.to_string(),
            ending_hash_key: shard.meta.ending_hash_key.to_string(),
        },
        sequence_number_range: SequenceNumberRange {
            starting_sequence_number: data::starting_sequence_number(shard),
            ending_sequence_number: data::ending_sequence_number(shard),
        },
    }
}

/// CREATING for `--create-window-ms` after CreateStream, UPDATING for `--update-window-ms`
/// after a reshard or a mode change, else ACTIVE: what DescribeStream, DescribeStreamSummary
/// and ListStreams report, and what the resharding calls check (`control::check_reshardable`),
/// so clients see the state they are refused for.
pub(super) fn stream_status(stream: &Stream) -> StreamStatus {
    match stream.status() {
        "CREATING" => StreamStatus::Creating,
        "UPDATING" => StreamStatus::Updating,
        _ => StreamStatus::Active,
    }
}

pub(super) fn mode_details(mode: StreamMode) -> StreamModeDetails {
    StreamModeDetails {
        stream_mode: match mode {
            StreamMode::Provisioned => riffle_proto::ops::StreamMode::Provisioned,
            StreamMode::OnDemand => riffle_proto::ops::StreamMode::OnDemand,
        },
    }
}

/// DescribeStream's and DescribeStreamSummary's `EnhancedMonitoring`: one entry, its list in
/// AWS's order (`metrics::SHARD_LEVEL_METRICS`).
pub(super) fn enhanced_monitoring(metrics: &[String]) -> Vec<EnhancedMetrics> {
    vec![EnhancedMetrics {
        shard_level_metrics: metrics::named(metrics),
    }]
}

pub(super) fn describe_stream(
    node: &Node,
    caller: &Caller,
    input: DescribeStreamInput,
) -> Result<DescribeStreamOutput, Error> {
    let stream = stream_of(node, caller, &input.stream_name, &input.stream_arn)?;
    let state = stream.shown_state();
    let limit = input
        .limit
        .map(|limit| limit.max(1) as usize)
        .unwrap_or(limits::DESCRIBE_STREAM_LIMIT_DEFAULT)
        .min(limits::DESCRIBE_STREAM_LIMIT_DEFAULT);
    let after = input
        .exclusive_start_shard_id
        .as_deref()
        .and_then(riffle_proto::shard_id::parse_shard_id);
    let shards: Vec<&Arc<Shard>> = state
        .shards
        .iter()
        .filter(|shard| after.is_none_or(|after| shard.meta.ordinal > after))
        .collect();
    let has_more_shards = shards.len() > limit;
    let (encryption_type, key_id) = encryption::described(&state);
    Ok(DescribeStreamOutput {
        stream_description: StreamDescription {
            stream_name: stream.name.clone(),
            stream_arn: stream.arn.clone(),
            stream_status: stream_status(&stream),
            stream_mode_details: Some(mode_details(state.mode)),
            shards: shards
                .into_iter()
                .take(limit)
                .map(|shard| shard_shape(shard))
                .collect(),
            has_more_shards,
            retention_period_hours: state.retention_hours,
            stream_creation_timestamp: timestamp(stream.created_ms),
            enhanced_monitoring: enhanced_monitoring(&state.shard_level_metrics),
            encryption_type: Some(encryption_type),
            key_id,
        },
    })
}

pub(super) fn describe_stream_summary(
    node: &Node,
    caller: &Caller,
    input: DescribeStreamSummaryInput,
) -> Result<DescribeStreamSummaryOutput, Error> {
    let stream = stream_of(node, caller, &input.stream_name, &input.stream_arn)?;
    let state = stream.shown_state();
    let (encryption_type, key_id) = encryption::described(&state);
    Ok(DescribeStreamSummaryOutput {
        stream_description_summary: StreamDescriptionSummary {
            stream_name: stream.name.clone(),
            stream_arn: stream.arn.clone(),
            stream_status: stream_status(&stream),
            stream_mode_details: Some(mode_details(state.mode)),
            retention_period_hours: state.retention_hours,
            stream_creation_timestamp: timestamp(stream.created_ms),
            enhanced_monitoring: enhanced_monitoring(&state.shard_level_metrics),
            encryption_type: Some(encryption_type),
            key_id,
            open_shard_count: state.open_shards().count() as u32,
            consumer_count: Some(state.consumers.len() as u32),
            max_record_size_kib: Some(state.max_record_size_kib),
            stream_id: None,
            warm_throughput: advantage::warm_throughput(node, &stream, &state),
            channel_count: Some(
                node.channels()
                    .iter()
                    .filter(|channel| {
                        channel.account == stream.account
                            && channel.stream_name == stream.name
                            && channel.stream_created_ms == stream.created_ms
                    })
                    .count() as u32,
            )
            .filter(|count| *count > 0),
            // AWS: "This field is only present for streams that use the on-demand capacity mode."
            record_distribution_strategy: (state.mode == StreamMode::OnDemand).then_some(
                match state.record_distribution {
                    RecordDistribution::Auto => RecordDistributionStrategy::Auto,
                    RecordDistribution::PartitionKey => {
                        RecordDistributionStrategy::UserPartitionKey
                    }
                },
            ),
            queue_count: Some(node.queues.count_on(&stream) as u32).filter(|count| *count > 0),
        },
    })
}

pub(super) fn list_streams(
    node: &Node,
    caller: &Caller,
    input: ListStreamsInput,
) -> Result<ListStreamsOutput, Error> {
    let limit = input
        .limit
        .map(|limit| limit.max(1) as usize)
        .unwrap_or(limits::LIST_STREAMS_LIMIT_DEFAULT)
        .min(limits::LIST_STREAMS_LIMIT_DEFAULT);
    let start_after = match &input.next_token {
        // A ListShards token ("stream\nshard\nfilter") is no position in the stream listing.
        Some(token) => match decode_list_token(node, token)? {
            (name, _) if name.contains('\n') => {
                return Err(riffle_proto::token::invalid_next_token())
            }
            (name, _) => Some(name),
        },
        None => input.exclusive_start_stream_name.clone(),
    };
    let streams: Vec<Arc<Stream>> = node
        .streams_of(&caller.account)
        .into_iter()
        .filter(|stream| {
            start_after
                .as_deref()
                .is_none_or(|after| stream.name.as_str() > after)
        })
        .collect();
    let has_more_streams = streams.len() > limit;
    let page: Vec<Arc<Stream>> = streams.into_iter().take(limit).collect();
    let next_token = match (has_more_streams, page.last()) {
        (true, Some(last)) => Some(encode_list_token(node, &last.name)),
        _ => None,
    };
    Ok(ListStreamsOutput {
        stream_names: page.iter().map(|stream| stream.name.clone()).collect(),
        has_more_streams,
        next_token,
        stream_summaries: page
            .iter()
            .map(|stream| StreamSummary {
                stream_name: stream.name.clone(),
                stream_arn: stream.arn.clone(),
                stream_status: stream_status(stream),
                stream_mode_details: Some(mode_details(stream.state().mode)),
                stream_creation_timestamp: Some(timestamp(stream.created_ms)),
            })
            .collect(),
    })
}

pub(super) fn list_shards(
    node: &Node,
    caller: &Caller,
    input: ListShardsInput,
) -> Result<ListShardsOutput, Error> {
    let max_results = input
        .max_results
        .map(|max| max.max(1) as usize)
        .unwrap_or(limits::LIST_SHARDS_MAX_RESULTS_DEFAULT);
    let (stream, after, filter) = match &input.next_token {
        Some(token) => {
            // The token names the stream, the position and the filter; AWS refuses each of
            // these members next to it, naming the first one given.
            let conflict = [
                ("StreamName", input.stream_name.is_some()),
                ("StreamARN", input.stream_arn.is_some()),
                (
                    "ExclusiveStartShardId",
                    input.exclusive_start_shard_id.is_some(),
                ),
                (
                    "StreamCreationTimestamp",
                    input.stream_creation_timestamp.is_some(),
                ),
                ("ShardFilter", input.shard_filter.is_some()),
            ]
            .into_iter()
            .find(|(_, given)| *given);
            if let Some((member, _)) = conflict {
                return Err(Error::next_token_conflict(member));
            }
            let (position, created_ms) = decode_list_token(node, token)?;
            let mut parts = position.split('\n');
            let (Some(name), Some(after), filter) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(riffle_proto::token::invalid_next_token());
            };
            let after = after
                .parse::<u32>()
                .map_err(|_| riffle_proto::token::invalid_next_token())?;
            let filter = match filter {
                Some(text) => ShardSelection::from_token_text(text)
                    .ok_or_else(riffle_proto::token::invalid_next_token)?,
                None => ShardSelection::FromTrimHorizon,
            };
            let stream = node
                .stream(&caller.account, name)
                .filter(|stream| stream.created_ms == created_ms)
                .ok_or_else(|| Error::stream_not_found(name, &caller.account))?;
            (stream, Some(after), filter)
        }
        None => {
            if input.stream_name.is_none() && input.stream_arn.is_none() {
                return Err(Error::list_shards_stream_missing());
            }
            let stream = stream_of(node, caller, &input.stream_name, &input.stream_arn)?;
            let after = input
                .exclusive_start_shard_id
                .as_deref()
                .and_then(riffle_proto::shard_id::parse_shard_id);
            let filter = match &input.shard_filter {
                None => ShardSelection::FromTrimHorizon,
                Some(filter) => shard_filter(filter)?,
            };
            (stream, after, filter)
        }
    };
    // AWS's ListShards needs the shards to exist (ResourceInUseException while CREATING) and
    // lists the layout from before a reshard while the stream is UPDATING.
    if stream.is_creating() {
        return Err(Error::stream_not_active(
            &stream.name,
            &stream.account,
            "CREATING",
        ));
    }
    let state = stream.shown_state();
    let selected: Vec<Arc<Shard>> = control::filter_shards(&state, &filter)
        .into_iter()
        .filter(|shard| after.is_none_or(|after| shard.meta.ordinal > after))
        .collect();
    let more = selected.len() > max_results;
    let page: Vec<&Arc<Shard>> = selected.iter().take(max_results).collect();
    let next_token = match (more, page.last()) {
        (true, Some(last)) => Some(riffle_proto::token::encode_page_token(
            &format!(
                "{}\n{}\n{}",
                stream.name,
                last.meta.ordinal,
                filter.to_token_text()
            ),
            stream.created_ms,
            now_ms(),
            &node.token_key,
        )),
        _ => None,
    };
    Ok(ListShardsOutput {
        shards: page.into_iter().map(|shard| shard_shape(shard)).collect(),
        next_token,
    })
}

pub(super) fn shard_filter(
    filter: &riffle_proto::ops::ShardFilter,
) -> Result<ShardSelection, Error> {
    let filter_type = filter.filter_type.as_deref().unwrap_or_default();
    let timestamp_ms = || {
        filter
            .timestamp
            .map(Timestamp::epoch_ms_u64)
            .ok_or_else(|| {
                Error::invalid_argument(format!(
                    "Timestamp is required for ShardFilter type {filter_type}."
                ))
            })
    };
    Ok(match filter_type {
        "AFTER_SHARD_ID" => {
            let shard_id = filter.shard_id.as_deref().ok_or_else(|| {
                Error::invalid_argument(
                    "ShardId is required for ShardFilter type AFTER_SHARD_ID.".to_owned(),
                )
            })?;
            ShardSelection::AfterShard(
                riffle_proto::shard_id::parse_shard_id(shard_id).unwrap_or(u32::MAX),
            )
        }
        "AT_TRIM_HORIZON" => ShardSelection::AtTrimHorizon,
        "FROM_TRIM_HORIZON" => ShardSelection::FromTrimHorizon,
        "AT_LATEST" => ShardSelection::AtLatest,
        "AT_TIMESTAMP" => ShardSelection::AtTimestamp(timestamp_ms()?),
        "FROM_TIMESTAMP" => ShardSelection::FromTimestamp(timestamp_ms()?),
        other => {
            return Err(Error::invalid_argument(format!(
                "Unknown ShardFilter type {other}."
            )))
        }
    })
}

pub(super) fn list_tags_for_stream(
    node: &Node,
    caller: &Caller,
    input: ListTagsForStreamInput,
) -> Result<ListTagsForStreamOutput, Error> {
    let stream = stream_of(node, caller, &input.stream_name, &input.stream_arn)?;
    let limit = input
        .limit
        .map(|limit| limit.max(1) as usize)
        .unwrap_or(limits::TAGS_PER_RESOURCE_MAX);
    let state = stream.state();
    let after = input.exclusive_start_tag_key.as_deref();
    let tags: Vec<(&String, &String)> = state
        .tags
        .iter()
        .filter(|(key, _)| after.is_none_or(|after| key.as_str() > after))
        .collect();
    let has_more_tags = tags.len() > limit;
    Ok(ListTagsForStreamOutput {
        tags: tags
            .into_iter()
            .take(limit)
            .map(|(key, value)| Tag {
                key: key.clone(),
                value: Some(value.clone()),
            })
            .collect(),
        has_more_tags,
    })
}

pub(super) fn describe_limits(node: &Node, caller: &Caller) -> DescribeLimitsOutput {
    let streams = node.streams_of(&caller.account);
    let on_demand = streams
        .iter()
        .filter(|stream| stream.state().mode == StreamMode::OnDemand)
        .count();
    DescribeLimitsOutput {
        shard_limit: node.config.shard_limit,
        open_shard_count: node.open_shard_count(&caller.account),
        on_demand_stream_count: on_demand as u32,
        on_demand_stream_count_limit: node.config.on_demand_stream_limit,
        channel_count: Some(channels::count_of(node, &caller.account) as u32),
        // Riffle has no account-wide channel quota (one channel per stream, on ON_DEMAND
        // streams) and AWS publishes none, so no limit is claimed.
        channel_count_limit: None,
    }
}

pub(super) async fn increase_retention(
    node: &Node,
    caller: &Caller,
    input: IncreaseStreamRetentionPeriodInput,
) -> Result<(), Error> {
    let stream = stream_of(node, caller, &input.stream_name, &input.stream_arn)?;
    let hours = hours(input.retention_period_hours.unwrap_or(0));
    control::change_retention(node, &stream, hours, true).await
}

pub(super) async fn decrease_retention(
    node: &Node,
    caller: &Caller,
    input: DecreaseStreamRetentionPeriodInput,
) -> Result<(), Error> {
    let stream = stream_of(node, caller, &input.stream_name, &input.stream_arn)?;
    let hours = hours(input.retention_period_hours.unwrap_or(0));
    control::change_retention(node, &stream, hours, false).await
}

pub(super) async fn add_tags_to_stream(
    node: &Node,
    caller: &Caller,
    input: AddTagsToStreamInput,
) -> Result<(), Error> {
    let stream = stream_of(node, caller, &input.stream_name, &input.stream_arn)?;
    control::add_tags(node, &stream, input.tags.unwrap_or_default()).await
}

pub(super) async fn remove_tags_from_stream(
    node: &Node,
    caller: &Caller,
    input: RemoveTagsFromStreamInput,
) -> Result<(), Error> {
    let stream = stream_of(node, caller, &input.stream_name, &input.stream_arn)?;
    control::remove_tags(node, &stream, &input.tag_keys.unwrap_or_default()).await
}

pub(super) async fn update_max_record_size(
    node: &Node,
    caller: &Caller,
    input: UpdateMaxRecordSizeInput,
) -> Result<(), Error> {
    let stream = resolve_stream(node, caller, None, input.stream_arn.as_deref())?;
    let kib = u32::try_from(input.max_record_size_kib.unwrap_or(0)).unwrap_or(0);
    control::update_max_record_size(node, &stream, kib).await
}

pub(super) async fn update_record_distribution(
    node: &Node,
    caller: &Caller,
    input: UpdateStreamRecordDistributionStrategyInput,
) -> Result<(), Error> {
    let stream = resolve_stream(node, caller, None, input.stream_arn.as_deref())?;
    let distribution = record_distribution(input.distribution_strategy());
    control::update_record_distribution(node, &stream, distribution).await
}

pub(super) async fn split_shard(
    node: &Node,
    caller: &Caller,
    input: SplitShardInput,
) -> Result<(), Error> {
    let stream = stream_of(node, caller, &input.stream_name, &input.stream_arn)?;
    control::split_shard(
        node,
        caller,
        &stream,
        input.shard_to_split.as_deref().unwrap_or_default(),
        input.new_starting_hash_key.as_deref().unwrap_or_default(),
    )
    .await
}

pub(super) async fn merge_shards(
    node: &Node,
    caller: &Caller,
    input: MergeShardsInput,
) -> Result<(), Error> {
    let stream = stream_of(node, caller, &input.stream_name, &input.stream_arn)?;
    control::merge_shards(
        node,
        &stream,
        input.shard_to_merge.as_deref().unwrap_or_default(),
        input.adjacent_shard_to_merge.as_deref().unwrap_or_default(),
    )
    .await
}

pub(super) async fn update_shard_count(
    node: &Node,
    caller: &Caller,
    input: UpdateShardCountInput,
) -> Result<UpdateShardCountOutput, Error> {
    let stream = stream_of(node, caller, &input.stream_name, &input.stream_arn)?;
    // The model validated TargetShardCount ≥ 1 and ScalingType = UNIFORM_SCALING.
    let target = u32::try_from(input.target_shard_count.unwrap_or(1)).unwrap_or(1);
    let current = control::update_shard_count(node, caller, &stream, target).await?;
    Ok(UpdateShardCountOutput {
        stream_name: Some(stream.name.clone()),
        current_shard_count: Some(current),
        target_shard_count: Some(target),
        stream_arn: Some(stream.arn.clone()),
    })
}

pub(super) async fn update_stream_mode(
    node: &Node,
    caller: &Caller,
    input: UpdateStreamModeInput,
) -> Result<(), Error> {
    let stream = resolve_stream(node, caller, None, input.stream_arn.as_deref())?;
    let mode = match input.stream_mode() {
        Some(riffle_proto::ops::StreamMode::OnDemand) => StreamMode::OnDemand,
        _ => StreamMode::Provisioned,
    };
    control::update_stream_mode(node, caller, &stream, mode).await
}

pub(super) async fn start_encryption(
    node: &Node,
    caller: &Caller,
    input: StartStreamEncryptionInput,
) -> Result<(), Error> {
    let stream = stream_of(node, caller, &input.stream_name, &input.stream_arn)?;
    let kind = input.encryption_type.as_deref().unwrap_or_default();
    let key_id = input.key_id.as_deref().unwrap_or_default();
    encryption::start(node, caller, &stream, kind, key_id).await
}

pub(super) async fn stop_encryption(
    node: &Node,
    caller: &Caller,
    input: StopStreamEncryptionInput,
) -> Result<(), Error> {
    let stream = stream_of(node, caller, &input.stream_name, &input.stream_arn)?;
    let kind = input.encryption_type.as_deref().unwrap_or_default();
    let key_id = input.key_id.as_deref().unwrap_or_default();
    encryption::stop(node, caller, &stream, kind, key_id).await
}
