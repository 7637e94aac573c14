//! Tags and resource policies by ResourceARN: a stream, a consumer, a queue or a channel.

use super::*;

/// Whether a ResourceARN names a queue (tags and policies then go to `crate::queues`).
pub(super) fn is_queue_arn(arn: Option<&str>) -> bool {
    arn.and_then(riffle_proto::arn::parse_queue_arn).is_some()
}

/// What a resource-policy call's ResourceARN names.
pub(super) enum PolicyTarget {
    Stream(Arc<Stream>),
    Consumer(consumers::FoundConsumer),
}

pub(super) fn policy_target(
    node: &Node,
    caller: &Caller,
    arn: &str,
) -> Result<PolicyTarget, Error> {
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
pub(super) async fn set_policy(
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
pub(super) fn resource_stream(
    node: &Node,
    caller: &Caller,
    arn: &str,
) -> Result<Arc<Stream>, Error> {
    match riffle_proto::arn::parse_stream_arn(arn) {
        Some(_) => resolve_stream(node, caller, None, Some(arn)),
        None => Err(Error::invalid_argument(format!(
            "Invalid ResourceARN {arn}: tags go on streams, consumers, queues and channels."
        ))),
    }
}

pub(super) async fn tag_resource(
    node: &Node,
    caller: &Caller,
    input: TagResourceInput,
) -> Result<(), Error> {
    let arn = input.resource_arn.as_deref().unwrap_or_default();
    let tags = input.tags.unwrap_or_default();
    match resource_kind(input.resource_arn.as_deref()) {
        ResourceKind::Queue => crate::queues::tag(node, caller, arn, tags).await,
        ResourceKind::Channel => channels::tag(node, caller, arn, tags).await,
        ResourceKind::Consumer => consumers::tag(node, caller, arn, tags).await,
        ResourceKind::Other => {
            let stream = resource_stream(node, caller, arn)?;
            control::add_tags(node, &stream, tags).await
        }
    }
}

pub(super) async fn untag_resource(
    node: &Node,
    caller: &Caller,
    input: UntagResourceInput,
) -> Result<(), Error> {
    let arn = input.resource_arn.as_deref().unwrap_or_default();
    let keys = input.tag_keys.unwrap_or_default();
    match resource_kind(input.resource_arn.as_deref()) {
        ResourceKind::Queue => crate::queues::untag(node, caller, arn, &keys).await,
        ResourceKind::Channel => channels::untag(node, caller, arn, &keys).await,
        ResourceKind::Consumer => consumers::untag(node, caller, arn, &keys).await,
        ResourceKind::Other => {
            let stream = resource_stream(node, caller, arn)?;
            control::remove_tags(node, &stream, &keys).await
        }
    }
}

/// ListTagsForResource, encoded (each kind of resource answers its own output shape).
pub(super) fn list_tags_for_resource(
    node: &Node,
    caller: &Caller,
    format: WireFormat,
    input: ListTagsForResourceInput,
) -> Result<Vec<u8>, Error> {
    let arn = input.resource_arn.as_deref().unwrap_or_default();
    Ok(match resource_kind(input.resource_arn.as_deref()) {
        ResourceKind::Queue => encode(format, crate::queues::tags(node, caller, arn)?),
        ResourceKind::Channel => encode(format, channels::tags(node, caller, arn)?),
        ResourceKind::Consumer => encode(format, consumers::tags(node, caller, arn)?),
        ResourceKind::Other => {
            let stream = resource_stream(node, caller, arn)?;
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
    })
}

fn parse_policy(text: &str) -> Result<crate::policy::ResourcePolicy, Error> {
    crate::policy::ResourcePolicy::parse(text)
        .map_err(|reason| Error::invalid_argument(format!("Invalid resource policy: {reason}")))
}

pub(super) async fn put_resource_policy(
    node: &Node,
    caller: &Caller,
    input: PutResourcePolicyInput,
) -> Result<(), Error> {
    let arn = input.resource_arn.as_deref().unwrap_or_default();
    let text = input.policy.unwrap_or_default();
    let parsed = parse_policy(&text)?;
    if is_queue_arn(input.resource_arn.as_deref()) {
        return crate::queues::set_policy(node, caller, arn, Some(text)).await;
    }
    set_policy(node, caller, arn, Some(parsed)).await
}

pub(super) fn get_resource_policy(
    node: &Node,
    caller: &Caller,
    input: GetResourcePolicyInput,
) -> Result<GetResourcePolicyOutput, Error> {
    let arn = input.resource_arn.as_deref().unwrap_or_default();
    let policy = if is_queue_arn(input.resource_arn.as_deref()) {
        crate::queues::policy(node, caller, arn)?
    } else {
        match policy_target(node, caller, arn)? {
            PolicyTarget::Stream(stream) => stream
                .state()
                .policy
                .as_ref()
                .map(|policy| policy.text.clone()),
            PolicyTarget::Consumer(found) => found.consumer.policy.clone(),
        }
    };
    // The model makes Policy required: a resource without one shows an empty document.
    Ok(GetResourcePolicyOutput {
        policy: policy.unwrap_or_else(|| "{}".to_owned()),
    })
}

pub(super) async fn delete_resource_policy(
    node: &Node,
    caller: &Caller,
    input: DeleteResourcePolicyInput,
) -> Result<(), Error> {
    let arn = input.resource_arn.as_deref().unwrap_or_default();
    if is_queue_arn(input.resource_arn.as_deref()) {
        return crate::queues::set_policy(node, caller, arn, None).await;
    }
    set_policy(node, caller, arn, None).await
}

/// What a tagging call's ResourceARN names, by its form (a stream's, or one that is none of
/// these, is looked up as a stream, which refuses the latter).
enum ResourceKind {
    Queue,
    Channel,
    Consumer,
    Other,
}

fn resource_kind(arn: Option<&str>) -> ResourceKind {
    if is_queue_arn(arn) {
        ResourceKind::Queue
    } else if channels::is_channel_arn(arn) {
        ResourceKind::Channel
    } else if consumers::is_consumer_arn(arn) {
        ResourceKind::Consumer
    } else {
        ResourceKind::Other
    }
}
