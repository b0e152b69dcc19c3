//! Kinesis records in, documents out: reading each record on its own, decoding its data, preprocessing documents.
//!
//! Pure: bytes and values in, values out. A record that cannot be read or decoded becomes a `Rejection`, never an
//! error for the batch.

use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::ops::Range;
use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::config::Config;
use crate::index::{self, IndexNamer};

/// The invocation's event, read leniently: each record stays raw JSON and is read on its own, so one malformed
/// record cannot fail the batch (`aws_lambda_events`' own type fails the whole event on one bad base64 string).
#[derive(Debug, Default, Deserialize)]
pub struct KinesisEventIn {
    #[serde(rename = "Records", default)]
    pub records: Vec<Box<RawValue>>,
}

/// Where a record came from: enough to report it back to Kinesis and to name it in every log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub shard_id: String,
    /// Absent only when the record is too malformed to carry one; such a record cannot be reported back.
    pub sequence_number: Option<String>,
}

/// A record read from the event, data still base64.
#[derive(Debug)]
pub struct KinesisRecord<'a> {
    pub provenance: Provenance,
    pub data: Cow<'a, str>,
    pub arrival: Option<DateTime<Utc>>,
}

/// Why a record cannot be indexed, ever: it is rejected and logged, never retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    MalformedRecord(String),
    InvalidBase64(String),
    Empty,
    CorruptGzip(String),
    TooLarge { limit: usize },
    InvalidUtf8 { valid_up_to: usize },
    BadCloudWatchEnvelope(String),
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::MalformedRecord(why) => write!(f, "the record is not a Kinesis record: {why}"),
            Rejection::InvalidBase64(why) => write!(f, "data is not valid base64: {why}"),
            Rejection::Empty => f.write_str("data is empty"),
            Rejection::CorruptGzip(why) => write!(f, "data is corrupt gzip: {why}"),
            Rejection::TooLarge { limit } => write!(f, "decoded data exceeds MAX_RECORD_BYTES ({limit} bytes)"),
            Rejection::InvalidUtf8 { valid_up_to } => {
                write!(f, "data is not valid UTF-8 (bad byte at offset {valid_up_to})")
            }
            Rejection::BadCloudWatchEnvelope(why) => write!(f, "CloudWatch Logs envelope is malformed: {why}"),
        }
    }
}

impl Rejection {
    /// A short machine-readable name, the `error_type` of the log line.
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::MalformedRecord(_) => "malformed_record",
            Rejection::InvalidBase64(_) => "invalid_base64",
            Rejection::Empty => "empty_record",
            Rejection::CorruptGzip(_) => "corrupt_gzip",
            Rejection::TooLarge { .. } => "record_too_large",
            Rejection::InvalidUtf8 { .. } => "invalid_utf8",
            Rejection::BadCloudWatchEnvelope(_) => "bad_cloudwatch_envelope",
        }
    }
}

/// What decoding made of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// These positions of `Batch::documents`, in record order.
    Documents(Range<usize>),
    /// Nothing to index by design (a CloudWatch Logs control message).
    Skipped(String),
    /// Cannot be indexed; `excerpt` quotes the start of the data for the log line.
    Rejected { rejection: Rejection, excerpt: String },
}

/// One document ready for `_bulk`: its target, deterministic `_id`, and source as one line of JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Position of its record in the batch.
    pub record: usize,
    pub id: String,
    pub index: Arc<str>,
    pub source: Vec<u8>,
}

/// The batch after decoding: one `Provenance` and one `Decoded` per record, and every document in order.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<Provenance>,
    pub decoded: Vec<Decoded>,
    pub documents: Vec<Document>,
}

