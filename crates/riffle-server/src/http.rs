//! The HTTP front end: one listener serving HTTP/1.1 and h2c (prior knowledge) on the same port,
//! or, with `--tls-cert`, HTTP/1.1 and h2 over TLS (connection setup: `transport.rs`).
//!
//! Every Kinesis call is `POST /` with `X-Amz-Target: Kinesis_20131202.<Operation>` and a JSON
//! or CBOR body. This module reads the body under a size cap, picks the wire format from the
//! `Content-Type` (`application/x-amz-cbor-1.1` is CBOR, anything else JSON), authenticates the
//! request before anything runs (SigV4 with `--credentials`: `auth.rs`), hands the call to
//! [`riffle_core::service`], and writes the answer — errors included — in the request's format,
//! with the headers SDKs expect (`Content-Type`, `x-amzn-RequestId`, `x-amz-id-2`, `Date`). It
//! never panics on client input: anything malformed becomes an AWS-style error response and the
//! connection keeps serving.
//!
//! **Browsers (CORS).** The AWS JS SDK in a web page first sends an `OPTIONS` preflight; it is
//! answered at once (200, no body, never authenticated: browsers do not sign it) with the
//! origin, methods and headers a Kinesis call uses. Every answer, errors included, carries
//! `Access-Control-Allow-Origin` (the request's `Origin`, or `*`) and exposes the response
//! headers SDKs read. The signature, not CORS, is what protects the API, as on AWS.
//!
//! **The console.** `GET`/`HEAD` under `/console` is the web console's static files
//! (`console.rs`), answered before any body is read; the API stays `POST /`.
//!
//! **Memory.** Request bodies are bounded twice: each by [`REQUEST_BYTES_MAX`], and all of them
//! together by a node-wide budget ([`RequestBudget`]). A request reserves its declared length
//! (or the per-request maximum, when it streams without one) before its body is read and holds
//! the reservation until its answer is built, so thousands of clients sending large bodies at
//! once queue for memory instead of exhausting it. A body must arrive within
//! [`BODY_READ_TIMEOUT`], so a stalled client cannot hold its reservation for long. Answers are
//! bounded the same way, by the node's response budget and a send timeout (`send.rs`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use riffle_core::service;
use riffle_core::Node;
use riffle_proto::{ErrorKind, KinesisError, WireFormat};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore, SemaphorePermit};

use crate::auth::Auth;
use crate::send::{self, SendWatch};
use crate::transport::Transport;

/// Largest request body accepted. A 10 MiB PutRecords is about 13.4 MiB as base64 JSON.
pub const REQUEST_BYTES_MAX: usize = 16 * 1024 * 1024;
/// How long a request body may take to arrive once its headers are in.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// How long a request waits for room in the memory budget before it is refused (with a 500,
/// which every SDK retries with backoff).
const BUDGET_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(10);
/// Unit of the budget's semaphore permits.
const BUDGET_UNIT_BYTES: u64 = 1024;
const TARGET_PREFIX: &str = "Kinesis_20131202.";
const EVENT_STREAM_CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// Random bytes in `x-amz-id-2`: 76 characters of base64, as AWS's.
const ID_2_BYTES: usize = 57;
/// What a preflight allows: the methods of the API (every call is a POST)...
const CORS_ALLOW_METHODS: &str = "POST, OPTIONS";
/// ...the headers the SDKs sign and send (SigV4's, the JSON and CBOR protocols', the JS SDK's
/// own), to which a preflight's own list is added...
const CORS_ALLOW_HEADERS: &str = "authorization, content-type, content-encoding, \
     x-amz-content-sha256, x-amz-date, x-amz-security-token, x-amz-target, x-amz-user-agent, \
     x-amzn-trace-id, amz-sdk-invocation-id, amz-sdk-request";
/// ...and for how long a browser may reuse the answer (seconds).
const CORS_MAX_AGE: &str = "86400";
/// The response headers a page's script may read: what the SDKs take from an answer.
const CORS_EXPOSE_HEADERS: &str = "x-amzn-RequestId, x-amz-id-2, Date";

/// A response body: a whole answer, or (SubscribeToShard) a stream of event frames.
pub type ResponseBody = BoxBody<Bytes, std::io::Error>;

