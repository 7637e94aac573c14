//! The queue operations of the model (botocore 1.44.5): CreateQueue, UpdateQueue, DeleteQueue,
//! DescribeQueue, ListQueues, ReceiveQueueRecords, AcknowledgeQueueRecords,
//! UpdateQueueRecordsVisibility and their dead-letter siblings. Shapes, member names and
//! constraints as in the model; validation in Coral's order (the model's member order).

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{enum_rule, int, known, WireEnum};
use crate::json::Timestamp;
use crate::validate::{self, Path, Validate, Validator};

wire_enum!(
    /// `QueueStartingPosition.Type`.
    QueueStartingPositionType {
        TrimHorizon = "TRIM_HORIZON",
        Latest = "LATEST",
        AtTimestamp = "AT_TIMESTAMP",
    }
);

wire_enum!(
    /// `DeadLetterConfiguration.TargetType`.
    DeadLetterTargetType {
        BuiltIn = "BUILT_IN",
        None = "NONE",
    }
);

wire_enum!(
    /// `QueueStatus`.
    QueueStatus {
        Creating = "CREATING",
        Active = "ACTIVE",
        Updating = "UPDATING",
        Deleting = "DELETING",
    }
);

// ===== Inputs =====

input_shape!(
    /// `QueueStartingPosition` as a request carries it.
    QueueStartingPositionInput {
        position_type: String = "Type" via "crate::json::field::string";
        timestamp: Timestamp = "Timestamp" via "crate::json::field::timestamp";
    }
);

input_shape!(
    /// One `QueueStreamConfiguration`.
    QueueStreamConfigurationInput {
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        starting_position: QueueStartingPositionInput = "StartingPosition" via "crate::json::field::structure";
    }
);

input_shape!(
    /// `DeadLetterConfiguration`.
    DeadLetterConfigurationInput {
        target_type: String = "TargetType" via "crate::json::field::string";
        max_receive_count: i32 = "MaxReceiveCount" via "crate::json::field::integer";
    }
);

input_shape!(
    /// `QueueAttributes`.
    QueueAttributesInput {
        visibility_timeout_seconds: i32 = "VisibilityTimeoutSeconds" via "crate::json::field::integer";
        dead_letter_configuration: DeadLetterConfigurationInput = "DeadLetterConfiguration" via "crate::json::field::structure";
    }
);

input_shape!(
    CreateQueueInput {
        queue_name: String = "QueueName" via "crate::json::field::string";
        stream_configuration_list: Vec<QueueStreamConfigurationInput> = "StreamConfigurationList" via "crate::json::field::structure_list";
        queue_attributes: QueueAttributesInput = "QueueAttributes" via "crate::json::field::structure";
        tags: std::collections::BTreeMap<String, String> = "Tags" via "crate::json::field::string_map";
    }
);

input_shape!(
    UpdateQueueInput {
        queue_arn: String = "QueueARN" via "crate::json::field::string";
        queue_attributes: QueueAttributesInput = "QueueAttributes" via "crate::json::field::structure";
    }
);

input_shape!(
    /// DeleteQueue and DescribeQueue: a queue by ARN.
    QueueRefInput {
        queue_arn: String = "QueueARN" via "crate::json::field::string";
    }
);

/// DeleteQueue's input.
pub type DeleteQueueInput = QueueRefInput;
/// DescribeQueue's input.
pub type DescribeQueueInput = QueueRefInput;

input_shape!(
    /// `QueueStreamFilter` of ListQueues.
    QueueStreamFilterInput {
        stream_arn: String = "StreamARN" via "crate::json::field::string";
        stream_creation_timestamp: Timestamp = "StreamCreationTimestamp" via "crate::json::field::timestamp";
    }
);

input_shape!(
    ListQueuesInput {
        max_results: i32 = "MaxResults" via "crate::json::field::integer";
        next_token: String = "NextToken" via "crate::json::field::string";
        stream_filter: Vec<QueueStreamFilterInput> = "StreamFilter" via "crate::json::field::structure_list";
    }
);

input_shape!(
    /// ReceiveQueueRecords and ReceiveDeadLetterQueueRecords.
    ReceiveQueueRecordsInput {
        queue_arn: String = "QueueARN" via "crate::json::field::string";
        limit: i32 = "Limit" via "crate::json::field::integer";
        wait_time_seconds: i32 = "WaitTimeSeconds" via "crate::json::field::integer";
        visibility_timeout_seconds: i32 = "VisibilityTimeoutSeconds" via "crate::json::field::integer";
    }
);

/// ReceiveDeadLetterQueueRecords' input.
pub type ReceiveDeadLetterQueueRecordsInput = ReceiveQueueRecordsInput;

input_shape!(
    /// An entry naming a record by its receipt handle, with a new visibility timeout for the
    /// visibility operations.
    ReceiptEntryInput {
        receipt_handle: String = "ReceiptHandle" via "crate::json::field::string";
        visibility_timeout_seconds: i32 = "VisibilityTimeoutSeconds" via "crate::json::field::integer";
    }
);

