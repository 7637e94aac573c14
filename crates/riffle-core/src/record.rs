//! The record encoding inside a log frame's payload.
//!
//! One frame holds one put batch for one shard: every record a PutRecord or PutRecords call
//! routed to that shard. The frame header (in `riffle-log`) already carries the record count and
//! the first and maximum arrival timestamps; the payload is the records back to back:
//!
//! ```text
//! flags u8 | ts_delta_ms varint | partition_key_len varint | partition_key
//!          | [explicit_hash_key u128 big-endian, when flags & 1] | data_len varint | data
//! ```
//!
//! `ts_delta_ms` is the record's arrival time minus the frame's `ts_first_ms`, so batches pay a
//! single byte for it. The explicit hash key is kept so that a later reshard or a repair tool can
//! re-route a record exactly as its producer asked; readers do not return it (AWS does not).
//! A record's position is `(frame index, slot in the frame)`, which is what sequence numbers
//! encode, so no separate offset map exists.
//!
//! For an encrypted stream these bytes are the plaintext of a sealed payload (see
//! [`crate::crypto`]); readers open the frame first and decode the same layout.

use bytes::{Buf, BufMut, Bytes};

const FLAG_EXPLICIT_HASH_KEY: u8 = 1;

/// A record as the put path hands it to the shard.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub partition_key: String,
    pub explicit_hash_key: Option<u128>,
    pub data: Bytes,
}

/// A record decoded from a frame, sharing the frame's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub arrival_ms: u64,
    pub partition_key: Bytes,
    pub explicit_hash_key: Option<u128>,
    pub data: Bytes,
    /// Stored in a sealed frame (the reader set it; GetRecords reports EncryptionType KMS).
    pub encrypted: bool,
}

/// Upper bound of the encoded size of one record, used to size the frame buffer once.
pub fn encoded_len_max(record: &NewRecord) -> usize {
    1 + 10 + 10 + record.partition_key.len() + 16 + 10 + record.data.len()
}

/// Appends one record to `out`.
pub fn encode(out: &mut Vec<u8>, record: &NewRecord, ts_delta_ms: u64) {
    let flags = if record.explicit_hash_key.is_some() {
        FLAG_EXPLICIT_HASH_KEY
    } else {
        0
    };
    out.put_u8(flags);
    put_varint(out, ts_delta_ms);
    put_varint(out, record.partition_key.len() as u64);
    out.put_slice(record.partition_key.as_bytes());
    if let Some(key) = record.explicit_hash_key {
        out.put_u128(key);
    }
    put_varint(out, record.data.len() as u64);
    out.put_slice(&record.data);
}

/// Why a payload could not be decoded. The frame's CRC already verified, so this means a bug or
/// a format-version mismatch, never a torn write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "undecodable record payload: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Decodes every record of a frame payload. `ts_first_ms` comes from the frame header.
pub fn decode_all(
    payload: &Bytes,
    ts_first_ms: u64,
    record_count: u16,
) -> Result<Vec<StoredRecord>, DecodeError> {
    let mut records = Vec::with_capacity(usize::from(record_count));
    let mut cursor = payload.clone();
    while cursor.has_remaining() {
        let flags = cursor.get_u8();
        let ts_delta_ms = get_varint(&mut cursor)?;
        let key_len = get_len(&mut cursor)?;
        let partition_key = cursor.split_to(key_len);
        let explicit_hash_key = if flags & FLAG_EXPLICIT_HASH_KEY != 0 {
            if cursor.remaining() < 16 {
                return Err(DecodeError("short explicit hash key"));
            }
            Some(cursor.get_u128())
        } else {
            None
        };
        let data_len = get_len(&mut cursor)?;
        let data = cursor.split_to(data_len);
        records.push(StoredRecord {
            arrival_ms: ts_first_ms.saturating_add(ts_delta_ms),
            partition_key,
            explicit_hash_key,
            data,
            encrypted: false,
        });
    }
    if records.len() != usize::from(record_count) {
        return Err(DecodeError("record count disagrees with the frame header"));
    }
    Ok(records)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

fn get_varint(cursor: &mut Bytes) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        if !cursor.has_remaining() {
            return Err(DecodeError("short varint"));
        }
        let byte = cursor.get_u8();
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError("varint longer than 64 bits"))
}

fn get_len(cursor: &mut Bytes) -> Result<usize, DecodeError> {
    let len = get_varint(cursor)?;
    let len = usize::try_from(len).map_err(|_| DecodeError("length overflows usize"))?;
    if len > cursor.remaining() {
        return Err(DecodeError("length past the end of the payload"));
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_and_without_explicit_keys() {
        let records = [
            NewRecord {
                partition_key: "alpha".into(),
                explicit_hash_key: None,
                data: Bytes::from_static(b""),
            },
            NewRecord {
                partition_key: "βeta".into(),
                explicit_hash_key: Some(u128::MAX),
                data: Bytes::from((0u8..=255).collect::<Vec<u8>>()),
            },
        ];
        let mut payload = Vec::new();
        for (i, record) in records.iter().enumerate() {
            encode(&mut payload, record, i as u64 * 300);
        }
        let decoded = decode_all(&Bytes::from(payload), 1_000, 2).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0].arrival_ms, 1_000);
        assert_eq!(decoded[1].arrival_ms, 1_300);
        assert_eq!(&decoded[1].partition_key[..], "βeta".as_bytes());
        assert_eq!(decoded[1].explicit_hash_key, Some(u128::MAX));
        assert_eq!(decoded[1].data.len(), 256);
        assert_eq!(decoded[0].explicit_hash_key, None);
    }

    #[test]
    fn truncated_payloads_are_errors_not_panics() {
        let mut payload = Vec::new();
        encode(
            &mut payload,
            &NewRecord {
                partition_key: "k".into(),
                explicit_hash_key: Some(7),
                data: Bytes::from_static(b"hello"),
            },
            0,
        );
        for cut in 0..payload.len() {
            let short = Bytes::copy_from_slice(&payload[..cut]);
            assert!(decode_all(&short, 0, 1).is_err(), "cut at {cut}");
        }
        assert!(decode_all(&Bytes::from(payload.clone()), 0, 2).is_err());
        assert_eq!(decode_all(&Bytes::from(payload), 0, 1).unwrap().len(), 1);
    }
}
