//! Decoding, validation and encoding of the operation shapes, against the texts production
//! Kinesis sends (as recorded by kinesalite's tests) where they are known.

use super::*;
use crate::error::ErrorKind;
use crate::json::encode_json;

fn decode(operation: &str, body: &str) -> Result<Request, KinesisError> {
    decode_request(operation, body.as_bytes())
}

fn validation(operation: &str, body: &str) -> String {
    let error = decode(operation, body).unwrap_err();
    assert_eq!(
        error.kind,
        ErrorKind::ValidationException,
        "{operation} {body}: {error}"
    );
    error.message.unwrap()
}

fn serialization(operation: &str, body: &str) -> String {
    let error = decode(operation, body).unwrap_err();
    assert_eq!(
        error.kind,
        ErrorKind::SerializationException,
        "{operation} {body}: {error}"
    );
    error.message.unwrap()
}

fn json(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

const ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/s1";

#[test]
fn unknown_operations_are_refused_without_a_message() {
    for operation in ["", "Nope", "putRecord", "Kinesis_20131202.PutRecord"] {
        let error = decode(operation, "{}").unwrap_err();
        assert_eq!(error.kind, ErrorKind::UnknownOperationException);
        assert_eq!(
            error.to_json(),
            br#"{"__type":"UnknownOperationException"}"#
        );
    }
}

#[test]
fn every_listed_operation_decodes_its_minimal_body() {
    let minimal = |operation: &str| -> &'static str {
        match operation {
            "CreateStream" => r#"{"StreamName":"s1","ShardCount":1}"#,
            "PutRecord" => r#"{"StreamName":"s1","PartitionKey":"k","Data":""}"#,
            "PutRecords" => r#"{"StreamName":"s1","Records":[{"PartitionKey":"k","Data":""}]}"#,
            "GetShardIterator" => {
                r#"{"StreamName":"s1","ShardId":"shardId-0","ShardIteratorType":"LATEST"}"#
            }
            "GetRecords" => r#"{"ShardIterator":"AAAA"}"#,
            "IncreaseStreamRetentionPeriod" | "DecreaseStreamRetentionPeriod" => {
                r#"{"StreamName":"s1","RetentionPeriodHours":48}"#
            }
            "AddTagsToStream" => r#"{"StreamName":"s1","Tags":{"k":"v"}}"#,
            "RemoveTagsFromStream" => r#"{"StreamName":"s1","TagKeys":["k"]}"#,
            "TagResource" => {
                r#"{"ResourceARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s1","Tags":{"k":"v"}}"#
            }
            "UntagResource" => {
                r#"{"ResourceARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s1","TagKeys":["k"]}"#
            }
            "ListTagsForResource" => {
                r#"{"ResourceARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s1"}"#
            }
            "SplitShard" => {
                r#"{"StreamName":"s1","ShardToSplit":"shardId-0","NewStartingHashKey":"5"}"#
            }
            "MergeShards" => {
                r#"{"StreamName":"s1","ShardToMerge":"shardId-0","AdjacentShardToMerge":"shardId-1"}"#
            }
            "UpdateShardCount" => {
                r#"{"StreamName":"s1","TargetShardCount":2,"ScalingType":"UNIFORM_SCALING"}"#
            }
            "UpdateStreamMode" => {
                r#"{"StreamARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s1","StreamModeDetails":{"StreamMode":"ON_DEMAND"}}"#
            }
            "UpdateMaxRecordSize" => {
                r#"{"StreamARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s1","MaxRecordSizeInKiB":2048}"#
            }
            "UpdateStreamRecordDistributionStrategy" => {
                r#"{"StreamARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s1","RecordDistributionStrategy":"AUTO"}"#
            }
            "RegisterStreamConsumer" => {
                r#"{"StreamARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s1","ConsumerName":"c"}"#
            }
            "ListStreamConsumers" => {
                r#"{"StreamARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s1"}"#
            }
            "DescribeStreamConsumer" | "DeregisterStreamConsumer" => {
                r#"{"ConsumerARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s1/consumer/c:1700000000"}"#
            }
            "SubscribeToShard" => {
                r#"{"ConsumerARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s1/consumer/c:1700000000","ShardId":"shardId-0","StartingPosition":{"Type":"LATEST"}}"#
            }
            "PutResourcePolicy" => {
                r#"{"ResourceARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s1","Policy":"{}"}"#
            }
            "GetResourcePolicy" | "DeleteResourcePolicy" => {
                r#"{"ResourceARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s1"}"#
            }
            "CreateQueue" => {
                r#"{"QueueName":"q","StreamConfigurationList":[{"StreamARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s1"}]}"#
            }
            "UpdateQueue" => {
                r#"{"QueueARN":"arn:aws:kinesis:us-east-1:123456789012:queue/abc","QueueAttributes":{"VisibilityTimeoutSeconds":5}}"#
            }
            "DeleteQueue"
            | "DescribeQueue"
            | "ReceiveQueueRecords"
            | "ReceiveDeadLetterQueueRecords" => {
                r#"{"QueueARN":"arn:aws:kinesis:us-east-1:123456789012:queue/abc"}"#
            }
            "ListQueues" => r#"{}"#,
            "AcknowledgeQueueRecords"
            | "AcknowledgeDeadLetterQueueRecords"
            | "RestoreDeadLetterQueueRecords" => {
                r#"{"QueueARN":"arn:aws:kinesis:us-east-1:123456789012:queue/abc","Entries":[{"ReceiptHandle":"h"}]}"#
            }
            "UpdateQueueRecordsVisibility" | "UpdateDeadLetterQueueRecordsVisibility" => {
                r#"{"QueueARN":"arn:aws:kinesis:us-east-1:123456789012:queue/abc","Entries":[{"ReceiptHandle":"h","VisibilityTimeoutSeconds":0}]}"#
            }
            "StartStreamEncryption" | "StopStreamEncryption" => {
                r#"{"StreamName":"s1","EncryptionType":"KMS","KeyId":"alias/aws/kinesis"}"#
            }
            "EnableEnhancedMonitoring" | "DisableEnhancedMonitoring" => {
                r#"{"StreamName":"s1","ShardLevelMetrics":["IncomingBytes"]}"#
            }
            "UpdateAccountSettings" => {
                r#"{"MinimumThroughputBillingCommitment":{"Status":"ENABLED"}}"#
            }
            "UpdateStreamWarmThroughput" => r#"{"StreamName":"s1","WarmThroughputMiBps":10}"#,
            "CreateChannel" => {
                r#"{"ChannelName":"c","ServiceExecutionRoleARN":"arn:aws:iam::123456789012:role/r","StreamConfigurationList":[{"StreamARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s1","RecordConfiguration":{"RecordFormatType":"JSON"}}],"S3DestinationConfiguration":{"StorageConfiguration":{"BucketARN":"arn:aws:s3:::bucket","ExpectedBucketOwner":"123456789012","CompressionType":"NONE"}}}"#
            }
            "UpdateChannel" | "DeleteChannel" | "DescribeChannel" => {
                r#"{"ChannelARN":"arn:aws:kinesis:us-east-1:123456789012:channel/c"}"#
            }
            "ListChannels" => r#"{}"#,
            _ => r#"{"StreamName":"s1"}"#,
        }
    };
    assert_eq!(OPERATIONS.len(), 57);
    for operation in OPERATIONS {
        let request = decode(operation, minimal(operation))
            .unwrap_or_else(|error| panic!("{operation}: {error}"));
        assert_eq!(request.operation(), *operation);
    }
}

