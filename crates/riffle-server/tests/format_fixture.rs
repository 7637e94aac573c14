//! Data directories written by earlier riffles open unchanged: no silent reinterpretation.
//!
//! `tests/fixtures/before-watermarks/` is a data directory written by the riffle of commit
//! 3681fd0 (the last single-node format, before `watermarks.json`, the catalogue's `removing`
//! and `watermarks` fields, and owner-only directories): a 2-shard stream `orders` with a tag,
//! 20 records, shard 0 split, 10 more records, stopped with SIGTERM. `acks.tsv` beside it lists
//! what that server acknowledged: partition key, data, shard, sequence number. The fixture's
//! README says how it was made. Checked: the new binary starts on a copy, serves every
//! acknowledged record with its number, numbers new records above them, writes its watermarks,
//! and starts again from what it wrote.

#[path = "sdk/common.rs"]
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::Client;

use common::*;

const STREAM: &str = "orders";

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Sequence number -> (partition key, data) of every record the stream serves.
async fn everything(client: &Client) -> BTreeMap<String, (String, Vec<u8>)> {
    let mut found = BTreeMap::new();
    for shard in list_all_shards(client, STREAM).await {
        let closed = shard
            .sequence_number_range()
            .and_then(|range| range.ending_sequence_number())
            .is_some();
        let records = if closed {
            read_closed_shard(client, STREAM, shard.shard_id()).await
        } else {
            read_shard(client, STREAM, shard.shard_id()).await
        };
        for record in records {
            found.insert(
                record.sequence_number().to_string(),
                (
                    record.partition_key().unwrap_or_default().to_string(),
                    record.data().as_ref().to_vec(),
                ),
            );
        }
    }
    found
}

#[tokio::test]
async fn a_data_directory_from_before_watermarks_opens_and_keeps_every_record() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/before-watermarks");
    let acks: Vec<(String, String, String, String)> = fs::read_to_string(fixture.join("acks.tsv"))
        .unwrap()
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            (
                fields[0].to_string(),
                fields[1].to_string(),
                fields[2].to_string(),
                fields[3].to_string(),
            )
        })
        .collect();
    assert_eq!(acks.len(), 30);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_tree(&fixture.join("data"), &data);
    assert!(!data.join("watermarks.json").exists());
    // The fixture's records are as old as the fixture, and its stream keeps records 24 hours:
    // a day after it was made, retention expired them all at the start. Keep them for the
    // longest retention Kinesis allows (a year), as an operator would before reading old data.
    let meta = data.join("meta.json");
    let text = std::fs::read_to_string(&meta).unwrap();
    assert!(text.contains("\"retention_hours\": 24"));
    std::fs::write(
        &meta,
        text.replace("\"retention_hours\": 24", "\"retention_hours\": 8760"),
    )
    .unwrap();

    let server = Server::on_data_dir_with(&data, &["--limits", "off"]);
    let client = server.client();
    let tags = client
        .list_tags_for_stream()
        .stream_name(STREAM)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags()[0].key(), "team");
    let found = everything(&client).await;
    assert_eq!(found.len(), acks.len(), "nothing invented, nothing lost");
    for (key, data, _shard, number) in &acks {
        let (found_key, found_data) = found
            .get(number)
            .unwrap_or_else(|| panic!("acknowledged record {number} is missing"));
        assert_eq!((found_key, found_data.as_slice()), (key, data.as_bytes()));
    }
    let output = client
        .put_record()
        .stream_name(STREAM)
        .partition_key("k0")
        .data(Blob::new("after the upgrade"))
        .send()
        .await
        .unwrap();
    for (key, _, shard, number) in &acks {
        if key == "k0" && shard == output.shard_id() {
            assert_sequence_before(number, output.sequence_number());
        }
    }
    server.stop_cleanly();

    // The new riffle now keeps watermarks and says so in the catalogue.
    assert!(data.join("watermarks.json").exists());
    let catalogue = fs::read_to_string(data.join("meta.json")).unwrap();
    assert!(catalogue.contains("\"watermarks\": true"), "{catalogue}");
    let server = Server::on_data_dir(&data);
    let client = server.client();
    let again = everything(&client).await;
    assert_eq!(again.len(), acks.len() + 1);
}
