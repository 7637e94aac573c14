//! PutRecord and PutRecords: routing, ordering, limits and byte-exact round trips.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use crate::common::*;

fn entry(partition_key: &str, data: impl Into<Vec<u8>>) -> PutRecordsRequestEntry {
    PutRecordsRequestEntry::builder()
        .partition_key(partition_key)
        .data(Blob::new(data))
        .build()
        .unwrap()
}

#[tokio::test]
async fn put_record_routes_by_md5_of_the_partition_key() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "md5", 3).await;
    let shards = list_all_shards(&client, "md5").await;
    let mut expected_per_shard: std::collections::BTreeMap<String, Vec<(String, String)>> =
        Default::default();
    let keys: Vec<String> = (0..40)
        .map(|i| format!("key-{i}"))
        .chain(["ключ-🔑", "a b c"].map(String::from))
        .collect();
    for key in &keys {
        let put = client
            .put_record()
            .stream_name("md5")
            .partition_key(key)
            .data(Blob::new(format!("data for {key}")))
            .send()
            .await
            .unwrap();
        let expected_shard = shard_for_hash_key(&shards, md5_hash_key(key.as_bytes()));
        assert_eq!(put.shard_id(), expected_shard, "partition key {key:?}");
        assert_sequence_number(put.sequence_number());
        expected_per_shard
            .entry(expected_shard)
            .or_default()
            .push((key.clone(), put.sequence_number().to_string()));
    }
    // Each key spreads somewhere; with 42 keys over 3 shards every shard gets some.
    assert_eq!(expected_per_shard.len(), 3, "{expected_per_shard:?}");
    for (shard, expected) in expected_per_shard {
        let records = read_shard(&client, "md5", &shard).await;
        let got: Vec<(String, String)> = records
            .iter()
            .map(|record| {
                (
                    record.partition_key().unwrap_or_default().to_string(),
                    record.sequence_number().to_string(),
                )
            })
            .collect();
        assert_eq!(got, expected, "records of {shard}");
        for record in &records {
            let key = record.partition_key().unwrap();
            assert_eq!(record.data().as_ref(), format!("data for {key}").as_bytes());
        }
    }
}

#[tokio::test]
async fn put_record_routes_by_explicit_hash_key() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "ehk", 3).await;
    let shards = list_all_shards(&client, "ehk").await;
    for shard in &shards {
        let (start, end) = hash_range(shard);
        for hash_key in [start, start + (end - start) / 2, end] {
            // The partition key alone would route elsewhere for most of these.
            let put = client
                .put_record()
                .stream_name("ehk")
                .partition_key("same-key-every-time")
                .explicit_hash_key(hash_key.to_string())
                .data(Blob::new(hash_key.to_string()))
                .send()
                .await
                .unwrap();
            assert_eq!(put.shard_id(), shard.shard_id(), "hash key {hash_key}");
        }
    }
    // The partition key is stored even when the explicit hash key routes.
    let records = read_shard(&client, "ehk", &shard_id(2)).await;
    assert_eq!(records.len(), 3);
    assert!(records
        .iter()
        .all(|r| r.partition_key() == Some("same-key-every-time")));
    assert_eq!(records[2].data().as_ref(), u128::MAX.to_string().as_bytes());
}

#[tokio::test]
async fn explicit_hash_key_out_of_range_is_rejected() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "ehk", 2).await;
    let result = client
        .put_record()
        .stream_name("ehk")
        .partition_key("k")
        .explicit_hash_key(HASH_KEY_LIMIT)
        .data(Blob::new("x"))
        .send()
        .await;
    let message = format!(
        "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. \
         Specified value was {HASH_KEY_LIMIT}"
    );
    assert!(
        expect_error(result, "InvalidArgumentException", Some(&message))
            .is_invalid_argument_exception()
    );

    // Not a decimal at all: the model's pattern fails first.
    let result = client
        .put_record()
        .stream_name("ehk")
        .partition_key("k")
        .explicit_hash_key("12ab")
        .data(Blob::new("x"))
        .send()
        .await;
    expect_error(result, "ValidationException", None);

    // In PutRecords the same bad key fails the whole request.
    let result = client
        .put_records()
        .stream_name("ehk")
        .records(entry("k", "fine"))
        .records(
            PutRecordsRequestEntry::builder()
                .partition_key("k")
                .explicit_hash_key(HASH_KEY_LIMIT)
                .data(Blob::new("x"))
                .build()
                .unwrap(),
        )
        .send()
        .await;
    assert!(expect_error(result, "InvalidArgumentException", None).is_invalid_argument_exception());
    assert!(read_shard(&client, "ehk", &shard_id(0)).await.is_empty());
    assert!(read_shard(&client, "ehk", &shard_id(1)).await.is_empty());
}

