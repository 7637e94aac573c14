//! Shared harness for the black-box tests: spawn the real `riffle` binary, talk to it with the
//! real `aws-sdk-kinesis` client, and a few helpers that encode Kinesis facts (hash ranges,
//! MD5 routing, sequence-number order) independently of the server's own code.
//!
//! Several test binaries (`sdk`, `crash`, `damaged_data_dir`, ...) include this file, and each
//! uses only part of it.
#![allow(dead_code)]

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::fmt::Debug;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::timeout::TimeoutConfig;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::types::{Record, Shard, ShardIteratorType};
use aws_sdk_kinesis::Client;

/// The account the server uses when the access key id is not a 12-digit number.
pub const ACCOUNT: &str = "000000000000";
/// Region the server runs in by default (ARNs carry it).
pub const REGION: &str = "us-east-1";
/// 2^128 in decimal: one past the largest hash key.
pub const HASH_KEY_LIMIT: &str = "340282366920938463463374607431768211456";
/// The contract's record size limit (data plus partition key) for a stream with default settings.
pub const RECORD_BYTES_MAX: usize = 1024 * 1024;
/// Production sequence numbers, and riffle's by contract, are 56 decimal digits.
pub const SEQUENCE_NUMBER_DIGITS: usize = 56;

/// How long the binary may take to print its listening line (recovery after a crash included).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Every SDK call gives up after this long, so a hung server fails a test instead of hanging it.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of the server's stderr kept to print when a test fails.
const LOG_LINES_MAX: usize = 300;
/// Empty GetRecords answers in a row tolerated before a reader must have seen
/// MillisBehindLatest 0 (riffle never blocks and has no trim gaps, so one would do).
const EMPTY_PAGES_MAX: u32 = 5;
/// The exact prefix of the one line the server prints to stdout once it listens.
const LISTENING_PREFIX: &str = "riffle listening on ";
/// The prefix of the line that follows it with `--metrics-listen`.
const METRICS_LISTENING_PREFIX: &str = "riffle metrics listening on ";

/// `riffle serve --limits`: AWS's throughput and call-rate limits (the server's default), or
/// none. Tests that need more than a shard's quota per second, or many control-plane calls in
/// a row, and do not test the limits themselves, run with `Off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limits {
    Aws,
    Off,
}

impl Limits {
    fn arg(self) -> &'static str {
        match self {
            Limits::Aws => "aws",
            Limits::Off => "off",
        }
    }
}

/// A running `riffle serve` child process, killed (SIGKILL) when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// The Prometheus endpoint's address, for servers started with `--metrics-listen`.
    pub metrics_addr: Option<SocketAddr>,
    log: Arc<Mutex<VecDeque<String>>>,
    log_thread: Option<JoinHandle<()>>,
}

impl Server {
    /// A server whose data lives in a throwaway directory (`--in-memory`), with the default
    /// (AWS) limits.
    pub fn in_memory() -> Server {
        Server::spawn(&["--in-memory"])
    }

    /// An `--in-memory` server with `--limits` as given.
    pub fn in_memory_limits(limits: Limits) -> Server {
        Server::spawn(&["--in-memory", "--limits", limits.arg()])
    }

    /// A durable server (default `sync` durability) on `data_dir`, with the default limits.
    pub fn on_data_dir(data_dir: &Path) -> Server {
        Server::on_data_dir_with(data_dir, &[])
    }

    /// An `--in-memory` server with more `serve` flags (e.g. `--update-window-ms 3000`).
    pub fn in_memory_with(extra_args: &[&str]) -> Server {
        let mut args = vec!["--in-memory"];
        args.extend_from_slice(extra_args);
        Server::spawn(&args)
    }

    /// A durable server on `data_dir` with more `serve` flags. Start it again on the same
    /// directory (after [`Server::kill`]) to test what survives a restart.
    pub fn on_data_dir_with(data_dir: &Path, extra_args: &[&str]) -> Server {
        let dir = data_dir.to_str().expect("temp dir path is UTF-8");
        let mut args = vec!["--data-dir", dir];
        args.extend_from_slice(extra_args);
        Server::spawn(&args)
    }

