//! One keep-alive HTTP/1.1 connection speaking the Kinesis JSON 1.1 protocol.
//!
//! Each benchmark worker owns one `Client`, so "concurrency" is exactly the number of TCP
//! connections the server sees, and requests on a connection never overlap (no pipelining):
//! the same shape as an SDK client with a connection pool of that size.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;

const CONTENT_TYPE_JSON: &str = "application/x-amz-json-1.1";
/// Not a real key: servers under test accept any well-formed SigV4 header, and one without an
/// account-shaped (12-digit) key id lands in the server's default account.
const ACCESS_KEY_ID: &str = "AKIDRIFFLEBENCH";
const REGION: &str = "us-east-1";
const SIGNATURE_HEX_LEN: usize = 64;

/// Error types that mean "slow down", counted apart from real errors.
pub const THROTTLE_TYPES: [&str; 3] = [
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "ThrottlingException",
];

/// Kinesis operations the benchmark calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CreateStream,
    DeleteStream,
    DescribeStream,
    DescribeStreamSummary,
    ListShards,
    PutRecord,
    PutRecords,
    GetShardIterator,
    GetRecords,
    RegisterStreamConsumer,
    DescribeStreamConsumer,
    DeregisterStreamConsumer,
    SubscribeToShard,
    CreateQueue,
    DeleteQueue,
    ReceiveQueueRecords,
    AcknowledgeQueueRecords,
    CreateChannel,
    DescribeChannel,
    DeleteChannel,
}

impl Operation {
    fn target(self) -> &'static str {
        match self {
            Self::CreateStream => "Kinesis_20131202.CreateStream",
            Self::DeleteStream => "Kinesis_20131202.DeleteStream",
            Self::DescribeStream => "Kinesis_20131202.DescribeStream",
            Self::DescribeStreamSummary => "Kinesis_20131202.DescribeStreamSummary",
            Self::ListShards => "Kinesis_20131202.ListShards",
            Self::PutRecord => "Kinesis_20131202.PutRecord",
            Self::PutRecords => "Kinesis_20131202.PutRecords",
            Self::GetShardIterator => "Kinesis_20131202.GetShardIterator",
            Self::GetRecords => "Kinesis_20131202.GetRecords",
            Self::RegisterStreamConsumer => "Kinesis_20131202.RegisterStreamConsumer",
            Self::DescribeStreamConsumer => "Kinesis_20131202.DescribeStreamConsumer",
            Self::DeregisterStreamConsumer => "Kinesis_20131202.DeregisterStreamConsumer",
            Self::SubscribeToShard => "Kinesis_20131202.SubscribeToShard",
            Self::CreateQueue => "Kinesis_20131202.CreateQueue",
            Self::DeleteQueue => "Kinesis_20131202.DeleteQueue",
            Self::ReceiveQueueRecords => "Kinesis_20131202.ReceiveQueueRecords",
            Self::AcknowledgeQueueRecords => "Kinesis_20131202.AcknowledgeQueueRecords",
            Self::CreateChannel => "Kinesis_20131202.CreateChannel",
            Self::DescribeChannel => "Kinesis_20131202.DescribeChannel",
            Self::DeleteChannel => "Kinesis_20131202.DeleteChannel",
        }
    }
}

/// Where the server is: `http://HOST[:PORT][/]`, resolved once.
#[derive(Debug)]
pub struct Endpoint {
    address: SocketAddr,
    host_header: HeaderValue,
}

impl Endpoint {
    pub async fn resolve(url: &str) -> Result<Self, String> {
        let (host, port) = parse_endpoint(url)?;
        let address = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|error| format!("cannot resolve {host}: {error}"))?
            .next()
            .ok_or_else(|| format!("{host} resolves to no address"))?;
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let host_header = HeaderValue::from_str(&authority)
            .map_err(|_| format!("`{authority}` cannot be a Host header"))?;
        Ok(Self {
            address,
            host_header,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

/// Splits `http://host:port` into host and port. Only plain HTTP: the benchmark measures the
/// server, and TLS would mostly measure the cipher.
pub fn parse_endpoint(url: &str) -> Result<(String, u16), String> {
    const DEFAULT_HTTP_PORT: u16 = 80;
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("endpoint `{url}` must start with http:// (the benchmark speaks plain HTTP)")
    })?;
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        return Err(format!(
            "endpoint `{url}` must be http://HOST[:PORT] without a path"
        ));
    }
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("endpoint `{url}` has an unclosed IPv6 bracket"))?;
        let port = match after.strip_prefix(':') {
            Some(port) => parse_port(port, url)?,
            None if after.is_empty() => DEFAULT_HTTP_PORT,
            None => return Err(format!("endpoint `{url}` is not http://HOST[:PORT]")),
        };
        return Ok((host.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => Ok((host.to_owned(), parse_port(port, url)?)),
        Some(_) => Err(format!("endpoint `{url}` has no host")),
        None => Ok((authority.to_owned(), DEFAULT_HTTP_PORT)),
    }
}

