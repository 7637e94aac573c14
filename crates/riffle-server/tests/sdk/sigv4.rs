//! SigV4 verification (`serve --credentials FILE`) through the real `aws-sdk-kinesis`, and raw
//! requests signed by AWS's own `aws-sigv4` crate at chosen times (kinesis-api.md §1.5, §5).
//!
//! The server here knows two keys of two accounts. Configured keys work for the control plane,
//! the data plane and SubscribeToShard, over HTTP/1.1 and HTTP/2 (where the host is signed as
//! `:authority`); everything else gets AWS's error — wrong secret, unknown key, no signature, a
//! malformed header, a date outside the 5-minute skew, a body changed after signing, a request
//! replayed too late — and writes nothing, which each test checks by reading the stream with a
//! good key. The two accounts cannot see each other's streams, by name or by ARN, in any
//! operation family. Without a credentials file the server refuses a non-loopback address
//! unless `--allow-anonymous` is given.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{ShardIteratorType, StartingPosition, SubscribeToShardEventStream};
use aws_sdk_kinesis::Client;
use serde_json::Value;

use crate::common::*;
use crate::raw_http::exchange;

const ALICE_KEY: &str = "AKIDALICE";
const ALICE_SECRET: &str = "alice/secret+value";
const ALICE_ACCOUNT: &str = "111111111111";
const BOB_KEY: &str = "AKIDBOB";
const BOB_SECRET: &str = "bob-secret";
const BOB_ACCOUNT: &str = "222222222222";
const INVALID_SIGNATURE: &str = "The request signature we calculated does not match the \
     signature you provided. Check your AWS Secret Access Key and signing method. Consult the \
     service documentation for details.";
const UNRECOGNIZED_CLIENT: &str = "The security token included in the request is invalid.";
/// Kinesis's clock-skew window.
const SKEW: Duration = Duration::from_secs(5 * 60);
/// How far inside or outside the window the tests sign: a minute of margin either way, so a
/// slow machine cannot move a request across the boundary.
const MARGIN: Duration = Duration::from_secs(60);
/// How long a refused start may take before the test calls the server hung.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(30);

/// A credentials file with Alice (named principal) and Bob (account root), mode 600.
fn credentials_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("credentials");
    std::fs::write(
        &path,
        format!(
            "# riffle test keys\n\
             {ALICE_KEY}  {ALICE_SECRET}  {ALICE_ACCOUNT}  alice\n\
             \n\
             {BOB_KEY}\t{BOB_SECRET}\t{BOB_ACCOUNT}\n"
        ),
    )
    .expect("write the credentials file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    }
    (dir, path)
}

/// A server requiring signatures by Alice's and Bob's keys, without throughput limits.
fn signed_server(credentials: &Path) -> Server {
    Server::with_credentials(
        credentials,
        &["--limits", "off", "--subscription-keep-alive-ms", "200"],
    )
}

fn alice(server: &Server) -> Client {
    server.client_with_secret(ALICE_KEY, ALICE_SECRET)
}

fn bob(server: &Server) -> Client {
    server.client_with_secret(BOB_KEY, BOB_SECRET)
}

fn arn_of(account: &str, stream: &str) -> String {
    format!("arn:aws:kinesis:{REGION}:{account}:stream/{stream}")
}

/// Every record of shard 0, read with a good key.
async fn records_of(client: &Client, stream: &str) -> Vec<String> {
    read_shard(client, stream, &shard_id(0))
        .await
        .iter()
        .map(|record| record.partition_key().unwrap_or_default().to_string())
        .collect()
}

async fn put(client: &Client, stream: &str, key: &str) {
    client
        .put_record()
        .stream_name(stream)
        .partition_key(key)
        .data(Blob::new(b"payload".to_vec()))
        .send()
        .await
        .unwrap_or_else(|error| panic!("PutRecord {stream} {key}: {error:?}"));
}

// ----- Raw requests signed by `aws-sigv4` -----

/// The bytes of an HTTP/1.1 Kinesis call signed with the given key at `signed_at`, in the
/// `Authorization` header.
fn signed_request(
    server: &Server,
    key: (&str, &str),
    operation: &str,
    body: &[u8],
    signed_at: SystemTime,
) -> Vec<u8> {
    signed_request_in(server, key, operation, body, signed_at, Signature::Header)
}

/// Where a raw request carries its signature.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Signature {
    /// `Authorization: AWS4-HMAC-SHA256 …` with `X-Amz-Date`, as every SDK signs.
    Header,
    /// Presigned: the `X-Amz-*` query parameters, valid for this long after signing.
    Query(Duration),
}