    /// A durable server on `data_dir` with `--limits` as given.
    pub fn on_data_dir_limits(data_dir: &Path, limits: Limits) -> Server {
        let dir = data_dir.to_str().expect("temp dir path is UTF-8");
        Server::spawn(&["--data-dir", dir, "--limits", limits.arg()])
    }

    /// A server with any further `serve` arguments (`--in-memory` is not implied).
    pub fn with_args(args: &[&str]) -> Server {
        Server::spawn(args)
    }

    /// An `--in-memory` server that requires SigV4 signatures by the keys of `credentials`
    /// (`--credentials FILE`), with more `serve` flags.
    pub fn with_credentials(credentials: &Path, extra_args: &[&str]) -> Server {
        let file = credentials.to_str().expect("credentials path is UTF-8");
        let mut args = vec!["--in-memory", "--credentials", file];
        args.extend_from_slice(extra_args);
        Server::spawn(&args)
    }

    /// An `--in-memory` server with `--metrics-listen 127.0.0.1:0` and more `serve` flags; its
    /// metrics port is in [`Server::metrics_addr`].
    pub fn in_memory_with_metrics(extra_args: &[&str]) -> Server {
        let mut args = vec!["--in-memory", "--metrics-listen", "127.0.0.1:0"];
        args.extend_from_slice(extra_args);
        Server::spawn(&args)
    }

    /// As [`Server::with_args`], logging at `log_filter` (a `RIFFLE_LOG` value) whatever the
    /// test process's own `RIFFLE_LOG` says: for tests that inspect the server's log.
    pub fn with_log_filter(args: &[&str], log_filter: &str) -> Server {
        Server::spawn_logging(args, log_filter)
    }

    /// A durable server on `data_dir` whose KMS keys are `key_file` (`--kms-keys`), with more
    /// `serve` flags. Start it again on the same directory to test what a restart keeps.
    pub fn with_kms_keys(data_dir: &Path, key_file: &Path, extra_args: &[&str]) -> Server {
        let keys = key_file.to_str().expect("temp file path is UTF-8");
        let mut args = vec!["--kms-keys", keys];
        args.extend_from_slice(extra_args);
        Server::on_data_dir_with(data_dir, &args)
    }