#[tokio::test]
async fn sequence_number_for_ordering() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "ordering", 1).await;
    let first = client
        .put_record()
        .stream_name("ordering")
        .partition_key("k")
        .data(Blob::new("1"))
        .send()
        .await
        .unwrap();
    let second = client
        .put_record()
        .stream_name("ordering")
        .partition_key("k")
        .sequence_number_for_ordering(first.sequence_number())
        .data(Blob::new("2"))
        .send()
        .await
        .unwrap();
    assert_sequence_before(first.sequence_number(), second.sequence_number());

    // A decimal no Kinesis shard could have produced (no known sequence-number version).
    let foreign = format!("1{}", "0".repeat(40));
    let result = client
        .put_record()
        .stream_name("ordering")
        .partition_key("k")
        .sequence_number_for_ordering(&foreign)
        .data(Blob::new("3"))
        .send()
        .await;
    let message = format!(
        "ExclusiveMinimumSequenceNumber {foreign} used in PutRecord on stream ordering under \
         account {ACCOUNT} is invalid."
    );
    assert!(
        expect_error(result, "InvalidArgumentException", Some(&message))
            .is_invalid_argument_exception()
    );
    // Not a decimal: the model's pattern rejects it before any lookup.
    let result = client
        .put_record()
        .stream_name("ordering")
        .partition_key("k")
        .sequence_number_for_ordering("12ab")
        .data(Blob::new("4"))
        .send()
        .await;
    expect_error(result, "ValidationException", None);
    assert_eq!(read_shard(&client, "ordering", &shard_id(0)).await.len(), 2);
}

/// A 47-hex-digit number in decimal (sequence numbers exceed u128).
fn hex_to_decimal(hex: &str) -> String {
    // Little-endian base-10 digits.
    let mut digits: Vec<u8> = vec![0];
    for nibble in hex.chars() {
        let mut carry = nibble.to_digit(16).expect("hex digit");
        for digit in digits.iter_mut() {
            let value = u32::from(*digit) * 16 + carry;
            *digit = (value % 10) as u8;
            carry = value / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    while digits.len() > 1 && digits.last() == Some(&0) {
        digits.pop();
    }
    digits.iter().rev().map(|d| char::from(b'0' + d)).collect()
}

#[test]
fn hex_to_decimal_converts_past_u128() {
    assert_eq!(hex_to_decimal("0"), "0");
    assert_eq!(hex_to_decimal("ff"), "255");
    assert_eq!(
        hex_to_decimal(&format!("1{}", "0".repeat(32))),
        HASH_KEY_LIMIT
    );
}

/// A sequence number in the production layout (kinesis-api.md §3.2) of shard 0, shard creation
/// time 0, counter 0, arriving at `arrival_s`: the shape kinesalite's tests sent to production.
fn sequence_number_arriving_at(arrival_s: i64) -> String {
    hex_to_decimal(&format!("2{:09x}0{:016x}00{arrival_s:09x}{:08x}2", 0, 0, 0))
}

#[tokio::test]
async fn sequence_number_for_ordering_from_the_future_is_invalid() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "ordering-time", 1).await;
    let now_s = now_millis() / 1000;
    // Production accepts a well-formed number from the past, whatever stream it names...
    let past = sequence_number_arriving_at(now_s - 2);
    assert_eq!(past.len(), SEQUENCE_NUMBER_DIGITS, "{past}");
    client
        .put_record()
        .stream_name("ordering-time")
        .partition_key("k")
        .sequence_number_for_ordering(&past)
        .data(Blob::new("after a past number"))
        .send()
        .await
        .unwrap();
    // ...and refuses one dated in the future.
    let future = sequence_number_arriving_at(now_s + 3600);
    let result = client
        .put_record()
        .stream_name("ordering-time")
        .partition_key("k")
        .sequence_number_for_ordering(&future)
        .data(Blob::new("after a future number"))
        .send()
        .await;
    let message = format!(
        "ExclusiveMinimumSequenceNumber {future} used in PutRecord on stream ordering-time under \
         account {ACCOUNT} is invalid."
    );
    assert!(
        expect_error(result, "InvalidArgumentException", Some(&message))
            .is_invalid_argument_exception()
    );
    let records = read_shard(&client, "ordering-time", &shard_id(0)).await;
    assert_eq!(records.len(), 1, "the refused record was not stored");
}

