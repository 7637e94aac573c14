//! The HTTP ceiling: a server that does nothing but HTTP, for `riffle bench` to measure
//! against in the same run as riffle (`riffle bench ceiling-server --listen ADDR`).
//!
//! It uses the same stack as `riffle serve` (hyper's auto HTTP/1.1-or-h2c connection builder
//! on a multi-threaded tokio runtime, TCP_NODELAY, keep-alive), reads every request body to
//! its end, and answers each operation the load generator calls with a fixed reply: no
//! parsing, no storage, no fsync. What riffle reaches as a fraction of this server's rate is
//! the share of the machine left to HTTP and the load generator that riffle's own work costs,
//! which is how the "calls/s ≥ 60 % of the ceiling" target of issue 6 is judged.
//!
//! The replies are just well-formed enough for `riffle bench` to count them as successes:
//! streams are always ACTIVE with [`SHARDS`] shards, PutRecord returns one fixed sequence
//! number, and PutRecords returns one result per record of the request (counted as the
//! occurrences of `"PartitionKey"` in the body, which `riffle bench` writes once per record).
//! Reads are not served: the ceiling is for the write workloads.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::PUT_RECORDS_ENTRIES_MAX;

/// Shards every stream of the ceiling server has.
const SHARDS: usize = 4;
const SEQUENCE_NUMBER: &str = "49546986683135544286507457936321625675700192471156785154";
const CONTENT_TYPE_JSON: &str = "application/x-amz-json-1.1";
const TARGET_PREFIX: &str = "Kinesis_20131202.";
const RECORD_MARKER: &[u8] = b"\"PartitionKey\"";

/// Replies prepared once at start.
struct Replies {
    empty: Bytes,
    summary: Bytes,
    list_shards: Bytes,
    put_record: Bytes,
    /// `put_records[n]` answers a PutRecords of `n` records.
    put_records: Vec<Bytes>,
}

impl Replies {
    fn new() -> Self {
        let shards: Vec<String> = (0..SHARDS)
            .map(|shard| format!("{{\"ShardId\":\"shardId-{shard:012}\"}}"))
            .collect();
        let entry = format!(
            "{{\"SequenceNumber\":\"{SEQUENCE_NUMBER}\",\"ShardId\":\"shardId-000000000000\"}}"
        );
        let put_records = (0..=PUT_RECORDS_ENTRIES_MAX)
            .map(|records| {
                let entries = vec![entry.as_str(); records].join(",");
                Bytes::from(format!(
                    "{{\"FailedRecordCount\":0,\"Records\":[{entries}]}}"
                ))
            })
            .collect();
        Self {
            empty: Bytes::from_static(b"{}"),
            summary: Bytes::from(format!(
                "{{\"StreamDescriptionSummary\":{{\"StreamStatus\":\"ACTIVE\",\"OpenShardCount\":{SHARDS}}}}}"
            )),
            list_shards: Bytes::from(format!("{{\"Shards\":[{}]}}", shards.join(","))),
            put_record: Bytes::from(entry),
            put_records,
        }
    }

    fn for_request(&self, operation: &str, body: &[u8]) -> Option<Bytes> {
        let reply = match operation {
            "CreateStream" | "DeleteStream" => &self.empty,
            "DescribeStreamSummary" => &self.summary,
            "ListShards" => &self.list_shards,
            "PutRecord" => &self.put_record,
            "PutRecords" => {
                let records = count_records(body).min(PUT_RECORDS_ENTRIES_MAX);
                &self.put_records[records]
            }
            _ => return None,
        };
        Some(reply.clone())
    }
}

/// Occurrences of `"PartitionKey"` in a body `riffle bench` wrote.
fn count_records(body: &[u8]) -> usize {
    body.windows(RECORD_MARKER.len())
        .filter(|window| *window == RECORD_MARKER)
        .count()
}

/// Listens on `listen`, prints `ceiling listening on ADDR` on stdout, and serves until the
/// process is stopped.
pub async fn serve(listen: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|error| format!("cannot listen on {listen}: {error}"))?;
    let address = listener
        .local_addr()
        .map_err(|error| format!("cannot read the listening address: {error}"))?;
    println!("ceiling listening on {address}");
    let replies = Arc::new(Replies::new());
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(pair) => pair,
            Err(error) => {
                eprintln!("riffle bench ceiling-server: accept failed: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let replies = Arc::clone(&replies);
        let builder = Arc::clone(&builder);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let replies = Arc::clone(&replies);
                async move { Ok::<_, Infallible>(answer(&replies, request).await) }
            });
            // A client closing its connection ends this task; nothing to report.
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(replies: &Replies, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let operation = request
        .headers()
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .and_then(|target| target.strip_prefix(TARGET_PREFIX))
        .unwrap_or("")
        .to_owned();
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return reply(StatusCode::BAD_REQUEST, Bytes::new()),
    };
    match replies.for_request(&operation, &body) {
        Some(body) => reply(StatusCode::OK, body),
        None => reply(
            StatusCode::BAD_REQUEST,
            Bytes::from_static(
                b"{\"__type\":\"UnknownOperationException\",\"message\":\"not served by the ceiling\"}",
            ),
        ),
    }
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(CONTENT_TYPE_JSON),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{KeyMode, PutTemplate, XorShift};
    use bytes::BytesMut;

    #[test]
    fn put_records_replies_match_the_request_record_count() {
        let replies = Replies::new();
        let mut rng = XorShift::new(7);
        let template = PutTemplate::new("s", 37, true, 100, &KeyMode::Random, &mut rng);
        let body = template.render(&mut BytesMut::new(), &mut rng, None);
        let answer = replies.for_request("PutRecords", &body).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(json["Records"].as_array().unwrap().len(), 37);
        assert_eq!(json["FailedRecordCount"], 0);
    }

    #[test]
    fn setup_calls_see_an_active_stream_and_unknown_ones_are_refused() {
        let replies = Replies::new();
        let summary: serde_json::Value =
            serde_json::from_slice(&replies.for_request("DescribeStreamSummary", b"{}").unwrap())
                .unwrap();
        assert_eq!(
            summary["StreamDescriptionSummary"]["StreamStatus"],
            "ACTIVE"
        );
        let shards: serde_json::Value =
            serde_json::from_slice(&replies.for_request("ListShards", b"{}").unwrap()).unwrap();
        assert_eq!(shards["Shards"].as_array().unwrap().len(), SHARDS);
        let put: serde_json::Value =
            serde_json::from_slice(&replies.for_request("PutRecord", b"{}").unwrap()).unwrap();
        assert_eq!(put["SequenceNumber"], SEQUENCE_NUMBER);
        assert!(replies.for_request("GetRecords", b"{}").is_none());
    }
}
