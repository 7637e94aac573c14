//! Encryption at rest: StartStreamEncryption and StopStreamEncryption with keys from
//! `--kms-keys` (and `alias/aws/kinesis` without a file), the EncryptionType every answer
//! reports, and what the data directory holds: a known plaintext written before encryption is
//! found in its files, one written while encryption is on is not, and both stay readable after
//! a restart and after encryption stops. A start that cannot provide a key the records need is
//! refused.

use std::path::{Path, PathBuf};

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    EncryptionType, PutRecordsRequestEntry, ShardIteratorType, StartingPosition, StreamStatus,
    SubscribeToShardEventStream,
};
use aws_sdk_kinesis::Client;

use crate::common::*;

/// An enabled key with an alias.
const KEY_A: &str = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b";
const KEY_A_HEX: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0";
/// The same id with other material (a key file that lost the real one).
const KEY_A_OTHER_HEX: &str = "ff1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0";
/// A disabled key.
const KEY_B: &str = "0b4f5a5e-2d2e-4c56-9a57-1c2d3e4f5a6b";
const KEY_B_BASE64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// A key id no file lists.
const KEY_UNKNOWN: &str = "11111111-2222-4333-8444-555555555555";

const BEFORE: &str = "PLAINTEXT-BEFORE-ENCRYPTION-7d1f";
const WHILE: &str = "SECRET-WRITTEN-WHILE-ENCRYPTED-3a9c";
const AFTER: &str = "PLAINTEXT-AFTER-ENCRYPTION-c04e";

fn key_file_text(key_a_hex: &str, key_a_state: &str) -> String {
    format!(
        "# riffle test keys\n\
         {KEY_A}  {key_a_state}   {key_a_hex}  alias/riffle-test  alias/team/orders\n\
         {KEY_B}  disabled  {KEY_B_BASE64}  alias/switched-off\n"
    )
}

/// Writes a key file readable by its owner only, as the README asks.
fn write_key_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    path
}

fn key_arn(id: &str) -> String {
    format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{id}")
}

/// Records carrying `marker` in their data and partition keys, through PutRecord and
/// PutRecords; returns the EncryptionType each answer reported.
async fn put_marked(client: &Client, stream: &str, marker: &str) -> Vec<EncryptionType> {
    let mut reported = Vec::new();
    let single = client
        .put_record()
        .stream_name(stream)
        .partition_key(format!("{marker}-single"))
        .data(Blob::new(format!("{marker} single record ").repeat(8)))
        .send()
        .await
        .unwrap_or_else(|error| panic!("PutRecord {marker}: {error:?}"));
    reported.push(single.encryption_type().cloned().expect("EncryptionType"));
    let mut batch = client.put_records().stream_name(stream);
    for index in 0..20 {
        batch = batch.records(
            PutRecordsRequestEntry::builder()
                .partition_key(format!("{marker}-{index}"))
                .data(Blob::new(
                    format!("{marker} batch record {index} ").repeat(index + 1),
                ))
                .build()
                .unwrap(),
        );
    }
    let answer = batch
        .send()
        .await
        .unwrap_or_else(|error| panic!("PutRecords {marker}: {error:?}"));
    assert_eq!(answer.failed_record_count(), Some(0), "{answer:?}");
    reported.push(answer.encryption_type().cloned().expect("EncryptionType"));
    reported
}

/// Every record of the stream's `shards` shards, from TRIM_HORIZON, as (data, EncryptionType),
/// a record without one counting as NONE.
async fn read_everything(
    client: &Client,
    stream: &str,
    shards: u32,
) -> Vec<(String, EncryptionType)> {
    let mut found = Vec::new();
    for ordinal in 0..shards {
        for record in read_shard(client, stream, &shard_id(ordinal)).await {
            let data = String::from_utf8(record.data().as_ref().to_vec()).expect("UTF-8 data");
            // As on AWS, only a record stored encrypted carries an EncryptionType (KMS).
            let kind = match record.encryption_type() {
                None => EncryptionType::None,
                Some(EncryptionType::Kms) => EncryptionType::Kms,
                Some(other) => panic!("EncryptionType {other:?} on {record:?}"),
            };
            found.push((data, kind));
        }
    }
    found
}

