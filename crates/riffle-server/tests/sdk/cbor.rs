//! CBOR end to end: every operation over raw HTTP/1.1 with `Content-Type:
//! application/x-amz-cbor-1.1`, bodies written the way the AWS Java SDK writes them (Jackson's
//! indefinite-length maps and arrays, long strings in chunks, blobs as byte strings, timestamps
//! as tag 1 + epoch milliseconds; kinesis-api.md §1.3), and the answers read by a small CBOR
//! reader written here, independent of the server's codec. No Rust Kinesis client speaks
//! CBOR, hence the hand-built requests.
//!
//! What must hold: every answer is CBOR with the CBOR content type — errors too, since
//! CBOR-configured Java clients cannot read JSON — with the JSON protocol's members; blobs come
//! back as byte strings and timestamps as tag 1 + integer milliseconds; void operations answer
//! 200 with an empty body.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use crate::common::*;
use crate::raw_http::{self, exchange, RawResponse};

const CBOR_CONTENT_TYPE: &str = "application/x-amz-cbor-1.1";
const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// How far a timestamp the server reports may sit outside the window the test measured.
const CLOCK_SLACK_MS: i64 = 2_000;

// ===== A CBOR data item, as this test writes and reads them =====

#[derive(Debug, Clone, PartialEq)]
enum Cbor {
    Unsigned(u64),
    /// -1 - n.
    Negative(u64),
    Bytes(Vec<u8>),
    Text(String),
    Array(Vec<Cbor>),
    Map(Vec<(Cbor, Cbor)>),
    Tag(u64, Box<Cbor>),
    Bool(bool),
    Null,
    Float(f64),
}

fn text(value: &str) -> Cbor {
    Cbor::Text(value.to_string())
}

fn bytes(value: &[u8]) -> Cbor {
    Cbor::Bytes(value.to_vec())
}

fn int(value: i64) -> Cbor {
    if value >= 0 {
        Cbor::Unsigned(value as u64)
    } else {
        Cbor::Negative(!value as u64)
    }
}

/// A timestamp as the Java SDK writes it: tag 1, then integer epoch milliseconds.
fn epoch_ms(value: i64) -> Cbor {
    Cbor::Tag(1, Box::new(int(value)))
}

fn map(members: &[(&str, Cbor)]) -> Cbor {
    Cbor::Map(
        members
            .iter()
            .map(|(key, value)| (text(key), value.clone()))
            .collect(),
    )
}

fn array(items: &[Cbor]) -> Cbor {
    Cbor::Array(items.to_vec())
}

fn write_head(out: &mut Vec<u8>, major: u8, argument: u64) {
    let major = major << 5;
    match argument {
        0..=23 => out.push(major | argument as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, argument as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&(argument as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&(argument as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&argument.to_be_bytes());
        }
    }
}

impl Cbor {
    /// Encodes as Jackson's CBORGenerator does for the SDK: maps and arrays of indefinite
    /// length, text longer than 23 bytes as an indefinite string of chunks.
    fn java(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_java(&mut out);
        out
    }

    fn write_java(&self, out: &mut Vec<u8>) {
        match self {
            Cbor::Unsigned(value) => write_head(out, 0, *value),
            Cbor::Negative(value) => write_head(out, 1, *value),
            Cbor::Bytes(value) => {
                write_head(out, 2, value.len() as u64);
                out.extend_from_slice(value);
            }
            Cbor::Text(value) if value.len() > 23 => {
                out.push(0x7f);
                let split = (1..=value.len() / 2)
                    .rev()
                    .find(|at| value.is_char_boundary(*at))
                    .unwrap_or(0);
                for chunk in [&value[..split], &value[split..]] {
                    write_head(out, 3, chunk.len() as u64);
                    out.extend_from_slice(chunk.as_bytes());
                }
                out.push(0xff);
            }
            Cbor::Text(value) => {
                write_head(out, 3, value.len() as u64);
                out.extend_from_slice(value.as_bytes());
            }
            Cbor::Array(items) => {
                out.push(0x9f);
                for item in items {
                    item.write_java(out);
                }
                out.push(0xff);
            }
            Cbor::Map(members) => {
                out.push(0xbf);
                for (key, value) in members {
                    key.write_java(out);
                    value.write_java(out);
                }
                out.push(0xff);
            }
            Cbor::Tag(tag, value) => {
                write_head(out, 6, *tag);
                value.write_java(out);
            }
            Cbor::Bool(value) => out.push(if *value { 0xf5 } else { 0xf4 }),
            Cbor::Null => out.push(0xf6),
            Cbor::Float(value) => {
                out.push(0xfb);
                out.extend_from_slice(&value.to_bits().to_be_bytes());
            }
        }
    }

    /// Decodes one complete item (trusted input: the server's answers).
    fn decode(input: &[u8]) -> Result<Cbor, String> {
        let mut reader = Reader { input, position: 0 };
        let value = reader.item()?;
        if reader.position != input.len() {
            return Err(format!("{} trailing bytes", input.len() - reader.position));
        }
        Ok(value)
    }

    /// The member `key` of a map whose keys are text.
    fn get(&self, key: &str) -> Option<&Cbor> {
        let Cbor::Map(members) = self else {
            panic!("not a map: {self:?}")
        };
        members
            .iter()
            .find(|(name, _)| matches!(name, Cbor::Text(name) if name == key))
            .map(|(_, value)| value)
    }

    fn member(&self, key: &str) -> &Cbor {
        self.get(key)
            .unwrap_or_else(|| panic!("no member {key} in {self:?}"))
    }

    fn keys(&self) -> BTreeSet<String> {
        let Cbor::Map(members) = self else {
            panic!("not a map: {self:?}")
        };
        members
            .iter()
            .map(|(key, _)| match key {
                Cbor::Text(key) => key.clone(),
                other => panic!("a map key that is not text: {other:?}"),
            })
            .collect()
    }

    fn as_text(&self) -> &str {
        match self {
            Cbor::Text(value) => value,
            other => panic!("not a text string: {other:?}"),
        }
    }

    fn as_u64(&self) -> u64 {
        match self {
            Cbor::Unsigned(value) => *value,
            other => panic!("not an unsigned integer: {other:?}"),
        }
    }

    fn as_bool(&self) -> bool {
        match self {
            Cbor::Bool(value) => *value,
            other => panic!("not a boolean: {other:?}"),
        }
    }

    /// A blob: must be a byte string, not base64 text.
    fn as_bytes(&self) -> &[u8] {
        match self {
            Cbor::Bytes(value) => value,
            other => panic!("a blob must be a byte string (major type 2), got {other:?}"),
        }
    }

    fn as_array(&self) -> &[Cbor] {
        match self {
            Cbor::Array(items) => items,
            other => panic!("not an array: {other:?}"),
        }
    }

    /// A timestamp: must be tag 1 around an integer of epoch milliseconds.
    fn as_epoch_ms(&self) -> i64 {
        match self {
            Cbor::Tag(1, value) => match **value {
                Cbor::Unsigned(ms) => ms as i64,
                ref other => panic!("tag 1 must hold integer milliseconds, got {other:?}"),
            },
            other => panic!("a timestamp must be tag 1 + integer ms, got {other:?}"),
        }
    }
}

struct Reader<'a> {
    input: &'a [u8],
    position: usize,
}

