//! The CBOR codec against vectors written by hand from RFC 8949 and kinesis-api.md §1.3, in
//! the shapes the Java SDKs send (Jackson: indefinite-length maps, arrays and long strings;
//! blobs as byte strings; timestamps as tag 1 + epoch milliseconds), and the decoder against
//! hostile input: random bytes, every truncation of a valid body, deep nesting and huge
//! declared lengths must all end in a clean SerializationException, never a panic.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use serde::Deserialize;

use super::*;
use crate::error::ErrorKind;
use crate::json::Timestamp;
use crate::ops::*;
use crate::wire::WireFormat;
use crate::{decode_request, decode_request_in, Request};

/// Bytes from hex; whitespace (and `|`, used to mark item boundaries) is ignored.
fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|byte| !byte.is_ascii_whitespace() && *byte != b'|')
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd hex: {text}");
    digits
        .chunks(2)
        .map(|pair| {
            u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16)
                .unwrap_or_else(|_| panic!("bad hex {pair:?} in {text}"))
        })
        .collect()
}

fn decode(operation: &str, body: &[u8]) -> Result<Request, KinesisError> {
    decode_request_in(WireFormat::Cbor, operation, body)
}

fn serialization(operation: &str, body: &[u8]) -> String {
    let error = decode(operation, body).expect_err("the body must be refused");
    assert_eq!(
        error.kind,
        ErrorKind::SerializationException,
        "{operation} {body:02x?}: {error}"
    );
    error.message.unwrap()
}

// ----- Text keys and values used by the vectors, as hex (head byte first) -----

const STREAM_NAME: &str = "6a 53747265616d4e616d65"; // "StreamName"
const S1: &str = "62 7331"; // "s1"
const DATA: &str = "64 44617461"; // "Data"
const PARTITION_KEY: &str = "6c 506172746974696f6e4b6579"; // "PartitionKey"
const RECORDS: &str = "67 5265636f726473"; // "Records"
const SHARD_ID: &str = "67 53686172644964"; // "ShardId"
const SHARD_0: &str = "74 736861726449642d303030303030303030303030"; // "shardId-000000000000"
const SHARD_ITERATOR_TYPE: &str = "71 53686172644974657261746f7254797065"; // "ShardIteratorType"
const AT_TIMESTAMP: &str = "6c 41545f54494d455354414d50"; // "AT_TIMESTAMP"
const TIMESTAMP: &str = "69 54696d657374616d70"; // "Timestamp"
const SHARD_FILTER: &str = "6b 536861726446696c746572"; // "ShardFilter"
const TYPE: &str = "64 54797065"; // "Type"
const STREAM_CREATION_TIMESTAMP: &str = "77 53747265616d4372656174696f6e54696d657374616d70";
const LIMIT: &str = "65 4c696d6974"; // "Limit"
/// Tag 1, then 1459799926480 (2016-04-04T19:58:46.480Z) as an 8-byte unsigned integer.
const TAG1_MS_1459799926480: &str = "c1 1b 00000153e2db26d0";
const MS_1459799926480: i64 = 1_459_799_926_480;

// ===== Requests as the Java SDK sends them =====

/// `{_ "StreamName": "s1", "Data": h'0001feff80', "PartitionKey": "k"}`
fn put_record_body() -> Vec<u8> {
    hex(&format!(
        "bf | {STREAM_NAME} | {S1} | {DATA} | 45 0001feff80 | {PARTITION_KEY} | 61 6b | ff"
    ))
}

/// ```text
/// {_ "Records": [_ {_ "Data": (_ h'0102', h'03'), "PartitionKey": (_ "pk", "1")},
///                  {"Data": h'', "PartitionKey": "k2"}],
///    "StreamName": "s1"}
/// ```
fn put_records_body() -> Vec<u8> {
    let first =
        format!("bf | {DATA} | 5f 42 0102 41 03 ff | {PARTITION_KEY} | 7f 62 706b 61 31 ff | ff");
    let second = format!("a2 | {DATA} | 40 | {PARTITION_KEY} | 62 6b32");
    hex(&format!(
        "bf | {RECORDS} | 9f | {first} | {second} | ff | {STREAM_NAME} | {S1} | ff"
    ))
}

/// `{_ "StreamName": "s1", "ShardId": "shardId-000000000000", "ShardIteratorType":
/// "AT_TIMESTAMP", "Timestamp": 1(1459799926480)}`
fn get_shard_iterator_body() -> Vec<u8> {
    hex(&format!(
        "bf | {STREAM_NAME} | {S1} | {SHARD_ID} | {SHARD_0} | {SHARD_ITERATOR_TYPE} \
         | {AT_TIMESTAMP} | {TIMESTAMP} | {TAG1_MS_1459799926480} | ff"
    ))
}

/// `{_ "StreamName": "s1", "ShardFilter": {_ "Type": "AT_TIMESTAMP", "Timestamp":
/// 1(1459799926480)}, "StreamCreationTimestamp": 1(1459799926480)}`
fn list_shards_body() -> Vec<u8> {
    let filter =
        format!("bf | {TYPE} | {AT_TIMESTAMP} | {TIMESTAMP} | {TAG1_MS_1459799926480} | ff");
    hex(&format!(
        "bf | {STREAM_NAME} | {S1} | {SHARD_FILTER} | {filter} \
         | {STREAM_CREATION_TIMESTAMP} | {TAG1_MS_1459799926480} | ff"
    ))
}

#[test]
fn put_record_with_a_byte_string_data() {
    let body = put_record_body();
    assert_eq!(
        decode("PutRecord", &body).unwrap(),
        Request::PutRecord(PutRecordInput {
            stream_name: Some("s1".into()),
            data: Some(Bytes::from_static(&[0x00, 0x01, 0xfe, 0xff, 0x80])),
            partition_key: Some("k".into()),
            ..PutRecordInput::default()
        })
    );
    // The same with a definite-length map.
    let definite = hex(&format!(
        "a3 | {STREAM_NAME} | {S1} | {DATA} | 45 0001feff80 | {PARTITION_KEY} | 61 6b"
    ));
    assert_eq!(decode("PutRecord", &definite), decode("PutRecord", &body));
}

#[test]
fn put_records_with_indefinite_maps_arrays_and_strings() {
    // {_ "Records": [_ {_ "Data": (_ h'0102', h'03'), "PartitionKey": (_ "pk", "1")},
    //                  {"Data": h'', "PartitionKey": "k2"}],
    //    "StreamName": "s1"}
    assert_eq!(
        decode("PutRecords", &put_records_body()).unwrap(),
        Request::PutRecords(PutRecordsInput {
            records: Some(vec![
                PutRecordsRequestEntry {
                    data: Some(Bytes::from_static(&[1, 2, 3])),
                    partition_key: Some("pk1".into()),
                    explicit_hash_key: None,
                },
                PutRecordsRequestEntry {
                    data: Some(Bytes::new()),
                    partition_key: Some("k2".into()),
                    explicit_hash_key: None,
                },
            ]),
            stream_name: Some("s1".into()),
            ..PutRecordsInput::default()
        })
    );
}

