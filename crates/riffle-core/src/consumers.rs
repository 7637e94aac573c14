//! Enhanced fan-out consumers: RegisterStreamConsumer, DescribeStreamConsumer,
//! ListStreamConsumers, DeregisterStreamConsumer, with AWS's rules and texts.
//!
//! A consumer belongs to one stream and is persisted in the catalogue with its stream. Its ARN
//! is `{stream ARN}/consumer/{name}:{registration epoch seconds}`, so a consumer registered again
//! under the same name is a different consumer with a different ARN, and an ARN of a
//! deregistered consumer never names its successor.
//!
//! **Status.** A consumer is `CREATING` for the node's update window after it registers, then
//! `ACTIVE`; only an `ACTIVE` consumer may subscribe. Deregistering makes it `DELETING` for the
//! update window (then it is gone); with the default window of 0 a consumer is usable at once and
//! gone at once, except that RegisterStreamConsumer always answers `CREATING`, as AWS does.
//! Deregistering ends the consumer's subscriptions.

use std::sync::Arc;

use riffle_proto::limits;
use riffle_proto::ops::ConsumerStatus;

use crate::control::Caller;
use crate::meta::ConsumerMeta;
use crate::node::{now_ms, Node, Stream, StreamState};
use crate::Error;

/// A consumer found by ARN or by stream and name.
#[derive(Clone)]
pub struct FoundConsumer {
    pub stream: Arc<Stream>,
    pub consumer: ConsumerMeta,
}

impl FoundConsumer {
    pub fn arn(&self) -> String {
        consumer_arn(&self.stream, &self.consumer)
    }
}

/// The ARN of `consumer` on `stream`.
pub fn consumer_arn(stream: &Stream, consumer: &ConsumerMeta) -> String {
    riffle_proto::arn::consumer_arn(&stream.arn, &consumer.name, consumer.created_ms / 1000)
}

/// The consumer's status now, given the node's update window.
pub fn status(node: &Node, consumer: &ConsumerMeta) -> ConsumerStatus {
    let window_ms = node.config.update_window.as_millis() as u64;
    if consumer.deleting_ms.is_some() {
        ConsumerStatus::Deleting
    } else if now_ms() < consumer.created_ms.saturating_add(window_ms) {
        ConsumerStatus::Creating
    } else {
        ConsumerStatus::Active
    }
}

fn consumer_not_found(arn_or_name: &str) -> Error {
    Error::resource_not_found(format!("Consumer {arn_or_name} not found."))
}

/// The stream a consumer call's StreamARN names, in the caller's account.
fn stream_of_arn(node: &Node, caller: &Caller, stream_arn: &str) -> Result<Arc<Stream>, Error> {
    crate::control::resolve_stream(node, caller, None, Some(stream_arn))
}

/// Finds a consumer by `ConsumerARN`, or by `StreamARN` and `ConsumerName`. AWS also takes
/// `ConsumerARN` together with the others: the consumer ARN names the consumer, and a
/// `StreamARN` or `ConsumerName` beside it must be the consumer's.
pub fn find(
    node: &Node,
    caller: &Caller,
    stream_arn: Option<&str>,
    consumer_name: Option<&str>,
    consumer_arn: Option<&str>,
) -> Result<FoundConsumer, Error> {
    match (consumer_arn, stream_arn, consumer_name) {
        (Some(arn), stream_arn, name) => {
            // A mismatch is InvalidArgumentException, not ResourceNotFoundException: the request
            // contradicts itself whether or not the consumer exists, and AWS refuses arguments
            // that disagree with each other that way (a sequence number of another shard in
            // GetShardIterator, a NextToken beside a ShardFilter in ListShards). Checked on the
            // ARNs alone, before the look-up, so the answer does not depend on what exists.
            if let Some(parsed) = riffle_proto::arn::parse_consumer_arn(arn) {
                let disagrees = stream_arn.filter(|stream_arn| {
                    riffle_proto::arn::parse_stream_arn(stream_arn).as_ref() != Some(&parsed.stream)
                });
                if let Some(stream_arn) = disagrees {
                    return Err(Error::invalid_argument(format!(
                        "StreamARN {stream_arn} does not match the stream of ConsumerARN {arn}."
                    )));
                }
                if let Some(name) = name.filter(|name| *name != parsed.consumer_name) {
                    return Err(Error::invalid_argument(format!(
                        "ConsumerName {name} does not match the name of ConsumerARN {arn}."
                    )));
                }
            }
            find_by_arn(node, caller, arn)
        }
        (None, Some(stream_arn), Some(name)) => {
            let stream = stream_of_arn(node, caller, stream_arn)?;
            let state = stream.state();
            let consumer = state
                .consumers
                .iter()
                .find(|consumer| consumer.name == name)
                .cloned()
                .ok_or_else(|| consumer_not_found(name))?;
            Ok(FoundConsumer { stream, consumer })
        }
        (None, _, _) => Err(Error::invalid_argument(
            "Either ConsumerARN or both StreamARN and ConsumerName must be provided.".to_owned(),
        )),
    }
}

