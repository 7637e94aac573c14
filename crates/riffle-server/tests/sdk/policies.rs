//! Resource policies (issue 5, item 2): PutResourcePolicy, GetResourcePolicy and
//! DeleteResourcePolicy on streams and consumers, and their enforcement across accounts.
//!
//! Two accounts are two access key ids (a 12-digit key id names its account when no
//! credentials file is configured). Account A owns the stream; B is denied, then allowed by a
//! policy naming B, then denied again by an explicit Deny; A itself is stopped only by an
//! explicit Deny, and can always manage the policy.

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{ShardIteratorType, StartingPosition};
use aws_sdk_kinesis::Client;

use crate::common::*;

const OWNER: &str = "111111111111";
const OTHER: &str = "222222222222";
const ACCESS_DENIED: &str = "AccessDeniedException";

fn arn_of(account: &str, stream: &str) -> String {
    format!("arn:aws:kinesis:{REGION}:{account}:stream/{stream}")
}

fn denied_no_allow(account: &str, action: &str, arn: &str) -> String {
    format!(
        "User: arn:aws:iam::{account}:root is not authorized to perform: kinesis:{action} on \
         resource: {arn} because no resource-based policy allows the kinesis:{action} action"
    )
}

fn denied_explicitly(account: &str, action: &str, arn: &str) -> String {
    format!(
        "User: arn:aws:iam::{account}:root is not authorized to perform: kinesis:{action} on \
         resource: {arn} with an explicit deny in a resource-based policy"
    )
}

fn assert_denied<T: std::fmt::Debug, E: std::fmt::Debug + ProvideErrorMetadata>(
    result: Result<T, aws_sdk_kinesis::error::SdkError<E>>,
    message: &str,
) {
    expect_error(result, ACCESS_DENIED, Some(message));
}

async fn put(client: &Client, arn: &str, key: &str) -> Result<String, String> {
    client
        .put_record()
        .stream_arn(arn)
        .partition_key(key)
        .data(Blob::new(key.as_bytes().to_vec()))
        .send()
        .await
        .map(|output| output.sequence_number().to_owned())
        .map_err(|error| format!("{:?}", error.code()))
}

async fn read_all(client: &Client, arn: &str) -> Vec<String> {
    let iterator = client
        .get_shard_iterator()
        .stream_arn(arn)
        .shard_id(shard_id(0))
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("GetShardIterator")
        .shard_iterator()
        .unwrap()
        .to_owned();
    let page = client
        .get_records()
        .stream_arn(arn)
        .shard_iterator(iterator)
        .send()
        .await
        .expect("GetRecords");
    page.records()
        .iter()
        .map(|record| record.partition_key().unwrap_or_default().to_owned())
        .collect::<Vec<String>>()
}

