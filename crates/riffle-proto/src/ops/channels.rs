//! Channels (CreateChannel, UpdateChannel, DeleteChannel, DescribeChannel, ListChannels):
//! shapes and model constraints, as in botocore's `kinesis/2013-12-02` 1.44.5.
//!
//! A channel delivers a stream's records to an S3 bucket or to Iceberg tables (S3 Tables).
//! The configuration structures serve both ways: a request carries them, and
//! DescribeChannel shows them back as stored (input shapes serialize their present members).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{enum_rule, int, WireEnum};
use crate::json::Timestamp;
use crate::validate::{self, OtherPattern, Path, Pattern, StringRule, Validate, Validator};
use std::collections::BTreeMap;

wire_enum!(
    /// `ChannelStatus`.
    ChannelStatus {
        Creating = "CREATING",
        Active = "ACTIVE",
        Updating = "UPDATING",
        Deleting = "DELETING",
        Failed = "FAILED",
    }
);

wire_enum!(
    /// `RecordFormatType`: how a channel reads the records of its stream.
    RecordFormatType {
        GsrJson = "GSR_JSON",
        Json = "JSON",
        String = "STRING",
        ByteArray = "BYTE_ARRAY",
    }
);

wire_enum!(
    /// `S3CompressionType`.
    S3CompressionType {
        None = "NONE",
        Gzip = "GZIP",
        Zstd = "ZSTD",
    }
);

wire_enum!(
    /// `S3StorageClass`.
    S3StorageClass {
        Standard = "STANDARD",
        IntelligentTiering = "INTELLIGENT_TIERING",
        GlacierIr = "GLACIER_IR",
    }
);

wire_enum!(
    /// `S3TablesCompressionType`.
    S3TablesCompressionType {
        None = "NONE",
        Zstd = "ZSTD",
        Snappy = "SNAPPY",
    }
);

wire_enum!(
    /// `PartitionTransform`.
    PartitionTransform {
        TimeHour = "TIME_HOUR",
    }
);

wire_enum!(
    /// `ChannelEncryptionType`.
    ChannelEncryptionType {
        Kms = "KMS",
    }
);

wire_enum!(
    /// `ChannelDestinationType`.
    ChannelDestinationType {
        S3 = "S3",
        S3Tables = "S3_TABLES",
    }
);

// ----- Patterns (hand-written, linear, whole-string as Java's `matches`) -----

/// `prefix` then one or more (`min`..=`max`) bytes of `class`, nothing else.
fn prefixed_run(value: &str, prefix: &str, class: fn(u8) -> bool, min: usize, max: usize) -> bool {
    value
        .strip_prefix(prefix)
        .is_some_and(|rest| (min..=max).contains(&rest.len()) && rest.bytes().all(class))
}

/// `arn:aws[-a-z0-9]*:` then the rest of the value, which is returned.
fn aws_partition(value: &str) -> Option<&str> {
    let rest = value.strip_prefix("arn:aws")?;
    let end = rest.find(':')?;
    rest[..end]
        .bytes()
        .all(|b| b == b'-' || b.is_ascii_lowercase() || b.is_ascii_digit())
        .then(|| &rest[end + 1..])
}

fn twelve_digits(value: &str) -> bool {
    value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit())
}

fn is_role_arn(value: &str) -> bool {
    let Some(rest) = aws_partition(value).and_then(|rest| rest.strip_prefix("iam::")) else {
        return false;
    };
    rest.get(..12).is_some_and(twelve_digits)
        && prefixed_run(
            &rest[12..],
            ":role/",
            |b| b.is_ascii_alphanumeric() || b"_+=,.@-/".contains(&b),
            1,
            usize::MAX,
        )
}

fn bucket_name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
}

fn is_bucket_arn(value: &str) -> bool {
    aws_partition(value).is_some_and(|rest| prefixed_run(rest, "s3:::", bucket_name_byte, 3, 63))
}

fn is_table_bucket_arn(value: &str) -> bool {
    let Some(rest) = aws_partition(value).and_then(|rest| rest.strip_prefix("s3tables:")) else {
        return false;
    };
    let Some((region, rest)) = rest.split_once(':') else {
        return false;
    };
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b == b'-' || b.is_ascii_lowercase() || b.is_ascii_digit());
    region_ok
        && rest.get(..12).is_some_and(twelve_digits)
        && prefixed_run(
            &rest[12..],
            ":bucket/",
            |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-',
            3,
            63,
        )
}

