//! The few fields of a document the indexer needs (its timestamp, a CloudWatch Logs envelope's `messageType` and
//! `logEvents`), read in one pass through `json` without building the document.

use chrono::{DateTime, Utc};
use serde::de::{IgnoredAny, MapAccess};

use crate::index;
use crate::json::{self, ReadObject, Shape, Text};

/// What one pass over a JSON object found, without building it.
pub(super) struct ObjectScan {
    pub(super) has_timestamp_field: bool,
    pub(super) timestamp: Option<DateTime<Utc>>,
    pub(super) message_type: Option<String>,
    pub(super) has_log_events: bool,
}

/// Checks that `text` is exactly one JSON object and reads the few fields the indexer needs from it.
pub(super) fn scan_object(text: &str, timestamp_field: &str) -> Option<ObjectScan> {
    json::read_object(text, ObjectScanner { timestamp_field })
}

struct ObjectScanner<'a> {
    timestamp_field: &'a str,
}

impl<'de> ReadObject<'de> for ObjectScanner<'_> {
    type Object = ObjectScan;
    fn read<A: MapAccess<'de>>(self, mut map: A) -> Result<ObjectScan, A::Error> {
        let mut scan =
            ObjectScan { has_timestamp_field: false, timestamp: None, message_type: None, has_log_events: false };
        while let Some(Text(key)) = map.next_key::<Text>()? {
            if key == self.timestamp_field {
                scan.has_timestamp_field = true;
                scan.timestamp = timestamp_of(&map.next_value::<Shape>()?);
            } else if key == "messageType" {
                // Only a string `messageType` and an array `logEvents` make a CloudWatch Logs envelope.
                scan.message_type = match map.next_value::<Shape>()? {
                    Shape::Text(text) => Some(text.into_owned()),
                    _ => None,
                };
            } else if key == "logEvents" {
                scan.has_log_events = matches!(map.next_value::<Shape>()?, Shape::Array);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(scan)
    }
}

/// The instant a timestamp field holds, read as Elasticsearch would: a date string or epoch milliseconds; anything
/// else is left for Elasticsearch to judge.
fn timestamp_of(shape: &Shape) -> Option<DateTime<Utc>> {
    match shape {
        Shape::Text(text) => index::parse_timestamp(text),
        Shape::Integer(millis) => index::epoch_millis(*millis),
        Shape::Unsigned(millis) => i64::try_from(*millis).ok().and_then(index::epoch_millis),
        Shape::Float(millis) => millis.is_finite().then(|| millis.trunc() as i64).and_then(index::epoch_millis),
        Shape::Bool | Shape::Null | Shape::Array | Shape::Object(()) => None,
    }
}
