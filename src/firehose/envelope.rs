//! A document as Firehose carries it and gives it back: its target (`{"_id":…,"_index":…}`) put first in the target
//! field (`entry`, for PutRecordBatch and the dead letter), and taken off again (`opened`, when Firehose's backup
//! or the dead letter is replayed), byte for byte.

use serde::Deserialize;

use crate::record::{self, Document};

/// One document as Firehose receives it: its JSON with `{"_id","_index"}` in the target field, and a newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position of the document in the batch.
    pub document: usize,
    pub data: Vec<u8>,
}

/// The Firehose record for a document: the document with the target field that lets Firehose's delivery land on
/// the same `_index` and `_id` (an ingest pipeline sets them from it and removes it).
pub fn entry(document_position: usize, document: &Document, target_field: &str) -> Entry {
    #[derive(serde::Serialize)]
    struct Target<'a> {
        // Without an `_id` (`ES_DOC_ID=none`), the pipeline leaves the choice to the cluster.
        #[serde(skip_serializing_if = "Option::is_none")]
        _id: Option<&'a str>,
        _index: &'a str,
    }
    let target = serde_json::to_string(&Target { _id: document.id.as_deref(), _index: &document.index })
        .expect("plain fields serialise");
    let mut data = record::prepend_field(target_field, &target, &document.source);
    data.push(b'\n');
    Entry { document: document_position, data }
}

/// Where a document that came back from Firehose goes: the `_index` and `_id` its target names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Target {
    #[serde(rename = "_index")]
    pub index: String,
    #[serde(rename = "_id", default)]
    pub id: Option<String>,
}

/// A document `entry` made, opened: its target and its source as it was before the target was put first, or why
/// `raw` is not one (a document someone else wrote, or one whose fields a pipeline reordered).
pub fn opened(raw: &[u8], target_field: &str) -> Result<(Target, Vec<u8>), String> {
    let (target, source) = take_prepended_field(target_field, raw).ok_or_else(|| {
        format!("its rawData is not a document this function parked: it does not start with {target_field:?}")
    })?;
    let target: Target = serde_json::from_str(target.get())
        .map_err(|e| format!("its {target_field:?} is not {{\"_index\":…,\"_id\":…}}: {e}"))?;
    serde_json::from_slice::<serde::de::IgnoredAny>(&source)
        .map_err(|e| format!("its rawData is not one JSON object: {e}"))?;
    Ok((target, source))
}

/// The inverse of `prepend_field`: `field`'s value (raw JSON) and the object without it, byte for byte as it was
/// before the field was put first. `None` when `object` does not start with `field` (a document someone else
/// wrote, or one whose fields a pipeline reordered).
pub fn take_prepended_field<'a>(field: &str, object: &'a [u8]) -> Option<(&'a serde_json::value::RawValue, Vec<u8>)> {
    let start = object.iter().position(|b| !b.is_ascii_whitespace())?;
    let mut head = Vec::with_capacity(field.len() + 4);
    head.push(b'{');
    serde_json::to_writer(&mut head, field).expect("writing a str to a Vec cannot fail");
    head.push(b':');
    let value_at = start + head.len();
    if !object[start..].starts_with(&head) {
        return None;
    }
    let mut values =
        serde_json::Deserializer::from_slice(&object[value_at..]).into_iter::<&serde_json::value::RawValue>();
    let value = values.next()?.ok()?;
    let after = value_at + values.byte_offset();
    let rest = &object[after..];
    let next = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    let mut without = Vec::with_capacity(object.len() - after + 1);
    without.push(b'{');
    match rest[next] {
        b',' => without.extend_from_slice(&rest[next + 1..]),
        b'}' => without.extend_from_slice(rest),
        _ => return None,
    }
    Some((value, without))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_firehose_entry_carries_its_target_and_ends_with_a_newline() {
        let document = Document {
            record: 0,
            id: Some("s:1:0".into()),
            index: Arc::from("logs-2024.05.01"),
            source: br#"{"a":1}"#.to_vec(),
        };
        let entry = entry(7, &document, "es_target");
        assert_eq!(entry.document, 7);
        assert_eq!(
            String::from_utf8(entry.data).unwrap(),
            "{\"es_target\":{\"_id\":\"s:1:0\",\"_index\":\"logs-2024.05.01\"},\"a\":1}\n"
        );
    }

    #[test]
    fn a_prepended_field_is_taken_back_leaving_the_object_as_it_was() {
        let target = r#"{"_id":"t:s:1:0","_index":"logs-2024.05.01"}"#;
        for object in [&br#"{"message":"a","n":{"x":[1,2]}}"#[..], b"{}", b"{ }", br#"{"es_target":1}"#] {
            let with = record::prepend_field("es_target", target, object);
            let (value, without) = take_prepended_field("es_target", &with).expect("put first, taken back");
            assert_eq!(value.get(), target);
            assert_eq!(without, object, "{}", String::from_utf8_lossy(&with));
        }
        assert!(take_prepended_field("es_target", br#"{"message":"a","es_target":{}}"#).is_none(), "not first");
        assert!(take_prepended_field("es_target", br#"{"es_target":{"_id":1}"#).is_none(), "cut short");
        assert!(take_prepended_field("es_target", b"not json").is_none());
    }
}
