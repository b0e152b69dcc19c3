//! Elasticsearch's words, read once: the error of an answer (`EsError`, one parse of every spelling), and from a
//! status, `error.type` and `error.reason` the `Cause` of a refused item or request.

use std::fmt;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::{Cause, Failure, Fix};

/// An Elasticsearch error, as every answer spells it: `{"type": …, "reason": …}` under `error` (a bulk item's, or a
/// whole request's), or an old engine's text (`MapperParsingException[failed to parse]`), read the one way here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct EsError {
    #[serde(rename = "type", default)]
    pub error_type: String,
    #[serde(default)]
    pub reason: String,
}

/// How an answer spelled its `error`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Spelled {
    Structured(EsError),
    Text(String),
    Nothing(IgnoredAny),
}

impl Spelled {
    /// The error, a text's type being the exception it names, or `untyped` when it names none.
    fn error(self, untyped: impl FnOnce() -> String) -> Option<EsError> {
        match self {
            Spelled::Structured(error) => Some(error),
            Spelled::Text(reason) => {
                Some(EsError { error_type: exception_type(&reason).unwrap_or_else(untyped), reason })
            }
            Spelled::Nothing(_) => None,
        }
    }
}

impl EsError {
    /// A bulk item's `error` (serde's `deserialize_with`): `None` when it has none.
    pub(super) fn of_item<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<EsError>, D::Error> {
        Ok(Spelled::deserialize(deserializer)?.error(|| "error".into()))
    }

    /// The error of a whole request answered `status`: the body's `error`, or the status alone (`http_503`) with an
    /// excerpt of the body when it is not Elasticsearch's error shape (a proxy's HTML page, say).
    pub fn of_request(status: u16, body: &[u8]) -> EsError {
        #[derive(Deserialize)]
        struct ErrorBody {
            error: Spelled,
        }
        let untyped = || format!("http_{status}");
        match serde_json::from_slice::<ErrorBody>(body).ok().and_then(|body| body.error.error(untyped)) {
            Some(error) => error,
            None => EsError { error_type: untyped(), reason: crate::record::excerpt(body, 200) },
        }
    }
}

/// What the cluster's status says to a question asked of it (the doctor's): read here with the rest of its words,
/// so that no other room reads a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said {
    /// 2xx.
    Done,
    /// 400: the request is invalid (or refused for what it asks, past any security check).
    Invalid,
    /// 401: the credentials are refused.
    Unauthenticated,
    /// 403: the caller may not.
    Forbidden,
    /// 404: no such index, template, pipeline, or API.
    Missing,
    /// 405: no such method on the path.
    MethodNotAllowed,
    /// 409: a version conflict, or the thing is already there.
    Conflict,
    Other(u16),
}

impl Said {
    pub fn of(status: u16) -> Said {
        match status {
            200..=299 => Said::Done,
            400 => Said::Invalid,
            401 => Said::Unauthenticated,
            403 => Said::Forbidden,
            404 => Said::Missing,
            405 => Said::MethodNotAllowed,
            409 => Said::Conflict,
            other => Said::Other(other),
        }
    }

    /// Whether the credentials were refused, or the caller may not: the function's access is to fix.
    pub fn refused_access(self) -> bool {
        matches!(self, Said::Unauthenticated | Said::Forbidden)
    }
}

impl fmt::Display for Said {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self {
            Said::Done => return f.write_str("2xx"),
            Said::Invalid => 400,
            Said::Unauthenticated => 401,
            Said::Forbidden => 403,
            Said::Missing => 404,
            Said::MethodNotAllowed => 405,
            Said::Conflict => 409,
            Said::Other(status) => *status,
        };
        write!(f, "{status}")
    }
}

/// What an error answer says: Elasticsearch's `type: reason`, Amazon's `Message`, or the text itself.
pub fn said(answer: &Value) -> String {
    if let Ok(Spelled::Structured(error)) = Spelled::deserialize(&answer["error"])
        && !error.error_type.is_empty()
    {
        return format!("{}: {}", error.error_type, error.reason);
    }
    for key in ["Message", "message", "error"] {
        if let Some(text) = answer[key].as_str() {
            return text.to_owned();
        }
    }
    let text = answer.as_str().map_or_else(|| answer.to_string(), str::to_owned);
    text.chars().take(300).collect()
}