#[tokio::test]
async fn records_without_a_partition_key_are_validation_errors() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "keyless", 2).await;
    // A provisioned stream routes by key, so the key is required (only AUTO distribution on an
    // on-demand stream makes it optional); Coral reports it like any missing member.
    let result = client
        .put_record()
        .stream_name("keyless")
        .data(Blob::new("x"))
        .send()
        .await;
    let message = "1 validation error detected: Value null at 'partitionKey' failed to satisfy \
                   constraint: Member must not be null";
    expect_error(result, "ValidationException", Some(message));

    let keyless = || {
        PutRecordsRequestEntry::builder()
            .data(Blob::new("no key"))
            .build()
            .unwrap()
    };
    let result = client
        .put_records()
        .stream_name("keyless")
        .records(entry("k", "keyed"))
        .records(keyless())
        .records(entry("k", "keyed"))
        .records(keyless())
        .send()
        .await;
    let message = "2 validation errors detected: Value null at 'records.2.member.partitionKey' \
                   failed to satisfy constraint: Member must not be null; Value null at \
                   'records.4.member.partitionKey' failed to satisfy constraint: Member must not \
                   be null";
    expect_error(result, "ValidationException", Some(message));
    for shard in [shard_id(0), shard_id(1)] {
        assert!(
            read_shard(&client, "keyless", &shard).await.is_empty(),
            "a rejected request stores nothing"
        );
    }
}

#[tokio::test]
async fn record_size_limit_counts_data_and_partition_key() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "big", 1).await;
    let key = "pk";
    let mut prng = Prng::new(7);
    let largest = prng.bytes(RECORD_BYTES_MAX - key.len());
    let put = client
        .put_record()
        .stream_name("big")
        .partition_key(key)
        .data(Blob::new(largest.clone()))
        .send()
        .await
        .unwrap();

    let over = client
        .put_record()
        .stream_name("big")
        .partition_key(key)
        .data(Blob::new(prng.bytes(RECORD_BYTES_MAX - key.len() + 1)))
        .send()
        .await;
    let (error, status) = service_error(over);
    assert_eq!(status, 400);
    // AWS's error for a record over the stream's size is unverified; it is a client error.
    assert!(
        matches!(
            error.meta().code(),
            Some("ValidationException" | "InvalidArgumentException")
        ),
        "{error:?}"
    );

    let over_in_batch = client
        .put_records()
        .stream_name("big")
        .records(entry(key, "small"))
        .records(entry(key, prng.bytes(RECORD_BYTES_MAX)))
        .send()
        .await;
    let (error, status) = service_error(over_in_batch);
    assert_eq!(status, 400);
    assert!(
        matches!(
            error.meta().code(),
            Some("ValidationException" | "InvalidArgumentException")
        ),
        "{error:?}"
    );

    let records = read_shard(&client, "big", &shard_id(0)).await;
    assert_eq!(records.len(), 1, "only the record at the limit was stored");
    assert_eq!(records[0].sequence_number(), put.sequence_number());
    assert!(
        records[0].data().as_ref() == largest.as_slice(),
        "1 MiB record differs"
    );
}

