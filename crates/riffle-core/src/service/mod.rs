//! One handler per Kinesis operation: wire shapes in, wire shapes out.
//!
//! [`call`] decodes the body with `riffle-proto` (wire-format and model validation happen
//! there), runs the operation against the [`Node`], and encodes the answer in the request's
//! [`WireFormat`] (JSON or CBOR). Everything here is the semantic layer AWS applies after its
//! model validation: stream look-up by name or ARN, limits, retention and tag rules, routing
//! and reads.
//!
//! `call_operation` is the table from operation to handler; the handlers live by what they
//! act on: [`streams`] (streams, shards, resharding, retention, stream tags, encryption),
//! [`records`] (puts, iterators, reads, SubscribeToShard), [`fanout`] (enhanced fan-out
//! consumers), [`resources`] (tags and policies by ResourceARN, whatever it names); queues,
//! channels, enhanced monitoring and account settings have modules of their own in the crate.

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

mod fanout;
mod records;
mod resources;
mod streams;

pub(crate) use records::{child_shape, record_shape, stored_partition_key};

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
        Request::SubscribeToShard(input) => records::subscribe_to_shard(node, caller, input)
            .await
            .map(Answer::Events),
        Request::DeregisterStreamConsumer(input) => {
            fanout::deregister(node, caller, input).await?;
            Ok(Answer::Body(Vec::new()))
        }
        request => call_operation(node, caller, format, request)
            .await
            .map(Answer::Body),
    }
}

