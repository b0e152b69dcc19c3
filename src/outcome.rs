//! Where a record (or one of its documents) ends: the places docs/faults.md names, and their names in log lines.

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
