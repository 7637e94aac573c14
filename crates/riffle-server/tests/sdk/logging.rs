//! The server's log is plain text unless it goes to a terminal: no ANSI colour codes in a
//! file, a pipe or journald, fatal start errors included (a terminal gets colours unless
//! `NO_COLOR` is set; that choice is unit-tested beside `main`).

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ESC: u8 = 0x1b;
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// `riffle serve ARGS` with stderr on a pipe and no `NO_COLOR`, so only the terminal check
/// can keep colours out.
fn riffle(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_riffle"))
        .arg("serve")
        .args(args)
        .env_remove("NO_COLOR")
        .env("RIFFLE_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn riffle")
}

fn assert_plain(stderr: &[u8], what: &str) {
    let text = String::from_utf8_lossy(stderr);
    assert!(!text.trim().is_empty(), "{what}: nothing was logged");
    assert!(
        !stderr.contains(&ESC),
        "{what}: the log carries escape codes:\n{text:?}"
    );
}

#[test]
fn a_fatal_start_error_on_a_pipe_is_plain_text() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("no-such-credentials");
    let mut child = riffle(&[
        "--in-memory",
        "--listen",
        "127.0.0.1:0",
        "--credentials",
        missing.to_str().expect("UTF-8 path"),
    ]);
    let deadline = Instant::now() + EXIT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for riffle") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("riffle did not refuse to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = Vec::new();
    child
        .stderr
        .take()
        .expect("stderr is piped")
        .read_to_end(&mut stderr)
        .expect("read stderr");
    assert!(!status.success());
    assert!(
        String::from_utf8_lossy(&stderr).contains("refusing to start"),
        "{}",
        String::from_utf8_lossy(&stderr)
    );
    assert_plain(&stderr, "a refused start");
}

#[test]
fn a_serving_server_logs_plain_text_to_a_pipe() {
    let mut child = riffle(&["--in-memory", "--listen", "127.0.0.1:0"]);
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout is piped"))
        .read_line(&mut line)
        .expect("read the listening line");
    assert!(line.starts_with("riffle listening on "), "{line:?}");
    // A refused request adds a debug line of its own.
    let addr = line.trim_end().trim_start_matches("riffle listening on ");
    if let Ok(mut stream) = std::net::TcpStream::connect(addr) {
        use std::io::Write;
        let _ = stream.write_all(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        );
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = Vec::new();
    child
        .stderr
        .take()
        .expect("stderr is piped")
        .read_to_end(&mut stderr)
        .expect("read stderr");
    assert!(
        String::from_utf8_lossy(&stderr).contains("riffle is serving"),
        "{}",
        String::from_utf8_lossy(&stderr)
    );
    assert_plain(&stderr, "a serving server");
}
