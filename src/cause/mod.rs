//! Why a document or record did not end written, decided here and nowhere else: from one typed input per source
//! (a bulk item's answer, a whole request's answer, a decoding rejection, Firehose's answer, the deadline, the
//! indexing stage holding), one `Cause`, whose methods say where it goes (`route`), whether it paces (`paces`) and
//! what to fix (`fix`). Every status code, `error.type` and AWS error code is read in this folder only:
//! `elasticsearch` (an error read once, a refusal's cause, what a status says), `bulk_reply` (a `_bulk` reply → one
//! outcome per document), `aws` (Firehose's and S3's codes), and `outcome` (where each document and record ends). A
//! new cause is a new variant, and the compiler finds every place that must handle it.

mod aws;
mod bulk_reply;
mod elasticsearch;
mod outcome;

use std::fmt;
use std::time::Duration;

pub use aws::{firehose_credentials_refused, firehose_stream_unusable, s3_bucket_unusable, without_credentials};
pub use bulk_reply::{ChunkDecision, Sent, decide};
pub use elasticsearch::{EsError, Said, access_policy_refused, no_such_api, refusal_cause, said};
pub use outcome::{DocOutcome, IndexedDocument, Outcome};

/// The cause of a failure, and so its route: rejected, parked in Firehose, or back to Kinesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    /// The document's own content: the cluster will never take it (a mapping or parsing error, a field limit, an
    /// immense term, too large for any request), or the record cannot be decoded. Rejected, logged, never retried.
    Document,
    /// The cluster asks for later: its write queue is full, a circuit breaker tripped, a shard is unavailable.
    /// Parked in Firehose, which retries for hours.
    ClusterBusy,
    /// Not sent: the cluster said "later" to a whole earlier request of the batch, or to most of its items. It is
    /// saturated, not unlucky: the rest of the batch stays in the stream (back to Kinesis, paced) while the instance
    /// sends fewer requests at once, rather than being shed into Firehose, which would deliver it into the same
    /// cluster later.
    ClusterSaturated,
    /// The cluster (or the delivery stream) refuses until someone acts; the `Fix` says what. Back to Kinesis, ERROR.
    Misconfigured(Fix),
    /// No usable answer (down, timed out, reset, unreadable, the wrong number of items): written or not is unknown.
    /// Back to Kinesis, where a redelivery answers 409 for what was written.
    Unknown,
    /// Not sent: the invocation's deadline was too close. Back to Kinesis.
    Deadline,
    /// Firehose did not take it this time (throttling, entry errors, too large for a Firehose record). Back to
    /// Kinesis.
    FirehoseRefused,
    /// Kinesis redelivers the record anyway, because an earlier record of its shard goes back: it is settled then.
    RedeliveredAnyway,
    /// S3 did not take the dead letter this time (throttled, unreachable, time ran out): the record holding a
    /// rejected document goes back to Kinesis rather than lose it.
    DeadLetterRefused,
    /// Nothing to index by design (a CloudWatch Logs control message).
    NothingToIndex,
}

impl Cause {
    /// Where a document or record of this cause is headed: rejected, parked in Firehose ("retry later"; back to
    /// Kinesis when no delivery stream is configured, which `route` decides), back to Kinesis, or skipped.
    pub fn route(self) -> Outcome {
        match self {
            Cause::Document => Outcome::Rejected,
            Cause::ClusterBusy => Outcome::ToFirehose,
            Cause::NothingToIndex => Outcome::Skipped,
            Cause::ClusterSaturated
            | Cause::Misconfigured(_)
            | Cause::Unknown
            | Cause::Deadline
            | Cause::FirehoseRefused
            | Cause::RedeliveredAnyway
            | Cause::DeadLetterRefused => Outcome::BackToKinesis,
        }
    }

