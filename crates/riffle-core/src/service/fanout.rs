//! Enhanced fan-out consumers: register, describe, list and deregister (the rules are in
//! `consumers.rs`).

use super::*;

pub(super) fn list_stream_consumers(
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

pub(super) async fn register(
    node: &Node,
    caller: &Caller,
    input: RegisterStreamConsumerInput,
) -> Result<RegisterStreamConsumerOutput, Error> {
    let found = consumers::register(
        node,
        caller,
        input.stream_arn.as_deref().unwrap_or_default(),
        input.consumer_name.as_deref().unwrap_or_default(),
        input.tags.unwrap_or_default(),
    )
    .await?;
    // AWS always answers CREATING; DescribeStreamConsumer shows when it is ACTIVE.
    Ok(RegisterStreamConsumerOutput {
        consumer: Consumer {
            consumer_name: found.consumer.name.clone(),
            consumer_arn: found.arn(),
            consumer_status: ConsumerStatus::Creating,
            consumer_creation_timestamp: timestamp(found.consumer.created_ms),
        },
    })
}

pub(super) fn describe(
    node: &Node,
    caller: &Caller,
    input: DescribeStreamConsumerInput,
) -> Result<DescribeStreamConsumerOutput, Error> {
    let found = consumers::find(
        node,
        caller,
        input.stream_arn.as_deref(),
        input.consumer_name.as_deref(),
        input.consumer_arn.as_deref(),
    )?;
    Ok(DescribeStreamConsumerOutput {
        consumer_description: ConsumerDescription {
            consumer_name: found.consumer.name.clone(),
            consumer_arn: found.arn(),
            consumer_status: consumers::status(node, &found.consumer),
            consumer_creation_timestamp: timestamp(found.consumer.created_ms),
            stream_arn: found.stream.arn.clone(),
        },
    })
}

/// DeregisterStreamConsumer (answered by [`super::call`]: it ends the consumer's
/// subscriptions, which need the node's `Arc`).
pub(super) async fn deregister(
    node: &Arc<Node>,
    caller: &Caller,
    input: DeregisterStreamConsumerInput,
) -> Result<(), Error> {
    let found = consumers::find(
        node,
        caller,
        input.stream_arn.as_deref(),
        input.consumer_name.as_deref(),
        input.consumer_arn.as_deref(),
    )?;
    consumers::deregister(node, found).await
}
