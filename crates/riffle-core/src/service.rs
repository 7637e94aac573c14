//! One handler per Kinesis operation: wire shapes in, wire shapes out.
//!
//! [`call`] decodes the body with `riffle-proto` (wire-format and model validation happen
//! there), runs the operation against the [`Node`], and encodes the answer in the request's
//! [`WireFormat`] (JSON or CBOR). Everything here is the semantic layer AWS applies after its
//! model validation: stream look-up by name or ARN, limits, retention and tag rules, routing
//! and reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use riffle_proto::ops::*;
use riffle_proto::{limits, Request, Timestamp, WireFormat};

use crate::channels;
use crate::consumers;
pub use crate::control::Caller;
use crate::control::{self, resolve_stream, ShardSelection};
use crate::data::{self, StartAt};
use crate::encryption;
use crate::meta::{RecordDistribution, StreamMode};
use crate::node::{now_ms, Node, Shard, Stream, StreamSettings};
use crate::record::{NewRecord, StoredRecord};
use crate::throttle;
use crate::Error;
use crate::{advantage, metrics};

/// What an operation answers: a whole body, or (SubscribeToShard) a stream of event-stream
/// frames that ends when the subscription does.
pub enum Answer {
    Body(Vec<u8>),
    Events(tokio::sync::mpsc::Receiver<Bytes>),
}

/// Runs one operation. `operation` is the part of `X-Amz-Target` after `Kinesis_20131202.`;
/// `format` is how `body` is encoded and how the answer will be (errors are encoded by the
/// caller, in the same format).
pub async fn call(
    node: &Arc<Node>,
    caller: &Caller,
    format: WireFormat,
    operation: &str,
    body: &[u8],
) -> Result<Answer, Error> {
    let request = riffle_proto::decode_request_in(format, operation, body)?;
    throttle::admit_control(node, caller, &request)?;
    let caller = &Caller {
        operation: request.operation(),
        ..caller.clone()
    };
    match request {
        Request::SubscribeToShard(input) => subscribe_to_shard(node, caller, input)
            .await
            .map(Answer::Events),
        Request::DeregisterStreamConsumer(input) => {
            let found = consumers::find(
                node,
                caller,
                input.stream_arn.as_deref(),
                input.consumer_name.as_deref(),
                input.consumer_arn.as_deref(),
            )?;
            consumers::deregister(node, found).await?;
            Ok(Answer::Body(Vec::new()))
        }
        request => call_operation(node, caller, format, request)
            .await
            .map(Answer::Body),
    }
}