    /// A short machine-readable name, the `cause` field of log lines.
    pub fn name(self) -> &'static str {
        match self {
            Cause::Document => "document",
            Cause::ClusterBusy => "cluster_busy",
            Cause::ClusterSaturated => "cluster_saturated",
            Cause::Misconfigured(fix) => fix.name(),
            Cause::Unknown => "outcome_unknown",
            Cause::Deadline => "deadline",
            Cause::FirehoseRefused => "firehose_refused",
            Cause::RedeliveredAnyway => "redelivered_anyway",
            Cause::DeadLetterRefused => "dead_letter_refused",
            Cause::NothingToIndex => "nothing_to_index",
        }
    }

    /// Whether a record that goes back to Kinesis for this cause makes the invocation wait before answering (Lambda
    /// redelivers at once), and why: the cluster asked for later (busy), or is away or refusing us (away). Not a
    /// document's fault, the deadline, Firehose's own trouble, or a redelivery that settles the record anyway.
    pub fn paces(self) -> Option<Pace> {
        match self {
            Cause::ClusterBusy | Cause::ClusterSaturated => Some(Pace::Busy),
            Cause::Unknown => Some(Pace::Away),
            Cause::Misconfigured(Fix::FirehoseStream | Fix::DeadLetterBucket) => None,
            Cause::Misconfigured(_) => Some(Pace::Away),
            Cause::Document
            | Cause::Deadline
            | Cause::FirehoseRefused
            | Cause::RedeliveredAnyway
            | Cause::DeadLetterRefused
            | Cause::NothingToIndex => None,
        }
    }

    /// What someone must do, when redelivery alone will not cure it.
    pub fn fix(self) -> Option<Fix> {
        match self {
            Cause::Misconfigured(fix) => Some(fix),
            _ => None,
        }
    }
}

/// Why an invocation paced: the cluster asked for later, or was away or refusing. When both, away: it is the
/// graver, and the one that needs someone's attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pace {
    Busy,
    Away,
}

impl Pace {
    pub fn name(self) -> &'static str {
        match self {
            Pace::Busy => "busy",
            Pace::Away => "away",
        }
    }
}

/// A refusal that lasts until someone changes the cluster, the indexer's settings or the delivery stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fix {
    /// `cluster.max_shards_per_node` is reached: a new (daily) index cannot be created.
    ShardLimit,
    /// The target is an alias without a write index.
    NoWriteIndex,
    /// The ingest pipeline named by `ES_PIPELINE` or an index's default pipeline does not exist.
    MissingPipeline,
    /// The cluster refuses the index name `ES_INDEX` made.
    InvalidIndexName,
    /// The collection refuses a client `_id` (OpenSearch Serverless TIMESERIES and VECTORSEARCH collections).
    DocumentIdRefused,
    /// The index does not exist and the cluster does not create it on write.
    IndexMissing,
    /// The index is closed.
    IndexClosed,
    /// Flood-stage disk or a read-only index (`cluster_block_exception`).
    ClusterBlock,
    /// 401/403: the credentials or the role may not write.
    Access,
    /// The delivery stream does not exist, or may not be written (permissions, its KMS key, its source).
    FirehoseStream,
    /// The dead letter's bucket does not exist, or may not be written (permissions, its KMS key, credentials).
    DeadLetterBucket,
    /// A refusal the indexer does not know as a document's own fault: kept in Kinesis rather than lost.
    Unrecognized,
}

impl Fix {
    pub fn name(self) -> &'static str {
        match self {
            Fix::ShardLimit => "shard_limit",
            Fix::NoWriteIndex => "no_write_index",
            Fix::MissingPipeline => "missing_pipeline",
            Fix::InvalidIndexName => "invalid_index_name",
            Fix::DocumentIdRefused => "document_id_refused",
            Fix::IndexMissing => "index_missing",
            Fix::IndexClosed => "index_closed",
            Fix::ClusterBlock => "cluster_block",
            Fix::Access => "access_denied",
            Fix::FirehoseStream => "firehose_misconfigured",
            Fix::DeadLetterBucket => "dead_letter_misconfigured",
            Fix::Unrecognized => "unrecognized_refusal",
        }
    }

    /// What to do about it, for the ERROR line.
    pub fn hint(self) -> &'static str {
        match self {
            Fix::ShardLimit => {
                "the cluster is at cluster.max_shards_per_node: delete or shrink old indices (an ILM or ISM policy), \
                 give indices fewer shards, or raise the limit"
            }
            Fix::NoWriteIndex => {
                "ES_INDEX names an alias without a write index: set is_write_index on one of its indices, or point \
                 ES_INDEX at an index or data stream"
            }
            Fix::MissingPipeline => {
                "create the ingest pipeline (ES_PIPELINE, or the index's index.default_pipeline), or stop naming it"
            }
            Fix::InvalidIndexName => "ES_INDEX makes an index name the cluster refuses: change ES_INDEX",
            Fix::DocumentIdRefused => {
                "this collection refuses a client _id (OpenSearch Serverless TIMESERIES or VECTORSEARCH): set \
                 ES_DOC_ID=none"
            }
            Fix::IndexMissing => "create the index, or let the cluster create it on write (action.auto_create_index)",
            Fix::IndexClosed => "open the index",
            Fix::ClusterBlock => {
                "free disk below the flood-stage watermark, then remove the index's read-only block \
                 (index.blocks.read_only_allow_delete or index.blocks.write)"
            }
            Fix::Access => {
                "let the function's credentials write the index (ES_AUTH, the domain's access policy, fine-grained \
                 access control's role mapping)"
            }
            Fix::FirehoseStream => {
                "create the delivery stream FIREHOSE_STREAM_NAME, or let the function's role write it \
                 (firehose:PutRecordBatch, its KMS key)"
            }
            Fix::DeadLetterBucket => {
                "create the bucket DEAD_LETTER_BUCKET, or let the function's role write it (s3:PutObject on \
                 DEAD_LETTER_PREFIX, its KMS key); or unset DEAD_LETTER_BUCKET to only log rejected documents"
            }
            Fix::Unrecognized => {
                "the cluster refused with an error the indexer does not know as a document's own fault, so the \
                 records stay in Kinesis: read the reason and fix the cause"
            }
        }
    }
}

