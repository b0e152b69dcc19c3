//! A document's timestamp, read and written as Elasticsearch does: its default `date` mapping's forms, the forms
//! loggers write, epoch milliseconds, and the one way an instant is written (`2024-05-01T12:00:00.000Z`).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// Reads a timestamp the way Elasticsearch's default `date` mapping does (`strict_date_optional_time||epoch_millis`):
/// RFC 3339, a date-time without zone (taken as UTC), a plain date, or epoch milliseconds.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    if let Ok(at) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(at.and_utc());
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return date.and_hms_opt(0, 0, 0).map(|at| at.and_utc());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() {
        return text.parse::<i64>().ok().and_then(epoch_millis);
    }
    None
}

/// Reads the time a logger wrote, in the forms loggers write it besides Elasticsearch's own: everything
/// `parse_timestamp` reads, and a date and time separated by a space or with a comma before the fraction, with or
/// without a zone (`+0000`, `+00:00`, `Z`; none is UTC): Python's logging and Powertools' Logger write
/// `2021-05-03 11:47:12,494+0000`.
pub fn parse_logger_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Some(at) = parse_timestamp(text) {
        return Some(at);
    }
    let bytes = text.as_bytes();
    // Only a date first (`yyyy-MM-dd`, then a space or a T): anything else is not a logger's time.
    if bytes.len() < 19 || bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b' ' | b'T') {
        return None;
    }
    let mut normal = String::with_capacity(text.len());
    normal.push_str(&text[..10]);
    normal.push('T');
    normal.push_str(&text[11..]);
    // A comma before the fraction (ISO 8601 allows it; Python's logging writes it), in the time part only.
    if let Some(comma) = normal[11..].find(',') {
        normal.replace_range(11 + comma..12 + comma, ".");
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(&normal) {
        return Some(at.with_timezone(&Utc));
    }
    if let Ok(at) = DateTime::parse_from_str(&normal, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(at.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(&normal, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|at| at.and_utc())
}

/// Whether `text` is a date-time Elasticsearch's date mapping and its dynamic date detection both read as it is, so
/// that a logger's value can be kept as it came: `yyyy-MM-ddTHH:mm:ss`, a fraction of 1 to 9 digits, and `Z` or
/// `±HH:mm` or no zone, a narrow part of `strict_date_optional_time` (anything else is written as RFC 3339, which is
/// always safe: chrono also reads a leap second, a lowercase `z` and longer fractions, which Elasticsearch refuses).
pub fn is_iso_date_time(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| bytes.get(range).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let two = |at: usize| digits(at..at + 2).then(|| (bytes[at] - b'0') * 10 + (bytes[at + 1] - b'0'));
    let shape = digits(0..4)
        && bytes.get(4) == Some(&b'-')
        && two(5).is_some_and(|month| (1..=12).contains(&month))
        && bytes.get(7) == Some(&b'-')
        && two(8).is_some_and(|day| (1..=31).contains(&day))
        && bytes.get(10) == Some(&b'T')
        && two(11).is_some_and(|hour| hour < 24)
        && bytes.get(13) == Some(&b':')
        && two(14).is_some_and(|minute| minute < 60)
        && bytes.get(16) == Some(&b':')
        && two(17).is_some_and(|second| second < 60);
    if !shape {
        return false;
    }
    let mut rest = &bytes[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let length = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=9).contains(&length) {
            return false;
        }
        rest = &fraction[length..];
    }
    let zone = match rest {
        [] | [b'Z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()),
        _ => false,
    };
    zone && parse_timestamp(text).is_some()
}

/// An instant from milliseconds since the epoch.
pub fn epoch_millis(millis: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis)
}

/// RFC 3339 in UTC with milliseconds, as Elasticsearch prints dates: `2024-05-01T12:00:00.250Z`.
pub fn format_timestamp(at: DateTime<Utc>) -> String {
    let mut text = Vec::with_capacity(24);
    write_timestamp(&mut text, at);
    String::from_utf8(text).expect("digits and punctuation")
}

/// `format_timestamp` appended to `out`: one per document, so written digit by digit rather than through a
/// formatter (years outside 0–9999, which chrono writes with a sign, and leap seconds go through chrono).
pub fn write_timestamp(out: &mut Vec<u8>, at: DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    let year = at.year();
    if !(0..=9999).contains(&year) || at.nanosecond() >= 1_000_000_000 {
        out.extend_from_slice(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true).as_bytes());
        return;
    }
    let millis = at.timestamp_subsec_millis();
    let fields: [(u32, usize, u8); 7] = [
        (year as u32, 4, b'-'),
        (at.month(), 2, b'-'),
        (at.day(), 2, b'T'),
        (at.hour(), 2, b':'),
        (at.minute(), 2, b':'),
        (at.second(), 2, b'.'),
        (millis, 3, b'Z'),
    ];
    for (value, width, then) in fields {
        let mut buffer = [b'0'; 4];
        let mut rest = value;
        for slot in buffer[..width].iter_mut().rev() {
            *slot = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        out.extend_from_slice(&buffer[..width]);
        out.push(then);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        parse_timestamp(text).unwrap()
    }

    #[test]
    fn timestamps_parse_as_elasticsearch_reads_them() {
        assert_eq!(format_timestamp(at("2024-05-01T12:00:00.25+02:00")), "2024-05-01T10:00:00.250Z");
        assert_eq!(format_timestamp(at("2024-05-01T12:00:00")), "2024-05-01T12:00:00.000Z");
        assert_eq!(format_timestamp(at("2024-05-01")), "2024-05-01T00:00:00.000Z");
        assert_eq!(format_timestamp(at("1714564800123")), "2024-05-01T12:00:00.123Z");
    }

    #[test]
    fn loggers_times_are_read_in_the_forms_loggers_write_them() {
        let read = |text: &str| parse_logger_timestamp(text).map(format_timestamp);
        // Powertools' Logger (Python), from its documentation's sample output; Python's logging without a zone.
        assert_eq!(read("2021-05-03 11:47:12,494+0000").as_deref(), Some("2021-05-03T11:47:12.494Z"));
        assert_eq!(read("2021-05-03 11:47:12,494").as_deref(), Some("2021-05-03T11:47:12.494Z"));
        assert_eq!(read("2021-05-03 13:47:12.494+02:00").as_deref(), Some("2021-05-03T11:47:12.494Z"));
        assert_eq!(read("2021-05-03T11:47:12,5Z").as_deref(), Some("2021-05-03T11:47:12.500Z"));
        assert_eq!(read("2023-11-07T12:00:00.000Z").as_deref(), Some("2023-11-07T12:00:00.000Z"));
        assert_eq!(read("1714564800123").as_deref(), Some("2024-05-01T12:00:00.123Z"));
        for not_a_time in ["yesterday", "12ms", "2021-05-03 noon", "2021/05/03 11:47:12", "", "2021-05-03 11:47:12,49x"]
        {
            assert_eq!(read(not_a_time), None, "{not_a_time}");
        }
        for as_it_came in ["2023-11-07T12:00:00.000Z", "2023-11-07T12:00:00.123456+02:00", "2021-05-03T11:47:12"] {
            assert!(is_iso_date_time(as_it_came), "{as_it_came}");
        }
        let rewritten = [
            "2021-05-03 11:47:12,494+0000",
            "1714564800123",
            "2021-05-03",
            "2016-12-31T23:59:60Z",
            "2023-11-07T12:00:00z",
            "2023-11-07T12:00:00.1234567890Z",
            "2023-11-07T12:00:00+0200",
            "2023-02-30T12:00:00Z",
            "2023-11-07T12:00:00.Z",
            "2023-11-07T12:00Z",
        ];
        for rewritten in rewritten {
            assert!(!is_iso_date_time(rewritten), "{rewritten}");
        }
    }

    #[test]
    fn timestamps_are_written_as_chrono_writes_them() {
        let mut rng = fastrand::Rng::with_seed(3339);
        let bounds = [i64::MIN, -62_167_219_200_001, -62_167_219_200_000, 0, 253_402_300_799_999, 253_402_300_800_000];
        let mut millis: Vec<i64> = bounds.to_vec();
        millis.extend((0..20_000).map(|_| rng.i64(-70_000_000_000_000..300_000_000_000_000)));
        for millis in millis {
            let Some(at) = epoch_millis(millis) else { continue };
            assert_eq!(format_timestamp(at), at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), "{millis}");
        }
        assert_eq!(format_timestamp(at("2016-12-31T23:59:60.5Z")), "2016-12-31T23:59:60.500Z", "a leap second");
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp(""), None);
    }
}