/// Reads and decodes every record of the event. `now` stamps documents of records that carry no arrival time.
pub fn decode_batch(event: &KinesisEventIn, config: &Config, now: DateTime<Utc>) -> Batch {
    let mut batch = Batch {
        records: Vec::with_capacity(event.records.len()),
        decoded: Vec::with_capacity(event.records.len()),
        documents: Vec::with_capacity(event.records.len()),
    };
    let mut namer = IndexNamer::new(&config.index);
    for (position, raw) in event.records.iter().enumerate() {
        let record_index = batch.records.len();
        let (provenance, decoded) = match read_record(raw.get()) {
            Err((provenance, rejection)) => {
                let excerpt = excerpt(raw.get().as_bytes(), config.log_excerpt_bytes);
                (provenance.unwrap_or_else(|| unknown_provenance(position)), Decoded::Rejected { rejection, excerpt })
            }
            Ok(record) => {
                let first = batch.documents.len();
                let decoded = match decode_data(&record.data, config.max_record_bytes) {
                    Err(rejection) => Decoded::Rejected {
                        rejection,
                        excerpt: excerpt(record.data.as_bytes(), config.log_excerpt_bytes),
                    },
                    Ok(bytes) => {
                        let context = DocumentContext {
                            timestamp_field: &config.timestamp_field,
                            default_timestamp: record.arrival.unwrap_or(now),
                        };
                        match into_sources(bytes, &context) {
                            Err((rejection, excerpt_text)) => Decoded::Rejected {
                                rejection,
                                excerpt: excerpt(&excerpt_text, config.log_excerpt_bytes),
                            },
                            Ok(Content::Skipped(why)) => Decoded::Skipped(why),
                            Ok(Content::Sources(sources)) => {
                                for (in_record, source) in sources.into_iter().enumerate() {
                                    let index = namer.name(source.timestamp);
                                    let id = document_id(&record.provenance, in_record);
                                    batch.documents.push(Document {
                                        record: record_index,
                                        id,
                                        index,
                                        source: source.json,
                                    });
                                }
                                Decoded::Documents(first..batch.documents.len())
                            }
                        }
                    }
                };
                (record.provenance, decoded)
            }
        };
        batch.records.push(provenance);
        batch.decoded.push(decoded);
    }
    batch
}

fn unknown_provenance(position: usize) -> Provenance {
    Provenance { shard_id: format!("unknown(record {position} of the event)"), sequence_number: None }
}

/// The `_id` of a record's document at `position`: `shardId:sequenceNumber:position`, the same on every redelivery.
pub fn document_id(provenance: &Provenance, position: usize) -> String {
    let sequence = provenance.sequence_number.as_deref().unwrap_or("none");
    format!("{}:{}:{}", provenance.shard_id, sequence, position)
}

/// A string that borrows from the input when it can (no escapes) and owns a copy when it must.
struct Text<'a>(Cow<'a, str>);

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

#[derive(Deserialize)]
struct RawRecord<'a> {
    #[serde(rename = "eventID", borrow, default)]
    event_id: Option<Text<'a>>,
    #[serde(borrow)]
    kinesis: RawKinesis<'a>,
}

#[derive(Deserialize)]
struct RawKinesis<'a> {
    #[serde(rename = "sequenceNumber", borrow)]
    sequence_number: Text<'a>,
    #[serde(borrow)]
    data: Text<'a>,
    #[serde(rename = "approximateArrivalTimestamp", default)]
    approximate_arrival_timestamp: Option<f64>,
}

/// Reads one record of the event. On failure, returns whatever provenance could still be found.
pub fn read_record(raw: &str) -> Result<KinesisRecord<'_>, (Option<Provenance>, Rejection)> {
    match serde_json::from_str::<RawRecord>(raw) {
        Ok(record) => {
            let event_id = record.event_id.map(|t| t.0);
            let provenance = Provenance {
                shard_id: shard_of(event_id.as_deref()),
                sequence_number: Some(record.kinesis.sequence_number.0.into_owned()),
            };
            // Seconds with a fraction: `.5` is 500 ms (`aws_lambda_events` 1.2.1 reads it as 5 ms).
            let arrival = record
                .kinesis
                .approximate_arrival_timestamp
                .filter(|seconds| seconds.is_finite())
                .and_then(|seconds| index::epoch_millis((seconds * 1000.0).round() as i64));
            Ok(KinesisRecord { provenance, data: record.kinesis.data.0, arrival })
        }
        Err(error) => Err((salvage_provenance(raw), Rejection::MalformedRecord(error.to_string()))),
    }
}

