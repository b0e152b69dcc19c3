//! JSON read in one pass without building it: a string borrowed where it lies, any value as its shape, and an
//! object's fields read by whoever asks for them. The event's records (`event`), a document's timestamp and
//! envelope fields (`record::scan`) and the fields that name its index (`index`) are all read through it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A string that borrows from the input when it can (no escapes) and owns a copy when it must.
pub struct Text<'a>(pub Cow<'a, str>);

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

/// The shape of any JSON value: a string or number as it is, an array only as an array, an object as what `O`
/// read of it (nothing, by default). Never an error for a value of an unexpected kind: the reader decides what a
/// kind means where it found it, so that only broken JSON syntax fails.
#[derive(Debug)]
pub enum Shape<'a, O = ()> {
    Text(Cow<'a, str>),
    Integer(i64),
    Unsigned(u64),
    Float(f64),
    Bool(bool),
    Null,
    Array,
    Object(O),
}

impl<O> Shape<'_, O> {
    /// What kind of value it is, as a log line says it: "a string", "an array".
    pub fn kind(&self) -> &'static str {
        match self {
            Shape::Text(_) => "a string",
            Shape::Integer(_) | Shape::Unsigned(_) | Shape::Float(_) => "a number",
            Shape::Bool(_) => "a boolean",
            Shape::Null => "null",
            Shape::Array => "an array",
            Shape::Object(_) => "an object",
        }
    }

    /// The number it is, when it is one.
    pub fn number(&self) -> Option<f64> {
        match self {
            Shape::Integer(n) => Some(*n as f64),
            Shape::Unsigned(n) => Some(*n as f64),
            Shape::Float(n) => Some(*n),
            _ => None,
        }
    }
}

/// What to read of an object where one is found: the fields someone needs, the rest skipped.
pub trait ReadObject<'de> {
    type Object;
    fn read<A: MapAccess<'de>>(self, map: A) -> Result<Self::Object, A::Error>;
}

/// Reads nothing of an object: its entries are checked and skipped.
pub struct SkipObject;

impl<'de> ReadObject<'de> for SkipObject {
    type Object = ();
    fn read<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// Reads any value as its `Shape`, an object through `R`.
pub struct ShapeOf<R>(pub R);

impl<'de, R: ReadObject<'de>> DeserializeSeed<'de> for ShapeOf<R> {
    type Value = Shape<'de, R::Object>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, R: ReadObject<'de>> Visitor<'de> for ShapeOf<R> {
    type Value = Shape<'de, R::Object>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Shape::Text(Cow::Borrowed(value)))
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Shape::Text(Cow::Owned(value.to_owned())))
    }
    fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(Shape::Text(Cow::Owned(value)))
    }
    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(Shape::Integer(value))
    }
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Shape::Unsigned(value))
    }
    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        Ok(Shape::Float(value))
    }
    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Ok(Shape::Bool(value))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Shape::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Shape::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.read(map).map(Shape::Object)
    }
}

/// Reads `text` through `reader` when it is exactly one JSON object; `None` when it is anything else, which is
/// found at its first byte, not after reading it.
pub fn read_object<'de, R: ReadObject<'de>>(text: &'de str, reader: R) -> Option<R::Object> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let object = deserializer.deserialize_map(ObjectOnly(reader)).ok()?;
    deserializer.end().ok()?;
    Some(object)
}

struct ObjectOnly<R>(R);

impl<'de, R: ReadObject<'de>> Visitor<'de> for ObjectOnly<R> {
    type Value = R::Object;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<R::Object, A::Error> {
        self.0.read(map)
    }
}

/// The value at `path` in the JSON object `text`, as its shape. `path` is keys joined by dots, each a level of nested
/// objects, and a key may itself hold dots: `service.name` finds `{"service":{"name":…}}` and `{"service.name":…}`.
/// Where both are present, the key that holds the whole rest of the path wins. Only objects on the path are read
/// into; every other value is skipped. `None` when nothing is there, or when `text` is not one JSON object.
pub fn value_at<'a>(text: &'a str, path: &str) -> Option<Shape<'a>> {
    read_object(text, PathReader { path }).flatten()
}

/// Reads, of an object, the value at the rest of a path.
struct PathReader<'p> {
    path: &'p str,
}

