//! Where each document is indexed: the `ES_INDEX` pattern (`pattern`) and the namer that applies it to each document,
//! reusing the last name it made.

mod pattern;

use std::sync::Arc;

use chrono::{DateTime, Utc};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp::parse_timestamp;

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
}
