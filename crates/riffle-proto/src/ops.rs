//! Request and response shapes of the Kinesis operations riffle serves, with member names
//! exactly as in the AWS model (botocore `kinesis/2013-12-02`, 1.44.5), and
//! [`decode_request`], which turns an operation name and a body into a validated [`Request`].
//!
//! Inputs hold every member as `Option`: `null` and absence are the same on the wire, and
//! required members are enforced by validation (ValidationException), not by parsing. Enum
//! members of inputs stay strings, because an unknown value is a validation failure with its
//! own text, not a parse error; after [`decode_request`] they hold known values, and accessor
//! methods (`iterator_type()`, `stream_mode()`, …) return them typed. Outputs use typed enums
//! and skip absent members.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::KinesisError;
use crate::json::Timestamp;
use crate::limits;
use crate::validate::{self, Path, StringRule, Validate, Validator};
use crate::wire::WireFormat;

// ===== Enums =====

/// A closed set of wire strings.
pub trait WireEnum: Sized + Copy + 'static {
    /// Every value, in the order Coral lists them in ValidationException texts.
    const VALUES: &'static [&'static str];
    fn as_str(self) -> &'static str;
    fn parse(value: &str) -> Option<Self>;
}

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl WireEnum for $name {
            const VALUES: &'static [&'static str] = &[$($wire,)+];

            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }

            fn parse(value: &str) -> Option<$name> {
                match value {
                    $($wire => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl $name {
            /// The wire string.
            pub fn as_str(self) -> &'static str {
                WireEnum::as_str(self)
            }

            /// The value named by `value`, if it is one.
            pub fn parse(value: &str) -> Option<$name> {
                WireEnum::parse(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
                $name::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "'{text}' is not one of [{}]",
                        <$name as WireEnum>::VALUES.join(", ")
                    ))
                })
            }
        }
    };
}

wire_enum!(
    /// `StreamStatus`.
    StreamStatus {
        Creating = "CREATING",
        Deleting = "DELETING",
        Active = "ACTIVE",
        Updating = "UPDATING",
    }
);

wire_enum!(
    /// `StreamModeDetails.StreamMode`.
    StreamMode {
        Provisioned = "PROVISIONED",
        OnDemand = "ON_DEMAND",
    }
);

wire_enum!(
    /// Server-side encryption of a stream or record.
    EncryptionType {
        None = "NONE",
        Kms = "KMS",
    }
);

wire_enum!(
    /// `ShardIteratorType`, in the order production lists the values.
    ShardIteratorType {
        AfterSequenceNumber = "AFTER_SEQUENCE_NUMBER",
        Latest = "LATEST",
        AtTimestamp = "AT_TIMESTAMP",
        AtSequenceNumber = "AT_SEQUENCE_NUMBER",
        TrimHorizon = "TRIM_HORIZON",
    }
);

wire_enum!(
    /// `ShardFilter.Type` of ListShards.
    ShardFilterType {
        AfterShardId = "AFTER_SHARD_ID",
        AtTrimHorizon = "AT_TRIM_HORIZON",
        FromTrimHorizon = "FROM_TRIM_HORIZON",
        AtLatest = "AT_LATEST",
        AtTimestamp = "AT_TIMESTAMP",
        FromTimestamp = "FROM_TIMESTAMP",
    }
);

wire_enum!(
    /// `ConsumerStatus` of an enhanced fan-out consumer.
    ConsumerStatus {
        Creating = "CREATING",
        Deleting = "DELETING",
        Active = "ACTIVE",
    }
);

wire_enum!(
    /// SubscribeToShard's `StartingPosition.Type`.
    StartingPositionType {
        AtSequenceNumber = "AT_SEQUENCE_NUMBER",
        AfterSequenceNumber = "AFTER_SEQUENCE_NUMBER",
        TrimHorizon = "TRIM_HORIZON",
        Latest = "LATEST",
        AtTimestamp = "AT_TIMESTAMP",
    }
);

wire_enum!(
    /// UpdateShardCount's `ScalingType`.
    ScalingType {
        UniformScaling = "UNIFORM_SCALING",
    }
);

wire_enum!(
    /// Shard-level metric names of enhanced monitoring.
    MetricsName {
        IncomingBytes = "IncomingBytes",
        IncomingRecords = "IncomingRecords",
        OutgoingBytes = "OutgoingBytes",
        OutgoingRecords = "OutgoingRecords",
        WriteProvisionedThroughputExceeded = "WriteProvisionedThroughputExceeded",
        ReadProvisionedThroughputExceeded = "ReadProvisionedThroughputExceeded",
        IteratorAgeMilliseconds = "IteratorAgeMilliseconds",
        All = "ALL",
    }
);

wire_enum!(
    /// How an on-demand stream routes records: by partition key, or spread automatically.
    RecordDistributionStrategy {
        Auto = "AUTO",
        UserPartitionKey = "USER_PARTITION_KEY",
    }
);

wire_enum!(
    /// State of the account's minimum-throughput billing commitment.
    MinimumThroughputBillingCommitmentStatus {
        Enabled = "ENABLED",
        Disabled = "DISABLED",
        EnabledUntilEarliestAllowedEnd = "ENABLED_UNTIL_EARLIEST_ALLOWED_END",
    }
);

/// The typed value of a validated enum member.
fn known<E: WireEnum>(value: Option<&str>) -> Option<E> {
    value.and_then(E::parse)
}

fn enum_rule<E: WireEnum>() -> StringRule {
    StringRule::one_of(E::VALUES)
}

// ===== Inputs =====

macro_rules! input_shape {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$fmeta:meta])* $field:ident: $ty:ty = $wire:tt via $de:tt; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                #[serde(rename = $wire, deserialize_with = $de, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }
    };
}

input_shape!(
    /// `StreamModeDetails` as a request carries it.
    StreamModeDetailsInput {
        stream_mode: String = "StreamMode" via "crate::json::field::string";
    }
);

input_shape!(
    /// ListShards' `ShardFilter`.
    ShardFilter {
        filter_type: String = "Type" via "crate::json::field::string";
        shard_id: String = "ShardId" via "crate::json::field::string";
        timestamp: Timestamp = "Timestamp" via "crate::json::field::timestamp";
    }
);

input_shape!(
    CreateStreamInput {
        stream_name: String = "StreamName" via "crate::json::field::string";
        shard_count: i32 = "ShardCount" via "crate::json::field::integer";
        stream_mode_details: StreamModeDetailsInput = "StreamModeDetails" via "crate::json::field::structure";
        tags: BTreeMap<String, String> = "Tags" via "crate::json::field::string_map";
        warm_throughput_mibps: i32 = "WarmThroughputMiBps" via "crate::json::field::integer";
        max_record_size_kib: i32 = "MaxRecordSizeInKiB" via "crate::json::field::integer";
        record_distribution_strategy: String = "RecordDistributionStrategy" via "crate::json::field::string";
    }
);

