//! Channels: CreateChannel, UpdateChannel, DeleteChannel, DescribeChannel, ListChannels, with
//! AWS's rules. The delivery itself is in [`crate::delivery`].
//!
//! A channel is a catalogue entry of its own ([`ChannelMeta`], keyed by account and name), so
//! it replicates with the rest of the catalogue; every change is a [`Command`] through
//! `Node::propose`, decided here on the state read under the control lock.
//!
//! **Status.** `DELETING` once DeleteChannel was called, until the delivery task has stopped and
//! the entry is removed; `FAILED` while the destination refuses objects for a reason that
//! retrying cannot fix (the reason is shown); `CREATING` until the delivery task has recorded
//! its starting positions (and the node's create window has passed); `UPDATING` for the node's
//! update window after UpdateChannel; else `ACTIVE`. CreateChannel always answers `CREATING`
//! and UpdateChannel `UPDATING`, as AWS does.

use std::collections::BTreeMap;

use riffle_proto::ops::{
    ChannelDescription, ChannelDescriptionOutput, ChannelDestinationType,
    ChannelEncryptionConfiguration, ChannelLoggingConfiguration, ChannelStatus,
    ChannelStreamDescription, ChannelStreamIdentifier, ChannelSummary, CloudWatchLogs,
    CreateChannelInput, DeadLetterQueueS3Configuration, ListChannelsInput, ListChannelsOutput,
    ListTagsForResourceOutput, RecordConfiguration, RecordFormatType, S3CompressionType,
    S3DestinationDescription, S3StorageConfiguration, Tag, UpdateChannelInput,
};
use riffle_proto::{limits, Timestamp};
use serde::{Deserialize, Serialize};

use crate::catalogue::Command;
use crate::control::{resolve_stream, Caller};
use crate::meta::StreamMode;
use crate::node::{now_ms, Node};
use crate::Error;

/// DataFreshnessInSeconds when a request leaves it out (the model's documented default).
pub const FRESHNESS_DEFAULT_S: u32 = 300;
/// The range AWS accepts for DataFreshnessInSeconds.
pub const FRESHNESS_MIN_S: u32 = 300;
pub const FRESHNESS_MAX_S: u32 = 900;
/// The dead-letter prefix when DeadLetterQueueS3Configuration leaves ErrorOutputPrefix out
/// (or is left out, when it is the destination bucket).
pub const DEFAULT_ERROR_PREFIX: &str = "kinesis-channel-errors/";
/// AWS's key template when OutputKeyTemplate is left out (Kinesis Data Streams developer
/// guide, "S3 output key template").
pub const DEFAULT_KEY_TEMPLATE: &str = "kinesis-channel/!{channel-name}/!{channel-id}/!{yyyy}/!{MM}/!{dd}/!{HH}/!{channel-name}-!{channel-id}-!{yyyy}-!{MM}-!{dd}-!{HH}-!{mm}!{extension}";
/// The variables a key template may use.
pub const KEY_TEMPLATE_VARIABLES: &[&str] = &[
    "channel-name",
    "channel-id",
    "yyyy",
    "MM",
    "dd",
    "HH",
    "mm",
    "extension",
];
/// S3 channels one stream may have (AWS's quota at launch: one S3 and one S3 Tables channel).
const CHANNELS_PER_STREAM_MAX: usize = 1;
/// Channels per account a ListChannels page shows at most.
const LIST_PAGE_MAX: usize = 100;

/// A channel as the catalogue holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelMeta {
    pub account: String,
    pub name: String,
    /// A UUID; names the channel's delivery state under `DATA/channels/`.
    pub channel_id: String,
    pub created_ms: u64,
    pub role_arn: String,
    /// The source stream: its ARN as given, its name and creation time (its incarnation).
    pub stream_arn: String,
    pub stream_name: String,
    pub stream_created_ms: u64,
    /// JSON, STRING or BYTE_ARRAY.
    pub record_format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsr_schema_arn: Option<String>,
    pub s3: S3Meta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    pub logging: LoggingMeta,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// When delivery started (its starting positions are durable); `None` while creating.
    #[serde(default)]
    pub active_ms: Option<u64>,
    /// The last UpdateChannel.
    #[serde(default)]
    pub updated_ms: Option<u64>,
    /// DeleteChannel was called then; the entry goes once delivery stopped.
    #[serde(default)]
    pub deleting_ms: Option<u64>,
    /// Why delivery fails, while it does.
    #[serde(default)]
    pub failure: Option<String>,
}