/// Asserts the records written with each marker: how many, and their EncryptionType.
fn assert_marked(found: &[(String, EncryptionType)], expected: &[(&str, EncryptionType)]) {
    for (marker, kind) in expected {
        let marked: Vec<&(String, EncryptionType)> = found
            .iter()
            .filter(|(data, _)| data.starts_with(marker))
            .collect();
        assert_eq!(marked.len(), 21, "records with {marker}: {marked:?}");
        for (data, found_kind) in marked {
            assert_eq!(found_kind, kind, "EncryptionType of {data:?}");
        }
    }
    assert_eq!(found.len(), expected.len() * 21, "no other records");
}

/// DescribeStreamSummary's (EncryptionType, KeyId), with DescribeStream agreeing.
async fn described(client: &Client, stream: &str) -> (Option<EncryptionType>, Option<String>) {
    let summary = client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap();
    let description = client
        .describe_stream()
        .stream_name(stream)
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap();
    let answer = (
        summary.encryption_type().cloned(),
        summary.key_id().map(str::to_owned),
    );
    assert_eq!(
        (
            description.encryption_type().cloned(),
            description.key_id().map(str::to_owned)
        ),
        answer,
        "DescribeStream agrees with DescribeStreamSummary"
    );
    answer
}

async fn start(client: &Client, stream: &str, key_id: &str) {
    client
        .start_stream_encryption()
        .stream_name(stream)
        .encryption_type(EncryptionType::Kms)
        .key_id(key_id)
        .send()
        .await
        .unwrap_or_else(|error| panic!("StartStreamEncryption {key_id}: {error:?}"));
}

async fn stop(client: &Client, stream: &str, key_id: &str) {
    client
        .stop_stream_encryption()
        .stream_name(stream)
        .encryption_type(EncryptionType::Kms)
        .key_id(key_id)
        .send()
        .await
        .unwrap_or_else(|error| panic!("StopStreamEncryption {key_id}: {error:?}"));
}

