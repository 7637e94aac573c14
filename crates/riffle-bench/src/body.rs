//! Request bodies, encoded once and patched in place.
//!
//! A put request is rendered into a template at start-up: stream name, base64 payloads and
//! partition keys are laid out once, and only the bytes that must change per request are
//! rewritten (random partition keys, and for the latency workload a send timestamp at the start
//! of each payload). The generator therefore spends its time waiting on the server, not
//! formatting JSON or base64-encoding megabytes per second.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::{Bytes, BytesMut};

/// Length of a generated random partition key (hex digits of a 64-bit random number).
pub const RANDOM_KEY_LEN: usize = 16;

/// Bytes of payload that carry a send timestamp: 8 bytes of nanoseconds plus a marker byte, so
/// that the stamp is exactly 12 base64 characters and never shares a base64 group with the
/// filler after it.
pub const STAMP_BYTES: usize = 9;
const STAMP_BASE64_LEN: usize = 12;
/// Marks a payload as written by this benchmark, so a poller ignores foreign records.
const STAMP_MARKER: u8 = 0xB7;

/// A tiny xorshift64 generator: random enough for keys and filler bytes, and costs nothing.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // xorshift's only fixed point is zero; any other seed walks the full period.
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// How partition keys are chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMode {
    /// A fresh random key per record (spreads records over all shards).
    Random,
    /// The same key for every record (one shard takes everything).
    Fixed(String),
}

/// A pre-encoded PutRecord (one record) or PutRecords (several) body.
#[derive(Debug, Clone)]
pub struct PutTemplate {
    body: Bytes,
    /// Offset of each record's partition key inside `body`, when keys are random.
    key_offsets: Vec<usize>,
    /// Offset of each record's base64 `Data` inside `body`.
    data_offsets: Vec<usize>,
    records: usize,
    put_records: bool,
    record_bytes: usize,
    payload_bytes: u64,
}

impl PutTemplate {
    /// Lays out a body for `records` records of `record_bytes` payload each: a PutRecords
    /// request if `put_records`, else a PutRecord request (one record). `stream` must already
    /// be a valid stream name (no characters that JSON would escape).
    pub fn new(
        stream: &str,
        records: usize,
        put_records: bool,
        record_bytes: usize,
        keys: &KeyMode,
        rng: &mut XorShift,
    ) -> Self {
        assert!(records >= 1, "a put carries at least one record");
        assert!(put_records || records == 1, "PutRecord carries one record");
        assert!(
            stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)),
            "stream names are validated before templates are built"
        );
        let fixed_key_json = match keys {
            KeyMode::Fixed(key) => Some(json_string(key)),
            KeyMode::Random => None,
        };
        let mut body = Vec::with_capacity(64 + records * (record_bytes * 4 / 3 + 64));
        let mut key_offsets = Vec::new();
        let mut data_offsets = Vec::with_capacity(records);
        let mut payload = vec![0u8; record_bytes];
        body.extend_from_slice(b"{\"StreamName\":\"");
        body.extend_from_slice(stream.as_bytes());
        body.extend_from_slice(b"\",");
        if put_records {
            body.extend_from_slice(b"\"Records\":[");
        }
        for index in 0..records {
            if put_records {
                if index > 0 {
                    body.push(b',');
                }
                body.push(b'{');
            }
            rng.fill(&mut payload);
            body.extend_from_slice(b"\"Data\":\"");
            data_offsets.push(body.len());
            body.extend_from_slice(BASE64.encode(&payload).as_bytes());
            body.extend_from_slice(b"\",\"PartitionKey\":");
            match &fixed_key_json {
                Some(key_json) => body.extend_from_slice(key_json.as_bytes()),
                None => {
                    body.push(b'"');
                    key_offsets.push(body.len());
                    body.extend_from_slice(&random_key(rng));
                    body.push(b'"');
                }
            }
            if put_records {
                body.push(b'}');
            }
        }
        if put_records {
            body.push(b']');
        }
        body.push(b'}');
        Self {
            body: Bytes::from(body),
            key_offsets,
            data_offsets,
            records,
            put_records,
            record_bytes,
            payload_bytes: (records * record_bytes) as u64,
        }
    }

    pub fn records(&self) -> usize {
        self.records
    }

    pub fn is_put_records(&self) -> bool {
        self.put_records
    }

    /// Payload (`Data`) bytes of all records of one request, as stored by the server.
    pub fn payload_bytes(&self) -> u64 {
        self.payload_bytes
    }

    /// Whether the body changes per request (random keys), i.e. `render` copies.
    pub fn needs_patching(&self) -> bool {
        !self.key_offsets.is_empty()
    }

    /// The next request body. Fixed keys and no stamp: a reference-counted clone of the
    /// template, no copy. Otherwise the template is copied into `scratch` (whose allocation is
    /// reclaimed once the previous body has been sent and dropped) and patched.
    pub fn render(
        &self,
        scratch: &mut BytesMut,
        rng: &mut XorShift,
        stamp_ns: Option<u64>,
    ) -> Bytes {
        if !self.needs_patching() && stamp_ns.is_none() {
            return self.body.clone();
        }
        scratch.clear();
        scratch.reserve(self.body.len());
        scratch.extend_from_slice(&self.body);
        for &offset in &self.key_offsets {
            scratch[offset..offset + RANDOM_KEY_LEN].copy_from_slice(&random_key(rng));
        }
        if let Some(stamp_ns) = stamp_ns {
            assert!(
                self.record_bytes >= STAMP_BYTES,
                "stamped workloads validate the record size"
            );
            let stamp = encode_stamp(stamp_ns);
            for &offset in &self.data_offsets {
                scratch[offset..offset + STAMP_BASE64_LEN].copy_from_slice(&stamp);
            }
        }
        scratch.split().freeze()
    }
}

