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
    // Limits off: creates and lists streams faster than the control-plane rates.
    let server = Server::in_memory_limits(Limits::Off);
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
async fn list_streams_returns_at_most_100_names() {
    // Limits off: creates 101 streams, far above CreateStream's 5 a second.
    let server = Server::in_memory_limits(Limits::Off);
    let client = server.client();
    let names: Vec<String> = (0..101).map(|i| format!("s{i:03}")).collect();
    for name in &names {
        create_stream(&client, name, 1).await;
    }
    for limit in [None, Some(101), Some(10_000)] {
        let page = client.list_streams().set_limit(limit).send().await.unwrap();
        assert_eq!(page.stream_names(), &names[..100], "Limit {limit:?}");
        assert_eq!(page.stream_summaries().len(), 100);
        assert!(page.has_more_streams(), "Limit {limit:?}");
        let rest = client
            .list_streams()
            .next_token(page.next_token().expect("more streams follow"))
            .send()
            .await
            .unwrap();
        assert_eq!(rest.stream_names(), &names[100..]);
        assert!(!rest.has_more_streams());
        assert_eq!(rest.next_token(), None);
    }
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

#[tokio::test]
async fn list_shards_next_token_stands_alone() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "alone", 3).await;
    let token = client
        .list_shards()
        .stream_name("alone")
        .max_results(1)
        .send()
        .await
        .unwrap()
        .next_token
        .expect("more shards follow");
    // The token already names the stream, the position and the filter: AWS refuses each of
    // those members next to it (texts quoted from AWS in KCL and aws-kinesis-scaling-utils
    // issues).
    let with_arn = client
        .list_shards()
        .next_token(&token)
        .stream_arn(stream_arn("alone"))
        .send()
        .await;
    let with_start = client
        .list_shards()
        .next_token(&token)
        .exclusive_start_shard_id(shard_id(0))
        .send()
        .await;
    let with_created = client
        .list_shards()
        .next_token(&token)
        .stream_creation_timestamp(DateTime::from_millis(now_millis()))
        .send()
        .await;
    let with_filter = client
        .list_shards()
        .next_token(&token)
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AtLatest)
                .build()
                .unwrap(),
        )
        .send()
        .await;
    for (result, member) in [
        (with_arn, "StreamARN"),
        (with_start, "ExclusiveStartShardId"),
        (with_created, "StreamCreationTimestamp"),
        (with_filter, "ShardFilter"),
    ] {
        let message = format!("NextToken and {member} cannot be provided together.");
        assert!(
            expect_error(result, "InvalidArgumentException", Some(&message))
                .is_invalid_argument_exception()
        );
    }

    // A filtered first page continues, filtered, on the token alone.
    let first = client
        .list_shards()
        .stream_name("alone")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AfterShardId)
                .shard_id(shard_id(0))
                .build()
                .unwrap(),
        )
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(shard_ids(first.shards()), [shard_id(1)]);
    let rest = client
        .list_shards()
        .next_token(first.next_token().expect("one more shard follows"))
        .send()
        .await
        .unwrap();
    assert_eq!(shard_ids(rest.shards()), [shard_id(2)]);
    assert_eq!(rest.next_token(), None);
}

#[tokio::test]
async fn shard_filters_that_need_an_argument() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "args", 2).await;
    for filter_type in [
        ShardFilterType::AfterShardId,
        ShardFilterType::AtTimestamp,
        ShardFilterType::FromTimestamp,
    ] {
        let result = client
            .list_shards()
            .stream_name("args")
            .shard_filter(
                ShardFilter::builder()
                    .r#type(filter_type.clone())
                    .build()
                    .unwrap(),
            )
            .send()
            .await;
        // AWS's text for these is not recorded; the type is the contract.
        let error = expect_error(result, "InvalidArgumentException", None);
        assert!(error.is_invalid_argument_exception(), "{filter_type:?}");
    }
    let result = client
        .list_shards()
        .stream_name("args")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::from("NEWEST"))
                .build()
                .unwrap(),
        )
        .send()
        .await;
    let message = "1 validation error detected: Value 'NEWEST' at 'shardFilter.type' failed to \
                   satisfy constraint: Member must satisfy enum value set: [AFTER_SHARD_ID, \
                   AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]";
    expect_error(result, "ValidationException", Some(message));
}

/// Re-seals a genuine NextToken as if it had been issued `age_ms` earlier than it was.
fn aged_token(key: &[u8; 32], token: &str, age_ms: u64) -> String {
    let (position, created_ms, issued_ms) = riffle_proto::token::decode_page_token(token, key)
        .unwrap_or_else(|error| panic!("a genuine token decodes under the node key: {error}"));
    riffle_proto::token::encode_page_token(&position, created_ms, issued_ms - age_ms, key)
}

#[tokio::test]
async fn next_tokens_expire_and_cannot_be_forged() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = Server::on_data_dir(data_dir.path());
    let client = server.client();
    for name in ["a", "b", "c"] {
        create_stream(&client, name, 3).await;
    }
    let key = token_key(data_dir.path());
    let streams_token = client
        .list_streams()
        .limit(1)
        .send()
        .await
        .unwrap()
        .next_token
        .expect("more streams follow");
    let shards_token = client
        .list_shards()
        .stream_name("a")
        .max_results(1)
        .send()
        .await
        .unwrap()
        .next_token
        .expect("more shards follow");

    // Tokens live 300 s: one issued 290 s ago still pages, one issued 301 s ago has expired.
    let young = client
        .list_streams()
        .next_token(aged_token(&key, &streams_token, 290_000))
        .send()
        .await
        .unwrap();
    assert_eq!(young.stream_names(), ["b", "c"]);
    let young = client
        .list_shards()
        .next_token(aged_token(&key, &shards_token, 290_000))
        .send()
        .await
        .unwrap();
    assert_eq!(shard_ids(young.shards()), [shard_id(1), shard_id(2)]);
    let result = client
        .list_streams()
        .next_token(aged_token(&key, &streams_token, 301_000))
        .send()
        .await;
    let error = expect_error(result, "ExpiredNextTokenException", None);
    assert!(error.is_expired_next_token_exception(), "{error:?}");
    let result = client
        .list_shards()
        .next_token(aged_token(&key, &shards_token, 301_000))
        .send()
        .await;
    let error = expect_error(result, "ExpiredNextTokenException", None);
    assert!(error.is_expired_next_token_exception(), "{error:?}");

    // Garbage, a tampered token, and one operation's token handed to the other.
    let mut tampered: Vec<char> = shards_token.chars().collect();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    for token in ["garbage", tampered.as_str(), streams_token.as_str()] {
        let result = client.list_shards().next_token(token).send().await;
        let error = expect_error(result, "InvalidArgumentException", None);
        assert!(
            error.is_invalid_argument_exception(),
            "ListShards {token:?}"
        );
    }
    for token in ["garbage", shards_token.as_str()] {
        let result = client.list_streams().next_token(token).send().await;
        let error = expect_error(result, "InvalidArgumentException", None);
        assert!(
            error.is_invalid_argument_exception(),
            "ListStreams {token:?}"
        );
    }
}