#[tokio::test]
async fn encrypted_records_leave_no_plaintext_in_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let keys = write_key_file(dir.path(), "keys", &key_file_text(KEY_A_HEX, "enabled"));
    let server = Server::with_kms_keys(&data, &keys, &["--limits", "off"]);
    let client = server.client();
    let stream = "sse";
    create_stream(&client, stream, 2).await;
    assert_eq!(
        described(&client, stream).await,
        (Some(EncryptionType::None), None)
    );

    // Before encryption: plaintext on disk (the grep below would be vacuous otherwise).
    let reported = put_marked(&client, stream, BEFORE).await;
    assert_eq!(reported, [EncryptionType::None, EncryptionType::None]);
    assert!(
        data_dir_contains(&data, BEFORE.as_bytes()),
        "a record written without encryption is stored as it is"
    );

    start(&client, stream, "alias/riffle-test").await;
    assert_eq!(
        described(&client, stream).await,
        (
            Some(EncryptionType::Kms),
            Some("alias/riffle-test".to_owned())
        ),
        "the KeyId as the client gave it"
    );
    let reported = put_marked(&client, stream, WHILE).await;
    assert_eq!(reported, [EncryptionType::Kms, EncryptionType::Kms]);
    assert!(
        !data_dir_contains(&data, WHILE.as_bytes()),
        "a record written while encrypted left its plaintext on disk"
    );

    let found = read_everything(&client, stream, 2).await;
    assert_marked(
        &found,
        &[(BEFORE, EncryptionType::None), (WHILE, EncryptionType::Kms)],
    );

    // A restart (SIGKILL, no clean shutdown) keeps the records and the stream's state.
    server.kill();
    let server = Server::with_kms_keys(&data, &keys, &["--limits", "off"]);
    let client = server.client();
    assert_eq!(
        described(&client, stream).await,
        (
            Some(EncryptionType::Kms),
            Some("alias/riffle-test".to_owned())
        )
    );
    let found = read_everything(&client, stream, 2).await;
    assert_marked(
        &found,
        &[(BEFORE, EncryptionType::None), (WHILE, EncryptionType::Kms)],
    );

    // StopStreamEncryption takes any form of the key in use (here its ARN, not the alias
    // given to Start); afterwards records are stored as they are again.
    stop(&client, stream, &key_arn(KEY_A)).await;
    assert_eq!(
        described(&client, stream).await,
        (Some(EncryptionType::None), None)
    );
    let reported = put_marked(&client, stream, AFTER).await;
    assert_eq!(reported, [EncryptionType::None, EncryptionType::None]);
    assert!(data_dir_contains(&data, AFTER.as_bytes()));
    assert!(!data_dir_contains(&data, WHILE.as_bytes()));
    let found = read_everything(&client, stream, 2).await;
    assert_marked(
        &found,
        &[
            (BEFORE, EncryptionType::None),
            (WHILE, EncryptionType::Kms),
            (AFTER, EncryptionType::None),
        ],
    );

    // Encrypted records written before the stop survive another restart too.
    server.kill();
    let server = Server::with_kms_keys(&data, &keys, &["--limits", "off"]);
    let found = read_everything(&server.client(), stream, 2).await;
    assert_marked(
        &found,
        &[
            (BEFORE, EncryptionType::None),
            (WHILE, EncryptionType::Kms),
            (AFTER, EncryptionType::None),
        ],
    );
}

#[tokio::test]
async fn start_and_stop_refuse_what_aws_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let keys = write_key_file(dir.path(), "keys", &key_file_text(KEY_A_HEX, "enabled"));
    let keys_arg = keys.to_str().unwrap();
    let server = Server::in_memory_with(&[
        "--limits",
        "off",
        "--kms-keys",
        keys_arg,
        "--update-window-ms",
        "60000",
    ]);
    let client = server.client();
    let stream = "sse-errors";
    create_stream(&client, stream, 1).await;
    let try_start = |kind: EncryptionType, key_id: &str| {
        client
            .start_stream_encryption()
            .stream_name(stream)
            .encryption_type(kind)
            .key_id(key_id)
            .send()
    };
    let not_found = |given: &str| {
        format!(
            "KMS key {given} does not exist: no key of the server's key file (--kms-keys) has \
             this key id, key ARN, alias or alias ARN."
        )
    };
    for given in [
        KEY_UNKNOWN.to_owned(),
        "alias/nobody".to_owned(),
        key_arn(KEY_UNKNOWN),
        // The right key in another region or account is not found either.
        format!("arn:aws:kms:eu-west-1:{ACCOUNT}:key/{KEY_A}"),
        format!("arn:aws:kms:{REGION}:123456789012:alias/riffle-test"),
        "not-a-key".to_owned(),
    ] {
        expect_error(
            try_start(EncryptionType::Kms, &given).await,
            "KMSNotFoundException",
            Some(&not_found(&given)),
        );
    }
    let disabled = format!("{} is disabled.", key_arn(KEY_B));
    for given in [
        KEY_B.to_owned(),
        "alias/switched-off".to_owned(),
        key_arn(KEY_B),
    ] {
        expect_error(
            try_start(EncryptionType::Kms, &given).await,
            "KMSDisabledException",
            Some(&disabled),
        );
    }
    expect_error(
        try_start(EncryptionType::None, KEY_A).await,
        "InvalidArgumentException",
        Some("EncryptionType NONE is not valid for StartStreamEncryption: the only valid value is KMS."),
    );
    expect_error(
        client
            .start_stream_encryption()
            .stream_name("missing")
            .encryption_type(EncryptionType::Kms)
            .key_id(KEY_A)
            .send()
            .await,
        "ResourceNotFoundException",
        Some(&stream_not_found("missing")),
    );
    let try_stop = |kind: EncryptionType, key_id: &str| {
        client
            .stop_stream_encryption()
            .stream_name(stream)
            .encryption_type(kind)
            .key_id(key_id)
            .send()
    };
    expect_error(
        try_stop(EncryptionType::Kms, KEY_A).await,
        "InvalidArgumentException",
        Some(&format!(
            "Stream {stream} under account {ACCOUNT} is not encrypted."
        )),
    );
    assert_eq!(
        described(&client, stream).await,
        (Some(EncryptionType::None), None)
    );

    // Nothing above changed the stream; a good key does, and the stream is UPDATING for the
    // update window, refusing another change as AWS does.
    start(&client, stream, "alias/team/orders").await;
    let summary = client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap();
    assert_eq!(summary.stream_status(), &StreamStatus::Updating);
    assert_eq!(summary.encryption_type(), Some(&EncryptionType::Kms));
    assert_eq!(summary.key_id(), Some("alias/team/orders"));
    let in_use =
        format!("Stream {stream} under account {ACCOUNT} not ACTIVE, instead in state UPDATING");
    expect_error(
        try_start(EncryptionType::Kms, KEY_A).await,
        "ResourceInUseException",
        Some(&in_use),
    );
    expect_error(
        try_stop(EncryptionType::Kms, "alias/team/orders").await,
        "ResourceInUseException",
        Some(&in_use),
    );
    // Records are sealed from the call's return on, UPDATING or not.
    let reported = put_marked(&client, stream, WHILE).await;
    assert_eq!(reported, [EncryptionType::Kms, EncryptionType::Kms]);
}

