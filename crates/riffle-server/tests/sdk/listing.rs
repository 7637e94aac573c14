//! ListStreams and ListShards: paging, summaries, filters and their argument errors.

use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::{ShardFilter, ShardFilterType, StreamMode, StreamStatus};

use crate::common::*;

fn shard_ids(shards: &[aws_sdk_kinesis::types::Shard]) -> Vec<String> {
    shards
        .iter()
        .map(|shard| shard.shard_id().to_string())
        .collect()
}

#[tokio::test]
async fn list_streams_on_an_empty_server() {
    let server = Server::in_memory();
    let listed = server.client().list_streams().send().await.unwrap();
    assert!(listed.stream_names().is_empty());
    assert!(listed.stream_summaries().is_empty());
    assert!(!listed.has_more_streams());
}

#[tokio::test]
async fn list_streams_pages_in_name_order() {
    let server = Server::in_memory();
    let client = server.client();
    // Created out of order: listing is by name, which ExclusiveStartStreamName relies on.
    for name in ["delta", "alpha", "echo", "charlie", "bravo"] {
        create_stream(&client, name, 1).await;
    }

    let first = client.list_streams().limit(2).send().await.unwrap();
    assert_eq!(first.stream_names(), ["alpha", "bravo"]);
    assert!(first.has_more_streams());
    let summaries = first.stream_summaries();
    assert_eq!(summaries.len(), 2);
    for (summary, name) in summaries.iter().zip(["alpha", "bravo"]) {
        assert_eq!(summary.stream_name(), name);
        assert_eq!(summary.stream_arn(), stream_arn(name));
        assert_eq!(summary.stream_status(), &StreamStatus::Active);
        assert_eq!(
            summary.stream_mode_details().map(|mode| mode.stream_mode()),
            Some(&StreamMode::Provisioned)
        );
        let created = summary
            .stream_creation_timestamp()
            .expect("creation timestamp");
        assert!(
            (created.to_millis().unwrap() - now_millis()).abs() < 60_000,
            "{created:?}"
        );
    }

    let second = client
        .list_streams()
        .limit(2)
        .exclusive_start_stream_name("bravo")
        .send()
        .await
        .unwrap();
    assert_eq!(second.stream_names(), ["charlie", "delta"]);
    assert!(second.has_more_streams());

    let last = client
        .list_streams()
        .exclusive_start_stream_name("delta")
        .send()
        .await
        .unwrap();
    assert_eq!(last.stream_names(), ["echo"]);
    assert!(!last.has_more_streams());

    // A start name that is not a stream still positions the listing by name.
    let between = client
        .list_streams()
        .exclusive_start_stream_name("c")
        .send()
        .await
        .unwrap();
    assert_eq!(between.stream_names(), ["charlie", "delta", "echo"]);

    // NextToken paging visits every stream once, in order.
    let token = first
        .next_token()
        .expect("a page with more streams carries a NextToken");
    let mut names: Vec<String> = first.stream_names().to_vec();
    let mut next = Some(token.to_string());
    let mut pages = 1;
    while let Some(token) = next {
        let page = client
            .list_streams()
            .limit(2)
            .next_token(token)
            .send()
            .await
            .unwrap();
        names.extend(page.stream_names().iter().cloned());
        assert_eq!(page.stream_names().len(), page.stream_summaries().len());
        next = page.next_token().map(str::to_string);
        assert_eq!(next.is_some(), page.has_more_streams(), "{page:?}");
        pages += 1;
        assert!(pages <= 3, "five streams in pages of two take three pages");
    }
    assert_eq!(names, ["alpha", "bravo", "charlie", "delta", "echo"]);
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn list_streams_limit_out_of_range_is_a_validation_error() {
    let server = Server::in_memory();
    let result = server.client().list_streams().limit(0).send().await;
    let message = "1 validation error detected: Value '0' at 'limit' failed to satisfy \
                   constraint: Member must have value greater than or equal to 1";
    expect_error(result, "ValidationException", Some(message));
}

#[tokio::test]
async fn list_shards_pages_with_next_token() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "five", 5).await;

    let first = client
        .list_shards()
        .stream_name("five")
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert_eq!(shard_ids(first.shards()), [shard_id(0), shard_id(1)]);
    let token = first.next_token().expect("more shards follow").to_string();

    let second = client
        .list_shards()
        .next_token(&token)
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert_eq!(shard_ids(second.shards()), [shard_id(2), shard_id(3)]);
    let token = second
        .next_token()
        .expect("one more shard follows")
        .to_string();

    let last = client
        .list_shards()
        .next_token(&token)
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert_eq!(shard_ids(last.shards()), [shard_id(4)]);
    assert_eq!(last.next_token(), None);

    // Without MaxResults everything fits, with the same data DescribeStream reports.
    let all = client
        .list_shards()
        .stream_name("five")
        .send()
        .await
        .unwrap();
    assert_eq!(all.next_token(), None);
    assert_fresh_shards(all.shards(), 5);

    let after = client
        .list_shards()
        .stream_name("five")
        .exclusive_start_shard_id(shard_id(1))
        .send()
        .await
        .unwrap();
    assert_eq!(
        shard_ids(after.shards()),
        [shard_id(2), shard_id(3), shard_id(4)]
    );

    // By ARN as well.
    let by_arn = client
        .list_shards()
        .stream_arn(stream_arn("five"))
        .max_results(10)
        .send()
        .await
        .unwrap();
    assert_eq!(shard_ids(by_arn.shards()), shard_ids(all.shards()));
}

