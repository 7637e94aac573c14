//! IncreaseStreamRetentionPeriod and DecreaseStreamRetentionPeriod.

use aws_sdk_kinesis::Client;

use crate::common::*;

async fn retention_hours(client: &Client, stream: &str) -> i32 {
    client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap()
        .retention_period_hours()
}

#[tokio::test]
async fn retention_goes_up_and_down() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "keep", 1).await;
    assert_eq!(retention_hours(&client, "keep").await, 24);

    client
        .increase_stream_retention_period()
        .stream_name("keep")
        .retention_period_hours(48)
        .send()
        .await
        .unwrap();
    assert_eq!(retention_hours(&client, "keep").await, 48);
    let description = client
        .describe_stream()
        .stream_name("keep")
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap();
    assert_eq!(description.retention_period_hours(), 48);

    // The maximum, one year.
    client
        .increase_stream_retention_period()
        .stream_arn(stream_arn("keep"))
        .retention_period_hours(8760)
        .send()
        .await
        .unwrap();
    assert_eq!(retention_hours(&client, "keep").await, 8760);

    client
        .decrease_stream_retention_period()
        .stream_name("keep")
        .retention_period_hours(100)
        .send()
        .await
        .unwrap();
    assert_eq!(retention_hours(&client, "keep").await, 100);
    client
        .decrease_stream_retention_period()
        .stream_arn(stream_arn("keep"))
        .retention_period_hours(24)
        .send()
        .await
        .unwrap();
    assert_eq!(retention_hours(&client, "keep").await, 24);
}

#[tokio::test]
async fn retention_errors() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "keep", 1).await;
    client
        .increase_stream_retention_period()
        .stream_name("keep")
        .retention_period_hours(48)
        .send()
        .await
        .unwrap();

    let result = client
        .increase_stream_retention_period()
        .stream_name("keep")
        .retention_period_hours(30)
        .send()
        .await;
    let message = "Requested retention period (30 hours) for stream keep can not be shorter than \
                   existing retention period (48 hours). Use DecreaseRetentionPeriod API.";
    assert!(
        expect_error(result, "InvalidArgumentException", Some(message))
            .is_invalid_argument_exception()
    );

    let result = client
        .decrease_stream_retention_period()
        .stream_name("keep")
        .retention_period_hours(72)
        .send()
        .await;
    let message = "Requested retention period (72 hours) for stream keep can not be longer than \
                   existing retention period (48 hours). Use IncreaseRetentionPeriod API.";
    assert!(
        expect_error(result, "InvalidArgumentException", Some(message))
            .is_invalid_argument_exception()
    );

    let result = client
        .decrease_stream_retention_period()
        .stream_name("keep")
        .retention_period_hours(12)
        .send()
        .await;
    let message = "Minimum allowed retention period is 24 hours. Requested retention period (12 \
                   hours) is too short.";
    assert!(
        expect_error(result, "InvalidArgumentException", Some(message))
            .is_invalid_argument_exception()
    );

    let result = client
        .increase_stream_retention_period()
        .stream_name("keep")
        .retention_period_hours(8761)
        .send()
        .await;
    // Above one year, with the text production gave when the maximum was 168 hours.
    let message = "Maximum allowed retention period is 8760 hours. Requested retention period \
                   (8761 hours) is too long.";
    assert!(
        expect_error(result, "InvalidArgumentException", Some(message))
            .is_invalid_argument_exception()
    );
    // The model's own minimum (1) is checked before the service's (24).
    let result = client
        .decrease_stream_retention_period()
        .stream_arn(stream_arn("keep"))
        .retention_period_hours(0)
        .send()
        .await;
    let message = "1 validation error detected: Value '0' at 'retentionPeriodHours' failed to \
                   satisfy constraint: Member must have value greater than or equal to 1";
    expect_error(result, "ValidationException", Some(message));

    assert_eq!(
        retention_hours(&client, "keep").await,
        48,
        "failed calls change nothing"
    );

    let result = client
        .increase_stream_retention_period()
        .stream_name("nope")
        .retention_period_hours(48)
        .send()
        .await;
    assert!(expect_error(
        result,
        "ResourceNotFoundException",
        Some(&stream_not_found("nope"))
    )
    .is_resource_not_found_exception());
    let result = client
        .decrease_stream_retention_period()
        .stream_name("nope")
        .retention_period_hours(24)
        .send()
        .await;
    assert!(expect_error(
        result,
        "ResourceNotFoundException",
        Some(&stream_not_found("nope"))
    )
    .is_resource_not_found_exception());
}
