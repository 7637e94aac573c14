//! Request validation with AWS's (Coral's) ValidationException texts.
//!
//! Coral checks every member against the model's constraints after parsing and reports up to
//! ten failures in one message:
//!
//! ```text
//! 2 validation errors detected: Value '' at 'streamName' failed to satisfy constraint: Member
//! must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; Value '' at 'streamName' failed to
//! satisfy constraint: Member must have length greater than or equal to 1
//! ```
//!
//! Member paths are camelCase, list members are 1-based (`records.3.member.partitionKey`),
//! blobs print as Java's `HeapByteBuffer`. Within one member the checks run in Coral's order:
//! null, pattern, enum, minimum, maximum. Patterns are matched by hand-written functions (no
//! regex engine) that implement exactly the model's expressions, in linear time so a huge value
//! cannot make validation slow.

use std::collections::BTreeMap;
use std::fmt::{self, Display, Write as _};

use crate::error::KinesisError;
use crate::limits::VALIDATION_ERRORS_MAX;

/// Where a member sits in the request, printed the way Coral prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path<'a> {
    /// A top-level member: `streamName`.
    Field(&'a str),
    /// A member of a nested structure: `streamModeDetails.streamMode`.
    Nested(&'a str, &'a str),
    /// A member of the `index`-th (0-based) structure of a list: `records.3.member.data`.
    Member(&'a str, usize, &'a str),
}

impl Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Field(name) => f.write_str(name),
            Path::Nested(parent, name) => write!(f, "{parent}.{name}"),
            Path::Member(list, index, name) => write!(f, "{list}.{}.member.{name}", index + 1),
        }
    }
}

/// A regular expression of the Kinesis model, matched by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// `[a-zA-Z0-9_.-]+`: stream, consumer and shard names.
    Name,
    /// `0|([1-9]\d{0,38})`: hash keys.
    HashKey,
    /// `0|([1-9]\d{0,128})`: sequence numbers.
    SequenceNumber,
    /// `arn:aws.*:kinesis:.*:\d{12}:stream/\S+`.
    StreamArn,
    /// `arn:aws.*:kinesis:.*:\d{12}:.*(stream|channel|queue)/\S+`: taggable resources.
    ResourceArn,
    /// `[a-z0-9]{20}-[a-z0-9]{3}`: the reserved `StreamId`.
    StreamId,
    /// `^(arn):aws.*:kinesis:.*:\d{12}:.*stream\/[a-zA-Z0-9_.-]+\/consumer\/[a-zA-Z0-9_.-]+:[0-9]+`.
    ConsumerArn,
    /// A pattern of a newer part of the model (channels), matched by its own function.
    Other(&'static OtherPattern),
    /// `arn:aws.*:kinesis:.*:\d{12}:queue/\S+`.
    QueueArn,
}

/// A pattern defined beside the shapes that use it: its text as Coral prints it and a
/// hand-written matcher with `String.matches` semantics.
#[derive(Debug)]
pub struct OtherPattern {
    pub text: &'static str,
    pub matches: fn(&str) -> bool,
}

impl PartialEq for OtherPattern {
    fn eq(&self, other: &OtherPattern) -> bool {
        self.text == other.text
    }
}

impl Eq for OtherPattern {}

impl Pattern {
    /// The expression as Coral prints it in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::Name => "[a-zA-Z0-9_.-]+",
            Pattern::HashKey => r"0|([1-9]\d{0,38})",
            Pattern::SequenceNumber => r"0|([1-9]\d{0,128})",
            Pattern::StreamArn => r"arn:aws.*:kinesis:.*:\d{12}:stream/\S+",
            Pattern::ResourceArn => r"arn:aws.*:kinesis:.*:\d{12}:.*(stream|channel|queue)/\S+",
            Pattern::StreamId => "[a-z0-9]{20}-[a-z0-9]{3}",
            Pattern::ConsumerArn => {
                r"^(arn):aws.*:kinesis:.*:\d{12}:.*stream\/[a-zA-Z0-9_.-]+\/consumer\/[a-zA-Z0-9_.-]+:[0-9]+"
            }
            Pattern::Other(other) => other.text,
            Pattern::QueueArn => r"arn:aws.*:kinesis:.*:\d{12}:queue/\S+",
        }
    }

    /// Whether the whole of `value` matches (Java `String.matches` semantics).
    pub fn matches(self, value: &str) -> bool {
        match self {
            Pattern::Name => is_name(value),
            Pattern::HashKey => is_decimal(value, 38),
            Pattern::SequenceNumber => is_decimal(value, 128),
            Pattern::StreamArn => is_stream_arn(value),
            Pattern::ResourceArn => is_resource_arn(value),
            Pattern::StreamId => is_stream_id(value),
            Pattern::ConsumerArn => is_consumer_arn(value),
            Pattern::Other(other) => (other.matches)(value),
            Pattern::QueueArn => is_kind_arn(value, ":queue/"),
        }
    }
}

