//! TLS and the protocols one port speaks: `riffle dev-cert`, `riffle serve --tls-cert
//! --tls-key` driven by the real `aws-sdk-kinesis` over HTTPS trusting only the dev CA, ALPN
//! (`h2`, `http/1.1`, none), what a TLS port does with plain HTTP, garbage and silence, and
//! HTTP/1.1 and h2c prior knowledge on a plain port (kinesis-api.md §1.6).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::timeout::TimeoutConfig;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::Client;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::common::*;

/// How long `riffle dev-cert`, or a `riffle serve` that must refuse to start, may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a raw exchange with the TLS port may take before the server counts as hung.
const RAW_TIMEOUT: Duration = Duration::from_secs(10);
/// The server's TLS handshake limit (transport.rs) and the slack allowed on top of it.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_SLACK: Duration = Duration::from_secs(8);
const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The four files of one `riffle dev-cert --out DIR` run, in a directory removed on drop.
struct DevCert {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    stdout: String,
}

impl DevCert {
    fn new() -> DevCert {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("certs");
        let stdout = dev_cert(&path);
        DevCert {
            _dir: dir,
            dir: path,
            stdout,
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn ca_pem(&self) -> Vec<u8> {
        read(&self.file("ca.pem"))
    }

    /// `riffle serve --in-memory --limits off` with this certificate.
    fn serve(&self) -> Server {
        let cert = self.file("cert.pem");
        let key = self.file("key.pem");
        Server::with_args(&[
            "--in-memory",
            "--limits",
            "off",
            "--tls-cert",
            cert.to_str().expect("UTF-8 path"),
            "--tls-key",
            key.to_str().expect("UTF-8 path"),
        ])
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

/// Runs the binary with `args` and waits (bounded) for it to exit.
fn run_riffle(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_riffle"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn riffle");
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    while child.try_wait().expect("poll riffle").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("reap riffle");
            panic!(
                "`riffle {}` did not exit within {COMMAND_TIMEOUT:?}; stderr:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect riffle's output")
}

/// `riffle dev-cert --out dir`, which must succeed; returns what it printed.
fn dev_cert(dir: &Path) -> String {
    let output = run_riffle(&["dev-cert", "--out", dir.to_str().expect("UTF-8 path")]);
    assert!(
        output.status.success(),
        "riffle dev-cert failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("dev-cert prints UTF-8")
}

/// `riffle dev-cert --out dir`, which must fail; returns its stderr.
fn dev_cert_refused(dir: &Path) -> String {
    let output = run_riffle(&["dev-cert", "--out", dir.to_str().expect("UTF-8 path")]);
    assert!(
        !output.status.success(),
        "riffle dev-cert should have refused; stdout:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn pem_certificates(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM certificates")
}

/// An SDK client for `endpoint` whose HTTPS client trusts exactly the PEM certificates given
/// (no system roots), through the SDK's own rustls connector (ALPN h2, http/1.1).
fn sdk_client_trusting(endpoint: &str, ca_pem: &[u8]) -> Client {
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(ca_pem);
    let tls_context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("TLS context");
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(tls_context)
        .build_https();
    let config = aws_sdk_kinesis::Config::builder()
        .endpoint_url(endpoint)
        .http_client(http_client)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .behavior_version(BehaviorVersion::latest())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// A rustls client (ring) trusting only `ca_pem`, offering `alpn` (nothing if empty).
fn tls_connector(ca_pem: &[u8], alpn: &[&str]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in pem_certificates(ca_pem) {
        roots.add(cert).expect("the dev CA is a valid trust anchor");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn
        .iter()
        .map(|protocol| protocol.as_bytes().to_vec())
        .collect();
    TlsConnector::from(Arc::new(config))
}

/// ALPN protocols a client offers, the protocol it speaks, the ALPN the server must pick and
/// the HTTP version of the answer.
type AlpnCase = (&'static [&'static str], Wire, Option<&'static str>, Version);

#[derive(Clone, Copy, Debug)]
enum Wire {
    Http1,
    Http2,
}

/// One ListStreams over `io` with a hyper client speaking `wire` (HTTP/2 with prior
/// knowledge: no upgrade, no ALPN needed); returns the response's version, status and body.
async fn list_streams_over<I>(io: I, wire: Wire, authority: &str) -> (Version, StatusCode, Bytes)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let body = Full::new(Bytes::from_static(b"{}"));
    let request = |uri: String| {
        Request::post(uri)
            .header(http::header::HOST, authority)
            .header(http::header::CONTENT_TYPE, JSON_CONTENT_TYPE)
            .header("x-amz-target", "Kinesis_20131202.ListStreams")
            .body(body.clone())
            .expect("request")
    };
    let response = match wire {
        Wire::Http1 => {
            let (mut send, connection) = hyper::client::conn::http1::handshake(io)
                .await
                .expect("HTTP/1.1 handshake");
            tokio::spawn(connection);
            send.send_request(request("/".to_owned())).await
        }
        Wire::Http2 => {
            let (mut send, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .expect("HTTP/2 handshake");
            tokio::spawn(connection);
            send.send_request(request(format!("https://{authority}/")))
                .await
        }
    }
    .unwrap_or_else(|error| panic!("ListStreams over {wire:?}: {error:?}"));
    let version = response.version();
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("response body")
        .to_bytes();
    (version, status, body)
}

fn assert_list_streams_answer(status: StatusCode, body: &Bytes, what: &str) {
    assert_eq!(status, StatusCode::OK, "{what}: {body:?}");
    let json: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|error| panic!("{what}: body is not JSON ({error}): {body:?}"));
    assert!(json["StreamNames"].is_array(), "{what}: {json}");
}

/// Writes `bytes` (maybe none) to a raw TCP connection and reads until the server closes it;
/// panics if it neither closes nor answers within `within`. Returns what came back.
fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8], within: Duration) -> Vec<u8> {
    let mut stream = StdTcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(within)).unwrap();
    let _ = stream.write_all(bytes);
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the TLS port neither answered nor closed within {within:?}")
            }
            Err(_) => return received, // reset: closed too
        }
    }
}