#[test]
fn get_shard_iterator_with_a_tag_1_millisecond_timestamp() {
    let body = get_shard_iterator_body();
    let Request::GetShardIterator(input) = decode("GetShardIterator", &body).unwrap() else {
        panic!("not a GetShardIterator");
    };
    assert_eq!(
        input.timestamp,
        Some(Timestamp::from_epoch_ms(MS_1459799926480))
    );
    assert_eq!(input.iterator_type(), Some(ShardIteratorType::AtTimestamp));
    assert_eq!(input.shard_id.as_deref(), Some("shardId-000000000000"));
}

#[test]
fn list_shards_shard_filter_with_a_timestamp() {
    // {_ "StreamName": "s1", "ShardFilter": {_ "Type": "AT_TIMESTAMP", "Timestamp": 1(ms)},
    //    "StreamCreationTimestamp": 1(ms)}
    let Request::ListShards(input) = decode("ListShards", &list_shards_body()).unwrap() else {
        panic!("not a ListShards");
    };
    let filter = input.shard_filter.unwrap();
    assert_eq!(filter.filter_type(), Some(ShardFilterType::AtTimestamp));
    assert_eq!(
        filter.timestamp,
        Some(Timestamp::from_epoch_ms(MS_1459799926480))
    );
    assert_eq!(
        input.stream_creation_timestamp,
        Some(Timestamp::from_epoch_ms(MS_1459799926480))
    );
}

/// A GetShardIterator body with `timestamp` (hex of one item) as its Timestamp.
fn timestamp_of(timestamp: &str) -> Option<Timestamp> {
    let body = hex(&format!(
        "a4 | {SHARD_ID} | {SHARD_0} | {SHARD_ITERATOR_TYPE} | {AT_TIMESTAMP} \
         | {STREAM_NAME} | {S1} | {TIMESTAMP} | {timestamp}"
    ));
    match decode("GetShardIterator", &body) {
        Ok(Request::GetShardIterator(input)) => input.timestamp,
        other => panic!("{timestamp}: {other:?}"),
    }
}

#[test]
fn timestamps_integers_are_milliseconds_and_floats_seconds() {
    let ms = |epoch_ms| Some(Timestamp::from_epoch_ms(epoch_ms));
    // Tag 1 + integer: milliseconds, whatever the integer's width.
    assert_eq!(timestamp_of(TAG1_MS_1459799926480), ms(MS_1459799926480));
    assert_eq!(timestamp_of("c1 00"), ms(0));
    assert_eq!(timestamp_of("c1 17"), ms(23));
    assert_eq!(timestamp_of("c1 18 ff"), ms(255));
    assert_eq!(timestamp_of("c1 19 0100"), ms(256));
    assert_eq!(timestamp_of("c1 1a 00010000"), ms(65_536));
    assert_eq!(timestamp_of("c1 20"), ms(-1));
    // Untagged integers are milliseconds too.
    assert_eq!(timestamp_of("1b 00000153e2db26d0"), ms(MS_1459799926480));
    // Tag 1 with a float is seconds (RFC 8949 §3.4.2): double, single and half.
    assert_eq!(timestamp_of("c1 fb 41d5c0b1dd9eb852"), ms(MS_1459799926480));
    assert_eq!(timestamp_of("c1 fa 40700000"), ms(3_750));
    assert_eq!(timestamp_of("c1 f9 3e00"), ms(1_500));
    assert_eq!(timestamp_of("fb 41d5c0b1dd9eb852"), ms(MS_1459799926480));
    // Other tags in front are skipped, as Jackson skips them.
    assert_eq!(timestamp_of("d8 64 c1 19 0100"), ms(256));
    // Null and undefined are absent.
    assert_eq!(timestamp_of("f6"), None);
    assert_eq!(timestamp_of("f7"), None);
    // Beyond i64 saturates instead of wrapping.
    assert_eq!(timestamp_of("c1 1b ffffffffffffffff"), ms(i64::MAX));
    assert_eq!(timestamp_of("c1 3b ffffffffffffffff"), ms(i64::MIN));
}

/// `DescribeStream`'s Limit as decoded from `limit` (hex of one item).
fn limit_of(limit: &str) -> Result<Option<i32>, KinesisError> {
    let body = hex(&format!("a2 | {STREAM_NAME} | {S1} | {LIMIT} | {limit}"));
    let input: DescribeStreamInput = decode_cbor(&body)?;
    Ok(input.limit)
}

#[test]
fn integers_of_every_width() {
    assert_eq!(limit_of("00").unwrap(), Some(0));
    assert_eq!(limit_of("17").unwrap(), Some(23));
    assert_eq!(limit_of("18 18").unwrap(), Some(24));
    assert_eq!(limit_of("18 64").unwrap(), Some(100));
    assert_eq!(limit_of("19 0064").unwrap(), Some(100));
    assert_eq!(limit_of("1a 00000064").unwrap(), Some(100));
    assert_eq!(limit_of("1b 0000000000000064").unwrap(), Some(100));
    assert_eq!(limit_of("19 ffff").unwrap(), Some(65_535));
    assert_eq!(limit_of("1a 7fffffff").unwrap(), Some(i32::MAX));
    assert_eq!(limit_of("20").unwrap(), Some(-1));
    assert_eq!(limit_of("38 63").unwrap(), Some(-100));
    assert_eq!(limit_of("39 03e7").unwrap(), Some(-1000));
    assert_eq!(limit_of("3a 7fffffff").unwrap(), Some(i32::MIN));
    // Beyond the member's Java type: saturates like Coral's TruncatingBigNumber.
    assert_eq!(limit_of("1a ffffffff").unwrap(), Some(i32::MAX));
    assert_eq!(limit_of("1b ffffffffffffffff").unwrap(), Some(i32::MAX));
    assert_eq!(limit_of("3b ffffffffffffffff").unwrap(), Some(i32::MIN));
    // Floats are truncated toward zero, as JSON numbers with a fraction are.
    assert_eq!(limit_of("f9 4100").unwrap(), Some(2)); // half 2.5
    assert_eq!(limit_of("fa 40700000").unwrap(), Some(3)); // single 3.75
    assert_eq!(limit_of("fb 405939999999999a").unwrap(), Some(100)); // double 100.9
    assert_eq!(limit_of("fb c05939999999999a").unwrap(), Some(-100));
    assert_eq!(limit_of("f6").unwrap(), None);
    // Wrong types get the JSON codec's texts.
    assert_eq!(
        limit_of("62 3233").unwrap_err().message.unwrap(),
        "class java.lang.String can not be converted to an Integer"
    );
    assert_eq!(
        limit_of("f5").unwrap_err().message.unwrap(),
        "class java.lang.Boolean can not be converted to an Integer"
    );
    assert_eq!(
        limit_of("80").unwrap_err().message.unwrap(),
        "Start of list found where not expected"
    );
    assert_eq!(
        limit_of("a0").unwrap_err().message.unwrap(),
        "Start of structure or map found where not expected."
    );
}