    /// Runs `riffle serve` with `args` expecting it to refuse to start: returns its stderr once
    /// it has exited with a failure. Fails the test if it listens, succeeds, or hangs.
    pub fn refused_start(args: &[&str]) -> String {
        let mut child = Command::new(env!("CARGO_BIN_EXE_riffle"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the riffle binary");
        let stderr = child.stderr.take().expect("stderr is piped");
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            text
        });
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the server") {
                break status;
            }
            if started.elapsed() > STARTUP_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("riffle serve {args:?} neither started nor refused in time");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        if let Some(mut out) = child.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        let stderr = reader.join().expect("stderr reader");
        assert!(
            !status.success() && !stdout.contains(LISTENING_PREFIX),
            "riffle serve {args:?} was expected to refuse to start, but {status}:\n{stdout}\n{stderr}"
        );
        stderr
    }

    fn spawn(extra_args: &[&str]) -> Server {
        let log_filter = std::env::var("RIFFLE_LOG").unwrap_or_else(|_| "info".into());
        Server::spawn_logging(extra_args, &log_filter)
    }

    /// A server started with its soft open-file limit (`RLIMIT_NOFILE`) lowered to `soft`, as
    /// many systems start processes, with `serve` flags as given (`--in-memory` not implied).
    pub fn with_soft_open_file_limit(soft: u64, args: &[&str]) -> Server {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            r#"ulimit -S -n "$1" && shift && exec "$@""#,
            "sh",
            &soft.to_string(),
            env!("CARGO_BIN_EXE_riffle"),
        ]);
        let log_filter = std::env::var("RIFFLE_LOG").unwrap_or_else(|_| "info".into());
        Server::spawn_command(command, args, &log_filter)
    }

    fn spawn_logging(extra_args: &[&str], log_filter: &str) -> Server {
        let command = Command::new(env!("CARGO_BIN_EXE_riffle"));
        Server::spawn_command(command, extra_args, log_filter)
    }

    fn spawn_command(mut command: Command, extra_args: &[&str], log_filter: &str) -> Server {
        let mut child = command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(extra_args)
            .env("RIFFLE_LOG", log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the riffle binary");

        let log = Arc::new(Mutex::new(VecDeque::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        let log_for_thread = Arc::clone(&log);
        let log_thread = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = log_for_thread.lock().unwrap();
                if log.len() == LOG_LINES_MAX {
                    log.pop_front();
                }
                log.push_back(line);
            }
        });

        // The first stdout line carries the port (the second, with --metrics-listen, the
        // metrics port); keep draining stdout afterwards so a chatty server can never block
        // on a full pipe.
        let stdout = child.stdout.take().expect("stdout is piped");
        let (line_tx, line_rx) = mpsc::channel();
        let lines_wanted = if extra_args.contains(&"--metrics-listen") {
            2
        } else {
            1
        };
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            for _ in 0..lines_wanted {
                let mut line = String::new();
                let read = reader.read_line(&mut line).map(|_| line);
                let _ = line_tx.send(read);
            }
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });

        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_addr: None,
            log,
            log_thread: Some(log_thread),
        };
        let first_line = match line_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(error)) => server.fail(&format!("reading the server's stdout failed: {error}")),
            Err(_) => server.fail("the server printed no listening line in time"),
        };
        let Some(addr) = first_line.trim_end().strip_prefix(LISTENING_PREFIX) else {
            server.fail(&format!(
                "expected a first stdout line `{LISTENING_PREFIX}ADDR`, got {first_line:?}"
            ))
        };
        server.addr = match addr.parse() {
            Ok(addr) => addr,
            Err(error) => server.fail(&format!("bad address in {first_line:?}: {error}")),
        };
        if lines_wanted == 2 {
            let line = match line_rx.recv_timeout(STARTUP_TIMEOUT) {
                Ok(Ok(line)) => line,
                Ok(Err(error)) => server.fail(&format!("reading the server's stdout: {error}")),
                Err(_) => server.fail("the server printed no metrics listening line in time"),
            };
            let Some(addr) = line.trim_end().strip_prefix(METRICS_LISTENING_PREFIX) else {
                server.fail(&format!(
                    "expected a second stdout line `{METRICS_LISTENING_PREFIX}ADDR`, got {line:?}"
                ))
            };
            server.metrics_addr = match addr.parse() {
                Ok(addr) => Some(addr),
                Err(error) => server.fail(&format!("bad address in {line:?}: {error}")),
            };
        }
        server
    }

    /// Kills the child, then panics with `what` and the server's log.
    fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(thread) = self.log_thread.take() {
            let _ = thread.join();
        }
        panic!("{what}\n--- server stderr ---\n{}", self.log_tail());
    }

    /// The last lines the server wrote to stderr.
    pub fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An SDK client for the default account.
    pub fn client(&self) -> Client {
        self.client_with_key("AKIDTEST")
    }

    /// An SDK client signing with `access_key_id` (a 12-digit one selects that account).
    pub fn client_with_key(&self, access_key_id: &str) -> Client {
        self.client_with_secret(access_key_id, "secret")
    }

    /// An SDK client signing with the key `access_key_id` / `secret_access_key`.
    pub fn client_with_secret(&self, access_key_id: &str, secret_access_key: &str) -> Client {
        Client::from_conf(
            self.config_with_secret(access_key_id, secret_access_key)
                .build(),
        )
    }

    /// The configuration of [`Server::client_with_secret`], to change before building (a time
    /// source, another HTTP client).
    pub fn config_with_secret(
        &self,
        access_key_id: &str,
        secret_access_key: &str,
    ) -> aws_sdk_kinesis::config::Builder {
        aws_sdk_kinesis::Config::builder()
            .endpoint_url(self.endpoint())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(
                access_key_id,
                secret_access_key,
                None,
                None,
                "test",
            ))
            .behavior_version(BehaviorVersion::latest())
            .http_client(sdk_http_client())
            // Retries would hide a server that answers 5xx or drops connections.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(OPERATION_TIMEOUT)
                    .build(),
            )
    }

    /// Whether the child process is still alive.
    /// The server's process id (for reading its memory use from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then waits (up to 30 s) for the clean shutdown to finish with success.
    pub fn stop_cleanly(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM {pid} failed");
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                assert!(status.success(), "clean shutdown exited with {status}");
                return;
            }
            if started.elapsed() > Duration::from_secs(30) {
                self.fail("the server did not shut down within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (a name `kill` knows: STOP, CONT, TERM, ...) to the server.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    /// SIGTERM, then waits up to `within` for the process to exit: its exit status, or an
    /// error (after a SIGKILL) if it did not exit in time.
    pub fn terminate(mut self, within: Duration) -> Result<std::process::ExitStatus, String> {
        self.signal("TERM");
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return Ok(status);
            }
            if started.elapsed() > within {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!(
                    "did not exit within {within:?} of SIGTERM; last log lines:\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (no clean shutdown), then reap the process.
    pub fn kill(mut self) {
        self.child.kill().expect("kill -9 the server");
        self.child.wait().expect("reap the server");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            if let Some(thread) = self.log_thread.take() {
                let _ = thread.join();
            }
            eprintln!(
                "--- riffle server stderr (last lines) ---\n{}",
                self.log_tail()
            );
        }
    }
}

/// The SDK's own HTTP client (hyper, with rustls for https://) on the ring provider, the one
/// the `riffle` client commands use: the SDK's default client is the same code on aws-lc,
/// whose C build alone cost CI minutes for tests that speak plain HTTP.
pub fn sdk_http_client() -> aws_sdk_kinesis::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// The ARN of stream `name` in the default account.
pub fn stream_arn(name: &str) -> String {
    format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}")
}

/// `shardId-` and a 12-digit zero-padded ordinal.
pub fn shard_id(ordinal: u32) -> String {
    format!("shardId-{ordinal:012}")
}

/// Creates a provisioned stream and fails the test if that does not work.
pub async fn create_stream(client: &Client, name: &str, shard_count: i32) {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shard_count)
        .send()
        .await
        .unwrap_or_else(|error| panic!("CreateStream {name}: {error:?}"));
}

