//! Documents' `_id`s: `stream:shard:sequence:position` in `ES_DOC_ID=kinesis` mode, or a field of the document.

use super::{Provenance, Rejection};
use crate::json::{self, Shape};

/// Writes the start of every `_id` of a record's documents in `ES_DOC_ID=kinesis` mode: `stream:shardId:sequenceNumber:`.
/// The position follows: `3` for a record's fourth document, `2.0` for the first of a KPL aggregate's third user
/// record. The same on every redelivery.
pub(super) fn write_id_prefix(out: &mut String, stream_tag: &str, provenance: &Provenance) {
    use std::fmt::Write;
    let sequence = provenance.sequence_number.as_deref().unwrap_or("none");
    write!(out, "{stream_tag}:{}:{sequence}:", provenance.shard_id).expect("writing to a String cannot fail");
}

/// A short, stable name of a stream: the first 8 hex digits of the MD5 of its `eventSourceARN`, so that sequence
/// numbers of two streams writing to one index never make the same `_id`.
pub(super) fn stream_tag(event_source_arn: &str) -> String {
    use md5::{Digest, Md5};
    let digest = Md5::digest(event_source_arn.as_bytes());
    digest[..4].iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The tag of the last stream seen: a batch comes from one stream, so it is computed once per batch.
#[derive(Default)]
pub(super) struct StreamTags {
    last: Option<(String, String)>,
}

impl StreamTags {
    pub(super) fn tag(&mut self, arn: Option<&str>) -> &str {
        let arn = arn.unwrap_or_default();
        if self.last.as_ref().is_none_or(|(last, _)| last != arn) {
            self.last = Some((arn.to_owned(), stream_tag(arn)));
        }
        &self.last.as_ref().expect("just set").1
    }
}

/// Longest `_id` Elasticsearch accepts, in bytes.
const MAX_ID_BYTES: usize = 512;

/// The `_id` from the document's field at `path` (a key with dots, or nested objects, read as `json::value_at`
/// reads every field path): a string or a number.
pub(super) fn field_id(json: &[u8], path: &str) -> Result<String, Rejection> {
    let missing = || Rejection::NoDocumentId(format!("the document has no field {path} (ES_DOC_ID)"));
    let text = std::str::from_utf8(json).map_err(|_| missing())?;
    let id = match json::value_at(text, path).ok_or_else(missing)? {
        Shape::Text(text) if !text.is_empty() => text.into_owned(),
        Shape::Integer(number) => number.to_string(),
        Shape::Unsigned(number) => number.to_string(),
        // As serde_json writes a float (`1.5`, `1e+20`): the `_id` a document's number always made.
        Shape::Float(number) => {
            serde_json::Number::from_f64(number).map_or_else(|| number.to_string(), |n| n.to_string())
        }
        other => {
            let kind = if matches!(other, Shape::Text(_)) { "an empty string" } else { other.kind() };
            return Err(Rejection::NoDocumentId(format!(
                "the field {path} (ES_DOC_ID) is {kind}, not a string or number"
            )));
        }
    };
    if id.len() > MAX_ID_BYTES {
        return Err(Rejection::NoDocumentId(format!(
            "the field {path} (ES_DOC_ID) is {} bytes, longer than the {MAX_ID_BYTES} an _id may be",
            id.len()
        )));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_name_the_record() {
        let provenance = Provenance { shard_id: "shardId-000000000001".into(), sequence_number: Some("495".into()) };
        let mut prefix = String::new();
        write_id_prefix(&mut prefix, "1a2b3c4d", &provenance);
        assert_eq!(prefix, "1a2b3c4d:shardId-000000000001:495:");
        let tag = stream_tag("arn:aws:kinesis:eu-west-1:123456789012:stream/app-logs");
        assert_eq!(tag.len(), 8);
        assert_eq!(tag, stream_tag("arn:aws:kinesis:eu-west-1:123456789012:stream/app-logs"), "stable");
        assert_ne!(tag, stream_tag("arn:aws:kinesis:eu-west-1:123456789012:stream/other-logs"));
    }

    #[test]
    fn an_id_is_read_from_a_dotted_key_or_nested_objects_a_string_or_a_number() {
        let id = |json: &str, path: &str| field_id(json.as_bytes(), path).map_err(|rejection| rejection.to_string());
        assert_eq!(id(r#"{"request":{"id":"r-1"}}"#, "request.id"), Ok("r-1".into()));
        assert_eq!(id(r#"{"request.id":"whole","request":{"id":"nested"}}"#, "request.id"), Ok("whole".into()));
        assert_eq!(id(r#"{"n":-42}"#, "n"), Ok("-42".into()));
        assert_eq!(id(r#"{"n":18446744073709551615}"#, "n"), Ok("18446744073709551615".into()));
        assert_eq!(id(r#"{"n":1.5}"#, "n"), Ok("1.5".into()));
        assert_eq!(id(r#"{"n":1e20}"#, "n"), Ok("1e+20".into()), "as serde_json writes it");
        for (json, kind) in
            [(r#"{"n":""}"#, "an empty string"), (r#"{"n":null}"#, "null"), (r#"{"n":[1]}"#, "an array")]
        {
            let refused = id(json, "n").unwrap_err();
            assert!(refused.contains(&format!("is {kind}, not a string or number")), "{refused}");
        }
        assert!(id(r#"{"m":1}"#, "n").unwrap_err().contains("has no field n"));
        let long = format!(r#"{{"n":"{}"}}"#, "x".repeat(MAX_ID_BYTES + 1));
        assert!(id(&long, "n").unwrap_err().contains("longer than the 512"));
        assert_eq!(id(&format!(r#"{{"n":"{}"}}"#, "x".repeat(MAX_ID_BYTES)), "n").map(|id| id.len()), Ok(512));
    }
}
