//! What decoded data becomes: document sources, each with the instant that names its index, and what every document
//! gains on the way (its timestamp, static fields, the record's provenance), written in the buffer it is built in.

use std::cell::Cell;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::preprocess::Preprocess;
use crate::timestamp;

/// What one record's decoded data holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Content {
    /// The documents, and how many more the filters dropped (`FILTER_INCLUDE`, `FILTER_EXCLUDE`).
    Sources {
        sources: Vec<Source>,
        filtered: usize,
    },
    Skipped(String),
}

impl Content {
    /// Documents of which the filters dropped none.
    pub(super) fn kept(sources: Vec<Source>) -> Content {
        Content::Sources { sources, filtered: 0 }
    }
}

/// One document's JSON (a single line), its position among the documents of its data (filtered ones counted, so
/// that an `_id` does not change with the filters), the instant that names its index, and the CloudWatch Logs log
/// group it came from, when it did (an index pattern may name it).
#[derive(Debug, PartialEq, Eq)]
pub struct Source {
    pub json: Vec<u8>,
    pub position: usize,
    pub timestamp: DateTime<Utc>,
    pub log_group: Option<Arc<str>>,
    /// Whether it is the template's canary (`CANARY_FIELD`).
    pub canary: bool,
}

impl Source {
    /// The next document of the data `context` decodes.
    pub(super) fn new(context: &DocumentContext, json: Vec<u8>, timestamp: DateTime<Utc>) -> Source {
        Source { json, position: context.take_position(), timestamp, log_group: None, canary: false }
    }
}

/// How a record's documents are made: stamped, filtered, and what they gain.
pub struct DocumentContext<'a> {
    pub timestamp_field: &'a str,
    /// For documents without a readable timestamp of their own: the record's arrival time.
    pub default_timestamp: DateTime<Utc>,
    pub preprocess: &'a Preprocess,
    /// The record's provenance as a JSON object, the value of `aws.kinesis` (`ADD_KINESIS_METADATA`).
    pub kinesis: Option<&'a [u8]>,
    /// The position of the next document of the data being decoded (a record's, or a KPL user record's).
    pub positions: Cell<usize>,
}

/// What a document already has under `aws`, which decides how the record's provenance joins it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OwnAws {
    /// No `aws` field: `"aws":{"kinesis":…}`.
    Absent,
    /// An object: `"aws.kinesis":…`, which Elasticsearch expands into the same object.
    Object,
    /// Something else: the document's own field wins, and the provenance is left out.
    Other,
}

impl DocumentContext<'_> {
    /// Whether the filters keep a document whose text is `text`.
    pub(super) fn keeps(&self, text: &str) -> bool {
        self.preprocess.filter.keeps(text)
    }

    /// The next document's position, taken by one the filters dropped: a kept document's `_id` does not change
    /// with the filters.
    pub(super) fn skip_position(&self) {
        self.take_position();
    }

    fn take_position(&self) -> usize {
        let position = self.positions.get();
        self.positions.set(position + 1);
        position
    }

    /// Whether a document gains anything besides its timestamp: its own fields must then be scanned for clashes.
    pub(super) fn adds_fields(&self) -> bool {
        !self.preprocess.added_fields.is_empty() || self.kinesis.is_some()
    }

    /// `,"key":value` for each static field the document does not have (`present`, bit per `AddedFields::names`),
    /// then the record's provenance as `aws` allows.
    pub(super) fn write_added(&self, out: &mut Vec<u8>, present: u64, aws: OwnAws) {
        self.preprocess.added_fields.write_missing(out, present);
        match aws {
            OwnAws::Absent => self.write_provenance(out, ProvenanceAt::NewObject),
            OwnAws::Object => self.write_provenance(out, ProvenanceAt::Beside),
            OwnAws::Other => {}
        }
    }

    /// The record's provenance (`ADD_KINESIS_METADATA`), the one place it is written: `aws.kinesis`, as a field of
    /// an `aws` object being written, of a new one, or beside the document's own (which Elasticsearch expands into
    /// the same object). Nothing when it is off.
    pub(super) fn write_provenance(&self, out: &mut Vec<u8>, at: ProvenanceAt) {
        let Some(kinesis) = self.kinesis else { return };
        out.extend_from_slice(match at {
            ProvenanceAt::Inside => br#","kinesis":"#,
            ProvenanceAt::NewObject => br#","aws":{"kinesis":"#,
            ProvenanceAt::Beside => br#","aws.kinesis":"#,
        });
        out.extend_from_slice(kinesis);
        if at == ProvenanceAt::NewObject {
            out.push(b'}');
        }
    }
}

/// Where the record's provenance (`aws.kinesis`) goes in a document being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProvenanceAt {
    /// After another field of an `aws` object the indexer is writing (CloudWatch Logs' `aws.cloudwatch`).
    Inside,
    /// An `aws` object of its own: the document has none.
    NewObject,
    /// `aws.kinesis` beside the document's own `aws` object.
    Beside,
}

/// The start of a document made from a message, `{"<timestamp field>":"…","message":"…"`, for its caller to close
/// or to go on with more fields.
pub(super) fn write_stamped_message(out: &mut Vec<u8>, timestamp_field: &str, at: DateTime<Utc>, message: &str) {
    write_stamp(out, timestamp_field, at);
    out.extend_from_slice(br#","message":"#);
    serde_json::to_writer(out, message).expect("writing a str to a Vec cannot fail");
}

/// `"name":value`, one field of a document, its value already JSON (`value_json`).
pub(super) fn write_field(out: &mut Vec<u8>, name: &str, value_json: &[u8]) {
    serde_json::to_writer(&mut *out, name).expect("writing a str to a Vec cannot fail");
    out.push(b':');
    out.extend_from_slice(value_json);
}

/// `{"<timestamp field>":"…"`, the start of every document the indexer writes whole.
pub(super) fn write_stamp(out: &mut Vec<u8>, timestamp_field: &str, at: DateTime<Utc>) {
    out.push(b'{');
    serde_json::to_writer(&mut *out, timestamp_field).expect("writing a str to a Vec cannot fail");
    out.extend_from_slice(b":\"");
    timestamp::write_timestamp(out, at);
    out.push(b'"');
}

/// Valid JSON has newlines only as whitespace between tokens (strings escape theirs): folded into spaces, the
/// document is the same, on one NDJSON line.
pub(super) fn fold_newlines(json: &mut [u8]) {
    // Most documents are on one line already: find the first newline at memchr's speed, fold from there.
    let Some(first) = memchr::memchr2(b'\n', b'\r', json) else { return };
    for byte in &mut json[first..] {
        if *byte == b'\n' || *byte == b'\r' {
            *byte = b' ';
        }
    }
}