/// All shards of a stream, following ListShards pages.
pub async fn list_all_shards(client: &Client, name: &str) -> Vec<Shard> {
    let mut shards = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let request = match &next_token {
            Some(token) => client.list_shards().next_token(token),
            None => client.list_shards().stream_name(name),
        };
        let page = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("ListShards {name}: {error:?}"));
        shards.extend(page.shards().iter().cloned());
        match page.next_token() {
            Some(token) => next_token = Some(token.to_string()),
            None => return shards,
        }
    }
}

/// The inclusive hash key range of a shard, parsed.
pub fn hash_range(shard: &Shard) -> (u128, u128) {
    let range = shard
        .hash_key_range()
        .unwrap_or_else(|| panic!("shard {} has no HashKeyRange", shard.shard_id()));
    let start: u128 = range.starting_hash_key().parse().unwrap_or_else(|_| {
        panic!(
            "StartingHashKey {:?} is not a decimal below 2^128",
            range.starting_hash_key()
        )
    });
    let end: u128 = range.ending_hash_key().parse().unwrap_or_else(|_| {
        panic!(
            "EndingHashKey {:?} is not a decimal below 2^128",
            range.ending_hash_key()
        )
    });
    (start, end)
}

/// The shard whose inclusive range holds `hash_key`.
pub fn shard_for_hash_key(shards: &[Shard], hash_key: u128) -> String {
    let matching: Vec<&Shard> = shards
        .iter()
        .filter(|shard| {
            let (start, end) = hash_range(shard);
            start <= hash_key && hash_key <= end
        })
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "hash key {hash_key} must be in exactly one shard"
    );
    matching[0].shard_id().to_string()
}

