//! The `ES_INDEX` pattern: strftime date parts and placeholders for a document's log group or field, each value made
//! a valid part of an index name; parsed and checked at cold start so that every name it makes is a valid one.

use std::fmt::Write;

use chrono::format::{Fixed, Item, Numeric, StrftimeItems};
use chrono::{DateTime, TimeZone, Utc};

use super::Routing;
use crate::json::{self, Shape};

/// What a placeholder without `|fallback` puts in the name when its value is absent or sanitises to nothing.
const DEFAULT_FALLBACK: &str = "unknown";

/// Longest value a placeholder puts in a name, in bytes: the bound Elasticsearch's `reroute` processor puts on a
/// data stream's dataset and namespace.
const MAX_PART_BYTES: usize = 100;

/// A parsed `ES_INDEX`: a plain name, or a pattern such as `logs-{log_group}-%Y.%m.%d` formatted in UTC.
#[derive(Debug, Clone)]
pub struct IndexPattern {
    text: String,
    segments: Vec<Segment>,
    placeholders: Vec<Placeholder>,
    granularity: Granularity,
}

/// A run of the pattern: date parts and literal text between placeholders, or the placeholder at a position.
#[derive(Debug, Clone)]
enum Segment {
    Date(Vec<Item<'static>>),
    Placeholder(usize),
}

/// `{log_group}` or `{field:PATH}`, with what stands in for a missing value.
#[derive(Debug, Clone)]
struct Placeholder {
    reads: Reads,
    /// Already a valid part of a name: sanitising leaves it as it is.
    fallback: String,
}

#[derive(Debug, Clone)]
enum Reads {
    LogGroup,
    Field(String),
}

/// The finest time unit the pattern reads: names are equal for all instants within one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Granularity {
    Constant,
    Day,
    Hour,
    Finer,
}

impl IndexPattern {
    /// Parses and checks a pattern: every `%` specifier and `{…}` placeholder must be known, every fallback a valid
    /// part of a name as written, and every name the pattern makes with its fallbacks a valid index name (lowercase,
    /// none of `\ / * ? " < > | , # :` or spaces, not starting with `-`, `_` or `+`, at most 255 bytes).
    pub fn parse(text: &str) -> Result<IndexPattern, String> {
        let mut pattern = IndexPattern {
            text: text.to_owned(),
            segments: Vec::new(),
            placeholders: Vec::new(),
            granularity: Granularity::Constant,
        };
        let mut rest = text;
        loop {
            let (literal, from_brace) = rest.split_at(rest.find(['{', '}']).unwrap_or(rest.len()));
            if !literal.is_empty() {
                let items = StrftimeItems::new(literal).parse_to_owned().map_err(|_| {
                    format!(
                        "{text:?} has an unknown or incomplete % specifier (use strftime parts such as %Y %m %d %H)"
                    )
                })?;
                for item in &items {
                    pattern.granularity = pattern.granularity.max_of(Granularity::of(item));
                }
                pattern.segments.push(Segment::Date(items));
            }
            if from_brace.starts_with('}') {
                let brace = text.len() - from_brace.len();
                return Err(format!("{text:?} has a }} without its {{: {:?}", &text[..=brace]));
            }
            let Some(inside_and_rest) = from_brace.strip_prefix('{') else { break };
            let Some((inside, after)) = inside_and_rest.split_once('}').filter(|(inside, _)| !inside.contains('{'))
            else {
                let unclosed = inside_and_rest.find('{').map_or(from_brace, |next| &from_brace[..=next]);
                return Err(format!("{text:?} has a {{ without its }}: {unclosed:?}"));
            };
            pattern.placeholders.push(Placeholder::parse(text, inside)?);
            pattern.segments.push(Segment::Placeholder(pattern.placeholders.len() - 1));
            rest = after;
        }
        // Every hour of the day, day of the month and of the week, month, and both halves of the day, over more than
        // a year: a specifier that pads with spaces (`%e`, `%l`, `%_H`) or prints names (`%b`, `%p`) shows it here,
        // whatever the date the check runs.
        let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single().expect("fixed sample instant");
        let with_fallbacks =
            if pattern.placeholders.is_empty() { "" } else { " with every placeholder at its fallback" };
        for step in 0..420 {
            let sample = start + chrono::Duration::seconds(step * (25 * 3600 + 61));
            let name = pattern.fallback_name(sample);
            check_index_name(&name)
                .map_err(|why| format!("{text:?} gives the index name {name:?}{with_fallbacks}, which {why}"))?;
        }
        Ok(pattern)
    }