/// The shard id is the part of `eventID` (`shardId-000000000006:4959…`) before the colon.
fn shard_of(event_id: Option<&str>) -> String {
    match event_id.and_then(|id| id.split_once(':')) {
        Some((shard, _)) if !shard.is_empty() => shard.to_owned(),
        _ => "unknown-shard".to_owned(),
    }
}

fn salvage_provenance(raw: &str) -> Option<Provenance> {
    let value: serde_json::Value = serde_json::from_str(raw).ok()?;
    let sequence_number = value.get("kinesis")?.get("sequenceNumber")?.as_str()?.to_owned();
    let shard_id = shard_of(value.get("eventID").and_then(|id| id.as_str()));
    Some(Provenance { shard_id, sequence_number: Some(sequence_number) })
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// base64 → bytes, inflating gzip (magic `1f 8b`) up to `max_bytes`.
pub fn decode_data(base64_text: &str, max_bytes: usize) -> Result<Vec<u8>, Rejection> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(base64_text.trim())
        .map_err(|error| Rejection::InvalidBase64(error.to_string()))?;
    if raw.is_empty() {
        return Err(Rejection::Empty);
    }
    if !raw.starts_with(&GZIP_MAGIC) {
        if raw.len() > max_bytes {
            return Err(Rejection::TooLarge { limit: max_bytes });
        }
        return Ok(raw);
    }
    let mut inflated = Vec::with_capacity((raw.len() * 4).min(max_bytes));
    // MultiGzDecoder: CloudWatch Logs and `gzip -c a b` may concatenate members.
    let decoder = flate2::read::MultiGzDecoder::new(raw.as_slice());
    decoder
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|error| Rejection::CorruptGzip(error.to_string()))?;
    if inflated.len() > max_bytes {
        return Err(Rejection::TooLarge { limit: max_bytes });
    }
    if inflated.is_empty() {
        return Err(Rejection::Empty);
    }
    Ok(inflated)
}

/// What one record's decoded data holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Content {
    Sources(Vec<Source>),
    Skipped(String),
}

/// One document's JSON (a single line) and the instant that names its index.
#[derive(Debug, PartialEq, Eq)]
pub struct Source {
    pub json: Vec<u8>,
    pub timestamp: DateTime<Utc>,
}

/// How documents are stamped.
pub struct DocumentContext<'a> {
    pub timestamp_field: &'a str,
    /// For documents without a readable timestamp of their own: the record's arrival time.
    pub default_timestamp: DateTime<Utc>,
}

/// Turns decoded data into document sources: a JSON object passes through unchanged (gaining the timestamp field
/// only when it lacks one), a CloudWatch Logs envelope becomes one document per log event, and anything else that is
/// valid UTF-8 becomes `{"message": …}`. On rejection, also returns the bytes to quote in the log.
pub fn into_sources(mut bytes: Vec<u8>, context: &DocumentContext) -> Result<Content, (Rejection, Vec<u8>)> {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    if bytes.starts_with(BOM) {
        bytes.drain(..BOM.len());
    }
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => text,
        Err(error) => return Err((Rejection::InvalidUtf8 { valid_up_to: error.valid_up_to() }, bytes)),
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err((Rejection::Empty, bytes));
    }
    let scan = if trimmed.starts_with('{') { scan_object(trimmed, context.timestamp_field) } else { None };
    if let Some(scan) = scan {
        if let Some(kind @ ("DATA_MESSAGE" | "CONTROL_MESSAGE")) = scan.message_type.as_deref()
            && scan.has_log_events
        {
            return cloudwatch_sources(trimmed, kind, context).map_err(|rejection| (rejection, bytes.clone()));
        }
        let timestamp = scan.timestamp.unwrap_or(context.default_timestamp);
        let start = text.len() - text.trim_start().len();
        let end = text.trim_end().len();
        let json = if scan.has_timestamp_field {
            // The document passes through as it came: the decoded buffer itself becomes the source.
            bytes.truncate(end);
            bytes.drain(..start);
            one_line(bytes)
        } else {
            let stamp = quoted(&index::format_timestamp(timestamp));
            prepend_field(context.timestamp_field, &stamp, &bytes[start..end])
        };
        return Ok(Content::Sources(vec![Source { json, timestamp }]));
    }
    let message = text.trim_end_matches(['\n', '\r']);
    let timestamp = context.default_timestamp;
    let json = format!(
        "{{{}:{},\"message\":{}}}",
        quoted(context.timestamp_field),
        quoted(&index::format_timestamp(timestamp)),
        quoted(message)
    );
    Ok(Content::Sources(vec![Source { json: json.into_bytes(), timestamp }]))
}

