//! The whole batch, record by record: each record read, decoded and named into documents as the indexer asks.

use std::cell::Cell;
use std::fmt::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::content::{Content, DocumentContext, Source};
use super::data::{STAMP_ROOM, decode_base64, inflate};
use super::ids::{StreamTags, field_id, write_id_prefix};
use super::read::read_record;
use super::sources::into_sources;
use super::{Batch, Decoded, Document, Provenance, Record, RejectedPart, Rejection, excerpt};
use crate::config::{Config, DocIdMode, DocumentConfig};
use crate::event::KinesisEventIn;
use crate::event::RecordView;
use crate::index::{IndexNamer, Routing};
use crate::kpl;

/// Decodes a batch one record at a time, handing each record's documents out as it goes: the indexer decodes a
/// chunk's worth, sends it, and keeps of each document only what routing needs, so a batch that inflates (gzip,
/// CloudWatch Logs) never has all its documents' sources in memory at once. Every record is decoded exactly once,
/// in order; document positions (`Decoded::Documents::range`, `Document::record`) are the batch's, as if decoded
/// at once.
pub struct BatchDecoder<'a> {
    event: &'a KinesisEventIn,
    /// The JSON text of each record, found when a malformed record is to be quoted.
    records_json: Option<Vec<&'a str>>,
    next_record: usize,
    target: Target<'a>,
}

impl<'a> BatchDecoder<'a> {
    pub fn new(event: &'a KinesisEventIn, config: &'a Config) -> BatchDecoder<'a> {
        BatchDecoder { event, records_json: None, next_record: 0, target: Target::new(config, event.len()) }
    }

    /// Decodes the next record and moves its documents (none when it is rejected or skipped) to the end of `out`.
    /// False when every record has been decoded.
    pub fn decode_next_into(&mut self, out: &mut impl Extend<Document>) -> bool {
        let Some(record) = self.event.record(self.next_record) else {
            return false;
        };
        let position = self.next_record;
        self.next_record += 1;
        let target = &mut self.target;
        let (provenance, decoded) = match read_record(&record) {
            Err((provenance, rejection)) => {
                // The record's own JSON is quoted; finding it takes a second pass over the event, once per batch.
                let event = self.event;
                let records_json = self.records_json.get_or_insert_with(|| event.records_json());
                let excerpt = excerpt(records_json[position].as_bytes(), target.config.log_excerpt_bytes);
                (provenance.unwrap_or_else(|| unknown_provenance(position)), Decoded::Rejected { rejection, excerpt })
            }
            Ok((provenance, data)) => {
                let decoded = target.decode(&record, &provenance, data);
                (provenance, decoded)
            }
        };
        target.batch.records.push(Record { provenance, decoded });
        target.handed_out += target.batch.documents.len();
        out.extend(target.batch.documents.drain(..));
        true
    }

    /// The decoded batch once every record is decoded, given back every document handed out, in order, as what
    /// the caller made of them (indexed, their sources released where nothing needs them any more).
    pub fn finish<D>(self, documents: Vec<D>) -> Batch<Record, D> {
        assert_eq!(self.next_record, self.event.len(), "every record is decoded");
        assert_eq!(documents.len(), self.target.handed_out, "every document handed out comes back");
        let Batch { records, measured, .. } = self.target.batch;
        Batch { records, documents, measured }
    }
}

/// The batch being built, and what naming its documents needs across records.
struct Target<'c> {
    /// Holds the current record's documents until they are handed out; their positions start at `handed_out`.
    batch: Batch,
    handed_out: usize,
    namer: IndexNamer<'c>,
    config: &'c Config,
    streams: StreamTags,
    /// `stream:shard:sequence:` of the record being decoded, in `ES_DOC_ID=kinesis` mode: one buffer for the batch.
    id_prefix: String,
    /// The arrival time of the record being decoded, when it has one.
    arrival: Option<DateTime<Utc>>,
}

/// The configuration that decodes a record's documents in the form they came in: the preprocessing that reshapes a
/// document off (`Preprocess::plain`: a CloudWatch Logs message stays a string, nothing is added), the same filters,
/// and `_id`s that no document can lack (the plain form keeps the `_id` it was refused with), so that every document
/// of a record is where `BatchDecoder` put its reshaped form.
pub fn plain_config(config: &Config) -> Config {
    let documents = DocumentConfig { doc_id: DocIdMode::Kinesis, ..config.documents.clone() };
    Config { preprocessing: config.preprocessing.plain(), documents, ..config.clone() }
}

