//! Pure policy: document outcomes → one outcome per record, and what Firehose's answer changes.
//!
//! Lambda checkpoints a shard at the lowest sequence number reported back and redelivers everything after it, so a
//! record at or after that point that is not already written is left to the redelivery: it is not also parked in
//! Firehose, and its rejection is logged on the delivery that settles it, not twice.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::bulk::DocOutcome;
use crate::cause::{Cause, Failure, Route};
use crate::record::{Batch, Decoded};

/// Where a record ended, as FAULTS.md names the places.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Indexed,
    AlreadyThere,
    ToFirehose,
    Rejected,
    Skipped,
    BackToKinesis,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Indexed,
        Outcome::AlreadyThere,
        Outcome::ToFirehose,
        Outcome::Rejected,
        Outcome::Skipped,
        Outcome::BackToKinesis,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Indexed => "indexed",
            Outcome::AlreadyThere => "already_there",
            Outcome::ToFirehose => "to_firehose",
            Outcome::Rejected => "rejected",
            Outcome::Skipped => "skipped",
            Outcome::BackToKinesis => "back_to_kinesis",
        }
    }
}

/// A record's outcome and, for every outcome but indexed and already there, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFate {
    pub outcome: Outcome,
    pub failure: Option<Failure>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Settled(RecordFate),
    /// Some documents came back "retry later" (this is why); they wait for Firehose.
    AwaitingFirehose(Failure),
}

/// The routing of one batch between Elasticsearch's answer and the response to Lambda.
#[derive(Debug)]
pub struct Routing {
    stages: Vec<Stage>,
}

fn settled(outcome: Outcome, failure: Option<Failure>) -> Stage {
    Stage::Settled(RecordFate { outcome, failure })
}

impl Routing {
    /// Every record's outcome from its documents' outcomes (`doc_outcomes[i]` is `batch.documents[i]`'s).
    pub fn after_elasticsearch(batch: &Batch, doc_outcomes: &[DocOutcome], firehose_enabled: bool) -> Routing {
        assert_eq!(batch.documents.len(), doc_outcomes.len(), "one outcome per document");
        let stages = batch
            .decoded
            .iter()
            .map(|decoded| match decoded {
                Decoded::Skipped(why) => {
                    settled(Outcome::Skipped, Some(Failure::ours(Cause::NothingToIndex, "skipped", why.clone())))
                }
                Decoded::Rejected { rejection, .. } => settled(
                    Outcome::Rejected,
                    Some(Failure::ours(Cause::Document, rejection.kind(), rejection.to_string())),
                ),
                Decoded::Documents { range, rejected_parts } => {
                    // A rejected part counts as a rejected document of the record.
                    let part_rejection = rejected_parts.first().map(|part| {
                        let reason = format!("{}: {}", part.part, part.rejection);
                        DocOutcome::Failed(Failure::ours(Cause::Document, part.rejection.kind(), reason))
                    });
                    let least = doc_outcomes[range.clone()]
                        .iter()
                        .chain(part_rejection.as_ref())
                        .min_by_key(|o| o.rank())
                        .expect("a record with documents or rejected parts");
                    let failure = match least {
                        DocOutcome::Indexed => return settled(Outcome::Indexed, None),
                        DocOutcome::AlreadyThere => return settled(Outcome::AlreadyThere, None),
                        DocOutcome::Failed(failure) => failure,
                    };
                    match failure.cause.route() {
                        Route::Rejected | Route::Skipped => settled(Outcome::Rejected, Some(failure.clone())),
                        Route::BackToKinesis => settled(Outcome::BackToKinesis, Some(failure.clone())),
                        Route::RetryLater if firehose_enabled => Stage::AwaitingFirehose(failure.clone()),
                        Route::RetryLater => settled(
                            Outcome::BackToKinesis,
                            Some(Failure {
                                reason: format!(
                                    "{} (FIREHOSE_STREAM_NAME is not set, so Kinesis redelivers it)",
                                    failure.reason
                                ),
                                ..failure.clone()
                            }),
                        ),
                    }
                }
            })
            .collect();
        let mut routing = Routing { stages };
        routing.leave_to_redelivery(batch);
        routing
    }

    /// The documents to park in Firehose: the "retry later" documents of records waiting for it.
    pub fn firehose_documents(&self, batch: &Batch, doc_outcomes: &[DocOutcome]) -> Vec<usize> {
        let mut documents = Vec::new();
        for (record, stage) in self.stages.iter().enumerate() {
            if let (Stage::AwaitingFirehose(_), Decoded::Documents { range, .. }) = (stage, &batch.decoded[record]) {
                documents.extend(range.clone().filter(|&doc| doc_outcomes[doc].routes(Route::RetryLater)));
            }
        }
        documents
    }

