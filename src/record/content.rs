//! What decoded data becomes: document sources, each with the instant that names its index, and how a document made
//! from a message is stamped.

use chrono::{DateTime, Utc};

use crate::index;

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

/// The start of a document made from a message, `{"<timestamp field>":"…","message":"…"`, for its caller to close
/// or to go on with more fields.
pub(super) fn write_stamped_message(out: &mut Vec<u8>, timestamp_field: &str, at: DateTime<Utc>, message: &str) {
    out.push(b'{');
    serde_json::to_writer(&mut *out, timestamp_field).expect("writing a str to a Vec cannot fail");
    out.extend_from_slice(b":\"");
    index::write_timestamp(out, at);
    out.extend_from_slice(br#"","message":"#);
    serde_json::to_writer(out, message).expect("writing a str to a Vec cannot fail");
}