/// dev-cert writes a CA and a chain for localhost with private keys, says how to use them,
/// and on a second run keeps the CA and says it replaced the server certificate.
#[test]
fn dev_cert_writes_a_ca_and_a_server_chain_and_keeps_the_ca() {
    let first = DevCert::new();
    for name in ["ca.pem", "ca-key.pem", "cert.pem", "key.pem"] {
        assert!(
            first.file(name).is_file(),
            "{name} written:\n{}",
            first.stdout
        );
    }
    #[cfg(unix)]
    for name in ["ca-key.pem", "key.pem"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(first.file(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} is readable by its owner only");
    }
    for expected in [
        "--tls-cert",
        "--tls-key",
        "--ca-bundle",
        "AWS_CA_BUNDLE",
        "verify=",
        "keytool",
        "NODE_EXTRA_CA_CERTS",
    ] {
        assert!(
            first.stdout.contains(expected),
            "dev-cert's output mentions {expected}:\n{}",
            first.stdout
        );
    }
    let chain = pem_certificates(&read(&first.file("cert.pem")));
    let ca = pem_certificates(&first.ca_pem());
    assert_eq!(
        chain.len(),
        2,
        "cert.pem holds the server certificate and the CA"
    );
    assert_eq!(ca.len(), 1);
    assert_eq!(chain[1], ca[0], "the chain ends with ca.pem's certificate");

    let ca_key = read(&first.file("ca-key.pem"));
    let old_chain = read(&first.file("cert.pem"));
    let old_key = read(&first.file("key.pem"));
    let again = dev_cert(&first.dir);
    assert_eq!(
        first.ca_pem(),
        read(&first.file("ca.pem")),
        "the CA is kept"
    );
    assert_eq!(
        ca_key,
        read(&first.file("ca-key.pem")),
        "the CA key is kept"
    );
    assert_ne!(
        old_chain,
        read(&first.file("cert.pem")),
        "a new server certificate"
    );
    assert_ne!(old_key, read(&first.file("key.pem")), "a new server key");
    assert!(again.contains("Reusing the CA"), "{again}");
    assert!(
        again.contains("Replaced"),
        "the output says what it replaced:\n{again}"
    );
}

/// Half a CA, or a CA key that is not the certificate's, is refused and left as it was.
#[test]
fn dev_cert_refuses_to_overwrite_a_ca_it_cannot_reuse() {
    let certs = DevCert::new();
    let ca_pem = certs.ca_pem();
    let ca_key = read(&certs.file("ca-key.pem"));

    std::fs::remove_file(certs.file("ca-key.pem")).unwrap();
    let stderr = dev_cert_refused(&certs.dir);
    assert!(
        stderr.contains("ca-key.pem"),
        "names the missing file: {stderr}"
    );
    assert_eq!(certs.ca_pem(), ca_pem, "ca.pem untouched");
    assert!(
        !certs.file("ca-key.pem").exists(),
        "nothing made up in its place"
    );

    // The server key is a valid key, but not the CA's.
    std::fs::copy(certs.file("key.pem"), certs.file("ca-key.pem")).unwrap();
    let stderr = dev_cert_refused(&certs.dir);
    assert!(stderr.contains("ca.pem"), "names the CA: {stderr}");
    assert_eq!(certs.ca_pem(), ca_pem, "ca.pem untouched");

    std::fs::write(certs.file("ca-key.pem"), &ca_key).unwrap();
    dev_cert(&certs.dir);
    assert_eq!(certs.ca_pem(), ca_pem, "the restored CA is reused");
}

/// The round trip the issue asks for: CreateStream, PutRecord, GetRecords through the SDK's
/// HTTPS client trusting only ca.pem, with a server certificate made by a second run (so the
/// reused CA must still sign chains that verify), and a record large enough to need HTTP/2
/// flow control in both directions. A client trusting another CA is refused.
#[tokio::test]
async fn sdk_round_trip_over_tls_trusting_only_the_dev_ca() {
    let certs = DevCert::new();
    dev_cert(&certs.dir);
    let server = certs.serve();
    let endpoint = format!("https://127.0.0.1:{}", server.addr.port());
    let client = sdk_client_trusting(&endpoint, &certs.ca_pem());

    create_stream(&client, "tls", 1).await;
    let small = b"over TLS".to_vec();
    let large = Prng::new(7).bytes(900 * 1024);
    let mut sequence_numbers = Vec::new();
    for data in [&small, &large] {
        let put = client
            .put_record()
            .stream_name("tls")
            .partition_key("key")
            .data(Blob::new(data.clone()))
            .send()
            .await
            .unwrap_or_else(|error| panic!("PutRecord over TLS: {error:?}"));
        sequence_numbers.push(put.sequence_number().to_owned());
    }
    let iterator =
        shard_iterator(&client, "tls", &shard_id(0), ShardIteratorType::TrimHorizon).await;
    let records = read_until_caught_up(&client, iterator).await;
    let got: Vec<&[u8]> = records
        .iter()
        .map(|record| record.data().as_ref())
        .collect();
    let lengths: Vec<usize> = got.iter().map(|data| data.len()).collect();
    assert!(
        got == [small.as_slice(), large.as_slice()],
        "records read back differ from those put (lengths {lengths:?})"
    );
    let got_numbers: Vec<&str> = records.iter().map(|r| r.sequence_number()).collect();
    assert_eq!(got_numbers, sequence_numbers);

    let stranger = DevCert::new();
    let untrusting = sdk_client_trusting(&endpoint, &stranger.ca_pem());
    match untrusting.list_streams().send().await {
        Err(SdkError::DispatchFailure(_)) => {}
        other => panic!("a client trusting another CA must fail the handshake: {other:?}"),
    }
    // The plain-HTTP endpoint on a TLS port: no answer, not a service error.
    let plain = server.client();
    match plain.list_streams().send().await {
        Err(SdkError::DispatchFailure(_) | SdkError::ResponseError(_)) => {}
        other => panic!("plain HTTP to the TLS port must fail: {other:?}"),
    }
    client
        .list_streams()
        .send()
        .await
        .expect("the server still serves TLS clients");
}

/// Plain HTTP, garbage and a client that never speaks cost the TLS port one connection each
/// (closed, the last after the handshake limit); the server keeps serving.
#[tokio::test]
async fn a_tls_port_closes_plain_http_garbage_and_silence_and_keeps_serving() {
    let certs = DevCert::new();
    let mut server = certs.serve();
    let addr = server.addr;

    let plain_request = b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: \
        application/x-amz-json-1.1\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\n\
        Content-Length: 2\r\n\r\n{}";
    let garbage = Prng::new(11).bytes(4096);
    let (answer_plain, answer_garbage, silent_took) = tokio::task::spawn_blocking(move || {
        let plain = raw_exchange(addr, plain_request, RAW_TIMEOUT);
        let garbage = raw_exchange(addr, &garbage, RAW_TIMEOUT);
        let started = Instant::now();
        let silence = raw_exchange(addr, b"", HANDSHAKE_TIMEOUT + HANDSHAKE_SLACK);
        assert!(silence.is_empty(), "nothing is sent to a silent client");
        (plain, garbage, started.elapsed())
    })
    .await
    .unwrap();
    for (what, answer) in [("plain HTTP", &answer_plain), ("garbage", &answer_garbage)] {
        assert!(
            !answer.starts_with(b"HTTP/"),
            "{what} on the TLS port gets no HTTP answer: {:?}",
            String::from_utf8_lossy(answer)
        );
    }
    assert!(
        silent_took >= HANDSHAKE_TIMEOUT - Duration::from_secs(1),
        "a silent client is closed by the handshake limit, not before: {silent_took:?}"
    );

    let client = sdk_client_trusting(
        &format!("https://127.0.0.1:{}", addr.port()),
        &certs.ca_pem(),
    );
    client
        .list_streams()
        .send()
        .await
        .expect("the server still serves after bad connections");
    assert!(server.is_running());
}

/// ALPN: `h2` gets HTTP/2, `http/1.1` gets HTTP/1.1, both offered gets HTTP/2; with no ALPN
/// the server still tells the two apart by the preface (older Java clients send h2 so).
#[tokio::test]
async fn alpn_selects_http2_or_http1_over_tls() {
    let certs = DevCert::new();
    let server = certs.serve();
    let ca = certs.ca_pem();
    let cases: [AlpnCase; 5] = [
        (&["h2"], Wire::Http2, Some("h2"), Version::HTTP_2),
        (
            &["http/1.1"],
            Wire::Http1,
            Some("http/1.1"),
            Version::HTTP_11,
        ),
        (
            &["h2", "http/1.1"],
            Wire::Http2,
            Some("h2"),
            Version::HTTP_2,
        ),
        (&[], Wire::Http2, None, Version::HTTP_2),
        (&[], Wire::Http1, None, Version::HTTP_11),
    ];
    for (offered, wire, negotiated, version) in cases {
        let what = format!("ALPN {offered:?} speaking {wire:?}");
        let tcp = TcpStream::connect(server.addr).await.expect("connect");
        // The DNS name in the certificate (the SDK test above uses its IP address).
        let name = ServerName::try_from("localhost").unwrap();
        let tls = tls_connector(&ca, offered)
            .connect(name, tcp)
            .await
            .unwrap_or_else(|error| panic!("{what}: TLS handshake: {error}"));
        assert_eq!(
            tls.get_ref().1.alpn_protocol(),
            negotiated.map(str::as_bytes),
            "{what}"
        );
        let (got_version, status, body) =
            list_streams_over(tls, wire, &format!("localhost:{}", server.addr.port())).await;
        assert_eq!(got_version, version, "{what}");
        assert_list_streams_answer(status, &body, &what);
    }
}

/// Without --tls-cert the same port speaks HTTP/1.1 and h2c with prior knowledge.
#[tokio::test]
async fn a_plain_port_serves_http1_and_h2c_prior_knowledge() {
    let server = Server::in_memory_limits(Limits::Off);
    for (wire, version) in [
        (Wire::Http1, Version::HTTP_11),
        (Wire::Http2, Version::HTTP_2),
    ] {
        let tcp = TcpStream::connect(server.addr).await.expect("connect");
        let (got_version, status, body) =
            list_streams_over(tcp, wire, &server.addr.to_string()).await;
        assert_eq!(got_version, version, "{wire:?}");
        assert_list_streams_answer(status, &body, &format!("{wire:?}"));
    }
}

/// Missing or wrong certificate and key files stop `serve` before it listens, with a
/// message naming the file at fault.
#[test]
fn serve_refuses_to_start_with_bad_tls_files() {
    let certs = DevCert::new();
    let other = DevCert::new();
    let cert = certs.file("cert.pem");
    let key = certs.file("key.pem");
    let missing = certs.dir.join("no-such-cert.pem");
    let cases: [(&Path, &Path, &Path); 4] = [
        // (cert, key, the file the message must name)
        (&missing, &key, &missing),
        (&key, &key, &key),    // a key where the certificate belongs
        (&cert, &cert, &cert), // a certificate where the key belongs
        (&cert, &other.file("key.pem"), &cert), // a key that is not the certificate's
    ];
    for (cert_arg, key_arg, named) in cases {
        let output = run_riffle(&[
            "serve",
            "--in-memory",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert_arg.to_str().unwrap(),
            "--tls-key",
            key_arg.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let what = format!(
            "--tls-cert {} --tls-key {}",
            cert_arg.display(),
            key_arg.display()
        );
        assert!(!output.status.success(), "{what}: must refuse to start");
        assert!(
            !String::from_utf8_lossy(&output.stdout).contains("listening"),
            "{what}: must not listen"
        );
        assert!(
            stderr.contains(named.to_str().unwrap()),
            "{what}: the message names {}: {stderr}",
            named.display()
        );
    }
    let output = run_riffle(&["serve", "--in-memory", "--tls-cert", cert.to_str().unwrap()]);
    assert!(!output.status.success(), "--tls-cert needs --tls-key");
}
