//! Where each document is indexed: the `ES_INDEX` pattern (`pattern`) and the namer that applies it to each document,
//! reusing the last name it made; and a document's timestamp, read and written as Elasticsearch does.

mod pattern;

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

pub use pattern::{IndexPattern, check_index_name};

/// What a document's index name may read besides its instant.
pub struct Routing<'a> {
    /// The CloudWatch Logs log group the document came from; `None` for documents not from CloudWatch Logs.
    pub log_group: Option<&'a str>,
    /// The document's JSON: one object, on one line.
    pub document: &'a [u8],
}

/// Formats index names for one invocation, reusing the last name while documents stay in the same day (or hour) and
/// have the same values for the pattern's placeholders.
pub struct IndexNamer<'a> {
    pattern: &'a IndexPattern,
    last: Option<(i64, Arc<str>)>,
    /// The placeholders' values the last name was made from.
    last_values: Vec<String>,
    /// The placeholders' values of the document being named: buffers kept across documents, so that naming one
    /// with the same values as the last allocates nothing.
    values: Vec<String>,
}

impl<'a> IndexNamer<'a> {
    pub fn new(pattern: &'a IndexPattern) -> IndexNamer<'a> {
        let values = vec![String::new(); pattern.placeholder_count()];
        IndexNamer { pattern, last: None, last_values: values.clone(), values }
    }

    /// The index for a document stamped `at`.
    pub fn name(&mut self, at: DateTime<Utc>, routing: &Routing) -> Arc<str> {
        let bucket = self.pattern.granularity().bucket(at);
        self.pattern.read_values(routing, &mut self.values);
        if let (Some(bucket), Some((last_bucket, name))) = (bucket, &self.last)
            && bucket == *last_bucket
            && self.values == self.last_values
        {
            return name.clone();
        }
        let name: Arc<str> = self.pattern.name(at, &self.values).into();
        if let Some(bucket) = bucket {
            self.last = Some((bucket, name.clone()));
            std::mem::swap(&mut self.values, &mut self.last_values);
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

    /// A document not from CloudWatch Logs.
    fn document(json: &str) -> Routing<'_> {
        Routing { log_group: None, document: json.as_bytes() }
    }

    fn from_log_group(log_group: &str) -> Routing<'_> {
        Routing { log_group: Some(log_group), document: b"{}" }
    }

    /// The names `pattern` gives each document, all stamped `2024-05-01T12:00:00Z`, in order, by one namer.
    fn names(pattern: &str, routings: &[Routing]) -> Vec<String> {
        let pattern = IndexPattern::parse(pattern).unwrap();
        let mut namer = IndexNamer::new(&pattern);
        routings.iter().map(|routing| namer.name(at("2024-05-01T12:00:00Z"), routing).to_string()).collect()
    }

    #[test]
    fn date_parts_come_from_the_timestamp_in_utc() {
        let pattern = IndexPattern::parse("logs-%Y.%m.%d").unwrap();
        let mut namer = IndexNamer::new(&pattern);
        let routing = document("{}");
        assert_eq!(&*namer.name(at("2024-03-09T23:30:00-02:00"), &routing), "logs-2024.03.10");
        assert_eq!(&*namer.name(at("2024-03-10T00:00:00Z"), &routing), "logs-2024.03.10");
        assert_eq!(&*namer.name(at("2024-03-11T00:00:00Z"), &routing), "logs-2024.03.11");
    }

    #[test]
    fn a_plain_name_is_allowed_and_constant() {
        let pattern = IndexPattern::parse("events").unwrap();
        let mut namer = IndexNamer::new(&pattern);
        assert_eq!(&*namer.name(at("2001-01-01"), &document("{}")), "events");
        assert_eq!(&*namer.name(at("2030-06-01"), &from_log_group("/aws/lambda/app")), "events");
    }

    #[test]
    fn hourly_patterns_are_not_cached_across_hours() {
        let pattern = IndexPattern::parse("logs-%Y%m%d-%H").unwrap();
        let mut namer = IndexNamer::new(&pattern);
        assert_eq!(&*namer.name(at("2024-01-01T10:59:59Z"), &document("{}")), "logs-20240101-10");
        assert_eq!(&*namer.name(at("2024-01-01T11:00:00Z"), &document("{}")), "logs-20240101-11");
    }

    #[test]
    fn the_log_group_names_the_index_or_its_fallback() {
        let routings = [from_log_group("/aws/lambda/My-Func"), document(r#"{"log_group":"not read"}"#)];
        assert_eq!(
            names("logs-{log_group}-%Y.%m.%d", &routings),
            ["logs-aws_lambda_my_func-2024.05.01", "logs-unknown-2024.05.01"]
        );
        assert_eq!(names("logs-{log_group|other}", &routings), ["logs-aws_lambda_my_func", "logs-other"]);
    }

    #[test]
    fn a_field_names_the_index_when_it_is_a_string_or_a_number() {
        let routings = [
            document(r#"{"service":{"name":"Billing"}}"#),
            document(r#"{"service.name":"checkout"}"#),
            document(r#"{"service":{"name":42}}"#),
            document(r#"{"service":{"name":-1.5}}"#),
            document(r#"{"service":{"name":"\u0041pi"}}"#),
        ];
        assert_eq!(
            names("app-{field:service.name|misc}-%Y.%m", &routings),
            ["app-billing-2024.05", "app-checkout-2024.05", "app-42-2024.05", "app-1.5-2024.05", "app-api-2024.05"]
        );
    }

    #[test]
    fn a_field_of_another_kind_or_missing_takes_the_fallback() {
        let routings = [
            document(r#"{"service":{"name":null}}"#),
            document(r#"{"service":{"name":true}}"#),
            document(r#"{"service":{"name":["a"]}}"#),
            document(r#"{"service":{"name":{"first":"a"}}}"#),
            document(r#"{"service":"name"}"#),
            document(r#"{"service":{"name":""}}"#),
            document("{}"),
            document("not json"),
            Routing { log_group: Some("service"), document: &[0xff, b'{', b'}'] },
        ];
        assert_eq!(names("app-{field:service.name|misc}", &routings), vec!["app-misc"; routings.len()]);
        assert_eq!(names("app-{field:service.name}", &routings[..1]), ["app-unknown"], "the default fallback");
    }

    #[test]
    fn values_are_sanitised_as_the_reroute_processor_does() {
        let (long, two_byte, dash_at_the_cut) =
            ("a".repeat(300), format!("x{}", "é".repeat(150)), format!("{}-b", "a".repeat(99)));
        let routings = [
            from_log_group("/aws/lambda/My-Func"),
            from_log_group(r#"/\*?"<>|,#: -"#),
            from_log_group("._Tab\tand\nnewline._"),
            from_log_group(&long),
            from_log_group(&two_byte),
            from_log_group(&dash_at_the_cut),
            from_log_group("Σ.𝐀.İ"),
        ];
        let named = names("{log_group}", &routings);
        assert_eq!(named[..3], ["aws_lambda_my_func", "unknown", "tab_and_newline"]);
        assert_eq!(named[3], "a".repeat(100), "bounded to 100 bytes");
        assert_eq!(named[4], format!("x{}", "é".repeat(49)), "cut between characters, at 99 bytes");
        assert_eq!(named[5], "a".repeat(99), "what the cut leaves at the end is trimmed too");
        assert_eq!(named[6], "σ._.i\u{307}", "a letter that stays uppercase when lowercased is replaced");
    }

    #[test]
    fn a_name_that_values_make_invalid_goes_to_the_name_with_every_fallback() {
        let hundred = |c: &str| c.repeat(100);
        let too_long = format!(r#"{{"a":"{}","b":"{}","c":"{}"}}"#, hundred("a"), hundred("b"), hundred("c"));
        let fitting = format!(r#"{{"a":"{}","b":"{}","c":"c"}}"#, hundred("a"), hundred("b"));
        let named = names("{field:a}-{field:b|other}-{field:c}-%Y", &[document(&too_long), document(&fitting)]);
        assert_eq!(named[0], "unknown-other-unknown-2024", "307 bytes");
        assert_eq!(named[1], format!("{}-{}-c-2024", hundred("a"), hundred("b")));
        assert_eq!(names("{log_group}", &[from_log_group("+plus")]), ["unknown"], "a name may not start with +");
    }

    #[test]
    fn a_data_stream_keeps_its_three_parts() {
        let routings = [document(r#"{"service":{"name":"Checkout-API"}}"#), document("{}")];
        assert_eq!(
            names("logs-{field:service.name}-default", &routings),
            ["logs-checkout_api-default", "logs-unknown-default"]
        );
    }

    #[test]
    fn a_path_is_not_read_as_date_parts() {
        let routings = [document(r#"{"a%Y":"Percent%Y"}"#)];
        assert_eq!(names("x-{field:a%Y|none}-%Y", &routings), ["x-percent%y-2024"]);
    }

    #[test]
    fn the_last_name_is_reused_only_for_the_same_bucket_and_values() {
        let pattern = IndexPattern::parse("logs-{log_group}-{field:service|none}-%Y.%m.%d").unwrap();
        let mut namer = IndexNamer::new(&pattern);
        let mut name = |when: &str, log_group: Option<&str>, json: &str| -> String {
            namer.name(at(when), &Routing { log_group, document: json.as_bytes() }).to_string()
        };
        let (a, b) = (r#"{"service":"a"}"#, r#"{"service":"b"}"#);
        assert_eq!(name("2024-05-01T01:00:00Z", Some("g"), a), "logs-g-a-2024.05.01");
        assert_eq!(name("2024-05-01T02:00:00Z", Some("g"), b), "logs-g-b-2024.05.01", "another value, same day");
        assert_eq!(name("2024-05-01T03:00:00Z", Some("g"), a), "logs-g-a-2024.05.01", "and back");
        assert_eq!(name("2024-05-01T04:00:00Z", Some("h"), a), "logs-h-a-2024.05.01", "another log group");
        assert_eq!(name("2024-05-01T05:00:00Z", None, a), "logs-unknown-a-2024.05.01", "none");
        assert_eq!(name("2024-05-02T00:00:00Z", None, a), "logs-unknown-a-2024.05.02", "another day");
        assert_eq!(name("2024-05-02T00:00:01Z", None, "{}"), "logs-unknown-none-2024.05.02", "a value gone");
        assert_eq!(name("2024-05-02T00:00:02Z", None, r#"{"service":""}"#), "logs-unknown-none-2024.05.02");
        assert_eq!(name("2024-05-02T00:00:03Z", None, r#"{"service":7}"#), "logs-unknown-7-2024.05.02");
        assert_eq!(name("2024-05-02T00:00:04Z", None, r#"{"service":"7"}"#), "logs-unknown-7-2024.05.02");
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
