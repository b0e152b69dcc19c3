//! JSON read in one pass without building it: a string borrowed where it can be, the shape of any value, and the
//! few fields of an object the indexer needs.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::index;

/// A string that borrows from the input when it can (no escapes) and owns a copy when it must.
pub(super) struct Text<'a>(pub(super) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(value)))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(value.to_owned())))
            }
            fn visit_string<E: de::Error>(self, value: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(value)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// What one pass over a JSON object found, without building it.
pub(super) struct ObjectScan {
    pub(super) has_timestamp_field: bool,
    pub(super) timestamp: Option<DateTime<Utc>>,
    pub(super) message_type: Option<String>,
    pub(super) has_log_events: bool,
}

/// Checks that `text` is exactly one JSON object and reads the few fields the indexer needs from it.
pub(super) fn scan_object(text: &str, timestamp_field: &str) -> Option<ObjectScan> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let scan = ObjectScanSeed { timestamp_field }.deserialize(&mut deserializer).ok()?;
    deserializer.end().ok()?;
    Some(scan)
}

struct ObjectScanSeed<'a> {
    timestamp_field: &'a str,
}

impl<'de> DeserializeSeed<'de> for ObjectScanSeed<'_> {
    type Value = ObjectScan;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<ObjectScan, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectScanSeed<'_> {
    type Value = ObjectScan;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ObjectScan, A::Error> {
        let mut scan =
            ObjectScan { has_timestamp_field: false, timestamp: None, message_type: None, has_log_events: false };
        while let Some(Text(key)) = map.next_key::<Text>()? {
            if key == self.timestamp_field {
                scan.has_timestamp_field = true;
                scan.timestamp = map.next_value::<Shape>()?.timestamp();
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

/// The shape of any JSON value, read in one pass without building it: a string or number as it is, a container only
/// as what it is. The scan reads the timestamp field and an envelope's `messageType` and `logEvents` through it.
enum Shape<'a> {
    Text(Cow<'a, str>),
    Integer(i64),
    Unsigned(u64),
    Float(f64),
    Array,
    /// An object, a boolean or null.
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Shape<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ShapeVisitor;
        impl<'de> Visitor<'de> for ShapeVisitor {
            type Value = Shape<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Shape<'de>, E> {
                Ok(Shape::Text(Cow::Borrowed(value)))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Shape<'de>, E> {
                Ok(Shape::Text(Cow::Owned(value.to_owned())))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Shape<'de>, E> {
                Ok(Shape::Integer(value))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Shape<'de>, E> {
                Ok(Shape::Unsigned(value))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Shape<'de>, E> {
                Ok(Shape::Float(value))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Shape<'de>, E> {
                Ok(Shape::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Shape<'de>, E> {
                Ok(Shape::Other)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Shape<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Shape::Array)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Shape::Other)
            }
        }
        deserializer.deserialize_any(ShapeVisitor)
    }
}

impl Shape<'_> {
    /// The instant a timestamp field holds, read as Elasticsearch would: a date string or epoch milliseconds;
    /// anything else is left for Elasticsearch to judge.
    fn timestamp(&self) -> Option<DateTime<Utc>> {
        match self {
            Shape::Text(text) => index::parse_timestamp(text),
            Shape::Integer(millis) => index::epoch_millis(*millis),
            Shape::Unsigned(millis) => i64::try_from(*millis).ok().and_then(index::epoch_millis),
            Shape::Float(millis) => millis.is_finite().then(|| millis.trunc() as i64).and_then(index::epoch_millis),
            Shape::Array | Shape::Other => None,
        }
    }
}