    /// The pattern as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub(super) fn granularity(&self) -> Granularity {
        self.granularity
    }

    pub(super) fn placeholder_count(&self) -> usize {
        self.placeholders.len()
    }

    /// Each placeholder's value as the document holds it, into `values` (one per placeholder, emptied first): the
    /// log group, or the field's string or number; empty when there is none. The document is read only when a
    /// field is named: checked as UTF-8 once, then read through once per field.
    pub(super) fn read_values(&self, routing: &Routing, values: &mut [String]) {
        let mut document = None;
        for (placeholder, value) in self.placeholders.iter().zip(values) {
            value.clear();
            match &placeholder.reads {
                Reads::LogGroup => value.push_str(routing.log_group.unwrap_or_default()),
                Reads::Field(path) => {
                    let text = *document.get_or_insert_with(|| std::str::from_utf8(routing.document).ok());
                    if let Some(found) = text.and_then(|text| json::value_at(text, path)) {
                        write_field_value(value, found);
                    }
                }
            }
        }
    }

    /// The name for `at` with the placeholders' `values` as `read_values` left them, each sanitised or, when that
    /// leaves nothing, its fallback; the name with every fallback when those values make no valid index name.
    pub(super) fn name(&self, at: DateTime<Utc>, values: &[String]) -> String {
        let name = self.format(at, |placeholder, name| {
            let start = name.len();
            push_sanitised(name, &values[placeholder]);
            if name.len() == start {
                name.push_str(&self.placeholders[placeholder].fallback);
            }
        });
        // Without placeholders no value can make the name invalid: the cold start checked it.
        if self.placeholders.is_empty() || check_index_name(&name).is_ok() { name } else { self.fallback_name(at) }
    }

    /// The name the pattern makes at `at` with every placeholder at its fallback (the doctor's name for today).
    pub fn fallback_name(&self, at: DateTime<Utc>) -> String {
        self.format(at, |placeholder, name| name.push_str(&self.placeholders[placeholder].fallback))
    }

    fn format(&self, at: DateTime<Utc>, mut write_placeholder: impl FnMut(usize, &mut String)) -> String {
        let mut name = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Date(items) => {
                    write!(name, "{}", at.format_with_items(items.iter())).expect("a parsed pattern formats")
                }
                Segment::Placeholder(placeholder) => write_placeholder(*placeholder, &mut name),
            }
        }
        name
    }
}

impl Placeholder {
    /// What is between `{` and `}` in `pattern`: `log_group` or `field:PATH`, then `|fallback` or nothing.
    fn parse(pattern: &str, inside: &str) -> Result<Placeholder, String> {
        let (source, fallback) = match inside.split_once('|') {
            Some((source, fallback)) => (source, fallback),
            None => (inside, DEFAULT_FALLBACK),
        };
        let reads = match source.strip_prefix("field:") {
            None if source == "log_group" => Reads::LogGroup,
            None => {
                return Err(format!(
                    "{pattern:?} has the unknown placeholder {{{inside}}} (use {{log_group}} or {{field:PATH}}, \
                     each with an optional |fallback)"
                ));
            }
            Some(path) if path.is_empty() || path.split('.').any(str::is_empty) => {
                return Err(format!(
                    "{pattern:?} has {{{inside}}}, whose path is empty or has an empty part (write a key, or keys \
                     joined by dots, such as {{field:service.name}})"
                ));
            }
            Some(path) => Reads::Field(path.to_owned()),
        };
        let sanitised = sanitised(fallback);
        if fallback.is_empty() || sanitised != fallback {
            return Err(format!(
                "{pattern:?} has {{{inside}}}, whose fallback {fallback:?} is not a valid part of an index name as \
                 written (it would become {sanitised:?}): a fallback is lowercase, without - or characters \
                 Elasticsearch forbids, not starting or ending with _ or ., at most {MAX_PART_BYTES} bytes"
            ));
        }
        Ok(Placeholder { reads, fallback: fallback.to_owned() })
    }
}

/// A field's value as text: a string as it is, a number as JSON writes it; nothing for any other kind.
fn write_field_value(value: &mut String, found: Shape) {
    let written = match found {
        Shape::Text(text) => {
            value.push_str(&text);
            Ok(())
        }
        Shape::Integer(number) => write!(value, "{number}"),
        Shape::Unsigned(number) => write!(value, "{number}"),
        Shape::Float(number) => match serde_json::Number::from_f64(number) {
            Some(number) => write!(value, "{number}"),
            None => Ok(()),
        },
        Shape::Bool(_) | Shape::Null | Shape::Array | Shape::Object(()) => Ok(()),
    };
    written.expect("writing to a String cannot fail");
}