#[test]
fn half_single_and_double_floats() {
    // RFC 8949 Appendix A.
    let cases: [(&str, f64); 12] = [
        ("f9 0000", 0.0),
        ("f9 8000", -0.0),
        ("f9 3c00", 1.0),
        ("f9 3e00", 1.5),
        ("f9 7bff", 65_504.0),
        ("f9 0001", 5.960_464_477_539_063e-8),
        ("f9 0400", 0.000_061_035_156_25),
        ("f9 c400", -4.0),
        ("fa 47c35000", 100_000.0),
        ("fa 7f7fffff", 3.402_823_466_385_288_6e38),
        ("fb 3ff199999999999a", 1.1),
        ("fb c010666666666666", -4.1),
    ];
    for (bytes, expected) in cases {
        let body = hex(bytes);
        let mut deserializer = Deserializer::new(&body);
        let value = f64::deserialize(&mut deserializer).unwrap();
        deserializer.end().unwrap();
        assert_eq!(value.to_bits(), expected.to_bits(), "{bytes}");
    }
    for (bytes, check) in [
        ("f9 7c00", f64::INFINITY),
        ("f9 fc00", f64::NEG_INFINITY),
        ("fa 7f800000", f64::INFINITY),
        ("fb 7ff0000000000000", f64::INFINITY),
    ] {
        assert_eq!(
            f64::deserialize(&mut Deserializer::new(&hex(bytes))).unwrap(),
            check
        );
    }
    for bytes in ["f9 7e00", "fa 7fc00000", "fb 7ff8000000000000"] {
        assert!(f64::deserialize(&mut Deserializer::new(&hex(bytes)))
            .unwrap()
            .is_nan());
    }
}

#[test]
fn blobs_accept_base64_text_and_refuse_other_types() {
    let put = |data: &str| {
        hex(&format!(
            "a3 | {STREAM_NAME} | {S1} | {PARTITION_KEY} | 61 6b | {DATA} | {data}"
        ))
    };
    // "aGk=" is base64 for "hi": a text string still decodes like JSON's base64.
    let Request::PutRecord(input) = decode("PutRecord", &put("64 61476b3d")).unwrap() else {
        panic!("not a PutRecord");
    };
    assert_eq!(input.data.as_deref(), Some(&b"hi"[..]));
    assert_eq!(
        serialization("PutRecord", &put("f5")),
        "class java.lang.Boolean can not be converted to a Blob"
    );
    assert_eq!(
        serialization("PutRecord", &put("80")),
        "Start of list found where not expected"
    );
    assert!(serialization("PutRecord", &put("05")).ends_with("can not be converted to a Blob"));
}

#[test]
fn validation_texts_are_the_json_ones() {
    // A CBOR request that breaks the model gets exactly the text its JSON twin gets.
    let cases: [(&str, String, &str); 5] = [
        (
            "PutRecord",
            // {"StreamName": "s1", "Data": h'', "PartitionKey": ""}
            format!("a3 | {STREAM_NAME} | {S1} | {DATA} | 40 | {PARTITION_KEY} | 60"),
            r#"{"StreamName":"s1","Data":"","PartitionKey":""}"#,
        ),
        (
            "PutRecords",
            // {"StreamName": "s1", "Records": []}
            format!("a2 | {STREAM_NAME} | {S1} | {RECORDS} | 80"),
            r#"{"StreamName":"s1","Records":[]}"#,
        ),
        (
            "GetShardIterator",
            // {"StreamName": "s1"}
            format!("a1 | {STREAM_NAME} | {S1}"),
            r#"{"StreamName":"s1"}"#,
        ),
        (
            "DescribeStream",
            // {"StreamName": "s1", "Limit": 0}
            format!("a2 | {STREAM_NAME} | {S1} | {LIMIT} | 00"),
            r#"{"StreamName":"s1","Limit":0}"#,
        ),
        (
            "ListShards",
            // {"ShardFilter": {"Type": "NOPE"}}
            format!("a1 | {SHARD_FILTER} | a1 | {TYPE} | 64 4e4f5045"),
            r#"{"ShardFilter":{"Type":"NOPE"}}"#,
        ),
    ];
    for (operation, cbor, json) in cases {
        let from_cbor = decode(operation, &hex(&cbor)).unwrap_err();
        let from_json = decode_request(operation, json.as_bytes()).unwrap_err();
        assert_eq!(from_cbor.kind, ErrorKind::ValidationException, "{json}");
        assert_eq!(from_cbor, from_json, "{json}");
    }
}

#[test]
fn empty_bodies_and_bodies_that_are_not_maps() {
    assert_eq!(
        decode("DescribeLimits", b"").unwrap(),
        Request::DescribeLimits(DescribeLimitsInput {})
    );
    assert_eq!(
        decode("ListStreams", &hex("bf ff")).unwrap(),
        Request::ListStreams(ListStreamsInput::default())
    );
    assert_eq!(
        serialization("ListStreams", &hex("80")),
        "Start of list found where not expected"
    );
    assert_eq!(serialization("ListStreams", &hex("61 78")), "Expected null");
    // Trailing bytes after the map, a lone break, reserved and unassigned codes.
    for (bytes, what) in [
        (
            "a0 00",
            "trailing bytes after the top-level value at byte 1",
        ),
        ("ff", "unexpected break at byte 0"),
        ("1c", "reserved additional information at byte 0"),
        ("a1 61 78 f0", "unsupported simple value at byte 3"),
        ("a1 61 78 f8 20", "unsupported simple value at byte 3"),
        ("a1 61 78 1f", "an integer cannot be indefinite at byte 3"),
        ("a1 61 78 df 00", "a tag cannot be indefinite at byte 3"),
        ("a1 61 78 62 c328", "text string is not UTF-8 at byte 3"),
        ("a1 80 00", "a map key must be a string at byte 1"),
        (
            "a1 61 78 5f 61 78 ff",
            "a chunk of an indefinite-length string must be a definite string of the same \
             type at byte 4",
        ),
        ("a1 61 78 5f", "unexpected end of input at byte 4"),
        (
            "a1 61 78 19 00",
            "unexpected end of input inside an item's head at byte 3",
        ),
    ] {
        assert_eq!(
            serialization("ListStreams", &hex(bytes)),
            format!("Request body is not valid CBOR: {what}"),
            "{bytes}"
        );
    }
}

#[test]
fn unknown_members_of_any_shape_are_skipped() {
    // {_ "Unknown": [_ 1, -1, 1.5, h'00', "x", {"a": [null, undefined, true]}, 1(2)],
    //    7: "integer key", "StreamName": "s1"}
    let body = hex(&format!(
        "bf | 67 556e6b6e6f776e | 9f 01 20 f9 3e00 41 00 61 78 a1 61 61 83 f6 f7 f5 c1 02 ff \
         | 07 | 6b 696e7465676572206b6579 | {STREAM_NAME} | {S1} | ff"
    ));
    assert_eq!(
        decode("DescribeStreamSummary", &body).unwrap(),
        Request::DescribeStreamSummary(DescribeStreamSummaryInput {
            stream_name: Some("s1".into()),
            ..DescribeStreamSummaryInput::default()
        })
    );
}

