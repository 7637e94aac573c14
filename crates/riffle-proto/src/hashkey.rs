//! The 128-bit hash-key space that routes records to shards.
//!
//! A record's hash key is the MD5 of its partition key's UTF-8 bytes read as a big-endian
//! integer, or the decimal `ExplicitHashKey` the producer chose. Every open shard owns an
//! inclusive range of the space; the ranges of a stream's open shards tile `[0, 2^128 - 1]`.

use md5::{Digest, Md5};

use crate::error::KinesisError;

/// The hash key of a partition key: MD5 of its UTF-8 bytes, big-endian.
pub fn partition_key_hash(key: &str) -> u128 {
    let digest: [u8; 16] = Md5::digest(key.as_bytes()).into();
    u128::from_be_bytes(digest)
}

/// Parses an `ExplicitHashKey`. Validation has already checked the decimal pattern
/// `0|([1-9]\d{0,38})`, which still admits values up to 10^39 - 1; anything at or above
/// 2^128 (or anything not decimal at all) gets AWS's InvalidArgumentException.
pub fn parse_explicit_hash_key(value: &str) -> Result<u128, KinesisError> {
    parse_hash_key(value).ok_or_else(|| KinesisError::explicit_hash_key_invalid(value))
}

/// A decimal hash key, or `None` if it is not plain decimal digits below 2^128.
pub fn parse_hash_key(value: &str) -> Option<u128> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.bytes().try_fold(0u128, |acc, digit| {
        acc.checked_mul(10)?.checked_add(u128::from(digit - b'0'))
    })
}

/// The hash-key ranges of a new stream with `shard_count` shards: each `⌊2^128 / N⌋` wide,
/// the last one stretched to end at `2^128 - 1`. These are the ranges AWS gives (recorded for
/// N = 3 by kinesalite's tests against production). `shard_count` 0 yields no ranges.
pub fn initial_shard_ranges(shard_count: u32) -> Vec<(u128, u128)> {
    match shard_count {
        0 => return Vec::new(),
        // 2^128 itself does not fit in a u128.
        1 => return vec![(0, u128::MAX)],
        _ => {}
    }
    let count = u128::from(shard_count);
    // ⌊2^128 / N⌋ without 2^128 itself: ⌊(2^128 - 1) / N⌋, plus one when N divides 2^128
    // (then 2^128 - 1 leaves remainder N - 1). For N ≥ 2 it fits in a u128.
    let width = u128::MAX / count + u128::from(u128::MAX % count == count - 1);
    (0..count)
        .map(|index| {
            let start = if index == 0 { 0 } else { index * width };
            let end = if index == count - 1 {
                u128::MAX
            } else {
                (index + 1) * width - 1
            };
            (start, end)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn md5_hash_keys_are_big_endian() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e.
        assert_eq!(partition_key_hash(""), 0xd41d8cd98f00b204e9800998ecf8427e);
        // MD5("a") = 0cc175b9c0f1b6a831c399e269772661.
        assert_eq!(partition_key_hash("a"), 0x0cc175b9c0f1b6a831c399e269772661);
        // UTF-8 bytes, not UTF-16: MD5("é") over c3 a9.
        assert_eq!(
            partition_key_hash("é"),
            u128::from_be_bytes(Md5::digest([0xc3, 0xa9]).into())
        );
    }

    #[test]
    fn explicit_hash_keys_cover_the_whole_space() {
        assert_eq!(parse_explicit_hash_key("0").unwrap(), 0);
        assert_eq!(
            parse_explicit_hash_key("340282366920938463463374607431768211455").unwrap(),
            u128::MAX
        );
        let error = parse_explicit_hash_key("340282366920938463463374607431768211456").unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidArgumentException);
        assert_eq!(
            error.message.unwrap(),
            "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. \
             Specified value was 340282366920938463463374607431768211456"
        );
        assert!(parse_explicit_hash_key(&"9".repeat(39)).is_err());
        assert!(parse_explicit_hash_key("").is_err());
        assert!(parse_explicit_hash_key("-1").is_err());
        assert!(parse_explicit_hash_key("1a").is_err());
    }

    #[test]
    fn one_shard_covers_everything() {
        assert_eq!(initial_shard_ranges(1), vec![(0, u128::MAX)]);
        assert!(initial_shard_ranges(0).is_empty());
    }

    #[test]
    fn three_shards_match_production() {
        let ranges: Vec<(String, String)> = initial_shard_ranges(3)
            .into_iter()
            .map(|(start, end)| (start.to_string(), end.to_string()))
            .collect();
        let expected = [
            ("0", "113427455640312821154458202477256070484"),
            (
                "113427455640312821154458202477256070485",
                "226854911280625642308916404954512140969",
            ),
            (
                "226854911280625642308916404954512140970",
                "340282366920938463463374607431768211455",
            ),
        ];
        assert_eq!(ranges.len(), 3);
        for ((start, end), (want_start, want_end)) in ranges.iter().zip(expected) {
            assert_eq!(start, want_start);
            assert_eq!(end, want_end);
        }
    }

    #[test]
    fn four_shards_split_evenly() {
        assert_eq!(
            initial_shard_ranges(4),
            vec![
                (0, (1u128 << 126) - 1),
                (1u128 << 126, (2u128 << 126) - 1),
                (2u128 << 126, (3u128 << 126) - 1),
                (3u128 << 126, u128::MAX),
            ]
        );
    }

    #[test]
    fn ranges_tile_the_space_for_many_counts() {
        for count in [2u32, 5, 7, 16, 100, 1000, 10_000] {
            let ranges = initial_shard_ranges(count);
            assert_eq!(ranges.len() as u32, count);
            assert_eq!(ranges[0].0, 0);
            assert_eq!(ranges.last().unwrap().1, u128::MAX);
            for pair in ranges.windows(2) {
                assert!(pair[0].0 <= pair[0].1);
                assert_eq!(pair[0].1 + 1, pair[1].0);
            }
        }
    }
}
