//! Record distribution (UpdateStreamRecordDistributionStrategy, CreateStream's
//! `RecordDistributionStrategy`): an ON_DEMAND stream under AUTO spreads records over its open
//! shards whatever their partition keys, takes records without one, and goes back to routing by
//! key under USER_PARTITION_KEY; the setting survives a restart; AWS's errors for the rest.

use std::collections::BTreeMap;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    PutRecordsRequestEntry, RecordDistributionStrategy, ShardIteratorType, StreamMode,
    StreamModeDetails,
};
use aws_sdk_kinesis::Client;

use crate::common::*;

fn on_demand() -> StreamModeDetails {
    StreamModeDetails::builder()
        .stream_mode(StreamMode::OnDemand)
        .build()
        .expect("mode")
}

async fn create_on_demand(client: &Client, name: &str) {
    client
        .create_stream()
        .stream_name(name)
        .stream_mode_details(on_demand())
        .send()
        .await
        .unwrap_or_else(|error| panic!("CreateStream {name}: {error:?}"));
}

/// DescribeStreamSummary's RecordDistributionStrategy.
async fn strategy(client: &Client, name: &str) -> Option<RecordDistributionStrategy> {
    client
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .unwrap_or_else(|error| panic!("DescribeStreamSummary {name}: {error:?}"))
        .stream_description_summary()
        .and_then(|summary| summary.record_distribution_strategy())
        .cloned()
}

async fn set_strategy(client: &Client, name: &str, strategy: RecordDistributionStrategy) {
    client
        .update_stream_record_distribution_strategy()
        .stream_arn(stream_arn(name))
        .record_distribution_strategy(strategy.clone())
        .send()
        .await
        .unwrap_or_else(|error| panic!("set {strategy:?} on {name}: {error:?}"));
}

/// Puts `count` records with the same partition key in one PutRecords; returns how many went
/// to each shard.
async fn put_same_key(client: &Client, name: &str, count: usize) -> BTreeMap<String, usize> {
    let entries = (0..count)
        .map(|index| {
            PutRecordsRequestEntry::builder()
                .partition_key("always-the-same")
                .data(Blob::new(format!("record {index}").into_bytes()))
                .build()
                .expect("entry")
        })
        .collect();
    let output = client
        .put_records()
        .stream_name(name)
        .set_records(Some(entries))
        .send()
        .await
        .unwrap_or_else(|error| panic!("PutRecords {name}: {error:?}"));
    assert_eq!(output.failed_record_count(), Some(0));
    let mut per_shard = BTreeMap::new();
    for result in output.records() {
        let shard = result.shard_id().expect("an accepted record has a shard");
        *per_shard.entry(shard.to_owned()).or_insert(0) += 1;
    }
    per_shard
}

