//! The web console's files over raw HTTP: served at `GET /console/` with their types and
//! security and cache headers, 404 with `--no-console`, and never a way into the API (a `GET`
//! that carries a Kinesis target and body runs nothing).

use std::net::SocketAddr;

use serde_json::Value;

use crate::common::*;
use crate::raw_http::{call, exchange, RawResponse};

fn get(addr: SocketAddr, path: &str, extra_headers: &str, body: &str) -> RawResponse {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra_headers}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    exchange(addr, request.as_bytes()).unwrap_or_else(|| panic!("GET {path}: no response"))
}

fn stream_names(addr: SocketAddr) -> Vec<Value> {
    let listed = call(addr, "ListStreams", b"{}");
    assert_eq!(listed.status, 200);
    let json: Value = serde_json::from_slice(&listed.body).expect("ListStreams answers JSON");
    json["StreamNames"].as_array().cloned().unwrap_or_default()
}

/// What a Kinesis client would send to create a stream, put on a GET.
const CREATE_TARGET: &str = "X-Amz-Target: Kinesis_20131202.CreateStream\r\n\
     Content-Type: application/x-amz-json-1.1\r\n";
const CREATE_BODY: &str = r#"{"StreamName":"via-get","ShardCount":1}"#;

#[test]
fn the_console_is_served_with_its_types_and_headers() {
    let server = Server::in_memory();
    let page = get(server.addr, "/console/", "", "");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let text = String::from_utf8_lossy(&page.body);
    assert!(
        text.contains("<script type=\"module\" src=\"./app.js\">"),
        "{text}"
    );
    let csp = page.header("content-security-policy").expect("a CSP");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let etag = page.header("etag").expect("an ETag").to_owned();

    // Revalidation: the same ETag gets 304 and no body.
    let again = get(
        server.addr,
        "/console/",
        &format!("If-None-Match: {etag}\r\n"),
        "",
    );
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());

    for (path, content_type) in [
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/api.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/console/favicon.svg", "image/svg+xml"),
    ] {
        let asset = get(server.addr, path, "", "");
        assert_eq!(asset.status, 200, "{path}");
        assert_eq!(asset.header("content-type"), Some(content_type), "{path}");
        assert!(asset.header("content-security-policy").is_some(), "{path}");
        assert!(!asset.body.is_empty(), "{path}");
    }
    let missing = get(server.addr, "/console/nothing-here.js", "", "");
    assert_eq!(missing.status, 404);
    // Without the slash: a redirect to the page (its links are relative).
    let bare = get(server.addr, "/console", "", "");
    assert_eq!(bare.status, 308);
    assert_eq!(bare.header("location"), Some("/console/"));
}

#[test]
fn a_get_of_the_console_never_reaches_the_api() {
    let server = Server::in_memory();
    let page = get(server.addr, "/console/", CREATE_TARGET, CREATE_BODY);
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    // Other methods under /console are not the API either.
    let post = format!(
        "POST /console/ HTTP/1.1\r\nHost: localhost\r\n{CREATE_TARGET}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{CREATE_BODY}",
        CREATE_BODY.len()
    );
    let posted = exchange(server.addr, post.as_bytes()).expect("an answer");
    assert_eq!(posted.status, 405);
    assert_eq!(posted.header("allow"), Some("GET, HEAD"));
    assert!(stream_names(server.addr).is_empty());
    // The API is where it was.
    let created = call(server.addr, "CreateStream", CREATE_BODY.as_bytes());
    assert_eq!(created.status, 200);
    assert_eq!(stream_names(server.addr), vec![Value::from("via-get")]);
}

#[test]
fn no_console_answers_404_and_keeps_the_api() {
    let server = Server::in_memory_with(&["--no-console"]);
    for path in ["/console/", "/console", "/console/app.js"] {
        let answer = get(server.addr, path, CREATE_TARGET, CREATE_BODY);
        assert_eq!(answer.status, 404, "{path}");
        assert!(answer.header("content-security-policy").is_some(), "{path}");
    }
    assert!(stream_names(server.addr).is_empty());
    let created = call(server.addr, "CreateStream", CREATE_BODY.as_bytes());
    assert_eq!(created.status, 200);
}
