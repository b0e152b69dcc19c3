//! The tests' own reading of a Kinesis event, written without the indexer's code: what each record's data must
//! become, a stream's tag in `_id`s, and the order of sequence numbers.
//!
//! The reading follows the README's rules for what a record holds, in the simplest code that is right for the inputs
//! the tests make: base64, then a KPL aggregate (magic `F3 89 9A C2`) split into user records or else gzip (magic
//! `1f 8b`) inflated; then the text: one JSON object is one document, a CloudWatch Logs envelope one per log event
//! (a control message none), NDJSON (several non-blank lines, one of them at least a JSON object) one per non-blank
//! line, anything else one `{"message": …}`. Where it cannot be sure (a shape no test makes), it says `Unknown`.
//! With `FILTER_INCLUDE`/`FILTER_EXCLUDE` set, the test compiles the patterns itself and drops a document whose
//! text (a log event's message, an object's or a line's own text, a text record without its final newlines) the
//! include pattern does not match or the exclude pattern does; a dropped document keeps its position.
//!
//! `support.rs` includes it by `#[path]`, as its child: `fleet` includes `support.rs` by path from another folder,
//! where a plain `mod reading;` would not find this file.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::io::Read as _;

use base64::Engine;
use md5::{Digest, Md5};
use regex::Regex;
use serde_json::Value;
use serde_json::value::RawValue;

/// What the test reads of the function's settings: the cap on a record's decoded size, and the filters.
pub struct Reading {
    pub max_record_bytes: usize,
    include: Option<Regex>,
    exclude: Option<Regex>,
}

impl Reading {
    /// No filters.
    pub fn unfiltered(max_record_bytes: usize) -> Reading {
        Reading { max_record_bytes, include: None, exclude: None }
    }

    /// Filtered by these patterns, compiled here.
    pub fn filtered(max_record_bytes: usize, include: Option<&str>, exclude: Option<&str>) -> Reading {
        let compile = |pattern: Option<&str>| pattern.map(|pattern| Regex::new(pattern).expect("a test's pattern"));
        Reading { max_record_bytes, include: compile(include), exclude: compile(exclude) }
    }

    fn keeps(&self, text: &str) -> bool {
        self.include.as_ref().is_none_or(|include| include.is_match(text))
            && !self.exclude.as_ref().is_some_and(|exclude| exclude.is_match(text))
    }
}

/// What a record must become, read from its data alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// A shape the tests do not make (a KPL user record with tags, a protobuf group): the invariant falls back to
    /// the report's own count of the record's documents.
    Unknown,
    /// Cannot be decoded (not a Kinesis record, not base64, empty, corrupt gzip, larger than `MAX_RECORD_BYTES`,
    /// not UTF-8, a corrupt aggregate, a broken CloudWatch Logs envelope): it may only be rejected.
    Corrupt,
    /// Its documents, by the end of their `_id` in `ES_DOC_ID=kinesis` mode (`2` for a record's third, `1.0` for
    /// the first of a KPL aggregate's second user record), and how many of its user records cannot be decoded.
    /// Neither: nothing to index (a CloudWatch Logs control message, an aggregate of none), it may be skipped.
    Holds {
        positions: Vec<String>,
        /// Documents the filters drop.
        filtered: usize,
        corrupt_parts: usize,
        /// The most bytes one decoded data (the record's, or one user record's) has: a document's size is bound
        /// by it.
        largest: usize,
    },
}

impl Expected {
    /// Whether it holds nothing to index: skipping it loses nothing.
    pub fn nothing_to_index(&self) -> bool {
        matches!(self, Expected::Holds { positions, corrupt_parts: 0, .. } if positions.is_empty())
    }
}

/// What one record of the event (its JSON) must become, when a record's data may inflate to `max_record_bytes`.
pub fn expected(record: &Value, max_record_bytes: usize) -> Expected {
    expected_by(record, &Reading::unfiltered(max_record_bytes))
}

