//! The invocation's event as Lambda sent it: the body's bytes, read once, and where each record lies in them.
//!
//! The body is checked as UTF-8 once and scanned once; each record stays where it is in the body and is read on its
//! own later (`record::read_record`), so one malformed record cannot fail the batch and no record is copied.
//! (`aws_lambda_events`' own type fails the whole event on one bad base64 string, and copies every field.)

use std::fmt;
use std::ops::Range;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// A Kinesis event: its JSON text and the position of each element of its `Records` array.
#[derive(Debug, Clone, Default)]
pub struct KinesisEventIn {
    body: String,
    records: Vec<Range<usize>>,
}

/// Why the invocation's body is not a Kinesis event at all (each record's own problems are outcomes, not this).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the invocation's event is not a Kinesis event (an object with a \"Records\" array): {0}")]
pub struct EventError(String);

impl KinesisEventIn {
    /// Reads the body Lambda sent: valid UTF-8, one JSON object whose `Records`, when present, is an array. Takes
    /// the bytes as they are (no copy when the buffer is the body's own).
    pub fn from_body(body: Vec<u8>) -> Result<KinesisEventIn, EventError> {
        let body = String::from_utf8(body).map_err(|e| EventError(format!("not UTF-8: {}", e.utf8_error())))?;
        let records = {
            let mut deserializer = serde_json::Deserializer::from_str(&body);
            let raws = deserializer.deserialize_map(RecordsVisitor).map_err(|e| EventError(e.to_string()))?;
            deserializer.end().map_err(|e| EventError(e.to_string()))?;
            let start = body.as_ptr() as usize;
            raws.iter()
                .map(|raw| {
                    let at = raw.get().as_ptr() as usize - start;
                    at..at + raw.get().len()
                })
                .collect()
        };
        Ok(KinesisEventIn { body, records })
    }

    /// An event holding these records (each one JSON value), in order.
    pub fn from_records<R: AsRef<str>>(records: impl IntoIterator<Item = R>) -> Result<KinesisEventIn, EventError> {
        let mut body = String::from(r#"{"Records":["#);
        for (i, record) in records.into_iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(record.as_ref());
        }
        body.push_str("]}");
        KinesisEventIn::from_body(body.into_bytes())
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The JSON text of the record at `position`.
    pub fn record(&self, position: usize) -> Option<&str> {
        self.records.get(position).map(|range| &self.body[range.clone()])
    }

    pub fn records(&self) -> impl ExactSizeIterator<Item = &str> {
        self.records.iter().map(|range| &self.body[range.clone()])
    }

    /// The event as it came.
    pub fn as_json(&self) -> &str {
        &self.body
    }
}

/// Reads an event from any JSON source (tests, the replay tool, local runs): the same checks as `from_body`.
impl<'de> Deserialize<'de> for KinesisEventIn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        KinesisEventIn::from_body(raw.get().as_bytes().to_vec()).map_err(de::Error::custom)
    }
}

/// The top-level object: each element of `Records` borrowed as raw JSON (checked, not built), the rest skipped.
struct RecordsVisitor;

impl<'de> Visitor<'de> for RecordsVisitor {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with a \"Records\" array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut records = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "Records" {
                if records.is_some() {
                    return Err(de::Error::duplicate_field("Records"));
                }
                records = Some(map.next_value::<Vec<&'de RawValue>>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(records.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_record_is_found_where_it_lies_in_the_body() {
        let body =
            r#" {"eventSource":"aws:kinesis", "Records" : [ {"a":1} ,{"b":[2,"]"]}, "text" ], "x": {"Records":5}} "#;
        let event = KinesisEventIn::from_body(body.as_bytes().to_vec()).unwrap();
        assert_eq!(event.records().collect::<Vec<_>>(), [r#"{"a":1}"#, r#"{"b":[2,"]"]}"#, r#""text""#]);
        assert_eq!(event.record(1), Some(r#"{"b":[2,"]"]}"#));
        assert_eq!(event.record(3), None);
        assert_eq!(event.as_json(), body);
    }

    #[test]
    fn an_event_without_records_is_empty_and_anything_else_is_refused_with_its_reason() {
        assert!(KinesisEventIn::from_body(b"{}".to_vec()).unwrap().is_empty());
        assert!(KinesisEventIn::from_body(br#"{"Records":[]}"#.to_vec()).unwrap().is_empty());
        for (body, why) in [
            (&b"null"[..], "invalid type: null"),
            (b"[1]", "invalid type: sequence"),
            (br#"{"Records":{}}"#, "invalid type: map"),
            (br#"{"Records":[1,]}"#, "trailing comma"),
            (br#"{"Records":[],"Records":[]}"#, "duplicate field `Records`"),
            (br#"{"Records":[]} {}"#, "trailing characters"),
            (b"{\"Records\":[\"\xff\"]}", "not UTF-8"),
        ] {
            let error = KinesisEventIn::from_body(body.to_vec()).unwrap_err().to_string();
            assert!(error.starts_with("the invocation's event is not a Kinesis event"), "{error}");
            assert!(error.contains(why), "{} → {error}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn an_event_built_from_records_and_one_read_through_serde_are_the_same() {
        let built = KinesisEventIn::from_records([r#"{"a":1}"#, "2"]).unwrap();
        let read: KinesisEventIn = serde_json::from_str(built.as_json()).unwrap();
        assert_eq!(read.records().collect::<Vec<_>>(), ["{\"a\":1}", "2"]);
        assert!(KinesisEventIn::from_records(["{"]).is_err(), "a record that is not JSON makes no event");
    }
}
