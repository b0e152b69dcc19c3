//! Kinesis records in, documents out: what a batch is once decoded, and the pieces that decode it, one concern per
//! file: `read` (one record of the event), `data` (base64 and gzip), `content` (what decoded data becomes),
//! `sources` (decoded data → documents' JSON), `cloudwatch` (CloudWatch Logs envelopes), `scan` (a document's
//! few fields, through `json`), `ids` (`_id`s), `batch` (the whole batch, record by record).
//!
//! Pure: bytes and values in, values out. A record that cannot be read or decoded becomes a `Rejection`, never an
//! error for the batch.

mod batch;
mod cloudwatch;
mod content;
mod data;
mod ids;
mod message;
mod read;
mod scan;
mod sources;

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use batch::{BatchDecoder, plain_config, plain_sources};
pub use sources::prepend_field;

/// Where a record came from: enough to report it back to Kinesis and to name it in every log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub shard_id: String,
    /// Absent only when the record is too malformed to carry one; such a record cannot be reported back.
    pub sequence_number: Option<String>,
}

/// Why a record cannot be indexed, ever: it is rejected and logged, never retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    MalformedRecord(String),
    InvalidBase64(String),
    Empty,
    CorruptGzip(String),
    TooLarge {
        limit: usize,
    },
    InvalidUtf8 {
        valid_up_to: usize,
    },
    BadCloudWatchEnvelope(String),
    /// A KPL aggregate whose digest, protobuf or key tables are broken.
    CorruptAggregate(String),
    /// `ES_DOC_ID=field:…` and the document has no usable value there.
    NoDocumentId(String),
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
            Rejection::CorruptAggregate(why) => write!(f, "KPL aggregate is corrupt: {why}"),
            Rejection::NoDocumentId(why) => f.write_str(why),
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
            Rejection::CorruptAggregate(_) => "corrupt_kpl_aggregate",
            Rejection::NoDocumentId(_) => "no_document_id",
        }
    }
}

/// What decoding made of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// These positions of `Batch::documents`, in record order, and the parts of the record that could not become a
    /// document (a corrupt user record of a KPL aggregate, a document without its `ES_DOC_ID` field): a record with
    /// such parts is rejected once its documents are settled, and each part is logged.
    Documents { range: Range<usize>, rejected_parts: Vec<RejectedPart> },
    /// Nothing to index by design (a CloudWatch Logs control message).
    Skipped(String),
    /// Cannot be indexed; `excerpt` quotes the start of the data for the log line.
    Rejected { rejection: Rejection, excerpt: String },
}

/// A part of a record that is rejected while the rest of it is indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedPart {
    /// Which part: `user record 3`, `document 2`.
    pub part: String,
    pub rejection: Rejection,
    pub excerpt: String,
}

/// One document ready for `_bulk`: its target, `_id` (none with `ES_DOC_ID=none`), and source as one line of JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Position of its record in the batch.
    pub record: usize,
    pub id: Option<String>,
    pub index: Arc<str>,
    pub source: Vec<u8>,
}

/// One record of the batch: where it came from, and what decoding made of it. Its documents, when it has any, are
/// `Batch::documents[record.documents()]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub provenance: Provenance,
    pub decoded: Decoded,
}

impl Record {
    /// The positions of its documents in the batch (none when it is rejected or skipped).
    pub fn documents(&self) -> Range<usize> {
        match &self.decoded {
            Decoded::Documents { range, .. } => range.clone(),
            Decoded::Skipped(_) | Decoded::Rejected { .. } => 0..0,
        }
    }
}

/// A batch: its records in order, each owning a range of `documents`, and what the whole batch measured. The
/// stages change what a record or a document carries, never their order: `Batch` after decoding,
/// `Batch<Record, IndexedDocument>` once the cluster answered, `Batch<SettledRecord, IndexedDocument>` once
/// every record has its fate.
#[derive(Debug)]
pub struct Batch<R = Record, D = Document> {
    pub records: Vec<R>,
    pub documents: Vec<D>,
    /// What the whole batch measured while it was decoded: it travels with the batch through every stage.
    pub measured: Measured,
}

/// What a batch measured while it was decoded, for the summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Measured {
    /// Documents whose own timestamp was further than `TIMESTAMP_MAX_SKEW_SECONDS` from their record's arrival, and
    /// so were put in the index of the arrival time.
    pub timestamps_out_of_range: usize,
    /// Documents without a timestamp of their own in records without `approximateArrivalTimestamp` (a hand-made
    /// event: Lambda always sends it), stamped and named by the Unix epoch so that a redelivery on another day
    /// writes the same `_id` to the same index.
    pub undated: usize,
    /// Documents the filters dropped (`FILTER_INCLUDE`, `FILTER_EXCLUDE`): never indexed, and counted here.
    pub filtered: usize,
    /// The earliest `approximateArrivalTimestamp` of the batch: how far behind the stream the function is.
    pub oldest_arrival: Option<DateTime<Utc>>,
    /// The canary documents (`CANARY_FIELD`) by batch position, with their records' arrival: how long records take
    /// from the stream to the cluster, told once they are indexed.
    pub canaries: Vec<(usize, DateTime<Utc>)>,
}

/// The field that marks the template's canary record (`CanaryIntervalMinutes`): `{"kinesis_es_indexer_canary":true,…}`.
pub const CANARY_FIELD: &str = "kinesis_es_indexer_canary";

impl<R, D> Default for Batch<R, D> {
    fn default() -> Self {
        Batch { records: Vec::new(), documents: Vec::new(), measured: Measured::default() }
    }
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

    #[test]
    fn excerpts_are_bounded() {
        assert_eq!(excerpt(b"abcdef", 3), "abc…");
        assert_eq!(excerpt(b"abc", 3), "abc");
    }
}
