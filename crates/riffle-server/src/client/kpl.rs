//! De-aggregation of records written by the Kinesis Producer Library (KPL).
//!
//! The KPL packs many user records into one Kinesis record:
//!
//! ```text
//! F3 89 9A C2 | protobuf AggregatedRecord | MD5 of the protobuf bytes (16 bytes)
//! ```
//!
//! with the proto2 schema
//!
//! ```text
//! message AggregatedRecord {
//!   repeated string partition_key_table     = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records                 = 3;
//! }
//! message Record {
//!   required uint64 partition_key_index     = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes  data                    = 3;
//!   repeated Tag    tags                    = 4;
//! }
//! message Tag { required string key = 1; optional string value = 2; }
//! ```
//!
//! As the KCL does, a record is taken as an aggregate only when it starts with the magic and
//! its trailing MD5 matches; anything else is an ordinary record, whatever its first bytes.
//! The protobuf reader is this file's own (varints and length-delimited fields are all the
//! schema needs); it skips fields it does not know, as protobuf readers must, and never
//! trusts a length or an index it has not checked.

use md5::{Digest, Md5};

/// The four bytes every KPL aggregate starts with.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
/// Length of the MD5 trailer.
const DIGEST_LEN: usize = 16;

/// One user record out of an aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Vec<u8>,
}

/// What a Kinesis record's data holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Deaggregated {
    /// Not an aggregate (no magic, or the MD5 does not match): one ordinary record.
    Plain,
    /// An aggregate's user records, in order (their index is the sub-sequence number).
    Records(Vec<UserRecord>),
    /// Magic and MD5 match, but the protobuf inside is malformed.
    Malformed(String),
}

/// Splits a record's data into the user records of a KPL aggregate, if it is one.
pub fn deaggregate(data: &[u8]) -> Deaggregated {
    if data.len() < MAGIC.len() + DIGEST_LEN || data[..MAGIC.len()] != MAGIC {
        return Deaggregated::Plain;
    }
    let (message, digest) = data[MAGIC.len()..].split_at(data.len() - MAGIC.len() - DIGEST_LEN);
    if Md5::digest(message).as_slice() != digest {
        return Deaggregated::Plain;
    }
    match decode_aggregated(message) {
        Ok(records) => Deaggregated::Records(records),
        Err(error) => Deaggregated::Malformed(error),
    }
}

/// The wire types proto2 uses.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH_DELIMITED: u8 = 2;
const FIXED32: u8 = 5;

/// A cursor over protobuf bytes.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for (index, &byte) in self.bytes.iter().enumerate().take(10) {
            let bits = u64::from(byte & 0x7f);
            if index == 9 && bits > 1 {
                return Err("varint overflows 64 bits".into());
            }
            value |= bits << (7 * index);
            if byte & 0x80 == 0 {
                self.bytes = &self.bytes[index + 1..];
                return Ok(value);
            }
        }
        Err("truncated or overlong varint".into())
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], String> {
        let len = usize::try_from(len).map_err(|_| "length too large".to_owned())?;
        if len > self.bytes.len() {
            return Err(format!(
                "field of {len} bytes with {} left",
                self.bytes.len()
            ));
        }
        let (field, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(field)
    }

    /// The next field's number and wire type.
    fn key(&mut self) -> Result<(u64, u8), String> {
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 {
            return Err("field number 0".into());
        }
        Ok((field, (key & 7) as u8))
    }

    /// The value of a length-delimited field.
    fn bytes_field(&mut self) -> Result<&'a [u8], String> {
        let len = self.varint()?;
        self.take(len)
    }

    /// Skips a field of a number this reader does not use.
    fn skip(&mut self, wire_type: u8) -> Result<(), String> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LENGTH_DELIMITED => self.bytes_field().map(drop),
            FIXED32 => self.take(4).map(drop),
            other => Err(format!("unsupported wire type {other}")),
        }
    }
}

fn expect_wire_type(field: u64, actual: u8, expected: u8) -> Result<(), String> {
    if actual == expected {
        Ok(())
    } else {
        Err(format!(
            "field {field} has wire type {actual}, expected {expected}"
        ))
    }
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
}

/// A `Record` before its table indices are resolved.
struct RawRecord<'a> {
    partition_key_index: u64,
    explicit_hash_key_index: Option<u64>,
    data: &'a [u8],
}