/// The documents of the event's record at `position`, decoded with `plain` (`plain_config`), in order. Empty for a
/// record that does not decode to documents.
pub fn plain_sources(event: &KinesisEventIn, plain: &Config, position: usize) -> Vec<Vec<u8>> {
    let Some(record) = event.record(position) else {
        return Vec::new();
    };
    let Ok((provenance, data)) = read_record(&record) else {
        return Vec::new();
    };
    let mut target = Target::new(plain, 1);
    target.decode(&record, &provenance, data);
    target.batch.documents.into_iter().map(|document| document.source).collect()
}

impl<'c> Target<'c> {
    fn new(config: &'c Config, records: usize) -> Target<'c> {
        Target {
            batch: Batch { records: Vec::with_capacity(records), ..Batch::default() },
            handed_out: 0,
            namer: IndexNamer::new(&config.cluster.index),
            config,
            streams: StreamTags::default(),
            id_prefix: String::new(),
            arrival: None,
        }
    }

    fn decode(&mut self, record: &RecordView, provenance: &Provenance, data: &str) -> Decoded {
        if let Some(arrival) = record.arrival {
            let oldest = self.batch.measured.oldest_arrival.get_or_insert(arrival);
            *oldest = (*oldest).min(arrival);
        }
        if self.config.documents.doc_id == DocIdMode::Kinesis {
            self.id_prefix.clear();
            write_id_prefix(&mut self.id_prefix, self.streams.tag(record.event_source_arn), provenance);
        }
        let config = self.config;
        let quote = |bytes: &[u8]| excerpt(bytes, config.log_excerpt_bytes);
        let raw = match decode_base64(data) {
            Ok(raw) => raw,
            Err(rejection) => return Decoded::Rejected { rejection, excerpt: quote(data.as_bytes()) },
        };
        // Without an arrival time (a hand-made event), a document without its own timestamp is stamped and named
        // by the Unix epoch, not by the clock: a redelivery on another day must write its `_id` to the same index.
        let kinesis = config.preprocessing.kinesis_metadata.then(|| kinesis_metadata(record, provenance));
        let context = DocumentContext {
            timestamp_field: &config.documents.timestamp_field,
            default_timestamp: record.arrival.unwrap_or(DateTime::UNIX_EPOCH),
            preprocess: &config.preprocessing,
            kinesis: kinesis.as_deref(),
            positions: Cell::new(0),
        };
        self.arrival = record.arrival;
        let first = self.handed_out + self.batch.documents.len();
        let mut rejected_parts = Vec::new();
        let mut budget = config.documents.max_record_bytes;
        let mut filtered = 0;
        let skipped = match kpl::is_aggregate(&raw) {
            true => match self.decode_aggregate(raw, &context, &mut budget, &mut rejected_parts, &mut filtered) {
                Ok(skipped) => skipped,
                Err(rejected) => return rejected,
            },
            false => match inflate(raw, &mut budget).and_then(|bytes| into_sources(bytes, &context)) {
                Ok(Content::Sources { sources, filtered: dropped }) => {
                    self.push(sources, None, &mut rejected_parts);
                    filtered = dropped;
                    None
                }
                Ok(Content::Skipped(why)) => return Decoded::Skipped(why),
                Err((rejection, bytes)) => return Decoded::Rejected { rejection, excerpt: quote(&bytes) },
            },
        };
        let range = first..self.handed_out + self.batch.documents.len();
        self.batch.measured.filtered += filtered;
        match (range.is_empty(), rejected_parts.is_empty(), skipped) {
            (true, true, _) if filtered > 0 => Decoded::Skipped(format!(
                "every document of the record is filtered out ({filtered}: FILTER_INCLUDE, FILTER_EXCLUDE)"
            )),
            (true, true, Some(why)) => Decoded::Skipped(why),
            (true, true, None) => Decoded::Skipped("the record holds no documents".to_owned()),
            _ => Decoded::Documents { range, rejected_parts },
        }
    }

    /// A KPL aggregate's user records, each decoded as a record's data is, within the record's `budget`. A user
    /// record that cannot be decoded is a rejected part; the others are indexed. Returns why nothing is indexed
    /// when a user record is skipped by design or there is none, or the whole record's rejection when the
    /// aggregate itself is corrupt.
    fn decode_aggregate(
        &mut self,
        raw: Vec<u8>,
        context: &DocumentContext,
        budget: &mut usize,
        rejected_parts: &mut Vec<RejectedPart>,
        filtered: &mut usize,
    ) -> Result<Option<String>, Decoded> {
        let quote = |bytes: &[u8]| excerpt(bytes, self.config.log_excerpt_bytes);
        let raw = bytes::Bytes::from(raw);
        let user_records = kpl::deaggregate(raw.clone()).map_err(|corrupt| Decoded::Rejected {
            rejection: Rejection::CorruptAggregate(corrupt.to_string()),
            excerpt: quote(&raw),
        })?;
        if user_records.is_empty() {
            return Ok(Some("KPL aggregate without user records".to_owned()));
        }
        let mut skipped = None;
        for (user_record, data) in user_records.iter().enumerate() {
            // Copied with the room a document's timestamp field takes, as `decode_base64` leaves it.
            let mut bytes = Vec::with_capacity(data.len() + STAMP_ROOM);
            bytes.extend_from_slice(data);
            // A user record's documents are numbered from 0, as a record's are; one that is rejected has none
            // filtered.
            context.positions.set(0);
            match inflate(bytes, budget).and_then(|bytes| into_sources(bytes, context)) {
                Ok(Content::Sources { sources, filtered: dropped }) => {
                    self.push(sources, Some(user_record), rejected_parts);
                    *filtered += dropped;
                }
                Ok(Content::Skipped(why)) => skipped = Some(why),
                Err((rejection, bytes)) => rejected_parts.push(RejectedPart {
                    part: format!("user record {user_record}"),
                    rejection,
                    excerpt: quote(&bytes),
                }),
            }
        }
        Ok(skipped)
    }

    /// Adds a record's (or user record's) sources as documents: index from their timestamp within the skew bound,
    /// `_id` as `ES_DOC_ID` says.
    fn push(&mut self, sources: Vec<Source>, user_record: Option<usize>, rejected_parts: &mut Vec<RejectedPart>) {
        let record = self.batch.records.len();
        for source in sources {
            let position = source.position;
            let prefix = &self.id_prefix;
            let id = match &self.config.documents.doc_id {
                DocIdMode::Kinesis => {
                    // Sized once: `format!` guesses too small for a 100-byte prefix and grows the string.
                    let mut id = String::with_capacity(prefix.len() + 24);
                    id.push_str(prefix);
                    let written = match user_record {
                        None => write!(id, "{position}"),
                        Some(user_record) => write!(id, "{user_record}.{position}"),
                    };
                    written.expect("writing to a String cannot fail");
                    Some(id)
                }
                DocIdMode::Field(path) => match field_id(&source.json, path) {
                    Ok(id) => Some(id),
                    // The canary has no field of the producers': the cluster names it (a canary twice is harmless).
                    Err(_) if source.canary => None,
                    Err(rejection) => {
                        let part = match user_record {
                            None => format!("document {position}"),
                            Some(user_record) => format!("user record {user_record}, document {position}"),
                        };
                        let excerpt = excerpt(&source.json, self.config.log_excerpt_bytes);
                        rejected_parts.push(RejectedPart { part, rejection, excerpt });
                        continue;
                    }
                },
                DocIdMode::None => None,
            };
            let named_by = match self.arrival {
                Some(arrival) => {
                    let skew = (source.timestamp - arrival).abs().to_std().unwrap_or(Duration::MAX);
                    if skew > self.config.documents.timestamp_max_skew {
                        self.batch.measured.timestamps_out_of_range += 1;
                        arrival
                    } else {
                        source.timestamp
                    }
                }
                // No arrival to bound it by: the document's own timestamp, or the epoch it was stamped with.
                None => {
                    self.batch.measured.undated += usize::from(source.timestamp == DateTime::UNIX_EPOCH);
                    source.timestamp
                }
            };
            let index =
                self.namer.name(named_by, &Routing { log_group: source.log_group.as_deref(), document: &source.json });
            if let (true, Some(arrival)) = (source.canary, self.arrival) {
                self.batch.measured.canaries.push((self.handed_out + self.batch.documents.len(), arrival));
            }
            self.batch.documents.push(Document { record, id, index, source: source.json });
        }
    }
}

/// The record's provenance as the value of `aws.kinesis`, named as Elastic's serverless forwarder names it (`type`,
/// `name`, `partition_key`, `sequence_number`), with the shard and the arrival time besides.
fn kinesis_metadata(record: &RecordView, provenance: &Provenance) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct KinesisMetadata<'a> {
        r#type: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a str>,
        shard_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        sequence_number: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        partition_key: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        approximate_arrival_timestamp: Option<String>,
    }
    // `arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`
    let name = record.event_source_arn.map(|arn| arn.rsplit_once(":stream/").map_or(arn, |(_, name)| name));
    let metadata = KinesisMetadata {
        r#type: "stream",
        name,
        shard_id: &provenance.shard_id,
        sequence_number: provenance.sequence_number.as_deref(),
        partition_key: record.partition_key,
        approximate_arrival_timestamp: record.arrival.map(crate::timestamp::format_timestamp),
    };
    serde_json::to_vec(&metadata).expect("strings serialise")
}

fn unknown_provenance(position: usize) -> Provenance {
    Provenance { shard_id: format!("unknown(record {position} of the event)"), sequence_number: None }
}
