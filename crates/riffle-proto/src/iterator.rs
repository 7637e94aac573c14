//! Stateless shard iterators.
//!
//! An iterator names a position in a shard and when it was issued; the server keeps nothing.
//! It is the standard base64 of a compact binary body followed by a 16-byte truncated
//! HMAC-SHA256 of that body under the node's key, so a client can neither forge a position nor
//! extend an iterator's life. Expiry ([`crate::limits::ITERATOR_LIFETIME_MS`]) is the caller's
//! check, with [`crate::KinesisError::iterator_expired`].
//!
//! Body, big-endian: version `u8` (2), stream creation ms `u64`, shard ordinal `u32`, log
//! index `u64`, slot `u16`, issue time ms `u64`, nonce `u32`, stream-name length `u8`, stream
//! name (UTF-8). The nonce makes every iterator the server issues differ from every other, as
//! AWS's do, even two for the same position in the same millisecond. With a 128-character name
//! the whole iterator is 240 characters, well inside the 512 allowed.
//!
//! Version 1, written before nonces, is the same body without the nonce; it is still read (as
//! a token without a nonce), so iterators handed out before an upgrade keep working for their
//! five minutes.

use crate::error::KinesisError;
use crate::token::{open, seal, Reader, MAC_BYTES};

/// Format version in the first byte; bump it when the body changes.
const VERSION: u8 = 2;
/// The version before nonces.
const VERSION_WITHOUT_NONCE: u8 = 1;

/// Bytes of the body before the stream name.
const FIXED_BYTES: usize = 1 + 8 + 4 + 8 + 2 + 8 + 4 + 1;

/// Mixed into the MAC so a key shared with other token kinds cannot authenticate an iterator.
const MAC_CONTEXT: &[u8] = b"riffle shard iterator";

/// What a shard iterator carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IteratorToken {
    pub stream_name: String,
    /// Tells a re-created stream of the same name apart.
    pub stream_created_ms: u64,
    pub shard_ordinal: u32,
    /// The next record to read: log entry and slot within it.
    pub log_index: u64,
    pub sub: u16,
    pub issued_ms: u64,
    /// Distinguishes iterators issued for the same position in the same millisecond; `None`
    /// only for a version-1 iterator (and `encode` then writes version 1).
    pub nonce: Option<u32>,
}

/// An iterator as a client may send it: AWS and the AWS CLI also accept one wrapped in a single
/// pair of double quotes (`"AAAA…"`), as a script pasting JSON output passes it. Only one whole
/// pair is taken off; anything else is left for [`IteratorToken::decode`] to refuse.
pub fn unquoted(text: &str) -> &str {
    text.strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
        .unwrap_or(text)
}

impl IteratorToken {
    /// The iterator string. Panics on a stream name above 255 bytes, which validation makes
    /// impossible (names are at most 128 ASCII characters).
    pub fn encode(&self, key: &[u8; 32]) -> String {
        let name = self.stream_name.as_bytes();
        let name_len = u8::try_from(name.len()).expect("stream names are at most 128 bytes");
        let mut body = Vec::with_capacity(FIXED_BYTES + name.len() + MAC_BYTES);
        body.push(match self.nonce {
            Some(_) => VERSION,
            None => VERSION_WITHOUT_NONCE,
        });
        body.extend_from_slice(&self.stream_created_ms.to_be_bytes());
        body.extend_from_slice(&self.shard_ordinal.to_be_bytes());
        body.extend_from_slice(&self.log_index.to_be_bytes());
        body.extend_from_slice(&self.sub.to_be_bytes());
        body.extend_from_slice(&self.issued_ms.to_be_bytes());
        if let Some(nonce) = self.nonce {
            body.extend_from_slice(&nonce.to_be_bytes());
        }
        body.push(name_len);
        body.extend_from_slice(name);
        seal(MAC_CONTEXT, body, key)
    }

