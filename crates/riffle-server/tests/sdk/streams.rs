//! CreateStream, DeleteStream, DescribeStream and DescribeStreamSummary.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{StreamMode, StreamModeDetails, StreamStatus};

use crate::common::*;

#[tokio::test]
async fn create_stream_lays_out_shards_as_aws_does() {
    let server = Server::in_memory();
    let client = server.client();
    let before_ms = now_millis();
    for shard_count in [1u32, 2, 3, 7] {
        let name = format!("layout-{shard_count}");
        create_stream(&client, &name, shard_count as i32).await;
        let description = client
            .describe_stream()
            .stream_name(&name)
            .send()
            .await
            .unwrap()
            .stream_description
            .expect("DescribeStream returns a StreamDescription");
        assert_eq!(description.stream_name(), name);
        assert_eq!(description.stream_arn(), stream_arn(&name));
        assert_eq!(description.stream_status(), &StreamStatus::Active);
        assert!(!description.has_more_shards());
        assert_eq!(description.retention_period_hours(), 24);
        assert_eq!(
            description
                .stream_mode_details()
                .map(|mode| mode.stream_mode()),
            Some(&StreamMode::Provisioned)
        );
        let created_ms = description.stream_creation_timestamp().to_millis().unwrap();
        assert!(
            created_ms >= before_ms - 2_000 && created_ms <= now_millis() + 2_000,
            "StreamCreationTimestamp {created_ms} is not about now ({before_ms})"
        );
        assert_fresh_shards(description.shards(), shard_count);
    }
}

#[tokio::test]
async fn on_demand_stream_starts_with_four_shards() {
    let server = Server::in_memory();
    let client = server.client();
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
    let summary = client
        .describe_stream_summary()
        .stream_name("od")
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap();
    assert_eq!(summary.open_shard_count(), 4);
    assert_eq!(
        summary.stream_mode_details().map(|mode| mode.stream_mode()),
        Some(&StreamMode::OnDemand)
    );
    assert_fresh_shards(&list_all_shards(&client, "od").await, 4);
    // Partition keys still route on an on-demand stream (the default distribution strategy).
    let put = client
        .put_record()
        .stream_name("od")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap();
    let shards = list_all_shards(&client, "od").await;
    assert_eq!(
        put.shard_id(),
        shard_for_hash_key(&shards, md5_hash_key(b"k"))
    );
}

#[tokio::test]
async fn on_demand_with_shard_count_is_rejected() {
    let server = Server::in_memory();
    let client = server.client();
    let result = client
        .create_stream()
        .stream_name("od")
        .shard_count(2)
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await;
    let (error, status) = service_error(result);
    assert_eq!(status, 400);
    // AWS's text is known (via CloudFormation); its exception type is not pinned down, so
    // either client-error type is accepted.
    assert!(
        error.is_validation_exception() || error.is_invalid_argument_exception(),
        "{error:?}"
    );
    assert!(
        error
            .meta()
            .message()
            .unwrap_or_default()
            .contains("ShardCount is not expected when StreamMode=ON_DEMAND"),
        "{error:?}"
    );
    let missing = client
        .describe_stream_summary()
        .stream_name("od")
        .send()
        .await;
    expect_error(
        missing,
        "ResourceNotFoundException",
        Some(&stream_not_found("od")),
    );
}

#[tokio::test]
async fn stream_mode_arguments() {
    let server = Server::in_memory();
    let client = server.client();
    let result = client
        .create_stream()
        .stream_name("bogus-mode")
        .shard_count(1)
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::from("SERVERLESS"))
                .build()
                .unwrap(),
        )
        .send()
        .await;
    let message = "1 validation error detected: Value 'SERVERLESS' at \
                   'streamModeDetails.streamMode' failed to satisfy constraint: Member must \
                   satisfy enum value set: [PROVISIONED, ON_DEMAND]";
    expect_error(result, "ValidationException", Some(message));

    // A provisioned stream needs its shard count (AWS's text is not recorded).
    let result = client
        .create_stream()
        .stream_name("no-count")
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::Provisioned)
                .build()
                .unwrap(),
        )
        .send()
        .await;
    let (error, status) = service_error(result);
    assert_eq!(status, 400);
    assert!(
        error.is_validation_exception() || error.is_invalid_argument_exception(),
        "{error:?}"
    );

    // An explicit PROVISIONED with a count is what the default is.
    client
        .create_stream()
        .stream_name("explicit")
        .shard_count(2)
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::Provisioned)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let summary = client
        .describe_stream_summary()
        .stream_arn(stream_arn("explicit"))
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap();
    assert_eq!(summary.open_shard_count(), 2);
    assert_eq!(
        summary.stream_mode_details().map(|mode| mode.stream_mode()),
        Some(&StreamMode::Provisioned)
    );
    let names = client.list_streams().send().await.unwrap().stream_names;
    assert_eq!(names, ["explicit"], "refused streams were not created");
}

