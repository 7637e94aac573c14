//! Sequence numbers in the 56-digit layout production Kinesis uses.
//!
//! A sequence number is a 186-bit integer written in decimal. Read as 47 hex digits:
//!
//! | hex digits | bits      | meaning                                        |
//! |------------|-----------|------------------------------------------------|
//! | 0          | 184–187   | `2`                                            |
//! | 1–9        | 148–183   | shard creation time, epoch seconds (36 bits)   |
//! | 10         | 144–147   | low nibble of the shard ordinal                |
//! | 11–26      | 80–143    | per-shard counter (64 bits, top bit 0)         |
//! | 27–28      | 72–79     | `00`                                           |
//! | 29–37      | 36–71     | record arrival time, epoch seconds (36 bits)   |
//! | 38–45      | 4–35      | shard ordinal (32 bits)                        |
//! | 46         | 0–3       | `2` (format version)                           |
//!
//! The leading `2` pins every number to exactly 56 decimal digits, so comparing them as strings
//! (as some tools do) and as integers (as KCL does) agree. Within a shard the counter sits above
//! the arrival time, so numbers rise with the counter whatever the clock does.
//!
//! Riffle's counter is `(log_index << 16) | sub`: the Raft/log index of the batch and the
//! record's slot within it ([`SeqNo::position`]).
//!
//! A *continuation number* (SubscribeToShard's `ContinuationSequenceNumber`) names the point
//! just after a record rather than a record: it carries that record's counter and the arrival
//! time [`CONTINUATION_ARRIVAL_S`], which no record has. Arrival sits below the counter, so it
//! sorts after the record and before the next one, and a reader starting AT or AFTER it starts
//! at the next record either way ([`SeqNo::is_continuation`]).
//!
//! The arithmetic is a small fixed-width 192-bit integer (`U192` below); no bignum crate.

/// Decimal digits of every sequence number riffle issues.
pub const SEQUENCE_NUMBER_DIGITS: usize = 56;

/// Bits of the two time fields.
const TIME_BITS: u32 = 36;
const TIME_MAX: u64 = (1 << TIME_BITS) - 1;

/// Bits of the record's slot within its log entry.
const SUB_BITS: u32 = 16;

/// The counter's top bit must stay clear.
const COUNTER_MAX: u64 = i64::MAX as u64;

/// Largest log index that fits in the counter next to a 16-bit slot.
pub const LOG_INDEX_MAX: u64 = COUNTER_MAX >> SUB_BITS;

/// The arrival time of a continuation number: the largest the field holds (the year 4147), so
/// no record ever has it and it sorts after every record with the same counter.
pub const CONTINUATION_ARRIVAL_S: u64 = TIME_MAX;

const VERSION: u64 = 2;
const LEADING: u64 = 2;

// Bit offsets of the fields (see the table above).
const LEADING_SHIFT: u32 = 184;
const CREATED_SHIFT: u32 = 148;
const ORDINAL_NIBBLE_SHIFT: u32 = 144;
const COUNTER_SHIFT: u32 = 80;
const RESERVED_SHIFT: u32 = 72;
const ARRIVAL_SHIFT: u32 = 36;
const ORDINAL_SHIFT: u32 = 4;

/// The decoded fields of a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeqNo {
    /// When the shard was created, epoch seconds (< 2^36).
    pub shard_created_s: u64,
    pub shard_ordinal: u32,
    /// Position within the shard (< 2^63); see [`SeqNo::position`].
    pub counter: u64,
    /// When the record arrived, epoch seconds (< 2^36).
    pub arrival_s: u64,
}

impl SeqNo {
    /// The number of the record in slot `sub` of log entry `log_index` of a shard.
    pub fn at_position(
        shard_created_s: u64,
        shard_ordinal: u32,
        log_index: u64,
        sub: u16,
        arrival_s: u64,
    ) -> SeqNo {
        assert!(
            log_index <= LOG_INDEX_MAX,
            "log index {log_index} does not fit a sequence number"
        );
        SeqNo {
            shard_created_s,
            shard_ordinal,
            counter: (log_index << SUB_BITS) | u64::from(sub),
            arrival_s,
        }
    }

    /// The (log index, slot) the counter encodes.
    pub fn position(&self) -> (u64, u16) {
        (self.counter >> SUB_BITS, (self.counter & 0xffff) as u16)
    }

    /// Whether this is a continuation number: the point just after the record at
    /// [`SeqNo::position`], not that record.
    pub fn is_continuation(&self) -> bool {
        self.arrival_s == CONTINUATION_ARRIVAL_S
    }