/// StopStreamEncryption's checks, on an ACTIVE encrypted stream.
#[tokio::test]
async fn stop_wants_the_key_in_use_and_kms() {
    let dir = tempfile::tempdir().unwrap();
    let keys = write_key_file(dir.path(), "keys", &key_file_text(KEY_A_HEX, "enabled"));
    let server = Server::in_memory_with(&["--limits", "off", "--kms-keys", keys.to_str().unwrap()]);
    let client = server.client();
    let stream = "sse-stop";
    create_stream(&client, stream, 1).await;
    start(&client, stream, KEY_A).await;
    let try_stop = |kind: EncryptionType, key_id: &str| {
        client
            .stop_stream_encryption()
            .stream_name(stream)
            .encryption_type(kind)
            .key_id(key_id)
            .send()
    };
    expect_error(
        try_stop(EncryptionType::None, KEY_A).await,
        "InvalidArgumentException",
        Some("EncryptionType NONE is not valid for StopStreamEncryption: the only valid value is KMS."),
    );
    for other in [KEY_B, KEY_UNKNOWN, "alias/switched-off"] {
        expect_error(
            try_stop(EncryptionType::Kms, other).await,
            "InvalidArgumentException",
            Some(&format!(
                "KeyId {other} is not the key stream {stream} under account {ACCOUNT} is encrypted with."
            )),
        );
    }
    assert_eq!(
        described(&client, stream).await,
        (Some(EncryptionType::Kms), Some(KEY_A.to_owned()))
    );
    // Another form of the same key is the same key.
    stop(&client, stream, "alias/riffle-test").await;
    assert_eq!(
        described(&client, stream).await,
        (Some(EncryptionType::None), None)
    );
}