    /// Settles the records that waited for Firehose: to Firehose when every one of their documents was accepted,
    /// else back to Kinesis with Firehose's reason. `refused` maps a document to why Firehose did not take it.
    pub fn after_firehose(&mut self, batch: &Batch, refused: &HashMap<usize, Failure>) {
        for (record, stage) in self.stages.iter_mut().enumerate() {
            let Stage::AwaitingFirehose(retry_later) = stage else { continue };
            let Decoded::Documents { range, .. } = &batch.decoded[record] else {
                unreachable!("only records with documents wait")
            };
            *stage = match range.clone().find_map(|doc| refused.get(&doc)) {
                None => settled(Outcome::ToFirehose, Some(retry_later.clone())),
                Some(refusal) => settled(Outcome::BackToKinesis, Some(refusal.clone())),
            };
        }
        self.leave_to_redelivery(batch);
    }

    /// The final fate of every record, in batch order. A record still waiting (Firehose never asked) goes back.
    pub fn finish(self) -> Vec<RecordFate> {
        self.stages
            .into_iter()
            .map(|stage| match stage {
                Stage::Settled(fate) => fate,
                Stage::AwaitingFirehose(_) => RecordFate {
                    outcome: Outcome::BackToKinesis,
                    failure: Some(Failure::ours(
                        Cause::FirehoseRefused,
                        "firehose_not_called",
                        "the Firehose step did not run",
                    )),
                },
            })
            .collect()
    }

    /// Records at or after the lowest sequence number going back to Kinesis in their shard will be redelivered:
    /// unless already written (or skipped), they are left to that redelivery.
    fn leave_to_redelivery(&mut self, batch: &Batch) {
        let mut lowest: HashMap<&str, &str> = HashMap::new();
        for (record, stage) in self.stages.iter().enumerate() {
            if let (Stage::Settled(RecordFate { outcome: Outcome::BackToKinesis, .. }), Some(sequence)) =
                (stage, batch.records[record].sequence_number.as_deref())
            {
                let entry = lowest.entry(&batch.records[record].shard_id).or_insert(sequence);
                if compare_sequence_numbers(sequence, entry) == Ordering::Less {
                    *entry = sequence;
                }
            }
        }
        for (record, stage) in self.stages.iter_mut().enumerate() {
            let provenance = &batch.records[record];
            let (Some(sequence), Some(first_back)) =
                (provenance.sequence_number.as_deref(), lowest.get(provenance.shard_id.as_str()))
            else {
                continue;
            };
            let pending = matches!(
                stage,
                Stage::AwaitingFirehose(_) | Stage::Settled(RecordFate { outcome: Outcome::Rejected, .. })
            );
            if pending && compare_sequence_numbers(sequence, first_back) != Ordering::Less {
                *stage = settled(
                    Outcome::BackToKinesis,
                    Some(Failure::ours(
                        Cause::RedeliveredAnyway,
                        "redelivered_anyway",
                        format!(
                            "Lambda redelivers {} from sequence number {first_back} on; this record is settled then",
                            provenance.shard_id
                        ),
                    )),
                );
            }
        }
    }
}

