//! What `make replay` says: per object read, its result (a batch's, a backup object's, or why it was not tried), and
//! the report, one line per object and the totals, that docs/operations.md explains line by line.

use std::fmt::Write;

use crate::Outcome;
use crate::handler::Report;
use crate::replay::backup::{BackupReport, NotReplayed, RejectedAgain};

/// An object of the bucket that holds something to replay: where it is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// `s3://bucket/key`.
    pub source: String,
    pub key: String,
    pub origin: Origin,
    /// How many records (a batch) or documents (a backup object).
    pub count: usize,
    /// A backup object's lines that hold no document: their number and why.
    pub unreadable: Vec<(usize, String)>,
}

/// Where an object's batch or documents came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A Lambda on-failure record's payload.
    Payload,
    /// The stream, for an on-failure record without a payload.
    Stream,
    /// Firehose's backup format: Firehose's own objects and the dead letter's.
    Backup,
}

impl Origin {
    fn name(self) -> &'static str {
        match self {
            Origin::Payload => "the payload",
            Origin::Stream => "the stream",
            Origin::Backup => "Firehose's backup",
        }
    }

    fn unit(self) -> Unit {
        match self {
            Origin::Payload | Origin::Stream => Unit::Records,
            Origin::Backup => Unit::Documents,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Records,
    Documents,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Records => "records",
            Unit::Documents => "documents",
        }
    }
}

/// What became of one listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    Batch(BatchResult),
    Backup(BackupReport),
    /// The batch or object could not be run (not an event the handler reads, an invocation that failed).
    Failed(String),
    /// Not tried: an earlier batch or object found the cluster unable to take it; why.
    NotTried(String),
}

/// What one batch's replay did: counts per outcome, in the order they are printed, and each record not replayed
/// with its cause. `stop`: why later batches should wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchResult {
    pub records: usize,
    /// Known when the batch ran here (through the handler), not through the function.
    pub documents: Option<usize>,
    pub outcomes: Vec<(String, usize)>,
    pub not_replayed: Vec<NotReplayed>,
    pub stop: Option<String>,
}

impl BatchResult {
    /// The result of a batch run through the handler. When a record went back for a cause of the cluster's (away,
    /// refusing access, a block), not its own, the batches after it wait.
    pub fn of(report: &Report) -> BatchResult {
        let mut outcomes: Vec<(String, usize)> =
            Outcome::ALL.iter().map(|&o| (o.name().to_owned(), report.summary.count(o))).collect();
        outcomes.sort();
        let not_replayed = report
            .records
            .iter()
            .filter(|r| r.fate.outcome == Outcome::BackToKinesis)
            .map(|r| {
                let failure = r.fate.failure.as_ref();
                let provenance = &r.record.provenance;
                NotReplayed {
                    at: format!("{}:{}", provenance.shard_id, provenance.sequence_number.as_deref().unwrap_or("?")),
                    cause: failure.map_or("back_to_kinesis", |f| f.cause.name()).to_owned(),
                    fix: failure.and_then(|f| f.cause.fix()).map(|fix| fix.hint().to_owned()),
                    reason: failure.map(ToString::to_string).unwrap_or_default(),
                }
            })
            .collect();
        let stop = report.records.iter().filter_map(|r| r.fate.failure.as_ref()).find(|f| f.cause.paces().is_some());
        BatchResult {
            records: report.records.len(),
            documents: Some(report.summary.documents),
            outcomes,
            not_replayed,
            stop: stop.map(|failure| {
                format!(
                    "an earlier batch found the cluster unable to take records ({failure}): replay again once it is \
                     back"
                )
            }),
        }
    }
}

impl Replay {
    /// Why the batches and objects after this one should wait, if they should.
    pub fn stop(&self) -> Option<&str> {
        match self {
            Replay::Batch(result) => result.stop.as_deref(),
            Replay::Backup(report) => report.stop.as_deref(),
            Replay::Failed(_) | Replay::NotTried(_) => None,
        }
    }
}

/// The word a line of the report starts with (docs/operations.md explains each; tests/runbook_test.py checks it).
#[derive(Debug, Clone, Copy)]
enum Status {
    WouldReplay,
    Replayed,
    Partly,
    NotReplayed,
    Cannot,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::WouldReplay => "would replay",
            Status::Replayed => "replayed",
            Status::Partly => "PARTLY",
            Status::NotReplayed => "NOT REPLAYED",
            Status::Cannot => "CANNOT",
        }
    }
}

