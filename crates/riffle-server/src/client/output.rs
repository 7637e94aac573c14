//! How records and progress are shown.
//!
//! A record is one line in every format, so `riffle tail | wc -l` counts records:
//! - `text`: the data as it is when it is UTF-8 holding no control character but tab (so
//!   lines put by `riffle put` come back byte for byte); any other record is written escaped —
//!   `\\` for a backslash, `\n`, `\r`, `\t`, `\xNN` for other control characters and for bytes
//!   that are not UTF-8 — so it stays on one line and cannot drive the terminal.
//! - `json`: one JSON object per record, every field exact (see [`json_line`]).
//! - `hex`: the data in lowercase hexadecimal.
//!
//! With `--meta` (the default when stdout is a terminal) text and hex lines start with the
//! arrival time, the shard and the partition key, dimmed on a terminal.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

/// One record as `riffle tail` prints it: a Kinesis record, or one user record of a KPL
/// aggregate (then with its sub-sequence number).
pub struct Printed<'a> {
    pub shard_id: &'a str,
    pub sequence_number: &'a str,
    pub sub_sequence_number: Option<u64>,
    pub partition_key: &'a str,
    pub explicit_hash_key: Option<&'a str>,
    pub arrival_ms: Option<i64>,
    pub data: &'a [u8],
}

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The data as text, one record per line; records that are not one line of UTF-8 are
    /// escaped (see below).
    Text,
    /// One JSON object per line with the shard, sequence number, key, arrival time and data.
    Json,
    /// The data in hexadecimal, one record per line.
    Hex,
}

/// Whether the data can be written as it is on one text line: UTF-8 without control
/// characters other than tab.
pub fn is_plain_line(data: &[u8]) -> bool {
    match std::str::from_utf8(data) {
        Ok(text) => !text.chars().any(|c| c.is_control() && c != '\t'),
        Err(_) => false,
    }
}

/// Appends the `text` form of `data` to `out`: as it is when plain, else escaped.
pub fn push_text(out: &mut Vec<u8>, data: &[u8]) {
    if is_plain_line(data) {
        out.extend_from_slice(data);
        return;
    }
    push_escaped(out, data);
}

/// Appends `data` with backslashes, control characters and bytes that are not UTF-8 escaped.
pub fn push_escaped(out: &mut Vec<u8>, data: &[u8]) {
    let mut rest = data;
    while !rest.is_empty() {
        let (valid, invalid) = match std::str::from_utf8(rest) {
            Ok(text) => (text, &rest[rest.len()..]),
            Err(error) => {
                let (valid, after) = rest.split_at(error.valid_up_to());
                // Safe to unwrap: the prefix was just checked to be UTF-8.
                let valid = std::str::from_utf8(valid).unwrap_or_default();
                let bad = error.error_len().unwrap_or(after.len());
                (valid, &after[..bad])
            }
        };
        for c in valid.chars() {
            match c {
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if c.is_control() => {
                    let code = c as u32;
                    if code <= 0xff {
                        out.extend_from_slice(format!("\\x{code:02x}").as_bytes());
                    } else {
                        out.extend_from_slice(format!("\\u{{{code:04x}}}").as_bytes());
                    }
                }
                c => {
                    let mut buffer = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
                }
            }
        }
        for byte in invalid {
            out.extend_from_slice(format!("\\x{byte:02x}").as_bytes());
        }
        rest = &rest[valid.len() + invalid.len()..];
    }
}

/// Appends `data` in lowercase hexadecimal.
pub fn push_hex(out: &mut Vec<u8>, data: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in data {
        out.push(DIGITS[usize::from(byte >> 4)]);
        out.push(DIGITS[usize::from(byte & 0xf)]);
    }
}

/// The `json` line of a record (without the newline). Fields, in this order:
/// `shard_id`, `sequence_number`, `sub_sequence_number` (KPL user records only),
/// `partition_key`, `explicit_hash_key` (KPL user records that have one),
/// `arrival` (RFC 3339, milliseconds, UTC), then `data` (a string) when the data is UTF-8,
/// else `data_base64`.
pub fn json_line(record: &Printed<'_>) -> String {
    let quote = |text: &str| serde_json::Value::from(text).to_string();
    let mut line = format!(
        "{{\"shard_id\":{},\"sequence_number\":{}",
        quote(record.shard_id),
        quote(record.sequence_number)
    );
    if let Some(sub) = record.sub_sequence_number {
        line.push_str(&format!(",\"sub_sequence_number\":{sub}"));
    }
    line.push_str(&format!(
        ",\"partition_key\":{}",
        quote(record.partition_key)
    ));
    if let Some(key) = record.explicit_hash_key {
        line.push_str(&format!(",\"explicit_hash_key\":{}", quote(key)));
    }
    if let Some(ms) = record.arrival_ms {
        line.push_str(&format!(",\"arrival\":{}", quote(&rfc3339_ms(ms))));
    }
    match std::str::from_utf8(record.data) {
        Ok(text) => line.push_str(&format!(",\"data\":{}}}", quote(text))),
        Err(_) => {
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(record.data);
            line.push_str(&format!(",\"data_base64\":{}}}", quote(&encoded)));
        }
    }
    line
}

