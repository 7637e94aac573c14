//! Wire formats: the codec a request speaks, chosen from its `Content-Type`, and used for its
//! answer too (kinesis-api.md §1.1: CBOR-configured Java clients fail on JSON replies).
//!
//! Every format decodes into the same shapes of [`crate::ops`] and encodes the same outputs;
//! only the bytes differ. A third format (Smithy's rpcv2-CBOR, which the Rust SDK tracks)
//! would be one more variant here and one more codec module.

use serde::{Deserialize, Serialize};

use crate::cbor::{decode_cbor, encode_cbor};
use crate::error::KinesisError;
use crate::json::{decode_json, encode_json};

/// `Content-Type` of the Kinesis JSON protocol (`awsJson1_1`).
pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// `Content-Type` of the Kinesis CBOR protocol the Java SDKs use.
pub const CBOR_CONTENT_TYPE: &str = "application/x-amz-cbor-1.1";

/// How a request's body (and so its answer's) is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WireFormat {
    /// `application/x-amz-json-1.1`: base64 blobs, timestamps in epoch seconds.
    #[default]
    Json,
    /// `application/x-amz-cbor-1.1`: byte-string blobs, timestamps as tag 1 + epoch ms.
    Cbor,
}

impl WireFormat {
    /// The format of a request with this `Content-Type` value: CBOR for
    /// `application/x-amz-cbor-1.1` (any case, parameters ignored), JSON for anything else,
    /// as riffle always answered.
    pub fn from_content_type(content_type: Option<&str>) -> WireFormat {
        let media_type = content_type
            .and_then(|value| value.split(';').next())
            .map(str::trim);
        match media_type {
            Some(media_type) if media_type.eq_ignore_ascii_case(CBOR_CONTENT_TYPE) => {
                WireFormat::Cbor
            }
            _ => WireFormat::Json,
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub const fn content_type(self) -> &'static str {
        match self {
            WireFormat::Json => JSON_CONTENT_TYPE,
            WireFormat::Cbor => CBOR_CONTENT_TYPE,
        }
    }

    /// Parses a request body into a shape (SerializationException on failure).
    pub fn decode<'de, T: Deserialize<'de>>(self, body: &'de [u8]) -> Result<T, KinesisError> {
        match self {
            WireFormat::Json => decode_json(body),
            WireFormat::Cbor => decode_cbor(body),
        }
    }

    /// Serializes a response shape.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Vec<u8> {
        match self {
            WireFormat::Json => encode_json(value),
            WireFormat::Cbor => encode_cbor(value),
        }
    }

    /// The body of an error answer: `__type` and `message` (`Message` for a
    /// SerializationException) in a JSON object or a CBOR map.
    pub fn encode_error(self, error: &KinesisError) -> Vec<u8> {
        match self {
            WireFormat::Json => error.to_json(),
            WireFormat::Cbor => error.to_cbor(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_follows_the_content_type() {
        let cases = [
            (None, WireFormat::Json),
            (Some(""), WireFormat::Json),
            (Some("application/x-amz-json-1.1"), WireFormat::Json),
            (Some("application/x-amz-json-1.0"), WireFormat::Json),
            (Some("application/json"), WireFormat::Json),
            (Some("application/cbor"), WireFormat::Json),
            (Some("application/x-amz-cbor-1.1"), WireFormat::Cbor),
            (Some("Application/X-Amz-CBOR-1.1"), WireFormat::Cbor),
            (
                Some("application/x-amz-cbor-1.1; charset=utf-8"),
                WireFormat::Cbor,
            ),
            (Some(" application/x-amz-cbor-1.1 "), WireFormat::Cbor),
            (Some("application/x-amz-cbor-1.10"), WireFormat::Json),
        ];
        for (content_type, format) in cases {
            assert_eq!(
                WireFormat::from_content_type(content_type),
                format,
                "{content_type:?}"
            );
        }
        assert_eq!(WireFormat::Cbor.content_type(), CBOR_CONTENT_TYPE);
        assert_eq!(WireFormat::Json.content_type(), JSON_CONTENT_TYPE);
        assert_eq!(WireFormat::default(), WireFormat::Json);
    }

    #[test]
    fn errors_are_encoded_in_the_request_format() {
        let error = KinesisError::serialization("bad");
        assert_eq!(
            WireFormat::Json.encode_error(&error),
            br#"{"__type":"SerializationException","Message":"bad"}"#
        );
        assert_eq!(WireFormat::Cbor.encode_error(&error), error.to_cbor());
    }
}
