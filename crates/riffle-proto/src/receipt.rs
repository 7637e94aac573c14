//! Queue receipt handles.
//!
//! A receipt handle names one delivery of one record by one queue. Like a shard iterator it is
//! sealed (`crate::token`) under the node's key with a context of its own, so a client can
//! neither forge one nor turn one delivery's handle into another's: the delivery number inside
//! is checked against the queue's current delivery of the record.
//!
//! Body, big-endian: version `u8` (1), queue creation ms `u64`, shard ordinal `u32`, log index
//! `u64`, slot `u16`, delivery `u64`, dead-letter flag `u8`, queue id length `u8`, queue id.

use crate::token::{open, seal, Reader};

const VERSION: u8 = 1;
const MAC_CONTEXT: &[u8] = b"riffle queue receipt handle";

/// What a receipt handle carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptHandle {
    pub queue_id: String,
    /// Tells a re-created queue of the same id apart (ids are random, but cheap to check).
    pub queue_created_ms: u64,
    pub shard_ordinal: u32,
    pub log_index: u64,
    pub slot: u16,
    /// The queue's number of this delivery: a handle is current only while it matches.
    pub delivery: u64,
    /// Issued by ReceiveDeadLetterQueueRecords.
    pub dead_letter: bool,
}

impl ReceiptHandle {
    /// The handle as text. Queue ids are at most 128 bytes (the name rule).
    pub fn encode(&self, key: &[u8; 32]) -> String {
        let id = self.queue_id.as_bytes();
        let id_len = u8::try_from(id.len().min(255)).unwrap_or(u8::MAX);
        let mut body = Vec::with_capacity(40 + id.len());
        body.push(VERSION);
        body.extend_from_slice(&self.queue_created_ms.to_be_bytes());
        body.extend_from_slice(&self.shard_ordinal.to_be_bytes());
        body.extend_from_slice(&self.log_index.to_be_bytes());
        body.extend_from_slice(&self.slot.to_be_bytes());
        body.extend_from_slice(&self.delivery.to_be_bytes());
        body.push(u8::from(self.dead_letter));
        body.push(id_len);
        body.extend_from_slice(&id[..usize::from(id_len)]);
        seal(MAC_CONTEXT, body, key)
    }

    /// Reads and authenticates a handle; `None` for anything `encode` did not make under `key`.
    pub fn decode(text: &str, key: &[u8; 32]) -> Option<ReceiptHandle> {
        let body = open(MAC_CONTEXT, text, key)?;
        let mut reader = Reader(&body);
        if reader.u8()? != VERSION {
            return None;
        }
        let queue_created_ms = reader.u64()?;
        let shard_ordinal = reader.u32()?;
        let log_index = reader.u64()?;
        let slot = reader.u16()?;
        let delivery = reader.u64()?;
        let dead_letter = match reader.u8()? {
            0 => false,
            1 => true,
            _ => return None,
        };
        let id_len = usize::from(reader.u8()?);
        let id = reader.take(id_len)?;
        if !reader.is_empty() {
            return None;
        }
        Some(ReceiptHandle {
            queue_id: std::str::from_utf8(id).ok()?.to_owned(),
            queue_created_ms,
            shard_ordinal,
            log_index,
            slot,
            delivery,
            dead_letter,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    const KEY: [u8; 32] = [9; 32];

    fn handle() -> ReceiptHandle {
        ReceiptHandle {
            queue_id: "0123456789abcdef".into(),
            queue_created_ms: 1_700_000_000_000,
            shard_ordinal: 3,
            log_index: 77,
            slot: 5,
            delivery: 123_456,
            dead_letter: true,
        }
    }

    #[test]
    fn round_trips_and_fits_the_model() {
        let text = handle().encode(&KEY);
        assert!(text.len() <= 1024, "{}", text.len());
        assert_eq!(ReceiptHandle::decode(&text, &KEY), Some(handle()));
    }

    #[test]
    fn forged_or_altered_handles_are_refused() {
        let text = handle().encode(&KEY);
        assert_eq!(ReceiptHandle::decode(&text, &[8; 32]), None, "another key");
        let mut raw = STANDARD.decode(&text).unwrap();
        for at in 0..raw.len() {
            raw[at] ^= 1;
            assert_eq!(
                ReceiptHandle::decode(&STANDARD.encode(&raw), &KEY),
                None,
                "byte {at} flipped"
            );
            raw[at] ^= 1;
        }
        assert_eq!(ReceiptHandle::decode("not a handle", &KEY), None);
        // A shard iterator made under the same key is no receipt handle.
        let iterator = crate::iterator::IteratorToken {
            stream_name: "s".into(),
            stream_created_ms: 1,
            shard_ordinal: 0,
            log_index: 1,
            sub: 0,
            issued_ms: 1,
            nonce: Some(1),
        }
        .encode(&KEY);
        assert_eq!(ReceiptHandle::decode(&iterator, &KEY), None);
    }
}