input_shape!(
    /// AcknowledgeQueueRecords, AcknowledgeDeadLetterQueueRecords and
    /// RestoreDeadLetterQueueRecords: a queue and up to 10 receipt handles.
    QueueEntriesInput {
        queue_arn: String = "QueueARN" via "crate::json::field::string";
        entries: Vec<ReceiptEntryInput> = "Entries" via "crate::json::field::structure_list";
    }
);

input_shape!(
    /// UpdateQueueRecordsVisibility and UpdateDeadLetterQueueRecordsVisibility.
    QueueVisibilityInput {
        queue_arn: String = "QueueARN" via "crate::json::field::string";
        entries: Vec<ReceiptEntryInput> = "Entries" via "crate::json::field::structure_list";
    }
);

pub type AcknowledgeQueueRecordsInput = QueueEntriesInput;
pub type AcknowledgeDeadLetterQueueRecordsInput = QueueEntriesInput;
pub type RestoreDeadLetterQueueRecordsInput = QueueEntriesInput;
pub type UpdateQueueRecordsVisibilityInput = QueueVisibilityInput;
pub type UpdateDeadLetterQueueRecordsVisibilityInput = QueueVisibilityInput;

impl QueueStartingPositionInput {
    pub fn kind(&self) -> Option<QueueStartingPositionType> {
        known(self.position_type.as_deref())
    }
}

impl DeadLetterConfigurationInput {
    pub fn target(&self) -> Option<DeadLetterTargetType> {
        known(self.target_type.as_deref())
    }
}

// ----- Validation -----

/// Entries per acknowledge, visibility or restore request.
pub const QUEUE_ENTRIES_MAX: usize = 10;
/// Records per receive.
pub const RECEIVE_LIMIT_MAX: i64 = 10;
pub const WAIT_TIME_SECONDS_MAX: i64 = 20;
pub const VISIBILITY_TIMEOUT_SECONDS_MAX: i64 = 43_200;
pub const MAX_RECEIVE_COUNT_MAX: i64 = 1_000;

fn queue_arn(v: &mut Validator, arn: Option<&String>) {
    v.string(
        Path::Field("queueARN"),
        arn.map(String::as_str),
        true,
        &validate::QUEUE_ARN,
    );
}

fn visibility(v: &mut Validator, path: Path<'_>, value: Option<i32>, required: bool) {
    v.integer(
        path,
        int(value),
        required,
        Some(0),
        Some(VISIBILITY_TIMEOUT_SECONDS_MAX),
    );
}

fn attributes(v: &mut Validator, attributes: Option<&QueueAttributesInput>, required: bool) {
    let Some(attributes) = attributes else {
        if required {
            v.required::<()>(Path::Field("queueAttributes"), None);
        }
        return;
    };
    visibility(
        v,
        Path::Nested("queueAttributes", "visibilityTimeoutSeconds"),
        attributes.visibility_timeout_seconds,
        false,
    );
    if let Some(dead_letter) = &attributes.dead_letter_configuration {
        v.string(
            Path::Nested("queueAttributes.deadLetterConfiguration", "targetType"),
            dead_letter.target_type.as_deref(),
            true,
            &enum_rule::<DeadLetterTargetType>(),
        );
        v.integer(
            Path::Nested("queueAttributes.deadLetterConfiguration", "maxReceiveCount"),
            int(dead_letter.max_receive_count),
            false,
            Some(1),
            Some(MAX_RECEIVE_COUNT_MAX),
        );
    }
}

impl Validate for CreateQueueInput {
    fn validate(&self, v: &mut Validator) {
        v.string(
            Path::Field("queueName"),
            self.queue_name.as_deref(),
            true,
            &validate::QUEUE_NAME,
        );
        match &self.stream_configuration_list {
            None => v.required::<()>(Path::Field("streamConfigurationList"), None),
            Some(list) => {
                v.count(
                    Path::Field("streamConfigurationList"),
                    list.len(),
                    Some(1),
                    Some(10_000),
                    || format!("[{} entries]", list.len()),
                );
                for (index, entry) in list.iter().enumerate() {
                    v.string(
                        Path::Member("streamConfigurationList", index, "streamARN"),
                        entry.stream_arn.as_deref(),
                        true,
                        &validate::STREAM_ARN,
                    );
                    if let Some(position) = &entry.starting_position {
                        v.string(
                            Path::Member("streamConfigurationList", index, "startingPosition.type"),
                            position.position_type.as_deref(),
                            true,
                            &enum_rule::<QueueStartingPositionType>(),
                        );
                    }
                }
            }
        }
        attributes(v, self.queue_attributes.as_ref(), false);
        v.string_map(
            Path::Field("tags"),
            self.tags.as_ref(),
            false,
            Some(1),
            Some(200),
            (&validate::TAG_KEY, &validate::TAG_VALUE),
        );
    }
}