#[test]
fn tags_and_string_lists() {
    // {"StreamName": "s1", "Tags": {_ "k": "v", "gone": null}}
    let body = hex(&format!(
        "a2 | {STREAM_NAME} | {S1} | 64 54616773 | bf 61 6b 61 76 64 676f6e65 f6 ff"
    ));
    let Request::AddTagsToStream(input) = decode("AddTagsToStream", &body).unwrap() else {
        panic!("not AddTagsToStream");
    };
    assert_eq!(
        input.tags,
        Some(BTreeMap::from([("k".to_owned(), "v".to_owned())]))
    );
    // {"StreamName": "s1", "TagKeys": [_ "a", "b"]}
    let body = hex(&format!(
        "a2 | {STREAM_NAME} | {S1} | 67 5461674b657973 | 9f 61 61 61 62 ff"
    ));
    let Request::RemoveTagsFromStream(input) = decode("RemoveTagsFromStream", &body).unwrap()
    else {
        panic!("not RemoveTagsFromStream");
    };
    assert_eq!(input.tag_keys, Some(vec!["a".to_owned(), "b".to_owned()]));
}

// ===== Answers =====

#[test]
fn get_records_output_encodes_bytes_and_tag_1_milliseconds() {
    let output = GetRecordsOutput {
        records: vec![Record {
            sequence_number: "49543463076548007577105092703039560359975228518395019266".into(),
            approximate_arrival_timestamp: Some(Timestamp::from_epoch_ms(1_780_000_000_100)),
            data: Bytes::from_static(b"hello"),
            partition_key: Some("pk".into()),
            encryption_type: None,
        }],
        next_shard_iterator: Some("AAAA".into()),
        millis_behind_latest: Some(0),
        child_shards: None,
    };
    // The 56 digits of the sequence number, as ASCII.
    const SEQUENCE_NUMBER_DIGITS: &str = "34393534333436333037363534383030373537373130353039\
        32373033303339353630333539393735323238353138333935303139323636";
    let expected = hex(&format!(
        "a3 \
         | 67 5265636f726473 | 81 | a4 \
           | 6e 53657175656e63654e756d626572 \
           | 78 38 {SEQUENCE_NUMBER_DIGITS} \
           | 78 1b 417070726f78696d6174654172726976616c54696d657374616d70 | c1 1b 0000019e70448864 \
           | 64 44617461 | 45 68656c6c6f \
           | 6c 506172746974696f6e4b6579 | 62 706b \
         | 71 4e65787453686172644974657261746f72 | 64 41414141 \
         | 72 4d696c6c6973426568696e644c6174657374 | 00"
    ));
    assert_eq!(encode_cbor(&output), expected);
    assert_eq!(WireFormat::Cbor.encode(&output), expected);

    // And back: what the SDK would read.
    let mut deserializer = Deserializer::new(&expected);
    let back = GetRecordsOutput::deserialize(&mut deserializer).unwrap();
    deserializer.end().unwrap();
    assert_eq!(back, output);
}

#[test]
fn outputs_encode_lengths_in_their_shortest_form() {
    // 24 bytes of data need a one-byte length; 256 a two-byte one; strings likewise.
    for (length, head) in [
        (0usize, "40"),
        (23, "57"),
        (24, "58 18"),
        (255, "58 ff"),
        (256, "59 0100"),
        (65_536, "5a 00010000"),
    ] {
        let data = Bytes::from(vec![0xabu8; length]);
        let mut serializer = Serializer { out: Vec::new() };
        crate::json::blob::serialize(&data, &mut serializer).unwrap();
        let mut expected = hex(head);
        expected.extend_from_slice(&data);
        assert_eq!(serializer.out, expected, "{length}");
        let text = "x".repeat(length);
        let mut expected = hex(head);
        expected[0] += 0x20; // major type 3 instead of 2
        expected.extend_from_slice(text.as_bytes());
        assert_eq!(encode_cbor(&text), expected, "{length}");
    }
    for (value, bytes) in [
        (0u64, "00"),
        (23, "17"),
        (24, "18 18"),
        (1_000, "19 03e8"),
        (1_000_000, "1a 000f4240"),
        (1_000_000_000_000, "1b 000000e8d4a51000"),
        (u64::MAX, "1b ffffffffffffffff"),
    ] {
        assert_eq!(encode_cbor(&value), hex(bytes), "{value}");
    }
    for (value, bytes) in [
        (-1i64, "20"),
        (-10, "29"),
        (-100, "38 63"),
        (-1000, "39 03e7"),
    ] {
        assert_eq!(encode_cbor(&value), hex(bytes), "{value}");
    }
    assert_eq!(encode_cbor(&true), hex("f5"));
    assert_eq!(encode_cbor(&Option::<u32>::None), hex("f6"));
    assert_eq!(encode_cbor(&vec!["a"; 24]).len(), 2 + 24 * 2);
}

#[test]
fn a_map_whose_declared_length_is_wrong_is_rewritten() {
    // A Serialize impl that declares three fields and writes one.
    struct Liar;
    impl serde::Serialize for Liar {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeStruct;
            let mut state = serializer.serialize_struct("Liar", 300)?;
            state.serialize_field("a", &1u8)?;
            state.end()
        }
    }
    assert_eq!(encode_cbor(&Liar), hex("a1 61 61 01"));
    // Unknown lengths are written indefinite.
    let map: BTreeMap<&str, u8> = BTreeMap::from([("a", 1)]);
    struct Unsized<'a>(&'a BTreeMap<&'a str, u8>);
    impl serde::Serialize for Unsized<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_map(self.0.iter().filter(|_| true))
        }
    }
    assert_eq!(encode_cbor(&Unsized(&map)), hex("bf 61 61 01 ff"));
}

#[test]
fn void_and_small_outputs() {
    assert_eq!(encode_cbor(&CreateStreamOutput {}), hex("a0"));
    let output = GetShardIteratorOutput {
        shard_iterator: Some("AAAA".into()),
    };
    assert_eq!(
        encode_cbor(&output),
        hex("a1 | 6d 5368617264497465726174 6f72 | 64 41414141")
    );
    let output = DescribeAccountSettingsOutput {
        minimum_throughput_billing_commitment: Some(MinimumThroughputBillingCommitmentOutput {
            status: MinimumThroughputBillingCommitmentStatus::Enabled,
            started_at: Some(Timestamp::from_epoch_ms(1000)),
            ended_at: None,
            earliest_allowed_end_at: None,
        }),
    };
    let encoded = encode_cbor(&output);
    // ... "StartedAt": 1(1000)
    assert!(encoded.ends_with(&hex("69 537461727465644174 c1 19 03e8")[..]));
}

// ===== Hostile input =====

/// xorshift64*: deterministic, so a failure names its seed and case.
struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// Valid bodies of several operations, Java-style and definite.
fn valid_bodies() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("PutRecord", put_record_body()),
        ("PutRecords", put_records_body()),
        ("GetShardIterator", get_shard_iterator_body()),
        ("ListShards", list_shards_body()),
        (
            "DescribeStream",
            hex(&format!("a2 | {STREAM_NAME} | {S1} | {LIMIT} | f9 4100")),
        ),
        (
            "AddTagsToStream",
            hex(&format!(
                "a2 | {STREAM_NAME} | {S1} | 64 54616773 | bf 61 6b 61 76 64 676f6e65 f6 ff"
            )),
        ),
    ]
}

