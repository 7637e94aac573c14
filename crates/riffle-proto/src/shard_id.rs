//! Shard IDs: `shardId-` and a 12-digit ordinal, allocated in order and never reused.

/// The prefix of every shard ID riffle issues.
pub const SHARD_ID_PREFIX: &str = "shardId-";

/// Production rejects ordinals above Java's `Integer.MAX_VALUE` ("Could not find shard …").
pub const SHARD_ORDINAL_MAX: u32 = i32::MAX as u32;

/// The ID of the shard with this ordinal: `shardId-000000000007`.
pub fn shard_id(ordinal: u32) -> String {
    format!("{SHARD_ID_PREFIX}{ordinal:012}")
}

/// The ordinal a shard-ID argument names, read the way AWS reads it: the decimal number after
/// the last `-` (or the whole argument when there is none). So `shardId-000000000007`,
/// `shard-7`, `x-00007`, `-7` and `7` all name ordinal 7. `None` for anything else, including
/// numbers above [`SHARD_ORDINAL_MAX`]; AWS answers those with "Could not find shard …"
/// ([`crate::KinesisError::shard_unparseable`]).
pub fn parse_shard_id(value: &str) -> Option<u32> {
    let digits = value.rsplit_once('-').map_or(value, |(_, tail)| tail);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ordinal = digits.bytes().try_fold(0u32, |acc, digit| {
        acc.checked_mul(10)?.checked_add(u32::from(digit - b'0'))
    })?;
    (ordinal <= SHARD_ORDINAL_MAX).then_some(ordinal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_zero_padded_to_twelve_digits() {
        assert_eq!(shard_id(0), "shardId-000000000000");
        assert_eq!(shard_id(7), "shardId-000000000007");
        assert_eq!(shard_id(2_147_483_647), "shardId-002147483647");
        assert_eq!(shard_id(u32::MAX), "shardId-004294967295");
    }

    #[test]
    fn parsing_is_lenient_like_aws() {
        // Cases recorded against production by kinesalite's tests.
        assert_eq!(parse_shard_id("shardId-000000000000"), Some(0));
        assert_eq!(parse_shard_id("shardId-5"), Some(5));
        assert_eq!(parse_shard_id("shard-0"), Some(0));
        assert_eq!(parse_shard_id("2147483647"), Some(2_147_483_647));
        assert_eq!(
            parse_shard_id("some-random-name-2147483647"),
            Some(2_147_483_647)
        );
        assert_eq!(parse_shard_id("a-00002147483647"), Some(2_147_483_647));
        assert_eq!(parse_shard_id("-00002147483647"), Some(2_147_483_647));
        assert_eq!(parse_shard_id("00000000000000000000000000001"), Some(1));
    }

    #[test]
    fn parsing_rejects_what_aws_cannot_find() {
        assert_eq!(parse_shard_id("2147483648"), None);
        assert_eq!(parse_shard_id("shardId-002147483648"), None);
        assert_eq!(parse_shard_id("99999999999999999999"), None);
        assert_eq!(parse_shard_id("ABKLFD8"), None);
        assert_eq!(parse_shard_id("2.14E4"), None);
        assert_eq!(parse_shard_id("shardId-"), None);
        assert_eq!(parse_shard_id(""), None);
        assert_eq!(parse_shard_id("shardId-1a"), None);
        assert_eq!(parse_shard_id("shardId--1"), Some(1));
    }

    #[test]
    fn ids_round_trip() {
        for ordinal in [0, 1, 9, 10, 123_456, SHARD_ORDINAL_MAX] {
            assert_eq!(parse_shard_id(&shard_id(ordinal)), Some(ordinal));
        }
    }
}