#[tokio::test]
async fn partition_key_length_limits() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "pk-limits", 1).await;
    let longest = "k".repeat(256);
    client
        .put_record()
        .stream_name("pk-limits")
        .partition_key(&longest)
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap();
    let too_long = "k".repeat(257);
    let result = client
        .put_record()
        .stream_name("pk-limits")
        .partition_key(&too_long)
        .data(Blob::new("x"))
        .send()
        .await;
    let message = format!(
        "1 validation error detected: Value '{too_long}' at 'partitionKey' failed to satisfy \
         constraint: Member must have length less than or equal to 256"
    );
    expect_error(result, "ValidationException", Some(&message));
    let result = client
        .put_record()
        .stream_name("pk-limits")
        .partition_key("")
        .data(Blob::new("x"))
        .send()
        .await;
    let message = "1 validation error detected: Value '' at 'partitionKey' failed to satisfy \
                   constraint: Member must have length greater than or equal to 1";
    expect_error(result, "ValidationException", Some(message));
    let records = read_shard(&client, "pk-limits", &shard_id(0)).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].partition_key(), Some(longest.as_str()));
}

#[tokio::test]
async fn data_round_trips_byte_exact() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "bytes", 1).await;
    let every_byte: Vec<u8> = (0..=255u8).collect();
    let reversed: Vec<u8> = (0..=255u8).rev().cycle().take(1000).collect();
    let mut prng = Prng::new(99);
    let payloads: Vec<Vec<u8>> = vec![
        every_byte,
        reversed,
        vec![0],
        vec![0xff; 3],
        b"=padding=".to_vec(),
        prng.bytes(65_537),
        "unicode ✓ ünïcödé".as_bytes().to_vec(),
    ];
    let mut sequence_numbers = Vec::new();
    for (index, payload) in payloads.iter().enumerate() {
        let put = client
            .put_record()
            .stream_name("bytes")
            .partition_key(format!("p{index}"))
            .data(Blob::new(payload.clone()))
            .send()
            .await
            .unwrap();
        sequence_numbers.push(put.sequence_number().to_string());
    }
    let batch = client
        .put_records()
        .stream_name("bytes")
        .set_records(Some(
            payloads
                .iter()
                .enumerate()
                .map(|(index, payload)| entry(&format!("b{index}"), payload.clone()))
                .collect(),
        ))
        .send()
        .await
        .unwrap();
    sequence_numbers.extend(
        batch
            .records()
            .iter()
            .map(|result| result.sequence_number().expect("accepted").to_string()),
    );

    let records = read_shard(&client, "bytes", &shard_id(0)).await;
    assert_eq!(records.len(), payloads.len() * 2);
    for (index, record) in records.iter().enumerate() {
        let payload = &payloads[index % payloads.len()];
        assert!(
            record.data().as_ref() == payload.as_slice(),
            "record {index}: {} bytes back for {} sent",
            record.data().as_ref().len(),
            payload.len()
        );
        assert_eq!(record.sequence_number(), sequence_numbers[index]);
        let prefix = if index < payloads.len() { "p" } else { "b" };
        let expected_key = format!("{prefix}{}", index % payloads.len());
        assert_eq!(record.partition_key(), Some(expected_key.as_str()));
    }
}

#[tokio::test]
async fn put_records_reports_each_record_in_order() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "batch", 3).await;
    let shards = list_all_shards(&client, "batch").await;
    let keys: Vec<String> = (0..30).map(|i| format!("user-{}", i % 7)).collect();
    let entries: Vec<PutRecordsRequestEntry> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| entry(key, format!("{key}#{i}")))
        .collect();
    let output = client
        .put_records()
        .stream_name("batch")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(output.failed_record_count().unwrap_or(0), 0, "{output:?}");
    assert_eq!(output.records().len(), keys.len());
    let mut last_in_shard: std::collections::HashMap<String, String> = Default::default();
    for (key, result) in keys.iter().zip(output.records()) {
        assert_eq!(result.error_code(), None);
        assert_eq!(result.error_message(), None);
        let shard = result
            .shard_id()
            .expect("accepted records name their shard");
        assert_eq!(
            shard,
            shard_for_hash_key(&shards, md5_hash_key(key.as_bytes()))
        );
        let sequence_number = result
            .sequence_number()
            .expect("accepted records are numbered");
        assert_sequence_number(sequence_number);
        // Within one request, records of a shard are numbered in request order.
        if let Some(previous) = last_in_shard.insert(shard.to_string(), sequence_number.into()) {
            assert_sequence_before(&previous, sequence_number);
        }
    }
    for shard in &shards {
        let expected: Vec<(String, String)> = keys
            .iter()
            .enumerate()
            .zip(output.records())
            .filter(|(_, result)| result.shard_id() == Some(shard.shard_id()))
            .map(|((i, key), result)| {
                (
                    format!("{key}#{i}"),
                    result.sequence_number().unwrap().to_string(),
                )
            })
            .collect();
        let got: Vec<(String, String)> = read_shard(&client, "batch", shard.shard_id())
            .await
            .iter()
            .map(|record| {
                (
                    String::from_utf8(record.data().as_ref().to_vec()).unwrap(),
                    record.sequence_number().to_string(),
                )
            })
            .collect();
        assert_eq!(got, expected, "shard {}", shard.shard_id());
    }
}