input_shape!(
    DeleteStreamInput {
        stream_name: String = "StreamName" via "crate::json::field::string";
        enforce_consumer_deletion: bool = "EnforceConsumerDeletion" via "crate::json::field::boolean";
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
    }
);

input_shape!(
    DescribeStreamInput {
        stream_name: String = "StreamName" via "crate::json::field::string";
        limit: i32 = "Limit" via "crate::json::field::integer";
        exclusive_start_shard_id: String = "ExclusiveStartShardId" via "crate::json::field::string";
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
    }
);

input_shape!(
    DescribeStreamSummaryInput {
        stream_name: String = "StreamName" via "crate::json::field::string";
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
    }
);

input_shape!(
    ListStreamsInput {
        limit: i32 = "Limit" via "crate::json::field::integer";
        exclusive_start_stream_name: String = "ExclusiveStartStreamName" via "crate::json::field::string";
        next_token: String = "NextToken" via "crate::json::field::string";
    }
);

input_shape!(
    ListShardsInput {
        stream_name: String = "StreamName" via "crate::json::field::string";
        next_token: String = "NextToken" via "crate::json::field::string";
        exclusive_start_shard_id: String = "ExclusiveStartShardId" via "crate::json::field::string";
        max_results: i32 = "MaxResults" via "crate::json::field::integer";
        stream_creation_timestamp: Timestamp = "StreamCreationTimestamp" via "crate::json::field::timestamp";
        shard_filter: ShardFilter = "ShardFilter" via "crate::json::field::structure";
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
    }
);

input_shape!(
    PutRecordInput {
        stream_name: String = "StreamName" via "crate::json::field::string";
        #[serde(serialize_with = "crate::json::blob::serialize_option")]
        data: Bytes = "Data" via "crate::json::field::blob";
        partition_key: String = "PartitionKey" via "crate::json::field::string";
        explicit_hash_key: String = "ExplicitHashKey" via "crate::json::field::string";
        sequence_number_for_ordering: String = "SequenceNumberForOrdering" via "crate::json::field::string";
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
        dry_run: bool = "DryRun" via "crate::json::field::boolean";
    }
);

input_shape!(
    /// One record of a PutRecords request.
    PutRecordsRequestEntry {
        #[serde(serialize_with = "crate::json::blob::serialize_option")]
        data: Bytes = "Data" via "crate::json::field::blob";
        explicit_hash_key: String = "ExplicitHashKey" via "crate::json::field::string";
        partition_key: String = "PartitionKey" via "crate::json::field::string";
    }
);

input_shape!(
    PutRecordsInput {
        records: Vec<PutRecordsRequestEntry> = "Records" via "crate::json::field::structure_list";
        stream_name: String = "StreamName" via "crate::json::field::string";
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
        dry_run: bool = "DryRun" via "crate::json::field::boolean";
    }
);

input_shape!(
    GetShardIteratorInput {
        stream_name: String = "StreamName" via "crate::json::field::string";
        shard_id: String = "ShardId" via "crate::json::field::string";
        shard_iterator_type: String = "ShardIteratorType" via "crate::json::field::string";
        starting_sequence_number: String = "StartingSequenceNumber" via "crate::json::field::string";
        timestamp: Timestamp = "Timestamp" via "crate::json::field::timestamp";
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
        dry_run: bool = "DryRun" via "crate::json::field::boolean";
    }
);

input_shape!(
    GetRecordsInput {
        shard_iterator: String = "ShardIterator" via "crate::json::field::string";
        limit: i32 = "Limit" via "crate::json::field::integer";
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
        dry_run: bool = "DryRun" via "crate::json::field::boolean";
    }
);

input_shape!(
    IncreaseStreamRetentionPeriodInput {
        stream_name: String = "StreamName" via "crate::json::field::string";
        retention_period_hours: i32 = "RetentionPeriodHours" via "crate::json::field::integer";
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
    }
);

input_shape!(
    DecreaseStreamRetentionPeriodInput {
        stream_name: String = "StreamName" via "crate::json::field::string";
        retention_period_hours: i32 = "RetentionPeriodHours" via "crate::json::field::integer";
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
    }
);

input_shape!(
    AddTagsToStreamInput {
        stream_name: String = "StreamName" via "crate::json::field::string";
        tags: BTreeMap<String, String> = "Tags" via "crate::json::field::string_map";
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
    }
);

input_shape!(
    RemoveTagsFromStreamInput {
        stream_name: String = "StreamName" via "crate::json::field::string";
        tag_keys: Vec<String> = "TagKeys" via "crate::json::field::string_list";
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
    }
);

input_shape!(
    ListTagsForStreamInput {
        stream_name: String = "StreamName" via "crate::json::field::string";
        exclusive_start_tag_key: String = "ExclusiveStartTagKey" via "crate::json::field::string";
        limit: i32 = "Limit" via "crate::json::field::integer";
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
    }
);

input_shape!(
    TagResourceInput {
        tags: BTreeMap<String, String> = "Tags" via "crate::json::field::string_map";
        resource_arn: String = "ResourceARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
    }
);

input_shape!(
    UntagResourceInput {
        tag_keys: Vec<String> = "TagKeys" via "crate::json::field::string_list";
        resource_arn: String = "ResourceARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
    }
);

input_shape!(
    ListTagsForResourceInput {
        resource_arn: String = "ResourceARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
    }
);

input_shape!(DescribeLimitsInput {});

input_shape!(DescribeAccountSettingsInput {});

input_shape!(
    SplitShardInput {
        stream_name: String = "StreamName" via "crate::json::field::string";
        shard_to_split: String = "ShardToSplit" via "crate::json::field::string";
        new_starting_hash_key: String = "NewStartingHashKey" via "crate::json::field::string";
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
    }
);

input_shape!(
    MergeShardsInput {
        stream_name: String = "StreamName" via "crate::json::field::string";
        shard_to_merge: String = "ShardToMerge" via "crate::json::field::string";
        adjacent_shard_to_merge: String = "AdjacentShardToMerge" via "crate::json::field::string";
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
    }
);

input_shape!(
    UpdateShardCountInput {
        stream_name: String = "StreamName" via "crate::json::field::string";
        target_shard_count: i32 = "TargetShardCount" via "crate::json::field::integer";
        scaling_type: String = "ScalingType" via "crate::json::field::string";
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
    }
);

input_shape!(
    UpdateStreamModeInput {
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
        stream_mode_details: StreamModeDetailsInput = "StreamModeDetails" via "crate::json::field::structure";
        warm_throughput_mibps: i32 = "WarmThroughputMiBps" via "crate::json::field::integer";
    }
);

input_shape!(
    UpdateMaxRecordSizeInput {
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
        max_record_size_kib: i32 = "MaxRecordSizeInKiB" via "crate::json::field::integer";
    }
);

input_shape!(
    UpdateStreamRecordDistributionStrategyInput {
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
        record_distribution_strategy: String = "RecordDistributionStrategy" via "crate::json::field::string";
    }
);