/// [`signed_request`] with the signature where `location` says.
fn signed_request_in(
    server: &Server,
    key: (&str, &str),
    operation: &str,
    body: &[u8],
    signed_at: SystemTime,
    location: Signature,
) -> Vec<u8> {
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{
        sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    };
    use aws_sigv4::sign::v4;

    let host = server.addr.to_string();
    let uri = format!("http://{host}/");
    let target = format!("Kinesis_20131202.{operation}");
    let headers = [
        ("host", host.as_str()),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target.as_str()),
    ];
    let mut settings = SigningSettings::default();
    if let Signature::Query(expires_in) = location {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires_in);
    }
    let identity = Credentials::new(key.0, key.1, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("kinesis")
        .time(signed_at)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let signable = SignableRequest::new(
        "POST",
        &uri,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .expect("signable request");
    let (instructions, _) = sign(signable, &params)
        .expect("sign the request")
        .into_parts();
    let mut request = http::Request::builder().method("POST").uri(&uri);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let mut request = request.body(()).expect("an HTTP request");
    instructions.apply_to_request_http1x(&mut request);

    let path_and_query = request
        .uri()
        .path_and_query()
        .expect("a path")
        .as_str()
        .to_string();
    if let Signature::Query(_) = location {
        assert!(
            path_and_query.contains("X-Amz-Signature=")
                && !request.headers().contains_key("authorization"),
            "presigned: {path_and_query}"
        );
    }
    let mut head = format!("POST {path_and_query} HTTP/1.1\r\n");
    for (name, value) in request.headers() {
        let value = value.to_str().expect("ASCII header");
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends raw bytes; the HTTP status, `__type` and message of the answer.
fn send_raw(server: &Server, bytes: &[u8]) -> (u16, String, String) {
    let response = exchange(server.addr, bytes).expect("the server answers");
    if response.body.is_empty() {
        return (response.status, String::new(), String::new());
    }
    let json: Value = serde_json::from_slice(&response.body).unwrap_or_else(|error| {
        panic!(
            "answer is not JSON ({error}): {:?}",
            String::from_utf8_lossy(&response.body)
        )
    });
    let field = |name: &str| json[name].as_str().unwrap_or_default().to_string();
    (response.status, field("__type"), field("message"))
}

fn put_record_body(stream: &str, partition_key: &str) -> Vec<u8> {
    format!(r#"{{"StreamName":"{stream}","PartitionKey":"{partition_key}","Data":"aGVsbG8="}}"#)
        .into_bytes()
}

/// `yyyyMMddTHHmmssZ` of a time, as the skew texts print it.
fn amz_date(time: SystemTime) -> String {
    let seconds = time.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    // Hinnant's civil_from_days, written out here so the test does not share the server's.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// Asserts AWS's skew text for a request signed at `signed_at`: `Signature expired: S is now
/// earlier than N-5 (N - 5 min.)` or `Signature not yet current: S is still later than N+5
/// (N + 5 min.)`, where N is the server's clock (not known exactly here, but consistent).
fn assert_skew_text(message: &str, signed_at: SystemTime, expired: bool) {
    let (prefix, relation, sign) = if expired {
        ("Signature expired: ", " is now earlier than ", " - 5 min.)")
    } else {
        (
            "Signature not yet current: ",
            " is still later than ",
            " + 5 min.)",
        )
    };
    let expected_start = format!("{prefix}{}{relation}", amz_date(signed_at));
    assert!(
        message.starts_with(&expected_start) && message.ends_with(sign),
        "skew text {message:?}, expected {expected_start}… (… {sign}"
    );
    let rest = &message[expected_start.len()..];
    // `BOUND (NOW ± 5 min.)`: two stamps of 16 characters.
    assert_eq!(rest.len(), 16 + 2 + 16 + sign.len(), "{message:?}");
}

// ----- Configured keys work -----

#[tokio::test]
async fn configured_keys_work_for_control_data_and_fan_out() {
    let (_dir, credentials) = credentials_file();
    let server = signed_server(&credentials);
    let client = alice(&server);

    create_stream(&client, "orders", 1).await;
    let summary = client
        .describe_stream_summary()
        .stream_name("orders")
        .send()
        .await
        .expect("DescribeStreamSummary")
        .stream_description_summary
        .expect("summary");
    // The stream belongs to the key's account; the ARN carries it and the server's region.
    assert_eq!(summary.stream_arn(), arn_of(ALICE_ACCOUNT, "orders"));
    let listed = client.list_streams().send().await.expect("ListStreams");
    assert_eq!(listed.stream_names(), ["orders"]);

    put(&client, "orders", "first").await;
    assert_eq!(records_of(&client, "orders").await, ["first"]);

    let consumer = client
        .register_stream_consumer()
        .stream_arn(summary.stream_arn())
        .consumer_name("billing")
        .send()
        .await
        .expect("RegisterStreamConsumer")
        .consumer
        .expect("consumer");
    let mut subscription = client
        .subscribe_to_shard()
        .consumer_arn(consumer.consumer_arn())
        .shard_id(shard_id(0))
        .starting_position(
            StartingPosition::builder()
                .r#type(ShardIteratorType::TrimHorizon)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("SubscribeToShard with a configured key");
    let event = tokio::time::timeout(Duration::from_secs(20), subscription.event_stream.recv())
        .await
        .expect("an event in time")
        .expect("a good event stream");
    match event {
        Some(SubscribeToShardEventStream::SubscribeToShardEvent(event)) => {
            let keys: Vec<&str> = event
                .records()
                .iter()
                .map(|record| record.partition_key().unwrap_or_default())
                .collect();
            assert_eq!(keys, ["first"], "{event:?}");
        }
        other => panic!("expected a SubscribeToShardEvent, got {other:?}"),
    }

    // SubscribeToShard is authenticated like every other call.
    let wrong = server.client_with_secret(ALICE_KEY, "not-alices-secret");
    let refused = wrong
        .subscribe_to_shard()
        .consumer_arn(consumer.consumer_arn())
        .shard_id(shard_id(0))
        .starting_position(
            StartingPosition::builder()
                .r#type(ShardIteratorType::Latest)
                .build()
                .unwrap(),
        )
        .send()
        .await;
    expect_error(
        refused,
        "InvalidSignatureException",
        Some(INVALID_SIGNATURE),
    );
}

#[tokio::test]
async fn configured_keys_work_over_http2_where_the_host_is_the_authority() {
    let (_dir, credentials) = credentials_file();
    let server = signed_server(&credentials);
    let h2c = crate::fanout::H2cClient::new();
    let client = Client::from_conf(
        server
            .config_with_secret(BOB_KEY, BOB_SECRET)
            .http_client(h2c.clone())
            .build(),
    );
    create_stream(&client, "h2", 1).await;
    put(&client, "h2", "over-h2").await;
    assert_eq!(records_of(&client, "h2").await, ["over-h2"]);

    // SubscribeToShard: the request is signed as any other (its event-stream answer is not).
    let stream_arn = arn_of(BOB_ACCOUNT, "h2");
    let consumer_arn = client
        .register_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_name("h2-reader")
        .send()
        .await
        .expect("RegisterStreamConsumer over HTTP/2")
        .consumer
        .expect("consumer")
        .consumer_arn;
    let trim_horizon = StartingPosition::builder()
        .r#type(ShardIteratorType::TrimHorizon)
        .build()
        .unwrap();
    let mut subscription = client
        .subscribe_to_shard()
        .consumer_arn(&consumer_arn)
        .shard_id(shard_id(0))
        .starting_position(trim_horizon.clone())
        .send()
        .await
        .expect("SubscribeToShard over HTTP/2 with a configured key");
    let event = tokio::time::timeout(Duration::from_secs(20), subscription.event_stream.recv())
        .await
        .expect("an event in time")
        .expect("a good event stream");
    match event {
        Some(SubscribeToShardEventStream::SubscribeToShardEvent(event)) => {
            let keys: Vec<&str> = event
                .records()
                .iter()
                .map(|record| record.partition_key().unwrap_or_default())
                .collect();
            assert_eq!(keys, ["over-h2"], "{event:?}");
        }
        other => panic!("expected a SubscribeToShardEvent, got {other:?}"),
    }
    drop(subscription);
    h2c.assert_all_http2();

    let wrong_h2c = crate::fanout::H2cClient::new();
    let wrong = Client::from_conf(
        server
            .config_with_secret(BOB_KEY, "wrong")
            .http_client(wrong_h2c.clone())
            .build(),
    );
    let refused = wrong.list_streams().send().await;
    expect_error(
        refused,
        "InvalidSignatureException",
        Some(INVALID_SIGNATURE),
    );
    let refused = wrong
        .subscribe_to_shard()
        .consumer_arn(&consumer_arn)
        .shard_id(shard_id(0))
        .starting_position(trim_horizon)
        .send()
        .await;
    expect_error(
        refused,
        "InvalidSignatureException",
        Some(INVALID_SIGNATURE),
    );
    let refused = wrong
        .put_record()
        .stream_name("h2")
        .partition_key("forged-over-h2")
        .data(Blob::new(b"x".to_vec()))
        .send()
        .await;
    expect_error(
        refused,
        "InvalidSignatureException",
        Some(INVALID_SIGNATURE),
    );
    wrong_h2c.assert_all_http2();
    assert_eq!(records_of(&client, "h2").await, ["over-h2"]);
}

#[tokio::test]
async fn presigned_query_requests_are_verified_like_signed_headers() {
    let (_dir, credentials) = credentials_file();
    let server = signed_server(&credentials);
    let client = alice(&server);
    create_stream(&client, "presigned", 1).await;
    let key = (ALICE_KEY, ALICE_SECRET);
    let body = put_record_body("presigned", "by-query");
    let five_minutes = Signature::Query(SKEW);
    let presign = |key: (&str, &str), signed_at: SystemTime| {
        signed_request_in(&server, key, "PutRecord", &body, signed_at, five_minutes)
    };

    let signed = presign(key, SystemTime::now());
    let (status, kind, message) = send_raw(&server, &signed);
    assert_eq!((status, kind.as_str()), (200, ""), "{message}");
    assert_eq!(records_of(&client, "presigned").await, ["by-query"]);

    // The query signature covers the body too.
    let at = signed.len() - body.len()
        + body
            .windows(8)
            .position(|window| window == b"by-query")
            .expect("the key in the body");
    let mut tampered = signed.clone();
    tampered[at] = b'B';
    let (status, kind, message) = send_raw(&server, &tampered);
    assert_eq!(
        (status, kind.as_str(), message.as_str()),
        (400, "InvalidSignatureException", INVALID_SIGNATURE)
    );

    // A wrong secret, an unknown key.
    let wrong = presign((ALICE_KEY, "not-alices-secret"), SystemTime::now());
    let (status, kind, message) = send_raw(&server, &wrong);
    assert_eq!(
        (status, kind.as_str(), message.as_str()),
        (400, "InvalidSignatureException", INVALID_SIGNATURE)
    );
    let unknown = presign(("AKIDNOBODY", ALICE_SECRET), SystemTime::now());
    let (status, kind, message) = send_raw(&server, &unknown);
    assert_eq!(
        (status, kind.as_str(), message.as_str()),
        (400, "UnrecognizedClientException", UNRECOGNIZED_CLIENT)
    );

    // Past X-Amz-Expires: signed 10 minutes ago for 5 minutes.
    let stale = presign(key, SystemTime::now() - 2 * SKEW);
    let (status, kind, message) = send_raw(&server, &stale);
    assert_eq!((status, kind.as_str()), (400, "InvalidSignatureException"));
    assert!(
        message.starts_with("Signature expired: ") && message.ends_with(" sec. of X-Amz-Expires)"),
        "{message}"
    );

    // Both forms at once.
    let mut both = signed.clone();
    let line_end = both
        .windows(2)
        .position(|window| window == b"\r\n")
        .expect("a request line")
        + 2;
    let header = format!(
        "Authorization: AWS4-HMAC-SHA256 Credential={ALICE_KEY}/20250101/{REGION}/kinesis/\
         aws4_request, SignedHeaders=host, Signature={}\r\n",
        "0".repeat(64)
    );
    both.splice(line_end..line_end, header.into_bytes());
    let (status, kind, message) = send_raw(&server, &both);
    assert_eq!(
        (status, kind.as_str(), message.as_str()),
        (
            400,
            "InvalidSignatureException",
            "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP \
             header."
        )
    );

    // A query missing parts.
    let partial = format!(
        "POST /?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20250101T000000Z HTTP/1.1\r\n\
         Host: {}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: Kinesis_20131202.PutRecord\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        server.addr,
        body.len()
    );
    let mut partial = partial.into_bytes();
    partial.extend_from_slice(&body);
    let (status, kind, message) = send_raw(&server, &partial);
    assert_eq!(
        (status, kind.as_str(), message.as_str()),
        (
            400,
            "IncompleteSignatureException",
            "AWS query-string parameters must include 'X-Amz-Credential'. AWS query-string \
             parameters must include 'X-Amz-Signature'. AWS query-string parameters must \
             include 'X-Amz-SignedHeaders'. Re-examine the query-string parameters."
        )
    );

    assert_eq!(records_of(&client, "presigned").await, ["by-query"]);
}

// ----- Wrong keys, no keys, malformed keys -----

#[tokio::test]
async fn a_wrong_secret_or_an_unknown_key_is_refused_and_writes_nothing() {
    let (_dir, credentials) = credentials_file();
    let server = signed_server(&credentials);
    let client = alice(&server);
    create_stream(&client, "guarded", 1).await;

    let wrong_secret = server.client_with_secret(ALICE_KEY, "not-alices-secret");
    let result = wrong_secret
        .put_record()
        .stream_name("guarded")
        .partition_key("forged")
        .data(Blob::new(b"x".to_vec()))
        .send()
        .await;
    expect_error(result, "InvalidSignatureException", Some(INVALID_SIGNATURE));
    let result = wrong_secret
        .create_stream()
        .stream_name("forged")
        .shard_count(1)
        .send()
        .await;
    expect_error(result, "InvalidSignatureException", Some(INVALID_SIGNATURE));

    let unknown = server.client_with_secret("AKIDNOBODY", ALICE_SECRET);
    let result = unknown
        .put_record()
        .stream_name("guarded")
        .partition_key("unknown")
        .data(Blob::new(b"x".to_vec()))
        .send()
        .await;
    expect_error(
        result,
        "UnrecognizedClientException",
        Some(UNRECOGNIZED_CLIENT),
    );
    // Without a credentials file a 12-digit key id names an account; with one it is just an
    // unknown key.
    let by_account_id = server.client_with_secret(ALICE_ACCOUNT, ALICE_SECRET);
    let result = by_account_id.list_streams().send().await;
    expect_error(
        result,
        "UnrecognizedClientException",
        Some(UNRECOGNIZED_CLIENT),
    );

    assert!(records_of(&client, "guarded").await.is_empty());
    let listed = client.list_streams().send().await.unwrap();
    assert_eq!(listed.stream_names(), ["guarded"], "no stream was created");
}

#[tokio::test]
async fn unsigned_and_malformed_requests_get_aws_errors_in_their_wire_format() {
    let (_dir, credentials) = credentials_file();
    let server = signed_server(&credentials);
    let client = alice(&server);
    create_stream(&client, "raw", 1).await;
    let body = put_record_body("raw", "unsigned");
    let head = |extra: &str| {
        let mut bytes = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-amz-json-1.1\r\n\
             X-Amz-Target: Kinesis_20131202.PutRecord\r\n{extra}Content-Length: {}\r\n\
             Connection: close\r\n\r\n",
            server.addr,
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(&body);
        bytes
    };

    let (status, kind, message) = send_raw(&server, &head(""));
    assert_eq!(
        (status, kind.as_str(), message.as_str()),
        (
            400,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token"
        )
    );

    let authorization =
        format!("AWS4-HMAC-SHA256 Credential={ALICE_KEY}/20250101/us-east-1/kinesis/aws4_request");
    let (status, kind, message) = send_raw(
        &server,
        &head(&format!("Authorization: {authorization}\r\n")),
    );
    assert_eq!(status, 400);
    assert_eq!(kind, "IncompleteSignatureException");
    assert_eq!(
        message,
        format!(
            "Authorization header requires 'Signature' parameter. Authorization header requires \
             'SignedHeaders' parameter. Authorization header requires existence of either a \
             'X-Amz-Date' or a 'Date' header. Authorization={authorization}"
        )
    );

    let (status, kind, message) = send_raw(&server, &head("Authorization: Bearer token\r\n"));
    assert_eq!(
        (status, kind.as_str()),
        (400, "IncompleteSignatureException")
    );
    assert_eq!(
        message,
        "'token' not a valid key=value pair (missing equal-sign) in Authorization header: \
         'Bearer token'."
    );

    // A CBOR client gets its refusal in CBOR.
    let mut cbor = b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-amz-cbor-1.1\r\n\
        X-Amz-Target: Kinesis_20131202.ListStreams\r\nContent-Length: 1\r\nConnection: close\r\n\r\n"
        .to_vec();
    cbor.push(0xa0);
    let response = exchange(server.addr, &cbor).expect("an answer");
    assert_eq!(response.status, 400);
    assert_eq!(
        response.header("content-type"),
        Some("application/x-amz-cbor-1.1")
    );
    let needle = b"MissingAuthenticationTokenException";
    assert!(
        response
            .body
            .windows(needle.len())
            .any(|window| window == needle),
        "{:?}",
        response.body
    );

    assert!(records_of(&client, "raw").await.is_empty());
}

// ----- Time -----

/// A clock stuck at one instant, for the SDK's signer.
#[derive(Debug)]
struct FixedClock(SystemTime);

impl aws_smithy_async::time::TimeSource for FixedClock {
    fn now(&self) -> SystemTime {
        self.0
    }
}

#[tokio::test]
async fn dates_outside_the_clock_skew_get_the_skew_texts() {
    let (_dir, credentials) = credentials_file();
    let server = signed_server(&credentials);
    let client = alice(&server);
    create_stream(&client, "clock", 1).await;

    for expired in [true, false] {
        let now = SystemTime::now();
        let signed_at = if expired {
            now - SKEW - MARGIN
        } else {
            now + SKEW + MARGIN
        };
        let skewed = Client::from_conf(
            server
                .config_with_secret(ALICE_KEY, ALICE_SECRET)
                .time_source(FixedClock(signed_at))
                .build(),
        );
        let result = skewed
            .put_record()
            .stream_name("clock")
            .partition_key("skewed")
            .data(Blob::new(b"x".to_vec()))
            .send()
            .await;
        let error = expect_error(result, "InvalidSignatureException", None);
        let message = error.message().expect("a message").to_string();
        assert_skew_text(&message, signed_at, expired);
    }
    // Inside the window is fine, on either side.
    for signed_at in [
        SystemTime::now() - SKEW + MARGIN,
        SystemTime::now() + SKEW - MARGIN,
    ] {
        let skewed = Client::from_conf(
            server
                .config_with_secret(ALICE_KEY, ALICE_SECRET)
                .time_source(FixedClock(signed_at))
                .build(),
        );
        put(&skewed, "clock", "inside").await;
    }
    assert_eq!(records_of(&client, "clock").await, ["inside", "inside"]);
}

#[tokio::test]
async fn a_request_replayed_after_the_skew_window_is_refused() {
    let (_dir, credentials) = credentials_file();
    let server = signed_server(&credentials);
    let client = alice(&server);
    create_stream(&client, "replay", 1).await;
    let body = put_record_body("replay", "captured");
    let key = (ALICE_KEY, ALICE_SECRET);

    // A request captured when it was signed and sent again later: still inside the window it
    // is accepted (SigV4 has no nonce; AWS accepts it too), past the window it is refused with
    // the expired text and writes nothing. The server's clock cannot be moved from here, so
    // "later" is a signing time further in the past.
    let recent = signed_request(
        &server,
        key,
        "PutRecord",
        &body,
        SystemTime::now() - SKEW + MARGIN,
    );
    let (status, kind, _) = send_raw(&server, &recent);
    assert_eq!(
        (status, kind.as_str()),
        (200, ""),
        "a request signed 4 minutes ago"
    );

    let signed_at = SystemTime::now() - SKEW - MARGIN;
    let stale = signed_request(&server, key, "PutRecord", &body, signed_at);
    let (status, kind, message) = send_raw(&server, &stale);
    assert_eq!((status, kind.as_str()), (400, "InvalidSignatureException"));
    assert_skew_text(&message, signed_at, true);

    assert_eq!(records_of(&client, "replay").await, ["captured"]);
}

#[tokio::test]
async fn a_body_changed_after_signing_is_refused_and_writes_nothing() {
    let (_dir, credentials) = credentials_file();
    let server = signed_server(&credentials);
    let client = alice(&server);
    create_stream(&client, "tamper", 1).await;
    let key = (ALICE_KEY, ALICE_SECRET);

    let body = put_record_body("tamper", "k1");
    let signed = signed_request(&server, key, "PutRecord", &body, SystemTime::now());
    // One byte of the body: the partition key k1 becomes k2 (same length, still valid).
    let at = signed.len() - body.len()
        + body
            .windows(2)
            .position(|window| window == b"k1")
            .expect("k1 in the body")
        + 1;
    let mut tampered = signed.clone();
    tampered[at] = b'2';
    let (status, kind, message) = send_raw(&server, &tampered);
    assert_eq!(
        (status, kind.as_str(), message.as_str()),
        (400, "InvalidSignatureException", INVALID_SIGNATURE)
    );
    assert!(records_of(&client, "tamper").await.is_empty());

    // The untouched request goes through, so the signer was right.
    let (status, _, _) = send_raw(&server, &signed);
    assert_eq!(status, 200);
    assert_eq!(records_of(&client, "tamper").await, ["k1"]);
}

// ----- Accounts -----

#[tokio::test]
async fn one_account_cannot_see_or_touch_another_accounts_streams() {
    let (_dir, credentials) = credentials_file();
    let server = signed_server(&credentials);
    let (alice, bob) = (alice(&server), bob(&server));
    create_stream(&alice, "private", 1).await;
    create_stream(&alice, "same-name", 1).await;
    // Let the clock move, so Bob's "same-name" is a different incarnation from Alice's even to
    // the millisecond.
    tokio::time::sleep(Duration::from_millis(20)).await;
    create_stream(&bob, "same-name", 1).await;
    put(&alice, "same-name", "alice-record").await;

    let mut alice_streams = alice.list_streams().send().await.unwrap().stream_names;
    alice_streams.sort();
    assert_eq!(alice_streams, ["private", "same-name"]);
    assert_eq!(
        bob.list_streams().send().await.unwrap().stream_names(),
        ["same-name"]
    );
    let bob_arn = bob
        .describe_stream_summary()
        .stream_name("same-name")
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap()
        .stream_arn;
    assert_eq!(bob_arn, arn_of(BOB_ACCOUNT, "same-name"));

    // By name: Bob's account has no such stream.
    let not_found_for_bob = format!("Stream private under account {BOB_ACCOUNT} not found.");
    let result = bob.describe_stream().stream_name("private").send().await;
    expect_error(
        result,
        "ResourceNotFoundException",
        Some(&not_found_for_bob),
    );
    // By ARN, for every family of operations: another account's resource, so AccessDenied
    // (no resource policy of Alice's lets Bob in; see policies.rs for one that does).
    let private_arn = arn_of(ALICE_ACCOUNT, "private");
    let denied = format!(
        "User: arn:aws:iam::{BOB_ACCOUNT}:root is not authorized to perform: \
         kinesis:DescribeStream on resource: {private_arn} because no resource-based policy \
         allows the kinesis:DescribeStream action"
    );
    expect_error(
        bob.describe_stream().stream_arn(&private_arn).send().await,
        "AccessDeniedException",
        Some(&denied),
    );
    let not_found: Option<&str> = None;
    let rnf = "AccessDeniedException";
    expect_error(
        bob.describe_stream().stream_arn(&private_arn).send().await,
        rnf,
        not_found,
    );
    expect_error(
        bob.describe_stream_summary()
            .stream_arn(&private_arn)
            .send()
            .await,
        rnf,
        not_found,
    );
    expect_error(
        bob.list_shards().stream_arn(&private_arn).send().await,
        rnf,
        not_found,
    );
    expect_error(
        bob.put_record()
            .stream_arn(&private_arn)
            .partition_key("bob")
            .data(Blob::new(b"x".to_vec()))
            .send()
            .await,
        rnf,
        not_found,
    );
    expect_error(
        bob.get_shard_iterator()
            .stream_arn(&private_arn)
            .shard_id(shard_id(0))
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await,
        rnf,
        None,
    );
    expect_error(
        bob.add_tags_to_stream()
            .stream_arn(&private_arn)
            .tags("owner", "bob")
            .send()
            .await,
        rnf,
        not_found,
    );
    expect_error(
        bob.list_tags_for_resource()
            .resource_arn(&private_arn)
            .send()
            .await,
        rnf,
        not_found,
    );
    expect_error(
        bob.increase_stream_retention_period()
            .stream_arn(&private_arn)
            .retention_period_hours(48)
            .send()
            .await,
        rnf,
        not_found,
    );
    expect_error(
        bob.update_shard_count()
            .stream_arn(&private_arn)
            .target_shard_count(2)
            .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
            .send()
            .await,
        rnf,
        not_found,
    );
    expect_error(
        bob.register_stream_consumer()
            .stream_arn(&private_arn)
            .consumer_name("bob")
            .send()
            .await,
        rnf,
        None,
    );
    expect_error(
        bob.delete_stream().stream_arn(&private_arn).send().await,
        rnf,
        not_found,
    );

    // Alice's consumer, shard iterator and records stay hers.
    let consumer_arn = alice
        .register_stream_consumer()
        .stream_arn(&private_arn)
        .consumer_name("alice")
        .send()
        .await
        .unwrap()
        .consumer
        .unwrap()
        .consumer_arn;
    expect_error(
        bob.describe_stream_consumer()
            .consumer_arn(&consumer_arn)
            .send()
            .await,
        rnf,
        None,
    );
    expect_error(
        bob.subscribe_to_shard()
            .consumer_arn(&consumer_arn)
            .shard_id(shard_id(0))
            .starting_position(
                StartingPosition::builder()
                    .r#type(ShardIteratorType::Latest)
                    .build()
                    .unwrap(),
            )
            .send()
            .await,
        rnf,
        None,
    );
    let iterator = shard_iterator(
        &alice,
        "same-name",
        &shard_id(0),
        ShardIteratorType::TrimHorizon,
    )
    .await;
    // An iterator names its stream, which Bob's account resolves to Bob's own stream of
    // that name, a different incarnation: not found.
    expect_error(
        bob.get_records().shard_iterator(&iterator).send().await,
        "ResourceNotFoundException",
        None,
    );
    assert!(records_of(&bob, "same-name").await.is_empty());

    // Nothing Bob did reached Alice's streams.
    assert!(records_of(&alice, "private").await.is_empty());
    assert_eq!(records_of(&alice, "same-name").await, ["alice-record"]);
    let tags = alice
        .list_tags_for_stream()
        .stream_name("private")
        .send()
        .await
        .unwrap();
    assert!(tags.tags().is_empty(), "{tags:?}");
    assert_eq!(list_all_shards(&alice, "private").await.len(), 1);
}

// ----- Logs and start-up -----

#[tokio::test]
async fn secrets_and_signatures_never_reach_the_log() {
    let (_dir, credentials) = credentials_file();
    let file = credentials.to_str().unwrap();
    let server = Server::with_log_filter(
        &["--in-memory", "--credentials", file, "--limits", "off"],
        "debug",
    );
    let client = alice(&server);
    create_stream(&client, "logged", 1).await;
    let wrong = server.client_with_secret(ALICE_KEY, "wrong-secret-xyz");
    let _ = wrong.list_streams().send().await;
    let signature = "f".repeat(64);
    let header = format!(
        "AWS4-HMAC-SHA256 Credential={ALICE_KEY}/20250101/us-east-1/kinesis/aws4_request, \
         Signature={signature}"
    );
    let request = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\n\
         Authorization: {header}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    let (status, kind, message) = send_raw(&server, request.as_bytes());
    assert_eq!(
        (status, kind.as_str()),
        (400, "IncompleteSignatureException")
    );
    assert!(
        message.contains(&signature),
        "AWS's text echoes the header to the client"
    );
    // Let the log lines of the last requests arrive.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.log_tail();
    assert!(
        log.contains("IncompleteSignatureException"),
        "debug log of refusals:\n{log}"
    );
    for secret in [
        ALICE_SECRET,
        BOB_SECRET,
        "wrong-secret-xyz",
        signature.as_str(),
    ] {
        assert!(
            !log.contains(secret),
            "{secret:?} in the server log:\n{log}"
        );
    }
}

/// Runs `riffle serve ARGS` (no `--listen` added) and returns its exit status and stderr, or
/// panics if it is still running after [`REFUSAL_TIMEOUT`].
fn refused_start(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_riffle"))
        .arg("serve")
        .args(args)
        .env("RIFFLE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn riffle");
    let deadline = std::time::Instant::now() + REFUSAL_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait for riffle") {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr)
                .expect("read stderr");
            return (status, stderr);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("riffle serve {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn anonymous_mode_refuses_non_loopback_addresses_unless_allowed() {
    let (status, stderr) = refused_start(&["--in-memory", "--listen", "0.0.0.0:0"]);
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("is not a loopback address") && stderr.contains("--allow-anonymous"),
        "{stderr}"
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_riffle"))
        .args([
            "serve",
            "--in-memory",
            "--listen",
            "0.0.0.0:0",
            "--allow-anonymous",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn riffle");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read the listening line");
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("riffle listening on 0.0.0.0:"), "{line:?}");
}

#[test]
fn malformed_credentials_files_refuse_the_start_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials");
    std::fs::write(
        &path,
        "AKIDONE secret-one 123456789012\nAKIDTWO secret-two 12345\n",
    )
    .unwrap();
    let file = path.to_str().unwrap();
    let (status, stderr) = refused_start(&[
        "--in-memory",
        "--listen",
        "127.0.0.1:0",
        "--credentials",
        file,
    ]);
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("line 2: account id \"12345\""), "{stderr}");
    assert!(
        !stderr.contains("secret-two"),
        "the secret leaked: {stderr}"
    );

    std::fs::write(&path, "AKIDONE s1 123456789012\nAKIDONE s2 123456789012\n").unwrap();
    let (status, stderr) = refused_start(&[
        "--in-memory",
        "--listen",
        "127.0.0.1:0",
        "--credentials",
        file,
    ]);
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("line 2: access key id AKIDONE is already defined on line 1"),
        "{stderr}"
    );

    // A readable-by-others file starts, with a warning.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&path, "AKIDONE s1 123456789012\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let server = Server::with_credentials(&path, &[]);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !server
            .log_tail()
            .contains("readable by its group or by others")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "no permissions warning in:\n{}",
                server.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
