//! The fuzz targets of riffle, one function per decoder, each taking arbitrary bytes.
//!
//! Every decoder that reads bytes from outside the process (requests in JSON and CBOR,
//! event-stream frames, shard iterators, sequence numbers) or from the disk (log frames, the
//! records inside them, the recovery scan of a segment file) has a target here. A target must
//! never panic, hang or allocate beyond its input's size; where a decoder has an encoder, the
//! target also checks that what decodes re-encodes to the same bytes, so a decoder that
//! accepts too much shows up too.
//!
//! The functions are plain code, so two drivers share them: `fuzz/` (cargo-fuzz with
//! libFuzzer, coverage-guided, for long runs; see `scripts/fuzz`) and this crate's own test
//! (`tests/smoke.rs`), which feeds each target seeds and a few thousand mutations of them on
//! every `cargo test`, so the targets cannot rot.

use bytes::Bytes;
use riffle_log::frame::{
    decode_frame, decode_header_unchecked, encode_frame, frame_bytes_from_prefix,
};
use riffle_log::{Log, LogError, LogOptions};
use riffle_proto::eventstream::{self, HeaderValue};
use riffle_proto::iterator::IteratorToken;
use riffle_proto::ops::OPERATIONS;
use riffle_proto::seqno::SeqNo;
use riffle_proto::WireFormat;

/// A fuzz target: takes any bytes, panics only on a broken property.
pub type Target = fn(&[u8]);

/// Every target by name, for the smoke test and for scripts.
pub const TARGETS: &[(&str, Target)] = &[
    ("json_request", json_request),
    ("cbor_request", cbor_request),
    ("event_stream", event_stream),
    ("shard_iterator", shard_iterator),
    ("sequence_number", sequence_number),
    ("log_frame", log_frame),
    ("stored_records", stored_records),
    ("recovery_scan", recovery_scan),
];

/// The first byte picks the operation, the rest is its body.
fn operation_and_body(data: &[u8]) -> Option<(&'static str, &[u8])> {
    let (&selector, body) = data.split_first()?;
    Some((OPERATIONS[usize::from(selector) % OPERATIONS.len()], body))
}

/// A JSON 1.1 request body for any operation: decoded and validated, or refused with an AWS
/// error; never a panic.
pub fn json_request(data: &[u8]) {
    if let Some((operation, body)) = operation_and_body(data) {
        let _ = riffle_proto::decode_request_in(WireFormat::Json, operation, body);
    }
}

/// A CBOR 1.1 request body for any operation, as [`json_request`].
pub fn cbor_request(data: &[u8]) {
    if let Some((operation, body)) = operation_and_body(data) {
        let _ = riffle_proto::decode_request_in(WireFormat::Cbor, operation, body);
    }
}

/// A stream of event-stream messages: each one that decodes took between 13 and all of the
/// remaining bytes, and, when its headers are all strings, re-encodes to exactly those bytes.
pub fn event_stream(data: &[u8]) {
    let mut rest = data;
    while let Ok((message, used)) = eventstream::decode(rest) {
        assert!(
            used > 12 && used <= rest.len(),
            "used {used} of {}",
            rest.len()
        );
        let strings: Option<Vec<(&str, &str)>> = message
            .headers
            .iter()
            .map(|(name, value)| match value {
                HeaderValue::String(text) => Some((name.as_str(), text.as_str())),
                _ => None,
            })
            .collect();
        if let Some(headers) = strings {
            assert_eq!(
                eventstream::encode(&headers, &message.payload),
                &rest[..used],
                "a decoded message re-encodes differently"
            );
        }
        rest = &rest[used..];
    }
}

const ITERATOR_KEY: [u8; 32] = [7; 32];