/// The consumer ARN pattern as the model writes it: stream ARN, `/consumer/`, name, `:` and the
/// registration epoch seconds.
#[test]
fn consumer_arns_follow_the_model_pattern() {
    use crate::validate::Pattern;
    for good in [
        "arn:aws:kinesis:us-east-1:123456789012:stream/s1/consumer/c:1700000000",
        "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/a.b-c_d/consumer/x.y:0",
    ] {
        assert!(Pattern::ConsumerArn.matches(good), "{good}");
    }
    for bad in [
        "arn:aws:kinesis:us-east-1:123456789012:stream/s1",
        "arn:aws:kinesis:us-east-1:123456789012:stream/s1/consumer/c",
        "arn:aws:kinesis:us-east-1:123456789012:stream/s1/consumer/c:12x",
        "arn:aws:kinesis:us-east-1:12345:stream/s1/consumer/c:1",
        "arn:aws:kinesis:us-east-1:123456789012:stream/s 1/consumer/c:1",
        "arn:aws:kinesis:us-east-1:123456789012:stream//consumer/c:1",
    ] {
        assert!(!Pattern::ConsumerArn.matches(bad), "{bad}");
    }
    let error = decode(
        "SubscribeToShard",
        r#"{"ConsumerARN":"nope","ShardId":"shardId-0","StartingPosition":{"Type":"SIDEWAYS"}}"#,
    )
    .unwrap_err();
    let message = error.message.unwrap_or_default();
    assert!(
        message.starts_with("2 validation errors detected: "),
        "{message}"
    );
    assert!(message.contains("at 'consumerARN' failed to satisfy constraint: Member must satisfy regular expression pattern"), "{message}");
    assert!(message.contains("at 'startingPosition.type' failed to satisfy constraint: Member must satisfy enum value set: [AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST, AT_TIMESTAMP]"), "{message}");
}

/// ShardLevelMetrics is a list of 1 to 7 metric names; anything else gets Coral's texts.
#[test]
fn shard_level_metrics_are_checked_as_an_enum_list() {
    let message = |body: &str| {
        decode("EnableEnhancedMonitoring", body)
            .unwrap_err()
            .message
            .unwrap_or_default()
    };
    assert_eq!(
        message(r#"{"StreamName":"s1","ShardLevelMetrics":["IncomingBytes","Sideways"]}"#),
        "1 validation error detected: Value '[IncomingBytes, Sideways]' at 'shardLevelMetrics' \
         failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum \
         value set: [IncomingBytes, IncomingRecords, OutgoingBytes, OutgoingRecords, \
         WriteProvisionedThroughputExceeded, ReadProvisionedThroughputExceeded, \
         IteratorAgeMilliseconds, ALL]]"
    );
    assert!(message(r#"{"StreamName":"s1","ShardLevelMetrics":[]}"#)
        .contains("Member must have length greater than or equal to 1"));
    assert!(message(r#"{"StreamName":"s1"}"#).contains(
        "Value null at 'shardLevelMetrics' failed to satisfy constraint: Member must not be null"
    ));
}

#[test]
fn empty_bodies_count_as_empty_objects() {
    assert_eq!(
        decode("DescribeLimits", "").unwrap(),
        Request::DescribeLimits(DescribeLimitsInput {})
    );
    assert_eq!(
        decode("ListStreams", "").unwrap(),
        Request::ListStreams(ListStreamsInput::default())
    );
    // An empty body is still validated: PutRecord needs Data.
    assert_eq!(
        validation("PutRecord", ""),
        "1 validation error detected: Value null at 'data' failed to satisfy constraint: Member \
         must not be null"
    );
}

#[test]
fn put_record_decodes_every_member() {
    let body = format!(
        r#"{{"StreamName":"s1","StreamARN":"{ARN}","StreamId":"abcdefghij0123456789-abc",
            "Data":"aGVsbG8=","PartitionKey":"pk","ExplicitHashKey":"123",
            "SequenceNumberForOrdering":"456","DryRun":true,"Unknown":[1]}}"#
    );
    let Request::PutRecord(input) = decode("PutRecord", &body).unwrap() else {
        panic!("wrong request");
    };
    assert_eq!(
        input,
        PutRecordInput {
            stream_name: Some("s1".into()),
            data: Some(Bytes::from_static(b"hello")),
            partition_key: Some("pk".into()),
            explicit_hash_key: Some("123".into()),
            sequence_number_for_ordering: Some("456".into()),
            stream_arn: Some(ARN.into()),
            stream_id: Some("abcdefghij0123456789-abc".into()),
            dry_run: Some(true),
        }
    );
}

#[test]
fn put_record_empty_values_match_production() {
    assert_eq!(
        validation(
            "PutRecord",
            r#"{"StreamName":"","PartitionKey":"","Data":"","ExplicitHashKey":"","SequenceNumberForOrdering":""}"#
        ),
        "5 validation errors detected: \
         Value '' at 'sequenceNumberForOrdering' failed to satisfy constraint: Member must \
         satisfy regular expression pattern: 0|([1-9]\\d{0,128}); \
         Value '' at 'partitionKey' failed to satisfy constraint: Member must have length \
         greater than or equal to 1; \
         Value '' at 'explicitHashKey' failed to satisfy constraint: Member must satisfy regular \
         expression pattern: 0|([1-9]\\d{0,38}); \
         Value '' at 'streamName' failed to satisfy constraint: Member must satisfy regular \
         expression pattern: [a-zA-Z0-9_.-]+; \
         Value '' at 'streamName' failed to satisfy constraint: Member must have length greater \
         than or equal to 1"
    );
}