/// The model's constraints on a string member.
#[derive(Debug, Clone, Copy)]
pub struct StringRule {
    pub pattern: Option<Pattern>,
    /// For enums: the allowed values, in the order Coral lists them.
    pub values: Option<&'static [&'static str]>,
    pub len_min: Option<usize>,
    pub len_max: Option<usize>,
}

impl StringRule {
    const fn new(pattern: Option<Pattern>, len_min: Option<usize>, len_max: Option<usize>) -> Self {
        StringRule {
            pattern,
            values: None,
            len_min,
            len_max,
        }
    }

    /// An enum member with these values.
    pub const fn one_of(values: &'static [&'static str]) -> Self {
        StringRule {
            pattern: None,
            values: Some(values),
            len_min: None,
            len_max: None,
        }
    }
}

pub const STREAM_NAME: StringRule = StringRule::new(Some(Pattern::Name), Some(1), Some(128));
pub const SHARD_ID: StringRule = StringRule::new(Some(Pattern::Name), Some(1), Some(128));
pub const STREAM_ARN: StringRule = StringRule::new(Some(Pattern::StreamArn), Some(1), Some(2048));
pub const RESOURCE_ARN: StringRule =
    StringRule::new(Some(Pattern::ResourceArn), Some(1), Some(2048));
pub const CONSUMER_NAME: StringRule = StringRule::new(Some(Pattern::Name), Some(1), Some(128));
pub const CONSUMER_ARN: StringRule =
    StringRule::new(Some(Pattern::ConsumerArn), Some(1), Some(2048));
pub const STREAM_ID: StringRule = StringRule::new(Some(Pattern::StreamId), Some(1), Some(24));
pub const PARTITION_KEY: StringRule = StringRule::new(None, Some(1), Some(256));
pub const HASH_KEY: StringRule = StringRule::new(Some(Pattern::HashKey), None, None);
pub const SEQUENCE_NUMBER: StringRule = StringRule::new(Some(Pattern::SequenceNumber), None, None);
pub const SHARD_ITERATOR: StringRule = StringRule::new(None, Some(1), Some(512));
pub const NEXT_TOKEN: StringRule = StringRule::new(None, Some(1), Some(1_048_576));
pub const TAG_KEY: StringRule = StringRule::new(None, Some(1), Some(128));
pub const TAG_VALUE: StringRule = StringRule::new(None, Some(0), Some(256));
pub const KMS_KEY_ID: StringRule = StringRule::new(None, Some(1), Some(2048));
pub const QUEUE_NAME: StringRule = StringRule::new(Some(Pattern::Name), Some(1), Some(128));
pub const QUEUE_ARN: StringRule = StringRule::new(Some(Pattern::QueueArn), Some(1), Some(2048));
pub const RECEIPT_HANDLE: StringRule = StringRule::new(None, Some(1), Some(1024));
/// A resource policy: the model sets no bounds; AWS documents 20,480 characters at most.
pub const POLICY: StringRule = StringRule::new(None, Some(1), Some(20_480));

/// Something that checks itself against the model.
pub trait Validate {
    fn validate(&self, validator: &mut Validator);
}

/// Collects constraint failures and turns them into one ValidationException.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<String>,
}

impl Validator {
    pub fn new() -> Validator {
        Validator::default()
    }

    /// The failures so far, each in Coral's `Value … at … failed to satisfy constraint: …` form.
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// `Ok` when nothing failed, else the ValidationException listing the failures.
    pub fn finish(self) -> Result<(), KinesisError> {
        if self.errors.is_empty() {
            return Ok(());
        }
        let count = self.errors.len();
        let plural = if count == 1 { "" } else { "s" };
        Err(KinesisError::validation_message(format!(
            "{count} validation error{plural} detected: {}",
            self.errors.join("; ")
        )))
    }

    fn full(&self) -> bool {
        self.errors.len() >= VALIDATION_ERRORS_MAX
    }

