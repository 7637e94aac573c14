//! Stream tags: AddTagsToStream / RemoveTagsFromStream / ListTagsForStream and the ARN-based
//! TagResource / UntagResource / ListTagsForResource, which see the same tag set.

use aws_sdk_kinesis::types::Tag;
use aws_sdk_kinesis::Client;

use crate::common::*;

fn pairs(tags: &[Tag]) -> Vec<(String, String)> {
    tags.iter()
        .map(|tag| {
            (
                tag.key().to_string(),
                tag.value().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn owned(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn all_tags(client: &Client, stream: &str) -> Vec<(String, String)> {
    let output = client
        .list_tags_for_stream()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    assert!(!output.has_more_tags());
    pairs(output.tags())
}

async fn resource_tags(client: &Client, stream: &str) -> Vec<(String, String)> {
    let output = client
        .list_tags_for_resource()
        .resource_arn(stream_arn(stream))
        .send()
        .await
        .unwrap();
    let mut tags = pairs(output.tags());
    tags.sort();
    tags
}

#[tokio::test]
async fn stream_tags_add_overwrite_remove_and_page() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "tagged", 1).await;
    assert!(all_tags(&client, "tagged").await.is_empty());

    client
        .add_tags_to_stream()
        .stream_name("tagged")
        .tags("team", "storage")
        .tags("env", "test")
        .tags("cost-center", "42")
        .tags("empty", "")
        .send()
        .await
        .unwrap();
    // Listed in key order, which ExclusiveStartTagKey relies on.
    assert_eq!(
        all_tags(&client, "tagged").await,
        owned(&[
            ("cost-center", "42"),
            ("empty", ""),
            ("env", "test"),
            ("team", "storage")
        ])
    );

    let first = client
        .list_tags_for_stream()
        .stream_name("tagged")
        .limit(2)
        .send()
        .await
        .unwrap();
    assert_eq!(
        pairs(first.tags()),
        owned(&[("cost-center", "42"), ("empty", "")])
    );
    assert!(first.has_more_tags());
    let rest = client
        .list_tags_for_stream()
        .stream_name("tagged")
        .exclusive_start_tag_key("empty")
        .limit(2)
        .send()
        .await
        .unwrap();
    assert_eq!(
        pairs(rest.tags()),
        owned(&[("env", "test"), ("team", "storage")])
    );
    assert!(!rest.has_more_tags());

    // Adding an existing key overwrites its value.
    client
        .add_tags_to_stream()
        .stream_name("tagged")
        .tags("env", "prod")
        .send()
        .await
        .unwrap();
    // Unknown keys are ignored on removal.
    client
        .remove_tags_from_stream()
        .stream_name("tagged")
        .tag_keys("team")
        .tag_keys("never-there")
        .send()
        .await
        .unwrap();
    assert_eq!(
        all_tags(&client, "tagged").await,
        owned(&[("cost-center", "42"), ("empty", ""), ("env", "prod")])
    );
}

#[tokio::test]
async fn create_stream_applies_tags() {
    let server = Server::in_memory();
    let client = server.client();
    client
        .create_stream()
        .stream_name("born-tagged")
        .shard_count(1)
        .tags("owner", "riffle")
        .send()
        .await
        .unwrap();
    assert_eq!(
        all_tags(&client, "born-tagged").await,
        owned(&[("owner", "riffle")])
    );
}

#[tokio::test]
async fn tags_by_resource_arn_share_the_stream_tag_set() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "arn-tags", 1).await;
    client
        .add_tags_to_stream()
        .stream_name("arn-tags")
        .tags("a", "1")
        .send()
        .await
        .unwrap();
    client
        .tag_resource()
        .resource_arn(stream_arn("arn-tags"))
        .tags("b", "2")
        .tags("c", "3")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resource_tags(&client, "arn-tags").await,
        owned(&[("a", "1"), ("b", "2"), ("c", "3")])
    );
    assert_eq!(
        all_tags(&client, "arn-tags").await,
        owned(&[("a", "1"), ("b", "2"), ("c", "3")])
    );

    client
        .untag_resource()
        .resource_arn(stream_arn("arn-tags"))
        .tag_keys("a")
        .tag_keys("c")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resource_tags(&client, "arn-tags").await,
        owned(&[("b", "2")])
    );
    assert_eq!(all_tags(&client, "arn-tags").await, owned(&[("b", "2")]));

    let missing = format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/nope");
    let result = client
        .list_tags_for_resource()
        .resource_arn(&missing)
        .send()
        .await;
    assert!(
        expect_error(result, "ResourceNotFoundException", None).is_resource_not_found_exception()
    );
    let result = client
        .tag_resource()
        .resource_arn(&missing)
        .tags("k", "v")
        .send()
        .await;
    assert!(
        expect_error(result, "ResourceNotFoundException", None).is_resource_not_found_exception()
    );
    let result = client
        .untag_resource()
        .resource_arn(&missing)
        .tag_keys("k")
        .send()
        .await;
    assert!(
        expect_error(result, "ResourceNotFoundException", None).is_resource_not_found_exception()
    );
}

#[tokio::test]
async fn tag_errors() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "strict", 1).await;

    let result = client
        .add_tags_to_stream()
        .stream_name("strict")
        .tags("bad#key", "v")
        .send()
        .await;
    let message = "Some tags contain invalid characters. Valid characters: Unicode letters, \
                   digits, white space, _ . / = + - % @.";
    assert!(
        expect_error(result, "InvalidArgumentException", Some(message))
            .is_invalid_argument_exception()
    );
    // Every allowed character class is accepted.
    client
        .add_tags_to_stream()
        .stream_name("strict")
        .tags("Ünïcode key_./=+-@ 9", "value with spaces _./=+-@")
        .send()
        .await
        .unwrap();

    // Fill up to the 50-tag limit (at most 10 per call), then one more must fail.
    for batch in 0..5 {
        let mut request = client.add_tags_to_stream().stream_name("strict");
        for i in 0..10 {
            if batch * 10 + i < 49 {
                request = request.tags(format!("key-{:02}", batch * 10 + i), "v");
            }
        }
        request.send().await.unwrap();
    }
    assert_eq!(all_tags(&client, "strict").await.len(), 50);
    let result = client
        .add_tags_to_stream()
        .stream_name("strict")
        .tags("one-too-many", "v")
        .send()
        .await;
    let (error, status) = service_error(result);
    assert_eq!(status, 400);
    assert!(
        error.is_limit_exceeded_exception() || error.is_invalid_argument_exception(),
        "{error:?}"
    );
    assert_eq!(all_tags(&client, "strict").await.len(), 50);

    let result = client
        .list_tags_for_stream()
        .stream_name("nope")
        .send()
        .await;
    assert!(expect_error(
        result,
        "ResourceNotFoundException",
        Some(&stream_not_found("nope"))
    )
    .is_resource_not_found_exception());
    let result = client
        .add_tags_to_stream()
        .stream_name("nope")
        .tags("k", "v")
        .send()
        .await;
    assert!(expect_error(
        result,
        "ResourceNotFoundException",
        Some(&stream_not_found("nope"))
    )
    .is_resource_not_found_exception());
    let result = client
        .remove_tags_from_stream()
        .stream_name("nope")
        .tag_keys("k")
        .send()
        .await;
    assert!(expect_error(
        result,
        "ResourceNotFoundException",
        Some(&stream_not_found("nope"))
    )
    .is_resource_not_found_exception());
}
