//! Overload and hostile clients against one server while a well-behaved SDK client goes on
//! working: thousands of idle connections, clients that send their request a byte at a time,
//! bodies of 100 MiB (declared, chunked, and honest ones under the limit, many at once), and
//! clients that ask for 10 MiB answers and never read them.
//!
//! What must hold: every hostile request gets a clean AWS-style error or a closed connection;
//! the SDK client's calls keep succeeding, each well within a second or two; and the server's
//! peak memory (VmHWM) stays within the configured request- or response-memory budget plus a
//! fixed allowance for the process itself and its connections.

#[path = "sdk/common.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::Client;

use common::*;

/// `--request-memory-mib` for these servers.
const BUDGET_MIB: u64 = 64;
/// What the process may use beyond the request budget: code, runtime, allocator slack, the
/// stores of the SDK client's stream, and per-connection buffers.
const ALLOWANCE_MIB: u64 = 96;
/// The slowest a well-behaved call may be while the server is under attack.
const CALL_DEADLINE: Duration = Duration::from_secs(3);

fn server() -> Server {
    let budget = BUDGET_MIB.to_string();
    Server::in_memory_with(&["--limits", "off", "--request-memory-mib", budget.as_str()])
}

/// A field of `/proc/PID/status` in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

fn assert_memory_in_budget(server: &Server, what: &str) {
    let peak_mib = status_kib(server.pid(), "VmHWM") / 1024;
    eprintln!(
        "{what}: server peak RSS {peak_mib} MiB (budget {BUDGET_MIB} MiB + {ALLOWANCE_MIB} MiB)"
    );
    assert!(
        peak_mib <= BUDGET_MIB + ALLOWANCE_MIB,
        "{what}: peak RSS {peak_mib} MiB exceeds the {BUDGET_MIB} MiB budget + {ALLOWANCE_MIB} MiB"
    );
}

/// One PutRecord and one DescribeStreamSummary, each within [`CALL_DEADLINE`].
async fn still_served(client: &Client, round: usize) -> Duration {
    let started = Instant::now();
    let put = client
        .put_record()
        .stream_name("calm")
        .partition_key(format!("k{round}"))
        .data(Blob::new(format!("record {round}")))
        .send();
    match tokio::time::timeout(CALL_DEADLINE, put).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => panic!("round {round}: PutRecord failed: {error:?}"),
        Err(_) => panic!("round {round}: PutRecord took over {CALL_DEADLINE:?}"),
    }
    let describe = client.describe_stream_summary().stream_name("calm").send();
    match tokio::time::timeout(CALL_DEADLINE, describe).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => panic!("round {round}: DescribeStreamSummary failed: {error:?}"),
        Err(_) => panic!("round {round}: DescribeStreamSummary took over {CALL_DEADLINE:?}"),
    }
    started.elapsed()
}

/// Calls [`still_served`] until `done`; returns (calls, slowest).
async fn serve_until(client: &Client, done: &AtomicBool) -> (usize, Duration) {
    let mut rounds = 0;
    let mut slowest = Duration::ZERO;
    while !done.load(Ordering::SeqCst) {
        slowest = slowest.max(still_served(client, rounds).await);
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (rounds, slowest)
}

fn head(target: &str, framing: &str) -> String {
    format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: Kinesis_20131202.{target}\r\n{framing}\r\n"
    )
}

/// Reads what the server sends until it closes or `wait` passes; returns the status of the
/// first response, if one came.
fn response_status(stream: &mut TcpStream, wait: Duration) -> Option<u16> {
    stream.set_read_timeout(Some(wait)).ok()?;
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buffer) {
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buffer[..n]);
        if received.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&received);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Sends up to `total` bytes of body after `head` in 1 MiB writes, stopping when the server