/// Why something failed: the cause, and the words of whoever said so (Elasticsearch's status, `error.type` and
/// `error.reason`; Firehose's error; ours when there was no answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub cause: Cause,
    /// HTTP status of the item or the request; `None` when there was no answer.
    pub status: Option<u16>,
    pub error_type: String,
    pub reason: String,
}

impl Failure {
    /// A failure with no HTTP answer behind it.
    pub(crate) fn ours(cause: Cause, error_type: &str, reason: impl Into<String>) -> Failure {
        Failure { cause, status: None, error_type: error_type.to_owned(), reason: reason.into() }
    }

    /// An item or a whole request the cluster answered with an error status: its cause from the status and
    /// Elasticsearch's words (`of_bulk_item`, `of_bulk_request`).
    pub fn answered(cause: Cause, status: u16, error_type: String, reason: String) -> Failure {
        Failure { cause, status: Some(status), error_type, reason }
    }

    /// No usable answer: none in time, a lost connection, an answer that cannot be read or does not match the
    /// request. Whether the documents were written is unknown.
    pub fn no_answer(status: Option<u16>, error_type: &str, reason: impl Into<String>) -> Failure {
        Failure { cause: Cause::Unknown, status, error_type: error_type.to_owned(), reason: reason.into() }
    }

    /// A record, or a part of one, that cannot be decoded: its own fault, rejected.
    pub fn undecodable(kind: &str, reason: String) -> Failure {
        Failure::ours(Cause::Document, kind, reason)
    }

    /// A record that holds nothing to index by design.
    pub fn nothing_to_index(why: String) -> Failure {
        Failure::ours(Cause::NothingToIndex, "skipped", why)
    }

    /// Not sent: less than the invocation's `margin` was left before its deadline.
    pub fn deadline(margin: Duration) -> Failure {
        let reason = format!(
            "less than the invocation's margin ({} ms: DEADLINE_MARGIN_MS, at most a quarter of the time allowed) was \
             left before its deadline",
            margin.as_millis()
        );
        Failure::ours(Cause::Deadline, "deadline", reason)
    }

    /// Not sent: an earlier answer of the invocation held the indexing stage for `cause`.
    pub fn held(cause: Cause) -> Failure {
        match cause {
            Cause::ClusterSaturated => Failure::ours(
                cause,
                "not_sent_cluster_saturated",
                "the cluster said \"later\" to an earlier request of this batch (refused whole, still at the fewest \
                 requests in flight, or a probe); not sent, to spare it, and kept in the stream until it takes more",
            ),
            _ => Failure::ours(
                cause,
                "not_sent_cluster_unavailable",
                "an earlier request of this batch found the cluster unavailable or refusing us; not sent",
            ),
        }
    }

    /// Firehose did not take a document: its stream is unusable to us (missing, forbidden, its KMS key or source
    /// wrong: someone must fix it), or it refused, throttled, did not answer, or time ran out (a redelivery may
    /// park it).
    pub fn not_parked(stream_unusable: bool, reason: impl Into<String>) -> Failure {
        match stream_unusable {
            true => Failure::ours(Cause::Misconfigured(Fix::FirehoseStream), "firehose_misconfigured", reason),
            false => Failure::ours(Cause::FirehoseRefused, "firehose_refused", reason),
        }
    }

