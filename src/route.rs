//! Pure policy: from each document's outcome and Firehose's answer, one fate per record.
//!
//! A record takes the outcome of its least finished document. One whose least finished documents are "retry
//! later" is headed for Firehose: `plan` decides it once and says which documents to offer, and `settle` finishes
//! every record's fate with what Firehose answered.
//!
//! Lambda checkpoints a shard at the lowest sequence number reported back and redelivers everything after it, so a
//! record at or after that point that is not already written is left to the redelivery: it is not also parked in
//! Firehose, and its rejection is logged on the delivery that settles it, not twice.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::cause::{DocOutcome, IndexedDocument};
use crate::cause::{Failure, Outcome};
use crate::record::{Batch, Decoded, Provenance, Record};

/// A record's outcome and, for every outcome but indexed and already there, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFate {
    pub outcome: Outcome,
    pub failure: Option<Failure>,
}

fn fate(outcome: Outcome, failure: Option<Failure>) -> RecordFate {
    RecordFate { outcome, failure }
}

/// A record with its fate: what the batch holds once routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettledRecord {
    pub record: Record,
    pub fate: RecordFate,
}

/// What Firehose made of the documents `to_park` chose.
#[derive(Debug, Clone, Copy)]
pub enum FirehoseAnswer<'a> {
    /// No delivery stream is configured (`FIREHOSE_STREAM_NAME` is not set): "retry later" goes back to Kinesis.
    NotConfigured,
    /// The documents offered that Firehose did not take, by batch position, and why; it took every other one.
    Answered { refused: &'a HashMap<usize, Failure> },
}

/// The routing decided once from the documents' outcomes, before Firehose is asked: each record's fate as if
/// Firehose takes everything, and the documents to offer it. `settle` finishes it with Firehose's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    fates: Vec<RecordFate>,
    /// The "retry later" documents of the records headed for Firehose, in batch order.
    pub to_park: Vec<usize>,
}

/// Plans the batch's routing: "retry later" headed for Firehose when one is configured (else back to Kinesis).
pub fn plan(batch: &Batch<Record, IndexedDocument>, firehose_configured: bool) -> Plan {
    let fates = headed_for_firehose(batch, firehose_configured);
    let to_park = to_park(batch, &fates);
    Plan { fates, to_park }
}

/// The "retry later" documents of the records headed for Firehose, in batch order.
fn to_park(batch: &Batch<Record, IndexedDocument>, fates: &[RecordFate]) -> Vec<usize> {
    batch
        .records
        .iter()
        .zip(fates)
        .filter(|(_, fate)| fate.outcome == Outcome::ToFirehose)
        .flat_map(|(record, _)| record.documents())
        .filter(|&doc| batch.documents[doc].outcome.routes(Outcome::ToFirehose))
        .collect()
}

impl Plan {
    /// The outcome planned for the record at this position of the batch.
    pub fn outcome(&self, record: usize) -> Outcome {
        self.fates[record].outcome
    }

    /// Sends `records` back to Kinesis for `failure` before anything is parked (the dead letter did not keep their
    /// rejected documents): their documents are not offered to Firehose, and a record after one of them in its
    /// shard that is not yet written is left to the redelivery with them.
    pub fn send_back(&mut self, batch: &Batch<Record, IndexedDocument>, records: &[usize], failure: &Failure) {
        for &record in records {
            self.fates[record] = fate(Outcome::BackToKinesis, Some(failure.clone()));
        }
        leave_to_redelivery(&mut self.fates, &provenances(&batch.records), &[Outcome::ToFirehose, Outcome::Rejected]);
        self.to_park = to_park(batch, &self.fates);
    }
}

/// Every record with its fate: the plan, given what Firehose answered for the documents it offered.
pub fn settle(
    batch: Batch<Record, IndexedDocument>,
    plan: Plan,
    firehose: FirehoseAnswer,
) -> Batch<SettledRecord, IndexedDocument> {
    let fates = settled_fates(plan, &batch.records, firehose);
    let Batch { records, documents, measured } = batch;
    let records = records.into_iter().zip(fates).map(|(record, fate)| SettledRecord { record, fate }).collect();
    Batch { records, documents, measured }
}

