//! A damaged or foreign data directory: the start must never delete or reinterpret data it
//! cannot account for, and must never hand out a sequence number twice.
//!
//! Method: each test writes records through the Rust SDK to a real `riffle serve` on a data
//! directory, stops it (SIGKILL, or SIGTERM for a clean shutdown), damages the directory the
//! way a bad disk, a bad restore or a wrong `--data-dir` would, and starts the binary again.
//! Without `--accept-data-loss` the start must fail, name the shard or the directory, and
//! leave every byte in place; with it, the start must go on, keep what it set aside under
//! `lost+found/`, and number new records above every number it ever issued.

#[path = "sdk/common.rs"]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::Client;

use common::*;

const STREAM: &str = "damage";

/// Everything under `dir`, as (relative path, bytes), for "nothing was changed" checks.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in fs::read_dir(&next).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().to_path_buf();
                files.push((relative, fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// The files of shard `ordinal`'s log, sorted (segments and indexes).
fn shard_files(data: &Path, ordinal: u32) -> Vec<PathBuf> {
    let streams = data.join("streams");
    let stream_dir = fs::read_dir(&streams)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut files: Vec<PathBuf> = fs::read_dir(stream_dir.join(ordinal.to_string()))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
}

fn segments(data: &Path, ordinal: u32) -> Vec<PathBuf> {
    shard_files(data, ordinal)
        .into_iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect()
}

/// Puts `count` records with explicit hash key 0 (shard 0), returning their numbers.
async fn put_to_shard_0(client: &Client, count: usize, tag: &str) -> Vec<String> {
    let mut numbers = Vec::with_capacity(count);
    for i in 0..count {
        let output = client
            .put_record()
            .stream_name(STREAM)
            .partition_key("k")
            .explicit_hash_key("0")
            .data(Blob::new(format!("{tag}-{i}-{}", "x".repeat(200))))
            .send()
            .await
            .unwrap();
        assert_eq!(output.shard_id(), shard_id(0));
        numbers.push(output.sequence_number().to_string());
    }
    numbers
}

/// A durable server with small segments (so shards have several), writing `count` records
/// to shard 0 of a 2-shard stream; returns the numbers after the watermarks caught up.
async fn written(data: &Path, count: usize) -> Vec<String> {
    let server =
        Server::on_data_dir_with(data, &["--limits", "off", "--segment-bytes-max", "4096"]);
    let client = server.client();
    create_stream(&client, STREAM, 2).await;
    let numbers = put_to_shard_0(&client, count, "before").await;
    // Let the once-a-second watermark writer record what is synced.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    server.kill();
    numbers
}

fn refused(data: &Path) -> String {
    Server::refused_start(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--segment-bytes-max",
        "4096",
    ])
}

fn accepting(data: &Path) -> Server {
    Server::on_data_dir_with(
        data,
        &[
            "--limits",
            "off",
            "--segment-bytes-max",
            "4096",
            "--accept-data-loss",
        ],
    )
}

#[tokio::test]
async fn a_missing_catalogue_refuses_the_start_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    written(&data, 10).await;
    fs::remove_file(data.join("meta.json")).unwrap();
    let before = snapshot(&data);
    let stderr = refused(&data);
    assert!(stderr.contains("no meta.json"), "{stderr}");
    assert!(stderr.contains("streams"), "names what is there: {stderr}");
    assert_eq!(snapshot(&data), before, "nothing was changed");
    // Even --accept-data-loss does not start over a directory without a catalogue.
    let stderr =
        Server::refused_start(&["--data-dir", data.to_str().unwrap(), "--accept-data-loss"]);
    assert!(stderr.contains("no meta.json"), "{stderr}");
    assert_eq!(snapshot(&data), before);
}

#[tokio::test]
async fn a_foreign_directory_is_never_touched() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("photos");
    fs::create_dir_all(data.join("streams").join("2024")).unwrap();
    fs::write(data.join("streams").join("2024").join("beach.jpg"), b"jpeg").unwrap();
    fs::write(data.join("notes.txt"), b"mine").unwrap();
    let before = snapshot(&data);
    let stderr = refused(&data);
    assert!(
        stderr.contains("notes.txt") && stderr.contains("streams"),
        "{stderr}"
    );
    assert_eq!(snapshot(&data), before);
    // An empty directory is fine, and so is one that does not exist yet.
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    drop(Server::on_data_dir(&empty));
    assert!(empty.join("meta.json").exists());
}

#[tokio::test]
async fn data_the_catalogue_does_not_name_is_kept_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    written(&data, 5).await;
    // A stream directory from elsewhere (a copy, a restore) holding a real segment. (The
    // segment is found first: `segments` looks in the only stream directory there is.)
    let segment = segments(&data, 0)[0].clone();
    let stranger = data.join("streams").join("feedfacefeedface").join("0");
    fs::create_dir_all(&stranger).unwrap();
    fs::copy(&segment, stranger.join("00000000000000000001.log")).unwrap();
    let before = snapshot(&data);
    let stderr = refused(&data);
    assert!(stderr.contains("feedfacefeedface"), "{stderr}");
    assert_eq!(snapshot(&data), before);
    // A leftover of an interrupted CreateStream (empty logs only) is removed quietly.
    fs::remove_dir_all(data.join("streams").join("feedfacefeedface")).unwrap();
    let leftover = data.join("streams").join("0123456789abcdef").join("0");
    fs::create_dir_all(&leftover).unwrap();
    fs::write(leftover.join("00000000000000000001.log"), b"").unwrap();
    let server = Server::on_data_dir(&data);
    drop(server);
    assert!(!data.join("streams").join("0123456789abcdef").exists());
}