/// Only `encode`'s exact output is accepted: arbitrary text that decodes re-encodes to itself
/// (no second spelling of an iterator, no trailing bytes); a token built from the bytes
/// round-trips, and any one-character change to it is refused.
///
/// Arbitrary text *can* decode here: a coverage-guided fuzzer sees the operands of the MAC
/// comparison through its instrumentation and copies the expected tag for this fixed test key
/// into its input (libFuzzer did within ten minutes). A client sees neither the key nor the
/// comparison, which is constant-time, so that is no forgery; what must hold is canonicity.
pub fn shard_iterator(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(token) = IteratorToken::decode(&text, &ITERATOR_KEY) {
        assert_eq!(
            token.encode(&ITERATOR_KEY),
            text,
            "an iterator was accepted in a form encode does not produce"
        );
    }

    let mut fields = Fields(data);
    let name_len = fields.byte() % 129;
    let token = IteratorToken {
        stream_name: String::from_utf8_lossy(fields.take(name_len))
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect(),
        stream_created_ms: fields.u64(),
        shard_ordinal: fields.u64() as u32,
        log_index: fields.u64(),
        sub: fields.u64() as u16,
        issued_ms: fields.u64(),
        // Mostly current (version 2) iterators; some of the version 1 still read.
        nonce: (fields.byte() % 8 != 0).then(|| fields.u64() as u32),
    };
    let encoded = token.encode(&ITERATOR_KEY);
    assert_eq!(
        IteratorToken::decode(&encoded, &ITERATOR_KEY).ok(),
        Some(token)
    );
    if !encoded.is_empty() {
        let at = usize::from(fields.byte()) % encoded.len();
        let mut tampered: Vec<char> = encoded.chars().collect();
        tampered[at] = if tampered[at] == 'A' { 'B' } else { 'A' };
        let tampered: String = tampered.into_iter().collect();
        if tampered != encoded {
            assert!(
                IteratorToken::decode(&tampered, &ITERATOR_KEY).is_err(),
                "a tampered iterator was accepted"
            );
        }
    }
}

/// A sequence number that decodes re-encodes to a number that decodes to the same fields.
pub fn sequence_number(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Some(number) = SeqNo::decode(&text) {
        let encoded = number.encode();
        assert_eq!(
            SeqNo::decode(&encoded),
            Some(number),
            "{text:?} -> {encoded}"
        );
    }
}

/// A log frame: the length prefix, the unchecked header and the checked frame never panic,
/// and a frame that verifies re-encodes to exactly its bytes.
pub fn log_frame(data: &[u8]) {
    let _ = frame_bytes_from_prefix(data);
    let _ = decode_header_unchecked(data);
    if let Ok(header) = decode_frame(data) {
        assert!(header.frame_bytes <= data.len());
        let payload = &data[riffle_log::FRAME_HEADER_BYTES..header.frame_bytes];
        let mut out = Vec::new();
        encode_frame(&mut out, header.index, &header.meta, payload)
            .expect("a frame that decoded fits the limits");
        assert_eq!(&out[..], &data[..header.frame_bytes]);
    }
}

/// The records inside a data frame's payload (what a damaged or hostile frame would hold if
/// its checksum matched): decoded or refused, never a panic.
pub fn stored_records(data: &[u8]) {
    let Some((&count, payload)) = data.split_first() else {
        return;
    };
    let payload = Bytes::copy_from_slice(payload);
    if let Ok(records) = riffle_core::record::decode_all(&payload, 1_000, u16::from(count)) {
        let bytes: usize = records
            .iter()
            .map(|r| r.partition_key.len() + r.data.len())
            .sum();
        assert!(bytes <= payload.len());
    }
}

/// The recovery scan: the bytes as the only segment of a log, opened. It either opens (and
/// then every entry it kept reads back) or refuses with an error; it never panics.
pub fn recovery_scan(data: &[u8]) {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(dir.path().join(format!("{:020}.log", 1)), data).expect("write the segment");
    let options = LogOptions {
        segment_bytes_max: 1 << 20,
        index_interval_bytes: 512,
    };
    match Log::open(dir.path(), options) {
        Ok((log, report)) => {
            let entries = log
                .reader()
                .read(0, u64::MAX, usize::MAX, usize::MAX)
                .expect("a log that opened reads back");
            assert_eq!(entries.len() as u64, report.entries);
        }
        Err(
            LogError::Corrupt { .. }
            | LogError::Missing { .. }
            | LogError::Io(_)
            | LogError::InvalidArgument(_),
        ) => {}
        Err(LogError::Poisoned) => panic!("a fresh log cannot be poisoned"),
    }
}

/// Fields taken from the front of the input, zero once it runs out.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, len: u8) -> &'a [u8] {
        let len = usize::from(len).min(self.0.len());
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        taken
    }

    fn byte(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    fn u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        let taken = self.take(8);
        bytes[..taken.len()].copy_from_slice(taken);
        u64::from_be_bytes(bytes)
    }
}