    /// Reads and authenticates an iterator. Anything that is not an untampered iterator made
    /// under `key` is InvalidArgumentException "Invalid ShardIterator.".
    pub fn decode(text: &str, key: &[u8; 32]) -> Result<IteratorToken, KinesisError> {
        let invalid = KinesisError::invalid_shard_iterator;
        let body = open(MAC_CONTEXT, text, key).ok_or_else(invalid)?;

        // Authenticated: the body was written by `encode`, but a different version or length
        // still gets the same answer rather than a panic.
        let mut reader = Reader(&body);
        let with_nonce = match reader.u8() {
            Some(VERSION) => true,
            Some(VERSION_WITHOUT_NONCE) => false,
            _ => return Err(invalid()),
        };
        let stream_created_ms = reader.u64().ok_or_else(invalid)?;
        let shard_ordinal = reader.u32().ok_or_else(invalid)?;
        let log_index = reader.u64().ok_or_else(invalid)?;
        let sub = reader.u16().ok_or_else(invalid)?;
        let issued_ms = reader.u64().ok_or_else(invalid)?;
        let nonce = match with_nonce {
            true => Some(reader.u32().ok_or_else(invalid)?),
            false => None,
        };
        let name_len = usize::from(reader.u8().ok_or_else(invalid)?);
        let name = reader.take(name_len).ok_or_else(invalid)?;
        if !reader.is_empty() {
            return Err(invalid());
        }
        let stream_name = std::str::from_utf8(name).map_err(|_| invalid())?.to_owned();
        Ok(IteratorToken {
            stream_name,
            stream_created_ms,
            shard_ordinal,
            log_index,
            sub,
            issued_ms,
            nonce,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::limits::SHARD_ITERATOR_LEN_MAX;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    const KEY: [u8; 32] = [7; 32];

    fn token(name: &str) -> IteratorToken {
        IteratorToken {
            stream_name: name.to_owned(),
            stream_created_ms: 1_700_000_000_123,
            shard_ordinal: 42,
            log_index: 9_876_543_210,
            sub: 65_535,
            issued_ms: 1_700_000_100_456,
            nonce: Some(0xdead_beef),
        }
    }

    fn assert_invalid(result: Result<IteratorToken, KinesisError>) {
        let error = result.unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidArgumentException);
        assert_eq!(error.message.as_deref(), Some("Invalid ShardIterator."));
    }

    #[test]
    fn round_trips() {
        for name in ["s", "my.stream-1_x", &"n".repeat(128)] {
            let original = token(name);
            let text = original.encode(&KEY);
            assert_eq!(IteratorToken::decode(&text, &KEY).unwrap(), original);
        }
    }

    #[test]
    fn the_nonce_tells_iterators_for_one_position_apart() {
        let first = token("stream");
        let second = IteratorToken {
            nonce: Some(1),
            ..first.clone()
        };
        assert_ne!(first.encode(&KEY), second.encode(&KEY));
        assert_eq!(
            IteratorToken::decode(&second.encode(&KEY), &KEY).unwrap(),
            second
        );
    }

    #[test]
    fn version_1_iterators_without_a_nonce_still_decode() {
        // Written as riffle wrote them before nonces: the body without the nonce field.
        let old = IteratorToken {
            nonce: None,
            ..token("stream")
        };
        let mut body = vec![1u8];
        body.extend_from_slice(&old.stream_created_ms.to_be_bytes());
        body.extend_from_slice(&old.shard_ordinal.to_be_bytes());
        body.extend_from_slice(&old.log_index.to_be_bytes());
        body.extend_from_slice(&old.sub.to_be_bytes());
        body.extend_from_slice(&old.issued_ms.to_be_bytes());
        body.push(6);
        body.extend_from_slice(b"stream");
        let text = seal(MAC_CONTEXT, body, &KEY);
        assert_eq!(IteratorToken::decode(&text, &KEY).unwrap(), old);
        assert_eq!(old.encode(&KEY), text, "one spelling per token");
    }

    #[test]
    fn one_pair_of_quotes_comes_off() {
        assert_eq!(unquoted("\"AAAA\""), "AAAA");
        assert_eq!(unquoted("AAAA"), "AAAA");
        assert_eq!(unquoted("\"\"AAAA\"\""), "\"AAAA\"");
        assert_eq!(unquoted("\"AAAA"), "\"AAAA");
        assert_eq!(unquoted("AAAA\""), "AAAA\"");
        assert_eq!(unquoted("\""), "\"");
        assert_eq!(unquoted("\"\""), "");
    }

    #[test]
    fn stays_within_the_model_length_for_the_longest_names() {
        let text = token(&"n".repeat(128)).encode(&KEY);
        assert_eq!(text.len(), 240);
        assert!(text.len() <= SHARD_ITERATOR_LEN_MAX);
        // Standard padded base64, as AWS iterators are.
        assert_eq!(STANDARD.encode(STANDARD.decode(&text).unwrap()), text);
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let raw = STANDARD.decode(token("stream").encode(&KEY)).unwrap();
        for byte in 0..raw.len() {
            for bit in 0..8 {
                let mut tampered = raw.clone();
                tampered[byte] ^= 1 << bit;
                assert_invalid(IteratorToken::decode(&STANDARD.encode(&tampered), &KEY));
            }
        }
    }

    #[test]
    fn another_key_is_rejected() {
        let text = token("stream").encode(&KEY);
        assert_invalid(IteratorToken::decode(&text, &[8; 32]));
    }

    #[test]
    fn garbage_is_rejected() {
        assert_invalid(IteratorToken::decode("", &KEY));
        assert_invalid(IteratorToken::decode("not base64!", &KEY));
        assert_invalid(IteratorToken::decode("AAAA", &KEY));
        assert_invalid(IteratorToken::decode(&STANDARD.encode([0u8; 48]), &KEY));
        let text = token("stream").encode(&KEY);
        assert_invalid(IteratorToken::decode(&text[..text.len() - 4], &KEY));
        assert_invalid(IteratorToken::decode(&format!("{text}AAAA"), &KEY));
    }

    #[test]
    fn a_valid_mac_over_a_wrong_layout_is_still_invalid() {
        // Bodies the MAC authenticates but `encode` never writes: another version, and a name
        // length that disagrees with the body.
        let sign = |body: &[u8]| seal(MAC_CONTEXT, body.to_vec(), &KEY);
        let good = STANDARD.decode(token("abc").encode(&KEY)).unwrap();
        let body = &good[..good.len() - MAC_BYTES];
        let mut other_version = body.to_vec();
        other_version[0] = 3;
        assert_invalid(IteratorToken::decode(&sign(&other_version), &KEY));
        let mut nonce_read_as_name = body.to_vec();
        nonce_read_as_name[0] = 1;
        assert_invalid(IteratorToken::decode(&sign(&nonce_read_as_name), &KEY));
        let mut long_name = body.to_vec();
        long_name[FIXED_BYTES - 1] = 4;
        assert_invalid(IteratorToken::decode(&sign(&long_name), &KEY));
        let mut short_name = body.to_vec();
        short_name[FIXED_BYTES - 1] = 2;
        assert_invalid(IteratorToken::decode(&sign(&short_name), &KEY));
        // And the untouched body, signed the same way, is accepted: the helper is faithful.
        assert_eq!(
            IteratorToken::decode(&sign(body), &KEY).unwrap(),
            token("abc")
        );
    }
}