#[tokio::test]
async fn another_account_is_denied_then_allowed_then_denied_again() {
    let server = Server::in_memory_limits(Limits::Off);
    let owner = server.client_with_key(OWNER);
    let other = server.client_with_key(OTHER);
    create_stream(&owner, "shared", 1).await;
    let arn = arn_of(OWNER, "shared");

    // No policy: GetResourcePolicy shows an empty document; B is refused every operation.
    let policy = owner
        .get_resource_policy()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(policy.policy(), "{}");
    assert_denied(
        other
            .describe_stream_summary()
            .stream_arn(&arn)
            .send()
            .await,
        &denied_no_allow(OTHER, "DescribeStreamSummary", &arn),
    );
    assert_denied(
        other
            .put_record()
            .stream_arn(&arn)
            .partition_key("b-1")
            .data(Blob::new(b"b-1".to_vec()))
            .send()
            .await,
        &denied_no_allow(OTHER, "PutRecord", &arn),
    );
    // By name, B only ever sees its own account: no such stream there.
    expect_error(
        other
            .describe_stream_summary()
            .stream_name("shared")
            .send()
            .await,
        "ResourceNotFoundException",
        Some(&format!("Stream shared under account {OTHER} not found.")),
    );

    // A policy allowing B to describe, write and read.
    let allow = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"b-rw","Effect":"Allow",
            "Principal":{{"AWS":"arn:aws:iam::{OTHER}:root"}},
            "Action":["kinesis:DescribeStreamSummary","kinesis:PutRecord",
                      "kinesis:GetShardIterator","kinesis:GetRecords"],
            "Resource":"{arn}"}}]}}"#
    );
    owner
        .put_resource_policy()
        .resource_arn(&arn)
        .policy(&allow)
        .send()
        .await
        .expect("PutResourcePolicy");
    let stored = owner
        .get_resource_policy()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(stored.policy(), allow);
    let summary = other
        .describe_stream_summary()
        .stream_arn(&arn)
        .send()
        .await
        .expect("B may describe now");
    assert_eq!(
        summary.stream_description_summary().unwrap().stream_arn(),
        arn
    );
    put(&other, &arn, "b-2").await.expect("B may write now");
    assert_eq!(read_all(&other, &arn).await, vec!["b-2"]);
    // Actions the policy does not name stay refused.
    assert_denied(
        other.delete_stream().stream_arn(&arn).send().await,
        &denied_no_allow(OTHER, "DeleteStream", &arn),
    );
    assert_denied(
        other.list_shards().stream_arn(&arn).send().await,
        &denied_no_allow(OTHER, "ListShards", &arn),
    );

    // An explicit Deny of writes wins over the Allow, for B and for the owner alike.
    let with_deny = allow.replacen(
        "]}",
        r#",{"Effect":"Deny","Principal":"*","Action":"kinesis:Put*"}]}"#,
        1,
    );
    assert!(with_deny.contains("Deny"));
    owner
        .put_resource_policy()
        .resource_arn(&arn)
        .policy(&with_deny)
        .send()
        .await
        .expect("PutResourcePolicy with a Deny");
    assert_denied(
        other
            .put_record()
            .stream_arn(&arn)
            .partition_key("b-3")
            .data(Blob::new(b"b-3".to_vec()))
            .send()
            .await,
        &denied_explicitly(OTHER, "PutRecord", &arn),
    );
    assert_denied(
        owner
            .put_record()
            .stream_name("shared")
            .partition_key("a-1")
            .data(Blob::new(b"a-1".to_vec()))
            .send()
            .await,
        &denied_explicitly(OWNER, "PutRecord", &arn),
    );
    // Nothing refused was written; B still reads what the Allow lets it read.
    assert_eq!(read_all(&other, &arn).await, vec!["b-2"]);

    // The owner can always take the policy back; then B is refused again and A writes.
    owner
        .delete_resource_policy()
        .resource_arn(&arn)
        .send()
        .await
        .expect("DeleteResourcePolicy");
    assert_denied(
        other
            .describe_stream_summary()
            .stream_arn(&arn)
            .send()
            .await,
        &denied_no_allow(OTHER, "DescribeStreamSummary", &arn),
    );
    put(&owner, &arn, "a-2")
        .await
        .expect("the owner writes again");
    assert_eq!(read_all(&owner, &arn).await, vec!["b-2", "a-2"]);
}

#[tokio::test]
async fn a_consumer_policy_lets_another_account_subscribe() {
    let server = Server::in_memory_limits(Limits::Off);
    let owner = server.client_with_key(OWNER);
    let other = server.client_with_key(OTHER);
    create_stream(&owner, "fanout", 1).await;
    let arn = arn_of(OWNER, "fanout");
    let consumer_arn = owner
        .register_stream_consumer()
        .stream_arn(&arn)
        .consumer_name("partner")
        .send()
        .await
        .expect("RegisterStreamConsumer")
        .consumer()
        .unwrap()
        .consumer_arn()
        .to_owned();
    put(&owner, &arn, "k1").await.unwrap();
    let subscribe = |client: Client| {
        let consumer_arn = consumer_arn.clone();
        async move {
            client
                .subscribe_to_shard()
                .consumer_arn(consumer_arn)
                .shard_id(shard_id(0))
                .starting_position(
                    StartingPosition::builder()
                        .r#type(ShardIteratorType::TrimHorizon)
                        .build()
                        .unwrap(),
                )
                .send()
                .await
        }
    };
    assert_denied(
        subscribe(other.clone()).await,
        &denied_no_allow(OTHER, "SubscribeToShard", &consumer_arn),
    );
    let allow = format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Principal":{{"AWS":"{OTHER}"}},
            "Action":["kinesis:SubscribeToShard","kinesis:DescribeStreamConsumer"]}}}}"#
    );
    owner
        .put_resource_policy()
        .resource_arn(&consumer_arn)
        .policy(&allow)
        .send()
        .await
        .expect("PutResourcePolicy on the consumer");
    assert_eq!(
        owner
            .get_resource_policy()
            .resource_arn(&consumer_arn)
            .send()
            .await
            .unwrap()
            .policy(),
        allow
    );
    let described = other
        .describe_stream_consumer()
        .consumer_arn(&consumer_arn)
        .send()
        .await
        .expect("B may describe the consumer");
    assert_eq!(
        described.consumer_description().unwrap().consumer_name(),
        "partner"
    );
    let mut events = subscribe(other.clone())
        .await
        .expect("B may subscribe")
        .event_stream;
    let mut keys = Vec::new();
    while keys.is_empty() {
        match events.recv().await.expect("an event") {
            Some(aws_sdk_kinesis::types::SubscribeToShardEventStream::SubscribeToShardEvent(
                event,
            )) => keys.extend(
                event
                    .records()
                    .iter()
                    .map(|r| r.partition_key().unwrap_or_default().to_owned()),
            ),
            Some(_) => {}
            None => panic!("the subscription ended before any record"),
        }
    }
    assert_eq!(keys, vec!["k1"]);
    // The consumer's policy does not open the stream itself.
    assert_denied(
        other
            .describe_stream_summary()
            .stream_arn(&arn)
            .send()
            .await,
        &denied_no_allow(OTHER, "DescribeStreamSummary", &arn),
    );
}