/// A JSON string literal.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a str always serialises")
}

/// `{"field":value,` + the rest of `object` after its opening brace (`object` is a valid JSON object on one line
/// or not: newlines are folded).
pub fn prepend_field(field: &str, value_json: &str, object: &[u8]) -> Vec<u8> {
    let after_brace = &object[object.iter().position(|&b| b == b'{').expect("a JSON object") + 1..];
    let is_empty = after_brace.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
    let field = quoted(field);
    let mut out = Vec::with_capacity(object.len() + field.len() + value_json.len() + 3);
    out.push(b'{');
    out.extend_from_slice(field.as_bytes());
    out.push(b':');
    out.extend_from_slice(value_json.as_bytes());
    if !is_empty {
        out.push(b',');
    }
    out.extend_from_slice(after_brace);
    one_line(out)
}

/// Valid JSON has newlines only as whitespace between tokens (strings escape theirs), so folding them into spaces
/// keeps the document identical while making it one NDJSON line.
fn one_line(mut json: Vec<u8>) -> Vec<u8> {
    for byte in json.iter_mut() {
        if *byte == b'\n' || *byte == b'\r' {
            *byte = b' ';
        }
    }
    json
}

/// What one pass over a JSON object found, without building it.
struct ObjectScan {
    has_timestamp_field: bool,
    timestamp: Option<DateTime<Utc>>,
    message_type: Option<String>,
    has_log_events: bool,
}

/// Checks that `text` is exactly one JSON object and reads the few fields the indexer needs from it.
fn scan_object(text: &str, timestamp_field: &str) -> Option<ObjectScan> {
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
                scan.timestamp = map.next_value::<TimestampValue>()?.0;
            } else if key == "messageType" {
                scan.message_type = map.next_value::<Option<String>>()?;
            } else {
                if key == "logEvents" {
                    scan.has_log_events = true;
                }
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(scan)
    }
}

/// A timestamp field's value, read as Elasticsearch would: a date string or epoch milliseconds; anything else is
/// left for Elasticsearch to judge.
struct TimestampValue(Option<DateTime<Utc>>);