/// Milliseconds since the epoch as RFC 3339 in UTC with milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    match OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) {
        Ok(at) => format!("{}.{:03}Z", date_time(at), at.millisecond()),
        Err(_) => ms.to_string(),
    }
}

/// Whole seconds since the epoch as RFC 3339 in UTC.
pub fn rfc3339_s(seconds: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(seconds) {
        Ok(at) => format!("{}Z", date_time(at)),
        Err(_) => seconds.to_string(),
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of a UTC time.
fn date_time(at: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// `HH:MM:SS.mmm` (UTC) of milliseconds since the epoch: the time column of `--meta`.
pub fn clock_ms(ms: i64) -> String {
    let day_ms = ms.rem_euclid(86_400_000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}

/// A one-line status on stderr, rewritten in place, shown only when stderr is a terminal
/// and at most ten times a second.
pub struct Progress {
    enabled: bool,
    shown: bool,
    last: Option<Instant>,
}

impl Progress {
    /// A progress line that shows only if stderr is a terminal.
    pub fn on_terminal() -> Progress {
        Progress {
            enabled: std::io::stderr().is_terminal(),
            shown: false,
            last: None,
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Shows `status` unless another was shown less than 100 ms ago.
    pub fn update(&mut self, status: impl FnOnce() -> String) {
        if !self.enabled {
            return;
        }
        if self
            .last
            .is_some_and(|last| last.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(Instant::now());
        self.shown = true;
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[2K{}", status());
        let _ = stderr.flush();
    }

    /// Clears the line, then prints `message` (if any) as a line of its own.
    pub fn finish(&mut self, message: Option<String>) {
        if !self.enabled {
            return;
        }
        let mut stderr = std::io::stderr().lock();
        if self.shown {
            let _ = write!(stderr, "\r\x1b[2K");
            self.shown = false;
        }
        if let Some(message) = message {
            let _ = writeln!(stderr, "{message}");
        }
        let _ = stderr.flush();
    }

    /// Prints a note on a line of its own (terminal only), keeping the status line below it.
    pub fn note(&mut self, message: &str) {
        if !self.enabled {
            return;
        }
        let mut stderr = std::io::stderr().lock();
        if self.shown {
            let _ = write!(stderr, "\r\x1b[2K");
            self.shown = false;
            self.last = None;
        }
        let _ = writeln!(stderr, "{message}");
        let _ = stderr.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(data: &[u8]) -> String {
        let mut out = Vec::new();
        push_text(&mut out, data);
        String::from_utf8(out).expect("text output is UTF-8")
    }

    #[test]
    fn plain_lines_are_written_as_they_are() {
        for line in [
            "hello",
            r#"{"user":"a\"b","path":"C:\\tmp"}"#,
            "tab\tseparated",
            "ünïcødé ✓",
            "",
        ] {
            assert_eq!(text(line.as_bytes()), line);
        }
    }

    #[test]
    fn other_records_are_escaped_onto_one_line() {
        assert_eq!(text(b"two\nlines"), "two\\nlines");
        assert_eq!(text(b"a\\b\r\n"), "a\\\\b\\r\\n");
        assert_eq!(text(b"bell\x07 esc\x1b[31m"), "bell\\x07 esc\\x1b[31m");
        assert_eq!(text(b"bad \xff\xfe utf8"), "bad \\xff\\xfe utf8");
        assert_eq!(text("é\n\u{85}".as_bytes()), "é\\n\\x85");
        // A truncated multi-byte sequence at the end.
        assert_eq!(text(b"cut \xe2\x82"), "cut \\xe2\\x82");
        for escaped in [text(b"x\ny"), text(b"\x00\x01\x02")] {
            assert!(!escaped.contains('\n') && is_plain_line(escaped.as_bytes()));
        }
    }

    #[test]
    fn hex_and_json_forms() {
        let mut out = Vec::new();
        push_hex(&mut out, &[0x00, 0x7f, 0xab, 0xff]);
        assert_eq!(out, b"007fabff");

        let record = Printed {
            shard_id: "shardId-000000000001",
            sequence_number: "49",
            sub_sequence_number: Some(2),
            partition_key: "k\"1",
            explicit_hash_key: None,
            arrival_ms: Some(1_714_564_800_123),
            data: b"line\n",
        };
        assert_eq!(
            json_line(&record),
            r#"{"shard_id":"shardId-000000000001","sequence_number":"49","sub_sequence_number":2,"partition_key":"k\"1","arrival":"2024-05-01T12:00:00.123Z","data":"line\n"}"#
        );
        let binary = Printed {
            sub_sequence_number: None,
            data: &[0xff, 0x00],
            arrival_ms: None,
            ..record
        };
        assert!(json_line(&binary).ends_with(r#""partition_key":"k\"1","data_base64":"/wA="}"#));
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(clock_ms(1_714_564_800_123), "12:00:00.123");
        assert_eq!(rfc3339_s(1_714_564_800), "2024-05-01T12:00:00Z");
    }
}
