//! Overload and hostile clients against one server while a well-behaved SDK client goes on
//! working: thousands of idle connections, clients that send their request a byte at a time,
//! bodies of 100 MiB (declared, chunked, and honest ones under the limit, many at once).
//!
//! What must hold: every hostile request gets a clean AWS-style error or a closed connection;
//! the SDK client's calls keep succeeding, each well within a second or two; and the server's
//! peak memory (VmHWM) stays within the configured request-memory budget plus a fixed
//! allowance for the process itself and its connections.

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