/// Decodes `body` as every operation; any outcome but a panic or an unexpected error kind
/// passes.
fn decode_as_every_operation(body: &[u8]) {
    for operation in OPERATIONS {
        if let Err(error) = decode(operation, body) {
            assert!(
                matches!(
                    error.kind,
                    ErrorKind::SerializationException | ErrorKind::ValidationException
                ),
                "{operation} {body:02x?}: {error}"
            );
        }
    }
}

#[test]
fn every_truncation_of_a_valid_body_is_a_clean_serialization_error() {
    for (operation, body) in valid_bodies() {
        assert!(decode(operation, &body).is_ok(), "{operation} must decode");
        // A proper prefix of one CBOR item is never an item; the empty prefix is `{}`.
        for length in 1..body.len() {
            let message = serialization(operation, &body[..length]);
            assert!(
                message.starts_with("Request body is not valid CBOR: "),
                "{operation}[..{length}]: {message}"
            );
        }
        for length in 0..body.len() {
            decode_as_every_operation(&body[..length]);
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut prng = Prng(0x5eed_cb02_0000_0001);
    for _ in 0..3_000 {
        let length = prng.below(48) as usize;
        // Bias toward interesting initial bytes: maps, arrays, strings, tags, breaks.
        let body: Vec<u8> = (0..length)
            .map(|_| match prng.below(4) {
                0 => [0xa1, 0xbf, 0x9f, 0x5f, 0x7f, 0xc1, 0xff, 0xf6, 0x1b, 0x5b]
                    [prng.below(10) as usize],
                _ => prng.next() as u8,
            })
            .collect();
        decode_as_every_operation(&body);
    }
}

#[test]
fn mutated_valid_bodies_never_panic() {
    let mut prng = Prng(0x5eed_cb02_0000_0002);
    let bodies = valid_bodies();
    for _ in 0..2_000 {
        let (_, original) = &bodies[prng.below(bodies.len() as u64) as usize];
        let mut body = original.clone();
        for _ in 0..1 + prng.below(3) {
            let at = prng.below(body.len() as u64) as usize;
            match prng.below(3) {
                0 => body[at] = prng.next() as u8,
                1 => {
                    body.remove(at);
                }
                _ => body.insert(at, prng.next() as u8),
            }
            if body.is_empty() {
                break;
            }
        }
        decode_as_every_operation(&body);
    }
}

/// Runs `check` and asserts it took well under a second (it should take microseconds; the
/// margin is for a loaded debug build).
fn quickly(what: &str, check: impl FnOnce()) {
    let started = Instant::now();
    check();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{what} took {:?}",
        started.elapsed()
    );
}

#[test]
fn deep_nesting_is_refused_without_deep_recursion() {
    for (what, open) in [("arrays", 0x81u8), ("indefinite arrays", 0x9f)] {
        quickly(what, || {
            // {"x": [[[[ ... ]]]]}, a hundred thousand levels.
            let mut body = hex("a1 61 78");
            body.extend(std::iter::repeat_n(open, 100_000));
            body.push(0x00);
            let message = serialization("ListStreams", &body);
            assert_eq!(
                message,
                format!(
                    "Request body is not valid CBOR: arrays and maps are nested too deeply at \
                     byte {}",
                    // The map and 63 arrays fit; the 64th array, at byte 3 + 63, does not.
                    3 + NESTING_DEPTH_MAX - 1
                ),
                "{what}"
            );
        });
    }
    quickly("maps", || {
        // {"x": {"x": {"x": ... }}}
        let mut body = Vec::new();
        for _ in 0..100_000 {
            body.extend_from_slice(&hex("a1 61 78"));
        }
        body.push(0x00);
        let message = serialization("ListStreams", &body);
        assert!(message.contains("nested too deeply"), "{message}");
    });
    // Exactly at the limit is fine: the top map plus 63 arrays.
    let mut body = hex("a1 61 78");
    body.extend(std::iter::repeat_n(0x81, NESTING_DEPTH_MAX - 1));
    body.push(0x00);
    assert!(decode("ListStreams", &body).is_ok());
    // A million tags are skipped in a loop: {"Limit": 1(1(1(... 10)))}.
    quickly("tags", || {
        let mut body = hex(&format!("a1 | {LIMIT}"));
        body.extend(std::iter::repeat_n(0xc1, 1_000_000));
        body.push(0x0a);
        let Request::ListStreams(input) = decode("ListStreams", &body).unwrap() else {
            panic!("not ListStreams");
        };
        assert_eq!(input.limit, Some(10));
    });
}

#[test]
fn huge_declared_lengths_fail_before_allocating() {
    // 2^60 bytes, characters, items and pairs: refused at the head, nothing reserved.
    for head in [
        "5b 1000000000000000",
        "7b 1000000000000000",
        "9b 1000000000000000",
        "bb 1000000000000000",
        "5b ffffffffffffffff",
        "9b ffffffffffffffff",
        "bb 8000000000000000",
        "5a ffffffff",
        "9a ffffffff",
    ] {
        quickly(head, || {
            let body = hex(&format!("a1 | {DATA} | {head} | 00 00 00"));
            let message = serialization("PutRecord", &body);
            assert_eq!(
                message,
                "Request body is not valid CBOR: declared length runs past the end of the \
                 input at byte 6",
                "{head}"
            );
        });
    }
    // A string chunk that claims more than is left.
    let body = hex(&format!("a1 | {DATA} | 5f 5b 1000000000000000 00 ff"));
    assert!(serialization("PutRecord", &body).contains("declared length runs past the end"));
    // A top-level map claiming 2^60 pairs.
    let body = hex("bb 1000000000000000 61 78 00");
    assert!(serialization("ListStreams", &body).contains("declared length runs past the end"));
}

// ===== Round trips =====

fn bytes_strategy() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from)
}

