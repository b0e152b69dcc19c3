//! The invocation's event as Lambda sent it: the body's bytes, read once, and where each record lies in them.
//!
//! The body is checked as UTF-8 once and scanned once; each record stays where it is in the body and is read on its
//! own later (`record::read_record`), so one malformed record cannot fail the batch and no record is copied.
//! (`aws_lambda_events`' own type fails the whole event on one bad base64 string, and copies every field.)

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use chrono::{DateTime, Utc};

use crate::json::{self, ReadObject, Shape, ShapeOf};
use crate::timestamp;

/// A Kinesis event: its JSON text, and what one pass over it read of each element of its `Records` array.
#[derive(Debug, Clone, Default)]
pub struct KinesisEventIn {
    body: String,
    records: Vec<RecordIn>,
}

/// Why the invocation's body is not a Kinesis event at all (each record's own problems are outcomes, not this).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the invocation's event is not a Kinesis event (an object with a \"Records\" array): {0}")]
pub struct EventError(String);

/// One record as the scan read it: each field the indexer needs, as a place in the body.
#[derive(Debug, Clone, Default)]
struct RecordIn {
    event_id: Option<BodyText>,
    event_source_arn: Option<BodyText>,
    sequence_number: Option<BodyText>,
    data: Option<BodyText>,
    partition_key: Option<BodyText>,
    arrival_seconds: Option<f64>,
    /// What makes the record something other than a Kinesis record, when something does.
    malformed: Option<String>,
}

/// A string of the event: where it lies in the body, or its text when it had escapes to resolve.
#[derive(Debug, Clone)]
enum BodyText {
    At(Range<usize>),
    Unescaped(Box<str>),
}

/// One record of the event, its strings borrowed from the body.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordView<'a> {
    pub event_id: Option<&'a str>,
    pub event_source_arn: Option<&'a str>,
    pub sequence_number: Option<&'a str>,
    pub data: Option<&'a str>,
    /// `partitionKey`: what the producer chose to spread records over shards (provenance only).
    pub partition_key: Option<&'a str>,
    /// `approximateArrivalTimestamp`, read from seconds since the epoch with a fraction.
    pub arrival: Option<DateTime<Utc>>,
    /// Why this is not a Kinesis record (not an object, no `kinesis` object, no `sequenceNumber` or `data`
    /// string, a field of the wrong type), when it is not.
    pub malformed: Option<&'a str>,
}

impl KinesisEventIn {
    /// Reads the body Lambda sent: valid UTF-8, one JSON object whose `Records`, when present, is an array. Takes
    /// the bytes as they are (no copy when the buffer is the body's own) and reads every record in the same pass.
    pub fn from_body(body: Vec<u8>) -> Result<KinesisEventIn, EventError> {
        let body = String::from_utf8(body).map_err(|e| EventError(format!("not UTF-8: {}", e.utf8_error())))?;
        let records = {
            let mut deserializer = serde_json::Deserializer::from_str(&body);
            let scan = EventScan { body: &body };
            let records = deserializer.deserialize_map(scan).map_err(|e| EventError(e.to_string()))?;
            deserializer.end().map_err(|e| EventError(e.to_string()))?;
            records
        };
        Ok(KinesisEventIn { body, records })
    }

    /// An event holding these records (each one JSON value), in order.
    #[cfg(test)]
    pub(crate) fn from_records<R: AsRef<str>>(
        records: impl IntoIterator<Item = R>,
    ) -> Result<KinesisEventIn, EventError> {
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

    /// The record at `position`, as the scan read it.
    pub fn record(&self, position: usize) -> Option<RecordView<'_>> {
        let record = self.records.get(position)?;
        Some(RecordView {
            event_id: self.text(&record.event_id),
            event_source_arn: self.text(&record.event_source_arn),
            sequence_number: self.text(&record.sequence_number),
            data: self.text(&record.data),
            partition_key: self.text(&record.partition_key),
            // Seconds with a fraction: `.5` is 500 ms (`aws_lambda_events` 1.2.1 reads it as 5 ms).
            arrival: record
                .arrival_seconds
                .filter(|seconds| seconds.is_finite())
                .and_then(|seconds| timestamp::epoch_millis((seconds * 1000.0).round() as i64)),
            malformed: record.malformed.as_deref(),
        })
    }

