//! Documents' `_id`s: `stream:shard:sequence:position` in `ES_DOC_ID=kinesis` mode, or a field of the document.

use super::{Provenance, Rejection};

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

/// The `_id` from the document's field at `path` (a key with dots, or nested objects): a string or a number.
pub(super) fn field_id(json: &[u8], path: &str) -> Result<String, Rejection> {
    let missing = || Rejection::NoDocumentId(format!("the document has no field {path} (ES_DOC_ID)"));
    let document: serde_json::Value = serde_json::from_slice(json).map_err(|_| missing())?;
    let value = document.get(path).or_else(|| path.split('.').try_fold(&document, |value, key| value.get(key)));
    let id = match value {
        Some(serde_json::Value::String(text)) if !text.is_empty() => text.clone(),
        Some(serde_json::Value::Number(number)) => number.to_string(),
        Some(other) => {
            let kind = match other {
                serde_json::Value::String(_) => "an empty string",
                serde_json::Value::Null => "null",
                serde_json::Value::Bool(_) => "a boolean",
                serde_json::Value::Array(_) => "an array",
                _ => "an object",
            };
            return Err(Rejection::NoDocumentId(format!(
                "the field {path} (ES_DOC_ID) is {kind}, not a string or number"
            )));
        }
        None => return Err(missing()),
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
}
