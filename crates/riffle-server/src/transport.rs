//! The transport under the HTTP front end: one port, three ways in.
//!
//! - **Plain** (no `--tls-cert`): HTTP/1.1 and h2c with prior knowledge, told apart by
//!   hyper-util's `auto` builder, which reads the first 24 bytes and compares them with the
//!   HTTP/2 connection preface.
//! - **TLS** (`--tls-cert` and `--tls-key`): every connection must complete a TLS handshake
//!   first (rustls, ring provider). ALPN offers `h2, http/1.1`. Whatever ALPN said, the
//!   decrypted stream goes through the same `auto` builder: a client that chose `h2` sends the
//!   preface and gets HTTP/2; one that chose `http/1.1`, or sent no ALPN at all, gets HTTP/1.1
//!   unless it sends the preface anyway, as older Java SDK clients do after a TLS handshake
//!   without ALPN (kinesis-api.md §1.6).
//!
//! **Failures stay local.** A handshake that fails (plain HTTP on the TLS port, garbage, a
//! client that does not trust the certificate) or does not finish within
//! [`TLS_HANDSHAKE_TIMEOUT`] closes that connection only and is logged at debug; the listener
//! keeps serving. A connection must also deliver its first [`SNIFF_BYTES`] bytes (enough to
//! know its protocol) within [`REQUEST_HEAD_TIMEOUT`], and an HTTP/1.1 connection each request
//! head within the same time, so silent or trickling clients cannot hold tasks and sockets.
//!
//! **Answers that are not taken.** Once an answer of the connection has had no part taken by
//! the client for the send timeout (`--send-timeout-s`, 30 s), the connection is closed and
//! everything it held is freed (`send.rs`).
//!
//! **Loading.** [`TlsFiles::load`] reads the PEM certificate chain and key once at start; any
//! problem refuses the start with a message naming the file.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;

use crate::http::ResponseBody;
use crate::send::{SendWatch, SEND_TIMEOUT_DEFAULT};

/// How long a client may take to complete the TLS handshake after connecting.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the first bytes of a connection, and each HTTP/1.1 request head (including the
/// idle time before it on a kept-alive connection), may take to arrive.
pub const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// The bytes the `auto` builder needs to tell HTTP/2 from HTTP/1.1: the length of the h2
/// connection preface.
pub const SNIFF_BYTES: usize = 24;
/// ALPN protocols offered over TLS, in order of preference.
const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

// HTTP/2 settings. The workload that shapes them is enhanced fan-out: KCL keeps one
// SubscribeToShard stream open per leased shard, many on one connection, each pushing up to
// 2 MiB/s for 5 minutes, while producers send PutRecords bodies of up to ~13.4 MiB.

/// Streams a client may open at once on one connection. One subscription per leased shard:
/// a worker holding a thousand leases fits on a single connection (the Java SDK's HTTP/2 pool
/// opens another connection when one reaches the server's limit). hyper's default, 200, is
/// low for a KCL worker.
const H2_MAX_CONCURRENT_STREAMS: u32 = 1000;
/// Receive window per stream (request bodies). hyper's 64 KiB default makes a 13 MiB
/// PutRecords wait for ~200 WINDOW_UPDATE round trips; 1 MiB lets a body flow at line rate.
const H2_STREAM_WINDOW_BYTES: u32 = 1024 * 1024;
/// Receive window for the whole connection: the most request data one connection can have
/// buffered in the server before the handler reads it (bodies wait for the request-memory
/// budget before they are read), so it bounds memory per connection whatever the stream count.
const H2_CONNECTION_WINDOW_BYTES: u32 = 16 * 1024 * 1024;
/// Largest frame the server accepts. 16 KiB is the protocol default; 1 MiB cuts per-frame
/// overhead on large bodies and is still one bounded buffer per connection. (What the server
/// sends is bounded by the client's own setting.)
const H2_MAX_FRAME_BYTES: u32 = 1024 * 1024;
/// Data queued per stream for sending before the server stops polling the body for more: a
/// subscription's next events wait for the client's flow-control window instead of piling up
/// (about 200 ms of a 2 MiB/s subscription).
const H2_SEND_BUFFER_BYTES: usize = 400 * 1024;
/// A ping after this long without frames from the client, and the connection is closed if the
/// answer takes longer than [`H2_KEEP_ALIVE_TIMEOUT`]: a consumer that vanished (killed, a
/// laptop lid closed) releases its subscriptions in under a minute instead of holding them for
/// their full 5 minutes. Clients answer pings without any help from the application.
const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// How connections on the listener are set up: plain, or TLS with the loaded certificate.
pub struct Transport {
    tls: Option<TlsAcceptor>,
    builder: auto::Builder<TokioExecutor>,
    send_timeout: Duration,
}

