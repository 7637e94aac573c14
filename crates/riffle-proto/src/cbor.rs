//! The CBOR side of the wire (`application/x-amz-cbor-1.1`), as the AWS Java SDKs speak it.
//!
//! The Java SDKs (v1 and v2, hence the KCL and the Flink/Spark connectors) send Kinesis calls
//! as CBOR by default (kinesis-api.md §1.3). The members are the JSON ones, in a CBOR map; what
//! differs is how values are written:
//!
//! - **Blobs** are byte strings (major type 2), never base64. A text string where a blob is
//!   expected is still read as base64, as the JSON codec does.
//! - **Timestamps** are tag 1 followed by an **integer of epoch milliseconds** (the SDKs'
//!   `SdkCborGenerator` writes `instant.toEpochMilli()`; RFC 8949 would say seconds). Every
//!   integer read for a timestamp is milliseconds, tagged or not. A float is read as epoch
//!   seconds, as RFC 8949 defines tag 1 with a float: no Java SDK writes one, and this keeps
//!   the reading of a tag-1 float standard. Answers carry timestamps as tag 1 + integer ms:
//!   the SDKs parse a timestamp's text with `Long.parseLong`, so a float would fail there.
//! - Jackson writes maps, arrays and long strings with **indefinite lengths**; the decoder
//!   takes definite and indefinite forms, every integer width, and half, single and double
//!   floats. Tags other than 1 are skipped (Jackson ignores them too). Answers use definite
//!   lengths.
//!
//! Both directions are serde ([`Deserializer`], [`encode_cbor`]), so the shapes of
//! [`crate::ops`] and the member visitors of [`crate::json::field`] serve CBOR unchanged: a
//! CBOR body decodes to the same typed request as the JSON one and goes through the same
//! validation, with the same texts. The codec reports `is_human_readable() == false`, which
//! is how blobs and timestamps pick their binary form.
//!
//! **Hostile input.** The decoder reads a borrowed slice and never panics. A declared length
//! is checked against the bytes actually left before anything is read or reserved (a string
//! of 2^60 bytes, or an array of 2^60 items, fails at once), nesting is limited to
//! [`NESTING_DEPTH_MAX`] arrays and maps, and tags are skipped in a loop, not by recursion.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{self, Serialize};
use serde::Deserialize;

use crate::error::KinesisError;

/// Arrays and maps nested deeper than this are refused. Kinesis requests nest three deep
/// (PutRecords → Records → an entry); the margin is for unknown members, which are skipped.
pub const NESTING_DEPTH_MAX: usize = 64;

/// The serde newtype-struct name by which a value asks [`encode_cbor`] to write tag 1
/// (epoch-based date/time) in front of it. Other serializers just write the inner value.
pub(crate) const EPOCH_TIME_TAG: &str = "\0riffle::cbor::tag-1";

const MAJOR_UNSIGNED: u8 = 0;
const MAJOR_NEGATIVE: u8 = 1;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
const MAJOR_TAG: u8 = 6;
const MAJOR_SIMPLE: u8 = 7;
/// Additional information 31: indefinite length (or, in major type 7, the break code).
const INDEFINITE: u8 = 31;
const BREAK: u8 = 0xff;
const FALSE: u8 = 0xf4;
const TRUE: u8 = 0xf5;
const NULL: u8 = 0xf6;
const UNDEFINED: u8 = 0xf7;
const TAG_EPOCH_TIME: u64 = 1;

// ===== Decoding =====

/// Parses a CBOR request body into a shape, with the SerializationException texts of the JSON
/// codec for members of the wrong type.
///
/// An empty body counts as an empty map, as an empty JSON body counts as `{}`.
pub fn decode_cbor<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, KinesisError> {
    const EMPTY_MAP: &[u8] = &[0xa0];
    let body = if body.is_empty() { EMPTY_MAP } else { body };
    let mut deserializer = Deserializer::new(body);
    let value = crate::json::field::Structure::<T>::deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value))
        .map_err(Error::into_kinesis)?;
    Ok(value.0)
}