    /// The 56-digit decimal form.
    ///
    /// Panics if a field is out of range: times must fit 36 bits (until the year 4147) and the
    /// counter 63 bits; riffle never mints such values.
    pub fn encode(&self) -> String {
        assert!(
            self.shard_created_s <= TIME_MAX,
            "shard creation time out of range"
        );
        assert!(self.arrival_s <= TIME_MAX, "arrival time out of range");
        assert!(self.counter <= COUNTER_MAX, "sequence counter out of range");
        let mut value = U192::ZERO;
        value.or_bits(LEADING, LEADING_SHIFT);
        value.or_bits(self.shard_created_s, CREATED_SHIFT);
        value.or_bits(u64::from(self.shard_ordinal & 0xf), ORDINAL_NIBBLE_SHIFT);
        value.or_bits(self.counter, COUNTER_SHIFT);
        value.or_bits(self.arrival_s, ARRIVAL_SHIFT);
        value.or_bits(u64::from(self.shard_ordinal), ORDINAL_SHIFT);
        value.or_bits(VERSION, 0);
        let text = value.to_decimal();
        assert_eq!(
            text.len(),
            SEQUENCE_NUMBER_DIGITS,
            "layout always yields 56 digits"
        );
        text
    }

    /// Decodes a sequence number riffle could have issued; `None` for anything else (wrong
    /// length, not decimal, leading or trailing nibble not 2, reserved byte not 0, counter top
    /// bit set, ordinal nibble disagreeing with the ordinal).
    pub fn decode(text: &str) -> Option<SeqNo> {
        if text.len() != SEQUENCE_NUMBER_DIGITS || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let value = U192::from_decimal(text)?;
        let well_formed = value.bits(LEADING_SHIFT, 8) == LEADING
            && value.bits(0, 4) == VERSION
            && value.bits(RESERVED_SHIFT, 8) == 0;
        if !well_formed {
            return None;
        }
        let counter = value.bits(COUNTER_SHIFT, 64);
        let shard_ordinal = value.bits(ORDINAL_SHIFT, 32) as u32;
        if counter > COUNTER_MAX
            || value.bits(ORDINAL_NIBBLE_SHIFT, 4) != u64::from(shard_ordinal & 0xf)
        {
            return None;
        }
        Some(SeqNo {
            shard_created_s: value.bits(CREATED_SHIFT, TIME_BITS),
            shard_ordinal,
            counter,
            arrival_s: value.bits(ARRIVAL_SHIFT, TIME_BITS),
        })
    }
}

/// The sequence numbers of consecutive slots of one log entry, as decimal strings, without a
/// 192-bit division per number.
///
/// The slot is the lowest 16 bits of the counter, which sits at bit 80 of the number, so the
/// number of slot `s + 1` is the number of slot `s` plus 2^80. A run encodes its first number
/// once and then adds the 25 decimal digits of 2^80 digit by digit: the hot paths (a PutRecords
/// answer, a GetRecords page) pay one full encoding per entry rather than one per record.
#[derive(Debug, Clone)]
pub struct SequenceRun {
    digits: [u8; SEQUENCE_NUMBER_DIGITS],
    slot: u32,
}

/// 2^80 in decimal, least significant digit first.
const TWO_POW_80_DIGITS: &[u8; 25] = b"6716074719264169185298021";

impl SequenceRun {
    /// The run starting at `first` (whose counter's slot is the first slot of the run).
    pub fn new(first: &SeqNo) -> SequenceRun {
        let text = first.encode();
        let mut digits = [b'0'; SEQUENCE_NUMBER_DIGITS];
        digits.copy_from_slice(text.as_bytes());
        SequenceRun {
            digits,
            slot: first.position().1.into(),
        }
    }

    /// The current number.
    pub fn current(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.digits).unwrap_or_else(|_| unreachable!("digits are ASCII"))
    }

    /// The slot the current number is for.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// Moves to the next slot. Panics past slot 65,535 (an entry holds fewer records).
    pub fn advance(&mut self) {
        assert!(
            self.slot < u32::from(u16::MAX),
            "a log entry has at most 65,535 slots"
        );
        let mut carry = 0u8;
        for (position, digit) in self.digits.iter_mut().rev().enumerate() {
            let add = TWO_POW_80_DIGITS.get(position).map_or(0, |d| d - b'0');
            if add == 0 && carry == 0 && position >= TWO_POW_80_DIGITS.len() {
                break;
            }
            let sum = (*digit - b'0') + add + carry;
            *digit = b'0' + sum % 10;
            carry = sum / 10;
        }
        debug_assert_eq!(carry, 0, "a 56-digit number stays 56 digits");
        self.slot += 1;
    }
}

