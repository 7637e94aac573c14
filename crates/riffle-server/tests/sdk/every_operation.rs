//! Every one of the 40 stream operations (and the queue and channel ones), called once through the Rust SDK against one server,
//! each with input that AWS accepts, and each must succeed. The list of operations called is
//! checked against the protocol crate's [`riffle_proto::ops::OPERATIONS`], so an operation added to
//! the model without an implementation and a call here fails this test instead of answering
//! UnknownOperationException in the field.

use std::collections::BTreeSet;
use std::fmt::Debug;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    EncryptionType, MetricsName, MinimumThroughputBillingCommitmentInputStatus,
    PutRecordsRequestEntry, RecordDistributionStrategy, ScalingType, ShardIteratorType,
    StartingPosition, StreamMode, StreamModeDetails, SubscribeToShardEventStream,
};

use crate::common::*;

/// Records the operation and demands that the call succeeded.
fn answered<T, E: Debug>(
    called: &mut BTreeSet<&'static str>,
    op: &'static str,
    result: Result<T, E>,
) -> T {
    called.insert(op);
    result.unwrap_or_else(|error| panic!("{op} did not succeed: {error:?}"))
}

#[tokio::test]
async fn each_of_the_57_operations_answers() {
    let server = Server::in_memory_limits(Limits::Off);
    let client = server.client();
    let mut called = BTreeSet::new();
    let name = "everything";
    let arn = stream_arn(name);

    answered(
        &mut called,
        "CreateStream",
        client
            .create_stream()
            .stream_name(name)
            .shard_count(2)
            .send()
            .await,
    );
    let described = answered(
        &mut called,
        "DescribeStream",
        client.describe_stream().stream_name(name).send().await,
    );
    assert_eq!(
        described.stream_description().map(|d| d.shards().len()),
        Some(2)
    );
    answered(
        &mut called,
        "DescribeStreamSummary",
        client
            .describe_stream_summary()
            .stream_arn(&arn)
            .send()
            .await,
    );
    let listed = answered(
        &mut called,
        "ListStreams",
        client.list_streams().send().await,
    );
    assert_eq!(listed.stream_names(), [name]);
    let shards = answered(
        &mut called,
        "ListShards",
        client.list_shards().stream_name(name).send().await,
    );
    let first_shard = shards.shards()[0].shard_id().to_owned();

    let put = answered(
        &mut called,
        "PutRecord",
        client
            .put_record()
            .stream_name(name)
            .partition_key("k")
            .explicit_hash_key("0")
            .data(Blob::new("one"))
            .send()
            .await,
    );
    assert_eq!(put.shard_id(), first_shard);
    let entry = PutRecordsRequestEntry::builder()
        .partition_key("k")
        .explicit_hash_key("1")
        .data(Blob::new("two"))
        .build()
        .expect("entry");
    let puts = answered(
        &mut called,
        "PutRecords",
        client
            .put_records()
            .stream_name(name)
            .records(entry)
            .send()
            .await,
    );
    assert_eq!(puts.failed_record_count(), Some(0));
    let iterator = answered(
        &mut called,
        "GetShardIterator",
        client
            .get_shard_iterator()
            .stream_name(name)
            .shard_id(&first_shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await,
    );
    let records = answered(
        &mut called,
        "GetRecords",
        client
            .get_records()
            .shard_iterator(iterator.shard_iterator().expect("an iterator"))
            .send()
            .await,
    );
    assert_eq!(records.records().len(), 2);

    answered(
        &mut called,
        "IncreaseStreamRetentionPeriod",
        client
            .increase_stream_retention_period()
            .stream_name(name)
            .retention_period_hours(48)
            .send()
            .await,
    );
    answered(
        &mut called,
        "DecreaseStreamRetentionPeriod",
        client
            .decrease_stream_retention_period()
            .stream_name(name)
            .retention_period_hours(24)
            .send()
            .await,
    );

    answered(
        &mut called,
        "AddTagsToStream",
        client
            .add_tags_to_stream()
            .stream_name(name)
            .tags("a", "1")
            .send()
            .await,
    );
    answered(
        &mut called,
        "RemoveTagsFromStream",
        client
            .remove_tags_from_stream()
            .stream_name(name)
            .tag_keys("a")
            .send()
            .await,
    );
    answered(
        &mut called,
        "TagResource",
        client
            .tag_resource()
            .resource_arn(&arn)
            .tags("b", "2")
            .send()
            .await,
    );
    answered(
        &mut called,
        "UntagResource",
        client
            .untag_resource()
            .resource_arn(&arn)
            .tag_keys("b")
            .send()
            .await,
    );
    answered(
        &mut called,
        "AddTagsToStream",
        client
            .add_tags_to_stream()
            .stream_name(name)
            .tags("c", "3")
            .send()
            .await,
    );
    let tags = answered(
        &mut called,
        "ListTagsForStream",
        client.list_tags_for_stream().stream_name(name).send().await,
    );
    assert_eq!(tags.tags().len(), 1);
    let tags = answered(
        &mut called,
        "ListTagsForResource",
        client
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await,
    );
    assert_eq!(tags.tags().len(), 1);

    answered(
        &mut called,
        "DescribeLimits",
        client.describe_limits().send().await,
    );
    answered(
        &mut called,
        "UpdateAccountSettings",
        client
            .update_account_settings()
            .minimum_throughput_billing_commitment(
                aws_sdk_kinesis::types::MinimumThroughputBillingCommitmentInput::builder()
                    .status(MinimumThroughputBillingCommitmentInputStatus::Enabled)
                    .build()
                    .expect("commitment"),
            )
            .send()
            .await,
    );
    answered(
        &mut called,
        "DescribeAccountSettings",
        client.describe_account_settings().send().await,
    );

    // Resharding: split the first shard, merge the two children back, then scale uniformly.
    answered(
        &mut called,
        "SplitShard",
        client
            .split_shard()
            .stream_name(name)
            .shard_to_split(&first_shard)
            .new_starting_hash_key("1000")
            .send()
            .await,
    );
    let open: Vec<_> = list_all_shards(&client, name)
        .await
        .into_iter()
        .filter(|shard| {
            shard
                .sequence_number_range()
                .is_some_and(|range| range.ending_sequence_number().is_none())
        })
        .collect();
    assert_eq!(open.len(), 3);
    answered(
        &mut called,
        "MergeShards",
        client
            .merge_shards()
            .stream_name(name)
            .shard_to_merge(open[1].shard_id())
            .adjacent_shard_to_merge(open[2].shard_id())
            .send()
            .await,
    );
    answered(
        &mut called,
        "UpdateShardCount",
        client
            .update_shard_count()
            .stream_name(name)
            .target_shard_count(4)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .await,
    );
    answered(
        &mut called,
        "UpdateMaxRecordSize",
        client
            .update_max_record_size()
            .stream_arn(&arn)
            .max_record_size_in_kib(2048)
            .send()
            .await,
    );

    // Monitoring and encryption.
    let enabled = answered(
        &mut called,
        "EnableEnhancedMonitoring",
        client
            .enable_enhanced_monitoring()
            .stream_name(name)
            .shard_level_metrics(MetricsName::IncomingBytes)
            .send()
            .await,
    );
    assert_eq!(
        enabled.desired_shard_level_metrics(),
        [MetricsName::IncomingBytes]
    );
    answered(
        &mut called,
        "DisableEnhancedMonitoring",
        client
            .disable_enhanced_monitoring()
            .stream_name(name)
            .shard_level_metrics(MetricsName::All)
            .send()
            .await,
    );
    answered(
        &mut called,
        "StartStreamEncryption",
        client
            .start_stream_encryption()
            .stream_name(name)
            .encryption_type(EncryptionType::Kms)
            .key_id("alias/aws/kinesis")
            .send()
            .await,
    );
    let summary = client
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .expect("summary");
    assert_eq!(
        summary
            .stream_description_summary()
            .and_then(|s| s.encryption_type()),
        Some(&EncryptionType::Kms)
    );
    answered(
        &mut called,
        "StopStreamEncryption",
        client
            .stop_stream_encryption()
            .stream_name(name)
            .encryption_type(EncryptionType::Kms)
            .key_id("alias/aws/kinesis")
            .send()
            .await,
    );

    // Resource policies, by the owner.
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::111122223333:root"}},"Action":"kinesis:DescribeStreamSummary","Resource":"{arn}"}}]}}"#
    );
    answered(
        &mut called,
        "PutResourcePolicy",
        client
            .put_resource_policy()
            .resource_arn(&arn)
            .policy(&policy)
            .send()
            .await,
    );
    let got = answered(
        &mut called,
        "GetResourcePolicy",
        client.get_resource_policy().resource_arn(&arn).send().await,
    );
    assert_eq!(got.policy(), policy);
    answered(
        &mut called,
        "DeleteResourcePolicy",
        client
            .delete_resource_policy()
            .resource_arn(&arn)
            .send()
            .await,
    );

    // Enhanced fan-out.
    let consumer = answered(
        &mut called,
        "RegisterStreamConsumer",
        client
            .register_stream_consumer()
            .stream_arn(&arn)
            .consumer_name("reader")
            .send()
            .await,
    );
    let consumer_arn = consumer
        .consumer()
        .expect("consumer")
        .consumer_arn()
        .to_owned();
    answered(
        &mut called,
        "DescribeStreamConsumer",
        client
            .describe_stream_consumer()
            .consumer_arn(&consumer_arn)
            .send()
            .await,
    );
    let consumers = answered(
        &mut called,
        "ListStreamConsumers",
        client.list_stream_consumers().stream_arn(&arn).send().await,
    );
    assert_eq!(consumers.consumers().len(), 1);
    let mut subscription = answered(
        &mut called,
        "SubscribeToShard",
        client
            .subscribe_to_shard()
            .consumer_arn(&consumer_arn)
            .shard_id(&first_shard)
            .starting_position(
                StartingPosition::builder()
                    .r#type(ShardIteratorType::TrimHorizon)
                    .build()
                    .expect("position"),
            )
            .send()
            .await,
    );
    match subscription.event_stream.recv().await {
        Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(event))) => {
            assert_eq!(event.records().len(), 2, "the first shard's two records");
        }
        other => panic!("expected a SubscribeToShardEvent, got {other:?}"),
    }
    drop(subscription);
    answered(
        &mut called,
        "DeregisterStreamConsumer",
        client
            .deregister_stream_consumer()
            .consumer_arn(&consumer_arn)
            .send()
            .await,
    );

    // Warm throughput is for ON_DEMAND streams (with the account's billing commitment on).
    answered(
        &mut called,
        "UpdateStreamMode",
        client
            .update_stream_mode()
            .stream_arn(&arn)
            .stream_mode_details(
                StreamModeDetails::builder()
                    .stream_mode(StreamMode::OnDemand)
                    .build()
                    .expect("mode"),
            )
            .send()
            .await,
    );
    answered(
        &mut called,
        "UpdateStreamRecordDistributionStrategy",
        client
            .update_stream_record_distribution_strategy()
            .stream_arn(&arn)
            .record_distribution_strategy(RecordDistributionStrategy::Auto)
            .send()
            .await,
    );
    answered(
        &mut called,
        "UpdateStreamWarmThroughput",
        client
            .update_stream_warm_throughput()
            .stream_name(name)
            .warm_throughput_mibps(10)
            .send()
            .await,
    );

    answered(
        &mut called,
        "DeleteStream",
        client
            .delete_stream()
            .stream_name(name)
            .enforce_consumer_deletion(true)
            .send()
            .await,
    );

    // The SDK has no queue operations: raw requests call them (see `queues.rs`).
    crate::queues::call_every_queue_operation(&server, &mut called);

    // Channels deliver from an on-demand stream.
    use aws_sdk_kinesis::types::{
        ChannelStreamConfiguration, RecordConfiguration, RecordFormatType,
        S3DestinationConfiguration, S3DestinationUpdateInput, S3StorageConfiguration,
    };
    let source = "channel-source";
    answered(
        &mut called,
        "CreateStream",
        client
            .create_stream()
            .stream_name(source)
            .stream_mode_details(
                StreamModeDetails::builder()
                    .stream_mode(StreamMode::OnDemand)
                    .build()
                    .expect("mode"),
            )
            .send()
            .await,
    );
    let created = answered(
        &mut called,
        "CreateChannel",
        client
            .create_channel()
            .channel_name("to-s3")
            .service_execution_role_arn("arn:aws:iam::000000000000:role/channels")
            .stream_configuration_list(
                ChannelStreamConfiguration::builder()
                    .stream_arn(stream_arn(source))
                    .record_configuration(
                        RecordConfiguration::builder()
                            .record_format_type(RecordFormatType::Json)
                            .build()
                            .expect("record configuration"),
                    )
                    .build()
                    .expect("stream configuration"),
            )
            .s3_destination_configuration(
                S3DestinationConfiguration::builder()
                    .storage_configuration(
                        S3StorageConfiguration::builder()
                            .bucket_arn("arn:aws:s3:::lake")
                            .expected_bucket_owner(ACCOUNT)
                            .compression_type(aws_sdk_kinesis::types::S3CompressionType::Gzip)
                            .build()
                            .expect("storage"),
                    )
                    .build(),
            )
            .send()
            .await,
    );
    let channel_arn = created
        .channel_description()
        .map(|channel| channel.channel_arn().to_owned())
        .expect("CreateChannel describes the channel");
    answered(
        &mut called,
        "DescribeChannel",
        client
            .describe_channel()
            .channel_arn(&channel_arn)
            .send()
            .await,
    );
    answered(
        &mut called,
        "ListChannels",
        client.list_channels().send().await,
    );
    // UpdateChannel is refused while the channel is still CREATING; it settles quickly.
    let mut updated = None;
    for _ in 0..100 {
        let answer = client
            .update_channel()
            .channel_arn(&channel_arn)
            .s3_destination_configuration(
                S3DestinationUpdateInput::builder()
                    .data_freshness_in_seconds(600)
                    .build()
                    .expect("update"),
            )
            .send()
            .await;
        if answer.is_ok() {
            updated = Some(answer);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    answered(
        &mut called,
        "UpdateChannel",
        updated.ok_or("UpdateChannel never succeeded"),
    )
    .expect("UpdateChannel succeeded");
    let mut deleted = None;
    for _ in 0..100 {
        let answer = client
            .delete_channel()
            .channel_arn(&channel_arn)
            .send()
            .await;
        if answer.is_ok() {
            deleted = Some(answer);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    answered(
        &mut called,
        "DeleteChannel",
        deleted.ok_or("DeleteChannel never succeeded"),
    )
    .expect("DeleteChannel succeeded");

    let all: BTreeSet<&str> = riffle_proto::ops::OPERATIONS.iter().copied().collect();
    assert_eq!(
        all.len(),
        57,
        "the 40 stream operations, the 12 queue operations and the 5 channel operations"
    );
    assert_eq!(called, all, "every operation of the model was called");
}
