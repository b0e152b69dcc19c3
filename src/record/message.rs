//! A log event's message that is one JSON object (Lambda's JSON log format, ECS loggers): read once as its fields,
//! in order, without building them, and written into the event's document merged at the top level or nested
//! (`MESSAGE_JSON`).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::de::MapAccess;
use serde_json::value::RawValue;

use super::content::write_field;
use super::scan::timestamp_of;
use crate::json::{self, ReadObject, Shape, Text};

/// A message's object: each field as its name and its JSON as it came, and its timestamp field when it has one.
pub(super) struct MessageObject<'a> {
    pub(super) text: &'a str,
    pub(super) fields: Vec<(Cow<'a, str>, &'a RawValue)>,
    /// `Some` when the object has the timestamp field: the instant it holds, when readable.
    pub(super) timestamp: Option<Option<DateTime<Utc>>>,
}

/// The message as a JSON object, when it is exactly one (surrounding whitespace aside) with no field named twice;
/// `None` for any other message, which stays a string: Elasticsearch refuses a document with a field twice, and
/// the line must not be lost for it.
pub(super) fn read_message_object<'a>(message: &'a str, timestamp_field: &str) -> Option<MessageObject<'a>> {
    let text = message.trim();
    if !(text.starts_with('{') && text.ends_with('}')) {
        return None;
    }
    let (fields, timestamp) = json::read_object(text, FieldReader { timestamp_field })?;
    let mut names: Vec<&str> = fields.iter().map(|(name, _)| &**name).collect();
    names.sort_unstable();
    if names.windows(2).any(|pair| pair[0] == pair[1]) {
        return None;
    }
    Some(MessageObject { text, fields, timestamp })
}

struct FieldReader<'t> {
    timestamp_field: &'t str,
}

type Fields<'de> = (Vec<(Cow<'de, str>, &'de RawValue)>, Option<Option<DateTime<Utc>>>);

impl<'de> ReadObject<'de> for FieldReader<'_> {
    type Object = Fields<'de>;
    fn read<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut fields = Vec::new();
        let mut timestamp = None;
        while let Some(Text(key)) = map.next_key::<Text>()? {
            let value: &'de RawValue = map.next_value()?;
            if key == self.timestamp_field {
                let shape: Option<Shape> = serde_json::from_str(value.get()).ok();
                timestamp = Some(shape.as_ref().and_then(timestamp_of));
            }
            fields.push((key, value));
        }
        Ok((fields, timestamp))
    }
}

impl MessageObject<'_> {
    /// Writes the object's fields as the document's own, each `,"name":value`, except those `clashes` names, which
    /// are written together under `aside` (`,"json":{…}`). Returns whether any field clashed.
    pub(super) fn write_merged(&self, out: &mut Vec<u8>, clashes: impl Fn(&str) -> bool, aside: &str) -> bool {
        let mut any_clash = false;
        for (name, value) in &self.fields {
            if clashes(name) {
                any_clash = true;
                continue;
            }
            out.push(b',');
            write_field(out, name, value.get().as_bytes());
        }
        if any_clash {
            out.push(b',');
            // `"json":{`: the object the clashing fields go in, closed below.
            write_field(out, aside, b"{");
            let mut first = true;
            for (name, value) in self.fields.iter().filter(|(name, _)| clashes(name)) {
                if !std::mem::take(&mut first) {
                    out.push(b',');
                }
                write_field(out, name, value.get().as_bytes());
            }
            out.push(b'}');
        }
        any_clash
    }

    /// Whether the object has a field of this name.
    pub(super) fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|(own, _)| own == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_message_that_is_one_object_is_read_as_fields_in_order() {
        let object = read_message_object(" {\"b\":1,\"a\":{\"x\":[1, 2]},\"t\\u00e9\":\"v\"}\n", "timestamp").unwrap();
        let names: Vec<&str> = object.fields.iter().map(|(name, _)| &**name).collect();
        assert_eq!(names, ["b", "a", "té"]);
        assert_eq!(object.fields[1].1.get(), r#"{"x":[1, 2]}"#);
        assert!(object.timestamp.is_none());
        for not_one in ["plain", "[1]", "\"{}\"", "{\"a\":1} {}", "{\"a\":", "{} trailing", "{\"a\":1,\"b\":2,\"a\":3}"]
        {
            assert!(read_message_object(not_one, "timestamp").is_none(), "{not_one}");
        }
    }

    #[test]
    fn the_timestamp_field_is_read_when_it_holds_an_instant() {
        let at = read_message_object(r#"{"timestamp":"2024-05-01T12:00:00.250Z","level":"INFO"}"#, "timestamp");
        assert_eq!(at.unwrap().timestamp.unwrap().unwrap().timestamp_millis(), 1_714_564_800_250);
        let unreadable = read_message_object(r#"{"timestamp":"yesterday"}"#, "timestamp").unwrap();
        assert_eq!(unreadable.timestamp, Some(None));
    }

    #[test]
    fn clashing_fields_are_set_aside_together_and_the_rest_written_as_they_came() {
        let object = read_message_object(r#"{"aws":1,"level":"INFO","cloud":{"a":2}}"#, "@timestamp").unwrap();
        let mut out = Vec::new();
        assert!(object.write_merged(&mut out, |name| ["aws", "cloud"].contains(&name), "json"));
        assert_eq!(String::from_utf8(out).unwrap(), r#","level":"INFO","json":{"aws":1,"cloud":{"a":2}}"#);
        let mut out = Vec::new();
        assert!(!object.write_merged(&mut out, |name| name == "other", "json"));
        assert_eq!(String::from_utf8(out).unwrap(), r#","aws":1,"level":"INFO","cloud":{"a":2}"#);
    }
}