/// stops taking them; returns the response status, if any.
fn send_body(addr: SocketAddr, head: &str, total: usize, chunked: bool) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).ok()?;
    let block = vec![b'x'; 1 << 20];
    let mut sent = 0;
    while sent < total {
        let written = if chunked {
            stream
                .write_all(format!("{:x}\r\n", block.len()).as_bytes())
                .and_then(|()| stream.write_all(&block))
                .and_then(|()| stream.write_all(b"\r\n"))
        } else {
            stream.write_all(&block)
        };
        if written.is_err() {
            break;
        }
        sent += block.len();
    }
    response_status(&mut stream, Duration::from_secs(10))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_connections_and_slow_clients_leave_others_served() {
    let server = server();
    let client = server.client();
    create_stream(&client, "calm", 1).await;
    let addr = server.addr;

    // 3,000 connections that never send a byte.
    let idle: Vec<TcpStream> = (0..3_000)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    let slowest = still_served(&client, 0).await;
    eprintln!("with 3,000 idle connections: a put and a describe in {slowest:?}");

    // 300 clients sending a request a byte every 50 ms, and 50 sending a declared 1 MiB body
    // a kilobyte every 50 ms, for 4 seconds.
    let done = Arc::new(AtomicBool::new(false));
    let trickle = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let request = head("ListStreams", "Content-Length: 2\r\n") + "{}";
            let mut slow_heads: Vec<TcpStream> = (0..300)
                .map(|_| TcpStream::connect(addr).expect("connect"))
                .collect();
            let mut slow_bodies: Vec<TcpStream> = (0..50)
                .map(|_| {
                    let mut stream = TcpStream::connect(addr).expect("connect");
                    let head = head("PutRecords", &format!("Content-Length: {}\r\n", 1 << 20));
                    stream.write_all(head.as_bytes()).expect("head");
                    stream
                })
                .collect();
            let started = Instant::now();
            let mut position = 0;
            while started.elapsed() < Duration::from_secs(4) {
                if position < request.len() {
                    for stream in &mut slow_heads {
                        let _ = stream.write_all(&request.as_bytes()[position..position + 1]);
                    }
                    position += 1;
                }
                for stream in &mut slow_bodies {
                    let _ = stream.write_all(&[b'['; 1024]);
                }
                thread::sleep(Duration::from_millis(50));
            }
            done.store(true, Ordering::SeqCst);
            (slow_heads, slow_bodies)
        })
    };
    let (rounds, slowest) = serve_until(&client, &done).await;
    let (_slow_heads, _slow_bodies) = trickle.join().expect("trickle thread");
    eprintln!("under 350 slow clients: {rounds} rounds, slowest {slowest:?}");
    assert!(rounds >= 10, "only {rounds} rounds served in 4 s");
    assert_memory_in_budget(&server, "3,000 idle and 350 slow connections");
    drop(idle);
    still_served(&client, rounds + 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_of_100_mib_are_refused_and_memory_stays_in_budget() {
    let server = server();
    let client = server.client();
    create_stream(&client, "calm", 1).await;
    let addr = server.addr;
    const HUNDRED_MIB: usize = 100 << 20;

    let done = Arc::new(AtomicBool::new(false));
    let attackers: Vec<_> = (0..10)
        .map(|i| {
            thread::spawn(move || match i {
                // A declared length of 100 MiB: refused before the body is read.
                0..=3 => {
                    let head = head("PutRecords", &format!("Content-Length: {HUNDRED_MIB}\r\n"));
                    (i, send_body(addr, &head, HUNDRED_MIB, false))
                }
                // 100 MiB chunked, with no length: cut off at the 16 MiB request limit.
                4..=5 => {
                    let head = head("PutRecords", "Transfer-Encoding: chunked\r\n");
                    (i, send_body(addr, &head, HUNDRED_MIB, true))
                }
                // Honest 15 MiB bodies of junk, four at once, five times each: each holds
                // memory until parsed, all of them together more than the budget.
                _ => {
                    let mut last = None;
                    for _ in 0..5 {
                        let len = 15 << 20;
                        let head = head("PutRecords", &format!("Content-Length: {len}\r\n"));
                        last = send_body(addr, &head, len, false);
                        let status = last.expect("an answer to an honest body");
                        assert!(
                            status == 400 || status == 500,
                            "a 15 MiB junk body: status {status}"
                        );
                    }
                    (i, last)
                }
            })
        })
        .collect();
    let watcher = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let statuses: Vec<_> = attackers
                .into_iter()
                .map(|attacker| attacker.join().expect("attacker thread"))
                .collect();
            done.store(true, Ordering::SeqCst);
            statuses
        })
    };
    let (rounds, slowest) = serve_until(&client, &done).await;
    let statuses = watcher.join().expect("watcher");
    eprintln!("under 100 MiB bodies: {rounds} rounds, slowest {slowest:?}; answers {statuses:?}");
    for (attacker, status) in statuses {
        // A response, when one came before the connection closed, is a clean client error
        // (or the budget's retriable 500).
        if let Some(status) = status {
            assert!(
                status == 400 || status == 413 || status == 500,
                "attacker {attacker}: status {status}"
            );
        }
    }
    assert!(rounds >= 3, "only {rounds} rounds served");
    assert_memory_in_budget(&server, "100 MiB bodies");
    still_served(&client, rounds + 1).await;
}

