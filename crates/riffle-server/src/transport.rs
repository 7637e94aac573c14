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
//! keeps serving.
//!
//! **Loading.** [`TlsFiles::load`] reads the PEM certificate chain and key once at start; any
//! problem refuses the start with a message naming the file.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::http::ResponseBody;

/// How long a client may take to complete the TLS handshake after connecting.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// ALPN protocols offered over TLS, in order of preference.
const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// How connections on the listener are set up: plain, or TLS with the loaded certificate.
pub struct Transport {
    tls: Option<TlsAcceptor>,
    builder: auto::Builder<TokioExecutor>,
}

impl Transport {
    /// Plain TCP: HTTP/1.1 and h2c (prior knowledge).
    pub fn plain() -> Transport {
        Transport {
            tls: None,
            builder: connection_builder(),
        }
    }

    /// TLS only, with the certificate and key of `files`.
    pub fn tls(files: TlsFiles) -> Transport {
        Transport {
            tls: Some(TlsAcceptor::from(files.config)),
            builder: connection_builder(),
        }
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
    ) where
        S: Service<Request<Incoming>, Response = Response<ResponseBody>, Error = Infallible>
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let Some(acceptor) = &self.tls else {
            self.drive(stream, peer, service, shutdown).await;
            return;
        };
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                tracing::trace!(%peer, alpn = ?alpn.as_deref().map(String::from_utf8_lossy), "TLS handshake done");
                self.drive(tls, peer, service, shutdown).await;
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
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Service<Request<Incoming>, Response = Response<ResponseBody>, Error = Infallible>
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let io = TokioIo::new(io);
        let connection = self.builder.serve_connection(io, service);
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
            }
            _ = shutdown.changed() => {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        }
    }
}

/// The connection builder shared by plain and TLS connections.
fn connection_builder() -> auto::Builder<TokioExecutor> {
    auto::Builder::new(TokioExecutor::new())
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