fn random_key(rng: &mut XorShift) -> [u8; RANDOM_KEY_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut value = rng.next_u64();
    let mut key = [0u8; RANDOM_KEY_LEN];
    for digit in &mut key {
        *digit = HEX[(value & 0xF) as usize];
        value >>= 4;
    }
    key
}

/// The base64 text of a timestamp payload prefix.
fn encode_stamp(stamp_ns: u64) -> [u8; STAMP_BASE64_LEN] {
    let mut raw = [0u8; STAMP_BYTES];
    raw[..8].copy_from_slice(&stamp_ns.to_be_bytes());
    raw[8] = STAMP_MARKER;
    let mut out = [0u8; STAMP_BASE64_LEN];
    let written = BASE64
        .encode_slice(raw, &mut out)
        .unwrap_or_else(|_| unreachable!("9 bytes are exactly 12 base64 characters"));
    assert_eq!(written, STAMP_BASE64_LEN);
    out
}

/// The send timestamp at the start of a base64 payload written by `render`, or `None` for a
/// payload this benchmark did not stamp.
pub fn decode_stamp(data_base64: &str) -> Option<u64> {
    let prefix = data_base64.as_bytes().get(..STAMP_BASE64_LEN)?;
    let mut raw = [0u8; STAMP_BYTES];
    let decoded = BASE64.decode_slice(prefix, &mut raw).ok()?;
    if decoded != STAMP_BYTES || raw[8] != STAMP_MARKER {
        return None;
    }
    let mut stamp = [0u8; 8];
    stamp.copy_from_slice(&raw[..8]);
    Some(u64::from_be_bytes(stamp))
}

/// Decoded length of padded base64 text, without decoding it.
pub fn base64_decoded_len(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let padding = bytes.iter().rev().take(2).filter(|&&b| b == b'=').count();
    ((bytes.len() / 4 * 3).saturating_sub(padding)) as u64
}