/// Whether an answer is Amazon's access policy refusing the request (`{"Message": "User: … is not authorized to
/// perform: es:ESHttp…"}`), before any security plugin saw it.
pub fn access_policy_refused(said: Said, answer: &Value) -> bool {
    said == Said::Forbidden && answer["Message"].as_str().is_some_and(|m| m.contains("is not authorized to perform"))
}

/// Whether an answer says the path has no handler: that cluster has no such API (no security plugin).
pub fn no_such_api(said: Said, answer: &Value) -> bool {
    matches!(said, Said::Invalid | Said::Missing | Said::MethodNotAllowed)
        && answer["error"]["type"].as_str() != Some("security_exception")
}

/// Old engines write `MapperParsingException[failed to parse]`: the exception's name, in snake case, is the error
/// type, so that the cause can still tell a document's fault. `None` when the text names no exception.
fn exception_type(text: &str) -> Option<String> {
    let name = text.split(['[', ':', ' ']).next().unwrap_or_default();
    if !name.ends_with("Exception") || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let mut snake = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            snake.push('_');
        }
        snake.push(c.to_ascii_lowercase());
    }
    Some(snake)
}

impl Cause {
    /// The cause of a bulk item that was not written (any status but 2xx and 409, which are not failures).
    pub fn of_bulk_item(status: u16, error_type: &str, reason: &str) -> Cause {
        match status {
            // Flood-stage disk and read-only indices answer 429/403 `cluster_block_exception`: Firehose would meet
            // the same block, so the record stays in Kinesis until the block lifts.
            _ if error_type == CLUSTER_BLOCK => Cause::Misconfigured(Fix::ClusterBlock),
            // The shard said "not now" and did not write the item.
            429 | 408 | 500..=599 => Cause::ClusterBusy,
            400..=499 => refusal_cause(status, error_type, reason),
            // No status, or one outside HTTP's error ranges: nothing can be concluded.
            _ => Cause::Unknown,
        }
    }

    /// The cause of a whole `_bulk` request answered with an error status (any but 2xx, and 413, which splits it).
    pub fn of_bulk_request(status: u16, error_type: &str, reason: &str) -> Cause {
        match status {
            // Flood stage answers 429 too, but it is a block that Firehose would meet as well.
            429 if error_type != CLUSTER_BLOCK => Cause::ClusterBusy,
            // A gateway error, or the cluster failing mid-request: whether anything was written is unknown.
            408 | 500..=599 => Cause::Unknown,
            _ => refusal_cause(status, error_type, reason),
        }
    }
}

impl Failure {
    /// Whether the cluster refused a document for what its mapping makes of the document's fields: a field of
    /// another type, a field a strict mapping does not allow, a field limit reached. Another shape of the same
    /// content (its plain form) may be taken; a document too large, with an immense term, or not JSON may not.
    pub fn refused_for_its_mapping(&self) -> bool {
        if self.cause != Cause::Document || self.status != Some(400) {
            return false;
        }
        match self.error_type.as_str() {
            "mapper_parsing_exception"
            | "document_parsing_exception"
            | "strict_dynamic_mapping_exception"
            | "mapper_exception" => true,
            "illegal_argument_exception" => {
                let reason = self.reason.to_ascii_lowercase();
                MAPPING_ARGUMENT_REASONS.iter().any(|words| reason.contains(words))
            }
            _ => false,
        }
    }

    /// The field a mapping refusal names, as Elasticsearch and OpenSearch word it: `failed to parse field [f]`,
    /// `object mapping for [f]`, `dynamic introduction of [f]`, `mapper [f]`. `None` for a refusal of no one field
    /// (the field limit).
    pub fn mapping_field(&self) -> Option<&str> {
        ["object mapping for [", "dynamic introduction of [", "field [", "mapper ["].iter().find_map(|opening| {
            let start = self.reason.find(opening)? + opening.len();
            let length = self.reason[start..].find(']')?;
            Some(&self.reason[start..start + length])
        })
    }
}