input_shape!(
    RegisterStreamConsumerInput {
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        consumer_name: String = "ConsumerName" via "crate::json::field::string";
        tags: BTreeMap<String, String> = "Tags" via "crate::json::field::string_map";
    }
);

input_shape!(
    /// DescribeStreamConsumer and DeregisterStreamConsumer: a consumer by ARN, or by stream ARN
    /// and name.
    ConsumerRefInput {
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        consumer_name: String = "ConsumerName" via "crate::json::field::string";
        consumer_arn: String = "ConsumerARN" via "crate::json::field::string";
    }
);

/// DescribeStreamConsumer's input.
pub type DescribeStreamConsumerInput = ConsumerRefInput;
/// DeregisterStreamConsumer's input.
pub type DeregisterStreamConsumerInput = ConsumerRefInput;

input_shape!(
    ListStreamConsumersInput {
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        next_token: String = "NextToken" via "crate::json::field::string";
        max_results: i32 = "MaxResults" via "crate::json::field::integer";
        stream_creation_timestamp: Timestamp = "StreamCreationTimestamp" via "crate::json::field::timestamp";
    }
);

input_shape!(
    /// SubscribeToShard's `StartingPosition`.
    StartingPosition {
        position_type: String = "Type" via "crate::json::field::string";
        sequence_number: String = "SequenceNumber" via "crate::json::field::string";
        timestamp: Timestamp = "Timestamp" via "crate::json::field::timestamp";
    }
);

input_shape!(
    SubscribeToShardInput {
        consumer_arn: String = "ConsumerARN" via "crate::json::field::string";
        shard_id: String = "ShardId" via "crate::json::field::string";
        starting_position: StartingPosition = "StartingPosition" via "crate::json::field::structure";
        dry_run: bool = "DryRun" via "crate::json::field::boolean";
    }
);

input_shape!(
    /// PutResourcePolicy: a JSON policy document for a stream or consumer ARN.
    PutResourcePolicyInput {
        resource_arn: String = "ResourceARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
        policy: String = "Policy" via "crate::json::field::string";
    }
);

input_shape!(
    /// GetResourcePolicy and DeleteResourcePolicy.
    ResourcePolicyRefInput {
        resource_arn: String = "ResourceARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
    }
);

/// GetResourcePolicy's input.
pub type GetResourcePolicyInput = ResourcePolicyRefInput;
/// DeleteResourcePolicy's input.
pub type DeleteResourcePolicyInput = ResourcePolicyRefInput;

input_shape!(
    /// StartStreamEncryption and StopStreamEncryption.
    StreamEncryptionInput {
        stream_name: String = "StreamName" via "crate::json::field::string";
        encryption_type: String = "EncryptionType" via "crate::json::field::string";
        key_id: String = "KeyId" via "crate::json::field::string";
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
    }
);

/// StartStreamEncryption's input.
pub type StartStreamEncryptionInput = StreamEncryptionInput;
/// StopStreamEncryption's input.
pub type StopStreamEncryptionInput = StreamEncryptionInput;

input_shape!(
    /// EnableEnhancedMonitoring and DisableEnhancedMonitoring.
    EnhancedMonitoringInput {
        stream_name: String = "StreamName" via "crate::json::field::string";
        shard_level_metrics: Vec<String> = "ShardLevelMetrics" via "crate::json::field::string_list";
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
    }
);

/// EnableEnhancedMonitoring's input.
pub type EnableEnhancedMonitoringInput = EnhancedMonitoringInput;
/// DisableEnhancedMonitoring's input.
pub type DisableEnhancedMonitoringInput = EnhancedMonitoringInput;

input_shape!(
    /// UpdateAccountSettings' `MinimumThroughputBillingCommitment`.
    MinimumThroughputBillingCommitmentInput {
        status: String = "Status" via "crate::json::field::string";
    }
);

input_shape!(
    UpdateAccountSettingsInput {
        minimum_throughput_billing_commitment: MinimumThroughputBillingCommitmentInput = "MinimumThroughputBillingCommitment" via "crate::json::field::structure";
    }
);

input_shape!(
    UpdateStreamWarmThroughputInput {
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_name: String = "StreamName" via "crate::json::field::string";
        stream_id: String = "StreamId" via "crate::json::field::string";
        warm_throughput_mibps: i32 = "WarmThroughputMiBps" via "crate::json::field::integer";
    }
);

// The queue operations (issue 14) live beside, in `ops/queues.rs`.
mod queues;
pub use queues::*;

// ----- Typed views of validated enum members -----

impl StreamModeDetailsInput {
    pub fn mode(&self) -> Option<StreamMode> {
        known(self.stream_mode.as_deref())
    }
}

impl ShardFilter {
    pub fn filter_type(&self) -> Option<ShardFilterType> {
        known(self.filter_type.as_deref())
    }
}

impl CreateStreamInput {
    /// The requested capacity mode; `None` when the request names none.
    pub fn stream_mode(&self) -> Option<StreamMode> {
        self.stream_mode_details
            .as_ref()
            .and_then(StreamModeDetailsInput::mode)
    }

    pub fn distribution_strategy(&self) -> Option<RecordDistributionStrategy> {
        known(self.record_distribution_strategy.as_deref())
    }
}

impl UpdateStreamModeInput {
    pub fn stream_mode(&self) -> Option<StreamMode> {
        self.stream_mode_details
            .as_ref()
            .and_then(StreamModeDetailsInput::mode)
    }
}

impl UpdateStreamRecordDistributionStrategyInput {
    pub fn distribution_strategy(&self) -> Option<RecordDistributionStrategy> {
        known(self.record_distribution_strategy.as_deref())
    }
}

impl GetShardIteratorInput {
    pub fn iterator_type(&self) -> Option<ShardIteratorType> {
        known(self.shard_iterator_type.as_deref())
    }
}

impl StartingPosition {
    pub fn kind(&self) -> Option<StartingPositionType> {
        known(self.position_type.as_deref())
    }
}

impl UpdateShardCountInput {
    pub fn scaling(&self) -> Option<ScalingType> {
        known(self.scaling_type.as_deref())
    }
}

// ----- Validation, member by member in Coral's order -----

fn int(value: Option<i32>) -> Option<i64> {
    value.map(i64::from)
}

/// `streamName`, `streamARN`, `streamId`: optional on every stream operation today, since
/// either a name or an ARN will do (the domain checks that one is there).
fn validate_stream_refs(
    v: &mut Validator,
    name: Option<&String>,
    arn: Option<&String>,
    id: Option<&String>,
) {
    v.string(
        Path::Field("streamName"),
        name.map(String::as_str),
        false,
        &validate::STREAM_NAME,
    );
    v.string(
        Path::Field("streamARN"),
        arn.map(String::as_str),
        false,
        &validate::STREAM_ARN,
    );
    v.string(
        Path::Field("streamId"),
        id.map(String::as_str),
        false,
        &validate::STREAM_ID,
    );
}