/// `text` as a JSON string literal, quotes included.
pub fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parse(body: &Bytes) -> Value {
        serde_json::from_slice(body).expect("template renders valid JSON")
    }

    #[test]
    fn single_record_is_a_put_record_body() {
        let mut rng = XorShift::new(7);
        let template = PutTemplate::new(
            "orders",
            1,
            false,
            100,
            &KeyMode::Fixed("k\"1".into()),
            &mut rng,
        );
        let body = template.render(&mut BytesMut::new(), &mut rng, None);
        let json = parse(&body);
        assert_eq!(json["StreamName"], "orders");
        assert_eq!(json["PartitionKey"], "k\"1");
        let data = BASE64.decode(json["Data"].as_str().unwrap()).unwrap();
        assert_eq!(data.len(), 100);
        assert!(json.get("Records").is_none());
        assert_eq!(template.payload_bytes(), 100);
        assert!(!template.needs_patching());
    }

    #[test]
    fn batch_is_a_put_records_body_with_every_record() {
        let mut rng = XorShift::new(7);
        let template = PutTemplate::new("s", 500, true, 1024, &KeyMode::Random, &mut rng);
        let body = template.render(&mut BytesMut::new(), &mut rng, None);
        let json = parse(&body);
        let records = json["Records"].as_array().unwrap();
        assert_eq!(records.len(), 500);
        for record in records {
            let data = BASE64.decode(record["Data"].as_str().unwrap()).unwrap();
            assert_eq!(data.len(), 1024);
            let key = record["PartitionKey"].as_str().unwrap();
            assert_eq!(key.len(), RANDOM_KEY_LEN);
        }
        assert_eq!(template.records(), 500);
        assert_eq!(template.payload_bytes(), 500 * 1024);
    }

    #[test]
    fn random_keys_change_between_requests_and_fixed_bodies_are_shared() {
        let mut rng = XorShift::new(42);
        let template = PutTemplate::new("s", 3, true, 10, &KeyMode::Random, &mut rng);
        let mut scratch = BytesMut::new();
        let first = parse(&template.render(&mut scratch, &mut rng, None));
        let second = parse(&template.render(&mut scratch, &mut rng, None));
        assert_ne!(
            first["Records"][0]["PartitionKey"],
            second["Records"][0]["PartitionKey"]
        );
        // The payload itself is laid out once and stays put.
        assert_eq!(first["Records"][1]["Data"], second["Records"][1]["Data"]);

        let fixed = PutTemplate::new("s", 1, false, 10, &KeyMode::Fixed("a".into()), &mut rng);
        let one = fixed.render(&mut scratch, &mut rng, None);
        let two = fixed.render(&mut scratch, &mut rng, None);
        assert_eq!(one.as_ptr(), two.as_ptr(), "fixed bodies are not copied");
    }

    #[test]
    fn stamps_round_trip_through_the_payload() {
        let mut rng = XorShift::new(1);
        let template = PutTemplate::new("s", 2, true, STAMP_BYTES + 5, &KeyMode::Random, &mut rng);
        let body = template.render(&mut BytesMut::new(), &mut rng, Some(123_456_789_012));
        let json = parse(&body);
        for record in json["Records"].as_array().unwrap() {
            let data = record["Data"].as_str().unwrap();
            assert_eq!(decode_stamp(data), Some(123_456_789_012));
            assert_eq!(BASE64.decode(data).unwrap().len(), STAMP_BYTES + 5);
        }
        // Random filler is not mistaken for a stamp.
        let unstamped = template.render(&mut BytesMut::new(), &mut rng, None);
        let json = parse(&unstamped);
        let data = json["Records"][0]["Data"].as_str().unwrap();
        let raw = BASE64.decode(data).unwrap();
        assert_eq!(decode_stamp(data).is_some(), raw[8] == STAMP_MARKER);
        assert_eq!(decode_stamp("AAAA"), None);
    }

    #[test]
    fn decoded_length_matches_decoding() {
        for len in 0..40 {
            let text = BASE64.encode(vec![0xA5u8; len]);
            assert_eq!(base64_decoded_len(&text), len as u64, "{text}");
        }
    }

    #[test]
    fn xorshift_never_sticks_at_zero_and_fills_odd_lengths() {
        let mut rng = XorShift::new(0);
        assert_ne!(rng.next_u64(), 0);
        let mut buf = [0u8; 13];
        rng.fill(&mut buf);
        assert!(buf.iter().any(|&b| b != 0));
    }
}