/// One fate per record, in batch order (see `settle`).
fn settled_fates(plan: Plan, records: &[Record], firehose: FirehoseAnswer) -> Vec<RecordFate> {
    let mut fates = plan.fates;
    if let FirehoseAnswer::Answered { refused } = firehose {
        for (record, fate) in records.iter().zip(&mut fates) {
            if fate.outcome != Outcome::ToFirehose {
                continue;
            }
            // Every one of its documents offered must have been taken; one refusal sends the record back.
            if let Some(refusal) = record.documents().find_map(|doc| refused.get(&doc)) {
                *fate = RecordFate { outcome: Outcome::BackToKinesis, failure: Some(refusal.clone()) };
            }
        }
        // A record parked in Firehose stays there (it cannot be taken back); a rejected one after a record now
        // going back is left to the redelivery.
        leave_to_redelivery(&mut fates, &provenances(records), &[Outcome::Rejected]);
    }
    fates
}

fn provenances(records: &[Record]) -> Vec<&Provenance> {
    records.iter().map(|record| &record.provenance).collect()
}

/// Each record's fate from its documents' outcomes alone, "retry later" headed for Firehose when one is configured
/// (else back to Kinesis), and the records that Kinesis will redeliver anyway left to that redelivery.
fn headed_for_firehose(batch: &Batch<Record, IndexedDocument>, firehose_configured: bool) -> Vec<RecordFate> {
    let mut fates: Vec<RecordFate> = batch
        .records
        .iter()
        .map(|record| from_documents(record, &batch.documents[record.documents()], firehose_configured))
        .collect();
    leave_to_redelivery(&mut fates, &provenances(&batch.records), &[Outcome::ToFirehose, Outcome::Rejected]);
    fates
}

/// A record's fate from what decoding made of it and its documents' outcomes.
fn from_documents(record: &Record, documents: &[IndexedDocument], firehose_configured: bool) -> RecordFate {
    let rejected_parts = match &record.decoded {
        Decoded::Skipped(why) => {
            return fate(Outcome::Skipped, Some(Failure::nothing_to_index(why.clone())));
        }
        Decoded::Rejected { rejection, .. } => {
            return fate(Outcome::Rejected, Some(Failure::undecodable(rejection.kind(), rejection.to_string())));
        }
        Decoded::Documents { rejected_parts, .. } => rejected_parts,
    };
    // A rejected part counts as a rejected document of the record.
    let part_rejection = rejected_parts.first().map(|part| {
        let reason = format!("{}: {}", part.part, part.rejection);
        DocOutcome::Failed(Failure::undecodable(part.rejection.kind(), reason))
    });
    let least = documents
        .iter()
        .map(|document| &document.outcome)
        .chain(part_rejection.as_ref())
        .min_by_key(|outcome| outcome.rank())
        .expect("a record with documents or rejected parts");
    let failure = match least {
        DocOutcome::Indexed => return fate(Outcome::Indexed, None),
        DocOutcome::AlreadyThere => return fate(Outcome::AlreadyThere, None),
        DocOutcome::Failed(failure) => failure.clone(),
    };
    match failure.cause.route() {
        Outcome::ToFirehose if !firehose_configured => {
            let reason = format!("{} (FIREHOSE_STREAM_NAME is not set, so Kinesis redelivers it)", failure.reason);
            fate(Outcome::BackToKinesis, Some(Failure { reason, ..failure }))
        }
        outcome => fate(outcome, Some(failure)),
    }
}

