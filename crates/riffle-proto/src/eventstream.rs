//! The `application/vnd.amazon.eventstream` framing that SubscribeToShard answers in.
//!
//! A response is a sequence of self-delimiting binary messages (big-endian):
//!
//! ```text
//! total_len u32 | headers_len u32 | prelude_crc u32 | headers | payload | message_crc u32
//! ```
//!
//! `prelude_crc` is the CRC-32 (IEEE, as zlib) of the first 8 bytes and `message_crc` the CRC-32
//! of everything before it. A header is `name_len u8 | name | type u8 | value`; riffle writes
//! only string headers (type 7: `u16` length and UTF-8), and the decoder, which exists for tests
//! and fuzzing, reads every type of the format. Limits follow botocore: headers at most 128 KiB,
//! payloads at most 24 MiB.
//!
//! Kinesis uses three kinds of message: events (`:message-type` `event`, `:event-type`
//! `initial-response` or `SubscribeToShardEvent`, `:content-type`), modeled exceptions
//! (`:message-type` `exception`, `:exception-type`), and unmodeled errors (`:message-type`
//! `error`, `:error-code`, `:error-message`).

/// The largest header block a message may carry (botocore's limit).
pub const HEADERS_BYTES_MAX: usize = 128 * 1024;
/// The largest payload a message may carry (botocore's limit).
pub const PAYLOAD_BYTES_MAX: usize = 24 * 1024 * 1024;
/// Prelude (total length, headers length, prelude CRC) plus the trailing message CRC.
pub const FRAMING_BYTES: usize = 16;

const HEADER_STRING: u8 = 7;

/// One message header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Bool(bool),
    Byte(i8),
    Short(i16),
    Integer(i32),
    Long(i64),
    Bytes(Vec<u8>),
    String(String),
    /// Milliseconds since the epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Vec<u8>,
}

impl Message {
    /// The value of the string header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(key, value)| match value {
            HeaderValue::String(text) if key == name => Some(text.as_str()),
            _ => None,
        })
    }
}