#[tokio::test]
async fn the_aws_managed_key_needs_no_key_file_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::on_data_dir_with(&data, &["--limits", "off"]);
    let client = server.client();
    let stream = "sse-managed";
    create_stream(&client, stream, 1).await;
    // Without a key file no other key resolves.
    expect_error(
        client
            .start_stream_encryption()
            .stream_name(stream)
            .encryption_type(EncryptionType::Kms)
            .key_id("alias/riffle-test")
            .send()
            .await,
        "KMSNotFoundException",
        None,
    );
    start(&client, stream, "alias/aws/kinesis").await;
    assert_eq!(
        described(&client, stream).await,
        (
            Some(EncryptionType::Kms),
            Some("alias/aws/kinesis".to_owned())
        )
    );
    let reported = put_marked(&client, stream, WHILE).await;
    assert_eq!(reported, [EncryptionType::Kms, EncryptionType::Kms]);
    assert!(!data_dir_contains(&data, WHILE.as_bytes()));
    // The managed key lives in the catalogue, which only its owner may read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("meta.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "meta.json holds the AWS-managed key");
    }

    server.kill();
    let server = Server::on_data_dir_with(&data, &["--limits", "off"]);
    let client = server.client();
    let found = read_everything(&client, stream, 1).await;
    assert_marked(&found, &[(WHILE, EncryptionType::Kms)]);
    // Its ARN form names the same key.
    stop(
        &client,
        stream,
        &format!("arn:aws:kms:{REGION}:{ACCOUNT}:alias/aws/kinesis"),
    )
    .await;
    let reported = put_marked(&client, stream, AFTER).await;
    assert_eq!(reported, [EncryptionType::None, EncryptionType::None]);
}

/// AWS cannot lose a key; riffle can lose its key file. Then it refuses to start rather than
/// serve errors (or nothing) for the records that need the key, and names stream and key. A
/// key that is there but disabled starts, and refuses its records as KMS does.
#[tokio::test]
async fn a_start_without_the_key_an_encrypted_record_needs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let keys = write_key_file(dir.path(), "keys", &key_file_text(KEY_A_HEX, "enabled"));
    let stream = "sse-keys";
    {
        let server = Server::with_kms_keys(&data, &keys, &["--limits", "off"]);
        let client = server.client();
        create_stream(&client, stream, 1).await;
        put_marked(&client, stream, BEFORE).await;
        start(&client, stream, "alias/riffle-test").await;
        put_marked(&client, stream, WHILE).await;
        // Stopped: the records sealed before still need the key.
        stop(&client, stream, "alias/riffle-test").await;
        server.kill();
    }
    let data_arg = data.to_str().unwrap();

    let stderr = Server::refused_start(&["--data-dir", data_arg]);
    assert!(
        stderr.contains(&format!("stream {stream} of account {ACCOUNT}")) && stderr.contains(KEY_A),
        "the refusal names the stream and the key: {stderr}"
    );

    let lost = write_key_file(
        dir.path(),
        "lost",
        &format!("{KEY_B} enabled {KEY_B_BASE64}\n"),
    );
    let stderr =
        Server::refused_start(&["--data-dir", data_arg, "--kms-keys", lost.to_str().unwrap()]);
    assert!(stderr.contains(KEY_A), "{stderr}");

    let changed = write_key_file(
        dir.path(),
        "changed",
        &key_file_text(KEY_A_OTHER_HEX, "enabled"),
    );
    let stderr = Server::refused_start(&[
        "--data-dir",
        data_arg,
        "--kms-keys",
        changed.to_str().unwrap(),
    ]);
    assert!(stderr.contains("other material"), "{stderr}");
    assert!(!stderr.contains(KEY_A_OTHER_HEX) && !stderr.contains(KEY_A_HEX));

    // Disabled: the node starts; reads of what the key sealed answer KMSDisabledException
    // (never the ciphertext, never a silent gap), and so does a put while it is in use.
    let disabled = write_key_file(
        dir.path(),
        "disabled",
        &key_file_text(KEY_A_HEX, "disabled"),
    );
    {
        let server = Server::with_kms_keys(&data, &disabled, &["--limits", "off"]);
        let client = server.client();
        let iterator = shard_iterator(
            &client,
            stream,
            &shard_id(0),
            ShardIteratorType::TrimHorizon,
        )
        .await;
        // The plaintext records before the sealed ones are served; the next read is refused.
        let first = client
            .get_records()
            .shard_iterator(&iterator)
            .send()
            .await
            .unwrap();
        assert_eq!(first.records().len(), 21, "{first:?}");
        assert!(first
            .records()
            .iter()
            .all(|record| record.data().as_ref().starts_with(BEFORE.as_bytes())));
        let next = first.next_shard_iterator().expect("the shard is open");
        expect_error(
            client.get_records().shard_iterator(next).send().await,
            "KMSDisabledException",
            Some(&format!(
                "KMS key {KEY_A} is disabled: the records it encrypted cannot be read."
            )),
        );
        start_disabled_then_check_put(&client, stream).await;
        server.kill();
    }

    // With the key file back, everything is there.
    let server = Server::with_kms_keys(&data, &keys, &["--limits", "off"]);
    let mut found = read_everything(&server.client(), stream, 1).await;
    assert!(found.contains(&("plain".to_owned(), EncryptionType::None)));
    found.retain(|(data, _)| data != "plain");
    assert_marked(
        &found,
        &[(BEFORE, EncryptionType::None), (WHILE, EncryptionType::Kms)],
    );
}

