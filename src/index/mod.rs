//! Target index names: the `ES_INDEX` pattern with strftime date parts, and reading a document's timestamp.

use std::sync::Arc;

use chrono::format::{Fixed, Item, Numeric, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// A parsed `ES_INDEX`: a plain name, or a pattern such as `logs-%Y.%m.%d` formatted in UTC.
#[derive(Debug, Clone)]
pub struct IndexPattern {
    text: String,
    items: Vec<Item<'static>>,
    granularity: Granularity,
}

/// The finest time unit the pattern reads: names are equal for all instants within one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Granularity {
    Constant,
    Day,
    Hour,
    Finer,
}

impl IndexPattern {
    /// Parses and checks a pattern: every `%` specifier must be known, and every name it can produce must be a
    /// valid index name (lowercase, none of `\ / * ? " < > | , #` or spaces, not starting with `-`, `_` or `+`).
    pub fn parse(text: &str) -> Result<IndexPattern, String> {
        let items = StrftimeItems::new(text).parse_to_owned().map_err(|_| {
            format!("{text:?} has an unknown or incomplete % specifier (use strftime parts such as %Y %m %d %H)")
        })?;
        let mut granularity = Granularity::Constant;
        for item in &items {
            let unit = match item {
                Item::Literal(_) | Item::OwnedLiteral(_) | Item::Space(_) | Item::OwnedSpace(_) => {
                    Granularity::Constant
                }
                Item::Numeric(Numeric::Hour | Numeric::Hour12, _)
                | Item::Fixed(Fixed::LowerAmPm | Fixed::UpperAmPm) => Granularity::Hour,
                Item::Numeric(
                    Numeric::Year
                    | Numeric::YearDiv100
                    | Numeric::YearMod100
                    | Numeric::IsoYear
                    | Numeric::IsoYearDiv100
                    | Numeric::IsoYearMod100
                    | Numeric::Month
                    | Numeric::Day
                    | Numeric::WeekFromSun
                    | Numeric::WeekFromMon
                    | Numeric::IsoWeek
                    | Numeric::NumDaysFromSun
                    | Numeric::WeekdayFromMon
                    | Numeric::Ordinal,
                    _,
                )
                | Item::Fixed(
                    Fixed::ShortMonthName | Fixed::LongMonthName | Fixed::ShortWeekdayName | Fixed::LongWeekdayName,
                ) => Granularity::Day,
                _ => Granularity::Finer,
            };
            granularity = granularity.max_of(unit);
        }
        let pattern = IndexPattern { text: text.to_owned(), items, granularity };
        // Every hour of the day, day of the month and of the week, month, and both halves of the day, over more than
        // a year: a specifier that pads with spaces (`%e`, `%l`, `%_H`) or prints names (`%b`, `%p`) shows it here,
        // whatever the date the check runs.
        let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single().expect("fixed sample instant");
        for step in 0..420 {
            let sample = start + chrono::Duration::seconds(step * (25 * 3600 + 61));
            let name = pattern.format(sample);
            check_index_name(&name).map_err(|why| format!("{text:?} gives the index name {name:?}, which {why}"))?;
        }
        Ok(pattern)
    }

    /// The pattern as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn format(&self, at: DateTime<Utc>) -> String {
        at.format_with_items(self.items.iter()).to_string()
    }
}

impl Granularity {
    fn max_of(self, other: Granularity) -> Granularity {
        let rank = |g: Granularity| match g {
            Granularity::Constant => 0,
            Granularity::Day => 1,
            Granularity::Hour => 2,
            Granularity::Finer => 3,
        };
        if rank(other) > rank(self) { other } else { self }
    }

    /// The start of the unit `at` falls in, or `None` when every instant needs its own formatting.
    fn bucket(self, at: DateTime<Utc>) -> Option<i64> {
        let seconds = at.timestamp();
        match self {
            Granularity::Constant => Some(0),
            Granularity::Day => Some(seconds.div_euclid(86_400)),
            Granularity::Hour => Some(seconds.div_euclid(3_600)),
            Granularity::Finer => None,
        }
    }
}

fn check_index_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.len() > 255 {
        return Err("is longer than 255 bytes");
    }
    if name.chars().any(|c| c.is_uppercase()) {
        return Err("has uppercase letters");
    }
    if name.chars().any(|c| {
        matches!(c, '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ':')
            || c.is_whitespace()
            || c.is_control()
    }) {
        return Err("has a character Elasticsearch forbids in index names");
    }
    if name.starts_with(['-', '_', '+']) || name == "." || name == ".." {
        return Err("starts with a character Elasticsearch forbids");
    }
    Ok(())
}