fn is_gsr_schema_arn(value: &str) -> bool {
    let Some(rest) = aws_partition(value).and_then(|rest| rest.strip_prefix("glue:")) else {
        return false;
    };
    let Some((region, rest)) = rest.split_once(':') else {
        return false;
    };
    let name = |b: u8| b.is_ascii_alphanumeric() || b"-_$#.".contains(&b);
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b == b'-' || b.is_ascii_lowercase() || b.is_ascii_digit());
    let Some(schema) = rest
        .get(..12)
        .filter(|account| twelve_digits(account))
        .and_then(|_| rest[12..].strip_prefix(":schema/"))
    else {
        return false;
    };
    region_ok
        && schema.split_once('/').is_some_and(|(registry, name_part)| {
            !registry.is_empty()
                && !name_part.is_empty()
                && registry.bytes().all(name)
                && name_part.bytes().all(name)
        })
}

fn is_channel_arn(value: &str) -> bool {
    validate::is_kinesis_arn(value, ":channel/")
}

fn all_bytes(value: &str, class: fn(u8) -> bool) -> bool {
    !value.is_empty() && value.bytes().all(class)
}

static ROLE_ARN_PATTERN: OtherPattern = OtherPattern {
    text: r"arn:aws[-a-z0-9]*:iam::\d{12}:role/[a-zA-Z_0-9+=,.@\-_/]+",
    matches: is_role_arn,
};
static BUCKET_ARN_PATTERN: OtherPattern = OtherPattern {
    text: "arn:aws[-a-z0-9]*:s3:::[a-z0-9._-]{3,63}",
    matches: is_bucket_arn,
};
static TABLE_BUCKET_ARN_PATTERN: OtherPattern = OtherPattern {
    text: r"arn:aws[-a-z0-9]*:s3tables:[-a-z0-9]+:\d{12}:bucket/[a-z0-9_-]{3,63}",
    matches: is_table_bucket_arn,
};
static GSR_SCHEMA_ARN_PATTERN: OtherPattern = OtherPattern {
    text: r"arn:aws[-a-z0-9]*:glue:[-a-z0-9]+:\d{12}:schema/[-a-zA-Z0-9_$#.]+/[-a-zA-Z0-9_$#.]+",
    matches: is_gsr_schema_arn,
};
static CHANNEL_ARN_PATTERN: OtherPattern = OtherPattern {
    text: r"arn:aws.*:kinesis:.*:\d{12}:channel/\S+",
    matches: is_channel_arn,
};
static ACCOUNT_PATTERN: OtherPattern = OtherPattern {
    text: r"\d{12}",
    matches: twelve_digits,
};
static ERROR_PREFIX_PATTERN: OtherPattern = OtherPattern {
    text: r"[0-9A-Za-z!\-_'.*()\/]+",
    matches: |value| {
        all_bytes(value, |b| {
            b.is_ascii_alphanumeric() || b"!-_'.*()/".contains(&b)
        })
    },
};
static KEY_TEMPLATE_PATTERN: OtherPattern = OtherPattern {
    text: r"[0-9A-Za-z!\-_'.*()\/=:{}]+",
    matches: |value| {
        all_bytes(value, |b| {
            b.is_ascii_alphanumeric() || b"!-_'.*()/=:{}".contains(&b)
        })
    },
};
static TABLES_NAME_PATTERN: OtherPattern = OtherPattern {
    text: "[0-9a-z_]+",
    matches: |value| {
        all_bytes(value, |b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
        })
    },
};
static PARTITION_SOURCE_PATTERN: OtherPattern = OtherPattern {
    text: r"[a-zA-Z0-9\.\_]+",
    matches: |value| {
        all_bytes(value, |b| {
            b.is_ascii_alphanumeric() || b == b'.' || b == b'_'
        })
    },
};
static LOG_GROUP_PATTERN: OtherPattern = OtherPattern {
    text: r"[\.\-_/#A-Za-z0-9]+",
    matches: |value| {
        all_bytes(value, |b| {
            b.is_ascii_alphanumeric() || b".-_/#".contains(&b)
        })
    },
};
static LOG_STREAM_PATTERN: OtherPattern = OtherPattern {
    text: "[^:*]*",
    matches: |value| !value.contains([':', '*']),
};

const fn rule(pattern: Option<Pattern>, len_min: usize, len_max: usize) -> StringRule {
    StringRule {
        pattern,
        values: None,
        len_min: Some(len_min),
        len_max: Some(len_max),
    }
}