/// A response body holding `bytes`.
fn full_body(bytes: Vec<u8>) -> ResponseBody {
    Full::new(Bytes::from(bytes))
        .map_err(|never| match never {})
        .boxed()
}

/// SubscribeToShard's answer: the frames its subscription task produces, in order, until the
/// task ends the channel. The task makes the next frame only once this body has taken the
/// previous one (the channel holds one), so a slow reader holds one event in memory.
struct EventStreamBody {
    frames: tokio::sync::mpsc::Receiver<Bytes>,
}

impl http_body::Body for EventStreamBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        self.frames
            .poll_recv(cx)
            .map(|frame| frame.map(|bytes| Ok(http_body::Frame::data(bytes))))
    }
}

/// The bytes of request bodies that may be held in memory at once, across all connections.
pub struct RequestBudget {
    permits: Semaphore,
    units_max: u64,
}

impl RequestBudget {
    /// A budget of `bytes` (at least one maximal request, so every valid request can run).
    pub fn new(bytes: u64) -> RequestBudget {
        let units_max = bytes
            .max(REQUEST_BYTES_MAX as u64)
            .div_ceil(BUDGET_UNIT_BYTES);
        let units_max = units_max.min(Semaphore::MAX_PERMITS as u64);
        RequestBudget {
            permits: Semaphore::new(units_max as usize),
            units_max,
        }
    }

    /// Reserves room for a body of `bytes`, waiting at most [`BUDGET_WAIT_MAX`].
    async fn reserve(&self, bytes: u64) -> Result<SemaphorePermit<'_>, KinesisError> {
        let units = bytes.div_ceil(BUDGET_UNIT_BYTES).clamp(1, self.units_max);
        let units = u32::try_from(units).unwrap_or(u32::MAX);
        match tokio::time::timeout(BUDGET_WAIT_MAX, self.permits.acquire_many(units)).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(KinesisError::new(
                ErrorKind::InternalFailureException,
                Some("The server is at its request memory budget; retry later.".to_owned()),
            )),
        }
    }
}

/// Serves until `shutdown` turns true, then stops accepting and lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    transport: Arc<Transport>,
    node: Arc<Node>,
    budget: Arc<RequestBudget>,
    auth: Arc<Auth>,
    console: bool,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let connections = tokio_util_tracker();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let node = Arc::clone(&node);
        let budget = Arc::clone(&budget);
        let auth = Arc::clone(&auth);
        let transport = Arc::clone(&transport);
        let connection_shutdown = shutdown.clone();
        let guard = connections.clone();
        // The connection's answers in memory, for the send timeout (send.rs).
        let watch = SendWatch::new();
        let connection_watch = Arc::clone(&watch);
        tokio::spawn(async move {
            let _guard = guard;
            let service = service_fn(move |request| {
                let node = Arc::clone(&node);
                let budget = Arc::clone(&budget);
                let auth = Arc::clone(&auth);
                let watch = Arc::clone(&watch);
                async move {
                    let response =
                        handle(node, &budget, &auth, console, peer, &watch, request).await;
                    Ok::<_, Infallible>(response)
                }
            });
            // TLS handshake (with --tls-cert), HTTP/1.1-or-h2 detection, timeouts: transport.rs.
            transport
                .serve_connection(stream, peer, service, connection_shutdown, connection_watch)
                .await;
        });
    }
    // Wait (bounded) for in-flight connections to finish their requests.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while Arc::strong_count(&connections) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Counts live connections by reference count; cheaper than a dedicated tracker crate.
fn tokio_util_tracker() -> Arc<()> {
    Arc::new(())
}