#[tokio::test]
async fn auto_spreads_one_key_over_the_shards_until_switched_back_and_survives_a_restart() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = Server::on_data_dir_limits(data_dir.path(), Limits::Off);
    let client = server.client();
    let name = "spread";
    create_on_demand(&client, name).await;
    assert_eq!(
        strategy(&client, name).await,
        Some(RecordDistributionStrategy::UserPartitionKey),
        "an ON_DEMAND stream shows the default"
    );
    let shards = list_all_shards(&client, name).await;
    assert_eq!(shards.len(), 4);
    let keyed_shard = shard_for_hash_key(&shards, md5_hash_key(b"always-the-same"));
    assert_eq!(
        put_same_key(&client, name, 40).await,
        BTreeMap::from([(keyed_shard.clone(), 40)]),
        "by key, one key is one shard"
    );

    set_strategy(&client, name, RecordDistributionStrategy::Auto).await;
    assert_eq!(
        strategy(&client, name).await,
        Some(RecordDistributionStrategy::Auto)
    );
    let spread = put_same_key(&client, name, 40).await;
    assert_eq!(spread.len(), 4, "every open shard took records: {spread:?}");
    assert!(
        spread.values().all(|count| *count == 10),
        "evenly: {spread:?}"
    );
    // Neither an ExplicitHashKey nor the lack of a partition key decides the shard now.
    let mut single_puts = BTreeMap::new();
    for index in 0..4 {
        let put = client
            .put_record()
            .stream_name(name)
            .explicit_hash_key("0")
            .data(Blob::new(format!("keyless {index}").into_bytes()))
            .send()
            .await
            .expect("AUTO takes a record without a partition key");
        *single_puts.entry(put.shard_id().to_owned()).or_insert(0) += 1;
    }
    assert_eq!(single_puts.len(), 4, "one each: {single_puts:?}");
    // A keyless record reads back without a PartitionKey.
    let shard = single_puts.keys().next().expect("a shard").clone();
    let iterator = shard_iterator(&client, name, &shard, ShardIteratorType::TrimHorizon).await;
    let records = read_until_caught_up(&client, iterator).await;
    let keyless: Vec<_> = records
        .iter()
        .filter(|record| record.data().as_ref().starts_with(b"keyless"))
        .collect();
    assert_eq!(keyless.len(), 1, "{records:?}");
    assert_eq!(keyless[0].partition_key(), None);
    // Ordering by sequence number is for keyed placement (AWS: InvalidArgumentException).
    let ordered = client
        .put_record()
        .stream_name(name)
        .partition_key("k")
        .sequence_number_for_ordering("0")
        .data(Blob::new(b"ordered".to_vec()))
        .send()
        .await;
    expect_error(ordered, "InvalidArgumentException", None);

    // Persisted in the catalogue: a restart keeps AUTO.
    server.kill();
    let server = Server::on_data_dir_limits(data_dir.path(), Limits::Off);
    let client = server.client();
    assert_eq!(
        strategy(&client, name).await,
        Some(RecordDistributionStrategy::Auto)
    );
    assert_eq!(put_same_key(&client, name, 8).await.len(), 4);

    set_strategy(&client, name, RecordDistributionStrategy::UserPartitionKey).await;
    assert_eq!(
        put_same_key(&client, name, 40).await,
        BTreeMap::from([(keyed_shard, 40)]),
        "back to one shard per key"
    );
    let keyless = client
        .put_record()
        .stream_name(name)
        .data(Blob::new(b"no key".to_vec()))
        .send()
        .await;
    expect_error(
        keyless,
        "ValidationException",
        Some(
            "1 validation error detected: Value null at 'partitionKey' failed to satisfy \
             constraint: Member must not be null",
        ),
    );
    server.kill();
    let server = Server::on_data_dir_limits(data_dir.path(), Limits::Off);
    assert_eq!(
        strategy(&server.client(), name).await,
        Some(RecordDistributionStrategy::UserPartitionKey)
    );
}