/// Kinesis sequence numbers are decimal strings of up to 128 bits: compare them as numbers.
pub fn compare_sequence_numbers(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Document, Provenance, Rejection};
    use std::sync::Arc;

    fn failed(cause: Cause, status: u16, error_type: &str) -> DocOutcome {
        DocOutcome::Failed(Failure { cause, status: Some(status), error_type: error_type.into(), reason: "r".into() })
    }

    fn retry_later() -> DocOutcome {
        failed(Cause::ClusterBusy, 429, "es_rejected_execution_exception")
    }

    fn rejected() -> DocOutcome {
        failed(Cause::Document, 400, "document_parsing_exception")
    }

    /// A batch from (sequence number, documents per record; 0 means a rejected record).
    fn batch(records: &[(&str, usize)]) -> Batch {
        let mut batch = Batch::default();
        for (record, (sequence, docs)) in records.iter().enumerate() {
            batch
                .records
                .push(Provenance { shard_id: "shardId-0".into(), sequence_number: Some(sequence.to_string()) });
            if *docs == 0 {
                batch.decoded.push(Decoded::Rejected { rejection: Rejection::Empty, excerpt: String::new() });
                continue;
            }
            let first = batch.documents.len();
            for position in 0..*docs {
                batch.documents.push(Document {
                    record,
                    id: Some(format!("{sequence}:{position}")),
                    index: Arc::from("i"),
                    source: b"{}".to_vec(),
                });
            }
            batch.decoded.push(Decoded::Documents { range: first..batch.documents.len(), rejected_parts: Vec::new() });
        }
        batch
    }

    fn outcomes(fates: &[RecordFate]) -> Vec<Outcome> {
        fates.iter().map(|f| f.outcome).collect()
    }

    #[test]
    fn a_record_takes_the_outcome_of_its_least_finished_document() {
        let batch = batch(&[("1", 3), ("2", 2), ("3", 2)]);
        let docs = vec![
            DocOutcome::Indexed,
            DocOutcome::AlreadyThere,
            DocOutcome::Indexed,
            DocOutcome::Indexed,
            rejected(),
            DocOutcome::Indexed,
            retry_later(),
        ];
        let mut routing = Routing::after_elasticsearch(&batch, &docs, true);
        assert_eq!(routing.firehose_documents(&batch, &docs), vec![6]);
        routing.after_firehose(&batch, &HashMap::new());
        assert_eq!(outcomes(&routing.finish()), vec![Outcome::AlreadyThere, Outcome::Rejected, Outcome::ToFirehose]);
    }

    #[test]
    fn records_after_the_first_one_back_to_kinesis_are_left_to_the_redelivery() {
        let batch = batch(&[("10", 1), ("11", 1), ("12", 1), ("13", 1), ("14", 0)]);
        let docs = vec![
            retry_later(),
            failed(Cause::Misconfigured(crate::cause::Fix::IndexMissing), 404, "index_not_found_exception"),
            retry_later(),
            rejected(),
        ];
        let routing = Routing::after_elasticsearch(&batch, &docs, true);
        assert_eq!(routing.firehose_documents(&batch, &docs), vec![0], "only the record before the failure is parked");
        let fates = routing.finish();
        assert_eq!(
            outcomes(&fates),
            vec![
                Outcome::BackToKinesis,
                Outcome::BackToKinesis,
                Outcome::BackToKinesis,
                Outcome::BackToKinesis,
                Outcome::BackToKinesis
            ]
        );
        assert_eq!(
            fates[3].failure.as_ref().unwrap().error_type,
            "redelivered_anyway",
            "its rejection is logged on the delivery that settles it"
        );
    }

    #[test]
    fn written_and_skipped_records_stay_so_after_a_failure() {
        let mut batch = batch(&[("1", 1), ("2", 1), ("3", 1)]);
        batch.decoded.push(Decoded::Skipped("control".into()));
        batch.records.push(Provenance { shard_id: "shardId-0".into(), sequence_number: Some("4".into()) });
        let docs = vec![failed(Cause::Unknown, 503, "http_503"), DocOutcome::Indexed, DocOutcome::AlreadyThere];
        let fates = Routing::after_elasticsearch(&batch, &docs, true).finish();
        assert_eq!(
            outcomes(&fates),
            vec![Outcome::BackToKinesis, Outcome::Indexed, Outcome::AlreadyThere, Outcome::Skipped]
        );
    }

    #[test]
    fn firehose_refusals_go_back_and_pull_later_rejections_with_them() {
        let batch = batch(&[("1", 1), ("2", 2), ("3", 1), ("4", 1)]);
        let docs = vec![retry_later(), retry_later(), retry_later(), rejected(), retry_later()];
        let mut routing = Routing::after_elasticsearch(&batch, &docs, true);
        assert_eq!(routing.firehose_documents(&batch, &docs), vec![0, 1, 2, 4]);
        let slow_down =
            Failure::ours(Cause::FirehoseRefused, "firehose_refused", "ServiceUnavailableException: Slow down.");
        routing.after_firehose(&batch, &HashMap::from([(2, slow_down)]));
        let fates = routing.finish();
        assert_eq!(
            outcomes(&fates),
            vec![Outcome::ToFirehose, Outcome::BackToKinesis, Outcome::BackToKinesis, Outcome::ToFirehose]
        );
        assert_eq!(fates[1].failure.as_ref().unwrap().reason, "ServiceUnavailableException: Slow down.");
    }

    #[test]
    fn without_firehose_retry_later_goes_back_to_kinesis() {
        let batch = batch(&[("1", 1)]);
        let fates = Routing::after_elasticsearch(&batch, &[retry_later()], false).finish();
        assert_eq!(outcomes(&fates), vec![Outcome::BackToKinesis]);
        assert!(fates[0].failure.as_ref().unwrap().reason.contains("FIREHOSE_STREAM_NAME"));
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert_eq!(compare_sequence_numbers("9", "10"), Ordering::Less);
        assert_eq!(
            compare_sequence_numbers(
                "49590338271490256608559692538361571095921575989136588898",
                "49590338271490256608559692538361571095921575989136588899"
            ),
            Ordering::Less
        );
        assert_eq!(compare_sequence_numbers("010", "10"), Ordering::Equal);
    }
}