fn validate_tags(v: &mut Validator, tags: Option<&BTreeMap<String, String>>) {
    v.string_map(
        Path::Field("tags"),
        tags,
        true,
        Some(1),
        Some(limits::TAGS_PER_REQUEST_MAX),
        (&validate::TAG_KEY, &validate::TAG_VALUE),
    );
}

fn validate_tag_keys(v: &mut Validator, keys: Option<&Vec<String>>) {
    v.string_list(
        Path::Field("tagKeys"),
        keys.map(Vec::as_slice),
        true,
        Some(1),
        Some(limits::TAG_KEYS_PER_REQUEST_MAX),
        &validate::TAG_KEY,
    );
}

fn validate_stream_mode_details(
    v: &mut Validator,
    details: Option<&StreamModeDetailsInput>,
    required: bool,
) {
    match details {
        Some(details) => v.string(
            Path::Nested("streamModeDetails", "streamMode"),
            details.stream_mode.as_deref(),
            true,
            &enum_rule::<StreamMode>(),
        ),
        None => {
            if required {
                v.required::<()>(Path::Field("streamModeDetails"), None);
            }
        }
    }
}

fn limit_range(v: &mut Validator, path: &'static str, value: Option<i32>, max: usize) {
    v.integer(
        Path::Field(path),
        int(value),
        false,
        Some(1),
        Some(max as i64),
    );
}

impl Validate for CreateStreamInput {
    fn validate(&self, v: &mut Validator) {
        v.integer(
            Path::Field("shardCount"),
            int(self.shard_count),
            false,
            Some(1),
            None,
        );
        v.string(
            Path::Field("streamName"),
            self.stream_name.as_deref(),
            true,
            &validate::STREAM_NAME,
        );
        validate_stream_mode_details(v, self.stream_mode_details.as_ref(), false);
        if self.tags.is_some() {
            validate_tags(v, self.tags.as_ref());
        }
        v.integer(
            Path::Field("warmThroughputMiBps"),
            int(self.warm_throughput_mibps),
            false,
            Some(0),
            None,
        );
        v.integer(
            Path::Field("maxRecordSizeInKiB"),
            int(self.max_record_size_kib),
            false,
            Some(i64::from(limits::RECORD_SIZE_KIB_MIN)),
            Some(i64::from(limits::RECORD_SIZE_KIB_MAX)),
        );
        v.string(
            Path::Field("recordDistributionStrategy"),
            self.record_distribution_strategy.as_deref(),
            false,
            &enum_rule::<RecordDistributionStrategy>(),
        );
    }
}

impl Validate for DeleteStreamInput {
    fn validate(&self, v: &mut Validator) {
        validate_stream_refs(
            v,
            self.stream_name.as_ref(),
            self.stream_arn.as_ref(),
            self.stream_id.as_ref(),
        );
    }
}

impl Validate for DescribeStreamInput {
    fn validate(&self, v: &mut Validator) {
        limit_range(v, "limit", self.limit, limits::DESCRIBE_STREAM_LIMIT_MAX);
        v.string(
            Path::Field("exclusiveStartShardId"),
            self.exclusive_start_shard_id.as_deref(),
            false,
            &validate::SHARD_ID,
        );
        validate_stream_refs(
            v,
            self.stream_name.as_ref(),
            self.stream_arn.as_ref(),
            self.stream_id.as_ref(),
        );
    }
}

impl Validate for DescribeStreamSummaryInput {
    fn validate(&self, v: &mut Validator) {
        validate_stream_refs(
            v,
            self.stream_name.as_ref(),
            self.stream_arn.as_ref(),
            self.stream_id.as_ref(),
        );
    }
}

impl Validate for ListStreamsInput {
    fn validate(&self, v: &mut Validator) {
        limit_range(v, "limit", self.limit, limits::LIST_STREAMS_LIMIT_MAX);
        v.string(
            Path::Field("exclusiveStartStreamName"),
            self.exclusive_start_stream_name.as_deref(),
            false,
            &validate::STREAM_NAME,
        );
        v.string(
            Path::Field("nextToken"),
            self.next_token.as_deref(),
            false,
            &validate::NEXT_TOKEN,
        );
    }
}

impl Validate for ListShardsInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            Path::Field("exclusiveStartShardId"),
            self.exclusive_start_shard_id.as_deref(),
            false,
            &validate::SHARD_ID,
        );
        limit_range(
            v,
            "maxResults",
            self.max_results,
            limits::LIST_SHARDS_MAX_RESULTS_MAX,
        );
        v.string(
            Path::Field("nextToken"),
            self.next_token.as_deref(),
            false,
            &validate::NEXT_TOKEN,
        );
        v.string(
            Path::Field("streamName"),
            self.stream_name.as_deref(),
            false,
            &validate::STREAM_NAME,
        );
        if let Some(filter) = &self.shard_filter {
            v.string(
                Path::Nested("shardFilter", "type"),
                filter.filter_type.as_deref(),
                true,
                &enum_rule::<ShardFilterType>(),
            );
            v.string(
                Path::Nested("shardFilter", "shardId"),
                filter.shard_id.as_deref(),
                false,
                &validate::SHARD_ID,
            );
        }
        v.string(
            Path::Field("streamARN"),
            self.stream_arn.as_deref(),
            false,
            &validate::STREAM_ARN,
        );
        v.string(
            Path::Field("streamId"),
            self.stream_id.as_deref(),
            false,
            &validate::STREAM_ID,
        );
    }
}

impl Validate for PutRecordInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            Path::Field("sequenceNumberForOrdering"),
            self.sequence_number_for_ordering.as_deref(),
            false,
            &validate::SEQUENCE_NUMBER,
        );
        // Optional in the model since AUTO distribution; streams that route by key require it
        // in the domain (`KinesisError::partition_key_missing`).
        v.string(
            Path::Field("partitionKey"),
            self.partition_key.as_deref(),
            false,
            &validate::PARTITION_KEY,
        );
        v.string(
            Path::Field("explicitHashKey"),
            self.explicit_hash_key.as_deref(),
            false,
            &validate::HASH_KEY,
        );
        v.blob(
            Path::Field("data"),
            self.data.as_deref(),
            true,
            limits::DATA_BYTES_MAX,
        );
        validate_stream_refs(
            v,
            self.stream_name.as_ref(),
            self.stream_arn.as_ref(),
            self.stream_id.as_ref(),
        );
    }
}

/// How Coral prints a list of PutRecords entries: Java's default `Object.toString()`.
fn render_entries(records: &[PutRecordsRequestEntry]) -> String {
    let mut shown = String::from("[");
    for (index, _) in records.iter().enumerate() {
        if index > 0 {
            shown.push_str(", ");
        }
        // Java prints an identity hash here; any stable hex number serves.
        shown.push_str(&format!(
            "com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@{:x}",
            0x1b6d_3586_u32.wrapping_mul(index as u32 + 1)
        ));
    }
    shown.push(']');
    shown
}

