//! Authenticated opaque tokens: the sealing shared by shard iterators and the `NextToken`s of
//! ListShards and ListStreams.
//!
//! A sealed token is the standard base64 of a body followed by a 16-byte truncated
//! HMAC-SHA256 of (context, body) under the node's 32-byte key. The context string differs per
//! token kind, so one kind can never be passed off as another even under the same key.
//!
//! Page tokens carry a position to continue after (an opaque string chosen by the caller), the
//! creation time of the stream they page (so a token outlives neither a delete nor a
//! re-create), and their issue time, which the caller checks against
//! [`crate::limits::NEXT_TOKEN_LIFETIME_MS`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::KinesisError;

/// Bytes of the truncated MAC at the end of every sealed token.
pub(crate) const MAC_BYTES: usize = 16;

type HmacSha256 = Hmac<Sha256>;

fn mac(context: &[u8], body: &[u8], key: &[u8; 32]) -> HmacSha256 {
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; only fixed-size MACs can refuse one.
        Err(_) => unreachable!("HMAC-SHA256 accepts a 32-byte key"),
    };
    mac.update(context);
    mac.update(body);
    mac
}

/// Appends the MAC of `body` and base64-encodes the whole.
pub(crate) fn seal(context: &[u8], mut body: Vec<u8>, key: &[u8; 32]) -> String {
    let tag = mac(context, &body, key).finalize().into_bytes();
    body.extend_from_slice(&tag[..MAC_BYTES]);
    STANDARD.encode(body)
}

/// The body of a token sealed under `context` and `key`, or `None` if the text is not one.
pub(crate) fn open(context: &[u8], text: &str, key: &[u8; 32]) -> Option<Vec<u8>> {
    let mut raw = STANDARD.decode(text).ok()?;
    let body_len = raw.len().checked_sub(MAC_BYTES)?;
    mac(context, &raw[..body_len], key)
        .verify_truncated_left(&raw[body_len..])
        .ok()?;
    raw.truncate(body_len);
    Some(raw)
}

/// Reads big-endian fields off the front of a slice.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        if self.0.len() < count {
            return None;
        }
        let (head, rest) = self.0.split_at(count);
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[byte]| byte)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

const PAGE_CONTEXT: &[u8] = b"riffle page token";
const PAGE_VERSION: u8 = 1;

/// The error for a `NextToken` that riffle did not issue or that was altered.
pub fn invalid_next_token() -> KinesisError {
    KinesisError::invalid_argument("Invalid NextToken.")
}

/// A `NextToken` that continues after `position` in the listing of the stream created at
/// `stream_created_ms` (0 for listings not tied to a stream), issued at `issued_ms`.
///
/// Panics if `position` exceeds 65,535 bytes; callers pass a name and a shard number.
pub fn encode_page_token(
    position: &str,
    stream_created_ms: u64,
    issued_ms: u64,
    key: &[u8; 32],
) -> String {
    let position_len = u16::try_from(position.len()).expect("page positions are short");
    let mut body = Vec::with_capacity(1 + 8 + 8 + 2 + position.len() + MAC_BYTES);
    body.push(PAGE_VERSION);
    body.extend_from_slice(&stream_created_ms.to_be_bytes());
    body.extend_from_slice(&issued_ms.to_be_bytes());
    body.extend_from_slice(&position_len.to_be_bytes());
    body.extend_from_slice(position.as_bytes());
    seal(PAGE_CONTEXT, body, key)
}

/// Reads a `NextToken`: `(position, stream_created_ms, issued_ms)`. Anything riffle did not
/// issue under `key`, or that was altered, is InvalidArgumentException "Invalid NextToken.".
pub fn decode_page_token(token: &str, key: &[u8; 32]) -> Result<(String, u64, u64), KinesisError> {
    let body = open(PAGE_CONTEXT, token, key).ok_or_else(invalid_next_token)?;
    let mut reader = Reader(&body);
    if reader.u8() != Some(PAGE_VERSION) {
        return Err(invalid_next_token());
    }
    let stream_created_ms = reader.u64().ok_or_else(invalid_next_token)?;
    let issued_ms = reader.u64().ok_or_else(invalid_next_token)?;
    let position_len = usize::from(reader.u16().ok_or_else(invalid_next_token)?);
    let position = reader.take(position_len).ok_or_else(invalid_next_token)?;
    if !reader.is_empty() {
        return Err(invalid_next_token());
    }
    let position = std::str::from_utf8(position).map_err(|_| invalid_next_token())?;
    Ok((position.to_owned(), stream_created_ms, issued_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const KEY: [u8; 32] = [3; 32];

    fn assert_invalid(result: Result<(String, u64, u64), KinesisError>) {
        let error = result.unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidArgumentException);
        assert_eq!(error.message.as_deref(), Some("Invalid NextToken."));
    }

    #[test]
    fn page_tokens_round_trip() {
        for position in ["", "stream-1", "stream\n42", "é"] {
            let token = encode_page_token(position, 1_700_000_000_000, 1_700_000_123_456, &KEY);
            assert_eq!(
                decode_page_token(&token, &KEY).unwrap(),
                (position.to_owned(), 1_700_000_000_000, 1_700_000_123_456)
            );
        }
    }

    #[test]
    fn tampering_and_foreign_keys_are_detected() {
        let token = encode_page_token("stream\n3", 5, 6, &KEY);
        let raw = STANDARD.decode(&token).unwrap();
        for byte in 0..raw.len() {
            let mut tampered = raw.clone();
            tampered[byte] ^= 0x40;
            assert_invalid(decode_page_token(&STANDARD.encode(&tampered), &KEY));
        }
        assert_invalid(decode_page_token(&token, &[4; 32]));
        assert_invalid(decode_page_token("", &KEY));
        assert_invalid(decode_page_token("%%%", &KEY));
        assert_invalid(decode_page_token(&STANDARD.encode([0u8; 10]), &KEY));
    }

    #[test]
    fn contexts_separate_token_kinds() {
        let sealed = seal(b"one kind", b"body".to_vec(), &KEY);
        assert_eq!(
            open(b"one kind", &sealed, &KEY).as_deref(),
            Some(&b"body"[..])
        );
        assert_eq!(open(b"another kind", &sealed, &KEY), None);
        // A shard iterator is not a page token.
        let iterator = crate::iterator::IteratorToken {
            stream_name: "s".to_owned(),
            stream_created_ms: 1,
            shard_ordinal: 2,
            log_index: 3,
            sub: 4,
            issued_ms: 5,
            nonce: Some(6),
        }
        .encode(&KEY);
        assert_invalid(decode_page_token(&iterator, &KEY));
    }

    #[test]
    fn sealed_layouts_riffle_never_writes_are_invalid() {
        let mut body = vec![PAGE_VERSION];
        body.extend_from_slice(&[0; 16]);
        body.extend_from_slice(&5u16.to_be_bytes());
        body.extend_from_slice(b"abc");
        assert_invalid(decode_page_token(&seal(PAGE_CONTEXT, body, &KEY), &KEY));
        let mut body = vec![2];
        body.extend_from_slice(&[0; 18]);
        assert_invalid(decode_page_token(&seal(PAGE_CONTEXT, body, &KEY), &KEY));
        let mut body = vec![PAGE_VERSION];
        body.extend_from_slice(&[0; 16]);
        body.extend_from_slice(&2u16.to_be_bytes());
        body.extend_from_slice(&[0xff, 0xfe]);
        assert_invalid(decode_page_token(&seal(PAGE_CONTEXT, body, &KEY), &KEY));
    }
}