    /// Records one failure; `value` is already rendered (quoted, or `null`).
    fn fail(&mut self, value: &dyn Display, path: Path<'_>, constraint: &dyn Display) {
        if self.full() {
            return;
        }
        self.errors.push(format!(
            "Value {value} at '{path}' failed to satisfy constraint: {constraint}"
        ));
    }

    fn fail_null(&mut self, path: Path<'_>) {
        self.fail(&"null", path, &"Member must not be null");
    }

    /// A required member of any type.
    pub fn required<T>(&mut self, path: Path<'_>, value: Option<&T>) {
        if value.is_none() {
            self.fail_null(path);
        }
    }

    /// A string member: `required` adds the null check, then the rule's checks run in order.
    pub fn string(
        &mut self,
        path: Path<'_>,
        value: Option<&str>,
        required: bool,
        rule: &StringRule,
    ) {
        let Some(value) = value else {
            if required {
                self.fail_null(path);
            }
            return;
        };
        let quoted = Quoted(value);
        if let Some(pattern) = rule.pattern {
            if !pattern.matches(value) {
                self.fail(
                    &quoted,
                    path,
                    &format_args!(
                        "Member must satisfy regular expression pattern: {}",
                        pattern.as_str()
                    ),
                );
            }
        }
        if let Some(values) = rule.values {
            if !values.contains(&value) {
                self.fail(
                    &quoted,
                    path,
                    &format_args!(
                        "Member must satisfy enum value set: [{}]",
                        values.join(", ")
                    ),
                );
            }
        }
        if rule.len_min.is_some() || rule.len_max.is_some() {
            let length = java_length(value);
            self.length(&quoted, path, length, rule.len_min, rule.len_max);
        }
    }

    /// An integer member with an inclusive range.
    pub fn integer(
        &mut self,
        path: Path<'_>,
        value: Option<i64>,
        required: bool,
        min: Option<i64>,
        max: Option<i64>,
    ) {
        let Some(value) = value else {
            if required {
                self.fail_null(path);
            }
            return;
        };
        let quoted = Quoted(value);
        if let Some(min) = min {
            if value < min {
                self.fail(
                    &quoted,
                    path,
                    &format_args!("Member must have value greater than or equal to {min}"),
                );
            }
        }
        if let Some(max) = max {
            if value > max {
                self.fail(
                    &quoted,
                    path,
                    &format_args!("Member must have value less than or equal to {max}"),
                );
            }
        }
    }

    /// A blob member with a maximum length in bytes.
    pub fn blob(&mut self, path: Path<'_>, value: Option<&[u8]>, required: bool, len_max: usize) {
        let Some(value) = value else {
            if required {
                self.fail_null(path);
            }
            return;
        };
        if value.len() > len_max {
            let shown = format!(
                "'java.nio.HeapByteBuffer[pos=0 lim={0} cap={0}]'",
                value.len()
            );
            self.fail(
                &shown,
                path,
                &format_args!("Member must have length less than or equal to {len_max}"),
            );
        }
    }

    /// The entry count of a list or map member. `render` prints the whole member (unquoted)
    /// and runs only if a check fails.
    pub fn count(
        &mut self,
        path: Path<'_>,
        count: usize,
        min: Option<usize>,
        max: Option<usize>,
        render: impl Fn() -> String,
    ) {
        let fails_min = min.is_some_and(|min| count < min);
        let fails_max = max.is_some_and(|max| count > max);
        if fails_min || fails_max {
            let shown = Quoted(render());
            self.length(&shown, path, count, min, max);
        }
    }

    /// A list of strings: its entry count, then each element's length as one combined check
    /// (Coral's `Member must satisfy constraint: [...]` form).
    pub fn string_list(
        &mut self,
        path: Path<'_>,
        values: Option<&[String]>,
        required: bool,
        count_min: Option<usize>,
        count_max: Option<usize>,
        element: &StringRule,
    ) {
        let Some(values) = values else {
            if required {
                self.fail_null(path);
            }
            return;
        };
        let render = || format!("[{}]", values.join(", "));
        self.count(path, values.len(), count_min, count_max, render);
        if !values.iter().all(|value| fits_length(value, element)) {
            self.fail(
                &Quoted(render()),
                path,
                &format_args!(
                    "Member must satisfy constraint: [{}]",
                    length_constraints(element)
                ),
            );
        }
    }