    fn text<'a>(&'a self, text: &'a Option<BodyText>) -> Option<&'a str> {
        text.as_ref().map(|text| match text {
            BodyText::At(range) => &self.body[range.clone()],
            BodyText::Unescaped(text) => &**text,
        })
    }

    /// The JSON text of every record, in order: found by a second pass over the body, which only the quotes of
    /// malformed records and rebuilt events need.
    pub fn records_json(&self) -> Vec<&str> {
        let mut deserializer = serde_json::Deserializer::from_str(&self.body);
        let raws = deserializer.deserialize_map(RawRecords).expect("the body was read as an event already");
        raws.into_iter().map(RawValue::get).collect()
    }

    /// The event as it came.
    #[cfg(test)]
    pub(crate) fn as_json(&self) -> &str {
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

/// The top-level object: `Records` read record by record, the rest skipped.
struct EventScan<'b> {
    body: &'b str,
}

impl<'de> Visitor<'de> for EventScan<'_> {
    type Value = Vec<RecordIn>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with a \"Records\" array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut records = None;
        while let Some(json::Text(key)) = map.next_key::<json::Text>()? {
            if key == "Records" {
                if records.is_some() {
                    return Err(de::Error::duplicate_field("Records"));
                }
                records = Some(map.next_value_seed(RecordsScan { body: self.body })?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(records.unwrap_or_default())
    }
}

/// The `Records` array.
struct RecordsScan<'b> {
    body: &'b str,
}

impl<'de> DeserializeSeed<'de> for RecordsScan<'_> {
    type Value = Vec<RecordIn>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<RecordIn>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsScan<'_> {
    type Value = Vec<RecordIn>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<RecordIn>, A::Error> {
        let mut records = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(record) = seq.next_element_seed(ShapeOf(RecordReader { body: self.body, part: Part::Record }))? {
            records.push(into_record(record));
        }
        Ok(records)
    }
}

/// Which object of a record is being read: the record itself, or its `kinesis` object.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    Record,
    Kinesis,
}

/// Reads a record or its `kinesis` object leniently: a field of the wrong type is noted, never an error, so that
/// only broken JSON syntax can fail the event.
struct RecordReader<'b> {
    body: &'b str,
    part: Part,
}

impl RecordReader<'_> {
    /// A string field as a place in the body, or its text when it had escapes to resolve.
    fn text(&self, text: Cow<'_, str>) -> BodyText {
        let body = self.body.as_ptr() as usize;
        let start = text.as_ptr() as usize;
        match text {
            Cow::Borrowed(text) if start >= body && start + text.len() <= body + self.body.len() => {
                BodyText::At(start - body..start - body + text.len())
            }
            text => BodyText::Unescaped(text.into()),
        }
    }
}

/// A record read as its shape: what `RecordReader` made of it, or why it is not a record.
fn into_record(shape: Shape<'_, RecordIn>) -> RecordIn {
    match shape {
        Shape::Object(record) => record,
        other => RecordIn {
            malformed: Some(format!("the record is {}, not an object", other.kind())),
            ..RecordIn::default()
        },
    }
}