impl Validate for PutRecordsInput {
    fn validate(&self, v: &mut Validator) {
        match &self.records {
            None => v.required::<()>(Path::Field("records"), None),
            Some(records) => {
                v.count(
                    Path::Field("records"),
                    records.len(),
                    Some(1),
                    Some(limits::RECORDS_PER_PUT_MAX),
                    || render_entries(records),
                );
                for (index, record) in records.iter().enumerate() {
                    v.string(
                        Path::Member("records", index, "partitionKey"),
                        record.partition_key.as_deref(),
                        false,
                        &validate::PARTITION_KEY,
                    );
                    v.string(
                        Path::Member("records", index, "explicitHashKey"),
                        record.explicit_hash_key.as_deref(),
                        false,
                        &validate::HASH_KEY,
                    );
                    v.blob(
                        Path::Member("records", index, "data"),
                        record.data.as_deref(),
                        true,
                        limits::DATA_BYTES_MAX,
                    );
                }
            }
        }
        validate_stream_refs(
            v,
            self.stream_name.as_ref(),
            self.stream_arn.as_ref(),
            self.stream_id.as_ref(),
        );
    }
}

impl Validate for GetShardIteratorInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            Path::Field("shardId"),
            self.shard_id.as_deref(),
            true,
            &validate::SHARD_ID,
        );
        v.string(
            Path::Field("shardIteratorType"),
            self.shard_iterator_type.as_deref(),
            true,
            &enum_rule::<ShardIteratorType>(),
        );
        v.string(
            Path::Field("startingSequenceNumber"),
            self.starting_sequence_number.as_deref(),
            false,
            &validate::SEQUENCE_NUMBER,
        );
        validate_stream_refs(
            v,
            self.stream_name.as_ref(),
            self.stream_arn.as_ref(),
            self.stream_id.as_ref(),
        );
    }
}

impl Validate for GetRecordsInput {
    fn validate(&self, v: &mut Validator) {
        limit_range(v, "limit", self.limit, limits::GET_RECORDS_LIMIT_MAX);
        v.string(
            Path::Field("shardIterator"),
            self.shard_iterator.as_deref(),
            true,
            &validate::SHARD_ITERATOR,
        );
        v.string(
            Path::Field("streamARN"),
            self.stream_arn.as_deref(),
            false,
            &validate::STREAM_ARN,
        );
        v.string(
            Path::Field("streamId"),
            self.stream_id.as_deref(),
            false,
            &validate::STREAM_ID,
        );
    }
}

/// Production checks only `>= 1` here; 24 and 8760 come back from the domain as
/// InvalidArgumentException with their own texts (`KinesisError::retention_too_short`, …).
fn validate_retention(v: &mut Validator, hours: Option<i32>) {
    v.integer(
        Path::Field("retentionPeriodHours"),
        int(hours),
        true,
        Some(1),
        None,
    );
}

impl Validate for IncreaseStreamRetentionPeriodInput {
    fn validate(&self, v: &mut Validator) {
        validate_retention(v, self.retention_period_hours);
        validate_stream_refs(
            v,
            self.stream_name.as_ref(),
            self.stream_arn.as_ref(),
            self.stream_id.as_ref(),
        );
    }
}

impl Validate for DecreaseStreamRetentionPeriodInput {
    fn validate(&self, v: &mut Validator) {
        validate_retention(v, self.retention_period_hours);
        validate_stream_refs(
            v,
            self.stream_name.as_ref(),
            self.stream_arn.as_ref(),
            self.stream_id.as_ref(),
        );
    }
}

impl Validate for AddTagsToStreamInput {
    fn validate(&self, v: &mut Validator) {
        validate_tags(v, self.tags.as_ref());
        validate_stream_refs(
            v,
            self.stream_name.as_ref(),
            self.stream_arn.as_ref(),
            self.stream_id.as_ref(),
        );
    }
}

impl Validate for RemoveTagsFromStreamInput {
    fn validate(&self, v: &mut Validator) {
        validate_tag_keys(v, self.tag_keys.as_ref());
        validate_stream_refs(
            v,
            self.stream_name.as_ref(),
            self.stream_arn.as_ref(),
            self.stream_id.as_ref(),
        );
    }
}

impl Validate for ListTagsForStreamInput {
    fn validate(&self, v: &mut Validator) {
        limit_range(v, "limit", self.limit, limits::LIST_TAGS_LIMIT_MAX);
        v.string(
            Path::Field("exclusiveStartTagKey"),
            self.exclusive_start_tag_key.as_deref(),
            false,
            &validate::TAG_KEY,
        );
        validate_stream_refs(
            v,
            self.stream_name.as_ref(),
            self.stream_arn.as_ref(),
            self.stream_id.as_ref(),
        );
    }
}

fn validate_resource_arn(v: &mut Validator, arn: Option<&String>) {
    v.string(
        Path::Field("resourceARN"),
        arn.map(String::as_str),
        true,
        &validate::RESOURCE_ARN,
    );
}

impl Validate for TagResourceInput {
    fn validate(&self, v: &mut Validator) {
        validate_tags(v, self.tags.as_ref());
        validate_resource_arn(v, self.resource_arn.as_ref());
        v.string(
            Path::Field("streamId"),
            self.stream_id.as_deref(),
            false,
            &validate::STREAM_ID,
        );
    }
}

impl Validate for UntagResourceInput {
    fn validate(&self, v: &mut Validator) {
        validate_tag_keys(v, self.tag_keys.as_ref());
        validate_resource_arn(v, self.resource_arn.as_ref());
        v.string(
            Path::Field("streamId"),
            self.stream_id.as_deref(),
            false,
            &validate::STREAM_ID,
        );
    }
}

impl Validate for ListTagsForResourceInput {
    fn validate(&self, v: &mut Validator) {
        validate_resource_arn(v, self.resource_arn.as_ref());
        v.string(
            Path::Field("streamId"),
            self.stream_id.as_deref(),
            false,
            &validate::STREAM_ID,
        );
    }
}

impl Validate for DescribeLimitsInput {
    fn validate(&self, _: &mut Validator) {}
}

impl Validate for DescribeAccountSettingsInput {
    fn validate(&self, _: &mut Validator) {}
}

impl Validate for SplitShardInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            Path::Field("newStartingHashKey"),
            self.new_starting_hash_key.as_deref(),
            true,
            &validate::HASH_KEY,
        );
        v.string(
            Path::Field("streamName"),
            self.stream_name.as_deref(),
            false,
            &validate::STREAM_NAME,
        );
        v.string(
            Path::Field("shardToSplit"),
            self.shard_to_split.as_deref(),
            true,
            &validate::SHARD_ID,
        );
        v.string(
            Path::Field("streamARN"),
            self.stream_arn.as_deref(),
            false,
            &validate::STREAM_ARN,
        );
        v.string(
            Path::Field("streamId"),
            self.stream_id.as_deref(),
            false,
            &validate::STREAM_ID,
        );
    }
}