pub const CHANNEL_NAME: StringRule = rule(Some(Pattern::Name), 1, 128);
pub const CHANNEL_ARN: StringRule = rule(Some(Pattern::Other(&CHANNEL_ARN_PATTERN)), 1, 2048);
const ROLE_ARN: StringRule = rule(Some(Pattern::Other(&ROLE_ARN_PATTERN)), 1, 512);
const BUCKET_ARN: StringRule = rule(Some(Pattern::Other(&BUCKET_ARN_PATTERN)), 1, 2048);
const TABLE_BUCKET_ARN: StringRule = rule(Some(Pattern::Other(&TABLE_BUCKET_ARN_PATTERN)), 1, 2048);
const GSR_SCHEMA_ARN: StringRule = rule(Some(Pattern::Other(&GSR_SCHEMA_ARN_PATTERN)), 1, 512);
const EXPECTED_BUCKET_OWNER: StringRule = rule(Some(Pattern::Other(&ACCOUNT_PATTERN)), 12, 12);
const ERROR_OUTPUT_PREFIX: StringRule = rule(Some(Pattern::Other(&ERROR_PREFIX_PATTERN)), 1, 512);
const OUTPUT_KEY_TEMPLATE: StringRule = rule(Some(Pattern::Other(&KEY_TEMPLATE_PATTERN)), 1, 1024);
const TABLES_NAME: StringRule = rule(Some(Pattern::Other(&TABLES_NAME_PATTERN)), 1, 255);
const PARTITION_SOURCE: StringRule = rule(Some(Pattern::Other(&PARTITION_SOURCE_PATTERN)), 1, 255);
const LOG_GROUP: StringRule = rule(Some(Pattern::Other(&LOG_GROUP_PATTERN)), 1, 512);
const LOG_STREAM: StringRule = rule(Some(Pattern::Other(&LOG_STREAM_PATTERN)), 1, 512);
const KEY_ID: StringRule = rule(None, 1, 2048);

/// The model's bound on configuration and filter lists.
const LIST_MAX: usize = 10_000;

// ----- Configuration structures (requests, and DescribeChannel's answer) -----

input_shape!(
    /// `RecordConfiguration`.
    RecordConfiguration {
        record_format_type: String = "RecordFormatType" via "crate::json::field::string";
        gsr_schema_arn: String = "GSRSchemaARN" via "crate::json::field::string";
    }
);

input_shape!(
    /// `ChannelStreamConfiguration`.
    ChannelStreamConfiguration {
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        record_configuration: RecordConfiguration = "RecordConfiguration" via "crate::json::field::structure";
    }
);

input_shape!(
    /// `DeadLetterQueueS3Configuration`.
    DeadLetterQueueS3Configuration {
        bucket_arn: String = "BucketARN" via "crate::json::field::string";
        expected_bucket_owner: String = "ExpectedBucketOwner" via "crate::json::field::string";
        error_output_prefix: String = "ErrorOutputPrefix" via "crate::json::field::string";
    }
);

input_shape!(
    /// `S3StorageConfiguration`.
    S3StorageConfiguration {
        bucket_arn: String = "BucketARN" via "crate::json::field::string";
        expected_bucket_owner: String = "ExpectedBucketOwner" via "crate::json::field::string";
        output_key_template: String = "OutputKeyTemplate" via "crate::json::field::string";
        storage_class: String = "StorageClass" via "crate::json::field::string";
        compression_type: String = "CompressionType" via "crate::json::field::string";
    }
);

input_shape!(
    /// `S3DestinationConfiguration`.
    S3DestinationConfiguration {
        data_freshness_in_seconds: i32 = "DataFreshnessInSeconds" via "crate::json::field::integer";
        dead_letter_queue_s3_configuration: DeadLetterQueueS3Configuration = "DeadLetterQueueS3Configuration" via "crate::json::field::structure";
        storage_configuration: S3StorageConfiguration = "StorageConfiguration" via "crate::json::field::structure";
    }
);

input_shape!(
    /// `PartitionField`.
    PartitionField {
        transform: String = "Transform" via "crate::json::field::string";
        source_name: String = "SourceName" via "crate::json::field::string";
    }
);

input_shape!(
    /// `PartitionSpec`.
    PartitionSpec {
        partition_fields: Vec<PartitionField> = "PartitionFields" via "crate::json::field::structure_list";
    }
);