impl<'de> ReadObject<'de> for RecordReader<'_> {
    type Object = RecordIn;

    fn read<A: MapAccess<'de>>(self, mut map: A) -> Result<RecordIn, A::Error> {
        let mut record = RecordIn::default();
        // The first problem found makes the record malformed; reading goes on to the end of its JSON.
        let mut malformed: Option<String> = None;
        let mut note = |why: String| {
            malformed.get_or_insert(why);
        };
        let mut kinesis_seen = false;
        while let Some(json::Text(key)) = map.next_key::<json::Text>()? {
            match (self.part, &*key) {
                (Part::Record, "kinesis") => {
                    if std::mem::replace(&mut kinesis_seen, true) {
                        note("duplicate field `kinesis`".to_owned());
                    }
                    match map.next_value_seed(ShapeOf(RecordReader { body: self.body, part: Part::Kinesis }))? {
                        Shape::Object(kinesis) => {
                            record.sequence_number = kinesis.sequence_number;
                            record.data = kinesis.data;
                            record.partition_key = kinesis.partition_key;
                            record.arrival_seconds = kinesis.arrival_seconds;
                            if let Some(why) = kinesis.malformed {
                                note(why);
                            }
                        }
                        other => note(format!("`kinesis` is {}, not an object", other.kind())),
                    }
                }
                (Part::Record, name @ ("eventID" | "eventSourceARN"))
                | (Part::Kinesis, name @ ("sequenceNumber" | "data")) => {
                    let value = map.next_value::<Shape>()?;
                    let slot = match name {
                        "eventID" => &mut record.event_id,
                        "eventSourceARN" => &mut record.event_source_arn,
                        "sequenceNumber" => &mut record.sequence_number,
                        _ => &mut record.data,
                    };
                    if slot.is_some() {
                        note(format!("duplicate field `{name}`"));
                    }
                    match value {
                        Shape::Text(text) => *slot = Some(self.text(text)),
                        // Optional fields may be null; a required one that is null is missing below.
                        Shape::Null => {}
                        other => note(format!("`{name}` is {}, not a string", other.kind())),
                    }
                }
                // Provenance only: a partition key of another type (Kinesis always sends a string) is left out, and
                // the record is read as any other.
                (Part::Kinesis, "partitionKey") => {
                    if let Shape::Text(text) = map.next_value::<Shape>()? {
                        record.partition_key = Some(self.text(text));
                    }
                }
                (Part::Kinesis, "approximateArrivalTimestamp") => match map.next_value::<Shape>()? {
                    Shape::Null => {}
                    other => match other.number() {
                        Some(seconds) => record.arrival_seconds = Some(seconds),
                        None => note(format!("`approximateArrivalTimestamp` is {}, not a number", other.kind())),
                    },
                },
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match self.part {
            Part::Record if !kinesis_seen => note("missing field `kinesis`".to_owned()),
            Part::Kinesis => {
                if record.sequence_number.is_none() {
                    note("missing field `sequenceNumber`".to_owned());
                }
                if record.data.is_none() {
                    note("missing field `data`".to_owned());
                }
            }
            _ => {}
        }
        record.malformed = malformed;
        Ok(record)
    }
}

/// The top-level object again, each element of `Records` borrowed as raw JSON (checked, not built).
struct RawRecords;

impl<'de> Visitor<'de> for RawRecords {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with a \"Records\" array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut records = Vec::new();
        while let Some(json::Text(key)) = map.next_key::<json::Text>()? {
            match key == "Records" {
                true => records = map.next_value::<Vec<&'de RawValue>>()?,
                false => map.next_value::<IgnoredAny>().map(drop)?,
            }
        }
        Ok(records)
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
        assert_eq!(event.records_json(), [r#"{"a":1}"#, r#"{"b":[2,"]"]}"#, r#""text""#]);
        assert_eq!(event.len(), 3);
        assert_eq!(event.record(2).unwrap().malformed, Some("the record is a string, not an object"));
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
            (br#"{"Records":{}}"#, "invalid type: map, expected an array of records"),
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
    fn a_records_fields_are_read_where_they_lie_in_the_body_in_any_order() {
        let record = r#"{"kinesis":{"approximateArrivalTimestamp":1.5,"data":"aGk=","partitionKey":"p","sequenceNumber":"49"},"eventSourceARN":"arn:s","eventID":"shard-1:49"}"#;
        let event = KinesisEventIn::from_records([record]).unwrap();
        let view = event.record(0).unwrap();
        let expected = RecordView {
            event_id: Some("shard-1:49"),
            event_source_arn: Some("arn:s"),
            sequence_number: Some("49"),
            data: Some("aGk="),
            partition_key: Some("p"),
            arrival: timestamp::epoch_millis(1500),
            malformed: None,
        };
        assert_eq!(view, expected);
        let body = event.as_json().as_bytes().as_ptr_range();
        assert!(body.contains(&view.data.unwrap().as_ptr()), "the data is borrowed from the body, not copied");
    }

    #[test]
    fn an_event_built_from_records_and_one_read_through_serde_are_the_same() {
        let built = KinesisEventIn::from_records([r#"{"a":1}"#, "2"]).unwrap();
        let read: KinesisEventIn = serde_json::from_str(built.as_json()).unwrap();
        assert_eq!(read.records_json(), ["{\"a\":1}", "2"]);
        assert!(KinesisEventIn::from_records(["{"]).is_err(), "a record that is not JSON makes no event");
    }
}
