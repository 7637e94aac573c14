//! StreamARN instead of StreamName: every stream operation accepts either (kinesis-api.md §1.1).

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};

use crate::common::*;

#[tokio::test]
async fn stream_arn_addresses_a_stream_everywhere() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "by-arn", 2).await;
    let arn = stream_arn("by-arn");

    let description = client
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap();
    assert_eq!(description.stream_name(), "by-arn");
    assert_eq!(description.stream_arn(), arn);
    let summary = client
        .describe_stream_summary()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap();
    assert_eq!(summary.stream_name(), "by-arn");
    assert_eq!(summary.open_shard_count(), 2);

    let put = client
        .put_record()
        .stream_arn(&arn)
        .partition_key("k")
        .data(Blob::new("one"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        put.shard_id(),
        shard_for_hash_key(description.shards(), md5_hash_key(b"k"))
    );
    let batch = client
        .put_records()
        .stream_arn(&arn)
        .records(
            PutRecordsRequestEntry::builder()
                .partition_key("k")
                .data(Blob::new("two"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(batch.records()[0].shard_id(), Some(put.shard_id()));

    let iterator = client
        .get_shard_iterator()
        .stream_arn(&arn)
        .shard_id(put.shard_id())
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    // GetRecords takes the ARN too (KCL multi-stream mode sends it).
    let page = client
        .get_records()
        .stream_arn(&arn)
        .shard_iterator(iterator)
        .send()
        .await
        .unwrap();
    let data: Vec<&[u8]> = page.records().iter().map(|r| r.data().as_ref()).collect();
    assert_eq!(data, [b"one".as_slice(), b"two".as_slice()]);

    client
        .add_tags_to_stream()
        .stream_arn(&arn)
        .tags("via", "arn")
        .send()
        .await
        .unwrap();
    let tags = client
        .list_tags_for_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().len(), 1);
    assert_eq!(tags.tags()[0].key(), "via");
    client
        .remove_tags_from_stream()
        .stream_arn(&arn)
        .tag_keys("via")
        .send()
        .await
        .unwrap();
    assert!(client
        .list_tags_for_stream()
        .stream_name("by-arn")
        .send()
        .await
        .unwrap()
        .tags()
        .is_empty());

    client
        .delete_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap();
    let result = client
        .describe_stream_summary()
        .stream_arn(&arn)
        .send()
        .await;
    assert!(expect_error(
        result,
        "ResourceNotFoundException",
        Some(&stream_not_found("by-arn"))
    )
    .is_resource_not_found_exception());
}

#[tokio::test]
async fn unknown_stream_arn_is_not_found() {
    let server = Server::in_memory();
    let client = server.client();
    let arn = stream_arn("ghost");
    let result = client.describe_stream().stream_arn(&arn).send().await;
    assert!(expect_error(
        result,
        "ResourceNotFoundException",
        Some(&stream_not_found("ghost"))
    )
    .is_resource_not_found_exception());
    let result = client
        .put_record()
        .stream_arn(&arn)
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await;
    assert!(expect_error(
        result,
        "ResourceNotFoundException",
        Some(&stream_not_found("ghost"))
    )
    .is_resource_not_found_exception());
    let result = client
        .get_shard_iterator()
        .stream_arn(&arn)
        .shard_id(shard_id(0))
        .shard_iterator_type(ShardIteratorType::Latest)
        .send()
        .await;
    let error = expect_error(result, "ResourceNotFoundException", None);
    assert!(error.is_resource_not_found_exception());
    assert_iterator_stream_not_found(&error, "ghost");
}

#[tokio::test]
async fn stream_name_and_arn_together_must_agree() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "one", 1).await;
    create_stream(&client, "two", 1).await;
    let both = client
        .describe_stream_summary()
        .stream_name("one")
        .stream_arn(stream_arn("one"))
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap();
    assert_eq!(both.stream_name(), "one");
    // Naming two different streams is refused rather than guessed at (AWS's text is not
    // recorded).
    let result = client
        .put_record()
        .stream_name("one")
        .stream_arn(stream_arn("two"))
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await;
    let error = expect_error(result, "InvalidArgumentException", None);
    assert!(error.is_invalid_argument_exception(), "{error:?}");
    for stream in ["one", "two"] {
        assert!(read_shard(&client, stream, &shard_id(0)).await.is_empty());
    }
}