/// Finds a consumer by ARN (also for SubscribeToShard and tagging).
pub fn find_by_arn(node: &Node, caller: &Caller, arn: &str) -> Result<FoundConsumer, Error> {
    let parsed = riffle_proto::arn::parse_consumer_arn(arn)
        .ok_or_else(|| Error::invalid_argument(format!("Invalid ConsumerARN {arn}.")))?;
    if parsed.stream.region != caller.region {
        return Err(consumer_not_found(arn));
    }
    // A consumer of another account is reachable by its ARN, as its resource policy allows.
    let stream = node
        .stream(&parsed.stream.account, &parsed.stream.name)
        .ok_or_else(|| consumer_not_found(arn))?;
    let state = stream.state();
    let consumer = state
        .consumers
        .iter()
        .find(|consumer| {
            consumer.name == parsed.consumer_name
                && consumer.created_ms / 1000 == parsed.creation_epoch_s
        })
        .cloned()
        .ok_or_else(|| consumer_not_found(arn))?;
    authorize_consumer(caller, &stream, &consumer)?;
    Ok(FoundConsumer { stream, consumer })
}

/// Resource policy check for an operation on a consumer: the consumer's own policy decides.
pub(crate) fn authorize_consumer(
    caller: &Caller,
    stream: &Stream,
    consumer: &ConsumerMeta,
) -> Result<(), Error> {
    let policy = consumer
        .policy
        .as_deref()
        .map(crate::policy::ResourcePolicy::parse)
        .transpose()
        .map_err(|reason| {
            Error::internal(format!("a stored consumer policy does not parse: {reason}"))
        })?;
    crate::control::authorize(
        caller,
        &stream.account,
        &consumer_arn(stream, consumer),
        policy.as_ref(),
    )
}