impl Validate for UpdateQueueInput {
    fn validate(&self, v: &mut Validator) {
        queue_arn(v, self.queue_arn.as_ref());
        attributes(v, self.queue_attributes.as_ref(), true);
    }
}

impl Validate for QueueRefInput {
    fn validate(&self, v: &mut Validator) {
        queue_arn(v, self.queue_arn.as_ref());
    }
}

impl Validate for ListQueuesInput {
    fn validate(&self, v: &mut Validator) {
        v.integer(
            Path::Field("maxResults"),
            int(self.max_results),
            false,
            Some(1),
            Some(10_000),
        );
        v.string(
            Path::Field("nextToken"),
            self.next_token.as_deref(),
            false,
            &validate::NEXT_TOKEN,
        );
        if let Some(filters) = &self.stream_filter {
            v.count(
                Path::Field("streamFilter"),
                filters.len(),
                Some(1),
                Some(10_000),
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
    }
}

impl Validate for ReceiveQueueRecordsInput {
    fn validate(&self, v: &mut Validator) {
        queue_arn(v, self.queue_arn.as_ref());
        v.integer(
            Path::Field("limit"),
            int(self.limit),
            false,
            Some(1),
            Some(RECEIVE_LIMIT_MAX),
        );
        v.integer(
            Path::Field("waitTimeSeconds"),
            int(self.wait_time_seconds),
            false,
            Some(1),
            Some(WAIT_TIME_SECONDS_MAX),
        );
        visibility(
            v,
            Path::Field("visibilityTimeoutSeconds"),
            self.visibility_timeout_seconds,
            false,
        );
    }
}

fn entries(v: &mut Validator, entries: Option<&Vec<ReceiptEntryInput>>, with_visibility: bool) {
    let Some(entries) = entries else {
        v.required::<()>(Path::Field("entries"), None);
        return;
    };
    v.count(
        Path::Field("entries"),
        entries.len(),
        Some(1),
        Some(QUEUE_ENTRIES_MAX),
        || format!("[{} entries]", entries.len()),
    );
    for (index, entry) in entries.iter().enumerate() {
        v.string(
            Path::Member("entries", index, "receiptHandle"),
            entry.receipt_handle.as_deref(),
            true,
            &validate::RECEIPT_HANDLE,
        );
        if with_visibility {
            visibility(
                v,
                Path::Member("entries", index, "visibilityTimeoutSeconds"),
                entry.visibility_timeout_seconds,
                true,
            );
        }
    }
}

impl Validate for QueueEntriesInput {
    fn validate(&self, v: &mut Validator) {
        queue_arn(v, self.queue_arn.as_ref());
        entries(v, self.entries.as_ref(), false);
    }
}

impl Validate for QueueVisibilityInput {
    fn validate(&self, v: &mut Validator) {
        queue_arn(v, self.queue_arn.as_ref());
        entries(v, self.entries.as_ref(), true);
    }
}

// ===== Outputs =====

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueStartingPosition {
    #[serde(rename = "Type")]
    pub position_type: QueueStartingPositionType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueStreamConfiguration {
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_position: Option<QueueStartingPosition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeadLetterConfiguration {
    pub target_type: DeadLetterTargetType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_receive_count: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueAttributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility_timeout_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_configuration: Option<DeadLetterConfiguration>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueDescription {
    pub queue_name: String,
    #[serde(rename = "QueueARN")]
    pub queue_arn: String,
    pub queue_status: QueueStatus,
    pub queue_creation_timestamp: Timestamp,
    pub stream_configuration_list: Vec<QueueStreamConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_attributes: Option<QueueAttributes>,
}

/// CreateQueue's, UpdateQueue's and DescribeQueue's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueDescriptionOutput {
    pub queue_description: QueueDescription,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueStreamIdentifier {
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    pub stream_creation_timestamp: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueSummary {
    pub queue_name: String,
    #[serde(rename = "QueueARN")]
    pub queue_arn: String,
    pub queue_status: QueueStatus,
    pub queue_creation_timestamp: Timestamp,
    pub streams: Vec<QueueStreamIdentifier>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListQueuesOutput {
    pub queue_summaries: Vec<QueueSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// A record as a queue delivers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueRecord {
    pub receipt_handle: String,
    pub record_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    #[serde(with = "crate::json::blob")]
    pub data: Bytes,
    pub approximate_arrival_timestamp: Timestamp,
    pub first_receive_timestamp: Timestamp,
    pub receive_count: u32,
}

/// ReceiveQueueRecords' and ReceiveDeadLetterQueueRecords' output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReceiveQueueRecordsOutput {
    pub queue_records: Vec<QueueRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueEntryResult {
    pub receipt_handle: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueEntryError {
    pub receipt_handle: String,
    pub error_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// The output of every per-entry queue operation (acknowledge, visibility, restore).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueEntriesOutput {
    pub successful: Vec<QueueEntryResult>,
    pub failed: Vec<QueueEntryError>,
}