#[test]
fn put_record_long_values_match_production() {
    let name = "a".repeat(129);
    let key = "a".repeat(257);
    let data = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        vec![0u8; limits::DATA_BYTES_MAX + 1],
    );
    let body = format!(
        r#"{{"StreamName":"{name}","PartitionKey":"{key}","Data":"{data}","ExplicitHashKey":""}}"#
    );
    assert_eq!(
        validation("PutRecord", &body),
        format!(
            "4 validation errors detected: \
             Value '{key}' at 'partitionKey' failed to satisfy constraint: Member must have \
             length less than or equal to 256; \
             Value '' at 'explicitHashKey' failed to satisfy constraint: Member must satisfy \
             regular expression pattern: 0|([1-9]\\d{{0,38}}); \
             Value 'java.nio.HeapByteBuffer[pos=0 lim=10485761 cap=10485761]' at 'data' failed \
             to satisfy constraint: Member must have length less than or equal to 10485760; \
             Value '{name}' at 'streamName' failed to satisfy constraint: Member must have \
             length less than or equal to 128"
        )
    );
}

#[test]
fn put_record_stream_arn_and_id_are_checked() {
    assert_eq!(
        validation(
            "PutRecord",
            r#"{"Data":"","StreamARN":"arn:aws:sqs:r:1:q","StreamId":"x"}"#
        ),
        "2 validation errors detected: \
         Value 'arn:aws:sqs:r:1:q' at 'streamARN' failed to satisfy constraint: Member must \
         satisfy regular expression pattern: arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+; \
         Value 'x' at 'streamId' failed to satisfy constraint: Member must satisfy regular \
         expression pattern: [a-z0-9]{20}-[a-z0-9]{3}"
    );
}

#[test]
fn put_records_decodes_entries_in_order() {
    let body = r#"{"StreamName":"s1","Records":[
        {"Data":"AA==","PartitionKey":"a"},
        {"Data":"AQI=","PartitionKey":"b","ExplicitHashKey":"7"},
        {"Data":"","PartitionKey":"c"}]}"#;
    let Request::PutRecords(input) = decode("PutRecords", body).unwrap() else {
        panic!("wrong request");
    };
    let records = input.records.unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].data.as_deref(), Some(&[0u8][..]));
    assert_eq!(records[1].data.as_deref(), Some(&[1u8, 2][..]));
    assert_eq!(records[1].explicit_hash_key.as_deref(), Some("7"));
    assert_eq!(records[2].data.as_deref(), Some(&[][..]));
    assert_eq!(records[2].partition_key.as_deref(), Some("c"));
}

#[test]
fn put_records_member_paths_are_one_based() {
    let body = r#"{"StreamName":"s1","Records":[
        {"Data":"AA==","PartitionKey":"a"},
        {"PartitionKey":"","ExplicitHashKey":"01"},
        null]}"#;
    assert_eq!(
        validation("PutRecords", body),
        "4 validation errors detected: \
         Value '' at 'records.2.member.partitionKey' failed to satisfy constraint: Member must \
         have length greater than or equal to 1; \
         Value '01' at 'records.2.member.explicitHashKey' failed to satisfy constraint: Member \
         must satisfy regular expression pattern: 0|([1-9]\\d{0,38}); \
         Value null at 'records.2.member.data' failed to satisfy constraint: Member must not be \
         null; \
         Value null at 'records.3.member.data' failed to satisfy constraint: Member must not be \
         null"
    );
}

