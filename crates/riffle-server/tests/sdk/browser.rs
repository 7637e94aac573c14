//! What a browser (the AWS JS SDK in a web page) and AWS's own clients see in the HTTP headers:
//! `x-amz-id-2` beside `x-amzn-RequestId` on every answer, and CORS — an `OPTIONS` preflight
//! answered without a signature, and the CORS headers on every answer, errors included.

use std::collections::HashSet;
use std::net::SocketAddr;

use base64::Engine as _;

use crate::common::*;
use crate::raw_http::{call, exchange, RawResponse};

const ORIGIN: &str = "http://localhost:3000";

/// The headers the AWS JS SDK v3 signs and sends with a Kinesis call, lower-cased as browsers
/// list them in `Access-Control-Request-Headers`.
const SDK_HEADERS: &[&str] = &[
    "amz-sdk-invocation-id",
    "amz-sdk-request",
    "authorization",
    "content-type",
    "x-amz-content-sha256",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-target",
    "x-amz-user-agent",
];

/// A preflight as Chrome sends it before the SDK's POST.
fn preflight(addr: SocketAddr, origin: Option<&str>, requested_headers: &str) -> RawResponse {
    let origin = origin.map_or(String::new(), |origin| format!("Origin: {origin}\r\n"));
    let request = format!(
        "OPTIONS / HTTP/1.1\r\nHost: localhost\r\n{origin}\
         Access-Control-Request-Method: POST\r\n\
         Access-Control-Request-Headers: {requested_headers}\r\n\
         Connection: close\r\n\r\n"
    );
    exchange(addr, request.as_bytes()).expect("an answer to the preflight")
}

/// A Kinesis call as a browser sends it: with an Origin header, unsigned.
fn call_from_page(addr: SocketAddr, operation: &str, body: &str) -> RawResponse {
    let request = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nOrigin: {ORIGIN}\r\n\
         Content-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: Kinesis_20131202.{operation}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    exchange(addr, request.as_bytes()).expect("an answer")
}

/// The comma-separated names of a header, lower-cased.
fn names(response: &RawResponse, header: &str) -> HashSet<String> {
    response
        .header(header)
        .unwrap_or_else(|| panic!("no {header} in {:?}", response.headers))
        .split(',')
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect()
}

/// `x-amz-id-2` as AWS sends it: base64 of random bytes, never the same twice.
fn assert_id_2(response: &RawResponse, seen: &mut HashSet<String>) {
    let id = response
        .header("x-amz-id-2")
        .unwrap_or_else(|| panic!("no x-amz-id-2 in {:?}", response.headers));
    assert_eq!(id.len(), 76, "x-amz-id-2 {id:?}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(id)
        .unwrap_or_else(|error| panic!("x-amz-id-2 {id:?} is not base64: {error}"));
    assert_eq!(bytes.len(), 57, "x-amz-id-2 {id:?}");
    assert!(seen.insert(id.to_owned()), "x-amz-id-2 {id:?} repeated");
    assert!(
        response
            .header("x-amzn-RequestId")
            .is_some_and(|id| !id.is_empty()),
        "x-amzn-RequestId beside x-amz-id-2: {:?}",
        response.headers
    );
}

/// The CORS headers every answer to a page carries.
fn assert_cors(response: &RawResponse, origin: &str) {
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some(origin),
        "{:?}",
        response.headers
    );
    let exposed = names(response, "access-control-expose-headers");
    for header in ["x-amzn-requestid", "x-amz-id-2", "date"] {
        assert!(
            exposed.contains(header),
            "{header} not exposed: {exposed:?}"
        );
    }
}