/// What one record of the event (its JSON) must become under `reading`.
pub fn expected_by(record: &Value, reading: &Reading) -> Expected {
    // A record the runtime could not read whole: its data, shard, sequence number or arrival time are not there or
    // not of their type.
    let kinesis = &record["kinesis"];
    let text_or_null = |value: &Value| value.is_null() || value.is_string();
    let readable = kinesis["sequenceNumber"].is_string()
        && text_or_null(&record["eventID"])
        && text_or_null(&record["eventSourceARN"])
        && (kinesis["approximateArrivalTimestamp"].is_null() || kinesis["approximateArrivalTimestamp"].is_number());
    let Some(data) = kinesis["data"].as_str().filter(|_| readable) else { return Expected::Corrupt };
    let raw = match base64::engine::general_purpose::STANDARD.decode(data.trim()) {
        Ok(raw) if !raw.is_empty() => raw,
        _ => return Expected::Corrupt,
    };
    let mut budget = reading.max_record_bytes;
    // The magic and more than a digest: an aggregate (anything shorter is ordinary data).
    if raw.len() > KPL_MAGIC.len() + 16 && raw.starts_with(&KPL_MAGIC) {
        return aggregate(&raw, &mut budget, reading);
    }
    let Some(text) = inflate(&raw, &mut budget) else { return Expected::Corrupt };
    match documents(&text, reading) {
        Read::Documents(kept) => Expected::Holds {
            positions: kept_positions(&kept).map(|p| p.to_string()).collect(),
            filtered: kept.iter().filter(|kept| !**kept).count(),
            corrupt_parts: 0,
            largest: text.len(),
        },
        Read::Corrupt => Expected::Corrupt,
    }
}

/// The documents decoded data makes, each kept or dropped by the filters, or that it cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Read {
    Documents(Vec<bool>),
    Corrupt,
}

/// The positions of the documents the filters keep.
fn kept_positions(kept: &[bool]) -> impl Iterator<Item = usize> + '_ {
    kept.iter().enumerate().filter(|(_, kept)| **kept).map(|(position, _)| position)
}

/// The data as bytes: gzip inflated, within what is left of the record's `MAX_RECORD_BYTES` (all of an aggregate's
/// user records share it). `None`: empty, corrupt gzip, or over the budget.
fn inflate(raw: &[u8], budget: &mut usize) -> Option<Vec<u8>> {
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut inflated = Vec::new();
        // Several members, as `gzip -c a b` writes them; one byte past the budget tells it is exceeded.
        let members = flate2::read::MultiGzDecoder::new(raw);
        members.take(*budget as u64 + 1).read_to_end(&mut inflated).ok()?;
        inflated
    } else {
        raw.to_vec()
    };
    if bytes.is_empty() || bytes.len() > *budget {
        return None;
    }
    *budget -= bytes.len();
    Some(bytes)
}

/// The documents of decoded data (a byte order mark and surrounding whitespace aside).
fn documents(bytes: &[u8], reading: &Reading) -> Read {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let Ok(text) = std::str::from_utf8(bytes) else { return Read::Corrupt };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Read::Corrupt;
    }
    if let Some(read) = object(trimmed, reading) {
        return read;
    }
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|line| !line.is_empty()).collect();
    let objects: Vec<Option<Read>> = lines.iter().map(|line| object(line, reading)).collect();
    if lines.len() < 2 || objects.iter().all(Option::is_none) {
        return Read::Documents(vec![reading.keeps(text.trim_end_matches(['\n', '\r']))]);
    }
    // NDJSON: a line that is not an object is one `{"message": …}`; one broken envelope rejects the whole record.
    let mut all = Vec::new();
    for (line, read) in lines.iter().zip(objects) {
        match read.unwrap_or_else(|| Read::Documents(vec![reading.keeps(line)])) {
            Read::Documents(kept) => all.extend(kept),
            Read::Corrupt => return Read::Corrupt,
        }
    }
    Read::Documents(all)
}