/// A decoding or encoding failure.
///
/// Either the bytes are not well-formed CBOR (a *syntax* error, with the offset where it was
/// found), or a well-formed value does not fit the shape (a *data* error, whose text comes
/// from the member visitors and is passed on verbatim, as the JSON codec does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
    offset: Option<usize>,
}

impl Error {
    fn syntax(offset: usize, what: &str) -> Error {
        Error {
            message: what.to_owned(),
            offset: Some(offset),
        }
    }

    /// The byte offset of a syntax error; `None` for a value that does not fit its shape.
    pub fn offset(&self) -> Option<usize> {
        self.offset
    }

    fn into_kinesis(self) -> KinesisError {
        match self.offset {
            Some(offset) => KinesisError::serialization(format!(
                "Request body is not valid CBOR: {} at byte {offset}",
                self.message
            )),
            None => KinesisError::serialization(self.message),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(offset) => write!(f, "{} at byte {offset}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Error {
        Error {
            message: message.to_string(),
            offset: None,
        }
    }
}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Error {
        Error {
            message: message.to_string(),
            offset: None,
        }
    }
}

/// The initial byte of a data item and its argument.
#[derive(Debug, Clone, Copy)]
struct Head {
    major: u8,
    info: u8,
    /// The value, length, tag number or float bits; 0 when `info` is [`INDEFINITE`].
    argument: u64,
    /// Where the item starts, for error offsets.
    start: usize,
}

impl Head {
    fn is_indefinite(&self) -> bool {
        self.info == INDEFINITE
    }
}

/// A serde deserializer over one CBOR data item in a borrowed slice.
pub struct Deserializer<'de> {
    input: &'de [u8],
    position: usize,
    depth_left: usize,
}

impl<'de> Deserializer<'de> {
    pub fn new(input: &'de [u8]) -> Deserializer<'de> {
        Deserializer {
            input,
            position: 0,
            depth_left: NESTING_DEPTH_MAX,
        }
    }

    /// Succeeds when the whole input has been read.
    pub fn end(&self) -> Result<(), Error> {
        if self.position == self.input.len() {
            Ok(())
        } else {
            Err(Error::syntax(
                self.position,
                "trailing bytes after the top-level value",
            ))
        }
    }

    fn remaining(&self) -> usize {
        self.input.len() - self.position
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.position).copied()
    }

    fn end_of_input(&self) -> Error {
        Error::syntax(self.position, "unexpected end of input")
    }