/// The report's text, and the positions in `listed` of the objects replayed in full. `results` holds one result
/// per listed object, or none at all for a dry run; `cannot`: the objects that cannot be replayed and why.
pub fn report(
    listed: &[Listed],
    results: &[Replay],
    cannot: &[(String, String)],
    dry_run: bool,
) -> (String, Vec<usize>) {
    let mut out = String::new();
    let mut replayed = Vec::new();
    let mut totals = Totals::default();
    for (position, object) in listed.iter().enumerate() {
        let result = match results.get(position) {
            Some(result) if !dry_run => result,
            _ => {
                let (unit, would) = (object.origin.unit(), status_of(Status::WouldReplay, &object.source));
                let _ = writeln!(out, "{would}: {} {} (from {})", object.count, unit.name(), object.origin.name());
                continue;
            }
        };
        if write_result(&mut out, object, result, &mut totals) {
            replayed.push(position);
        }
    }
    for (source, why) in cannot {
        let _ = writeln!(out, "{:<14}{source}: {why}", Status::Cannot.word());
    }
    if !dry_run {
        let [records, documents] = totals.done;
        let [records_not, documents_not] = totals.not_done;
        let rejected = totals.rejected;
        let _ = writeln!(
            out,
            "\n{} of {} objects replayed in full; {records} records and {documents} documents replayed, {records_not} \
             records and {documents_not} documents not; {rejected} documents refused for their own fault (listed \
             above, their objects kept); {} objects cannot be replayed. Objects not replayed in full are kept; run \
             again once the cause is fixed (replaying twice writes nothing twice).",
            replayed.len(),
            listed.len() + cannot.len(),
            cannot.len()
        );
    }
    (out, replayed)
}

/// Records and documents replayed, and not (indexed by `Unit`), and documents refused for their own fault.
#[derive(Debug, Default)]
struct Totals {
    done: [usize; 2],
    not_done: [usize; 2],
    rejected: usize,
}

/// The start of an object's line: the status word, padded, then the object's `source`.
fn status_of(status: Status, source: &str) -> String {
    format!("{:<14}{source}", status.word())
}

/// Writes the lines of an object that was run (or tried), counting it into `totals`; true when it was replayed in
/// full.
fn write_result(out: &mut String, object: &Listed, result: &Replay, totals: &mut Totals) -> bool {
    let (source, unit) = (&object.source, object.origin.unit());
    let slot = unit as usize;
    let status = |status: Status| status_of(status, source);
    let (summary, counted, not_replayed, rejected_here) = match result {
        Replay::Failed(why) | Replay::NotTried(why) => {
            let line = status(Status::NotReplayed);
            let _ = writeln!(out, "{line}: {} {}: {why}", object.count, unit.name());
            totals.not_done[slot] += object.count + object.unreadable.len();
            return false;
        }
        Replay::Batch(batch) => {
            let mut summary = format!("{} records ({})", batch.records, outcome_counts(&batch.outcomes));
            if let Some(documents) = batch.documents {
                let _ = write!(summary, ", {documents} documents");
            }
            (summary, batch.records, &batch.not_replayed, &[][..])
        }
        Replay::Backup(backup) => {
            let outcomes: Vec<(String, usize)> = backup.outcomes.clone().into_iter().collect();
            let summary = format!("{} documents ({})", backup.documents, outcome_counts(&outcomes));
            (summary, backup.documents, &backup.not_replayed, &backup.rejected[..])
        }
    };
    totals.not_done[slot] += not_replayed.len() + object.unreadable.len();
    totals.rejected += rejected_here.len();
    totals.done[slot] += counted.saturating_sub(not_replayed.len() + rejected_here.len());
    let origin = object.origin.name();
    let in_full = not_replayed.is_empty() && object.unreadable.is_empty() && rejected_here.is_empty();
    if !in_full {
        let _ = writeln!(out, "{}: {summary} (from {origin})", status(Status::Partly));
        write_not_replayed(out, not_replayed, &object.unreadable);
    } else {
        let _ = writeln!(out, "{}: {summary} (from {origin})", status(Status::Replayed));
    }
    write_rejected(out, rejected_here);
    in_full
}

/// One line for each record or document not replayed, then for each line of a backup object that held none.
fn write_not_replayed(out: &mut String, not_replayed: &[NotReplayed], unreadable: &[(usize, String)]) {
    for entry in not_replayed {
        let fix = entry.fix.as_deref().filter(|fix| !fix.is_empty()).map(|fix| format!(" Fix: {fix}"));
        let (at, cause, reason) = (&entry.at, &entry.cause, &entry.reason);
        let _ = writeln!(out, "    not replayed {at}: {cause}: {reason}.{}", fix.unwrap_or_default());
    }
    for (number, why) in unreadable {
        let _ = writeln!(out, "    not replayed line {number}: {why}");
    }
}

/// One line for each document the cluster refused again for its own fault.
fn write_rejected(out: &mut String, rejected: &[RejectedAgain]) {
    for entry in rejected {
        let _ = writeln!(
            out,
            "    rejected {}: {} (refused for its own fault: the object is kept for a replay once the mapping or \
             the document is fixed; the document begins {})",
            entry.at,
            entry.reason,
            quoted(&entry.excerpt)
        );
    }
}

/// `3 indexed, 1 already_there`: the outcomes that happened.
fn outcome_counts(outcomes: &[(String, usize)]) -> String {
    let counted: Vec<String> = outcomes.iter().filter(|(_, n)| *n > 0).map(|(name, n)| format!("{n} {name}")).collect();
    counted.join(", ")
}

