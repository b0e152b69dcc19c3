//! Where a record (or one of its documents) ends: the places docs/faults.md names, their names in log lines, and the
//! fate of one document (`DocOutcome`) from which its record's place is taken.

use super::{Cause, Failure};
use crate::record::Document;

/// Where a record ended, as docs/faults.md names the places. A failed document's cause says where it is headed
/// (`Cause::route`); a record takes the place of its least finished document.
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

/// A document after the cluster's answer (or the decision not to send it): its source and `_id` are kept only
/// where routing still needs them (`DocOutcome::needs_source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedDocument {
    pub document: Document,
    pub outcome: DocOutcome,
}

/// The fate of one document, as decided from Elasticsearch's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocOutcome {
    /// 200/201: written.
    Indexed,
    /// 409 on `create`: a redelivery of a document that is already there.
    AlreadyThere,
    /// Not written; the failure's cause decides where it goes.
    Failed(Failure),
}

impl DocOutcome {
    /// Lower is less finished; a record takes the outcome of its least finished document.
    pub fn rank(&self) -> u8 {
        match self {
            DocOutcome::Failed(failure) => match failure.cause.route() {
                Outcome::BackToKinesis => 0,
                Outcome::ToFirehose => 1,
                Outcome::Rejected | Outcome::Skipped | Outcome::Indexed | Outcome::AlreadyThere => 2,
            },
            DocOutcome::AlreadyThere => 3,
            DocOutcome::Indexed => 4,
        }
    }

    /// The failure, when the document was not written.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            DocOutcome::Failed(failure) => Some(failure),
            DocOutcome::Indexed | DocOutcome::AlreadyThere => None,
        }
    }

    /// Whether the document failed for this cause.
    pub fn caused_by(&self, cause: Cause) -> bool {
        self.failure().is_some_and(|failure| failure.cause == cause)
    }

    /// Whether the document failed for a cause that routes this way.
    pub fn routes(&self, route: Outcome) -> bool {
        self.failure().is_some_and(|failure| failure.cause.route() == route)
    }

    /// Whether routing still needs the document's source and `_id` after this outcome: to park it in Firehose
    /// ("retry later"), or to name and quote it in the log line of a document the cluster rejected. Every other
    /// document's source and `_id` are released once its chunk is answered.
    pub fn needs_source(&self) -> bool {
        self.failure()
            .is_some_and(|failure| failure.cause == Cause::Document || failure.cause.route() == Outcome::ToFirehose)
    }
}