    /// A list of enum values: its entry count, then every element against the value set, as
    /// one combined check (`Member must satisfy constraint: [Member must satisfy enum value
    /// set: [...]]`).
    pub fn enum_list(
        &mut self,
        path: Path<'_>,
        values: Option<&[String]>,
        required: bool,
        count_min: Option<usize>,
        count_max: Option<usize>,
        allowed: &[&str],
    ) {
        let Some(values) = values else {
            if required {
                self.fail_null(path);
            }
            return;
        };
        let render = || format!("[{}]", values.join(", "));
        self.count(path, values.len(), count_min, count_max, render);
        if !values.iter().all(|value| allowed.contains(&value.as_str())) {
            self.fail(
                &Quoted(render()),
                path,
                &format_args!(
                    "Member must satisfy constraint: [Member must satisfy enum value set: [{}]]",
                    allowed.join(", ")
                ),
            );
        }
    }

    /// A map of strings: its entry count, then key and value lengths as combined checks.
    pub fn string_map(
        &mut self,
        path: Path<'_>,
        map: Option<&BTreeMap<String, String>>,
        required: bool,
        count_min: Option<usize>,
        count_max: Option<usize>,
        (key, value): (&StringRule, &StringRule),
    ) {
        let Some(map) = map else {
            if required {
                self.fail_null(path);
            }
            return;
        };
        let render = || {
            let mut shown = String::from("{");
            for (index, (k, v)) in map.iter().enumerate() {
                if index > 0 {
                    shown.push_str(", ");
                }
                let _ = write!(shown, "{k}={v}");
            }
            shown.push('}');
            shown
        };
        self.count(path, map.len(), count_min, count_max, render);
        if !map.keys().all(|k| fits_length(k, key)) {
            self.fail(
                &Quoted(render()),
                path,
                &format_args!(
                    "Map keys must satisfy constraint: [{}]",
                    length_constraints(key)
                ),
            );
        }
        if !map.values().all(|v| fits_length(v, value)) {
            self.fail(
                &Quoted(render()),
                path,
                &format_args!(
                    "Map value must satisfy constraint: [{}]",
                    length_constraints(value)
                ),
            );
        }
    }

    fn length(
        &mut self,
        shown: &dyn Display,
        path: Path<'_>,
        length: usize,
        min: Option<usize>,
        max: Option<usize>,
    ) {
        if let Some(min) = min {
            if length < min {
                self.fail(
                    shown,
                    path,
                    &format_args!("Member must have length greater than or equal to {min}"),
                );
            }
        }
        if let Some(max) = max {
            if length > max {
                self.fail(
                    shown,
                    path,
                    &format_args!("Member must have length less than or equal to {max}"),
                );
            }
        }
    }
}

/// Runs `validate` on a value and returns the resulting ValidationException, if any.
pub fn check(value: &impl Validate) -> Result<(), KinesisError> {
    let mut validator = Validator::new();
    value.validate(&mut validator);
    validator.finish()
}

/// A value in single quotes, as Coral shows non-null values.
struct Quoted<T>(T);

impl<T: Display> Display for Quoted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}'", self.0)
    }
}

/// Java's `String.length()`: UTF-16 code units, which is what the model's lengths count.
pub fn java_length(value: &str) -> usize {
    if value.is_ascii() {
        value.len()
    } else {
        value.encode_utf16().count()
    }
}

fn fits_length(value: &str, rule: &StringRule) -> bool {
    let length = java_length(value);
    rule.len_min.is_none_or(|min| length >= min) && rule.len_max.is_none_or(|max| length <= max)
}

/// `Member must have length less than or equal to X, Member must have length greater than or
/// equal to Y`, as Coral lists a member type's constraints inside `[...]`.
fn length_constraints(rule: &StringRule) -> String {
    let mut parts = Vec::new();
    if let Some(max) = rule.len_max {
        parts.push(format!(
            "Member must have length less than or equal to {max}"
        ));
    }
    if let Some(min) = rule.len_min {
        parts.push(format!(
            "Member must have length greater than or equal to {min}"
        ));
    }
    parts.join(", ")
}

// ----- Pattern matchers -----