/// Formats index names for one invocation, reusing the last name while documents stay in the same day (or hour).
pub struct IndexNamer<'a> {
    pattern: &'a IndexPattern,
    last: Option<(i64, Arc<str>)>,
}

impl<'a> IndexNamer<'a> {
    pub fn new(pattern: &'a IndexPattern) -> IndexNamer<'a> {
        IndexNamer { pattern, last: None }
    }

    /// The index for a document stamped `at`.
    pub fn name(&mut self, at: DateTime<Utc>) -> Arc<str> {
        let bucket = self.pattern.granularity.bucket(at);
        if let (Some(bucket), Some((last_bucket, name))) = (bucket, &self.last)
            && bucket == *last_bucket
        {
            return name.clone();
        }
        let name: Arc<str> = self.pattern.format(at).into();
        if let Some(bucket) = bucket {
            self.last = Some((bucket, name.clone()));
        }
        name
    }
}

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
    fn date_parts_come_from_the_timestamp_in_utc() {
        let pattern = IndexPattern::parse("logs-%Y.%m.%d").unwrap();
        let mut namer = IndexNamer::new(&pattern);
        assert_eq!(&*namer.name(at("2024-03-09T23:30:00-02:00")), "logs-2024.03.10");
        assert_eq!(&*namer.name(at("2024-03-10T00:00:00Z")), "logs-2024.03.10");
        assert_eq!(&*namer.name(at("2024-03-11T00:00:00Z")), "logs-2024.03.11");
    }

    #[test]
    fn a_plain_name_is_allowed_and_constant() {
        let pattern = IndexPattern::parse("events").unwrap();
        let mut namer = IndexNamer::new(&pattern);
        assert_eq!(&*namer.name(at("2001-01-01")), "events");
        assert_eq!(&*namer.name(at("2030-06-01")), "events");
    }

    #[test]
    fn hourly_patterns_are_not_cached_across_hours() {
        let pattern = IndexPattern::parse("logs-%Y%m%d-%H").unwrap();
        let mut namer = IndexNamer::new(&pattern);
        assert_eq!(&*namer.name(at("2024-01-01T10:59:59Z")), "logs-20240101-10");
        assert_eq!(&*namer.name(at("2024-01-01T11:00:00Z")), "logs-20240101-11");
    }

    #[test]
    fn invalid_patterns_are_refused_with_the_reason() {
        assert!(IndexPattern::parse("Logs").unwrap_err().contains("uppercase"));
        assert!(IndexPattern::parse("logs-%b").unwrap_err().contains("uppercase"), "month names are capitalised");
        assert!(IndexPattern::parse("logs %Y").unwrap_err().contains("forbids"));
        assert!(IndexPattern::parse("_logs").unwrap_err().contains("starts with"));
        assert!(IndexPattern::parse("logs-%Q").unwrap_err().contains("specifier"));
        for space_padded in ["logs-%e", "logs-%l", "logs-%_H", "logs-%k", "logs-%_m", "logs-%P%t"] {
            assert!(IndexPattern::parse(space_padded).unwrap_err().contains("forbids"), "{space_padded}");
        }
        assert!(IndexPattern::parse("logs-%p").unwrap_err().contains("uppercase"), "AM/PM");
        assert!(IndexPattern::parse("logs-%+").is_err(), "a date-time with colons");
        assert!(IndexPattern::parse("logs-%c").is_err(), "names and spaces");
        for fine in ["logs-%Y.%m.%d", "logs-%Y-%m-%d-%H", "logs-%G.%V", "logs-%-d", "logs-%j", "logs-%P"] {
            assert!(IndexPattern::parse(fine).is_ok(), "{fine}");
        }
        assert!(IndexPattern::parse("").unwrap_err().contains("empty"));
    }

    #[test]
    fn timestamps_parse_as_elasticsearch_reads_them() {
        assert_eq!(format_timestamp(at("2024-05-01T12:00:00.25+02:00")), "2024-05-01T10:00:00.250Z");
        assert_eq!(format_timestamp(at("2024-05-01T12:00:00")), "2024-05-01T12:00:00.000Z");
        assert_eq!(format_timestamp(at("2024-05-01")), "2024-05-01T00:00:00.000Z");
        assert_eq!(format_timestamp(at("1714564800123")), "2024-05-01T12:00:00.123Z");
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
