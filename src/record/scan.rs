//! The few fields of a document the indexer needs (its timestamp, a CloudWatch Logs envelope's `messageType` and
//! `logEvents`, the names of fields it is to gain), read in one pass through `json` without building the document.

use chrono::{DateTime, Utc};
use serde::de::{IgnoredAny, MapAccess};

use super::CANARY_FIELD;
use super::content::{DocumentContext, OwnAws};
use crate::json::{self, ReadObject, Shape, Text};
use crate::timestamp;

/// What one pass over a JSON object found, without building it.
pub(super) struct ObjectScan {
    pub(super) has_timestamp_field: bool,
    pub(super) timestamp: Option<DateTime<Utc>>,
    pub(super) message_type: Option<String>,
    pub(super) has_log_events: bool,
    /// Which static fields (`ADD_FIELDS`) the object has of its own, a bit each in their order.
    pub(super) present: u64,
    /// What the object has under `aws`, when the record's provenance is to join it.
    pub(super) aws: OwnAws,
    /// Whether it is the template's canary: `CANARY_FIELD` is `true`.
    pub(super) canary: bool,
}

/// Checks that `text` is exactly one JSON object and reads the few fields the indexer needs from it: its timestamp
/// field, an envelope's `messageType` and `logEvents`, and, when the document is to gain fields, which of them it
/// has already.
pub(super) fn scan_object(text: &str, context: &DocumentContext) -> Option<ObjectScan> {
    json::read_object(text, ObjectScanner { context, adds_fields: context.adds_fields() })
}

struct ObjectScanner<'a> {
    context: &'a DocumentContext<'a>,
    adds_fields: bool,
}

impl<'de> ReadObject<'de> for ObjectScanner<'_> {
    type Object = ObjectScan;
    fn read<A: MapAccess<'de>>(self, mut map: A) -> Result<ObjectScan, A::Error> {
        let mut scan = ObjectScan {
            has_timestamp_field: false,
            timestamp: None,
            message_type: None,
            has_log_events: false,
            present: 0,
            aws: OwnAws::Absent,
            canary: false,
        };
        while let Some(Text(key)) = map.next_key::<Text>()? {
            // Whatever else the key is read for, the document has a field of that name: a static one does not join.
            if self.adds_fields
                && let Some(i) = self.context.preprocess.added_fields.names().position(|name| name == key)
            {
                scan.present |= 1 << i;
            }
            if key == self.context.timestamp_field {
                scan.has_timestamp_field = true;
                scan.timestamp = timestamp_of(&map.next_value::<Shape>()?);
            } else if key == "messageType" {
                // Only a string `messageType` and an array `logEvents` make a CloudWatch Logs envelope.
                scan.message_type = match map.next_value::<Shape>()? {
                    Shape::Text(text) => Some(text.into_owned()),
                    _ => None,
                };
            } else if key == CANARY_FIELD {
                scan.canary = matches!(map.next_value::<Shape>()?, Shape::Bool(true));
            } else if key == "logEvents" {
                scan.has_log_events = matches!(map.next_value::<Shape>()?, Shape::Array);
            } else if self.adds_fields && key == "aws" && scan.aws != OwnAws::Other {
                scan.aws = match map.next_value::<Shape>()? {
                    Shape::Object(()) => OwnAws::Object,
                    _ => OwnAws::Other,
                };
            } else if self.adds_fields && key == "aws.kinesis" {
                // Its own provenance by that name: ours would be a second field of the same name.
                scan.aws = OwnAws::Other;
                map.next_value::<IgnoredAny>()?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(scan)
    }
}

/// The instant a timestamp field holds, read as Elasticsearch would: a date string or epoch milliseconds; anything
/// else is left for Elasticsearch to judge.
pub(super) fn timestamp_of(shape: &Shape) -> Option<DateTime<Utc>> {
    match shape {
        Shape::Text(text) => timestamp::parse_timestamp(text),
        Shape::Integer(millis) => timestamp::epoch_millis(*millis),
        Shape::Unsigned(millis) => i64::try_from(*millis).ok().and_then(timestamp::epoch_millis),
        Shape::Float(millis) => millis.is_finite().then(|| millis.trunc() as i64).and_then(timestamp::epoch_millis),
        Shape::Bool(_) | Shape::Null | Shape::Array | Shape::Object(()) => None,
    }
}
