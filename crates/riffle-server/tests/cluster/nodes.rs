//! Starting cluster nodes as real processes, asking them for their view, and reading a
//! stream back through one of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::timeout::TimeoutConfig;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::types::{ShardIteratorType, StreamStatus};
use aws_sdk_kinesis::Client;

use crate::common::Server;
use crate::history::{shard_ordinal, StreamRead};

/// A free loopback port.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// How one node is started (the same on every restart; `--join` only counts on the first).
#[derive(Debug, Clone)]
pub struct Spec {
    pub dir: PathBuf,
    /// `--cluster-listen`.
    pub listen: String,
    /// `--cluster-advertise`, when peers reach the node through a proxy.
    pub advertise: Option<String>,
    pub join: Option<String>,
    pub secret: PathBuf,
    /// More `riffle serve` arguments (`--kms-keys FILE`).
    pub extra: Vec<String>,
}

impl Spec {
    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--data-dir".to_owned(),
            self.dir.display().to_string(),
            "--cluster-listen".to_owned(),
            self.listen.clone(),
            "--cluster-secret-file".to_owned(),
            self.secret.display().to_string(),
            "--limits".to_owned(),
            "off".to_owned(),
        ];
        if let Some(advertise) = &self.advertise {
            args.extend(["--cluster-advertise".to_owned(), advertise.clone()]);
        }
        if let Some(join) = &self.join {
            args.extend(["--join".to_owned(), join.clone()]);
        }
        args.extend(self.extra.iter().cloned());
        args
    }

    /// Starts the node, waiting (off the async threads) until it listens.
    pub async fn start(&self) -> Server {
        let args = self.args();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Server::with_args(&args)
        })
        .await
        .expect("start task")
    }
}

/// An SDK client for a node's API endpoint: no retries (each call is one attempt the
/// history can account for), and bounded so that a paused node costs a writer seconds,
/// not minutes.
pub fn client_for(endpoint: &str, operation_timeout: Duration) -> Client {
    let config = aws_sdk_kinesis::Config::builder()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .behavior_version(BehaviorVersion::latest())
        .http_client(crate::common::sdk_http_client())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_timeout(operation_timeout)
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// `riffle cluster status --json` against a node, as an operator runs it.
pub async fn cli_status(endpoint: &str) -> serde_json::Value {
    let endpoint = endpoint.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_riffle"))
            .args(["cluster", "status", "--json", "--endpoint", &endpoint])
            .output()
            .expect("run riffle cluster status")
    })
    .await
    .expect("status task");
    assert!(
        output.status.success(),
        "riffle cluster status failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("status is JSON")
}

/// `GET /cluster/status`, given up after `within` (a paused node accepts connections and
/// never answers).
pub async fn status(endpoint: &str, within: Duration) -> Result<serde_json::Value, String> {
    let url = format!("{endpoint}/cluster/status");
    let fetch = async {
        let uri: hyper::Uri = url.parse().map_err(|error| format!("{url}: {error}"))?;
        let host = uri.host().unwrap_or("127.0.0.1").to_owned();
        let port = uri.port_u16().unwrap_or(80);
        let stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|error| format!("{url}: {error}"))?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|error| error.to_string())?;
        tokio::spawn(connection);
        let request = hyper::Request::get(uri.path())
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|error| error.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| error.to_string())?;
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map_err(|error| error.to_string())?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|error| format!("{url}: not JSON: {error}"))
    };
    tokio::time::timeout(within, fetch)
        .await
        .map_err(|_| format!("{url}: no answer within {within:?}"))?
}

/// Polls `riffle cluster status` until `check` holds (60 s at most).
pub async fn wait_for<F: Fn(&serde_json::Value) -> bool>(endpoint: &str, what: &str, check: F) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = cli_status(endpoint).await;
        if check(&seen) {
            return;
        }
        assert!(Instant::now() < deadline, "{what} did not happen: {seen:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (30 s at most) until `stream` is ACTIVE as seen through `client`.
pub async fn wait_active(client: &Client, stream: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(described) = client
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
        {
            if described
                .stream_description_summary()
                .is_some_and(|summary| summary.stream_status() == &StreamStatus::Active)
            {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{stream} never became ACTIVE");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every record of every shard, read through `client` from TRIM_HORIZON to the end, in the
/// order GetRecords returned them.
pub async fn read_all(client: &Client, stream: &str) -> Result<StreamRead, String> {
    let listed = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .map_err(|error| format!("ListShards: {error:?}"))?;
    let mut read = BTreeMap::new();
    for shard in listed.shards() {
        let shard_id = shard.shard_id().to_owned();
        let mut records = Vec::new();
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(&shard_id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(|error| format!("GetShardIterator {shard_id}: {error:?}"))?
            .shard_iterator()
            .map(str::to_owned);
        while let Some(current) = iterator {
            let page = client
                .get_records()
                .shard_iterator(current)
                .limit(10_000)
                .send()
                .await
                .map_err(|error| format!("GetRecords {shard_id}: {error:?}"))?;
            for record in page.records() {
                records.push((
                    record.sequence_number().to_owned(),
                    record.data().as_ref().to_vec(),
                ));
            }
            if page.records().is_empty() || page.millis_behind_latest() == Some(0) {
                break;
            }
            iterator = page.next_shard_iterator().map(str::to_owned);
        }
        read.insert(shard_ordinal(&shard_id), records);
    }
    Ok(read)
}

/// Reads through `client` until it holds at least `at_least` records (a replica that just
/// restarted catches up) or `within` passes; the last read either way.
pub async fn read_at_least(
    client: &Client,
    stream: &str,
    at_least: usize,
    within: Duration,
) -> StreamRead {
    let deadline = Instant::now() + within;
    loop {
        match read_all(client, stream).await {
            Ok(read) if read.values().map(Vec::len).sum::<usize>() >= at_least => return read,
            Ok(read) if Instant::now() > deadline => return read,
            Err(error) if Instant::now() > deadline => panic!("reading {stream}: {error}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The address a node's `DATA/cluster.json` records.
pub fn recorded_addr(dir: &Path) -> String {
    let bytes = std::fs::read(dir.join("cluster.json")).expect("read cluster.json");
    let identity: serde_json::Value = serde_json::from_slice(&bytes).expect("cluster.json");
    identity["addr"]
        .as_str()
        .expect("cluster.json names an address")
        .to_owned()
}

/// One unsigned JSON API call to a node (the nodes run without credentials): the status and
/// the answer (`null` for an empty body). For the operations the SDK lacks (queues).
pub async fn api_call(
    endpoint: &str,
    operation: &str,
    body: &serde_json::Value,
    within: Duration,
) -> Result<(u16, serde_json::Value), String> {
    let call = async {
        let uri: hyper::Uri = endpoint
            .parse()
            .map_err(|error| format!("{endpoint}: {error}"))?;
        let host = uri.host().unwrap_or("127.0.0.1").to_owned();
        let port = uri.port_u16().unwrap_or(80);
        let stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|error| format!("{endpoint}: {error}"))?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|error| error.to_string())?;
        tokio::spawn(connection);
        let request = hyper::Request::post("/")
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", format!("Kinesis_20131202.{operation}"))
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_string(),
            )))
            .map_err(|error| error.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| error.to_string())?;
        let status = response.status().as_u16();
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map_err(|error| error.to_string())?
            .to_bytes();
        let answer = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|error| format!("{operation}: not JSON: {error}"))?
        };
        Ok((status, answer))
    };
    tokio::time::timeout(within, call)
        .await
        .map_err(|_| format!("{operation} on {endpoint}: no answer within {within:?}"))?
}
