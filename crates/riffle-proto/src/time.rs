//! Calendar arithmetic and the date formats that appear in Kinesis texts.
//!
//! No date crate: the only needs are UTC civil dates from epoch milliseconds, for the Java-style
//! date in the iterator-expired text (`EEE MMM dd HH:mm:ss UTC yyyy`), the SigV4 stamp
//! (`yyyyMMddTHHmmssZ`), and epoch seconds as a plain decimal for JSON; and the way back from
//! the two dates a SigV4 request may carry (`X-Amz-Date`, or an HTTP `Date`).

const MS_PER_SECOND: i64 = 1000;
const SECONDS_PER_DAY: i64 = 86_400;

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A UTC calendar date and time of day, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    pub year: i64,
    /// 1–12.
    pub month: u32,
    /// 1–31.
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday … 6 = Saturday.
    pub weekday: u32,
}

/// The proleptic Gregorian date of `days` since 1970-01-01, as (year, month, day).
///
/// Howard Hinnant's `civil_from_days`: shift the year to start in March so the leap day is last,
/// then split into 400-year eras of 146,097 days.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The UTC civil time of an instant given in epoch milliseconds (milliseconds are dropped).
pub fn civil_from_epoch_ms(epoch_ms: i64) -> CivilTime {
    let seconds = epoch_ms.div_euclid(MS_PER_SECOND);
    let days = seconds.div_euclid(SECONDS_PER_DAY);
    let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY) as u32;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday_from_thursday = days.rem_euclid(7) as usize;
    let weekday = (weekday_from_thursday as u32 + 4) % 7;
    CivilTime {
        year,
        month,
        day,
        hour: second_of_day / 3600,
        minute: second_of_day / 60 % 60,
        second: second_of_day % 60,
        weekday,
    }
}

/// Java's `Date.toString()` in UTC, `EEE MMM dd HH:mm:ss UTC yyyy`, as AWS prints it in the
/// iterator-expired text: `Thu Jan 22 01:22:02 UTC 2015`.
pub fn java_date(epoch_ms: i64) -> String {
    let time = civil_from_epoch_ms(epoch_ms);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        WEEKDAYS[time.weekday as usize],
        MONTHS[(time.month - 1) as usize],
        time.day,
        time.hour,
        time.minute,
        time.second,
        time.year
    )
}

