//! Firehose's backup, taken back (docs/faults.md row 33): documents the retry tier could not index within its retry
//! duration, written by Firehose to its backup bucket, sent to the cluster as the direct path would have sent them.
//!
//! Each backed-up line's `rawData` is what this function put to Firehose (`firehose::entry`): the document with its
//! target (`FIREHOSE_TARGET_FIELD`, `{"_id":…,"_index":…}`) first. The replay writes it at that `_index` and `_id`,
//! without that field, with `create` (409: already there), so replaying twice writes nothing twice. The dead letter
//! (`dead_letter`) writes its lines in the same format. Every document is offered again, whatever its last error:
//! one refused for its own fault (a mapping error) may be taken once the mapping is fixed; refused again, it is
//! reported with the cluster's reason and its object kept. `replay` reads the bucket and reports;
//! `src/bin/replay.rs` runs this locally, the function (`main.rs`) for the remote mode.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::budget::Budget;
use crate::cause::DocOutcome;
use crate::cause::{Failure, Outcome};
use crate::firehose;
use crate::handler::Deps;
use crate::record::Document;

/// One line of a backup object, as `replay::backup_object` reads it (and the remote mode sends it in a replay event):
/// its number in the object, the document as Firehose received it (`rawData`, decoded), and Firehose's last error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackedUp {
    pub line: usize,
    pub raw: String,
    #[serde(default)]
    pub error_code: String,
    #[serde(default)]
    pub error_message: String,
    /// The `_id` Firehose gave the document, used when the target carries none (`ES_DOC_ID=none`).
    #[serde(default)]
    pub es_document_id: Option<String>,
}

/// What became of one backed-up document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    Indexed,
    AlreadyThere,
    /// Refused again for its own fault (the cluster's answer now): reported, its object kept for a later replay.
    Rejected(Failure),
    /// Not written for a reason of the cluster's or the configuration's: kept in the bucket for a later replay.
    NotReplayed(Failure),
    /// The line does not hold a document this function put to Firehose.
    Unreadable(String),
}

impl Replayed {
    /// Whether the cluster was busy, away or refusing access: later objects should wait.
    pub fn cluster_level(&self) -> Option<&Failure> {
        match self {
            Replayed::NotReplayed(failure) if failure.cause.paces().is_some() => Some(failure),
            _ => None,
        }
    }
}

/// How much of a rejected document the report quotes: its object is kept, this says which document it was.
const EXCERPT_CHARS: usize = 300;

/// The key of the event that asks the deployed function to replay backed-up documents (`make replay REMOTE=1`):
/// `{"kinesis_es_indexer_replay": {"source": …, "backup": [BackedUp, …]}}`, answered with `report`'s JSON.
pub const REPLAY_EVENT_KEY: &str = "kinesis_es_indexer_replay";

/// What a replay event carries: the object the lines came from, and the lines.
#[derive(Debug, Deserialize)]
pub struct ReplayRequest {
    pub source: String,
    pub backup: Vec<BackedUp>,
}

/// The replay request a Lambda invocation's body holds, when it is one (it starts with `REPLAY_EVENT_KEY`; a
/// Kinesis event starts with `Records`), or why it cannot be read.
pub fn replay_request(body: &[u8]) -> Option<Result<ReplayRequest, String>> {
    crate::invocation::operator_request(body, REPLAY_EVENT_KEY, "replay")
}

/// Sends the documents of one backup object to the cluster within `budget`; one outcome per line, in order.
pub async fn replay(lines: &[BackedUp], budget: Budget, deps: &Deps) -> Vec<Replayed> {
    let mut outcomes: Vec<Option<Replayed>> = vec![None; lines.len()];
    let mut documents = Vec::new();
    let mut positions = Vec::new();
    for (position, line) in lines.iter().enumerate() {
        match document_of(line, position, &deps.config.firehose.target_field) {
            Err(why) => outcomes[position] = Some(Replayed::Unreadable(why)),
            Ok(document) => {
                documents.push(document);
                positions.push(position);
            }
        }
    }
    if !documents.is_empty() {
        let stage = deps.warm.flow.stage(budget, false);
        let (indexed, _) =
            crate::elasticsearch::index_documents(&deps.elasticsearch, documents, &deps.config, &stage).await;
        for (position, document) in positions.into_iter().zip(indexed) {
            outcomes[position] = Some(match document.outcome {
                DocOutcome::Indexed => Replayed::Indexed,
                DocOutcome::AlreadyThere => Replayed::AlreadyThere,
                DocOutcome::Failed(failure) if failure.cause.route() == Outcome::Rejected => {
                    Replayed::Rejected(failure)
                }
                DocOutcome::Failed(failure) => Replayed::NotReplayed(failure),
            });
        }
    }
    outcomes.into_iter().map(|outcome| outcome.expect("every line judged")).collect()
}

/// The document a backed-up line holds, at the `_index` and `_id` its target names, without the target.
fn document_of(line: &BackedUp, position: usize, target_field: &str) -> Result<Document, String> {
    let (target, source) = firehose::opened(line.raw.as_bytes(), target_field)?;
    Ok(Document {
        record: position,
        id: target.id.or_else(|| line.es_document_id.clone()),
        index: Arc::from(target.index),
        source,
    })
}