/// The disabled key can neither be chosen again nor used by a put; the stream still takes
/// plaintext records (encryption was stopped).
async fn start_disabled_then_check_put(client: &Client, stream: &str) {
    expect_error(
        client
            .start_stream_encryption()
            .stream_name(stream)
            .encryption_type(EncryptionType::Kms)
            .key_id(KEY_A)
            .send()
            .await,
        "KMSDisabledException",
        Some(&format!("{} is disabled.", key_arn(KEY_A))),
    );
    let put = client
        .put_record()
        .stream_name(stream)
        .partition_key("plain")
        .data(Blob::new("plain"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.encryption_type(), Some(&EncryptionType::None));
}

/// A stream sealing with a key the operator disabled refuses puts with KMSDisabledException.
#[tokio::test]
async fn puts_to_a_stream_whose_key_was_disabled_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let keys = write_key_file(dir.path(), "keys", &key_file_text(KEY_A_HEX, "enabled"));
    let stream = "sse-disabled";
    {
        let server = Server::with_kms_keys(&data, &keys, &["--limits", "off"]);
        let client = server.client();
        create_stream(&client, stream, 1).await;
        start(&client, stream, KEY_A).await;
        server.kill();
    }
    let disabled = write_key_file(
        dir.path(),
        "disabled",
        &key_file_text(KEY_A_HEX, "disabled"),
    );
    let server = Server::with_kms_keys(&data, &disabled, &["--limits", "off"]);
    let client = server.client();
    let refusal = format!("{} is disabled.", key_arn(KEY_A));
    expect_error(
        client
            .put_record()
            .stream_name(stream)
            .partition_key("k")
            .data(Blob::new("v"))
            .send()
            .await,
        "KMSDisabledException",
        Some(&refusal),
    );
    expect_error(
        client
            .put_records()
            .stream_name(stream)
            .records(
                PutRecordsRequestEntry::builder()
                    .partition_key("k")
                    .data(Blob::new("v"))
                    .build()
                    .unwrap(),
            )
            .send()
            .await,
        "KMSDisabledException",
        Some(&refusal),
    );
    // A disabled key can still be stopped, after which puts work again.
    stop(&client, stream, KEY_A).await;
    let put = client
        .put_record()
        .stream_name(stream)
        .partition_key("k")
        .data(Blob::new("v"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.encryption_type(), Some(&EncryptionType::None));
}

#[tokio::test]
async fn a_malformed_key_file_refuses_to_start_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let keys = write_key_file(
        dir.path(),
        "keys",
        &format!("# ok so far\n{KEY_A} enabled {}\n", &KEY_A_HEX[..60]),
    );
    let stderr = Server::refused_start(&["--in-memory", "--kms-keys", keys.to_str().unwrap()]);
    assert!(
        stderr.contains("line 2") && stderr.contains("key material (field 3)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&KEY_A_HEX[..60]),
        "key material in the log: {stderr}"
    );
    let stderr = Server::refused_start(&[
        "--in-memory",
        "--kms-keys",
        dir.path().join("absent").to_str().unwrap(),
    ]);
    assert!(stderr.contains("absent"), "{stderr}");
}

#[tokio::test]
async fn encryption_changes_are_limited_to_25_a_day() {
    let server = Server::in_memory_limits(Limits::Off);
    let client = server.client();
    let stream = "sse-limit";
    create_stream(&client, stream, 1).await;
    for _ in 0..25 {
        start(&client, stream, "alias/aws/kinesis").await;
        stop(&client, stream, "alias/aws/kinesis").await;
    }
    expect_error(
        client
            .start_stream_encryption()
            .stream_name(stream)
            .encryption_type(EncryptionType::Kms)
            .key_id("alias/aws/kinesis")
            .send()
            .await,
        "LimitExceededException",
        Some(&format!(
            "Exceeded the limit of 25 StartStreamEncryption calls per rolling 24 hours for \
             stream {stream} under account {ACCOUNT}."
        )),
    );
    assert_eq!(
        described(&client, stream).await,
        (Some(EncryptionType::None), None)
    );
}

/// SubscribeToShard's records carry the EncryptionType of how each was stored.
#[tokio::test]
async fn subscribers_see_each_records_encryption_type() {
    let server = Server::in_memory_limits(Limits::Off);
    let client = server.client();
    let stream = "sse-fanout";
    create_stream(&client, stream, 1).await;
    let put = |data: &'static str| {
        client
            .put_record()
            .stream_name(stream)
            .partition_key("k")
            .data(Blob::new(data))
            .send()
    };
    put("plain").await.unwrap();
    start(&client, stream, "alias/aws/kinesis").await;
    put("sealed").await.unwrap();
    let consumer = client
        .register_stream_consumer()
        .stream_arn(stream_arn(stream))
        .consumer_name("reader")
        .send()
        .await
        .unwrap()
        .consumer
        .unwrap()
        .consumer_arn;
    let mut output = client
        .subscribe_to_shard()
        .consumer_arn(&consumer)
        .shard_id(shard_id(0))
        .starting_position(
            StartingPosition::builder()
                .r#type(ShardIteratorType::TrimHorizon)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            output.event_stream.recv(),
        )
        .await
        .expect("an event in time")
        .unwrap();
        match event {
            Some(SubscribeToShardEventStream::SubscribeToShardEvent(event)) => {
                for record in event.records() {
                    seen.push((
                        String::from_utf8(record.data().as_ref().to_vec()).unwrap(),
                        record.encryption_type().cloned(),
                    ));
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        seen,
        [
            ("plain".to_owned(), None),
            ("sealed".to_owned(), Some(EncryptionType::Kms)),
        ]
    );
}

/// The segment files (`*.log`) under `dir`, recursively.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "log") {
                found.push(path);
            }
        }
    }
    found
}