input_shape!(
    /// `S3TablesConfiguration`.
    S3TablesConfiguration {
        table_bucket_arn: String = "TableBucketARN" via "crate::json::field::string";
        namespace: String = "Namespace" via "crate::json::field::string";
        table_name: String = "TableName" via "crate::json::field::string";
        compression_type: String = "CompressionType" via "crate::json::field::string";
        partition_spec: PartitionSpec = "PartitionSpec" via "crate::json::field::structure";
    }
);

input_shape!(
    /// `S3TablesDestinationConfiguration`.
    S3TablesDestinationConfiguration {
        data_freshness_in_seconds: i32 = "DataFreshnessInSeconds" via "crate::json::field::integer";
        dead_letter_queue_s3_configuration: DeadLetterQueueS3Configuration = "DeadLetterQueueS3Configuration" via "crate::json::field::structure";
        s3_tables_configuration_list: Vec<S3TablesConfiguration> = "S3TablesConfigurationList" via "crate::json::field::structure_list";
    }
);

input_shape!(
    /// `ChannelEncryptionConfiguration`.
    ChannelEncryptionConfiguration {
        encryption_type: String = "EncryptionType" via "crate::json::field::string";
        key_id: String = "KeyId" via "crate::json::field::string";
    }
);

input_shape!(
    /// `CloudWatchLogs` (and `CloudWatchLogsUpdateInput`, the same members).
    CloudWatchLogs {
        enabled: bool = "Enabled" via "crate::json::field::boolean";
        log_group_name: String = "LogGroupName" via "crate::json::field::string";
        log_stream_name: String = "LogStreamName" via "crate::json::field::string";
    }
);

input_shape!(
    /// `ChannelLoggingConfiguration` (and `ChannelLoggingUpdateInput`).
    ChannelLoggingConfiguration {
        cloud_watch_logs: CloudWatchLogs = "CloudWatchLogs" via "crate::json::field::structure";
    }
);

input_shape!(
    /// `S3DestinationUpdateInput` and `S3TablesDestinationUpdateInput`.
    DestinationUpdateInput {
        data_freshness_in_seconds: i32 = "DataFreshnessInSeconds" via "crate::json::field::integer";
    }
);

input_shape!(
    /// `StreamFilter`.
    StreamFilter {
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_creation_timestamp: Timestamp = "StreamCreationTimestamp" via "crate::json::field::timestamp";
    }
);

// ----- Inputs -----

input_shape!(
    CreateChannelInput {
        channel_name: String = "ChannelName" via "crate::json::field::string";
        service_execution_role_arn: String = "ServiceExecutionRoleARN" via "crate::json::field::string";
        stream_configuration_list: Vec<ChannelStreamConfiguration> = "StreamConfigurationList" via "crate::json::field::structure_list";
        s3_destination_configuration: S3DestinationConfiguration = "S3DestinationConfiguration" via "crate::json::field::structure";
        s3_tables_destination_configuration: S3TablesDestinationConfiguration = "S3TablesDestinationConfiguration" via "crate::json::field::structure";
        encryption_configuration: ChannelEncryptionConfiguration = "EncryptionConfiguration" via "crate::json::field::structure";
        tags: BTreeMap<String, String> = "Tags" via "crate::json::field::string_map";
        logging_configuration: ChannelLoggingConfiguration = "LoggingConfiguration" via "crate::json::field::structure";
    }
);

/// CreateChannel's input as a `Request` holds it: boxed, being far larger than any other.
pub type CreateChannelRequest = Box<CreateChannelInput>;

input_shape!(
    UpdateChannelInput {
        channel_arn: String = "ChannelARN" via "crate::json::field::string";
        s3_destination_configuration: DestinationUpdateInput = "S3DestinationConfiguration" via "crate::json::field::structure";
        s3_tables_destination_configuration: DestinationUpdateInput = "S3TablesDestinationConfiguration" via "crate::json::field::structure";
        logging_configuration: ChannelLoggingConfiguration = "LoggingConfiguration" via "crate::json::field::structure";
    }
);

input_shape!(
    /// DeleteChannel and DescribeChannel.
    ChannelRefInput {
        channel_arn: String = "ChannelARN" via "crate::json::field::string";
    }
);

/// DeleteChannel's input.
pub type DeleteChannelInput = ChannelRefInput;
/// DescribeChannel's input.
pub type DescribeChannelInput = ChannelRefInput;