impl Reader<'_> {
    fn take(&mut self, length: usize) -> Result<&[u8], String> {
        let end = self
            .position
            .checked_add(length)
            .filter(|end| *end <= self.input.len())
            .ok_or_else(|| format!("truncated at byte {}", self.position))?;
        let bytes = &self.input[self.position..end];
        self.position = end;
        Ok(bytes)
    }

    /// (major type, additional information, argument).
    fn head(&mut self) -> Result<(u8, u8, u64), String> {
        let initial = self.take(1)?[0];
        let info = initial & 0x1f;
        let argument = match info {
            0..=23 => u64::from(info),
            24..=27 => self
                .take(1 << (info - 24))?
                .iter()
                .fold(0, |value, byte| value << 8 | u64::from(*byte)),
            31 => 0,
            _ => return Err(format!("reserved additional information {info}")),
        };
        Ok((initial >> 5, info, argument))
    }

    fn at_break(&mut self) -> Result<bool, String> {
        match self.input.get(self.position) {
            Some(0xff) => {
                self.position += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err("truncated inside an indefinite item".into()),
        }
    }

    fn string(&mut self, major: u8, info: u8, length: u64) -> Result<Vec<u8>, String> {
        if info != 31 {
            return Ok(self.take(length as usize)?.to_vec());
        }
        let mut assembled = Vec::new();
        while !self.at_break()? {
            let (chunk_major, chunk_info, chunk_length) = self.head()?;
            if chunk_major != major || chunk_info == 31 {
                return Err("bad chunk in an indefinite string".into());
            }
            assembled.extend_from_slice(self.take(chunk_length as usize)?);
        }
        Ok(assembled)
    }

    fn item(&mut self) -> Result<Cbor, String> {
        let (major, info, argument) = self.head()?;
        Ok(match major {
            0 => Cbor::Unsigned(argument),
            1 => Cbor::Negative(argument),
            2 => Cbor::Bytes(self.string(2, info, argument)?),
            3 => Cbor::Text(
                String::from_utf8(self.string(3, info, argument)?)
                    .map_err(|_| "text is not UTF-8".to_string())?,
            ),
            4 => {
                let mut items = Vec::new();
                if info == 31 {
                    while !self.at_break()? {
                        items.push(self.item()?);
                    }
                } else {
                    for _ in 0..argument {
                        items.push(self.item()?);
                    }
                }
                Cbor::Array(items)
            }
            5 => {
                let mut members = Vec::new();
                if info == 31 {
                    while !self.at_break()? {
                        members.push((self.item()?, self.item()?));
                    }
                } else {
                    for _ in 0..argument {
                        members.push((self.item()?, self.item()?));
                    }
                }
                Cbor::Map(members)
            }
            6 => Cbor::Tag(argument, Box::new(self.item()?)),
            _ => match info {
                20 => Cbor::Bool(false),
                21 => Cbor::Bool(true),
                22 => Cbor::Null,
                26 => Cbor::Float(f64::from(f32::from_bits(argument as u32))),
                27 => Cbor::Float(f64::from_bits(argument)),
                _ => return Err(format!("unexpected simple value {info}")),
            },
        })
    }
}

// ===== Raw CBOR calls =====