fn parse_port(text: &str, url: &str) -> Result<u16, String> {
    text.parse()
        .map_err(|_| format!("endpoint `{url}` has a bad port `{text}`"))
}

/// Why a call did not return a 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The server answered with an error body (`__type` normalised to the bare name).
    Api { error_type: String, message: String },
    /// Connecting, sending or receiving failed; the connection is dropped.
    Transport(String),
    /// No complete answer within the request timeout; the connection is dropped.
    Timeout,
}

impl CallError {
    /// The name errors are counted under.
    pub fn kind(&self) -> &str {
        match self {
            Self::Api { error_type, .. } => error_type,
            Self::Transport(_) => "transport",
            Self::Timeout => "timeout",
        }
    }

    pub fn is_throttle(&self) -> bool {
        is_throttle_type(self.kind())
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Api {
                error_type,
                message,
            } => write!(f, "{error_type}: {message}"),
            Self::Transport(detail) => write!(f, "transport error: {detail}"),
            Self::Timeout => write!(f, "request timed out"),
        }
    }
}

pub fn is_throttle_type(error_type: &str) -> bool {
    THROTTLE_TYPES.contains(&error_type)
}

/// SigV4-shaped headers, rebuilt once per second: servers check the date's presence and shape
/// (and possibly skew), never the signature.
struct AuthHeaders {
    epoch_s: u64,
    amz_date: HeaderValue,
    authorization: HeaderValue,
}

impl AuthHeaders {
    fn new() -> Self {
        Self {
            epoch_s: u64::MAX,
            amz_date: HeaderValue::from_static(""),
            authorization: HeaderValue::from_static(""),
        }
    }

    fn refresh(&mut self) {
        let now = SystemTime::now();
        let epoch_s = now
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or(0);
        if epoch_s == self.epoch_s {
            return;
        }
        let amz_date = crate::units::amz_date(now);
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/{}/{REGION}/kinesis/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={}",
            &amz_date[..8],
            "0".repeat(SIGNATURE_HEX_LEN)
        );
        // Both strings are built from ASCII digits and fixed text.
        self.amz_date = HeaderValue::from_str(&amz_date)
            .unwrap_or_else(|_| unreachable!("amz dates are ASCII"));
        self.authorization = HeaderValue::from_str(&authorization)
            .unwrap_or_else(|_| unreachable!("the authorization header is ASCII"));
        self.epoch_s = epoch_s;
    }
}

/// One connection to the server, reconnected lazily after a failure.
pub struct Client {
    endpoint: Arc<Endpoint>,
    sender: Option<http1::SendRequest<Full<Bytes>>>,
    timeout: Duration,
    auth: AuthHeaders,
}

impl Client {
    pub fn new(endpoint: Arc<Endpoint>, timeout: Duration) -> Self {
        Self {
            endpoint,
            sender: None,
            timeout,
            auth: AuthHeaders::new(),
        }
    }

    /// Sends one request and returns the body of a 200 answer.
    pub async fn call(&mut self, operation: Operation, body: Bytes) -> Result<Bytes, CallError> {
        let outcome = tokio::time::timeout(self.timeout, self.exchange(operation, body)).await;
        let result = outcome.unwrap_or(Err(CallError::Timeout));
        if matches!(result, Err(CallError::Transport(_) | CallError::Timeout)) {
            // A half-finished HTTP/1.1 exchange leaves the connection unusable.
            self.sender = None;
        }
        result
    }

    /// Like `call`, but tries once more on a fresh connection after a transport failure: an
    /// idle keep-alive connection may have been closed by the server between two setup calls.
    /// Only for idempotent or conflict-detecting calls (describe, list, create, delete).
    pub async fn call_once_more(
        &mut self,
        operation: Operation,
        body: Bytes,
    ) -> Result<Bytes, CallError> {
        match self.call(operation, body.clone()).await {
            Err(CallError::Transport(_)) => self.call(operation, body).await,
            other => other,
        }
    }

    /// Sends one request and returns the still-streaming body of a 200 answer (SubscribeToShard);
    /// only the headers are bounded by the request timeout. The connection is the stream's.
    pub async fn open_stream(
        &mut self,
        operation: Operation,
        body: Bytes,
    ) -> Result<hyper::body::Incoming, CallError> {
        let request = self.request(operation, body)?;
        let timeout = self.timeout;
        let sender = self.connected().await?;
        sender.ready().await.map_err(transport)?;
        let response = tokio::time::timeout(timeout, sender.send_request(request))
            .await
            .map_err(|_| CallError::Timeout)?
            .map_err(transport)?;
        let status = response.status();
        if status == StatusCode::OK {
            self.sender = None;
            return Ok(response.into_body());
        }
        let error_type_header = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(transport)?
            .to_bytes();
        Err(api_error(status, error_type_header.as_deref(), &body))
    }