#[tokio::test]
async fn record_distribution_refusals() {
    let server = Server::in_memory_limits(Limits::Off);
    let client = server.client();
    create_stream(&client, "fixed", 2).await;

    // PROVISIONED streams route by key only; asking for that is no error.
    let auto = client
        .update_stream_record_distribution_strategy()
        .stream_arn(stream_arn("fixed"))
        .record_distribution_strategy(RecordDistributionStrategy::Auto)
        .send()
        .await;
    expect_error(
        auto,
        "InvalidArgumentException",
        Some(
            "The AUTO record distribution strategy is only supported for streams in ON_DEMAND \
             capacity mode.",
        ),
    );
    set_strategy(
        &client,
        "fixed",
        RecordDistributionStrategy::UserPartitionKey,
    )
    .await;
    assert_eq!(
        strategy(&client, "fixed").await,
        None,
        "AWS shows the strategy for ON_DEMAND streams only"
    );
    let refused = client
        .create_stream()
        .stream_name("fixed-auto")
        .shard_count(1)
        .record_distribution_strategy(RecordDistributionStrategy::Auto)
        .send()
        .await;
    expect_error(refused, "InvalidArgumentException", None);

    let missing = client
        .update_stream_record_distribution_strategy()
        .stream_arn(stream_arn("nothing"))
        .record_distribution_strategy(RecordDistributionStrategy::Auto)
        .send()
        .await;
    expect_error(
        missing,
        "ResourceNotFoundException",
        Some(&stream_not_found("nothing")),
    );
    let unknown = client
        .update_stream_record_distribution_strategy()
        .stream_arn(stream_arn("fixed"))
        .record_distribution_strategy(RecordDistributionStrategy::from("RANDOM"))
        .send()
        .await;
    expect_error(
        unknown,
        "ValidationException",
        Some(
            "1 validation error detected: Value 'RANDOM' at 'recordDistributionStrategy' failed \
             to satisfy constraint: Member must satisfy enum value set: [AUTO, \
             USER_PARTITION_KEY]",
        ),
    );

    // CreateStream may start an ON_DEMAND stream under AUTO; it cannot then become
    // PROVISIONED before it routes by key again.
    client
        .create_stream()
        .stream_name("born-auto")
        .stream_mode_details(on_demand())
        .record_distribution_strategy(RecordDistributionStrategy::Auto)
        .send()
        .await
        .expect("CreateStream with AUTO");
    assert_eq!(
        strategy(&client, "born-auto").await,
        Some(RecordDistributionStrategy::Auto)
    );
    let to_provisioned = |client: Client| async move {
        client
            .update_stream_mode()
            .stream_arn(stream_arn("born-auto"))
            .stream_mode_details(
                StreamModeDetails::builder()
                    .stream_mode(StreamMode::Provisioned)
                    .build()
                    .expect("mode"),
            )
            .send()
            .await
    };
    expect_error(
        to_provisioned(client.clone()).await,
        "InvalidArgumentException",
        None,
    );
    set_strategy(
        &client,
        "born-auto",
        RecordDistributionStrategy::UserPartitionKey,
    )
    .await;
    to_provisioned(client.clone())
        .await
        .expect("PROVISIONED once the stream routes by key");

    // Another account needs the stream's resource policy to allow it, as for every control
    // operation.
    create_on_demand(&client, "guarded").await;
    let other = server.client_with_key("222222222222");
    let denied = other
        .update_stream_record_distribution_strategy()
        .stream_arn(stream_arn("guarded"))
        .record_distribution_strategy(RecordDistributionStrategy::Auto)
        .send()
        .await;
    expect_error(
        denied,
        "AccessDeniedException",
        Some(&format!(
            "User: arn:aws:iam::222222222222:root is not authorized to perform: \
             kinesis:UpdateStreamRecordDistributionStrategy on resource: {arn} because no \
             resource-based policy allows the kinesis:UpdateStreamRecordDistributionStrategy \
             action",
            arn = stream_arn("guarded")
        )),
    );
    assert_eq!(
        strategy(&client, "guarded").await,
        Some(RecordDistributionStrategy::UserPartitionKey)
    );
}

/// A stream that is not ACTIVE (here UPDATING after a capacity-mode change) refuses the change
/// with ResourceInUseException, like the other stream settings.
#[tokio::test]
async fn a_stream_not_active_refuses_the_change() {
    let server = Server::in_memory_with(&["--limits", "off", "--update-window-ms", "600000"]);
    let client = server.client();
    create_stream(&client, "changing", 1).await;
    client
        .update_stream_mode()
        .stream_arn(stream_arn("changing"))
        .stream_mode_details(on_demand())
        .send()
        .await
        .expect("UpdateStreamMode");
    let refused = client
        .update_stream_record_distribution_strategy()
        .stream_arn(stream_arn("changing"))
        .record_distribution_strategy(RecordDistributionStrategy::Auto)
        .send()
        .await;
    expect_error(
        refused,
        "ResourceInUseException",
        Some(&format!(
            "Stream changing under account {ACCOUNT} not ACTIVE, instead in state UPDATING"
        )),
    );
}
