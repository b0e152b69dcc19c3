//! A log event's message that is one JSON object (Lambda's JSON log format, ECS loggers): read once as its fields,
//! in order, without building them, and written into the event's document merged at the top level or nested
//! (`MESSAGE_JSON`).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::de::MapAccess;
use serde_json::value::RawValue;

use super::content::write_field;
use super::scan::timestamp_of;
use crate::config::preprocess::WRITTEN_FIELDS;
use crate::json::{self, ReadObject, Shape, Text};
use crate::timestamp;

/// The fields loggers write their time in, looked at after the configured `TIMESTAMP_FIELD`: ECS loggers'
/// `@timestamp`, Powertools' and Lambda's JSON log format's `timestamp`, Lambda's platform records' `time`. Only a
/// date-time string counts in them: a number there may be a duration (`"time":35`) or seconds, not a time to name
/// a document by, and it stays the field it is.
const LOGGER_TIME_FIELDS: [&str; 3] = ["@timestamp", "timestamp", "time"];

/// A message's object: each field as its name and its JSON as it came, and the logger's time when one of its
/// fields holds one.
pub(super) struct MessageObject<'a> {
    pub(super) text: &'a str,
    pub(super) fields: Vec<(Cow<'a, str>, &'a RawValue)>,
    /// The instant that names the document, read from the first of `TIMESTAMP_FIELD` and `LOGGER_TIME_FIELDS`
    /// that holds one.
    pub(super) time: Option<LoggerTime>,
}

/// Where a message's time was read, and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LoggerTime {
    /// The field's position in `MessageObject::fields`.
    field: usize,
    pub(super) at: DateTime<Utc>,
    /// Whether its value is a date-time Elasticsearch reads as a date as it is (ISO 8601 with a `T`): kept as it
    /// came, precision and zone included; any other form is written as RFC 3339.
    as_it_came: bool,
}

/// The message as a JSON object, when it is exactly one (surrounding whitespace aside) with no field named twice;
/// `None` for any other message, which stays a string: Elasticsearch refuses a document with a field twice, and
/// the line must not be lost for it.
pub(super) fn read_message_object<'a>(message: &'a str, timestamp_field: &str) -> Option<MessageObject<'a>> {
    let text = message.trim();
    if !(text.starts_with('{') && text.ends_with('}')) {
        return None;
    }
    let fields = json::read_object(text, FieldReader)?;
    let mut names: Vec<&str> = fields.iter().map(|(name, _)| &**name).collect();
    names.sort_unstable();
    if names.windows(2).any(|pair| pair[0] == pair[1]) {
        return None;
    }
    let time = std::iter::once(timestamp_field).chain(LOGGER_TIME_FIELDS).find_map(|candidate| {
        let field = fields.iter().position(|(name, _)| name == candidate)?;
        let numbers = candidate == timestamp_field;
        logger_time(fields[field].1, numbers).map(|(at, as_it_came)| LoggerTime { field, at, as_it_came })
    });
    Some(MessageObject { text, fields, time })
}

/// The instant a logger's time field holds, and whether Elasticsearch reads it as a date as it is; a number (epoch
/// milliseconds, as Elasticsearch reads one) only where `numbers` says the field is the configured timestamp.
fn logger_time(value: &RawValue, numbers: bool) -> Option<(DateTime<Utc>, bool)> {
    match serde_json::from_str::<Shape>(value.get()).ok()? {
        Shape::Text(text) => {
            timestamp::parse_logger_timestamp(&text).map(|at| (at, timestamp::is_iso_date_time(&text)))
        }
        number if numbers => timestamp_of(&number).map(|at| (at, false)),
        _ => None,
    }
}

struct FieldReader;

type Fields<'de> = Vec<(Cow<'de, str>, &'de RawValue)>;

impl<'de> ReadObject<'de> for FieldReader {
    type Object = Fields<'de>;
    fn read<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut fields = Vec::new();
        while let Some(Text(key)) = map.next_key::<Text>()? {
            fields.push((key, map.next_value()?));
        }
        Ok(fields)
    }
}