/// The case: the active segment deleted. Without the watermark the log would start
/// short, silently, and hand out the lost numbers again.
#[tokio::test]
async fn a_lost_active_segment_refuses_the_start_then_never_reuses_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let numbers = written(&data, 60).await;
    let all = segments(&data, 0);
    assert!(all.len() >= 2, "small segments make several: {all:?}");
    fs::remove_file(all.last().unwrap()).unwrap();
    let before = snapshot(&data);
    let stderr = refused(&data);
    assert!(
        stderr.contains("shardId-000000000000"),
        "names the shard: {stderr}"
    );
    assert!(
        stderr.contains("--accept-data-loss"),
        "says what to do: {stderr}"
    );
    assert_eq!(snapshot(&data), before, "nothing was changed");

    // The operator accepts the loss: shard 0 closes at its last intact record and a new
    // shard takes its range; every new number sorts above every number ever issued.
    let server = accepting(&data);
    let client = server.client();
    let shards = list_all_shards(&client, STREAM).await;
    let old = shards.iter().find(|s| s.shard_id() == shard_id(0)).unwrap();
    assert!(
        old.sequence_number_range()
            .unwrap()
            .ending_sequence_number()
            .is_some(),
        "the damaged shard is closed"
    );
    let replacement = shards
        .iter()
        .find(|s| s.parent_shard_id() == Some(&shard_id(0)))
        .expect("a shard replaces it");
    assert_eq!(hash_range(replacement), hash_range(old));
    let kept = read_closed_shard(&client, STREAM, &shard_id(0)).await;
    assert!(!kept.is_empty() && kept.len() < numbers.len());
    for (record, number) in kept.iter().zip(&numbers) {
        assert_eq!(
            record.sequence_number(),
            number,
            "what survived is unchanged"
        );
    }
    let output = client
        .put_record()
        .stream_name(STREAM)
        .partition_key("k")
        .explicit_hash_key("0")
        .data(Blob::new("after"))
        .send()
        .await
        .unwrap();
    assert_eq!(output.shard_id(), replacement.shard_id());
    for number in &numbers {
        assert_sequence_before(number, output.sequence_number());
    }
    // What was set aside is kept, not deleted.
    assert!(data.join("lost+found").is_dir());
    drop(server);
}

#[tokio::test]
async fn a_lost_first_segment_or_shard_directory_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    written(&data, 60).await;
    let first = segments(&data, 0)[0].clone();
    let moved = dir.path().join("first.log");
    fs::rename(&first, &moved).unwrap();
    let stderr = refused(&data);
    assert!(stderr.contains("shardId-000000000000"), "{stderr}");
    assert!(stderr.contains("start of the log"), "{stderr}");
    fs::rename(&moved, &first).unwrap();

    let shard_dir = first.parent().unwrap().to_path_buf();
    let aside = dir.path().join("shard-0");
    fs::rename(&shard_dir, &aside).unwrap();
    let stderr = refused(&data);
    assert!(stderr.contains("shardId-000000000000"), "{stderr}");
    assert!(!shard_dir.exists(), "the start did not recreate it empty");
    fs::rename(&aside, &shard_dir).unwrap();
    // Put back, everything is there again.
    drop(Server::on_data_dir(&data));
}

/// A truncated active segment after a clean shutdown cannot be a torn write.
#[tokio::test]
async fn a_cut_end_after_a_clean_shutdown_is_loss_not_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::on_data_dir_with(&data, &["--limits", "off"]);
    let client = server.client();
    create_stream(&client, STREAM, 1).await;
    put_to_shard_0(&client, 5, "clean").await;
    server.stop_cleanly();
    let active = segments(&data, 0).last().unwrap().clone();
    let length = fs::metadata(&active).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(length - 7)
        .unwrap();
    let stderr = Server::refused_start(&["--data-dir", data.to_str().unwrap()]);
    assert!(
        stderr.contains("closed cleanly") || stderr.contains("synced"),
        "{stderr}"
    );
    assert_eq!(
        fs::metadata(&active).unwrap().len(),
        length - 7,
        "nothing cut"
    );
}

/// Bytes flipped early in a sealed segment are found at start, not by every reader forever.
#[tokio::test]
async fn damage_in_a_sealed_segment_is_found_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let numbers = written(&data, 60).await;
    let first = segments(&data, 0)[0].clone();
    let mut bytes = fs::read(&first).unwrap();
    bytes[300] ^= 0x55;
    fs::write(&first, &bytes).unwrap();
    let stderr = refused(&data);
    assert!(stderr.contains("shardId-000000000000"), "{stderr}");
    assert!(stderr.contains("corrupt"), "{stderr}");
    // Accepted: the records before the damage stay readable, the rest is kept aside.
    let server = accepting(&data);
    let client = server.client();
    let kept = read_closed_shard(&client, STREAM, &shard_id(0)).await;
    assert!(kept.len() < numbers.len());
    for (record, number) in kept.iter().zip(&numbers) {
        assert_eq!(record.sequence_number(), number);
    }
    let set_aside = snapshot(&data.join("lost+found"));
    assert!(
        set_aside.iter().any(|(_, content)| *content == bytes),
        "the damaged segment is kept whole"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn data_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    written(&data, 30).await;
    let mut pending = vec![data.clone()];
    while let Some(next) = pending.pop() {
        let mode = fs::metadata(&next).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", next.display());
        if next.is_dir() {
            for entry in fs::read_dir(&next).unwrap() {
                pending.push(entry.unwrap().path());
            }
        }
    }
}