fn is_name(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// `0|([1-9]\d{0,tail_digits_max})`.
fn is_decimal(value: &str, tail_digits_max: usize) -> bool {
    let bytes = value.as_bytes();
    match bytes.split_first() {
        Some((b'0', rest)) => rest.is_empty(),
        Some((first, rest)) => {
            (b'1'..=b'9').contains(first)
                && rest.len() <= tail_digits_max
                && rest.iter().all(u8::is_ascii_digit)
        }
        None => false,
    }
}

fn is_stream_id(value: &str) -> bool {
    let bytes = value.as_bytes();
    let lower_alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    bytes.len() == 24
        && bytes[..20].iter().all(lower_alnum)
        && bytes[20] == b'-'
        && bytes[21..].iter().all(lower_alnum)
}

/// Java's `.` matches everything but these line terminators.
fn is_line_terminator(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Java's `\s` without UNICODE_CHARACTER_CLASS: `[ \t\n\x0B\f\r]`.
fn is_java_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r')
}

const ARN_PREFIX: &str = "arn:aws";
const KINESIS_PART: &str = ":kinesis:";

/// The parts every Kinesis ARN pattern shares, computed once so each matcher is linear.
struct ArnScan<'a> {
    value: &'a str,
    /// Byte index of the first line terminator after the prefix (the `.*` gaps cannot span it).
    first_line_terminator: usize,
    /// Byte index just past the last Java whitespace, or 0 (the `\S+` tail must start there).
    tail_start_min: usize,
    /// Byte index just past the earliest `:kinesis:` after the prefix.
    kinesis_end: usize,
}