/// The fields of a document that the indexer owns, whose type a merged message may not change: `message` is text,
/// the timestamp field a date, `aws`, `cloud` and the field set aside objects. A message's field is theirs when it
/// names one of them, or a field inside one (a dotted name, which Elasticsearch expands into the same object).
pub(super) struct OwnedFields<'a> {
    pub(super) timestamp_field: &'a str,
    pub(super) aside: &'a str,
}

impl OwnedFields<'_> {
    /// Whether the message's field `name` holding `value` would change what an owned field is: it is then set
    /// aside. A string `message` is the message's text, and stays.
    fn clashes(&self, name: &str, value: &RawValue) -> bool {
        // The owned field itself, a field inside it (`aws.region`), or an object holding it (`event` when the
        // timestamp field is `event.created`): Elasticsearch expands dotted names into the same objects.
        let within = |outer: &str, inner: &str| inner.strip_prefix(outer).is_some_and(|rest| rest.starts_with('.'));
        let into = |owned: &str| name == owned || within(owned, name) || within(name, owned);
        match name {
            "message" => !value.get().starts_with('"'),
            _ => WRITTEN_FIELDS.into_iter().any(into) || into(self.aside) || into(self.timestamp_field),
        }
    }
}

impl MessageObject<'_> {
    /// Writes the document's start, `{"<timestamp field>":…`: the logger's time (as it came when Elasticsearch
    /// reads it so, else RFC 3339), or `arrived` without one.
    pub(super) fn write_stamp(&self, out: &mut Vec<u8>, timestamp_field: &str, arrived: DateTime<Utc>) {
        match self.time {
            Some(LoggerTime { field, as_it_came: true, .. }) => {
                out.push(b'{');
                write_field(out, timestamp_field, self.fields[field].1.get().as_bytes());
            }
            Some(LoggerTime { at, .. }) => super::content::write_stamp(out, timestamp_field, at),
            None => super::content::write_stamp(out, timestamp_field, arrived),
        }
    }

    /// Writes the object's fields as the document's own, each `,"name":value`, except the one the logger's time was
    /// read from (written by `write_stamp`) and those that clash with a field the indexer owns, which are written
    /// together under `owned.aside` (`,"json":{…}`). Returns whether any field clashed.
    pub(super) fn write_merged(&self, out: &mut Vec<u8>, owned: &OwnedFields) -> bool {
        let time_field = self.time.map(|time| time.field);
        let mut aside = Vec::new();
        for (i, (name, value)) in self.fields.iter().enumerate() {
            if Some(i) == time_field {
                continue;
            }
            if owned.clashes(name, value) {
                aside.push((name, value));
                continue;
            }
            out.push(b',');
            write_field(out, name, value.get().as_bytes());
        }
        if aside.is_empty() {
            return false;
        }
        out.push(b',');
        // `"json":{`: the object the clashing fields go in, closed below.
        write_field(out, owned.aside, b"{");
        for (i, (name, value)) in aside.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_field(out, name, value.get().as_bytes());
        }
        out.push(b'}');
        true
    }

    /// Whether the object has a field of this name.
    pub(super) fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|(own, _)| own == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNED: OwnedFields = OwnedFields { timestamp_field: "@timestamp", aside: "json" };

    fn merged(message: &str) -> String {
        let object = read_message_object(message, OWNED.timestamp_field).unwrap();
        let arrived = timestamp::parse_timestamp("2024-05-01T00:00:00Z").unwrap();
        let mut out = Vec::new();
        object.write_stamp(&mut out, OWNED.timestamp_field, arrived);
        object.write_merged(&mut out, &OWNED);
        out.push(b'}');
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn only_a_message_that_is_one_object_is_read_as_fields_in_order() {
        let object = read_message_object(" {\"b\":1,\"a\":{\"x\":[1, 2]},\"t\\u00e9\":\"v\"}\n", "timestamp").unwrap();
        let names: Vec<&str> = object.fields.iter().map(|(name, _)| &**name).collect();
        assert_eq!(names, ["b", "a", "té"]);
        assert_eq!(object.fields[1].1.get(), r#"{"x":[1, 2]}"#);
        assert!(object.time.is_none());
        for not_one in ["plain", "[1]", "\"{}\"", "{\"a\":1} {}", "{\"a\":", "{} trailing", "{\"a\":1,\"b\":2,\"a\":3}"]
        {
            assert!(read_message_object(not_one, "timestamp").is_none(), "{not_one}");
        }
    }

    #[test]
    fn the_time_is_read_from_the_timestamp_field_first_then_from_the_fields_loggers_write_it_in() {
        let at =
            |message: &str| read_message_object(message, "@timestamp").unwrap().time.map(|t| t.at.timestamp_millis());
        assert_eq!(at(r#"{"timestamp":"2024-05-01T12:00:00.250Z","level":"INFO"}"#), Some(1_714_564_800_250));
        assert_eq!(at(r#"{"@timestamp":1714564800250}"#), Some(1_714_564_800_250), "the timestamp field's number");
        assert_eq!(at(r#"{"time":35,"timestamp":1714564800.12}"#), None, "a number elsewhere is not a time");
        assert_eq!(at(r#"{"time":"12ms","timestamp":"2024-05-01 12:00:00,250+0000"}"#), Some(1_714_564_800_250));
        assert_eq!(at(r#"{"@timestamp":"yesterday","time":"2024-05-01T12:00:00.250Z"}"#), Some(1_714_564_800_250));
        assert_eq!(
            at(r#"{"timestamp":"2024-05-01T12:00:00Z","@timestamp":"2024-05-01T12:00:00.250Z"}"#),
            Some(1_714_564_800_250),
            "the configured field first"
        );
        assert_eq!(at(r#"{"timestamp":"yesterday","time":true}"#), None);
    }

    #[test]
    fn the_time_is_written_once_at_the_timestamp_field_as_it_came_when_elasticsearch_reads_it_so() {
        assert_eq!(
            merged(r#"{"level":"INFO","timestamp":"2021-05-03 11:47:12,494+0000","service":"payment"}"#),
            r#"{"@timestamp":"2021-05-03T11:47:12.494Z","level":"INFO","service":"payment"}"#
        );
        assert_eq!(
            merged(r#"{"@timestamp":"2021-05-03T13:47:12.494123+02:00","x":1}"#),
            r#"{"@timestamp":"2021-05-03T13:47:12.494123+02:00","x":1}"#
        );
        assert_eq!(merged(r#"{"@timestamp":1714564800250}"#), r#"{"@timestamp":"2024-05-01T12:00:00.250Z"}"#);
        assert_eq!(merged(r#"{"time":35}"#), r#"{"@timestamp":"2024-05-01T00:00:00.000Z","time":35}"#, "kept");
        assert_eq!(merged(r#"{"x":1}"#), r#"{"@timestamp":"2024-05-01T00:00:00.000Z","x":1}"#, "the event's time");
    }

    #[test]
    fn fields_that_would_change_an_owned_field_are_set_aside_together_and_the_rest_written_as_they_came() {
        assert_eq!(
            merged(r#"{"aws":1,"level":"INFO","cloud":{"a":2},"message":{"event":"order"},"aws.region":"x"}"#),
            r#"{"@timestamp":"2024-05-01T00:00:00.000Z","level":"INFO","json":{"aws":1,"cloud":{"a":2},"message":{"event":"order"},"aws.region":"x"}}"#
        );
        assert_eq!(
            merged(r#"{"message":"order placed","message.id":7,"@timestamp":{"a":1},"json":"x","log.level":"info"}"#),
            r#"{"@timestamp":"2024-05-01T00:00:00.000Z","message":"order placed","log.level":"info","json":{"message.id":7,"@timestamp":{"a":1},"json":"x"}}"#
        );
        let nested = OwnedFields { timestamp_field: "event.created", aside: "x.json" };
        let object = read_message_object(r#"{"event":"login","x":{"y":1},"xy":2,"event.kind":"e"}"#, "event.created");
        let mut out = Vec::new();
        object.unwrap().write_merged(&mut out, &nested);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#","xy":2,"event.kind":"e","x.json":{"event":"login","x":{"y":1}}"#,
            "an object holding an owned field is set aside too; a sibling inside it is not"
        );
        for not_text in ["1", "null", "true", "[\"a\"]"] {
            let document = merged(&format!(r#"{{"message":{not_text}}}"#));
            assert!(document.ends_with(&format!(r#""json":{{"message":{not_text}}}}}"#)), "{document}");
        }
    }
}