#[tokio::test]
async fn list_shards_argument_errors() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "args", 3).await;
    let first = client
        .list_shards()
        .stream_name("args")
        .max_results(1)
        .send()
        .await
        .unwrap();
    let token = first.next_token().expect("more shards follow").to_string();

    let both = client
        .list_shards()
        .stream_name("args")
        .next_token(&token)
        .send()
        .await;
    let error = expect_error(
        both,
        "InvalidArgumentException",
        Some("NextToken and StreamName cannot be provided together."),
    );
    assert!(error.is_invalid_argument_exception());

    let neither = client.list_shards().send().await;
    let error = expect_error(
        neither,
        "InvalidArgumentException",
        Some("Either NextToken or StreamName should be provided."),
    );
    assert!(error.is_invalid_argument_exception());

    let missing = client.list_shards().stream_name("nope").send().await;
    let error = expect_error(
        missing,
        "ResourceNotFoundException",
        Some(&stream_not_found("nope")),
    );
    assert!(error.is_resource_not_found_exception());

    let zero = client
        .list_shards()
        .stream_name("args")
        .max_results(0)
        .send()
        .await;
    let message = "1 validation error detected: Value '0' at 'maxResults' failed to satisfy \
                   constraint: Member must have value greater than or equal to 1";
    expect_error(zero, "ValidationException", Some(message));
}

#[tokio::test]
async fn list_shards_honours_every_shard_filter() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "filters", 3).await;
    let every = vec![shard_id(0), shard_id(1), shard_id(2)];
    let now = DateTime::from_millis(now_millis());

    let filters = [
        (
            ShardFilter::builder()
                .r#type(ShardFilterType::AtLatest)
                .build()
                .unwrap(),
            every.clone(),
        ),
        (
            ShardFilter::builder()
                .r#type(ShardFilterType::AtTrimHorizon)
                .build()
                .unwrap(),
            every.clone(),
        ),
        (
            ShardFilter::builder()
                .r#type(ShardFilterType::FromTrimHorizon)
                .build()
                .unwrap(),
            every.clone(),
        ),
        (
            ShardFilter::builder()
                .r#type(ShardFilterType::AfterShardId)
                .shard_id(shard_id(0))
                .build()
                .unwrap(),
            vec![shard_id(1), shard_id(2)],
        ),
        (
            ShardFilter::builder()
                .r#type(ShardFilterType::AfterShardId)
                .shard_id(shard_id(2))
                .build()
                .unwrap(),
            vec![],
        ),
        (
            ShardFilter::builder()
                .r#type(ShardFilterType::AtTimestamp)
                .timestamp(now)
                .build()
                .unwrap(),
            every.clone(),
        ),
        (
            ShardFilter::builder()
                .r#type(ShardFilterType::FromTimestamp)
                .timestamp(now)
                .build()
                .unwrap(),
            every.clone(),
        ),
    ];
    for (filter, expected) in filters {
        let listed = client
            .list_shards()
            .stream_name("filters")
            .shard_filter(filter.clone())
            .send()
            .await
            .unwrap_or_else(|error| panic!("ListShards with {filter:?}: {error:?}"));
        assert_eq!(shard_ids(listed.shards()), expected, "filter {filter:?}");
        assert_eq!(listed.next_token(), None, "filter {filter:?}");
    }
}