/// RegisterStreamConsumer.
pub async fn register(
    node: &Node,
    caller: &Caller,
    stream_arn: &str,
    name: &str,
    tags: std::collections::BTreeMap<String, String>,
) -> Result<FoundConsumer, Error> {
    let stream = stream_of_arn(node, caller, stream_arn)?;
    crate::control::check_tags(
        tags.iter().flat_map(|(key, value)| [key, value]),
        true,
        &stream.name,
        &stream.account,
    )?;
    let _control = node.control().await;
    crate::control::check_active(node, &stream)?;
    let state = stream.state();
    if state.consumers.iter().any(|consumer| consumer.name == name) {
        return Err(Error::resource_in_use(format!(
            "Consumer {name} under stream {} already exists for account {}.",
            stream.name, stream.account
        )));
    }
    // 20, or 50 with On-demand Advantage; queues count as registered consumers.
    let consumers_max = crate::advantage::consumers_per_stream_max(node, &stream.account);
    let registered = state.consumers.len() + node.queues.count_on(&stream);
    if registered as u32 >= consumers_max {
        return Err(Error::limit_exceeded(format!(
            "Stream {} under account {} has reached its limit of {consumers_max} registered \
             consumers.",
            stream.name, stream.account
        )));
    }
    let creating = node
        .streams_of(&caller.account)
        .iter()
        .flat_map(|stream| stream.state().consumers.clone())
        .filter(|consumer| status(node, consumer) == ConsumerStatus::Creating)
        .count() as u32;
    if creating >= limits::CONSUMERS_CREATING_MAX {
        return Err(Error::limit_exceeded(format!(
            "Account {} has {creating} consumers in CREATING status; the limit is {}.",
            caller.account,
            limits::CONSUMERS_CREATING_MAX
        )));
    }
    // ARNs carry whole seconds: a consumer registered again within the second of its
    // predecessor's registration waits for the next second, so the two ARNs differ.
    let mut created_ms = now_ms();
    let taken_second = |ms: u64| {
        state
            .consumers
            .iter()
            .any(|consumer| consumer.name == name && consumer.created_ms / 1000 == ms / 1000)
    };
    while taken_second(created_ms) {
        created_ms = (created_ms / 1000 + 1) * 1000;
    }
    let consumer = ConsumerMeta {
        name: name.to_owned(),
        created_ms,
        tags,
        deleting_ms: None,
        policy: None,
    };
    let added = consumer.clone();
    node.update_stream(&stream, |state| state.consumers.push(added))
        .await?;
    Ok(FoundConsumer { stream, consumer })
}

/// How long a deregistered consumer must still be kept so that it is removed no earlier than
/// the second after its registration second. ARNs carry that second, so a consumer registered
/// again under the same name after the removal gets a different ARN, and the old ARN never
/// names the new consumer. (While it is kept, registering the name again is refused.)
fn until_next_second(consumer: &ConsumerMeta) -> std::time::Duration {
    let next_second_ms = (consumer.created_ms / 1000 + 1) * 1000;
    std::time::Duration::from_millis(next_second_ms.saturating_sub(now_ms()))
}

/// DeregisterStreamConsumer: the consumer's subscriptions end at once.
pub async fn deregister(node: &Arc<Node>, found: FoundConsumer) -> Result<(), Error> {
    let window = node.config.update_window;
    if window.is_zero() {
        // Removed at once, but not within its registration second (see `until_next_second`).
        tokio::time::sleep(until_next_second(&found.consumer)).await;
    }
    let _control = node.control().await;
    let arn = found.arn();
    let matches = |consumer: &ConsumerMeta| {
        consumer.name == found.consumer.name && consumer.created_ms == found.consumer.created_ms
    };
    if !found.stream.state().consumers.iter().any(&matches) {
        return Err(consumer_not_found(&arn));
    }
    if window.is_zero() {
        node.update_stream(&found.stream, |state| {
            state.consumers.retain(|consumer| !matches(consumer))
        })
        .await?;
    } else {
        let now = now_ms();
        node.update_stream(&found.stream, |state| {
            for consumer in state.consumers.iter_mut().filter(|c| matches(c)) {
                consumer.deleting_ms = Some(now);
            }
        })
        .await?;
        let node = Arc::clone(node);
        let stream = Arc::clone(&found.stream);
        let consumer = found.consumer.clone();
        tokio::spawn(async move {
            tokio::time::sleep(window).await;
            tokio::time::sleep(until_next_second(&consumer)).await;
            let _control = node.control().await;
            let result = node
                .update_stream(&stream, |state| {
                    state.consumers.retain(|c| {
                        !(c.name == consumer.name && c.created_ms == consumer.created_ms)
                    })
                })
                .await;
            if let Err(error) = result {
                tracing::warn!(consumer = %consumer.name, %error, "could not finish deregistering");
            }
        });
    }
    node.subscriptions.end_consumer(&arn);
    Ok(())
}

/// The consumers a ListStreamConsumers page shows after `after_arn` (exclusive), at most `limit`,
/// and whether more follow.
pub fn page(
    stream: &Stream,
    state: &StreamState,
    after_arn: Option<&str>,
    limit: usize,
) -> (Vec<ConsumerMeta>, bool) {
    let mut all: Vec<&ConsumerMeta> = state.consumers.iter().collect();
    all.sort_by_key(|consumer| consumer_arn(stream, consumer));
    let start = after_arn.map_or(0, |after| {
        all.iter()
            .position(|consumer| consumer_arn(stream, consumer).as_str() > after)
            .unwrap_or(all.len())
    });
    let rest = &all[start..];
    let page = rest.iter().take(limit).map(|c| (*c).clone()).collect();
    (page, rest.len() > limit)
}