fn decode_aggregated(message: &[u8]) -> Result<Vec<UserRecord>, String> {
    let mut reader = Reader { bytes: message };
    let mut partition_keys = Vec::new();
    let mut explicit_hash_keys = Vec::new();
    let mut raw_records = Vec::new();
    while !reader.is_empty() {
        let (field, wire_type) = reader.key()?;
        match field {
            1 => {
                expect_wire_type(field, wire_type, LENGTH_DELIMITED)?;
                partition_keys.push(utf8(reader.bytes_field()?, "a partition key")?);
            }
            2 => {
                expect_wire_type(field, wire_type, LENGTH_DELIMITED)?;
                explicit_hash_keys.push(utf8(reader.bytes_field()?, "an explicit hash key")?);
            }
            3 => {
                expect_wire_type(field, wire_type, LENGTH_DELIMITED)?;
                raw_records.push(decode_record(reader.bytes_field()?)?);
            }
            _ => reader.skip(wire_type)?,
        }
    }
    raw_records
        .into_iter()
        .enumerate()
        .map(|(index, raw)| {
            let partition_key = usize::try_from(raw.partition_key_index)
                .ok()
                .and_then(|i| partition_keys.get(i))
                .ok_or_else(|| {
                    format!(
                        "record {index}: partition key index {} outside a table of {}",
                        raw.partition_key_index,
                        partition_keys.len()
                    )
                })?
                .clone();
            let explicit_hash_key = match raw.explicit_hash_key_index {
                None => None,
                Some(key_index) => Some(
                    usize::try_from(key_index)
                        .ok()
                        .and_then(|i| explicit_hash_keys.get(i))
                        .ok_or_else(|| {
                            format!(
                                "record {index}: explicit hash key index {key_index} outside a \
                                 table of {}",
                                explicit_hash_keys.len()
                            )
                        })?
                        .clone(),
                ),
            };
            Ok(UserRecord {
                partition_key,
                explicit_hash_key,
                data: raw.data.to_vec(),
            })
        })
        .collect()
}