impl<'de> Deserialize<'de> for TimestampValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;
        impl<'de> Visitor<'de> for TimestampVisitor {
            type Value = TimestampValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<TimestampValue, E> {
                Ok(TimestampValue(index::parse_timestamp(value)))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<TimestampValue, E> {
                Ok(TimestampValue(index::epoch_millis(value)))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<TimestampValue, E> {
                Ok(TimestampValue(i64::try_from(value).ok().and_then(index::epoch_millis)))
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<TimestampValue, E> {
                let millis = value.is_finite().then(|| value.trunc() as i64);
                Ok(TimestampValue(millis.and_then(index::epoch_millis)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<TimestampValue, E> {
                Ok(TimestampValue(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<TimestampValue, E> {
                Ok(TimestampValue(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<TimestampValue, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(TimestampValue(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TimestampValue, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(TimestampValue(None))
            }
        }
        deserializer.deserialize_any(TimestampVisitor)
    }
}

#[derive(Deserialize)]
struct CloudWatchEnvelope<'a> {
    #[serde(borrow, default)]
    owner: Option<Text<'a>>,
    #[serde(rename = "logGroup", borrow)]
    log_group: Text<'a>,
    #[serde(rename = "logStream", borrow)]
    log_stream: Text<'a>,
    #[serde(rename = "logEvents", borrow)]
    log_events: Vec<CloudWatchEvent<'a>>,
}

#[derive(Deserialize)]
struct CloudWatchEvent<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
    timestamp: i64,
    #[serde(borrow)]
    message: Text<'a>,
}

/// The fields of a CloudWatch Logs document after the timestamp, named as Elastic's ECS does.
#[derive(serde::Serialize)]
struct CloudWatchDocument<'a> {
    message: &'a str,
    aws: AwsFields<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cloud: Option<CloudFields<'a>>,
}

#[derive(serde::Serialize)]
struct AwsFields<'a> {
    cloudwatch: CloudWatchFields<'a>,
}

#[derive(serde::Serialize)]
struct CloudWatchFields<'a> {
    log_group: &'a str,
    log_stream: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct CloudFields<'a> {
    account: AccountFields<'a>,
}

#[derive(serde::Serialize)]
struct AccountFields<'a> {
    id: &'a str,
}

fn cloudwatch_sources(text: &str, message_type: &str, context: &DocumentContext) -> Result<Content, Rejection> {
    if message_type == "CONTROL_MESSAGE" {
        return Ok(Content::Skipped("CloudWatch Logs control message".to_owned()));
    }
    let envelope: CloudWatchEnvelope =
        serde_json::from_str(text).map_err(|error| Rejection::BadCloudWatchEnvelope(error.to_string()))?;
    if envelope.log_events.is_empty() {
        return Ok(Content::Skipped("CloudWatch Logs message without log events".to_owned()));
    }
    let mut sources = Vec::with_capacity(envelope.log_events.len());
    for event in &envelope.log_events {
        let timestamp = index::epoch_millis(event.timestamp).unwrap_or(context.default_timestamp);
        let fields = CloudWatchDocument {
            message: &event.message.0,
            aws: AwsFields {
                cloudwatch: CloudWatchFields {
                    log_group: &envelope.log_group.0,
                    log_stream: &envelope.log_stream.0,
                    event_id: event.id.as_ref().map(|id| &*id.0),
                },
            },
            cloud: envelope.owner.as_ref().map(|owner| CloudFields { account: AccountFields { id: &owner.0 } }),
        };
        let rest = serde_json::to_vec(&fields).expect("plain fields always serialise");
        let json = prepend_field(context.timestamp_field, &quoted(&index::format_timestamp(timestamp)), &rest);
        sources.push(Source { json, timestamp });
    }
    Ok(Content::Sources(sources))
}

/// At most `limit` bytes of `bytes` as text (lossy UTF-8, cut on a character boundary), marked when cut.
pub fn excerpt(bytes: &[u8], limit: usize) -> String {
    let cut = bytes.len() > limit;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(limit)]);
    let mut text = text.into_owned();
    if cut {
        // A lossy cut may end in U+FFFD where a character was split; that is fine for a log line.
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn context() -> DocumentContext<'static> {
        DocumentContext {
            timestamp_field: "@timestamp",
            default_timestamp: index::parse_timestamp("2024-05-01T12:00:00.5Z").unwrap(),
        }
    }

    fn sources(bytes: &[u8]) -> Vec<String> {
        match into_sources(bytes.to_vec(), &context()).unwrap() {
            Content::Sources(sources) => sources.into_iter().map(|s| String::from_utf8(s.json).unwrap()).collect(),
            Content::Skipped(why) => panic!("skipped: {why}"),
        }
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn a_json_object_with_a_timestamp_passes_through_byte_for_byte() {
        let doc = br#"{"@timestamp":"2023-01-02T03:04:05Z","n":1,"s":"a\nb"}"#;
        assert_eq!(sources(doc), vec![String::from_utf8(doc.to_vec()).unwrap()]);
    }

    #[test]
    fn surrounding_whitespace_and_a_byte_order_mark_are_dropped() {
        assert_eq!(
            sources(b"\xEF\xBB\xBF \r\n {\"@timestamp\":\"2023-01-01\"}\n\n"),
            vec![r#"{"@timestamp":"2023-01-01"}"#]
        );
        assert_eq!(sources(b"\t{\"n\":1} \n"), vec![r#"{"@timestamp":"2024-05-01T12:00:00.500Z","n":1}"#]);
    }

    #[test]
    fn a_json_object_without_a_timestamp_gains_the_arrival_time_first() {
        assert_eq!(sources(br#"{"n":1}"#), vec![r#"{"@timestamp":"2024-05-01T12:00:00.500Z","n":1}"#]);
        assert_eq!(sources(b"{ }"), vec![r#"{"@timestamp":"2024-05-01T12:00:00.500Z" }"#]);
    }

    #[test]
    fn a_number_beyond_f64_passes_through_for_elasticsearch_to_judge() {
        // Found by the fuzzer: valid JSON (RFC 8259 sets no range); Elasticsearch answers 400 and the document is
        // rejected with that reason, rather than the indexer guessing.
        let doc = br#"{"@timestamp":"2026-11-22T08:00:00Z","latency_ms":3166666e2222}"#;
        assert_eq!(sources(doc), vec![String::from_utf8(doc.to_vec()).unwrap()]);
    }

    #[test]
    fn a_pretty_printed_object_becomes_one_line() {
        let out = sources(b"{\n  \"a\": 1,\r\n  \"b\": [1,\n2]\n}\n");
        assert_eq!(out.len(), 1);
        assert!(!out[0].contains('\n') && !out[0].contains('\r'), "{}", out[0]);
        let value: serde_json::Value = serde_json::from_str(&out[0]).unwrap();
        assert_eq!(value["b"][1], 2);
        assert_eq!(value["@timestamp"], "2024-05-01T12:00:00.500Z");
    }

    #[test]
    fn the_document_timestamp_names_the_index_when_readable() {
        let Content::Sources(out) = into_sources(br#"{"@timestamp":1700000000000}"#.to_vec(), &context()).unwrap()
        else {
            panic!()
        };
        assert_eq!(index::format_timestamp(out[0].timestamp), "2023-11-14T22:13:20.000Z");
        let Content::Sources(out) = into_sources(br#"{"@timestamp":"not a date"}"#.to_vec(), &context()).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            out[0].timestamp,
            context().default_timestamp,
            "an unreadable timestamp is kept, arrival names the index"
        );
        assert_eq!(out[0].json, br#"{"@timestamp":"not a date"}"#);
    }

    #[test]
    fn text_that_is_not_a_json_object_becomes_a_message() {
        assert_eq!(
            sources(b"GET /index.html 200\n"),
            vec![r#"{"@timestamp":"2024-05-01T12:00:00.500Z","message":"GET /index.html 200"}"#]
        );
        assert_eq!(sources(b"[1,2]"), vec![r#"{"@timestamp":"2024-05-01T12:00:00.500Z","message":"[1,2]"}"#]);
        assert_eq!(
            sources(br#"{"broken": "#),
            vec![r#"{"@timestamp":"2024-05-01T12:00:00.500Z","message":"{\"broken\": "}"#]
        );
        assert_eq!(sources(br#"{"a":1} {"b":2}"#).len(), 1, "two objects are text, not two documents");
    }

    #[test]
    fn invalid_utf8_and_blank_data_are_rejected() {
        let (rejection, _) = into_sources(b"ab\xff".to_vec(), &context()).unwrap_err();
        assert_eq!(rejection, Rejection::InvalidUtf8 { valid_up_to: 2 });
        assert_eq!(into_sources(b" \n".to_vec(), &context()).unwrap_err().0, Rejection::Empty);
        let (rejection, _) = into_sources(b"{\"a\":\"\xff\"}".to_vec(), &context()).unwrap_err();
        assert_eq!(rejection.kind(), "invalid_utf8", "bytes inside JSON strings are checked too");
    }

    const CLOUDWATCH: &str = r#"{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/lambda/app","logStream":"2024/05/01/[$LATEST]abc","subscriptionFilters":["all"],"logEvents":[{"id":"1","timestamp":1714564800000,"message":"first"},{"id":"2","timestamp":1714564801000,"message":"{\"k\":1}"}]}"#;

    #[test]
    fn a_cloudwatch_envelope_becomes_one_document_per_log_event() {
        let out = sources(CLOUDWATCH.as_bytes());
        assert_eq!(
            out[0],
            r#"{"@timestamp":"2024-05-01T12:00:00.000Z","message":"first","aws":{"cloudwatch":{"log_group":"/aws/lambda/app","log_stream":"2024/05/01/[$LATEST]abc","event_id":"1"}},"cloud":{"account":{"id":"123456789012"}}}"#
        );
        assert!(out[1].starts_with(r#"{"@timestamp":"2024-05-01T12:00:01.000Z","message":"{\"k\":1}""#), "{}", out[1]);
    }

    #[test]
    fn a_cloudwatch_control_message_is_skipped() {
        let control = r#"{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1,"message":"CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}]}"#;
        assert_eq!(
            into_sources(control.as_bytes().to_vec(), &context()).unwrap(),
            Content::Skipped("CloudWatch Logs control message".into())
        );
    }

    #[test]
    fn a_broken_cloudwatch_envelope_is_rejected() {
        let broken =
            r#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"message":"no timestamp"}]}"#;
        let (rejection, _) = into_sources(broken.as_bytes().to_vec(), &context()).unwrap_err();
        assert_eq!(rejection.kind(), "bad_cloudwatch_envelope");
    }

    #[test]
    fn gzip_is_inflated_and_a_gzip_bomb_is_refused() {
        assert_eq!(decode_data(&b64(&gzip(b"hello")), 1024).unwrap(), b"hello");
        let bomb = gzip(&vec![b'a'; 1_000_000]);
        assert!(bomb.len() < 5_000);
        assert_eq!(decode_data(&b64(&bomb), 64 * 1024).unwrap_err(), Rejection::TooLarge { limit: 64 * 1024 });
        assert_eq!(decode_data(&b64(&[0x1f, 0x8b, 8, 0, 1, 2]), 1024).unwrap_err().kind(), "corrupt_gzip");
    }

    #[test]
    fn bad_base64_and_empty_data_are_rejected() {
        assert_eq!(decode_data("not base64!", 1024).unwrap_err().kind(), "invalid_base64");
        assert_eq!(decode_data("", 1024).unwrap_err(), Rejection::Empty);
        assert_eq!(decode_data(&b64(&gzip(b"")), 1024).unwrap_err(), Rejection::Empty);
    }

    #[test]
    fn a_record_reads_its_shard_sequence_and_arrival_time() {
        let raw = r#"{"eventID":"shardId-000000000006:4959","kinesis":{"sequenceNumber":"4959","data":"aGk=","approximateArrivalTimestamp":1545084650.5,"partitionKey":"p"}}"#;
        let record = read_record(raw).unwrap();
        assert_eq!(
            record.provenance,
            Provenance { shard_id: "shardId-000000000006".into(), sequence_number: Some("4959".into()) }
        );
        assert_eq!(record.data, "aGk=");
        assert_eq!(index::format_timestamp(record.arrival.unwrap()), "2018-12-17T22:10:50.500Z");
        let precise = raw.replace("1545084650.5", "1545084650.98765");
        assert_eq!(
            index::format_timestamp(read_record(&precise).unwrap().arrival.unwrap()),
            "2018-12-17T22:10:50.988Z"
        );
    }

    #[test]
    fn a_malformed_record_keeps_what_provenance_it_has() {
        let (provenance, rejection) =
            read_record(r#"{"eventID":"shardId-1:77","kinesis":{"sequenceNumber":"77","data":5}}"#).unwrap_err();
        assert_eq!(provenance.unwrap().sequence_number.as_deref(), Some("77"));
        assert_eq!(rejection.kind(), "malformed_record");
        assert_eq!(read_record(r#"{"nothing":true}"#).unwrap_err().0, None);
    }

    #[test]
    fn ids_are_deterministic_and_name_the_record() {
        let provenance = Provenance { shard_id: "shardId-000000000001".into(), sequence_number: Some("495".into()) };
        assert_eq!(document_id(&provenance, 3), "shardId-000000000001:495:3");
    }

    #[test]
    fn excerpts_are_bounded() {
        assert_eq!(excerpt(b"abcdef", 3), "abc…");
        assert_eq!(excerpt(b"abc", 3), "abc");
    }
}