    fn request(
        &mut self,
        operation: Operation,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, CallError> {
        self.auth.refresh();
        Request::builder()
            .method(Method::POST)
            .uri("/")
            .header(HOST, self.endpoint.host_header.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_JSON))
            .header("x-amz-target", HeaderValue::from_static(operation.target()))
            .header("x-amz-date", self.auth.amz_date.clone())
            .header(AUTHORIZATION, self.auth.authorization.clone())
            .body(Full::new(body))
            .map_err(|error| CallError::Transport(format!("cannot build request: {error}")))
    }

    async fn exchange(&mut self, operation: Operation, body: Bytes) -> Result<Bytes, CallError> {
        let request = self.request(operation, body)?;
        let sender = self.connected().await?;
        sender.ready().await.map_err(transport)?;
        let response = sender.send_request(request).await.map_err(transport)?;
        let status = response.status();
        let error_type_header = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(transport)?
            .to_bytes();
        if status == StatusCode::OK {
            Ok(body)
        } else {
            Err(api_error(status, error_type_header.as_deref(), &body))
        }
    }

    async fn connected(&mut self) -> Result<&mut http1::SendRequest<Full<Bytes>>, CallError> {
        if self
            .sender
            .as_ref()
            .is_some_and(|sender| sender.is_closed())
        {
            self.sender = None;
        }
        if self.sender.is_none() {
            let stream = TcpStream::connect(self.endpoint.address)
                .await
                .map_err(|error| CallError::Transport(format!("connect: {error}")))?;
            // Small requests must leave at once, not wait for Nagle to batch them.
            stream
                .set_nodelay(true)
                .map_err(|error| CallError::Transport(format!("TCP_NODELAY: {error}")))?;
            let (sender, connection) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(transport)?;
            // The connection task ends when the sender is dropped or the peer closes; its
            // error, if any, resurfaces on the next request through the sender.
            tokio::spawn(async move {
                let _ = connection.await;
            });
            self.sender = Some(sender);
        }
        self.sender
            .as_mut()
            .ok_or_else(|| unreachable!("a sender was just stored"))
    }
}

fn transport(error: hyper::Error) -> CallError {
    CallError::Transport(error.to_string())
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "__type")]
    error_type: Option<String>,
    message: Option<String>,
    #[serde(rename = "Message")]
    message_capitalised: Option<String>,
}

/// Reads an error answer the way botocore does: `__type` (or the `x-amzn-ErrorType` header)
/// without any `namespace#` prefix or `:detail` suffix, and `message` or `Message`.
pub fn api_error(status: StatusCode, error_type_header: Option<&str>, body: &[u8]) -> CallError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let (error_type, message) = match parsed {
        Some(parsed) => (
            parsed.error_type,
            parsed.message.or(parsed.message_capitalised),
        ),
        None => (None, None),
    };
    let error_type = error_type
        .as_deref()
        .or(error_type_header)
        .map(normalise_error_type)
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
    let message =
        message.unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
    CallError::Api {
        error_type,
        message,
    }
}

fn normalise_error_type(raw: &str) -> String {
    let after_namespace = raw.rsplit('#').next().unwrap_or(raw);
    let before_detail = after_namespace.split(':').next().unwrap_or(after_namespace);
    before_detail.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_host_and_port() {
        assert_eq!(
            parse_endpoint("http://127.0.0.1:4567").unwrap(),
            ("127.0.0.1".to_owned(), 4567)
        );
        assert_eq!(
            parse_endpoint("http://localhost:4568/").unwrap(),
            ("localhost".to_owned(), 4568)
        );
        assert_eq!(
            parse_endpoint("http://example").unwrap(),
            ("example".to_owned(), 80)
        );
        assert_eq!(
            parse_endpoint("http://[::1]:4567").unwrap(),
            ("::1".to_owned(), 4567)
        );
        assert!(parse_endpoint("https://127.0.0.1:4567").is_err());
        assert!(parse_endpoint("127.0.0.1:4567").is_err());
        assert!(parse_endpoint("http://127.0.0.1:notaport").is_err());
        assert!(parse_endpoint("http://127.0.0.1:4567/path").is_err());
        assert!(parse_endpoint("http://:4567").is_err());
    }

    #[test]
    fn error_bodies_are_read_like_botocore() {
        let error = api_error(
            StatusCode::BAD_REQUEST,
            None,
            br#"{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded"}"#,
        );
        assert!(error.is_throttle());
        assert_eq!(error.kind(), "ProvisionedThroughputExceededException");

        let error = api_error(
            StatusCode::BAD_REQUEST,
            None,
            br#"{"__type":"com.amazon.coral.validate#ValidationException:extra","Message":"m"}"#,
        );
        assert_eq!(
            error,
            CallError::Api {
                error_type: "ValidationException".into(),
                message: "m".into()
            }
        );
        assert!(!error.is_throttle());

        let error = api_error(
            StatusCode::BAD_REQUEST,
            Some("ResourceNotFoundException"),
            b"",
        );
        assert_eq!(error.kind(), "ResourceNotFoundException");

        let error = api_error(StatusCode::BAD_GATEWAY, None, b"<html>oops</html>");
        assert_eq!(error.kind(), "HTTP 502");
    }
}