/// The ranges AWS gives a new stream of `shard_count` shards (kinesis-api.md §3.1).
pub fn expected_ranges(shard_count: u32) -> Vec<(u128, u128)> {
    // floor(2^128 / n) computed without overflowing u128: (2^128 - 1) / n differs from it only
    // when n divides 2^128, i.e. n is a power of two.
    let n = u128::from(shard_count);
    let width = if shard_count.is_power_of_two() {
        if n == 1 {
            0 // unused: the only shard covers everything
        } else {
            1u128 << (128 - shard_count.trailing_zeros())
        }
    } else {
        u128::MAX / n
    };
    (0..n)
        .map(|i| {
            let start = i * width;
            let end = if i + 1 == n {
                u128::MAX
            } else {
                (i + 1) * width - 1
            };
            (start, end)
        })
        .collect()
}

/// Asserts the shards of a fresh stream: ids in order and ranges exactly partitioning
/// [0, 2^128) as §3.1 prescribes; open shards with a StartingSequenceNumber.
pub fn assert_fresh_shards(shards: &[Shard], shard_count: u32) {
    assert_eq!(
        shards.len(),
        shard_count as usize,
        "shard count: {shards:?}"
    );
    let expected = expected_ranges(shard_count);
    let mut next_start = 0u128;
    for (index, shard) in shards.iter().enumerate() {
        assert_eq!(shard.shard_id(), shard_id(index as u32));
        let (start, end) = hash_range(shard);
        assert_eq!(start, next_start, "ranges must be contiguous: {shards:?}");
        assert!(start <= end, "empty range in {shard:?}");
        assert_eq!(
            (start, end),
            expected[index],
            "range of {}",
            shard.shard_id()
        );
        next_start = end.wrapping_add(1);
        assert!(
            shard.parent_shard_id().is_none(),
            "a fresh shard has no parent: {shard:?}"
        );
        let range = shard
            .sequence_number_range()
            .unwrap_or_else(|| panic!("no SequenceNumberRange in {shard:?}"));
        assert_sequence_number(range.starting_sequence_number());
        assert_eq!(
            range.ending_sequence_number(),
            None,
            "shard is open: {shard:?}"
        );
    }
    assert_eq!(
        hash_range(shards.last().unwrap()).1,
        u128::MAX,
        "last shard ends at 2^128-1"
    );
}

/// Asserts the contract's sequence number shape: 56 decimal digits, no leading zero.
pub fn assert_sequence_number(sequence_number: &str) {
    assert_eq!(
        sequence_number.len(),
        SEQUENCE_NUMBER_DIGITS,
        "sequence number {sequence_number:?} is not {SEQUENCE_NUMBER_DIGITS} digits"
    );
    assert!(
        sequence_number.bytes().all(|b| b.is_ascii_digit()) && !sequence_number.starts_with('0'),
        "sequence number {sequence_number:?} is not a plain decimal"
    );
}

