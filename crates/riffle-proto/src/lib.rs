//! Riffle's Kinesis protocol layer: wire shapes, the JSON and CBOR codecs, errors and their AWS
//! texts, validation in AWS's format, limits, and the encodings of sequence numbers, shard
//! iterators, hash keys, shard IDs and ARNs.
//!
//! Sans-IO: no sockets, no runtime, no threads, no clock. Everything is a pure function of its
//! arguments, so every rule here is unit-tested. A server uses it like this:
//!
//! ```
//! use riffle_proto::{decode_request, encode_json, Request};
//! use riffle_proto::ops::PutRecordOutput;
//!
//! let body = br#"{"StreamName":"s","PartitionKey":"k","Data":"aGk="}"#;
//! let reply = match decode_request("PutRecord", body) {
//!     Ok(Request::PutRecord(input)) => {
//!         assert_eq!(input.data.as_deref(), Some(&b"hi"[..]));
//!         // ... the domain call ...
//!         encode_json(&PutRecordOutput {
//!             shard_id: riffle_proto::shard_id::shard_id(0),
//!             sequence_number: "49543463076548007577105092703039560359975228518395019266".into(),
//!             encryption_type: None,
//!         })
//!     }
//!     Ok(_) => unreachable!(),
//!     Err(error) => error.to_json(), // sent with error.http_status()
//! };
//! assert!(reply.starts_with(b"{\"ShardId\":\"shardId-000000000000\""));
//! ```
//!
//! Modules:
//! - [`ops`]: request and response shapes, [`Request`], [`decode_request`].
//! - [`json`]: Coral's parsing rules, blobs, timestamps, [`encode_json`].
//! - [`cbor`]: the CBOR codec the Java SDKs speak (`application/x-amz-cbor-1.1`).
//! - [`wire`]: [`WireFormat`], which codec a request and its answer use.
//! - [`validate`]: ValidationException texts and the model's patterns.
//! - [`error`]: [`ErrorKind`], [`KinesisError`] and the AWS texts.
//! - [`eventstream`]: the binary framing of SubscribeToShard's answer.
//! - [`limits`]: every limit as a named constant.
//! - [`seqno`], [`iterator`], [`token`], [`hashkey`], [`shard_id`], [`arn`]: the encodings
//!   (sequence numbers, shard iterators, `NextToken`s, hash keys, shard IDs, ARNs).
//! - [`sigv4`]: verifying AWS Signature Version 4 (header and presigned query forms).
//! - [`time`]: calendar arithmetic for the dates inside texts.

pub mod arn;
pub mod cbor;
pub mod error;
pub mod eventstream;
pub mod hashkey;
pub mod iterator;
pub mod json;
pub mod limits;
pub mod ops;
pub mod receipt;
pub mod seqno;
pub mod shard_id;
pub mod sigv4;
pub mod time;
pub mod token;
pub mod validate;
pub mod wire;

pub use error::{ErrorKind, KinesisError};
pub use json::{decode_json, encode_json, Timestamp};
pub use ops::{decode_request, decode_request_in, Request};
pub use wire::WireFormat;