/// What one backup object's replay did, as `make replay` reads it (from `backup::replay` locally, or as the deployed
/// function's answer to a replay event in the remote mode, hence its JSON form): counts per outcome; each document not
/// replayed with its cause, each rejected for its own fault with the cluster's reason; `stop`, when the cluster was
/// busy, away or refusing, why later objects should wait.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupReport {
    #[serde(default)]
    pub source: String,
    pub documents: usize,
    /// Ordered by name, as the report prints them.
    pub outcomes: BTreeMap<String, usize>,
    pub not_replayed: Vec<NotReplayed>,
    #[serde(default)]
    pub rejected: Vec<RejectedAgain>,
    #[serde(default)]
    pub stop: Option<String>,
}

/// A record or document not replayed: where (`line N` of a backup object, `shard:sequence` of a batch), its cause's
/// name, the fix the cause calls for, and what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotReplayed {
    #[serde(rename = "where")]
    pub at: String,
    pub cause: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    pub reason: String,
}

/// A backed-up document refused again for its own fault: its line, the cluster's reason, and its beginning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedAgain {
    #[serde(rename = "where")]
    pub at: String,
    pub reason: String,
    #[serde(default)]
    pub excerpt: String,
}

/// The report of one backup object's replay: `replayed` holds one outcome per line of `lines`.
pub fn report(source: &str, lines: &[BackedUp], replayed: &[Replayed]) -> BackupReport {
    let mut outcomes = BTreeMap::new();
    let mut not_replayed = Vec::new();
    let mut rejected = Vec::new();
    for (line, outcome) in lines.iter().zip(replayed) {
        let name = match outcome {
            Replayed::Indexed => "indexed",
            Replayed::AlreadyThere => "already_there",
            Replayed::Rejected(_) => "rejected",
            Replayed::NotReplayed(_) => "not_replayed",
            Replayed::Unreadable(_) => "unreadable",
        };
        *outcomes.entry(name.to_owned()).or_default() += 1;
        let at = format!("line {}", line.line);
        match outcome {
            Replayed::Rejected(failure) => rejected.push(RejectedAgain {
                at,
                reason: failure.to_string(),
                excerpt: line.raw.chars().take(EXCERPT_CHARS).collect(),
            }),
            Replayed::NotReplayed(failure) => not_replayed.push(NotReplayed {
                at,
                cause: failure.cause.name().to_owned(),
                fix: failure.cause.fix().map(|fix| fix.hint().to_owned()),
                reason: failure.to_string(),
            }),
            Replayed::Unreadable(why) => {
                not_replayed.push(NotReplayed { at, cause: "unreadable".to_owned(), fix: None, reason: why.clone() });
            }
            Replayed::Indexed | Replayed::AlreadyThere => {}
        }
    }
    let stop = replayed.iter().find_map(Replayed::cluster_level).map(|failure| {
        format!(
            "an earlier object found the cluster unable to take documents ({failure}): replay again once it is back"
        )
    });
    BackupReport { source: source.to_owned(), documents: lines.len(), outcomes, not_replayed, rejected, stop }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_event_is_told_from_a_kinesis_event_by_its_first_key() {
        let replay = br#" {"kinesis_es_indexer_replay":{"source":"s3://b/k","backup":[{"line":1,"raw":"{}"}]}}"#;
        let request = replay_request(replay).expect("a replay event").expect("readable");
        assert_eq!((request.source.as_str(), request.backup.len()), ("s3://b/k", 1));
        assert!(replay_request(br#"{"Records":[]}"#).is_none());
        assert!(replay_request(br#"{"kinesis_es_indexer_replay":{"source":1}}"#).expect("one").is_err());
    }

    fn line(raw: &str, code: &str, message: &str) -> BackedUp {
        BackedUp {
            line: 1,
            raw: raw.into(),
            error_code: code.into(),
            error_message: message.into(),
            es_document_id: Some("firehose-id".into()),
        }
    }

    #[test]
    fn a_line_becomes_the_document_at_its_target_without_the_target() {
        let raw = r#"{"es_target":{"_id":"t:s:1:0","_index":"logs-2026.11.20"},"message":"a"}"#;
        let document = document_of(&line(raw, "429", ""), 3, "es_target").unwrap();
        assert_eq!(
            (document.record, document.id.as_deref(), &*document.index),
            (3, Some("t:s:1:0"), "logs-2026.11.20")
        );
        assert_eq!(document.source, br#"{"message":"a"}"#);
        let without_id = r#"{"es_target":{"_index":"logs"},"message":"a"}"#;
        let document = document_of(&line(without_id, "429", ""), 0, "es_target").unwrap();
        assert_eq!(document.id.as_deref(), Some("firehose-id"), "Firehose's id when the target has none");
        for bad in [r#"{"message":"a"}"#, r#"{"es_target":{"_id":"x"},"m":1}"#, r#"{"es_target":{"_index":"l"},"m":"#] {
            assert!(document_of(&line(bad, "429", ""), 0, "es_target").is_err(), "{bad}");
        }
    }

    #[test]
    fn what_firehose_entry_parks_is_taken_back_as_it_was() {
        let source = br#"{"message":"a","nested":{"x":[1,2]}}"#.to_vec();
        let document = Document { record: 0, id: Some("t:s:1:0".into()), index: Arc::from("logs-1"), source };
        let entry = crate::firehose::entry(0, &document, "es_target");
        let raw = String::from_utf8(entry.data).unwrap();
        let back = document_of(&line(raw.trim_end_matches('\n'), "429", ""), 0, "es_target").unwrap();
        assert_eq!(back, document);
    }
}
