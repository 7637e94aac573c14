//! The frame codec: how one log entry is laid out on disk.
//!
//! A frame is a fixed 54-byte header followed by an opaque payload, all little-endian:
//!
//! ```text
//! offset  size  field
//!      0     4  len           bytes after len and crc32c (46 + payload length)
//!      4     4  crc32c        CRC32C (Castagnoli) of every byte after this field
//!      8     1  version       FRAME_VERSION (1)
//!      9     1  kind          0 data, 1 blank, 2 membership, 3 seal
//!     10     2  flags         the domain's: stored and returned as given, never interpreted
//!     12     8  term          Raft term of the entry
//!     20     8  leader        node id of the leader that wrote it
//!     28     8  index         Raft index of the entry
//!     36     2  record_count  records in the payload (a domain notion)
//!     38     8  ts_first_ms   arrival time of the first record
//!     46     8  ts_max_ms     largest arrival time in the entry
//!     54     -  payload
//! ```
//!
//! The checksum covers the header fields too, so a frame that verifies also has a trustworthy
//! index, term and timestamps; recovery relies on this when it decides whether a damaged
//! frame is followed by a valid one. The codec is sans-IO so it can be fuzzed on its own.

use std::fmt;

use crate::{EntryMeta, FrameKind};

/// Bytes of the `len u32 | crc32c u32` prefix.
pub const FRAME_PREFIX_BYTES: usize = 8;

/// Bytes of the fixed fields that follow the prefix (version through `ts_max_ms`).
pub const FRAME_FIXED_BYTES: usize = 46;

/// Bytes of a frame whose payload is empty: the prefix plus the fixed fields.
pub const FRAME_HEADER_BYTES: usize = FRAME_PREFIX_BYTES + FRAME_FIXED_BYTES;

/// Largest frame accepted, prefix included. A `len` field that implies a larger frame marks
/// the frame as bad, so a flipped high bit in `len` cannot make recovery or a reader
/// allocate gigabytes.
pub const FRAME_BYTES_MAX: usize = 64 << 20;

/// Largest payload one frame can carry.
pub const FRAME_PAYLOAD_BYTES_MAX: usize = FRAME_BYTES_MAX - FRAME_HEADER_BYTES;

/// The only frame format version this crate writes and reads.
pub const FRAME_VERSION: u8 = 1;

const OFFSET_LEN: usize = 0;
const OFFSET_CRC: usize = 4;
const OFFSET_VERSION: usize = 8;
const OFFSET_KIND: usize = 9;
const OFFSET_FLAGS: usize = 10;
const OFFSET_TERM: usize = 12;
const OFFSET_LEADER: usize = 20;
const OFFSET_INDEX: usize = 28;
const OFFSET_RECORD_COUNT: usize = 36;
const OFFSET_TS_FIRST: usize = 38;
const OFFSET_TS_MAX: usize = 46;