    /// The next `length` bytes of the item that starts at `item_start`, refused before
    /// anything is read if fewer are left.
    fn take(&mut self, length: u64, item_start: usize) -> Result<&'de [u8], Error> {
        let start = self.position;
        match usize::try_from(length) {
            Ok(length) if length <= self.remaining() => {
                self.position += length;
                Ok(&self.input[start..start + length])
            }
            _ => Err(Error::syntax(
                item_start,
                "declared length runs past the end of the input",
            )),
        }
    }

    fn head(&mut self) -> Result<Head, Error> {
        let start = self.position;
        let Some(initial) = self.peek() else {
            return Err(self.end_of_input());
        };
        self.position += 1;
        let major = initial >> 5;
        let info = initial & 0x1f;
        let argument = match info {
            0..=23 => u64::from(info),
            24..=27 => {
                let width = 1u64 << (info - 24);
                let bytes = self.take(width, start).map_err(|_| {
                    Error::syntax(start, "unexpected end of input inside an item's head")
                })?;
                bytes
                    .iter()
                    .fold(0u64, |value, byte| value << 8 | u64::from(*byte))
            }
            28..=30 => return Err(Error::syntax(start, "reserved additional information")),
            _ => 0,
        };
        Ok(Head {
            major,
            info,
            argument,
            start,
        })
    }

    /// Skips any tags in front of the next item. Iterative: a run of a million tags costs a
    /// million steps, not a million stack frames.
    ///
    /// Tag 1 (epoch time) needs no handling of its own: every integer read for a timestamp is
    /// milliseconds and every float seconds, tagged or not.
    fn skip_tags(&mut self) -> Result<(), Error> {
        while self.peek().is_some_and(|byte| byte >> 5 == MAJOR_TAG) {
            let head = self.head()?;
            if head.is_indefinite() {
                return Err(Error::syntax(head.start, "a tag cannot be indefinite"));
            }
        }
        Ok(())
    }

    /// The items (or, for maps, pairs) a definite container declares, refused at once when
    /// the input cannot hold them; `None` for an indefinite one.
    fn container_length(&self, head: &Head, bytes_per_item: usize) -> Result<Option<u64>, Error> {
        if head.is_indefinite() {
            return Ok(None);
        }
        let fits = (self.remaining() / bytes_per_item) as u64;
        if head.argument > fits {
            return Err(Error::syntax(
                head.start,
                "declared length runs past the end of the input",
            ));
        }
        Ok(Some(head.argument))
    }

    /// The next chunk of an indefinite-length string of `major` type, or `None` at its break.
    /// Chunks must be definite strings of the same type (RFC 8949 §3.2.3).
    fn chunk(&mut self, major: u8) -> Result<Option<(&'de [u8], usize)>, Error> {
        match self.peek() {
            None => Err(self.end_of_input()),
            Some(BREAK) => {
                self.position += 1;
                Ok(None)
            }
            Some(_) => {
                let chunk = self.head()?;
                if chunk.major != major || chunk.is_indefinite() {
                    return Err(Error::syntax(
                        chunk.start,
                        "a chunk of an indefinite-length string must be a definite string of \
                         the same type",
                    ));
                }
                Ok(Some((self.take(chunk.argument, chunk.start)?, chunk.start)))
            }
        }
    }

    /// The bytes of a byte string: borrowed when definite, assembled from its chunks
    /// otherwise (bounded by the input, since every chunk's length was checked against it).
    fn bytes(&mut self, head: &Head) -> Result<Cow<'de, [u8]>, Error> {
        if !head.is_indefinite() {
            return self.take(head.argument, head.start).map(Cow::Borrowed);
        }
        let mut assembled = Vec::new();
        while let Some((chunk, _)) = self.chunk(MAJOR_BYTES)? {
            assembled.extend_from_slice(chunk);
        }
        Ok(Cow::Owned(assembled))
    }

    /// The text of a text string; each chunk of an indefinite one must be UTF-8 by itself.
    fn text(&mut self, head: &Head) -> Result<Cow<'de, str>, Error> {
        if !head.is_indefinite() {
            let bytes = self.take(head.argument, head.start)?;
            return utf8(bytes, head.start).map(Cow::Borrowed);
        }
        let mut assembled = String::new();
        while let Some((chunk, start)) = self.chunk(MAJOR_TEXT)? {
            assembled.push_str(utf8(chunk, start)?);
        }
        Ok(Cow::Owned(assembled))
    }

    /// Enters an array or map, refusing one nested too deep.
    fn enter(&mut self, start: usize) -> Result<(), Error> {
        if self.depth_left == 0 {
            return Err(Error::syntax(
                start,
                "arrays and maps are nested too deeply",
            ));
        }
        self.depth_left -= 1;
        Ok(())
    }

    /// Visits the elements of an array or the pairs of a map, then checks the visitor read
    /// the container to its end.
    fn container<V: Visitor<'de>>(&mut self, head: &Head, visitor: V) -> Result<V::Value, Error> {
        let is_map = head.major == MAJOR_MAP;
        let left = self.container_length(head, if is_map { 2 } else { 1 })?;
        self.enter(head.start)?;
        let mut access = Access { de: self, left };
        let value = if is_map {
            visitor.visit_map(&mut access)
        } else {
            visitor.visit_seq(&mut access)
        };
        let finished = access.left == Some(0);
        self.depth_left += 1;
        let value = value?;
        if finished {
            Ok(value)
        } else {
            Err(Error::syntax(
                self.position,
                "the container was not read to its end",
            ))
        }
    }
}

fn utf8(bytes: &[u8], start: usize) -> Result<&str, Error> {
    std::str::from_utf8(bytes).map_err(|_| Error::syntax(start, "text string is not UTF-8"))
}

/// IEEE 754 binary16 to f64 (exact: every half is a double).
fn half_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 == 0 { 1.0 } else { -1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f64::from(bits & 0x03ff);
    let magnitude = match exponent {
        0 => fraction * 2f64.powi(-24),
        31 if fraction == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1.0 + fraction / 1024.0) * 2f64.powi(exponent - 15),
    };
    sign * magnitude
}