#[tokio::test]
async fn policies_are_validated_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::on_data_dir_limits(dir.path(), Limits::Off);
    let owner = server.client_with_key(OWNER);
    create_stream(&owner, "kept", 1).await;
    let arn = arn_of(OWNER, "kept");
    for (policy, why) in [
        ("not json", "not valid JSON"),
        (r#"{"Statement":[]}"#, "at least one statement"),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}}"#,
            "not a Kinesis action",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"nobody"},"Action":"kinesis:*"}}"#,
            "neither an account id nor an IAM ARN",
        ),
    ] {
        let error = expect_error(
            owner
                .put_resource_policy()
                .resource_arn(&arn)
                .policy(policy)
                .send()
                .await,
            "InvalidArgumentException",
            None,
        );
        let message = error.message().unwrap_or_default();
        assert!(
            message.starts_with("Invalid resource policy: ") && message.contains(why),
            "{policy}: {message}"
        );
    }
    expect_error(
        owner
            .get_resource_policy()
            .resource_arn(arn_of(OWNER, "nowhere"))
            .send()
            .await,
        "ResourceNotFoundException",
        Some(&format!("Stream nowhere under account {OWNER} not found.")),
    );
    let allow = format!(
        r#"{{"Statement":{{"Effect":"Allow","Principal":{{"AWS":"{OTHER}"}},"Action":"kinesis:Describe*"}}}}"#
    );
    owner
        .put_resource_policy()
        .resource_arn(&arn)
        .policy(&allow)
        .send()
        .await
        .unwrap();
    server.kill();

    let server = Server::on_data_dir_limits(dir.path(), Limits::Off);
    let owner = server.client_with_key(OWNER);
    let other = server.client_with_key(OTHER);
    assert_eq!(
        owner
            .get_resource_policy()
            .resource_arn(&arn)
            .send()
            .await
            .unwrap()
            .policy(),
        allow
    );
    other
        .describe_stream_summary()
        .stream_arn(&arn)
        .send()
        .await
        .expect("the policy still applies after a restart");
}

/// AWS answers DeleteResourcePolicy on a stream or consumer without a policy with
/// ResourceNotFoundException (LocalStack's suite, recorded against AWS, expects an error there;
/// the text is LocalStack's), also right after a policy was deleted.
#[tokio::test]
async fn deleting_a_policy_that_is_not_there_is_not_found() {
    let server = Server::in_memory_limits(Limits::Off);
    let owner = server.client_with_key(OWNER);
    create_stream(&owner, "bare", 1).await;
    let arn = arn_of(OWNER, "bare");
    let no_policy = |arn: &str| format!("No resource policy found for resource ARN {arn}");
    let result = owner
        .delete_resource_policy()
        .resource_arn(&arn)
        .send()
        .await;
    expect_error(result, "ResourceNotFoundException", Some(&no_policy(&arn)));

    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{OTHER}:root"}},"Action":"kinesis:DescribeStreamSummary","Resource":"{arn}"}}]}}"#
    );
    owner
        .put_resource_policy()
        .resource_arn(&arn)
        .policy(&policy)
        .send()
        .await
        .expect("PutResourcePolicy");
    owner
        .delete_resource_policy()
        .resource_arn(&arn)
        .send()
        .await
        .expect("the first DeleteResourcePolicy deletes it");
    let again = owner
        .delete_resource_policy()
        .resource_arn(&arn)
        .send()
        .await;
    expect_error(again, "ResourceNotFoundException", Some(&no_policy(&arn)));

    // A consumer without a policy, likewise.
    let consumer_arn = owner
        .register_stream_consumer()
        .stream_arn(&arn)
        .consumer_name("plain")
        .send()
        .await
        .expect("RegisterStreamConsumer")
        .consumer()
        .expect("Consumer")
        .consumer_arn()
        .to_owned();
    let result = owner
        .delete_resource_policy()
        .resource_arn(&consumer_arn)
        .send()
        .await;
    expect_error(
        result,
        "ResourceNotFoundException",
        Some(&no_policy(&consumer_arn)),
    );
    // The refusals changed nothing: the stream still reads as having no policy.
    let stored = owner
        .get_resource_policy()
        .resource_arn(&arn)
        .send()
        .await
        .expect("GetResourcePolicy");
    assert_eq!(stored.policy(), "{}");
}
