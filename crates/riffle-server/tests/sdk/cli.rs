//! The client commands (`riffle streams`, `describe`, `create`, `delete`, `put`, `tail`) run
//! as a user runs them: the real binary as a child process against a real `riffle serve`, with
//! an environment holding no AWS settings (so the placeholder credentials are what signs),
//! stdin and stdout as pipes. Expectations are about what a person or a script sees: exact
//! bytes on stdout, nothing on stderr when all is well, one clear line and status 1 when not.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{Record, Shard};
use aws_sdk_kinesis::Client;

use crate::common::*;

/// How long one CLI command may take before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// What a finished command left.
struct Run {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn stdout_text(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("stdout is UTF-8")
    }

    /// Asserts success with nothing on stderr (pipes stay quiet); returns stdout as text.
    fn quiet_success(&self, what: &str) -> String {
        assert!(
            self.status.success() && self.stderr.is_empty(),
            "{what}: {}\nstdout: {}\nstderr: {}",
            self.status,
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        );
        self.stdout_text()
    }

    /// Asserts exit status 1, nothing on stdout and one line on stderr; returns that line.
    fn failure(&self, what: &str) -> String {
        assert_eq!(
            self.status.code(),
            Some(1),
            "{what} should fail with status 1; stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        );
        assert!(self.stdout.is_empty(), "{what}: stdout {:?}", self.stdout);
        assert_eq!(
            self.stderr.lines().count(),
            1,
            "{what}: one line of error expected, got {:?}",
            self.stderr
        );
        self.stderr.trim_end().to_owned()
    }
}

/// Gives `command` the environment of someone who never set AWS up: no AWS variables, no
/// ~/.aws files; RIFFLE_ENDPOINT names the test's server.
fn clean_env<'a>(command: &'a mut Command, endpoint: &str, home: &Path) -> &'a mut Command {
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.join("no-aws-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RIFFLE_ENDPOINT", endpoint)
}

/// `riffle` in a clean environment.
fn command(endpoint: &str, home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_riffle"));
    clean_env(&mut command, endpoint, home);
    command
}

/// Runs `command` with `stdin`, waiting at most [`COMMAND_TIMEOUT`].
fn run(mut command: Command, stdin: &[u8]) -> Run {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn riffle");
    let mut input = child.stdin.take().expect("stdin is piped");
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let output = wait_with_timeout(child, &format!("{command:?}"));
    let _ = writer.join();
    output
}

fn wait_with_timeout(mut child: Child, what: &str) -> Run {
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let out_thread = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let err_thread = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for riffle") {
            break status;
        }
        if started.elapsed() > COMMAND_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = err_thread.join().unwrap_or_default();
            panic!("{what} did not finish in {COMMAND_TIMEOUT:?}; stderr: {stderr}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        status,
        stdout: out_thread.join().expect("stdout reader"),
        stderr: err_thread.join().expect("stderr reader"),
    }
}

/// A server and a home directory for the commands run against it.
struct Cli {
    server: Server,
    home: tempfile::TempDir,
}