/// Flips one ciphertext byte of every sealed frame in `file` and recomputes the frame's
/// CRC32C, as an attacker with the disk (or a very unlucky bit flip) would: the log layer
/// then takes the frame for sound, and only the AES-GCM tag can tell. Returns how many frames
/// it changed. Frame layout (riffle-log's frame.rs): `len u32 | crc32c u32 | version u8 |
/// kind u8 | flags u16 | ...`, a 54-byte header, `len` counting what follows the CRC; the
/// sealed payload is
/// `key_id [16] | nonce [12] | ciphertext | tag [16]`.
fn tamper_with_sealed_frames(file: &Path) -> usize {
    const HEADER_BYTES: usize = 54;
    const SEALED_HEADER_BYTES: usize = 28;
    let mut bytes = std::fs::read(file).unwrap();
    let mut offset = 0;
    let mut changed = 0;
    while offset + HEADER_BYTES <= bytes.len() {
        let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break; // preallocated space past the last frame
        }
        let end = offset + 8 + len;
        let flags = u16::from_le_bytes([bytes[offset + 10], bytes[offset + 11]]);
        if flags & 1 == 1 {
            bytes[offset + HEADER_BYTES + SEALED_HEADER_BYTES] ^= 0x20;
            let crc = crc32c::crc32c(&bytes[offset + 8..end]);
            bytes[offset + 4..offset + 8].copy_from_slice(&crc.to_le_bytes());
            changed += 1;
        }
        offset = end;
    }
    std::fs::write(file, bytes).unwrap();
    changed
}

