//! DescribeLimits, DescribeAccountSettings, and accounts chosen by a 12-digit access key id.

use aws_sdk_kinesis::types::{
    MinimumThroughputBillingCommitmentOutputStatus, StreamMode, StreamModeDetails,
};

use crate::common::*;

#[tokio::test]
async fn describe_limits_counts_open_shards_and_on_demand_streams() {
    // Limits off: DescribeLimits several times a second (AWS allows one); the rate has its own test.
    let server = Server::in_memory_limits(Limits::Off);
    let client = server.client();
    let fresh = client.describe_limits().send().await.unwrap();
    assert!(fresh.shard_limit() > 0, "{fresh:?}");
    assert!(fresh.on_demand_stream_count_limit() > 0, "{fresh:?}");
    assert_eq!(fresh.open_shard_count(), 0);
    assert_eq!(fresh.on_demand_stream_count(), 0);

    create_stream(&client, "two", 2).await;
    create_stream(&client, "three", 3).await;
    client
        .create_stream()
        .stream_name("od")
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let limits = client.describe_limits().send().await.unwrap();
    assert_eq!(limits.open_shard_count(), 2 + 3 + 4);
    assert_eq!(limits.on_demand_stream_count(), 1);
    assert_eq!(limits.shard_limit(), fresh.shard_limit());

    client
        .delete_stream()
        .stream_name("three")
        .send()
        .await
        .unwrap();
    client
        .delete_stream()
        .stream_name("od")
        .send()
        .await
        .unwrap();
    let limits = client.describe_limits().send().await.unwrap();
    assert_eq!(limits.open_shard_count(), 2);
    assert_eq!(limits.on_demand_stream_count(), 0);
}

#[tokio::test]
async fn describe_account_settings_answers() {
    let server = Server::in_memory();
    let output = server
        .client()
        .describe_account_settings()
        .send()
        .await
        .unwrap();
    // No account has made the On-demand Advantage commitment on a fresh server.
    let commitment = output
        .minimum_throughput_billing_commitment()
        .expect("MinimumThroughputBillingCommitment");
    assert_eq!(
        commitment.status(),
        &MinimumThroughputBillingCommitmentOutputStatus::Disabled
    );
    assert_eq!(commitment.started_at(), None);
}

#[tokio::test]
async fn twelve_digit_access_key_selects_the_account() {
    let server = Server::in_memory();
    let default = server.client();
    let other_account = "123456789012";
    let other = server.client_with_key(other_account);

    create_stream(&other, "mine", 1).await;
    let summary = other
        .describe_stream_summary()
        .stream_name("mine")
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap();
    assert_eq!(
        summary.stream_arn(),
        format!("arn:aws:kinesis:{REGION}:{other_account}:stream/mine")
    );

    // Invisible to the default account, which may use the same name for its own stream.
    assert!(default
        .list_streams()
        .send()
        .await
        .unwrap()
        .stream_names()
        .is_empty());
    let result = default
        .describe_stream_summary()
        .stream_name("mine")
        .send()
        .await;
    assert!(expect_error(
        result,
        "ResourceNotFoundException",
        Some(&stream_not_found("mine"))
    )
    .is_resource_not_found_exception());
    create_stream(&default, "mine", 3).await;
    assert_eq!(list_all_shards(&other, "mine").await.len(), 1);
    assert_eq!(list_all_shards(&default, "mine").await.len(), 3);
    assert_eq!(
        other
            .describe_limits()
            .send()
            .await
            .unwrap()
            .open_shard_count(),
        1
    );
    assert_eq!(
        default
            .describe_limits()
            .send()
            .await
            .unwrap()
            .open_shard_count(),
        3
    );

    let result = other
        .describe_stream_summary()
        .stream_name("absent")
        .send()
        .await;
    let message = format!("Stream absent under account {other_account} not found.");
    expect_error(result, "ResourceNotFoundException", Some(&message));
}