/// The response-memory budget (`--response-memory-mib`) these servers keep, the default.
const RESPONSE_BUDGET_MIB: u64 = 256;
/// What building one full GetRecords answer holds at its peak: the frames read (10 MiB) and
/// the encoder's growing buffer (13 MB, with the old one during a reallocation).
const BUILD_MIB: u64 = 40;
/// Data of the stream that stalled clients read: more than one full GetRecords answer.
const BIG_RECORDS: usize = 11;
const BIG_RECORD_BYTES: usize = 1000 * 1024;

/// A stream "big" holding [`BIG_RECORDS`] records of [`BIG_RECORD_BYTES`], and a TRIM_HORIZON
/// iterator on it (iterators hold no server state: every client may use the same one).
async fn big_stream(client: &Client) -> String {
    create_stream(client, "big", 1).await;
    for i in 0..BIG_RECORDS {
        client
            .put_record()
            .stream_name("big")
            .partition_key(format!("k{i}"))
            .data(Blob::new(vec![b'a' + i as u8; BIG_RECORD_BYTES]))
            .send()
            .await
            .unwrap_or_else(|error| panic!("PutRecord {i}: {error:?}"));
    }
    shard_iterator(
        client,
        "big",
        &shard_id(0),
        aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon,
    )
    .await
}

/// Sends a GetRecords for `iterator` and returns the socket without reading a byte.
fn ask_and_never_read(addr: SocketAddr, iterator: &str) -> TcpStream {
    let body = format!(r#"{{"ShardIterator":"{iterator}"}}"#);
    let request = head("GetRecords", &format!("Content-Length: {}\r\n", body.len())) + &body;
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(request.as_bytes()).expect("request");
    stream
}

/// How long a GetRecords may wait while stalled clients' reads are built: answers are built
/// one per CPU at a time, in order, and a debug build takes about a second for a full one.
const READ_DEADLINE: Duration = Duration::from_secs(30);

/// Reads an answer's head, a byte at a time so that none of the body is taken, and returns its
/// declared body length.
fn read_head(stream: &mut TcpStream) -> usize {
    stream
        .set_read_timeout(Some(READ_DEADLINE))
        .expect("timeout");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("an answer head");
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head)
        .to_ascii_lowercase()
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .expect("a Content-Length")
}

/// Reads a body of `declared` bytes until it is complete, the stream ends, or 10 s pass in
/// silence; returns the bytes that came.
fn drain_body(stream: &mut TcpStream, declared: usize) -> usize {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut received = 0;
    let mut buffer = vec![0u8; 1 << 16];
    while received < declared {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n,
        }
    }
    received
}

/// Records a GetRecords on `iterator` returns.
async fn records_from(client: &Client, iterator: &str) -> usize {
    let page = tokio::time::timeout(
        READ_DEADLINE,
        client.get_records().shard_iterator(iterator).send(),
    )
    .await
    .expect("GetRecords in time")
    .unwrap_or_else(|error| panic!("GetRecords: {error:?}"));
    page.records().len()
}