impl Validate for MergeShardsInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            Path::Field("shardToMerge"),
            self.shard_to_merge.as_deref(),
            true,
            &validate::SHARD_ID,
        );
        v.string(
            Path::Field("adjacentShardToMerge"),
            self.adjacent_shard_to_merge.as_deref(),
            true,
            &validate::SHARD_ID,
        );
        validate_stream_refs(
            v,
            self.stream_name.as_ref(),
            self.stream_arn.as_ref(),
            self.stream_id.as_ref(),
        );
    }
}

impl Validate for UpdateShardCountInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            Path::Field("scalingType"),
            self.scaling_type.as_deref(),
            true,
            &enum_rule::<ScalingType>(),
        );
        v.string(
            Path::Field("streamName"),
            self.stream_name.as_deref(),
            false,
            &validate::STREAM_NAME,
        );
        v.integer(
            Path::Field("targetShardCount"),
            int(self.target_shard_count),
            true,
            Some(1),
            None,
        );
        v.string(
            Path::Field("streamARN"),
            self.stream_arn.as_deref(),
            false,
            &validate::STREAM_ARN,
        );
        v.string(
            Path::Field("streamId"),
            self.stream_id.as_deref(),
            false,
            &validate::STREAM_ID,
        );
    }
}

impl Validate for UpdateStreamModeInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            Path::Field("streamARN"),
            self.stream_arn.as_deref(),
            true,
            &validate::STREAM_ARN,
        );
        v.string(
            Path::Field("streamId"),
            self.stream_id.as_deref(),
            false,
            &validate::STREAM_ID,
        );
        validate_stream_mode_details(v, self.stream_mode_details.as_ref(), true);
        v.integer(
            Path::Field("warmThroughputMiBps"),
            int(self.warm_throughput_mibps),
            false,
            Some(0),
            None,
        );
    }
}

impl Validate for UpdateStreamRecordDistributionStrategyInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            Path::Field("streamARN"),
            self.stream_arn.as_deref(),
            true,
            &validate::STREAM_ARN,
        );
        v.string(
            Path::Field("streamId"),
            self.stream_id.as_deref(),
            false,
            &validate::STREAM_ID,
        );
        v.string(
            Path::Field("recordDistributionStrategy"),
            self.record_distribution_strategy.as_deref(),
            true,
            &enum_rule::<RecordDistributionStrategy>(),
        );
    }
}

impl Validate for RegisterStreamConsumerInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            Path::Field("streamARN"),
            self.stream_arn.as_deref(),
            true,
            &validate::STREAM_ARN,
        );
        v.string(
            Path::Field("consumerName"),
            self.consumer_name.as_deref(),
            true,
            &validate::CONSUMER_NAME,
        );
        if self.tags.is_some() {
            validate_tags(v, self.tags.as_ref());
        }
    }
}

impl Validate for ConsumerRefInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            Path::Field("streamARN"),
            self.stream_arn.as_deref(),
            false,
            &validate::STREAM_ARN,
        );
        v.string(
            Path::Field("consumerName"),
            self.consumer_name.as_deref(),
            false,
            &validate::CONSUMER_NAME,
        );
        v.string(
            Path::Field("consumerARN"),
            self.consumer_arn.as_deref(),
            false,
            &validate::CONSUMER_ARN,
        );
    }
}

impl Validate for ListStreamConsumersInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            Path::Field("streamARN"),
            self.stream_arn.as_deref(),
            true,
            &validate::STREAM_ARN,
        );
        v.string(
            Path::Field("nextToken"),
            self.next_token.as_deref(),
            false,
            &validate::NEXT_TOKEN,
        );
        limit_range(
            v,
            "maxResults",
            self.max_results,
            limits::LIST_STREAM_CONSUMERS_MAX_RESULTS_MAX,
        );
    }
}

impl Validate for SubscribeToShardInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            Path::Field("consumerARN"),
            self.consumer_arn.as_deref(),
            true,
            &validate::CONSUMER_ARN,
        );
        v.string(
            Path::Field("shardId"),
            self.shard_id.as_deref(),
            true,
            &validate::SHARD_ID,
        );
        v.required(
            Path::Field("startingPosition"),
            self.starting_position.as_ref(),
        );
        if let Some(position) = &self.starting_position {
            v.string(
                Path::Nested("startingPosition", "type"),
                position.position_type.as_deref(),
                true,
                &enum_rule::<StartingPositionType>(),
            );
            v.string(
                Path::Nested("startingPosition", "sequenceNumber"),
                position.sequence_number.as_deref(),
                false,
                &validate::SEQUENCE_NUMBER,
            );
        }
    }
}

impl Validate for PutResourcePolicyInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            Path::Field("resourceARN"),
            self.resource_arn.as_deref(),
            true,
            &validate::RESOURCE_ARN,
        );
        v.string(
            Path::Field("streamId"),
            self.stream_id.as_deref(),
            false,
            &validate::STREAM_ID,
        );
        v.string(
            Path::Field("policy"),
            self.policy.as_deref(),
            true,
            &validate::POLICY,
        );
    }
}

impl Validate for ResourcePolicyRefInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            Path::Field("resourceARN"),
            self.resource_arn.as_deref(),
            true,
            &validate::RESOURCE_ARN,
        );
        v.string(
            Path::Field("streamId"),
            self.stream_id.as_deref(),
            false,
            &validate::STREAM_ID,
        );
    }
}

impl Validate for StreamEncryptionInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            Path::Field("encryptionType"),
            self.encryption_type.as_deref(),
            true,
            &enum_rule::<EncryptionType>(),
        );
        v.string(
            Path::Field("keyId"),
            self.key_id.as_deref(),
            true,
            &validate::KMS_KEY_ID,
        );
        validate_stream_refs(
            v,
            self.stream_name.as_ref(),
            self.stream_arn.as_ref(),
            self.stream_id.as_ref(),
        );
    }
}

impl Validate for EnhancedMonitoringInput {
    fn validate(&self, v: &mut Validator) {
        v.enum_list(
            Path::Field("shardLevelMetrics"),
            self.shard_level_metrics.as_deref(),
            true,
            Some(1),
            Some(7),
            <MetricsName as WireEnum>::VALUES,
        );
        validate_stream_refs(
            v,
            self.stream_name.as_ref(),
            self.stream_arn.as_ref(),
            self.stream_id.as_ref(),
        );
    }
}

impl Validate for UpdateAccountSettingsInput {
    fn validate(&self, v: &mut Validator) {
        match &self.minimum_throughput_billing_commitment {
            Some(commitment) => v.string(
                Path::Nested("minimumThroughputBillingCommitment", "status"),
                commitment.status.as_deref(),
                true,
                &StringRule::one_of(&["ENABLED", "DISABLED"]),
            ),
            None => v.required::<()>(Path::Field("minimumThroughputBillingCommitment"), None),
        }
    }
}