/// The documents of `text` when it is exactly one JSON object: one, or a CloudWatch Logs envelope's (a string
/// `messageType` of `DATA_MESSAGE` or `CONTROL_MESSAGE` and an array `logEvents`). `None` when it is not an object.
/// Fields are kept raw: a number beyond `f64` passes through to Elasticsearch, as the README says.
fn object(text: &str, reading: &Reading) -> Option<Read> {
    if !text.starts_with('{') {
        return None;
    }
    let fields: HashMap<String, &RawValue> = serde_json::from_str(text).ok()?;
    let kind: Option<String> = fields.get("messageType").and_then(|raw| serde_json::from_str(raw.get()).ok());
    let events = fields.get("logEvents").filter(|raw| raw.get().starts_with('['));
    Some(match (kind.as_deref(), events) {
        (Some("CONTROL_MESSAGE"), Some(_)) => Read::Documents(Vec::new()),
        (Some("DATA_MESSAGE"), Some(events)) => envelope(&fields, events, reading),
        // The canary passes every filter.
        _ => Read::Documents(vec![
            fields.get("kinesis_es_indexer_canary").is_some_and(|raw| raw.get() == "true") || reading.keeps(text),
        ]),
    })
}

/// A data message's log events, or `Corrupt` when the envelope lacks its log group or stream, or a log event its
/// integer timestamp or string message (an owner and an event id may be left out or null).
fn envelope(fields: &HashMap<String, &RawValue>, events: &RawValue, reading: &Reading) -> Read {
    fn is<T: serde::de::DeserializeOwned>(raw: Option<&&RawValue>) -> bool {
        raw.is_some_and(|raw| serde_json::from_str::<T>(raw.get()).is_ok())
    }
    let optional = |raw: Option<&&RawValue>| raw.is_none() || is::<Option<String>>(raw);
    let Ok(events) = serde_json::from_str::<Vec<HashMap<String, &RawValue>>>(events.get()) else {
        return Read::Corrupt;
    };
    let whole = is::<String>(fields.get("logGroup"))
        && is::<String>(fields.get("logStream"))
        && optional(fields.get("owner"))
        && events.iter().all(|event| {
            is::<i64>(event.get("timestamp")) && is::<String>(event.get("message")) && optional(event.get("id"))
        });
    if !whole {
        return Read::Corrupt;
    }
    let message =
        |event: &HashMap<String, &RawValue>| -> String { serde_json::from_str(event["message"].get()).unwrap() };
    Read::Documents(events.iter().map(|event| reading.keeps(&message(event))).collect())
}

/// The four bytes a KPL aggregate starts with; its last 16 are the MD5 of the protobuf between.
const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// An aggregate's user records, each read as a record's data is (`_id`s `user.position`); a user record that
/// cannot be decoded is a corrupt part, the aggregate itself corrupt when its digest or protobuf is broken or a user
/// record names a key its tables do not have.
fn aggregate(raw: &[u8], budget: &mut usize, reading: &Reading) -> Expected {
    let (body, digest) = raw[KPL_MAGIC.len()..].split_at(raw.len() - KPL_MAGIC.len() - 16);
    if Md5::digest(body).as_slice() != digest {
        return Expected::Corrupt;
    }
    let users = match user_records(body) {
        Ok(users) => users,
        Err(Protobuf::Corrupt) => return Expected::Corrupt,
        Err(Protobuf::Unknown) => return Expected::Unknown,
    };
    let (mut positions, mut filtered, mut corrupt_parts, mut largest) = (Vec::new(), 0, 0, 0);
    for (user, data) in users.iter().enumerate() {
        let Some(text) = inflate(data, budget) else {
            corrupt_parts += 1;
            continue;
        };
        largest = largest.max(text.len());
        match documents(&text, reading) {
            Read::Documents(kept) => {
                positions.extend(kept_positions(&kept).map(|p| format!("{user}.{p}")));
                filtered += kept.iter().filter(|kept| !**kept).count();
            }
            Read::Corrupt => corrupt_parts += 1,
        }
    }
    Expected::Holds { positions, filtered, corrupt_parts, largest }
}

/// Why a protobuf was not read: it is broken, or of a shape this reader leaves alone (the tests write neither).
#[derive(Debug)]
enum Protobuf {
    Corrupt,
    Unknown,
}