/// Reads array elements or map pairs; `left` is `None` while an indefinite container has not
/// reached its break, and `Some(n)` with the items (pairs) still to come otherwise.
struct Access<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    left: Option<u64>,
}

impl Access<'_, '_> {
    /// Whether another element (or pair) follows; consumes the break of an indefinite one.
    fn next(&mut self) -> Result<bool, Error> {
        match self.left {
            Some(0) => Ok(false),
            Some(left) => {
                self.left = Some(left - 1);
                Ok(true)
            }
            None => match self.de.peek() {
                Some(BREAK) => {
                    self.de.position += 1;
                    self.left = Some(0);
                    Ok(false)
                }
                Some(_) => Ok(true),
                None => Err(self.de.end_of_input()),
            },
        }
    }

    fn hint(&self) -> Option<usize> {
        self.left
            .map(|left| usize::try_from(left).unwrap_or(usize::MAX))
    }
}

impl<'de> SeqAccess<'de> for Access<'_, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.next()? {
            seed.deserialize(&mut *self.de).map(Some)
        } else {
            Ok(None)
        }
    }

    fn size_hint(&self) -> Option<usize> {
        self.hint()
    }
}

impl<'de> MapAccess<'de> for Access<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        if self.next()? {
            seed.deserialize(MapKey(&mut *self.de)).map(Some)
        } else {
            Ok(None)
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(&mut *self.de)
    }

    fn size_hint(&self) -> Option<usize> {
        self.hint()
    }
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.skip_tags()?;
        let head = self.head()?;
        match head.major {
            MAJOR_UNSIGNED | MAJOR_NEGATIVE if head.is_indefinite() => {
                Err(Error::syntax(head.start, "an integer cannot be indefinite"))
            }
            MAJOR_UNSIGNED => visitor.visit_u64(head.argument),
            // -1 - n; below i64::MIN it saturates, as Coral's TruncatingBigNumber does for
            // every Kinesis member.
            MAJOR_NEGATIVE => visitor.visit_i64(
                i64::try_from(head.argument).map_or(i64::MIN, |magnitude| -1 - magnitude),
            ),
            MAJOR_BYTES => match self.bytes(&head)? {
                Cow::Borrowed(bytes) => visitor.visit_borrowed_bytes(bytes),
                Cow::Owned(bytes) => visitor.visit_byte_buf(bytes),
            },
            MAJOR_TEXT => match self.text(&head)? {
                Cow::Borrowed(text) => visitor.visit_borrowed_str(text),
                Cow::Owned(text) => visitor.visit_string(text),
            },
            MAJOR_ARRAY | MAJOR_MAP => self.container(&head, visitor),
            MAJOR_SIMPLE => match head.info {
                20 => visitor.visit_bool(false),
                21 => visitor.visit_bool(true),
                22 | 23 => visitor.visit_unit(),
                // Only the low 16 bits are set for a half, 32 for a single.
                25 => visitor.visit_f64(half_to_f64(head.argument as u16)),
                26 => visitor.visit_f64(f64::from(f32::from_bits(head.argument as u32))),
                27 => visitor.visit_f64(f64::from_bits(head.argument)),
                INDEFINITE => Err(Error::syntax(head.start, "unexpected break")),
                _ => Err(Error::syntax(head.start, "unsupported simple value")),
            },
            // Tags were skipped above.
            _ => Err(Error::syntax(head.start, "unexpected tag")),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.skip_tags()?;
        match self.peek() {
            Some(NULL | UNDEFINED) => {
                self.position += 1;
                visitor.visit_none()
            }
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn is_human_readable(&self) -> bool {
        false
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// A map key. Member names are text; an integer key (which Jackson accepts and turns into
/// its decimal text) names no member and is ignored like any unknown member.
struct MapKey<'a, 'de>(&'a mut Deserializer<'de>);

impl<'de> de::Deserializer<'de> for MapKey<'_, 'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let de = self.0;
        de.skip_tags()?;
        match de.peek().map(|byte| byte >> 5) {
            Some(MAJOR_UNSIGNED | MAJOR_NEGATIVE) => {
                let head = de.head()?;
                if head.is_indefinite() {
                    return Err(Error::syntax(head.start, "an integer cannot be indefinite"));
                }
                let value = i128::from(head.argument);
                let value = if head.major == MAJOR_NEGATIVE {
                    -1 - value
                } else {
                    value
                };
                visitor.visit_string(value.to_string())
            }
            Some(MAJOR_TEXT | MAJOR_BYTES) => de::Deserializer::deserialize_any(de, visitor),
            Some(_) => Err(Error::syntax(de.position, "a map key must be a string")),
            None => Err(de.end_of_input()),
        }
    }

    fn is_human_readable(&self) -> bool {
        false
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

// ===== Encoding =====

/// Serializes a response (or any shape) to CBOR: definite lengths, blobs as byte strings,
/// timestamps as tag 1 + integer epoch milliseconds.
pub fn encode_cbor<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut serializer = Serializer {
        out: Vec::with_capacity(128),
    };
    if let Err(error) = value.serialize(&mut serializer) {
        // As for JSON: every shape of this crate serializes infallibly into memory.
        panic!("a response shape failed to serialize to CBOR: {error}");
    }
    serializer.out
}

/// Appends the head of an item of `major` type with `argument`, in its shortest form.
pub(crate) fn write_head(out: &mut Vec<u8>, major: u8, argument: u64) {
    let major = major << 5;
    if argument < 24 {
        out.push(major | argument as u8);
    } else if let Ok(argument) = u8::try_from(argument) {
        out.extend_from_slice(&[major | 24, argument]);
    } else if let Ok(argument) = u16::try_from(argument) {
        out.push(major | 25);
        out.extend_from_slice(&argument.to_be_bytes());
    } else if let Ok(argument) = u32::try_from(argument) {
        out.push(major | 26);
        out.extend_from_slice(&argument.to_be_bytes());
    } else {
        out.push(major | 27);
        out.extend_from_slice(&argument.to_be_bytes());
    }
}

/// The length of the head [`write_head`] writes for `argument`.
fn head_length(argument: u64) -> usize {
    match argument {
        0..=23 => 1,
        24..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Appends a definite text string.
pub(crate) fn write_text(out: &mut Vec<u8>, text: &str) {
    write_head(out, MAJOR_TEXT, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

/// Appends a definite map head of `pairs` entries.
pub(crate) fn write_map_head(out: &mut Vec<u8>, pairs: u64) {
    write_head(out, MAJOR_MAP, pairs);
}

/// The serde serializer behind [`encode_cbor`].
pub struct Serializer {
    out: Vec<u8>,
}

impl Serializer {
    fn integer(&mut self, value: i64) {
        if value >= 0 {
            write_head(&mut self.out, MAJOR_UNSIGNED, value as u64);
        } else {
            // -1 - n, so n = !value (two's complement).
            write_head(&mut self.out, MAJOR_NEGATIVE, !value as u64);
        }
    }

    fn begin(&mut self, major: u8, length: Option<usize>) -> Compound<'_> {
        let head_at = self.out.len();
        let declared = length.map(|length| length as u64);
        match declared {
            Some(length) => write_head(&mut self.out, major, length),
            None => self.out.push(major << 5 | INDEFINITE),
        }
        Compound {
            serializer: self,
            major,
            head_at,
            declared,
            count: 0,
        }
    }
}

/// An array or map being written. A definite head is written from the declared length and
/// rewritten at the end should the entries written differ (serde's derive declares exactly
/// the members it writes, so that never costs anything in practice).
pub struct Compound<'a> {
    serializer: &'a mut Serializer,
    major: u8,
    head_at: usize,
    declared: Option<u64>,
    count: u64,
}

impl Compound<'_> {
    fn finish(self) {
        let out = &mut self.serializer.out;
        match self.declared {
            None => out.push(BREAK),
            Some(declared) if declared == self.count => {}
            Some(declared) => {
                let mut head = Vec::with_capacity(9);
                write_head(&mut head, self.major, self.count);
                let old_end = self.head_at + head_length(declared);
                out.splice(self.head_at..old_end, head);
            }
        }
    }
}

impl<'a> ser::Serializer for &'a mut Serializer {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, value: bool) -> Result<(), Error> {
        self.out.push(if value { TRUE } else { FALSE });
        Ok(())
    }

    fn serialize_i8(self, value: i8) -> Result<(), Error> {
        self.serialize_i64(i64::from(value))
    }

    fn serialize_i16(self, value: i16) -> Result<(), Error> {
        self.serialize_i64(i64::from(value))
    }

    fn serialize_i32(self, value: i32) -> Result<(), Error> {
        self.serialize_i64(i64::from(value))
    }

    fn serialize_i64(self, value: i64) -> Result<(), Error> {
        self.integer(value);
        Ok(())
    }

    fn serialize_u8(self, value: u8) -> Result<(), Error> {
        self.serialize_u64(u64::from(value))
    }

    fn serialize_u16(self, value: u16) -> Result<(), Error> {
        self.serialize_u64(u64::from(value))
    }

    fn serialize_u32(self, value: u32) -> Result<(), Error> {
        self.serialize_u64(u64::from(value))
    }

    fn serialize_u64(self, value: u64) -> Result<(), Error> {
        write_head(&mut self.out, MAJOR_UNSIGNED, value);
        Ok(())
    }

    fn serialize_f32(self, value: f32) -> Result<(), Error> {
        self.out.push(0xfa);
        self.out.extend_from_slice(&value.to_bits().to_be_bytes());
        Ok(())
    }

    fn serialize_f64(self, value: f64) -> Result<(), Error> {
        self.out.push(0xfb);
        self.out.extend_from_slice(&value.to_bits().to_be_bytes());
        Ok(())
    }

    fn serialize_char(self, value: char) -> Result<(), Error> {
        self.serialize_str(value.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(self, value: &str) -> Result<(), Error> {
        write_text(&mut self.out, value);
        Ok(())
    }

    fn serialize_bytes(self, value: &[u8]) -> Result<(), Error> {
        write_head(&mut self.out, MAJOR_BYTES, value.len() as u64);
        self.out.extend_from_slice(value);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Error> {
        self.out.push(NULL);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        self.serialize_none()
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_none()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        if name == EPOCH_TIME_TAG {
            write_head(&mut self.out, MAJOR_TAG, TAG_EPOCH_TIME);
        }
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        write_map_head(&mut self.out, 1);
        write_text(&mut self.out, variant);
        value.serialize(self)
    }

    fn serialize_seq(self, length: Option<usize>) -> Result<Compound<'a>, Error> {
        Ok(self.begin(MAJOR_ARRAY, length))
    }

    fn serialize_tuple(self, length: usize) -> Result<Compound<'a>, Error> {
        Ok(self.begin(MAJOR_ARRAY, Some(length)))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        length: usize,
    ) -> Result<Compound<'a>, Error> {
        Ok(self.begin(MAJOR_ARRAY, Some(length)))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        length: usize,
    ) -> Result<Compound<'a>, Error> {
        write_map_head(&mut self.out, 1);
        write_text(&mut self.out, variant);
        Ok(self.begin(MAJOR_ARRAY, Some(length)))
    }

    fn serialize_map(self, length: Option<usize>) -> Result<Compound<'a>, Error> {
        Ok(self.begin(MAJOR_MAP, length))
    }

    fn serialize_struct(self, _name: &'static str, length: usize) -> Result<Compound<'a>, Error> {
        Ok(self.begin(MAJOR_MAP, Some(length)))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        length: usize,
    ) -> Result<Compound<'a>, Error> {
        write_map_head(&mut self.out, 1);
        write_text(&mut self.out, variant);
        Ok(self.begin(MAJOR_MAP, Some(length)))
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.count += 1;
        value.serialize(&mut *self.serializer)
    }

    fn end(self) -> Result<(), Error> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.count += 1;
        key.serialize(&mut *self.serializer)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.serializer)
    }

    fn end(self) -> Result<(), Error> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.count += 1;
        write_text(&mut self.serializer.out, key);
        value.serialize(&mut *self.serializer)
    }

    fn end(self) -> Result<(), Error> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