impl Transport {
    /// Plain TCP: HTTP/1.1 and h2c (prior knowledge).
    pub fn plain() -> Transport {
        Transport {
            tls: None,
            builder: connection_builder(),
            send_timeout: SEND_TIMEOUT_DEFAULT,
        }
    }

    /// TLS only, with the certificate and key of `files`.
    pub fn tls(files: TlsFiles) -> Transport {
        Transport {
            tls: Some(TlsAcceptor::from(files.config)),
            builder: connection_builder(),
            send_timeout: SEND_TIMEOUT_DEFAULT,
        }
    }

    /// Closes a connection once one of its answers goes this long without the client taking
    /// any part of it.
    pub fn with_send_timeout(mut self, send_timeout: Duration) -> Transport {
        self.send_timeout = send_timeout;
        self
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves one accepted connection until it ends, or until `shutdown` turns true, when it
    /// finishes its in-flight requests and closes. Errors end this connection only.
    pub async fn serve_connection<S>(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        service: S,
        shutdown: watch::Receiver<bool>,
        answers: Arc<SendWatch>,
    ) where
        S: Service<Request<Incoming>, Response = Response<ResponseBody>, Error = Infallible>
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let Some(acceptor) = &self.tls else {
            self.drive(stream, peer, service, shutdown, answers).await;
            return;
        };
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                tracing::trace!(%peer, alpn = ?alpn.as_deref().map(String::from_utf8_lossy), "TLS handshake done");
                self.drive(tls, peer, service, shutdown, answers).await;
            }
            Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
            Err(_) => tracing::debug!(
                %peer,
                "TLS handshake not done within {} s; closing",
                TLS_HANDSHAKE_TIMEOUT.as_secs()
            ),
        }
    }

    async fn drive<I, S>(
        &self,
        io: I,
        peer: SocketAddr,
        service: S,
        mut shutdown: watch::Receiver<bool>,
        answers: Arc<SendWatch>,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Service<Request<Incoming>, Response = Response<ResponseBody>, Error = Infallible>
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let io = TokioIo::new(SniffDeadline::new(io, REQUEST_HEAD_TIMEOUT));
        let connection = self.builder.serve_connection(io, service);
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
            }
            _ = answers.stalled(self.send_timeout) => {
                // Dropping the connection frees whatever it still held.
                tracing::debug!(
                    %peer,
                    "an answer went {} s without the client taking any of it; closing",
                    self.send_timeout.as_secs()
                );
            }
            _ = shutdown.changed() => {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        }
    }
}

/// The connection builder shared by plain and TLS connections (see the constants above for
/// why each setting is what it is).
fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(REQUEST_HEAD_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .initial_stream_window_size(H2_STREAM_WINDOW_BYTES)
        .initial_connection_window_size(H2_CONNECTION_WINDOW_BYTES)
        .max_frame_size(H2_MAX_FRAME_BYTES)
        .max_send_buf_size(H2_SEND_BUFFER_BYTES)
        .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT);
    builder
}

/// A certificate chain and key loaded from PEM files, as a rustls server configuration.
pub struct TlsFiles {
    config: Arc<ServerConfig>,
}