/// Elasticsearch's `error.type` for a block on the index or the cluster (flood-stage disk, `index.blocks.write`).
const CLUSTER_BLOCK: &str = "cluster_block_exception";

/// `error.type`s that are always about the document itself.
const DOCUMENT_ERROR_TYPES: [&str; 7] = [
    "mapper_parsing_exception",
    "document_parsing_exception",
    "strict_dynamic_mapping_exception",
    "x_content_parse_exception",
    "json_parse_exception",
    "not_x_content_exception",
    "mapper_exception",
];

/// Words of an `illegal_argument_exception` that is about the document's own content (its fields, their number,
/// depth or names, an immense term), as Elasticsearch and OpenSearch word them.
const DOCUMENT_ARGUMENT_REASONS: [&str; 12] = [
    "limit of total fields",
    "limit of mapping depth",
    "limit of nested fields",
    "number of nested documents has exceeded",
    "immense term",
    "is longer than the limit of",
    "cannot be changed from type",
    "failed to parse",
    "can't merge a non object mapping",
    "is a metadata field and cannot be added inside a document",
    "field name cannot be an empty string",
    "cannot contain only whitespace",
];

/// Words of an `illegal_argument_exception` that is about the index's mapping of the document's fields.
const MAPPING_ARGUMENT_REASONS: [&str; 7] = [
    "limit of total fields",
    "limit of mapping depth",
    "limit of nested fields",
    "cannot be changed from type",
    "failed to parse",
    "can't merge a non object mapping",
    "is a metadata field and cannot be added inside a document",
];

/// Decides the cause of a refusal (a 4xx other than 409, 413 and 429), item or whole request: the document's own
/// fault only for the short list above; a known cluster-side fault with what to fix; anything else kept in Kinesis.
pub fn refusal_cause(status: u16, error_type: &str, reason: &str) -> Cause {
    if DOCUMENT_ERROR_TYPES.contains(&error_type) {
        return Cause::Document;
    }
    let reason = reason.to_ascii_lowercase();
    let says = |words: &str| reason.contains(words);
    let fix = match error_type {
        CLUSTER_BLOCK => Fix::ClusterBlock,
        "index_not_found_exception" => Fix::IndexMissing,
        "index_closed_exception" => Fix::IndexClosed,
        "invalid_index_name_exception" => Fix::InvalidIndexName,
        "security_exception" => Fix::Access,
        _ if says("shards open") || says("maximum shards") => Fix::ShardLimit,
        _ if says("no write index is defined") => Fix::NoWriteIndex,
        _ if says("pipeline with id") && says("does not exist") => Fix::MissingPipeline,
        _ if says("document id is not supported") => Fix::DocumentIdRefused,
        "illegal_argument_exception" if DOCUMENT_ARGUMENT_REASONS.iter().any(|words| says(words)) => {
            return Cause::Document;
        }
        _ if status == 401 || status == 403 => Fix::Access,
        _ if status == 404 => Fix::IndexMissing,
        _ => Fix::Unrecognized,
    };
    Cause::Misconfigured(fix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_error_is_read_from_every_spelling_and_typed_by_the_exception_a_text_names() {
        let read = |body: &str| EsError::of_request(400, body.as_bytes());
        let error = |error_type: &str, reason: &str| EsError { error_type: error_type.into(), reason: reason.into() };
        let structured = r#"{"error":{"type":"illegal_argument_exception","reason":"no such pipeline"},"status":400}"#;
        assert_eq!(read(structured), error("illegal_argument_exception", "no such pipeline"));
        let old = r#"{"error":"MapperParsingException[failed to parse [amount]]","status":400}"#;
        assert_eq!(read(old), error("mapper_parsing_exception", "MapperParsingException[failed to parse [amount]]"));
        assert_eq!(read(r#"{"error":"no handler found"}"#), error("http_400", "no handler found"));
        assert_eq!(read("<html>Bad Request</html>"), error("http_400", "<html>Bad Request</html>"));
        assert_eq!(read(r#"{"error":null}"#), error("http_400", r#"{"error":null}"#));
    }
}