#[tokio::test]
async fn duplicate_stream_name_is_resource_in_use() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "dup", 1).await;
    let result = client
        .create_stream()
        .stream_name("dup")
        .shard_count(3)
        .send()
        .await;
    let error = expect_error(
        result,
        "ResourceInUseException",
        Some(&format!(
            "Stream dup under account {ACCOUNT} already exists."
        )),
    );
    assert!(error.is_resource_in_use_exception());
    // The first stream is untouched.
    assert_eq!(list_all_shards(&client, "dup").await.len(), 1);
}

#[tokio::test]
async fn invalid_stream_names_are_validation_errors() {
    let server = Server::in_memory();
    let client = server.client();
    let too_long = "a".repeat(129);
    let cases = [
        (
            "bad name!",
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ),
        (
            "slash/name",
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
        ),
        (
            too_long.as_str(),
            "Member must have length less than or equal to 128",
        ),
    ];
    for (name, constraint) in cases {
        let result = client
            .create_stream()
            .stream_name(name)
            .shard_count(1)
            .send()
            .await;
        let message = format!(
            "1 validation error detected: Value '{name}' at 'streamName' failed to satisfy \
             constraint: {constraint}"
        );
        assert!(
            expect_error(result, "ValidationException", Some(&message)).is_validation_exception()
        );
    }
    // An empty name breaks two constraints, and AWS lists both.
    let result = client
        .create_stream()
        .stream_name("")
        .shard_count(1)
        .send()
        .await;
    let error = expect_error(result, "ValidationException", None);
    let message = error.meta().message().unwrap_or_default();
    assert!(
        message.starts_with("2 validation errors detected: ")
            && message.contains("Member must have length greater than or equal to 1")
            && message.contains("Member must satisfy regular expression pattern"),
        "{message:?}"
    );
    assert!(client
        .list_streams()
        .send()
        .await
        .unwrap()
        .stream_names
        .is_empty());

    // The longest legal name, with every legal character class.
    let longest = format!("Az09_.-{}", "x".repeat(121));
    create_stream(&client, &longest, 1).await;
    let names = client.list_streams().send().await.unwrap().stream_names;
    assert_eq!(names, vec![longest]);
}

#[tokio::test]
async fn invalid_shard_count_is_a_validation_error() {
    let server = Server::in_memory();
    let client = server.client();
    let result = client
        .create_stream()
        .stream_name("zero")
        .shard_count(0)
        .send()
        .await;
    let message = "1 validation error detected: Value '0' at 'shardCount' failed to satisfy \
                   constraint: Member must have value greater than or equal to 1";
    expect_error(result, "ValidationException", Some(message));
}

#[tokio::test]
async fn deleted_stream_is_gone_and_its_name_reusable() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "gone", 2).await;
    client
        .put_record()
        .stream_name("gone")
        .partition_key("k")
        .data(Blob::new("old incarnation"))
        .send()
        .await
        .unwrap();
    client
        .delete_stream()
        .stream_name("gone")
        .send()
        .await
        .unwrap();

    let not_found = stream_not_found("gone");
    let describe = client.describe_stream().stream_name("gone").send().await;
    assert!(
        expect_error(describe, "ResourceNotFoundException", Some(&not_found))
            .is_resource_not_found_exception()
    );
    let again = client.delete_stream().stream_name("gone").send().await;
    assert!(
        expect_error(again, "ResourceNotFoundException", Some(&not_found))
            .is_resource_not_found_exception()
    );
    let put = client
        .put_record()
        .stream_name("gone")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await;
    expect_error(put, "ResourceNotFoundException", Some(&not_found));
    let listed = client.list_streams().send().await.unwrap();
    assert!(listed.stream_names().is_empty(), "{listed:?}");

    // A new stream under the same name starts empty: nothing of the old one leaks into it.
    create_stream(&client, "gone", 1).await;
    assert!(read_shard(&client, "gone", &shard_id(0)).await.is_empty());
}