/// The S3 destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Meta {
    pub bucket_arn: String,
    pub expected_bucket_owner: String,
    #[serde(default)]
    pub key_template: Option<String>,
    #[serde(default)]
    pub storage_class: Option<String>,
    /// NONE, GZIP or ZSTD.
    pub compression: String,
    pub freshness_s: u32,
    #[serde(default)]
    pub dead_letter: Option<DeadLetterMeta>,
}

/// Where records that cannot be delivered go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterMeta {
    pub bucket_arn: String,
    pub expected_bucket_owner: String,
    #[serde(default)]
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggingMeta {
    pub enabled: bool,
    #[serde(default)]
    pub log_group: Option<String>,
    #[serde(default)]
    pub log_stream: Option<String>,
}

impl ChannelMeta {
    pub fn arn(&self, region: &str) -> String {
        channel_arn(region, &self.account, &self.name)
    }

    /// The destination bucket's name.
    pub fn bucket(&self) -> &str {
        bucket_of_arn(&self.s3.bucket_arn)
    }

    /// The dead-letter bucket and key prefix (AWS's default: the destination bucket with an
    /// error prefix).
    pub fn dead_letter(&self) -> (String, String) {
        match &self.s3.dead_letter {
            Some(dlq) => (
                bucket_of_arn(&dlq.bucket_arn).to_owned(),
                dlq.prefix
                    .clone()
                    .unwrap_or_else(|| DEFAULT_ERROR_PREFIX.to_owned()),
            ),
            None => (self.bucket().to_owned(), DEFAULT_ERROR_PREFIX.to_owned()),
        }
    }

    pub fn key_template(&self) -> &str {
        self.s3
            .key_template
            .as_deref()
            .unwrap_or(DEFAULT_KEY_TEMPLATE)
    }
}

/// `arn:aws:kinesis:REGION:ACCOUNT:channel/NAME`.
pub fn channel_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:kinesis:{region}:{account}:channel/{name}")
}

/// The bucket of an S3 bucket ARN (`arn:aws:s3:::NAME`; the model's pattern was checked).
pub fn bucket_of_arn(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

/// (region, account, name) of a channel ARN, if it is one.
fn parse_channel_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let rest = arn.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let _partition = parts.next()?;
    if parts.next()? != "kinesis" {
        return None;
    }
    let region = parts.next()?;
    let account = parts.next()?;
    let name = parts.next()?.strip_prefix("channel/")?;
    Some((region, account, name))
}

fn channel_not_found(arn: &str) -> Error {
    Error::resource_not_found(format!("Channel {arn} not found."))
}

/// The channel `arn` names, in the caller's account and region.
pub fn find(node: &Node, caller: &Caller, arn: &str) -> Result<ChannelMeta, Error> {
    let (region, account, name) = parse_channel_arn(arn)
        .ok_or_else(|| Error::invalid_argument(format!("Invalid ChannelARN {arn}.")))?;
    if region != caller.region || account != caller.account {
        return Err(channel_not_found(arn));
    }
    node.channel(account, name)
        .ok_or_else(|| channel_not_found(arn))
}

/// The channel's status now.
pub fn status(node: &Node, channel: &ChannelMeta) -> ChannelStatus {
    let now = now_ms();
    let create_window = node.config.create_window.as_millis() as u64;
    let update_window = node.config.update_window.as_millis() as u64;
    if channel.deleting_ms.is_some() {
        ChannelStatus::Deleting
    } else if channel.failure.is_some() {
        ChannelStatus::Failed
    } else if channel.active_ms.is_none() || now < channel.created_ms.saturating_add(create_window)
    {
        ChannelStatus::Creating
    } else if channel
        .updated_ms
        .is_some_and(|updated| now < updated.saturating_add(update_window))
    {
        ChannelStatus::Updating
    } else {
        ChannelStatus::Active
    }
}