/// The data of every user record of an `AggregatedRecord` (`messages.proto`: 1 partition keys, 2 explicit hash
/// keys, 3 records; a `Record`: 1 partition key index, 2 explicit hash key index, 3 data, 4 tags).
fn user_records(body: &[u8]) -> Result<Vec<&[u8]>, Protobuf> {
    let (mut keys, mut hash_keys, mut records) = (0, 0, Vec::new());
    for (number, value) in fields(body)? {
        match (number, value) {
            (1 | 2, Field::Bytes(key)) => {
                std::str::from_utf8(key).map_err(|_| Protobuf::Corrupt)?;
                match number {
                    1 => keys += 1,
                    _ => hash_keys += 1,
                }
            }
            (3, Field::Bytes(record)) => {
                let (mut key, mut hash_key, mut data) = (0, None, &[][..]);
                for (number, value) in fields(record)? {
                    match (number, value) {
                        (1, Field::Varint(index)) => key = index,
                        (2, Field::Varint(index)) => hash_key = Some(index),
                        (3, Field::Bytes(bytes)) => data = bytes,
                        (4, _) => return Err(Protobuf::Unknown),
                        (1..=3, _) => return Err(Protobuf::Corrupt),
                        _ => {}
                    }
                }
                records.push((key, hash_key, data));
            }
            (1..=3, _) => return Err(Protobuf::Corrupt),
            _ => {}
        }
    }
    let named =
        |(key, hash_key, _): &(u64, Option<u64>, &[u8])| *key < keys && hash_key.is_none_or(|index| index < hash_keys);
    match records.iter().all(named) {
        true => Ok(records.into_iter().map(|(_, _, data)| data).collect()),
        false => Err(Protobuf::Corrupt),
    }
}

/// A protobuf field's value: a varint, length-delimited bytes, or a fixed-size value.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// A message's fields, in order, as (field number, value).
fn fields(mut bytes: &[u8]) -> Result<Vec<(u64, Field<'_>)>, Protobuf> {
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let value = match key & 7 {
            0 => Field::Varint(varint(&mut bytes)?),
            1 => take(&mut bytes, 8).map(|_| Field::Fixed)?,
            2 => {
                let length = varint(&mut bytes)?;
                Field::Bytes(take(&mut bytes, length)?)
            }
            5 => take(&mut bytes, 4).map(|_| Field::Fixed)?,
            3 | 4 => return Err(Protobuf::Unknown),
            _ => return Err(Protobuf::Corrupt),
        };
        if key >> 3 == 0 {
            return Err(Protobuf::Corrupt);
        }
        fields.push((key >> 3, value));
    }
    Ok(fields)
}

/// Seven bits a byte, least significant first, while the high bit is set; at most 64 bits.
fn varint(bytes: &mut &[u8]) -> Result<u64, Protobuf> {
    let mut value = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().ok_or(Protobuf::Corrupt)?;
        *bytes = rest;
        if shift == 63 && byte > 1 {
            return Err(Protobuf::Corrupt);
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(Protobuf::Corrupt)
}

/// The next `length` bytes.
fn take<'a>(bytes: &mut &'a [u8], length: u64) -> Result<&'a [u8], Protobuf> {
    let length = usize::try_from(length).ok().filter(|&length| length <= bytes.len()).ok_or(Protobuf::Corrupt)?;
    let (taken, rest) = bytes.split_at(length);
    *bytes = rest;
    Ok(taken)
}

/// The stream's part of every `_id` in `ES_DOC_ID=kinesis` mode: the first 4 bytes of the MD5 of the
/// `eventSourceARN`, in hex (README: "`_id`s").
pub fn stream_tag(event_source_arn: &str) -> String {
    Md5::digest(event_source_arn.as_bytes())[..4].iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Kinesis sequence numbers are decimal strings of up to 128 bits, longer than any integer type reads: as numbers,
/// the one with more digits (leading zeros aside) is the greater, and digits of equal count compare as text.
pub fn compare_sequence_numbers(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}
