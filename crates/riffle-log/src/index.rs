//! The sparse index of one segment and its `.idx` file.
//!
//! An entry points at a frame start roughly every `index_interval_bytes` of frames. It stores
//! the frame's index relative to the segment base, its file position, and the largest
//! `ts_max_ms` of every frame from the segment start up to and including that frame (a
//! running maximum). The running maximum is monotone even if timestamps are not, so both
//! lookups below are binary searches, and the frame they point at is always a safe place to
//! start scanning.
//!
//! The first frame of a segment never gets an entry: position 0 is the implicit start.
//! Entry placement depends only on the frames and the interval, so an index rebuilt by a
//! scan equals the one built while appending.
//!
//! `.idx` file: the entries as 16-byte records `rel_index u32 | position u32 | ts_max_ms u64`
//! (little-endian), then a CRC32C of those bytes as `u32`. It is written once, when the
//! segment is sealed, to a temporary name, fsynced, renamed and the directory fsynced.

/// Bytes of one index record in the `.idx` file.
pub(crate) const INDEX_ENTRY_BYTES: usize = 16;

/// Bytes of the trailing checksum of an `.idx` file.
const INDEX_CRC_BYTES: usize = 4;

/// One sparse-index point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// Index of the frame minus the segment's base index.
    pub rel_index: u32,
    /// Byte position of the frame in the segment file.
    pub position: u32,
    /// Largest `ts_max_ms` of the frames from the segment start through this one.
    pub ts_max_ms: u64,
}

/// Where to start scanning: a frame position, the frame's relative index, and the running
/// maximum of `ts_max_ms` through that frame (0 at the segment start, before any frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScanStart {
    pub position: u64,
    pub rel_index: u64,
    pub ts_max_ms: u64,
    /// How many index entries are at or before this start (entries to keep when cutting
    /// the segment right after the start frame or later).
    pub entries_through: usize,
}

const SEGMENT_START: ScanStart = ScanStart {
    position: 0,
    rel_index: 0,
    ts_max_ms: 0,
    entries_through: 0,
};

/// Whether a frame at `position` gets an index entry, given the entries so far.
pub(crate) fn wants_entry(entries: &[IndexEntry], position: u64, interval_bytes: u64) -> bool {
    let last_position = entries.last().map_or(0, |entry| u64::from(entry.position));
    position > 0 && position >= last_position.saturating_add(interval_bytes)
}

/// The last indexed frame at or before relative index `rel_index`.
pub(crate) fn start_for_index(entries: &[IndexEntry], rel_index: u64) -> ScanStart {
    let count = entries.partition_point(|entry| u64::from(entry.rel_index) <= rel_index);
    match count.checked_sub(1) {
        Some(at) => scan_start(entries, at),
        None => SEGMENT_START,
    }
}

/// A frame at or before the first frame whose `ts_max_ms >= ts_ms`: the last entry whose
/// running maximum is still below `ts_ms` (every frame up to it is below `ts_ms`).
pub(crate) fn start_for_timestamp(entries: &[IndexEntry], ts_ms: u64) -> ScanStart {
    let count = entries.partition_point(|entry| entry.ts_max_ms < ts_ms);
    match count.checked_sub(1) {
        Some(at) => scan_start(entries, at),
        None => SEGMENT_START,
    }
}

fn scan_start(entries: &[IndexEntry], at: usize) -> ScanStart {
    let entry = &entries[at];
    ScanStart {
        position: u64::from(entry.position),
        rel_index: u64::from(entry.rel_index),
        ts_max_ms: entry.ts_max_ms,
        entries_through: at + 1,
    }
}

