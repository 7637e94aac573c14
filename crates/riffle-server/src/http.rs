//! The HTTP front end: one listener serving HTTP/1.1 and h2c (prior knowledge) on the same port.
//!
//! Every Kinesis call is `POST /` with `X-Amz-Target: Kinesis_20131202.<Operation>` and a JSON
//! body. This module reads the body under a size cap, learns the caller's account from the SigV4
//! `Authorization` header (not verified yet), hands the call to [`riffle_core::service`], and
//! writes the answer with the headers SDKs expect (`x-amzn-RequestId`, `Date`). It never panics
//! on client input: anything malformed becomes an AWS-style error response and the connection
//! keeps serving.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use riffle_core::service::{self, Caller};
use riffle_core::Node;
use riffle_proto::{ErrorKind, KinesisError};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Largest request body accepted. A 10 MiB PutRecords is about 13.4 MiB as base64 JSON.
pub const REQUEST_BYTES_MAX: usize = 16 * 1024 * 1024;
const TARGET_PREFIX: &str = "Kinesis_20131202.";
const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Serves until `shutdown` turns true, then stops accepting and lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    node: Arc<Node>,
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
        let mut connection_shutdown = shutdown.clone();
        let guard = connections.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let service = service_fn(move |request| {
                let node = Arc::clone(&node);
                async move { Ok::<_, Infallible>(handle(node, peer, request).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                }
                _ = connection_shutdown.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
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
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = request.into_parts();
    let outcome = match target_operation(&parts.headers) {
        Some(operation) => {
            let operation = operation.to_owned();
            match read_body(body, &parts.headers).await {
                Ok(body) => {
                    let caller = caller(&node, &parts.headers);
                    service::call(&node, &caller, &operation, &body).await
                }
                Err(error) => Err(error),
            }
        }
        None => Err(KinesisError::new(
            ErrorKind::UnknownOperationException,
            None,
        )),
    };
    let (status, body) = match outcome {
        Ok(body) => (StatusCode::OK, body),
        Err(error) => {
            if error.http_status() >= 500 {
                tracing::error!(%peer, %request_id, error = %error.type_name(), message = ?error.message, "internal failure");
            } else {
                tracing::debug!(%peer, %request_id, error = %error.type_name(), message = ?error.message, "request refused");
            }
            let status =
                StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            (status, error.to_json())
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-requestid", value);
    }
    if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(std::time::SystemTime::now()))
    {
        headers.insert(http::header::DATE, value);
    }
    response
}

/// The operation named by `X-Amz-Target`, or `None` for anything that is not a Kinesis target.
fn target_operation(headers: &HeaderMap) -> Option<&str> {
    let target = headers.get("x-amz-target")?.to_str().ok()?;
    target.strip_prefix(TARGET_PREFIX)
}

async fn read_body(body: Incoming, headers: &HeaderMap) -> Result<Bytes, KinesisError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > REQUEST_BYTES_MAX as u64) {
        return Err(too_large());
    }
    match Limited::new(body, REQUEST_BYTES_MAX).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
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

/// The caller's account and region from `Authorization: AWS4-HMAC-SHA256 Credential=AKID/date/
/// region/kinesis/aws4_request, ...`. A 12-digit access key id names the account (as
/// kinesis-mock does); anything else is the default account. Signatures are not verified yet.
fn caller(node: &Node, headers: &HeaderMap) -> Caller {
    let mut caller = Caller {
        account: node.config.default_account.clone(),
        region: node.config.region.clone(),
    };
    let Some(authorization) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
    else {
        return caller;
    };
    let Some(credential) = authorization
        .split([',', ' '])
        .find_map(|part| part.trim().strip_prefix("Credential="))
    else {
        return caller;
    };
    let mut scope = credential.split('/');
    let access_key = scope.next().unwrap_or_default();
    if access_key.len() == 12 && access_key.bytes().all(|byte| byte.is_ascii_digit()) {
        caller.account = access_key.to_owned();
    }
    caller
}

#[cfg(test)]
mod tests {
    use super::*;

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