/// `value` made a valid part of an index name, as Elasticsearch's `reroute` processor makes a data stream's
/// dataset: lowercased; `-` (which separates a data stream's type, dataset and namespace) and every character an
/// index name may not hold (and any that lowercasing leaves uppercase) as `_`; leading and trailing `_` and `.`
/// trimmed; at most `MAX_PART_BYTES`, cut between characters. Appended to `name`; nothing when nothing is left.
fn push_sanitised(name: &mut String, value: &str) {
    let start = name.len();
    for c in value.chars().flat_map(char::to_lowercase) {
        let c = if c == '-' || c.is_uppercase() || forbidden_in_index_names(c) { '_' } else { c };
        if name.len() == start && matches!(c, '_' | '.') {
            continue;
        }
        if name.len() - start + c.len_utf8() > MAX_PART_BYTES {
            break;
        }
        name.push(c);
    }
    let kept = name[start..].trim_end_matches(['_', '.']).len();
    name.truncate(start + kept);
}

fn sanitised(value: &str) -> String {
    let mut part = String::new();
    push_sanitised(&mut part, value);
    part
}

fn forbidden_in_index_names(c: char) -> bool {
    matches!(c, '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ':') || c.is_whitespace() || c.is_control()
}

/// Whether `name` is a valid index name by Elasticsearch's rules; if not, why (to follow "the name … ").
pub fn check_index_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.len() > 255 {
        return Err("is longer than 255 bytes");
    }
    if name.chars().any(|c| c.is_uppercase()) {
        return Err("has uppercase letters");
    }
    if name.chars().any(forbidden_in_index_names) {
        return Err("has a character Elasticsearch forbids in index names");
    }
    if name.starts_with(['-', '_', '+']) || name == "." || name == ".." {
        return Err("starts with a character Elasticsearch forbids");
    }
    Ok(())
}