/// Why bytes are not a valid message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the message declares (more may arrive).
    Incomplete,
    PreludeChecksum,
    MessageChecksum,
    /// A length field is out of the format's bounds or inconsistent with the others.
    BadLength(&'static str),
    BadHeader(&'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Incomplete => write!(f, "incomplete event-stream message"),
            DecodeError::PreludeChecksum => write!(f, "event-stream prelude checksum mismatch"),
            DecodeError::MessageChecksum => write!(f, "event-stream message checksum mismatch"),
            DecodeError::BadLength(what) => write!(f, "bad event-stream length: {what}"),
            DecodeError::BadHeader(what) => write!(f, "bad event-stream header: {what}"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Encodes a message with string headers. Panics if a header name exceeds 255 bytes, a value
/// 65,535 bytes, or the headers or payload the format's limits: riffle only writes fixed
/// header names and bounded payloads.
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let headers_len: usize = headers
        .iter()
        .map(|(name, value)| 1 + name.len() + 1 + 2 + value.len())
        .sum();
    assert!(
        headers_len <= HEADERS_BYTES_MAX,
        "event-stream headers too large"
    );
    assert!(
        payload.len() <= PAYLOAD_BYTES_MAX,
        "event-stream payload too large"
    );
    let total = FRAMING_BYTES + headers_len + payload.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(headers_len as u32).to_be_bytes());
    let prelude_crc = crc32(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    for (name, value) in headers {
        let name_len = u8::try_from(name.len()).expect("header name fits a u8 length");
        let value_len = u16::try_from(value.len()).expect("header value fits a u16 length");
        out.push(name_len);
        out.extend_from_slice(name.as_bytes());
        out.push(HEADER_STRING);
        out.extend_from_slice(&value_len.to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(payload);
    let message_crc = crc32(&out);
    out.extend_from_slice(&message_crc.to_be_bytes());
    debug_assert_eq!(out.len(), total);
    out
}

/// An event message (`:message-type` `event`).
pub fn event(event_type: &str, content_type: &str, payload: &[u8]) -> Vec<u8> {
    encode(
        &[
            (":message-type", "event"),
            (":event-type", event_type),
            (":content-type", content_type),
        ],
        payload,
    )
}

/// A modeled exception message (`:message-type` `exception`), e.g. `ResourceInUseException`.
pub fn exception(exception_type: &str, content_type: &str, payload: &[u8]) -> Vec<u8> {
    encode(
        &[
            (":message-type", "exception"),
            (":exception-type", exception_type),
            (":content-type", content_type),
        ],
        payload,
    )
}

/// Decodes the first message of `bytes` and returns it with the number of bytes it took.
/// `Err(Incomplete)` means more bytes are needed; every other error means the stream is
/// broken. Never panics, and allocates no more than the input's size.
pub fn decode(bytes: &[u8]) -> Result<(Message, usize), DecodeError> {
    if bytes.len() < 12 {
        return Err(DecodeError::Incomplete);
    }
    let total = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let headers_len = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    let prelude_crc = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if crc32(&bytes[..8]) != prelude_crc {
        return Err(DecodeError::PreludeChecksum);
    }
    if headers_len > HEADERS_BYTES_MAX {
        return Err(DecodeError::BadLength("headers over 128 KiB"));
    }
    let payload_len = total
        .checked_sub(FRAMING_BYTES + headers_len)
        .ok_or(DecodeError::BadLength("total shorter than its parts"))?;
    if payload_len > PAYLOAD_BYTES_MAX {
        return Err(DecodeError::BadLength("payload over 24 MiB"));
    }
    if bytes.len() < total {
        return Err(DecodeError::Incomplete);
    }
    let message_crc = u32::from_be_bytes([
        bytes[total - 4],
        bytes[total - 3],
        bytes[total - 2],
        bytes[total - 1],
    ]);
    if crc32(&bytes[..total - 4]) != message_crc {
        return Err(DecodeError::MessageChecksum);
    }
    let headers = decode_headers(&bytes[12..12 + headers_len])?;
    let payload = bytes[12 + headers_len..total - 4].to_vec();
    Ok((Message { headers, payload }, total))
}

fn decode_headers(mut block: &[u8]) -> Result<Vec<(String, HeaderValue)>, DecodeError> {
    fn take<'a>(block: &mut &'a [u8], len: usize) -> Result<&'a [u8], DecodeError> {
        if block.len() < len {
            return Err(DecodeError::BadHeader("truncated"));
        }
        let (head, rest) = block.split_at(len);
        *block = rest;
        Ok(head)
    }
    fn fixed<const N: usize>(block: &mut &[u8]) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(take(block, N)?);
        Ok(out)
    }
    let mut headers = Vec::new();
    while !block.is_empty() {
        let name_len = usize::from(take(&mut block, 1)?[0]);
        if name_len == 0 {
            return Err(DecodeError::BadHeader("empty name"));
        }
        let name = std::str::from_utf8(take(&mut block, name_len)?)
            .map_err(|_| DecodeError::BadHeader("name is not UTF-8"))?
            .to_owned();
        let value = match take(&mut block, 1)?[0] {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(i8::from_be_bytes(fixed(&mut block)?)),
            3 => HeaderValue::Short(i16::from_be_bytes(fixed(&mut block)?)),
            4 => HeaderValue::Integer(i32::from_be_bytes(fixed(&mut block)?)),
            5 => HeaderValue::Long(i64::from_be_bytes(fixed(&mut block)?)),
            kind @ (6 | 7) => {
                let len = usize::from(u16::from_be_bytes(fixed(&mut block)?));
                let bytes = take(&mut block, len)?;
                if kind == 6 {
                    HeaderValue::Bytes(bytes.to_vec())
                } else {
                    HeaderValue::String(
                        std::str::from_utf8(bytes)
                            .map_err(|_| DecodeError::BadHeader("string is not UTF-8"))?
                            .to_owned(),
                    )
                }
            }
            8 => HeaderValue::Timestamp(i64::from_be_bytes(fixed(&mut block)?)),
            9 => HeaderValue::Uuid(fixed(&mut block)?),
            _ => return Err(DecodeError::BadHeader("unknown value type")),
        };
        headers.push((name, value));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A message built by hand from the format description, byte by byte.
    #[test]
    fn encoding_matches_the_format_byte_for_byte() {
        let message = encode(&[(":a", "bc")], b"{}");
        // headers: 1 + 2 + 1 + 2 + 2 = 8 bytes; total = 16 + 8 + 2 = 26.
        let mut expected = vec![0, 0, 0, 26, 0, 0, 0, 8];
        expected.extend_from_slice(&crc32fast::hash(&expected.clone()).to_be_bytes());
        expected.extend_from_slice(&[2, b':', b'a', 7, 0, 2, b'b', b'c', b'{', b'}']);
        let crc = crc32fast::hash(&expected);
        expected.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(message, expected);
    }

    /// The CRC-32 riffle uses is zlib's: the standard check value of "123456789".
    #[test]
    fn the_checksum_is_crc32_ieee() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn events_decode_back_with_their_headers() {
        let bytes = event(
            "SubscribeToShardEvent",
            "application/json",
            b"{\"Records\":[]}",
        );
        let (message, used) = decode(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(message.header(":message-type"), Some("event"));
        assert_eq!(message.header(":event-type"), Some("SubscribeToShardEvent"));
        assert_eq!(message.header(":content-type"), Some("application/json"));
        assert_eq!(message.payload, b"{\"Records\":[]}");
        let bytes = exception("ResourceInUseException", "application/json", b"{}");
        let (message, _) = decode(&bytes).unwrap();
        assert_eq!(message.header(":message-type"), Some("exception"));
        assert_eq!(
            message.header(":exception-type"),
            Some("ResourceInUseException")
        );
    }

    #[test]
    fn every_header_type_decodes() {
        let mut block = Vec::new();
        let mut push = |name: &str, kind: u8, value: &[u8]| {
            block.push(name.len() as u8);
            block.extend_from_slice(name.as_bytes());
            block.push(kind);
            block.extend_from_slice(value);
        };
        push("t", 0, &[]);
        push("f", 1, &[]);
        push("b", 2, &[0xff]);
        push("s", 3, &[0x01, 0x02]);
        push("i", 4, &[0, 0, 1, 0]);
        push("l", 5, &[0, 0, 0, 0, 0, 0, 0, 9]);
        push("y", 6, &[0, 2, 0xde, 0xad]);
        push("x", 7, &[0, 1, b'z']);
        push("m", 8, &[0, 0, 0, 0, 0, 0, 0x03, 0xe8]);
        push("u", 9, &[7; 16]);
        let headers = decode_headers(&block).unwrap();
        let values: Vec<HeaderValue> = headers.into_iter().map(|(_, value)| value).collect();
        assert_eq!(
            values,
            vec![
                HeaderValue::Bool(true),
                HeaderValue::Bool(false),
                HeaderValue::Byte(-1),
                HeaderValue::Short(0x0102),
                HeaderValue::Integer(256),
                HeaderValue::Long(9),
                HeaderValue::Bytes(vec![0xde, 0xad]),
                HeaderValue::String("z".into()),
                HeaderValue::Timestamp(1000),
                HeaderValue::Uuid([7; 16]),
            ]
        );
    }

    #[test]
    fn every_truncation_is_incomplete_and_every_flipped_bit_is_caught() {
        let bytes = event("SubscribeToShardEvent", "application/json", b"{\"a\":1}");
        for cut in 0..bytes.len() {
            assert_eq!(
                decode(&bytes[..cut]),
                Err(DecodeError::Incomplete),
                "cut {cut}"
            );
        }
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                decode(&damaged).is_err(),
                "bit {bit} flipped went unnoticed"
            );
        }
    }

    #[test]
    fn absurd_lengths_are_refused_without_allocating() {
        // A prelude declaring a 4 GiB message, with a valid prelude CRC.
        let mut bytes = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::BadLength("payload over 24 MiB"))
        );
        let mut bytes = vec![0, 0, 0, 16, 0xff, 0xff, 0xff, 0xff];
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::BadLength("headers over 128 KiB"))
        );
    }

    proptest! {
        /// Random bytes never panic the decoder.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }

        /// Random bytes behind a valid prelude (so the header parser is reached) never panic.
        #[test]
        fn random_headers_never_panic(block in proptest::collection::vec(any::<u8>(), 0..128)) {
            let total = FRAMING_BYTES + block.len();
            let mut bytes = Vec::new();
            bytes.extend_from_slice(&(total as u32).to_be_bytes());
            bytes.extend_from_slice(&(block.len() as u32).to_be_bytes());
            let crc = crc32fast::hash(&bytes);
            bytes.extend_from_slice(&crc.to_be_bytes());
            bytes.extend_from_slice(&block);
            let crc = crc32fast::hash(&bytes);
            bytes.extend_from_slice(&crc.to_be_bytes());
            let _ = decode(&bytes);
        }

        #[test]
        fn messages_round_trip(
            event_type in "[A-Za-z]{1,30}",
            payload in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let bytes = event(&event_type, "application/json", &payload);
            let (message, used) = decode(&bytes).unwrap();
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(message.header(":event-type"), Some(event_type.as_str()));
            prop_assert_eq!(message.payload, payload);
        }
    }
}