impl<'de> ReadObject<'de> for PathReader<'_> {
    type Object = Option<Shape<'de>>;
    fn read<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Object, A::Error> {
        let (mut whole_key, mut nested) = (None, None);
        while let Some(Text(key)) = map.next_key::<Text>()? {
            if key == self.path {
                whole_key = Some(map.next_value::<Shape>()?);
            } else if let Some(rest) = self.path.strip_prefix(&*key).and_then(|rest| rest.strip_prefix('.')) {
                if let Shape::Object(Some(found)) = map.next_value_seed(ShapeOf(PathReader { path: rest }))? {
                    nested = nested.or(Some(found));
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(whole_key.or(nested))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Shape<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ShapeOf(SkipObject).deserialize(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(text: &str) -> Shape<'_> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn every_value_is_read_as_its_shape_and_a_plain_string_is_borrowed() {
        let kinds: Vec<&str> = ["\"s\"", "-1", "1", "1.5", "true", "null", "[1,[2]]", "{\"a\":{}}"]
            .into_iter()
            .map(|text| shape(text).kind())
            .collect();
        assert_eq!(
            kinds,
            ["a string", "a number", "a number", "a number", "a boolean", "null", "an array", "an object"]
        );
        assert!(matches!(shape("\"plain\""), Shape::Text(Cow::Borrowed("plain"))));
        assert!(matches!(shape(r#""esc\"aped""#), Shape::Text(Cow::Owned(text)) if text == "esc\"aped"));
        assert_eq!((shape("-2").number(), shape("18446744073709551615").number()), (Some(-2.0), Some(u64::MAX as f64)));
        assert!(serde_json::from_str::<Shape>("[1,").is_err(), "broken syntax is an error, a kind never is");
    }

    fn text_at<'a>(text: &'a str, path: &str) -> Option<Cow<'a, str>> {
        match value_at(text, path)? {
            Shape::Text(found) => Some(found),
            other => panic!("{path} in {text} is {}, not a string", other.kind()),
        }
    }

    #[test]
    fn a_value_is_found_through_nested_objects() {
        let document = r#"{"a":1,"service":{"id":[{"name":"no"}],"name":"billing","x":{}},"name":"top"}"#;
        assert_eq!(text_at(document, "service.name").as_deref(), Some("billing"));
        assert_eq!(text_at(document, "name").as_deref(), Some("top"));
        assert!(matches!(value_at(document, "a"), Some(Shape::Unsigned(1))));
        assert!(matches!(value_at(document, "service"), Some(Shape::Object(()))));
        assert!(matches!(value_at(document, "service.id"), Some(Shape::Array)));
        assert_eq!(value_at(r#"{"a":{"b":{"c":-2.5}}}"#, "a.b.c").and_then(|found| found.number()), Some(-2.5));
        assert!(matches!(text_at(document, "service.name"), Some(Cow::Borrowed(_))), "a plain string is borrowed");
    }

    #[test]
    fn a_key_may_hold_dots_and_the_whole_key_wins() {
        assert_eq!(text_at(r#"{"service.name":"dotted"}"#, "service.name").as_deref(), Some("dotted"));
        assert_eq!(text_at(r#"{"a":{"b.c":"inner"}}"#, "a.b.c").as_deref(), Some("inner"));
        assert_eq!(text_at(r#"{"a.b":{"c":"outer"}}"#, "a.b.c").as_deref(), Some("outer"));
        let both = r#"{"service":{"name":"nested"},"service.name":"dotted"}"#;
        assert_eq!(text_at(both, "service.name").as_deref(), Some("dotted"));
        let both_reversed = r#"{"service.name":"dotted","service":{"name":"nested"}}"#;
        assert_eq!(text_at(both_reversed, "service.name").as_deref(), Some("dotted"));
        assert_eq!(text_at(r#"{"a":{"b":"first"},"a.x":1}"#, "a.b").as_deref(), Some("first"));
    }

    #[test]
    fn escaped_keys_and_values_are_matched_as_they_read() {
        let document = r#"{"ser\u0076ice":{"na\"me":"b\u0069lling"}}"#;
        assert_eq!(text_at(document, "service.na\"me").as_deref(), Some("billing"));
        assert!(matches!(text_at(r#"{"k":"a\nb"}"#, "k"), Some(Cow::Owned(text)) if text == "a\nb"));
    }

    #[test]
    fn nothing_is_found_where_the_path_leads_nowhere() {
        let document = r#"{"service":{"name":null},"list":[{"name":"x"}],"text":"t","empty":{}}"#;
        assert!(matches!(value_at(document, "service.name"), Some(Shape::Null)), "null is there, as null");
        for absent in ["service.id", "service.name.first", "list.name", "text.length", "empty.x", "missing", "servic"] {
            assert!(value_at(document, absent).is_none(), "{absent}");
        }
        assert!(value_at(r#"{"service":{"name":"x"}}"#, "service.").is_none());
        for not_an_object in [r#"["service"]"#, r#""service.name""#, "null", "", r#"{"service":"#, r#"{"a":1} {}"#] {
            assert!(value_at(not_an_object, "service").is_none(), "{not_an_object}");
        }
    }

    #[test]
    fn only_exactly_one_object_is_read_as_an_object() {
        struct Keys;
        impl<'de> ReadObject<'de> for Keys {
            type Object = Vec<String>;
            fn read<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
                let mut keys = Vec::new();
                while let Some((Text(key), IgnoredAny)) = map.next_entry::<Text, IgnoredAny>()? {
                    keys.push(key.into_owned());
                }
                Ok(keys)
            }
        }
        assert_eq!(read_object(r#" {"a":1,"b\u0041":[{}]} "#, Keys), Some(vec!["a".to_owned(), "bA".to_owned()]));
        for text in [r#""{}""#, "[{}]", "{} {}", "{", "", "null", "plain text"] {
            assert_eq!(read_object(text, Keys), None, "{text}");
        }
    }
}