input_shape!(
    ListChannelsInput {
        stream_filter: Vec<StreamFilter> = "StreamFilter" via "crate::json::field::structure_list";
        max_results: i32 = "MaxResults" via "crate::json::field::integer";
        next_token: String = "NextToken" via "crate::json::field::string";
    }
);

// ----- Outputs -----

/// `ChannelStreamDescription`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChannelStreamDescription {
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    pub stream_creation_timestamp: Timestamp,
    pub record_configuration: RecordConfiguration,
}

/// `S3DestinationDescription`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3DestinationDescription {
    pub data_freshness_in_seconds: i32,
    #[serde(rename = "DeadLetterQueueS3Configuration")]
    pub dead_letter_queue_s3_configuration: DeadLetterQueueS3Configuration,
    pub storage_configuration: S3StorageConfiguration,
}

/// `S3TablesDestinationDescription`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct S3TablesDestinationDescription {
    pub data_freshness_in_seconds: i32,
    #[serde(rename = "DeadLetterQueueS3Configuration")]
    pub dead_letter_queue_s3_configuration: DeadLetterQueueS3Configuration,
    #[serde(rename = "S3TablesConfigurationList")]
    pub s3_tables_configuration_list: Vec<S3TablesConfiguration>,
}

/// `ChannelDescription`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChannelDescription {
    pub channel_name: String,
    #[serde(rename = "ChannelARN")]
    pub channel_arn: String,
    pub channel_id: String,
    pub channel_status: ChannelStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_status_reason: Option<String>,
    pub channel_creation_timestamp: Timestamp,
    #[serde(rename = "ServiceExecutionRoleARN")]
    pub service_execution_role_arn: String,
    pub stream_configuration_list: Vec<ChannelStreamDescription>,
    #[serde(
        rename = "S3DestinationConfiguration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub s3_destination_configuration: Option<S3DestinationDescription>,
    #[serde(
        rename = "S3TablesDestinationConfiguration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub s3_tables_destination_configuration: Option<S3TablesDestinationDescription>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_configuration: Option<ChannelEncryptionConfiguration>,
    pub logging_configuration: ChannelLoggingConfiguration,
}

/// CreateChannel's, UpdateChannel's and DescribeChannel's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChannelDescriptionOutput {
    pub channel_description: ChannelDescription,
}

pub type CreateChannelOutput = ChannelDescriptionOutput;
pub type UpdateChannelOutput = ChannelDescriptionOutput;
pub type DescribeChannelOutput = ChannelDescriptionOutput;

/// `ChannelStreamIdentifier`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChannelStreamIdentifier {
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    pub stream_creation_timestamp: Timestamp,
}