/// Records at or after the lowest sequence number going back to Kinesis in their shard will be redelivered: those
/// whose outcome is one of `pulled` (not yet written) are left to that redelivery.
fn leave_to_redelivery(fates: &mut [RecordFate], provenances: &[&Provenance], pulled: &[Outcome]) {
    let mut lowest: HashMap<&str, &str> = HashMap::new();
    for (provenance, fate) in provenances.iter().zip(fates.iter()) {
        let Some(sequence) = provenance.sequence_number.as_deref() else { continue };
        if fate.outcome == Outcome::BackToKinesis {
            let entry = lowest.entry(&provenance.shard_id).or_insert(sequence);
            if compare_sequence_numbers(sequence, entry) == Ordering::Less {
                *entry = sequence;
            }
        }
    }
    for (provenance, fate) in provenances.iter().zip(fates.iter_mut()) {
        let (Some(sequence), Some(first_back)) =
            (provenance.sequence_number.as_deref(), lowest.get(provenance.shard_id.as_str()))
        else {
            continue;
        };
        if pulled.contains(&fate.outcome) && compare_sequence_numbers(sequence, first_back) != Ordering::Less {
            let reason = format!(
                "Lambda redelivers {} from sequence number {first_back} on; this record is settled then",
                provenance.shard_id
            );
            *fate = RecordFate { outcome: Outcome::BackToKinesis, failure: Some(Failure::redelivered_anyway(reason)) };
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
    use crate::cause::Cause;
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

    fn provenance(sequence: &str) -> Provenance {
        Provenance { shard_id: "shardId-0".into(), sequence_number: Some(sequence.to_owned()) }
    }

    /// A batch from (sequence number, documents per record; 0 means a rejected record), its documents answered
    /// with `outcomes` in order.
    fn batch(records: &[(&str, usize)], outcomes: Vec<DocOutcome>) -> Batch<Record, IndexedDocument> {
        let mut batch = Batch::default();
        let mut outcomes = outcomes.into_iter();
        for (record, (sequence, docs)) in records.iter().enumerate() {
            if *docs == 0 {
                let decoded = Decoded::Rejected { rejection: Rejection::Empty, excerpt: String::new() };
                batch.records.push(Record { provenance: provenance(sequence), decoded });
                continue;
            }
            let first = batch.documents.len();
            for position in 0..*docs {
                let document = Document {
                    record,
                    id: Some(format!("{sequence}:{position}")),
                    index: Arc::from("i"),
                    source: b"{}".to_vec(),
                };
                let outcome = outcomes.next().expect("an outcome per document");
                batch.documents.push(IndexedDocument { document, outcome });
            }
            let decoded = Decoded::Documents { range: first..batch.documents.len(), rejected_parts: Vec::new() };
            batch.records.push(Record { provenance: provenance(sequence), decoded });
        }
        assert_eq!(outcomes.next(), None, "one outcome per document");
        batch
    }

    fn to_park(batch: &Batch<Record, IndexedDocument>) -> Vec<usize> {
        plan(batch, true).to_park
    }

    fn fates(batch: &Batch<Record, IndexedDocument>, firehose: FirehoseAnswer) -> Vec<RecordFate> {
        let configured = !matches!(firehose, FirehoseAnswer::NotConfigured);
        settled_fates(plan(batch, configured), &batch.records, firehose)
    }

    fn outcomes(fates: &[RecordFate]) -> Vec<Outcome> {
        fates.iter().map(|f| f.outcome).collect()
    }

    fn answered(refused: &HashMap<usize, Failure>) -> FirehoseAnswer<'_> {
        FirehoseAnswer::Answered { refused }
    }

    #[test]
    fn a_record_takes_the_outcome_of_its_least_finished_document() {
        let docs = vec![
            DocOutcome::Indexed,
            DocOutcome::AlreadyThere,
            DocOutcome::Indexed,
            DocOutcome::Indexed,
            rejected(),
            DocOutcome::Indexed,
            retry_later(),
        ];
        let batch = batch(&[("1", 3), ("2", 2), ("3", 2)], docs);
        assert_eq!(to_park(&batch), vec![6]);
        let fates = fates(&batch, answered(&HashMap::new()));
        assert_eq!(outcomes(&fates), vec![Outcome::AlreadyThere, Outcome::Rejected, Outcome::ToFirehose]);
        let plan = plan(&batch, true);
        let settled = settle(batch, plan, answered(&HashMap::new()));
        let settled: Vec<(&str, Outcome)> = settled
            .records
            .iter()
            .map(|r| (r.record.provenance.sequence_number.as_deref().unwrap(), r.fate.outcome))
            .collect();
        assert_eq!(settled, vec![("1", Outcome::AlreadyThere), ("2", Outcome::Rejected), ("3", Outcome::ToFirehose)]);
    }

    #[test]
    fn records_after_the_first_one_back_to_kinesis_are_left_to_the_redelivery() {
        let docs = vec![
            retry_later(),
            failed(Cause::Misconfigured(crate::cause::Fix::IndexMissing), 404, "index_not_found_exception"),
            retry_later(),
            rejected(),
        ];
        let batch = batch(&[("10", 1), ("11", 1), ("12", 1), ("13", 1), ("14", 0)], docs);
        assert_eq!(to_park(&batch), vec![0], "only the record before the failure is parked");
        let all_taken = fates(&batch, answered(&HashMap::new()));
        assert_eq!(
            outcomes(&all_taken),
            vec![
                Outcome::ToFirehose,
                Outcome::BackToKinesis,
                Outcome::BackToKinesis,
                Outcome::BackToKinesis,
                Outcome::BackToKinesis
            ]
        );
        assert_eq!(
            all_taken[3].failure.as_ref().unwrap().error_type,
            "redelivered_anyway",
            "its rejection is logged on the delivery that settles it"
        );
        let refused = HashMap::from([(0, Failure::ours(Cause::FirehoseRefused, "firehose_refused", "no"))]);
        assert_eq!(
            outcomes(&fates(&batch, answered(&refused))),
            vec![Outcome::BackToKinesis; 5],
            "refused by Firehose too, the first record goes back with the rest"
        );
    }

    /// Lambda resumes a shard from the LOWEST sequence number reported, compared as numbers ("9" before "100"):
    /// everything from there on is redelivered, so nothing after it may be parked or rejected now.
    #[test]
    fn the_redelivery_starts_at_the_lowest_sequence_number_going_back_compared_as_numbers() {
        let unknown = || failed(Cause::Unknown, 503, "http_503");
        let docs = vec![unknown(), retry_later(), rejected(), unknown(), retry_later()];
        let batch = batch(&[("9", 1), ("10", 1), ("11", 1), ("100", 1), ("101", 1)], docs);
        assert_eq!(to_park(&batch), Vec::<usize>::new(), "all of it after 9 is redelivered: nothing parked");
        let fates = fates(&batch, answered(&HashMap::new()));
        assert_eq!(outcomes(&fates), vec![Outcome::BackToKinesis; 5]);
        for fate in &fates[1..3] {
            assert_eq!(fate.failure.as_ref().unwrap().error_type, "redelivered_anyway");
            assert!(fate.failure.as_ref().unwrap().reason.contains("from sequence number 9 on"), "{fate:?}");
        }
    }

    #[test]
    fn written_and_skipped_records_stay_so_after_a_failure() {
        let docs = vec![failed(Cause::Unknown, 503, "http_503"), DocOutcome::Indexed, DocOutcome::AlreadyThere];
        let mut batch = batch(&[("1", 1), ("2", 1), ("3", 1)], docs);
        batch.records.push(Record { provenance: provenance("4"), decoded: Decoded::Skipped("control".into()) });
        let fates = fates(&batch, answered(&HashMap::new()));
        assert_eq!(
            outcomes(&fates),
            vec![Outcome::BackToKinesis, Outcome::Indexed, Outcome::AlreadyThere, Outcome::Skipped]
        );
    }

    #[test]
    fn a_record_the_dead_letter_could_not_keep_goes_back_before_anything_of_it_is_parked_and_pulls_later_ones() {
        let docs = vec![retry_later(), rejected(), retry_later(), rejected(), retry_later()];
        let batch = batch(&[("1", 1), ("2", 2), ("3", 1), ("4", 1)], docs);
        let mut plan = plan(&batch, true);
        assert_eq!((plan.outcome(1), plan.outcome(2)), (Outcome::ToFirehose, Outcome::Rejected));
        assert_eq!(plan.to_park, vec![0, 2, 4]);
        let not_kept = Failure::not_kept(false, "SlowDown");
        plan.send_back(&batch, &[1], &not_kept);
        assert_eq!(plan.to_park, vec![0], "nothing of a record going back, nor of those after it, is parked");
        let fates = settle(batch, plan, FirehoseAnswer::Answered { refused: &HashMap::new() }).records;
        let fates: Vec<RecordFate> = fates.into_iter().map(|settled| settled.fate).collect();
        assert_eq!(
            outcomes(&fates),
            vec![Outcome::ToFirehose, Outcome::BackToKinesis, Outcome::BackToKinesis, Outcome::BackToKinesis]
        );
        assert_eq!(fates[1].failure.as_ref().unwrap().cause, Cause::DeadLetterRefused);
        assert_eq!(fates[2].failure.as_ref().unwrap().error_type, "redelivered_anyway");
    }

    #[test]
    fn firehose_refusals_go_back_and_pull_later_rejections_with_them() {
        let docs = vec![retry_later(), retry_later(), retry_later(), rejected(), retry_later()];
        let batch = batch(&[("1", 1), ("2", 2), ("3", 1), ("4", 1)], docs);
        assert_eq!(to_park(&batch), vec![0, 1, 2, 4]);
        let slow_down =
            Failure::ours(Cause::FirehoseRefused, "firehose_refused", "ServiceUnavailableException: Slow down.");
        let fates = fates(&batch, answered(&HashMap::from([(2, slow_down)])));
        assert_eq!(
            outcomes(&fates),
            vec![Outcome::ToFirehose, Outcome::BackToKinesis, Outcome::BackToKinesis, Outcome::ToFirehose]
        );
        assert_eq!(fates[1].failure.as_ref().unwrap().reason, "ServiceUnavailableException: Slow down.");
        assert_eq!(fates[2].failure.as_ref().unwrap().error_type, "redelivered_anyway");
    }

    #[test]
    fn without_firehose_retry_later_goes_back_to_kinesis() {
        let batch = batch(&[("1", 1)], vec![retry_later()]);
        let fates = fates(&batch, FirehoseAnswer::NotConfigured);
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