/// Serialises entries into the `.idx` file format.
pub(crate) fn encode_index_file(entries: &[IndexEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * INDEX_ENTRY_BYTES + INDEX_CRC_BYTES);
    for entry in entries {
        out.extend_from_slice(&entry.rel_index.to_le_bytes());
        out.extend_from_slice(&entry.position.to_le_bytes());
        out.extend_from_slice(&entry.ts_max_ms.to_le_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Parses and validates an `.idx` file for a segment of `segment_bytes` bytes. The error is
/// a human-readable reason; the caller rebuilds the index by scanning.
pub(crate) fn decode_index_file(
    bytes: &[u8],
    segment_bytes: u64,
) -> Result<Vec<IndexEntry>, String> {
    if bytes.len() < INDEX_CRC_BYTES
        || !(bytes.len() - INDEX_CRC_BYTES).is_multiple_of(INDEX_ENTRY_BYTES)
    {
        return Err(format!(
            "index file has an impossible size of {} bytes",
            bytes.len()
        ));
    }
    let body_bytes = bytes.len() - INDEX_CRC_BYTES;
    let (body, crc_bytes) = bytes.split_at(body_bytes);
    let stored = u32::from_le_bytes([crc_bytes[0], crc_bytes[1], crc_bytes[2], crc_bytes[3]]);
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(format!(
            "index checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
        ));
    }
    let mut entries: Vec<IndexEntry> = Vec::with_capacity(body_bytes / INDEX_ENTRY_BYTES);
    for record in body.chunks_exact(INDEX_ENTRY_BYTES) {
        let mut rel = [0u8; 4];
        let mut position = [0u8; 4];
        let mut ts = [0u8; 8];
        rel.copy_from_slice(&record[0..4]);
        position.copy_from_slice(&record[4..8]);
        ts.copy_from_slice(&record[8..16]);
        let entry = IndexEntry {
            rel_index: u32::from_le_bytes(rel),
            position: u32::from_le_bytes(position),
            ts_max_ms: u64::from_le_bytes(ts),
        };
        if entry.position == 0 || u64::from(entry.position) >= segment_bytes {
            return Err(format!(
                "index entry points at position {} outside the segment of {segment_bytes} bytes",
                entry.position
            ));
        }
        if let Some(previous) = entries.last() {
            if entry.rel_index <= previous.rel_index
                || entry.position <= previous.position
                || entry.ts_max_ms < previous.ts_max_ms
            {
                return Err(format!(
                    "index entries out of order: {previous:?} then {entry:?}"
                ));
            }
        }
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<IndexEntry> {
        vec![
            IndexEntry {
                rel_index: 3,
                position: 100,
                ts_max_ms: 10,
            },
            IndexEntry {
                rel_index: 7,
                position: 230,
                ts_max_ms: 10,
            },
            IndexEntry {
                rel_index: 9,
                position: 400,
                ts_max_ms: 25,
            },
        ]
    }

    #[test]
    fn file_round_trip_and_damage_detection() {
        let bytes = encode_index_file(&entries());
        assert_eq!(bytes.len(), 3 * INDEX_ENTRY_BYTES + INDEX_CRC_BYTES);
        assert_eq!(decode_index_file(&bytes, 500).unwrap(), entries());
        assert_eq!(
            decode_index_file(&encode_index_file(&[]), 0).unwrap(),
            vec![]
        );
        for byte in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[byte] ^= 0x10;
            assert!(decode_index_file(&damaged, 500).is_err(), "byte {byte}");
        }
        assert!(decode_index_file(&bytes[..bytes.len() - 1], 500).is_err());
        // Entries pointing past the end of the segment are stale.
        assert!(decode_index_file(&bytes, 400).is_err());
    }

    #[test]
    fn lookups_pick_the_last_safe_start() {
        let entries = entries();
        assert_eq!(start_for_index(&entries, 0), SEGMENT_START);
        assert_eq!(start_for_index(&entries, 2), SEGMENT_START);
        assert_eq!(start_for_index(&entries, 3).position, 100);
        assert_eq!(start_for_index(&entries, 8).position, 230);
        assert_eq!(start_for_index(&entries, 1000).position, 400);
        assert_eq!(start_for_timestamp(&entries, 0), SEGMENT_START);
        assert_eq!(start_for_timestamp(&entries, 10), SEGMENT_START);
        assert_eq!(start_for_timestamp(&entries, 11).position, 230);
        assert_eq!(start_for_timestamp(&entries, 26).position, 400);
    }

    #[test]
    fn entries_are_spaced_by_the_interval() {
        let mut entries = Vec::new();
        assert!(!wants_entry(&entries, 0, 1));
        assert!(!wants_entry(&entries, 99, 100));
        assert!(wants_entry(&entries, 100, 100));
        entries.push(IndexEntry {
            rel_index: 1,
            position: 120,
            ts_max_ms: 0,
        });
        assert!(!wants_entry(&entries, 219, 100));
        assert!(wants_entry(&entries, 220, 100));
    }
}