/// Dispatches one decoded request to its handler: the table of every operation but the two
/// [`call`] answers itself.
async fn call_operation(
    node: &Node,
    caller: &Caller,
    format: WireFormat,
    request: Request,
) -> Result<Vec<u8>, Error> {
    // Void operations answer an empty body (kinesis-api.md §1.1), not `null`.
    Ok(match request {
        // Streams and shards (streams.rs; the rules in control.rs).
        Request::CreateStream(input) => {
            streams::create_stream(node, caller, input).await?;
            Vec::new()
        }
        Request::DeleteStream(input) => {
            streams::delete_stream(node, caller, input).await?;
            Vec::new()
        }
        Request::DescribeStream(input) => {
            encode(format, streams::describe_stream(node, caller, input)?)
        }
        Request::DescribeStreamSummary(input) => encode(
            format,
            streams::describe_stream_summary(node, caller, input)?,
        ),
        Request::ListStreams(input) => encode(format, streams::list_streams(node, caller, input)?),
        Request::ListShards(input) => encode(format, streams::list_shards(node, caller, input)?),
        Request::IncreaseStreamRetentionPeriod(input) => {
            streams::increase_retention(node, caller, input).await?;
            Vec::new()
        }
        Request::DecreaseStreamRetentionPeriod(input) => {
            streams::decrease_retention(node, caller, input).await?;
            Vec::new()
        }
        Request::AddTagsToStream(input) => {
            streams::add_tags_to_stream(node, caller, input).await?;
            Vec::new()
        }
        Request::RemoveTagsFromStream(input) => {
            streams::remove_tags_from_stream(node, caller, input).await?;
            Vec::new()
        }
        Request::ListTagsForStream(input) => {
            encode(format, streams::list_tags_for_stream(node, caller, input)?)
        }
        Request::UpdateMaxRecordSize(input) => {
            streams::update_max_record_size(node, caller, input).await?;
            Vec::new()
        }
        Request::UpdateStreamRecordDistributionStrategy(input) => {
            streams::update_record_distribution(node, caller, input).await?;
            Vec::new()
        }
        Request::SplitShard(input) => {
            streams::split_shard(node, caller, input).await?;
            Vec::new()
        }
        Request::MergeShards(input) => {
            streams::merge_shards(node, caller, input).await?;
            Vec::new()
        }
        Request::UpdateShardCount(input) => encode(
            format,
            streams::update_shard_count(node, caller, input).await?,
        ),
        Request::UpdateStreamMode(input) => {
            streams::update_stream_mode(node, caller, input).await?;
            Vec::new()
        }
        Request::StartStreamEncryption(input) => {
            streams::start_encryption(node, caller, input).await?;
            Vec::new()
        }
        Request::StopStreamEncryption(input) => {
            streams::stop_encryption(node, caller, input).await?;
            Vec::new()
        }
        Request::DescribeLimits(_) => encode(format, streams::describe_limits(node, caller)),
        // Records (records.rs; routing and reads in data.rs).
        Request::PutRecord(input) => {
            encode(format, records::put_record(node, caller, input).await?)
        }
        Request::PutRecords(input) => {
            encode(format, records::put_records(node, caller, input).await?)
        }
        Request::GetShardIterator(input) => encode(
            format,
            records::get_shard_iterator(node, caller, input).await?,
        ),
        Request::GetRecords(input) => {
            records::get_records_answer(node, caller, format, input).await?
        }
        // Enhanced fan-out consumers (fanout.rs; the rules in consumers.rs).
        Request::RegisterStreamConsumer(input) => {
            encode(format, fanout::register(node, caller, input).await?)
        }
        Request::DescribeStreamConsumer(input) => {
            encode(format, fanout::describe(node, caller, input)?)
        }
        Request::ListStreamConsumers(input) => {
            encode(format, fanout::list_stream_consumers(node, caller, input)?)
        }
        // Tags and policies by ResourceARN, whatever it names (resources.rs).
        Request::TagResource(input) => {
            resources::tag_resource(node, caller, input).await?;
            Vec::new()
        }
        Request::UntagResource(input) => {
            resources::untag_resource(node, caller, input).await?;
            Vec::new()
        }
        Request::ListTagsForResource(input) => {
            resources::list_tags_for_resource(node, caller, format, input)?
        }
        Request::PutResourcePolicy(input) => {
            resources::put_resource_policy(node, caller, input).await?;
            Vec::new()
        }
        Request::GetResourcePolicy(input) => {
            encode(format, resources::get_resource_policy(node, caller, input)?)
        }
        Request::DeleteResourcePolicy(input) => {
            resources::delete_resource_policy(node, caller, input).await?;
            Vec::new()
        }
        // Enhanced monitoring (metrics.rs) and accounts, On-demand Advantage (advantage.rs).
        Request::EnableEnhancedMonitoring(input) => encode(
            format,
            metrics::change_enhanced_monitoring(node, caller, input, true).await?,
        ),
        Request::DisableEnhancedMonitoring(input) => encode(
            format,
            metrics::change_enhanced_monitoring(node, caller, input, false).await?,
        ),
        Request::DescribeAccountSettings(_) => encode(
            format,
            DescribeAccountSettingsOutput {
                minimum_throughput_billing_commitment: Some(advantage::commitment(
                    node,
                    &caller.account,
                )),
            },
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
            let arn = input.channel_arn.as_deref().unwrap_or_default();
            channels::delete(node, caller, arn).await?;
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
        // Queues (queues/).
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
        Request::SubscribeToShard(_) | Request::DeregisterStreamConsumer(_) => {
            unreachable!("answered by `call`")
        }
    })
}

/// The stream a request names by its StreamName and StreamARN members (see
/// [`resolve_stream`] for the rules when it gives both, or neither).
fn stream_of(
    node: &Node,
    caller: &Caller,
    name: &Option<String>,
    arn: &Option<String>,
) -> Result<Arc<Stream>, Error> {
    resolve_stream(node, caller, name.as_deref(), arn.as_deref())
}

fn encode<T: serde::Serialize>(format: WireFormat, output: T) -> Vec<u8> {
    format.encode(&output)
}

fn hours(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from_epoch_ms(i64::try_from(ms).unwrap_or(i64::MAX))
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