/// An unsigned 192-bit integer, little-endian 64-bit limbs: just enough arithmetic for the
/// decimal form of sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct U192([u64; 3]);

/// The largest power of ten below 2^64, for converting 19 digits at a time.
const TEN_POW_19: u64 = 10_000_000_000_000_000_000;
const CHUNK_DIGITS: usize = 19;

impl U192 {
    const ZERO: U192 = U192([0; 3]);

    /// ORs `value` in at bit `shift` (the caller keeps it within 192 bits).
    fn or_bits(&mut self, value: u64, shift: u32) {
        let limb = (shift / 64) as usize;
        let offset = shift % 64;
        self.0[limb] |= value << offset;
        if offset != 0 && limb + 1 < self.0.len() {
            self.0[limb + 1] |= value >> (64 - offset);
        }
    }

    /// The `width` (≤ 64) bits starting at bit `shift`.
    fn bits(&self, shift: u32, width: u32) -> u64 {
        let limb = (shift / 64) as usize;
        let offset = shift % 64;
        let mut value = self.0[limb] >> offset;
        if offset != 0 && limb + 1 < self.0.len() {
            value |= self.0[limb + 1] << (64 - offset);
        }
        if width < 64 {
            value &= (1 << width) - 1;
        }
        value
    }

    fn is_zero(&self) -> bool {
        self.0.iter().all(|limb| *limb == 0)
    }

    /// `self = self * factor + addend`; `false` on overflow.
    fn mul_add(&mut self, factor: u64, addend: u64) -> bool {
        let mut carry = u128::from(addend);
        for limb in &mut self.0 {
            let product = u128::from(*limb) * u128::from(factor) + carry;
            *limb = product as u64;
            carry = product >> 64;
        }
        carry == 0
    }

    /// Divides in place and returns the remainder.
    fn div_rem(&mut self, divisor: u64) -> u64 {
        let divisor = u128::from(divisor);
        let mut remainder = 0u128;
        for limb in self.0.iter_mut().rev() {
            let current = (remainder << 64) | u128::from(*limb);
            let quotient = current / divisor;
            // One 128-bit division per limb; the remainder by multiplication is cheaper.
            remainder = current - quotient * divisor;
            *limb = quotient as u64;
        }
        remainder as u64
    }

    fn from_decimal(text: &str) -> Option<U192> {
        let mut value = U192::ZERO;
        for digit in text.bytes() {
            if !digit.is_ascii_digit() || !value.mul_add(10, u64::from(digit - b'0')) {
                return None;
            }
        }
        Some(value)
    }