/// Whether a tagging call's ResourceARN names an enhanced fan-out consumer (the model's
/// TagResource, UntagResource and ListTagsForResource take data streams, queues, channels
/// and consumers).
pub fn is_consumer_arn(arn: Option<&str>) -> bool {
    arn.is_some_and(|arn| riffle_proto::arn::parse_consumer_arn(arn).is_some())
}

/// Applies `change` to the consumer `found` names, as it is now under the control lock: a
/// consumer deregistered (or registered anew under the same name) since it was found is
/// ResourceNotFound, not changed.
async fn update_consumer(
    node: &Node,
    found: &FoundConsumer,
    change: impl FnOnce(&mut ConsumerMeta) -> Result<(), Error>,
) -> Result<(), Error> {
    let _control = node.control().await;
    let (name, created_ms) = (&found.consumer.name, found.consumer.created_ms);
    let state = found.stream.state();
    let mut consumer = state
        .consumers
        .iter()
        .find(|consumer| &consumer.name == name && consumer.created_ms == created_ms)
        .cloned()
        .ok_or_else(|| consumer_not_found(&found.arn()))?;
    drop(state);
    change(&mut consumer)?;
    node.update_stream(&found.stream, |state| {
        for current in &mut state.consumers {
            if &current.name == name && current.created_ms == created_ms {
                *current = consumer.clone();
            }
        }
    })
    .await
}

/// TagResource on a consumer: adds or replaces tags, at most 50 in all, as for streams.
pub async fn tag(
    node: &Node,
    caller: &Caller,
    arn: &str,
    tags: std::collections::BTreeMap<String, String>,
) -> Result<(), Error> {
    let found = find_by_arn(node, caller, arn)?;
    crate::control::check_tags(
        tags.iter().flat_map(|(key, value)| [key, value]),
        true,
        &found.stream.name,
        &found.stream.account,
    )?;
    update_consumer(node, &found, |consumer| {
        let added = tags
            .keys()
            .filter(|key| !consumer.tags.contains_key(*key))
            .count();
        if consumer.tags.len() + added > limits::TAGS_PER_RESOURCE_MAX {
            // The stream's limit and error type, naming the consumer.
            return Err(Error::invalid_argument(format!(
                "Failed to add tags to consumer {} of stream {} under account {} because a \
                 given consumer cannot have more than {} tags associated with it.",
                consumer.name,
                found.stream.name,
                found.stream.account,
                limits::TAGS_PER_RESOURCE_MAX
            )));
        }
        consumer.tags.extend(tags);
        Ok(())
    })
    .await
}

/// UntagResource on a consumer; keys it does not have are ignored, as for streams.
pub async fn untag(node: &Node, caller: &Caller, arn: &str, keys: &[String]) -> Result<(), Error> {
    let found = find_by_arn(node, caller, arn)?;
    crate::control::check_tags(
        keys.iter(),
        false,
        &found.stream.name,
        &found.stream.account,
    )?;
    update_consumer(node, &found, |consumer| {
        for key in keys {
            consumer.tags.remove(key);
        }
        Ok(())
    })
    .await
}

/// ListTagsForResource on a consumer.
pub fn tags(
    node: &Node,
    caller: &Caller,
    arn: &str,
) -> Result<riffle_proto::ops::ListTagsForResourceOutput, Error> {
    let found = find_by_arn(node, caller, arn)?;
    Ok(riffle_proto::ops::ListTagsForResourceOutput {
        tags: found
            .consumer
            .tags
            .iter()
            .map(|(key, value)| riffle_proto::ops::Tag {
                key: key.clone(),
                value: Some(value.clone()),
            })
            .collect(),
    })
}