impl<'a> ArnScan<'a> {
    fn new(value: &'a str) -> Option<ArnScan<'a>> {
        let rest = value.strip_prefix(ARN_PREFIX)?;
        let first_line_terminator = rest
            .char_indices()
            .find(|(_, c)| is_line_terminator(*c))
            .map_or(value.len(), |(index, _)| index + ARN_PREFIX.len());
        let tail_start_min = value
            .char_indices()
            .rev()
            .find(|(_, c)| is_java_space(*c))
            .map_or(0, |(index, c)| index + c.len_utf8());
        let kinesis_end = rest.find(KINESIS_PART)? + ARN_PREFIX.len() + KINESIS_PART.len();
        Some(ArnScan {
            value,
            first_line_terminator,
            tail_start_min,
            kinesis_end,
        })
    }

    /// Whether `value[tail_start..]` is a valid `\S+` tail.
    fn tail_ok(&self, tail_start: usize) -> bool {
        tail_start < self.value.len() && tail_start >= self.tail_start_min
    }

    /// Whether `:` + 12 digits + `:` starts at byte `at`.
    fn account_at(&self, at: usize) -> bool {
        let bytes = self.value.as_bytes();
        at + 14 <= bytes.len()
            && bytes[at] == b':'
            && bytes[at + 1..at + 13].iter().all(u8::is_ascii_digit)
            && bytes[at + 13] == b':'
    }
}

/// `arn:aws.*:kinesis:.*:\d{12}:stream/\S+`.
fn is_stream_arn(value: &str) -> bool {
    is_kinesis_arn(value, ":stream/")
}

/// `arn:aws.*:kinesis:.*:\d{12}` + `part` + `\S+`, for `part` such as `:stream/`,
/// `:channel/` or `:queue/`.
pub fn is_kinesis_arn(value: &str, part: &str) -> bool {
    let Some(scan) = ArnScan::new(value) else {
        return false;
    };
    value.match_indices(part).any(|(at, _)| {
        // `:\d{12}` ends where `:stream/` begins, so the account part starts 13 bytes earlier.
        at >= 13 && {
            let account = at - 13;
            scan.tail_ok(at + part.len())
                && scan.account_at(account)
                && scan.kinesis_end <= account
                && account <= scan.first_line_terminator
        }
    })
}

fn is_kind_arn(value: &str, kind_part: &str) -> bool {
    is_kinesis_arn(value, kind_part)
}

/// The consumer ARN pattern. The model's expression is anchored at the start only (`^`) and
/// Java's `matches` demands the whole string, so the name part `[0-9]+` must end the value:
/// `…:<12 digits>:…stream/<name>/consumer/<name>:<digits>`.
fn is_consumer_arn(value: &str) -> bool {
    let Some(scan) = ArnScan::new(value) else {
        return false;
    };
    let Some((before, epoch)) = value.rsplit_once(':') else {
        return false;
    };
    if epoch.is_empty() || !epoch.bytes().all(|byte| byte.is_ascii_digit()) {
        return false;
    }
    let Some((stream_part, consumer)) = before.rsplit_once("/consumer/") else {
        return false;
    };
    if consumer.is_empty() || !is_name(consumer) {
        return false;
    }
    let Some((account_part, stream)) = stream_part.rsplit_once("stream/") else {
        return false;
    };
    if stream.is_empty() || !is_name(stream) {
        return false;
    }
    (scan.kinesis_end..account_part.len()).any(|at| scan.account_at(at))
}

/// `arn:aws.*:kinesis:.*:\d{12}:.*(stream|channel|queue)/\S+`.
fn is_resource_arn(value: &str) -> bool {
    let Some(scan) = ArnScan::new(value) else {
        return false;
    };
    let Some(account) = (scan.kinesis_end..value.len()).find(|at| scan.account_at(*at)) else {
        return false;
    };
    let account_end = account + 14;
    value.match_indices('/').any(|(slash, _)| {
        let before = &value.as_bytes()[..slash];
        ["stream", "channel", "queue"].iter().any(|kind| {
            before.ends_with(kind.as_bytes()) && {
                let kind_start = slash - kind.len();
                kind_start >= account_end
                    && kind_start <= scan.first_line_terminator
                    && scan.tail_ok(slash + 1)
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(validator: Validator) -> String {
        validator.finish().unwrap_err().message.unwrap()
    }

    #[test]
    fn name_pattern() {
        assert!(Pattern::Name.matches("my-stream_1.x"));
        assert!(!Pattern::Name.matches(""));
        assert!(!Pattern::Name.matches("a b"));
        assert!(!Pattern::Name.matches("a/b"));
        assert!(!Pattern::Name.matches("é"));
    }

    #[test]
    fn decimal_patterns() {
        assert!(Pattern::HashKey.matches("0"));
        assert!(Pattern::HashKey.matches("340282366920938463463374607431768211455"));
        assert!(Pattern::HashKey.matches(&format!("1{}", "0".repeat(38))));
        assert!(!Pattern::HashKey.matches(&format!("1{}", "0".repeat(39))));
        assert!(!Pattern::HashKey.matches("00"));
        assert!(!Pattern::HashKey.matches("01"));
        assert!(!Pattern::HashKey.matches(""));
        assert!(!Pattern::HashKey.matches("-1"));
        assert!(!Pattern::HashKey.matches("1.5"));
        assert!(Pattern::SequenceNumber.matches(&format!("9{}", "9".repeat(128))));
        assert!(!Pattern::SequenceNumber.matches(&format!("9{}", "9".repeat(129))));
    }

    #[test]
    fn stream_id_pattern() {
        assert!(Pattern::StreamId.matches("abcdefghij0123456789-a1b"));
        assert!(!Pattern::StreamId.matches("ABCDEFGHIJ0123456789-a1b"));
        assert!(!Pattern::StreamId.matches("abcdefghij0123456789a1b"));
        assert!(!Pattern::StreamId.matches("abcdefghij0123456789-a1bc"));
    }

    #[test]
    fn stream_arn_pattern() {
        let ok = [
            "arn:aws:kinesis:us-east-1:123456789012:stream/s",
            "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/my.stream",
            "arn:aws:kinesis::123456789012:stream/s",
            // `.*` may hold anything but line terminators, including `:`.
            "arn:aws:x:kinesis:a:b:123456789012:stream/s",
            // `\S+` takes anything but whitespace.
            "arn:aws:kinesis:r:123456789012:stream/a/consumer/c:1",
            "arn:aws:kinesis:r:123456789012:stream/é",
        ];
        for arn in ok {
            assert!(Pattern::StreamArn.matches(arn), "{arn}");
        }
        let bad = [
            "",
            "arn:aws",
            "arn:aw:kinesis:r:123456789012:stream/s",
            "arn:aws:kinesis:r:12345678901:stream/s",
            "arn:aws:kinesis:r:1234567890123:stream/s",
            "arn:aws:kinesis:r:123456789012:stream/",
            "arn:aws:kinesis:r:123456789012:stream/a b",
            "arn:aws:kinesis:r:123456789012:stream/a\n",
            "arn:aws:kinesis:r\n:123456789012:stream/s",
            "arn:aws:kinesis:r:123456789012:streams/s",
            "arn:aws:firehose:r:123456789012:stream/s",
            " arn:aws:kinesis:r:123456789012:stream/s",
            "arn:aws:kinesis:r:12345678901x:stream/s",
        ];
        for arn in bad {
            assert!(!Pattern::StreamArn.matches(arn), "{arn:?}");
        }
    }

    #[test]
    fn stream_arn_pattern_finds_a_later_match() {
        // The first `:stream/` has no account before it; a later one does.
        assert!(Pattern::StreamArn.matches("arn:aws:kinesis:r:stream/x:123456789012:stream/s"));
        // A space before the last `:stream/` is fine if the tail after it has none.
        assert!(Pattern::StreamArn
            .matches("arn:aws:kinesis:r:123456789012:stream/a b:123456789012:stream/s"));
    }

    #[test]
    fn resource_arn_pattern() {
        let ok = [
            "arn:aws:kinesis:us-east-1:123456789012:stream/s",
            "arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/c:1700000000",
            "arn:aws:kinesis:us-east-1:123456789012:channel/c",
            "arn:aws:kinesis:us-east-1:123456789012:queue/q",
            "arn:aws:kinesis:us-east-1:123456789012:xstream/s",
        ];
        for arn in ok {
            assert!(Pattern::ResourceArn.matches(arn), "{arn}");
        }
        let bad = [
            "arn:aws:kinesis:us-east-1:123456789012:topic/s",
            "arn:aws:kinesis:us-east-1:123456789012:stream/",
            "arn:aws:kinesis:us-east-1:12345678901:stream/s",
            "arn:aws:kinesis:us-east-1:123456789012:\nstream/s",
            "arn:aws:kinesis:stream/s:123456789012:",
        ];
        for arn in bad {
            assert!(!Pattern::ResourceArn.matches(arn), "{arn:?}");
        }
    }

    #[test]
    fn null_and_pattern_and_length_messages_in_coral_order() {
        let mut validator = Validator::new();
        validator.string(Path::Field("streamName"), Some(""), true, &STREAM_NAME);
        assert_eq!(
            message(validator),
            "2 validation errors detected: Value '' at 'streamName' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; \
             Value '' at 'streamName' failed to satisfy constraint: Member must have length \
             greater than or equal to 1"
        );

        let mut validator = Validator::new();
        validator.string(Path::Field("streamName"), None, true, &STREAM_NAME);
        assert_eq!(
            message(validator),
            "1 validation error detected: Value null at 'streamName' failed to satisfy \
             constraint: Member must not be null"
        );

        let mut validator = Validator::new();
        validator.string(Path::Field("streamName"), None, false, &STREAM_NAME);
        assert!(validator.finish().is_ok());
    }

    #[test]
    fn long_values_report_the_maximum() {
        let name = "a".repeat(129);
        let mut validator = Validator::new();
        validator.string(Path::Field("streamName"), Some(&name), true, &STREAM_NAME);
        assert_eq!(
            message(validator),
            format!(
                "1 validation error detected: Value '{name}' at 'streamName' failed to satisfy \
                 constraint: Member must have length less than or equal to 128"
            )
        );
    }

    #[test]
    fn lengths_count_utf16_units() {
        // 128 astral characters are 256 UTF-16 units: fine for a partition key, one too many
        // units at 129.
        let key = "😀".repeat(128);
        let mut validator = Validator::new();
        validator.string(
            Path::Field("partitionKey"),
            Some(&key),
            true,
            &PARTITION_KEY,
        );
        assert!(validator.finish().is_ok());
        let key = "😀".repeat(129);
        let mut validator = Validator::new();
        validator.string(
            Path::Field("partitionKey"),
            Some(&key),
            true,
            &PARTITION_KEY,
        );
        assert!(message(validator).ends_with("Member must have length less than or equal to 256"));
    }

    #[test]
    fn enum_message_lists_values_in_order() {
        let mut validator = Validator::new();
        validator.string(
            Path::Field("shardIteratorType"),
            Some("NEWEST"),
            true,
            &StringRule::one_of(&["AFTER_SEQUENCE_NUMBER", "LATEST"]),
        );
        assert_eq!(
            message(validator),
            "1 validation error detected: Value 'NEWEST' at 'shardIteratorType' failed to \
             satisfy constraint: Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, \
             LATEST]"
        );
    }

    #[test]
    fn integer_ranges() {
        let mut validator = Validator::new();
        validator.integer(Path::Field("shardCount"), Some(0), true, Some(1), None);
        validator.integer(
            Path::Field("limit"),
            Some(10_001),
            false,
            Some(1),
            Some(10_000),
        );
        validator.integer(
            Path::Field("maxResults"),
            Some(5),
            false,
            Some(1),
            Some(10_000),
        );
        validator.integer(
            Path::Field("retentionPeriodHours"),
            None,
            true,
            Some(1),
            None,
        );
        assert_eq!(
            message(validator),
            "3 validation errors detected: Value '0' at 'shardCount' failed to satisfy \
             constraint: Member must have value greater than or equal to 1; Value '10001' at \
             'limit' failed to satisfy constraint: Member must have value less than or equal to \
             10000; Value null at 'retentionPeriodHours' failed to satisfy constraint: Member \
             must not be null"
        );
    }

    #[test]
    fn blobs_print_as_heap_byte_buffers() {
        let data = vec![0u8; 11];
        let mut validator = Validator::new();
        validator.blob(Path::Member("records", 0, "data"), Some(&data), true, 10);
        validator.blob(
            Path::Member("records", 1, "data"),
            Some(&data[..10]),
            true,
            10,
        );
        validator.blob(Path::Member("records", 2, "data"), None, true, 10);
        assert_eq!(
            message(validator),
            "2 validation errors detected: Value 'java.nio.HeapByteBuffer[pos=0 lim=11 cap=11]' \
             at 'records.1.member.data' failed to satisfy constraint: Member must have length \
             less than or equal to 10; Value null at 'records.3.member.data' failed to satisfy \
             constraint: Member must not be null"
        );
    }

    #[test]
    fn at_most_ten_errors_are_listed() {
        let mut validator = Validator::new();
        for index in 0..25 {
            validator.blob(Path::Member("records", index, "data"), None, true, 10);
        }
        assert_eq!(validator.errors().len(), 10);
        let text = message(validator);
        assert!(
            text.starts_with("10 validation errors detected: "),
            "{text}"
        );
        assert!(text.contains("records.10.member.data"));
        assert!(!text.contains("records.11.member.data"));
    }

    #[test]
    fn lists_and_maps() {
        let keys = vec!["a".to_owned(), String::new()];
        let mut validator = Validator::new();
        validator.string_list(
            Path::Field("tagKeys"),
            Some(&keys),
            true,
            Some(1),
            Some(1),
            &TAG_KEY,
        );
        assert_eq!(
            message(validator),
            "2 validation errors detected: Value '[a, ]' at 'tagKeys' failed to satisfy \
             constraint: Member must have length less than or equal to 1; Value '[a, ]' at \
             'tagKeys' failed to satisfy constraint: Member must satisfy constraint: [Member must \
             have length less than or equal to 128, Member must have length greater than or \
             equal to 1]"
        );

        let mut tags = BTreeMap::new();
        tags.insert(String::new(), "v".repeat(257));
        let mut validator = Validator::new();
        validator.string_map(
            Path::Field("tags"),
            Some(&tags),
            true,
            Some(1),
            Some(200),
            (&TAG_KEY, &TAG_VALUE),
        );
        let text = message(validator);
        assert!(
            text.starts_with("2 validation errors detected: Value '{="),
            "{text}"
        );
        assert!(text.contains(
            "failed to satisfy constraint: Map keys must satisfy constraint: [Member must have \
             length less than or equal to 128, Member must have length greater than or equal to \
             1]"
        ));
        assert!(text.ends_with(
            "failed to satisfy constraint: Map value must satisfy constraint: [Member must have \
             length less than or equal to 256, Member must have length greater than or equal to \
             0]"
        ));

        let empty = BTreeMap::new();
        let mut validator = Validator::new();
        validator.string_map(
            Path::Field("tags"),
            Some(&empty),
            true,
            Some(1),
            Some(200),
            (&TAG_KEY, &TAG_VALUE),
        );
        assert_eq!(
            message(validator),
            "1 validation error detected: Value '{}' at 'tags' failed to satisfy constraint: \
             Member must have length greater than or equal to 1"
        );
    }

    #[test]
    fn paths_print_like_coral() {
        assert_eq!(Path::Field("streamName").to_string(), "streamName");
        assert_eq!(
            Path::Nested("streamModeDetails", "streamMode").to_string(),
            "streamModeDetails.streamMode"
        );
        assert_eq!(
            Path::Member("records", 2, "partitionKey").to_string(),
            "records.3.member.partitionKey"
        );
    }

    #[test]
    fn huge_arn_like_values_are_matched_quickly() {
        // Quadratic matching would take far longer than this test allows on such input.
        let value = format!("arn:aws{}", ":kinesis::stream/".repeat(200_000));
        let started = std::time::Instant::now();
        assert!(!Pattern::StreamArn.matches(&value));
        assert!(!Pattern::ResourceArn.matches(&value));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