impl Granularity {
    /// The unit one strftime item reads.
    fn of(item: &Item) -> Granularity {
        match item {
            Item::Literal(_) | Item::OwnedLiteral(_) | Item::Space(_) | Item::OwnedSpace(_) => Granularity::Constant,
            Item::Numeric(Numeric::Hour | Numeric::Hour12, _) | Item::Fixed(Fixed::LowerAmPm | Fixed::UpperAmPm) => {
                Granularity::Hour
            }
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
        }
    }

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
    pub(super) fn bucket(self, at: DateTime<Utc>) -> Option<i64> {
        let seconds = at.timestamp();
        match self {
            Granularity::Constant => Some(0),
            Granularity::Day => Some(seconds.div_euclid(86_400)),
            Granularity::Hour => Some(seconds.div_euclid(3_600)),
            Granularity::Finer => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(pattern: &str) -> String {
        IndexPattern::parse(pattern).unwrap_err()
    }

    #[test]
    fn invalid_patterns_are_refused_with_the_reason() {
        assert!(refusal("Logs").contains("uppercase"));
        assert!(refusal("logs-%b").contains("uppercase"), "month names are capitalised");
        assert!(refusal("logs %Y").contains("forbids"));
        assert!(refusal("_logs").contains("starts with"));
        assert!(refusal("logs-%Q").contains("specifier"));
        for space_padded in ["logs-%e", "logs-%l", "logs-%_H", "logs-%k", "logs-%_m", "logs-%P%t"] {
            assert!(refusal(space_padded).contains("forbids"), "{space_padded}");
        }
        assert!(refusal("logs-%p").contains("uppercase"), "AM/PM");
        assert!(IndexPattern::parse("logs-%+").is_err(), "a date-time with colons");
        assert!(IndexPattern::parse("logs-%c").is_err(), "names and spaces");
        for fine in ["logs-%Y.%m.%d", "logs-%Y-%m-%d-%H", "logs-%G.%V", "logs-%-d", "logs-%j", "logs-%P"] {
            assert!(IndexPattern::parse(fine).is_ok(), "{fine}");
        }
        assert!(refusal("").contains("empty"));
    }

    #[test]
    fn placeholders_are_parsed_with_their_fallbacks() {
        for fine in [
            "logs-{log_group}-%Y.%m.%d",
            "app-{field:service.name|misc}-%Y.%m",
            "logs-{field:service.name}-default",
            "{log_group|x}",
            "{field:kubernetes:namespace|k8s.default}",
            "{field:a%Y}-{log_group|é}%Y",
        ] {
            assert!(IndexPattern::parse(fine).is_ok(), "{fine}");
        }
        let pattern = IndexPattern::parse("app-{field:service.name|misc}-{log_group}-%Y.%m").unwrap();
        assert_eq!(pattern.granularity(), Granularity::Day);
        assert_eq!(
            pattern.fallback_name(Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap()),
            "app-misc-unknown-2024.05"
        );
    }

    #[test]
    fn malformed_placeholders_are_refused_with_what_is_wrong() {
        assert_eq!(
            refusal("logs-{foo}"),
            concat!(
                r#""logs-{foo}" has the unknown placeholder {foo} "#,
                "(use {log_group} or {field:PATH}, each with an optional |fallback)"
            )
        );
        assert!(refusal("logs-{Log_Group}").contains("unknown placeholder {Log_Group}"));
        assert!(refusal("logs-{ log_group }").contains("unknown placeholder { log_group }"));
        assert!(refusal("logs-{}").contains("unknown placeholder {}"));
        assert_eq!(
            refusal("logs-{field:}"),
            concat!(
                r#""logs-{field:}" has {field:}, whose path is empty or has an empty part "#,
                "(write a key, or keys joined by dots, such as {field:service.name})"
            )
        );
        for empty_part in ["{field:|x}", "{field:a..b}", "{field:.a}", "{field:a.}"] {
            assert!(refusal(empty_part).contains("whose path is empty or has an empty part"), "{empty_part}");
        }
        assert_eq!(refusal("logs-{log_group"), r#""logs-{log_group" has a { without its }: "{log_group""#);
        assert_eq!(
            refusal("logs-{log_group-{field:a}"),
            r#""logs-{log_group-{field:a}" has a { without its }: "{log_group-""#
        );
        assert_eq!(refusal("logs-}-%Y"), r#""logs-}-%Y" has a } without its {: "logs-}""#);
        assert_eq!(refusal("{log_group}}"), r#""{log_group}}" has a } without its {: "{log_group}}""#);
        assert!(refusal("logs-%{log_group}").contains("incomplete % specifier"), "a % cut off by a placeholder");
    }

    #[test]
    fn a_fallback_must_be_a_valid_part_as_written() {
        assert_eq!(
            refusal("logs-{log_group|Other}"),
            concat!(
                r#""logs-{log_group|Other}" has {log_group|Other}, whose fallback "Other" is not a valid part of an "#,
                r#"index name as written (it would become "other"): a fallback is lowercase, without - or characters "#,
                "Elasticsearch forbids, not starting or ending with _ or ., at most 100 bytes"
            )
        );
        for (pattern, would_be) in [
            ("{log_group|}", r#""""#),
            ("{field:a|no-dash}", r#""no_dash""#),
            ("{log_group|_x}", r#""x""#),
            ("{log_group|x.}", r#""x""#),
            ("{log_group|a b}", r#""a_b""#),
            ("{log_group|a|b}", r#""a_b""#),
            ("{log_group|.}", r#""""#),
        ] {
            assert!(refusal(pattern).contains(&format!("(it would become {would_be})")), "{pattern}");
        }
        let long = "f".repeat(101);
        assert!(refusal(&format!("{{log_group|{long}}}")).contains(&format!("(it would become \"{}\")", &long[..100])));
        assert!(IndexPattern::parse(&format!("{{log_group|{}}}", &long[..100])).is_ok());
    }

    #[test]
    fn every_name_with_fallbacks_must_be_a_valid_index_name() {
        let hundred = "f".repeat(100);
        let too_long = format!("{{log_group|{hundred}}}-{{field:a|{hundred}}}-{{field:b|{hundred}}}");
        assert_eq!(
            refusal(&too_long),
            format!(
                "{too_long:?} gives the index name \"{hundred}-{hundred}-{hundred}\" with every placeholder at its \
                 fallback, which is longer than 255 bytes"
            )
        );
        assert_eq!(
            refusal("+{log_group}"),
            concat!(
                r#""+{log_group}" gives the index name "+unknown" with every placeholder at its fallback, "#,
                "which starts with a character Elasticsearch forbids"
            )
        );
        assert!(refusal("{log_group}-%b").contains("uppercase"), "the date parts are checked as without placeholders");
        assert_eq!(refusal("%b"), r#""%b" gives the index name "Jan", which has uppercase letters"#);
    }

    #[test]
    fn sanitising_leaves_what_it_made_as_it_is() {
        for value in ["/aws/lambda/My-Func", "..A..", "İstanbul-ΣΑΣ", "x\u{0}y", &"é-".repeat(80), "ǅ𝐀"] {
            let once = sanitised(value);
            assert_eq!(sanitised(&once), once, "{value:?}");
            assert!(once.is_empty() || check_index_name(&once).is_ok(), "{value:?} → {once:?}");
        }
        assert_eq!(sanitised("/aws/lambda/My-Func"), "aws_lambda_my_func");
    }
}
