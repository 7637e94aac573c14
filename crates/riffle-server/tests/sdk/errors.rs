//! Cross-cutting error behaviour: every stream-addressed operation reports a missing stream
//! the same way, and responses carry request ids that SDKs surface.

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::operation::RequestId;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};

use crate::common::*;

/// Asserts a ResourceNotFoundException with AWS's text for stream `missing`.
macro_rules! assert_not_found {
    ($call:expr, $missing:expr) => {{
        let result = $call.send().await;
        let error = expect_error(
            result,
            "ResourceNotFoundException",
            Some(&stream_not_found($missing)),
        );
        assert!(error.is_resource_not_found_exception(), "{error:?}");
        assert!(
            error.request_id().is_some(),
            "error responses carry x-amzn-RequestId"
        );
    }};
}

#[tokio::test]
async fn every_stream_operation_reports_a_missing_stream() {
    let server = Server::in_memory();
    let client = server.client();
    // Another stream exists, so "not found" cannot be an empty-server shortcut.
    create_stream(&client, "present", 1).await;
    let m = "missing";
    assert_not_found!(client.describe_stream().stream_name(m), m);
    assert_not_found!(client.describe_stream_summary().stream_name(m), m);
    assert_not_found!(client.delete_stream().stream_name(m), m);
    assert_not_found!(client.list_shards().stream_name(m), m);
    assert_not_found!(
        client
            .put_record()
            .stream_name(m)
            .partition_key("k")
            .data(Blob::new("x")),
        m
    );
    assert_not_found!(
        client.put_records().stream_name(m).records(
            PutRecordsRequestEntry::builder()
                .partition_key("k")
                .data(Blob::new("x"))
                .build()
                .unwrap()
        ),
        m
    );
    let result = client
        .get_shard_iterator()
        .stream_name(m)
        .shard_id(shard_id(0))
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await;
    let error = expect_error(result, "ResourceNotFoundException", None);
    assert!(error.is_resource_not_found_exception());
    assert_iterator_stream_not_found(&error, m);
    assert_not_found!(
        client
            .increase_stream_retention_period()
            .stream_name(m)
            .retention_period_hours(48),
        m
    );
    assert_not_found!(
        client
            .decrease_stream_retention_period()
            .stream_name(m)
            .retention_period_hours(24),
        m
    );
    assert_not_found!(client.add_tags_to_stream().stream_name(m).tags("k", "v"), m);
    assert_not_found!(
        client
            .remove_tags_from_stream()
            .stream_name(m)
            .tag_keys("k"),
        m
    );
    assert_not_found!(client.list_tags_for_stream().stream_name(m), m);
    // The same through the ARN.
    let arn = stream_arn(m);
    assert_not_found!(client.describe_stream_summary().stream_arn(&arn), m);
    assert_not_found!(client.delete_stream().stream_arn(&arn), m);
    assert_not_found!(client.list_shards().stream_arn(&arn), m);
    assert_not_found!(client.list_tags_for_stream().stream_arn(&arn), m);
}

#[tokio::test]
async fn successful_responses_carry_request_ids() {
    let server = Server::in_memory();
    let client = server.client();
    let created = client
        .create_stream()
        .stream_name("ids")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    let listed = client.list_streams().send().await.unwrap();
    let put = client
        .put_record()
        .stream_name("ids")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap();
    let ids = [created.request_id(), listed.request_id(), put.request_id()];
    assert!(ids.iter().all(Option::is_some), "{ids:?}");
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2],
        "request ids are unique: {ids:?}"
    );
}

/// AWS's answer to a request that failed inside the service.
const INTERNAL_FAILURE_BODY: &str = r#"{"__type":"InternalFailure","message":"The request processing has failed because of an unknown error, exception or failure."}"#;

/// A failure inside the server (here: the data directory's `streams/` turned into a file under
/// it) reaches the client as AWS's generic InternalFailure, a 500 without the server's file
/// paths or OS errors, and the log in full, with the request id the client was given.
#[tokio::test]
async fn internal_failures_tell_the_log_everything_and_the_client_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let data_arg = data_dir.to_str().expect("temp dir path is UTF-8");
    let server = Server::with_log_filter(&["--data-dir", data_arg], "info");
    let client = server.client();
    create_stream(&client, "before", 1).await;
    std::fs::rename(data_dir.join("streams"), dir.path().join("streams-aside"))
        .expect("move streams/ aside");
    std::fs::write(data_dir.join("streams"), b"not a directory").expect("a file in its place");

    let result = client
        .create_stream()
        .stream_name("after")
        .shard_count(1)
        .send()
        .await;
    let (error, status) = service_error(result);
    assert_eq!(
        (status, error.code()),
        (500, Some("InternalFailure")),
        "{error:?}"
    );
    assert_eq!(
        error.message(),
        Some(
            "The request processing has failed because of an unknown error, exception or failure."
        ),
        "{error:?}"
    );
    let sdk_request_id = error.request_id().expect("a request id").to_owned();

    let response = crate::raw_http::call(
        server.addr,
        "CreateStream",
        br#"{"StreamName":"raw","ShardCount":1}"#,
    );
    assert_eq!(response.status, 500);
    assert_eq!(
        String::from_utf8_lossy(&response.body),
        INTERNAL_FAILURE_BODY,
        "the body names nothing of the server"
    );
    let raw_request_id = response
        .header("x-amzn-requestid")
        .expect("a request id")
        .to_owned();

    // The log has each failure in full (the path), under the id the client was given.
    let data_path = data_dir.display().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let log = server.log_tail();
        let logged = |id: &str| {
            log.lines()
                .any(|line| line.contains(id) && line.contains(&data_path))
        };
        if logged(&sdk_request_id) && logged(&raw_request_id) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no log line with the request ids {sdk_request_id}, {raw_request_id} and the \
             path {data_path}:\n{log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The server keeps serving what does not need the broken directory.
    client
        .describe_stream_summary()
        .stream_name("before")
        .send()
        .await
        .expect("the server still answers");
}