/// Fifty clients ask for 10 MiB GetRecords answers and never read them. Before the response
/// budget each answer stayed in memory in full until its connection closed (745 MB here);
/// now the server's peak stays within the budget plus the usual allowance, a well-behaved SDK
/// client is served throughout, and a GetRecords while the budget is short answers fewer
/// records rather than failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_large_answers_hold_bounded_memory() {
    let server = server();
    let client = server.client();
    create_stream(&client, "calm", 1).await;
    let iterator = big_stream(&client).await;
    assert_eq!(
        records_from(&client, &iterator).await,
        10,
        "a full answer is 10 MiB"
    );
    let addr = server.addr;

    // Each stalled client reads its answer's head, which the server sends once the answer is
    // built, and then nothing more.
    let done = Arc::new(AtomicBool::new(false));
    let stallers = {
        let (done, iterator) = (Arc::clone(&done), iterator.clone());
        thread::spawn(move || {
            let clients: Vec<_> = (0..50)
                .map(|_| {
                    let iterator = iterator.clone();
                    thread::spawn(move || {
                        let mut stream = ask_and_never_read(addr, &iterator);
                        let status = response_status(&mut stream, READ_DEADLINE * 4);
                        (stream, status)
                    })
                })
                .collect();
            let stalled: Vec<_> = clients
                .into_iter()
                .map(|client| client.join().expect("stalled client"))
                .collect();
            done.store(true, Ordering::SeqCst);
            stalled
        })
    };
    // Puts and control calls are served throughout while the server builds and holds those
    // answers (reads wait their turn to be built, see READ_DEADLINE).
    let (rounds, slowest) = serve_until(&client, &done).await;
    let stalled = stallers.join().expect("stalled clients");
    eprintln!("while 50 answers were built: {rounds} rounds, slowest {slowest:?}");
    assert!(rounds >= 10, "only {rounds} rounds served");
    for (i, (_, status)) in stalled.iter().enumerate() {
        assert_eq!(*status, Some(200), "stalled client {i}");
    }
    let calm = shard_iterator(
        &client,
        "calm",
        &shard_id(0),
        aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon,
    )
    .await;
    assert!(records_from(&client, &calm).await >= 1);
    let short = records_from(&client, &iterator).await;
    eprintln!("a GetRecords while the budget is held answers {short} of 10 records");
    assert!(short >= 1, "a short budget still answers a record");

    let peak_mib = status_kib(server.pid(), "VmHWM") / 1024;
    // Answers being built sit beside the budget: one per CPU at a time.
    let builders = thread::available_parallelism().map_or(2, |cpus| cpus.get().max(2)) as u64;
    let building_mib = builders * BUILD_MIB;
    let bound = RESPONSE_BUDGET_MIB + ALLOWANCE_MIB + building_mib;
    eprintln!("50 stalled 10 MiB answers: server peak RSS {peak_mib} MiB (bound {bound} MiB)");
    assert!(
        peak_mib <= bound,
        "peak RSS {peak_mib} MiB exceeds the {RESPONSE_BUDGET_MIB} MiB response budget + \
         {ALLOWANCE_MIB} MiB + {building_mib} MiB for answers being built"
    );
    drop(stalled);
}

/// A connection whose client takes no part of its answer for `--send-timeout-s` is closed,
/// which frees the answer: the client gets what the socket buffers held, then the end of the
/// stream, and full answers are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_not_taken_within_the_send_timeout_closes_its_connection() {
    let budget = BUDGET_MIB.to_string();
    let server = Server::in_memory_with(&[
        "--limits",
        "off",
        "--request-memory-mib",
        budget.as_str(),
        "--response-memory-mib",
        "40",
        "--send-timeout-s",
        "3",
    ]);
    let client = server.client();
    let iterator = big_stream(&client).await;
    // Each reads the head of its answer, once it is built, and nothing more.
    let addr = server.addr;
    let clients: Vec<_> = (0..5)
        .map(|_| {
            let iterator = iterator.clone();
            thread::spawn(move || {
                let mut stream = ask_and_never_read(addr, &iterator);
                let declared = read_head(&mut stream);
                (stream, declared)
            })
        })
        .collect();
    let mut stalled: Vec<(TcpStream, usize)> = clients
        .into_iter()
        .map(|client| client.join().expect("stalled client"))
        .collect();
    // Past the timeout, reading shows what the server did. An answer small enough to fit in
    // the sockets' kernel buffers was written out whole (the process held nothing). A full
    // 13 MB answer does not fit: its connection was closed, so the client gets what the
    // buffers held, then the end of the stream. A connection still open would send the rest
    // now that it is read, and the answer would arrive whole.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut cut = 0;
    for (i, (stream, declared)) in stalled.iter_mut().enumerate() {
        let declared = *declared;
        let received = drain_body(stream, declared);
        eprintln!("stalled client {i}: {received} of {declared} bytes");
        if declared > 10 * BIG_RECORD_BYTES {
            assert!(
                received < declared,
                "stalled client {i} got its whole {declared}-byte answer: the connection was kept"
            );
            cut += 1;
        }
    }
    assert!(cut >= 1, "at least one full answer was stalled");
    assert_eq!(
        records_from(&client, &iterator).await,
        10,
        "the budget is free again"
    );
}