/// Numeric order of two decimal sequence numbers (they can exceed u128).
pub fn compare_sequence_numbers(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Asserts `a < b` numerically.
pub fn assert_sequence_before(a: &str, b: &str) {
    assert_eq!(
        compare_sequence_numbers(a, b),
        Ordering::Less,
        "sequence number {a} must be below {b}"
    );
}

/// An iterator of `kind` (TRIM_HORIZON or LATEST) on a shard.
pub async fn shard_iterator(
    client: &Client,
    stream: &str,
    shard: &str,
    kind: ShardIteratorType,
) -> String {
    client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(kind)
        .send()
        .await
        .unwrap_or_else(|error| panic!("GetShardIterator {stream}/{shard}: {error:?}"))
        .shard_iterator()
        .expect("GetShardIterator returns an iterator")
        .to_string()
}

/// Reads a shard from `iterator` until a response says it is caught up (no records and
/// MillisBehindLatest 0), checking that sequence numbers strictly increase.
pub async fn read_until_caught_up(client: &Client, mut iterator: String) -> Vec<Record> {
    let mut records: Vec<Record> = Vec::new();
    let mut empty_pages = 0;
    loop {
        let page = client
            .get_records()
            .shard_iterator(&iterator)
            .send()
            .await
            .unwrap_or_else(|error| panic!("GetRecords: {error:?}"));
        for record in page.records() {
            if let Some(previous) = records.last() {
                assert_sequence_before(previous.sequence_number(), record.sequence_number());
            }
            records.push(record.clone());
        }
        let caught_up = page.records().is_empty() && page.millis_behind_latest() == Some(0);
        if page.records().is_empty() {
            empty_pages += 1;
            assert!(
                empty_pages <= EMPTY_PAGES_MAX,
                "{empty_pages} empty GetRecords pages without MillisBehindLatest 0: {page:?}"
            );
        } else {
            empty_pages = 0;
        }
        match page.next_shard_iterator() {
            Some(next) if !caught_up => iterator = next.to_string(),
            Some(_) => return records,
            None => panic!("an open shard returned no NextShardIterator"),
        }
    }
}

/// Every record of a shard, from TRIM_HORIZON.
pub async fn read_shard(client: &Client, stream: &str, shard: &str) -> Vec<Record> {
    let iterator = shard_iterator(client, stream, shard, ShardIteratorType::TrimHorizon).await;
    read_until_caught_up(client, iterator).await
}

/// Every record of a closed shard, from TRIM_HORIZON until GetRecords ends it (no
/// NextShardIterator), checking that sequence numbers strictly increase.
pub async fn read_closed_shard(client: &Client, stream: &str, shard: &str) -> Vec<Record> {
    let mut iterator = shard_iterator(client, stream, shard, ShardIteratorType::TrimHorizon).await;
    let mut records: Vec<Record> = Vec::new();
    for _ in 0..10_000 {
        let page = client
            .get_records()
            .shard_iterator(&iterator)
            .send()
            .await
            .unwrap_or_else(|error| panic!("GetRecords: {error:?}"));
        for record in page.records() {
            if let Some(previous) = records.last() {
                assert_sequence_before(previous.sequence_number(), record.sequence_number());
            }
            records.push(record.clone());
        }
        match page.next_shard_iterator() {
            Some(next) => iterator = next.to_string(),
            None => return records,
        }
    }
    panic!("closed shard {shard} of {stream} never ended");
}

/// The service error of a call that must fail, with its HTTP status. A success or a failure
/// that never reached the service (connection, timeout) fails the test.
pub fn service_error<T: Debug, E: Debug + ProvideErrorMetadata>(
    result: Result<T, SdkError<E>>,
) -> (E, u16) {
    match result {
        Ok(output) => panic!("expected an error response, got success: {output:?}"),
        Err(SdkError::ServiceError(context)) => {
            let status = context.raw().status().as_u16();
            (context.into_err(), status)
        }
        Err(other) => panic!("expected an error response from the server, got {other:?}"),
    }
}

/// Asserts a failed call's error code, HTTP 400 and, when given, its exact message; returns
/// the error for typed checks.
pub fn expect_error<T: Debug, E: Debug + ProvideErrorMetadata>(
    result: Result<T, SdkError<E>>,
    code: &str,
    message: Option<&str>,
) -> E {
    let (error, status) = service_error(result);
    assert_eq!(error.code(), Some(code), "error code of {error:?}");
    assert_eq!(status, 400, "HTTP status of {error:?}");
    if let Some(message) = message {
        assert_eq!(error.message(), Some(message), "message of {error:?}");
    }
    error
}

/// `Stream S under account A not found.`
pub fn stream_not_found(name: &str) -> String {
    format!("Stream {name} under account {ACCOUNT} not found.")
}

/// `Shard sid in stream S under account A does not exist` (AWS omits the final period).
pub fn shard_not_found(stream: &str, shard: &str) -> String {
    format!("Shard {shard} in stream {stream} under account {ACCOUNT} does not exist")
}

/// Asserts the ResourceNotFoundException of GetShardIterator for shard 0 of a stream that does
/// not exist: production names the shard, not the stream, even then (recorded by kinesalite).
pub fn assert_iterator_stream_not_found<E: Debug + ProvideErrorMetadata>(error: &E, stream: &str) {
    assert_eq!(
        error.message(),
        Some(shard_not_found(stream, &shard_id(0)).as_str()),
        "message of {error:?}"
    );
}

/// The key a durable server keeps in `DATA/meta.json` to authenticate shard iterators and
/// NextTokens. Tests that need an iterator or token no client could get yet (one issued more
/// than five minutes ago) re-seal a genuine one under it instead of waiting.
pub fn token_key(data_dir: &Path) -> [u8; 32] {
    let path = data_dir.join("meta.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    let document: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{} is not JSON: {error}", path.display()));
    let hex = document["token_key_hex"]
        .as_str()
        .unwrap_or_else(|| panic!("no token_key_hex in {}", path.display()));
    assert_eq!(hex.len(), 64, "token_key_hex is 32 bytes of hex");
    let mut key = [0u8; 32];
    for (index, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * index..2 * index + 2], 16)
            .unwrap_or_else(|_| panic!("token_key_hex {hex:?} is not hex"));
    }
    key
}