#[test]
fn put_records_list_bounds() {
    assert_eq!(
        validation("PutRecords", r#"{"StreamName":"s1"}"#),
        "1 validation error detected: Value null at 'records' failed to satisfy constraint: \
         Member must not be null"
    );
    assert_eq!(
        validation("PutRecords", r#"{"StreamName":"","Records":[]}"#),
        "3 validation errors detected: \
         Value '[]' at 'records' failed to satisfy constraint: Member must have length greater \
         than or equal to 1; \
         Value '' at 'streamName' failed to satisfy constraint: Member must satisfy regular \
         expression pattern: [a-zA-Z0-9_.-]+; \
         Value '' at 'streamName' failed to satisfy constraint: Member must have length greater \
         than or equal to 1"
    );
    let records = vec![r#"{"Data":"","PartitionKey":"k"}"#; 501].join(",");
    let message = validation(
        "PutRecords",
        &format!(r#"{{"StreamName":"s1","Records":[{records}]}}"#),
    );
    assert!(message.starts_with(
        "1 validation error detected: Value '[com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@"
    ));
    assert!(message.ends_with(
        "]' at 'records' failed to satisfy constraint: Member must have length less than or \
         equal to 500"
    ));
    assert_eq!(message.matches("PutRecordsRequestEntry@").count(), 501);
}

#[test]
fn at_most_ten_validation_errors_are_reported() {
    let records = vec![r#"{"PartitionKey":""}"#; 20].join(",");
    let message = validation("PutRecords", &format!(r#"{{"Records":[{records}]}}"#));
    assert!(
        message.starts_with("10 validation errors detected: "),
        "{message}"
    );
    assert_eq!(message.matches("; ").count(), 9);
    // Two failures per record: the first five records fill the ten slots.
    assert!(message.contains("'records.5.member.data'"));
    assert!(!message.contains("'records.6.member"));
}

#[test]
fn put_records_type_errors_are_serialization_exceptions() {
    assert_eq!(
        serialization("PutRecords", r#"{"Records":{}}"#),
        "Start of structure or map found where not expected."
    );
    assert_eq!(
        serialization("PutRecords", r#"{"Records":"x"}"#),
        "Expected list or null"
    );
    assert_eq!(
        serialization("PutRecords", r#"{"Records":["x"]}"#),
        "Expected null"
    );
    assert_eq!(
        serialization("PutRecords", r#"{"Records":[{"Data":"a!=="}]}"#),
        "'a!==' can not be converted to a Blob: Invalid Base64 character: '!'"
    );
    assert_eq!(
        serialization("PutRecords", r#"{"Records":[{"Data":"abc"}]}"#),
        "'abc' can not be converted to a Blob: Base64 encoded length is expected a multiple of \
         4 bytes but found: 3"
    );
    assert_eq!(
        serialization("PutRecords", r#"{"Records":[{"PartitionKey":1}]}"#),
        "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to \
         an String"
    );
    let error = decode("PutRecords", r#"{"Records":[{"Data":"AA=="}"#).unwrap_err();
    assert_eq!(error.kind, ErrorKind::SerializationException);
}

#[test]
fn create_stream_matches_production() {
    assert_eq!(
        validation("CreateStream", r#"{"StreamName":"","ShardCount":0}"#),
        "3 validation errors detected: \
         Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater \
         than or equal to 1; \
         Value '' at 'streamName' failed to satisfy constraint: Member must satisfy regular \
         expression pattern: [a-zA-Z0-9_.-]+; \
         Value '' at 'streamName' failed to satisfy constraint: Member must have length greater \
         than or equal to 1"
    );
    assert_eq!(
        validation("CreateStream", "{}"),
        "1 validation error detected: Value null at 'streamName' failed to satisfy constraint: \
         Member must not be null"
    );
    // Huge counts saturate to Integer.MAX_VALUE, as production's lone streamName error shows.
    let name = "a".repeat(129);
    assert_eq!(
        validation(
            "CreateStream",
            &format!(r#"{{"StreamName":"{name}","ShardCount":100000000000}}"#)
        ),
        format!(
            "1 validation error detected: Value '{name}' at 'streamName' failed to satisfy \
             constraint: Member must have length less than or equal to 128"
        )
    );
    assert_eq!(
        serialization("CreateStream", r#"{"StreamName":"s","ShardCount":"1"}"#),
        "class java.lang.String can not be converted to an Integer"
    );
}

#[test]
fn create_stream_optional_members() {
    let body = r#"{"StreamName":"s1","StreamModeDetails":{"StreamMode":"ON_DEMAND"},
        "Tags":{"team":"a","env":""},"WarmThroughputMiBps":0,"MaxRecordSizeInKiB":10240,
        "RecordDistributionStrategy":"AUTO"}"#;
    let Request::CreateStream(input) = decode("CreateStream", body).unwrap() else {
        panic!("wrong request");
    };
    assert_eq!(input.shard_count, None);
    assert_eq!(input.stream_mode(), Some(StreamMode::OnDemand));
    assert_eq!(
        input.distribution_strategy(),
        Some(RecordDistributionStrategy::Auto)
    );
    assert_eq!(input.max_record_size_kib, Some(10240));
    assert_eq!(input.warm_throughput_mibps, Some(0));
    assert_eq!(input.tags.unwrap().len(), 2);

    let body = r#"{"StreamName":"s1","StreamModeDetails":{"StreamMode":"FAST"},"Tags":{},
        "WarmThroughputMiBps":-1,"MaxRecordSizeInKiB":10241,"RecordDistributionStrategy":"x"}"#;
    assert_eq!(
        validation("CreateStream", body),
        "5 validation errors detected: \
         Value 'FAST' at 'streamModeDetails.streamMode' failed to satisfy constraint: Member \
         must satisfy enum value set: [PROVISIONED, ON_DEMAND]; \
         Value '{}' at 'tags' failed to satisfy constraint: Member must have length greater than \
         or equal to 1; \
         Value '-1' at 'warmThroughputMiBps' failed to satisfy constraint: Member must have \
         value greater than or equal to 0; \
         Value '10241' at 'maxRecordSizeInKiB' failed to satisfy constraint: Member must have \
         value less than or equal to 10240; \
         Value 'x' at 'recordDistributionStrategy' failed to satisfy constraint: Member must \
         satisfy enum value set: [AUTO, USER_PARTITION_KEY]"
    );
    assert_eq!(
        validation(
            "CreateStream",
            r#"{"StreamName":"s1","StreamModeDetails":{}}"#
        ),
        "1 validation error detected: Value null at 'streamModeDetails.streamMode' failed to \
         satisfy constraint: Member must not be null"
    );
    assert_eq!(
        serialization(
            "CreateStream",
            r#"{"StreamName":"s1","StreamModeDetails":"ON_DEMAND"}"#
        ),
        "Expected null"
    );
}

#[test]
fn get_shard_iterator_matches_production() {
    assert_eq!(
        validation(
            "GetShardIterator",
            r#"{"StreamName":"","ShardIteratorType":"","ShardId":"","StartingSequenceNumber":""}"#
        ),
        "6 validation errors detected: \
         Value '' at 'shardId' failed to satisfy constraint: Member must satisfy regular \
         expression pattern: [a-zA-Z0-9_.-]+; \
         Value '' at 'shardId' failed to satisfy constraint: Member must have length greater than \
         or equal to 1; \
         Value '' at 'shardIteratorType' failed to satisfy constraint: Member must satisfy enum \
         value set: [AFTER_SEQUENCE_NUMBER, LATEST, AT_TIMESTAMP, AT_SEQUENCE_NUMBER, \
         TRIM_HORIZON]; \
         Value '' at 'startingSequenceNumber' failed to satisfy constraint: Member must satisfy \
         regular expression pattern: 0|([1-9]\\d{0,128}); \
         Value '' at 'streamName' failed to satisfy constraint: Member must satisfy regular \
         expression pattern: [a-zA-Z0-9_.-]+; \
         Value '' at 'streamName' failed to satisfy constraint: Member must have length greater \
         than or equal to 1"
    );
    assert_eq!(
        validation("GetShardIterator", "{}"),
        "2 validation errors detected: \
         Value null at 'shardId' failed to satisfy constraint: Member must not be null; \
         Value null at 'shardIteratorType' failed to satisfy constraint: Member must not be null"
    );
}

#[test]
fn get_shard_iterator_typed_members() {
    let body = r#"{"StreamName":"s1","ShardId":"shardId-000000000001","ShardIteratorType":"AT_TIMESTAMP","Timestamp":1.547993531819E9}"#;
    let Request::GetShardIterator(input) = decode("GetShardIterator", body).unwrap() else {
        panic!("wrong request");
    };
    assert_eq!(input.iterator_type(), Some(ShardIteratorType::AtTimestamp));
    assert_eq!(input.timestamp.unwrap().epoch_ms(), 1_547_993_531_819);
    assert_eq!(
        serialization(
            "GetShardIterator",
            r#"{"ShardId":"s","ShardIteratorType":"AT_TIMESTAMP","Timestamp":"2019-01-20"}"#
        ),
        "class java.lang.String can not be converted to milliseconds since epoch"
    );
}

#[test]
fn get_records_bounds() {
    let iterator = "A".repeat(513);
    assert_eq!(
        validation(
            "GetRecords",
            &format!(r#"{{"ShardIterator":"{iterator}","Limit":0}}"#)
        ),
        format!(
            "2 validation errors detected: \
             Value '0' at 'limit' failed to satisfy constraint: Member must have value greater \
             than or equal to 1; \
             Value '{iterator}' at 'shardIterator' failed to satisfy constraint: Member must have \
             length less than or equal to 512"
        )
    );
    assert_eq!(
        validation("GetRecords", r#"{"ShardIterator":"x","Limit":10001}"#),
        "1 validation error detected: Value '10001' at 'limit' failed to satisfy constraint: \
         Member must have value less than or equal to 10000"
    );
    assert_eq!(
        validation("GetRecords", "{}"),
        "1 validation error detected: Value null at 'shardIterator' failed to satisfy \
         constraint: Member must not be null"
    );
}

#[test]
fn retention_is_validated_only_from_one() {
    assert_eq!(
        validation(
            "IncreaseStreamRetentionPeriod",
            r#"{"StreamName":"","RetentionPeriodHours":-1}"#
        ),
        "3 validation errors detected: \
         Value '-1' at 'retentionPeriodHours' failed to satisfy constraint: Member must have \
         value greater than or equal to 1; \
         Value '' at 'streamName' failed to satisfy constraint: Member must satisfy regular \
         expression pattern: [a-zA-Z0-9_.-]+; \
         Value '' at 'streamName' failed to satisfy constraint: Member must have length greater \
         than or equal to 1"
    );
    assert_eq!(
        validation("DecreaseStreamRetentionPeriod", r#"{"StreamName":"s1"}"#),
        "1 validation error detected: Value null at 'retentionPeriodHours' failed to satisfy \
         constraint: Member must not be null"
    );
    // 23 and 9000 pass validation: the domain answers them with InvalidArgumentException.
    for hours in [23, 9000] {
        let body = format!(r#"{{"StreamName":"s1","RetentionPeriodHours":{hours}}}"#);
        assert!(decode("IncreaseStreamRetentionPeriod", &body).is_ok());
    }
}

#[test]
fn list_operations_bounds() {
    assert_eq!(
        validation(
            "ListStreams",
            r#"{"Limit":0,"ExclusiveStartStreamName":"a b","NextToken":""}"#
        ),
        "3 validation errors detected: \
         Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than \
         or equal to 1; \
         Value 'a b' at 'exclusiveStartStreamName' failed to satisfy constraint: Member must \
         satisfy regular expression pattern: [a-zA-Z0-9_.-]+; \
         Value '' at 'nextToken' failed to satisfy constraint: Member must have length greater \
         than or equal to 1"
    );
    assert_eq!(
        validation("DescribeStream", r#"{"StreamName":"s1","Limit":10001}"#),
        "1 validation error detected: Value '10001' at 'limit' failed to satisfy constraint: \
         Member must have value less than or equal to 10000"
    );
    assert_eq!(
        validation(
            "ListTagsForStream",
            r#"{"StreamName":"s1","Limit":51,"ExclusiveStartTagKey":""}"#
        ),
        "2 validation errors detected: \
         Value '51' at 'limit' failed to satisfy constraint: Member must have value less than or \
         equal to 50; \
         Value '' at 'exclusiveStartTagKey' failed to satisfy constraint: Member must have length \
         greater than or equal to 1"
    );
}

#[test]
fn list_shards_filter() {
    let body = r#"{"StreamName":"s1","MaxResults":5,"ShardFilter":{"Type":"AT_TIMESTAMP","Timestamp":1700000000.5},"StreamCreationTimestamp":1700000000}"#;
    let Request::ListShards(input) = decode("ListShards", body).unwrap() else {
        panic!("wrong request");
    };
    let filter = input.shard_filter.unwrap();
    assert_eq!(filter.filter_type(), Some(ShardFilterType::AtTimestamp));
    assert_eq!(filter.timestamp.unwrap().epoch_ms(), 1_700_000_000_500);
    assert_eq!(
        input.stream_creation_timestamp.unwrap().epoch_ms(),
        1_700_000_000_000
    );
    assert_eq!(input.max_results, Some(5));

    assert_eq!(
        validation(
            "ListShards",
            r#"{"ShardFilter":{"ShardId":""},"MaxResults":0}"#
        ),
        "4 validation errors detected: \
         Value '0' at 'maxResults' failed to satisfy constraint: Member must have value greater \
         than or equal to 1; \
         Value null at 'shardFilter.type' failed to satisfy constraint: Member must not be null; \
         Value '' at 'shardFilter.shardId' failed to satisfy constraint: Member must satisfy \
         regular expression pattern: [a-zA-Z0-9_.-]+; \
         Value '' at 'shardFilter.shardId' failed to satisfy constraint: Member must have length \
         greater than or equal to 1"
    );
    assert_eq!(
        validation("ListShards", r#"{"ShardFilter":{"Type":"LATEST"}}"#),
        "1 validation error detected: Value 'LATEST' at 'shardFilter.type' failed to satisfy \
         constraint: Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, \
         FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]"
    );
    assert_eq!(
        serialization("ListShards", r#"{"ShardFilter":[]}"#),
        "Start of list found where not expected"
    );
}

#[test]
fn tags_bounds() {
    let tags: Vec<String> = (0..201).map(|i| format!(r#""k{i}":"v""#)).collect();
    let message = validation(
        "AddTagsToStream",
        &format!(r#"{{"StreamName":"s1","Tags":{{{}}}}}"#, tags.join(",")),
    );
    assert!(
        message.starts_with("1 validation error detected: Value '{k0=v, k1=v, "),
        "{message}"
    );
    assert!(message.ends_with(
        "}' at 'tags' failed to satisfy constraint: Member must have length less than or equal \
         to 200"
    ));
    let long_key = "k".repeat(129);
    assert_eq!(
        validation(
            "AddTagsToStream",
            &format!(r#"{{"StreamName":"s1","Tags":{{"{long_key}":"v"}}}}"#)
        ),
        format!(
            "1 validation error detected: Value '{{{long_key}=v}}' at 'tags' failed to satisfy \
             constraint: Map keys must satisfy constraint: [Member must have length less than or \
             equal to 128, Member must have length greater than or equal to 1]"
        )
    );
    assert_eq!(
        validation("AddTagsToStream", r#"{"StreamName":"s1"}"#),
        "1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member \
         must not be null"
    );
    let keys: Vec<String> = (0..51).map(|i| format!(r#""k{i}""#)).collect();
    let message = validation(
        "RemoveTagsFromStream",
        &format!(r#"{{"StreamName":"s1","TagKeys":[{}]}}"#, keys.join(",")),
    );
    assert!(
        message.starts_with("1 validation error detected: Value '[k0, k1, "),
        "{message}"
    );
    assert!(message.ends_with(
        "]' at 'tagKeys' failed to satisfy constraint: Member must have length less than or \
         equal to 50"
    ));
    assert_eq!(
        serialization("RemoveTagsFromStream", r#"{"TagKeys":{"a":"b"}}"#),
        "Start of structure or map found where not expected."
    );
    assert_eq!(
        serialization("AddTagsToStream", r#"{"Tags":["a"]}"#),
        "Start of list found where not expected"
    );
    assert_eq!(
        serialization("AddTagsToStream", r#"{"Tags":"a"}"#),
        "Expected map or null"
    );
}

#[test]
fn tag_resource_arns() {
    assert_eq!(
        validation(
            "TagResource",
            r#"{"ResourceARN":"arn:aws:kinesis:r:123456789012:topic/t","Tags":{"k":"v"}}"#
        ),
        "1 validation error detected: Value 'arn:aws:kinesis:r:123456789012:topic/t' at \
         'resourceARN' failed to satisfy constraint: Member must satisfy regular expression \
         pattern: arn:aws.*:kinesis:.*:\\d{12}:.*(stream|channel|queue)/\\S+"
    );
    assert_eq!(
        validation("UntagResource", "{}"),
        "2 validation errors detected: \
         Value null at 'tagKeys' failed to satisfy constraint: Member must not be null; \
         Value null at 'resourceARN' failed to satisfy constraint: Member must not be null"
    );
    let consumer = format!("{ARN}/consumer/c:1700000000");
    let body = format!(r#"{{"ResourceARN":"{consumer}"}}"#);
    let Request::ListTagsForResource(input) = decode("ListTagsForResource", &body).unwrap() else {
        panic!("wrong request");
    };
    assert_eq!(input.resource_arn.as_deref(), Some(consumer.as_str()));
}

#[test]
fn resharding_inputs() {
    assert_eq!(
        validation(
            "SplitShard",
            r#"{"NewStartingHashKey":"-1","ShardToSplit":"a b"}"#
        ),
        "2 validation errors detected: \
         Value '-1' at 'newStartingHashKey' failed to satisfy constraint: Member must satisfy \
         regular expression pattern: 0|([1-9]\\d{0,38}); \
         Value 'a b' at 'shardToSplit' failed to satisfy constraint: Member must satisfy regular \
         expression pattern: [a-zA-Z0-9_.-]+"
    );
    assert_eq!(
        validation("MergeShards", "{}"),
        "2 validation errors detected: \
         Value null at 'shardToMerge' failed to satisfy constraint: Member must not be null; \
         Value null at 'adjacentShardToMerge' failed to satisfy constraint: Member must not be \
         null"
    );
    assert_eq!(
        validation(
            "UpdateShardCount",
            r#"{"ScalingType":"DOUBLE","TargetShardCount":0}"#
        ),
        "2 validation errors detected: \
         Value 'DOUBLE' at 'scalingType' failed to satisfy constraint: Member must satisfy enum \
         value set: [UNIFORM_SCALING]; \
         Value '0' at 'targetShardCount' failed to satisfy constraint: Member must have value \
         greater than or equal to 1"
    );
    let Request::UpdateShardCount(input) = decode(
        "UpdateShardCount",
        r#"{"StreamName":"s1","TargetShardCount":4,"ScalingType":"UNIFORM_SCALING"}"#,
    )
    .unwrap() else {
        panic!("wrong request");
    };
    assert_eq!(input.scaling(), Some(ScalingType::UniformScaling));
    assert_eq!(input.target_shard_count, Some(4));
}

#[test]
fn stream_mode_and_record_size_updates() {
    assert_eq!(
        validation("UpdateStreamMode", "{}"),
        "2 validation errors detected: \
         Value null at 'streamARN' failed to satisfy constraint: Member must not be null; \
         Value null at 'streamModeDetails' failed to satisfy constraint: Member must not be null"
    );
    let body = format!(
        r#"{{"StreamARN":"{ARN}","StreamModeDetails":{{"StreamMode":"PROVISIONED"}},"WarmThroughputMiBps":10}}"#
    );
    let Request::UpdateStreamMode(input) = decode("UpdateStreamMode", &body).unwrap() else {
        panic!("wrong request");
    };
    assert_eq!(input.stream_mode(), Some(StreamMode::Provisioned));
    assert_eq!(input.warm_throughput_mibps, Some(10));
    assert_eq!(
        validation(
            "UpdateMaxRecordSize",
            &format!(r#"{{"StreamARN":"{ARN}","MaxRecordSizeInKiB":1023}}"#)
        ),
        "1 validation error detected: Value '1023' at 'maxRecordSizeInKiB' failed to satisfy \
         constraint: Member must have value greater than or equal to 1024"
    );
}

#[test]
fn record_distribution_strategy_updates() {
    assert_eq!(
        validation("UpdateStreamRecordDistributionStrategy", "{}"),
        "2 validation errors detected: \
         Value null at 'streamARN' failed to satisfy constraint: Member must not be null; \
         Value null at 'recordDistributionStrategy' failed to satisfy constraint: Member must \
         not be null"
    );
    assert_eq!(
        validation(
            "UpdateStreamRecordDistributionStrategy",
            &format!(r#"{{"StreamARN":"{ARN}","RecordDistributionStrategy":"RANDOM"}}"#)
        ),
        "1 validation error detected: Value 'RANDOM' at 'recordDistributionStrategy' failed to \
         satisfy constraint: Member must satisfy enum value set: [AUTO, USER_PARTITION_KEY]"
    );
    assert!(validation(
        "UpdateStreamRecordDistributionStrategy",
        r#"{"StreamARN":"arn:aws:kinesis:us-east-1:123456789012:queue/q","RecordDistributionStrategy":"AUTO"}"#
    )
    .contains("at 'streamARN' failed to satisfy constraint: Member must satisfy regular expression pattern"));
    for (wire, typed) in [
        ("AUTO", RecordDistributionStrategy::Auto),
        (
            "USER_PARTITION_KEY",
            RecordDistributionStrategy::UserPartitionKey,
        ),
    ] {
        let body = format!(r#"{{"StreamARN":"{ARN}","RecordDistributionStrategy":"{wire}"}}"#);
        let Request::UpdateStreamRecordDistributionStrategy(input) =
            decode("UpdateStreamRecordDistributionStrategy", &body).unwrap()
        else {
            panic!("wrong request");
        };
        assert_eq!(input.distribution_strategy(), Some(typed));
        assert_eq!(input.stream_arn.as_deref(), Some(ARN));
    }
}

#[test]
fn delete_stream_boolean() {
    let Request::DeleteStream(input) = decode(
        "DeleteStream",
        r#"{"StreamName":"s1","EnforceConsumerDeletion":"true"}"#,
    )
    .unwrap() else {
        panic!("wrong request");
    };
    assert_eq!(input.enforce_consumer_deletion, Some(true));
    assert_eq!(
        serialization("DeleteStream", r#"{"EnforceConsumerDeletion":1}"#),
        "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to \
         an Boolean"
    );
}

#[test]
fn inputs_serialize_for_clients_and_decode_back() {
    let input = PutRecordsInput {
        records: Some(vec![
            PutRecordsRequestEntry {
                data: Some(Bytes::from_static(b"\x00\xffdata")),
                explicit_hash_key: None,
                partition_key: Some("k1".into()),
            },
            PutRecordsRequestEntry {
                data: Some(Bytes::new()),
                explicit_hash_key: Some("99".into()),
                partition_key: Some("k2".into()),
            },
        ]),
        stream_name: Some("s1".into()),
        ..PutRecordsInput::default()
    };
    let body = encode_json(&input);
    assert_eq!(
        json(body.clone()),
        r#"{"Records":[{"Data":"AP9kYXRh","PartitionKey":"k1"},{"Data":"","ExplicitHashKey":"99","PartitionKey":"k2"}],"StreamName":"s1"}"#
    );
    assert_eq!(
        decode_request("PutRecords", &body).unwrap(),
        Request::PutRecords(input)
    );

    let input = GetShardIteratorInput {
        stream_name: Some("s1".into()),
        shard_id: Some("shardId-000000000000".into()),
        shard_iterator_type: Some(ShardIteratorType::AtTimestamp.as_str().into()),
        timestamp: Some(Timestamp::from_epoch_ms(1_459_799_926_480)),
        ..GetShardIteratorInput::default()
    };
    let body = encode_json(&input);
    assert!(json(body.clone()).contains(r#""Timestamp":1459799926.48"#));
    assert_eq!(
        decode_request("GetShardIterator", &body).unwrap(),
        Request::GetShardIterator(input)
    );
}

#[test]
fn describe_stream_output_shape() {
    let output = DescribeStreamOutput {
        stream_description: StreamDescription {
            stream_name: "s1".into(),
            stream_arn: ARN.into(),
            stream_status: StreamStatus::Active,
            stream_mode_details: Some(StreamModeDetails {
                stream_mode: StreamMode::Provisioned,
            }),
            shards: vec![Shard {
                shard_id: "shardId-000000000000".into(),
                parent_shard_id: None,
                adjacent_parent_shard_id: None,
                hash_key_range: HashKeyRange::new(0, u128::MAX),
                sequence_number_range: SequenceNumberRange {
                    starting_sequence_number:
                        "49543463076548007577105092703039560359975228518395019266".into(),
                    ending_sequence_number: None,
                },
            }],
            has_more_shards: false,
            retention_period_hours: 24,
            stream_creation_timestamp: Timestamp::from_epoch_ms(1_459_799_926_480),
            enhanced_monitoring: vec![EnhancedMetrics::default()],
            encryption_type: Some(EncryptionType::None),
            key_id: None,
        },
    };
    let text = json(encode_json(&output));
    assert_eq!(
        text,
        r#"{"StreamDescription":{"StreamName":"s1","StreamARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s1","StreamStatus":"ACTIVE","StreamModeDetails":{"StreamMode":"PROVISIONED"},"Shards":[{"ShardId":"shardId-000000000000","HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"340282366920938463463374607431768211455"},"SequenceNumberRange":{"StartingSequenceNumber":"49543463076548007577105092703039560359975228518395019266"}}],"HasMoreShards":false,"RetentionPeriodHours":24,"StreamCreationTimestamp":1459799926.48,"EnhancedMonitoring":[{"ShardLevelMetrics":[]}],"EncryptionType":"NONE"}}"#
    );
    let back: DescribeStreamOutput = serde_json::from_str(&text).unwrap();
    assert_eq!(back, output);
}

#[test]
fn describe_stream_summary_output_shape() {
    let output = DescribeStreamSummaryOutput {
        stream_description_summary: StreamDescriptionSummary {
            stream_name: "s1".into(),
            stream_arn: ARN.into(),
            stream_id: None,
            stream_status: StreamStatus::Creating,
            stream_mode_details: Some(StreamModeDetails {
                stream_mode: StreamMode::OnDemand,
            }),
            retention_period_hours: 48,
            stream_creation_timestamp: Timestamp::from_epoch_ms(1_700_000_000_000),
            enhanced_monitoring: vec![EnhancedMetrics {
                shard_level_metrics: vec![MetricsName::IncomingBytes, MetricsName::All],
            }],
            encryption_type: None,
            key_id: None,
            open_shard_count: 4,
            consumer_count: Some(0),
            warm_throughput: None,
            max_record_size_kib: Some(1024),
            channel_count: None,
            record_distribution_strategy: Some(RecordDistributionStrategy::UserPartitionKey),
            queue_count: None,
        },
    };
    let text = json(encode_json(&output));
    assert!(text.contains(r#""StreamStatus":"CREATING""#));
    assert!(text.contains(r#""StreamCreationTimestamp":1700000000,"#));
    assert!(text.contains(r#""ShardLevelMetrics":["IncomingBytes","ALL"]"#));
    assert!(text.contains(r#""OpenShardCount":4,"ConsumerCount":0,"MaxRecordSizeInKiB":1024"#));
    assert!(text.contains(r#""RecordDistributionStrategy":"USER_PARTITION_KEY""#));
    assert!(
        !text.contains("StreamId") && !text.contains("KeyId") && !text.contains("WarmThroughput")
    );
    assert_eq!(
        serde_json::from_str::<DescribeStreamSummaryOutput>(&text).unwrap(),
        output
    );
}

#[test]
fn get_records_output_shape() {
    let output = GetRecordsOutput {
        records: vec![Record {
            sequence_number: "49543463076548007577105092703039560359975228518395019266".into(),
            approximate_arrival_timestamp: Some(Timestamp::from_epoch_ms(1_780_000_000_100)),
            data: Bytes::from_static(b"hello"),
            partition_key: Some("pk".into()),
            encryption_type: None,
        }],
        next_shard_iterator: Some("AAAA".into()),
        millis_behind_latest: Some(0),
        child_shards: None,
    };
    let text = json(encode_json(&output));
    assert_eq!(
        text,
        r#"{"Records":[{"SequenceNumber":"49543463076548007577105092703039560359975228518395019266","ApproximateArrivalTimestamp":1780000000.1,"Data":"aGVsbG8=","PartitionKey":"pk"}],"NextShardIterator":"AAAA","MillisBehindLatest":0}"#
    );
    assert_eq!(
        serde_json::from_str::<GetRecordsOutput>(&text).unwrap(),
        output
    );

    let end_of_shard = GetRecordsOutput {
        records: Vec::new(),
        next_shard_iterator: None,
        millis_behind_latest: Some(0),
        child_shards: Some(vec![ChildShard {
            shard_id: "shardId-000000000002".into(),
            parent_shards: vec!["shardId-000000000000".into()],
            hash_key_range: HashKeyRange::new(0, 5),
        }]),
    };
    assert_eq!(
        json(encode_json(&end_of_shard)),
        r#"{"Records":[],"MillisBehindLatest":0,"ChildShards":[{"ShardId":"shardId-000000000002","ParentShards":["shardId-000000000000"],"HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"5"}}]}"#
    );
}

#[test]
fn put_records_output_shape() {
    let output = PutRecordsOutput {
        failed_record_count: Some(1),
        records: vec![
            PutRecordsResultEntry {
                sequence_number: Some("1".into()),
                shard_id: Some("shardId-000000000000".into()),
                ..PutRecordsResultEntry::default()
            },
            PutRecordsResultEntry {
                error_code: Some(
                    ErrorKind::ProvisionedThroughputExceededException
                        .type_name()
                        .into(),
                ),
                error_message: Some(KinesisError::write_throttled_message(
                    "shardId-000000000000",
                    "s1",
                    "123456789012",
                )),
                ..PutRecordsResultEntry::default()
            },
        ],
        encryption_type: Some(EncryptionType::Kms),
    };
    assert_eq!(
        json(encode_json(&output)),
        r#"{"FailedRecordCount":1,"Records":[{"SequenceNumber":"1","ShardId":"shardId-000000000000"},{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded for shard shardId-000000000000 in stream s1 under account 123456789012."}],"EncryptionType":"KMS"}"#
    );
}

#[test]
fn small_outputs() {
    assert_eq!(json(encode_json(&CreateStreamOutput {})), "{}");
    assert_eq!(json(encode_json(&MergeShardsOutput {})), "{}");
    assert_eq!(
        json(encode_json(&PutRecordOutput {
            shard_id: "shardId-000000000001".into(),
            sequence_number: "5".into(),
            encryption_type: None,
        })),
        r#"{"ShardId":"shardId-000000000001","SequenceNumber":"5"}"#
    );
    assert_eq!(
        json(encode_json(&ListStreamsOutput {
            stream_names: vec!["a".into()],
            has_more_streams: true,
            next_token: Some("t".into()),
            stream_summaries: vec![StreamSummary {
                stream_name: "a".into(),
                stream_arn: "arn".into(),
                stream_status: StreamStatus::Deleting,
                stream_mode_details: None,
                stream_creation_timestamp: Some(Timestamp::from_epoch_ms(1500)),
            }],
        })),
        r#"{"StreamNames":["a"],"HasMoreStreams":true,"NextToken":"t","StreamSummaries":[{"StreamName":"a","StreamARN":"arn","StreamStatus":"DELETING","StreamCreationTimestamp":1.5}]}"#
    );
    assert_eq!(
        json(encode_json(&ListTagsForStreamOutput {
            tags: vec![
                Tag {
                    key: "k".into(),
                    value: Some(String::new())
                },
                Tag {
                    key: "j".into(),
                    value: None
                }
            ],
            has_more_tags: false,
        })),
        r#"{"Tags":[{"Key":"k","Value":""},{"Key":"j"}],"HasMoreTags":false}"#
    );
    assert_eq!(
        json(encode_json(&DescribeLimitsOutput {
            shard_limit: 20_000,
            open_shard_count: 3,
            on_demand_stream_count: 1,
            on_demand_stream_count_limit: 50,
            channel_count: None,
            channel_count_limit: None,
        })),
        r#"{"ShardLimit":20000,"OpenShardCount":3,"OnDemandStreamCount":1,"OnDemandStreamCountLimit":50}"#
    );
    assert_eq!(
        json(encode_json(&DescribeAccountSettingsOutput {
            minimum_throughput_billing_commitment: Some(MinimumThroughputBillingCommitmentOutput {
                status: MinimumThroughputBillingCommitmentStatus::Disabled,
                started_at: None,
                ended_at: None,
                earliest_allowed_end_at: None,
            }),
        })),
        r#"{"MinimumThroughputBillingCommitment":{"Status":"DISABLED"}}"#
    );
    assert_eq!(
        json(encode_json(&UpdateShardCountOutput {
            stream_name: Some("s1".into()),
            current_shard_count: Some(1),
            target_shard_count: Some(2),
            stream_arn: Some(ARN.into()),
        })),
        format!(
            r#"{{"StreamName":"s1","CurrentShardCount":1,"TargetShardCount":2,"StreamARN":"{ARN}"}}"#
        )
    );
    assert_eq!(
        json(encode_json(&GetShardIteratorOutput {
            shard_iterator: Some("it".into())
        })),
        r#"{"ShardIterator":"it"}"#
    );
}

#[test]
fn wire_enums_round_trip_and_reject_unknown_values() {
    for value in ShardIteratorType::VALUES {
        let parsed = ShardIteratorType::parse(value).unwrap();
        assert_eq!(parsed.as_str(), *value);
        assert_eq!(parsed.to_string(), *value);
        let encoded = serde_json::to_string(&parsed).unwrap();
        assert_eq!(
            serde_json::from_str::<ShardIteratorType>(&encoded).unwrap(),
            parsed
        );
    }
    assert_eq!(ShardIteratorType::parse("latest"), None);
    assert!(serde_json::from_str::<StreamStatus>(r#""GONE""#).is_err());
    assert_eq!(MetricsName::VALUES.len(), 8);
    assert_eq!(StreamMode::VALUES, &["PROVISIONED", "ON_DEMAND"]);
}

#[test]
fn queue_requests_are_validated_with_corals_texts() {
    let arn = "arn:aws:kinesis:us-east-1:123456789012:queue/abc";
    let refused = |operation: &str, body: String| match decode(operation, &body) {
        Err(error) => error.message.unwrap_or_default(),
        Ok(request) => panic!("{operation} {body} was accepted: {request:?}"),
    };
    assert_eq!(
        refused(
            "ReceiveQueueRecords",
            format!(r#"{{"QueueARN":"{arn}","Limit":11,"WaitTimeSeconds":0}}"#)
        ),
        "2 validation errors detected: Value '11' at 'limit' failed to satisfy constraint: \
         Member must have value less than or equal to 10; Value '0' at 'waitTimeSeconds' failed \
         to satisfy constraint: Member must have value greater than or equal to 1"
    );
    let message = refused(
        "AcknowledgeQueueRecords",
        r#"{"QueueARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s","Entries":[]}"#
            .to_string(),
    );
    assert!(message.contains("at 'queueARN' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:aws.*:kinesis:.*:\\d{12}:queue/\\S+"), "{message}");
    assert!(message.contains("at 'entries' failed to satisfy constraint: Member must have length greater than or equal to 1"), "{message}");
    let message = refused(
        "UpdateQueueRecordsVisibility",
        format!(
            r#"{{"QueueARN":"{arn}","Entries":[{{"ReceiptHandle":"h","VisibilityTimeoutSeconds":43201}}]}}"#
        ),
    );
    assert!(message.contains("Value '43201' at 'entries.1.member.visibilityTimeoutSeconds' failed to satisfy constraint: Member must have value less than or equal to 43200"), "{message}");
    let message = refused(
        "CreateQueue",
        r#"{"QueueName":"a b","StreamConfigurationList":[{"StartingPosition":{"Type":"NOW"}}],"QueueAttributes":{"DeadLetterConfiguration":{"MaxReceiveCount":0}}}"#.into(),
    );
    for part in [
        "Value 'a b' at 'queueName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        "Value null at 'streamConfigurationList.1.member.streamARN' failed to satisfy constraint: Member must not be null",
        "Value 'NOW' at 'streamConfigurationList.1.member.startingPosition.type' failed to satisfy constraint: Member must satisfy enum value set: [TRIM_HORIZON, LATEST, AT_TIMESTAMP]",
        "Value null at 'queueAttributes.deadLetterConfiguration.targetType' failed to satisfy constraint: Member must not be null",
        "Value '0' at 'queueAttributes.deadLetterConfiguration.maxReceiveCount' failed to satisfy constraint: Member must have value greater than or equal to 1",
    ] {
        assert!(message.contains(part), "{part} in {message}");
    }
}