fn decode_record(message: &[u8]) -> Result<RawRecord<'_>, String> {
    let mut reader = Reader { bytes: message };
    let mut partition_key_index = None;
    let mut explicit_hash_key_index = None;
    let mut data = None;
    while !reader.is_empty() {
        let (field, wire_type) = reader.key()?;
        match field {
            1 => {
                expect_wire_type(field, wire_type, VARINT)?;
                partition_key_index = Some(reader.varint()?);
            }
            2 => {
                expect_wire_type(field, wire_type, VARINT)?;
                explicit_hash_key_index = Some(reader.varint()?);
            }
            3 => {
                expect_wire_type(field, wire_type, LENGTH_DELIMITED)?;
                data = Some(reader.bytes_field()?);
            }
            _ => reader.skip(wire_type)?,
        }
    }
    Ok(RawRecord {
        partition_key_index: partition_key_index
            .ok_or("a record without its required partition_key_index")?,
        explicit_hash_key_index,
        data: data.ok_or("a record without its required data")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wraps protobuf bytes into an aggregate: magic, message, MD5 of the message.
    fn wrap(message: &[u8]) -> Vec<u8> {
        let mut data = MAGIC.to_vec();
        data.extend_from_slice(message);
        data.extend_from_slice(&Md5::digest(message));
        data
    }

    /// An aggregate written out byte by byte from the format's description: two partition
    /// keys, one explicit hash key, three records (one with an explicit hash key and a tag).
    fn handmade_message() -> Vec<u8> {
        let mut message = Vec::new();
        // partition_key_table[0] = "alpha": field 1, wire type 2 -> key 0x0A; length 5.
        message.extend_from_slice(&[0x0A, 0x05, b'a', b'l', b'p', b'h', b'a']);
        // partition_key_table[1] = "beta"
        message.extend_from_slice(&[0x0A, 0x04, b'b', b'e', b't', b'a']);
        // explicit_hash_key_table[0] = "42": field 2, wire type 2 -> key 0x12.
        message.extend_from_slice(&[0x12, 0x02, b'4', b'2']);
        // records[0]: field 3, wire type 2 -> key 0x1A; { pk index 0 (0x08 0x00),
        // data "one" (0x1A 0x03 ...) } = 7 bytes.
        message.extend_from_slice(&[0x1A, 0x07, 0x08, 0x00, 0x1A, 0x03, b'o', b'n', b'e']);
        // records[1]: { pk index 1, ehk index 0 (0x10 0x00), data "two",
        // tags [{ key "t" }] (0x22 0x03 0x0A 0x01 't') } = 14 bytes.
        message.extend_from_slice(&[
            0x1A, 0x0E, 0x08, 0x01, 0x10, 0x00, 0x1A, 0x03, b't', b'w', b'o', 0x22, 0x03, 0x0A,
            0x01, b't',
        ]);
        // records[2]: data first, then pk index 0; the data is 200 bytes of 0x00..0xC7, so its
        // length needs a two-byte varint (200 = 0xC8 0x01). 3 + 200 + 2 = 205 = 0xCD 0x01.
        message.extend_from_slice(&[0x1A, 0xCD, 0x01, 0x1A, 0xC8, 0x01]);
        message.extend((0u8..200).collect::<Vec<u8>>());
        message.extend_from_slice(&[0x08, 0x00]);
        message
    }

    #[test]
    fn a_handmade_aggregate_yields_its_user_records_in_order() {
        let Deaggregated::Records(records) = deaggregate(&wrap(&handmade_message())) else {
            panic!("expected an aggregate");
        };
        assert_eq!(
            records,
            vec![
                UserRecord {
                    partition_key: "alpha".into(),
                    explicit_hash_key: None,
                    data: b"one".to_vec(),
                },
                UserRecord {
                    partition_key: "beta".into(),
                    explicit_hash_key: Some("42".into()),
                    data: b"two".to_vec(),
                },
                UserRecord {
                    partition_key: "alpha".into(),
                    explicit_hash_key: None,
                    data: (0u8..200).collect(),
                },
            ]
        );
    }

    #[test]
    fn unknown_fields_of_every_wire_type_are_skipped() {
        let mut message = handmade_message();
        // field 9 varint, field 10 fixed64, field 11 length-delimited, field 12 fixed32.
        message.extend_from_slice(&[0x48, 0x96, 0x01]);
        message.extend_from_slice(&[0x51, 1, 2, 3, 4, 5, 6, 7, 8]);
        message.extend_from_slice(&[0x5A, 0x02, 0xFF, 0xFF]);
        message.extend_from_slice(&[0x65, 1, 2, 3, 4]);
        let Deaggregated::Records(records) = deaggregate(&wrap(&message)) else {
            panic!("expected an aggregate");
        };
        assert_eq!(records.len(), 3);
    }

    #[test]
    fn records_that_are_not_aggregates_stay_whole() {
        assert_eq!(deaggregate(b"plain text"), Deaggregated::Plain);
        assert_eq!(deaggregate(&MAGIC), Deaggregated::Plain);
        // The magic and a message, but a wrong digest: an ordinary record, as the KCL reads it.
        let mut tampered = wrap(&handmade_message());
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(deaggregate(&tampered), Deaggregated::Plain);
        // An empty aggregate is valid protobuf with no records.
        assert_eq!(deaggregate(&wrap(&[])), Deaggregated::Records(Vec::new()));
    }

    #[test]
    fn malformed_protobuf_behind_a_valid_digest_is_reported() {
        let cases: [(&[u8], &str); 6] = [
            // A length running past the end.
            (&[0x0A, 0x09, b'a'], "left"),
            // A truncated varint.
            (&[0x1A, 0x80], "varint"),
            // A record pointing past the partition key table.
            (
                &[0x0A, 0x01, b'k', 0x1A, 0x04, 0x08, 0x05, 0x1A, 0x00],
                "index 5",
            ),
            // A record without data.
            (&[0x0A, 0x01, b'k', 0x1A, 0x02, 0x08, 0x00], "required data"),
            // A group (wire type 3), which the format never uses.
            (&[0x4B], "wire type 3"),
            // A partition key that is not UTF-8.
            (&[0x0A, 0x01, 0xFF], "UTF-8"),
        ];
        for (message, expected) in cases {
            match deaggregate(&wrap(message)) {
                Deaggregated::Malformed(error) => {
                    assert!(error.contains(expected), "{message:02x?}: {error}")
                }
                other => panic!("{message:02x?}: expected Malformed, got {other:?}"),
            }
        }
    }
}