/// Whether any file under `dir` (recursively) holds `needle`: what someone with the disk sees.
pub fn data_dir_contains(dir: &Path, needle: &[u8]) -> bool {
    let mut pending = vec![dir.to_path_buf()];
    let mut files = 0;
    while let Some(path) = pending.pop() {
        let entries = std::fs::read_dir(&path)
            .unwrap_or_else(|error| panic!("read_dir {}: {error}", path.display()));
        for entry in entries {
            let entry = entry.expect("a directory entry");
            let kind = entry.file_type().expect("a file type");
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files += 1;
                let bytes = std::fs::read(entry.path())
                    .unwrap_or_else(|error| panic!("read {}: {error}", entry.path().display()));
                if bytes.windows(needle.len()).any(|window| window == needle) {
                    return true;
                }
            }
        }
    }
    assert!(files > 0, "no files at all under {}", dir.display());
    false
}

/// MD5 (RFC 1321) of `input` as the big-endian 128-bit integer Kinesis routes by.
pub fn md5_hash_key(input: &[u8]) -> u128 {
    u128::from_be_bytes(md5(input))
}

/// A compact MD5, written here so the tests decide routing without the server's code.
pub fn md5(input: &[u8]) -> [u8; 16] {
    const SHIFTS: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let constants: Vec<u32> = (0..64)
        .map(|i: i32| ((f64::from(i + 1)).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut message = input.to_vec();
    let bit_len = (input.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_le_bytes());
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    for block in message.chunks(64) {
        let words: Vec<u32> = block
            .chunks(4)
            .map(|word| u32::from_le_bytes([word[0], word[1], word[2], word[3]]))
            .collect();
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let rotated = a
                .wrapping_add(f)
                .wrapping_add(constants[i])
                .wrapping_add(words[g])
                .rotate_left(SHIFTS[i]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(rotated);
        }
        state[0] = state[0].wrapping_add(a);
        state[1] = state[1].wrapping_add(b);
        state[2] = state[2].wrapping_add(c);
        state[3] = state[3].wrapping_add(d);
    }
    let mut digest = [0u8; 16];
    for (chunk, word) in digest.chunks_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    digest
}

/// A small deterministic PRNG (xorshift64*) for payloads and fuzz bytes.
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// Milliseconds since the epoch, now.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

#[test]
fn md5_matches_rfc_1321_vectors() {
    let hex = |digest: [u8; 16]| {
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(hex(md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(hex(md5(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
    assert_eq!(
        hex(md5(b"message digest")),
        "f96b697d7cb7938d525a2f31aaf161d0"
    );
    assert_eq!(
        hex(md5(
            b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"
        )),
        "57edf4a22be3c955ac49da2e2107b67a"
    );
}

#[test]
fn expected_ranges_partition_the_hash_space() {
    for count in 1..=9u32 {
        let ranges = expected_ranges(count);
        assert_eq!(ranges[0].0, 0);
        assert_eq!(ranges.last().unwrap().1, u128::MAX);
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].1 + 1, pair[1].0);
        }
    }
    // Production values for three shards, as recorded by kinesalite against AWS.
    let three = expected_ranges(3);
    assert_eq!(
        three[0].1,
        113_427_455_640_312_821_154_458_202_477_256_070_484
    );
    assert_eq!(
        three[1].0,
        113_427_455_640_312_821_154_458_202_477_256_070_485
    );
    assert_eq!(
        three[2].0,
        226_854_911_280_625_642_308_916_404_954_512_140_970
    );
}