impl TlsFiles {
    /// Reads `cert` (PEM, the server certificate first, then any intermediates) and `key`
    /// (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC, unencrypted). The error names the file at fault.
    pub fn load(cert: &Path, key: &Path) -> Result<TlsFiles, String> {
        let cert_pem = read_file(cert, "certificate")?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("{}: not a PEM certificate file: {error}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!(
                "{}: no PEM certificate (-----BEGIN CERTIFICATE-----) in the file",
                cert.display()
            ));
        }
        let key_pem = read_file(key, "key")?;
        let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| match error {
            rustls_pki_types::pem::Error::NoItemsFound => format!(
                "{}: no unencrypted private key (PKCS#8, PKCS#1 RSA or SEC1 EC PEM) in the file",
                key.display()
            ),
            error => format!("{}: not a PEM key file: {error}", key.display()),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("TLS setup failed: {error}"))?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .map_err(|error| match error {
                rustls::Error::InconsistentKeys(_) => format!(
                    "the key in {} is not the key of the certificate in {} (the first one in \
                     the file must be the server's)",
                    key.display(),
                    cert.display()
                ),
                error => format!(
                    "{} and {} do not make a usable certificate and key: {error}",
                    cert.display(),
                    key.display()
                ),
            })?;
        config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
        Ok(TlsFiles {
            config: Arc::new(config),
        })
    }
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path)
        .map_err(|error| format!("cannot read the TLS {what} {}: {error}", path.display()))
}

/// Wraps a connection so that reads fail with `TimedOut` if its first `SNIFF_BYTES` bytes
/// have not arrived within the deadline. The `auto` builder reads those bytes before handing
/// the connection to HTTP/1.1 (which has its own header timeout) or HTTP/2 (which pings), and
/// waits for them without a limit; after them the wrapper only passes data through.
struct SniffDeadline<I> {
    io: I,
    bytes_left: usize,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<I> SniffDeadline<I> {
    fn new(io: I, within: Duration) -> SniffDeadline<I> {
        SniffDeadline {
            io,
            bytes_left: SNIFF_BYTES,
            deadline: Some(Box::pin(tokio::time::sleep(within))),
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for SniffDeadline<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        let Some(deadline) = this.deadline.as_mut() else {
            return polled;
        };
        match polled {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().len().saturating_sub(before);
                this.bytes_left = this.bytes_left.saturating_sub(read);
                if this.bytes_left == 0 {
                    this.deadline = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client sent no request in time",
                ))),
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for SniffDeadline<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A client that connects and says nothing is cut off at the deadline; one that sends its
    /// first bytes in time is never cut off afterwards, however long it then pauses.
    #[tokio::test(start_paused = true)]
    async fn the_sniff_deadline_covers_only_the_first_bytes() {
        let (client, server) = tokio::io::duplex(64);
        let mut silent = SniffDeadline::new(server, Duration::from_secs(30));
        let mut buf = [0u8; 8];
        let error = silent.read(&mut buf).await.expect_err("nothing arrived");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        drop(client);

        let (mut client, server) = tokio::io::duplex(64);
        let mut talking = SniffDeadline::new(server, Duration::from_secs(30));
        client.write_all(&[b'x'; 10]).await.unwrap();
        assert_eq!(talking.read(&mut buf).await.unwrap(), 8);
        assert_eq!(talking.read(&mut buf).await.unwrap(), 2);
        // 10 of 24 bytes: still within the sniffing window, so a stall still times out.
        assert_eq!(
            talking.read(&mut buf).await.expect_err("stalled").kind(),
            io::ErrorKind::TimedOut
        );

        let (mut client, server) = tokio::io::duplex(64);
        let mut done = SniffDeadline::new(server, Duration::from_secs(30));
        client.write_all(&[b'x'; SNIFF_BYTES]).await.unwrap();
        let mut preface = [0u8; SNIFF_BYTES];
        done.read_exact(&mut preface).await.unwrap();
        let late = tokio::spawn(async move {
            let mut buf = [0u8; 4];
            done.read(&mut buf).await
        });
        tokio::time::sleep(Duration::from_secs(3600)).await;
        client.write_all(b"late").await.unwrap();
        assert_eq!(late.await.unwrap().unwrap(), 4);
    }
}
