//! A full disk: riffle on a small tmpfs, written until no byte is left.
//!
//! What must hold (issue "fast and unbreakable"): writes beyond the space get a retriable
//! error (HTTP 500 InternalFailure with AWS's generic text, which every SDK retries) and the
//! server keeps serving; reads of everything acknowledged keep working; nothing acknowledged
//! is lost, across a SIGKILL and restart too; and writes resume, without a restart, once space
//! is freed.
//!
//! Mounting a tmpfs needs root (CI and the development machines run as root). Elsewhere the
//! test says so on stderr and passes without running.

#[path = "sdk/common.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::Client;

use common::*;

const STREAM: &str = "full";
/// The filesystem: small enough to fill in a second, big enough for the catalogue and the
/// first segments.
const TMPFS_BYTES: u64 = 12 << 20;
/// Space taken up front and freed later, to show that writes resume.
const BALLAST_BYTES: usize = 3 << 20;
const RECORD_BYTES: usize = 48 * 1024;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    _parent: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    fn mount(bytes: u64) -> Option<Tmpfs> {
        let parent = tempfile::tempdir().expect("temp dir");
        let path = parent.path().join("fs");
        std::fs::create_dir(&path).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&path)
            .stderr(std::process::Stdio::null())
            .status();
        match status {
            Ok(status) if status.success() => Some(Tmpfs {
                _parent: parent,
                path,
            }),
            _ => None,
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

fn record(counter: u64) -> (String, Vec<u8>) {
    let key = format!("key-{counter}");
    let mut data = format!("{counter}|").into_bytes();
    let mut prng = Prng::new(counter + 1);
    // Random bytes, so tmpfs cannot store them any smaller.
    data.extend(prng.bytes(RECORD_BYTES - data.len()));
    (key, data)
}

/// Puts records until the first refusal; returns the acknowledged (sequence number, counter)
/// pairs and the error code of the refusal.
async fn fill(client: &Client, first: u64, acked: &mut Vec<(String, u64)>) -> (u64, String) {
    let mut counter = first;
    loop {
        let (key, data) = record(counter);
        let result = client
            .put_record()
            .stream_name(STREAM)
            .partition_key(&key)
            .data(Blob::new(data))
            .send()
            .await;
        match result {
            Ok(output) => acked.push((output.sequence_number().to_owned(), counter)),
            Err(error) => {
                let (error, status) = service_error(Err::<(), _>(error));
                assert_eq!(status, 500, "a full disk is a retriable server error");
                return (counter + 1, error.code().unwrap_or_default().to_owned());
            }
        }
        counter += 1;
        assert!(
            counter - first < 10 * (TMPFS_BYTES / RECORD_BYTES as u64),
            "the disk never filled"
        );
    }
}

async fn check_all_readable(client: &Client, acked: &[(String, u64)], when: &str) {
    let records = read_shard(client, STREAM, &shard_id(0)).await;
    let by_sequence: std::collections::HashMap<&str, &[u8]> = records
        .iter()
        .map(|r| (r.sequence_number(), r.data().as_ref()))
        .collect();
    for (sequence_number, counter) in acked {
        let data = by_sequence
            .get(sequence_number.as_str())
            .unwrap_or_else(|| panic!("{when}: acknowledged record {counter} missing"));
        assert!(
            *data == record(*counter).1.as_slice(),
            "{when}: record {counter} changed"
        );
    }
}

fn used_bytes(path: &Path) -> u64 {
    let mut total = 0;
    for entry in walk(path) {
        total += entry.metadata().map(|m| m.len()).unwrap_or(0);
    }
    total
}

fn walk(path: &Path) -> Vec<std::fs::DirEntry> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&entry.path()));
            } else {
                out.push(entry);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_keeps_reads_and_recovers_when_space_is_freed() {
    let Some(fs) = Tmpfs::mount(TMPFS_BYTES) else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    };
    let ballast = fs.path.join("ballast");
    std::fs::write(&ballast, vec![0xA5u8; BALLAST_BYTES]).expect("ballast");
    let data_dir = fs.path.join("data");
    let segment = (1u64 << 20).to_string();
    let flags = ["--limits", "off", "--segment-bytes-max", segment.as_str()];
    let server = Server::on_data_dir_with(&data_dir, &flags);
    let client = server.client();
    create_stream(&client, STREAM, 1).await;

    let mut acked = Vec::new();
    let (next, code) = fill(&client, 0, &mut acked).await;
    assert_eq!(code, "InternalFailure");
    assert!(
        acked.len() >= 50,
        "only {} records fit before the disk was full",
        acked.len()
    );
    eprintln!(
        "disk full after {} records; data dir holds {} bytes",
        acked.len(),
        used_bytes(&data_dir)
    );
    // Still full: still refused, the same way, and the server keeps answering.
    for counter in next..next + 5 {
        let (key, data) = record(counter);
        let result = client
            .put_record()
            .stream_name(STREAM)
            .partition_key(&key)
            .data(Blob::new(data))
            .send()
            .await;
        let (error, status) = service_error(result);
        assert_eq!((error.code(), status), (Some("InternalFailure"), 500));
    }
    client
        .describe_stream_summary()
        .stream_name(STREAM)
        .send()
        .await
        .expect("control plane answers on a full disk");
    check_all_readable(&client, &acked, "on a full disk").await;

    // Free space: writes resume without a restart.
    std::fs::remove_file(&ballast).expect("free the ballast");
    let resumed_from = acked.len();
    let (_, code) = fill(&client, next + 5, &mut acked).await;
    assert_eq!(code, "InternalFailure");
    assert!(
        acked.len() - resumed_from >= (BALLAST_BYTES / RECORD_BYTES) / 2,
        "only {} records written after freeing {BALLAST_BYTES} bytes",
        acked.len() - resumed_from
    );
    check_all_readable(&client, &acked, "after space was freed").await;

    // Nothing acknowledged is lost across a crash on a full disk.
    server.kill();
    let server = Server::on_data_dir_with(&data_dir, &flags);
    let client = server.client();
    check_all_readable(&client, &acked, "after kill -9 and restart on a full disk").await;
    drop(server);
    drop(fs);
}