fn check_freshness(seconds: i32) -> Result<u32, Error> {
    u32::try_from(seconds)
        .ok()
        .filter(|s| (FRESHNESS_MIN_S..=FRESHNESS_MAX_S).contains(s))
        .ok_or_else(|| {
            Error::invalid_argument(format!(
                "DataFreshnessInSeconds {seconds} is out of range: it must be between \
                 {FRESHNESS_MIN_S} and {FRESHNESS_MAX_S} seconds."
            ))
        })
}

/// Checks a key template beyond the model's pattern: known variables only, balanced, at
/// least one variable, no path traversal, not a folder.
pub fn check_key_template(template: &str) -> Result<(), Error> {
    let refuse = |why: &str| {
        Err(Error::invalid_argument(format!(
            "Invalid OutputKeyTemplate {template}: {why}"
        )))
    };
    if template.starts_with('/') || template.ends_with('/') {
        return refuse("it must not start or end with '/'.");
    }
    if template.contains("..") || template.contains("./") {
        return refuse("it must not contain '..' or './'.");
    }
    let mut variables = 0;
    let mut rest = template;
    while let Some(at) = rest.find("!{") {
        if rest[..at].contains(['{', '}']) {
            return refuse("braces are only for !{variable}.");
        }
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return refuse("every '!{' needs a matching '}'.");
        };
        let name = &after[..end];
        if !KEY_TEMPLATE_VARIABLES.contains(&name) {
            return refuse(&format!(
                "unknown variable !{{{name}}}; known: {}.",
                KEY_TEMPLATE_VARIABLES
                    .iter()
                    .map(|v| format!("!{{{v}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        variables += 1;
        rest = &after[end + 1..];
    }
    if rest.contains(['{', '}']) {
        return refuse("braces are only for !{variable}.");
    }
    if variables == 0 {
        return refuse("it must contain at least one variable.");
    }
    Ok(())
}

/// CreateChannel: decided and proposed under the control lock.
pub async fn create(
    node: &Node,
    caller: &Caller,
    input: CreateChannelInput,
) -> Result<ChannelDescriptionOutput, Error> {
    let name = input.channel_name.unwrap_or_default();
    let configs = input.stream_configuration_list.unwrap_or_default();
    let (s3, tables) = (
        input.s3_destination_configuration,
        input.s3_tables_destination_configuration,
    );
    if s3.is_some() == tables.is_some() {
        return Err(Error::invalid_argument(
            "You must specify either S3DestinationConfiguration or \
             S3TablesDestinationConfiguration, but not both."
                .to_owned(),
        ));
    }
    let Some(s3) = s3 else {
        return Err(Error::invalid_argument(
            "S3TablesDestinationConfiguration is not supported by this server: delivery to \
             Apache Iceberg tables (Amazon S3 Tables) is not available. Use \
             S3DestinationConfiguration."
                .to_owned(),
        ));
    };
    let [config] = configs.as_slice() else {
        return Err(Error::invalid_argument(format!(
            "StreamConfigurationList has {} entries: a channel currently reads exactly one stream.",
            configs.len()
        )));
    };
    let record = config.record_configuration.clone().unwrap_or_default();
    let format = record.record_format_type.clone().unwrap_or_default();
    if format == RecordFormatType::GsrJson.as_str() {
        return Err(Error::invalid_argument(
            "RecordFormatType GSR_JSON is supported only for streaming table (Amazon S3 \
             Tables) destinations."
                .to_owned(),
        ));
    }
    let storage = s3.storage_configuration.clone().unwrap_or_default();
    let freshness_s = match s3.data_freshness_in_seconds {
        Some(seconds) => check_freshness(seconds)?,
        None => FRESHNESS_DEFAULT_S,
    };
    if let Some(template) = &storage.output_key_template {
        check_key_template(template)?;
    }
    let kms_key_id = match &input.encryption_configuration {
        Some(encryption) => {
            let key = encryption.key_id.clone().unwrap_or_default();
            if key == "alias/aws/kinesis" || key.ends_with(":alias/aws/kinesis") {
                return Err(Error::invalid_argument(
                    "You cannot use the Amazon Kinesis Data Streams service key (aws/kinesis) \
                     for channel encryption; use a customer managed KMS key."
                        .to_owned(),
                ));
            }
            Some(key)
        }
        None => None,
    };
    let stream_arn = config.stream_arn.clone().unwrap_or_default();
    let _control = node.control().await;
    let stream = resolve_stream(node, caller, None, Some(&stream_arn))?;
    if stream.state().mode != StreamMode::OnDemand {
        return Err(Error::invalid_argument(format!(
            "Stream {} under account {} is in PROVISIONED mode: channels are only supported for \
             data streams with the on-demand capacity mode.",
            stream.name, stream.account
        )));
    }
    if node.channel(&caller.account, &name).is_some() {
        return Err(Error::resource_in_use(format!(
            "Channel {name} under account {} already exists.",
            caller.account
        )));
    }
    let on_stream = node
        .channels()
        .into_iter()
        .filter(|channel| {
            channel.account == stream.account
                && channel.stream_name == stream.name
                && channel.stream_created_ms == stream.created_ms
        })
        .count();
    if on_stream >= CHANNELS_PER_STREAM_MAX {
        return Err(Error::limit_exceeded(format!(
            "Stream {} under account {} already has {on_stream} channel(s) delivering to \
             general purpose S3 buckets, the most allowed.",
            stream.name, stream.account
        )));
    }
    let logging = logging_meta(input.logging_configuration.as_ref());
    let meta = ChannelMeta {
        account: caller.account.clone(),
        name: name.clone(),
        channel_id: uuid::Uuid::new_v4().to_string(),
        created_ms: now_ms(),
        role_arn: input.service_execution_role_arn.unwrap_or_default(),
        stream_arn: stream.arn.clone(),
        stream_name: stream.name.clone(),
        stream_created_ms: stream.created_ms,
        record_format: format,
        gsr_schema_arn: record.gsr_schema_arn,
        s3: S3Meta {
            bucket_arn: storage.bucket_arn.unwrap_or_default(),
            expected_bucket_owner: storage.expected_bucket_owner.unwrap_or_default(),
            key_template: storage.output_key_template,
            storage_class: storage.storage_class,
            compression: storage.compression_type.unwrap_or_default(),
            freshness_s,
            dead_letter: s3
                .dead_letter_queue_s3_configuration
                .map(|dlq| DeadLetterMeta {
                    bucket_arn: dlq.bucket_arn.unwrap_or_default(),
                    expected_bucket_owner: dlq.expected_bucket_owner.unwrap_or_default(),
                    prefix: dlq.error_output_prefix,
                }),
        },
        kms_key_id,
        logging,
        tags: input.tags.unwrap_or_default(),
        active_ms: None,
        updated_ms: None,
        deleting_ms: None,
        failure: None,
    };
    node.propose(Command::CreateChannel {
        meta: Box::new(meta.clone()),
    })
    .await?;
    node.channels_changed();
    Ok(describe_as(node, &meta, ChannelStatus::Creating))
}

fn logging_meta(logging: Option<&ChannelLoggingConfiguration>) -> LoggingMeta {
    let logs = logging.and_then(|logging| logging.cloud_watch_logs.as_ref());
    LoggingMeta {
        enabled: logs.and_then(|logs| logs.enabled).unwrap_or(false),
        log_group: logs.and_then(|logs| logs.log_group_name.clone()),
        log_stream: logs.and_then(|logs| logs.log_stream_name.clone()),
    }
}

/// UpdateChannel: DataFreshnessInSeconds and the logging settings.
pub async fn update(
    node: &Node,
    caller: &Caller,
    input: UpdateChannelInput,
) -> Result<ChannelDescriptionOutput, Error> {
    let arn = input.channel_arn.unwrap_or_default();
    if input.s3_tables_destination_configuration.is_some() {
        // Checked first: no channel of this server delivers to S3 Tables.
        let _ = find(node, caller, &arn)?;
        return Err(Error::invalid_argument(format!(
            "Channel {arn} delivers to a general purpose Amazon S3 bucket: use \
             S3DestinationConfiguration to update it."
        )));
    }
    let freshness = match &input.s3_destination_configuration {
        Some(update) => Some(check_freshness(
            update.data_freshness_in_seconds.unwrap_or_default(),
        )?),
        None => None,
    };
    let _control = node.control().await;
    let mut channel = find(node, caller, &arn)?;
    match status(node, &channel) {
        ChannelStatus::Creating | ChannelStatus::Deleting | ChannelStatus::Updating => {
            return Err(Error::resource_in_use(format!(
                "Channel {arn} is {}; it can be updated once it is ACTIVE.",
                status(node, &channel)
            )));
        }
        ChannelStatus::Active | ChannelStatus::Failed => {}
    }
    if let Some(freshness) = freshness {
        channel.s3.freshness_s = freshness;
    }
    if let Some(logging) = &input.logging_configuration {
        channel.logging = logging_meta(Some(logging));
    }
    channel.updated_ms = Some(now_ms());
    node.propose(Command::ReplaceChannel {
        meta: Box::new(channel.clone()),
    })
    .await?;
    node.channels_changed();
    Ok(describe_as(node, &channel, ChannelStatus::Updating))
}

/// DeleteChannel: the channel shows DELETING until its delivery task has stopped.
pub async fn delete(node: &Node, caller: &Caller, arn: &str) -> Result<(), Error> {
    let _control = node.control().await;
    let mut channel = find(node, caller, arn)?;
    if channel.deleting_ms.is_some() {
        return Ok(());
    }
    channel.deleting_ms = Some(now_ms());
    node.propose(Command::ReplaceChannel {
        meta: Box::new(channel),
    })
    .await?;
    node.channels_changed();
    Ok(())
}

pub fn describe(
    node: &Node,
    caller: &Caller,
    arn: &str,
) -> Result<ChannelDescriptionOutput, Error> {
    let channel = find(node, caller, arn)?;
    Ok(describe_as(node, &channel, status(node, &channel)))
}

fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from_epoch_ms(i64::try_from(ms).unwrap_or(i64::MAX))
}

fn describe_as(
    node: &Node,
    channel: &ChannelMeta,
    status: ChannelStatus,
) -> ChannelDescriptionOutput {
    let (dlq_bucket, dlq_prefix) = channel.dead_letter();
    let dlq_owner = channel
        .s3
        .dead_letter
        .as_ref()
        .map_or(&channel.s3.expected_bucket_owner, |dlq| {
            &dlq.expected_bucket_owner
        });
    ChannelDescriptionOutput {
        channel_description: ChannelDescription {
            channel_name: channel.name.clone(),
            channel_arn: channel.arn(&node.config.region),
            channel_id: channel.channel_id.clone(),
            channel_status: status,
            channel_status_reason: channel
                .failure
                .clone()
                .filter(|_| status == ChannelStatus::Failed),
            channel_creation_timestamp: timestamp(channel.created_ms),
            service_execution_role_arn: channel.role_arn.clone(),
            stream_configuration_list: vec![ChannelStreamDescription {
                stream_arn: channel.stream_arn.clone(),
                stream_creation_timestamp: timestamp(channel.stream_created_ms),
                record_configuration: RecordConfiguration {
                    record_format_type: Some(channel.record_format.clone()),
                    gsr_schema_arn: channel.gsr_schema_arn.clone(),
                },
            }],
            s3_destination_configuration: Some(S3DestinationDescription {
                data_freshness_in_seconds: channel.s3.freshness_s as i32,
                dead_letter_queue_s3_configuration: DeadLetterQueueS3Configuration {
                    bucket_arn: Some(format!("arn:aws:s3:::{dlq_bucket}")),
                    expected_bucket_owner: Some(dlq_owner.clone()),
                    error_output_prefix: Some(dlq_prefix),
                },
                storage_configuration: S3StorageConfiguration {
                    bucket_arn: Some(channel.s3.bucket_arn.clone()),
                    expected_bucket_owner: Some(channel.s3.expected_bucket_owner.clone()),
                    output_key_template: Some(channel.key_template().to_owned()),
                    storage_class: Some(
                        channel
                            .s3
                            .storage_class
                            .clone()
                            .unwrap_or_else(|| "STANDARD".to_owned()),
                    ),
                    compression_type: Some(channel.s3.compression.clone()),
                },
            }),
            s3_tables_destination_configuration: None,
            encryption_configuration: channel.kms_key_id.as_ref().map(|key| {
                ChannelEncryptionConfiguration {
                    encryption_type: Some("KMS".to_owned()),
                    key_id: Some(key.clone()),
                }
            }),
            logging_configuration: ChannelLoggingConfiguration {
                cloud_watch_logs: Some(CloudWatchLogs {
                    enabled: Some(channel.logging.enabled),
                    log_group_name: Some(channel.logging.log_group.clone().unwrap_or_else(|| {
                        format!("/aws/kinesis/{}/{}", channel.name, channel.channel_id)
                    })),
                    log_stream_name: Some(
                        channel
                            .logging
                            .log_stream
                            .clone()
                            .unwrap_or_else(|| "DestinationDelivery".to_owned()),
                    ),
                }),
            },
        },
    }
}

/// ListChannels: the account's channels by name, filtered by source stream, paged.
pub fn list(
    node: &Node,
    caller: &Caller,
    input: ListChannelsInput,
) -> Result<ListChannelsOutput, Error> {
    let after = match input.next_token.as_deref() {
        Some(token) => {
            let (after, _, issued_ms) =
                riffle_proto::token::decode_page_token(token, &node.token_key)?;
            if now_ms().saturating_sub(issued_ms) > limits::NEXT_TOKEN_LIFETIME_MS {
                return Err(Error::expired_next_token(
                    "The requested token has expired.",
                ));
            }
            Some(after)
        }
        None => None,
    };
    let page_max = input.max_results.map_or(LIST_PAGE_MAX, |max| {
        (max.max(1) as usize).min(LIST_PAGE_MAX)
    });
    let filters = input.stream_filter.unwrap_or_default();
    let mut channels: Vec<ChannelMeta> = node
        .channels()
        .into_iter()
        .filter(|channel| channel.account == caller.account)
        .filter(|channel| {
            after
                .as_deref()
                .is_none_or(|after| channel.name.as_str() > after)
        })
        .filter(|channel| {
            filters.is_empty()
                || filters.iter().any(|filter| {
                    filter.stream_arn.as_deref() == Some(channel.stream_arn.as_str())
                        && filter.stream_creation_timestamp.is_none_or(|ts| {
                            ts.epoch_ms_u64() / 1000 == channel.stream_created_ms / 1000
                        })
                })
        })
        .collect();
    channels.sort_by(|a, b| a.name.cmp(&b.name));
    let more = channels.len() > page_max;
    channels.truncate(page_max);
    let next_token = match (more, channels.last()) {
        (true, Some(last)) => Some(riffle_proto::token::encode_page_token(
            &last.name,
            0,
            now_ms(),
            &node.token_key,
        )),
        _ => None,
    };
    Ok(ListChannelsOutput {
        channel_summaries: channels
            .iter()
            .map(|channel| ChannelSummary {
                channel_name: channel.name.clone(),
                channel_arn: channel.arn(&node.config.region),
                channel_id: channel.channel_id.clone(),
                channel_status: status(node, channel),
                channel_status_reason: channel.failure.clone(),
                channel_creation_timestamp: timestamp(channel.created_ms),
                channel_destination_type: ChannelDestinationType::S3,
                streams: vec![ChannelStreamIdentifier {
                    stream_arn: channel.stream_arn.clone(),
                    stream_creation_timestamp: timestamp(channel.stream_created_ms),
                }],
            })
            .collect(),
        next_token,
    })
}

/// Whether `arn` is a channel ARN (TagResource and friends take them: the model's ResourceARN
/// pattern names `channel/`, and CreateChannel takes tags).
pub fn is_channel_arn(arn: Option<&str>) -> bool {
    arn.and_then(parse_channel_arn).is_some()
}

/// TagResource on a channel: adds or replaces tags, at most 50 in all, as for streams.
pub async fn tag(
    node: &Node,
    caller: &Caller,
    arn: &str,
    tags: BTreeMap<String, String>,
) -> Result<(), Error> {
    let _control = node.control().await;
    let mut channel = find(node, caller, arn)?;
    channel.tags.extend(tags);
    if channel.tags.len() > limits::TAGS_PER_RESOURCE_MAX {
        return Err(Error::invalid_argument(format!(
            "Failed to add tags to channel {arn} because a given channel cannot have more than \
             {} tags associated with it.",
            limits::TAGS_PER_RESOURCE_MAX
        )));
    }
    replace_tags(node, channel).await
}

/// UntagResource on a channel; keys it does not have are ignored.
pub async fn untag(node: &Node, caller: &Caller, arn: &str, keys: &[String]) -> Result<(), Error> {
    let _control = node.control().await;
    let mut channel = find(node, caller, arn)?;
    channel.tags.retain(|key, _| !keys.contains(key));
    replace_tags(node, channel).await
}

/// ListTagsForResource on a channel.
pub fn tags(node: &Node, caller: &Caller, arn: &str) -> Result<ListTagsForResourceOutput, Error> {
    let channel = find(node, caller, arn)?;
    Ok(ListTagsForResourceOutput {
        tags: channel
            .tags
            .into_iter()
            .map(|(key, value)| Tag {
                key,
                value: Some(value),
            })
            .collect(),
    })
}

/// Stores a channel whose tags changed: a catalogue command like every channel change, so it
/// replicates. Tags do not touch delivery, so the delivery tasks are not told.
async fn replace_tags(node: &Node, channel: ChannelMeta) -> Result<(), Error> {
    node.propose(Command::ReplaceChannel {
        meta: Box::new(channel),
    })
    .await?;
    Ok(())
}

/// Channels of `account` (DescribeLimits' ChannelCount).
pub fn count_of(node: &Node, account: &str) -> usize {
    node.channels()
        .iter()
        .filter(|channel| channel.account == account)
        .count()
}

/// Whether a stream (this incarnation) has channels: it cannot be deleted while it has.
pub fn stream_has_channels(node: &Node, account: &str, name: &str, created_ms: u64) -> bool {
    node.channels().iter().any(|channel| {
        channel.account == account
            && channel.stream_name == name
            && channel.stream_created_ms == created_ms
    })
}

/// The compression's object name extension.
pub fn compression_of(name: &str) -> S3CompressionType {
    S3CompressionType::parse(name).unwrap_or(S3CompressionType::None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_templates_are_checked() {
        assert!(check_key_template(DEFAULT_KEY_TEMPLATE).is_ok());
        assert!(check_key_template("out/!{yyyy}/!{channel-id}!{extension}").is_ok());
        for bad in [
            "/!{yyyy}",
            "!{yyyy}/",
            "a/../!{yyyy}",
            "!{bogus}/x",
            "!{yyyy",
            "plain",
            "a}!{yyyy}",
        ] {
            assert!(check_key_template(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn channel_arns_parse() {
        assert_eq!(
            parse_channel_arn("arn:aws:kinesis:us-east-1:123456789012:channel/c1"),
            Some(("us-east-1", "123456789012", "c1"))
        );
        assert_eq!(
            parse_channel_arn("arn:aws:kinesis:us-east-1:123456789012:stream/c1"),
            None
        );
        assert_eq!(bucket_of_arn("arn:aws:s3:::my-bucket"), "my-bucket");
    }
}