/// `ChannelSummary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChannelSummary {
    pub channel_name: String,
    #[serde(rename = "ChannelARN")]
    pub channel_arn: String,
    pub channel_id: String,
    pub channel_status: ChannelStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_status_reason: Option<String>,
    pub channel_creation_timestamp: Timestamp,
    pub channel_destination_type: ChannelDestinationType,
    pub streams: Vec<ChannelStreamIdentifier>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListChannelsOutput {
    pub channel_summaries: Vec<ChannelSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

// ----- Validation -----

fn validate_dead_letter(v: &mut Validator, parent: &str, dlq: &DeadLetterQueueS3Configuration) {
    v.string(
        Path::Nested(parent, "bucketARN"),
        dlq.bucket_arn.as_deref(),
        true,
        &BUCKET_ARN,
    );
    v.string(
        Path::Nested(parent, "expectedBucketOwner"),
        dlq.expected_bucket_owner.as_deref(),
        true,
        &EXPECTED_BUCKET_OWNER,
    );
    v.string(
        Path::Nested(parent, "errorOutputPrefix"),
        dlq.error_output_prefix.as_deref(),
        false,
        &ERROR_OUTPUT_PREFIX,
    );
}

fn validate_logging(v: &mut Validator, logging: Option<&ChannelLoggingConfiguration>) {
    let Some(logging) = logging else {
        return;
    };
    match &logging.cloud_watch_logs {
        None => v.required::<()>(Path::Nested("loggingConfiguration", "cloudWatchLogs"), None),
        Some(logs) => {
            let parent = "loggingConfiguration.cloudWatchLogs";
            v.required(Path::Nested(parent, "enabled"), logs.enabled.as_ref());
            v.string(
                Path::Nested(parent, "logGroupName"),
                logs.log_group_name.as_deref(),
                false,
                &LOG_GROUP,
            );
            v.string(
                Path::Nested(parent, "logStreamName"),
                logs.log_stream_name.as_deref(),
                false,
                &LOG_STREAM,
            );
        }
    }
}

impl Validate for CreateChannelInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            Path::Field("channelName"),
            self.channel_name.as_deref(),
            true,
            &CHANNEL_NAME,
        );
        v.string(
            Path::Field("serviceExecutionRoleARN"),
            self.service_execution_role_arn.as_deref(),
            true,
            &ROLE_ARN,
        );
        match &self.stream_configuration_list {
            None => v.required::<()>(Path::Field("streamConfigurationList"), None),
            Some(list) => {
                v.count(
                    Path::Field("streamConfigurationList"),
                    list.len(),
                    Some(1),
                    Some(LIST_MAX),
                    || format!("[{} entries]", list.len()),
                );
                for (index, entry) in list.iter().enumerate() {
                    v.string(
                        Path::Member("streamConfigurationList", index, "streamARN"),
                        entry.stream_arn.as_deref(),
                        true,
                        &validate::STREAM_ARN,
                    );
                    match &entry.record_configuration {
                        None => v.required::<()>(
                            Path::Member("streamConfigurationList", index, "recordConfiguration"),
                            None,
                        ),
                        Some(record) => {
                            v.string(
                                Path::Member(
                                    "streamConfigurationList",
                                    index,
                                    "recordConfiguration.recordFormatType",
                                ),
                                record.record_format_type.as_deref(),
                                true,
                                &enum_rule::<RecordFormatType>(),
                            );
                            v.string(
                                Path::Member(
                                    "streamConfigurationList",
                                    index,
                                    "recordConfiguration.gSRSchemaARN",
                                ),
                                record.gsr_schema_arn.as_deref(),
                                false,
                                &GSR_SCHEMA_ARN,
                            );
                        }
                    }
                }
            }
        }
        if let Some(s3) = &self.s3_destination_configuration {
            if let Some(dlq) = &s3.dead_letter_queue_s3_configuration {
                validate_dead_letter(
                    v,
                    "s3DestinationConfiguration.deadLetterQueueS3Configuration",
                    dlq,
                );
            }
            match &s3.storage_configuration {
                None => v.required::<()>(
                    Path::Nested("s3DestinationConfiguration", "storageConfiguration"),
                    None,
                ),
                Some(storage) => {
                    let parent = "s3DestinationConfiguration.storageConfiguration";
                    v.string(
                        Path::Nested(parent, "bucketARN"),
                        storage.bucket_arn.as_deref(),
                        true,
                        &BUCKET_ARN,
                    );
                    v.string(
                        Path::Nested(parent, "expectedBucketOwner"),
                        storage.expected_bucket_owner.as_deref(),
                        true,
                        &EXPECTED_BUCKET_OWNER,
                    );
                    v.string(
                        Path::Nested(parent, "outputKeyTemplate"),
                        storage.output_key_template.as_deref(),
                        false,
                        &OUTPUT_KEY_TEMPLATE,
                    );
                    v.string(
                        Path::Nested(parent, "storageClass"),
                        storage.storage_class.as_deref(),
                        false,
                        &enum_rule::<S3StorageClass>(),
                    );
                    v.string(
                        Path::Nested(parent, "compressionType"),
                        storage.compression_type.as_deref(),
                        true,
                        &enum_rule::<S3CompressionType>(),
                    );
                }
            }
        }
        if let Some(tables) = &self.s3_tables_destination_configuration {
            match &tables.dead_letter_queue_s3_configuration {
                None => v.required::<()>(
                    Path::Nested(
                        "s3TablesDestinationConfiguration",
                        "deadLetterQueueS3Configuration",
                    ),
                    None,
                ),
                Some(dlq) => validate_dead_letter(
                    v,
                    "s3TablesDestinationConfiguration.deadLetterQueueS3Configuration",
                    dlq,
                ),
            }
            match &tables.s3_tables_configuration_list {
                None => v.required::<()>(
                    Path::Nested(
                        "s3TablesDestinationConfiguration",
                        "s3TablesConfigurationList",
                    ),
                    None,
                ),
                Some(list) => {
                    let parent = "s3TablesDestinationConfiguration.s3TablesConfigurationList";
                    v.count(
                        Path::Field(parent),
                        list.len(),
                        Some(1),
                        Some(LIST_MAX),
                        || format!("[{} entries]", list.len()),
                    );
                    for (index, table) in list.iter().enumerate() {
                        v.string(
                            Path::Member(parent, index, "tableBucketARN"),
                            table.table_bucket_arn.as_deref(),
                            true,
                            &TABLE_BUCKET_ARN,
                        );
                        v.string(
                            Path::Member(parent, index, "namespace"),
                            table.namespace.as_deref(),
                            true,
                            &TABLES_NAME,
                        );
                        v.string(
                            Path::Member(parent, index, "tableName"),
                            table.table_name.as_deref(),
                            true,
                            &TABLES_NAME,
                        );
                        v.string(
                            Path::Member(parent, index, "compressionType"),
                            table.compression_type.as_deref(),
                            true,
                            &enum_rule::<S3TablesCompressionType>(),
                        );
                        if let Some(spec) = &table.partition_spec {
                            let fields = spec.partition_fields.as_deref();
                            match fields {
                                None => v.required::<()>(
                                    Path::Member(parent, index, "partitionSpec.partitionFields"),
                                    None,
                                ),
                                Some(fields) => {
                                    v.count(
                                        Path::Member(
                                            parent,
                                            index,
                                            "partitionSpec.partitionFields",
                                        ),
                                        fields.len(),
                                        Some(1),
                                        Some(10),
                                        || format!("[{} entries]", fields.len()),
                                    );
                                    for (number, field) in fields.iter().enumerate() {
                                        let member = format!(
                                            "{parent}.{}.member.partitionSpec.partitionFields.{}.member",
                                            index + 1,
                                            number + 1
                                        );
                                        v.string(
                                            Path::Nested(&member, "transform"),
                                            field.transform.as_deref(),
                                            true,
                                            &enum_rule::<PartitionTransform>(),
                                        );
                                        v.string(
                                            Path::Nested(&member, "sourceName"),
                                            field.source_name.as_deref(),
                                            true,
                                            &PARTITION_SOURCE,
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if let Some(encryption) = &self.encryption_configuration {
            v.string(
                Path::Nested("encryptionConfiguration", "encryptionType"),
                encryption.encryption_type.as_deref(),
                true,
                &enum_rule::<ChannelEncryptionType>(),
            );
            v.string(
                Path::Nested("encryptionConfiguration", "keyId"),
                encryption.key_id.as_deref(),
                true,
                &KEY_ID,
            );
        }
        if self.tags.is_some() {
            v.string_map(
                Path::Field("tags"),
                self.tags.as_ref(),
                false,
                Some(1),
                Some(200),
                (&validate::TAG_KEY, &validate::TAG_VALUE),
            );
        }
        validate_logging(v, self.logging_configuration.as_ref());
    }
}

impl<T: Validate> Validate for Box<T> {
    fn validate(&self, v: &mut Validator) {
        (**self).validate(v);
    }
}

impl Validate for UpdateChannelInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            Path::Field("channelARN"),
            self.channel_arn.as_deref(),
            true,
            &CHANNEL_ARN,
        );
        for (name, update) in [
            (
                "s3DestinationConfiguration",
                &self.s3_destination_configuration,
            ),
            (
                "s3TablesDestinationConfiguration",
                &self.s3_tables_destination_configuration,
            ),
        ] {
            if let Some(update) = update {
                v.integer(
                    Path::Nested(name, "dataFreshnessInSeconds"),
                    int(update.data_freshness_in_seconds),
                    true,
                    None,
                    None,
                );
            }
        }
        validate_logging(v, self.logging_configuration.as_ref());
    }
}

impl Validate for ChannelRefInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            Path::Field("channelARN"),
            self.channel_arn.as_deref(),
            true,
            &CHANNEL_ARN,
        );
    }
}

impl Validate for ListChannelsInput {
    fn validate(&self, v: &mut Validator) {
        if let Some(filters) = &self.stream_filter {
            v.count(
                Path::Field("streamFilter"),
                filters.len(),
                Some(1),
                Some(LIST_MAX),
                || format!("[{} entries]", filters.len()),
            );
            for (index, filter) in filters.iter().enumerate() {
                v.string(
                    Path::Member("streamFilter", index, "streamARN"),
                    filter.stream_arn.as_deref(),
                    true,
                    &validate::STREAM_ARN,
                );
            }
        }
        v.integer(
            Path::Field("maxResults"),
            int(self.max_results),
            false,
            Some(1),
            Some(LIST_MAX as i64),
        );
        v.string(
            Path::Field("nextToken"),
            self.next_token.as_deref(),
            false,
            &validate::NEXT_TOKEN,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_request;

    #[test]
    fn patterns_match_the_model() {
        assert!(is_role_arn(
            "arn:aws:iam::123456789012:role/service-role/x+y"
        ));
        assert!(is_role_arn("arn:aws-cn:iam::123456789012:role/a"));
        assert!(!is_role_arn("arn:aws:iam::12345678901:role/a"));
        assert!(!is_role_arn("arn:aws:iam::123456789012:role/"));
        assert!(!is_role_arn("arn:aws:iam::123456789012:user/a"));
        assert!(is_bucket_arn("arn:aws:s3:::my-bucket.1"));
        assert!(!is_bucket_arn("arn:aws:s3:::ab"));
        assert!(!is_bucket_arn("arn:aws:s3:::My-Bucket"));
        assert!(!is_bucket_arn(&format!("arn:aws:s3:::{}", "a".repeat(64))));
        assert!(is_table_bucket_arn(
            "arn:aws:s3tables:us-east-1:123456789012:bucket/tb_1"
        ));
        assert!(!is_table_bucket_arn(
            "arn:aws:s3tables::123456789012:bucket/tb1"
        ));
        assert!(is_gsr_schema_arn(
            "arn:aws:glue:us-east-1:123456789012:schema/registry/schema.v1"
        ));
        assert!(!is_gsr_schema_arn(
            "arn:aws:glue:us-east-1:123456789012:schema/registry"
        ));
        assert!(is_channel_arn(
            "arn:aws:kinesis:us-east-1:123456789012:channel/c"
        ));
        assert!(!is_channel_arn(
            "arn:aws:kinesis:us-east-1:123456789012:stream/c"
        ));
        assert!((KEY_TEMPLATE_PATTERN.matches)(
            "data/!{channel-name}/!{yyyy}"
        ));
        assert!(!(KEY_TEMPLATE_PATTERN.matches)("a b"));
        assert!((LOG_STREAM_PATTERN.matches)("any thing"));
        assert!(!(LOG_STREAM_PATTERN.matches)("a:b"));
    }

    #[test]
    fn create_channel_reports_nested_paths_as_coral() {
        let body = br#"{"ChannelName":"c","ServiceExecutionRoleARN":"arn:aws:iam::123456789012:role/r",
            "StreamConfigurationList":[{"StreamARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s",
            "RecordConfiguration":{"RecordFormatType":"XML"}}],
            "S3DestinationConfiguration":{"StorageConfiguration":{"BucketARN":"arn:aws:s3:::b",
            "ExpectedBucketOwner":"123456789012"}}}"#;
        let error = decode_request("CreateChannel", body).unwrap_err();
        let message = error.message.clone().unwrap_or_default();
        assert!(
            message.starts_with("3 validation errors detected: "),
            "{message}"
        );
        assert!(message.contains(
            "Value 'XML' at 'streamConfigurationList.1.member.recordConfiguration.recordFormatType' \
             failed to satisfy constraint: Member must satisfy enum value set: [GSR_JSON, JSON, STRING, BYTE_ARRAY]"
        ), "{message}");
        assert!(message.contains(
            "Value 'arn:aws:s3:::b' at 's3DestinationConfiguration.storageConfiguration.bucketARN' \
             failed to satisfy constraint: Member must satisfy regular expression pattern: \
             arn:aws[-a-z0-9]*:s3:::[a-z0-9._-]{3,63}"
        ), "{message}");
        assert!(
            message.contains(
                "Value null at 's3DestinationConfiguration.storageConfiguration.compressionType' \
             failed to satisfy constraint: Member must not be null"
            ),
            "{message}"
        );
        let good = br#"{"ChannelName":"c","ServiceExecutionRoleARN":"arn:aws:iam::123456789012:role/r",
            "StreamConfigurationList":[{"StreamARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s",
            "RecordConfiguration":{"RecordFormatType":"JSON"}}],
            "S3DestinationConfiguration":{"StorageConfiguration":{"BucketARN":"arn:aws:s3:::bucket",
            "ExpectedBucketOwner":"123456789012","CompressionType":"GZIP"}}}"#;
        assert!(decode_request("CreateChannel", good).is_ok());
    }
}