#[test]
fn every_answer_carries_x_amz_id_2() {
    let server = Server::in_memory();
    let mut seen = HashSet::new();
    let created = call(
        server.addr,
        "CreateStream",
        br#"{"StreamName":"ids","ShardCount":1}"#,
    );
    assert_eq!(created.status, 200);
    assert_id_2(&created, &mut seen);
    for _ in 0..3 {
        let described = call(
            server.addr,
            "DescribeStreamSummary",
            br#"{"StreamName":"ids"}"#,
        );
        assert_eq!(described.status, 200);
        assert_id_2(&described, &mut seen);
    }
    // Errors of every kind: the service's, the wire format's, an unknown target.
    let missing = call(server.addr, "DescribeStream", br#"{"StreamName":"absent"}"#);
    assert_eq!(missing.status, 400);
    assert_id_2(&missing, &mut seen);
    let garbled = call(server.addr, "DescribeStream", b"{not json");
    assert_eq!(garbled.status, 400);
    assert_id_2(&garbled, &mut seen);
    let unknown = call(server.addr, "NoSuchOperation", b"{}");
    assert_eq!(unknown.status, 400);
    assert_id_2(&unknown, &mut seen);
}

#[test]
fn browsers_get_preflights_and_cors_headers() {
    let server = Server::in_memory();
    let requested = SDK_HEADERS.join(",");
    let mut seen = HashSet::new();
    let answer = preflight(server.addr, Some(ORIGIN), &requested);
    assert_eq!(
        answer.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some(ORIGIN),
        "{:?}",
        answer.headers
    );
    assert!(names(&answer, "access-control-allow-methods").contains("post"));
    let allowed = names(&answer, "access-control-allow-headers");
    for header in SDK_HEADERS {
        assert!(
            allowed.contains(*header),
            "{header} not allowed: {allowed:?}"
        );
    }
    let max_age: u64 = answer
        .header("access-control-max-age")
        .expect("Access-Control-Max-Age")
        .parse()
        .expect("Access-Control-Max-Age is seconds");
    assert!(max_age > 0);
    assert_id_2(&answer, &mut seen);

    // A preflight listing only some headers still learns every header the SDK sends, and one
    // without an Origin (a tool, not a browser) is answered for any origin.
    let answer = preflight(server.addr, None, "content-type");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    let allowed = names(&answer, "access-control-allow-headers");
    for header in SDK_HEADERS {
        assert!(
            allowed.contains(*header),
            "{header} not allowed: {allowed:?}"
        );
    }

    // The calls that follow: answers and errors carry the CORS headers.
    let created = call_from_page(
        server.addr,
        "CreateStream",
        r#"{"StreamName":"page","ShardCount":1}"#,
    );
    assert_eq!(created.status, 200);
    assert_cors(&created, ORIGIN);
    let missing = call_from_page(server.addr, "DescribeStream", r#"{"StreamName":"absent"}"#);
    assert_eq!(missing.status, 400);
    assert_cors(&missing, ORIGIN);
    // Without an Origin the answer allows any origin.
    let plain = call(server.addr, "ListStreams", b"{}");
    assert_eq!(plain.status, 200);
    assert_cors(&plain, "*");
}

/// Browsers never sign a preflight: with `--credentials` it is still answered, while the
/// unsigned call itself is refused as before (with the CORS headers, so the page can read why).
#[test]
fn preflights_need_no_signature() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("credentials");
    std::fs::write(
        &path,
        "AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY 123456789012\n",
    )
    .expect("write the credentials file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let server = Server::with_credentials(&path, &[]);
    let answer = preflight(server.addr, Some(ORIGIN), &SDK_HEADERS.join(","));
    assert_eq!(
        answer.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.header("access-control-allow-origin"), Some(ORIGIN));
    let unsigned = call_from_page(server.addr, "ListStreams", "{}");
    assert_eq!(unsigned.status, 400);
    assert!(
        String::from_utf8_lossy(&unsigned.body).contains("MissingAuthenticationToken"),
        "{:?}",
        String::from_utf8_lossy(&unsigned.body)
    );
    assert_cors(&unsigned, ORIGIN);
}