#[tokio::test]
async fn put_records_with_explicit_hash_keys() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "batch-ehk", 4).await;
    let shards = list_all_shards(&client, "batch-ehk").await;
    let entries: Vec<PutRecordsRequestEntry> = shards
        .iter()
        .rev()
        .map(|shard| {
            PutRecordsRequestEntry::builder()
                .partition_key("k")
                .explicit_hash_key(hash_range(shard).0.to_string())
                .data(Blob::new(shard.shard_id()))
                .build()
                .unwrap()
        })
        .collect();
    let output = client
        .put_records()
        .stream_name("batch-ehk")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    let got: Vec<&str> = output
        .records()
        .iter()
        .map(|r| r.shard_id().unwrap())
        .collect();
    let expected: Vec<&str> = shards.iter().rev().map(|shard| shard.shard_id()).collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn put_records_count_limits() {
    let server = Server::in_memory();
    let client = server.client();
    create_stream(&client, "count", 1).await;
    let too_many: Vec<PutRecordsRequestEntry> =
        (0..501).map(|i| entry("k", format!("{i}"))).collect();
    let result = client
        .put_records()
        .stream_name("count")
        .set_records(Some(too_many))
        .send()
        .await;
    let error = expect_error(result, "ValidationException", None);
    let message = error.meta().message().unwrap_or_default();
    assert!(
        message.starts_with("1 validation error detected: ")
            && message.contains(
                "at 'records' failed to satisfy constraint: \
                 Member must have length less than or equal to 500"
            ),
        "{message:?}"
    );

    let result = client
        .put_records()
        .stream_name("count")
        .set_records(Some(vec![]))
        .send()
        .await;
    let error = expect_error(result, "ValidationException", None);
    let message = error.meta().message().unwrap_or_default();
    assert!(
        message.contains(
            "at 'records' failed to satisfy constraint: \
             Member must have length greater than or equal to 1"
        ),
        "{message:?}"
    );
    assert!(read_shard(&client, "count", &shard_id(0)).await.is_empty());

    let exactly_500: Vec<PutRecordsRequestEntry> =
        (0..500).map(|i| entry("k", format!("{i}"))).collect();
    let output = client
        .put_records()
        .stream_name("count")
        .set_records(Some(exactly_500))
        .send()
        .await
        .unwrap();
    assert_eq!(output.records().len(), 500);
    let records = read_shard(&client, "count", &shard_id(0)).await;
    let data: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.data().as_ref().to_vec()).unwrap())
        .collect();
    let expected: Vec<String> = (0..500).map(|i| i.to_string()).collect();
    assert_eq!(data, expected);
}

#[tokio::test]
async fn writes_to_a_missing_stream_are_not_found() {
    let server = Server::in_memory();
    let client = server.client();
    let not_found = stream_not_found("nope");
    let put = client
        .put_record()
        .stream_name("nope")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await;
    assert!(
        expect_error(put, "ResourceNotFoundException", Some(&not_found))
            .is_resource_not_found_exception()
    );
    let puts = client
        .put_records()
        .stream_name("nope")
        .records(entry("k", "x"))
        .send()
        .await;
    assert!(
        expect_error(puts, "ResourceNotFoundException", Some(&not_found))
            .is_resource_not_found_exception()
    );
}