async fn call_operation(
    node: &Node,
    caller: &Caller,
    format: WireFormat,
    request: Request,
) -> Result<Vec<u8>, Error> {
    Ok(match request {
        // Void operations answer an empty body (kinesis-api.md §1.1), not `null`.
        Request::CreateStream(input) => {
            create_stream(node, caller, input).await?;
            Vec::new()
        }
        Request::DeleteStream(input) => {
            delete_stream(node, caller, input).await?;
            Vec::new()
        }
        Request::DescribeStream(input) => encode(format, describe_stream(node, caller, input)?),
        Request::DescribeStreamSummary(input) => {
            encode(format, describe_stream_summary(node, caller, input)?)
        }
        Request::ListStreams(input) => encode(format, list_streams(node, caller, input)?),
        Request::ListShards(input) => encode(format, list_shards(node, caller, input)?),
        Request::PutRecord(input) => encode(format, put_record(node, caller, input).await?),
        Request::PutRecords(input) => encode(format, put_records(node, caller, input).await?),
        Request::GetShardIterator(input) => {
            encode(format, get_shard_iterator(node, caller, input).await?)
        }
        Request::GetRecords(input) => {
            // Off the async workers, a few at a time (`ResponseBudget::build`). The lease
            // sized the read; it lasts until the answer is encoded, when the front end leases
            // the answer's real size.
            let responses = Arc::clone(&node.config.responses);
            let dry_run = input.dry_run == Some(true);
            let reading = responses
                .build(|| {
                    let started = Instant::now();
                    match get_records(node, caller, input)? {
                        (data::Reading::Done(batch), _lease) => Ok::<_, Error>(Ok(encode(
                            format,
                            records_answer(batch, dry_run, started)?,
                        ))),
                        (data::Reading::Remote(remote), lease) => Ok(Err((remote, lease, started))),
                    }
                })
                .await?;
            match reading {
                Ok(body) => body,
                // A shard this node holds no replica of: its entries come from one that does
                // (no builder slot is held while they travel).
                Err((remote, _lease, started)) => {
                    let batch = data::get_records_remote(node, remote).await?;
                    responses
                        .build(|| {
                            Ok::<_, Error>(encode(format, records_answer(batch, dry_run, started)?))
                        })
                        .await?
                }
            }
        }
        Request::IncreaseStreamRetentionPeriod(input) => {
            let stream = resolve_stream(
                node,
                caller,
                input.stream_name.as_deref(),
                input.stream_arn.as_deref(),
            )?;
            control::change_retention(
                node,
                &stream,
                hours(input.retention_period_hours.unwrap_or(0)),
                true,
            )
            .await?;
            Vec::new()
        }
        Request::DecreaseStreamRetentionPeriod(input) => {
            let stream = resolve_stream(
                node,
                caller,
                input.stream_name.as_deref(),
                input.stream_arn.as_deref(),
            )?;
            control::change_retention(
                node,
                &stream,
                hours(input.retention_period_hours.unwrap_or(0)),
                false,
            )
            .await?;
            Vec::new()
        }
        Request::AddTagsToStream(input) => {
            let stream = resolve_stream(
                node,
                caller,
                input.stream_name.as_deref(),
                input.stream_arn.as_deref(),
            )?;
            control::add_tags(node, &stream, input.tags.unwrap_or_default()).await?;
            Vec::new()
        }
        Request::RemoveTagsFromStream(input) => {
            let stream = resolve_stream(
                node,
                caller,
                input.stream_name.as_deref(),
                input.stream_arn.as_deref(),
            )?;
            control::remove_tags(node, &stream, &input.tag_keys.unwrap_or_default()).await?;
            Vec::new()
        }
        Request::ListTagsForStream(input) => {
            encode(format, list_tags_for_stream(node, caller, input)?)
        }
        Request::TagResource(input) if is_queue_arn(input.resource_arn.as_deref()) => {
            let arn = input.resource_arn.as_deref().unwrap_or_default();
            crate::queues::tag(node, caller, arn, input.tags.unwrap_or_default()).await?;
            Vec::new()
        }
        Request::UntagResource(input) if is_queue_arn(input.resource_arn.as_deref()) => {
            let arn = input.resource_arn.as_deref().unwrap_or_default();
            let keys = input.tag_keys.unwrap_or_default();
            crate::queues::untag(node, caller, arn, &keys).await?;
            Vec::new()
        }
        Request::ListTagsForResource(input) if is_queue_arn(input.resource_arn.as_deref()) => {
            let arn = input.resource_arn.as_deref().unwrap_or_default();
            encode(format, crate::queues::tags(node, caller, arn)?)
        }
        Request::TagResource(input) if channels::is_channel_arn(input.resource_arn.as_deref()) => {
            let arn = input.resource_arn.as_deref().unwrap_or_default();
            channels::tag(node, caller, arn, input.tags.unwrap_or_default()).await?;
            Vec::new()
        }
        Request::UntagResource(input)
            if channels::is_channel_arn(input.resource_arn.as_deref()) =>
        {
            let arn = input.resource_arn.as_deref().unwrap_or_default();
            let keys = input.tag_keys.unwrap_or_default();
            channels::untag(node, caller, arn, &keys).await?;
            Vec::new()
        }
        Request::ListTagsForResource(input)
            if channels::is_channel_arn(input.resource_arn.as_deref()) =>
        {
            let arn = input.resource_arn.as_deref().unwrap_or_default();
            encode(format, channels::tags(node, caller, arn)?)
        }
        Request::TagResource(input)
            if consumers::is_consumer_arn(input.resource_arn.as_deref()) =>
        {
            let arn = input.resource_arn.as_deref().unwrap_or_default();
            consumers::tag(node, caller, arn, input.tags.unwrap_or_default()).await?;
            Vec::new()
        }
        Request::UntagResource(input)
            if consumers::is_consumer_arn(input.resource_arn.as_deref()) =>
        {
            let arn = input.resource_arn.as_deref().unwrap_or_default();
            let keys = input.tag_keys.unwrap_or_default();
            consumers::untag(node, caller, arn, &keys).await?;
            Vec::new()
        }
        Request::ListTagsForResource(input)
            if consumers::is_consumer_arn(input.resource_arn.as_deref()) =>
        {
            let arn = input.resource_arn.as_deref().unwrap_or_default();
            encode(format, consumers::tags(node, caller, arn)?)
        }
        Request::PutResourcePolicy(input) if is_queue_arn(input.resource_arn.as_deref()) => {
            let text = input.policy.unwrap_or_default();
            crate::policy::ResourcePolicy::parse(&text).map_err(|reason| {
                Error::invalid_argument(format!("Invalid resource policy: {reason}"))
            })?;
            let arn = input.resource_arn.as_deref().unwrap_or_default();
            crate::queues::set_policy(node, caller, arn, Some(text)).await?;
            Vec::new()
        }
        Request::GetResourcePolicy(input) if is_queue_arn(input.resource_arn.as_deref()) => {
            let arn = input.resource_arn.as_deref().unwrap_or_default();
            let policy = crate::queues::policy(node, caller, arn)?;
            encode(
                format,
                GetResourcePolicyOutput {
                    policy: policy.unwrap_or_else(|| "{}".to_owned()),
                },
            )
        }
        Request::DeleteResourcePolicy(input) if is_queue_arn(input.resource_arn.as_deref()) => {
            let arn = input.resource_arn.as_deref().unwrap_or_default();
            crate::queues::set_policy(node, caller, arn, None).await?;
            Vec::new()
        }
        Request::TagResource(input) => {
            let stream = resource_stream(
                node,
                caller,
                input.resource_arn.as_deref().unwrap_or_default(),
            )?;
            control::add_tags(node, &stream, input.tags.unwrap_or_default()).await?;
            Vec::new()
        }
        Request::UntagResource(input) => {
            let stream = resource_stream(
                node,
                caller,
                input.resource_arn.as_deref().unwrap_or_default(),
            )?;
            control::remove_tags(node, &stream, &input.tag_keys.unwrap_or_default()).await?;
            Vec::new()
        }
        Request::ListTagsForResource(input) => {
            let stream = resource_stream(
                node,
                caller,
                input.resource_arn.as_deref().unwrap_or_default(),
            )?;
            let tags = stream
                .state()
                .tags
                .iter()
                .map(|(key, value)| Tag {
                    key: key.clone(),
                    value: Some(value.clone()),
                })
                .collect();
            encode(format, ListTagsForResourceOutput { tags })
        }
        Request::UpdateMaxRecordSize(input) => {
            let stream = resolve_stream(node, caller, None, input.stream_arn.as_deref())?;
            let kib = u32::try_from(input.max_record_size_kib.unwrap_or(0)).unwrap_or(0);
            control::update_max_record_size(node, &stream, kib).await?;
            Vec::new()
        }
        Request::UpdateStreamRecordDistributionStrategy(input) => {
            let stream = resolve_stream(node, caller, None, input.stream_arn.as_deref())?;
            control::update_record_distribution(
                node,
                &stream,
                record_distribution(input.distribution_strategy()),
            )
            .await?;
            Vec::new()
        }
        Request::DescribeLimits(_) => encode(format, describe_limits(node, caller)),
        Request::DescribeAccountSettings(_) => encode(
            format,
            DescribeAccountSettingsOutput {
                minimum_throughput_billing_commitment: Some(advantage::commitment(
                    node,
                    &caller.account,
                )),
            },
        ),
        Request::SplitShard(input) => {
            let stream = resolve_stream(
                node,
                caller,
                input.stream_name.as_deref(),
                input.stream_arn.as_deref(),
            )?;
            control::split_shard(
                node,
                caller,
                &stream,
                input.shard_to_split.as_deref().unwrap_or_default(),
                input.new_starting_hash_key.as_deref().unwrap_or_default(),
            )
            .await?;
            Vec::new()
        }
        Request::MergeShards(input) => {
            let stream = resolve_stream(
                node,
                caller,
                input.stream_name.as_deref(),
                input.stream_arn.as_deref(),
            )?;
            control::merge_shards(
                node,
                &stream,
                input.shard_to_merge.as_deref().unwrap_or_default(),
                input.adjacent_shard_to_merge.as_deref().unwrap_or_default(),
            )
            .await?;
            Vec::new()
        }
        Request::UpdateShardCount(input) => {
            let stream = resolve_stream(
                node,
                caller,
                input.stream_name.as_deref(),
                input.stream_arn.as_deref(),
            )?;
            // The model validated TargetShardCount ≥ 1 and ScalingType = UNIFORM_SCALING.
            let target = u32::try_from(input.target_shard_count.unwrap_or(1)).unwrap_or(1);
            let current = control::update_shard_count(node, caller, &stream, target).await?;
            encode(
                format,
                UpdateShardCountOutput {
                    stream_name: Some(stream.name.clone()),
                    current_shard_count: Some(current),
                    target_shard_count: Some(target),
                    stream_arn: Some(stream.arn.clone()),
                },
            )
        }
        Request::UpdateStreamMode(input) => {
            let stream = resolve_stream(node, caller, None, input.stream_arn.as_deref())?;
            let mode = match input.stream_mode() {
                Some(riffle_proto::ops::StreamMode::OnDemand) => StreamMode::OnDemand,
                _ => StreamMode::Provisioned,
            };
            control::update_stream_mode(node, caller, &stream, mode).await?;
            Vec::new()
        }
        Request::RegisterStreamConsumer(input) => {
            let found = consumers::register(
                node,
                caller,
                input.stream_arn.as_deref().unwrap_or_default(),
                input.consumer_name.as_deref().unwrap_or_default(),
                input.tags.unwrap_or_default(),
            )
            .await?;
            // AWS always answers CREATING; DescribeStreamConsumer shows when it is ACTIVE.
            encode(
                format,
                RegisterStreamConsumerOutput {
                    consumer: Consumer {
                        consumer_name: found.consumer.name.clone(),
                        consumer_arn: found.arn(),
                        consumer_status: ConsumerStatus::Creating,
                        consumer_creation_timestamp: timestamp(found.consumer.created_ms),
                    },
                },
            )
        }
        Request::DescribeStreamConsumer(input) => {
            let found = consumers::find(
                node,
                caller,
                input.stream_arn.as_deref(),
                input.consumer_name.as_deref(),
                input.consumer_arn.as_deref(),
            )?;
            encode(
                format,
                DescribeStreamConsumerOutput {
                    consumer_description: ConsumerDescription {
                        consumer_name: found.consumer.name.clone(),
                        consumer_arn: found.arn(),
                        consumer_status: consumers::status(node, &found.consumer),
                        consumer_creation_timestamp: timestamp(found.consumer.created_ms),
                        stream_arn: found.stream.arn.clone(),
                    },
                },
            )
        }
        Request::ListStreamConsumers(input) => {
            encode(format, list_stream_consumers(node, caller, input)?)
        }
        // Enhanced monitoring (metrics.rs) and On-demand Advantage (advantage.rs).
        Request::EnableEnhancedMonitoring(input) => encode(
            format,
            metrics::change_enhanced_monitoring(node, caller, input, true).await?,
        ),
        Request::DisableEnhancedMonitoring(input) => encode(
            format,
            metrics::change_enhanced_monitoring(node, caller, input, false).await?,
        ),
        Request::UpdateAccountSettings(input) => encode(
            format,
            advantage::update_account_settings(node, caller, input).await?,
        ),
        Request::UpdateStreamWarmThroughput(input) => encode(
            format,
            advantage::update_warm_throughput(node, caller, input).await?,
        ),
        // Channels (channels.rs; delivery in delivery.rs).
        Request::CreateChannel(input) => {
            encode(format, channels::create(node, caller, *input).await?)
        }
        Request::UpdateChannel(input) => {
            encode(format, channels::update(node, caller, input).await?)
        }
        Request::DeleteChannel(input) => {
            channels::delete(
                node,
                caller,
                input.channel_arn.as_deref().unwrap_or_default(),
            )
            .await?;
            Vec::new()
        }
        Request::DescribeChannel(input) => encode(
            format,
            channels::describe(
                node,
                caller,
                input.channel_arn.as_deref().unwrap_or_default(),
            )?,
        ),
        Request::ListChannels(input) => encode(format, channels::list(node, caller, input)?),
        Request::SubscribeToShard(_) | Request::DeregisterStreamConsumer(_) => {
            unreachable!("answered by `call`")
        }
        request @ (Request::CreateQueue(_)
        | Request::UpdateQueue(_)
        | Request::DeleteQueue(_)
        | Request::DescribeQueue(_)
        | Request::ListQueues(_)
        | Request::ReceiveQueueRecords(_)
        | Request::AcknowledgeQueueRecords(_)
        | Request::UpdateQueueRecordsVisibility(_)
        | Request::ReceiveDeadLetterQueueRecords(_)
        | Request::AcknowledgeDeadLetterQueueRecords(_)
        | Request::UpdateDeadLetterQueueRecordsVisibility(_)
        | Request::RestoreDeadLetterQueueRecords(_)) => {
            crate::queues::call(node, caller, format, request).await?
        }
        Request::PutResourcePolicy(input) => {
            let text = input.policy.unwrap_or_default();
            let parsed = crate::policy::ResourcePolicy::parse(&text).map_err(|reason| {
                Error::invalid_argument(format!("Invalid resource policy: {reason}"))
            })?;
            set_policy(
                node,
                caller,
                input.resource_arn.as_deref().unwrap_or_default(),
                Some(parsed),
            )
            .await?;
            Vec::new()
        }
        Request::GetResourcePolicy(input) => {
            let arn = input.resource_arn.as_deref().unwrap_or_default();
            // The model makes Policy required: a resource without one shows an empty document.
            let policy = match policy_target(node, caller, arn)? {
                PolicyTarget::Stream(stream) => stream
                    .state()
                    .policy
                    .as_ref()
                    .map(|policy| policy.text.clone()),
                PolicyTarget::Consumer(found) => found.consumer.policy.clone(),
            };
            encode(
                format,
                GetResourcePolicyOutput {
                    policy: policy.unwrap_or_else(|| "{}".to_owned()),
                },
            )
        }
        Request::DeleteResourcePolicy(input) => {
            set_policy(
                node,
                caller,
                input.resource_arn.as_deref().unwrap_or_default(),
                None,
            )
            .await?;
            Vec::new()
        }
        Request::StartStreamEncryption(input) => {
            let stream = resolve_stream(
                node,
                caller,
                input.stream_name.as_deref(),
                input.stream_arn.as_deref(),
            )?;
            let kind = input.encryption_type.as_deref().unwrap_or_default();
            let key_id = input.key_id.as_deref().unwrap_or_default();
            encryption::start(node, caller, &stream, kind, key_id).await?;
            Vec::new()
        }
        Request::StopStreamEncryption(input) => {
            let stream = resolve_stream(
                node,
                caller,
                input.stream_name.as_deref(),
                input.stream_arn.as_deref(),
            )?;
            let kind = input.encryption_type.as_deref().unwrap_or_default();
            let key_id = input.key_id.as_deref().unwrap_or_default();
            encryption::stop(node, caller, &stream, kind, key_id).await?;
            Vec::new()
        }
    })
}