/// Why a byte range is not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes are available than the frame needs (a short read or a cut file).
    Truncated {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes that were available.
        available: usize,
    },
    /// The `len` field is below the fixed header size or above [`FRAME_BYTES_MAX`].
    BadLength(u32),
    /// The stored CRC32C does not match the bytes.
    BadChecksum {
        /// Checksum stored in the frame.
        stored: u32,
        /// Checksum computed over the bytes read.
        computed: u32,
    },
    /// The version byte is not [`FRAME_VERSION`].
    BadVersion(u8),
    /// The kind byte is not one of the four known kinds.
    BadKind(u8),
    /// The payload is larger than [`FRAME_PAYLOAD_BYTES_MAX`] (encoding only).
    PayloadTooLarge(usize),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Truncated { needed, available } => {
                write!(
                    f,
                    "frame truncated: needs {needed} bytes, {available} available"
                )
            }
            FrameError::BadLength(len) => write!(
                f,
                "frame length field {len} outside [{FRAME_FIXED_BYTES}, {}]",
                FRAME_BYTES_MAX - FRAME_PREFIX_BYTES
            ),
            FrameError::BadChecksum { stored, computed } => write!(
                f,
                "frame checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            FrameError::BadVersion(version) => write!(f, "unknown frame version {version}"),
            FrameError::BadKind(kind) => write!(f, "unknown frame kind {kind}"),
            FrameError::PayloadTooLarge(bytes) => write!(
                f,
                "payload of {bytes} bytes exceeds the frame limit of {FRAME_PAYLOAD_BYTES_MAX}"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// The decoded fixed fields of a frame. The payload is
/// `buf[FRAME_HEADER_BYTES..header.frame_bytes]` of the buffer it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Total size of the frame on disk, prefix included.
    pub frame_bytes: usize,
    /// Raft index of the entry.
    pub index: u64,
    /// Kind, flags, term, leader, record count and timestamps.
    pub meta: EntryMeta,
}

impl FrameHeader {
    /// Payload length in bytes.
    pub fn payload_bytes(&self) -> usize {
        self.frame_bytes - FRAME_HEADER_BYTES
    }
}

/// Size on disk of a frame carrying `payload_bytes` of payload.
pub fn encoded_frame_bytes(payload_bytes: usize) -> usize {
    FRAME_HEADER_BYTES + payload_bytes
}

/// Appends the frame for entry `index` to `out` and returns its size in bytes.
///
/// The frame is decoded again from `out` before returning, and a mismatch is an assertion
/// failure: bytes are checked before they are handed to the OS, so a codec bug or a memory
/// fault cannot reach the disk looking valid.
pub fn encode_frame(
    out: &mut Vec<u8>,
    index: u64,
    meta: &EntryMeta,
    payload: &[u8],
) -> Result<usize, FrameError> {
    if payload.len() > FRAME_PAYLOAD_BYTES_MAX {
        return Err(FrameError::PayloadTooLarge(payload.len()));
    }
    let frame_bytes = encoded_frame_bytes(payload.len());
    let start = out.len();
    out.reserve(frame_bytes);
    let len_field = (frame_bytes - FRAME_PREFIX_BYTES) as u32;
    out.extend_from_slice(&len_field.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // checksum placeholder, filled below
    out.push(FRAME_VERSION);
    out.push(meta.kind as u8);
    out.extend_from_slice(&meta.flags.to_le_bytes());
    out.extend_from_slice(&meta.term.to_le_bytes());
    out.extend_from_slice(&meta.leader.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&meta.record_count.to_le_bytes());
    out.extend_from_slice(&meta.ts_first_ms.to_le_bytes());
    out.extend_from_slice(&meta.ts_max_ms.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out[start + FRAME_PREFIX_BYTES..]);
    out[start + OFFSET_CRC..start + OFFSET_CRC + 4].copy_from_slice(&crc.to_le_bytes());

    // Pair assertion across the disk boundary: what we are about to write must read back.
    let check = decode_frame(&out[start..]);
    assert!(
        matches!(check, Ok(header) if header.frame_bytes == frame_bytes
            && header.index == index
            && header.meta == *meta),
        "freshly encoded frame {index} does not decode: {check:?}"
    );
    Ok(frame_bytes)
}

/// Reads the `len` field of a frame prefix (at least 4 bytes) and returns the frame's total
/// size, or why that size is impossible.
pub fn frame_bytes_from_prefix(prefix: &[u8]) -> Result<usize, FrameError> {
    if prefix.len() < 4 {
        return Err(FrameError::Truncated {
            needed: 4,
            available: prefix.len(),
        });
    }
    let len = read_u32(prefix, OFFSET_LEN);
    let len_bytes = len as usize;
    if !(FRAME_FIXED_BYTES..=FRAME_BYTES_MAX - FRAME_PREFIX_BYTES).contains(&len_bytes) {
        return Err(FrameError::BadLength(len));
    }
    Ok(FRAME_PREFIX_BYTES + len_bytes)
}

/// Decodes the fixed fields of the frame at the start of `buf` WITHOUT checking the CRC.
/// Only a cheap pre-filter (recovery uses it to skip most byte offsets before paying for a
/// checksum); never trust its result on its own.
pub fn decode_header_unchecked(buf: &[u8]) -> Result<FrameHeader, FrameError> {
    if buf.len() < FRAME_HEADER_BYTES {
        return Err(FrameError::Truncated {
            needed: FRAME_HEADER_BYTES,
            available: buf.len(),
        });
    }
    let frame_bytes = frame_bytes_from_prefix(buf)?;
    let version = buf[OFFSET_VERSION];
    if version != FRAME_VERSION {
        return Err(FrameError::BadVersion(version));
    }
    let kind_byte = buf[OFFSET_KIND];
    let kind = FrameKind::from_u8(kind_byte).ok_or(FrameError::BadKind(kind_byte))?;
    Ok(FrameHeader {
        frame_bytes,
        index: read_u64(buf, OFFSET_INDEX),
        meta: EntryMeta {
            kind,
            flags: u16::from_le_bytes([buf[OFFSET_FLAGS], buf[OFFSET_FLAGS + 1]]),
            term: read_u64(buf, OFFSET_TERM),
            leader: read_u64(buf, OFFSET_LEADER),
            record_count: u16::from_le_bytes([
                buf[OFFSET_RECORD_COUNT],
                buf[OFFSET_RECORD_COUNT + 1],
            ]),
            ts_first_ms: read_u64(buf, OFFSET_TS_FIRST),
            ts_max_ms: read_u64(buf, OFFSET_TS_MAX),
        },
    })
}

/// Decodes and fully verifies (length bounds, CRC32C, version, kind) the frame at the start
/// of `buf`. `buf` may extend past the frame; the frame's size is `header.frame_bytes`.
pub fn decode_frame(buf: &[u8]) -> Result<FrameHeader, FrameError> {
    if buf.len() < FRAME_PREFIX_BYTES {
        return Err(FrameError::Truncated {
            needed: FRAME_PREFIX_BYTES,
            available: buf.len(),
        });
    }
    let frame_bytes = frame_bytes_from_prefix(buf)?;
    if buf.len() < frame_bytes {
        return Err(FrameError::Truncated {
            needed: frame_bytes,
            available: buf.len(),
        });
    }
    // The checksum comes before the field checks so that random damage reports as a
    // checksum mismatch, the most telling reason.
    let stored = read_u32(buf, OFFSET_CRC);
    let computed = crc32c::crc32c(&buf[FRAME_PREFIX_BYTES..frame_bytes]);
    if stored != computed {
        return Err(FrameError::BadChecksum { stored, computed });
    }
    decode_header_unchecked(&buf[..frame_bytes])
}

fn read_u32(buf: &[u8], offset: usize) -> u32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&buf[offset..offset + 4]);
    u32::from_le_bytes(bytes)
}