async fn handle(
    node: Arc<Node>,
    budget: &RequestBudget,
    auth: &Auth,
    console: bool,
    peer: SocketAddr,
    watch: &Arc<SendWatch>,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let (request_id, id_2) = response_ids();
    let origin = request.headers().get(http::header::ORIGIN).cloned();
    if request.method() == http::Method::OPTIONS {
        return preflight(request.headers(), origin, &request_id, &id_2);
    }
    if request.method() == http::Method::GET && request.uri().path() == CLUSTER_STATUS_PATH {
        return cluster_status(&node, auth, request.headers(), &request_id, &id_2).await;
    }
    if request.method() == http::Method::POST && request.uri().path().starts_with("/cluster/") {
        return cluster_admin(&node, request, &request_id, &id_2).await;
    }
    // GET /console/...: the web console's files (console.rs), never the API.
    if let Some(response) = crate::console::answer(console, &request) {
        return response;
    }
    let (parts, body) = request.into_parts();
    // The answer, errors included, is in the request's format: CBOR clients cannot read JSON.
    let format = wire_format(&parts.headers);
    let outcome = match read_body(body, &parts.headers, budget).await {
        // The reservation lives until the answer is built: the decoded request and the
        // records it produces are about as large as the body. Nothing runs, whatever the
        // target, unless the request is authenticated (the payload hash needs the body).
        Ok((body, _reservation)) => match auth.caller(&node, &parts, &body) {
            Ok(caller) => match (target_operation(&parts.headers), left_cluster(&node)) {
                (Some(_), Some(reason)) => Err(KinesisError::internal(reason)),
                (Some(operation), None) => {
                    // With RIFFLE_LOG=debug, what riffle logs while running the call carries
                    // the id the client has in `x-amzn-RequestId`. A debug span costs nothing
                    // at the default level (the put path makes one per request); an internal
                    // failure is logged below with its id at any level.
                    let span = tracing::debug_span!("request", id = %request_id);
                    let call = service::call(&node, &caller, format, operation, &body);
                    tracing::Instrument::instrument(call, span).await
                }
                (None, _) => Err(KinesisError::new(
                    ErrorKind::UnknownOperationException,
                    None,
                )),
            },
            Err(error) => Err(error),
        },
        Err(error) => Err(error),
    };
    let (status, body, content_type) = match outcome {
        Ok(service::Answer::Body(body)) => (
            StatusCode::OK,
            send::answer_body(body, &node.config.responses, watch),
            format.content_type(),
        ),
        Ok(service::Answer::Events(frames)) => (
            StatusCode::OK,
            EventStreamBody { frames }.boxed(),
            EVENT_STREAM_CONTENT_TYPE,
        ),
        Err(error) => {
            if error.is_internal() {
                // In full here, once; the client gets AWS's generic text (`client_view`).
                tracing::error!(%peer, %request_id, detail = ?error.message, "internal failure");
            } else {
                tracing::debug!(%peer, %request_id, error = %error.type_name(), message = ?error.log_message(), "request refused");
            }
            let status =
                StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            (
                status,
                full_body(format.encode_error(&error)),
                format.content_type(),
            )
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    aws_headers(headers, &request_id, &id_2, origin);
    headers.insert(
        http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(CORS_EXPOSE_HEADERS),
    );
    response
}

/// A request id (a UUID, `x-amzn-RequestId`) and an `x-amz-id-2` (base64 of random bytes),
/// from one read of the OS random source.
fn response_ids() -> (String, String) {
    let mut random = [0u8; 16 + ID_2_BYTES];
    if getrandom::fill(&mut random).is_err() {
        // Identifiers, not secrets: std's randomly keyed hasher over a counter and the clock
        // still makes them unique per process.
        fallback_random(&mut random);
    }
    let (id, id_2) = random.split_at(16);
    let mut id_bytes = [0u8; 16];
    id_bytes.copy_from_slice(id);
    let request_id = uuid::Builder::from_random_bytes(id_bytes)
        .into_uuid()
        .to_string();
    use base64::Engine as _;
    (
        request_id,
        base64::engine::general_purpose::STANDARD.encode(id_2),
    )
}

fn fallback_random(bytes: &mut [u8]) {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let keys = std::collections::hash_map::RandomState::new();
    for chunk in bytes.chunks_mut(8) {
        let mut hasher = keys.build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_nanos()),
        );
        let word = hasher.finish().to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

/// The headers of every answer: the ids, `Date` (SDKs correct clock skew from it), and the
/// origin a browser may read it from.
fn aws_headers(headers: &mut HeaderMap, request_id: &str, id_2: &str, origin: Option<HeaderValue>) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", value);
    }
    if let Ok(value) = HeaderValue::from_str(id_2) {
        headers.insert("x-amz-id-2", value);
    }
    if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(std::time::SystemTime::now()))
    {
        headers.insert(http::header::DATE, value);
    }
    match origin {
        Some(origin) => {
            headers.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(http::header::VARY, HeaderValue::from_static("Origin"));
        }
        None => {
            headers.insert(
                http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
    }
}

/// The answer to a CORS preflight (any `OPTIONS`): 200 with what a Kinesis call from a page
/// needs, whatever the origin. The headers the preflight asks for are allowed beside the SDKs'
/// own, so a header a newer SDK adds does not break pages.
/// Where a node answers `riffle cluster status` (its own view of the cluster, as JSON).
pub const CLUSTER_STATUS_PATH: &str = "/cluster/status";

/// The cluster's status names every account's streams: where the API needs credentials, it
/// needs the cluster secret's proof too (an operator's read, as `riffle cluster status` sends
/// it); in anonymous mode, where anyone may list every stream anyway, it is open.
async fn cluster_status(
    node: &Node,
    auth: &Auth,
    headers: &HeaderMap,
    request_id: &str,
    id_2: &str,
) -> Response<ResponseBody> {
    let Some(cluster) = node.cluster() else {
        return json_answer(
            StatusCode::NOT_FOUND,
            SINGLE_NODE.to_owned(),
            request_id,
            id_2,
        );
    };
    if matches!(auth, Auth::Keys(_)) {
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        let checked = cluster.check_read_proof(
            CLUSTER_STATUS_PATH,
            header(riffle_cluster::cluster::ADMIN_AT_HEADER),
            header(riffle_cluster::cluster::ADMIN_PROOF_HEADER),
        );
        if let Err(reason) = checked {
            let body = serde_json::json!({ "error": reason }).to_string();
            return json_answer(StatusCode::FORBIDDEN, body, request_id, id_2);
        }
    }
    json_answer(
        StatusCode::OK,
        cluster.status_json().await,
        request_id,
        id_2,
    )
}

const SINGLE_NODE: &str =
    "{\"error\":\"this riffle is a single node (started without --cluster-listen)\"}";

/// The largest body of an operator request to the cluster (`riffle cluster leave/remove`).
const CLUSTER_ADMIN_BYTES_MAX: usize = 4096;

/// Why this node serves no API call any more (it left its cluster), if so.
fn left_cluster(node: &Node) -> Option<String> {
    node.cluster().and_then(|cluster| cluster.refusal())
}

/// `POST /cluster/leave`, `/cluster/remove`: operator requests, authenticated with the
/// cluster secret (riffle-cluster checks the proof), not with the API's credentials.
async fn cluster_admin(
    node: &Node,
    request: Request<Incoming>,
    request_id: &str,
    id_2: &str,
) -> Response<ResponseBody> {
    let Some(cluster) = node.cluster() else {
        return json_answer(
            StatusCode::NOT_FOUND,
            SINGLE_NODE.to_owned(),
            request_id,
            id_2,
        );
    };
    let path = request.uri().path().to_owned();
    let proof = request
        .headers()
        .get(riffle_cluster::cluster::ADMIN_PROOF_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = tokio::time::timeout(
        BODY_READ_TIMEOUT,
        Limited::new(request.into_body(), CLUSTER_ADMIN_BYTES_MAX).collect(),
    )
    .await;
    let body = match body {
        Ok(Ok(collected)) => collected.to_bytes().to_vec(),
        _ => {
            return json_answer(
                StatusCode::BAD_REQUEST,
                "{\"error\":\"the request body did not arrive whole (at most 4 KiB)\"}".to_owned(),
                request_id,
                id_2,
            )
        }
    };
    let (status, answer) = cluster.admin(&path, body, proof).await;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_answer(status, answer, request_id, id_2)
}

fn json_answer(
    status: StatusCode,
    body: String,
    request_id: &str,
    id_2: &str,
) -> Response<ResponseBody> {
    let mut response = Response::new(full_body(body.into_bytes()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    aws_headers(headers, request_id, id_2, None);
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn preflight(
    request: &HeaderMap,
    origin: Option<HeaderValue>,
    request_id: &str,
    id_2: &str,
) -> Response<ResponseBody> {
    let mut response = Response::new(full_body(Vec::new()));
    let headers = response.headers_mut();
    aws_headers(headers, request_id, id_2, origin);
    headers.insert(
        http::header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(CORS_ALLOW_METHODS),
    );
    let requested = request
        .get(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|value| value.to_str().ok())
        .filter(|list| !list.trim().is_empty())
        .and_then(|list| HeaderValue::from_str(&format!("{CORS_ALLOW_HEADERS}, {list}")).ok());
    headers.insert(
        http::header::ACCESS_CONTROL_ALLOW_HEADERS,
        requested.unwrap_or(HeaderValue::from_static(CORS_ALLOW_HEADERS)),
    );
    headers.insert(
        http::header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(CORS_MAX_AGE),
    );
    response
}

/// The wire format the request's `Content-Type` names.
fn wire_format(headers: &HeaderMap) -> WireFormat {
    WireFormat::from_content_type(
        headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok()),
    )
}

/// The operation named by `X-Amz-Target`, or `None` for anything that is not a Kinesis target.
fn target_operation(headers: &HeaderMap) -> Option<&str> {
    let target = headers.get("x-amz-target")?.to_str().ok()?;
    target.strip_prefix(TARGET_PREFIX)
}

async fn read_body<'b>(
    body: Incoming,
    headers: &HeaderMap,
    budget: &'b RequestBudget,
) -> Result<(Bytes, SemaphorePermit<'b>), KinesisError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > REQUEST_BYTES_MAX as u64) {
        return Err(too_large());
    }
    let reservation = budget
        .reserve(declared.unwrap_or(REQUEST_BYTES_MAX as u64))
        .await?;
    let collected = tokio::time::timeout(
        BODY_READ_TIMEOUT,
        Limited::new(body, REQUEST_BYTES_MAX).collect(),
    )
    .await
    .map_err(|_| {
        KinesisError::new(
            ErrorKind::SerializationException,
            Some(format!(
                "The request body did not arrive within {} seconds.",
                BODY_READ_TIMEOUT.as_secs()
            )),
        )
    })?;
    match collected {
        Ok(collected) => Ok((collected.to_bytes(), reservation)),
        Err(error) => {
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(too_large())
            } else {
                Err(KinesisError::new(
                    ErrorKind::SerializationException,
                    Some(format!("Could not read the request body: {error}")),
                ))
            }
        }
    }
}

fn too_large() -> KinesisError {
    KinesisError::new(
        ErrorKind::SerializationException,
        Some(format!(
            "Request body exceeds the maximum size of {REQUEST_BYTES_MAX} bytes."
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The budget makes a request wait while others hold the memory, refuses it after the
    /// wait limit, and lets it in once the memory is released.
    #[tokio::test(start_paused = true)]
    async fn the_request_budget_bounds_bodies_in_flight() {
        let budget = RequestBudget::new(0);
        let max = REQUEST_BYTES_MAX as u64;
        let first = budget
            .reserve(max)
            .await
            .expect("one maximal request always fits");
        let refused = budget.reserve(1).await;
        assert_eq!(
            refused.expect_err("the budget is full").kind,
            ErrorKind::InternalFailureException
        );
        drop(first);
        let small = budget.reserve(10).await.expect("room again");
        let half = budget
            .reserve(max / 2)
            .await
            .expect("the rest fits beside it");
        drop((small, half));
        // A body larger than the budget still reserves at most the whole budget.
        assert!(budget.reserve(u64::MAX).await.is_ok());
    }

    #[test]
    fn the_content_type_picks_the_wire_format() {
        let mut headers = HeaderMap::new();
        assert_eq!(wire_format(&headers), WireFormat::Json);
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-cbor-1.1"),
        );
        assert_eq!(wire_format(&headers), WireFormat::Cbor);
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        assert_eq!(wire_format(&headers), WireFormat::Json);
        // Not visible ASCII: JSON, as before CBOR existed.
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_bytes(b"application/x-amz-cbor-1.1\xff").unwrap(),
        );
        assert_eq!(wire_format(&headers), WireFormat::Json);
    }

    #[test]
    fn targets_need_the_kinesis_prefix() {
        let mut headers = HeaderMap::new();
        assert_eq!(target_operation(&headers), None);
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("Kinesis_20131202.PutRecord"),
        );
        assert_eq!(target_operation(&headers), Some("PutRecord"));
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("DynamoDB_20120810.PutItem"),
        );
        assert_eq!(target_operation(&headers), None);
    }
}