/// A text quoted as `make replay` has always quoted a document's beginning and an ARN (Python's `repr`): in single
/// quotes, or double ones when it holds a single quote and no double; backslashes and control characters escaped.
pub fn quoted(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::replay::backup::RejectedAgain;

    fn listed(key: &str, origin: Origin, count: usize) -> Listed {
        Listed { source: format!("s3://b/{key}"), key: key.into(), origin, count, unreadable: Vec::new() }
    }

    fn batch(records: usize, sent_back: &[&str]) -> BatchResult {
        BatchResult {
            records,
            documents: Some(records),
            outcomes: vec![("already_there".into(), 0), ("indexed".into(), records - sent_back.len())],
            not_replayed: sent_back
                .iter()
                .map(|at| NotReplayed {
                    at: (*at).into(),
                    cause: "cluster_unreachable".into(),
                    fix: None,
                    reason: "connect: refused".into(),
                })
                .collect(),
            stop: None,
        }
    }

    #[test]
    fn a_dry_run_says_what_it_would_replay_and_no_totals() {
        let objects = [listed("a", Origin::Payload, 2), listed("f", Origin::Backup, 3)];
        let cannot = [("s3://b/c".to_owned(), "not JSON: x".to_owned())];
        let (text, replayed) = report(&objects, &[], &cannot, true);
        assert_eq!(
            text,
            "would replay  s3://b/a: 2 records (from the payload)\n\
             would replay  s3://b/f: 3 documents (from Firehose's backup)\n\
             CANNOT        s3://b/c: not JSON: x\n"
        );
        assert!(replayed.is_empty());
    }

    #[test]
    fn each_object_has_its_line_and_the_totals_add_up() {
        let mut backup_object = listed("f", Origin::Backup, 2);
        backup_object.unreadable.push((3, "not a Firehose backup line: no rawData".into()));
        let objects = [
            listed("a", Origin::Stream, 2),
            listed("b", Origin::Payload, 2),
            backup_object,
            listed("g", Origin::Backup, 4),
        ];
        let backup = BackupReport {
            source: "s3://b/f".into(),
            documents: 2,
            outcomes: BTreeMap::from([("indexed".into(), 1), ("rejected".into(), 1)]),
            not_replayed: Vec::new(),
            rejected: vec![RejectedAgain {
                at: "line 2".into(),
                reason: "400 document_parsing_exception: failed to parse field [amount]".into(),
                excerpt: r#"{"amount":"twelve"}"#.into(),
            }],
            stop: None,
        };
        let results = [
            Replay::Batch(batch(2, &[])),
            Replay::Batch(batch(2, &["shardId-0:5"])),
            Replay::Backup(backup),
            Replay::NotTried("an earlier batch found the cluster unable to take records".into()),
        ];
        let (text, replayed) = report(&objects, &results, &[], false);
        assert_eq!(replayed, [0]);
        let expected = "replayed      s3://b/a: 2 records (2 indexed), 2 documents (from the stream)\n\
             PARTLY        s3://b/b: 2 records (1 indexed), 2 documents (from the payload)\n\
             \x20   not replayed shardId-0:5: cluster_unreachable: connect: refused.\n\
             PARTLY        s3://b/f: 2 documents (1 indexed, 1 rejected) (from Firehose's backup)\n\
             \x20   not replayed line 3: not a Firehose backup line: no rawData\n\
             \x20   rejected line 2: 400 document_parsing_exception: failed to parse field [amount] (refused for its \
             own fault: the object is kept for a replay once the mapping or the document is fixed; the document \
             begins '{\"amount\":\"twelve\"}')\n\
             NOT REPLAYED  s3://b/g: 4 documents: an earlier batch found the cluster unable to take records\n\
             \n1 of 4 objects replayed in full; 3 records and 1 documents replayed, 1 records and 5 documents not; 1 \
             documents refused for their own fault (listed above, their objects kept); 0 objects cannot be replayed. \
             Objects not replayed in full are kept; run again once the cause is fixed (replaying twice writes \
             nothing twice).\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn a_fix_is_appended_to_its_line() {
        let mut result = batch(1, &["s:1"]);
        result.not_replayed[0].fix = Some("grant the role es:ESHttpPost".into());
        let (text, _) = report(&[listed("a", Origin::Payload, 1)], &[Replay::Batch(result)], &[], false);
        assert!(
            text.contains("not replayed s:1: cluster_unreachable: connect: refused. Fix: grant the role"),
            "{text}"
        );
    }

    #[test]
    fn quoting_reads_as_it_always_has() {
        assert_eq!(quoted(r#"{"a":"b"}"#), r#"'{"a":"b"}'"#);
        assert_eq!(quoted("it's"), r#""it's""#);
        assert_eq!(quoted(r#"it's "x""#), r#"'it\'s "x"'"#);
        assert_eq!(quoted("a\\b\n\u{1}é"), r"'a\\b\n\x01é'");
    }
}
