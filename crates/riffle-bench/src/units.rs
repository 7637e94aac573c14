//! Small parsers and formatters with units: durations and sizes on the command line, and the
//! `X-Amz-Date` timestamp every request carries.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const BYTES_PER_KIB: u64 = 1024;
const BYTES_PER_MIB: u64 = 1024 * 1024;
const SECONDS_PER_DAY: u64 = 86_400;

/// Parses `10`, `10s`, `500ms`, `2m` or `1.5s` into a duration. A bare number means seconds,
/// because that is what a person typing `--duration 10` means.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, seconds_per_unit) = if let Some(number) = text.strip_suffix("ms") {
        (number, 0.001)
    } else if let Some(number) = text.strip_suffix('s') {
        (number, 1.0)
    } else if let Some(number) = text.strip_suffix('m') {
        (number, 60.0)
    } else if let Some(number) = text.strip_suffix('h') {
        (number, 3600.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 10s, 500ms or 2m)"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("`{text}` is not a duration (try 10s, 500ms or 2m)"));
    }
    Ok(Duration::from_secs_f64(value * seconds_per_unit))
}

/// Parses a byte size: `100`, `100B`, `1KiB`, `1k`, `2MiB`, `2M`. Binary multiples throughout:
/// Kinesis limits (1 MiB records, 5/10 MiB requests) are binary too.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let lower = text.to_ascii_lowercase();
    let (number, multiplier) = if let Some(number) = strip_any(&lower, &["kib", "kb", "k"]) {
        (number, BYTES_PER_KIB)
    } else if let Some(number) = strip_any(&lower, &["mib", "mb", "m"]) {
        (number, BYTES_PER_MIB)
    } else if let Some(number) = lower.strip_suffix('b') {
        (number, 1)
    } else {
        (lower.as_str(), 1)
    };
    let value: u64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a size (try 100, 1KiB or 2MiB)"))?;
    value
        .checked_mul(multiplier)
        .ok_or_else(|| format!("`{text}` is too large"))
}

fn strip_any<'a>(text: &'a str, suffixes: &[&str]) -> Option<&'a str> {
    suffixes.iter().find_map(|suffix| text.strip_suffix(suffix))
}

/// `yyyymmddThhmmssZ` for the given time, as SigV4's `X-Amz-Date` wants it.
pub fn amz_date(time: SystemTime) -> String {
    // A clock before 1970 is a broken machine, not a reason to stop a benchmark: print 1970.
    let epoch_s = time
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    let (year, month, day) = civil_from_days(epoch_s / SECONDS_PER_DAY);
    let second_of_day = epoch_s % SECONDS_PER_DAY;
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, restricted to dates after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_the_usual_units() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn sizes_use_binary_multiples() {
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert_eq!(parse_bytes("100B").unwrap(), 100);
        assert_eq!(parse_bytes("1KiB").unwrap(), 1024);
        assert_eq!(parse_bytes("4k").unwrap(), 4096);
        assert_eq!(parse_bytes("2MiB").unwrap(), 2 * 1024 * 1024);
        assert_eq!(parse_bytes("1M").unwrap(), 1024 * 1024);
        assert!(parse_bytes("1.5k").is_err());
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("99999999999999999999k").is_err());
    }

    #[test]
    fn amz_date_formats_known_instants() {
        assert_eq!(amz_date(UNIX_EPOCH), "19700101T000000Z");
        let instant = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(amz_date(instant), "20231114T221320Z");
        // A leap day, to exercise the month arithmetic around February.
        let leap_day = UNIX_EPOCH + Duration::from_secs(1_709_164_800 + 3_661);
        assert_eq!(amz_date(leap_day), "20240229T010101Z");
    }
}