#[tokio::test]
async fn describe_stream_pages_shards() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "paged", 5).await;
    let ids = |description: &aws_sdk_kinesis::types::StreamDescription| {
        description
            .shards()
            .iter()
            .map(|shard| shard.shard_id().to_string())
            .collect::<Vec<_>>()
    };

    let first = client
        .describe_stream()
        .stream_name("paged")
        .limit(2)
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap();
    assert_eq!(ids(&first), [shard_id(0), shard_id(1)]);
    assert!(first.has_more_shards());

    let second = client
        .describe_stream()
        .stream_name("paged")
        .limit(2)
        .exclusive_start_shard_id(shard_id(1))
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap();
    assert_eq!(ids(&second), [shard_id(2), shard_id(3)]);
    assert!(second.has_more_shards());

    let last = client
        .describe_stream()
        .stream_name("paged")
        .limit(2)
        .exclusive_start_shard_id(shard_id(3))
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap();
    assert_eq!(ids(&last), [shard_id(4)]);
    assert!(!last.has_more_shards());

    let past_end = client
        .describe_stream()
        .stream_name("paged")
        .exclusive_start_shard_id(shard_id(4))
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap();
    assert!(ids(&past_end).is_empty());
    assert!(!past_end.has_more_shards());

    // Without a limit all five fit in one page.
    let all = client
        .describe_stream()
        .stream_name("paged")
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap();
    assert_fresh_shards(all.shards(), 5);
    assert!(!all.has_more_shards());
}

#[tokio::test]
async fn describe_stream_returns_at_most_100_shards() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "wide", 101).await;
    let describe = |limit: Option<i32>, after: Option<String>| {
        client
            .describe_stream()
            .stream_name("wide")
            .set_limit(limit)
            .set_exclusive_start_shard_id(after)
            .send()
    };
    // The default and the most one call returns are both 100, whatever Limit asks for.
    for limit in [None, Some(101), Some(10_000)] {
        let description = describe(limit, None)
            .await
            .unwrap()
            .stream_description
            .unwrap();
        assert_eq!(description.shards().len(), 100, "Limit {limit:?}");
        assert_eq!(description.shards()[99].shard_id(), shard_id(99));
        assert!(description.has_more_shards(), "Limit {limit:?}");
    }
    let rest = describe(Some(10_000), Some(shard_id(99)))
        .await
        .unwrap()
        .stream_description
        .unwrap();
    assert_eq!(rest.shards().len(), 1);
    assert_eq!(rest.shards()[0].shard_id(), shard_id(100));
    assert!(!rest.has_more_shards());
    let result = describe(Some(10_001), None).await;
    let message = "1 validation error detected: Value '10001' at 'limit' failed to satisfy \
                   constraint: Member must have value less than or equal to 10000";
    expect_error(result, "ValidationException", Some(message));
    // ListShards pages by 1000 by default, so one call lists them all.
    let listed = client
        .list_shards()
        .stream_name("wide")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.shards().len(), 101);
    assert_eq!(listed.next_token(), None);
}

#[tokio::test]
async fn describe_stream_limit_out_of_range_is_a_validation_error() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "limits", 1).await;
    let result = client
        .describe_stream()
        .stream_name("limits")
        .limit(0)
        .send()
        .await;
    let message = "1 validation error detected: Value '0' at 'limit' failed to satisfy \
                   constraint: Member must have value greater than or equal to 1";
    expect_error(result, "ValidationException", Some(message));
}

#[tokio::test]
async fn describe_stream_summary_counts_open_shards() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "summary", 3).await;
    let summary = client
        .describe_stream_summary()
        .stream_name("summary")
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap();
    assert_eq!(summary.stream_name(), "summary");
    assert_eq!(summary.stream_arn(), stream_arn("summary"));
    assert_eq!(summary.stream_status(), &StreamStatus::Active);
    assert_eq!(summary.open_shard_count(), 3);
    assert_eq!(summary.retention_period_hours(), 24);
    assert_eq!(
        summary.stream_mode_details().map(|mode| mode.stream_mode()),
        Some(&StreamMode::Provisioned)
    );
    assert_eq!(summary.consumer_count().unwrap_or(0), 0);

    let missing = client
        .describe_stream_summary()
        .stream_name("nope")
        .send()
        .await;
    assert!(expect_error(
        missing,
        "ResourceNotFoundException",
        Some(&stream_not_found("nope"))
    )
    .is_resource_not_found_exception());
}

