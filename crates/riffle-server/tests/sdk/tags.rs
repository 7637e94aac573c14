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

    let missing = stream_arn("nope");
    let not_found = stream_not_found("nope");
    let result = client
        .list_tags_for_resource()
        .resource_arn(&missing)
        .send()
        .await;
    assert!(
        expect_error(result, "ResourceNotFoundException", Some(&not_found))
            .is_resource_not_found_exception()
    );
    let result = client
        .tag_resource()
        .resource_arn(&missing)
        .tags("k", "v")
        .send()
        .await;
    assert!(
        expect_error(result, "ResourceNotFoundException", Some(&not_found))
            .is_resource_not_found_exception()
    );
    let result = client
        .untag_resource()
        .resource_arn(&missing)
        .tag_keys("k")
        .send()
        .await;
    assert!(
        expect_error(result, "ResourceNotFoundException", Some(&not_found))
            .is_resource_not_found_exception()
    );
}

#[tokio::test]
async fn tag_errors() {
    // Limits off: many tag calls in a row, above their 5 a second.
    let server = Server::in_memory_limits(Limits::Off);
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
    // Production's text (recorded by kinesalite when the limit was 10 tags).
    let message = format!(
        "Failed to add tags to stream strict under account {ACCOUNT} because a given stream \
         cannot have more than 50 tags associated with it."
    );
    assert!(
        expect_error(result, "InvalidArgumentException", Some(&message))
            .is_invalid_argument_exception()
    );
    assert_eq!(all_tags(&client, "strict").await.len(), 50);
    // Overwriting a key that exists adds no tag, so it still works at the limit.
    client
        .add_tags_to_stream()
        .stream_name("strict")
        .tags("key-00", "changed")
        .send()
        .await
        .unwrap();

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

const INVALID_CHARACTERS: &str = "Some tags contain invalid characters. Valid characters: \
     Unicode letters, digits, white space, _ . / = + - % @.";

/// The second text production answers for `%`, which the first check lists as valid.
fn percent_refused(verb_and_preposition: &str, stream: &str) -> String {
    format!(
        "Failed to {verb_and_preposition} stream {stream} under account {ACCOUNT} because some \
         tags contained illegal characters. The allowed characters are Unicode letters, \
         white-spaces, '_',',','/','=','+','-','@'."
    )
}

#[tokio::test]
async fn tag_characters_are_checked_as_production_checks_them() {
    // Limits off: many tag calls in a row, above their 5 a second.
    let server = Server::in_memory_limits(Limits::Off);
    let client = server.client();
    create_stream(&client, "chars", 1).await;
    client
        .add_tags_to_stream()
        .stream_name("chars")
        .tags("keep", "me")
        .send()
        .await
        .unwrap();
    // "White space" is the space character: tab and newline are refused like `;` and `,`
    // (kinesalite's production-recorded cases), in keys and in values alike.
    for bad in ["abc;def", "abc,def", "abc\tdef", "abc\ndef", "abc#def"] {
        for (key, value) in [(bad, "v"), ("k", bad)] {
            let result = client
                .add_tags_to_stream()
                .stream_name("chars")
                .tags(key, value)
                .send()
                .await;
            assert!(
                expect_error(result, "InvalidArgumentException", Some(INVALID_CHARACTERS))
                    .is_invalid_argument_exception(),
                "tag {key:?}={value:?}"
            );
        }
        let result = client
            .remove_tags_from_stream()
            .stream_name("chars")
            .tag_keys(bad)
            .send()
            .await;
        assert!(
            expect_error(result, "InvalidArgumentException", Some(INVALID_CHARACTERS))
                .is_invalid_argument_exception(),
            "tag key {bad:?}"
        );
    }
    for (key, value) in [("abc%def", "v"), ("k", "abc%def")] {
        let result = client
            .add_tags_to_stream()
            .stream_name("chars")
            .tags(key, value)
            .send()
            .await;
        let message = percent_refused("add tags to", "chars");
        assert!(
            expect_error(result, "InvalidArgumentException", Some(&message))
                .is_invalid_argument_exception(),
            "tag {key:?}={value:?}"
        );
    }
    let result = client
        .remove_tags_from_stream()
        .stream_name("chars")
        .tag_keys("abc%def")
        .send()
        .await;
    let message = percent_refused("remove tags from", "chars");
    assert!(
        expect_error(result, "InvalidArgumentException", Some(&message))
            .is_invalid_argument_exception()
    );

    // The same checks guard the ARN-based calls.
    let result = client
        .tag_resource()
        .resource_arn(stream_arn("chars"))
        .tags("a\tb", "v")
        .send()
        .await;
    expect_error(result, "InvalidArgumentException", Some(INVALID_CHARACTERS));
    let result = client
        .untag_resource()
        .resource_arn(stream_arn("chars"))
        .tag_keys("a;b")
        .send()
        .await;
    expect_error(result, "InvalidArgumentException", Some(INVALID_CHARACTERS));
    let result = client
        .tag_resource()
        .resource_arn(stream_arn("chars"))
        .tags("a%b", "v")
        .send()
        .await;
    let error = expect_error(result, "InvalidArgumentException", None);
    assert!(
        error
            .meta()
            .message()
            .unwrap_or_default()
            .contains("illegal characters"),
        "{error:?}"
    );

    // Valid characters pass both calls; nothing refused was stored.
    client
        .remove_tags_from_stream()
        .stream_name("chars")
        .tag_keys("ü0 _.")
        .tag_keys("/=+-@")
        .send()
        .await
        .unwrap();
    assert_eq!(all_tags(&client, "chars").await, owned(&[("keep", "me")]));

    // A missing stream is reported before the characters are looked at.
    let result = client
        .remove_tags_from_stream()
        .stream_name("nope")
        .tag_keys(";")
        .send()
        .await;
    expect_error(
        result,
        "ResourceNotFoundException",
        Some(&stream_not_found("nope")),
    );
}

#[tokio::test]
async fn tag_request_validation() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "valid", 1).await;
    let result = client
        .list_tags_for_stream()
        .stream_name("valid")
        .limit(51)
        .send()
        .await;
    let message = "1 validation error detected: Value '51' at 'limit' failed to satisfy \
                   constraint: Member must have value less than or equal to 50";
    expect_error(result, "ValidationException", Some(message));

    let long_key = "k".repeat(129);
    let result = client
        .remove_tags_from_stream()
        .stream_name("valid")
        .tag_keys("a")
        .tag_keys(&long_key)
        .send()
        .await;
    let message = format!(
        "1 validation error detected: Value '[a, {long_key}]' at 'tagKeys' failed to satisfy \
         constraint: Member must satisfy constraint: [Member must have length less than or \
         equal to 128, Member must have length greater than or equal to 1]"
    );
    expect_error(result, "ValidationException", Some(&message));

    let long_value = "v".repeat(257);
    let result = client
        .add_tags_to_stream()
        .stream_name("valid")
        .tags("c", &long_value)
        .send()
        .await;
    let message = format!(
        "1 validation error detected: Value '{{c={long_value}}}' at 'tags' failed to satisfy \
         constraint: Map value must satisfy constraint: [Member must have length less than or \
         equal to 256, Member must have length greater than or equal to 0]"
    );
    expect_error(result, "ValidationException", Some(&message));
    assert!(all_tags(&client, "valid").await.is_empty());
}