    /// S3 did not keep the dead letter: its bucket is unusable to us (missing, forbidden, no credentials: someone
    /// must fix it), or it refused, throttled, did not answer, or time ran out (a redelivery may keep it).
    pub fn not_kept(bucket_unusable: bool, reason: impl Into<String>) -> Failure {
        match bucket_unusable {
            true => Failure::ours(Cause::Misconfigured(Fix::DeadLetterBucket), "dead_letter_misconfigured", reason),
            false => Failure::ours(Cause::DeadLetterRefused, "dead_letter_refused", reason),
        }
    }

    /// A record left to Kinesis's redelivery because an earlier record of its shard goes back: settled then.
    pub fn redelivered_anyway(reason: String) -> Failure {
        Failure::ours(Cause::RedeliveredAnyway, "redelivered_anyway", reason)
    }

    /// A 413 to a request holding one document alone: no request the cluster accepts can carry it.
    pub fn too_large_alone(bytes: usize) -> Failure {
        let reason = format!(
            "the cluster refuses a request holding this document alone ({bytes} bytes; http.max_content_length, or a \
             proxy's limit)"
        );
        Failure::answered(Cause::Document, 413, "request_too_large".into(), reason)
    }

    /// The connection was lost while a document was being sent alone: unknown until the rest of the batch says
    /// whether the cluster was answering (`too_large_for_the_way`).
    pub fn lost_alone() -> Failure {
        Failure::no_answer(None, "connection_error", "the connection was lost while this document was being sent alone")
    }

