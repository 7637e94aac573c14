//! Hand-written HTTP/1.1 over a plain TcpStream: the wire details SDKs hide (status codes,
//! headers, error bodies) and requests no SDK would send, including hostile ones.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// How long a raw exchange may take before the server counts as hung.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

pub(crate) struct RawResponse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl RawResponse {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "body is not JSON ({error}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The error's short type name, however the server qualifies it (`ns#Name`, `Name:extra`);
    /// botocore and the Rust SDK strip both.
    fn error_type(&self) -> String {
        let json = self.json();
        let raw = json["__type"]
            .as_str()
            .unwrap_or_else(|| panic!("no __type in {json}"));
        let after_hash = raw.rsplit('#').next().unwrap_or(raw);
        after_hash
            .split(':')
            .next()
            .unwrap_or(after_hash)
            .to_string()
    }
}

/// A POST / with the Kinesis headers, `Connection: close`, and an honest Content-Length.
fn request_bytes(target: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: {JSON_CONTENT_TYPE}\r\n\
         X-Amz-Target: {target}\r\nX-Amz-Date: 20250101T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 \
         Credential=AKIDTEST/20250101/us-east-1/kinesis/aws4_request, \
         SignedHeaders=host;x-amz-date;x-amz-target, Signature={}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        "0".repeat(64),
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends `bytes` and reads until the server closes (every request says `Connection: close`).
/// `None` means the server closed or reset the connection without a response.
pub(crate) fn exchange(addr: SocketAddr, bytes: &[u8]) -> Option<RawResponse> {
    exchange_with(addr, bytes, false)
}

/// As `exchange`; `half_close` also shuts our sending side, so a server waiting for more
/// bytes than were sent sees end-of-stream instead of waiting.
fn exchange_with(addr: SocketAddr, bytes: &[u8], half_close: bool) -> Option<RawResponse> {
    let mut stream = TcpStream::connect(addr).expect("connect to the server");
    stream.set_read_timeout(Some(EXCHANGE_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(EXCHANGE_TIMEOUT)).unwrap();
    // The server may answer and close before reading everything: that is not a failure.
    let _ = stream.write_all(bytes);
    if half_close {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let mut received = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(error)
                if error.kind() == ErrorKind::WouldBlock || error.kind() == ErrorKind::TimedOut =>
            {
                panic!("the server neither answered nor closed within {EXCHANGE_TIMEOUT:?}")
            }
            Err(_) => break, // reset
        }
    }
    if received.is_empty() {
        return None;
    }
    Some(parse_response(&received))
}

fn parse_response(received: &[u8]) -> RawResponse {
    let head_end = received
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no end of headers in {:?}",
                String::from_utf8_lossy(received)
            )
        });
    let head = String::from_utf8_lossy(&received[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(
        parts.next(),
        Some("HTTP/1.1"),
        "status line {status_line:?}"
    );
    let status: u16 = parts
        .next()
        .and_then(|code| code.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    let raw_body = &received[head_end + 4..];
    let chunked = headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(raw_body)
    } else {
        raw_body.to_vec()
    };
    if let Some((_, length)) = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
    {
        assert_eq!(
            length.parse::<usize>().ok(),
            Some(body.len()),
            "Content-Length matches the body"
        );
    }
    RawResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_text = String::from_utf8_lossy(&raw[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("hex chunk size");
        raw = &raw[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// One Kinesis call with a JSON body; the server must answer.
pub(crate) fn call(addr: SocketAddr, operation: &str, body: &[u8]) -> RawResponse {
    exchange(
        addr,
        &request_bytes(&format!("Kinesis_20131202.{operation}"), body),
    )
    .unwrap_or_else(|| panic!("{operation}: connection closed without a response"))
}

fn assert_error(response: &RawResponse, error_type: &str) {
    assert_eq!(
        (response.status, response.error_type().as_str()),
        (400, error_type),
        "body {:?}",
        String::from_utf8_lossy(&response.body)
    );
}

/// The server still answers a well-formed call and its process is alive.
fn assert_still_serving(server: &mut Server) {
    assert!(server.is_running(), "the server process died");
    let response = call(server.addr, "ListStreams", b"{}");
    assert_eq!(
        response.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&response.body)
    );
    assert!(response.json()["StreamNames"].is_array());
}

#[test]
fn unparseable_bodies_are_serialization_exceptions() {
    let server = Server::in_memory();
    assert_eq!(
        call(
            server.addr,
            "CreateStream",
            br#"{"StreamName":"s","ShardCount":1}"#
        )
        .status,
        200
    );
    let cases: [(&str, &[u8]); 6] = [
        ("ListStreams", b"{\"Limit\": "),
        ("ListStreams", b"not json at all"),
        ("ListStreams", b"[1, 2, 3]"),
        ("ListStreams", br#"{"Limit": "ten"}"#),
        // Data is a blob: bad base64 fails while deserialising.
        (
            "PutRecord",
            br#"{"StreamName":"s","PartitionKey":"k","Data":"!!!!"}"#,
        ),
        // Timestamps are numbers; a string cannot be converted to one.
        (
            "GetShardIterator",
            concat!(
                r#"{"StreamName":"s","ShardId":"shardId-000000000000","#,
                r#""ShardIteratorType":"AT_TIMESTAMP","Timestamp":"yesterday"}"#
            )
            .as_bytes(),
        ),
    ];
    for (operation, body) in cases {
        let response = call(server.addr, operation, body);
        assert_error(&response, "SerializationException");
        assert_eq!(response.header("content-type"), Some(JSON_CONTENT_TYPE));
    }
}

#[test]
fn wrongly_typed_members_get_corals_serialization_texts() {
    let server = Server::in_memory();
    assert_eq!(
        call(
            server.addr,
            "CreateStream",
            br#"{"StreamName":"s","ShardCount":1}"#
        )
        .status,
        200
    );
    // The texts production sends (kinesis-api.md §5), under `Message` rather than `message`.
    let cases: [(&str, &[u8], &str); 6] = [
        (
            "ListStreams",
            br#"{"Limit": "ten"}"#,
            "class java.lang.String can not be converted to an Integer",
        ),
        (
            "PutRecord",
            br#"{"StreamName":"s","PartitionKey":"k","Data":{}}"#,
            "Start of structure or map found where not expected.",
        ),
        (
            "PutRecords",
            br#"{"StreamName":"s","Records":{"Data":"eA=="}}"#,
            "Start of structure or map found where not expected.",
        ),
        (
            "DescribeStream",
            br#"{"StreamName":["s"]}"#,
            "Start of list found where not expected",
        ),
        (
            "PutRecord",
            br#"{"StreamName":"s","PartitionKey":"k","Data":"!!!!"}"#,
            "'!!!!' can not be converted to a Blob: Invalid Base64 character: '!'",
        ),
        (
            "GetShardIterator",
            concat!(
                r#"{"StreamName":"s","ShardId":"shardId-000000000000","#,
                r#""ShardIteratorType":"AT_TIMESTAMP","Timestamp":"yesterday"}"#
            )
            .as_bytes(),
            "class java.lang.String can not be converted to milliseconds since epoch",
        ),
    ];
    for (operation, body, message) in cases {
        let response = call(server.addr, operation, body);
        assert_error(&response, "SerializationException");
        assert_eq!(
            response.json()["Message"].as_str(),
            Some(message),
            "{operation} {:?}",
            String::from_utf8_lossy(body)
        );
    }
    let response = call(
        server.addr,
        "PutRecord",
        br#"{"StreamName":"s","PartitionKey":"k","Data":"eHl6e"}"#,
    );
    assert_error(&response, "SerializationException");
    assert_eq!(
        response.json()["Message"].as_str(),
        Some(
            "'eHl6e' can not be converted to a Blob: Base64 encoded length is expected a \
             multiple of 4 bytes but found: 5"
        )
    );
    // The control: well-formed base64 goes through, and it is all that was stored.
    let stored = call(
        server.addr,
        "PutRecord",
        br#"{"StreamName":"s","PartitionKey":"k","Data":"eHl6"}"#,
    );
    assert_eq!(
        stored.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&stored.body)
    );
    let iterator = call(
        server.addr,
        "GetShardIterator",
        br#"{"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"}"#,
    )
    .json()["ShardIterator"]
        .as_str()
        .expect("an iterator")
        .to_string();
    let records = call(
        server.addr,
        "GetRecords",
        format!(r#"{{"ShardIterator":"{iterator}"}}"#).as_bytes(),
    )
    .json();
    let data: Vec<&str> = records["Records"]
        .as_array()
        .expect("Records")
        .iter()
        .map(|record| record["Data"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(data, ["eHl6"]);
}

#[test]
fn unknown_targets_are_unknown_operations() {
    let server = Server::in_memory();
    for target in [
        "Kinesis_20131202.FlyToTheMoon",
        "DynamoDB_20120810.ListTables",
        "Kinesis_20131202.",
        "ListStreams",
    ] {
        let response = exchange(server.addr, &request_bytes(target, b"{}"))
            .unwrap_or_else(|| panic!("no response for target {target:?}"));
        assert_error(&response, "UnknownOperationException");
        // AWS sends the bare type, with no message member at all.
        assert_eq!(
            response.json(),
            serde_json::json!({"__type": "UnknownOperationException"}),
            "target {target:?}"
        );
    }
}

#[test]
fn responses_carry_aws_headers_and_plain_timestamps() {
    let server = Server::in_memory();
    let created = call(
        server.addr,
        "CreateStream",
        br#"{"StreamName":"wire","ShardCount":1}"#,
    );
    assert_eq!(created.status, 200);
    // A void operation: empty body, or an empty object.
    assert!(
        created.body.is_empty() || created.json() == serde_json::json!({}),
        "{:?}",
        String::from_utf8_lossy(&created.body)
    );
    let summary = call(
        server.addr,
        "DescribeStreamSummary",
        br#"{"StreamName":"wire"}"#,
    );
    assert_eq!(summary.status, 200);
    assert_eq!(summary.header("content-type"), Some(JSON_CONTENT_TYPE));
    assert!(summary
        .header("x-amzn-RequestId")
        .is_some_and(|id| !id.is_empty()));
    let date = summary
        .header("date")
        .expect("a Date header (SDKs correct clock skew from it)");
    assert!(date.ends_with(" GMT"), "HTTP date: {date:?}");
    // Epoch seconds as a plain decimal number: never a string, never exponent notation.
    let text = String::from_utf8_lossy(&summary.body).to_string();
    let key = "\"StreamCreationTimestamp\":";
    let start = text.find(key).expect("StreamCreationTimestamp present") + key.len();
    let value: String = text[start..]
        .trim_start()
        .chars()
        .take_while(|c| !matches!(c, ',' | '}'))
        .collect();
    let value = value.trim();
    assert!(
        !value.is_empty() && value.chars().all(|c| c.is_ascii_digit() || c == '.'),
        "timestamp rendered as {value:?}"
    );
    let seconds: f64 = value.parse().unwrap();
    assert!((seconds * 1000.0 - now_millis() as f64).abs() < 60_000.0);

    let missing = call(server.addr, "DescribeStream", br#"{"StreamName":"absent"}"#);
    assert_error(&missing, "ResourceNotFoundException");
    let json = missing.json();
    let message = json["message"].as_str().or(json["Message"].as_str());
    assert_eq!(message, Some(stream_not_found("absent").as_str()));
    assert!(missing.header("x-amzn-RequestId").is_some());
}

#[test]
fn the_server_survives_hostile_requests() {
    // Limits off: ListStreams after every hostile request, faster than 5 a second.
    let mut server = Server::in_memory_limits(Limits::Off);
    let addr = server.addr;
    let mut prng = Prng::new(0x5eed);

    // Random bytes as the body of a real operation.
    for len in [1, 7, 4096, 100_000] {
        let body = prng.bytes(len);
        let response = call(addr, "PutRecords", &body);
        assert_eq!(response.status, 400, "random body of {len} bytes");
        assert_still_serving(&mut server);
    }

    // Deeply nested JSON where a structure is expected.
    let depth = 200_000;
    let nested_arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert_error(
        &call(addr, "ListStreams", nested_arrays.as_bytes()),
        "SerializationException",
    );
    assert_still_serving(&mut server);
    // Nested objects under a member: ignoring it or rejecting it are both fine, crashing is not.
    let nested_objects = format!(
        "{{\"Junk\":{}1{}}}",
        "{\"a\":".repeat(depth),
        "}".repeat(depth)
    );
    let response = call(addr, "ListStreams", nested_objects.as_bytes());
    assert!(
        response.status == 200 || response.status == 400,
        "status {}",
        response.status
    );
    assert_still_serving(&mut server);
    // Unclosed nesting.
    assert_eq!(
        call(addr, "ListStreams", "[".repeat(depth).as_bytes()).status,
        400
    );
    assert_still_serving(&mut server);

    // Content-Length far beyond any body limit, followed by a short body and EOF.
    for claimed in ["1000000000000", "50000000", "18446744073709551615"] {
        let mut bytes = request_bytes("Kinesis_20131202.ListStreams", b"{}");
        let honest = "Content-Length: 2\r\n";
        let position = bytes
            .windows(honest.len())
            .position(|w| w == honest.as_bytes())
            .unwrap();
        let lie = format!("Content-Length: {claimed}\r\n");
        bytes.splice(position..position + honest.len(), lie.into_bytes());
        if let Some(response) = exchange_with(addr, &bytes, true) {
            assert!(
                (400..500).contains(&response.status),
                "claimed {claimed} bytes: status {}",
                response.status
            );
        }
        assert_still_serving(&mut server);
    }

    // Not HTTP at all, and a request line with no end.
    for garbage in [
        b"GARBAGE\r\n\r\n".to_vec(),
        prng.bytes(10_000),
        b"POST / HTTP/1.1\r\nHost: x".to_vec(),
    ] {
        let _ = exchange_with(addr, &garbage, true);
        assert_still_serving(&mut server);
    }

    // A body that is valid JSON but of the wrong shape for every member.
    let wrong_types = br#"{"StreamName":{"a":1},"ShardCount":[1],"Tags":"x"}"#;
    let response = call(addr, "CreateStream", wrong_types);
    assert_eq!(response.status, 400);
    assert_still_serving(&mut server);
}

#[test]
fn invalid_utf8_gets_a_clean_error() {
    let mut server = Server::in_memory_limits(Limits::Off);
    let addr = server.addr;
    // In a string member, in a member name, as a lone continuation byte, as an overlong
    // encoding and as a surrogate: JSON requires UTF-8, so each is a SerializationException.
    for body in [
        &b"{\"StreamName\":\"s\xff\xfe\",\"ShardCount\":1}"[..],
        b"{\"Stream\xc3Name\":\"s\",\"ShardCount\":1}",
        b"{\"StreamName\":\"\x80\",\"ShardCount\":1}",
        b"{\"StreamName\":\"\xc0\xaf\",\"ShardCount\":1}",
        b"{\"StreamName\":\"\xed\xa0\x80\",\"ShardCount\":1}",
    ] {
        assert_error(&call(addr, "CreateStream", body), "SerializationException");
        assert_still_serving(&mut server);
    }
    // Nothing was created by any of them.
    let listed = call(addr, "ListStreams", b"{}");
    assert_eq!(listed.json()["StreamNames"], serde_json::json!([]));

    // Invalid UTF-8 in the target header: not an operation riffle knows.
    let mut bytes = request_bytes("Kinesis_20131202.List\u{fffd}Streams", b"{}");
    let replacement = "\u{fffd}".as_bytes();
    let position = bytes
        .windows(replacement.len())
        .position(|w| w == replacement)
        .expect("the marker");
    bytes.splice(position..position + replacement.len(), [0xffu8, 0xfe]);
    if let Some(response) = exchange(addr, &bytes) {
        assert!(
            (400..500).contains(&response.status),
            "status {}",
            response.status
        );
    }
    assert_still_serving(&mut server);
}