fn entry_strategy() -> impl Strategy<Value = PutRecordsRequestEntry> {
    (
        proptest::option::of(bytes_strategy()),
        proptest::option::of("[0-9]{1,38}"),
        proptest::option::of("\\PC{0,40}"),
    )
        .prop_map(
            |(data, explicit_hash_key, partition_key)| PutRecordsRequestEntry {
                data,
                explicit_hash_key,
                partition_key,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// What a client encodes, the server decodes to the same value, blobs byte for byte.
    #[test]
    fn put_records_inputs_round_trip(
        records in proptest::option::of(proptest::collection::vec(entry_strategy(), 0..20)),
        stream_name in proptest::option::of("[a-zA-Z0-9_.-]{1,128}"),
        dry_run in proptest::option::of(any::<bool>()),
    ) {
        let input = PutRecordsInput {
            records,
            stream_name,
            dry_run,
            ..PutRecordsInput::default()
        };
        let body = encode_cbor(&input);
        prop_assert_eq!(decode_cbor::<PutRecordsInput>(&body).unwrap(), input);
    }

    /// Timestamps of every magnitude survive as tag 1 + integer ms, and so do integers of
    /// every width.
    #[test]
    fn timestamp_and_integer_inputs_round_trip(
        epoch_ms in any::<i64>(),
        creation_ms in proptest::option::of(any::<i64>()),
        max_results in proptest::option::of(any::<i32>()),
    ) {
        let input = ListShardsInput {
            stream_name: Some("s1".into()),
            max_results,
            stream_creation_timestamp: creation_ms.map(Timestamp::from_epoch_ms),
            shard_filter: Some(ShardFilter {
                filter_type: Some("AT_TIMESTAMP".into()),
                shard_id: None,
                timestamp: Some(Timestamp::from_epoch_ms(epoch_ms)),
            }),
            ..ListShardsInput::default()
        };
        let body = encode_cbor(&input);
        prop_assert_eq!(decode_cbor::<ListShardsInput>(&body).unwrap(), input);
    }

    /// Records come back as they were encoded (what a CBOR client reads).
    #[test]
    fn get_records_outputs_round_trip(
        records in proptest::collection::vec(
            (bytes_strategy(), proptest::option::of(0i64..4_102_444_800_000), "[0-9]{56}"),
            0..10,
        ),
        millis_behind_latest in proptest::option::of(any::<u64>()),
    ) {
        let output = GetRecordsOutput {
            records: records
                .into_iter()
                .map(|(data, arrival, sequence_number)| Record {
                    sequence_number,
                    approximate_arrival_timestamp: arrival.map(Timestamp::from_epoch_ms),
                    data,
                    partition_key: Some("pk".into()),
                    encryption_type: None,
                })
                .collect(),
            next_shard_iterator: Some("AAAA".into()),
            millis_behind_latest,
            child_shards: None,
        };
        let body = encode_cbor(&output);
        let mut deserializer = Deserializer::new(&body);
        let back = GetRecordsOutput::deserialize(&mut deserializer).unwrap();
        prop_assert!(deserializer.end().is_ok());
        prop_assert_eq!(back, output);
    }

    /// Any bytes at all: decoding never panics.
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        decode_as_every_operation(&body);
    }
}

// ===== The same request in both formats =====

/// Writes `value` as the Java SDK would write the same request: Jackson's indefinite-length
/// maps and arrays, long strings in chunks, `Data` as a byte string and timestamps as tag 1 +
/// epoch milliseconds (JSON carries seconds).
fn java_cbor(value: &serde_json::Value, key: Option<&str>, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Null => out.push(0xf6),
        Value::Bool(flag) => out.push(if *flag { 0xf5 } else { 0xf4 }),
        Value::Number(number) if matches!(key, Some("Timestamp" | "StreamCreationTimestamp")) => {
            let epoch_ms = (number.as_f64().unwrap() * 1000.0).round() as i64;
            out.push(0xc1);
            out.extend_from_slice(&encode_cbor(&epoch_ms));
        }
        Value::Number(number) => match (number.as_u64(), number.as_i64()) {
            (Some(value), _) => out.extend_from_slice(&encode_cbor(&value)),
            (None, Some(value)) => out.extend_from_slice(&encode_cbor(&value)),
            _ => out.extend_from_slice(&encode_cbor(&number.as_f64().unwrap())),
        },
        Value::String(text) if key == Some("Data") => {
            match crate::json::blob::decode_base64(text) {
                Ok(bytes) => out.extend_from_slice(&encode_cbor(&serde_bytes_of(&bytes))),
                // Not base64: the JSON request fails on it, and so must the CBOR one.
                Err(_) => out.extend_from_slice(&encode_cbor(text)),
            }
        }
        Value::String(text) if text.len() > 8 && text.is_char_boundary(4) => {
            // (_ "abcd", "efgh...")
            out.push(0x7f);
            out.extend_from_slice(&encode_cbor(&text[..4]));
            out.extend_from_slice(&encode_cbor(&text[4..]));
            out.push(0xff);
        }
        Value::String(text) => out.extend_from_slice(&encode_cbor(text)),
        Value::Array(items) => {
            out.push(0x9f);
            for item in items {
                java_cbor(item, key, out);
            }
            out.push(0xff);
        }
        Value::Object(members) => {
            out.push(0xbf);
            for (name, member) in members {
                out.extend_from_slice(&encode_cbor(name));
                java_cbor(member, Some(name), out);
            }
            out.push(0xff);
        }
    }
}

/// Serializes as a CBOR byte string.
fn serde_bytes_of(bytes: &[u8]) -> impl serde::Serialize + '_ {
    struct ByteString<'a>(&'a [u8]);
    impl serde::Serialize for ByteString<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }
    ByteString(bytes)
}