/// The SigV4 timestamp form, `yyyyMMddTHHmmssZ`, as in `X-Amz-Date` and the skew texts.
pub fn amz_date(epoch_ms: i64) -> String {
    let time = civil_from_epoch_ms(epoch_ms);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        time.year, time.month, time.day, time.hour, time.minute, time.second
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date: the inverse of [`civil_from_days`]
/// (Hinnant's `days_from_civil`). `month` is 1–12; the day is not checked against the month.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Epoch milliseconds of a valid UTC civil time, or `None` for an impossible one (month 13,
/// February 30, hour 24, …). Leap seconds are refused, as SigV4 signers never write them.
fn epoch_ms_of(
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
) -> Option<i64> {
    if !(1..=12).contains(&month) || day == 0 || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // A day past the month's end lands in the next month: round-trip to catch it.
    if civil_from_days(days) != (year, month, day) {
        return None;
    }
    let seconds = days * SECONDS_PER_DAY
        + i64::from(hour) * 3600
        + i64::from(minute) * 60
        + i64::from(second);
    Some(seconds * MS_PER_SECOND)
}

/// Parses a fixed-width run of ASCII digits.
fn digits(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses the SigV4 stamp `yyyyMMddTHHmmssZ` (the form [`amz_date`] writes) to epoch
/// milliseconds; anything else, including impossible dates, is `None`.
pub fn parse_amz_date(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    epoch_ms_of(
        i64::from(digits(text.get(0..4)?)?),
        digits(text.get(4..6)?)?,
        digits(text.get(6..8)?)?,
        digits(text.get(9..11)?)?,
        digits(text.get(11..13)?)?,
        digits(text.get(13..15)?)?,
    )
}

/// Parses an HTTP `Date` in the IMF-fixdate form every current client sends
/// (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7) to epoch milliseconds. The weekday must
/// be one of the seven names but is not checked against the date (RFC 9110 lets recipients
/// ignore it); the obsolete RFC 850 and asctime forms are `None`.
pub fn parse_http_date(text: &str) -> Option<i64> {
    let mut parts = text.split(' ');
    let (Some(weekday), Some(day), Some(month), Some(year), Some(clock), Some("GMT"), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let weekday = weekday.strip_suffix(',')?;
    if !WEEKDAYS.contains(&weekday) || day.len() != 2 || year.len() != 4 {
        return None;
    }
    let month = MONTHS.iter().position(|name| *name == month)? as u32 + 1;
    let mut clock = clock.split(':');
    let (Some(hour), Some(minute), Some(second), None) =
        (clock.next(), clock.next(), clock.next(), clock.next())
    else {
        return None;
    };
    if hour.len() != 2 || minute.len() != 2 || second.len() != 2 {
        return None;
    }
    epoch_ms_of(
        i64::from(digits(year)?),
        month,
        digits(day)?,
        digits(hour)?,
        digits(minute)?,
        digits(second)?,
    )
}

/// Epoch seconds with the milliseconds as a fraction, in plain decimal notation: `1459799926.48`,
/// `1459799926`, `-0.5`. Kinesis JSON timestamps look like this; exponent notation breaks some
/// Java SDK versions, so it is never produced.
pub fn epoch_seconds_decimal(epoch_ms: i64) -> String {
    let sign = if epoch_ms < 0 { "-" } else { "" };
    let magnitude = epoch_ms.unsigned_abs();
    let seconds = magnitude / 1000;
    let millis = magnitude % 1000;
    if millis == 0 {
        return format!("{sign}{seconds}");
    }
    let fraction = format!("{millis:03}");
    format!("{sign}{seconds}.{}", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        // 2000-02-29 is day 11016; leap day of a year divisible by 400.
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        // 2100 is not a leap year.
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
    }

    #[test]
    fn civil_dates_walk_forward_one_day_at_a_time() {
        // Cross-check the closed formula against counting days month by month.
        let month_lengths = |year: i64| {
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ]
        };
        let (mut year, mut month, mut day) = (1970i64, 1u32, 1u32);
        for days in 0..80_000 {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            day += 1;
            if day > month_lengths(year)[(month - 1) as usize] {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
    }

    #[test]
    fn java_date_matches_the_recorded_aws_text() {
        // From the recorded text: "created at time Thu Jan 22 01:22:02 UTC 2015".
        assert_eq!(java_date(1_421_889_722_000), "Thu Jan 22 01:22:02 UTC 2015");
        assert_eq!(java_date(1_421_890_023_999), "Thu Jan 22 01:27:03 UTC 2015");
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
    }

    #[test]
    fn weekday_is_sunday_based() {
        // 2024-06-02 was a Sunday.
        assert_eq!(civil_from_epoch_ms(1_717_286_400_000).weekday, 0);
        assert_eq!(civil_from_epoch_ms(0).weekday, 4);
    }

    #[test]
    fn amz_date_matches_sigv4_form() {
        assert_eq!(amz_date(1_537_465_261_000), "20180920T174101Z");
    }

    #[test]
    fn days_from_civil_inverts_civil_from_days() {
        for days in -800_000..800_000 {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days, "day {days}");
        }
    }

    #[test]
    fn amz_dates_parse_and_round_trip() {
        assert_eq!(parse_amz_date("20180920T174101Z"), Some(1_537_465_261_000));
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(
            parse_amz_date("20240229T235959Z").map(amz_date).as_deref(),
            Some("20240229T235959Z")
        );
        for bad in [
            "",
            "20180920T174101",
            "20180920 174101Z",
            "2018-09-20T17:41:01Z",
            "20180920t174101z",
            "20230229T000000Z",
            "20181320T000000Z",
            "20180900T000000Z",
            "20180920T240000Z",
            "20180920T176001Z",
            "20180920T174160Z",
            "+0180920T174101Z",
            "2018092OT174101Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn http_dates_parse_the_imf_fixdate_form() {
        assert_eq!(
            parse_http_date("Thu, 20 Sep 2018 17:41:01 GMT"),
            Some(1_537_465_261_000)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        for bad in [
            "Thu, 20 Sep 2018 17:41:01 UTC",
            "Thursday, 20-Sep-18 17:41:01 GMT",
            "Thu Sep 20 17:41:01 2018",
            "Thu, 20 Sep 2018 17:41 GMT",
            "Thu, 31 Sep 2018 17:41:01 GMT",
            "Thu,  20 Sep 2018 17:41:01 GMT",
            "Xyz, 20 Sep 2018 17:41:01 GMT",
            "Thu, 20 Sep 2018 17:41:01 GMT extra",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn epoch_seconds_are_plain_decimals() {
        assert_eq!(epoch_seconds_decimal(1_459_799_926_480), "1459799926.48");
        assert_eq!(epoch_seconds_decimal(1_459_799_926_000), "1459799926");
        assert_eq!(epoch_seconds_decimal(1_459_799_926_001), "1459799926.001");
        assert_eq!(epoch_seconds_decimal(-500), "-0.5");
        assert_eq!(epoch_seconds_decimal(0), "0");
        let huge = epoch_seconds_decimal(i64::MAX);
        assert!(!huge.contains('e') && !huge.contains('E'), "{huge}");
    }
}