/// A POST / with the Kinesis headers and a CBOR body, as the Java SDK sends it.
fn cbor_request(target: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: {CBOR_CONTENT_TYPE}\r\n\
         X-Amz-Target: {target}\r\nX-Amz-Date: 20250101T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 \
         Credential=AKIDTEST/20250101/us-east-1/kinesis/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        "0".repeat(64),
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// The answer to one CBOR call.
struct Reply {
    operation: String,
    raw: RawResponse,
}

impl Reply {
    /// The body, which must be CBOR with the CBOR content type.
    fn cbor(&self) -> Cbor {
        assert_eq!(
            self.raw.header("content-type"),
            Some(CBOR_CONTENT_TYPE),
            "{}: a CBOR request must get a CBOR answer",
            self.operation
        );
        Cbor::decode(&self.raw.body).unwrap_or_else(|error| {
            panic!(
                "{}: the answer is not CBOR ({error}): {:02x?}",
                self.operation, self.raw.body
            )
        })
    }

    /// Whether the call succeeded (its answer still decodes as CBOR either way).
    fn is_ok(&self) -> bool {
        let _ = self.cbor_or_empty();
        self.raw.status == 200
    }

    fn cbor_or_empty(&self) -> Option<Cbor> {
        (!self.raw.body.is_empty()).then(|| self.cbor())
    }

    /// A successful answer with members.
    fn ok(&self) -> Cbor {
        let body = self.cbor();
        assert_eq!(
            self.raw.status, 200,
            "{}: expected success, got {body:?}",
            self.operation
        );
        assert!(matches!(body, Cbor::Map(_)), "{}: {body:?}", self.operation);
        body
    }

    /// A void operation's answer: 200, an empty body, still the CBOR content type. Java SDK
    /// v2 builds an empty result from a body with no token, and does not parse the body of an
    /// output without members at all.
    fn void(&self) {
        assert_eq!(
            (self.raw.status, self.raw.body.as_slice()),
            (200, &b""[..]),
            "{}: a void operation answers 200 with an empty body",
            self.operation
        );
        assert_eq!(
            self.raw.header("content-type"),
            Some(CBOR_CONTENT_TYPE),
            "{}",
            self.operation
        );
    }

    /// An error answer: HTTP 400 and a CBOR map of `__type` and the message (under `message`,
    /// or `Message` for SerializationException as Coral writes it); returns both.
    fn error(&self) -> (String, Option<String>) {
        let body = self.cbor();
        assert_eq!(self.raw.status, 400, "{}: {body:?}", self.operation);
        let error_type = body.member("__type").as_text().to_string();
        let message = body
            .get("message")
            .or_else(|| body.get("Message"))
            .map(|message| message.as_text().to_string());
        let allowed: BTreeSet<String> = ["__type", "message", "Message"]
            .into_iter()
            .map(String::from)
            .collect();
        assert!(
            body.keys().is_subset(&allowed),
            "{}: {body:?}",
            self.operation
        );
        (error_type, message)
    }
}

/// A CBOR session with one server that remembers which operations it called.
struct Session {
    addr: SocketAddr,
    called: BTreeSet<String>,
}

impl Session {
    fn new(server: &Server) -> Session {
        Session {
            addr: server.addr,
            called: BTreeSet::new(),
        }
    }

    fn send(&mut self, target: &str, body: &[u8]) -> Reply {
        let operation = target
            .strip_prefix("Kinesis_20131202.")
            .unwrap_or(target)
            .to_string();
        self.called.insert(operation.clone());
        let raw = exchange(self.addr, &cbor_request(target, body))
            .unwrap_or_else(|| panic!("{operation}: connection closed without a response"));
        Reply { operation, raw }
    }

    fn call(&mut self, operation: &str, body: &Cbor) -> Reply {
        self.send(&format!("Kinesis_20131202.{operation}"), &body.java())
    }
}

fn stream_name_only(name: &str) -> Cbor {
    map(&[("StreamName", text(name))])
}

/// Asserts a timestamp the server reports lies in `[from, to]`, give or take the slack.
fn assert_within(what: &str, epoch_ms: i64, from: i64, to: i64) {
    assert!(
        from - CLOCK_SLACK_MS <= epoch_ms && epoch_ms <= to + CLOCK_SLACK_MS,
        "{what} {epoch_ms} is not within [{from}, {to}] (epoch ms)"
    );
}

// ===== The tests =====

/// Every operation the server knows, in CBOR, in an order a Java application might call them,
/// with each answer's members checked; the binary payload carries all 256 byte values.
#[tokio::test]
async fn every_operation_answers_in_cbor() {
    // A one-second subscription lifetime lets SubscribeToShard's answer end within the test.
    let server = Server::in_memory_with(&["--limits", "off", "--subscription-lifetime-s", "1"]);
    let mut session = Session::new(&server);
    let name = "cbor-stream";
    let arn = stream_arn(name);
    let created_from = now_millis();

    session
        .call(
            "CreateStream",
            &map(&[("StreamName", text(name)), ("ShardCount", int(2))]),
        )
        .void();
    let created_to = now_millis();

    let summary = session
        .call("DescribeStreamSummary", &stream_name_only(name))
        .ok();
    let summary = summary.member("StreamDescriptionSummary");
    assert_eq!(summary.member("StreamName").as_text(), name);
    assert_eq!(summary.member("StreamARN").as_text(), arn);
    assert_eq!(summary.member("StreamStatus").as_text(), "ACTIVE");
    assert_eq!(summary.member("OpenShardCount").as_u64(), 2);
    assert_eq!(summary.member("RetentionPeriodHours").as_u64(), 24);
    let created_ms = summary.member("StreamCreationTimestamp").as_epoch_ms();
    assert_within(
        "StreamCreationTimestamp",
        created_ms,
        created_from,
        created_to,
    );

    let description = session
        .call(
            "DescribeStream",
            &map(&[("StreamName", text(name)), ("Limit", int(1))]),
        )
        .ok();
    let description = description.member("StreamDescription");
    assert_eq!(description.member("Shards").as_array().len(), 1);
    assert!(description.member("HasMoreShards").as_bool());
    assert_eq!(
        description.member("StreamCreationTimestamp").as_epoch_ms(),
        created_ms
    );
    let first_shard = &description.member("Shards").as_array()[0];
    assert_eq!(first_shard.member("ShardId").as_text(), shard_id(0));
    assert_eq!(
        first_shard
            .member("HashKeyRange")
            .member("StartingHashKey")
            .as_text(),
        "0"
    );

    let streams = session.call("ListStreams", &map(&[])).ok();
    assert_eq!(streams.member("StreamNames").as_array(), &[text(name)]);
    assert!(!streams.member("HasMoreStreams").as_bool());
    let stream_summary = &streams.member("StreamSummaries").as_array()[0];
    assert_eq!(
        stream_summary
            .member("StreamCreationTimestamp")
            .as_epoch_ms(),
        created_ms
    );

    // Binary data: every byte value, as a byte string.
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let put_from = now_millis();
    let put = session
        .call(
            "PutRecord",
            &map(&[
                ("StreamName", text(name)),
                ("Data", bytes(&all_bytes)),
                ("PartitionKey", text("binary")),
            ]),
        )
        .ok();
    let put_to = now_millis();
    let shard = put.member("ShardId").as_text().to_string();
    let first_sequence = put.member("SequenceNumber").as_text().to_string();
    assert_sequence_number(&first_sequence);

    // A later batch, so that an AT_TIMESTAMP just after the first record finds only it.
    std::thread::sleep(Duration::from_millis(50));
    let batch_from = now_millis();
    let batch = session
        .call(
            "PutRecords",
            &map(&[
                (
                    "Records",
                    array(&[
                        map(&[
                            ("Data", bytes(b"\x00second")),
                            ("PartitionKey", text("binary")),
                        ]),
                        map(&[("Data", bytes(b"")), ("PartitionKey", text("binary"))]),
                    ]),
                ),
                ("StreamName", text(name)),
            ]),
        )
        .ok();
    assert_eq!(batch.member("FailedRecordCount").as_u64(), 0);
    let entries = batch.member("Records").as_array();
    assert_eq!(entries.len(), 2);
    for entry in entries {
        assert_eq!(entry.member("ShardId").as_text(), shard);
        assert_sequence_before(&first_sequence, entry.member("SequenceNumber").as_text());
    }

    let filtered = session
        .call(
            "ListShards",
            &map(&[
                ("StreamName", text(name)),
                (
                    "ShardFilter",
                    map(&[
                        ("Type", text("AT_TIMESTAMP")),
                        ("Timestamp", epoch_ms(created_ms)),
                    ]),
                ),
            ]),
        )
        .ok();
    assert_eq!(filtered.member("Shards").as_array().len(), 2);
    let page = session
        .call(
            "ListShards",
            &map(&[("StreamName", text(name)), ("MaxResults", int(1))]),
        )
        .ok();
    assert_eq!(page.member("Shards").as_array().len(), 1);
    let next_token = page.member("NextToken").as_text().to_string();
    let rest = session
        .call("ListShards", &map(&[("NextToken", text(&next_token))]))
        .ok();
    assert_eq!(
        rest.member("Shards").as_array()[0]
            .member("ShardId")
            .as_text(),
        shard_id(1)
    );

    let iterator = session
        .call(
            "GetShardIterator",
            &map(&[
                ("StreamName", text(name)),
                ("ShardId", text(&shard)),
                ("ShardIteratorType", text("TRIM_HORIZON")),
            ]),
        )
        .ok();
    let iterator = iterator.member("ShardIterator").as_text().to_string();
    let read = session
        .call("GetRecords", &map(&[("ShardIterator", text(&iterator))]))
        .ok();
    let records = read.member("Records").as_array();
    assert_eq!(records.len(), 3, "{read:?}");
    assert_eq!(records[0].member("Data").as_bytes(), all_bytes.as_slice());
    assert_eq!(records[1].member("Data").as_bytes(), b"\x00second");
    assert_eq!(records[2].member("Data").as_bytes(), b"");
    assert_eq!(
        records[0].member("SequenceNumber").as_text(),
        first_sequence
    );
    assert_eq!(records[0].member("PartitionKey").as_text(), "binary");
    let first_arrival = records[0]
        .member("ApproximateArrivalTimestamp")
        .as_epoch_ms();
    assert_within(
        "ApproximateArrivalTimestamp",
        first_arrival,
        put_from,
        put_to,
    );
    let batch_arrival = records[1]
        .member("ApproximateArrivalTimestamp")
        .as_epoch_ms();
    assert!(
        batch_arrival >= batch_from.min(first_arrival + 50),
        "{first_arrival} {batch_arrival}"
    );
    read.member("MillisBehindLatest").as_u64();
    read.member("NextShardIterator").as_text();

    // The same records through the JSON SDK: CBOR's bytes are the data, not an encoding.
    let through_json = read_shard(&server.client(), name, &shard).await;
    assert_eq!(through_json[0].data().as_ref(), all_bytes.as_slice());
    // JSON carries seconds with a fraction, which the SDK parses as a float: the milliseconds
    // it recovers may be one short.
    let json_arrival = through_json[0]
        .approximate_arrival_timestamp()
        .map(|time| time.to_millis().expect("a timestamp in range"))
        .expect("GetRecords returns arrival times");
    assert!(
        (json_arrival - first_arrival).abs() <= 1,
        "JSON {json_arrival} vs CBOR {first_arrival}"
    );

    // AT_TIMESTAMP with a tag-1 millisecond timestamp: one millisecond after the first record
    // finds the batch only (read as seconds it would lie far in the future and be refused).
    let at_iterator = |at_ms: i64| {
        map(&[
            ("StreamName", text(name)),
            ("ShardId", text(&shard)),
            ("ShardIteratorType", text("AT_TIMESTAMP")),
            ("Timestamp", epoch_ms(at_ms)),
        ])
    };
    let iterator = session
        .call("GetShardIterator", &at_iterator(first_arrival + 1))
        .ok();
    let iterator = iterator.member("ShardIterator").as_text().to_string();
    let read = session
        .call("GetRecords", &map(&[("ShardIterator", text(&iterator))]))
        .ok();
    let records = read.member("Records").as_array();
    assert_eq!(records.len(), 2, "{read:?}");
    assert_eq!(records[0].member("Data").as_bytes(), b"\x00second");
    let iterator = session
        .call("GetShardIterator", &at_iterator(first_arrival))
        .ok();
    let iterator = iterator.member("ShardIterator").as_text().to_string();
    let read = session
        .call("GetRecords", &map(&[("ShardIterator", text(&iterator))]))
        .ok();
    assert_eq!(read.member("Records").as_array().len(), 3, "{read:?}");

    for operation in [
        "IncreaseStreamRetentionPeriod",
        "DecreaseStreamRetentionPeriod",
    ] {
        let hours = if operation.starts_with("Increase") {
            48
        } else {
            24
        };
        session
            .call(
                operation,
                &map(&[
                    ("StreamName", text(name)),
                    ("RetentionPeriodHours", int(hours)),
                ]),
            )
            .void();
        let summary = session
            .call("DescribeStreamSummary", &stream_name_only(name))
            .ok();
        assert_eq!(
            summary
                .member("StreamDescriptionSummary")
                .member("RetentionPeriodHours")
                .as_u64(),
            hours as u64
        );
    }

    session
        .call(
            "AddTagsToStream",
            &map(&[
                ("StreamName", text(name)),
                (
                    "Tags",
                    map(&[("env", text("test")), ("team", text("data"))]),
                ),
            ]),
        )
        .void();
    session
        .call(
            "RemoveTagsFromStream",
            &map(&[
                ("StreamName", text(name)),
                ("TagKeys", array(&[text("team")])),
            ]),
        )
        .void();
    let tags = session
        .call("ListTagsForStream", &stream_name_only(name))
        .ok();
    assert_eq!(
        tags.member("Tags").as_array(),
        &[map(&[("Key", text("env")), ("Value", text("test"))])]
    );
    assert!(!tags.member("HasMoreTags").as_bool());

    session
        .call(
            "TagResource",
            &map(&[
                ("ResourceARN", text(&arn)),
                ("Tags", map(&[("owner", text("riffle"))])),
            ]),
        )
        .void();
    let tags = session
        .call("ListTagsForResource", &map(&[("ResourceARN", text(&arn))]))
        .ok();
    let keys: Vec<&str> = tags
        .member("Tags")
        .as_array()
        .iter()
        .map(|tag| tag.member("Key").as_text())
        .collect();
    assert_eq!(keys, ["env", "owner"]);
    session
        .call(
            "UntagResource",
            &map(&[
                ("ResourceARN", text(&arn)),
                ("TagKeys", array(&[text("owner")])),
            ]),
        )
        .void();

    let limits = session.call("DescribeLimits", &map(&[])).ok();
    assert_eq!(limits.member("ShardLimit").as_u64(), 1000);
    assert_eq!(limits.member("OpenShardCount").as_u64(), 2);
    assert_eq!(limits.member("OnDemandStreamCount").as_u64(), 0);
    limits.member("OnDemandStreamCountLimit").as_u64();

    let settings = session.call("DescribeAccountSettings", &map(&[])).ok();
    assert_eq!(
        settings
            .member("MinimumThroughputBillingCommitment")
            .member("Status")
            .as_text(),
        "DISABLED"
    );

    // Resharding: split shard 0 at the middle of its range, merge the children back.
    session
        .call(
            "SplitShard",
            &map(&[
                ("StreamName", text(name)),
                ("ShardToSplit", text(&shard_id(0))),
                ("NewStartingHashKey", text(&(1u128 << 126).to_string())),
            ]),
        )
        .void();
    session
        .call(
            "MergeShards",
            &map(&[
                ("StreamName", text(name)),
                ("ShardToMerge", text(&shard_id(2))),
                ("AdjacentShardToMerge", text(&shard_id(3))),
            ]),
        )
        .void();
    let scaled = session
        .call(
            "UpdateShardCount",
            &map(&[
                ("StreamName", text(name)),
                ("TargetShardCount", int(4)),
                ("ScalingType", text("UNIFORM_SCALING")),
            ]),
        )
        .ok();
    assert_eq!(scaled.member("StreamName").as_text(), name);
    assert_eq!(scaled.member("CurrentShardCount").as_u64(), 2);
    assert_eq!(scaled.member("TargetShardCount").as_u64(), 4);
    assert_eq!(scaled.member("StreamARN").as_text(), arn);

    session
        .call(
            "UpdateMaxRecordSize",
            &map(&[("StreamARN", text(&arn)), ("MaxRecordSizeInKiB", int(2048))]),
        )
        .void();
    session
        .call(
            "UpdateStreamMode",
            &map(&[
                ("StreamARN", text(&arn)),
                (
                    "StreamModeDetails",
                    map(&[("StreamMode", text("ON_DEMAND"))]),
                ),
            ]),
        )
        .void();
    session
        .call(
            "UpdateStreamRecordDistributionStrategy",
            &map(&[
                ("StreamARN", text(&arn)),
                ("RecordDistributionStrategy", text("AUTO")),
            ]),
        )
        .void();
    let summary = session
        .call("DescribeStreamSummary", &map(&[("StreamARN", text(&arn))]))
        .ok();
    let summary = summary.member("StreamDescriptionSummary");
    assert_eq!(summary.member("MaxRecordSizeInKiB").as_u64(), 2048);
    assert_eq!(
        summary.member("RecordDistributionStrategy").as_text(),
        "AUTO"
    );
    assert_eq!(
        summary
            .member("StreamModeDetails")
            .member("StreamMode")
            .as_text(),
        "ON_DEMAND"
    );
    assert_eq!(summary.member("OpenShardCount").as_u64(), 4);

    // Enhanced monitoring, then On-demand Advantage and warm throughput (two more shards).
    let enabled = session
        .call(
            "EnableEnhancedMonitoring",
            &map(&[
                ("StreamName", text(name)),
                ("ShardLevelMetrics", array(&[text("ALL")])),
            ]),
        )
        .ok();
    assert!(enabled
        .member("CurrentShardLevelMetrics")
        .as_array()
        .is_empty());
    assert_eq!(
        enabled.member("DesiredShardLevelMetrics").as_array().len(),
        7
    );
    assert_eq!(enabled.member("StreamARN").as_text(), arn);
    let disabled = session
        .call(
            "DisableEnhancedMonitoring",
            &map(&[
                ("StreamARN", text(&arn)),
                ("ShardLevelMetrics", array(&[text("IncomingBytes")])),
            ]),
        )
        .ok();
    assert_eq!(disabled.member("StreamName").as_text(), name);
    assert_eq!(
        disabled.member("DesiredShardLevelMetrics").as_array().len(),
        6
    );
    let settings = session
        .call(
            "UpdateAccountSettings",
            &map(&[(
                "MinimumThroughputBillingCommitment",
                map(&[("Status", text("ENABLED"))]),
            )]),
        )
        .ok();
    let commitment = settings.member("MinimumThroughputBillingCommitment");
    assert_eq!(commitment.member("Status").as_text(), "ENABLED");
    let started_ms = commitment.member("StartedAt").as_epoch_ms();
    assert!(started_ms >= created_ms);
    assert_eq!(
        commitment.member("EarliestAllowedEndAt").as_epoch_ms(),
        started_ms + 24 * 3_600_000
    );
    let warm = session
        .call(
            "UpdateStreamWarmThroughput",
            &map(&[("StreamARN", text(&arn)), ("WarmThroughputMiBps", int(6))]),
        )
        .ok();
    let warm = warm.member("WarmThroughput");
    assert_eq!(warm.member("TargetMiBps").as_u64(), 6);
    assert_eq!(warm.member("CurrentMiBps").as_u64(), 6);
    // Encryption at rest with the AWS-managed key (no key file needed): the summary shows
    // it, a put reports it, and it stops again.
    let sse = |key_id: &str| {
        map(&[
            ("StreamARN", text(&arn)),
            ("EncryptionType", text("KMS")),
            ("KeyId", text(key_id)),
        ])
    };
    session
        .call("StartStreamEncryption", &sse("alias/aws/kinesis"))
        .void();
    let summary = session
        .call("DescribeStreamSummary", &stream_name_only(name))
        .ok();
    let summary = summary.member("StreamDescriptionSummary");
    assert_eq!(summary.member("EncryptionType").as_text(), "KMS");
    assert_eq!(summary.member("KeyId").as_text(), "alias/aws/kinesis");
    let sealed = session
        .call(
            "PutRecord",
            &map(&[
                ("StreamName", text(name)),
                ("Data", bytes(b"sealed")),
                ("PartitionKey", text("binary")),
            ]),
        )
        .ok();
    assert_eq!(sealed.member("EncryptionType").as_text(), "KMS");
    session
        .call("StopStreamEncryption", &sse("alias/aws/kinesis"))
        .void();
    let summary = session
        .call("DescribeStreamSummary", &stream_name_only(name))
        .ok();
    let summary = summary.member("StreamDescriptionSummary");
    assert_eq!(summary.member("EncryptionType").as_text(), "NONE");
    assert!(summary.get("KeyId").is_none(), "{summary:?}");

    // Enhanced fan-out: a consumer registered, described, listed, subscribed and deregistered,
    // all in CBOR. SubscribeToShard answers an event stream (not CBOR) whose events carry the
    // records as SubscribeToShardEvent payloads.
    let registered = session
        .call(
            "RegisterStreamConsumer",
            &map(&[
                ("StreamARN", text(&arn)),
                ("ConsumerName", text("cbor-consumer")),
            ]),
        )
        .ok();
    let consumer = registered.member("Consumer");
    let consumer_arn = consumer.member("ConsumerARN").as_text().to_string();
    assert!(consumer_arn.starts_with(&format!("{arn}/consumer/cbor-consumer:")));
    assert_eq!(consumer.member("ConsumerStatus").as_text(), "CREATING");
    assert!(consumer.member("ConsumerCreationTimestamp").as_epoch_ms() >= created_ms);
    let described = session
        .call(
            "DescribeStreamConsumer",
            &map(&[("ConsumerARN", text(&consumer_arn))]),
        )
        .ok();
    let description = described.member("ConsumerDescription");
    assert_eq!(description.member("ConsumerStatus").as_text(), "ACTIVE");
    assert_eq!(description.member("StreamARN").as_text(), arn);
    let listed = session
        .call("ListStreamConsumers", &map(&[("StreamARN", text(&arn))]))
        .ok();
    let consumers = listed.member("Consumers").as_array();
    assert_eq!(consumers.len(), 1);
    assert_eq!(consumers[0].member("ConsumerARN").as_text(), consumer_arn);
    let subscribed = session.call(
        "SubscribeToShard",
        &map(&[
            ("ConsumerARN", text(&consumer_arn)),
            ("ShardId", text(&shard_id(0))),
            ("StartingPosition", map(&[("Type", text("TRIM_HORIZON"))])),
        ]),
    );
    assert_eq!(subscribed.raw.status, 200);
    assert_eq!(
        subscribed.raw.header("content-type"),
        Some("application/vnd.amazon.eventstream")
    );
    let mut frames = subscribed.raw.body.as_slice();
    let mut event_types = Vec::new();
    while !frames.is_empty() {
        let (message, used) = riffle_proto::eventstream::decode(frames)
            .unwrap_or_else(|error| panic!("SubscribeToShard frame: {error}"));
        event_types.push(message.header(":event-type").unwrap_or("?").to_string());
        frames = &frames[used..];
    }
    assert_eq!(
        event_types.first().map(String::as_str),
        Some("initial-response")
    );
    assert!(
        event_types[1..]
            .iter()
            .all(|kind| kind == "SubscribeToShardEvent"),
        "{event_types:?}"
    );
    assert!(event_types.len() >= 2, "{event_types:?}");
    session
        .call(
            "DeregisterStreamConsumer",
            &map(&[("ConsumerARN", text(&consumer_arn))]),
        )
        .void();

    // Resource policies.
    let policy = r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"kinesis:Describe*"}}"#;
    session
        .call(
            "PutResourcePolicy",
            &map(&[("ResourceARN", text(&arn)), ("Policy", text(policy))]),
        )
        .void();
    let stored = session
        .call("GetResourcePolicy", &map(&[("ResourceARN", text(&arn))]))
        .ok();
    assert_eq!(stored.member("Policy").as_text(), policy);
    session
        .call("DeleteResourcePolicy", &map(&[("ResourceARN", text(&arn))]))
        .void();
    let emptied = session
        .call("GetResourcePolicy", &map(&[("ResourceARN", text(&arn))]))
        .ok();
    assert_eq!(emptied.member("Policy").as_text(), "{}");

    // Queues, all in CBOR: blobs are byte strings, timestamps tag-1 epoch milliseconds.
    let queued = "cbor-queued";
    session
        .call(
            "CreateStream",
            &map(&[
                ("StreamName", text(queued)),
                (
                    "StreamModeDetails",
                    map(&[("StreamMode", text("ON_DEMAND"))]),
                ),
            ]),
        )
        .void();
    let queued_arn = stream_arn(queued);
    let created = session
        .call(
            "CreateQueue",
            &map(&[
                ("QueueName", text("cbor-queue")),
                (
                    "StreamConfigurationList",
                    array(&[map(&[
                        ("StreamARN", text(&queued_arn)),
                        (
                            "StartingPosition",
                            map(&[
                                ("Type", text("AT_TIMESTAMP")),
                                ("Timestamp", epoch_ms(created_ms - 60_000)),
                            ]),
                        ),
                    ])]),
                ),
                (
                    "QueueAttributes",
                    map(&[(
                        "DeadLetterConfiguration",
                        map(&[
                            ("TargetType", text("BUILT_IN")),
                            ("MaxReceiveCount", int(1)),
                        ]),
                    )]),
                ),
            ]),
        )
        .ok();
    let description = created.member("QueueDescription");
    let queue_arn = description.member("QueueARN").as_text().to_string();
    assert_eq!(description.member("QueueStatus").as_text(), "CREATING");
    assert!(description.member("QueueCreationTimestamp").as_epoch_ms() >= created_ms);
    let queue = || text(&queue_arn);
    session
        .call("DescribeQueue", &map(&[("QueueARN", queue())]))
        .ok();
    let listed = session.call("ListQueues", &map(&[])).ok();
    assert_eq!(listed.member("QueueSummaries").as_array().len(), 1);
    session
        .call(
            "UpdateQueue",
            &map(&[
                ("QueueARN", queue()),
                (
                    "QueueAttributes",
                    map(&[("VisibilityTimeoutSeconds", int(60))]),
                ),
            ]),
        )
        .ok();
    session
        .call(
            "PutRecord",
            &map(&[
                ("StreamName", text(queued)),
                ("PartitionKey", text("pk")),
                ("Data", bytes(b"\x00queued\xff")),
            ]),
        )
        .ok();
    let receive = |session: &mut Session, operation: &str| {
        session
            .call(
                operation,
                &map(&[("QueueARN", queue()), ("WaitTimeSeconds", int(1))]),
            )
            .ok()
            .member("QueueRecords")
            .as_array()
            .to_vec()
    };
    let got = receive(&mut session, "ReceiveQueueRecords");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].member("Data").as_bytes(), b"\x00queued\xff");
    assert!(got[0].member("ApproximateArrivalTimestamp").as_epoch_ms() >= created_ms);
    assert!(got[0].member("FirstReceiveTimestamp").as_epoch_ms() >= created_ms);
    let entries = |record: &Cbor, seconds: Option<i64>| {
        let mut entry = vec![(
            "ReceiptHandle",
            text(record.member("ReceiptHandle").as_text()),
        )];
        if let Some(seconds) = seconds {
            entry.push(("VisibilityTimeoutSeconds", int(seconds)));
        }
        map(&[("QueueARN", queue()), ("Entries", array(&[map(&entry)]))])
    };
    let moved = session
        .call("UpdateQueueRecordsVisibility", &entries(&got[0], Some(0)))
        .ok();
    assert_eq!(moved.member("Successful").as_array().len(), 1);
    let dead = receive(&mut session, "ReceiveDeadLetterQueueRecords");
    assert_eq!(dead.len(), 1, "dead after MaxReceiveCount 1");
    session
        .call(
            "UpdateDeadLetterQueueRecordsVisibility",
            &entries(&dead[0], Some(30)),
        )
        .ok();
    session
        .call("RestoreDeadLetterQueueRecords", &entries(&dead[0], None))
        .ok();
    let again = receive(&mut session, "ReceiveQueueRecords");
    let acked = session
        .call("AcknowledgeQueueRecords", &entries(&again[0], None))
        .ok();
    assert_eq!(acked.member("Successful").as_array().len(), 1);
    // The record is acknowledged already: acknowledging it again succeeds and changes nothing.
    let again = session
        .call(
            "AcknowledgeDeadLetterQueueRecords",
            &entries(&dead[0], None),
        )
        .ok();
    assert_eq!(again.member("Successful").as_array().len(), 1);
    session
        .call("DeleteQueue", &map(&[("QueueARN", queue())]))
        .void();

    // Channels, all in CBOR, from the same on-demand stream.
    let channel = session
        .call(
            "CreateChannel",
            &map(&[
                ("ChannelName", text("cbor-channel")),
                (
                    "ServiceExecutionRoleARN",
                    text("arn:aws:iam::000000000000:role/channels"),
                ),
                (
                    "StreamConfigurationList",
                    array(&[map(&[
                        ("StreamARN", text(&queued_arn)),
                        (
                            "RecordConfiguration",
                            map(&[("RecordFormatType", text("JSON"))]),
                        ),
                    ])]),
                ),
                (
                    "S3DestinationConfiguration",
                    map(&[(
                        "StorageConfiguration",
                        map(&[
                            ("BucketARN", text("arn:aws:s3:::cbor-lake")),
                            ("ExpectedBucketOwner", text("000000000000")),
                            ("CompressionType", text("GZIP")),
                        ]),
                    )]),
                ),
            ]),
        )
        .ok();
    let channel_arn = channel
        .member("ChannelDescription")
        .member("ChannelARN")
        .as_text()
        .to_owned();
    let described = session
        .call(
            "DescribeChannel",
            &map(&[("ChannelARN", text(&channel_arn))]),
        )
        .ok();
    assert_eq!(
        described
            .member("ChannelDescription")
            .member("ChannelName")
            .as_text(),
        "cbor-channel"
    );
    let listed = session.call("ListChannels", &map(&[])).ok();
    assert_eq!(listed.member("ChannelSummaries").as_array().len(), 1);
    // UpdateChannel and DeleteChannel wait for the channel to leave CREATING; any answer
    // decoded from CBOR counts as the round trip.
    let update = map(&[
        ("ChannelARN", text(&channel_arn)),
        (
            "S3DestinationConfiguration",
            map(&[("DataFreshnessInSeconds", int(600))]),
        ),
    ]);
    for _ in 0..100 {
        if session.call("UpdateChannel", &update).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for _ in 0..100 {
        if session
            .call("DeleteChannel", &map(&[("ChannelARN", text(&channel_arn))]))
            .is_ok()
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The stream can go once the channel has left.
    for _ in 0..100 {
        let listed = session.call("ListChannels", &map(&[])).ok();
        if listed.member("ChannelSummaries").as_array().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    session
        .call("DeleteStream", &stream_name_only(queued))
        .void();

    session.call("DeleteStream", &stream_name_only(name)).void();
    let (error_type, message) = session
        .call("DescribeStreamSummary", &stream_name_only(name))
        .error();
    assert_eq!(error_type, "ResourceNotFoundException");
    assert_eq!(message.as_deref(), Some(stream_not_found(name).as_str()));

    // Every operation the server decodes went through CBOR here.
    let known: BTreeSet<String> = riffle_proto::ops::OPERATIONS
        .iter()
        .map(|operation| operation.to_string())
        .collect();
    // Operations still being built have no round trip yet; each leaves this list with its
    // semantics (and the list must only name known operations).
    const PENDING: &[&str] = &[];
    assert!(PENDING.iter().all(|operation| known.contains(*operation)));
    let missing: Vec<&String> = known
        .difference(&session.called)
        .filter(|operation| !PENDING.contains(&operation.as_str()))
        .collect();
    assert!(missing.is_empty(), "no CBOR round trip for {missing:?}");
}

/// Errors of every kind come back as CBOR maps with the JSON protocol's members and texts,
/// HTTP 400, and the CBOR content type.
#[test]
fn errors_answer_in_cbor() {
    let server = Server::in_memory_limits(Limits::Off);
    let mut session = Session::new(&server);

    // A stream that does not exist.
    let (error_type, message) = session
        .call("DescribeStreamSummary", &stream_name_only("missing"))
        .error();
    assert_eq!(error_type, "ResourceNotFoundException");
    assert_eq!(
        message.as_deref(),
        Some(stream_not_found("missing").as_str())
    );

    // The same request in JSON gets the same error, in JSON.
    let json = raw_http::call(
        server.addr,
        "DescribeStreamSummary",
        br#"{"StreamName":"missing"}"#,
    );
    assert_eq!(json.status, 400);
    assert_eq!(json.header("content-type"), Some(JSON_CONTENT_TYPE));
    let json_body: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(json_body["message"], stream_not_found("missing").as_str());

    // A validation failure: the text is the JSON protocol's.
    let request = map(&[("StreamName", text("s")), ("ShardId", text(&shard_id(0)))]);
    let (error_type, message) = session.call("GetShardIterator", &request).error();
    assert_eq!(error_type, "ValidationException");
    let json = raw_http::call(
        server.addr,
        "GetShardIterator",
        br#"{"StreamName":"s","ShardId":"shardId-000000000000"}"#,
    );
    let json_body: serde_json::Value = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(message.as_deref(), json_body["message"].as_str());
    assert_eq!(
        message.as_deref(),
        Some(
            "1 validation error detected: Value null at 'shardIteratorType' failed to satisfy \
             constraint: Member must not be null"
        )
    );

    // A member of the wrong type: Coral's text, under `Message`.
    let reply = session.call(
        "DescribeStream",
        &map(&[("StreamName", text("s")), ("Limit", text("ten"))]),
    );
    assert!(reply.cbor().get("Message").is_some(), "{:?}", reply.cbor());
    assert_eq!(
        reply.error(),
        (
            "SerializationException".to_string(),
            Some("class java.lang.String can not be converted to an Integer".to_string())
        )
    );

    // Bodies that are not CBOR: truncated, a stray break, JSON text, a length of 2^60.
    for body in [
        &b"\xbf\x6aStreamName"[..],
        b"\xff",
        br#"{"StreamName":"s"}"#,
        b"\xbf\x64Data\x5b\x10\x00\x00\x00\x00\x00\x00\x00\xff",
        b"\xa1\x61x\x9f\x9f\x9f\x9f\x9f\x9f\x9f\x9f\x9f\x9f\x9f\x9f\x9f\x9f\x9f\x9f\x9f\x9f",
    ] {
        let (error_type, message) = session.send("Kinesis_20131202.PutRecord", body).error();
        assert_eq!(error_type, "SerializationException", "{body:02x?}");
        let message = message.unwrap_or_default();
        assert!(
            message.starts_with("Request body is not valid CBOR: "),
            "{body:02x?}: {message}"
        );
    }
    let mut deep = b"\xa1\x61x".to_vec();
    deep.extend(std::iter::repeat_n(0x81u8, 10_000));
    deep.push(0);
    let (error_type, message) = session.send("Kinesis_20131202.ListStreams", &deep).error();
    assert_eq!(error_type, "SerializationException");
    assert!(message.unwrap_or_default().contains("nested too deeply"));

    // Unknown targets: the bare type, no message, still in CBOR.
    for target in [
        "Kinesis_20131202.NoSuchOperation",
        "DynamoDB_20120810.PutItem",
    ] {
        let (error_type, message) = session.send(target, &map(&[]).java()).error();
        assert_eq!(
            (error_type.as_str(), message),
            ("UnknownOperationException", None),
            "{target}"
        );
    }

    // After all of that, the server still serves.
    let limits = session.call("DescribeLimits", &map(&[])).ok();
    assert_eq!(limits.member("OpenShardCount").as_u64(), 0);
}

/// Requests in the Java SDK's other shapes are read the same: definite lengths, integer widths
/// beyond the minimum, floats for integer members, a tag-1 float timestamp in seconds.
#[test]
fn requests_in_other_cbor_shapes() {
    let server = Server::in_memory_limits(Limits::Off);
    let mut session = Session::new(&server);
    // {"StreamName": "shapes", "ShardCount": 1 as a 4-byte integer}, definite length.
    let mut body = vec![0xa2];
    body.extend_from_slice(b"\x6aStreamName\x66shapes\x6aShardCount\x1a\x00\x00\x00\x01");
    session.send("Kinesis_20131202.CreateStream", &body).void();

    // DescribeStream with Limit as a half float 1.0.
    let mut body = vec![0xa2];
    body.extend_from_slice(b"\x6aStreamName\x66shapes\x65Limit\xf9\x3c\x00");
    let description = session.send("Kinesis_20131202.DescribeStream", &body).ok();
    assert_eq!(
        description
            .member("StreamDescription")
            .member("Shards")
            .as_array()
            .len(),
        1
    );

    // AT_TIMESTAMP with tag 1 + a double of epoch seconds (RFC 8949's reading of a float):
    // a minute ago is a valid start, so this succeeds.
    let seconds = (now_millis() - 60_000) as f64 / 1000.0;
    let request = map(&[
        ("StreamName", text("shapes")),
        ("ShardId", text(&shard_id(0))),
        ("ShardIteratorType", text("AT_TIMESTAMP")),
        ("Timestamp", Cbor::Tag(1, Box::new(Cbor::Float(seconds)))),
    ]);
    let iterator = session.call("GetShardIterator", &request).ok();
    iterator.member("ShardIterator").as_text();

    // An explicit null is an absent member.
    let request = map(&[("StreamName", text("shapes")), ("Limit", Cbor::Null)]);
    session.call("DescribeStream", &request).ok();
}