/// A sealed frame changed on disk (checksum fixed up, so the log finds nothing wrong) is
/// caught by its authentication tag: the read answers InternalFailure (500) instead of
/// serving altered bytes, the plain records before it are served, and the records after it
/// stay readable.
#[tokio::test]
async fn a_tampered_sealed_frame_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let keys = write_key_file(dir.path(), "keys", &key_file_text(KEY_A_HEX, "enabled"));
    let stream = "sse-tampered";
    let put = |client: Client, data: &'static str| async move {
        client
            .put_record()
            .stream_name(stream)
            .partition_key("k")
            .data(Blob::new(data))
            .send()
            .await
            .unwrap()
            .sequence_number
    };
    let after_sequence_number = {
        let server = Server::with_kms_keys(&data, &keys, &["--limits", "off"]);
        let client = server.client();
        create_stream(&client, stream, 1).await;
        put(client.clone(), "plain before").await;
        start(&client, stream, KEY_A).await;
        put(client.clone(), "sealed and then tampered with").await;
        stop(&client, stream, KEY_A).await;
        let after = put(client.clone(), "plain after").await;
        server.kill();
        after
    };
    let changed: usize = segment_files(&data)
        .iter()
        .map(|file| tamper_with_sealed_frames(file))
        .sum();
    assert_eq!(changed, 1, "one sealed frame on disk");

    // The log's recovery and checksums accept the frame; the server starts.
    let server = Server::with_kms_keys(&data, &keys, &["--limits", "off"]);
    let client = server.client();
    let iterator = shard_iterator(
        &client,
        stream,
        &shard_id(0),
        ShardIteratorType::TrimHorizon,
    )
    .await;
    let first = client
        .get_records()
        .shard_iterator(&iterator)
        .send()
        .await
        .unwrap();
    let served: Vec<&[u8]> = first.records().iter().map(|r| r.data().as_ref()).collect();
    assert_eq!(
        served,
        [b"plain before".as_slice()],
        "only what precedes the frame"
    );
    let next = first.next_shard_iterator().expect("the shard is open");
    let (error, status) = service_error(client.get_records().shard_iterator(next).send().await);
    assert_eq!(error.code(), Some("InternalFailure"), "{error:?}");
    assert_eq!(status, 500);
    // Asked again, the answer is the same: the frame is never skipped silently or served.
    let (error, _) = service_error(client.get_records().shard_iterator(next).send().await);
    assert_eq!(error.code(), Some("InternalFailure"), "{error:?}");

    let iterator = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard_id(0))
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(&after_sequence_number)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let after = client
        .get_records()
        .shard_iterator(iterator)
        .send()
        .await
        .unwrap();
    let served: Vec<&[u8]> = after.records().iter().map(|r| r.data().as_ref()).collect();
    assert_eq!(
        served,
        [b"plain after".as_slice()],
        "the frames after it are intact"
    );
}