    /// A document whose request alone lost its connection, larger than any body known to get through, while the
    /// cluster answered other requests: too large for the way to the cluster.
    pub fn too_large_for_the_way(bytes: usize, known_good: usize) -> Failure {
        let reason = format!(
            "a request holding this document alone ({bytes} bytes) lost its connection while being sent, as a proxy \
             or engine does with a body over its limit (nginx's client_max_body_size, Quickwit's \
             max_content_length), while the cluster answered other requests; the largest body known to get through \
             is {known_good} bytes"
        );
        Failure::ours(Cause::Document, "request_too_large", reason)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{status} {}: {}", self.error_type, self.reason),
            None => write!(f, "{}: {}", self.error_type, self.reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reasons as Elasticsearch 8 (`[line:column]` first), 7 and OpenSearch word them: their `DocumentParser`,
    /// `StrictDynamicMappingException` and `MappingLookup.checkFieldLimit`, and bulk answers quoted in their users'
    /// issues (monstache#604, otoroshi#2205, kubernetes-event-exporter#221).
    #[test]
    fn a_mapping_refusal_is_told_from_other_refusals_of_a_document_and_names_its_field() {
        let item = |error_type: &str, reason: &str| {
            Failure::answered(refusal_cause(400, error_type, reason), 400, error_type.into(), reason.into())
        };
        let refusals = [
            (
                "document_parsing_exception",
                "[1:30] failed to parse field [message] of type [text] in document with id 'a'. Preview of field's value: '{event=order}'",
                Some("message"),
            ),
            (
                "mapper_parsing_exception",
                "object mapping for [service] tried to parse field [service] as object, but found a concrete value",
                Some("service"),
            ),
            (
                "document_parsing_exception",
                "[1:9] object mapping for [kubernetes.labels.app] tried to parse field [app] as object, but found a concrete value",
                Some("kubernetes.labels.app"),
            ),
            (
                "strict_dynamic_mapping_exception",
                "[1:42] mapping set to strict, dynamic introduction of [last_name] within [_doc] is not allowed",
                Some("last_name"),
            ),
            (
                "document_parsing_exception",
                "[1:9795] failed to parse: Limit of total fields [1000] has been exceeded while adding new fields [1001]",
                None,
            ),
            ("illegal_argument_exception", "Limit of total fields [1000] has been exceeded", None),
            (
                "illegal_argument_exception",
                "mapper [level] cannot be changed from type [long] to [text]",
                Some("level"),
            ),
        ];
        for (error_type, reason, field) in refusals {
            let failure = item(error_type, reason);
            assert!(failure.refused_for_its_mapping(), "{reason}");
            assert_eq!(failure.mapping_field(), field, "{reason}");
        }
        let not_mapping = [
            item("illegal_argument_exception", "Document contains at least one immense term in field=\"m\""),
            item("x_content_parse_exception", "[1:1] Unexpected character"),
            item("index_not_found_exception", "no such index [x]"),
            Failure::too_large_alone(10),
            Failure::answered(Cause::ClusterBusy, 429, "document_parsing_exception".into(), "failed to parse".into()),
        ];
        for failure in not_mapping {
            assert!(!failure.refused_for_its_mapping(), "{failure}");
        }
    }

    #[test]
    fn only_the_documents_own_faults_are_rejected() {
        for (status, error_type, reason) in [
            (400, "document_parsing_exception", "[1:15] failed to parse field [n] of type [long]"),
            (400, "mapper_parsing_exception", "failed to parse field [n] of type [long]"),
            (400, "strict_dynamic_mapping_exception", "[1:9] mapping set to strict, dynamic introduction of [x]"),
            (
                400,
                "illegal_argument_exception",
                "Limit of total fields [1000] has been exceeded while adding new fields [1]",
            ),
            (400, "illegal_argument_exception", "Document contains at least one immense term in field=\"msg\""),
            (400, "illegal_argument_exception", "mapper [n] cannot be changed from type [long] to [text]"),
        ] {
            assert_eq!(refusal_cause(status, error_type, reason), Cause::Document, "{error_type}: {reason}");
        }
    }

    #[test]
    fn cluster_side_refusals_say_what_to_fix() {
        let cases = [
            (
                400,
                "validation_exception",
                "Validation Failed: 1: this action would add [2] shards, but this cluster currently has [2000]/[2000] maximum normal shards open;",
                Fix::ShardLimit,
            ),
            (
                400,
                "validation_exception",
                "Validation Failed: 1: this action would add [10] total shards, but this cluster currently has [1000]/[1000] maximum shards open;",
                Fix::ShardLimit,
            ),
            (
                400,
                "illegal_argument_exception",
                "no write index is defined for alias [logs]. The write index may be explicitly disabled using is_write_index=false or the alias points to multiple indices without one being designated as a write index",
                Fix::NoWriteIndex,
            ),
            (400, "illegal_argument_exception", "pipeline with id [enrich] does not exist", Fix::MissingPipeline),
            (
                400,
                "invalid_index_name_exception",
                "Invalid index name [logs-2026.11.22 ], must not contain the following characters [ , \", *, \\, <, |, ,, >, /, ?]",
                Fix::InvalidIndexName,
            ),
            (
                400,
                "illegal_argument_exception",
                "Document ID is not supported in create/index operation request",
                Fix::DocumentIdRefused,
            ),
            (404, "index_not_found_exception", "no such index [logs]", Fix::IndexMissing),
            (400, "index_closed_exception", "closed", Fix::IndexClosed),
            (
                403,
                "cluster_block_exception",
                "index [logs] blocked by: [FORBIDDEN/8/index write (api)];",
                Fix::ClusterBlock,
            ),
            (403, "security_exception", "action [indices:data/write/bulk[s]] is unauthorized", Fix::Access),
            (400, "illegal_argument_exception", "something nobody has seen before", Fix::Unrecognized),
            (400, "some_new_exception", "failed to parse", Fix::Unrecognized),
            (422, "", "", Fix::Unrecognized),
        ];
        for (status, error_type, reason, fix) in cases {
            assert_eq!(refusal_cause(status, error_type, reason), Cause::Misconfigured(fix), "{error_type}: {reason}");
        }
    }

    #[test]
    fn causes_route_as_the_fault_catalogue_says() {
        assert_eq!(Cause::Document.route(), Outcome::Rejected);
        assert_eq!(Cause::ClusterBusy.route(), Outcome::ToFirehose);
        assert_eq!(Cause::Misconfigured(Fix::ShardLimit).route(), Outcome::BackToKinesis);
        assert_eq!(Cause::Unknown.route(), Outcome::BackToKinesis);
        assert_eq!(Cause::NothingToIndex.route(), Outcome::Skipped);
        assert_eq!(Cause::ClusterSaturated.route(), Outcome::BackToKinesis);
        assert!(Fix::DocumentIdRefused.hint().contains("ES_DOC_ID=none"));
    }

    #[test]
    fn the_cluster_asking_for_later_paces_as_busy_and_the_cluster_away_as_away() {
        assert_eq!(Cause::ClusterBusy.paces(), Some(Pace::Busy));
        assert_eq!(Cause::ClusterSaturated.paces(), Some(Pace::Busy));
        assert_eq!(Cause::Unknown.paces(), Some(Pace::Away));
        assert_eq!(Cause::Misconfigured(Fix::ShardLimit).paces(), Some(Pace::Away));
        for cause in [
            Cause::Misconfigured(Fix::FirehoseStream),
            Cause::FirehoseRefused,
            Cause::Document,
            Cause::Deadline,
            Cause::RedeliveredAnyway,
            Cause::NothingToIndex,
        ] {
            assert_eq!(cause.paces(), None, "{cause:?}");
        }
        assert!(Pace::Away > Pace::Busy, "away is the graver reason");
    }
}