impl Cli {
    fn new(server: Server) -> Cli {
        Cli {
            server,
            home: tempfile::tempdir().expect("a temporary home"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = command(&self.server.endpoint(), self.home.path());
        command.args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Run {
        run(self.command(args), b"")
    }

    fn run_with_input(&self, args: &[&str], stdin: &[u8]) -> Run {
        run(self.command(args), stdin)
    }

    fn client(&self) -> Client {
        self.server.client()
    }
}

/// `lines` joined with `\n` after each.
fn input_of(lines: &[String]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for line in lines {
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
    }
    bytes
}

/// The value of `"user"` in one of the JSON lines these tests put.
fn user_of(line: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
    value["user"].as_str().expect("a user field").to_owned()
}

/// The lines of each key, in order.
fn by_user(lines: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in lines {
        groups.entry(user_of(line)).or_default().push(line.clone());
    }
    groups
}

/// JSON lines with seven users, JSON escapes (a quote, a backslash, a tab), a raw tab between
/// fields, non-ASCII text, and a counter.
fn order_lines(from: usize, to: usize) -> Vec<String> {
    (from..to)
        .map(|i| {
            format!(
                "{{\"user\":\"user-{}\",\"n\":{i},\t\"note\":\"a \\\"quote\\\", C:\\\\tmp\\t, ünïcødé ✓\"}}",
                i % 7
            )
        })
        .collect()
}

async fn split_at(client: &Client, stream: &str, shard: &str, key: u128) {
    client
        .split_shard()
        .stream_name(stream)
        .shard_to_split(shard)
        .new_starting_hash_key(key.to_string())
        .send()
        .await
        .unwrap_or_else(|error| panic!("SplitShard {stream}/{shard}: {error:?}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn lines_put_come_back_from_tail_byte_identical_and_in_key_order_across_a_split() {
    let cli = Cli::new(Server::in_memory_limits(Limits::Off));
    cli.run(&["create", "orders", "--shards", "1"])
        .quiet_success("create");

    let before = order_lines(0, 400);
    let put = cli.run_with_input(
        &["put", "orders", "--key-field", "user"],
        &input_of(&before),
    );
    assert_eq!(
        put.quiet_success("first put"),
        "",
        "put prints nothing in a pipe"
    );

    split_at(&cli.client(), "orders", &shard_id(0), 1u128 << 127).await;

    let after = order_lines(400, 1000);
    cli.run_with_input(&["put", "orders", "--key-field", "user"], &input_of(&after))
        .quiet_success("second put");
    let written: Vec<String> = before.into_iter().chain(after).collect();

    // The records really are spread over the parent and both children.
    let shards = list_all_shards(&cli.client(), "orders").await;
    assert_eq!(shards.len(), 3);
    for shard in &shards {
        assert!(
            !read_closed_or_open(&cli.client(), shard).await.is_empty(),
            "{} holds none of the records",
            shard.shard_id()
        );
    }

    let tail = cli.run(&["tail", "orders", "--from", "trim-horizon", "--max", "1000"]);
    let text = tail.quiet_success("tail");
    assert!(text.ends_with('\n'));
    let read: Vec<String> = text.lines().map(str::to_owned).collect();
    assert_eq!(read.len(), written.len());
    // Each key's lines in the order they were written (the children's records after the
    // parent's), and every line byte for byte.
    assert_same_lines_in_key_order(&read, &written);
}

/// `read` holds exactly the lines of `written` (byte for byte), and each user's lines (the
/// partition key of `order_lines`) in the order they were written.
fn assert_same_lines_in_key_order(read: &[String], written: &[String]) {
    let counters = |lines: &[String]| -> BTreeMap<String, Vec<u64>> {
        by_user(lines)
            .into_iter()
            .map(|(user, lines)| {
                let numbers = lines
                    .iter()
                    .map(|line| {
                        let value: serde_json::Value =
                            serde_json::from_str(line).expect("a JSON line");
                        value["n"].as_u64().expect("a counter")
                    })
                    .collect();
                (user, numbers)
            })
            .collect()
    };
    assert_eq!(counters(read), counters(written), "per-key order");
    let mut read_sorted = read.to_vec();
    read_sorted.sort();
    let mut written_sorted = written.to_vec();
    written_sorted.sort();
    assert_eq!(read_sorted.len(), written_sorted.len(), "line count");
    if let Some((got, wanted)) = read_sorted
        .iter()
        .zip(&written_sorted)
        .find(|(got, wanted)| got != wanted)
    {
        panic!("a line came back changed:\n got    {got:?}\n wanted {wanted:?}");
    }
}

/// Every record of a shard, open or closed.
async fn read_closed_or_open(client: &Client, shard: &Shard) -> Vec<Record> {
    let closed = shard
        .sequence_number_range()
        .and_then(|range| range.ending_sequence_number())
        .is_some();
    if closed {
        read_closed_shard(client, "orders", shard.shard_id()).await
    } else {
        read_shard(client, "orders", shard.shard_id()).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_describe_create_and_delete_show_what_the_api_says() {
    let cli = Cli::new(Server::in_memory_limits(Limits::Off));
    assert_eq!(
        cli.run(&["streams"]).quiet_success("streams on no stream"),
        "NAME  STATUS  MODE  SHARDS\n"
    );
    cli.run(&["create", "clicks", "--shards", "2"])
        .quiet_success("create clicks");
    cli.run(&["create", "audit-log", "--on-demand"])
        .quiet_success("create audit-log");
    assert_eq!(
        cli.run(&["streams"]).quiet_success("streams"),
        "NAME       STATUS  MODE         SHARDS\n\
         audit-log  ACTIVE  ON_DEMAND    4\n\
         clicks     ACTIVE  PROVISIONED  2\n"
    );
    let json_lines = cli
        .run(&["streams", "--json"])
        .quiet_success("streams --json");
    let rows: Vec<serde_json::Value> = json_lines
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(
        rows,
        vec![
            serde_json::json!({"stream_name": "audit-log", "stream_status": "ACTIVE",
                               "stream_mode": "ON_DEMAND", "open_shard_count": 4}),
            serde_json::json!({"stream_name": "clicks", "stream_status": "ACTIVE",
                               "stream_mode": "PROVISIONED", "open_shard_count": 2}),
        ]
    );

    // Split shard 1 of clicks, then merge its two children again.
    let client = cli.client();
    let half = 1u128 << 127;
    split_at(&client, "clicks", &shard_id(1), half + (1u128 << 126)).await;
    client
        .merge_shards()
        .stream_name("clicks")
        .shard_to_merge(shard_id(2))
        .adjacent_shard_to_merge(shard_id(3))
        .send()
        .await
        .expect("MergeShards");

    let described = cli.run(&["describe", "clicks"]).quiet_success("describe");
    let (header, tree) = described
        .split_once("\n\n")
        .expect("a blank line before the tree");
    let created = client
        .describe_stream_summary()
        .stream_name("clicks")
        .send()
        .await
        .expect("DescribeStreamSummary")
        .stream_description_summary()
        .expect("a summary")
        .stream_creation_timestamp()
        .secs();
    let created = time::OffsetDateTime::from_unix_timestamp(created).expect("a time");
    let created = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        created.year(),
        u8::from(created.month()),
        created.day(),
        created.hour(),
        created.minute(),
        created.second()
    );
    assert_eq!(
        header,
        format!(
            "stream     clicks\n\
             arn        {}\n\
             status     ACTIVE\n\
             mode       PROVISIONED\n\
             shards     2 open, 5 listed\n\
             retention  24 hours\n\
             encryption NONE\n\
             consumers  0\n\
             created    {created}",
            stream_arn("clicks")
        )
    );
    assert_eq!(
        tree,
        "shardId-000000000000  open    keys 0%–50%\n\
         shardId-000000000001  closed  keys 50%–100%\n\
         ├── shardId-000000000002  closed  keys 50%–75%\n\
         │   └── shardId-000000000004  open    keys 50%–100%\n\
         └── shardId-000000000003  closed  keys 75%–100%\n\
         \u{20}   └── shardId-000000000004 (merged; shown under shardId-000000000002)\n"
    );

    // --json carries the exact keys and sequence numbers ListShards gives.
    let document: serde_json::Value = serde_json::from_str(
        &cli.run(&["describe", "clicks", "--json"])
            .quiet_success("describe --json"),
    )
    .expect("describe --json is JSON");
    let listed = list_all_shards(&client, "clicks").await;
    let shards = document["shards"].as_array().expect("a shards array");
    assert_eq!(shards.len(), listed.len());
    for (shown, shard) in shards.iter().zip(&listed) {
        let (start, end) = hash_range(shard);
        assert_eq!(shown["shard_id"], shard.shard_id());
        assert_eq!(shown["starting_hash_key"], start.to_string());
        assert_eq!(shown["ending_hash_key"], end.to_string());
        let range = shard.sequence_number_range().expect("a sequence range");
        assert_eq!(
            shown["starting_sequence_number"],
            range.starting_sequence_number()
        );
        assert_eq!(
            shown["ending_sequence_number"].as_str(),
            range.ending_sequence_number()
        );
        assert_eq!(shown["parent_shard_id"].as_str(), shard.parent_shard_id());
    }
    assert_eq!(document["open_shard_count"], 2);
    assert_eq!(document["stream_arn"], stream_arn("clicks"));

    // Creating it again is AWS's error; deleting removes it.
    let again = cli.run(&["create", "clicks", "--shards", "1"]);
    assert_eq!(
        again.failure("create twice"),
        format!(
            "riffle create: ResourceInUseException: Stream clicks under account {ACCOUNT} \
             already exists."
        )
    );
    cli.run(&["delete", "clicks"]).quiet_success("delete");
    assert_eq!(
        cli.run(&["streams"]).quiet_success("streams after delete"),
        "NAME       STATUS  MODE       SHARDS\naudit-log  ACTIVE  ON_DEMAND  4\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_name_the_problem_and_exit_with_status_1() {
    let cli = Cli::new(Server::in_memory_limits(Limits::Off));
    let not_found = format!("ResourceNotFoundException: {}", stream_not_found("nope"));
    for (args, stdin) in [
        (vec!["describe", "nope"], &b""[..]),
        (vec!["delete", "nope"], b""),
        (vec!["tail", "nope", "--from", "trim-horizon"], b""),
        (vec!["put", "nope"], b"a line\n"),
    ] {
        let line = cli.run_with_input(&args, stdin).failure(&args.join(" "));
        let expected = format!("riffle {}: {not_found}", args[0]);
        if args[0] == "put" {
            assert_eq!(
                line,
                format!("{expected} (the batch of lines 1 to 1 was not delivered); nothing was delivered")
            );
        } else {
            assert_eq!(line, expected);
        }
    }

    // A failed put ends at once even though stdin stays open (as under `tail -f`).
    let mut open_stdin = cli.command(&["put", "nope"]);
    let mut child = open_stdin
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn put");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin.write_all(b"a line\n").expect("write a line");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for put") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("put did not exit after failing while its stdin was open");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(1));
    drop(stdin);

    // A shard the stream does not have.
    cli.run(&["create", "s", "--shards", "1"])
        .quiet_success("create");
    assert_eq!(
        cli.run(&["tail", "s", "--shard", "7"])
            .failure("tail --shard 7"),
        "riffle tail: stream s has no shard 7 (it has shardId-000000000000)"
    );
    // A line without the key field stops the put after delivering the lines before it.
    let put = cli.run_with_input(
        &["put", "s", "--key-field", "user"],
        b"{\"user\":\"a\"}\n{\"user\":\"b\"}\n{\"name\":\"c\"}\n{\"user\":\"d\"}\n",
    );
    assert_eq!(
        put.failure("put without the key field"),
        "riffle put: line 3: no field user; 2 records were delivered: every line up to line 2"
    );
    let stored = read_shard(&cli.client(), "s", &shard_id(0)).await;
    let stored: Vec<&[u8]> = stored.iter().map(|r| r.data().as_ref()).collect();
    assert_eq!(stored, [&b"{\"user\":\"a\"}"[..], b"{\"user\":\"b\"}"]);

    // Nothing listens: say where riffle tried, and that a server may be missing.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("an address").port()
    };
    let mut unreachable = command(&format!("http://127.0.0.1:{port}"), cli.home.path());
    unreachable.arg("streams");
    let line = run(unreachable, b"").failure("streams without a server");
    assert!(
        line.starts_with(&format!(
            "riffle streams: cannot reach http://127.0.0.1:{port}: "
        )) && line.contains("refused"),
        "{line}"
    );
}

/// A riffle's Prometheus counter, summed over its labels.
fn counter(metrics: SocketAddr, name: &str) -> f64 {
    let mut stream = TcpStream::connect(metrics).expect("connect to the metrics port");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("send the scrape");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read the scrape");
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn put_retries_entries_refused_by_the_shard_write_limit() {
    // AWS's limits: one shard takes 1,000 records a second, so most of 4,000 lines sent at
    // once are refused at first and must be retried until they fit.
    let cli = Cli::new(Server::in_memory_with_metrics(&[]));
    let metrics = cli.server.metrics_addr.expect("a metrics port");
    cli.run(&["create", "busy", "--shards", "1"])
        .quiet_success("create");
    let lines: Vec<String> = (0..4000).map(|i| format!("event {i}")).collect();
    cli.run_with_input(&["put", "busy", "--key", "k"], &input_of(&lines))
        .quiet_success("put with retries");
    let throttled = counter(metrics, "kinesis_WriteProvisionedThroughputExceeded");
    assert!(
        throttled > 0.0,
        "no record was throttled, so nothing was retried"
    );

    let tail = cli.run(&["tail", "busy", "--from", "trim-horizon", "--max", "4000"]);
    let read: Vec<String> = tail
        .quiet_success("tail")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(read, lines, "one key, one shard: every line once, in order");

    // With a single attempt the refused records are reported, and the command fails.
    let more: Vec<String> = (0..4000).map(|i| format!("more {i}")).collect();
    let put = cli.run_with_input(
        &["put", "busy", "--key", "k", "--attempts", "1"],
        &input_of(&more),
    );
    let line = put.failure("put without retries");
    assert!(
        line.starts_with("riffle put: ")
            && line.contains("could not be delivered after 1 attempt (line ")
            && line.contains("ProvisionedThroughputExceededException"),
        "{line}"
    );
}

/// A KPL aggregate built byte by byte: magic, the protobuf `AggregatedRecord`, its MD5.
fn kpl_aggregate(keys: &[&str], records: &[(u8, &[u8])]) -> Vec<u8> {
    let mut message = Vec::new();
    for key in keys {
        message.push(0x0A); // field 1, length-delimited: partition_key_table
        message.push(key.len() as u8);
        message.extend_from_slice(key.as_bytes());
    }
    for (key_index, data) in records {
        let mut record = vec![0x08, *key_index, 0x1A, data.len() as u8];
        record.extend_from_slice(data);
        message.push(0x1A); // field 3, length-delimited: records
        message.push(record.len() as u8);
        message.extend_from_slice(&record);
    }
    let mut aggregate = vec![0xF3, 0x89, 0x9A, 0xC2];
    aggregate.extend_from_slice(&message);
    aggregate.extend_from_slice(&md5(&message));
    aggregate
}

async fn put_record(client: &Client, stream: &str, key: &str, data: &[u8]) -> String {
    client
        .put_record()
        .stream_name(stream)
        .partition_key(key)
        .data(Blob::new(data.to_vec()))
        .send()
        .await
        .expect("PutRecord")
        .sequence_number()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn tail_splits_kpl_aggregates_and_prints_every_format() {
    let cli = Cli::new(Server::in_memory_limits(Limits::Off));
    cli.run(&["create", "kpl", "--shards", "1"])
        .quiet_success("create");
    let client = cli.client();
    let aggregate = kpl_aggregate(
        &["alpha", "beta"],
        &[(0, b"first"), (1, b"second"), (0, b"third\nline")],
    );
    let aggregate_sequence = put_record(&client, "kpl", "a", &aggregate).await;
    let binary_sequence = put_record(&client, "kpl", "bin", &[0xff, 0x00, b'\\']).await;

    let text = cli
        .run(&["tail", "kpl", "--from", "trim-horizon", "--max", "4"])
        .quiet_success("tail text");
    assert_eq!(text, "first\nsecond\nthird\\nline\n\\xff\\x00\\\\\n");

    let json = cli
        .run(&[
            "tail",
            "kpl",
            "--from",
            "trim-horizon",
            "--max",
            "4",
            "--format",
            "json",
        ])
        .quiet_success("tail json");
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON lines"))
        .collect();
    let fields = |row: &serde_json::Value| {
        (
            row["sequence_number"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            row["sub_sequence_number"].as_u64(),
            row["partition_key"].as_str().unwrap_or_default().to_owned(),
            row["data"].as_str().map(str::to_owned),
            row["data_base64"].as_str().map(str::to_owned),
        )
    };
    let aggregate_row = |sub: u64, key: &str, data: &str| {
        (
            aggregate_sequence.clone(),
            Some(sub),
            key.to_owned(),
            Some(data.to_owned()),
            None,
        )
    };
    assert_eq!(
        rows.iter().map(fields).collect::<Vec<_>>(),
        vec![
            aggregate_row(0, "alpha", "first"),
            aggregate_row(1, "beta", "second"),
            aggregate_row(2, "alpha", "third\nline"),
            (
                binary_sequence.clone(),
                None,
                "bin".to_owned(),
                None,
                Some("/wBc".to_owned())
            ),
        ]
    );
    assert!(rows
        .iter()
        .all(|row| row["shard_id"] == shard_id(0) && row["arrival"].is_string()));

    // --raw keeps the aggregate whole; hex shows its bytes.
    let hex = cli
        .run(&[
            "tail",
            "kpl",
            "--from",
            "trim-horizon",
            "--max",
            "2",
            "--raw",
            "--format",
            "hex",
        ])
        .quiet_success("tail --raw hex");
    let expected_hex: String = aggregate.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, format!("{expected_hex}\nff005c\n"));

    // --from a sequence number starts at that record (on the shard that holds it).
    let from_sequence = cli
        .run(&[
            "tail",
            "kpl",
            "--from",
            &binary_sequence,
            "--max",
            "1",
            "--format",
            "hex",
        ])
        .quiet_success("tail --from SEQ");
    assert_eq!(from_sequence, "ff005c\n");

    // --no-follow stops at the newest record; a time an hour ago starts before them all.
    let all = cli
        .run(&["tail", "kpl", "--from", "-1h", "--no-follow"])
        .quiet_success("tail --no-follow");
    assert_eq!(all, text);
    let none_yet = cli
        .run(&["tail", "kpl", "--from", "latest", "--no-follow"])
        .quiet_success("tail --from latest --no-follow");
    assert_eq!(none_yet, "");

    // --meta prefixes the arrival time, shard and key.
    let meta = cli
        .run(&[
            "tail",
            "kpl",
            "--from",
            "trim-horizon",
            "--max",
            "1",
            "--meta",
            "--shard",
            "0",
        ])
        .quiet_success("tail --meta");
    let (prefix, data) = meta.trim_end().rsplit_once(' ').expect("meta then data");
    assert_eq!(data, "first");
    let parts: Vec<&str> = prefix.split(' ').collect();
    assert_eq!(parts.len(), 3, "{meta:?}");
    assert_eq!(parts[0].len(), "12:00:00.000".len(), "{meta:?}");
    assert_eq!(&parts[1..], [shard_id(0).as_str(), "alpha"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn tail_from_latest_prints_only_records_written_after_it_started() {
    let cli = Cli::new(Server::in_memory_limits(Limits::Off));
    cli.run(&["create", "live", "--shards", "2"])
        .quiet_success("create");
    let client = cli.client();
    put_record(&client, "live", "k", b"before").await;

    let mut tail = cli.command(&["tail", "live", "--max", "1", "--poll-ms", "50"]);
    let child = tail
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tail");
    let pid = child.id();
    // Until tail has its LATEST iterators nothing it may print is known: keep writing.
    let writer = {
        let client = client.clone();
        tokio::spawn(async move {
            for tick in 0.. {
                put_record(
                    &client,
                    "live",
                    &format!("key-{tick}"),
                    format!("tick {tick}").as_bytes(),
                )
                .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let done =
        tokio::task::spawn_blocking(move || wait_with_timeout(child, &format!("tail ({pid})")))
            .await
            .expect("the tail waiter");
    writer.abort();
    let text = done.quiet_success("tail --from latest");
    assert!(
        text.starts_with("tick ") && text.lines().count() == 1,
        "{text:?}"
    );

    // Piped into `head`, tail ends quietly (status 0) once head has gone and it writes again.
    let writer = {
        let client = client.clone();
        tokio::spawn(async move {
            for tick in 0.. {
                put_record(&client, "live", &format!("key-{tick}"), b"more").await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let mut piped = Command::new("bash");
    clean_env(&mut piped, &cli.server.endpoint(), cli.home.path()).args([
        "-c",
        &format!(
            "set -o pipefail; {} tail live --from trim-horizon --poll-ms 50 | head -n 2",
            env!("CARGO_BIN_EXE_riffle")
        ),
    ]);
    let headed = tokio::task::spawn_blocking(move || run(piped, b""))
        .await
        .expect("the pipeline");
    writer.abort();
    assert_eq!(headed.quiet_success("tail | head -n 2").lines().count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_come_from_the_standard_chain() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let keys = dir.path().join("credentials");
    std::fs::write(&keys, "AKIDCLI1 secret-one 111122223333\n").expect("write the keys");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600))
            .expect("chmod the keys");
    }
    let cli = Cli::new(Server::with_credentials(&keys, &["--limits", "off"]));

    // Without credentials the placeholder key signs, and the server refuses it: say why.
    let refused = cli.run(&["streams"]).failure("streams unsigned");
    assert!(
        refused.starts_with("riffle streams: UnrecognizedClientException: ")
            && refused.contains("no AWS credentials were found"),
        "{refused}"
    );

    // Environment variables.
    let mut with_env = cli.command(&["create", "signed", "--shards", "1"]);
    with_env
        .env("AWS_ACCESS_KEY_ID", "AKIDCLI1")
        .env("AWS_SECRET_ACCESS_KEY", "secret-one");
    run(with_env, b"").quiet_success("create with env credentials");

    // A named profile of the shared credentials file, and its region in the config file.
    std::fs::write(
        cli.home.path().join("no-aws-credentials"),
        "[default]\naws_access_key_id = AKIDWRONG\naws_secret_access_key = nope\n\n\
         [ops]\naws_access_key_id = AKIDCLI1\naws_secret_access_key = secret-one\n",
    )
    .expect("write a credentials file");
    std::fs::write(
        cli.home.path().join("no-aws-config"),
        "[profile ops]\nregion = eu-west-1\n",
    )
    .expect("write a config file");
    let listed = cli.run(&["streams", "--profile", "ops"]);
    assert_eq!(
        listed.quiet_success("streams --profile ops"),
        "NAME    STATUS  MODE         SHARDS\nsigned  ACTIVE  PROVISIONED  1\n"
    );
    let mut with_profile_env = cli.command(&["describe", "signed", "--json"]);
    with_profile_env.env("AWS_PROFILE", "ops");
    let described = run(with_profile_env, b"").quiet_success("describe with AWS_PROFILE");
    assert!(described.contains("arn:aws:kinesis:us-east-1:111122223333:stream/signed"));
    // The default profile's key is not one the server knows, and is no placeholder.
    let wrong = cli
        .run(&["streams"])
        .failure("streams with the default profile");
    assert!(
        wrong.starts_with("riffle streams: UnrecognizedClientException: ")
            && !wrong.contains("no AWS credentials"),
        "{wrong}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_shows_on_a_terminal() {
    let cli = Cli::new(Server::in_memory_limits(Limits::Off));
    // `script` gives the command a pseudo-terminal; its output is what the terminal showed.
    let on_terminal = |shell: &str| -> String {
        let script = shell.replace("riffle", env!("CARGO_BIN_EXE_riffle"));
        let mut command = Command::new("script");
        clean_env(&mut command, &cli.server.endpoint(), cli.home.path())
            .env("TERM", "xterm")
            .args(["-qec", &script, "/dev/null"]);
        let output = run(command, b"");
        assert!(output.status.success(), "{shell}: {}", output.stderr);
        output.stdout_text()
    };
    let created = on_terminal("riffle create shown --shards 1");
    assert!(
        created.contains("shown is ACTIVE with 1 shard"),
        "{created:?}"
    );
    let put = on_terminal("printf 'a\\nb\\nc\\n' | riffle put shown");
    assert!(
        put.contains("put 3 records (3 B) into shown in "),
        "{put:?}"
    );
    let tail = on_terminal("riffle tail shown --from trim-horizon --max 3 --no-meta");
    assert!(
        tail.contains("following 1 shard of shown from the oldest record"),
        "{tail:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_command_line_example_works_verbatim() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("read README.md");
    let section = readme
        .split("\n## ")
        .find(|section| section.starts_with("Command line\n"))
        .expect("README.md has a '## Command line' section");
    let script = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a sh block in '## Command line'");
    let expected_output = section
        .split("```text\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a text block with the example's output");

    let cli = Cli::new(Server::in_memory_limits(Limits::Off));
    let binary_dir = Path::new(env!("CARGO_BIN_EXE_riffle"))
        .parent()
        .expect("the binary's directory")
        .to_owned();
    let path = format!(
        "{}:{}",
        binary_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut bash_command = Command::new("bash");
    clean_env(&mut bash_command, &cli.server.endpoint(), cli.home.path())
        .env("PATH", path)
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"));
    let output = run(bash_command, b"");
    let stdout = output.quiet_success("the README example");
    // The tail's lines come per key in order; across keys, as the shards deliver them.
    let sorted = |text: &str| {
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort();
        lines.join("\n")
    };
    assert_eq!(sorted(&stdout), sorted(expected_output), "{stdout}");
}

/// `riffle copy` moves a single node's streams into a (one-node) cluster: definition, tags,
/// retention and every record, each key's records in order across a split; the cluster start
/// on the single node's directory names the command; a second copy is refused.
#[tokio::test(flavor = "multi_thread")]
async fn copy_moves_a_single_nodes_streams_into_a_cluster() {
    let single_dir = tempfile::tempdir().expect("a temporary data dir");
    let source = Cli::new(Server::on_data_dir_limits(single_dir.path(), Limits::Off));
    source
        .run(&["create", "orders", "--shards", "1"])
        .quiet_success("create orders");
    let before = order_lines(0, 300);
    source
        .run_with_input(
            &["put", "orders", "--key-field", "user"],
            &input_of(&before),
        )
        .quiet_success("first put");
    split_at(&source.client(), "orders", &shard_id(0), 1u128 << 127).await;
    let after = order_lines(300, 700);
    source
        .run_with_input(&["put", "orders", "--key-field", "user"], &input_of(&after))
        .quiet_success("second put");
    let written: Vec<String> = before.into_iter().chain(after).collect();
    let client = source.client();
    // Twelve tags: more than one AddTagsToStream call takes.
    let tags: BTreeMap<String, String> = (0..12)
        .map(|i| (format!("team-{i:02}"), format!("value {i}")))
        .collect();
    client
        .add_tags_to_stream()
        .stream_name("orders")
        .set_tags(Some(tags.clone().into_iter().collect()))
        .send()
        .await
        .expect("AddTagsToStream");
    client
        .increase_stream_retention_period()
        .stream_name("orders")
        .retention_period_hours(48)
        .send()
        .await
        .expect("IncreaseStreamRetentionPeriod");
    source
        .run(&["create", "clicks", "--on-demand"])
        .quiet_success("create clicks");
    let clicks = order_lines(1000, 1050);
    source
        .run_with_input(
            &["put", "clicks", "--key-field", "user"],
            &input_of(&clicks),
        )
        .quiet_success("put clicks");

    let cluster_dir = tempfile::tempdir().expect("a temporary data dir");
    let secret = cluster_dir.path().join("cluster.secret");
    let data = cluster_dir.path().join("data");
    let cluster = Cli::new(Server::with_args(&[
        "--data-dir",
        data.to_str().expect("UTF-8 path"),
        "--cluster-listen",
        "127.0.0.1:0",
        "--cluster-secret-file",
        secret.to_str().expect("UTF-8 path"),
        "--limits",
        "off",
    ]));

    let summary = cluster
        .run(&["copy", "--from", &source.server.endpoint()])
        .quiet_success("copy");
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines.len(), 2, "one line per stream: {summary}");
    assert!(
        lines[0].starts_with("clicks: 50 records (") && lines[0].contains("from 4 shards"),
        "{summary}"
    );
    assert!(
        lines[1].starts_with("orders: 700 records (") && lines[1].contains("from 3 shards"),
        "{summary}"
    );

    let copied = cluster
        .run(&["tail", "orders", "--from", "trim-horizon", "--max", "700"])
        .quiet_success("tail orders on the cluster");
    let read: Vec<String> = copied.lines().map(str::to_owned).collect();
    assert_same_lines_in_key_order(&read, &written);
    let copied = cluster
        .run(&["tail", "clicks", "--from", "trim-horizon", "--max", "50"])
        .quiet_success("tail clicks on the cluster");
    let read: Vec<String> = copied.lines().map(str::to_owned).collect();
    assert_same_lines_in_key_order(&read, &clicks);

    let target = cluster.client();
    let summary = target
        .describe_stream_summary()
        .stream_name("orders")
        .send()
        .await
        .expect("DescribeStreamSummary orders");
    let summary = summary.stream_description_summary().expect("a summary");
    assert_eq!(summary.retention_period_hours(), 48);
    // The source has two open shards (the split's children): so has the copy.
    assert_eq!(summary.open_shard_count(), 2);
    let listed = target
        .list_tags_for_stream()
        .stream_name("orders")
        .send()
        .await
        .expect("ListTagsForStream");
    let copied_tags: BTreeMap<String, String> = listed
        .tags()
        .iter()
        .map(|tag| {
            (
                tag.key().to_owned(),
                tag.value().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(copied_tags, tags);
    let clicks_mode = target
        .describe_stream_summary()
        .stream_name("clicks")
        .send()
        .await
        .expect("DescribeStreamSummary clicks");
    assert_eq!(
        clicks_mode
            .stream_description_summary()
            .and_then(|s| s.stream_mode_details())
            .map(|d| d.stream_mode().as_str()),
        Some("ON_DEMAND")
    );

    // Nothing is copied twice.
    let refusal = cluster
        .run(&["copy", "orders", "--from", &source.server.endpoint()])
        .failure("a second copy");
    assert!(
        refusal.contains("orders already exists on the destination"),
        "{refusal}"
    );

    // The single node's directory is refused by a cluster start, which names the way over.
    let Cli { server, home: _ } = source;
    server.stop_cleanly();
    let refused = Server::refused_start(&[
        "--data-dir",
        single_dir.path().to_str().expect("UTF-8 path"),
        "--cluster-listen",
        "127.0.0.1:0",
        "--cluster-secret-file",
        secret.to_str().expect("UTF-8 path"),
    ]);
    assert!(refused.contains("riffle copy --from"), "{refused}");
}