/// A channel ARN is a ResourceARN (the model's pattern names `channel/`): TagResource,
/// UntagResource and ListTagsForResource work on the tags CreateChannel set, and DescribeLimits
/// counts the account's channels.
#[tokio::test]
async fn channels_are_tagged_by_arn_and_counted_by_describe_limits() {
    use aws_sdk_kinesis::types::{
        ChannelStreamConfiguration, RecordConfiguration, RecordFormatType, S3CompressionType,
        S3DestinationConfiguration, S3StorageConfiguration, StreamMode, StreamModeDetails,
    };
    let server = Server::in_memory_limits(Limits::Off);
    let client = server.client();
    let limits = client.describe_limits().send().await.unwrap();
    assert_eq!(limits.channel_count(), Some(0));
    client
        .create_stream()
        .stream_name("source")
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let created = client
        .create_channel()
        .channel_name("to-s3")
        .service_execution_role_arn(format!("arn:aws:iam::{ACCOUNT}:role/channels"))
        .stream_configuration_list(
            ChannelStreamConfiguration::builder()
                .stream_arn(stream_arn("source"))
                .record_configuration(
                    RecordConfiguration::builder()
                        .record_format_type(RecordFormatType::Json)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .s3_destination_configuration(
            S3DestinationConfiguration::builder()
                .storage_configuration(
                    S3StorageConfiguration::builder()
                        .bucket_arn("arn:aws:s3:::lake")
                        .expected_bucket_owner(ACCOUNT)
                        .compression_type(S3CompressionType::Gzip)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .tags("team", "data")
        .send()
        .await
        .unwrap();
    let arn = created
        .channel_description()
        .unwrap()
        .channel_arn()
        .to_owned();
    let channel_tags = || async {
        let output = client
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .unwrap_or_else(|error| panic!("ListTagsForResource {arn}: {error:?}"));
        pairs(output.tags())
    };
    assert_eq!(channel_tags().await, owned(&[("team", "data")]));
    client
        .tag_resource()
        .resource_arn(&arn)
        .tags("team", "platform")
        .tags("cost", "42")
        .send()
        .await
        .unwrap();
    assert_eq!(
        channel_tags().await,
        owned(&[("cost", "42"), ("team", "platform")])
    );
    client
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("team")
        .tag_keys("absent")
        .send()
        .await
        .unwrap();
    assert_eq!(channel_tags().await, owned(&[("cost", "42")]));
    assert!(
        resource_tags(&client, "source").await.is_empty(),
        "the stream's tags are its own"
    );
    let too_many = (0..50).fold(client.tag_resource().resource_arn(&arn), |request, n| {
        request.tags(format!("k{n}"), "v")
    });
    expect_error(too_many.send().await, "InvalidArgumentException", None);
    let missing = format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:channel/nothing");
    expect_error(
        client
            .list_tags_for_resource()
            .resource_arn(&missing)
            .send()
            .await,
        "ResourceNotFoundException",
        Some(&format!("Channel {missing} not found.")),
    );
    let limits = client.describe_limits().send().await.unwrap();
    assert_eq!(limits.channel_count(), Some(1));
    assert_eq!(
        limits.channel_count_limit(),
        None,
        "riffle enforces no account-wide channel quota, so it claims none"
    );
}

/// An enhanced fan-out consumer's ARN is a ResourceARN too (the model's TagResource: "a data
/// stream, a queue, or an enhanced fan-out consumer"): the tags RegisterStreamConsumer set are
/// listed, added to, replaced and removed by ARN, kept apart from the stream's, limited to
/// 50, and gone with the consumer.
#[tokio::test]
async fn consumers_are_tagged_by_arn() {
    let server = Server::in_memory_limits(Limits::Off);
    let client = server.client();
    client
        .create_stream()
        .stream_name("fanned")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    let consumer = client
        .register_stream_consumer()
        .stream_arn(stream_arn("fanned"))
        .consumer_name("reader")
        .tags("team", "data")
        .send()
        .await
        .unwrap()
        .consumer
        .unwrap();
    let arn = consumer.consumer_arn;
    let consumer_tags = || async {
        let output = client
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .unwrap_or_else(|error| panic!("ListTagsForResource {arn}: {error:?}"));
        pairs(output.tags())
    };
    assert_eq!(consumer_tags().await, owned(&[("team", "data")]));
    client
        .tag_resource()
        .resource_arn(&arn)
        .tags("team", "platform")
        .tags("cost", "42")
        .send()
        .await
        .unwrap();
    assert_eq!(
        consumer_tags().await,
        owned(&[("cost", "42"), ("team", "platform")])
    );
    client
        .untag_resource()
        .resource_arn(&arn)
        .tag_keys("team")
        .tag_keys("absent")
        .send()
        .await
        .unwrap();
    assert_eq!(consumer_tags().await, owned(&[("cost", "42")]));
    assert!(
        resource_tags(&client, "fanned").await.is_empty(),
        "the stream's tags are its own"
    );
    let too_many = (0..50).fold(client.tag_resource().resource_arn(&arn), |request, n| {
        request.tags(format!("k{n}"), "v")
    });
    expect_error(
        too_many.send().await,
        "InvalidArgumentException",
        Some(&format!(
            "Failed to add tags to consumer reader of stream fanned under account {ACCOUNT} \
             because a given consumer cannot have more than 50 tags associated with it."
        )),
    );
    assert_eq!(consumer_tags().await, owned(&[("cost", "42")]));

    client
        .deregister_stream_consumer()
        .consumer_arn(&arn)
        .send()
        .await
        .unwrap();
    // Deregistering takes a moment (DELETING); once gone, its ARN names nothing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match client
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
        {
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                break
            }
            Ok(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => panic!("a deregistered consumer's tags: {other:?}"),
        }
    }
}