#[test]
fn every_operation_decodes_the_same_from_cbor_and_json() {
    const ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/s1";
    let queue = "arn:aws:kinesis:us-east-1:123456789012:queue/abc";
    let handle = r#"[{"ReceiptHandle":"h","VisibilityTimeoutSeconds":30}]"#;
    let mut bodies: Vec<(&str, String)> = vec![
        (
            "CreateQueue",
            r#"{"QueueName":"q","StreamConfigurationList":[{"StreamARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s1","StartingPosition":{"Type":"AT_TIMESTAMP","Timestamp":1700000000.5}}],"QueueAttributes":{"VisibilityTimeoutSeconds":10,"DeadLetterConfiguration":{"TargetType":"BUILT_IN","MaxReceiveCount":3}},"Tags":{"k":"v"}}"#.into(),
        ),
        ("CreateQueue", r#"{"QueueName":"q","StreamConfigurationList":[]}"#.into()),
        (
            "UpdateQueue",
            format!(r#"{{"QueueARN":"{queue}","QueueAttributes":{{"VisibilityTimeoutSeconds":1}}}}"#),
        ),
        ("DeleteQueue", format!(r#"{{"QueueARN":"{queue}"}}"#)),
        ("DescribeQueue", r#"{"QueueARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s"}"#.into()),
        (
            "ListQueues",
            r#"{"MaxResults":5,"StreamFilter":[{"StreamARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s1","StreamCreationTimestamp":1700000000}]}"#.into(),
        ),
        (
            "ReceiveQueueRecords",
            format!(r#"{{"QueueARN":"{queue}","Limit":10,"WaitTimeSeconds":20,"VisibilityTimeoutSeconds":0}}"#),
        ),
        ("ReceiveDeadLetterQueueRecords", format!(r#"{{"QueueARN":"{queue}","Limit":0}}"#)),
        ("AcknowledgeQueueRecords", format!(r#"{{"QueueARN":"{queue}","Entries":{handle}}}"#)),
        ("AcknowledgeDeadLetterQueueRecords", format!(r#"{{"QueueARN":"{queue}","Entries":[]}}"#)),
        ("RestoreDeadLetterQueueRecords", format!(r#"{{"QueueARN":"{queue}","Entries":{handle}}}"#)),
        ("UpdateQueueRecordsVisibility", format!(r#"{{"QueueARN":"{queue}","Entries":{handle}}}"#)),
        (
            "UpdateDeadLetterQueueRecordsVisibility",
            format!(r#"{{"QueueARN":"{queue}","Entries":[{{"ReceiptHandle":"h"}}]}}"#),
        ),
    ];
    bodies.extend(vec![
        (
            "CreateStream",
            r#"{"StreamName":"s1","ShardCount":3,"Tags":{"k":"v"}}"#.into(),
        ),
        (
            "CreateStream",
            r#"{"StreamName":"s 1","ShardCount":0}"#.into(),
        ),
        (
            "CreateStream",
            r#"{"StreamName":"s1","StreamModeDetails":{"StreamMode":"ON_DEMAND"},
                "MaxRecordSizeInKiB":2048,"WarmThroughputMiBps":0}"#
                .into(),
        ),
        (
            "DeleteStream",
            r#"{"StreamName":"s1","EnforceConsumerDeletion":true}"#.into(),
        ),
        (
            "DeleteStream",
            r#"{"StreamName":"s1","EnforceConsumerDeletion":"maybe"}"#.into(),
        ),
        (
            "DescribeStream",
            r#"{"StreamName":"s1","Limit":1.9}"#.into(),
        ),
        (
            "DescribeStream",
            r#"{"StreamName":"s1","ExclusiveStartShardId":""}"#.into(),
        ),
        (
            "DescribeStreamSummary",
            format!(r#"{{"StreamARN":"{ARN}"}}"#),
        ),
        ("DescribeStreamSummary", r#"{"StreamARN":"nope"}"#.into()),
        (
            "ListStreams",
            r#"{"Limit":10,"ExclusiveStartStreamName":"a"}"#.into(),
        ),
        ("ListStreams", r#"{"Limit":"10"}"#.into()),
        (
            "ListShards",
            r#"{"StreamName":"s1","MaxResults":100,"StreamCreationTimestamp":1459799926.48,
                "ShardFilter":{"Type":"FROM_TIMESTAMP","Timestamp":1459799926}}"#
                .into(),
        ),
        (
            "ListShards",
            r#"{"StreamName":"s1","MaxResults":100000}"#.into(),
        ),
        (
            "ListShards",
            r#"{"ShardFilter":{"Type":"AT_TIMESTAMP","Timestamp":"x"}}"#.into(),
        ),
        (
            "PutRecord",
            r#"{"StreamName":"s1","PartitionKey":"k","Data":"AAEC/w==","ExplicitHashKey":"5"}"#
                .into(),
        ),
        (
            "PutRecord",
            r#"{"StreamName":"s1","PartitionKey":"k","Data":"23456"}"#.into(),
        ),
        (
            "PutRecord",
            r#"{"StreamName":"s1","PartitionKey":"k"}"#.into(),
        ),
        (
            "PutRecords",
            r#"{"StreamName":"s1","Records":[{"PartitionKey":"a","Data":"AA=="},
                {"PartitionKey":"b","Data":""},null]}"#
                .into(),
        ),
        ("PutRecords", r#"{"StreamName":"s1","Records":[]}"#.into()),
        ("PutRecords", r#"{"StreamName":"s1","Records":{}}"#.into()),
        (
            "GetShardIterator",
            r#"{"StreamName":"s1","ShardId":"shardId-000000000000",
                "ShardIteratorType":"AT_TIMESTAMP","Timestamp":1459799926.48}"#
                .into(),
        ),
        (
            "GetShardIterator",
            r#"{"StreamName":"s1","ShardId":"shardId-0","ShardIteratorType":"SOMEWHERE"}"#.into(),
        ),
        (
            "GetRecords",
            r#"{"ShardIterator":"AAAA","Limit":10000}"#.into(),
        ),
        ("GetRecords", r#"{"Limit":10001}"#.into()),
        (
            "IncreaseStreamRetentionPeriod",
            r#"{"StreamName":"s1","RetentionPeriodHours":48}"#.into(),
        ),
        (
            "IncreaseStreamRetentionPeriod",
            r#"{"StreamName":"s1","RetentionPeriodHours":0}"#.into(),
        ),
        (
            "DecreaseStreamRetentionPeriod",
            r#"{"StreamName":"s1","RetentionPeriodHours":24}"#.into(),
        ),
        (
            "DecreaseStreamRetentionPeriod",
            r#"{"StreamName":"s1"}"#.into(),
        ),
        (
            "AddTagsToStream",
            r#"{"StreamName":"s1","Tags":{"k":"v","dropped":null}}"#.into(),
        ),
        ("AddTagsToStream", r#"{"StreamName":"s1","Tags":{}}"#.into()),
        (
            "RemoveTagsFromStream",
            r#"{"StreamName":"s1","TagKeys":["k","l"]}"#.into(),
        ),
        (
            "RemoveTagsFromStream",
            r#"{"StreamName":"s1","TagKeys":[]}"#.into(),
        ),
        (
            "ListTagsForStream",
            r#"{"StreamName":"s1","Limit":5,"ExclusiveStartTagKey":"a"}"#.into(),
        ),
        (
            "ListTagsForStream",
            r#"{"StreamName":"s1","Limit":51}"#.into(),
        ),
        (
            "TagResource",
            format!(r#"{{"ResourceARN":"{ARN}","Tags":{{"k":"v"}}}}"#),
        ),
        ("TagResource", r#"{"Tags":{"k":"v"}}"#.into()),
        (
            "UntagResource",
            format!(r#"{{"ResourceARN":"{ARN}","TagKeys":["k"]}}"#),
        ),
        (
            "UntagResource",
            format!(r#"{{"ResourceARN":"{ARN}","TagKeys":[null]}}"#),
        ),
        (
            "ListTagsForResource",
            format!(r#"{{"ResourceARN":"{ARN}"}}"#),
        ),
        ("ListTagsForResource", "{}".into()),
        ("DescribeLimits", "{}".into()),
        (
            "DescribeAccountSettings",
            r#"{"Ignored":[1,2,{"x":null}]}"#.into(),
        ),
        (
            "SplitShard",
            r#"{"StreamName":"s1","ShardToSplit":"shardId-000000000000",
                "NewStartingHashKey":"170141183460469231731687303715884105728"}"#
                .into(),
        ),
        (
            "SplitShard",
            r#"{"StreamName":"s1","NewStartingHashKey":"x"}"#.into(),
        ),
        (
            "MergeShards",
            r#"{"StreamName":"s1","ShardToMerge":"shardId-000000000000",
                "AdjacentShardToMerge":"shardId-000000000001"}"#
                .into(),
        ),
        (
            "MergeShards",
            r#"{"StreamName":"s1","ShardToMerge":"shardId-0"}"#.into(),
        ),
        (
            "UpdateShardCount",
            r#"{"StreamName":"s1","TargetShardCount":4,"ScalingType":"UNIFORM_SCALING"}"#.into(),
        ),
        (
            "UpdateShardCount",
            r#"{"StreamName":"s1","TargetShardCount":0}"#.into(),
        ),
        (
            "UpdateStreamMode",
            format!(r#"{{"StreamARN":"{ARN}","StreamModeDetails":{{"StreamMode":"ON_DEMAND"}}}}"#),
        ),
        (
            "UpdateStreamMode",
            format!(r#"{{"StreamARN":"{ARN}","StreamModeDetails":5}}"#),
        ),
        (
            "UpdateMaxRecordSize",
            format!(r#"{{"StreamARN":"{ARN}","MaxRecordSizeInKiB":1024}}"#),
        ),
        (
            "UpdateMaxRecordSize",
            format!(r#"{{"StreamARN":"{ARN}","MaxRecordSizeInKiB":8}}"#),
        ),
        (
            "UpdateStreamRecordDistributionStrategy",
            format!(r#"{{"StreamARN":"{ARN}","RecordDistributionStrategy":"AUTO"}}"#),
        ),
        (
            "UpdateStreamRecordDistributionStrategy",
            format!(r#"{{"StreamARN":"{ARN}","RecordDistributionStrategy":"auto"}}"#),
        ),
        (
            "RegisterStreamConsumer",
            format!(r#"{{"StreamARN":"{ARN}","ConsumerName":"c1","Tags":{{"k":"v"}}}}"#),
        ),
        (
            "RegisterStreamConsumer",
            format!(r#"{{"StreamARN":"{ARN}","ConsumerName":"bad name"}}"#),
        ),
        (
            "DescribeStreamConsumer",
            format!(r#"{{"ConsumerARN":"{ARN}/consumer/c1:1700000000"}}"#),
        ),
        (
            "DescribeStreamConsumer",
            format!(r#"{{"StreamARN":"{ARN}","ConsumerName":"c1"}}"#),
        ),
        (
            "ListStreamConsumers",
            format!(
                r#"{{"StreamARN":"{ARN}","MaxResults":5,"StreamCreationTimestamp":1700000000}}"#
            ),
        ),
        ("ListStreamConsumers", r#"{"MaxResults":0}"#.into()),
        (
            "DeregisterStreamConsumer",
            format!(r#"{{"ConsumerARN":"{ARN}/consumer/c1:1700000000"}}"#),
        ),
        (
            "DeregisterStreamConsumer",
            r#"{"ConsumerARN":"not-an-arn"}"#.into(),
        ),
        (
            "SubscribeToShard",
            format!(
                r#"{{"ConsumerARN":"{ARN}/consumer/c1:1700000000","ShardId":"shardId-000000000000",
                    "StartingPosition":{{"Type":"AT_TIMESTAMP","Timestamp":1700000000.5}}}}"#
            ),
        ),
        (
            "SubscribeToShard",
            format!(
                r#"{{"ConsumerARN":"{ARN}/consumer/c1:1700000000","ShardId":"shardId-0",
                    "StartingPosition":{{"Type":"SIDEWAYS"}}}}"#
            ),
        ),
        (
            "PutResourcePolicy",
            format!(r#"{{"ResourceARN":"{ARN}","Policy":"{{\"Version\":\"2012-10-17\"}}"}}"#),
        ),
        ("PutResourcePolicy", format!(r#"{{"ResourceARN":"{ARN}"}}"#)),
        ("GetResourcePolicy", format!(r#"{{"ResourceARN":"{ARN}"}}"#)),
        ("DeleteResourcePolicy", r#"{"ResourceARN":"nope"}"#.into()),
        (
            "StartStreamEncryption",
            r#"{"StreamName":"s1","EncryptionType":"KMS","KeyId":"alias/aws/kinesis"}"#.into(),
        ),
        (
            "StopStreamEncryption",
            r#"{"StreamName":"s1","EncryptionType":"SOMETIMES","KeyId":""}"#.into(),
        ),
        (
            "EnableEnhancedMonitoring",
            r#"{"StreamName":"s1","ShardLevelMetrics":["ALL"]}"#.into(),
        ),
        (
            "DisableEnhancedMonitoring",
            r#"{"StreamName":"s1","ShardLevelMetrics":["Nope"]}"#.into(),
        ),
        (
            "UpdateAccountSettings",
            r#"{"MinimumThroughputBillingCommitment":{"Status":"DISABLED"}}"#.into(),
        ),
        (
            "UpdateStreamWarmThroughput",
            r#"{"StreamName":"s1","WarmThroughputMiBps":-1}"#.into(),
        ),
        (
            "UpdateStreamWarmThroughput",
            format!(r#"{{"StreamARN":"{ARN}","WarmThroughputMiBps":100}}"#),
        ),
        (
            "DeleteResourcePolicy",
            format!(r#"{{"ResourceARN":"{ARN}"}}"#),
        ),
        (
            "CreateChannel",
            r#"{"ChannelName":"c","ServiceExecutionRoleARN":"arn:aws:iam::123456789012:role/r","StreamConfigurationList":[{"StreamARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s1","RecordConfiguration":{"RecordFormatType":"JSON"}}],"S3DestinationConfiguration":{"DataFreshnessInSeconds":300,"StorageConfiguration":{"BucketARN":"arn:aws:s3:::bucket","ExpectedBucketOwner":"123456789012","CompressionType":"ZSTD"}}}"#.into(),
        ),
        (
            "CreateChannel",
            r#"{"ChannelName":"c","StreamConfigurationList":[]}"#.into(),
        ),
        (
            "UpdateChannel",
            r#"{"ChannelARN":"arn:aws:kinesis:us-east-1:123456789012:channel/c","S3DestinationConfiguration":{"DataFreshnessInSeconds":600}}"#.into(),
        ),
        (
            "DeleteChannel",
            r#"{"ChannelARN":"arn:aws:kinesis:us-east-1:123456789012:stream/c"}"#.into(),
        ),
        (
            "DescribeChannel",
            r#"{"ChannelARN":"arn:aws:kinesis:us-east-1:123456789012:channel/c"}"#.into(),
        ),
        (
            "ListChannels",
            r#"{"StreamFilter":[{"StreamARN":"arn:aws:kinesis:us-east-1:123456789012:stream/s1","StreamCreationTimestamp":1700000000}],"MaxResults":5}"#.into(),
        ),
        (
            "StopStreamEncryption",
            r#"{"StreamName":"s1","EncryptionType":"KMS","KeyId":"k"}"#.into(),
        ),
        (
            "DisableEnhancedMonitoring",
            r#"{"StreamName":"s1","ShardLevelMetrics":["IncomingBytes","OutgoingBytes"]}"#.into(),
        ),
    ]);
    let mut covered: Vec<&str> = bodies.iter().map(|(operation, _)| *operation).collect();
    covered.sort_unstable();
    covered.dedup();
    let mut listed = OPERATIONS.to_vec();
    listed.sort_unstable();
    assert_eq!(covered, listed, "every operation needs a case here");

    let (mut accepted, mut refused) = (0, 0);
    for (operation, json) in &bodies {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        let mut cbor = Vec::new();
        java_cbor(&value, None, &mut cbor);
        let from_json = decode_request(operation, json.as_bytes());
        let from_cbor = decode(operation, &cbor);
        assert_eq!(from_cbor, from_json, "{operation} {json}");
        match from_json {
            Ok(_) => accepted += 1,
            Err(_) => refused += 1,
        }
    }
    // Both kinds of case are exercised, so the comparison means something.
    assert!(
        accepted >= OPERATIONS.len() - 5 && refused >= 20,
        "{accepted} {refused}"
    );
}