/// With `--create-window-ms`, a new stream is CREATING for the window, as on AWS: it lists no
/// shards yet, refuses writes and iterators with ResourceNotFoundException, ListShards and
/// every change with ResourceInUseException, and then becomes ACTIVE with its shards.
#[tokio::test]
async fn a_new_stream_is_creating_for_the_create_window() {
    const STREAM: &str = "fresh";
    const WINDOW_MS: u64 = 3_000;
    /// The window's checks count only if they ran this soon after CreateStream returned.
    const CHECKS_WITHIN: std::time::Duration = std::time::Duration::from_millis(2_000);
    let server = Server::in_memory_with(&[
        "--limits",
        "off",
        "--create-window-ms",
        &WINDOW_MS.to_string(),
    ]);
    let client = server.client();
    create_stream(&client, STREAM, 2).await;
    let created = std::time::Instant::now();

    let summary = client
        .describe_stream_summary()
        .stream_name(STREAM)
        .send()
        .await
        .unwrap();
    let summary = summary.stream_description_summary().unwrap();
    let described = client
        .describe_stream()
        .stream_name(STREAM)
        .send()
        .await
        .unwrap();
    let described = described.stream_description().unwrap().clone();
    let listed = client.list_streams().send().await.unwrap();
    let listed_status = listed.stream_summaries()[0].stream_status().clone();
    let put = client
        .put_record()
        .stream_name(STREAM)
        .partition_key("k")
        .data(Blob::new("too early"))
        .send()
        .await;
    let put_many = client
        .put_records()
        .stream_name(STREAM)
        .records(
            aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                .partition_key("k")
                .data(Blob::new("too early"))
                .build()
                .unwrap(),
        )
        .send()
        .await;
    let iterator = client
        .get_shard_iterator()
        .stream_name(STREAM)
        .shard_id(shard_id(0))
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await;
    let list_shards = client.list_shards().stream_name(STREAM).send().await;
    let split = client
        .split_shard()
        .stream_name(STREAM)
        .shard_to_split(shard_id(0))
        .new_starting_hash_key("12345")
        .send()
        .await;
    if created.elapsed() < CHECKS_WITHIN {
        assert_eq!(summary.stream_status(), &StreamStatus::Creating);
        assert_eq!(summary.open_shard_count(), 0, "{summary:?}");
        assert_eq!(described.stream_status(), &StreamStatus::Creating);
        assert!(described.shards().is_empty(), "{described:?}");
        assert!(!described.has_more_shards());
        assert_eq!(listed_status, StreamStatus::Creating);
        let not_found = stream_not_found(STREAM);
        expect_error(put, "ResourceNotFoundException", Some(&not_found));
        expect_error(put_many, "ResourceNotFoundException", Some(&not_found));
        expect_error(
            iterator,
            "ResourceNotFoundException",
            Some(&shard_not_found(STREAM, &shard_id(0))),
        );
        let in_use = format!(
            "Stream {STREAM} under account {ACCOUNT} not ACTIVE, instead in state CREATING"
        );
        expect_error(list_shards, "ResourceInUseException", Some(&in_use));
        expect_error(split, "ResourceInUseException", Some(&in_use));
    } else {
        eprintln!("the machine stalled past the CREATING window; its checks were skipped");
    }

    // ACTIVE after the window, with its shards, and writable.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status = client
            .describe_stream_summary()
            .stream_name(STREAM)
            .send()
            .await
            .unwrap()
            .stream_description_summary()
            .unwrap()
            .stream_status()
            .clone();
        if status == StreamStatus::Active {
            break;
        }
        assert_eq!(status, StreamStatus::Creating);
        assert!(
            std::time::Instant::now() < deadline,
            "still CREATING after 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        created.elapsed() >= std::time::Duration::from_millis(WINDOW_MS - 1_000),
        "ACTIVE only after the window"
    );
    assert_fresh_shards(&list_all_shards(&client, STREAM).await, 2);
    client
        .put_record()
        .stream_name(STREAM)
        .partition_key("k")
        .explicit_hash_key("0")
        .data(Blob::new("on time"))
        .send()
        .await
        .expect("PutRecord once ACTIVE");
    let records = read_shard(&client, STREAM, &shard_id(0)).await;
    assert_eq!(
        records.len(),
        1,
        "only the record put once ACTIVE: {records:?}"
    );
}