/// Whether a ResourceARN names a queue (tags and policies then go to `crate::queues`).
fn is_queue_arn(arn: Option<&str>) -> bool {
    arn.and_then(riffle_proto::arn::parse_queue_arn).is_some()
}

fn encode<T: serde::Serialize>(format: WireFormat, output: T) -> Vec<u8> {
    format.encode(&output)
}

fn hours(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

/// What a resource-policy call's ResourceARN names.
enum PolicyTarget {
    Stream(Arc<Stream>),
    Consumer(consumers::FoundConsumer),
}

fn policy_target(node: &Node, caller: &Caller, arn: &str) -> Result<PolicyTarget, Error> {
    match riffle_proto::arn::parse_resource_arn(arn) {
        Some(riffle_proto::arn::ResourceArn::Stream(_)) => Ok(PolicyTarget::Stream(
            resolve_stream(node, caller, None, Some(arn))?,
        )),
        Some(riffle_proto::arn::ResourceArn::Consumer(_)) => Ok(PolicyTarget::Consumer(
            consumers::find_by_arn(node, caller, arn)?,
        )),
        _ => Err(Error::invalid_argument(format!(
            "Invalid ResourceARN {arn}: resource policies attach to streams and consumers."
        ))),
    }
}

/// PutResourcePolicy (`Some`) and DeleteResourcePolicy (`None`). Deleting a policy that is not
/// there is ResourceNotFoundException, as on AWS.
async fn set_policy(
    node: &Node,
    caller: &Caller,
    arn: &str,
    policy: Option<crate::policy::ResourcePolicy>,
) -> Result<(), Error> {
    let target = policy_target(node, caller, arn)?;
    let _control = node.control().await;
    match target {
        PolicyTarget::Stream(stream) => {
            if policy.is_none() && stream.state().policy.is_none() {
                return Err(Error::resource_policy_not_found(arn));
            }
            let policy = policy.map(Arc::new);
            node.update_stream(&stream, |state| state.policy = policy)
                .await
        }
        PolicyTarget::Consumer(found) => {
            let text = policy.map(|policy| policy.text);
            let (name, created_ms) = (found.consumer.name.clone(), found.consumer.created_ms);
            // The consumer as it is now, under the control lock.
            let has_policy = found.stream.state().consumers.iter().any(|consumer| {
                consumer.name == name
                    && consumer.created_ms == created_ms
                    && consumer.policy.is_some()
            });
            if text.is_none() && !has_policy {
                return Err(Error::resource_policy_not_found(arn));
            }
            node.update_stream(&found.stream, |state| {
                for consumer in &mut state.consumers {
                    if consumer.name == name && consumer.created_ms == created_ms {
                        consumer.policy = text.clone();
                    }
                }
            })
            .await
        }
    }
}

/// The stream a tagging call's ResourceARN names.
fn resource_stream(node: &Node, caller: &Caller, arn: &str) -> Result<Arc<Stream>, Error> {
    match riffle_proto::arn::parse_stream_arn(arn) {
        Some(_) => resolve_stream(node, caller, None, Some(arn)),
        None => Err(Error::invalid_argument(format!(
            "Invalid ResourceARN {arn}: tags go on streams, consumers, queues and channels."
        ))),
    }
}

async fn create_stream(
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
fn record_distribution(strategy: Option<RecordDistributionStrategy>) -> RecordDistribution {
    match strategy {
        Some(RecordDistributionStrategy::Auto) => RecordDistribution::Auto,
        Some(RecordDistributionStrategy::UserPartitionKey) | None => {
            RecordDistribution::PartitionKey
        }
    }
}

async fn delete_stream(
    node: &Node,
    caller: &Caller,
    input: DeleteStreamInput,
) -> Result<(), Error> {
    let stream = resolve_stream(
        node,
        caller,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
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

fn shard_shape(shard: &Shard) -> riffle_proto::ops::Shard {
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
fn stream_status(stream: &Stream) -> StreamStatus {
    match stream.status() {
        "CREATING" => StreamStatus::Creating,
        "UPDATING" => StreamStatus::Updating,
        _ => StreamStatus::Active,
    }
}

fn mode_details(mode: StreamMode) -> StreamModeDetails {
    StreamModeDetails {
        stream_mode: match mode {
            StreamMode::Provisioned => riffle_proto::ops::StreamMode::Provisioned,
            StreamMode::OnDemand => riffle_proto::ops::StreamMode::OnDemand,
        },
    }
}

/// DescribeStream's and DescribeStreamSummary's `EnhancedMonitoring`: one entry, its list in
/// AWS's order (`metrics::SHARD_LEVEL_METRICS`).
fn enhanced_monitoring(metrics: &[String]) -> Vec<EnhancedMetrics> {
    vec![EnhancedMetrics {
        shard_level_metrics: metrics::named(metrics),
    }]
}

fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from_epoch_ms(i64::try_from(ms).unwrap_or(i64::MAX))
}

fn describe_stream(
    node: &Node,
    caller: &Caller,
    input: DescribeStreamInput,
) -> Result<DescribeStreamOutput, Error> {
    let stream = resolve_stream(
        node,
        caller,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
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

fn describe_stream_summary(
    node: &Node,
    caller: &Caller,
    input: DescribeStreamSummaryInput,
) -> Result<DescribeStreamSummaryOutput, Error> {
    let stream = resolve_stream(
        node,
        caller,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
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

fn list_streams(
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

/// Pagination tokens: the position to continue after, the stream's creation time (so a token
/// for a deleted and re-created stream is refused) and the issue time, under the node's key.
fn encode_list_token(node: &Node, after: &str) -> String {
    riffle_proto::token::encode_page_token(after, 0, now_ms(), &node.token_key)
}

fn decode_list_token(node: &Node, token: &str) -> Result<(String, u64), Error> {
    let (after, created_ms, issued_ms) =
        riffle_proto::token::decode_page_token(token, &node.token_key)?;
    if now_ms().saturating_sub(issued_ms) > limits::NEXT_TOKEN_LIFETIME_MS {
        return Err(Error::expired_next_token(
            "The requested token has expired.",
        ));
    }
    Ok((after, created_ms))
}

fn list_shards(
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
            let stream = resolve_stream(
                node,
                caller,
                input.stream_name.as_deref(),
                input.stream_arn.as_deref(),
            )?;
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

fn shard_filter(filter: &riffle_proto::ops::ShardFilter) -> Result<ShardSelection, Error> {
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

/// Where a record goes.
enum Placement<'a> {
    /// By its ExplicitHashKey if it has one, else by the MD5 of its partition key.
    ByKey(Option<&'a str>),
    /// AUTO distribution: to this hash key (see `Stream::spread_keys`); any partition key and
    /// ExplicitHashKey the producer gave are ignored for placement, as on AWS.
    Spread(u128),
}

/// Validates one record against the stream and computes its hash key.
fn prepare_record(
    stream_state: &crate::node::StreamState,
    partition_key: String,
    placement: Placement<'_>,
    data: Bytes,
) -> Result<(NewRecord, u128), Error> {
    control::check_record_size(stream_state, data.len() + partition_key.len())?;
    let (hash_key, explicit_hash_key) = match placement {
        Placement::Spread(hash_key) => (hash_key, None),
        Placement::ByKey(explicit) => {
            let explicit = explicit
                .map(riffle_proto::hashkey::parse_explicit_hash_key)
                .transpose()?;
            let hash_key = explicit
                .unwrap_or_else(|| riffle_proto::hashkey::partition_key_hash(&partition_key));
            (hash_key, explicit)
        }
    };
    Ok((
        NewRecord {
            partition_key,
            explicit_hash_key,
            data,
        },
        hash_key,
    ))
}

/// Whether PutRecord may take `minimum` as its SequenceNumberForOrdering: `0`, or a number
/// Kinesis could have issued, and not dated in the future (production rejects both other kinds
/// with "ExclusiveMinimumSequenceNumber … is invalid.").
fn ordering_sequence_number_valid(minimum: &str) -> bool {
    minimum == "0"
        || riffle_proto::seqno::SeqNo::decode(minimum)
            .is_some_and(|decoded| decoded.arrival_s.saturating_mul(1000) <= now_ms())
}

/// The ValidationException for records without a partition key (`None` is PutRecord's own,
/// `Some(i)` the i-th PutRecords entry, 0-based): the model made the key optional for AUTO
/// distribution, but a stream that routes by key still needs one, in Coral's words.
fn partition_keys_missing(records: impl IntoIterator<Item = Option<usize>>) -> Error {
    let mut validator = riffle_proto::validate::Validator::new();
    for record in records {
        let path = match record {
            Some(index) => riffle_proto::validate::Path::Member("records", index, "partitionKey"),
            None => riffle_proto::validate::Path::Field("partitionKey"),
        };
        validator.required::<()>(path, None);
    }
    validator
        .finish()
        .err()
        .unwrap_or_else(|| Error::partition_key_missing(None))
}

/// A `CREATING` stream has no shards to write to yet: AWS refuses PutRecord(s) with the
/// ResourceNotFoundException of a stream it cannot find.
fn refuse_writes_while_creating(stream: &Stream) -> Result<(), Error> {
    if stream.is_creating() {
        return Err(Error::stream_not_found(&stream.name, &stream.account));
    }
    Ok(())
}

async fn put_record(
    node: &Node,
    caller: &Caller,
    input: PutRecordInput,
) -> Result<PutRecordOutput, Error> {
    let started = Instant::now();
    let stream = resolve_stream(
        node,
        caller,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    refuse_writes_while_creating(&stream)?;
    let state = stream.state();
    let auto = state.record_distribution == RecordDistribution::Auto;
    if auto && input.sequence_number_for_ordering.is_some() {
        return Err(Error::invalid_argument(format!(
            "SequenceNumberForOrdering is not supported for stream {} under account {} because \
             it uses the AUTO record distribution strategy.",
            stream.name, stream.account
        )));
    }
    let partition_key = match input.partition_key {
        Some(key) => key,
        None if auto => String::new(),
        None => return Err(partition_keys_missing([None])),
    };
    if let Some(minimum) = &input.sequence_number_for_ordering {
        if !ordering_sequence_number_valid(minimum) {
            return Err(Error::sequence_number_for_ordering_invalid(
                minimum,
                &stream.name,
                &stream.account,
            ));
        }
    }
    let placement = if auto {
        Placement::Spread(stream.spread_keys(1)[0])
    } else {
        Placement::ByKey(input.explicit_hash_key.as_deref())
    };
    let record = prepare_record(
        &state,
        partition_key,
        placement,
        input.data.unwrap_or_default(),
    )?;
    if input.dry_run == Some(true) {
        return Err(Error::dry_run());
    }
    let sealing = encryption::sealing(node, &stream, &state)?;
    let put = data::put_records(&stream, sealing, vec![record]).await;
    let outcome = put
        .results
        .into_iter()
        .next()
        .unwrap_or_else(|| Err(Error::internal("Internal Service Failure".to_owned())));
    stream
        .metrics
        .put_record(put.bytes_stored, &outcome, started.elapsed());
    let outcome = outcome?;
    Ok(PutRecordOutput {
        shard_id: outcome.shard_id,
        sequence_number: outcome.sequence_number,
        encryption_type: Some(encryption::put_encryption_type(sealing)),
    })
}

async fn put_records(
    node: &Node,
    caller: &Caller,
    input: PutRecordsInput,
) -> Result<PutRecordsOutput, Error> {
    let started = Instant::now();
    let stream = resolve_stream(
        node,
        caller,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    refuse_writes_while_creating(&stream)?;
    let state = stream.state();
    let auto = state.record_distribution == RecordDistribution::Auto;
    let entries = input.records.unwrap_or_default();
    let keyless: Vec<Option<usize>> = entries
        .iter()
        .enumerate()
        .filter(|(_, entry)| entry.partition_key.is_none())
        .map(|(index, _)| Some(index))
        .collect();
    if !keyless.is_empty() && !auto {
        return Err(partition_keys_missing(keyless));
    }
    let request_bytes: usize = entries
        .iter()
        .map(|entry| {
            entry.data.as_ref().map_or(0, |data| data.len())
                + entry.partition_key.as_ref().map_or(0, |key| key.len())
        })
        .sum();
    if request_bytes > limits::PUT_RECORDS_BYTES_MAX {
        return Err(Error::invalid_argument(format!(
            "Records size exceeds {} MB limit",
            limits::PUT_RECORDS_BYTES_MAX / (1024 * 1024)
        )));
    }
    let mut spread = if auto {
        stream.spread_keys(entries.len())
    } else {
        Vec::new()
    }
    .into_iter();
    let mut prepared = Vec::with_capacity(entries.len());
    for entry in entries {
        let placement = match spread.next() {
            Some(hash_key) => Placement::Spread(hash_key),
            None => Placement::ByKey(entry.explicit_hash_key.as_deref()),
        };
        prepared.push(prepare_record(
            &state,
            entry.partition_key.unwrap_or_default(),
            placement,
            entry.data.unwrap_or_default(),
        )?);
    }
    if input.dry_run == Some(true) {
        return Err(Error::dry_run());
    }
    let sealing = encryption::sealing(node, &stream, &state)?;
    let put = data::put_records(&stream, sealing, prepared).await;
    stream
        .metrics
        .put_records(put.bytes_stored, &put.results, started.elapsed());
    let mut failed = 0;
    let records = put
        .results
        .into_iter()
        .map(|outcome| match outcome {
            Ok(outcome) => PutRecordsResultEntry {
                sequence_number: Some(outcome.sequence_number),
                shard_id: Some(outcome.shard_id),
                error_code: None,
                error_message: None,
            },
            Err(error) => {
                failed += 1;
                // AWS's code and text for an internal failure; its detail was logged where
                // it happened.
                let (code, message) = error.put_records_entry();
                PutRecordsResultEntry {
                    sequence_number: None,
                    shard_id: None,
                    error_code: Some(code.to_owned()),
                    error_message: message.map(str::to_owned),
                }
            }
        })
        .collect();
    Ok(PutRecordsOutput {
        failed_record_count: Some(failed),
        records,
        encryption_type: Some(encryption::put_encryption_type(sealing)),
    })
}

/// The stream name and account a request addresses, for texts about a stream that does not
/// exist: the name as given, else the ARN's name and account.
fn addressed_stream(
    caller: &Caller,
    stream_name: Option<&str>,
    stream_arn: Option<&str>,
) -> (String, String) {
    match (
        stream_name,
        stream_arn.and_then(riffle_proto::arn::parse_stream_arn),
    ) {
        (Some(name), _) => (name.to_owned(), caller.account.clone()),
        (None, Some(arn)) => (arn.name, arn.account),
        (None, None) => (String::new(), caller.account.clone()),
    }
}

async fn get_shard_iterator(
    node: &Node,
    caller: &Caller,
    input: GetShardIteratorInput,
) -> Result<GetShardIteratorOutput, Error> {
    // AWS reads the shard argument first (`shard-7`, `7` and `shardId-000000000007` name the same
    // shard) and names the shard, not the stream, when either is missing.
    let shard_arg = input.shard_id.as_deref().unwrap_or_default();
    let ordinal = riffle_proto::shard_id::parse_shard_id(shard_arg);
    let missing_shard = |name: &str, account: &str| match ordinal {
        Some(ordinal) => {
            Error::shard_not_found(&riffle_proto::shard_id::shard_id(ordinal), name, account)
        }
        None => Error::shard_unparseable(shard_arg, name, account),
    };
    let stream = match resolve_stream(
        node,
        caller,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    ) {
        Ok(stream) => stream,
        Err(error) if error.kind == riffle_proto::ErrorKind::ResourceNotFoundException => {
            let (name, account) = addressed_stream(
                caller,
                input.stream_name.as_deref(),
                input.stream_arn.as_deref(),
            );
            return Err(missing_shard(&name, &account));
        }
        Err(error) => return Err(error),
    };
    if stream.is_creating() {
        // No shard exists yet: AWS answers as for a stream it cannot find.
        return Err(missing_shard(&stream.name, &stream.account));
    }
    let state = stream.state();
    let shard = ordinal
        .and_then(|ordinal| state.shard(ordinal))
        .ok_or_else(|| missing_shard(&stream.name, &stream.account))?;
    let start = start_at(
        &stream,
        shard,
        input.shard_iterator_type.as_deref().unwrap_or_default(),
        input.starting_sequence_number.as_deref(),
        input.timestamp,
    )?;
    throttle::admit_iterator(shard, &stream)?;
    let shard_iterator = if shard.log.stored_here() {
        data::shard_iterator(node, &stream, shard, start)?
    } else {
        data::shard_iterator_anywhere(node, &stream, shard, start).await?
    };
    if input.dry_run == Some(true) {
        return Err(Error::dry_run());
    }
    Ok(GetShardIteratorOutput {
        shard_iterator: Some(shard_iterator),
    })
}

/// Where a reader asked to start, for GetShardIterator's `ShardIteratorType` and
/// SubscribeToShard's `StartingPosition.Type` (the same five values), with AWS's texts.
fn start_at(
    stream: &Stream,
    shard: &Shard,
    iterator_type: &str,
    sequence: Option<&str>,
    timestamp: Option<Timestamp>,
) -> Result<StartAt, Error> {
    let needs_sequence = matches!(
        iterator_type,
        "AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER"
    );
    if needs_sequence != sequence.is_some() && iterator_type != "AT_TIMESTAMP" {
        return Err(Error::iterator_type_mismatch(
            iterator_type,
            sequence.is_some(),
        ));
    }
    Ok(match (iterator_type, sequence) {
        ("AT_SEQUENCE_NUMBER", Some(sequence)) => {
            StartAt::AtSequence(data::position_of(stream, shard, sequence)?)
        }
        ("AFTER_SEQUENCE_NUMBER", Some(sequence)) => {
            StartAt::AfterSequence(data::position_of(stream, shard, sequence)?)
        }
        ("TRIM_HORIZON", _) => StartAt::TrimHorizon,
        ("LATEST", _) => StartAt::Latest,
        ("AT_TIMESTAMP", _) => {
            let at_ms = timestamp
                .ok_or_else(Error::timestamp_missing)?
                .epoch_ms_u64();
            let now = now_ms();
            if at_ms > now {
                return Err(Error::timestamp_in_future(at_ms as i64, now as i64));
            }
            StartAt::AtTimestamp(at_ms)
        }
        (other, _) => {
            return Err(Error::invalid_argument(format!(
                "Unknown ShardIteratorType {other}."
            )))
        }
    })
}

/// GetRecords up to the read: the read done (a shard stored here), or left to a replica.
fn get_records(
    node: &Node,
    caller: &Caller,
    input: GetRecordsInput,
) -> Result<(data::Reading, crate::responses::Lease), Error> {
    let limit = input
        .limit
        .map(|limit| limit.max(1) as usize)
        .unwrap_or(limits::GET_RECORDS_LIMIT_MAX);
    // An iterator names its stream within an account: the caller's, or (cross-account, as the
    // KCL does) the owner's named by StreamARN; the resource policy decides either way.
    let owner = match input.stream_arn.as_deref() {
        Some(arn) => resolve_stream(node, caller, None, Some(arn))?
            .account
            .clone(),
        None => caller.account.clone(),
    };
    // Fewer records than the full 10 MiB when the response-memory budget is short (see
    // `crate::responses`).
    let mut lease = None;
    let batch = data::get_records(
        node,
        &owner,
        input.shard_iterator.as_deref().unwrap_or_default(),
        limit,
        |stream| {
            let record_bytes_max = u64::from(stream.state().max_record_size_kib) * 1024;
            let (granted, bytes_max) = node
                .config
                .responses
                .reserve_records(limit, record_bytes_max)?;
            lease = Some(granted);
            Ok(bytes_max)
        },
        |stream| control::authorize_stream(caller, stream),
    )?;
    let lease = lease.expect("a read that returned was sized first");
    Ok((batch, lease))
}

/// GetRecords' answer from what was read (here or on a replica).
fn records_answer(
    batch: data::ReadBatch,
    dry_run: bool,
    started: Instant,
) -> Result<GetRecordsOutput, Error> {
    if dry_run {
        return Err(Error::dry_run());
    }
    let bytes: usize = batch
        .records
        .iter()
        .map(|(_, stored)| stored.data.len() + stored.partition_key.len())
        .sum();
    let iterator_age_ms = match batch.records.last() {
        Some((_, last)) => now_ms().saturating_sub(last.arrival_ms),
        None => batch.millis_behind_latest,
    };
    batch.stream.metrics.get_records(
        &batch.shard,
        bytes as u64,
        batch.records.len() as u64,
        iterator_age_ms,
        started.elapsed(),
    );
    let records = batch
        .records
        .into_iter()
        .map(|(sequence_number, stored)| record_shape(sequence_number, stored))
        .collect();
    let child_shards = batch.next_iterator.is_none().then(|| {
        batch
            .child_shards
            .iter()
            .map(|child| child_shape(child))
            .collect()
    });
    let output = GetRecordsOutput {
        records,
        next_shard_iterator: batch.next_iterator,
        millis_behind_latest: Some(batch.millis_behind_latest),
        child_shards,
    };
    Ok(output)
}

fn list_stream_consumers(
    node: &Node,
    caller: &Caller,
    input: ListStreamConsumersInput,
) -> Result<ListStreamConsumersOutput, Error> {
    let stream = resolve_stream(node, caller, None, input.stream_arn.as_deref())?;
    if let Some(created) = input.stream_creation_timestamp {
        // A timestamp of another incarnation of the stream names a stream that is gone.
        if created.epoch_ms_u64() / 1000 != stream.created_ms / 1000 {
            return Err(Error::stream_not_found(&stream.name, &stream.account));
        }
    }
    let limit = input
        .max_results
        .map(|limit| limit.max(1) as usize)
        .unwrap_or(limits::LIST_STREAM_CONSUMERS_MAX_RESULTS_DEFAULT);
    let after = match &input.next_token {
        Some(token) => {
            let (after, created_ms) = decode_list_token(node, token)?;
            if created_ms != stream.created_ms {
                return Err(riffle_proto::token::invalid_next_token());
            }
            Some(after)
        }
        None => None,
    };
    let state = stream.state();
    let (page, more) = consumers::page(&stream, &state, after.as_deref(), limit);
    let next_token = match (more, page.last()) {
        (true, Some(last)) => Some(riffle_proto::token::encode_page_token(
            &consumers::consumer_arn(&stream, last),
            stream.created_ms,
            now_ms(),
            &node.token_key,
        )),
        _ => None,
    };
    Ok(ListStreamConsumersOutput {
        consumers: page
            .iter()
            .map(|consumer| Consumer {
                consumer_name: consumer.name.clone(),
                consumer_arn: consumers::consumer_arn(&stream, consumer),
                consumer_status: consumers::status(node, consumer),
                consumer_creation_timestamp: timestamp(consumer.created_ms),
            })
            .collect(),
        next_token,
    })
}

/// SubscribeToShard: everything that can be refused is refused here, as a normal error
/// response; then the subscription streams (see `subscribe.rs`).
async fn subscribe_to_shard(
    node: &Arc<Node>,
    caller: &Caller,
    input: SubscribeToShardInput,
) -> Result<tokio::sync::mpsc::Receiver<Bytes>, Error> {
    let found = consumers::find_by_arn(
        node,
        caller,
        input.consumer_arn.as_deref().unwrap_or_default(),
    )?;
    if consumers::status(node, &found.consumer) != ConsumerStatus::Active {
        return Err(Error::resource_in_use(format!(
            "Consumer {} is not ACTIVE, instead in state {}.",
            found.arn(),
            consumers::status(node, &found.consumer)
        )));
    }
    let shard_arg = input.shard_id.as_deref().unwrap_or_default();
    let state = found.stream.state();
    let shard = riffle_proto::shard_id::parse_shard_id(shard_arg)
        .and_then(|ordinal| state.shard(ordinal).cloned())
        .ok_or_else(|| {
            Error::shard_not_found(
                &riffle_proto::shard_id::shard_id(
                    riffle_proto::shard_id::parse_shard_id(shard_arg).unwrap_or(0),
                ),
                &found.stream.name,
                &found.stream.account,
            )
        })?;
    let starting = input.starting_position.unwrap_or_default();
    let start = start_at(
        &found.stream,
        &shard,
        starting.position_type.as_deref().unwrap_or_default(),
        starting.sequence_number.as_deref(),
        starting.timestamp,
    )?;
    let position = data::start_position_anywhere(&shard, start).await?;
    if input.dry_run == Some(true) {
        return Err(Error::dry_run());
    }
    let ticket = node
        .subscriptions
        .begin(&found.arn(), shard.meta.ordinal, node.config.limits)
        .inspect_err(|_| found.stream.metrics.subscribe_rate_exceeded.inc())?;
    found.stream.metrics.subscribe_success.inc();
    Ok(crate::subscribe::start(
        Arc::clone(node),
        found,
        shard.meta.ordinal,
        position,
        ticket,
    ))
}

/// A stored record as GetRecords and SubscribeToShard show it.
pub(crate) fn record_shape(sequence_number: String, stored: StoredRecord) -> Record {
    Record {
        sequence_number,
        approximate_arrival_timestamp: Some(timestamp(stored.arrival_ms)),
        data: stored.data,
        partition_key: stored_partition_key(&stored.partition_key),
        // AWS marks a record only when it was stored encrypted; a plain record carries no
        // EncryptionType (as before encryption existed), which also keeps reads lean.
        encryption_type: stored.encrypted.then_some(EncryptionType::Kms),
    }
}

/// A stored record's partition key as readers see it: absent for a record written without one
/// (AWS: "GetRecords and SubscribeToShard return PartitionKey as an absent (null) value for
/// records written without one"), which only AUTO distribution accepts. Keys given are never
/// empty (the model's minimum length is 1), so an empty stored key means none.
pub(crate) fn stored_partition_key(stored: &[u8]) -> Option<String> {
    (!stored.is_empty()).then(|| String::from_utf8_lossy(stored).into_owned())
}

/// A child shard as GetRecords' and SubscribeToShard's `ChildShards` show it.
pub(crate) fn child_shape(child: &Shard) -> ChildShard {
    ChildShard {
        shard_id: child.id(),
        parent_shards: [child.meta.parent, child.meta.adjacent_parent]
            .into_iter()
            .flatten()
            .map(riffle_proto::shard_id::shard_id)
            .collect(),
        hash_key_range: HashKeyRange {
            starting_hash_key: child.meta.starting_hash_key.to_string(),
            ending_hash_key: child.meta.ending_hash_key.to_string(),
        },
    }
}

fn list_tags_for_stream(
    node: &Node,
    caller: &Caller,
    input: ListTagsForStreamInput,
) -> Result<ListTagsForStreamOutput, Error> {
    let stream = resolve_stream(
        node,
        caller,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
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

fn describe_limits(node: &Node, caller: &Caller) -> DescribeLimitsOutput {
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