impl Validate for UpdateStreamWarmThroughputInput {
    fn validate(&self, v: &mut Validator) {
        validate_stream_refs(
            v,
            self.stream_name.as_ref(),
            self.stream_arn.as_ref(),
            self.stream_id.as_ref(),
        );
        v.integer(
            Path::Field("warmThroughputMiBps"),
            int(self.warm_throughput_mibps),
            true,
            Some(0),
            None,
        );
    }
}

impl Validate for UpdateMaxRecordSizeInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            Path::Field("streamARN"),
            self.stream_arn.as_deref(),
            false,
            &validate::STREAM_ARN,
        );
        v.string(
            Path::Field("streamId"),
            self.stream_id.as_deref(),
            false,
            &validate::STREAM_ID,
        );
        v.integer(
            Path::Field("maxRecordSizeInKiB"),
            int(self.max_record_size_kib),
            true,
            Some(i64::from(limits::RECORD_SIZE_KIB_MIN)),
            Some(i64::from(limits::RECORD_SIZE_KIB_MAX)),
        );
    }
}

// ===== Outputs =====

macro_rules! void_outputs {
    ($($(#[$meta:meta])* $name:ident;)+) => {
        $(
            $(#[$meta])*
            /// A void result: 200 with an empty body (or `{}`, which SDKs also accept).
            #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
            pub struct $name {}
        )+
    };
}

void_outputs!(
    CreateStreamOutput;
    DeleteStreamOutput;
    IncreaseStreamRetentionPeriodOutput;
    DecreaseStreamRetentionPeriodOutput;
    AddTagsToStreamOutput;
    RemoveTagsFromStreamOutput;
    TagResourceOutput;
    UntagResourceOutput;
    SplitShardOutput;
    MergeShardsOutput;
    UpdateStreamModeOutput;
    UpdateMaxRecordSizeOutput;
    UpdateStreamRecordDistributionStrategyOutput;
    DeregisterStreamConsumerOutput;
    PutResourcePolicyOutput;
    DeleteResourcePolicyOutput;
    StartStreamEncryptionOutput;
    StopStreamEncryptionOutput;
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetResourcePolicyOutput {
    pub policy: String,
}

/// EnableEnhancedMonitoring's and DisableEnhancedMonitoring's answer: the metric sets before and
/// after.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnhancedMonitoringOutput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_shard_level_metrics: Option<Vec<MetricsName>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_shard_level_metrics: Option<Vec<MetricsName>>,
    #[serde(rename = "StreamARN", default, skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateAccountSettingsOutput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_throughput_billing_commitment: Option<MinimumThroughputBillingCommitmentOutput>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStreamWarmThroughputOutput {
    #[serde(rename = "StreamARN", default, skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_throughput: Option<WarmThroughputObject>,
}

/// A consumer as RegisterStreamConsumer and ListStreamConsumers show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Consumer {
    pub consumer_name: String,
    #[serde(rename = "ConsumerARN")]
    pub consumer_arn: String,
    pub consumer_status: ConsumerStatus,
    pub consumer_creation_timestamp: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegisterStreamConsumerOutput {
    pub consumer: Consumer,
}

/// A consumer as DescribeStreamConsumer shows it: with its stream's ARN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConsumerDescription {
    pub consumer_name: String,
    #[serde(rename = "ConsumerARN")]
    pub consumer_arn: String,
    pub consumer_status: ConsumerStatus,
    pub consumer_creation_timestamp: Timestamp,
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamConsumerOutput {
    pub consumer_description: ConsumerDescription,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamConsumersOutput {
    pub consumers: Vec<Consumer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// The payload of one `SubscribeToShardEvent` message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubscribeToShardEvent {
    pub records: Vec<Record>,
    /// Absent only in the last event of a closed shard, which carries `child_shards`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation_sequence_number: Option<String>,
    pub millis_behind_latest: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_shards: Option<Vec<ChildShard>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamModeDetails {
    #[serde(rename = "StreamMode")]
    pub stream_mode: StreamMode,
}

/// An inclusive range of 128-bit hash keys, as decimal strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HashKeyRange {
    pub starting_hash_key: String,
    pub ending_hash_key: String,
}

impl HashKeyRange {
    pub fn new(starting_hash_key: u128, ending_hash_key: u128) -> HashKeyRange {
        HashKeyRange {
            starting_hash_key: starting_hash_key.to_string(),
            ending_hash_key: ending_hash_key.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SequenceNumberRange {
    pub starting_sequence_number: String,
    /// Present once the shard is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ending_sequence_number: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Shard {
    pub shard_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_shard_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjacent_parent_shard_id: Option<String>,
    pub hash_key_range: HashKeyRange,
    pub sequence_number_range: SequenceNumberRange,
}

/// One entry of `EnhancedMonitoring`; a stream without metrics shows one entry with an empty
/// list, so the list is always written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnhancedMetrics {
    #[serde(default)]
    pub shard_level_metrics: Vec<MetricsName>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamDescription {
    pub stream_name: String,
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    pub stream_status: StreamStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_mode_details: Option<StreamModeDetails>,
    pub shards: Vec<Shard>,
    pub has_more_shards: bool,
    pub retention_period_hours: u32,
    pub stream_creation_timestamp: Timestamp,
    pub enhanced_monitoring: Vec<EnhancedMetrics>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_type: Option<EncryptionType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamOutput {
    pub stream_description: StreamDescription,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WarmThroughputObject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_mi_bps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_mi_bps: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamDescriptionSummary {
    pub stream_name: String,
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    pub stream_status: StreamStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_mode_details: Option<StreamModeDetails>,
    pub retention_period_hours: u32,
    pub stream_creation_timestamp: Timestamp,
    pub enhanced_monitoring: Vec<EnhancedMetrics>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_type: Option<EncryptionType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    pub open_shard_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_throughput: Option<WarmThroughputObject>,
    #[serde(
        rename = "MaxRecordSizeInKiB",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_record_size_kib: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_distribution_strategy: Option<RecordDistributionStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_count: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamSummaryOutput {
    pub stream_description_summary: StreamDescriptionSummary,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamSummary {
    pub stream_name: String,
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    pub stream_status: StreamStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_mode_details: Option<StreamModeDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_creation_timestamp: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamsOutput {
    pub stream_names: Vec<String>,
    pub has_more_streams: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    #[serde(default)]
    pub stream_summaries: Vec<StreamSummary>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListShardsOutput {
    #[serde(default)]
    pub shards: Vec<Shard>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordOutput {
    pub shard_id: String,
    pub sequence_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_type: Option<EncryptionType>,
}

/// One PutRecords result, in request order: a sequence number and shard on success, an error
/// code and message on failure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsResultEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutRecordsOutput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_record_count: Option<u32>,
    pub records: Vec<PutRecordsResultEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_type: Option<EncryptionType>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetShardIteratorOutput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_iterator: Option<String>,
}

/// A record as GetRecords (and SubscribeToShard) return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Record {
    pub sequence_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approximate_arrival_timestamp: Option<Timestamp>,
    #[serde(with = "crate::json::blob")]
    pub data: Bytes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_type: Option<EncryptionType>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChildShard {
    pub shard_id: String,
    pub parent_shards: Vec<String>,
    pub hash_key_range: HashKeyRange,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRecordsOutput {
    pub records: Vec<Record>,
    /// Absent exactly when a closed shard has been read to its end; `child_shards` is present
    /// exactly then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_shard_iterator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub millis_behind_latest: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_shards: Option<Vec<ChildShard>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForStreamOutput {
    pub tags: Vec<Tag>,
    pub has_more_tags: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForResourceOutput {
    #[serde(default)]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeLimitsOutput {
    pub shard_limit: u32,
    pub open_shard_count: u32,
    pub on_demand_stream_count: u32,
    pub on_demand_stream_count_limit: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_count_limit: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MinimumThroughputBillingCommitmentOutput {
    pub status: MinimumThroughputBillingCommitmentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earliest_allowed_end_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeAccountSettingsOutput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_throughput_billing_commitment: Option<MinimumThroughputBillingCommitmentOutput>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateShardCountOutput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_shard_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_shard_count: Option<u32>,
    #[serde(rename = "StreamARN", default, skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
}

// ===== Channels =====

mod channels;
pub use channels::*;

// ===== Requests =====

macro_rules! requests {
    ($($operation:ident($input:ident),)+) => {
        /// A decoded, validated request of one of the operations riffle knows.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Request {
            $($operation($input),)+
        }

        impl Request {
            /// The operation name, as in `X-Amz-Target: Kinesis_20131202.<name>`.
            pub fn operation(&self) -> &'static str {
                match self {
                    $(Request::$operation(_) => stringify!($operation),)+
                }
            }
        }

        /// Every operation [`decode_request`] accepts.
        pub const OPERATIONS: &[&str] = &[$(stringify!($operation),)+];

        /// Decodes the JSON body of `operation` (the part of `X-Amz-Target` after
        /// `Kinesis_20131202.`) and validates it against the model; see
        /// [`decode_request_in`].
        pub fn decode_request(operation: &str, body: &[u8]) -> Result<Request, KinesisError> {
            decode_request_in(WireFormat::Json, operation, body)
        }

        /// Decodes the body of `operation` in `format` and validates it against the model.
        /// Every format yields the same typed request, checked by the same rules.
        ///
        /// Errors: UnknownOperationException for an operation riffle does not know,
        /// SerializationException for a body that is not well-formed in `format` or has a
        /// member of the wrong type, ValidationException for members that break the model's
        /// constraints.
        pub fn decode_request_in(
            format: WireFormat,
            operation: &str,
            body: &[u8],
        ) -> Result<Request, KinesisError> {
            match operation {
                $(stringify!($operation) => {
                    let input: $input = format.decode(body)?;
                    validate::check(&input)?;
                    Ok(Request::$operation(input))
                })+
                _ => Err(KinesisError::unknown_operation()),
            }
        }
    };
}

requests!(
    CreateStream(CreateStreamInput),
    DeleteStream(DeleteStreamInput),
    DescribeStream(DescribeStreamInput),
    DescribeStreamSummary(DescribeStreamSummaryInput),
    ListStreams(ListStreamsInput),
    ListShards(ListShardsInput),
    PutRecord(PutRecordInput),
    PutRecords(PutRecordsInput),
    GetShardIterator(GetShardIteratorInput),
    GetRecords(GetRecordsInput),
    IncreaseStreamRetentionPeriod(IncreaseStreamRetentionPeriodInput),
    DecreaseStreamRetentionPeriod(DecreaseStreamRetentionPeriodInput),
    AddTagsToStream(AddTagsToStreamInput),
    RemoveTagsFromStream(RemoveTagsFromStreamInput),
    ListTagsForStream(ListTagsForStreamInput),
    TagResource(TagResourceInput),
    UntagResource(UntagResourceInput),
    ListTagsForResource(ListTagsForResourceInput),
    DescribeLimits(DescribeLimitsInput),
    DescribeAccountSettings(DescribeAccountSettingsInput),
    SplitShard(SplitShardInput),
    MergeShards(MergeShardsInput),
    UpdateShardCount(UpdateShardCountInput),
    UpdateStreamMode(UpdateStreamModeInput),
    UpdateMaxRecordSize(UpdateMaxRecordSizeInput),
    UpdateStreamRecordDistributionStrategy(UpdateStreamRecordDistributionStrategyInput),
    RegisterStreamConsumer(RegisterStreamConsumerInput),
    DescribeStreamConsumer(DescribeStreamConsumerInput),
    ListStreamConsumers(ListStreamConsumersInput),
    DeregisterStreamConsumer(DeregisterStreamConsumerInput),
    SubscribeToShard(SubscribeToShardInput),
    CreateQueue(CreateQueueInput),
    UpdateQueue(UpdateQueueInput),
    DeleteQueue(DeleteQueueInput),
    DescribeQueue(DescribeQueueInput),
    ListQueues(ListQueuesInput),
    ReceiveQueueRecords(ReceiveQueueRecordsInput),
    AcknowledgeQueueRecords(AcknowledgeQueueRecordsInput),
    UpdateQueueRecordsVisibility(UpdateQueueRecordsVisibilityInput),
    ReceiveDeadLetterQueueRecords(ReceiveDeadLetterQueueRecordsInput),
    AcknowledgeDeadLetterQueueRecords(AcknowledgeDeadLetterQueueRecordsInput),
    UpdateDeadLetterQueueRecordsVisibility(UpdateDeadLetterQueueRecordsVisibilityInput),
    RestoreDeadLetterQueueRecords(RestoreDeadLetterQueueRecordsInput),
    PutResourcePolicy(PutResourcePolicyInput),
    GetResourcePolicy(GetResourcePolicyInput),
    DeleteResourcePolicy(DeleteResourcePolicyInput),
    StartStreamEncryption(StartStreamEncryptionInput),
    StopStreamEncryption(StopStreamEncryptionInput),
    EnableEnhancedMonitoring(EnableEnhancedMonitoringInput),
    DisableEnhancedMonitoring(DisableEnhancedMonitoringInput),
    UpdateAccountSettings(UpdateAccountSettingsInput),
    UpdateStreamWarmThroughput(UpdateStreamWarmThroughputInput),
    // Boxed: the largest input by far, it would size every Request.
    CreateChannel(CreateChannelRequest),
    UpdateChannel(UpdateChannelInput),
    DeleteChannel(DeleteChannelInput),
    DescribeChannel(DescribeChannelInput),
    ListChannels(ListChannelsInput),
);

#[cfg(test)]
mod tests;