fn read_u64(buf: &[u8], offset: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&buf[offset..offset + 8]);
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kind: FrameKind) -> EntryMeta {
        EntryMeta {
            kind,
            flags: 0,
            term: 7,
            leader: 3,
            record_count: 12,
            ts_first_ms: 1_700_000_000_000,
            ts_max_ms: 1_700_000_000_123,
        }
    }

    #[test]
    fn round_trip_every_kind_and_payload_size() {
        for kind in [
            FrameKind::Data,
            FrameKind::Blank,
            FrameKind::Membership,
            FrameKind::Seal,
        ] {
            for payload_bytes in [0usize, 1, 7, 4096, 100_000] {
                let payload: Vec<u8> = (0..payload_bytes).map(|i| (i * 31 % 251) as u8).collect();
                let mut buf = vec![0xAA; 3]; // frames are appended after existing bytes
                let written = encode_frame(&mut buf, 42, &meta(kind), &payload).unwrap();
                assert_eq!(written, FRAME_HEADER_BYTES + payload_bytes);
                assert_eq!(buf.len(), 3 + written);
                let header = decode_frame(&buf[3..]).unwrap();
                assert_eq!(header.frame_bytes, written);
                assert_eq!(header.index, 42);
                assert_eq!(header.meta, meta(kind));
                assert_eq!(header.payload_bytes(), payload_bytes);
                assert_eq!(&buf[3 + FRAME_HEADER_BYTES..3 + written], &payload[..]);
            }
        }
    }

    #[test]
    fn layout_matches_the_documented_offsets() {
        let mut buf = Vec::new();
        let flagged = EntryMeta {
            flags: 0xA501,
            ..meta(FrameKind::Membership)
        };
        encode_frame(&mut buf, 0x0102_0304_0506_0708, &flagged, b"xy").unwrap();
        assert_eq!(read_u32(&buf, 0), (FRAME_FIXED_BYTES + 2) as u32);
        assert_eq!(buf[8], 1);
        assert_eq!(buf[9], 2);
        assert_eq!(u16::from_le_bytes([buf[10], buf[11]]), 0xA501);
        assert_eq!(decode_frame(&buf).unwrap().meta, flagged);
        assert_eq!(read_u64(&buf, 12), 7);
        assert_eq!(read_u64(&buf, 20), 3);
        assert_eq!(read_u64(&buf, 28), 0x0102_0304_0506_0708);
        assert_eq!(u16::from_le_bytes([buf[36], buf[37]]), 12);
        assert_eq!(read_u64(&buf, 38), 1_700_000_000_000);
        assert_eq!(read_u64(&buf, 46), 1_700_000_000_123);
        assert_eq!(&buf[54..], b"xy");
        assert_eq!(read_u32(&buf, 4), crc32c::crc32c(&buf[8..]));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let mut clean = Vec::new();
        encode_frame(&mut clean, 9, &meta(FrameKind::Data), b"hello, frame").unwrap();
        for byte in 0..clean.len() {
            for bit in 0..8 {
                let mut damaged = clean.clone();
                damaged[byte] ^= 1 << bit;
                let result = decode_frame(&damaged);
                assert!(
                    result.is_err(),
                    "flip of bit {bit} in byte {byte} went unnoticed: {result:?}"
                );
            }
        }
    }

    #[test]
    fn crc_mismatch_is_reported_as_such() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, 1, &meta(FrameKind::Data), b"payload").unwrap();
        let last = buf.len() - 1;
        buf[last] ^= 0x40;
        assert!(matches!(
            decode_frame(&buf),
            Err(FrameError::BadChecksum { .. })
        ));
    }

    #[test]
    fn short_buffers_and_bad_lengths_are_rejected() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, 1, &meta(FrameKind::Blank), b"abc").unwrap();
        for cut in 0..buf.len() {
            assert!(
                matches!(decode_frame(&buf[..cut]), Err(FrameError::Truncated { .. })),
                "cut at {cut}"
            );
        }
        let mut huge = buf.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_frame(&huge), Err(FrameError::BadLength(u32::MAX)));
        let mut tiny = buf.clone();
        tiny[0..4].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(decode_frame(&tiny), Err(FrameError::BadLength(3)));
    }

    #[test]
    fn unknown_version_and_kind_are_rejected_even_with_a_valid_crc() {
        for (offset, value) in [(OFFSET_VERSION, 2u8), (OFFSET_KIND, 4u8)] {
            let mut buf = Vec::new();
            encode_frame(&mut buf, 1, &meta(FrameKind::Data), b"abc").unwrap();
            buf[offset] = value;
            let crc = crc32c::crc32c(&buf[FRAME_PREFIX_BYTES..]);
            buf[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_le_bytes());
            let result = decode_frame(&buf);
            assert!(
                matches!(
                    result,
                    Err(FrameError::BadVersion(2)) | Err(FrameError::BadKind(4))
                ),
                "{result:?}"
            );
        }
    }

    #[test]
    fn oversized_payload_is_refused_before_encoding() {
        let payload = vec![0u8; FRAME_PAYLOAD_BYTES_MAX + 1];
        let mut buf = Vec::new();
        assert_eq!(
            encode_frame(&mut buf, 1, &meta(FrameKind::Data), &payload),
            Err(FrameError::PayloadTooLarge(FRAME_PAYLOAD_BYTES_MAX + 1))
        );
        assert!(buf.is_empty());
    }
}