    fn to_decimal(mut self) -> String {
        // 192 bits are at most 58 decimal digits: four chunks of 19 always suffice.
        let mut digits = [b'0'; 4 * CHUNK_DIGITS];
        let mut end = digits.len();
        while !self.is_zero() {
            let mut chunk = self.div_rem(TEN_POW_19);
            for slot in digits[end - CHUNK_DIGITS..end].iter_mut().rev() {
                *slot = b'0' + (chunk % 10) as u8;
                chunk /= 10;
            }
            end -= CHUNK_DIGITS;
        }
        let first = digits
            .iter()
            .position(|digit| *digit != b'0')
            .unwrap_or(digits.len() - 1);
        digits[first..]
            .iter()
            .map(|digit| char::from(*digit))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn two_pow_80_digits_are_right() {
        let expected: String = (1u128 << 80).to_string().chars().rev().collect();
        assert_eq!(std::str::from_utf8(TWO_POW_80_DIGITS).unwrap(), expected);
    }

    proptest! {
        /// A run yields exactly what encoding each slot on its own yields.
        #[test]
        fn runs_equal_one_by_one_encoding(
            created in 0u64..(1 << 36),
            ordinal in any::<u32>(),
            index in 0u64..=LOG_INDEX_MAX,
            first_slot in 0u16..u16::MAX,
            steps in 0usize..600,
            arrival in 0u64..(1 << 36),
        ) {
            let first = SeqNo::at_position(created, ordinal, index, first_slot, arrival);
            let mut run = SequenceRun::new(&first);
            let last = (usize::from(first_slot) + steps).min(usize::from(u16::MAX));
            for slot in usize::from(first_slot)..=last {
                let expected = SeqNo::at_position(created, ordinal, index, slot as u16, arrival);
                prop_assert_eq!(run.current(), expected.encode());
                prop_assert_eq!(run.slot() as usize, slot);
                if slot < last {
                    run.advance();
                }
            }
        }
    }

    proptest! {
        /// A continuation number sorts after the record whose counter it carries, whatever
        /// that record's arrival time, and before the record with the next counter.
        #[test]
        fn continuation_numbers_sort_between_records(
            created in 0u64..(1 << 36),
            ordinal in any::<u32>(),
            counter in 0u64..COUNTER_MAX,
            arrival in 0u64..CONTINUATION_ARRIVAL_S,
            next_arrival in 0u64..CONTINUATION_ARRIVAL_S,
        ) {
            let record = SeqNo {
                shard_created_s: created,
                shard_ordinal: ordinal,
                counter,
                arrival_s: arrival,
            };
            let continuation = SeqNo {
                arrival_s: CONTINUATION_ARRIVAL_S,
                ..record
            };
            let next = SeqNo {
                counter: counter + 1,
                arrival_s: next_arrival,
                ..record
            };
            let decoded = SeqNo::decode(&continuation.encode()).unwrap();
            prop_assert!(decoded.is_continuation());
            prop_assert!(!record.is_continuation());
            prop_assert_eq!(decoded.position(), record.position());
            // Fixed width: string order is numeric order.
            prop_assert!(record.encode() < continuation.encode());
            prop_assert!(continuation.encode() < next.encode());
        }
    }

    /// Sequence numbers from the AWS documentation, which fit the layout.
    const DOC_EXAMPLES: [&str; 2] = [
        "49543463076548007577105092703039560359975228518395019266",
        "49590338271490256608559692538361571095921575989136588898",
    ];

    #[test]
    fn documented_numbers_decode_and_re_encode() {
        let first = SeqNo::decode(DOC_EXAMPLES[0]).unwrap();
        assert_eq!(
            first,
            SeqNo {
                shard_created_s: 0x0542050cd,
                shard_ordinal: 0,
                counter: 0x157d,
                arrival_s: 0x05420bb34,
            }
        );
        let second = SeqNo::decode(DOC_EXAMPLES[1]).unwrap();
        assert_eq!(second.shard_ordinal, 6);
        assert_eq!(second.counter, 0x67648a17);
        for example in DOC_EXAMPLES {
            assert_eq!(SeqNo::decode(example).unwrap().encode(), example);
        }
    }

    #[test]
    fn encoding_matches_the_hex_layout() {
        let seq = SeqNo {
            shard_created_s: 0x0_5466_f823,
            shard_ordinal: 0x1234_567a,
            counter: 0x0000_546b_b180_13c2,
            arrival_s: 0x0_5065_ef7f,
        };
        let decimal = seq.encode();
        let value = U192::from_decimal(&decimal).unwrap();
        let hex = format!("{:x}{:016x}{:016x}", value.0[2], value.0[1], value.0[0]);
        assert_eq!(hex, "205466f823a0000546bb18013c20005065ef7f1234567a2");
    }

    #[test]
    fn extremes_stay_56_digits() {
        let smallest = SeqNo {
            shard_created_s: 0,
            shard_ordinal: 0,
            counter: 0,
            arrival_s: 0,
        };
        let largest = SeqNo {
            shard_created_s: TIME_MAX,
            shard_ordinal: u32::MAX,
            counter: COUNTER_MAX,
            arrival_s: TIME_MAX,
        };
        for seq in [smallest, largest] {
            let text = seq.encode();
            assert_eq!(text.len(), 56, "{text}");
            assert_eq!(SeqNo::decode(&text), Some(seq));
        }
    }

    #[test]
    fn malformed_numbers_are_rejected() {
        let hex_to_decimal = |hex: &str| {
            let mut value = U192::ZERO;
            for digit in hex.chars() {
                assert!(value.mul_add(16, u64::from(digit.to_digit(16).unwrap())));
            }
            value.to_decimal()
        };
        // Hex digits by field: leading, created, nibble, counter, reserved, arrival, ordinal,
        // version.
        let layout = |leading: &str, nibble: &str, counter: &str, reserved: &str, version: &str| {
            let zeros = |n: usize| "0".repeat(n);
            format!(
                "{leading}{}{nibble}{counter}{reserved}{}{}{version}",
                zeros(9),
                zeros(9),
                zeros(8)
            )
        };
        let zero_counter = "0".repeat(16);
        let valid = layout("2", "0", &zero_counter, "00", "2");
        assert_eq!(valid.len(), 47);
        assert_eq!(
            SeqNo::decode(&hex_to_decimal(&valid)).map(|seq| seq.counter),
            Some(0)
        );
        // Cases production rejects (kinesalite's tests): version 0 and 4, a leading 3, the
        // counter's top bit set; and riffle's own rules: reserved byte set, an ordinal nibble
        // that disagrees with the ordinal.
        for hex in [
            layout("2", "0", &zero_counter, "00", "0"),
            layout("2", "0", &zero_counter, "00", "4"),
            layout("3", "0", &zero_counter, "00", "2"),
            layout("2", "0", &format!("8{}", "0".repeat(15)), "00", "2"),
            layout("2", "0", &zero_counter, "01", "2"),
            layout("2", "1", &zero_counter, "00", "2"),
        ] {
            assert_eq!(hex.len(), 47);
            assert_eq!(SeqNo::decode(&hex_to_decimal(&hex)), None, "{hex}");
        }
        assert_eq!(SeqNo::decode(""), None);
        assert_eq!(SeqNo::decode("0"), None);
        assert_eq!(
            SeqNo::decode("26227199374822427428162556223570313216"),
            None
        );
        assert_eq!(SeqNo::decode(&"9".repeat(56)), None);
        assert_eq!(
            SeqNo::decode("4954346307654800757710509270303956035997522851839501926a"),
            None
        );
    }

    #[test]
    fn positions_pack_into_the_counter() {
        let seq = SeqNo::at_position(1_700_000_000, 3, 0x1234, 7, 1_700_000_001);
        assert_eq!(seq.counter, 0x1234_0007);
        assert_eq!(seq.position(), (0x1234, 7));
        let seq = SeqNo::at_position(0, 0, LOG_INDEX_MAX, u16::MAX, 0);
        assert_eq!(seq.counter, COUNTER_MAX);
        assert_eq!(seq.position(), (LOG_INDEX_MAX, u16::MAX));
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn oversized_log_indexes_are_refused() {
        SeqNo::at_position(0, 0, LOG_INDEX_MAX + 1, 0, 0);
    }

    fn any_seqno() -> impl Strategy<Value = SeqNo> {
        (0..=TIME_MAX, any::<u32>(), 0..=COUNTER_MAX, 0..=TIME_MAX).prop_map(
            |(shard_created_s, shard_ordinal, counter, arrival_s)| SeqNo {
                shard_created_s,
                shard_ordinal,
                counter,
                arrival_s,
            },
        )
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(seq in any_seqno()) {
            let text = seq.encode();
            prop_assert_eq!(text.len(), SEQUENCE_NUMBER_DIGITS);
            prop_assert_eq!(SeqNo::decode(&text), Some(seq));
        }

        #[test]
        fn strings_sort_by_counter_within_a_shard(
            created in 0..=TIME_MAX,
            ordinal in any::<u32>(),
            a in (0..=COUNTER_MAX, 0..=TIME_MAX),
            b in (0..=COUNTER_MAX, 0..=TIME_MAX),
        ) {
            let seq = |(counter, arrival_s): (u64, u64)| SeqNo {
                shard_created_s: created,
                shard_ordinal: ordinal,
                counter,
                arrival_s,
            };
            let (text_a, text_b) = (seq(a).encode(), seq(b).encode());
            if a.0 != b.0 {
                prop_assert_eq!(a.0.cmp(&b.0), text_a.cmp(&text_b));
            }
        }

        #[test]
        fn neighbouring_positions_sort_in_order(
            created in 0..=TIME_MAX,
            ordinal in any::<u32>(),
            index in 0..LOG_INDEX_MAX,
            sub in any::<u16>(),
            arrival_early in 0..=TIME_MAX,
            arrival_late in 0..=TIME_MAX,
        ) {
            // Clocks may step back: a later position with an earlier arrival still sorts after.
            let earlier = SeqNo::at_position(created, ordinal, index, sub, arrival_late).encode();
            let later = SeqNo::at_position(created, ordinal, index + 1, 0, arrival_early).encode();
            prop_assert!(earlier < later);
        }

        #[test]
        fn decimal_conversion_round_trips(limbs in any::<[u64; 3]>()) {
            let value = U192(limbs);
            let text = value.to_decimal();
            prop_assert_eq!(U192::from_decimal(&text), Some(value));
        }
    }
}
